#include "daemon.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
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

#include "activation.h"
#include "epm/epm_service.h"
#include "epm/port_broker.h"
#include "epmd_metrics.h"
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

// The listed users' warnings: a control socket open to everyone, and epmd's user shared with
// other processes (nobody).
void warn_about_access(const Config& config, const Access& access) {
  if (!access.warning.empty()) spdlog::warn("{}", access.warning);
  if (config.user && access.epmd_uid == 65534) {
    spdlog::warn(
        "--user {}: every process running as uid 65534 may then connect to the control socket, "
        "register and take ports (epmd's own user is a registrant); run epmd as a dedicated "
        "user (useradd --system rpcgate)",
        *config.user);
  }
}

// Every directory above the control socket is owned by root or epmd's user and not writable by
// others (net.h check_socket_directory). Error: the directory, its owner and mode.
std::expected<void, std::string> check_control_directory(const Config& config,
                                                         const Access& access) {
  const std::array<uid_t, 2> trusted_owners{0, access.epmd_uid};
  if (auto safe = runtime::check_socket_directory(config.control, trusted_owners); !safe)
    return std::unexpected(safe.error().message(trusted_owners));
  return {};
}

// The Server's budgets from the configuration; raises RLIMIT_NOFILE (raise_fd_limit) and lowers
// max_connections to what the descriptors allow.
runtime::ServerOptions server_options(const Config& config, const Access& access) {
  runtime::ServerOptions o;
  o.max_connections = raise_fd_limit(config);
  o.max_connections_per_peer = config.max_connections_per_peer;
  o.max_local_connections = kLocalConnections;
  o.max_reassembly_bytes_per_connection = config.max_reassembly_bytes_per_connection;
  o.max_reassembly_bytes_per_peer = config.max_reassembly_bytes_per_peer;
  o.max_reassembly_bytes = config.max_reassembly_bytes;
  o.call_timeout = std::chrono::milliseconds(config.call_timeout_ms);
  o.max_local_connections_per_uid = config.max_local_connections_per_uid;
  // Registration over TCP: only loopback peers whose socket's owner the kernel names, by the
  // control socket's rule; no lookup at all when it is off.
  if (config.tcp_registration) o.loopback_registrants = access.policy;
  return o;
}

// The endpoint map's caps and the towers' advertised address from the configuration.
epm::EpmConfig epm_config(const Config& config) {
  epm::EpmConfig c;
  c.advertised_ipv4 = config.advertise;
  if (config.seed) c.seed = config.seed;
  c.db.max_entries_per_uid = config.max_entries_per_uid;
  c.max_handles_per_peer = config.max_handles_per_peer;
  c.max_handles_total = config.max_handles_total;
  return c;
}

// The endpoint map's refusals (warn) and ignored trailing request bytes (debug) go to the log.
void log_epm_events(epm::EpmService& epm) {
  epm.on_refusal([](const epm::CallerInfo& caller, const epm::Refusal& r) {
    spdlog::warn("endpoint map: refused a change by {}: {}", caller.peer, epm::to_string(r));
  });
  epm.on_trailing_bytes([](const epm::CallerInfo& caller, std::uint16_t opnum, std::size_t n) {
    spdlog::debug("endpoint map opnum {} from {}: ignored {} byte(s) after the last parameter",
                  opnum, caller.peer, n);
  });
}

// A closed connection took its leased registrations with it (attach_epm_service's hook).
void log_unregistered(std::uint64_t connection_id, std::size_t removed) {
  spdlog::info("connection {} closed: unregistered {} endpoint(s)", connection_id, removed);
}

// The broker's addresses (IPv4 and IPv6 lists from broker_addresses) and per-uid port cap.
runtime::BrokerOptions broker_options(const Config& config) {
  runtime::BrokerOptions o;
  o.ipv4_addresses.clear();
  o.ipv6_addresses.clear();
  for (const auto& a : config.broker_addresses) {
    auto addr = asio::ip::make_address(a);
    (addr.is_v4() ? o.ipv4_addresses : o.ipv6_addresses).push_back(addr);
  }
  o.max_ports_per_uid = config.max_ports_per_uid;
  return o;
}

// A failed AllocatePort: the policy's event (RPCGATE-5820 for 87, its 1721 sibling) with the
// pool, or a warning for a malformed request.
void log_allocate_failed(const runtime::BrokerEvent& e, std::string_view port_class) {
  if (!e.failure) {
    spdlog::warn("broker: connection {} {}: bad AllocatePort request: status {}", e.connection_id,
                 e.peer_address, e.status);
    return;
  }
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
              {"CLASS", std::string(port_class)},
              {"OFFENDING", f.offending},
              {"PEER", e.peer_address},
              {"POOL", f.to_string()}});
}

