// rpcgate-bench: a closed-loop load generator for DCE/RPC over TCP (load.h has the model), and a
// holder of idle connections (idle.h has that model).
//
//   rpcgate-bench epm-map [--target HOST:PORT] [--interface UUID[:M.m]] [common options]
//   rpcgate-bench echo    --target HOST:PORT [--op addone|echodata] [--size N] [--reconnect]
//                         [common options]
//   rpcgate-bench connect [--target HOST:PORT] [--interface UUID[:M.m]] [common options]
//   common: [--connections N] [--threads 1|2] [--duration S] [--warmup S] [--timeout S] [--json]
//           [--server-pid PID] [--source ADDR]...
//   rpcgate-bench idle    [--target HOST:PORT] [--connections N] [--sources K | --source ADDR...]
//                         [--probe-source ADDR] [--bind epm|rpcecho]
//                         [--server-pid PID] [--probes M] [--interface UUID[:M.m]] [--timeout S]
//                         [--hold S] [--json]
//
// --source ADDR (repeatable): connection i is made from the i-th address, round-robin (several
// clients in one run: a firewall keeps its state per client address); each must be assigned to
// this host. echo --reconnect: a new connection per call (connect, bind rpcecho, the call, close),
// as connect does for the EPM.
//
// HOST is a numeric IPv4 or IPv6 address ([::1]:135). epm-map, connect and idle default to
// 127.0.0.1:135 and the EPM's own interface (e1af8308-5d1f-11c9-91a4-08002b14a0fa:3.0, always
// registered); echo binds rpcecho (Samba's echo.idl) and has no default target.
//
// idle opens N connections (default 1000), each bound to the EPM (--bind rpcecho: to rpcecho) and
// then left idle, from the source addresses 127.0.0.1..127.0.0.K (default K = ceil(N / 1000), at
// most 253: the target must then be an IPv4 loopback address) or from the --source addresses
// (any IPv4 target), at most 256 handshakes at a time, all within --timeout (default 60 s). With
// --server-pid it reads that process's VmRSS and open descriptors before and after, and reports
// the difference per held connection. While they are held it runs M probes (default 20: connect
// from 127.0.0.(K+1), or --probe-source (default the first --source), bind, one ept_map of
// --interface; with --bind rpcecho one AddOne), then checks how many held connections are still
// open, waits --hold seconds (default 0: time to look at the server from outside), closes.
//
// Output: one table (mode, target, connections, threads, duration, calls, calls/s, p50/p99/p99.9
// latency in microseconds, errors; idle: connections held/failed, sources, bytes per connection,
// probe latencies, connections still held after the probes), or with --json one object with the
// same fields as numbers (see print_json, print_idle_json). Exit status: 0 when the run completed
// (errors and connections not held are counted, not fatal); 1 when the target cannot be reached at
// the start or rejects the first bind (idle: also when RLIMIT_NOFILE's hard limit is below N + 64);
// 2 bad usage.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <expected>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/command_line.h"
#include "common/uuid.h"
#include "idle.h"
#include "load.h"
#include "runtime/heap.h"
#include "runtime/net.h"
#include "runtime/rpc_client.h"

namespace {

using rpcgate::bench::EchoOp;
using rpcgate::bench::LoadConfig;
using rpcgate::bench::LoadResult;
using rpcgate::bench::Mode;

constexpr int kExitFailed = 1;
using rpcgate::common::kExitUsage;
constexpr const char* kEpmInterface = "e1af8308-5d1f-11c9-91a4-08002b14a0fa:3.0";

struct Options {
  std::string target = "127.0.0.1:135";
  std::string interface = kEpmInterface;
  std::string op = "addone";
  std::uint32_t size = 0;
  unsigned connections = 16;
  unsigned threads = 1;
  double duration = 5;
  double warmup = 1;
  double timeout = 5;
  bool json = false;
  std::optional<int> server_pid;  // load modes: the server's CPU per call
  std::vector<std::string> sources;
  bool reconnect = false;  // echo
};

struct IdleOptions {
  unsigned connections = 1000;
  unsigned sources = 0;  // 0: default_sources(connections)
  unsigned probes = 20;
  std::string probe_source;
  std::string bind = "epm";
  std::optional<int> server_pid;
  double timeout = 60;
  double hold = 0;
};

// "HOST:PORT" / "[V6]:PORT" with a numeric address.
bool parse_target(const std::string& text, LoadConfig& c) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const char* b = text.data() + colon + 1;
  const char* e = text.data() + text.size();
  unsigned port = 0;
  auto r = std::from_chars(b, e, port);
  if (r.ec != std::errc{} || r.ptr != e || port == 0 || port > 65535) return false;
  std::error_code ec;
  c.address = asio::ip::make_address(host, ec);
  if (ec) return false;
  c.port = static_cast<std::uint16_t>(port);
  return true;
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kEpmMap:
      return "epm-map";
    case Mode::kEcho:
      return "echo";
    case Mode::kConnect:
      return "connect";
  }
  return "?";
}

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

