// Presentation contexts and the association state machine of connection-oriented DCE/RPC
// (C706 §12.4 "connection-oriented protocol machines", §12.6.4.1-5 bind/alter_context PDUs;
// [MS-RPCE] 3.3.1.5 server behaviour, 3.3.1.5.3 bind-time feature negotiation). Sans-I/O: every
// function takes decoded PDUs (pdu.h) and returns a value that says what to do; nothing here
// touches a socket, a clock or a thread.
//
// Three pieces sharing one context table:
//
// * ContextTable - p_cont_id -> {abstract syntax, transfer syntax, state}, bounded, with the
//   consistency rules both sides need (no redefinition of an accepted context, no duplicate
//   p_cont_id with different syntaxes inside one bind).
// * ServerAssociation - the server side of one connection: answers bind / alter_context with
//   bind_ack / alter_context_resp / bind_nak, turns request fragments into calls bound to an
//   accepted context, and closes the connection on every protocol violation (fail closed).
// * AssociationObserver - the firewall's view of one connection: fed the PDUs of both
//   directions, it tracks the contexts *the server accepted* (results matched by position to
//   the pending bind's items) and gives every PDU a verdict, ALLOW or DROP(reason). It never
//   stops inspecting: after a DROP everything is DROP.
//
// Decisions taken here (which peer's behaviour they follow):
// * Fragment sizes: negotiated = min(max(1432, min(client max_xmit_frag, client max_recv_frag)),
//   server max (5840)) & ~7, used for both directions. This is Samba's rule (dcesrv_core.c;
//   epm-and-ports.md §2.4) with C706's MUST_RECV_FRAG_SIZE 1432 as the floor instead of Samba's
//   2048, so a client that offers 1432..2047 is never sent more than it offered. Impacket offers
//   4280/4280 and gets 4280 (the golden bind_ack, §7.7).
// * assoc_group_id: a client's non-zero id is echoed (validating group membership belongs to the
//   runtime, which owns the groups); 0 gets ServerConfig::new_assoc_group_id (the caller
//   allocates it; must be non-zero).
// * Transfer syntaxes: per item the first offered syntax the server accepts wins (NDR 2.0
//   always; NDR64 only with ServerConfig::accept_ndr64, else provider_rejection /
//   proposed_transfer_syntaxes_not_supported, as Samba does on EPM).
// * Bind-time feature negotiation (MS-RPCE 3.3.1.5.3): an item whose transfer syntaxes include a
//   6cb71c2c-9812-4540-... syntax, and none the server accepts, is answered once per bind with
//   result negotiate_ack and reason = requested & ServerConfig::supported_features (Windows
//   does this whatever the abstract syntax). Default supported bits: 0x02 "keep connection on
//   orphan" only - orphaned/co_cancel abandon the call and the connection stays open, which is
//   what that bit promises; 0x01 "security context multiplexing" is not claimed because there is
//   no authentication yet. In alter_context (not "bind time") such items are rejected (reason 2).
// * Second bind: bind_nak reason_not_specified, then close (Samba's answer; Windows treats it as
//   a protocol error and closes).
// * Authenticated bind: bind_nak authentication_type_not_recognized (8), then close, until
//   authentication exists.
// * alter_context re-defining an accepted p_cont_id: protocol error, close (Windows keeps the old
//   definition, Samba replaces it; we refuse both, firewalls.md C7). Re-sending the identical
//   definition is idempotent: acceptance with the transfer syntax accepted before.
// * Request on a p_cont_id not accepted: fault nca_s_unk_if (0x1c010003, what Windows returns)
//   with PFC_DID_NOT_EXECUTE, then close. The context is never guessed.
// * Other protocol errors after bind (byte order change, fragment rule violations, frag_length
//   over the negotiated max_recv_frag, too many calls): fault nca_s_proto_error with
//   PFC_DID_NOT_EXECUTE on that call_id, then close. Before bind: close without a reply.
// * A request over a memory cap - its stub over the cap of its interface (kStubTooLarge), or the
//   connection's unfinished calls over ReassemblyLimits::max_held_bytes (kReassemblyBudget):
//   fault 5 (access denied) with PFC_DID_NOT_EXECUTE, then close. Samba does the same
//   (dcesrv_core.c: "payload too large" -> DCERPC_FAULT_ACCESS_DENIED and disconnect; its cap is
//   max_total_request_size, 4 MiB); Samba does not set DID_NOT_EXECUTE, but the call did not run.
// * A call whose fragments do not all arrive within ReassemblyLimits::call_timeout of its FIRST
//   fragment: handle_expiry() closes without a reply (kCallTimeout), as a PDU timeout does.
// * Every bind_nak ends the association (the connection is closed after sending it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rpc/fragments.h"
#include "rpc/pdu.h"

