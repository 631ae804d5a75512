// rpcgate-epmd's configuration: command line over the [epmd] table of rpcgate.toml over the
// embedded default. The [policy] table of the same file (or --policy FILE.reg|.toml) is the port
// policy (policy.h).
//
//   [epmd]
//   listen = ["0.0.0.0:135", "[::]:135"]   # endpoint mapper listeners (ncacn_ip_tcp)
//   control = "/run/rpcgate/epmd.sock"     # local endpoint (ncalrpc): registration and broker
//   advertise = "192.0.2.10"               # host floor of returned towers (NAT); default: the
//                                          # address the client connected to
//   tcp_registration = true                # accept ept_insert/ept_delete over TCP from loopback
//   broker_addresses = ["0.0.0.0", "::"]   # where brokered ports are bound and listened on
//   user = "rpcgate"                        # drop root to this user after binding
//   log_level = "info"                     # trace, debug, info, warn, error
//   seed = 1                               # deterministic port choice (tests)
//   max_connections = 16384                # TCP connections held at once; more are accepted
//                                          # and closed at once (the control socket has its own
//                                          # kLocalConnections, so a flood cannot lock out
//                                          # registrants)
//   max_connections_per_peer = 1024        # per client IP address (TCP; IPv6: per /64); above
//                                          # max_connections it changes nothing
//   max_entries_per_uid = 1024             # endpoint-map entries one non-root uid may hold (all
//                                          # its connections); the map holds 4096, of which 512
//                                          # only root and epmd itself may use
//   max_handles_per_peer = 4096            # ept_lookup / ept_map context handles per client IP
//                                          # (IPv6 /64; local callers: per uid); beyond it the
//                                          # peer's least recently used handle is freed
//   max_handles_total = 65536              # handles in all; beyond it the biggest holder's least
//                                          # recently used handle is freed (epm_service.h)
//   max_reassembly_bytes_per_connection = 1048576  # bytes held for unfinished fragmented
//   max_reassembly_bytes_per_peer = 4194304        # requests: per connection, per client
//   max_reassembly_bytes = 33554432                # address (IPv6 /64), in all
//   call_timeout_ms = 5000                 # all fragments of one call within this
//   registrants = ["@rpcgate", "svc-foo"]  # who may register and take ports besides root and
//                                          # epmd's own user (always allowed: either could take
//                                          # over the daemon anyway): user names and @groups
//                                          # (primary or supplementary members), resolved at start
//                                          # (an unknown name is an error, exit 2). Default: none.
//   max_local_connections_per_uid = 32     # control-socket connections one uid may hold (of
//                                          # kLocalConnections; root exempt), 1..128
//   max_ports_per_uid = 256                # broker ports one uid may hold at once (root exempt;
//                                          # over it AllocatePort answers 1721), 1..65535
//   sweep_interval_ms = 60000              # liveness sweep of persistent registrations
//                                          # (epm/liveness.h): every this often, 0 = never,
//                                          # else kMinSweepIntervalMs..kMaxSweepIntervalMs
//   sweep_failures = 3                     # consecutive failed probes before an entry is
//                                          # removed, 1..100
//   metrics = "127.0.0.1:9135"             # serve Prometheus metrics (GET /metrics) on this
//                                          # numeric ADDR:PORT (epmd_metrics.h); default: off.
//                                          # A bad address or a port in use is exit 2
//
//   [[epmd.entry]]                         # a static entry, for a server that registers nothing
//   interface = "12345778-1234-abcd-ef00-0123456789ab"   # required
//   version = "0.0"                        # "major.minor", default "0.0"
//   object = "6b29fc40-ca47-1067-b31d-00dd010662da"      # optional (default: nil)
//   binding = "ncacn_ip_tcp:0.0.0.0[5000]" # required: a string binding, as `rpcgate lookup`
//                                          # prints (a uuid@ object inside it is refused: use
//                                          # object); any protseq ndr::binding_to_tower encodes
//   annotation = "lsarpc"                  # optional, at most 63 characters
//
// Registration (issue 11; epm_service.h "Leases"): a plain ept_insert is persistent (kept after
// its connection closes, until ept_delete / ept_mgmt_delete or the liveness sweep); a control-
// socket connection that took a port (AllocatePort) or asked for a lease (HoldLease) holds a
// lease and its later entries go when it closes. Static entries belong to epmd itself (authority
// kEpmdAuthority: nobody changes them over the wire, root included), are never swept, and are
// replaced as one set on SIGHUP (only the [[epmd.entry]] list of --config is re-read then; other
// [epmd] keys need a restart): an invalid set is refused whole, the old set stays, and the error
// is logged. At start an invalid entry is exit 2 with "FILE: [[epmd.entry]] #N: why" (N from 1).
// Being epmd's, a static entry also blocks a registrant's ept_insert that would replace it (same
// object, interface, protseq and network address: DCE's replace rule, ept_s_cant_perform_op) -
// give a static entry a specific address, or none for an interface a server registers itself.
// At most kMaxStaticEntries entries (the map's per-lease cap: they are inserted under one
// reserved lease, kStaticLease, which is what makes the replacement atomic).
//
// Who may register: on the control socket the peer's SO_PEERCRED uid (or its process gid); over
// TCP (tcp_registration) only a loopback peer whose socket's owner uid the kernel reports
// (NETLINK_SOCK_DIAG), judged by the same rule - a loopback peer of unknown uid may not. The
// control socket file is owned by epmd's user and, at bind:
//   * a group listed:                         group = the first listed group, mode 0660;
//   * no group, no user but root/epmd's user: mode 0600 (nobody else can even connect);
//   * a listed user the above would lock out: mode 0666 (with a warning naming the user) - then
//     any local user may connect, but only registrants may register, and each uid holds at
//     most max_local_connections_per_uid of the socket's connections.
// Every existing directory above the control socket must be owned by root or epmd's user and
// not be group/world-writable unless sticky (net.h check_socket_directory), else exit 1.
//
// These five limits are integers from 1 to kMaxConnectionsLimit (--max-connections,
// --max-connections-per-peer, --max-entries-per-uid, --max-handles-per-peer, --max-handles-total
// override them). Every connection is a file descriptor: at startup
// the daemon raises its RLIMIT_NOFILE soft limit to the hard limit; when that is still below
// max_connections + kLocalConnections + kFdHeadroom it warns and lowers max_connections to the
// limit - kLocalConnections - kFdHeadroom (so an extra client is refused at once rather than left
// unanswered in the listen backlog).
// Refused connections are logged as one warning per 10 s with their count, never one line each.
//
// Reassembly budgets (runtime::ServerOptions; server.h has the whole story). The endpoint
// mapper's requests are small: each call is capped per interface (EPM epm::kMaxRequestStub,
// 241'676 bytes - an ept_insert of the most entries one owner may hold; MGMT and the broker 8
// bytes), and a remote client needs under 1 KiB (ept_map). Over the per-connection budget that
// connection gets fault 5 and is closed; over the per-peer budget the peer's connection holding
// the most is closed, over max_reassembly_bytes the daemon's; a call whose fragments take longer
// than call_timeout_ms closes its connection. Each is one warning naming the budget and its value.
// Budgets are integers from kMinReassemblyBytes (one largest legitimate call) to
// kMaxReassemblyBytesLimit with per_connection <= per_peer <= max_reassembly_bytes;
// call_timeout_ms from kMinCallTimeoutMs to kMaxCallTimeoutMs. Command-line options of the same
// names (--max-reassembly-bytes-per-connection, ..., --call-timeout-ms) override them.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "epm/epm_service.h"
#include "metrics/metrics.h"
#include "ndr/epm_types.h"
#include "policy/policy.h"

