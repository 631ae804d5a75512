#include "config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <toml++/toml.h>

#include "epm/endpoint_db.h"
#include "ndr/binding.h"
#include "ndr/tower.h"

namespace rpcgate::epmd {
namespace {

bool is_ipv6_literal(const std::string& host) {
  in6_addr a{};
  return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}
bool is_ipv4_literal(const std::string& host) {
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1;
}

// One [[epmd.entry]] (index from 1). Error: "[[epmd.entry]] #N: why".
std::expected<StaticEntry, std::string> parse_static_entry(const toml::table& t,
                                                           std::size_t index) {
  const std::string where = "[[epmd.entry]] #" + std::to_string(index);
  auto fail = [&](const std::string& why) { return std::unexpected(where + ": " + why); };
  std::optional<common::Uuid> interface;
  std::optional<common::Uuid> object;
  std::uint16_t major = 0, minor = 0;
  std::string version_text = "0.0";
  std::optional<std::string> binding_text;
  std::string annotation;
  for (const auto& [key, node] : t) {
    const std::string_view k = key.str();
    const auto* str = node.as_string();
    if (k != "interface" && k != "version" && k != "object" && k != "binding" && k != "annotation")
      return fail("unknown key \"" + std::string(k) +
                  "\" (known: interface, version, object, binding, annotation)");
    if (str == nullptr) return fail(std::string(k) + " must be a string");
    const std::string& v = str->get();
    if (k == "interface" || k == "object") {
      auto u = common::Uuid::parse(v);
      if (!u) return fail(std::string(k) + " \"" + v + "\" is not a UUID");
      (k == "interface" ? interface : object) = *u;
    } else if (k == "version") {
      const auto dot = v.find('.');
      auto number = [](std::string_view n, std::uint16_t& out) {
        if (n.empty() || n.size() > 5) return false;
        unsigned x = 0;
        for (char c : n) {
          if (c < '0' || c > '9') return false;
          x = x * 10 + static_cast<unsigned>(c - '0');
        }
        if (x > 65535) return false;
        out = static_cast<std::uint16_t>(x);
        return true;
      };
      if (dot == std::string::npos || !number(std::string_view(v).substr(0, dot), major) ||
          !number(std::string_view(v).substr(dot + 1), minor))
        return fail("version \"" + v + "\" is not \"major.minor\" (0-65535 each)");
      version_text = v;
    } else if (k == "binding") {
      binding_text = v;
    } else {
      annotation = v;
    }
  }
  if (!interface) return fail("interface is required");
  if (interface->is_nil()) return fail("interface must not be the nil UUID");
  if (!binding_text) return fail("binding is required (e.g. \"ncacn_ip_tcp:0.0.0.0[5000]\")");
  auto b = ndr::parse_binding(*binding_text);
  if (!b) return fail("binding \"" + *binding_text + "\": " + b.error().message());
  if (b->object) return fail("binding \"" + *binding_text + "\": give the object as object = ...");
  if (annotation.size() >= ndr::epm::kMaxAnnotationSize ||
      annotation.find('\0') != std::string::npos)
    return fail("annotation longer than 63 characters");
  const ndr::SyntaxId syntax{*interface, major, minor};
  auto tower = ndr::binding_to_tower(*b, syntax);
  if (!tower)
    return fail("binding \"" + *binding_text + "\" cannot be a tower: " + tower.error().message());
  StaticEntry out;
  out.entry = {object.value_or(common::Uuid{}), ndr::encode_tower(*tower), annotation};
  if (auto e = epm::make_entry(out.entry); !e) return fail("not a valid endpoint map entry");
  out.text = interface->to_string() + ":" + version_text + " at " + *binding_text;
  return out;
}

}  // namespace

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::expected<ListenAddress, std::string> parse_listen_address(std::string_view text) {
  const std::string t(text);
  auto fail = [&](std::string_view why) {
    return std::unexpected("listen address \"" + t + "\": " + std::string(why) +
                           " (expected ADDR:PORT, e.g. 0.0.0.0:135 or [::]:135)");
  };
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail("bad bracketed IPv6 address");
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    if (!is_ipv6_literal(host)) return fail("not a numeric IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing port");
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (!is_ipv4_literal(host)) return fail("not a numeric IPv4 address");
  }
  if (port_text.empty() || port_text.size() > 5) return fail("bad port");
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return fail("bad port");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return fail("port outside 0-65535");
  return ListenAddress{host, static_cast<std::uint16_t>(port)};
}

