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
// * Fragment sizes: negotiated = min(max(2048, min(client max_xmit_frag, client max_recv_frag)),
//   server max (5840)) & ~7, used for both directions. This is what Windows answers (Samba's
//   raw_protocol test_neg_xmit_*, checked against Windows: 0/0 -> 2048, 3199/0xffff -> 3192,
//   0xffff/0xffff -> 5840) and Samba's rule (dcesrv_core.c). rpcgate used C706's
//   MUST_RECV_FRAG_SIZE 1432 as the floor before; it follows Windows now (a client offering less
//   than 2048 is told 2048, as Windows tells it). Impacket offers 4280/4280 and gets 4280.
//   Incoming request fragments are accepted up to the server max (5840), whatever was negotiated,
//   as Windows does; over it: fault nca_s_proto_error on p_cont_id 0 (no DID_NOT_EXECUTE), close.
// * pfc_flags of bind / alter_context: any combination is a complete PDU (Windows accepts FIRST
//   alone, LAST alone, 0x00 and 0xff; C706 never fragments them). rpcgate used to bind_nak a
//   bind with FIRST xor LAST (docs/evasions.md B10); it follows Windows now. The answer carries
//   FIRST|LAST plus the client's SUPPORT_HEADER_SIGN, and CONC_MPX when the client asked for it
//   and this bind / alter_context accepted a new context (multiplexing is then granted, MS-RPCE
//   3.3.1.5.1; Windows answers a CONC_MPX alter_context that only re-offers with FIRST|LAST).
// * assoc_group_id: 0 gets ServerConfig::new_assoc_group_id (the caller allocates it; must be
//   non-zero); a client's non-zero id is echoed if ServerConfig::assoc_group_exists says a live
//   connection is bound in that group, else bind_nak reason_not_specified and close - Windows'
//   answer (raw_protocol test_assoc_group_fail1/2; rpcgate echoed any id before).
// * Transfer syntaxes: per item the first offered syntax the server accepts wins (NDR 2.0
//   always; NDR64 only with ServerConfig::accept_ndr64, else provider_rejection /
//   proposed_transfer_syntaxes_not_supported, as Samba does on EPM).
// * Bind-time feature negotiation (MS-RPCE 3.3.1.5.3): an item whose FIRST transfer syntax is a
//   6cb71c2c-9812-4540-... syntax is answered negotiate_ack with reason = requested &
//   ServerConfig::supported_features, whatever its abstract syntax and other syntaxes (Windows:
//   raw_protocol test_no_auth_bind_time_*; a feature syntax further down the list is an unknown
//   transfer syntax). Two such items in one bind: bind_nak reason_not_specified (Windows).
//   Default supported bits: both, as Windows answers: 0x02 "keep connection on orphan" -
//   orphaned/co_cancel never close the connection - and 0x01 "security
//   context multiplexing" (rpcgate claimed only 0x02 before; without authentication there is a
//   single, null, security context, so the promise holds trivially). In alter_context (not
//   "bind time") such items go through the ordinary rules (no acceptable transfer syntax).
// * One presentation context per bind / alter_context: the first acceptable item is accepted,
//   every later item is provider_rejection / proposed_transfer_syntaxes_not_supported (or
//   abstract_syntax_not_supported for an interface not offered) (Windows,
//   test_no_auth_presentation_ctx_no_ndr64; a Windows client's NDR64 + NDR + feature bind gets
//   exactly that). rpcgate accepted every acceptable item before.
// * An item without transfer syntaxes: bind_nak reason_not_specified in a bind, fault
//   nca_s_proto_error in an alter_context, then close (Windows; rpcgate rejected the item before).
// * Second bind: bind_nak reason_not_specified, then close (Windows and Samba: raw_protocol
//   test_no_auth_valid_valid_request; this comment said Windows closed without one before).
// * Authenticated bind: bind_nak authentication_type_not_recognized (8) for auth_level
//   connect..privacy, reason_not_specified (0) for any other level (as Windows), then close,
//   until authentication exists. A bind whose auth_length does not fit (no trailer): bind_nak
//   protocol_version_not_supported (4), as Windows. bind_nak bodies are zero-padded to 4 bytes.
// * alter_context re-offering an accepted p_cont_id: with another abstract syntax, or without
//   the accepted transfer syntax but with the other NDR flavour, fault nca_s_proto_error and
//   close (docs/evasions.md C7; Windows, test_no_auth_presentation_ctx_invalid4 - Samba, without
//   NDR64, fails that test); with the same abstract syntax it is accepted again with the transfer
//   syntax accepted before if that one is offered, else (only unknown syntaxes) the item is
//   rejected (proposed_transfer_syntaxes_not_supported) and the context keeps its definition -
//   Windows' answer (test_no_auth_presentation_ctx_valid2; rpcgate closed before).
// * Request on a p_cont_id not accepted: fault nca_s_unk_if (0x1c010003) on p_cont_id 0 with
//   PFC_DID_NOT_EXECUTE, and the connection stays open: Windows' answer (raw_protocol
//   test_no_auth_presentation_ctx_invalid1; rpcgate closed before). The context is never guessed.
// * A request carrying an auth trailer (no authentication negotiated): fault access_denied (5)
//   without DID_NOT_EXECUTE, then close (Windows).
// * Faults carry alloc_hint 24 (non-zero, as Windows and Samba).
// * Other protocol errors after bind (byte order change, fragment rule violations, too many
//   calls): fault nca_s_proto_error with PFC_DID_NOT_EXECUTE on that call_id (without it for a
//   fragment of no call, as Windows), then close. Before bind: close without a reply.
// * One call in reassembly at a time (Windows; rpcgate allowed 16 before): a fragment of another
//   call while one call's fragments are still coming is fault nca_s_proto_error without
//   DID_NOT_EXECUTE, then close - on the open call (call_id, p_cont_id) unless multiplexing was
//   granted, then on the new call with p_cont_id 0 (test_orphaned_request_after_first_*).
// * co_cancel and orphaned are noted and ignored: the call goes on (Windows; rpcgate abandoned
//   it before).
// * A response carries p_cont_id & 0xff: Windows answers a request on p_cont_id 0xffff with
//   p_cont_id 0x00ff (raw_protocol test_orphaned_*; Samba does the same).
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
// The smallest fragment size a bind_ack names: Windows answers at least 2048 whatever the client
// offered (raw_protocol test_neg_xmit_0_0); ServerConfig::max_frag is clamped to at least this.
inline constexpr std::uint16_t kMinNegotiatedFrag = 2048;
// What Windows and Samba offer on ncacn_ip_tcp (Samba librpc/rpc/dcesrv_core.c).
inline constexpr std::uint16_t kDefaultServerMaxFrag = 5840;
// Accepted contexts are a handful in practice; Suricata stops at 64 (docs/evasions.md C4).
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
  //   a different transfer syntax list (docs/evasions.md C5; identical repeats are allowed);
  // * kContextRedefined: a p_cont_id already accepted is offered with a different abstract
  //   syntax, or without the transfer syntax accepted before but with another NDR flavour
  //   (NDR 2.0 / NDR64) (docs/evasions.md C7; Windows). Without the accepted syntax and without any
  //   NDR flavour it passes: the server rejects that item and keeps the context.
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