double calls_per_s(const LoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.calls) / r.seconds : 0.0;
}

void print_json(const LoadConfig& c, const Options& o, const LoadResult& r) {
  nlohmann::ordered_json j;
  j["mode"] = mode_name(c.mode);
  j["target"] = rpcgate::runtime::format_endpoint(c.address, c.port);
  if (c.mode == Mode::kEcho) {
    j["op"] = o.op;
    j["size"] = c.op == EchoOp::kEchoData ? c.size : 0;
    j["reconnect"] = c.reconnect;
  } else {
    j["interface"] = o.interface;
  }
  j["connections"] = c.connections;
  j["threads"] = c.threads;
  j["sources"] = nlohmann::ordered_json::array();
  for (const auto& a : c.sources)
    j["sources"].push_back(a.to_string());
  j["duration_s"] = r.seconds;
  j["warmup_s"] = o.warmup;
  j["calls"] = r.calls;
  j["calls_per_s"] = std::round(calls_per_s(r) * 10) / 10;
  j["p50_us"] = us(r.latency.percentile(50));
  j["p99_us"] = us(r.latency.percentile(99));
  j["p999_us"] = us(r.latency.percentile(99.9));
  j["max_us"] = us(r.latency.max());
  j["mean_us"] = std::round(r.latency.mean() / 100) / 10;
  // CPU in the measured window: the load generator's (busy near threads x 1.0: it may be the
  // bottleneck) and, with --server-pid, the server's per call.
  const auto per_call_us = [&r](double s) {
    return r.calls > 0 ? std::round(s * 1e7 / static_cast<double>(r.calls)) / 10 : 0.0;
  };
  const auto busy = [&r](double s) {
    return r.seconds > 0 ? std::round(s / r.seconds * 100) / 100 : 0.0;
  };
  j["client_cpu_busy"] = busy(r.client_cpu_s);
  j["client_cpu_us_per_call"] = per_call_us(r.client_cpu_s);
  j["server_cpu_busy"] = r.server_cpu_s ? nlohmann::ordered_json(busy(*r.server_cpu_s)) : nullptr;
  j["server_cpu_us_per_call"] =
      r.server_cpu_s ? nlohmann::ordered_json(per_call_us(*r.server_cpu_s)) : nullptr;
  j["errors"] = r.errors.total();
  j["stalled_at_end"] = r.stalled_at_end;
  j["error_kinds"] = {{"connect", r.errors.connect},   {"bind", r.errors.bind},
                      {"fault", r.errors.fault},       {"status", r.errors.status},
                      {"protocol", r.errors.protocol}, {"timeout", r.errors.timeout},
                      {"closed", r.errors.closed}};
  std::cout << j.dump(2) << "\n";
}

