// The rules of rpcgate-fwd: parsing ([firewall] of rpcgate.toml) and the decisions over them.
// Every value that widens or narrows what passes is checked strictly: an unknown key, a key of the
// wrong type, an explicitly empty list (which would otherwise read as "any") is an error naming
// FILE:LINE, never a silent default.
#include "firewall/rules.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>

#include <toml++/toml.h>

namespace rpcgate::firewall {

namespace {

constexpr std::size_t kMaxDocumentBytes = 1 << 20;
constexpr std::size_t kMaxRules = 1024;
constexpr std::size_t kMaxListEntries = 1024;            // CIDRs, interfaces, opnum ranges per list
constexpr std::size_t kMaxCount = std::size_t{1} << 24;  // the largest cap a key accepts

bool is_mapped(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) && a[10] == 0xff &&
         a[11] == 0xff;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A decimal number without sign, spaces or leading '+', at most `max`.
std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t max) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

// Well-known interfaces. Each UUID and version was checked against the public source named on
// its line (Samba's librpc/idl/<file>.idl at 4614f04b, which states uuid() and version(); an IDL
// without version() is 0.0), and the [MS-*] specification of the protocol; the DCOM IIDs also
// match Impacket's dcomrt.py (IID_IRemoteSCMActivator, IID_IObjectExporter, both 0.0). A wrong UUID
// here would allow or block the wrong service: change one only with its source.
constexpr std::array<WellKnownInterface, 32> kWellKnown = {{
    {"lsarpc", "12345778-1234-abcd-ef00-0123456789ab", 0, 0},    // lsa.idl; [MS-LSAD]
    {"samr", "12345778-1234-abcd-ef00-0123456789ac", 1, 0},      // samr.idl; [MS-SAMR]
    {"netlogon", "12345678-1234-abcd-ef00-01234567cffb", 1, 0},  // netlogon.idl; [MS-NRPC]
    {"drsuapi", "e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 0},   // drsuapi.idl; [MS-DRSR]
    {"spoolss", "12345678-1234-abcd-ef00-0123456789ab", 1, 0},   // spoolss.idl; [MS-RPRN]
    {"winspool", "76f03f96-cdfd-44fc-a22c-64950a001209", 1, 0},  // winspool.idl; [MS-PAR]
    {"winreg", "338cd001-2244-31f1-aaaa-900038001003", 1, 0},    // winreg.idl; [MS-RRP]
    {"svcctl", "367abb81-9844-35f1-ad32-98f038001003", 2, 0},    // svcctl.idl; [MS-SCMR]
    {"eventlog", "82273fdc-e32a-18c3-3f78-827929dc23ea", 0, 0},  // eventlog.idl; [MS-EVEN]
    {"srvsvc", "4b324fc8-1670-01d3-1278-5a47bf6ee188", 3, 0},    // srvsvc.idl; [MS-SRVS]
    {"wkssvc", "6bffd098-a112-3610-9833-46c3f87e345a", 1, 0},    // wkssvc.idl; [MS-WKST]
    {"atsvc", "1ff70682-0a51-30e8-076d-740be8cee98b", 1, 0},     // atsvc.idl; [MS-TSCH]
    {"dssetup", "3919286a-b10c-11d0-9ba8-00c04fd92ef5", 0, 0},   // dssetup.idl; [MS-LSAD]
    {"lsa-ds", "3919286a-b10c-11d0-9ba8-00c04fd92ef5", 0, 0},    // the same interface (DSSETUP)
    {"epmapper", "e1af8308-5d1f-11c9-91a4-08002b14a0fa", 3, 0},  // epmapper.idl; C706 App. O
    {"rpcecho", "60a15ec5-4de8-11d7-a637-005056a20182", 1, 0},   // echo.idl (Samba's test pipe)
    {"mgmt", "afa8bd80-7d8a-11c9-bef4-08002b102989", 1, 0},      // mgmt.idl; C706 App. Q
    {"isystemactivator", "000001a0-0000-0000-c000-000000000046", 0, 0},     // [MS-DCOM] 1.9
    {"iremotescmactivator", "000001a0-0000-0000-c000-000000000046", 0, 0},  // the same IID
    {"ioxidresolver", "99fcfec4-5260-101b-bbcb-00aa0021347a", 0, 0},  // oxidresolver.idl; [MS-DCOM]
    {"iremoteactivation", "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57", 0, 0},  // remact.idl; [MS-DCOM]
    {"frsrpc", "f5cc59b4-4264-101a-8c59-08002b2f8426", 1, 1},             // frsrpc.idl; [MS-FRS1]
    {"frstrans", "897e2e5f-93f3-4376-9c9c-fd2277495c27", 1, 0},           // frstrans.idl; [MS-FRS2]
    {"dnsserver", "50abc2a4-574d-40b3-9d66-ee4fd5fba076", 5, 0},     // dnsserver.idl; [MS-DNSP]
    {"efsrpc", "df1941c5-fe89-4e79-bf10-463657acf44d", 1, 0},        // [MS-EFSR] 1.9 (\pipe\efsrpc)
    {"efs", "c681d488-d850-11d0-8c52-00c04fd90f7e", 1, 0},           // efs.idl; [MS-EFSR] (lsarpc)
    {"netdfs", "4fc742e0-4a10-11cf-8273-00aa004ae673", 3, 0},        // dfs.idl; [MS-DFSNM]
    {"initshutdown", "894de0c0-0d55-11d3-a322-00c04fa321a1", 1, 0},  // initshutdown.idl; [MS-RSP]
    {"backupkey", "3dde7c30-165d-11d1-ab8f-00805f14db40", 1, 0},     // backupkey.idl; [MS-BKRP]
    {"ntsvcs", "8d9f4e40-a03d-11ce-8f69-08003e30051b", 1, 0},        // ntsvcs.idl; [MS-PNPR]
    {"witness", "ccd8c074-d0e5-4a40-92b4-d074faa6ba28", 1, 1},       // witness.idl; [MS-SWN]
    {"fsrvp", "a8e0653c-2744-4389-a61d-7373df8b2292", 1, 0},         // fsrvp.idl; [MS-FSRVP]
}};

}  // namespace

// ---- Addresses -----------------------------------------------------------------------------

bool Cidr::ipv4() const {
  return prefix >= 96 && is_mapped(base);
}

bool Cidr::contains(const Address& a) const {
  if (ipv4() != is_mapped(a)) return false;  // families never mix (the header's promise)
  const unsigned full = prefix / 8;
  if (!std::equal(base.begin(), base.begin() + full, a.begin())) return false;
  if (const unsigned rest = prefix % 8; rest != 0) {
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    if ((base[full] & mask) != (a[full] & mask)) return false;
  }
  return true;
}

std::expected<Cidr, std::string> parse_cidr(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return std::unexpected("invalid address prefix \"" + std::string(text) +
                           "\": " + std::string(why));
  };
  if (text.size() > 64 || text.find('\0') != std::string_view::npos) return bad("not an address");
  const auto slash = text.find('/');
  const std::string host(text.substr(0, slash));
  const auto address = parse_address(host);
  if (!address) return bad("not an IPv4 or IPv6 address");
  const bool v4 = host.find(':') == std::string::npos;
  const unsigned width = v4 ? 32 : 128;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    const auto p = parse_decimal(text.substr(slash + 1), width);
    if (!p) return bad(v4 ? "prefix length must be 0..32" : "prefix length must be 0..128");
    prefix = static_cast<unsigned>(*p);
  }
  Cidr c{*address, v4 ? prefix + 96 : prefix};
  // Host bits set usually means a typo ("10.0.0.1/8" for "10.0.0.0/8"): refuse, do not guess.
  Cidr masked{};
  masked.prefix = c.prefix;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned bits = c.prefix > i * 8 ? std::min(8u, c.prefix - i * 8) : 0;
    masked.base[i] = bits == 0 ? 0 : static_cast<std::uint8_t>(c.base[i] & (0xff << (8 - bits)));
  }
  if (masked.base != c.base) return bad("host bits set after the prefix length");
  return c;
}

