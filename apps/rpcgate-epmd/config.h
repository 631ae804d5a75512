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
//   max_connections_per_peer = 1024        # per client IP address (TCP); above max_connections
//                                          # it changes nothing
//   registrants = ["@rpcgate", "svc-foo"]  # who may register and take ports besides root and
//                                          # epmd's own user (always allowed: either could take
//                                          # over the daemon anyway): user names and @groups
//                                          # (primary or supplementary members), resolved at start
//                                          # (an unknown name is an error, exit 2). Default: none.
//   max_local_connections_per_uid = 32     # control-socket connections one uid may hold (of
//                                          # kLocalConnections; root exempt), 1..128
//   max_ports_per_uid = 256                # broker ports one uid may hold at once (root exempt;
//                                          # over it AllocatePort answers 1721), 1..65535
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
// Both limits are integers from 1 to kMaxConnectionsLimit (--max-connections and
// --max-connections-per-peer override them). Every connection is a file descriptor: at startup
// the daemon raises its RLIMIT_NOFILE soft limit to the hard limit; when that is still below
// max_connections + kLocalConnections + kFdHeadroom it warns and lowers max_connections to the
// limit - kLocalConnections - kFdHeadroom (so an extra client is refused at once rather than left
// unanswered in the listen backlog).
// Refused connections are logged as one warning per 10 s with their count, never one line each.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

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
  std::vector<std::string> registrants;            // "user" / "@group" (see above)
  std::size_t max_local_connections_per_uid = 32;  // runtime::ServerOptions' default
  std::size_t max_ports_per_uid = 256;             // runtime::BrokerOptions' default
  // The policy file, if any ("" = embedded default), kept so SIGHUP can read it again.
  std::string policy_file;
};

// Reads the [epmd] table of an rpcgate.toml (absent table: defaults). Unknown keys and wrong
// types are errors (a typo must not silently open or close a listener). Error: "FILE: message".
std::expected<Config, std::string> parse_config_toml(std::string_view text, std::string_view source,
                                                     Config base = {});

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
