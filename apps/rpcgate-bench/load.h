// rpcgate-bench's load engine: a closed-loop DCE/RPC load generator over TCP.
//
// Closed loop: `connections` TCP connections, each with exactly one call outstanding; when a
// response completes the next request goes out at once. Connections are spread over `threads`
// threads (1 or 2: the machine's other core belongs to the server), each running one epoll loop
// over non-blocking sockets. Per connection the bind and request PDUs are encoded once (after the
// bind_ack, fragmented to the negotiated size) and only call_id is patched in place; responses are
// cut by frag_length in a per-connection buffer and checked without decoding them into objects,
// so the hot path makes no allocation and no copy beyond recv()/send().
//
// Modes (Mode):
//   kEpmMap   bind EPM v3.0 once per connection, then ept_map for `interface` (ncacn_ip_tcp,
//             max_towers 4) again and again. Every response's status word (the last 4 stub bytes)
//             must be 0; every kFullCheckEvery-th response per connection is decoded completely.
//   kEcho     bind rpcecho v1.0 once per connection, then AddOne (response must be in_data + 1)
//             or EchoData of `size` bytes (response stub must be max_count + the same `size`
//             bytes; contents compared every kFullCheckEvery-th call).
//   kConnect  per iteration: new connection, bind EPM, one ept_map, close. Latency covers all four.
//   `reconnect` (kEcho only; kConnect always): per iteration a new connection, the bind, one call,
//             close - the connection setup rate of that interface (through a firewall's pinhole:
//             every connection is a new relayed flow). Latency covers all four.
//
// Sources: with `sources` given, connection i (0-based, over all threads) is bound to
// sources[i % sources.size()] before it connects (IP_BIND_ADDRESS_NO_PORT: the port is chosen at
// connect time), so one run can stand for several clients (a firewall keeps state per client
// address). Each address must be of the target's family and assigned here; otherwise every
// connect fails (at the start: fatal, the message names the address). Empty: the kernel picks.
//
// Timing: the run lasts warmup + duration from the moment the loops start; calls completing in
// the warmup are not recorded. Calls still outstanding at the end are abandoned (not counted as
// calls or errors); those whose current step (connect, bind or call) had been waiting for
// kStalledAfter or more are counted as stalled_at_end - a connect or a call lost on the way that
// ended no sooner than call_timeout would otherwise hide as a lower rate.
//
// Errors never stop the run; each is counted by kind (ErrorCounts) over the whole run (warmup
// included) and the affected connection is closed and re-opened after kRetryDelay (a fault or a
// non-zero status only ends the call: the connection stays). Timeouts: each connect, bind and call
// must finish within `call_timeout`. Fatal (run_load returns the message; the CLI exits 1): the
// target cannot be reached when the run starts, or the very first bind of a connection is
// rejected (wrong interface for that server).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <asio/ip/address.hpp>

#include "histogram.h"
#include "rpc/pdu.h"

namespace rpcgate::bench {

enum class Mode { kEpmMap, kEcho, kConnect };
enum class EchoOp { kAddOne, kEchoData };

inline constexpr std::uint32_t kFullCheckEvery = 1024;
inline constexpr std::chrono::milliseconds kRetryDelay{100};
inline constexpr std::chrono::milliseconds kStalledAfter{1000};
inline constexpr std::uint32_t kMaxEchoSize = 1u << 20;
// What we offer in the bind (max_xmit_frag = max_recv_frag): the value Windows and rpcgate's own
// client use. A response fragment above it is a protocol error.
inline constexpr std::uint16_t kMaxFrag = 5840;

struct LoadConfig {
  Mode mode = Mode::kEpmMap;
  asio::ip::address address;
  std::uint16_t port = 0;
  rpc::SyntaxId interface;  // kEpmMap, kConnect: the interface to ept_map
  EchoOp op = EchoOp::kAddOne;
  std::uint32_t size = 0;                  // kEcho + kEchoData: bytes, <= kMaxEchoSize
  bool reconnect = false;                  // kEcho: a new connection per call (kConnect: always)
  std::vector<asio::ip::address> sources;  // local addresses, round-robin over the connections
  unsigned connections = 16;
  unsigned threads = 1;  // 1..connections
  std::chrono::milliseconds duration{5000};
  std::chrono::milliseconds warmup{1000};
  std::chrono::milliseconds call_timeout{5000};
  // The server process, to measure the CPU it spends in the measured window (/proc/PID/stat).
  std::optional<int> server_pid;
};

enum class ErrorKind { kConnect, kBind, kFault, kStatus, kProtocol, kTimeout, kClosed };

struct ErrorCounts {
  std::uint64_t connect = 0;   // connect failed (refused, unreachable, ...)
  std::uint64_t bind = 0;      // bind_nak or a rejected presentation context
  std::uint64_t fault = 0;     // fault PDU
  std::uint64_t status = 0;    // response with a non-zero status / wrong result
  std::uint64_t protocol = 0;  // not the PDU expected, undecodable, over-long fragment
  std::uint64_t timeout = 0;   // connect, bind or call took longer than call_timeout
  std::uint64_t closed = 0;    // the peer closed or reset the connection
  std::uint64_t total() const {
    return connect + bind + fault + status + protocol + timeout + closed;
  }
  void add(const ErrorCounts& o);
  void count(ErrorKind kind);  // +1 for that kind
};

struct LoadResult {
  Histogram latency;        // nanoseconds, successful calls completed in the measured window
  std::uint64_t calls = 0;  // = latency.count()
  ErrorCounts errors;       // whole run
  double seconds = 0;       // length of the measured window as it really was
  // Connections whose connect, bind or call was outstanding for kStalledAfter or more when the
  // run ended (see Timing).
  std::uint64_t stalled_at_end = 0;
  // CPU seconds spent in the measured window by this process (all its threads: is the load
  // generator the bottleneck?) and by LoadConfig::server_pid (nullopt without one, or when its
  // /proc entry could not be read). Sampled by the first worker as it crosses the window's ends.
  double client_cpu_s = 0;
  std::optional<double> server_cpu_s;
};

// CPU seconds (user + system) a process has used so far, from /proc/PID/stat; nullopt when it
// cannot be read.
std::optional<double> process_cpu_seconds(int pid);

// Runs the load described by `config` (validated by the caller: connections >= 1, threads 1..
// connections, size <= kMaxEchoSize). Blocks for warmup + duration (+ at most one call_timeout
// to connect at the start). Errors: one sentence for the fatal cases above.
std::expected<LoadResult, std::string> run_load(const LoadConfig& config);

}  // namespace rpcgate::bench