std::string to_string(const Cidr& c) {
  if (c.ipv4()) return to_string(c.base) + "/" + std::to_string(c.prefix - 96);
  return to_string(c.base) + "/" + std::to_string(c.prefix);
}

// ---- Auth levels and interfaces -------------------------------------------------------------

std::expected<AuthLevel, std::string> parse_auth_level(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, AuthLevel>, 6> kLevels = {{
      {"none", AuthLevel::kNone},
      {"connect", AuthLevel::kConnect},
      {"call", AuthLevel::kCall},
      {"packet", AuthLevel::kPacket},
      {"integrity", AuthLevel::kIntegrity},
      {"privacy", AuthLevel::kPrivacy},
  }};
  const std::string l = lower(text);
  for (const auto& [name, level] : kLevels)
    if (l == name) return level;
  return std::unexpected("invalid auth level \"" + std::string(text) +
                         "\": none, connect, call, packet, integrity or privacy");
}

std::string_view to_string(AuthLevel l) {
  switch (l) {
    case AuthLevel::kNone:
      return "none";
    case AuthLevel::kConnect:
      return "connect";
    case AuthLevel::kCall:
      return "call";
    case AuthLevel::kPacket:
      return "packet";
    case AuthLevel::kIntegrity:
      return "integrity";
    case AuthLevel::kPrivacy:
      return "privacy";
  }
  return "?";
}

