#include "daemon.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <asio.hpp>
#include <grp.h>
#include <pwd.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "epm/epm_service.h"
#include "epm/port_broker.h"
#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"
#include "runtime/broker_protocol.h"
#include "runtime/broker_service.h"
#include "runtime/epm_host.h"
#include "runtime/liveness_prober.h"
#include "runtime/server.h"

namespace rpcgate::epmd {
namespace {

// Under systemd (the journal is our stderr) events go to the journal with structured fields, so
// `journalctl RPCGATE_EVENT=RPCGATE-5820` finds them; otherwise one key=value line on stderr.
bool journal_attached() {
  return std::getenv("JOURNAL_STREAM") != nullptr;
}

// A stable id per event kind, as Windows' Netlogon 5820 for the same failure.
void emit_event(std::string_view id, int priority, const std::string& message,
                const std::map<std::string, std::string>& fields) {
  if (journal_attached()) {
    std::vector<std::string> storage;
    storage.push_back("MESSAGE=" + message);
    storage.push_back("PRIORITY=" + std::to_string(priority));
    storage.push_back("SYSLOG_IDENTIFIER=rpcgate-epmd");
    storage.push_back("RPCGATE_EVENT=" + std::string(id));
    for (const auto& [k, v] : fields)
      storage.push_back("RPCGATE_" + k + "=" + v);
    std::vector<iovec> iov;
    for (auto& s : storage)
      iov.push_back({s.data(), s.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  std::string line = "event=" + std::string(id);
  for (const auto& [k, v] : fields)
    line += " " + k + "=\"" + v + "\"";
  line += ": " + message;
  if (priority <= LOG_ERR) {
    spdlog::error("{}", line);
  } else if (priority <= LOG_WARNING) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
}

std::string describe_policy(const policy::Policy& p) {
  if (!p.valid) return "INVALID (" + (p.error ? p.error->message : std::string("error 87")) + ")";
  if (!p.restricted) {
    return "unrestricted, dynamic range " + p.dynamic_range.to_string();
  }
  return "internet " + p.internet.to_string() + " (" + std::to_string(p.internet.count()) +
         "), intranet " + p.intranet.to_string() + " (" + std::to_string(p.intranet.count()) +
         "), default " + std::string(policy::to_string(p.default_class));
}

void log_invalid_policy(const policy::Policy& p) {
  if (p.valid) return;
  emit_event("RPCGATE-5820", LOG_ERR,
             "the port policy is invalid; every dynamic port registration will fail with "
             "ERROR_INVALID_PARAMETER (87) until it is fixed: " +
                 (p.error ? p.error->message : std::string()),
             {{"SOURCE", p.source},
              {"CODE", "87"},
              {"VALUE", p.error ? p.error->value : ""},
              {"OFFENDING", p.error ? p.error->message : ""}});
}

// Who may register (the Unix listener's PeerPolicy, and loopback TCP's), and the control
// socket's owner, group and mode (config.h says why each).
struct Access {
  runtime::PeerPolicy policy;
  uid_t epmd_uid = 0;
  std::string warning;  // a listed user the socket's mode would otherwise lock out
};

std::expected<Access, std::string> resolve_access(const Config& config) {
  Access a;
  a.epmd_uid = ::geteuid();
  gid_t epmd_gid = ::getegid();
  if (config.user) {
    const passwd* pw = getpwnam(config.user->c_str());
    if (pw == nullptr) return std::unexpected("--user: no such user \"" + *config.user + "\"");
    a.epmd_uid = pw->pw_uid;
    epmd_gid = pw->pw_gid;
  }
  auto listed = resolve_registrants(config.registrants);
  if (!listed) return std::unexpected(listed.error());
  auto& p = a.policy;
  p.allow_root = true;
  p.allow_same_uid = false;  // explicit: epmd's uid after the privilege drop
  p.uids = listed->uids;
  p.uids.push_back(a.epmd_uid);
  p.gids = listed->gids;
  p.socket.owner = a.epmd_uid;
  p.socket.group = p.gids.empty() ? epmd_gid : p.gids.front();
  p.socket.mode = p.gids.empty() ? 0600 : 0660;
  for (const uid_t uid : listed->uids) {
    if (uid == 0 || uid == a.epmd_uid) continue;
    if (!p.gids.empty() && runtime::uid_in_group(uid, p.gids.front())) continue;
    p.socket.mode = 0666;
    a.warning = "registrant uid " + std::to_string(uid) +
                " is neither epmd's user nor in the control socket's group: the socket is "
                "mode 0666, any local user may connect (only registrants may register); list "
                "users through a group to keep it closed";
  }
  return a;
}

std::expected<void, std::string> drop_privileges(const std::string& user) {
  errno = 0;
  const passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return std::unexpected("no such user \"" + user + "\"");
  if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    return std::unexpected("cannot switch to user \"" + user + "\": " + std::strerror(errno));
  }
  if (setuid(0) == 0) return std::unexpected("privileges were not dropped (setuid(0) succeeded)");
  return {};
}

// Every connection is a descriptor: take the whole hard limit (the soft default, 1024, would stop
// accept() long before max_connections). Returns the max_connections to use: the configured one,
// or what the descriptors allow when that is less (with a warning). Over max_connections the
// runtime accepts and closes at once; out of descriptors, accept() fails and new clients wait
// unanswered in the backlog - so the limit must be reached first.
std::size_t raise_fd_limit(const Config& config) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    spdlog::warn("getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
    return config.max_connections;
  }
  if (lim.rlim_cur != lim.rlim_max) {
    const rlim_t was = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      spdlog::warn("cannot raise RLIMIT_NOFILE from {} to {}: {}", was, lim.rlim_max,
                   std::strerror(errno));
      lim.rlim_cur = was;
    }
  }
  if (lim.rlim_cur == RLIM_INFINITY ||
      lim.rlim_cur >= config.max_connections + kLocalConnections + kFdHeadroom) {
    spdlog::debug("RLIMIT_NOFILE {}: room for max_connections {}", lim.rlim_cur,
                  config.max_connections);
    return config.max_connections;
  }
  const std::size_t fds = lim.rlim_cur;
  const std::size_t reserved = kFdHeadroom + kLocalConnections;
  const std::size_t room = fds > reserved + 1 ? fds - reserved : 1;
  spdlog::warn(
      "only {} file descriptors (RLIMIT_NOFILE hard limit): holding at most {} connections, not "
      "max_connections {}; raise the limit (LimitNOFILE=, ulimit -Hn) or lower max_connections",
      fds, room, config.max_connections);
  return room;
}

// The runtime closes a connection over a connection budget silently and counts it by budget: say so
// here, at most one line per kRejectReportEvery however many there were.
constexpr std::chrono::seconds kRejectReportEvery{10};

class RejectReporter {
 public:
  RejectReporter(asio::io_context& io, const runtime::Server& server)
      : timer_(io), server_(server) {}
  void start() {
    timer_.expires_after(kRejectReportEvery);
    timer_.async_wait([this](const std::error_code& ec) {
      if (ec) return;
      report();
      start();
    });
  }
  void stop() { timer_.cancel(); }