namespace rpcgate::rpc {

// C706 §12.6.3.1: the fragment size every implementation must be able to receive.
inline constexpr std::uint16_t kMustRecvFragSize = 1432;
// What Windows and Samba offer on ncacn_ip_tcp (epm-and-ports.md §2.4).
inline constexpr std::uint16_t kDefaultServerMaxFrag = 5840;
// Accepted contexts are a handful in practice; Suricata stops at 64 (firewalls.md §2.1).
inline constexpr std::size_t kDefaultMaxContexts = 64;

// ---- Interface matching --------------------------------------------------------------------

// C706 §12.6.3.1 / Appendix interface version rules: an offered interface `offered` satisfies a
// requested abstract syntax when the UUIDs are equal, the major versions are equal and the
// server's minor version is >= the requested minor.
bool interface_matches(const SyntaxId& offered, const SyntaxId& requested);

// Whether the server offers the abstract syntax a client asks for.
using InterfaceLookup = std::function<bool(const SyntaxId& requested)>;

// An InterfaceLookup over a fixed list using interface_matches().
InterfaceLookup make_interface_lookup(std::vector<SyntaxId> offered);

// ---- The context table -----------------------------------------------------------------------

enum class ContextState : std::uint8_t {
  kAccepted,      // result acceptance: requests may use it
  kRejected,      // user/provider rejection
  kNegotiateAck,  // bind-time feature negotiation item: never usable for requests
};

struct PresentationContext {
  std::uint16_t p_cont_id = 0;
  SyntaxId abstract_syntax;  // as the client named it
  SyntaxId transfer_syntax;  // the accepted one; nil for rejected / negotiate_ack entries
  ContextState state = ContextState::kRejected;
  friend bool operator==(const PresentationContext&, const PresentationContext&) = default;
};

// p_cont_id -> PresentationContext for one association, at most max_contexts entries (any
// state). Accepted entries are immutable for the life of the association; rejected /
// negotiate_ack entries may be replaced by a later alter_context.
class ContextTable {
 public:
  explicit ContextTable(std::size_t max_contexts = kDefaultMaxContexts)
      : max_contexts_(max_contexts) {}

  // The entry for p_cont_id, or nullptr.
  const PresentationContext* find(std::uint16_t p_cont_id) const;
  // The entry only if it is kAccepted, else nullptr.
  const PresentationContext* accepted(std::uint16_t p_cont_id) const;

  // Checks the items of one bind / alter_context before anything is recorded:
  // * kDuplicateContextId: the same p_cont_id appears twice with a different abstract syntax or
  //   a different transfer syntax list (firewalls.md C5; identical repeats are allowed);
  // * kContextRedefined: a p_cont_id already accepted is offered with a different abstract
  //   syntax, or without the transfer syntax accepted before (firewalls.md C7).
  std::expected<void, std::error_code> check_offer(std::span<const ContextElement> items) const;

  // Records an outcome. Re-recording an accepted p_cont_id with the identical entry is a no-op;
  // anything else for an accepted p_cont_id is kContextRedefined. A new p_cont_id beyond
  // max_contexts is kTooManyContexts. Nothing changes on error.
  std::expected<void, std::error_code> record(const PresentationContext& context);

  // Whether record() of a new p_cont_id would fit (existing ids always fit).
  bool has_room_for(std::uint16_t p_cont_id) const;

  std::span<const PresentationContext> entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }
  std::size_t max_contexts() const { return max_contexts_; }