bool InterfaceSpec::matches(const rpc::SyntaxId& s) const {
  if (s.uuid != uuid) return false;
  return !major || (s.major == *major && s.minor >= min_minor);
}

std::span<const WellKnownInterface> well_known_interfaces() {
  return kWellKnown;
}

std::expected<InterfaceSpec, std::string> parse_interface(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return std::unexpected("invalid interface \"" + std::string(text) + "\": " + std::string(why));
  };
  if (text.size() > 64) return bad("too long");
  const auto colon = text.find(':');
  const std::string l = lower(text.substr(0, colon));
  std::optional<common::Uuid> uuid;
  for (const auto& w : kWellKnown) {
    if (l != w.name) continue;
    // A name alone allows its interface's major version, any minor: minor versions of one
    // major are compatible by definition (C706 §12.6.3.1 version rules). "name:M.m" narrows.
    if (colon == std::string_view::npos)
      return InterfaceSpec{*common::Uuid::parse(w.uuid), w.major, 0, std::string(w.name)};
    uuid = common::Uuid::parse(w.uuid);
    break;
  }
  if (!uuid) uuid = common::Uuid::parse(text.substr(0, colon));
  if (!uuid) return bad("neither UUID[:MAJOR.MINOR] nor a well-known interface name[:MAJOR.MINOR]");
  InterfaceSpec spec{*uuid, std::nullopt, 0, std::string(text)};
  if (colon == std::string_view::npos) return spec;
  const std::string_view version = text.substr(colon + 1);
  const auto dot = version.find('.');
  if (dot == std::string_view::npos) return bad("the version must be MAJOR.MINOR, e.g. 4.0");
  const auto major = parse_decimal(version.substr(0, dot), 0xffff);
  const auto minor = parse_decimal(version.substr(dot + 1), 0xffff);
  if (!major || !minor) return bad("MAJOR and MINOR must be numbers 0..65535");
  spec.major = static_cast<std::uint16_t>(*major);
  spec.min_minor = static_cast<std::uint16_t>(*minor);
  return spec;
}

// ---- Rules ---------------------------------------------------------------------------------

namespace {
bool any_contains(const std::vector<Cidr>& set, const Address& a) {
  return set.empty() || std::ranges::any_of(set, [&](const Cidr& c) { return c.contains(a); });
}
}  // namespace

bool Rule::applies(const Address& client, const Address& server) const {
  return any_contains(clients, client) && any_contains(servers, server);
}

bool Rule::allows_opnum(std::uint16_t opnum) const {
  return opnums.empty() || std::ranges::any_of(opnums, [&](const OpnumRange& r) {
           return opnum >= r.first && opnum <= r.last;
         });
}

