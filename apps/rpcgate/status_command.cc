#include "status_command.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/command_line.h"
#include "ndr/binding.h"
#include "policy_command.h"
#include "runtime/broker_protocol.h"
#include "runtime/epmd_client.h"
#include "runtime/net.h"
#include "runtime/server.h"
#include "runtime/status_protocol.h"
#include "runtime/sync_client.h"

namespace rpcgate::cli {
namespace {

using runtime::status::HeldPort;
using runtime::status::Lease;
using runtime::status::Registration;
using runtime::status::StatusReport;

struct StatusArgs {
  std::string control = runtime::kDefaultEpmdSocket;
  std::optional<std::uint16_t> port;
  double timeout = 5;
  bool json = false;
};

// A failure: its exit status, and the sentence printed for it.
struct Failure {
  int status = kExitStatusFailed;
  std::string message;
};

std::string who_am_i() {
  return fmt::format("uid {}", ::geteuid());
}

// Connects to the control socket; the errno decides between "not running" and "denied".
std::expected<runtime::SyncClient, Failure> connect(const std::string& path,
                                                    std::chrono::milliseconds timeout) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path)
    return std::unexpected(
        Failure{common::kExitUsage, fmt::format("--control \"{}\": not a socket path (1-{} "
                                                "characters)",
                                                path, sizeof sa.sun_path - 1)});
  std::memcpy(sa.sun_path, path.data(), path.size());
  auto fd = runtime::connect_stream(reinterpret_cast<const sockaddr*>(&sa), sizeof sa, timeout);
  if (fd) return runtime::SyncClient::adopt(std::move(*fd));
  const auto& e = fd.error();
  if (e == std::errc::no_such_file_or_directory || e == std::errc::not_a_directory)
    return std::unexpected(
        Failure{kExitStatusNotRunning,
                fmt::format("rpcgate-epmd is not running: no socket at {} (started with another "
                            "--control?)",
                            path)});
  if (e == std::errc::connection_refused)
    return std::unexpected(Failure{
        kExitStatusNotRunning,
        fmt::format("rpcgate-epmd is not running: nothing listens on {} (a stale socket)", path)});
  if (e == std::errc::permission_denied || e == std::errc::operation_not_permitted)
    return std::unexpected(
        Failure{kExitStatusDenied,
                fmt::format("permission denied: {} may not connect to {} (rpcgate status needs a "
                            "registrant of rpcgate-epmd: root, its --user, or a --registrant)",
                            who_am_i(), path)});
  if (e == std::errc::timed_out)
    return std::unexpected(
        Failure{kExitStatusFailed, fmt::format("{}: no answer to connect in time", path)});
  return std::unexpected(
      Failure{kExitStatusFailed, fmt::format("cannot connect to {}: {}", path, e.message())});
}