 private:
  std::vector<PresentationContext> entries_;  // linear search: bounded by max_contexts (64)
  std::size_t max_contexts_;
};

// ---- Helpers -------------------------------------------------------------------------------

// A 32-byte fault PDU (C706 §12.6.4.7): alloc_hint 0, cancel_count 0, no stub, in `drep`,
// pfc_flags FIRST|LAST|extra_pfc_flags (e.g. pfc::kDidNotExecute). The golden
// nca_s_op_rng_error fault of epm-and-ports.md §7.7 is build_fault(1, 0, 0x1c010002, LE).
std::vector<std::uint8_t> build_fault(std::uint32_t call_id, std::uint16_t p_cont_id,
                                      std::uint32_t status, DataRep drep,
                                      std::uint8_t extra_pfc_flags = 0);

// ---- Server side -----------------------------------------------------------------------------

struct ServerConfig {
  // Required: which abstract syntaxes the server offers (e.g. make_interface_lookup({EPM})).
  // An empty function offers nothing.
  InterfaceLookup interfaces;
  // NDR64 (kNdr64Syntax) accepted as a transfer syntax. NDR 2.0 always is.
  bool accept_ndr64 = false;
  // Bind-time feature bits answered in negotiate_ack (requested & supported).
  std::uint64_t supported_features = kBtfnKeepConnectionOnOrphan;
  // The server's fragment size limit for both directions (clamped to 1432..65535, & ~7).
  std::uint16_t max_frag = kDefaultServerMaxFrag;
  // bind_ack secondary address: the port this connection was accepted on, e.g. "135"
  // (sent as sec_addr "135\0"; empty -> sec_addr_len 0).
  std::string secondary_address;
  // assoc_group_id given to a bind with assoc_group_id 0. Must be non-zero.
  std::uint32_t new_assoc_group_id = 1;
  // Contexts per association (all states, bind + every alter_context). Items beyond it are
  // answered provider_rejection / local_limit_exceeded.
  std::size_t max_contexts = kDefaultMaxContexts;
  ReassemblyLimits reassembly;
  // The largest request stub of a call on a context bound to `abstract_syntax` (asked once per
  // accepted context): the interface's own cap. nullopt, or an empty function: reassembly.
  // max_stub_size. A FIRST fragment decides the context, so it also decides the cap.
  std::function<std::optional<std::size_t>(const SyntaxId& abstract_syntax)> stub_limit;
};

// A complete call, with the context it was sent on.
struct DispatchCall {
  Call call;
  SyntaxId abstract_syntax;
  SyntaxId transfer_syntax;
};

// What to do with one input PDU.
struct Decision {
  enum class Action : std::uint8_t {
    kSend,             // write `pdu` (one write; Impacket reads the bind_ack with one recv)
    kDispatch,         // run `call`
    kCloseConnection,  // write `pdu` if non-empty (bind_nak / fault), then close; see `reason`
    kIgnore,           // nothing to do (a fragment that needs more, or a harmless PDU)
  };
  Action action = Action::kIgnore;
  std::vector<std::uint8_t> pdu;
  std::optional<DispatchCall> call;
  std::error_code reason;  // kCloseConnection: why; kIgnore: optional note (e.g. kUnknownCall)
};

// The server side of one connection (C706 §12.4.2 server association machine, simplified to
// what a stream transport needs). One instance per accepted TCP connection.
//
// States: kUnbound -> (bind accepted) kBound -> (any close decision) kClosed. kClosed is sticky:
// every later input returns kCloseConnection / kAssociationClosed.
//
// Input PDUs come from the client (decode_pdu() output). Per type:
// * bind -> handle_bind; alter_context -> handle_alter_context; request -> handle_request.
// * co_cancel / orphaned: a call still being reassembled is abandoned (kIgnore); for any other
//   call_id kIgnore with reason kUnknownCall (C706 lets the server ignore cancels it cannot
//   match). Before bind: close (kRequestBeforeBind).
// * auth3: close (kUnexpectedPdu) - no authentication was negotiated.
// * shutdown and every server->client type (response, fault, bind_ack, bind_nak,
//   alter_context_resp): close (kUnexpectedPdu).
// After bind, every PDU's packed_drep (integer and character/float format bytes) must equal the
// bind's (kByteOrderChanged); a PDU carrying an auth trailer is kAuthNotSupported.
class ServerAssociation {
 public:
  enum class State : std::uint8_t { kUnbound, kBound, kClosed };

