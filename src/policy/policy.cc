// Windows' rules for HKLM\Software\Microsoft\Rpc\Internet (KB 154596; Microsoft Learn,
// "Configuring the Registry for Port Allocations and Selective Binding").
//
// Where Windows' exact behaviour is not documented we chose, and tests pin down:
//  * Ports entries: blanks (space, tab) around an entry and around '-' are accepted; the numbers
//    are plain decimal digits (leading zeros allowed, no sign, no 0x). KB 154596 only says each
//    string is "a single port or an inclusive set of ports".
//  * Y/N values: exactly one character, Y/y/N/n, nothing around it. Windows documents "Y or N
//    (not case-sensitive)"; anything looser could make a typo silently mean something.
//  * When several things are wrong, the first error in this order is reported: presence
//    (Ports, PortsInternetAvailable, UseInternetPorts), types (same order), an empty Ports,
//    Ports entries in order, then the Y/N values (PortsInternetAvailable, UseInternetPorts).
#include "policy/policy.h"

#include <array>
#include <string>
#include <vector>

#include "common/error.h"
#include "policy/internal/text.h"

namespace rpcgate::policy {

namespace {

using internal::iequals;
using internal::quote_for_message;
using internal::trim_blanks;

constexpr std::string_view kPorts = "Ports";
constexpr std::string_view kPortsInternetAvailable = "PortsInternetAvailable";
constexpr std::string_view kUseInternetPorts = "UseInternetPorts";

// "REG_SZ" reads well in a sentence as is; a TOML type name needs its article and origin.
std::string describe_type(const RawValue& v) {
  const std::string& t = v.type_name;
  if (t.starts_with("REG_") || t.starts_with("hex")) return t;
  if (t.empty()) {
    switch (v.type) {
      case RawValue::Type::kString:
        return "REG_SZ";
      case RawValue::Type::kMultiString:
        return "REG_MULTI_SZ";
      case RawValue::Type::kOther:
        return "of another type";
    }
  }
  return "a TOML " + t;
}

Policy invalid(Policy p, std::string_view value, std::optional<std::size_t> entry,
               std::string message) {
  p.valid = false;
  p.internet = PortSet{};
  p.intranet = PortSet{};
  p.error = PolicyError{Errc::kInvalidParameter, std::string(value), entry, std::move(message)};
  return p;
}

// Registry Ports entry grammar: blanks? DIGITS (blanks? '-' blanks? DIGITS)? blanks?
struct EntryVerdict {
  std::optional<PortRange> range;
  const char* why = nullptr;  // set when !range
};

// Decimal digits only; saturates above 65535 so a long digit string is "outside 0-65535", not an
// overflow.
std::optional<std::uint32_t> parse_digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
    if (v > 65536) v = 65536;
  }
  return v;
}

EntryVerdict judge_entry(std::string_view raw) {
  const std::string_view s = trim_blanks(raw);
  if (s.empty()) return {std::nullopt, "empty entry"};
  const auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    const auto port = parse_digits(s);
    if (!port) return {std::nullopt, "not a port or a range"};
    if (*port > 65535) return {std::nullopt, "port outside 0-65535"};
    return {PortRange{static_cast<std::uint16_t>(*port), static_cast<std::uint16_t>(*port)}, {}};
  }
  const auto lo = parse_digits(trim_blanks(s.substr(0, dash)));
  const auto hi = parse_digits(trim_blanks(s.substr(dash + 1)));
  if (!lo || !hi) return {std::nullopt, "not a port or a range"};
  if (*lo > 65535 || *hi > 65535) return {std::nullopt, "port outside 0-65535"};
  if (*lo > *hi) return {std::nullopt, "range start is greater than its end"};
  return {PortRange{static_cast<std::uint16_t>(*lo), static_cast<std::uint16_t>(*hi)}, {}};
}

// nullopt: not a valid Y/N (see the file comment for why this is strict).
std::optional<bool> judge_yes_no(std::string_view s) {
  if (s.size() != 1) return std::nullopt;
  if (s[0] == 'Y' || s[0] == 'y') return true;
  if (s[0] == 'N' || s[0] == 'n') return false;
  return std::nullopt;
}

std::string yes_no_type_message(std::string_view name, const RawValue& v) {
  std::string m =
      std::string(name) + " is " + describe_type(v) + "; it must be REG_SZ \"Y\" or \"N\"";
  if (v.type_name == "boolean") m += " (write \"Y\" or \"N\" as a string, not true/false)";
  return m;
}

}  // namespace

std::string_view to_string(PortClass c) {
  switch (c) {
    case PortClass::kDefault:
      return "default";
    case PortClass::kInternet:
      return "internet";
    case PortClass::kIntranet:
      return "intranet";
  }
  return "unknown";
}