void print_table(const LoadConfig& c, const Options& o, const LoadResult& r) {
  std::string mode = mode_name(c.mode);
  if (c.mode == Mode::kEcho)
    mode += c.op == EchoOp::kAddOne ? "/addone" : fmt::format("/echodata:{}", c.size);
  if (c.mode == Mode::kEcho && c.reconnect) mode += "/re";
  const auto target = rpcgate::runtime::format_endpoint(c.address, c.port);
  std::cout << fmt::format(
      "{:<16} {:<21} {:>5} {:>7} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}\n", "mode", "target",
      "conns", "threads", "duration", "calls", "calls/s", "p50 us", "p99 us", "p99.9 us", "errors");
  std::cout << fmt::format(
      "{:<16} {:<21} {:>5} {:>7} {:>8} {:>10} {:>10.0f} {:>9.1f} {:>9.1f} {:>9.1f} {:>7}\n", mode,
      target, c.connections, c.threads, fmt::format("{:.2f} s", r.seconds), r.calls, calls_per_s(r),
      us(r.latency.percentile(50)), us(r.latency.percentile(99)), us(r.latency.percentile(99.9)),
      r.errors.total());
  if (r.errors.total() != 0) {
    const auto& e = r.errors;
    std::cout << fmt::format(
        "errors: connect {} bind {} fault {} status {} protocol {} timeout {} closed {}\n",
        e.connect, e.bind, e.fault, e.status, e.protocol, e.timeout, e.closed);
  }
  (void)o;
}

template <typename T>
nlohmann::ordered_json or_null(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

std::optional<std::uint64_t> probe_p50_ns(const rpcgate::bench::IdleResult& r) {
  if (r.probe_latency_ns.empty()) return std::nullopt;
  auto v = r.probe_latency_ns;
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];  // the lower median
}

std::optional<std::uint64_t> probe_max_ns(const rpcgate::bench::IdleResult& r) {
  if (r.probe_latency_ns.empty()) return std::nullopt;
  return *std::max_element(r.probe_latency_ns.begin(), r.probe_latency_ns.end());
}

std::optional<double> opt_us(std::optional<std::uint64_t> ns) {
  if (!ns) return std::nullopt;
  return std::round(us(*ns) * 10) / 10;
}

void print_idle_json(const rpcgate::bench::IdleConfig& c, const rpcgate::bench::IdleResult& r) {
  nlohmann::ordered_json j;
  j["mode"] = "idle";
  j["target"] = fmt::format("{}:{}", c.address.to_string(), c.port);
  j["connections_requested"] = c.connections;
  j["connections_held"] = r.connections_held;
  j["connections_failed"] = r.connections_failed;
  const auto& f = r.failures;
  j["failure_kinds"] = {{"connect", f.connect},
                        {"bind", f.bind},
                        {"protocol", f.protocol},
                        {"timeout", f.timeout},
                        {"closed", f.closed}};
  j["bind"] = c.bind == rpcgate::bench::IdleBind::kRpcecho ? "rpcecho" : "epm";
  j["sources"] = r.sources;
  j["source_addresses"] = nlohmann::ordered_json::array();
  for (const auto& a : c.source_list)
    j["source_addresses"].push_back(a.to_string());
  j["probe_source"] = r.probe_source;
  j["server_pid"] = c.server_pid ? nlohmann::ordered_json(*c.server_pid) : nullptr;
  j["rss_before_kib"] = or_null(r.rss_before_kib);
  j["rss_after_kib"] = or_null(r.rss_after_kib);
  j["bytes_per_connection"] = or_null(r.bytes_per_connection);
  j["fds_before"] = or_null(r.fds_before);
  j["fds_after"] = or_null(r.fds_after);
  j["fds_per_connection"] = or_null(r.fds_per_connection);
  j["probes"] = c.probes;
  j["probe_p50_us"] = or_null(opt_us(probe_p50_ns(r)));
  j["probe_max_us"] = or_null(opt_us(probe_max_ns(r)));
  j["probe_errors"] = r.probe_errors;
  j["probe_error"] = r.first_probe_error.empty() ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(r.first_probe_error);
  j["held_after_probes"] = r.held_after_probes;
  j["open_seconds"] = std::round(r.open_seconds * 1000) / 1000;
  j["seconds"] = std::round(r.seconds * 1000) / 1000;
  std::cout << j.dump(2) << "\n";
}