namespace rpcgate::epmd {

struct ListenAddress {
  std::string host;  // numeric IPv4 or IPv6 (no brackets)
  std::uint16_t port = 135;
  std::string to_string() const;  // "0.0.0.0:135", "[::]:135"
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// "0.0.0.0:135", "[::1]:1135", "127.0.0.1:0" (port 0: the kernel chooses). Numeric addresses
// only: a listener must not depend on name resolution at boot. Error: a sentence naming `text`.
std::expected<ListenAddress, std::string> parse_listen_address(std::string_view text);

// The largest max_connections / max_connections_per_peer accepted: Linux's default fs.nr_open, the
// most descriptors one process can have.
inline constexpr std::size_t kMaxConnectionsLimit = 1'048'576;
// Descriptors the daemon needs besides one per connection (listeners, control socket, epoll,
// timers, journal, a brokered port in flight).
inline constexpr std::size_t kFdHeadroom = 64;
// Control-socket connections held at once (registrants: one lease connection per served
// process; port-broker and rpcgate CLI clients), apart from max_connections.
inline constexpr std::size_t kLocalConnections = 128;
// Bounds of the reassembly keys (see above).
inline constexpr std::size_t kMinReassemblyBytes = epm::kMaxRequestStub;
inline constexpr std::size_t kMaxReassemblyBytesLimit = std::size_t{1} << 40;
inline constexpr std::uint64_t kMinCallTimeoutMs = 100;
inline constexpr std::uint64_t kMaxCallTimeoutMs = 300'000;  // the idle timeout after bind
inline constexpr std::uint64_t kMinSweepIntervalMs = 100;
inline constexpr std::uint64_t kMaxSweepIntervalMs = 86'400'000;  // a day
inline constexpr std::uint32_t kMaxSweepFailures = 100;
inline constexpr std::size_t kMaxStaticEntries = epm::DbLimits{}.max_entries_per_owner;
// The lease static entries are inserted under: no connection id reaches it (the Server counts
// up from 1), so no close removes them; a reload removes and re-inserts exactly this set.
inline constexpr std::uint64_t kStaticLease = ~std::uint64_t{0};

// One [[epmd.entry]], validated (epm::make_entry accepts it).
struct StaticEntry {
  ndr::epm::EptEntry entry;
  std::string text;  // "12345778-...:0.0 at ncacn_ip_tcp:0.0.0.0[5000]", for logs
  friend bool operator==(const StaticEntry&, const StaticEntry&) = default;
};

struct Config {
  std::vector<ListenAddress> listen{{"0.0.0.0", 135}, {"::", 135}};
  std::string control = "/run/rpcgate/epmd.sock";
  std::optional<std::array<std::uint8_t, 4>> advertise;
  bool tcp_registration = true;
  std::vector<std::string> broker_addresses{"0.0.0.0", "::"};
  std::optional<std::string> user;
  std::string log_level = "info";
  std::optional<std::uint64_t> seed;
  // runtime::ServerOptions' defaults (config_test checks that they agree).
  std::size_t max_connections = 16384;
  std::size_t max_connections_per_peer = 1024;
  // epm::DbLimits / epm::EpmConfig's defaults (config_test checks that they agree).
  std::size_t max_entries_per_uid = 1024;
  std::size_t max_handles_per_peer = 4096;
  std::size_t max_handles_total = 65536;
  // The daemon's own (smaller than a generic runtime::Server's: its interfaces are small).
  std::size_t max_reassembly_bytes_per_connection = 1u << 20;
  std::size_t max_reassembly_bytes_per_peer = 4u << 20;
  std::size_t max_reassembly_bytes = 32u << 20;
  std::uint64_t call_timeout_ms = 5'000;
  std::vector<std::string> registrants;            // "user" / "@group" (see above)
  std::size_t max_local_connections_per_uid = 32;  // runtime::ServerOptions' default
  std::size_t max_ports_per_uid = 256;             // runtime::BrokerOptions' default
  // The policy file, if any ("" = embedded default), kept so SIGHUP can read it again.
  std::string policy_file;
  std::uint64_t sweep_interval_ms = 60'000;  // runtime::SweepOptions' default; 0 = no sweep
  std::uint32_t sweep_failures = 3;          // runtime::SweepOptions' default
  std::vector<StaticEntry> static_entries;   // [[epmd.entry]]
  std::string config_file;                   // --config, re-read on SIGHUP for static_entries
  std::optional<metrics::Endpoint> metrics;  // --metrics / metrics: off when unset
};

// Reads the [epmd] table of an rpcgate.toml (absent table: defaults). Unknown keys and wrong
// types are errors (a typo must not silently open or close a listener). Error: "FILE: message".
std::expected<Config, std::string> parse_config_toml(std::string_view text, std::string_view source,
                                                     Config base = {});

// The rules between keys (per_connection <= per_peer <= max_reassembly_bytes), checked by
// parse_config_toml and again after the command line overrode keys. Error: a sentence.
std::expected<void, std::string> check_budgets(const Config& config);
// The registrants list resolved with getpwnam / getgrnam ("@name" is a group).
struct Registrants {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;  // in the order listed: the first is the control socket's group
};
// Error: "registrants: no such user \"x\"" / "... no such group \"x\"".
std::expected<Registrants, std::string> resolve_registrants(const std::vector<std::string>& names);

// Parses a dotted IPv4 address for `advertise`.
std::optional<std::array<std::uint8_t, 4>> parse_ipv4(std::string_view text);

}  // namespace rpcgate::epmd
