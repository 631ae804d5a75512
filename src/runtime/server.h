// The DCE/RPC connection-oriented server runtime: listeners, connections, timers and limits around
// the sans-I/O connection engine (rpc::Connection in the server role, rpc/connection.h).
//
// Thread model. A Server lives on ONE thread: the thread running the asio::io_context it was
// given. Every member function, every Handler, every Responder completion and every hook runs on
// (or must be called from) that thread; setup calls (add_interface, listen_*, adopt_listener,
// on_connection_closed) may also be made before io_context::run() starts, from the thread that
// will run it. Nothing is locked. To act from another thread, asio::post() to the io_context.
// The daemon is single-threaded; I/O never blocks the loop (sockets are non-blocking, one recv()
// per readiness event, so one busy client cannot starve the others).
//
// I/O readiness. Connection sockets are not asio sockets: they sit in one level-triggered epoll
// set of the Server's, and the io_context waits on that set's descriptor (one asio wakeup per
// batch of up to 64 ready connections). Each connection's interest follows its state (EPOLLIN
// unless input is paused, EPOLLOUT while output waits), changed with epoll_ctl only when it
// changes. Why not asio socket ops: asio 1.22 costs one extra syscall per call either way - an
// async_wait re-arms with EPOLL_CTL_MOD, a receive op retries speculatively after every
// completed read and gets EAGAIN - and on loopback that was ~8 % of the daemon's time per call
// (bench/README.md). Listeners and timers are ordinary asio objects.
//
// Lifetimes. The Server must outlive the io_context's handlers: call stop() (or destroy the
// Server) on the io thread, or after io_context::run() has returned; the destructor calls stop().
// Connections are owned by the Server; a Responder keeps only a weak reference, so completing it
// after its connection closed is a harmless no-op (its fds are closed).
//
// Per connection: bytes are read into one buffer shared by all connections (the loop is single
// threaded) and fed to the connection's engine, which frames them (before bind at most
// ServerOptions::max_frag_before_bind bytes per PDU, after bind the server's own 5840), decodes,
// negotiates, reassembles under the budgets and hands complete calls to the Handler (see Handler
// contract); what it queues is written (a bind_ack as ONE write: Impacket reads it with one
// recv), and when it decides to close, the bind_nak / fault it queued is written first. Requests
// may be pipelined; responses are queued whole (every fragment of one response at once) in order
// of completion, so fragments of different calls never interleave. This file keeps the socket
// shell: epoll interest, recv/sendmsg with descriptors, the timer, dispatch. An idle connection
// holds no read buffer: its memory is the socket, a timer and the engine (under 2 KiB of RSS
// each, rpcgate-bench idle).
//
// Time: deadlines are read from ServerOptions::clock (the steady clock by default); with a
// common::ManualClock they move only when a test advances it.
//
// Fail closed, and one client never disturbs another:
//  * protocol violations close the connection (after the association's bind_nak / fault);
//  * idle_timeout_before_bind / idle_timeout_after_bind close idle connections (not while a call is
//    outstanding or output is pending);
//  * pdu_timeout: once the first byte of a PDU arrived, the whole PDU must arrive within it
//    (slowloris);
//  * max_outstanding_calls: while that many calls await their response, the connection is not
//    read (TCP back-pressure);
//  * max_output_bytes: while more response bytes than that are queued (a client that does not
//    read), the connection is not read; write_timeout without write progress closes it;
//  * max_connections / max_connections_per_peer (TCP), max_local_connections /
//    max_local_connections_per_uid (Unix): over a limit a new connection is accepted and closed
//    at once (counted in ServerStats::connections_rejected and by the budget that refused);
//  * memory held for unfinished (fragmented) requests is budgeted at every level (issue 10):
//    - per call: the stub cap of the interface the FIRST fragment's context is bound to
//      (add_interface's max_stub_size, default ServerOptions::max_stub_size; never below one
//      full fragment's stub, 5816 bytes, rpc/association.h); over it the client gets fault 5
//      (access denied, as Samba) and the connection closes (kCallTooLarge); one call per
//      connection is reassembled at a time (Windows' rule);
//    - per connection: max_reassembly_bytes_per_connection, the capacity of every unfinished
//      call's buffer; over it that connection gets the same fault and closes (kConnectionBudget);
//    - per peer (Connection::Info::peer_key, net.h peer_key: IPv4 address, IPv6 /64):
//      max_reassembly_bytes_per_peer; over it the peer's connection holding the most closes
//      (kPeerBudget, no reply);
//    - server-wide: max_reassembly_bytes; over it the connection holding the most closes
//      (kServerBudget, no reply);
//    - call_timeout: every fragment of a call within it of the FIRST (each fragment is a whole
//      PDU, so pdu_timeout never fires for a LAST that never comes); else close (kCallTimeout).
//    Each such close is one warning naming the budget, its value, the peer and the bytes held
//    (at most kBudgetLogBurst lines per kBudgetLogWindow for each kind of close; the rest are
//    counted in the next line of that kind).
//    Memory released this way is given back to the system: once kTrimAfterReleasedBytes of
//    reassembly memory was released, malloc_trim(0) runs, at most once per kTrimInterval.
//    Since the Server trims, free() need not: the constructor calls runtime::tune_heap()
//    (heap.h: glibc trims and mmaps only above a few MiB; per-call trims cost a 64 KiB echo
//    call half the server's CPU) unless ServerOptions::tune_heap is false.
//  * handler exceptions are caught (fault nca_s_fault_unspec), never propagated.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/uuid.h"
#include "rpc/connection.h"
#include "rpc/pdu.h"
#include "runtime/net.h"