// Asks QueryStatus on a connected client.
std::expected<StatusReport, Failure> query(runtime::SyncClient& c, const std::string& path) {
  const runtime::status::StatusLimits limits;
  // The response stub, plus room for the PDU framing of its fragments.
  c.set_max_response(limits.max_response_bytes + 64 * 1024);
  if (auto b = c.bind({runtime::broker::broker_syntax()}); !b) {
    if (b.error() == runtime::Errc::kUnknownInterface)
      return std::unexpected(
          Failure{kExitStatusFailed,
                  fmt::format("{} does not offer rpcgate's broker interface: is it rpcgate-epmd's "
                              "control socket?",
                              path)});
    return std::unexpected(
        Failure{kExitStatusFailed, fmt::format("{}: bind: {}", path, b.error().message())});
  }
  const auto request =
      runtime::status::encode(runtime::status::QueryStatusRequest{}, common::Endian::kLittle);
  auto reply = c.call(0, runtime::status::kOpQueryStatus, request);
  if (!reply) {
    if (c.last_fault() == runtime::kFaultOpRangeError)
      return std::unexpected(Failure{
          kExitStatusFailed,
          fmt::format("the rpcgate-epmd at {} does not answer QueryStatus (an older version)",
                      path)});
    const std::string fault =
        c.last_fault() ? fmt::format(" (fault 0x{:08x})", *c.last_fault()) : std::string();
    return std::unexpected(Failure{kExitStatusFailed, fmt::format("{}: QueryStatus: {}{}", path,
                                                                  reply.error().message(), fault)});
  }
  auto report = runtime::status::decode_status_report(reply->stub, reply->endian, limits);
  if (!report)
    return std::unexpected(
        Failure{kExitStatusFailed, fmt::format("{}: the answer to QueryStatus does not decode: {}",
                                               path, report.error().message())});
  switch (report->status) {
    case runtime::broker::kStatusOk:
      return std::move(*report);
    case runtime::broker::kStatusAccessDenied:
      return std::unexpected(Failure{
          kExitStatusDenied,
          fmt::format("permission denied: rpcgate-epmd refused QueryStatus to {} (status 5: not "
                      "one of its registrants - root, its --user, or a --registrant)",
                      who_am_i())});
    default:
      return std::unexpected(
          Failure{kExitStatusFailed,
                  fmt::format("rpcgate-epmd answered QueryStatus with status {}", report->status)});
  }
}

std::string local_time(std::uint64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (seconds == 0 || ::localtime_r(&t, &tm) == nullptr) return "-";
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

// What a process or a registrant chose to call itself, safe for a terminal.
std::string printable(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\')
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(ch);
  }
  return out;
}

std::string_view class_name(policy::PortClass c) {
  return policy::to_string(c);
}

std::string version_of(const Registration& r) {
  return fmt::format("{}.{}", r.major, r.minor);
}

// UUID vM.m "annotation" (object U)
std::string describe(const Registration& r) {
  std::string s = fmt::format("{} v{}", r.interface.to_string(), version_of(r));
  if (!r.annotation.empty()) s += fmt::format(" \"{}\"", printable(r.annotation));
  if (!r.object.is_nil()) s += fmt::format(" (object {})", r.object.to_string());
  return s;
}

// The port an IP binding names, if any.
std::optional<std::uint16_t> port_of(const std::string& binding) {
  auto b = ndr::parse_binding(binding);
  if (!b || !ndr::is_ip_protseq(b->protseq) || b->endpoint.empty()) return std::nullopt;
  unsigned value = 0;
  for (const char c : b->endpoint) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// The lease's registrations shown on the row of `port`: those naming it; all of them on the first
// row when none names any of its ports.
std::vector<const Registration*> serving(const Lease& l, std::optional<std::uint16_t> port,
                                         bool first_row) {
  std::vector<const Registration*> named;
  bool any_named = false;
  for (const auto& r : l.registrations) {
    const auto p = port_of(r.binding);
    bool held = false;
    for (const auto& h : l.ports)
      held = held || (p && *p == h.port);
    any_named = any_named || held;
    if (port && p == port) named.push_back(&r);
  }
  if (!any_named && first_row) {
    named.clear();
    for (const auto& r : l.registrations)
      named.push_back(&r);
  }
  return named;
}

nlohmann::ordered_json registration_json(const Registration& r, bool with_kind) {
  nlohmann::ordered_json j;
  if (with_kind) {
    j["kind"] = runtime::status::to_string(r.kind);
    j["uid"] =
        r.uid == 0xffffffffu ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.uid);
  }
  j["uuid"] = r.interface.to_string();
  j["version"] = version_of(r);
  j["object"] = r.object.to_string();
  j["annotation"] = r.annotation;
  j["binding"] = r.binding;
  return j;
}