// A 32-byte fault PDU (C706 §12.6.4.7): alloc_hint 24 (non-zero, as Windows and Samba send),
// cancel_count 0, no stub, in `drep`, pfc_flags FIRST|LAST|extra_pfc_flags (e.g.
// pfc::kDidNotExecute). The golden
// nca_s_op_rng_error fault (docs/wire-vectors.md fault-op-rng) is
// build_fault(1, 0, 0x1c010002, LE).
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
  std::uint64_t supported_features = kBtfnSecurityContextMultiplexing | kBtfnKeepConnectionOnOrphan;
  // The server's fragment size limit for both directions (clamped to 2048..65535, & ~7).
  std::uint16_t max_frag = kDefaultServerMaxFrag;
  // bind_ack secondary address: the port this connection was accepted on, e.g. "135"
  // (sent as sec_addr "135\0"; empty -> sec_addr_len 0).
  std::string secondary_address;
  // assoc_group_id given to a bind with assoc_group_id 0. Must be non-zero.
  std::uint32_t new_assoc_group_id = 1;
  // Whether a client's non-zero assoc_group_id names a live group (the runtime owns the groups).
  // false: bind_nak reason_not_specified (kUnknownAssocGroup), as Windows. An empty function
  // accepts every id (echoed).
  std::function<bool(std::uint32_t assoc_group_id)> assoc_group_exists;
  // Contexts per association (all states, bind + every alter_context). Items beyond it are
  // answered provider_rejection / local_limit_exceeded.
  std::size_t max_contexts = kDefaultMaxContexts;
  ReassemblyLimits reassembly;
  // The largest request stub of a call on a context bound to `abstract_syntax` (asked once per
  // accepted context): the interface's own cap. nullopt, or an empty function: reassembly.
  // max_stub_size. A FIRST fragment decides the context, so it also decides the cap. An answer
  // below one full fragment's stub (server_max_frag() - 24) is raised to it: Windows answers any
  // call that fits one fragment, ignoring bytes after the last parameter (raw_protocol
  // test_neg_xmit_*, test_alloc_hint send 5816-byte stubs to MGMT inq_if_ids), and a fragment
  // is held whole by the framer anyway; the caps bound what several fragments accumulate.
  std::function<std::optional<std::size_t>(const SyntaxId& abstract_syntax)> stub_limit;
};