void print_idle_table(const rpcgate::bench::IdleConfig& c, const rpcgate::bench::IdleResult& r) {
  auto text = [](auto v, const char* format) {
    return v ? fmt::format(fmt::runtime(format), *v) : std::string("-");
  };
  std::cout << fmt::format(
      "{:<6} {:<21} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6} {:>9} {:>9} {:>6} "
      "{:>7} {:>8}\n",
      "mode", "target", "conns", "held", "failed", "sources", "B/conn", "probes", "p50 us",
      "max us", "perrs", "alive", "seconds");
  std::cout << fmt::format(
      "{:<6} {:<21} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6} {:>9} {:>9} {:>6} {:>7} {:>8.2f}\n", "idle",
      fmt::format("{}:{}", c.address.to_string(), c.port), c.connections, r.connections_held,
      r.connections_failed, r.sources, text(r.bytes_per_connection, "{}"), c.probes,
      text(opt_us(probe_p50_ns(r)), "{:.1f}"), text(opt_us(probe_max_ns(r)), "{:.1f}"),
      r.probe_errors, r.held_after_probes, r.seconds);
  if (c.server_pid)
    std::cout << fmt::format(
        "server pid {}: VmRSS {} KiB before, {} KiB with {} held; descriptors {} -> {}\n",
        *c.server_pid, text(r.rss_before_kib, "{}"), text(r.rss_after_kib, "{}"),
        r.connections_held, text(r.fds_before, "{}"), text(r.fds_after, "{}"));
  if (r.connections_failed != 0) {
    const auto& f = r.failures;
    std::cout << fmt::format("not held: connect {} bind {} protocol {} timeout {} closed {}\n",
                             f.connect, f.bind, f.protocol, f.timeout, f.closed);
  }
  if (!r.first_probe_error.empty())
    std::cout << "first probe error: " << r.first_probe_error << "\n";
}

void add_common(CLI::App* sub, Options& o) {
  sub->add_option("--connections,-c", o.connections, "connections, one call outstanding each")
      ->check(CLI::Range(1u, 100000u));
  sub->add_option("--threads", o.threads, "client threads (the server needs a core)")
      ->check(CLI::Range(1u, 2u));
  sub->add_option("--duration,-d", o.duration, "seconds measured (after the warmup)")
      ->check(CLI::Range(0.1, 600.0));
  sub->add_option("--warmup", o.warmup, "seconds run before measuring")
      ->check(CLI::Range(0.0, 60.0));
  sub->add_option("--timeout", o.timeout, "seconds allowed per connect, bind and call")
      ->check(CLI::Range(0.1, 60.0));
  sub->add_flag("--json", o.json, "one JSON object on stdout");
  sub->add_option("--server-pid", o.server_pid,
                  "the server's pid: its CPU per call in the measured window (--json)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--source", o.sources,
                  "local address to connect from (repeatable: round-robin over the connections)");
}

// --source texts as addresses; the bad one on error.
std::expected<std::vector<asio::ip::address>, std::string> parse_sources(
    const std::vector<std::string>& texts) {
  std::vector<asio::ip::address> out;
  for (const auto& t : texts) {
    std::error_code ec;
    out.push_back(asio::ip::make_address(t, ec));
    if (ec) return std::unexpected(t);
  }
  return out;
}