 private:
  // "refused 250 connection(s) in the last 10 s: 100 over max_connections_per_peer 100, 150 over
  // max_connections 150 (300 held now)": only the budgets that refused, with their values.
  void report() {
    const auto stats = server_.stats();
    if (stats.connections_rejected == reported_.connections_rejected) return;
    const auto& o = server_.options();
    std::string why;
    auto add = [&](std::uint64_t now, std::uint64_t before, std::string_view budget,
                   std::size_t value) {
      if (now == before) return;
      why += (why.empty() ? "" : ", ") + std::to_string(now - before) + " over " +
             std::string(budget) + " " + std::to_string(value);
    };
    add(stats.rejected_tcp_per_peer, reported_.rejected_tcp_per_peer, "max_connections_per_peer",
        o.max_connections_per_peer);
    add(stats.rejected_tcp_total, reported_.rejected_tcp_total, "max_connections",
        o.max_connections);
    add(stats.rejected_local_per_uid, reported_.rejected_local_per_uid,
        "max_local_connections_per_uid", o.max_local_connections_per_uid);
    add(stats.rejected_local_total, reported_.rejected_local_total,
        "max_local_connections (control socket)", o.max_local_connections);
    spdlog::warn("refused {} connection(s) in the last {} s: {} ({} held now)",
                 stats.connections_rejected - reported_.connections_rejected,
                 kRejectReportEvery.count(), why, stats.connections_active);
    reported_ = stats;
  }
  asio::steady_timer timer_;
  const runtime::Server& server_;
  runtime::ServerStats reported_;
};

// Replaces the static entries (lease kStaticLease) with `fresh`, all or nothing: when the map
// refuses the new set (a cap, or a replace conflict), the old set is put back. Error: why.
std::expected<void, std::string> apply_static_entries(epm::EpmService& epm,
                                                      const std::vector<StaticEntry>& old,
                                                      const std::vector<StaticEntry>& fresh) {
  auto wire = [](const std::vector<StaticEntry>& set) {
    std::vector<ndr::epm::EptEntry> out;
    for (const auto& e : set)
      out.push_back(e.entry);
    return out;
  };
  const epm::Registrant epmd{kStaticLease, epm::kEpmdAuthority};
  epm.db().remove_owner(kStaticLease);
  if (fresh.empty()) return {};
  if (const auto status = epm.db().insert(wire(fresh), /*replace=*/false, epmd); status != 0) {
    const auto refusal = epm.db().last_refusal();
    epm.db().remove_owner(kStaticLease);
    if (!old.empty()) (void)epm.db().insert(wire(old), false, epmd);
    char code[16];
    std::snprintf(code, sizeof code, "0x%08x", status);
    return std::unexpected(std::string("the endpoint map refused the set: status ") + code +
                           (refusal ? " (" + epm::to_string(*refusal) + ")" : std::string()));
  }
  return {};
}

// The [[epmd.entry]] list of `file` as it is now. Error: "FILE: ..." as at start.
std::expected<std::vector<StaticEntry>, std::string> read_static_entries(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::unexpected("cannot read " + file);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parse_config_toml(text.str(), file);
  if (!parsed) return std::unexpected(parsed.error());
  return std::move(parsed->static_entries);
}

}  // namespace

std::expected<policy::Policy, std::string> load_policy(const std::string& file) {
  policy::PolicyInput input;
  if (file.empty()) {
    input = policy::embedded_default();
  } else {
    auto parsed = policy::load_file(file);
    if (!parsed) return std::unexpected(parsed.error().to_string());
    input = std::move(*parsed);
  }
  return policy::resolve(input);
}

int run(const Config& config, policy::Policy policy) {
  auto access = resolve_access(config);
  if (!access) {
    spdlog::critical("{}", access.error());
    return 1;
  }
  if (!access->warning.empty()) spdlog::warn("{}", access->warning);
  if (config.user && access->epmd_uid == 65534) {
    spdlog::warn(
        "--user {}: every process running as uid 65534 may then connect to the control socket, "
        "register and take ports (epmd's own user is a registrant); run epmd as a dedicated "
        "user (useradd --system rpcgate)",
        *config.user);
  }
  const std::array<uid_t, 2> trusted_owners{0, access->epmd_uid};
  if (auto safe = runtime::check_socket_directory(config.control, trusted_owners); !safe) {
    spdlog::critical("{}", safe.error().message(trusted_owners));
    return 1;
  }
  asio::io_context io;
  runtime::ServerOptions server_options;
  server_options.max_connections = raise_fd_limit(config);
  server_options.max_connections_per_peer = config.max_connections_per_peer;
  server_options.max_local_connections = kLocalConnections;
  server_options.max_reassembly_bytes_per_connection = config.max_reassembly_bytes_per_connection;
  server_options.max_reassembly_bytes_per_peer = config.max_reassembly_bytes_per_peer;
  server_options.max_reassembly_bytes = config.max_reassembly_bytes;
  server_options.call_timeout = std::chrono::milliseconds(config.call_timeout_ms);
  server_options.max_local_connections_per_uid = config.max_local_connections_per_uid;
  // Registration over TCP: only loopback peers whose socket's owner the kernel names, by the
  // control socket's rule; no lookup at all when it is off.
  if (config.tcp_registration) server_options.loopback_registrants = access->policy;
  runtime::Server server(io, server_options);
  RejectReporter rejects(io, server);

  epm::EpmConfig epm_config;
  epm_config.advertised_ipv4 = config.advertise;
  if (config.seed) epm_config.seed = config.seed;
  epm_config.db.max_entries_per_uid = config.max_entries_per_uid;
  epm_config.max_handles_per_peer = config.max_handles_per_peer;
  epm_config.max_handles_total = config.max_handles_total;
  epm::EpmService epm(epm_config);
  epm.on_refusal([](const epm::CallerInfo& caller, const epm::Refusal& r) {
    spdlog::warn("endpoint map: refused a change by {}: {}", caller.peer, epm::to_string(r));
  });
  epm.on_trailing_bytes([](const epm::CallerInfo& caller, std::uint16_t opnum, std::size_t n) {
    spdlog::debug("endpoint map opnum {} from {}: ignored {} byte(s) after the last parameter",
                  opnum, caller.peer, n);
  });

  // may_register: the Unix socket's peers by the listener's PeerPolicy (SO_PEERCRED), loopback
  // TCP peers by ServerOptions::loopback_registrants (unset without tcp_registration).
  server.add_interface(rpc::kEpmSyntax, runtime::epm_handler(epm), epm::kMaxRequestStub);
  server.on_connection_closed([&epm](std::uint64_t id) {
    if (const auto removed = epm.connection_closed(id); removed > 0) {
      spdlog::info("connection {} closed: unregistered {} endpoint(s)", id, removed);
    }
  });

  epm::PortBroker port_broker(policy, config.seed);
  runtime::BrokerOptions broker_options;
  broker_options.ipv4_addresses.clear();
  broker_options.ipv6_addresses.clear();
  for (const auto& a : config.broker_addresses) {
    auto addr = asio::ip::make_address(a);
    (addr.is_v4() ? broker_options.ipv4_addresses : broker_options.ipv6_addresses).push_back(addr);
  }
  broker_options.max_ports_per_uid = config.max_ports_per_uid;
  runtime::BrokerService broker(port_broker, broker_options);
  broker.on_event([](const runtime::BrokerEvent& e) {
    using Kind = runtime::BrokerEvent::Kind;
    const auto cls = policy::to_string(static_cast<policy::PortClass>(e.port_class));
    switch (e.kind) {
      case Kind::kAllocated:
        spdlog::info("broker: port {} ({}) to connection {} {}", e.port, cls, e.connection_id,
                     e.peer_address);
        break;
      case Kind::kConnectionGone:
        spdlog::info("broker: port {} released: connection {} closed", e.port, e.connection_id);
        break;
      case Kind::kReleased:
        spdlog::info("broker: port {} released by connection {}", e.port, e.connection_id);
        break;
      case Kind::kLeaseHeld:
        spdlog::info("broker: connection {} {} holds a lease: its registrations go when it closes",
                     e.connection_id, e.peer_address);
        break;
      case Kind::kAllocateFailed:
        if (e.failure) {
          const auto& f = *e.failure;
          emit_event(f.event_id, LOG_ERR,
                     f.code == 87 ? "dynamic port allocation failed with "
                                    "ERROR_INVALID_PARAMETER (87), the port policy is invalid: " +
                                        f.offending
                                  : "dynamic port allocation failed with RPC_S_OUT_OF_RESOURCES "
                                    "(1721): " +
                                        f.offending,
                     {{"SOURCE", f.policy_source},
                      {"CODE", std::to_string(f.code)},
                      {"CLASS", std::string(cls)},
                      {"OFFENDING", f.offending},
                      {"PEER", e.peer_address},
                      {"POOL", f.to_string()}});
        } else {
          spdlog::warn("broker: connection {} {}: bad AllocatePort request: status {}",
                       e.connection_id, e.peer_address, e.status);
        }
        break;
      case Kind::kRefused:
        if (!e.budget.empty()) {
          spdlog::warn("broker: connection {} {}: status {}: over {}", e.connection_id,
                       e.peer_address, e.status, e.budget);
          break;
        }
        [[fallthrough]];
      case Kind::kReleaseFailed:
        spdlog::warn("broker: connection {} {}: status {}", e.connection_id, e.peer_address,
                     e.status);
        break;
    }
  });
  // Leases (epm_service.h "Leases"): a connection that took a port, or asked with HoldLease,
  // registers leased entries; every other ept_insert is persistent.
  broker.on_lease([&epm](std::uint64_t id) { epm.hold_lease(id); });
  broker.attach(server);

  // Listeners: the same port on every address of a port group (e.g. 0.0.0.0:135 and [::]:135).
  std::map<std::uint16_t, std::vector<asio::ip::address>> groups;
  for (const auto& l : config.listen)
    groups[l.port].push_back(asio::ip::make_address(l.host));
  std::vector<std::string> listening;
  std::vector<std::uint16_t> bound_ports;
  for (const auto& [port, addresses] : groups) {
    auto bound = server.listen_tcp(addresses, port);
    if (!bound) {
      spdlog::critical("{}", bound.error().message());
      return 1;
    }
    bound_ports.push_back(*bound);
    for (const auto& a : addresses) {
      listening.push_back(a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(*bound)
                                    : a.to_string() + ":" + std::to_string(*bound));
    }
  }
  if (auto unix_ok = server.listen_unix(config.control, access->policy); !unix_ok) {
    spdlog::critical("{}", unix_ok.error().message());
    return 1;
  }

  if (config.user) {
    if (auto dropped = drop_privileges(*config.user); !dropped) {
      spdlog::critical("--user {}: {}", *config.user, dropped.error());
      return 1;
    }
  }

  // The endpoint mapper lists itself, as DCE's rpcd and Samba's epmdb do: a lookup on a fresh
  // daemon is not empty and ept_map for the EPM interface answers. Owner 0: persistent; authority
  // epmd itself (the insert without a Registrant), so nobody can change them over the wire.
  for (const std::uint16_t bound_port : bound_ports) {
    ndr::StringBinding b{
        std::nullopt, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", std::to_string(bound_port), {}};
    auto tower = ndr::binding_to_tower(b, rpc::kEpmSyntax);
    if (!tower) continue;
    ndr::epm::EptEntry entry{common::Uuid(), ndr::encode_tower(*tower), "rpcgate endpoint mapper"};
    epm.db().insert({entry}, /*replace=*/true, /*owner=*/0);
  }

  // Static entries ([[epmd.entry]]): epmd's own, under kStaticLease, never swept.
  std::vector<StaticEntry> static_entries;
  if (auto ok = apply_static_entries(epm, {}, config.static_entries); !ok) {
    spdlog::critical("{}: [[epmd.entry]]: {}", config.config_file, ok.error());
    return 2;
  }
  static_entries = config.static_entries;
  for (const auto& e : static_entries)
    spdlog::info("static entry: {}", e.text);

  // The liveness sweep of persistent registrations (epm/liveness.h).
  runtime::SweepOptions sweep_options;
  sweep_options.interval = std::chrono::milliseconds(config.sweep_interval_ms);
  sweep_options.failures = config.sweep_failures;
  runtime::LivenessProber sweeper(io, epm, sweep_options);
  sweeper.on_removed([](const epm::Entry& e, const epm::ProbeTarget& t, std::uint32_t failures) {
    spdlog::info(
        "liveness sweep: removed {}:{}.{} at {} (uid {}, annotation \"{}\"): {} consecutive "
        "failed probes (sweep_failures {})",
        e.interface.uuid.to_string(), e.interface.major, e.interface.minor, t.to_string(),
        e.authority, e.annotation, failures, failures);
  });

  std::string listening_text;
  for (const auto& l : listening)
    listening_text += (listening_text.empty() ? "" : ", ") + l;
  spdlog::info("rpcgate-epmd listening on {}; control {}; policy {}: {}", listening_text,
               config.control, policy.source, describe_policy(policy));
  log_invalid_policy(policy);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signo);
    sd_notify(0, "STOPPING=1");
    rejects.stop();
    sweeper.stop();
    server.stop();
    io.stop();
  });

  // SIGHUP: read the policy again; new allocations follow it at once (Windows needs a reboot,
  // Samba a restart). Held ports the new policy still contains stay held; the others stay with
  // their servers until they exit but are no longer tracked (logged).
  asio::signal_set hangup(io, SIGHUP);
  std::function<void(const std::error_code&, int)> on_hangup = [&](const std::error_code& ec, int) {
    if (ec) return;
    sd_notify(0, "RELOADING=1");
    auto fresh = load_policy(config.policy_file);
    if (!fresh) {
      spdlog::error("SIGHUP: policy not reloaded, keeping {}: {}", policy.source, fresh.error());
    } else {
      policy = std::move(*fresh);
      const auto report = broker.reload(policy);
      spdlog::info("SIGHUP: policy {} reloaded: {}; {} held port(s) kept, {} outside it now",
                   policy.source, describe_policy(policy), report.kept.size(),
                   report.dropped.size());
      log_invalid_policy(policy);
    }
    if (!config.config_file.empty()) {
      auto fresh_entries = read_static_entries(config.config_file);
      if (!fresh_entries) {
        spdlog::error("SIGHUP: static entries not reloaded, keeping the {} loaded: {}",
                      static_entries.size(), fresh_entries.error());
      } else if (auto ok = apply_static_entries(epm, static_entries, *fresh_entries); !ok) {
        spdlog::error("SIGHUP: static entries not reloaded, keeping the {} loaded: {}",
                      static_entries.size(), ok.error());
      } else {
        static_entries = std::move(*fresh_entries);
        spdlog::info("SIGHUP: {} static entr{} loaded from {}", static_entries.size(),
                     static_entries.size() == 1 ? "y" : "ies", config.config_file);
      }
    }
    sd_notify(0, "READY=1");
    hangup.async_wait(on_hangup);
  };
  hangup.async_wait(on_hangup);

  rejects.start();
  if (config.sweep_interval_ms > 0) sweeper.start();
  sd_notify(0, "READY=1");
  io.run();
  return 0;
}

}  // namespace rpcgate::epmd