std::expected<std::chrono::seconds, std::string> parse_duration(std::string_view text) {
  const auto bad = [&] {
    return std::unexpected("invalid duration \"" + std::string(text) +
                           "\": a number of seconds, or with a unit: \"90s\", \"5m\", \"1h\" "
                           "(1 s .. 24 h)");
  };
  if (text.empty()) return bad();
  std::uint64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's':
      digits.remove_suffix(1);
      break;
    case 'm':
      unit = 60;
      digits.remove_suffix(1);
      break;
    case 'h':
      unit = 3600;
      digits.remove_suffix(1);
      break;
    default:
      break;
  }
  const auto n = parse_decimal(digits, 24 * 3600);
  if (!n || *n * unit < 1 || *n * unit > 24 * 3600) return bad();
  return std::chrono::seconds(*n * unit);
}

// ---- TOML ----------------------------------------------------------------------------------

namespace {

// Errors carry the line; the caller adds "FILE:".
struct Fail {
  std::size_t line = 0;
  std::string what;
};

std::size_t line_of(const toml::node& n, std::size_t fallback = 0) {
  const auto l = n.source().begin.line;
  return l != 0 ? l : fallback;
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "a value";
}

// The parser of one table: each getter reads one key, checks its type and range, and reports
// the key's line.
class Reader {
 public:
  explicit Reader(std::string where) : where_(std::move(where)) {}

  std::expected<std::string, Fail> string(const toml::node& n, std::string_view key) const {
    if (const auto* s = n.as_string()) return s->get();
    return std::unexpected(wrong(n, key, "a string"));
  }
  std::expected<bool, Fail> boolean(const toml::node& n, std::string_view key) const {
    if (const auto* b = n.as_boolean()) return b->get();
    return std::unexpected(wrong(n, key, "true or false"));
  }
  std::expected<std::uint64_t, Fail> integer(const toml::node& n, std::string_view key,
                                             std::uint64_t lo, std::uint64_t hi) const {
    const auto* i = n.as_integer();
    if (i == nullptr) return std::unexpected(wrong(n, key, "an integer"));
    const std::int64_t v = i->get();
    if (v < 0 || static_cast<std::uint64_t>(v) < lo || static_cast<std::uint64_t>(v) > hi) {
      return std::unexpected(Fail{line_of(n), qualified(key) + " must be " + std::to_string(lo) +
                                                  ".." + std::to_string(hi) + ", not " +
                                                  std::to_string(v)});
    }
    return static_cast<std::uint64_t>(v);
  }
  std::expected<std::chrono::seconds, Fail> duration(const toml::node& n,
                                                     std::string_view key) const {
    if (const auto* i = n.as_integer()) {
      if (i->get() >= 1 && i->get() <= 24 * 3600) return std::chrono::seconds(i->get());
      return std::unexpected(Fail{line_of(n), qualified(key) + " must be 1 s .. 24 h"});
    }
    if (const auto* s = n.as_string()) {
      auto d = parse_duration(s->get());
      if (!d) return std::unexpected(Fail{line_of(n), qualified(key) + ": " + d.error()});
      return *d;
    }
    return std::unexpected(wrong(n, key, "a duration (\"60s\", \"5m\" or seconds)"));
  }
  // A non-empty array of strings, each turned into T by `parse`.
  template <typename T, typename Parse>
  std::expected<std::vector<T>, Fail> list(const toml::node& n, std::string_view key,
                                           Parse parse) const {
    const auto* a = n.as_array();
    if (a == nullptr) return std::unexpected(wrong(n, key, "an array of strings"));
    // An explicit [] would read as "any" for clients/servers and "all" for opnums: a policy
    // that silently widens. Omit the key to mean that.
    if (a->empty()) {
      return std::unexpected(
          Fail{line_of(n), qualified(key) + " is empty; omit the key to mean any / all"});
    }
    if (a->size() > kMaxListEntries) {
      return std::unexpected(Fail{line_of(n), qualified(key) + " has more than " +
                                                  std::to_string(kMaxListEntries) + " entries"});
    }
    std::vector<T> out;
    for (const auto& e : *a) {
      const std::size_t line = line_of(e, line_of(n));
      std::expected<T, std::string> v = std::unexpected(std::string());
      if (const auto* s = e.as_string()) {
        v = parse(std::string_view(s->get()));
      } else if (const auto* i = e.as_integer(); i != nullptr && std::is_same_v<T, OpnumRange>) {
        v = parse(std::to_string(i->get()));
      } else {
        return std::unexpected(Fail{
            line, qualified(key) + " entries must be strings, not " + std::string(type_name(e))});
      }
      if (!v) return std::unexpected(Fail{line, qualified(key) + ": " + v.error()});
      out.push_back(std::move(*v));
    }
    return out;
  }
  Fail unknown(const toml::key& key, const toml::node& n,
               std::span<const std::string_view> valid) const {
    std::string list;
    for (const auto k : valid) {
      if (!list.empty()) list += ", ";
      list += k;
    }
    const std::size_t line = key.source().begin.line != 0 ? key.source().begin.line : line_of(n);
    return Fail{line, "unknown key \"" + std::string(key.str()) + "\" in " + where_ +
                          "; valid keys: " + list};
  }
  std::string qualified(std::string_view key) const { return where_ + "." + std::string(key); }

