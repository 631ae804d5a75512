// rpcgate-fwd's data path: the transparent relay the kernel diverts governed connections to.
//
// The nftables table (firewall/kernel.h) sends every new TCP connection to port 135 of a governed
// server, and every new connection that matches a pinhole, to one of two transparent listeners
// (IP_TRANSPARENT; accept() gives the client's socket, getsockname() the server and port it was
// meant for). For each, the relay connects on to that server - in router mode from the client's
// own address, so the server sees the real client - and passes the bytes through an inspector
// (firewall/epm_inspector.h on 135, firewall/pinhole_inspector.h on a pinhole): nothing is
// forwarded before it is judged - on 135 whole PDUs; on a pinhole whole binds, alter_contexts,
// auth3s and faults, and of a request or response its head (header and fixed fields, all the
// inspector reads), after which its body passes as it arrives (cut-through; with --splice, through
// a pipe). The first DROP resets both connections and is logged; a peer that closes in the middle
// of a PDU has both connections reset (what was forwarded of it is never completed).
//
// Pinholes: an ept_map answer the rules allow yields an kOpen action; the relay adds the pinhole to
// its PinholeTable and to the kernel set (one netlink batch) BEFORE it forwards the answer, so the
// client can never race its own pinhole. The kernel set's elements expire on their own; their
// comments name the interface, so a restarted relay recovers every live pinhole
// (Relay::start). The table is never removed on stop or crash: without the relay, governed
// traffic is dropped (fail closed); only --uninstall removes it.
//
// Single-threaded (one epoll loop). Bounded: connections in all and per client address
// (FirewallConfig), bytes queued per direction (kMaxQueued: reading pauses, TCP pushes back),
// each inspector's own limits, pinholes per client and in all (PinholeTable).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "decision_log.h"
#include "firewall/rules.h"

namespace rpcgate::fwd {

struct Options {
  firewall::FirewallConfig config;  // validated
  // The governed dynamic ports (the --policy file's sets, as `rpcgate policy` resolves them).
  std::vector<std::pair<std::uint16_t, std::uint16_t>> dynamic_ports{{49152, 65535}};
  std::uint32_t mark = 0x135;       // fwmark and ct mark of diverted traffic
  std::uint32_t route_table = 135;  // policy-routing table for the return path
  // How long a relayed connection may sit idle once bound (long-lived RPC sessions exist).
  std::chrono::milliseconds idle_timeout{3'600'000};
  // Pinhole connections, --splice: request and response bodies move between the sockets with
  // splice() (never copied to user space; only headers and fixed fields are read, each PDU head
  // with its own recv), except bodies smaller than splice_min, which one recv/send moves for
  // less than two splices. Off by default: measured with rpcecho's 64 KiB calls in fragments of
  // 5840 bytes (what Windows and Samba negotiate), the per-PDU reads and splices cost rpcgate-fwd
  // about 3x the CPU of the copy path's big reads (measured with 64 KiB reads; README, "The
  // firewall measured"). It pays only for PDUs far larger than real peers send.
  bool splice = false;
  std::size_t splice_min = 4096;
  // Bytes queued towards peers that do not read, over all relayed connections (each holds at
  // most 512 KiB per direction; its reading pauses there). Over this total the connection
  // holding the most is dropped (relay-memory-budget), as a client that stops reading on many
  // connections must not grow the relay without bound.
  std::size_t max_queued_bytes = 256u << 20;
};

// Re-reads the configuration for SIGHUP: the new Options, or why they are refused (then the
// running rules and table stay untouched).
using Reload = std::function<std::expected<Options, std::string>()>;

// What the relay's Prometheus series are read from (fwd_metrics.h), taken on the relay's thread
// from the counters it keeps anyway (the ones `rpcgate-fwd status` prints).
struct RelaySnapshot {
  std::map<std::string, std::uint64_t> counters;  // decision records by reason code (status)
  std::size_t pinholes = 0;                       // live now
  std::uint64_t pinholes_expired = 0;             // lapsed in the relay's table since start
  std::size_t connections = 0;                    // relayed now
  std::uint64_t relayed_total = 0;                // relayed since start
  std::uint64_t bytes_from_client = 0;            // read from clients / servers since start,
  std::uint64_t bytes_from_server = 0;            // live connections included
  // The table's named counters (packets), empty when nft could not be asked.
  std::vector<std::pair<std::string, std::uint64_t>> kernel_counters;
};

// The relay's side of the metrics, implemented by fwd_metrics.cc. All calls on the relay's
// thread; none may throw or block.
class RelayMetrics {
 public:
  virtual ~RelayMetrics() = default;
  // Watched (EPOLLIN, level-triggered) in the relay's epoll set: readable when a scrape wants
  // a snapshot. The relay answers with publish(), which must drain it.
  virtual int wakeup_fd() const = 0;
  virtual void publish(RelaySnapshot snapshot) = 0;
  // One inspection step: bytes read from a socket, judged, their actions applied.
  virtual void inspected(std::chrono::nanoseconds took) = 0;
  // One batch of pinholes written to the kernel (the ept_map answer waited for it).
  virtual void installed(std::chrono::nanoseconds took) = 0;
};

// Sets everything up (listeners, table, routing, recovery) and runs until SIGTERM/SIGINT.
// Returns the process exit status: 0 after a stop, 1 when start-up failed (nothing half-done
// is left: if the listeners cannot be opened the kernel is not touched). `metrics` (nullptr:
// off) must outlive the call.
int run(Options options, DecisionLog& log, Reload reload, RelayMetrics* metrics = nullptr);

// Removes the table and the policy routing an rpcgate-fwd with these options installed.
// 0 on success (nothing installed is success too), 1 with a message on stderr otherwise.
int uninstall(const Options& options);

// The nft ruleset `run` would install (for --dry-run).
std::string render_table(const Options& options);

// Asks a running rpcgate-fwd for its status over the control socket: the JSON document.
std::expected<std::string, std::string> query_status(const std::string& control_path);

}  // namespace rpcgate::fwd
