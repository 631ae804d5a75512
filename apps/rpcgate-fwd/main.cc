// rpcgate-fwd: the firewall that lets DCE/RPC through by interface. This file turns the command
// line and the [firewall] table of rpcgate.toml into Options; relay.cc runs them.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/command_line.h"
#include "decision_log.h"
#include "firewall/rules.h"
#include "fwd_metrics.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "relay.h"

namespace {

using rpcgate::common::kExitUsage;
namespace fw = rpcgate::firewall;

// What the command line may override; nullopt / empty: the file's (or the default's) value.
struct Overrides {
  std::string config_file;
  std::vector<std::string> allow;
  std::vector<std::string> clients;
  std::vector<std::string> servers;
  std::string pinhole_timeout;
  std::string policy_file;
  std::string mode;
  std::optional<std::uint16_t> epm_listen_port, pinhole_listen_port;
  std::string control;
  bool lookup_pinholes = false;
  std::string lookup_pinhole_timeout;
  bool allow_referrals = false;
  std::vector<std::string> nat;
  bool dcom = false;
  std::optional<std::size_t> max_pinholes, max_pinholes_per_client, max_connections,
      max_connections_per_client, max_towers;
  std::optional<std::uint32_t> mark, route_table;
  std::string idle_timeout;
  bool splice = false;
  std::optional<std::size_t> splice_min;
  std::optional<std::size_t> max_queued_bytes;
  std::string metrics;
};

// The governed dynamic ports: every port either class of the policy may hand out.
std::expected<std::vector<std::pair<std::uint16_t, std::uint16_t>>, std::string> dynamic_ports(
    const std::string& file) {
  namespace policy = rpcgate::policy;
  policy::PolicyInput input = policy::embedded_default();
  if (!file.empty()) {
    auto parsed = policy::load_file(file);
    if (!parsed) return std::unexpected(parsed.error().to_string());
    input = std::move(*parsed);
  }
  const auto p = policy::resolve(input);
  if (!p.valid)
    return std::unexpected(file + ": the port policy is invalid (error 87): " +
                           (p.error ? p.error->message : std::string("?")));
  auto all = p.internet;
  for (const auto& r : p.intranet.ranges())
    all.add(r);
  std::vector<std::pair<std::uint16_t, std::uint16_t>> out;
  for (const auto& r : all.ranges())
    out.emplace_back(r.lo, r.hi);
  if (out.empty()) return std::unexpected(file + ": the port policy allows no port");
  return out;
}

std::expected<rpcgate::fwd::Options, std::string> build_options(const Overrides& o) {
  rpcgate::fwd::Options out;
  fw::FirewallConfig& c = out.config;
  if (!o.config_file.empty()) {
    auto loaded = fw::load_firewall_toml(o.config_file);
    if (!loaded) return std::unexpected(loaded.error());
    c = std::move(*loaded);
  }
  auto cidrs = [](const std::vector<std::string>& texts,
                  const char* option) -> std::expected<std::vector<fw::Cidr>, std::string> {
    std::vector<fw::Cidr> v;
    for (const auto& t : texts) {
      auto cidr = fw::parse_cidr(t);
      if (!cidr) return std::unexpected(std::string(option) + " " + t + ": " + cidr.error());
      v.push_back(*cidr);
    }
    return v;
  };
  if (!o.clients.empty()) {
    auto v = cidrs(o.clients, "--clients");
    if (!v) return std::unexpected(v.error());
    c.clients = std::move(*v);
  }
  if (!o.servers.empty()) {
    auto v = cidrs(o.servers, "--servers");
    if (!v) return std::unexpected(v.error());
    c.servers = std::move(*v);
  }
  if (!o.pinhole_timeout.empty()) {
    auto d = fw::parse_duration(o.pinhole_timeout);
    if (!d) return std::unexpected("--pinhole-timeout " + o.pinhole_timeout + ": " + d.error());
    c.pinhole_timeout = *d;
  }
  if (!o.idle_timeout.empty()) {
    auto d = fw::parse_duration(o.idle_timeout);
    if (!d) return std::unexpected("--idle-timeout " + o.idle_timeout + ": " + d.error());
    out.idle_timeout = *d;
  }
  if (!o.mode.empty()) {
    if (o.mode == "router") {
      c.mode = fw::Mode::kRouter;
    } else if (o.mode == "host") {
      c.mode = fw::Mode::kHost;
    } else {
      return std::unexpected("--mode " + o.mode + ": must be router or host");
    }
  }
  if (!o.policy_file.empty()) c.policy_file = o.policy_file;
  if (o.epm_listen_port) c.epm_listen_port = *o.epm_listen_port;
  if (o.pinhole_listen_port) c.pinhole_listen_port = *o.pinhole_listen_port;
  if (c.epm_listen_port == c.pinhole_listen_port)
    return std::unexpected("the endpoint-mapper and pinhole listen ports must differ");
  if (!o.control.empty()) c.control = o.control == "none" ? "" : o.control;
  if (o.lookup_pinholes) c.lookup_pinholes = true;
  if (!o.lookup_pinhole_timeout.empty()) {
    auto d = fw::parse_duration(o.lookup_pinhole_timeout);
    if (!d)
      return std::unexpected("--lookup-pinhole-timeout " + o.lookup_pinhole_timeout + ": " +
                             d.error());
    c.lookup_pinhole_timeout = *d;
  }
  if (!o.nat.empty()) {
    // The command line's entries replace the file's, as every list option does.
    c.nat.clear();
    for (const auto& n : o.nat) {
      const auto eq = n.find('=');
      const auto pub = fw::parse_address(n.substr(0, eq));
      const auto priv =
          eq == std::string::npos ? std::nullopt : fw::parse_address(n.substr(eq + 1));
      if (!pub || !priv || n.find(':') != std::string::npos)
        return std::unexpected("--nat " + n + ": must be PUBLIC=PRIVATE, two IPv4 addresses");
      c.nat.push_back(fw::NatEntry{*pub, *priv, 0});
    }
    if (auto why = fw::validate_nat(c.nat); !why.empty()) return std::unexpected("--nat: " + why);
  }
  if (o.dcom) c.dcom = true;
  if (o.max_pinholes) c.max_pinholes = *o.max_pinholes;
  if (o.max_pinholes_per_client) c.max_pinholes_per_client = *o.max_pinholes_per_client;
  if (o.max_connections) c.max_connections = *o.max_connections;
  if (o.max_connections_per_client) c.max_connections_per_client = *o.max_connections_per_client;
  if (o.max_towers) c.max_towers = *o.max_towers;
  if (o.splice) out.splice = true;
  if (o.splice_min) out.splice_min = *o.splice_min;
  if (o.max_queued_bytes) out.max_queued_bytes = *o.max_queued_bytes;
  if (!o.metrics.empty()) c.metrics = o.metrics;
  if (!c.metrics.empty()) {
    if (auto at = rpcgate::metrics::parse_endpoint(c.metrics); !at)
      return std::unexpected((o.metrics.empty() ? o.config_file + ": [firewall] " : "--metrics: ") +
                             at.error());
  }
  if (o.mark) out.mark = *o.mark;
  if (o.route_table) out.route_table = *o.route_table;
  if (!o.allow.empty()) {
    fw::Rule rule;
    rule.name = "command-line";
    rule.referrals = o.allow_referrals;
    for (const auto& a : o.allow) {
      auto spec = fw::parse_interface(a);
      if (!spec) return std::unexpected("--allow " + a + ": " + spec.error());
      rule.interfaces.push_back(std::move(*spec));
    }
    c.rules.push_back(std::move(rule));
  }
  if (o.allow_referrals && o.allow.empty())
    return std::unexpected("--allow-referrals applies to --allow rules: give at least one --allow");
  auto ports = dynamic_ports(c.policy_file);
  if (!ports) return std::unexpected(ports.error());
  out.dynamic_ports = std::move(*ports);
  return out;
}

int status_command(const std::string& control, bool json) {
  auto doc = rpcgate::fwd::query_status(control);
  if (!doc) {
    std::fprintf(stderr, "rpcgate-fwd status: %s\n", doc.error().c_str());
    return 1;
  }
  if (json) {
    std::cout << *doc;
    return 0;
  }
  const auto j = nlohmann::json::parse(*doc, nullptr, false);
  if (j.is_discarded()) {
    std::fprintf(stderr, "rpcgate-fwd status: the daemon's answer is not JSON\n");
    return 1;
  }
  std::cout << "rpcgate-fwd pid " << j.value("pid", 0) << ", " << j.value("mode", "?")
            << " mode, up " << j.value("uptime_s", 0) << " s\n";
  std::cout << "pinholes: " << j["pinholes"].size() << "\n";
  for (const auto& h : j["pinholes"]) {
    std::cout << "  " << h["client"].get<std::string>() << " -> " << h["server"].get<std::string>()
              << ":" << h["port"].get<int>() << "  " << h["remaining_ms"].get<long>() / 1000
              << " s left  ";
    for (const auto& i : h["interfaces"])
      std::cout << i.get<std::string>() << " ";
    std::cout << "\n";
  }
  std::cout << "connections: " << j["connections"].size() << " (relayed since start "
            << j.value("relayed_total", 0) << ")\n";
  for (const auto& c : j["connections"])
    std::cout << "  " << c["kind"].get<std::string>() << "  " << c["client"].get<std::string>()
              << " -> " << c["server"].get<std::string>() << "  " << c["age_ms"].get<long>() / 1000
              << " s, " << c["pdus"].get<long>() << " PDUs\n";
  std::cout << "decisions:\n";
  for (const auto& [k, v] : j["counters"].items())
    std::cout << "  " << k << " " << v << "\n";
  if (j.contains("kernel_counters")) {
    std::cout << "kernel counters (packets):\n";
    for (const auto& [k, v] : j["kernel_counters"].items())
      std::cout << "  " << k << " " << v << "\n";
  }
  const auto& us = j["pinhole_install_us"];
  if (us.contains("p50"))
    std::cout << "pinhole install: p50 " << us["p50"] << " us, p99 " << us["p99"] << " us over "
              << us["count"] << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rpcgate-fwd: a firewall that lets DCE/RPC through by interface UUID.\n"
      "Connections to TCP 135 of governed servers are relayed through an endpoint-mapper\n"
      "inspector; an ept_map answer for an allowed interface opens a pinhole (client . server .\n"
      "port, for a while) in the kernel before the client sees it; a connection through a pinhole\n"
      "may bind only allowed interfaces. Everything else governed is dropped, and stays dropped\n"
      "when rpcgate-fwd is not running (remove with --uninstall)."};
  Overrides o;
  bool uninstall = false, dry_run = false, check = false, log_json = false;
  app.add_option("--config,-c", o.config_file, "rpcgate.toml with a [firewall] table");
  app.add_option("--allow,-a", o.allow,
                 "Allow an interface: UUID, UUID:MAJOR.MINOR or a well-known name (lsarpc, samr, "
                 "netlogon, drsuapi, ...); repeatable");
  app.add_option("--clients", o.clients, "Governed clients, CIDR (repeatable; default: any)");
  app.add_option("--servers", o.servers, "Governed RPC servers, CIDR (repeatable; default: any)");
  app.add_option("--pinhole-timeout", o.pinhole_timeout,
                 "How long a learned pinhole admits new connections (default 60s)");
  app.add_option("--policy,-p", o.policy_file,
                 "Port policy (.reg or rpcgate.toml): the governed dynamic ports (default "
                 "49152-65535)");
  app.add_option("--mode", o.mode, "router (forwarding, default) or host (this machine's servers)");
  app.add_option("--epm-listen-port", o.epm_listen_port,
                 "Transparent listener for diverted TCP 135 connections (default 15135)");
  app.add_option("--pinhole-listen-port", o.pinhole_listen_port,
                 "Transparent listener for pinhole connections (default 15136)");
  app.add_option("--control", o.control,
                 "Control socket for `rpcgate-fwd status` (default /run/rpcgate/fwd.sock; none: "
                 "no socket)");
  app.add_flag("--lookup-pinholes", o.lookup_pinholes,
               "ept_lookup answers open pinholes too: each entry whose tower passes an ept_map "
               "tower's checks and whose interface a rule allows (default off: ept_lookup opens "
               "nothing)");
  app.add_option("--lookup-pinhole-timeout", o.lookup_pinhole_timeout,
                 "Lifetime of pinholes opened by ept_lookup answers (default: the rule's pinhole "
                 "timeout)");
  app.add_flag("--allow-referrals", o.allow_referrals,
               "--allow rules accept referrals: a tower naming a third host opens a pinhole to "
               "it if that host is inside --servers (never with any servers)");
  app.add_option("--nat", o.nat,
                 "Static NAT PUBLIC=PRIVATE (IPv4, repeatable; replaces [[firewall.nat]]): "
                 "clients connect to PUBLIC, the relay to PRIVATE, and unsigned endpoint-mapper "
                 "answers naming PRIVATE or 0.0.0.0 are rewritten to PUBLIC");
  app.add_flag("--dcom", o.dcom, "Allow DCOM activation interfaces to be bound on 135");
  app.add_option("--max-pinholes", o.max_pinholes, "Pinholes in all (the kernel set's size)");
  app.add_option("--max-pinholes-per-client", o.max_pinholes_per_client, "Pinholes per client");
  app.add_option("--max-connections", o.max_connections, "Relayed connections at once");
  app.add_option("--max-connections-per-client", o.max_connections_per_client,
                 "Relayed connections at once per client address");
  app.add_option("--max-towers", o.max_towers, "Towers considered per ept_map answer");
  app.add_option("--max-queued-bytes", o.max_queued_bytes,
                 "Bytes queued towards peers that do not read, all connections together; over "
                 "it the biggest holder is dropped (default 268435456)")
      ->check(CLI::Range(std::size_t{65536}, std::size_t{1} << 40));
  app.add_option("--mark", o.mark, "fwmark / ct mark of diverted traffic (default 0x135)");
  app.add_option("--route-table", o.route_table, "Policy-routing table (default 135)");
  app.add_option("--idle-timeout", o.idle_timeout,
                 "Close a bound relayed connection idle this long (default 1h)");
  app.add_flag("--splice", o.splice,
               "Pinhole connections: splice request and response bodies between the sockets, "
               "reading only PDU heads (default off: whole PDUs in 64 KiB reads measured cheaper "
               "at real fragment sizes)");
  app.add_option("--splice-min", o.splice_min,
                 "With --splice: bodies smaller than this many bytes are copied (default 4096)");
  app.add_option("--metrics", o.metrics,
                 "Serve Prometheus metrics (GET /metrics) on this numeric ADDR:PORT, e.g. "
                 "127.0.0.1:9136 (default: off; not changed by SIGHUP)");
  app.add_flag("--json-log", log_json, "JSON lines on stderr even under systemd");
  app.add_flag("--uninstall", uninstall,
               "Remove the table and the policy routing rpcgate-fwd installed, and exit");
  app.add_flag("--dry-run", dry_run, "Print the nftables table that would be installed, and exit");
  app.add_flag("--check", check, "Validate the configuration, print a summary, and exit");
  auto* status = app.add_subcommand("status", "Show live pinholes, connections and counters");
  status->fallthrough();  // `rpcgate-fwd status --control PATH` as well as before the word
  bool status_json = false;
  status->add_flag("--json", status_json, "The daemon's JSON document");
  app.set_version_flag("--version", std::string("rpcgate-fwd ") + RPCGATE_VERSION);
  if (auto rc = rpcgate::common::parse_command_line(app, argc, argv)) return *rc;