// One log line per broker event: ports given and taken back at info, refusals and failures at
// warn (a failed allocation as its event).
void log_broker_event(const runtime::BrokerEvent& e) {
  using Kind = runtime::BrokerEvent::Kind;
  const auto cls = policy::to_string(static_cast<policy::PortClass>(e.port_class));
  switch (e.kind) {
    case Kind::kAllocated:
      spdlog::info("broker: port {} ({}) to connection {} {}", e.port, cls, e.connection_id,
                   e.peer_address);
      return;
    case Kind::kConnectionGone:
      spdlog::info("broker: port {} released: connection {} closed", e.port, e.connection_id);
      return;
    case Kind::kReleased:
      spdlog::info("broker: port {} released by connection {}", e.port, e.connection_id);
      return;
    case Kind::kLeaseHeld:
      spdlog::info("broker: connection {} {} holds a lease: its registrations go when it closes",
                   e.connection_id, e.peer_address);
      return;
    case Kind::kAllocateFailed:
      log_allocate_failed(e, cls);
      return;
    case Kind::kRefused:
      if (!e.budget.empty()) {
        spdlog::warn("broker: connection {} {}: status {}: over {}", e.connection_id,
                     e.peer_address, e.status, e.budget);
        return;
      }
      [[fallthrough]];
    case Kind::kReleaseFailed:
      spdlog::warn("broker: connection {} {}: status {}", e.connection_id, e.peer_address,
                   e.status);
      return;
  }
}

// What the listeners bound: each address as "A:PORT" / "[A]:PORT" for the log, and each port
// group's port (the one the kernel chose for port 0).
struct Listening {
  std::vector<std::string> addresses;
  std::vector<std::uint16_t> ports;
  std::string control;  // the control socket's path
};

// Opens the TCP listeners - the same port on every address of a port group (e.g. 0.0.0.0:135 and
// [::]:135) - and the control socket under `peers`. Error: "cannot listen on ADDRESS: ...".
std::expected<Listening, std::string> open_listeners(runtime::Server& server, const Config& config,
                                                     const runtime::PeerPolicy& peers) {
  std::map<std::uint16_t, std::vector<asio::ip::address>> groups;
  for (const auto& l : config.listen)
    groups[l.port].push_back(asio::ip::make_address(l.host));
  Listening listening;
  for (const auto& [port, addresses] : groups) {
    auto bound = server.listen_tcp(addresses, port);
    if (!bound) return std::unexpected(bound.error().message());
    listening.ports.push_back(*bound);
    for (const auto& a : addresses) {
      listening.addresses.push_back(a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(*bound)
                                              : a.to_string() + ":" + std::to_string(*bound));
    }
  }
  if (auto unix_ok = server.listen_unix(config.control, peers); !unix_ok)
    return std::unexpected(unix_ok.error().message());
  listening.control = config.control;
  return listening;
}

// Socket-activated (activation.h): serves the inherited sockets and binds nothing; else
// open_listeners.
std::expected<Listening, std::string> listen_or_adopt(runtime::Server& server, const Config& config,
                                                      const runtime::PeerPolicy& peers,
                                                      std::optional<InheritedSockets> inherited) {
  if (!inherited) return open_listeners(server, config, peers);
  std::string fds;
  for (const auto& d : inherited->descriptions)
    fds += (fds.empty() ? "" : ", ") + d;
  spdlog::info(
      "socket activation: serving the inherited {}; the listen and control settings are "
      "not used",
      fds);
  auto adopted = adopt_inherited(server, std::move(*inherited), peers);
  if (!adopted) return std::unexpected(adopted.error());
  return Listening{adopted->addresses, adopted->ports, adopted->control};
}

// Drops root for Config::user, when one is set (after the listeners are open). Error: "--user
// USER: why".
std::expected<void, std::string> switch_user(const Config& config) {
  if (!config.user) return {};
  // Already that user (systemd's User=, which socket activation allows): nothing to drop, and
  // setgroups() would fail without root.
  if (const passwd* pw = getpwnam(config.user->c_str());
      pw != nullptr && ::geteuid() != 0 && ::geteuid() == pw->pw_uid)
    return {};
  if (auto dropped = drop_privileges(*config.user); !dropped)
    return std::unexpected("--user " + *config.user + ": " + dropped.error());
  return {};
}

