// One connection-oriented DCE/RPC connection, sans-I/O, in any of three roles: the server side
// (what rpcgate-epmd and every rpcgate server run per accepted connection), the client side
// (SyncClient, rpcgate-bench) and the observer (the firewall, which sees both directions of a
// relayed stream and judges every PDU). After nghttp2/ngtcp2: bytes and the current time go in,
// what to do comes out - bytes to send (next_output), calls, answers and verdicts (through a
// ConnectionHandler), a close with its reason, and the next deadline (next_expiry, then
// on_expiry(now)). Nothing here touches a socket, a thread or a clock; the runtime keeps only its
// socket shell around it (src/runtime/server.cc, sync_client.cc, apps/rpcgate-bench/load.cc).
//
// The pipeline exists once, here: rpc::Framer (per direction; the frame limit follows the
// negotiation) -> decode_pdu -> the role's protocol object:
//   server   ServerAssociation (association.h): bind / alter_context answers, request
//            reassembly under budgets, the protocol's faults and closes;
//   client   the bind / alter_context exchange of contexts 0..n-1 and ResponseReassembler;
//   observer AssociationObserver: a verdict per PDU, and the request each response answers.
//
// Deadlines (all from ConnectionOptions; zero disables one):
//   idle      no input and nothing owed either way (no call outstanding, no output queued) for
//             idle_before_bind / idle_after_bind -> kIdleTimeout;
//   pdu       once a PDU's first byte arrived, the whole PDU within `pdu` (slowloris) ->
//             kPduTimeout (not while input is paused);
//   write     queued output without progress for `write` -> kWriteTimeout;
//   call      server: a fragmented request's fragments within ReassemblyLimits::call_timeout of
//             its FIRST -> kCallTimeout; client: a bind or call answered within `response` ->
//             kCallTimeout.
//
// Threading: none. One Connection is used by one thread at a time. Handler callbacks run inside
// feed() / on_expiry() / respond() and may call back into the Connection (respond(), close());
// the Connection finishes its current step consistently afterwards.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <variant>
#include <vector>

#include "rpc/association.h"
#include "rpc/fragments.h"
#include "rpc/framer.h"
#include "rpc/pdu.h"