// A complete call, with the context it was sent on.
struct ServerCall {
  AssembledRequest call;
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
  std::optional<ServerCall> call;
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
// * co_cancel / orphaned: kIgnore - a call still being reassembled goes on (Windows); for any
//   other call_id the reason is kUnknownCall (C706 lets the server ignore cancels it cannot
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
  // kAuthNotSupported (authentication_type_not_recognized, or reason_not_specified for an
  // invalid auth_level), kNoContextItems, kNoTransferSyntaxes, kTwoFeatureItems,
  // kDuplicateContextId, kUnknownAssocGroup (reason_not_specified). bind_ack:
  // call_id echoed, drep and rpc_vers_minor mirrored from the bind (as Samba), pfc_flags
  // FIRST|LAST plus the bind's SUPPORT_HEADER_SIGN and CONC_MPX if granted, negotiated frag
  // sizes, assoc_group_id, sec_addr, one result per item in order:
  //   acceptance + chosen transfer syntax; negotiate_ack (reason = feature bits);
  //   provider_rejection + abstract_syntax_not_supported / proposed_transfer_syntaxes_not_
  //   supported (also for an item with n_transfer_syn == 0) / local_limit_exceeded.
  // Rejected results carry a nil transfer syntax (as Windows and Samba).
  Decision handle_bind(const Pdu& pdu);

  // alter_context (C706 §12.6.4.1). kSend(alter_context_resp: same result rules, no feature
  // negotiation, empty sec_addr as Windows sends) or kCloseConnection without a reply:
  // kAlterBeforeBind, and with fault nca_s_proto_error: kByteOrderChanged, kAuthNotSupported,
  // kNoContextItems, kDuplicateContextId, kContextRedefined. Any pfc_flags are accepted.
  Decision handle_alter_context(const Pdu& pdu);

  // request (C706 §12.6.4.9): feeds the RequestReassembler. kDispatch when a call completes,
  // kIgnore while it needs more fragments, kSend(fault nca_s_unk_if, p_cont_id 0) with reason
  // kContextNotAccepted for a FIRST fragment on a context not accepted (the connection stays),
  // kCloseConnection on: kRequestBeforeBind (no reply), kAuthNotSupported (fault access denied),
  // kFragTooLong (frag_length > server_max_frag(): fault proto_error on p_cont_id 0),
  // kInterleavedCall (a fragment of another call while one is open: fault proto_error on the
  // open call without CONC_MPX, on this one with it; see the decisions above),
  // kByteOrderChanged, and the reassembler's errors
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
  // may be shorter than a header). Always kCloseConnection; answered as Windows does:
  // * before bind, a bind of another version (kBadVersion) or whose auth_length does not fit
  //   (kAuthLengthInconsistent, kAuthTrailerMisaligned, kAuthPadTooLong, or a body error below
  //   with auth_length != 0): bind_nak
  //   protocol_version_not_supported listing 5.0 (C706 §12.6.4.5 p_rt_versions_supported);
  //   a bind whose body does not parse (kFragTooShort, kTruncated, kTrailingBytes, too many
  //   items / syntaxes): bind_nak reason_not_specified;
  // * once bound, a fragment over server_max_frag() (kFragTooLong): fault nca_s_proto_error on
  //   p_cont_id 0; an alter_context that does not parse: fault nca_s_proto_error with
  //   DID_NOT_EXECUTE;
  // * everything else: no reply.
  Decision handle_malformed(std::error_code error, std::span<const std::uint8_t> raw);

