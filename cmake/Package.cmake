# Installation layout and the Debian package (CPack DEB), for `make package`.
#
#   /usr/sbin             rpcgate-epmd, rpcgate-fwd (rpcgate_executable ... SBIN)
#   /usr/bin              rpcgate, rpcgate-echo, rpcgate-bench
#   /lib/systemd/system   rpcgate-epmd.socket, rpcgate-epmd.service, rpcgate-fwd.service
#   /etc/rpcgate          rpcgate.toml, a conffile (dpkg keeps an administrator's changes)
#   /usr/share/doc/rpcgate  copyright (DEP-5), changelog.gz
#   man pages             cmake/Man.cmake's own install() rules, when present
#
# The paths are those of a Debian package (configure with CMAKE_INSTALL_PREFIX=/usr: GNUInstallDirs
# then puts the configuration in /etc, not /usr/etc). The unit directory is Debian 12's
# (pkg-config systemd: systemdsystemunitdir), where lintian expects units.

set(RPCGATE_SYSTEMD_UNIT_DIR "/lib/systemd/system"
    CACHE PATH "Where the systemd units are installed (absolute)")

set(rpcgate_packaging ${PROJECT_SOURCE_DIR}/packaging)

install(FILES ${rpcgate_packaging}/systemd/rpcgate-epmd.socket
              ${rpcgate_packaging}/systemd/rpcgate-epmd.service
              ${rpcgate_packaging}/systemd/rpcgate-fwd.service
        DESTINATION ${RPCGATE_SYSTEMD_UNIT_DIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${rpcgate_packaging}/rpcgate.toml
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/rpcgate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The changelog (a native package's is changelog.gz; lintian requires one), compressed as
# dh_compress does: gzip -9n, no name or time stamp, so the package is reproducible.
set(rpcgate_changelog ${CMAKE_BINARY_DIR}/packaging/changelog)
configure_file(${rpcgate_packaging}/debian/changelog.in ${rpcgate_changelog} @ONLY)
add_custom_command(
  OUTPUT ${rpcgate_changelog}.gz
  COMMAND gzip -9nc ${rpcgate_changelog} > ${rpcgate_changelog}.gz
  DEPENDS ${rpcgate_changelog}
  COMMENT "changelog.gz")
add_custom_target(rpcgate_changelog ALL DEPENDS ${rpcgate_changelog}.gz)
install(FILES ${rpcgate_packaging}/debian/copyright ${rpcgate_changelog}.gz
        DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# --- CPack DEB -------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rpcgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "rpcgate maintainers")
set(CPACK_PACKAGE_CONTACT "rpcgate maintainers <maintainers@users.noreply.r-seed-42fc835c.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# /etc and /lib/systemd are absolute destinations: install them under the staging directory too.
set(CPACK_SET_DESTDIR ON)
# Stripped: the package ships no debug information (lintian: unstripped-binary-or-object).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # rpcgate_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "DCE/RPC endpoint mapper, port broker and firewall")
# The extended description (the synopsis above is its first line in the control file; CPack
# indents each line by one space).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "rpcgate implements the RPC dynamic port policy of Windows (the Rpc\\\\Internet
Ports, PortsInternetAvailable and UseInternetPorts values) on Linux:
 * rpcgate-epmd, an endpoint mapper on TCP 135 and a port broker that hands
   RPC servers listening sockets from the policy's port ranges;
 * rpcgate-fwd, a firewall that lets RPC through by interface UUID, opening
   a server's dynamic port only after an allowed endpoint-mapper answer;
 * rpcgate, rpcgate-echo and rpcgate-bench, the client and test tools.
The systemd units are enabled at installation but not started.")
# Dependencies from the binaries' shared libraries (dpkg-shlibdeps), plus what the maintainer
# scripts run: adduser (the rpcgate user) and init-system-helpers (deb-systemd-helper).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "nftables")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# conffiles (CPack marks none by itself: the list is packaging/debian/conffiles) and the
# maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${rpcgate_packaging}/debian/conffiles
    ${rpcgate_packaging}/debian/postinst
    ${rpcgate_packaging}/debian/prerm
    ${rpcgate_packaging}/debian/postrm)
include(CPack)