  explicit ServerAssociation(ServerConfig config);

  // Dispatches on the PDU type (see above). `now`: when the PDU arrived (the call deadline of a
  // fragmented request counts from its FIRST fragment's `now`).
  Decision handle(Pdu pdu, TimePoint now = {});

  // bind (C706 §12.6.4.3). kSend(bind_ack) or kCloseConnection(bind_nak) with reason:
  // kBindAlreadyDone (reason_not_specified), kUnsupportedVersion (protocol_version_not_supported,
  // only for a Pdu not made by decode_pdu, which rejects such versions itself),
  // kAuthNotSupported (authentication_type_not_recognized), kFragmentedBind, kNoContextItems,
  // kDuplicateContextId (reason_not_specified). bind_ack: call_id echoed, drep and
  // rpc_vers_minor mirrored from the bind (as Samba), pfc_flags FIRST|LAST, negotiated frag
  // sizes, assoc_group_id, sec_addr, one result per item in order:
  //   acceptance + chosen transfer syntax; negotiate_ack (reason = feature bits);
  //   provider_rejection + abstract_syntax_not_supported / proposed_transfer_syntaxes_not_
  //   supported (also for an item with n_transfer_syn == 0) / local_limit_exceeded.
  // Rejected results carry a nil transfer syntax (as Windows and Samba).
  Decision handle_bind(const Pdu& pdu);

  // alter_context (C706 §12.6.4.1). kSend(alter_context_resp: same result rules, no feature
  // negotiation, empty sec_addr as Windows sends) or kCloseConnection without a reply:
  // kAlterBeforeBind, kByteOrderChanged, kAuthNotSupported, kFragmentedBind, kNoContextItems,
  // kDuplicateContextId, kContextRedefined.
  Decision handle_alter_context(const Pdu& pdu);

  // request (C706 §12.6.4.9): feeds the RequestReassembler. kDispatch when a call completes,
  // kIgnore while it needs more fragments, kCloseConnection on: kRequestBeforeBind (no reply),
  // kContextNotAccepted (fault nca_s_unk_if), kByteOrderChanged, kAuthNotSupported,
  // kFragTooLong (frag_length > negotiated max_recv_frag), and the reassembler's errors
  // (kDuplicateFirstFragment, kUnknownCall, kFragmentMismatch, kStubTooLarge, kTooManyCalls)
  // - all with fault nca_s_proto_error on the request's call_id - and kStubTooLarge (over the
  // context's stub_limit) / kReassemblyBudget (over reassembly.max_held_bytes) with fault 5,
  // access denied.
  Decision handle_request(Pdu pdu, TimePoint now = {});

  // The call deadline (sans-I/O: the caller owns the timer). call_expiry(): when the oldest
  // unfinished call's time runs out (nullopt: none open). handle_expiry(now): kCloseConnection
  // with kCallTimeout and no reply if that time has come at `now`, else kIgnore.
  std::optional<TimePoint> call_expiry() const { return reassembler_.expiry(); }
  Decision handle_expiry(TimePoint now);
  // Bytes allocated for the stubs of unfinished calls (RequestReassembler::held_bytes()).
  std::size_t reassembly_held_bytes() const { return reassembler_.held_bytes(); }
  // The stub cap of calls on p_cont_id (stub_limit's answer, else reassembly.max_stub_size).
  std::size_t stub_cap(std::uint16_t p_cont_id) const;
  // Closes the association (sticky kClosed) and frees the unfinished calls' buffers: for a
  // connection the runtime closes on its own (a budget, a timeout).
  void abort();

  // For input that did not decode (the framer's / decode_pdu()'s error and the raw bytes, which
  // may be shorter than a header). A bind whose only fault is its version (kBadVersion) gets
  // bind_nak protocol_version_not_supported listing 5.0 (C706 §12.6.4.5
  // p_rt_versions_supported); everything else closes without a reply. Always kCloseConnection.
  Decision handle_malformed(std::error_code error, std::span<const std::uint8_t> raw);