namespace rpcgate::epm {
class MgmtService;
}  // namespace rpcgate::epm

namespace rpcgate::runtime {

namespace detail {
class Connection;
class Listener;
}  // namespace detail

// Fault statuses a Handler commonly returns (rpc/status.h has the full list).
inline constexpr std::uint32_t kFaultOpRangeError = 0x1c010002;  // nca_s_op_rng_error
inline constexpr std::uint32_t kFaultBadStubData = 0x6f7;        // rpc_x_bad_stub_data
inline constexpr std::uint32_t kFaultUnspec = 0x1c000012;        // nca_s_fault_unspec

enum class Transport : std::uint8_t { kTcp, kUnix };

// Who may register endpoints / hold ports: a Unix listener's peers (by SO_PEERCRED), and loopback
// TCP peers (by the uid owning the peer's socket, ServerOptions::loopback_registrants).
struct PeerPolicy {
  bool allow_root = true;      // uid 0
  bool allow_same_uid = true;  // the server's effective uid (at the time of the check)
  std::vector<uid_t> uids;     // more uids
  // Members of these groups: the peer process' gid (Unix: SO_PEERCRED), or the primary or a
  // supplementary group of the uid's user (getpwuid_r + getgrouplist, asked at each check: a
  // change to /etc/group applies to the next connection; only asked when the uid itself is not
  // allowed and a group is listed).
  std::vector<gid_t> gids;
  // The socket file (Unix listeners): mode at bind, then owner/group (net.h listen_unix).
  // Connecting needs write permission.
  UnixSocketAccess socket{0666, {}, {}};
  bool may_register(uid_t uid, std::optional<gid_t> gid = std::nullopt) const;
  bool may_register(const ucred& peer) const { return may_register(peer.uid, peer.gid); }
};

// True if the user with `uid` has `gid` as primary or supplementary group (NSS: getpwuid_r,
// getgrouplist). False for a uid without a passwd entry.
bool uid_in_group(uid_t uid, gid_t gid);

// What a Handler knows about the call. Valid only during the Handler invocation (the stub span
// points into the connection's reassembly buffer): copy what an asynchronous reply needs.
struct IncomingCall {
  std::uint64_t connection_id = 0;  // unique per Server, never 0; the key of on_connection_closed
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;
  std::span<const std::uint8_t> stub;  // the request stub in `drep` byte order
  rpc::DataRep drep;
  common::Endian endian = common::Endian::kLittle;  // drep.endian()
  std::optional<common::Uuid> object;               // request object UUID (PFC_OBJECT_UUID)
  rpc::SyntaxId interface;                          // abstract syntax the context was bound to
  rpc::SyntaxId transfer_syntax;
  Transport transport = Transport::kTcp;
  // Views of the connection's own strings (no copy per call; valid while this is).
  std::string_view peer_address;   // "1.2.3.4:5678", "[::1]:5678", "unix:pid=..,uid=.."
  std::string_view local_address;  // "127.0.0.1:135", "unix:/run/rpcgate/epmd.sock"
  std::uint16_t local_port = 0;    // TCP only
  std::optional<std::array<std::uint8_t, 4>> local_ipv4;  // when the client came over IPv4
  std::optional<ucred> peer_cred;                         // Unix only
  // The uid of the process that owns the peer socket, when the kernel tells: SO_PEERCRED on a
  // Unix socket; for loopback TCP the owner of the peer's socket (NETLINK_SOCK_DIAG by the
  // 4-tuple, net.h SocketOwners), looked up at accept when ServerOptions::loopback_registrants
  // is set. nullopt for a network peer or when it could not be established.
  std::optional<std::uint32_t> peer_uid;
  // The key of the per-peer budgets: the client's IP address (IPv6: its /64), "" for Unix. A
  // view of the connection's own key (no copy per call; an IPv6 key does not fit SSO).
  std::string_view peer_key;
  // Unix peer allowed by the listener's PeerPolicy; loopback TCP peer whose socket owner
  // ServerOptions::loopback_registrants allows; false for every other peer (and whenever the
  // uid is not known).
  bool may_register = false;
};

// Completes one call exactly once: reply() or fault(). Move-only. A Responder destroyed without
// completing (a handler bug, or an exception thrown out of the handler) sends fault
// nca_s_fault_unspec, so no client waits forever. May be kept and completed later (e.g. after a
// timer) on the io thread. Completing after the connection closed does nothing (fds are closed).
// For a call sent with PFC_MAYBE nothing is sent either way.
class Responder {
 public:
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  // Sends `stub` (NDR in the call's byte order) as response PDUs of at most the negotiated
  // max_xmit_frag. `fds` (owned: always closed by the runtime, after sending or on any failure)
  // travel as SCM_RIGHTS with the FIRST fragment; only on Unix transports - on TCP non-empty fds
  // are a programming error answered with fault nca_s_fault_unspec. A stub the fragmenter rejects
  // also becomes that fault.
  void reply(std::span<const std::uint8_t> stub, std::vector<int> fds = {});
  // Sends a fault PDU with `status` (e.g. kFaultOpRangeError, kFaultBadStubData).
  void fault(std::uint32_t status);
  bool done() const { return !pending_; }

