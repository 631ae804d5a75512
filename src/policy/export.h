// Ready-to-use artefacts generated from a resolved Policy (`rpcgate policy export`).
//
// Every function is pure (no I/O) and refuses an invalid policy: exporting a configuration that
// Windows would reject would only move the error somewhere harder to see. On success the text is
// complete and can be written to a file as is.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace rpcgate::policy {

enum class ExportFormat : std::uint8_t { kNftables, kFirewalld, kSamba, kSysctl, kReg };
std::optional<ExportFormat> parse_export_format(std::string_view name);
// "nftables", "firewalld", "samba", "sysctl", "reg"
std::string_view to_string(ExportFormat f);

struct ExportOptions {
  // Also open the Internet set for UDP (Windows applies Ports to ncadg_ip_udp too; rpcgate itself
  // serves ncacn_ip_tcp only, so the default is TCP alone).
  bool udp = false;
  // The endpoint mapper's port, opened beside the dynamic set.
  std::uint16_t epm_port = 135;
};

// Why an export cannot be produced; the message is a complete sentence for the user.
struct ExportError {
  std::string message;
};

// nftables: a table `inet rpcgate` with a named interval set of the Internet-available ports and
// an input chain that accepts new connections to the endpoint mapper and to that set, and drops
// new connections to every other port of the dynamic pools (the intranet-only ports). Traffic
// to any other port is left to the rest of the ruleset. Loadable with `nft -f`.
std::expected<std::string, ExportError> export_nftables(const Policy& p, const ExportOptions& o);

// firewalld: a service definition (/etc/firewalld/services/rpcgate.xml) with the endpoint mapper
// port and the Internet-available set.
std::expected<std::string, ExportError> export_firewalld(const Policy& p, const ExportOptions& o);

// Samba: the `rpc server dynamic port range = LO-HI` line for smb.conf, from the set that
// default-class servers draw from. Samba takes exactly one range of ports >= 1024: a set of
// several ranges (or ports below 1024) is an ExportError that says so and names the ranges.
std::expected<std::string, ExportError> export_samba(const Policy& p);

// sysctl: a sysctl.d snippet setting net.ipv4.ip_local_reserved_ports to every port rpcgate may
// hand out (both classes), so the kernel never gives them to outgoing connections (bind(0),
// connect()). The key also governs IPv6.
std::expected<std::string, ExportError> export_sysctl(const Policy& p);

// A Windows regedit export (Version 5.00: UTF-16LE with BOM, CRLF; Ports as hex(7) wrapped the way
// regedit wraps) that parse_reg() + resolve() turn back into the same policy, provided the
// dynamic range is the same (a .reg file has no place for it). The result is raw bytes in a
// std::string.
std::expected<std::string, ExportError> export_reg(const Policy& p);

std::expected<std::string, ExportError> export_policy(const Policy& p, ExportFormat f,
                                                      const ExportOptions& o);

}  // namespace rpcgate::policy