 private:
  Fail wrong(const toml::node& n, std::string_view key, std::string_view want) const {
    return Fail{line_of(n), qualified(key) + " must be " + std::string(want) + ", not " +
                                std::string(type_name(n))};
  }
  std::string where_;
};

std::expected<OpnumRange, std::string> parse_opnums(std::string_view text) {
  const auto bad = [&] {
    return std::unexpected("invalid opnum range \"" + std::string(text) +
                           "\": N or FIRST-LAST with 0 <= FIRST <= LAST <= 65535");
  };
  const auto dash = text.find('-');
  const auto first = parse_decimal(text.substr(0, dash), 0xffff);
  const auto last =
      dash == std::string_view::npos ? first : parse_decimal(text.substr(dash + 1), 0xffff);
  if (!first || !last || *first > *last) return bad();
  return OpnumRange{static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last)};
}

std::expected<Rule, Fail> parse_rule(const toml::table& t, std::size_t index) {
  static constexpr std::array<std::string_view, 8> kKeys = {
      "name",   "interfaces", "clients",         "servers",
      "opnums", "min_auth",   "pinhole_timeout", "referrals"};
  const Reader r("firewall.rule[" + std::to_string(index + 1) + "]");
  const std::size_t table_line = line_of(t);
  Rule rule;
  bool has_name = false;
  bool has_interfaces = false;
  for (const auto& [key, node] : t) {
    const std::string_view k = key.str();
    if (k == "name") {
      auto v = r.string(node, k);
      if (!v) return std::unexpected(v.error());
      if (v->empty() || v->size() > 128) {
        return std::unexpected(Fail{line_of(node), r.qualified(k) + " must be 1..128 characters"});
      }
      rule.name = std::move(*v);
      has_name = true;
    } else if (k == "interfaces") {
      auto v = r.list<InterfaceSpec>(node, k, parse_interface);
      if (!v) return std::unexpected(v.error());
      rule.interfaces = std::move(*v);
      has_interfaces = true;
    } else if (k == "clients" || k == "servers") {
      auto v = r.list<Cidr>(node, k, parse_cidr);
      if (!v) return std::unexpected(v.error());
      (k == "clients" ? rule.clients : rule.servers) = std::move(*v);
    } else if (k == "opnums") {
      auto v = r.list<OpnumRange>(node, k, parse_opnums);
      if (!v) return std::unexpected(v.error());
      rule.opnums = std::move(*v);
    } else if (k == "min_auth") {
      auto v = r.string(node, k);
      if (!v) return std::unexpected(v.error());
      auto level = parse_auth_level(*v);
      if (!level)
        return std::unexpected(Fail{line_of(node), r.qualified(k) + ": " + level.error()});
      rule.min_auth = *level;
    } else if (k == "pinhole_timeout") {
      auto v = r.duration(node, k);
      if (!v) return std::unexpected(v.error());
      rule.pinhole_timeout = *v;
    } else if (k == "referrals") {
      auto v = r.boolean(node, k);
      if (!v) return std::unexpected(v.error());
      rule.referrals = *v;
    } else {
      return std::unexpected(r.unknown(key, node, kKeys));
    }
  }
  if (!has_name) {
    return std::unexpected(Fail{table_line, "firewall.rule[" + std::to_string(index + 1) +
                                                "] has no name (required, unique)"});
  }
  if (!has_interfaces) {
    return std::unexpected(Fail{
        table_line, "rule \"" + rule.name + "\" has no interfaces (at least one is required)"});
  }
  return rule;
}

