# Manual pages: docs/man/NAME.SECTION.scd is rendered with scdoc (Debian package scdoc) to
# build/man/NAME.SECTION, then compressed as Debian policy wants it (gzip -9n: best compression,
# no name or timestamp in the header, so the .gz is reproducible) to NAME.SECTION.gz, which is
# installed to ${CMAKE_INSTALL_MANDIR}/manSECTION. The `man` target is part of ALL when scdoc is
# found; without it the pages are skipped with a message, and tests/man_pages_test.py skips too.
# The page date is scdoc's: today, or SOURCE_DATE_EPOCH when the environment sets it (as
# dpkg-buildpackage does).
include(GNUInstallDirs)

find_program(RPCGATE_SCDOC scdoc)
find_program(RPCGATE_GZIP gzip)
if(NOT RPCGATE_SCDOC OR NOT RPCGATE_GZIP)
  message(STATUS "scdoc or gzip not found: manual pages not built (`make deps` installs scdoc)")
  return()
endif()

file(GLOB rpcgate_man_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.scd)
set(rpcgate_man_dir ${CMAKE_BINARY_DIR}/man)
set(rpcgate_man_outputs)
foreach(source ${rpcgate_man_sources})
  get_filename_component(page ${source} NAME_WLE)  # rpcgate-fwd.8
  if(NOT page MATCHES "\\.([1-9])$")
    message(FATAL_ERROR "${source}: a page is named NAME.SECTION.scd")
  endif()
  set(section ${CMAKE_MATCH_1})
  set(roff ${rpcgate_man_dir}/${page})
  add_custom_command(
    OUTPUT ${roff} ${roff}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${rpcgate_man_dir}
    # scdoc reads stdin and writes stdout only; a failed render must not leave a stale page.
    COMMAND sh -c "\"$0\" < \"$1\" > \"$2.tmp\" && mv \"$2.tmp\" \"$2\"" ${RPCGATE_SCDOC} ${source}
            ${roff}
    COMMAND sh -c "\"$0\" -9n -c \"$1\" > \"$1.gz\"" ${RPCGATE_GZIP} ${roff}
    DEPENDS ${source}
    COMMENT "Manual page ${page}"
    VERBATIM)
  list(APPEND rpcgate_man_outputs ${roff}.gz)
  install(FILES ${roff}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(man ALL DEPENDS ${rpcgate_man_outputs})