  // Encoded response fragments for `call` carrying `stub`, at most max_xmit_frag() bytes each,
  // in the call's byte order (split_response()).
  std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> build_response(
      const Call& call, std::span<const std::uint8_t> stub) const;

  State state() const { return state_; }
  const ContextTable& contexts() const { return contexts_; }
  // Negotiated sizes (0 before bind). Frame client input with max_recv_frag().
  std::uint16_t max_xmit_frag() const { return max_xmit_frag_; }
  std::uint16_t max_recv_frag() const { return max_recv_frag_; }
  std::uint32_t assoc_group_id() const { return assoc_group_id_; }
  // Feature bits granted in negotiate_ack (0 if none).
  std::uint64_t features() const { return features_; }
  // The bind's packed_drep (meaningful once bound).
  const DataRep& drep() const { return drep_; }
  const ServerConfig& config() const { return config_; }

 private:
  Decision close(std::error_code reason, std::vector<std::uint8_t> pdu = {});
  Decision nak(std::uint32_t call_id, DataRep drep, std::uint16_t reject_reason,
               std::error_code why);
  Decision proto_fault(const Pdu& pdu, std::uint32_t status, std::error_code why);
  // Per-item negotiation; records the outcome in contexts_.
  ContextResult negotiate(const ContextElement& item, bool bind_time, bool& features_answered);
  bool transfer_acceptable(const SyntaxId& transfer) const;
  bool drep_matches(const DataRep& drep) const;

  ServerConfig config_;
  State state_ = State::kUnbound;
  ContextTable contexts_;
  // stub_limit's answer per accepted p_cont_id (bounded by max_contexts).
  std::unordered_map<std::uint16_t, std::size_t> stub_caps_;
  RequestReassembler reassembler_;
  DataRep drep_;
  std::uint8_t rpc_vers_minor_ = 0;
  std::uint16_t max_xmit_frag_ = 0;
  std::uint16_t max_recv_frag_ = 0;
  std::uint32_t assoc_group_id_ = 0;
  std::uint64_t features_ = 0;
};

// ---- Firewall side ---------------------------------------------------------------------------

enum class Direction : std::uint8_t { kClientToServer, kServerToClient };

// What a client request targets, as the server accepted it.
struct RequestTarget {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;
  SyntaxId abstract_syntax;  // interface UUID + version
  SyntaxId transfer_syntax;
  std::optional<Uuid> object;
  bool first_fragment = false;  // the decision point (later fragments must agree with it)
};

struct Verdict {
  enum class Action : std::uint8_t { kAllow, kDrop };
  Action action = Action::kDrop;
  // kDrop: why. kAllow: normally empty; kUnsolicitedResponse marks a response/fault for a
  // call_id never requested, which is let through (it can only reach the client) but logged.
  std::error_code reason;
  std::optional<RequestTarget> request;  // kAllow of a client request
  bool allowed() const { return action == Action::kAllow; }
};

struct ObserverLimits {
  std::size_t max_contexts = kDefaultMaxContexts;
  std::size_t max_calls_in_progress = 16;    // multi-fragment requests awaiting LAST
  std::size_t max_outstanding_calls = 1024;  // requests awaiting a response (Suricata max-tx)
};