// An IPv4 address as NAT takes it: dotted quad, no prefix.
std::optional<Address> parse_ipv4(std::string_view text) {
  if (text.empty() || text.size() > 15 || text.find(':') != std::string_view::npos)
    return std::nullopt;
  return parse_address(std::string(text));
}

std::expected<NatEntry, Fail> parse_nat(const toml::table& t, std::size_t index) {
  static constexpr std::array<std::string_view, 2> kKeys = {"public", "private"};
  const Reader r("firewall.nat[" + std::to_string(index + 1) + "]");
  NatEntry e;
  e.line = line_of(t);
  bool has_public = false, has_private = false;
  for (const auto& [key, node] : t) {
    const std::string_view k = key.str();
    if (k != "public" && k != "private") return std::unexpected(r.unknown(key, node, kKeys));
    auto v = r.string(node, k);
    if (!v) return std::unexpected(v.error());
    const auto a = parse_ipv4(*v);
    if (!a) {
      return std::unexpected(Fail{line_of(node), r.qualified(k) + " must be an IPv4 address " +
                                                     "(static NAT is IPv4 only), not \"" + *v +
                                                     "\""});
    }
    (k == "public" ? e.public_address : e.private_address) = *a;
    (k == "public" ? has_public : has_private) = true;
    if (e.line == 0) e.line = line_of(node);
  }
  if (!has_public || !has_private) {
    return std::unexpected(Fail{e.line, r.qualified(has_public ? "private" : "public") +
                                            " is missing (public and private are required)"});
  }
  return e;
}

// The checks of validate_nat with the line of the offending entry.
std::optional<Fail> validate_nat_entries(const std::vector<NatEntry>& nat) {
  for (std::size_t i = 0; i < nat.size(); ++i) {
    const auto& e = nat[i];
    if (!is_mapped(e.public_address) || !is_mapped(e.private_address))
      return Fail{e.line, "firewall.nat: static NAT is IPv4 only"};
    if (e.public_address == e.private_address) {
      return Fail{e.line, "firewall.nat: public and private are the same address (" +
                              to_string(e.public_address) + ")"};
    }
    for (std::size_t j = 0; j < i; ++j) {
      const auto& o = nat[j];
      // One-to-one, and no address on both sides: a public that is another entry's private
      // would make "which server is this" depend on the order of the entries.
      for (const auto& [mine, what] :
           {std::pair{e.public_address, "public"}, std::pair{e.private_address, "private"}}) {
        if (mine == o.public_address || mine == o.private_address) {
          return Fail{e.line, std::string("firewall.nat: ") + what + " address " + to_string(mine) +
                                  " is already used by the entry on line " +
                                  std::to_string(o.line) + " (NAT is one-to-one)"};
        }
      }
    }
  }
  return std::nullopt;
}