std::expected<void, std::string> check_budgets(const Config& config) {
  if (config.max_reassembly_bytes_per_connection > config.max_reassembly_bytes_per_peer) {
    return std::unexpected("max_reassembly_bytes_per_connection (" +
                           std::to_string(config.max_reassembly_bytes_per_connection) +
                           ") must not exceed max_reassembly_bytes_per_peer (" +
                           std::to_string(config.max_reassembly_bytes_per_peer) + ")");
  }
  if (config.max_reassembly_bytes_per_peer > config.max_reassembly_bytes) {
    return std::unexpected("max_reassembly_bytes_per_peer (" +
                           std::to_string(config.max_reassembly_bytes_per_peer) +
                           ") must not exceed max_reassembly_bytes (" +
                           std::to_string(config.max_reassembly_bytes) + ")");
  }
  return {};
}

std::expected<Registrants, std::string> resolve_registrants(const std::vector<std::string>& names) {
  Registrants out;
  for (const auto& name : names) {
    if (!name.empty() && name.front() == '@') {
      const group* gr = ::getgrnam(name.c_str() + 1);
      if (gr == nullptr)
        return std::unexpected("registrants: no such group \"" + name.substr(1) + "\"");
      out.gids.push_back(gr->gr_gid);
    } else {
      const passwd* pw = name.empty() ? nullptr : ::getpwnam(name.c_str());
      if (pw == nullptr) return std::unexpected("registrants: no such user \"" + name + "\"");
      out.uids.push_back(pw->pw_uid);
    }
  }
  return out;
}

std::optional<std::array<std::uint8_t, 4>> parse_ipv4(std::string_view text) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) return std::nullopt;
  std::array<std::uint8_t, 4> out{};
  const auto* b = reinterpret_cast<const std::uint8_t*>(&a.s_addr);
  for (std::size_t i = 0; i < 4; ++i)
    out[i] = b[i];
  return out;
}