namespace rpcgate::rpc {

enum class Role : std::uint8_t { kServer, kClient, kObserver };

// Why a connection ended. The first group is decided by the Connection; the second is what a
// caller passes to close() (the socket, budgets that span connections, shutdown).
enum class CloseReason : std::uint8_t {
  kProtocol,          // a protocol violation, a bind_nak, a DROP verdict; see CloseInfo::error
  kIdleTimeout,       // idle_before_bind / idle_after_bind
  kPduTimeout,        // a PDU did not complete within `pdu`
  kWriteTimeout,      // output made no progress within `write`
  kCallTimeout,       // server: a call's fragments; client: an answer, not in time
  kCallTooLarge,      // server: a call's stub over its interface's cap (fault 5 sent)
  kConnectionBudget,  // server: reassembly over ReassemblyLimits::max_held_bytes (fault 5 sent)
  kEof,               // caller: the peer closed
  kReadError,         // caller: recv() failed
  kWriteError,        // caller: send() failed
  kPeerBudget,        // caller: this peer's biggest holder, over a per-peer budget
  kServerBudget,      // caller: the server's biggest holder, over the server-wide budget
  kStopped,           // caller: shutdown
  kCount,
};
std::string_view to_string(CloseReason reason);

struct CloseInfo {
  CloseReason reason = CloseReason::kProtocol;
  std::error_code error;  // the protocol error (rpc::Errc), the socket's errno, or none
  // Budget closes (kCallTooLarge, kConnectionBudget, kCallTimeout): the limit that was passed
  // (bytes; milliseconds for kCallTimeout) and the reassembly bytes held at that moment.
  std::size_t limit = 0;
  std::size_t held = 0;
};

struct ConnectionOptions {
  std::chrono::milliseconds idle_before_bind{10'000};
  std::chrono::milliseconds idle_after_bind{300'000};
  std::chrono::milliseconds pdu{10'000};
  std::chrono::milliseconds write{30'000};
  std::chrono::milliseconds response{0};  // client only
  // Server: while this many calls await respond(), input is not processed (nor read: see
  // wants_input) - TCP back-pressure. Client: call() refuses more.
  std::size_t max_outstanding_calls = 16;
  // While more output than this is queued (a peer that does not read), input is paused.
  std::size_t max_output_bytes = 256 * 1024;
  // Frame limit before the bind is answered (binds are small; Impacket's is 72 bytes).
  std::uint16_t max_frag_before_bind = 8192;
};

// Options for a client whose caller keeps every deadline itself (a blocking client's per-call
// wait, a load generator's scan): no engine deadline, one call at a time, output never pauses
// input (the caller writes everything before it reads).
ConnectionOptions caller_timed_client_options();

// Server role: the association's configuration (interfaces, frag sizes, assoc groups,
// reassembly budgets and per-interface caps).
struct ServerRole {
  ServerConfig association;
};

// Client role: what the bind offers, and the caps on what comes back.
struct ClientRole {
  std::uint16_t max_xmit_frag = kDefaultServerMaxFrag;
  std::uint16_t max_recv_frag = kDefaultServerMaxFrag;
  ResponseLimits responses;
};

// Observer role.
struct ObserverRole {
  ObserverLimits limits;
};

using RoleConfig = std::variant<ServerRole, ClientRole, ObserverRole>;

// What a server needs to answer a dispatched call later (copied out of the ServerCall).
struct CallRef {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  DataRep drep;
  bool maybe = false;  // PFC_MAYBE: nothing is sent back
};
CallRef call_ref(const ServerCall& call);

// The client's view of a bind or alter_context answer.
struct BindResult {
  bool accepted = false;
  bool nak = false;                 // bind_nak (the server closes the connection)
  std::uint16_t reject_reason = 0;  // bind_nak provider_reject_reason
  std::uint16_t p_cont_id = 0;      // the context this answer is about (the rejected one)
  std::uint16_t result = 0;         // p_result_t result / reason of that context
  std::uint16_t reason = 0;
};

// A complete response (or fault) as the client sees it. `stub` is valid during the callback.
struct ResponseView {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  DataRep drep;
  std::span<const std::uint8_t> stub;
  std::optional<std::uint32_t> fault;  // a fault PDU ended the call: its status
};

// One judged PDU (observer). `pdu` (the PDU's bytes, to forward when allowed) is valid during
// the callback. `answers`: for a response / fault, the request it answers (call_id ->
// context, interface, opnum as the server accepted it), nullptr if none is known.
struct VerdictView {
  Direction direction = Direction::kClientToServer;
  const PduHeader* header = nullptr;  // nullptr when the bytes did not frame
  std::span<const std::uint8_t> pdu;
  const Verdict* verdict = nullptr;
  const RequestTarget* answers = nullptr;
};

// The caller's side. Every callback has a default that does nothing.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // Server: a complete call on an accepted context. Answer it exactly once, now or later, with
  // respond() / respond_fault() (keep call_ref(call)); `call.call.stub` is valid only during the
  // callback.
  virtual void on_call(ServerCall& /*call*/) {}
  // Server: the first bind was accepted and joined `assoc_group_id`.
  virtual void on_bound(std::uint32_t /*assoc_group_id*/) {}
  // Server: the bytes held for unfinished calls changed (budgets that span connections; the
  // callee may close() this or another connection).
  virtual void on_reassembly_change(std::size_t /*before*/, std::size_t /*after*/) {}
  // Client: the answer to bind() - one call for the whole exchange (accepted once every context
  // is; else the first rejection).
  virtual void on_bind_result(const BindResult& /*result*/) {}
  // Client: a call's response or fault.
  virtual void on_response(const ResponseView& /*response*/) {}
  // Observer: the verdict on one PDU (or on bytes that did not frame).
  virtual void on_verdict(const VerdictView& /*verdict*/) {}
};

// Counters of one connection (the runtime sums them for its statistics).
struct ConnectionCounters {
  std::uint64_t bytes_in = 0;
  std::uint64_t pdus_in = 0;
  std::uint64_t pdus_out = 0;
  std::uint64_t calls = 0;   // server: dispatched; client: sent
  std::uint64_t faults = 0;  // server: fault PDUs answering dispatched calls
  ConnectionCounters& operator+=(const ConnectionCounters& o) {
    bytes_in += o.bytes_in;
    pdus_in += o.pdus_in;
    pdus_out += o.pdus_out;
    calls += o.calls;
    faults += o.faults;
    return *this;
  }
};

class Connection {
 public:
  enum class State : std::uint8_t {
    kOpen,
    kClosing,  // decided to close: output is flushed first, no input is processed
    kClosed,   // close_info() says why
  };

  // `handler` must outlive the Connection (or be replaced with set_handler). `now` starts the
  // idle deadline.
  Connection(RoleConfig role, ConnectionOptions options, ConnectionHandler& handler, TimePoint now);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Role role() const;
  void set_handler(ConnectionHandler& handler) { handler_ = &handler; }

  // ---- input ----
  // Bytes received at `now` in `direction` (server: kClientToServer; client: kServerToClient;
  // observer: either). Everything is taken; while input is paused (see wants_input) it is kept
  // and processed when the pause ends - a caller should stop reading then, so what is kept is
  // at most one read. Ignored once closed.
  void feed(Direction direction, std::span<const std::uint8_t> bytes, TimePoint now);
  // Whether the caller should read: open, and (server) fewer than max_outstanding_calls calls
  // awaiting an answer and no more than max_output_bytes queued.
  bool wants_input() const;

  // ---- output (server and client) ----
  // The next bytes to send; empty when none. `fds` are descriptors to pass with the FIRST byte
  // of `bytes` (SCM_RIGHTS; attached by respond()): a chunk never spans two attachments.
  struct Output {
    std::span<const std::uint8_t> bytes;
    std::span<const int> fds;
  };
  Output next_output() const;
  // `n` bytes of next_output() were sent at `now` (n > 0 hands the fds over to the kernel: the
  // Connection forgets them; the caller still owns closing its copies).
  void output_sent(std::size_t n, TimePoint now);
  std::size_t output_bytes() const { return out_.size() - out_head_; }
  // Descriptors attached to output that will never be sent (after a close): the caller closes
  // them. Empties the list.
  std::vector<int> take_unsent_fds();

  // ---- timers ----
  std::optional<TimePoint> next_expiry() const;
  // Acts on every deadline that has come at `now` (closes with its reason).
  void on_expiry(TimePoint now);

  // ---- close ----
  // Closes at once (no flush) for a caller's reason; frees the reassembly buffers. Idempotent.
  void close(CloseReason reason, TimePoint now, std::error_code error = {});
  State state() const { return state_; }
  // Closed, or closing with nothing left to send: the caller closes its socket now.
  bool done() const {
    return state_ == State::kClosed || (state_ == State::kClosing && output_bytes() == 0);
  }
  const CloseInfo& close_info() const { return close_; }

  // ---- server ----
  // Answers a dispatched call: the stub as response fragments of the negotiated size (fds with
  // the FIRST fragment), or a fault with `status` (PFC_DID_NOT_EXECUTE for nca_s_op_rng_error,
  // as Windows). Nothing is sent for a PFC_MAYBE call. Ignored once closed (fds then come back
  // from take_unsent_fds). A stub the fragmenter refuses is answered fault nca_s_fault_unspec.
  void respond(const CallRef& call, std::span<const std::uint8_t> stub, TimePoint now,
               std::vector<int> fds = {});
  void respond_fault(const CallRef& call, std::uint32_t status, TimePoint now);
  std::size_t outstanding_calls() const { return outstanding_; }
  // Bytes held for unfinished calls (as last reported through on_reassembly_change).
  std::size_t reassembly_held() const;
  // The server association (contexts, negotiated sizes); nullptr in other roles.
  const ServerAssociation* server() const;

  // ---- client ----
  // Binds contexts 0..n-1 to `interfaces` (NDR 2.0 each): 0 in the bind, each other one in its
  // own alter_context once the previous answer came (one new context per bind / alter_context,
  // association.h). on_bind_result() tells the outcome. Once per connection (a second bind is
  // refused by every server, and dropped by a firewall): false if not open, bind() was called
  // before, or `interfaces` is empty.
  bool bind(std::span<const SyntaxId> interfaces, TimePoint now);
  bool bound() const;
  // Sends a request (fragmented at the negotiated size). Returns its call_id, or 0 when not
  // bound, closed, `p_cont_id` is not one of the contexts bind() had accepted (a server answers
  // such a request nca_s_unk_if, and a firewall drops it), over max_outstanding_calls, or the
  // stub cannot be fragmented.
  std::uint32_t call(std::uint16_t p_cont_id, std::uint16_t opnum,
                     std::span<const std::uint8_t> stub, TimePoint now,
                     std::optional<Uuid> object = std::nullopt);
  // Negotiated values (0 / empty before the bind_ack).
  std::uint16_t max_xmit_frag() const;
  std::uint32_t assoc_group_id() const;
  std::string_view secondary_address() const;

  // ---- observer ----
  const AssociationObserver* observer() const;
  // The observer's zero-copy path, for a relay that passes request and response bodies on
  // unseen (splice): `head` is the first head_size() bytes of ONE request or response PDU - its
  // 16-byte header and the fixed body fields (call, context, opnum, object) - while nothing of
  // `direction` is buffered (between whole PDUs). The PDU is judged exactly as feed() would judge
  // it, on everything but its stub: the same checks, verdict (VerdictView::pdu is `head`),
  // answered request and deadlines; an auth trailer's presence is known (auth_length), its
  // contents are not (AuthTrailer left empty). The caller forwards the remaining
  // frag_length - head.size() bytes only if the verdict allowed the PDU. Anything else (another
  // type, the wrong size, bytes buffered): the connection closes with a protocol error.
  void feed_head(Direction direction, std::span<const std::uint8_t> head, TimePoint now);
  // How many bytes feed_head() needs for the PDU whose 16-byte common header is `header`: the
  // fixed part of a request (24, or 40 with an object UUID) or response (24); 0 for every other
  // type (read those whole and feed() them).
  static std::size_t head_size(std::span<const std::uint8_t, kCommonHeaderSize> header);
  // Observer: bytes of an incomplete PDU held from `direction` (a peer that closes now cut it).
  std::size_t partial_bytes(Direction direction) const;

  const ConnectionCounters& counters() const { return counters_; }

 private:
  struct ServerPart {
    explicit ServerPart(ServerConfig config) : assoc(std::move(config)) {}
    ServerAssociation assoc;
    bool bound_reported = false;
    std::size_t held = 0;  // reassembly bytes as last reported
  };
  struct ClientPart {
    explicit ClientPart(const ClientRole& c);
    ClientRole config;
    ResponseReassembler responses;
    std::vector<SyntaxId> binding;   // interfaces of the bind in progress
    std::size_t next_context = 0;    // the context whose answer is awaited
    std::uint32_t bind_call_id = 0;  // 0: no bind / alter_context outstanding
    bool bind_started = false;
    bool bound = false;
    std::uint16_t max_xmit_frag = 0;
    std::uint32_t assoc_group_id = 0;
    std::string sec_addr;
    std::uint32_t next_call_id = 1;
    // Calls awaiting their answer: call_id, when sent (for `response`). A vector: at most
    // max_outstanding_calls, usually one, and no node allocation per call.
    std::vector<std::pair<std::uint32_t, TimePoint>> waiting;
    std::optional<TimePoint> bind_sent;
  };
  struct ObserverPart {
    ObserverPart(ObserverLimits l, std::uint16_t max_frag_before_bind);
    ObserverLimits limits;
    AssociationObserver observer;
    Framer server_framer;  // server -> client (framer_ frames client -> server)
    std::unordered_map<std::uint32_t, RequestTarget> requests;  // allowed, awaiting an answer
    std::optional<TimePoint> server_pdu_deadline;
    bool negotiated = false;
  };

  bool paused() const;
  void process(TimePoint now);
  // Runs the role's input loop over `data` (consumed from the front) under the reentrancy guard.
  void input(std::span<const std::uint8_t>& data, TimePoint now);
  void server_input(std::span<const std::uint8_t>& data, TimePoint now);
  void server_apply(Decision d, const CloseInfo& info, TimePoint now);
  void sync_held();
  void client_input(std::span<const std::uint8_t>& data, TimePoint now);
  void client_pdu(Pdu&& pdu, TimePoint now);
  void client_single_response(const PduHeader& h, std::span<const std::uint8_t> frame);
  void client_bind_answer(const Pdu& pdu, TimePoint now);
  void send_bind_step(TimePoint now);
  void observer_input(Direction d, std::span<const std::uint8_t> data, TimePoint now);
  void observer_pdu(Direction d, std::span<const std::uint8_t> frame);
  static std::expected<Pdu, std::error_code> decode_head(std::span<const std::uint8_t> frame);
  void observer_decoded(Direction d, std::expected<Pdu, std::error_code> pdu,
                        std::span<const std::uint8_t> frame);
  void queue(std::span<const std::uint8_t> bytes, TimePoint now);
  void queued(TimePoint now);  // after appending to out_
  void fault_out(const CallRef& call, std::uint32_t status, TimePoint now);
  void closing(const CloseInfo& info);  // flush, then closed
  void closed(const CloseInfo& info);
  // The next PDU of `data` (consumed from the front): in place when it arrived whole, else
  // through framer_ (buffered: pop() it after use). Empty bytes and no error: the framer holds a
  // partial PDU. An error: the framer's (it stays failed), `data` emptied.
  struct Frame {
    std::span<const std::uint8_t> bytes;
    bool buffered = false;
    std::error_code error;
  };
  Frame next_frame(std::span<const std::uint8_t>& data);
  void refresh_pdu_deadline(TimePoint now);
  void after_answer(TimePoint now);

  ConnectionOptions options_;
  ConnectionHandler* handler_;
  std::variant<ServerPart, ClientPart, ObserverPart> part_;
  Framer framer_;  // input of a server / client; client -> server of an observer
  std::vector<std::uint8_t> pending_in_;  // input kept while paused
  std::vector<std::uint8_t> spare_stub_;  // the last call's stub buffer, for the next decode
  std::vector<std::uint8_t> out_;         // queued output; out_head_ = first unsent byte
  std::size_t out_head_ = 0;
  struct Attachment {
    std::size_t at = 0;  // offset in out_
    std::vector<int> fds;
  };
  std::vector<Attachment> attachments_;
  std::vector<int> unsent_fds_;  // attached to output that will not be sent
  std::size_t outstanding_ = 0;
  TimePoint last_activity_;
  std::optional<TimePoint> pdu_deadline_;
  std::optional<TimePoint> write_deadline_;
  ConnectionCounters counters_;
  CloseInfo close_;
  State state_ = State::kOpen;
  bool in_process_ = false;
};

}  // namespace rpcgate::rpc
