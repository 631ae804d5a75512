// Host facts and lint: advice that does not make a policy invalid (KB 154596's recommendations
// and Linux's ephemeral port allocator, which shares the port space with rpcgate's pool).
#include <array>
#include <fstream>
#include <iterator>
#include <string>

#include "policy/internal/text.h"
#include "policy/policy.h"

namespace rpcgate::policy {

namespace {

// KB 154596: "a minimum of 100 ports should be opened" and "a range of ports above port 5000".
constexpr std::size_t kMinClassPorts = 100;
constexpr std::uint16_t kLowPortLimit = 5000;

struct WellKnown {
  std::uint16_t port;
  std::string_view service;
};
// Fixed server ports of Windows and AD services (KB 832017) that must not be handed out as
// dynamic RPC endpoints, and that a firewall must not open as "dynamic RPC".
constexpr std::array<WellKnown, 19> kWellKnown = {{
    {53, "DNS"},
    {88, "Kerberos"},
    {123, "NTP"},
    {135, "RPC endpoint mapper"},
    {137, "NetBIOS name service"},
    {138, "NetBIOS datagram service"},
    {139, "NetBIOS session service"},
    {389, "LDAP"},
    {445, "SMB"},
    {464, "Kerberos password change"},
    {593, "RPC over HTTP endpoint mapper"},
    {636, "LDAPS"},
    {3268, "Global Catalog"},
    {3269, "Global Catalog over SSL"},
    {3389, "RDP"},
    {5722, "DFSR RPC"},
    {5985, "WinRM HTTP"},
    {5986, "WinRM HTTPS"},
    {9389, "AD Web Services"},
}};

// "5000-5100, 5984" limited to a few ranges so a fragmented set keeps the message readable.
std::string ranges_text(const PortSet& s) {
  constexpr std::size_t kShown = 4;
  const auto ranges = s.ranges();
  std::string out;
  for (std::size_t i = 0; i < ranges.size() && i < kShown; ++i) {
    if (!out.empty()) out += ", ";
    out += ranges[i].to_string();
  }
  if (ranges.size() > kShown) {
    out += " and " + std::to_string(ranges.size() - kShown) + " more ranges";
  }
  return out;
}

std::string ports_word(std::size_t n) {
  return n == 1 ? "port" : "ports";
}

struct Subject {
  std::string name;   // "The Internet class", "The dynamic range (both classes)"
  std::string lower;  // same, for use mid-sentence
  const PortSet* set;
  std::optional<PortClass> cls;  // nullopt: unrestricted
};

void lint_set(const Policy& policy, const HostFacts& host, const Subject& subject,
              std::vector<Warning>& out) {
  const PortSet& set = *subject.set;
  if (set.empty()) {
    std::string m = subject.name + " has no ports";
    if (subject.cls) {
      const bool internet = *subject.cls == PortClass::kInternet;
      m += " (the ports listed in Ports cover the whole dynamic range " +
           policy.dynamic_range.to_string() + ", leaving nothing for the " +
           (internet ? "Internet" : "intranet") + " class)";
      m += ", so every request for an " + std::string(internet ? "Internet" : "intranet") +
           " port will fail with 1721 (RPC_S_OUT_OF_RESOURCES)";
      if (policy.default_class == *subject.cls) {
        m += std::string(
                 ", including every request that uses the default class, because "
                 "UseInternetPorts is ") +
             (internet ? "Y" : "N");
      }
    } else {
      m += ", so every dynamic port request will fail with 1721 (RPC_S_OUT_OF_RESOURCES)";
    }
    out.push_back({"empty-class", m + "."});
    return;  // the other checks have nothing to say about an empty set
  }
  if (set.count() < kMinClassPorts) {
    out.push_back({"small-class", subject.name + " has only " + std::to_string(set.count()) + " " +
                                      ports_word(set.count()) + " (" + ranges_text(set) +
                                      "); KB 154596 recommends at least " +
                                      std::to_string(kMinClassPorts) +
                                      " because several system services need RPC ports."});
  }
  const PortSet low = set.intersection(PortSet::of({0, kLowPortLimit - 1}));
  if (!low.empty()) {
    out.push_back({"low-ports", subject.name + " includes " + std::to_string(low.count()) + " " +
                                    ports_word(low.count()) + " below " +
                                    std::to_string(kLowPortLimit) + " (" + ranges_text(low) +
                                    "); KB 154596 recommends ports above " +
                                    std::to_string(kLowPortLimit) +
                                    " because lower ports may already be used by other "
                                    "applications."});
  }
  if (host.ephemeral) {
    PortSet exposed = set.intersection(PortSet::of(*host.ephemeral));
    for (const auto& r : host.reserved.ranges())
      exposed.remove(r);
    if (!exposed.empty()) {
      out.push_back(
          {"ephemeral-overlap",
           std::to_string(exposed.count()) + " " + ports_word(exposed.count()) + " of " +
               subject.lower + " (" + ranges_text(exposed) +
               ") lie inside the kernel's ephemeral port range " + host.ephemeral->to_string() +
               " (net.ipv4.ip_local_port_range) and are not in "
               "net.ipv4.ip_local_reserved_ports, so outgoing connections can take them before "
               "an RPC server does; reserve them with `rpcgate policy export --format sysctl`."});
    }
  }
  std::string names;
  std::size_t found = 0;
  for (const auto& wk : kWellKnown) {
    if (!set.contains(wk.port)) continue;
    if (!names.empty()) names += ", ";
    names += std::to_string(wk.port) + " (" + std::string(wk.service) + ")";
    ++found;
  }
  if (found != 0) {
    out.push_back(
        {"well-known-port", subject.name + " includes the well-known server " + ports_word(found) +
                                " " + names +
                                "; a dynamic RPC endpoint could take a port a service needs, and a "
                                "firewall would open it as dynamic RPC."});
  }
}

}  // namespace

std::optional<PortRange> parse_ip_local_port_range(std::string_view text) {
  // Two decimal numbers separated by blanks; the kernel writes a tab and a newline.
  auto field = [&text]() -> std::optional<std::uint32_t> {
    while (!text.empty() && (internal::is_blank(text.front()) || text.front() == '\n'))
      text.remove_prefix(1);
    std::size_t n = 0;
    std::uint32_t v = 0;
    while (n < text.size() && text[n] >= '0' && text[n] <= '9') {
      v = v * 10 + static_cast<std::uint32_t>(text[n] - '0');
      if (v > 65536) v = 65536;
      ++n;
    }
    if (n == 0) return std::nullopt;
    text.remove_prefix(n);
    return v;
  };
  const auto lo = field();
  const auto hi = field();
  while (!text.empty() && (internal::is_blank(text.front()) || text.front() == '\n'))
    text.remove_prefix(1);
  if (!lo || !hi || !text.empty() || *lo > *hi || *hi > 65535) return std::nullopt;
  return PortRange{static_cast<std::uint16_t>(*lo), static_cast<std::uint16_t>(*hi)};
}

std::optional<PortSet> parse_reserved_ports(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || internal::is_blank(text.back())))
    text.remove_suffix(1);
  PortSet out;
  if (text.empty()) return out;
  while (true) {
    const auto comma = text.find(',');
    const auto range = parse_port_range(text.substr(0, comma));
    if (!range) return std::nullopt;
    out.add(*range);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

HostFacts read_host_facts() {
  auto slurp = [](const char* path) -> std::optional<std::string> {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  HostFacts facts;
  if (auto t = slurp("/proc/sys/net/ipv4/ip_local_port_range")) {
    facts.ephemeral = parse_ip_local_port_range(*t);
  }
  if (auto t = slurp("/proc/sys/net/ipv4/ip_local_reserved_ports")) {
    if (auto s = parse_reserved_ports(*t)) facts.reserved = std::move(*s);
  }
  return facts;
}

std::vector<Warning> lint(const Policy& policy, const HostFacts& host) {
  std::vector<Warning> out;
  if (!policy.valid) return out;
  if (!policy.restricted) {
    // Both classes are the dynamic range: one subject, so each finding is reported once.
    const std::string range = policy.dynamic_range.to_string();
    lint_set(policy, host,
             {"The dynamic range " + range + " (no Ports restriction)",
              "the dynamic range " + range, &policy.internet, std::nullopt},
             out);
    return out;
  }
  lint_set(policy, host,
           {"The Internet class", "the Internet class", &policy.internet, PortClass::kInternet},
           out);
  lint_set(policy, host,
           {"The intranet class", "the intranet class", &policy.intranet, PortClass::kIntranet},
           out);
  return out;
}

}  // namespace rpcgate::policy