  if (status->parsed())
    return status_command(o.control.empty() ? "/run/rpcgate/fwd.sock" : o.control, status_json);

  auto options = build_options(o);
  if (!options) {
    std::fprintf(stderr, "rpcgate-fwd: %s\n", options.error().c_str());
    return kExitUsage;
  }
  if (uninstall) return rpcgate::fwd::uninstall(*options);
  if (dry_run) {
    std::cout << rpcgate::fwd::render_table(*options);
    return 0;
  }
  const auto& cfg = options->config;
  // Referrals never open with "any servers": a warning here and at start, not an error (the
  // rest of the configuration works).
  std::vector<std::string> warnings;
  if (cfg.servers.empty()) {
    for (const auto& r : cfg.rules)
      if (r.referrals)
        warnings.push_back("rule \"" + r.name +
                           "\" allows referrals but [firewall] servers / --servers is any: a "
                           "referral never opens (list the servers a referral may name)");
  }
  if (check) {
    std::cout << "configuration valid: " << cfg.rules.size() << " rule(s)\n";
    for (const auto& r : cfg.rules) {
      std::cout << "  " << r.name << ":";
      for (const auto& i : r.interfaces)
        std::cout << " " << i.name;
      if (r.referrals) std::cout << "  (referrals)";
      std::cout << "\n";
    }
    std::cout << "lookup pinholes: "
              << (cfg.lookup_pinholes
                      ? "on, timeout " +
                            (cfg.lookup_pinhole_timeout
                                 ? std::to_string(cfg.lookup_pinhole_timeout->count()) + " s"
                                 : std::string("the rule's"))
                      : std::string("off"))
              << "\n";
    std::cout << "static NAT:" << (cfg.nat.empty() ? " none" : "") << "\n";
    for (const auto& n : cfg.nat)
      std::cout << "  " << fw::to_string(n.public_address) << " -> "
                << fw::to_string(n.private_address) << "\n";
    for (const auto& w : warnings)
      std::cout << "warning: " << w << "\n";
    return 0;
  }
  // Metrics (fwd_metrics.h) take their port before the relay starts: a port in use is exit 2
  // with nothing installed.
  std::unique_ptr<rpcgate::fwd::FwdMetrics> metrics;
  if (!options->config.metrics.empty()) {
    auto started =
        rpcgate::fwd::FwdMetrics::start(*rpcgate::metrics::parse_endpoint(options->config.metrics));
    if (!started) {
      std::fprintf(stderr, "rpcgate-fwd: %s\n", started.error().c_str());
      return kExitUsage;
    }
    metrics = std::move(*started);
  }
  rpcgate::fwd::DecisionLog log(log_json);
  for (const auto& w : warnings)
    log.write(rpcgate::fwd::note("warning", w, "referral-any-servers"),
              rpcgate::fwd::Priority::kWarning);
  if (metrics) log.write(rpcgate::fwd::note("metrics", "metrics on " + metrics->exporter().url()));
  if (options->config.rules.empty())
    log.write(
        rpcgate::fwd::note("warning",
                           "no interface is allowed (--allow or [[firewall.rule]]): every governed "
                           "connection will be dropped",
                           "no-rules"),
        rpcgate::fwd::Priority::kWarning);
  return rpcgate::fwd::run(
      std::move(*options), log, [o] { return build_options(o); }, metrics.get());
}