int run_idle(const Options& o, const IdleOptions& io) {
  rpcgate::bench::IdleConfig c;
  LoadConfig target;
  auto sources = parse_sources(o.sources);
  std::error_code probe_ec;
  const auto probe_source = io.probe_source.empty()
                                ? asio::ip::address{}
                                : asio::ip::make_address(io.probe_source, probe_ec);
  if (!sources || probe_ec ||
      std::any_of(sources->begin(), sources->end(), [](const auto& a) { return !a.is_v4(); }) ||
      (!io.probe_source.empty() && !probe_source.is_v4())) {
    std::cerr << "rpcgate-bench: bad --source/--probe-source \""
              << (sources ? io.probe_source : sources.error()) << "\" (idle: an IPv4 address)\n";
    return kExitUsage;
  }
  if (!io.probe_source.empty() && sources->empty()) {
    std::cerr << "rpcgate-bench: --probe-source needs --source\n";
    return kExitUsage;
  }
  if (!sources->empty() && io.sources != 0) {
    std::cerr << "rpcgate-bench: --sources K and --source ADDR exclude each other\n";
    return kExitUsage;
  }
  const bool loopback_sources = sources->empty();
  if (!parse_target(o.target, target) || !target.address.is_v4() ||
      (loopback_sources && (target.address.to_v4().to_uint() >> 24) != 127)) {
    std::cerr << "rpcgate-bench: bad --target \"" << o.target
              << "\" (idle: HOST:PORT with an IPv4 address, a loopback one unless --source is "
                 "given, e.g. 127.0.0.1:135; the connections come from 127.0.0.x)\n";
    return kExitUsage;
  }
  for (const auto& a : *sources)
    c.source_list.push_back(a.to_v4());
  if (!io.probe_source.empty()) c.probe_source = probe_source.to_v4();
  c.bind =
      io.bind == "rpcecho" ? rpcgate::bench::IdleBind::kRpcecho : rpcgate::bench::IdleBind::kEpm;
  c.address = target.address.to_v4();
  c.port = target.port;
  auto id = rpcgate::runtime::parse_interface(o.interface);
  if (!id) {
    std::cerr << "rpcgate-bench: bad --interface \"" << o.interface << "\" (UUID[:MAJOR.MINOR])\n";
    return kExitUsage;
  }
  c.interface = *id;
  c.connections = io.connections;
  c.sources =
      !c.source_list.empty()
          ? static_cast<unsigned>(c.source_list.size())
          : std::min(io.sources == 0 ? rpcgate::bench::default_sources(io.connections) : io.sources,
                     io.connections);
  c.probes = io.probes;
  if (io.server_pid) {
    c.server_pid = *io.server_pid;
    if (!rpcgate::bench::read_vm_rss_kib(*c.server_pid)) {
      std::cerr << "rpcgate-bench: --server-pid " << *io.server_pid
                << ": cannot read VmRSS from /proc/" << *io.server_pid << "/status\n";
      return kExitUsage;
    }
  }
  c.timeout = ms(io.timeout);
  c.step_timeout = std::min(c.step_timeout, c.timeout);
  c.hold = ms(io.hold);
  auto result = rpcgate::bench::run_idle(c);
  if (!result) {
    std::cerr << "rpcgate-bench: " << result.error() << "\n";
    return kExitFailed;
  }
  if (o.json)
    print_idle_json(c, *result);
  else
    print_idle_table(c, *result);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The load generator must not be slowed by glibc trimming its heap after every bulk call
  // (heap.h); the servers it measures do the same (runtime::Server).
  rpcgate::runtime::tune_heap();
  CLI::App app{
      "rpcgate-bench: closed-loop DCE/RPC load over TCP (one call outstanding per connection), "
      "or many idle bound connections held (idle).\n"
      "Exit status: 0 run completed (errors and connections not held are counted); 1 target "
      "unreachable or bind rejected at start (idle: or too few file descriptors); 2 usage."};
  app.set_version_flag("--version", std::string("rpcgate-bench ") + RPCGATE_VERSION);
  app.require_subcommand(1);
  Options o;
  auto* epm =
      app.add_subcommand("epm-map", "bind EPM once per connection, then ept_map repeatedly");
  epm->add_option("--target,-t", o.target, "HOST:PORT of an endpoint mapper (numeric address)");
  epm->add_option("--interface,-i", o.interface, "UUID[:MAJOR.MINOR] to ept_map");
  add_common(epm, o);
  auto* echo = app.add_subcommand("echo", "AddOne / EchoData against an rpcecho server");
  echo->add_option("--target,-t", o.target, "HOST:PORT of an rpcecho server")->required();
  echo->add_option("--op", o.op, "addone or echodata")
      ->check(CLI::IsMember({"addone", "echodata"}));
  echo->add_option("--size", o.size, "EchoData bytes")
      ->check(CLI::Range(0u, rpcgate::bench::kMaxEchoSize));
  echo->add_flag("--reconnect", o.reconnect,
                 "a new connection per call: connect, bind rpcecho, the call, close");
  add_common(echo, o);
  auto* conn = app.add_subcommand("connect", "per call: connect, bind EPM, one ept_map, close");
  conn->add_option("--target,-t", o.target, "HOST:PORT of an endpoint mapper (numeric address)");
  conn->add_option("--interface,-i", o.interface, "UUID[:MAJOR.MINOR] to ept_map");
  add_common(conn, o);
  IdleOptions io;
  auto* idle = app.add_subcommand(
      "idle", "hold N idle bound connections; server RSS per connection, probes meanwhile");
  idle->add_option("--target,-t", o.target,
                   "HOST:PORT of an endpoint mapper (IPv4 loopback: the sources are 127.0.0.x)");
  idle->add_option("--interface,-i", o.interface, "UUID[:MAJOR.MINOR] the probes ept_map");
  idle->add_option("--connections,-c", io.connections, "idle connections to hold (default 1000)")
      ->check(CLI::Range(1u, 100000u));
  idle->add_option("--sources", io.sources,
                   "source addresses 127.0.0.1..127.0.0.K (default ceil(N/1000))")
      ->check(CLI::Range(1u, rpcgate::bench::kMaxSources));
  idle->add_option("--source", o.sources,
                   "an IPv4 address to connect from, instead of 127.0.0.x (repeatable: "
                   "round-robin); the target may then be any IPv4 address");
  idle->add_option("--probe-source", io.probe_source,
                   "the probes' address with --source (default: the first --source)");
  idle->add_option("--bind", io.bind,
                   "the interface the held connections bind: epm (default) or rpcecho (the "
                   "probes then call AddOne)")
      ->check(CLI::IsMember({"epm", "rpcecho"}));
  idle->add_option("--server-pid", io.server_pid,
                   "the server's pid: VmRSS before and after, bytes per connection")
      ->check(CLI::PositiveNumber);
  idle->add_option("--probes", io.probes,
                   "new connections (connect, bind, ept_map) made while all are held (default 20)")
      ->check(CLI::Range(0u, 10000u));
  idle->add_option("--timeout", io.timeout, "seconds allowed to open them all (default 60)")
      ->check(CLI::Range(1.0, 3600.0));
  idle->add_option("--hold", io.hold, "seconds to keep them after the probes (default 0)")
      ->check(CLI::Range(0.0, 3600.0));
  idle->add_flag("--json", o.json, "one JSON object on stdout");
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;

  if (idle->parsed()) return run_idle(o, io);

  LoadConfig c;
  c.mode = epm->parsed() ? Mode::kEpmMap : echo->parsed() ? Mode::kEcho : Mode::kConnect;
  if (!parse_target(o.target, c)) {
    std::cerr << "rpcgate-bench: bad --target \"" << o.target
              << "\" (HOST:PORT with a numeric address, e.g. 127.0.0.1:135 or [::1]:135)\n";
    return kExitUsage;
  }
  auto id = rpcgate::runtime::parse_interface(o.interface);
  if (!id) {
    std::cerr << "rpcgate-bench: bad --interface \"" << o.interface << "\" (UUID[:MAJOR.MINOR])\n";
    return kExitUsage;
  }
  c.interface = *id;
  c.op = o.op == "echodata" ? EchoOp::kEchoData : EchoOp::kAddOne;
  c.size = o.size;
  c.reconnect = o.reconnect;
  auto sources = parse_sources(o.sources);
  if (!sources) {
    std::cerr << "rpcgate-bench: bad --source \"" << sources.error()
              << "\" (a numeric IPv4 or IPv6 address)\n";
    return kExitUsage;
  }
  c.sources = std::move(*sources);
  c.connections = o.connections;
  c.threads = std::min(o.threads, o.connections);
  c.duration = ms(o.duration);
  c.warmup = ms(o.warmup);
  c.call_timeout = ms(o.timeout);
  c.server_pid = o.server_pid;
  if (c.server_pid && !rpcgate::bench::process_cpu_seconds(*c.server_pid)) {
    std::cerr << "rpcgate-bench: --server-pid " << *c.server_pid << ": cannot read /proc/"
              << *c.server_pid << "/stat\n";
    return kExitUsage;
  }

  auto result = rpcgate::bench::run_load(c);
  if (!result) {
    std::cerr << "rpcgate-bench: " << result.error() << "\n";
    return kExitFailed;
  }
  if (o.json)
    print_json(c, o, *result);
  else
    print_table(c, o, *result);
  return 0;
}
