// The RPC port policy: HKLM\Software\Microsoft\Rpc\Internet with Windows' exact semantics
// (KB 154596; Microsoft Learn, "Configuring the Registry for Port Allocations and Selective
// Binding").
//
// Pipeline:  source bytes --parse_reg/parse_toml--> PolicyInput --resolve--> Policy
//                                                   (raw values)          (sets, validity)
//            Policy + HostFacts --lint--> warnings
//
// Parsing turns a file into the three raw registry values without judging them; only a file that
// cannot be read as its format at all is a LoadError (CLI exit 2). resolve() applies Windows'
// rules and never fails: an invalid configuration is a Policy with valid == false and an error
// whose code is ERROR_INVALID_PARAMETER (87) and whose message names the value, the entry and
// why, e.g. `Ports entry 3 "70000": port outside 0-65535`. All three sources (a regedit export,
// rpcgate.toml, the embedded default) yield the same Policy for the same values.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "policy/port_set.h"

namespace rpcgate::policy {

// Windows error numbers, so they can be shown and returned as the exit status unchanged.
enum class Errc : int {
  kInvalidParameter = 87,  // ERROR_INVALID_PARAMETER: the configuration is invalid
  kOutOfResources = 1721,  // RPC_S_OUT_OF_RESOURCES: every port of the class is held
  kNotHeld = 1,            // release() of a port that is not held by the allocator
  kNotInPolicy = 2,        // hold() of a port outside every class set
  kAlreadyHeld = 3,        // hold() of a port that is already held
};
const std::error_category& policy_category();
std::error_code make_error_code(Errc e);

// The per-request class, numbered as RPC_POLICY.EndpointFlags (rpcdce.h):
// 0 = system default (UseInternetPorts), RPC_C_USE_INTERNET_PORT = 1, RPC_C_USE_INTRANET_PORT = 2.
enum class PortClass : std::uint8_t { kDefault = 0, kInternet = 1, kIntranet = 2 };
std::string_view to_string(PortClass c);  // "default", "internet", "intranet"
std::optional<PortClass> parse_port_class(std::string_view text);

// The embedded default dynamic range: 49152-65535, Windows' since Vista (KB 929851) and Samba's.
inline constexpr PortRange kDefaultDynamicRange{49152, 65535};

// One registry value as the source stored it, before any judgement.
struct RawValue {
  enum class Type : std::uint8_t {
    kString,       // REG_SZ (TOML: a string)
    kMultiString,  // REG_MULTI_SZ (TOML: an array of strings)
    kOther,        // anything else (REG_DWORD, hex(n), a TOML integer/bool/table ...)
  };
  Type type = Type::kString;
  std::string type_name;  // as the source spells it: "REG_SZ", "hex(7)", "dword", "integer"
  std::vector<std::string> strings;  // kString: exactly one; kMultiString: the entries, in order
  std::size_t line = 0;  // 1-based line in the source where the value is defined; 0 = n/a
};

// The three values of the Internet key, plus rpcgate's dynamic range (the set the complement is
// taken within, and the pool when no restriction is configured).
struct PolicyInput {
  std::optional<RawValue> ports;                     // "Ports"
  std::optional<RawValue> ports_internet_available;  // "PortsInternetAvailable"
  std::optional<RawValue> use_internet_ports;        // "UseInternetPorts"
  PortRange dynamic_range = kDefaultDynamicRange;
  std::string source = "embedded default";  // file path, or "embedded default"
};

// Why a file could not be read as its format (CLI exit status 2). Value-level problems are never
// a LoadError: they resolve to an invalid Policy (87).
struct LoadError {
  std::string source;
  std::size_t line = 0;  // 1-based; 0 when not line-specific
  std::string message;
  // "FILE:LINE: MESSAGE" (or "FILE: MESSAGE").
  std::string to_string() const;
};

// A finding that does not invalidate the configuration. `code` is stable for scripts
// (e.g. "small-class", "low-ports", "ephemeral-overlap", "well-known-port", "empty-class").
struct Warning {
  std::string code;
  std::string message;
};

struct PolicyError {
  Errc code = Errc::kInvalidParameter;
  std::string value;                 // "Ports", "PortsInternetAvailable", "UseInternetPorts", ...
  std::optional<std::size_t> entry;  // 1-based Ports entry, when one entry is at fault
  std::string message;               // the full sentence shown to users
};

struct Policy {
  std::string source;
  bool restricted = false;  // false: none of the three values present
  bool valid = true;        // false: every dynamic allocation fails with 87
  std::optional<PolicyError> error;
  PortClass default_class = PortClass::kInternet;  // kInternet or kIntranet after resolution
  PortRange dynamic_range = kDefaultDynamicRange;
  // Unrestricted: both are the dynamic range. Restricted: disjoint, their union is the dynamic
  // range plus the listed ports. Invalid: both empty.
  PortSet internet;
  PortSet intranet;