std::optional<PortClass> parse_port_class(std::string_view text) {
  if (iequals(text, "default") || text == "0") return PortClass::kDefault;
  if (iequals(text, "internet") || text == "1") return PortClass::kInternet;
  if (iequals(text, "intranet") || text == "2") return PortClass::kIntranet;
  return std::nullopt;
}

std::string LoadError::to_string() const {
  if (line == 0) return source + ": " + message;
  return source + ":" + std::to_string(line) + ": " + message;
}

const PortSet& Policy::set_for(PortClass c) const {
  if (c == PortClass::kDefault) c = default_class;
  return c == PortClass::kIntranet ? intranet : internet;
}

PolicyInput embedded_default() {
  return PolicyInput{};
}

Policy resolve(const PolicyInput& input) {
  Policy p;
  p.source = input.source;
  p.dynamic_range = input.dynamic_range;
  p.default_class = PortClass::kInternet;

  const std::array<std::pair<std::string_view, const std::optional<RawValue>*>, 3> values{{
      {kPorts, &input.ports},
      {kPortsInternetAvailable, &input.ports_internet_available},
      {kUseInternetPorts, &input.use_internet_ports},
  }};

  // RPC_POLICY: "If the registry does not contain any of the keys ... EndpointFlags has no
  // effect": no restriction, both classes draw from the whole dynamic range.
  if (!input.ports && !input.ports_internet_available && !input.use_internet_ports) {
    p.restricted = false;
    p.internet = PortSet::of(input.dynamic_range);
    p.intranet = p.internet;
    return p;
  }
  p.restricted = true;

  // "If a key is missing or if it contains an invalid value, the entire configuration is marked
  // as invalid" (KB 154596).
  for (const auto& [name, value] : values) {
    if (!*value) {
      return invalid(std::move(p), name, std::nullopt,
                     std::string(name) +
                         " is missing: when any of Ports, PortsInternetAvailable, "
                         "UseInternetPorts is set, all three must be");
    }
  }

  const RawValue& ports = *input.ports;
  const RawValue& pia = *input.ports_internet_available;
  const RawValue& uip = *input.use_internet_ports;
  if (ports.type != RawValue::Type::kMultiString) {
    return invalid(std::move(p), kPorts, std::nullopt,
                   "Ports is " + describe_type(ports) + "; it must be REG_MULTI_SZ");
  }
  if (pia.type != RawValue::Type::kString) {
    return invalid(std::move(p), kPortsInternetAvailable, std::nullopt,
                   yes_no_type_message(kPortsInternetAvailable, pia));
  }
  if (uip.type != RawValue::Type::kString) {
    return invalid(std::move(p), kUseInternetPorts, std::nullopt,
                   yes_no_type_message(kUseInternetPorts, uip));
  }

  if (ports.strings.empty()) {
    return invalid(std::move(p), kPorts, std::nullopt, "Ports has no entries");
  }
  std::vector<PortRange> ranges;  // merged as intervals: entries may overlap (65536 x "0-65535")
  ranges.reserve(ports.strings.size());
  for (std::size_t i = 0; i < ports.strings.size(); ++i) {
    const auto verdict = judge_entry(ports.strings[i]);
    if (!verdict.range) {
      return invalid(std::move(p), kPorts, i + 1,
                     "Ports entry " + std::to_string(i + 1) + " " +
                         quote_for_message(ports.strings[i]) + ": " + verdict.why);
    }
    ranges.push_back(*verdict.range);
  }
  PortSet listed = PortSet::from_ranges(std::move(ranges));

  // A kString always carries exactly one string; an empty vector (a hand-built input) is judged
  // like an empty string.
  const std::string_view pia_text = pia.strings.empty() ? "" : std::string_view(pia.strings[0]);
  const std::string_view uip_text = uip.strings.empty() ? "" : std::string_view(uip.strings[0]);
  const auto internet_available = judge_yes_no(pia_text);
  if (!internet_available) {
    return invalid(
        std::move(p), kPortsInternetAvailable, std::nullopt,
        "PortsInternetAvailable is " + quote_for_message(pia_text) + "; it must be \"Y\" or \"N\"");
  }
  const auto use_internet = judge_yes_no(uip_text);
  if (!use_internet) {
    return invalid(
        std::move(p), kUseInternetPorts, std::nullopt,
        "UseInternetPorts is " + quote_for_message(uip_text) + "; it must be \"Y\" or \"N\"");
  }

  PortSet rest = listed.complement_within(input.dynamic_range);
  if (*internet_available) {
    p.internet = std::move(listed);
    p.intranet = std::move(rest);
  } else {
    p.intranet = std::move(listed);
    p.internet = std::move(rest);
  }
  p.default_class = *use_internet ? PortClass::kInternet : PortClass::kIntranet;
  return p;
}

}  // namespace rpcgate::policy