// The endpoint mapper lists itself, as DCE's rpcd and Samba's epmdb do: a lookup on a fresh
// daemon is not empty and ept_map for the EPM interface answers. Owner 0: persistent; authority
// epmd itself (the insert without a Registrant), so nobody can change them over the wire.
void list_itself(epm::EpmService& epm, const std::vector<std::uint16_t>& ports) {
  for (const std::uint16_t port : ports) {
    ndr::StringBinding b{
        std::nullopt, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", std::to_string(port), {}};
    auto tower = ndr::binding_to_tower(b, rpc::kEpmSyntax);
    if (!tower) continue;
    ndr::epm::EptEntry entry{common::Uuid(), ndr::encode_tower(*tower), "rpcgate endpoint mapper"};
    epm.db().insert({entry}, /*replace=*/true, /*owner=*/0);
  }
}

// The static entries ([[epmd.entry]]): epmd's own, under kStaticLease, never swept; loaded at
// start and replaced as a set from the configuration file on SIGHUP.
class StaticEntries {
 public:
  explicit StaticEntries(epm::EpmService& epm) : epm_(epm) {}

  // Puts config.static_entries in the map and logs each. Error: "FILE: [[epmd.entry]]: why"
  // (the daemon does not start).
  std::expected<void, std::string> load(const Config& config) {
    if (auto ok = apply_static_entries(epm_, {}, config.static_entries); !ok)
      return std::unexpected(config.config_file + ": [[epmd.entry]]: " + ok.error());
    current_ = config.static_entries;
    for (const auto& e : current_)
      spdlog::info("static entry: {}", e.text);
    return {};
  }

  // Replaces the set with the [[epmd.entry]] list of `file` as it is now, all or nothing; logs
  // the outcome (an error keeps the loaded set).
  void reload(const std::string& file) {
    auto fresh = read_static_entries(file);
    if (!fresh) {
      spdlog::error("SIGHUP: static entries not reloaded, keeping the {} loaded: {}",
                    current_.size(), fresh.error());
    } else if (auto ok = apply_static_entries(epm_, current_, *fresh); !ok) {
      spdlog::error("SIGHUP: static entries not reloaded, keeping the {} loaded: {}",
                    current_.size(), ok.error());
    } else {
      current_ = std::move(*fresh);
      spdlog::info("SIGHUP: {} static entr{} loaded from {}", current_.size(),
                   current_.size() == 1 ? "y" : "ies", file);
    }
  }

 private:
  epm::EpmService& epm_;
  std::vector<StaticEntry> current_;
};

// The liveness sweep's period and patience from the configuration.
runtime::SweepOptions sweep_options(const Config& config) {
  runtime::SweepOptions o;
  o.interval = std::chrono::milliseconds(config.sweep_interval_ms);
  o.failures = config.sweep_failures;
  return o;
}

// A persistent registration the sweep removed, with why (LivenessProber::on_removed).
void log_sweep_removal(const epm::Entry& e, const epm::ProbeTarget& t, std::uint32_t failures) {
  spdlog::info(
      "liveness sweep: removed {}:{}.{} at {} (uid {}, annotation \"{}\"): {} consecutive "
      "failed probes (sweep_failures {})",
      e.interface.uuid.to_string(), e.interface.major, e.interface.minor, t.to_string(),
      e.authority, e.annotation, failures, failures);
}

// The start-up line (tests wait for "listening on"), and the policy's event when it is invalid.
void log_started(const Listening& listening, const policy::Policy& policy) {
  std::string listening_text;
  for (const auto& l : listening.addresses)
    listening_text += (listening_text.empty() ? "" : ", ") + l;
  spdlog::info("rpcgate-epmd listening on {}; control {}; policy {}: {}", listening_text,
               listening.control, policy.source, describe_policy(policy));
  log_invalid_policy(policy);
}

// SIGHUP: read the policy again; new allocations follow it at once (Windows needs a reboot,
// Samba a restart). Held ports the new policy still contains stay held; the others stay with
// their servers until they exit but are no longer tracked (logged). Then the static entries, when
// they come from a configuration file. systemd is told (RELOADING=1 ... READY=1).
class Reloader {
 public:
  Reloader(asio::io_context& io, const Config& config, policy::Policy& policy,
           runtime::BrokerService& broker, StaticEntries& static_entries)
      : hangup_(io, SIGHUP),
        config_(config),
        policy_(policy),
        broker_(broker),
        static_entries_(static_entries) {}

  // Waits for SIGHUP, reloads, waits again - until the io_context stops.
  void start() {
    hangup_.async_wait([this](const std::error_code& ec, int) {
      if (ec) return;
      sd_notify(0, "RELOADING=1");
      reload_policy();
      if (!config_.config_file.empty()) static_entries_.reload(config_.config_file);
      sd_notify(0, "READY=1");
      start();
    });
  }

 private:
  void reload_policy() {
    auto fresh = load_policy(config_.policy_file);
    if (!fresh) {
      spdlog::error("SIGHUP: policy not reloaded, keeping {}: {}", policy_.source, fresh.error());
      return;
    }
    policy_ = std::move(*fresh);
    const auto report = broker_.reload(policy_);
    spdlog::info("SIGHUP: policy {} reloaded: {}; {} held port(s) kept, {} outside it now",
                 policy_.source, describe_policy(policy_), report.kept.size(),
                 report.dropped.size());
    log_invalid_policy(policy_);
  }

  asio::signal_set hangup_;
  const Config& config_;
  policy::Policy& policy_;
  runtime::BrokerService& broker_;
  StaticEntries& static_entries_;
};

// Stops everything io.run() waits for (a SIGINT/SIGTERM), telling systemd first.
void stop(int signo, RejectReporter& rejects, runtime::LivenessProber& sweeper,
          runtime::Server& server, asio::io_context& io) {
  spdlog::info("signal {}: stopping", signo);
  sd_notify(0, "STOPPING=1");
  rejects.stop();
  sweeper.stop();
  server.stop();
  io.stop();
}

// A start-up step failed: its one message, and the exit status run() returns.
int refuse_to_start(int status, const std::string& message) {
  spdlog::critical("{}", message);
  return status;
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
  auto inherited = take_inherited_sockets();
  if (!inherited) return refuse_to_start(1, inherited.error());
  auto access = resolve_access(config);
  if (!access) return refuse_to_start(1, access.error());
  warn_about_access(config, *access);
  // Socket-activated, systemd bound the control socket: config.control is not used.
  if (!*inherited) {
    if (auto safe = check_control_directory(config, *access); !safe)
      return refuse_to_start(1, safe.error());
  }

  asio::io_context io;
  // Metrics (epmd_metrics.h; off unless configured) take their port before anything else
  // listens: a bad one is exit 2 with nothing started.
  std::unique_ptr<EpmdMetrics> metrics;
  if (config.metrics) {
    auto started = EpmdMetrics::start(*config.metrics, io);
    if (!started) return refuse_to_start(2, started.error());
    metrics = std::move(*started);
  }
  runtime::Server server(io, server_options(config, *access));
  RejectReporter rejects(io, server);

  // The endpoint mapper. may_register: the Unix socket's peers by the listener's PeerPolicy
  // (SO_PEERCRED), loopback TCP peers by ServerOptions::loopback_registrants.
  epm::EpmService epm(epm_config(config));
  log_epm_events(epm);
  if (!attach_epm(server, epm, log_unregistered, metrics.get()))
    return refuse_to_start(1, "the endpoint mapper interface is already registered");

  // The port broker. Leases (epm_service.h "Leases"): a connection that took a port, or asked
  // with HoldLease, registers leased entries; every other ept_insert is persistent.
  epm::PortBroker port_broker(policy, config.seed);
  runtime::BrokerService broker(port_broker, broker_options(config));
  broker.on_event([m = metrics.get()](const runtime::BrokerEvent& e) {
    log_broker_event(e);
    if (m != nullptr) m->broker_event(e);
  });
  broker.on_lease([&epm](std::uint64_t id) { epm.hold_lease(id); });
  broker.set_endpoint_map(&epm.db());  // QueryStatus (`rpcgate status`) lists the map
  attach_broker(server, broker, metrics.get());

  auto listening = listen_or_adopt(server, config, access->policy, std::move(*inherited));
  if (!listening) return refuse_to_start(1, listening.error());
  if (auto switched = switch_user(config); !switched) return refuse_to_start(1, switched.error());

  list_itself(epm, listening->ports);
  StaticEntries static_entries(epm);
  if (auto loaded = static_entries.load(config); !loaded) return refuse_to_start(2, loaded.error());

  runtime::LivenessProber sweeper(io, epm, sweep_options(config));
  sweeper.on_removed(
      [m = metrics.get()](const epm::Entry& e, const epm::ProbeTarget& t, std::uint32_t failures) {
        log_sweep_removal(e, t, failures);
        if (m != nullptr) m->sweep_removed();
      });

  log_started(*listening, policy);
  if (metrics) {
    metrics->serve(server, epm, broker);
    spdlog::info("metrics on {}", metrics->exporter().url());
  }

  asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&](const std::error_code& ec, int signo) {
    if (!ec) stop(signo, rejects, sweeper, server, io);
  });
  Reloader reloader(io, config, policy, broker, static_entries);
  reloader.start();

  rejects.start();
  if (config.sweep_interval_ms > 0) sweeper.start();
  sd_notify(0, "READY=1");
  io.run();
  return 0;
}

}  // namespace rpcgate::epmd