nlohmann::ordered_json report_json(const StatusReport& s) {
  nlohmann::ordered_json j;
  j["now"] = s.now;
  j["truncated"] = s.truncated;
  j["leases"] = nlohmann::ordered_json::array();
  for (const auto& l : s.leases) {
    nlohmann::ordered_json lj;
    lj["connection"] = l.connection_id;
    lj["pid"] = l.pid;
    lj["uid"] = l.uid;
    lj["gid"] = l.gid;
    lj["command"] = l.command;
    lj["since"] = l.since;
    lj["ports"] = nlohmann::ordered_json::array();
    for (const auto& p : l.ports)
      lj["ports"].push_back(
          {{"port", p.port}, {"class", class_name(p.port_class)}, {"since", p.since}});
    lj["interfaces"] = nlohmann::ordered_json::array();
    for (const auto& r : l.registrations)
      lj["interfaces"].push_back(registration_json(r, false));
    j["leases"].push_back(std::move(lj));
  }
  j["registrations"] = nlohmann::ordered_json::array();
  for (const auto& r : s.registrations)
    j["registrations"].push_back(registration_json(r, true));
  j["pools"] = nlohmann::ordered_json::array();
  for (const auto& p : s.pools)
    j["pools"].push_back({{"class", class_name(p.port_class)},
                          {"size", p.size},
                          {"held", p.held},
                          {"free", p.free}});
  return j;
}