std::expected<Config, std::string> parse_config_toml(std::string_view text, std::string_view source,
                                                     Config base) {
  const std::string src(source);
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source));
  } catch (const toml::parse_error& e) {
    return std::unexpected(src + ":" + std::to_string(e.source().begin.line) +
                           ": TOML: " + std::string(e.description()));
  }
  const toml::table* epmd = root["epmd"].as_table();
  if (epmd == nullptr) {
    if (root.contains("epmd")) return std::unexpected(src + ": [epmd] must be a table");
    return base;
  }
  auto type_error = [&](std::string_view key, std::string_view want) {
    return std::unexpected(src + ": [epmd] " + std::string(key) + " must be " + std::string(want));
  };
  auto string_list = [&](std::string_view key,
                         std::vector<std::string>& out) -> std::optional<std::string> {
    const toml::array* arr = (*epmd)[key].as_array();
    if (arr == nullptr)
      return src + ": [epmd] " + std::string(key) + " must be an array of strings";
    out.clear();
    for (const auto& n : *arr) {
      const auto* s = n.as_string();
      if (s == nullptr)
        return src + ": [epmd] " + std::string(key) + " must be an array of strings";
      out.push_back(s->get());
    }
    return std::nullopt;
  };

  for (const auto& [key, node] : *epmd) {
    const std::string_view k = key.str();
    if (k == "listen") {
      std::vector<std::string> items;
      if (auto e = string_list(k, items)) return std::unexpected(*e);
      base.listen.clear();
      for (const auto& item : items) {
        auto a = parse_listen_address(item);
        if (!a) return std::unexpected(src + ": " + a.error());
        base.listen.push_back(*a);
      }
    } else if (k == "broker_addresses") {
      if (auto e = string_list(k, base.broker_addresses)) return std::unexpected(*e);
      for (const auto& a : base.broker_addresses) {
        if (!is_ipv4_literal(a) && !is_ipv6_literal(a)) {
          return std::unexpected(src + ": [epmd] broker_addresses: \"" + a +
                                 "\" is not a numeric IPv4 or IPv6 address");
        }
      }
    } else if (k == "control") {
      const auto* s = node.as_string();
      if (s == nullptr || s->get().empty()) return type_error(k, "a non-empty path string");
      base.control = s->get();
    } else if (k == "advertise") {
      const auto* s = node.as_string();
      if (s == nullptr) return type_error(k, "an IPv4 address string");
      auto a = parse_ipv4(s->get());
      if (!a) {
        return std::unexpected(src + ": [epmd] advertise \"" + s->get() +
                               "\" is not an IPv4 address (towers carry IPv4 only)");
      }
      base.advertise = *a;
    } else if (k == "tcp_registration") {
      const auto* b = node.as_boolean();
      if (b == nullptr) return type_error(k, "true or false");
      base.tcp_registration = b->get();
    } else if (k == "user") {
      const auto* s = node.as_string();
      if (s == nullptr || s->get().empty()) return type_error(k, "a user name");
      base.user = s->get();
    } else if (k == "log_level") {
      const auto* s = node.as_string();
      static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
      bool ok = false;
      if (s != nullptr) {
        for (auto l : kLevels)
          ok = ok || s->get() == l;
      }
      if (!ok) return type_error(k, "one of trace, debug, info, warn, error");
      base.log_level = s->get();
    } else if (k == "seed") {
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < 0) return type_error(k, "a non-negative integer");
      base.seed = static_cast<std::uint64_t>(i->get());
    } else if (k == "max_connections" || k == "max_connections_per_peer") {
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < 1 ||
          static_cast<std::uint64_t>(i->get()) > kMaxConnectionsLimit) {
        return type_error(k, "an integer from 1 to " + std::to_string(kMaxConnectionsLimit));
      }
      (k == "max_connections" ? base.max_connections : base.max_connections_per_peer) =
          static_cast<std::size_t>(i->get());
    } else if (k == "max_entries_per_uid" || k == "max_handles_per_peer" ||
               k == "max_handles_total") {
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < 1 ||
          static_cast<std::uint64_t>(i->get()) > kMaxConnectionsLimit) {
        return type_error(k, "an integer from 1 to " + std::to_string(kMaxConnectionsLimit));
      }
      (k == "max_entries_per_uid"    ? base.max_entries_per_uid
       : k == "max_handles_per_peer" ? base.max_handles_per_peer
                                     : base.max_handles_total) = static_cast<std::size_t>(i->get());
    } else if (k == "max_reassembly_bytes_per_connection" || k == "max_reassembly_bytes_per_peer" ||
               k == "max_reassembly_bytes") {
      const auto* i = node.as_integer();
      if (i == nullptr || static_cast<std::uint64_t>(i->get()) < kMinReassemblyBytes ||
          i->get() < 0 || static_cast<std::uint64_t>(i->get()) > kMaxReassemblyBytesLimit) {
        return type_error(k, "an integer from " + std::to_string(kMinReassemblyBytes) +
                                 " (the largest endpoint mapper request) to " +
                                 std::to_string(kMaxReassemblyBytesLimit));
      }
      (k == "max_reassembly_bytes_per_connection" ? base.max_reassembly_bytes_per_connection
       : k == "max_reassembly_bytes_per_peer"     ? base.max_reassembly_bytes_per_peer
                                                  : base.max_reassembly_bytes) =
          static_cast<std::size_t>(i->get());
    } else if (k == "call_timeout_ms") {
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < static_cast<std::int64_t>(kMinCallTimeoutMs) ||
          i->get() > static_cast<std::int64_t>(kMaxCallTimeoutMs)) {
        return type_error(k, "an integer from " + std::to_string(kMinCallTimeoutMs) + " to " +
                                 std::to_string(kMaxCallTimeoutMs));
      }
      base.call_timeout_ms = static_cast<std::uint64_t>(i->get());
    } else if (k == "registrants") {
      if (auto e = string_list(k, base.registrants)) return std::unexpected(*e);
      for (const auto& name : base.registrants) {
        if (name.empty() || name == "@") {
          return std::unexpected(src + ": [epmd] registrants: \"" + name +
                                 "\" is not a user name or @group");
        }
      }
    } else if (k == "max_local_connections_per_uid" || k == "max_ports_per_uid") {
      const std::uint64_t limit = k == "max_ports_per_uid" ? 65535 : kLocalConnections;
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < 1 || static_cast<std::uint64_t>(i->get()) > limit)
        return type_error(k, "an integer from 1 to " + std::to_string(limit));
      (k == "max_ports_per_uid" ? base.max_ports_per_uid : base.max_local_connections_per_uid) =
          static_cast<std::size_t>(i->get());
    } else if (k == "sweep_interval_ms") {
      const auto* i = node.as_integer();
      if (i == nullptr ||
          (i->get() != 0 && (i->get() < static_cast<std::int64_t>(kMinSweepIntervalMs) ||
                             i->get() > static_cast<std::int64_t>(kMaxSweepIntervalMs)))) {
        return type_error(k, "0 (no sweep) or an integer from " +
                                 std::to_string(kMinSweepIntervalMs) + " to " +
                                 std::to_string(kMaxSweepIntervalMs));
      }
      base.sweep_interval_ms = static_cast<std::uint64_t>(i->get());
    } else if (k == "sweep_failures") {
      const auto* i = node.as_integer();
      if (i == nullptr || i->get() < 1 || i->get() > kMaxSweepFailures)
        return type_error(k, "an integer from 1 to " + std::to_string(kMaxSweepFailures));
      base.sweep_failures = static_cast<std::uint32_t>(i->get());
    } else if (k == "metrics") {
      const auto* str = node.as_string();
      if (str == nullptr) return type_error(k, "an \"ADDR:PORT\" string");
      auto at = metrics::parse_endpoint(str->get());
      if (!at) return std::unexpected(src + ": [epmd] " + at.error());
      base.metrics = *at;
    } else if (k == "entry") {
      const auto* arr = node.as_array();
      if (arr == nullptr) return type_error(k, "an array of tables ([[epmd.entry]])");
      if (arr->size() > kMaxStaticEntries) {
        return std::unexpected(src + ": [[epmd.entry]]: " + std::to_string(arr->size()) +
                               " entries, at most " + std::to_string(kMaxStaticEntries));
      }
      base.static_entries.clear();
      std::size_t index = 0;
      for (const auto& n : *arr) {
        ++index;
        const auto* t = n.as_table();
        if (t == nullptr)
          return std::unexpected(src + ": [[epmd.entry]] #" + std::to_string(index) +
                                 ": must be a table");
        auto e = parse_static_entry(*t, index);
        if (!e) return std::unexpected(src + ": " + e.error());
        base.static_entries.push_back(std::move(*e));
      }
    } else {
      return std::unexpected(src + ": [epmd] unknown key \"" + std::string(k) +
                             "\" (known: listen, control, advertise, tcp_registration, "
                             "broker_addresses, user, log_level, seed, max_connections, "
                             "max_connections_per_peer, registrants, "
                             "max_local_connections_per_uid, max_ports_per_uid, "
                             "max_entries_per_uid, max_handles_per_peer, max_handles_total, "
                             "max_reassembly_bytes_per_connection, "
                             "max_reassembly_bytes_per_peer, max_reassembly_bytes, "
                             "call_timeout_ms, sweep_interval_ms, sweep_failures, metrics, entry)");
    }
  }
  if (base.listen.empty()) return std::unexpected(src + ": [epmd] listen must not be empty");
  if (auto ok = check_budgets(base); !ok) return std::unexpected(src + ": [epmd] " + ok.error());
  return base;
}

}  // namespace rpcgate::epmd