 private:
  friend class detail::Connection;
  // Held inline (no allocation per call): the connection, weakly, and what the answer needs.
  Responder(std::weak_ptr<detail::Connection> connection, const rpc::CallRef& call)
      : connection_(std::move(connection)), call_(call), pending_(true) {}
  std::weak_ptr<detail::Connection> connection_;
  rpc::CallRef call_;
  bool pending_ = false;
};

// An RPC interface implementation. Contract: answer every call through the Responder, either
// before returning or later. Unknown opnum: responder.fault(kFaultOpRangeError) (see
// fault_op_range()). A stub that does not decode: fault(kFaultBadStubData). Exceptions are
// caught by the runtime: the call gets fault nca_s_fault_unspec (0x1c000012, what the DCE runtime
// reports for an unhandled server exception), the connection stays open.
using Handler = std::function<void(IncomingCall&, Responder)>;

// Helper for the unknown-opnum branch of a Handler.
inline void fault_op_range(Responder& r) {
  r.fault(kFaultOpRangeError);
}

struct ServerOptions {
  std::size_t max_connections = 16384;          // TCP connections
  std::size_t max_connections_per_peer = 1024;  // per peer IP address (TCP)
  // Unix-socket (local) connections have their own budget, so a TCP flood that fills
  // max_connections cannot lock out local registrants and port-broker clients.
  std::size_t max_local_connections = 1024;
  // Of those, one uid may hold at most this many (root is exempt: it is trusted, and it is the
  // usual registrant), so one local user cannot crowd out the others.
  std::size_t max_local_connections_per_uid = 32;
  // Loopback TCP peers (127.0.0.0/8, ::1, ::ffff:127.x): when set, the owner of the peer's socket
  // is asked of the kernel at accept (net.h SocketOwners: one netlink round trip per accepted
  // loopback connection, none per call, none for other peers), becomes IncomingCall::peer_uid,
  // and this policy sets IncomingCall::may_register. Unset (the default): neither.
  std::optional<PeerPolicy> loopback_registrants;
  // Before bind a client has little reason to wait. After bind Windows keeps idle connections
  // open indefinitely (clients cache them); 5 minutes bounds what a silent client costs while
  // outlasting every realistic pause between calls of one client.
  std::chrono::milliseconds idle_timeout_before_bind{10'000};
  std::chrono::milliseconds idle_timeout_after_bind{300'000};
  std::chrono::milliseconds pdu_timeout{10'000};    // first byte of a PDU -> its last byte
  std::chrono::milliseconds write_timeout{30'000};  // queued output without progress
  std::size_t max_outstanding_calls = 16;           // per connection
  std::size_t max_output_bytes = 256 * 1024;        // per connection; over it input is paused
  std::uint16_t max_frag_before_bind = 8192;        // binds are small (Impacket's: 72 bytes)
  std::uint16_t max_frag = 5840;                    // ServerConfig::max_frag (Windows' value)
  int listen_backlog = 1024;
  int listen_tries = 16;  // listen_tcp(port 0) retries on EADDRINUSE
  // runtime::tune_heap() at construction (process-wide glibc settings; see heap.h). False leaves
  // the process's malloc settings alone (an embedding program that sets its own).
  bool tune_heap = true;
  // Reassembly budgets (see the file comment). max_stub_size: the cap of one call's stub for an
  // interface added without its own (Samba's default, 4 MiB). Per connection: two such calls.
  // A budget of 0 means none. The defaults suit a general server; rpcgate-epmd sets its own.
  std::size_t max_stub_size = 4u << 20;
  std::size_t max_reassembly_bytes_per_connection = 8u << 20;
  std::size_t max_reassembly_bytes_per_peer = 64u << 20;
  std::size_t max_reassembly_bytes = 256u << 20;
  // FIRST fragment -> LAST fragment of one call (a few fragments of a legitimate call arrive
  // within milliseconds; a trickle of whole PDUs must not hold memory for the idle timeout).
  std::chrono::milliseconds call_timeout{5'000};
  // Export the management interface afa8bd80-7d8a-11c9-bef4-08002b102989 v1.0 (epm::MgmtService),
  // as every DCE / Windows / Samba server does (Impacket's rpcmap.py binds it to list a server's
  // interfaces). See Server::Server.
  bool export_mgmt = true;
  // Where deadlines read the time: nullptr = the steady clock. A common::ManualClock makes every
  // connection deadline (idle, PDU, write, call) move only with the clock's advance(): the
  // Server then arms no timer for them and checks every connection after each advance (posted
  // to the io thread). Must outlive the Server.
  common::Clock* clock = nullptr;
};

// Why a connection closed (rpc/connection.h): kStopped is stop(); the reassembly budgets are
// described in the file comment.
using CloseReason = rpc::CloseReason;
using rpc::to_string;

// Counters only grow, except connections_active.
struct ServerStats {
  std::uint64_t connections_accepted = 0;  // including rejected ones
  std::uint64_t connections_active = 0;
  std::uint64_t connections_rejected = 0;    // over any connection budget: the sum of these four
  std::uint64_t rejected_tcp_total = 0;      // over max_connections
  std::uint64_t rejected_tcp_per_peer = 0;   // over max_connections_per_peer
  std::uint64_t rejected_local_total = 0;    // over max_local_connections
  std::uint64_t rejected_local_per_uid = 0;  // over max_local_connections_per_uid
  std::uint64_t bytes_in = 0;
  std::uint64_t pdus_in = 0;
  std::uint64_t pdus_out = 0;
  std::uint64_t calls = 0;   // dispatched to a handler
  std::uint64_t faults = 0;  // fault PDUs sent for dispatched calls
  std::array<std::uint64_t, static_cast<std::size_t>(CloseReason::kCount)> closes{};
  std::map<std::string, std::uint64_t> protocol_closes;  // kProtocol closes by error message
  // Bytes allocated for unfinished calls' stubs now, in all connections (a gauge), and the most
  // it has been.
  std::uint64_t reassembly_bytes = 0;
  std::uint64_t reassembly_bytes_peak = 0;
  std::uint64_t malloc_trims = 0;  // malloc_trim(0) calls after reassembly memory was released
  // Connections whose output waits for the socket to take more (a gauge).
  std::uint64_t write_blocked = 0;
};

// Budget closes are logged at most kBudgetLogBurst times per kBudgetLogWindow for each kind of
// close (a remote client can cause one per connection); the next logged line of that kind counts
// those left out.
inline constexpr std::size_t kBudgetLogBurst = 20;
inline constexpr std::chrono::seconds kBudgetLogWindow{10};
// malloc_trim(0) after this much reassembly memory was released (closed connections, finished
// calls), at most once per kTrimInterval: glibc keeps freed memory in the heap otherwise, so a
// burst of attack connections would leave the daemon's RSS at its peak.
inline constexpr std::size_t kTrimAfterReleasedBytes = 1u << 20;
inline constexpr std::chrono::milliseconds kTrimInterval{1'000};

class Server {
 public:
  // With options.export_mgmt (the default) the constructor registers MGMT v1.0 through
  // epm::MgmtService, answered from this Server's state at each call:
  //   inq_if_ids          interfaces() with MGMT itself last (Samba's port 135 answers EPM, MGMT)
  //   inq_stats           {calls in = ServerStats::calls, calls out = 0 (a server makes no calls),
  //                       pkts in = pdus_in, pkts out = pdus_out}, each modulo 2^32 (the
  //                       counters are u32 on the wire; DCE's wrap the same way)
  //   is_server_listening true; stop_server_listening refused (status 5)
  //   inq_princ_name      "" / rpc_s_unknown_authn_service (the runtime is unauthenticated)
  // add_interface() of the MGMT UUID v1 then returns false; turn export_mgmt off to serve it
  // yourself.
  explicit Server(asio::io_context& io, ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers a Handler for an abstract syntax. Binds are accepted for a registered interface
  // by rpc::interface_matches (same UUID and major, our minor >= the client's). Returns false
  // (and changes nothing) if the same UUID+major is already registered. `max_stub_size`: the
  // largest request stub the interface can legitimately need (size it from its IDL and its own
  // limits); a call over it is refused as soon as its fragments pass it. nullopt:
  // ServerOptions::max_stub_size.
  bool add_interface(const rpc::SyntaxId& interface, Handler handler,
                     std::optional<std::size_t> max_stub_size = std::nullopt);
  // The registered interface ids, in registration order (MGMT, registered by the constructor,
  // first when exported).
  std::vector<rpc::SyntaxId> interfaces() const;

  // ncacn_ip_tcp on every address with the same port (net.h listen_tcp_same_port: port 0 = one
  // port the kernel chooses, taken on all addresses atomically). Returns the port, or the error
  // naming the address that failed (nothing is left listening then).
  std::expected<std::uint16_t, ListenError> listen_tcp(
      const std::vector<asio::ip::address>& addresses, std::uint16_t port);
  // Serves an already listening socket (received from the broker, or inherited from systemd's
  // socket activation). Takes ownership of `fd` (closed on error too). AF_INET/AF_INET6 -> TCP
  // (returns its port), AF_UNIX -> Unix under `policy` (returns 0); only policy's uids/gids apply
  // (the file's mode and owner are whoever bound it's), and stop() closes the socket but never
  // unlinks its file (it is not ours). Errors: not a listening stream socket (EINVAL), asio errors.
  std::expected<std::uint16_t, std::error_code> adopt_listener(int fd, PeerPolicy policy = {});
  // ncalrpc over a Unix stream socket at `path` (net.h listen_unix with policy.socket).
  // Peers' SO_PEERCRED is read at accept; `policy` sets IncomingCall::may_register. The bind_ack
  // secondary address is the file name of `path`. The socket file is unlinked by stop().
  std::expected<void, ListenError> listen_unix(const std::string& path, PeerPolicy policy = {});

  // Adds a hook run exactly once per connection when it closes, for any reason (EOF - also when
  // the peer process was killed -, error, protocol close, timeout, stop()). Hooks run in
  // registration order, on the io thread, after the connection stopped reading and writing.
  // A hook must not throw.
  void on_connection_closed(std::function<void(std::uint64_t connection_id)> hook);

  // Stops accepting, closes every connection (hooks run), unlinks Unix socket files. Idempotent.
  void stop();

  // Snapshot of the counters.
  ServerStats stats() const;
  const ServerOptions& options() const { return options_; }
  asio::io_context& io() { return io_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  friend class detail::Connection;
  friend class detail::Listener;
  struct Registered {
    rpc::SyntaxId interface;
    Handler handler;
    std::optional<std::size_t> max_stub_size;
  };

  const Registered* find_interface(const rpc::SyntaxId& requested) const;
  void start_listener(std::shared_ptr<detail::Listener> listener);
  void accepted(detail::Listener& listener, int fd);
  void connection_closed(detail::Connection& c, const rpc::CloseInfo& info);
  // The time deadlines are measured in (ServerOptions::clock).
  rpc::TimePoint now() const { return clock_->now(); }
  // What every accepted connection's engine is given (timeouts, pausing, frame limits).
  const rpc::ConnectionOptions& connection_options() const { return connection_options_; }
  // ManualClock: every connection whose deadline has come acts on it (after each advance).
  void expire_due();
  // Connection readiness: epoll_ctl ADD/MOD of `fd` (data = connection id) in epoll_fd_.
  bool watch(int fd, std::uint64_t id, std::uint32_t events, bool add);
  void unwatch(int fd);
  void arm_poller();
  void on_poller_ready();
  std::uint32_t next_assoc_group_id();
  // Association groups (MS-RPCE 3.3.1.5.4) with the number of connections bound in each: a group
  // exists while one of its connections lives. Bounded by the connection count.
  void join_assoc_group(std::uint32_t id);
  void leave_assoc_group(std::uint32_t id);
  // A connection's reassembly bytes went from `before` to `after`: totals, budgets, trimming.
  void reassembly_changed(detail::Connection& c, std::size_t before, std::size_t after);
  // Closes the biggest holder (of `peer_key`'s connections, or of all with "") for `reason`.
  void close_biggest(const std::string& peer_key, CloseReason reason, std::size_t budget,
                     std::size_t held);
  // One warning for a budget close (rate-limited, see kBudgetLogBurst).
  void log_budget_close(std::uint64_t id, const std::string& peer, CloseReason reason,
                        std::size_t budget, std::size_t held);
  void schedule_trim();

  asio::io_context& io_;
  ServerOptions options_;
  std::vector<Registered> interfaces_;
  std::vector<std::shared_ptr<detail::Listener>> listeners_;
  std::unordered_map<std::uint64_t, std::shared_ptr<detail::Connection>> connections_;
  std::unordered_map<std::string, std::size_t> per_peer_;
  std::unordered_map<std::string, std::size_t> per_peer_held_;  // reassembly bytes per peer
  std::size_t released_since_trim_ = 0;
  std::chrono::steady_clock::time_point last_trim_{};
  std::unique_ptr<asio::steady_timer> trim_timer_;
  bool trim_pending_ = false;
  // Per CloseReason, so a flood of one kind of close never hides another (an operator sees
  // every budget that fired, and which).
  struct BudgetLog {
    std::chrono::steady_clock::time_point window{};
    std::size_t lines = 0;
    std::size_t suppressed = 0;
  };
  std::array<BudgetLog, static_cast<std::size_t>(CloseReason::kCount)> budget_log_{};
  std::unordered_map<uid_t, std::size_t> per_uid_local_;  // Unix connections by peer uid
  SocketOwners socket_owners_;                            // loopback TCP peers' uids
  std::size_t tcp_connections_ = 0;
  std::size_t local_connections_ = 0;
  std::vector<std::function<void(std::uint64_t)>> close_hooks_;
  std::vector<std::uint8_t> read_buffer_;  // shared by all connections (single thread)
  // Every connection socket, level-triggered; poller_ owns the descriptor and lets the
  // io_context wait for it (one wakeup per batch of ready connections).
  int epoll_fd_ = -1;
  std::unique_ptr<asio::posix::stream_descriptor> poller_;
  bool poller_armed_ = false;
  ServerStats stats_;
  // The engines' counters of the connections closed so far (stats() adds the open ones').
  rpc::ConnectionCounters closed_counters_;
  common::Clock* clock_ = nullptr;
  common::ManualClock* manual_clock_ = nullptr;  // clock_, when it is one
  std::size_t clock_subscription_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posts from other threads
  rpc::ConnectionOptions connection_options_;
  std::uint64_t next_connection_id_ = 1;
  std::uint32_t next_assoc_group_ = 0;
  std::unordered_map<std::uint32_t, std::size_t> assoc_groups_;  // id -> connections bound in it
  bool stopped_ = false;
  std::unique_ptr<epm::MgmtService> mgmt_;  // export_mgmt; its provider reads this Server
};

}  // namespace rpcgate::runtime