std::expected<FirewallConfig, Fail> parse_firewall(const toml::table& fw) {
  static constexpr std::array<std::string_view, 19> kKeys = {"mode",
                                                             "clients",
                                                             "servers",
                                                             "policy",
                                                             "pinhole_timeout",
                                                             "epm_listen_port",
                                                             "pinhole_listen_port",
                                                             "lookup_pinholes",
                                                             "lookup_pinhole_timeout",
                                                             "dcom",
                                                             "max_towers",
                                                             "max_pinholes_per_client",
                                                             "max_pinholes",
                                                             "max_connections",
                                                             "max_connections_per_client",
                                                             "control",
                                                             "metrics",
                                                             "rule",
                                                             "nat"};
  const Reader r("firewall");
  FirewallConfig c;
  std::set<std::string> names;
  const auto fail = [](Fail f) { return std::unexpected(std::move(f)); };
  for (const auto& [key, node] : fw) {
    const std::string_view k = key.str();
    if (k == "mode") {
      auto v = r.string(node, k);
      if (!v) return fail(v.error());
      if (*v == "router") {
        c.mode = Mode::kRouter;
      } else if (*v == "host") {
        c.mode = Mode::kHost;
      } else {
        return fail(Fail{line_of(node),
                         r.qualified(k) + " must be \"router\" or \"host\", not \"" + *v + "\""});
      }
    } else if (k == "clients" || k == "servers") {
      auto v = r.list<Cidr>(node, k, parse_cidr);
      if (!v) return fail(v.error());
      (k == "clients" ? c.clients : c.servers) = std::move(*v);
    } else if (k == "metrics") {
      auto v = r.string(node, k);
      if (!v) return fail(v.error());
      c.metrics = std::move(*v);
    } else if (k == "policy" || k == "control") {
      auto v = r.string(node, k);
      if (!v) return fail(v.error());
      if (v->empty()) return fail(Fail{line_of(node), r.qualified(k) + " must not be empty"});
      (k == "policy" ? c.policy_file : c.control) = std::move(*v);
    } else if (k == "pinhole_timeout" || k == "lookup_pinhole_timeout") {
      auto v = r.duration(node, k);
      if (!v) return fail(v.error());
      if (k == "pinhole_timeout") {
        c.pinhole_timeout = *v;
      } else {
        c.lookup_pinhole_timeout = *v;
      }
    } else if (k == "epm_listen_port" || k == "pinhole_listen_port") {
      auto v = r.integer(node, k, 1, 65535);
      if (!v) return fail(v.error());
      (k == "epm_listen_port" ? c.epm_listen_port : c.pinhole_listen_port) =
          static_cast<std::uint16_t>(*v);
    } else if (k == "lookup_pinholes" || k == "dcom") {
      auto v = r.boolean(node, k);
      if (!v) return fail(v.error());
      (k == "dcom" ? c.dcom : c.lookup_pinholes) = *v;
    } else if (k == "max_towers" || k == "max_pinholes_per_client" || k == "max_pinholes" ||
               k == "max_connections" || k == "max_connections_per_client") {
      auto v = r.integer(node, k, 1, kMaxCount);
      if (!v) return fail(v.error());
      std::size_t& field = k == "max_towers"                ? c.max_towers
                           : k == "max_pinholes_per_client" ? c.max_pinholes_per_client
                           : k == "max_pinholes"            ? c.max_pinholes
                           : k == "max_connections"         ? c.max_connections
                                                            : c.max_connections_per_client;
      field = static_cast<std::size_t>(*v);
    } else if (k == "rule") {
      const auto* rules = node.as_array();
      if (rules == nullptr || !rules->is_array_of_tables()) {
        return fail(Fail{line_of(node),
                         "firewall.rule must be an array of tables "
                         "([[firewall.rule]]), not " +
                             std::string(type_name(node))});
      }
      if (rules->size() > kMaxRules) {
        return fail(Fail{line_of(node),
                         "more than " + std::to_string(kMaxRules) + " [[firewall.rule]] tables"});
      }
      for (std::size_t i = 0; i < rules->size(); ++i) {
        const auto& t = *rules->get(i)->as_table();
        auto rule = parse_rule(t, i);
        if (!rule) return fail(rule.error());
        if (!names.insert(rule->name).second) {
          const auto* n = t.get("name");
          return fail(
              Fail{n ? line_of(*n, line_of(t)) : line_of(t),
                   "rule name \"" + rule->name + "\" is used twice (names must be unique)"});
        }
        c.rules.push_back(std::move(*rule));
      }
    } else if (k == "nat") {
      const auto* entries = node.as_array();
      if (entries == nullptr || !entries->is_array_of_tables()) {
        return fail(
            Fail{line_of(node), "firewall.nat must be an array of tables ([[firewall.nat]]), not " +
                                    std::string(type_name(node))});
      }
      if (entries->size() > kMaxRules) {
        return fail(Fail{line_of(node),
                         "more than " + std::to_string(kMaxRules) + " [[firewall.nat]] tables"});
      }
      for (std::size_t i = 0; i < entries->size(); ++i) {
        auto entry = parse_nat(*entries->get(i)->as_table(), i);
        if (!entry) return fail(entry.error());
        c.nat.push_back(*entry);
      }
      if (auto why = validate_nat_entries(c.nat); why) return fail(*why);
    } else {
      return fail(r.unknown(key, node, kKeys));
    }
  }
  if (c.epm_listen_port == c.pinhole_listen_port) {
    return fail(
        Fail{line_of(fw), "firewall.epm_listen_port and firewall.pinhole_listen_port must differ"});
  }
  return c;
}

}  // namespace