// Watches one connection in both directions, in the order the bytes were seen, and decides per
// PDU. Fail closed: the first DROP is sticky (every later input is DROP / kAssociationClosed),
// so a caller can never "stop inspecting" and keep forwarding.
//
// Client -> server:
// * bind: DROP if already bound or bind_nak'ed (kBindAlreadyDone), fragmented (kFragmentedBind),
//   no items (kNoContextItems), an item without transfer syntaxes (kNoTransferSyntaxes),
//   duplicate p_cont_id with different syntaxes (kDuplicateContextId), more items than the
//   context limit (kTooManyContexts). pfc_flags 0x00 is a complete bind (Windows 2022 accepts
//   it, firewalls.md B9). Authenticated binds are allowed; auth3 is then allowed once bound.
// * alter_context: DROP before bind (kAlterBeforeBind), while a bind/alter is pending
//   (kPresentationPending), plus the bind checks and kContextRedefined.
// * request: DROP before bind_ack (kRequestBeforeBind - also for a request pipelined behind the
//   bind), on a p_cont_id not accepted (kContextNotAccepted), frag_length over the bind_ack's
//   max_recv_frag (kFragTooLong), and per-call fragment rules as RequestReassembler (first
//   fragment decides; later ones must agree on p_cont_id, opnum, object: kFragmentMismatch,
//   kUnknownCall, kDuplicateFirstFragment, kTooManyCalls). ALLOW carries the RequestTarget.
// * co_cancel / orphaned: only for a live call (being sent or awaiting its response), else
//   DROP kUnknownCall. auth3: only after an authenticated bind_ack (else kUnexpectedPdu).
// * every other type (server types, shutdown): DROP kUnexpectedPdu.
// Every client PDU after the bind must keep the bind's packed_drep (kByteOrderChanged).
//
// Server -> client:
// * bind_ack / alter_context_resp: must answer the pending bind / alter_context (same call_id,
//   else kUnsolicitedBindAck) with exactly one result per item (kResultCountMismatch); an
//   acceptance must name a transfer syntax the item offered that is not a feature-negotiation
//   syntax, negotiate_ack only answers a bind item offering one, results are 0..3
//   (kInvalidContextResult); a re-offered accepted context must come back accepted with the same
//   transfer syntax (kContextRedefined). Sets the frame size limits per direction.
// * bind_nak: only for a pending bind (kUnsolicitedBindAck); the association is rejected, so any
//   later client PDU is DROP kAssociationClosed.
// * response / fault: frag_length over the bind_ack's max_xmit_frag is kFragTooLong; a call_id
//   never requested is ALLOW with reason kUnsolicitedResponse. shutdown: ALLOW.
// * every client type from the server: DROP kUnexpectedPdu.
// The server's packed_drep is fixed by its first PDU (it may differ from the client's).
class AssociationObserver {
 public:
  explicit AssociationObserver(ObserverLimits limits = {});

  Verdict observe(Direction direction, const Pdu& pdu);
  // For input that did not frame or decode: always DROP with that error.
  Verdict observe_error(Direction direction, std::error_code error);

  bool dropped() const { return dropped_; }
  bool bound() const { return phase_ == Phase::kBound; }
  const ContextTable& contexts() const { return contexts_; }
  // From the bind_ack (0 before): frame client input with max_recv_frag(), server input with
  // max_xmit_frag().
  std::uint16_t max_recv_frag() const { return max_recv_frag_; }
  std::uint16_t max_xmit_frag() const { return max_xmit_frag_; }

 private:
  enum class Phase : std::uint8_t { kIdle, kBindPending, kBound, kRejected };
  struct Pending {
    bool is_bind = false;
    std::uint32_t call_id = 0;
    bool authenticated = false;
    std::vector<ContextElement> items;
  };
  struct OpenCall {
    std::uint16_t p_cont_id = 0;
    std::uint16_t opnum = 0;
    std::optional<Uuid> object;
  };

  Verdict drop(std::error_code reason);
  Verdict client_pdu(const Pdu& pdu);
  Verdict server_pdu(const Pdu& pdu);
  Verdict offer(const Pdu& pdu, const BindBody& body, bool is_bind);
  Verdict answer(const Pdu& pdu, const BindAckBody& body, bool is_bind);
  Verdict request(const Pdu& pdu, const Request& q);
  bool live_call(std::uint32_t call_id) const;

  ObserverLimits limits_;
  Phase phase_ = Phase::kIdle;
  bool dropped_ = false;
  bool authenticated_ = false;
  ContextTable contexts_;
  std::optional<Pending> pending_;
  std::optional<DataRep> client_drep_;
  std::optional<DataRep> server_drep_;
  std::uint16_t max_recv_frag_ = 0;
  std::uint16_t max_xmit_frag_ = 0;
  std::unordered_map<std::uint32_t, OpenCall> open_calls_;  // fragments still coming
  std::unordered_set<std::uint32_t> outstanding_;           // requests awaiting a response
};

}  // namespace rpcgate::rpc