  // Encoded response fragments for `call` carrying `stub`, at most max_xmit_frag() bytes each,
  // in the call's byte order (split_response()).
  std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> build_response(
      const AssembledRequest& call, std::span<const std::uint8_t> stub) const;
  // What every fragment of the response to call_id repeats (p_cont_id & 0xff, the bind's
  // rpc_vers_minor), for append_response() with max_xmit_frag().
  FragmentParams response_params(std::uint32_t call_id, std::uint16_t p_cont_id,
                                 DataRep drep) const;

  State state() const { return state_; }
  // config().max_frag clamped to kMinNegotiatedFrag..65535, & ~7.
  std::uint16_t server_max_frag() const;
  // The stub of one full request fragment: server_max_frag() - 24. No stub cap is below it.
  std::size_t single_fragment_stub() const;
  const ContextTable& contexts() const { return contexts_; }
  // Negotiated sizes (0 before bind). Frame client input with server_max_frag(): Windows accepts
  // request fragments up to its own limit, not only up to the negotiated one.
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
  // `accepted_one`: whether an earlier item of this PDU was accepted (Windows accepts one).
  ContextResult negotiate(const ContextElement& item, bool bind_time, bool& accepted_one);
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
  bool mpx_ = false;  // PFC_CONC_MPX granted (bind_ack or alter_context_resp)
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
  // The server's own fragment limit: Windows (and ServerAssociation) accept request fragments up
  // to it even when the bind_ack negotiated less, so the observer allows up to
  // max(bind_ack max_recv_frag, server_max_frag).
  std::size_t server_max_frag = kDefaultServerMaxFrag;
};

// Watches one connection in both directions, in the order the bytes were seen, and decides per
// PDU. Fail closed: the first DROP is sticky (every later input is DROP / kAssociationClosed),
// so a caller can never "stop inspecting" and keep forwarding.
//
// Client -> server:
// * bind: DROP if already bound or bind_nak'ed (kBindAlreadyDone), no items (kNoContextItems),
//   an item without transfer syntaxes (kNoTransferSyntaxes), duplicate p_cont_id with different
//   syntaxes (kDuplicateContextId), more items than the context limit (kTooManyContexts). Any
//   pfc_flags make a complete bind (0x00, FIRST alone, LAST alone, 0xff: Windows accepts them
//   all, and so does ServerAssociation; rpcgate dropped FIRST xor LAST before).
//   Authenticated binds are allowed; auth3 is then allowed once bound.
// * alter_context: DROP before bind (kAlterBeforeBind), while a bind/alter is pending
//   (kPresentationPending), plus the bind checks and kContextRedefined.
// * request: DROP before bind_ack (kRequestBeforeBind - also for a request pipelined behind the
//   bind), on a p_cont_id not accepted (kContextNotAccepted: stricter than the server, which
//   answers such a request with fault nca_s_unk_if and keeps the connection - no legitimate
//   client sends one), frag_length over max(bind_ack max_recv_frag,
//   ObserverLimits::server_max_frag) (kFragTooLong), and per-call fragment rules as
//   RequestReassembler (first fragment decides; later ones must agree on p_cont_id, opnum, object:
//   kFragmentMismatch, kUnknownCall, kDuplicateFirstFragment, kTooManyCalls; a FIRST fragment while
//   another call is still being sent: kInterleavedCall, as the server). ALLOW carries the
//   RequestTarget.
// * co_cancel / orphaned: ALLOW once bound, changing no call's state (the server ignores them;
//   reason kUnknownCall marks one for no live call). auth3: only after an authenticated
//   bind_ack (else kUnexpectedPdu).
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