  // The set a request of class `c` draws from (kDefault follows default_class).
  const PortSet& set_for(PortClass c) const;
};

// ---- Sources -----------------------------------------------------------------------------------

// Limits on file input; exceeding any of them is a LoadError. A regedit line limit of 4096
// characters bounds a hex(7) Ports value to roughly 680 UTF-16 characters (about 55 "LO-HI"
// entries); larger lists need rpcgate.toml.
inline constexpr std::size_t kMaxInputBytes = 1024 * 1024;  // whole file
inline constexpr std::size_t kMaxLineChars =
    4096;  // one .reg logical line, after joining, in bytes
inline constexpr std::size_t kMaxPortsEntries = 65536;  // strings in Ports

// A Windows regedit export: "Windows Registry Editor Version 5.00" (UTF-16LE with BOM, CRLF — what
// regedit writes by default — or UTF-8) or "REGEDIT4" (ANSI). Only
// [HKEY_LOCAL_MACHINE\Software\Microsoft\Rpc\Internet] (key names case-insensitive, HKLM alias
// accepted) is read; other keys are ignored; "[-KEY]" deletes the key, "Name"=- deletes a value;
// hex(7): data may continue over lines with '\'. Limits: 1 MiB of input, 4096-character lines
// after continuation joining, 65536 Ports entries.
std::expected<PolicyInput, LoadError> parse_reg(std::span<const std::uint8_t> bytes,
                                                std::string source);

// rpcgate.toml:
//   [policy]
//   ports = ["5000-5100", "5984"]     # REG_MULTI_SZ Ports
//   ports_internet_available = "Y"    # REG_SZ; Y/N, case-insensitive
//   use_internet_ports = "Y"          # REG_SZ; Y/N, case-insensitive
//   dynamic_range = "49152-65535"     # optional; default kDefaultDynamicRange
// A missing [policy] table is the unrestricted policy. Unknown keys in [policy] are a LoadError
// (typos must not silently weaken a firewall policy). Tables other than [policy] are left for
// other components.
std::expected<PolicyInput, LoadError> parse_toml(std::string_view text, std::string source);

// Reads a file and dispatches on content: a regedit header (after an optional BOM) => parse_reg,
// otherwise parse_toml. Unreadable files are a LoadError. Limit: 1 MiB.
std::expected<PolicyInput, LoadError> load_file(const std::filesystem::path& path);

// No file: no restriction, dynamic range 49152-65535.
PolicyInput embedded_default();

// ---- Rules -------------------------------------------------------------------------------------

// Applies Windows' rules: none of the three values => unrestricted; some but not all, a value of
// the wrong type, an uninterpretable or out-of-range Ports entry, or a Y/N value that is neither
// => invalid (87). PortsInternetAvailable=Y: Ports is the Internet set and the intranet set is the
// dynamic range minus it; =N: Ports is the intranet set and the Internet set is the dynamic range
// minus it. Pure function: no I/O.
//
// Where Windows does not document the detail, rpcgate decides (policy.cc says why):
//  * A Ports entry is decimal digits, or digits '-' digits; spaces/tabs around the entry and
//    around '-' are accepted; no sign, no hex, no inner spaces. Messages name the 1-based entry:
//    `Ports entry 2 "abc": not a port or a range`, `... "70000": port outside 0-65535`,
//    `... "6000-5000": range start is greater than its end`, `... "": empty entry`.
//  * Y/N values are exactly one character, Y/y/N/n; " Y" or "yes" is invalid.
//  * Only the first error is reported, in this order: a missing value (Ports,
//    PortsInternetAvailable, UseInternetPorts), a value of the wrong type (same order), an empty
//    Ports, the Ports entries in order, then the Y/N values (PortsInternetAvailable first).
Policy resolve(const PolicyInput& input);

// What the host adds to the warnings: the kernel's ephemeral range and reserved ports.
struct HostFacts {
  std::optional<PortRange> ephemeral;  // net.ipv4.ip_local_port_range
  PortSet reserved;                    // net.ipv4.ip_local_reserved_ports
};
// Reads /proc/sys/net/ipv4/ip_local_port_range and ip_local_reserved_ports (missing or malformed
// => that fact is left empty).
HostFacts read_host_facts();
// The pure parsers behind read_host_facts(). ip_local_port_range is "LO<whitespace>HI" (the
// kernel writes "32768\t60999\n"); nullopt unless LO <= HI <= 65535. ip_local_reserved_ports is a
// comma-separated list of ports and LO-HI ranges ("" or "\n" = none); nullopt if any item is not a
// port or a range.
std::optional<PortRange> parse_ip_local_port_range(std::string_view text);
std::optional<PortSet> parse_reserved_ports(std::string_view text);

// Warnings for a valid policy (none for an invalid one): a class with fewer than 100 ports; ports
// below 5000; ports in the ephemeral range that are not reserved; well-known server ports
// (135, 139, 445, 593, ...) inside a dynamic set; an empty class.
std::vector<Warning> lint(const Policy& policy, const HostFacts& host);

}  // namespace rpcgate::policy

template <>
struct std::is_error_code_enum<rpcgate::policy::Errc> : std::true_type {};