std::expected<FirewallConfig, std::string> parse_firewall_toml(std::string_view document,
                                                               std::string_view source) {
  const auto error = [&](std::size_t line, const std::string& what) {
    return std::unexpected(std::string(source) + ":" + std::to_string(line) + ": " + what);
  };
  if (document.size() > kMaxDocumentBytes) {
    return error(0, "file larger than " + std::to_string(kMaxDocumentBytes) + " bytes");
  }
  toml::table root;
  // toml++ reports syntax errors by exception; none leaves this function.
  try {
    root = toml::parse(document, source);
  } catch (const toml::parse_error& e) {
    return error(e.source().begin.line, "TOML: " + std::string(e.description()));
  } catch (const std::exception& e) {
    return error(0, std::string("TOML: ") + e.what());
  }
  const toml::node* node = root.get("firewall");
  if (node == nullptr) return FirewallConfig{};
  const toml::table* fw = node->as_table();
  if (fw == nullptr) return error(line_of(*node), "\"firewall\" must be a table ([firewall])");
  auto c = parse_firewall(*fw);
  if (!c) return error(c.error().line, c.error().what);
  return std::move(*c);
}

std::expected<FirewallConfig, std::string> load_firewall_toml(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(path + ":0: cannot open");
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxDocumentBytes) break;  // parse_firewall_toml reports it
  }
  if (in.bad()) return std::unexpected(path + ":0: read error");
  return parse_firewall_toml(text, path);
}

std::string validate_nat(const std::vector<NatEntry>& nat) {
  auto fail = validate_nat_entries(nat);
  if (!fail) return {};
  if (fail->line == 0) return fail->what;
  return "line " + std::to_string(fail->line) + ": " + fail->what;
}

// ---- RuleSet -------------------------------------------------------------------------------

RuleSet::RuleSet(FirewallConfig config) : config_(std::move(config)) {}

std::optional<Address> RuleSet::nat_private(const Address& public_address) const {
  for (const auto& e : config_.nat)
    if (e.public_address == public_address) return e.private_address;
  return std::nullopt;
}

Address RuleSet::real_server(const Address& server) const {
  return nat_private(server).value_or(server);
}

bool RuleSet::in_configured_servers(const Address& host) const {
  return !config_.servers.empty() && any_contains(config_.servers, host);
}

bool RuleSet::governs(const Address& client, const Address& server) const {
  return any_contains(config_.clients, client) &&
         any_contains(config_.servers, real_server(server));
}

const Rule* RuleSet::find(const Address& client, const Address& server,
                          const rpc::SyntaxId& interface) const {
  const Address real = real_server(server);
  for (const auto& rule : config_.rules) {
    if (!rule.applies(client, real)) continue;
    if (std::ranges::any_of(rule.interfaces,
                            [&](const InterfaceSpec& s) { return s.matches(interface); }))
      return &rule;
  }
  return nullptr;
}

std::chrono::seconds RuleSet::timeout(const Rule& rule) const {
  return rule.pinhole_timeout.value_or(config_.pinhole_timeout);
}

std::chrono::seconds RuleSet::lookup_timeout(const Rule& rule) const {
  return config_.lookup_pinhole_timeout.value_or(timeout(rule));
}

}  // namespace rpcgate::firewall
