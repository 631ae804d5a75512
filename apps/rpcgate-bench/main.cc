// rpcgate-bench: a closed-loop load generator for DCE/RPC over TCP (load.h has the model).
//
//   rpcgate-bench epm-map [--target HOST:PORT] [--interface UUID[:M.m]] [common options]
//   rpcgate-bench echo    --target HOST:PORT [--op addone|echodata] [--size N] [common options]
//   rpcgate-bench connect [--target HOST:PORT] [--interface UUID[:M.m]] [common options]
//   common: [--connections N] [--threads 1|2] [--duration S] [--warmup S] [--timeout S] [--json]
//
// HOST is a numeric IPv4 or IPv6 address ([::1]:135). epm-map and connect default to
// 127.0.0.1:135 and the EPM's own interface (e1af8308-5d1f-11c9-91a4-08002b14a0fa:3.0, always
// registered); echo binds rpcecho (Samba's echo.idl) and has no default target.
//
// Output: one table (mode, target, connections, threads, duration, calls, calls/s, p50/p99/p99.9
// latency in microseconds, errors), or with --json one object with the same fields as numbers
// (see print_json). Exit status: 0 when the run completed (errors are counted, not fatal); 1 when
// the target cannot be reached at the start or rejects the first bind; 2 bad usage.
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/command_line.h"
#include "common/uuid.h"
#include "load.h"
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
  } else {
    j["interface"] = o.interface;
  }
  j["connections"] = c.connections;
  j["threads"] = c.threads;
  j["duration_s"] = r.seconds;
  j["warmup_s"] = o.warmup;
  j["calls"] = r.calls;
  j["calls_per_s"] = std::round(calls_per_s(r) * 10) / 10;
  j["p50_us"] = us(r.latency.percentile(50));
  j["p99_us"] = us(r.latency.percentile(99));
  j["p999_us"] = us(r.latency.percentile(99.9));
  j["max_us"] = us(r.latency.max());
  j["mean_us"] = std::round(r.latency.mean() / 100) / 10;
  j["errors"] = r.errors.total();
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
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rpcgate-bench: closed-loop DCE/RPC load over TCP (one call outstanding per connection).\n"
      "Exit status: 0 run completed (errors are counted); 1 target unreachable or bind rejected "
      "at start; 2 usage."};
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
  add_common(echo, o);
  auto* conn = app.add_subcommand("connect", "per call: connect, bind EPM, one ept_map, close");
  conn->add_option("--target,-t", o.target, "HOST:PORT of an endpoint mapper (numeric address)");
  conn->add_option("--interface,-i", o.interface, "UUID[:MAJOR.MINOR] to ept_map");
  add_common(conn, o);
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;

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
  c.connections = o.connections;
  c.threads = std::min(o.threads, o.connections);
  c.duration = ms(o.duration);
  c.warmup = ms(o.warmup);
  c.call_timeout = ms(o.timeout);

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