void print_json(const StatusReport& s) {
  // Names and annotations are bytes a process chose: never let them make dump() throw.
  fmt::print("{}\n",
             report_json(s).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

void print_table(const StatusReport& s) {
  struct Row {
    std::string pid, uid, command, port, cls, since, interfaces;
  };
  std::vector<Row> rows{{"PID", "UID", "COMMAND", "PORT", "CLASS", "SINCE", "INTERFACES"}};
  for (const auto& l : s.leases) {
    auto add = [&](const HeldPort* p, bool first) {
      std::string served;
      for (const auto* r : serving(l, p ? std::optional(p->port) : std::nullopt, first))
        served += (served.empty() ? "" : ", ") + describe(*r);
      rows.push_back({std::to_string(l.pid), std::to_string(l.uid), printable(l.command),
                      p ? std::to_string(p->port) : "-",
                      p ? std::string(class_name(p->port_class)) : "-",
                      local_time(p ? p->since : l.since), served.empty() ? "-" : served});
    };
    if (l.ports.empty()) add(nullptr, true);
    for (std::size_t i = 0; i < l.ports.size(); ++i)
      add(&l.ports[i], i == 0);
  }
  std::size_t w[6] = {};
  for (const auto& r : rows) {
    const std::string* cells[6] = {&r.pid, &r.uid, &r.command, &r.port, &r.cls, &r.since};
    for (int i = 0; i < 6; ++i)
      w[i] = std::max(w[i], cells[i]->size());
  }
  for (const auto& r : rows)
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {}\n", r.pid, w[0], r.uid, w[1],
               r.command, w[2], r.port, w[3], r.cls, w[4], r.since, w[5], r.interfaces);
  if (s.leases.empty()) fmt::print("(no server holds a lease)\n");
  if (!s.registrations.empty()) {
    fmt::print("\nNot leased (persistent, static, epmd's own):\n");
    for (const auto& r : s.registrations) {
      const std::string owner =
          r.uid == 0xffffffffu ? std::string("epmd") : fmt::format("uid {}", r.uid);
      fmt::print("  {:<10}  {:<8}  {}  {}\n", runtime::status::to_string(r.kind), owner,
                 printable(r.binding), describe(r));
    }
  }
  fmt::print("\nPools:\n");
  for (const auto& p : s.pools)
    fmt::print("  {:<8}  size {}  held {}  free {}\n", class_name(p.port_class), p.size, p.held,
               p.free);
  if (s.truncated)
    fmt::print("(truncated: rpcgate-epmd left entries out to stay within its answer limits)\n");
}

// --port N: the report restricted to the port (leases holding it, with only that port; non-leased
// registrations naming it), and the one-line answer. Exit 1 when nothing concerns the port.
int print_port(const StatusReport& s, std::uint16_t port, bool json) {
  StatusReport only;
  only.now = s.now;
  only.truncated = s.truncated;
  only.pools = s.pools;
  std::vector<std::string> lines;
  for (const auto& l : s.leases) {
    for (const auto& p : l.ports) {
      if (p.port != port) continue;
      Lease one = l;
      one.ports = {p};
      std::string served;
      for (const auto* r : serving(l, port, true))
        served += (served.empty() ? "" : ", ") + describe(*r);
      lines.push_back(fmt::format("port {} ({}): pid {} uid {} {}, since {}, serves {}", port,
                                  class_name(p.port_class), l.pid, l.uid, printable(l.command),
                                  local_time(p.since),
                                  served.empty() ? "nothing registered" : served));
      one.registrations.clear();
      for (const auto* r : serving(l, port, true))
        one.registrations.push_back(*r);
      only.leases.push_back(std::move(one));
    }
  }
  for (const auto& r : s.registrations) {
    if (port_of(r.binding) != port) continue;
    only.registrations.push_back(r);
    const std::string owner =
        r.uid == 0xffffffffu ? std::string("epmd") : fmt::format("uid {}", r.uid);
    lines.push_back(fmt::format("port {}: not held through the broker; {} registration of {}: {}",
                                port, runtime::status::to_string(r.kind), owner, describe(r)));
  }
  if (json) {
    print_json(only);
  } else if (lines.empty()) {
    fmt::print("port {}: no server holds it and no registration names it{}\n", port,
               s.truncated ? " (the answer was truncated)" : "");
  } else {
    for (const auto& line : lines)
      fmt::print("{}\n", line);
  }
  return lines.empty() ? kExitFailure : kExitOk;
}

int run(const StatusArgs& a) {
  if (!(a.timeout > 0) || a.timeout > 3600) {
    fmt::print(stderr, "rpcgate: --timeout: 0 < S <= 3600\n");
    return common::kExitUsage;
  }
  const auto timeout =
      std::chrono::milliseconds(static_cast<long long>(std::ceil(a.timeout * 1000)));
  auto client = connect(a.control, timeout);
  if (!client) {
    fmt::print(stderr, "rpcgate: status: {}\n", client.error().message);
    return client.error().status;
  }
  client->set_timeout(timeout);
  auto report = query(*client, a.control);
  if (!report) {
    fmt::print(stderr, "rpcgate: status: {}\n", report.error().message);
    return report.error().status;
  }
  if (a.port) return print_port(*report, *a.port, a.json);
  if (a.json) {
    print_json(*report);
  } else {
    print_table(*report);
  }
  return kExitOk;
}

constexpr const char* kExitHelp =
    "Exit status: 0 ok; 1 --port: nothing holds or registers the port; 2 usage; 3 rpcgate-epmd "
    "is not running (no socket, or nothing listening); 4 permission denied (not a registrant "
    "of rpcgate-epmd); 5 other failure (timeout, not rpcgate-epmd, an answer that does not "
    "decode).";

}  // namespace

void add_status_command(CLI::App& app, int* exit_status) {
  auto args = std::make_shared<StatusArgs>();
  auto* cmd = app.add_subcommand(
      "status",
      "Ask the running rpcgate-epmd who holds which port (pid, uid, command, class, since) and "
      "what it serves, and how full each pool is");
  cmd->add_option("--control", args->control,
                  "rpcgate-epmd's control socket (default /run/rpcgate/epmd.sock)");
  cmd->add_option("--port", args->port,
                  "Only this port: which process holds it and what it serves, on one line");
  cmd->add_option("--timeout", args->timeout,
                  "Seconds allowed for the connect and for the query (default 5)");
  cmd->add_flag("--json", args->json, "Print one JSON object (stable field names)");
  cmd->footer(kExitHelp);
  cmd->callback([args, exit_status] { *exit_status = run(*args); });
}

}  // namespace rpcgate::cli
