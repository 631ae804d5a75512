#include "config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <toml++/toml.h>

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
    } else {
      return std::unexpected(src + ": [epmd] unknown key \"" + std::string(k) +
                             "\" (known: listen, control, advertise, tcp_registration, "
                             "broker_addresses, user, log_level, seed, max_connections, "
                             "max_connections_per_peer, registrants, "
                             "max_local_connections_per_uid, max_ports_per_uid, "
                             "max_entries_per_uid, max_handles_per_peer, max_handles_total, "
                             "max_reassembly_bytes_per_connection, "
                             "max_reassembly_bytes_per_peer, max_reassembly_bytes, "
                             "call_timeout_ms)");
    }
  }
  if (base.listen.empty()) return std::unexpected(src + ": [epmd] listen must not be empty");
  if (auto ok = check_budgets(base); !ok) return std::unexpected(src + ": [epmd] " + ok.error());
  return base;
}

}  // namespace rpcgate::epmd
