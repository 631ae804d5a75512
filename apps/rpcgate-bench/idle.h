// rpcgate-bench idle: how many idle, bound associations a server holds, what each one costs it
// in memory, and whether it still answers new clients meanwhile.
//
// Model. `connections` TCP connections to the target, each bound to the EPM interface (or
// rpcecho: `bind`) (one bind / bind_ack, then nothing: an idle association "after bind", what
// Windows clients leave behind by caching their connections). Connection i comes from source
// address 127.0.0.(1 + i % sources), or source_list[i % size] when that list is given (bind()
// before connect(), IP_BIND_ADDRESS_NO_PORT), so a server's per-peer-address limit (rpcgate:
// 1024) is not what stops them. With source_list the target need not be a loopback address (a
// server behind a firewall: the relayed connections' cost is the firewall's). At most
// `max_in_flight` handshakes (connect + bind) are under way at once, one epoll loop on one thread;
// each must finish within `step_timeout`, all of them within `timeout`. A connection that fails is
// counted by kind and not retried.
//
// Then, with every connection held:
//   1. with `server_pid`: after `settle`, the server's VmRSS (/proc/PID/status) and its open
//      descriptors (entries of /proc/PID/fd: needs the right to read them, else null) are read
//      again; bytes_per_connection = (after - before) * 1024 / held, fds_per_connection =
//      (after - before) / held (before = read just before the first connection was opened). Only
//      user-space memory: the kernel's socket, inode, file and epoll objects are not in RSS.
//      Measure against a fresh server: memory freed by earlier connections usually stays in the
//      server's heap (RSS does not shrink), so a second run shows about 0;
//   2. `probes` probes, one after the other, from the NEXT source address 127.0.0.(sources + 1)
//      (a new client, not subject to the held connections' per-peer limit), or from probe_source
//      (default source_list[0]) with a source_list: connect, bind EPM, one ept_map of
//      `interface` (kRpcecho: bind rpcecho, one AddOne whose answer must be in + 1), each step
//      within step_timeout. The latency of each covers
//      these three; a probe that fails or whose status is not 0 is a probe error. A probe is
//      closed gracefully (shutdown, then the server's EOF: not timed) before the next starts, so
//      the server no longer counts it;
//   3. every held connection is polled once (no waiting): one the server closed or reset (EOF,
//      RST, error) did not survive;
//   4. after `hold` more, everything is closed.
//
// Fatal (run_idle returns the message; the CLI exits 1): RLIMIT_NOFILE cannot be raised to
// connections + kSpareFds (the hard limit is lower); the target cannot be reached, or rejects the
// bind, from the probes' address before the run starts (one connect + bind, not measured).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <asio/ip/address_v4.hpp>
#include <sys/types.h>

#include "load.h"
#include "rpc/pdu.h"

namespace rpcgate::bench {

// Connections per source address when --sources is not given (under rpcgate's per-peer 1024).
inline constexpr unsigned kConnectionsPerSource = 1000;
// Source addresses are 127.0.0.1..127.0.0.254; the last one used is the probes'.
inline constexpr unsigned kMaxSources = 253;
// Descriptors needed beyond one per connection (stdio, epoll, probes, libraries).
inline constexpr unsigned kSpareFds = 64;

// What the held connections (and the probes) bind.
enum class IdleBind { kEpm, kRpcecho };

struct IdleConfig {
  asio::ip::address_v4 address;  // in 127.0.0.0/8 (the sources are loopback addresses)
  std::uint16_t port = 135;
  rpc::SyntaxId interface;  // what the probes ept_map
  unsigned connections = 1000;
  unsigned sources = 1;  // 1..kMaxSources; with source_list: its size
  // The connections' source addresses instead of 127.0.0.x (any IPv4 target then).
  std::vector<asio::ip::address_v4> source_list;
  std::optional<asio::ip::address_v4> probe_source;  // with source_list; default source_list[0]
  IdleBind bind = IdleBind::kEpm;
  unsigned max_in_flight = 256;
  unsigned probes = 20;
  std::optional<pid_t> server_pid;
  std::chrono::milliseconds timeout{60'000};      // opening all connections
  std::chrono::milliseconds step_timeout{5'000};  // one handshake, one probe
  std::chrono::milliseconds settle{200};          // before the second RSS reading
  std::chrono::milliseconds hold{0};              // after the probes, before closing
};

struct IdleResult {
  unsigned connections_held = 0;
  unsigned connections_failed = 0;
  // Why connections were not held: connect (socket/bind/connect failed: refused,
  // EADDRNOTAVAIL, EMFILE...), bind (bind_nak or a rejected context), protocol (not a bind_ack,
  // undecodable, over-long fragment), timeout (handshake over step_timeout, or not finished
  // within timeout), closed (the server closed or reset it during the handshake: a limit).
  // fault and status stay 0 (no call is made on a held connection).
  ErrorCounts failures;
  unsigned sources = 0;
  std::string probe_source;  // "127.0.0.21"
  std::optional<std::uint64_t> rss_before_kib;
  std::optional<std::uint64_t> rss_after_kib;
  std::optional<std::int64_t> bytes_per_connection;  // with server_pid and connections_held > 0
  std::optional<std::uint64_t> fds_before;           // the server's open descriptors (server_pid)
  std::optional<std::uint64_t> fds_after;
  std::optional<double> fds_per_connection;     // with both and connections_held > 0
  std::vector<std::uint64_t> probe_latency_ns;  // successful probes, in order
  unsigned probe_errors = 0;
  std::string first_probe_error;  // empty when none
  unsigned held_after_probes = 0;
  double open_seconds = 0;  // first connect to the last handshake done
  double seconds = 0;       // the whole run, closing included
};

// Sources by default: ceil(connections / kConnectionsPerSource), at most kMaxSources.
unsigned default_sources(unsigned connections);

// The VmRSS of `pid` in KiB (/proc/PID/status); nullopt when it cannot be read.
std::optional<std::uint64_t> read_vm_rss_kib(pid_t pid);

// The number of descriptors `pid` has open (entries of /proc/PID/fd); nullopt when the directory
// cannot be read.
std::optional<std::uint64_t> count_open_fds(pid_t pid);

// Raises RLIMIT_NOFILE's soft limit to at least `needed` (never lowers it). Error: one sentence
// when the hard limit is below `needed` or setrlimit fails.
std::expected<void, std::string> ensure_fd_limit(std::uint64_t needed);

// Runs the model above. `config` is validated by the caller (connections >= 1, sources 1..
// kMaxSources, address in 127.0.0.0/8).
std::expected<IdleResult, std::string> run_idle(const IdleConfig& config);

}  // namespace rpcgate::bench
