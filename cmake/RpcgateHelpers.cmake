# One function per kind of target (after Abseil's AbseilHelpers.cmake).
#
#   rpcgate_library(NAME SRCS ... DEPS ...)        -> static lib rpcgate_NAME, alias rpcgate::NAME
#   rpcgate_test(NAME SRCS ... DEPS ...)           -> gtest binary, tests registered with ctest
#   rpcgate_benchmark(NAME SRCS ... DEPS ...)      -> Google Benchmark binary (not run by ctest)
#   rpcgate_executable(NAME SRCS ... DEPS ... [SBIN])
#                                                  -> program in build/bin/NAME, installed to
#                                                    bin (sbin with SBIN: daemons)
#   rpcgate_fuzzer(NAME SRCS ... DEPS ...)         -> libFuzzer target in the fuzz build; elsewhere a
#                                                    replay binary that ctest runs over
#                                                    fuzz/corpus/NAME (seeds + crash reproducers)

function(rpcgate_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(rpcgate_${name} STATIC ${ARG_SRCS})
  add_library(rpcgate::${name} ALIAS rpcgate_${name})
  target_include_directories(rpcgate_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(rpcgate_${name} PUBLIC ${ARG_DEPS} PRIVATE rpcgate_warnings)
endfunction()

function(rpcgate_test name)
  if(NOT RPCGATE_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main
                                        rpcgate_warnings)
  target_compile_definitions(${name} PRIVATE RPCGATE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
endfunction()

function(rpcgate_benchmark name)
  if(NOT RPCGATE_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark benchmark::benchmark_main
                                        rpcgate_warnings)
endfunction()

function(rpcgate_executable name)
  cmake_parse_arguments(ARG "SBIN" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} rpcgate_warnings)
  if(ARG_SBIN)
    install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
  else()
    install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endfunction()

function(rpcgate_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} rpcgate_warnings)
  if(RPCGATE_FUZZ)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/fuzz/replay_main.cc)
    if(RPCGATE_BUILD_TESTS)
      add_test(NAME fuzz_replay.${name}
               COMMAND ${name} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${name})
      set_tests_properties(fuzz_replay.${name} PROPERTIES LABELS fuzz-replay)
    endif()
  endif()
endfunction()
