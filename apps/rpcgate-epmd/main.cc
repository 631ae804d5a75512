// rpcgate-epmd: endpoint mapper and port broker. This file only turns the command line and the
// configuration file into a Config and a Policy; daemon.cc runs them.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/command_line.h"
#include "config.h"
#include "daemon.h"

namespace {
using rpcgate::common::kExitUsage;
}

int main(int argc, char** argv) {
  using rpcgate::epmd::Config;
  CLI::App app{
      "rpcgate-epmd: DCE/RPC endpoint mapper (TCP 135) and port broker.\n"
      "Servers take dynamic ports from the port policy over the control socket and register\n"
      "their interfaces; clients (Windows, Samba, Impacket) look them up with ept_map/ept_lookup."};
  std::string config_file;
  std::string policy_file;
  std::vector<std::string> listen;
  std::string control;
  std::string advertise;
  std::string user;
  std::string log_level;
  bool no_tcp_registration = false;
  std::optional<std::uint64_t> seed;
  std::optional<std::size_t> max_connections;
  std::optional<std::size_t> max_connections_per_peer;
  std::optional<std::size_t> max_entries_per_uid, max_handles_per_peer, max_handles_total;
  std::optional<std::size_t> max_reassembly_bytes_per_connection;
  std::optional<std::size_t> max_reassembly_bytes_per_peer;
  std::optional<std::size_t> max_reassembly_bytes;
  std::optional<std::uint64_t> call_timeout_ms;
  std::optional<std::uint64_t> sweep_interval_ms;
  std::optional<std::uint32_t> sweep_failures;
  std::vector<std::string> registrants;
  std::optional<std::size_t> max_local_connections_per_uid;
  std::optional<std::size_t> max_ports_per_uid;
  std::string metrics;
  app.add_option("--config,-c", config_file, "rpcgate.toml ([epmd] and [policy] tables)");
  app.add_option("--policy,-p", policy_file,
                 "Port policy: regedit export (.reg) or rpcgate.toml (default: the [policy] of "
                 "--config, else the embedded default)");
  app.add_option("--listen,-l", listen,
                 "Endpoint mapper listener ADDR:PORT, repeatable (default 0.0.0.0:135 and "
                 "[::]:135; port 0 = any)");
  app.add_option("--control", control,
                 "Local endpoint for registration and the port broker (default "
                 "/run/rpcgate/epmd.sock)");
  app.add_option("--advertise", advertise,
                 "IPv4 address put in returned towers (NAT); default: the address the client "
                 "connected to");
  app.add_option("--user,-u", user,
                 "Drop root to this user after opening the listeners. Use a dedicated system "
                 "user (useradd --system rpcgate): epmd's own user may register, so every "
                 "process running as that user could register (with \"nobody\", every process "
                 "that runs as nobody)");
  app.add_option("--registrant", registrants,
                 "User or @group that may register and take ports besides root and epmd's own "
                 "user, repeatable (adds to [epmd] registrants)");
  app.add_option("--max-local-connections-per-uid", max_local_connections_per_uid,
                 "Control-socket connections one uid may hold (root exempt; default 32)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kLocalConnections));
  app.add_option("--max-ports-per-uid", max_ports_per_uid,
                 "Broker ports one uid may hold at once (root exempt; default 256)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{65535}));
  app.add_flag("--no-tcp-registration", no_tcp_registration,
               "Refuse ept_insert/ept_delete over TCP, even from loopback");
  app.add_option("--max-connections", max_connections,
                 "Connections held at once; more are accepted and closed (default 16384)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kMaxConnectionsLimit));
  app.add_option("--max-connections-per-peer", max_connections_per_peer,
                 "Connections held at once per client IP address (default 1024)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kMaxConnectionsLimit));
  app.add_option("--max-entries-per-uid", max_entries_per_uid,
                 "Endpoint-map entries one non-root uid may hold (default 1024 of 4096; 512 "
                 "are kept for root)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kMaxConnectionsLimit));
  app.add_option("--max-handles-per-peer", max_handles_per_peer,
                 "Lookup context handles per client IP (IPv6 /64) or local uid; more free the "
                 "peer's least recently used (default 4096)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kMaxConnectionsLimit));
  app.add_option("--max-handles-total", max_handles_total,
                 "Lookup context handles in all; more free the biggest holder's least recently "
                 "used (default 65536)")
      ->check(CLI::Range(std::size_t{1}, rpcgate::epmd::kMaxConnectionsLimit));
  const auto budget_range =
      CLI::Range(rpcgate::epmd::kMinReassemblyBytes, rpcgate::epmd::kMaxReassemblyBytesLimit);
  app.add_option("--max-reassembly-bytes-per-connection", max_reassembly_bytes_per_connection,
                 "Bytes held for one connection's unfinished fragmented requests; over it the "
                 "connection is closed (default 1048576)")
      ->check(budget_range);
  app.add_option("--max-reassembly-bytes-per-peer", max_reassembly_bytes_per_peer,
                 "The same per client IP address (IPv6: per /64); over it the peer's biggest "
                 "holder is closed (default 4194304)")
      ->check(budget_range);
  app.add_option("--max-reassembly-bytes", max_reassembly_bytes,
                 "The same in all; over it the biggest holder is closed (default 33554432)")
      ->check(budget_range);
  app.add_option("--call-timeout-ms", call_timeout_ms,
                 "All fragments of one call within this many ms of the first (default 5000)")
      ->check(CLI::Range(rpcgate::epmd::kMinCallTimeoutMs, rpcgate::epmd::kMaxCallTimeoutMs));
  app.add_option("--sweep-interval-ms", sweep_interval_ms,
                 "Probe persistent registrations' endpoints this often; 0 = never (default 60000)")
      ->check(CLI::Range(std::uint64_t{0}, rpcgate::epmd::kMaxSweepIntervalMs));
  app.add_option("--sweep-failures", sweep_failures,
                 "Remove a persistent registration after this many failed probes in a row "
                 "(default 3)")
      ->check(CLI::Range(1u, rpcgate::epmd::kMaxSweepFailures));
  app.add_option("--metrics", metrics,
                 "Serve Prometheus metrics (GET /metrics) on this numeric ADDR:PORT, e.g. "
                 "127.0.0.1:9135 (default: off)");
  app.add_option("--seed", seed, "Deterministic port choice (tests)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version", std::string("rpcgate-epmd ") + RPCGATE_VERSION);
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;

  Config config;
  if (!config_file.empty()) {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "rpcgate-epmd: cannot read %s\n", config_file.c_str());
      return kExitUsage;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = rpcgate::epmd::parse_config_toml(text.str(), config_file, config);
    if (!parsed) {
      std::fprintf(stderr, "rpcgate-epmd: %s\n", parsed.error().c_str());
      return kExitUsage;
    }
    config = *parsed;
    config.policy_file = config_file;  // its [policy] table, unless --policy overrides
    config.config_file = config_file;  // its [[epmd.entry]] list, re-read on SIGHUP
  }
  if (!policy_file.empty()) config.policy_file = policy_file;
  if (!listen.empty()) {
    config.listen.clear();
    for (const auto& l : listen) {
      auto a = rpcgate::epmd::parse_listen_address(l);
      if (!a) {
        std::fprintf(stderr, "rpcgate-epmd: %s\n", a.error().c_str());
        return kExitUsage;
      }
      config.listen.push_back(*a);
    }
  }
  if (!control.empty()) config.control = control;
  if (!advertise.empty()) {
    config.advertise = rpcgate::epmd::parse_ipv4(advertise);
    if (!config.advertise) {
      std::fprintf(stderr, "rpcgate-epmd: --advertise %s: not an IPv4 address\n",
                   advertise.c_str());
      return kExitUsage;
    }
  }
  if (!user.empty()) config.user = user;
  if (no_tcp_registration) config.tcp_registration = false;
  if (seed) config.seed = seed;
  if (max_connections) config.max_connections = *max_connections;
  if (max_connections_per_peer) config.max_connections_per_peer = *max_connections_per_peer;
  if (max_entries_per_uid) config.max_entries_per_uid = *max_entries_per_uid;
  if (max_handles_per_peer) config.max_handles_per_peer = *max_handles_per_peer;
  if (max_handles_total) config.max_handles_total = *max_handles_total;
  if (max_reassembly_bytes_per_connection)
    config.max_reassembly_bytes_per_connection = *max_reassembly_bytes_per_connection;
  if (max_reassembly_bytes_per_peer)
    config.max_reassembly_bytes_per_peer = *max_reassembly_bytes_per_peer;
  if (max_reassembly_bytes) config.max_reassembly_bytes = *max_reassembly_bytes;
  if (call_timeout_ms) config.call_timeout_ms = *call_timeout_ms;
  if (sweep_interval_ms) {
    if (*sweep_interval_ms != 0 && *sweep_interval_ms < rpcgate::epmd::kMinSweepIntervalMs) {
      std::fprintf(stderr, "rpcgate-epmd: --sweep-interval-ms: 0 or at least %llu\n",
                   static_cast<unsigned long long>(rpcgate::epmd::kMinSweepIntervalMs));
      return kExitUsage;
    }
    config.sweep_interval_ms = *sweep_interval_ms;
  }
  if (sweep_failures) config.sweep_failures = *sweep_failures;
  if (!metrics.empty()) {
    auto at = rpcgate::metrics::parse_endpoint(metrics);
    if (!at) {
      std::fprintf(stderr, "rpcgate-epmd: --metrics: %s\n", at.error().c_str());
      return kExitUsage;
    }
    config.metrics = *at;
  }
  if (auto ok = rpcgate::epmd::check_budgets(config); !ok) {
    std::fprintf(stderr, "rpcgate-epmd: %s\n", ok.error().c_str());
    return kExitUsage;
  }
  if (!log_level.empty()) config.log_level = log_level;
  config.registrants.insert(config.registrants.end(), registrants.begin(), registrants.end());
  if (max_local_connections_per_uid)
    config.max_local_connections_per_uid = *max_local_connections_per_uid;
  if (max_ports_per_uid) config.max_ports_per_uid = *max_ports_per_uid;
  if (auto r = rpcgate::epmd::resolve_registrants(config.registrants); !r) {
    std::fprintf(stderr, "rpcgate-epmd: %s\n", r.error().c_str());
    return kExitUsage;
  }

  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto policy = rpcgate::epmd::load_policy(config.policy_file);
  if (!policy) {
    std::fprintf(stderr, "rpcgate-epmd: %s\n", policy.error().c_str());
    return kExitUsage;
  }
  return rpcgate::epmd::run(config, std::move(*policy));
}
