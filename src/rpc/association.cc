#include "rpc/association.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "rpc/status.h"

namespace rpcgate::rpc {
namespace {

std::error_code ec(Errc e) {
  return make_error_code(e);
}

// MS-RPCE 2.2.1.1.8 authentication levels.
constexpr std::uint8_t kAuthLevelConnect = 2;
constexpr std::uint8_t kAuthLevelPrivacy = 6;

// pfc_flags of a bind_ack / alter_context_resp: FIRST|LAST plus the client's SUPPORT_HEADER_SIGN
// (MS-RPCE 3.3.1.5.2.2: the server echoes it when it supports header signing) and CONC_MPX when
// it was granted. Windows answers so whatever else the client set (raw_protocol
// test_no_auth_request_{bind,alter}_pfc_*).
std::uint8_t ack_pfc_flags(std::uint8_t request_flags, bool mpx_granted) {
  return static_cast<std::uint8_t>(pfc::kFirstFrag | pfc::kLastFrag |
                                   (request_flags & pfc::kSupportHeaderSign) |
                                   (mpx_granted ? pfc::kConcMpx : 0));
}

std::size_t accepted_count(const ContextTable& t) {
  return static_cast<std::size_t>(
      std::ranges::count(t.entries(), ContextState::kAccepted, &PresentationContext::state));
}

// Byte order, character and float format (bytes 0-1); bytes 2-3 are reserved (C706 §14.1).
bool same_format(const DataRep& a, const DataRep& b) {
  return a.bytes[0] == b.bytes[0] && a.bytes[1] == b.bytes[1];
}

// MS-RPCE 3.3.1.5.3 as Windows applies it: only the first transfer syntax of an item counts
// (raw_protocol test_no_auth_bind_time_only_first).
bool offers_features(const ContextElement& item) {
  return !item.transfer_syntaxes.empty() &&
         bind_time_features(item.transfer_syntaxes.front()).has_value();
}

bool same_definition(const ContextElement& a, const ContextElement& b) {
  return a.abstract_syntax == b.abstract_syntax && a.transfer_syntaxes == b.transfer_syntaxes;
}

}  // namespace

// ---- Interface matching --------------------------------------------------------------------

bool interface_matches(const SyntaxId& offered, const SyntaxId& requested) {
  return offered.uuid == requested.uuid && offered.major == requested.major &&
         offered.minor >= requested.minor;
}

InterfaceLookup make_interface_lookup(std::vector<SyntaxId> offered) {
  return [offered = std::move(offered)](const SyntaxId& requested) {
    return std::ranges::any_of(offered,
                               [&](const SyntaxId& o) { return interface_matches(o, requested); });
  };
}

// ---- ContextTable ----------------------------------------------------------------------------

const PresentationContext* ContextTable::find(std::uint16_t p_cont_id) const {
  auto it = std::ranges::find(entries_, p_cont_id, &PresentationContext::p_cont_id);
  return it == entries_.end() ? nullptr : &*it;
}

const PresentationContext* ContextTable::accepted(std::uint16_t p_cont_id) const {
  const auto* c = find(p_cont_id);
  return c != nullptr && c->state == ContextState::kAccepted ? c : nullptr;
}

std::expected<void, std::error_code> ContextTable::check_offer(
    std::span<const ContextElement> items) const {
  for (std::size_t i = 0; i < items.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (items[j].p_cont_id == items[i].p_cont_id && !same_definition(items[i], items[j])) {
        return std::unexpected(ec(Errc::kDuplicateContextId));
      }
    }
    if (const auto* c = accepted(items[i].p_cont_id)) {
      // Another abstract syntax, or another NDR flavour than the accepted one (a transfer syntax
      // Windows knows, so it would have to switch): a protocol error, as Windows answers
      // (raw_protocol test_no_auth_presentation_ctx_invalid4). Syntaxes nobody knows are only a
      // per-item rejection (test_no_auth_presentation_ctx_valid2).
      const auto& offered = items[i].transfer_syntaxes;
      const bool keeps = std::ranges::find(offered, c->transfer_syntax) != offered.end();
      const bool switches = std::ranges::any_of(
          offered, [](const SyntaxId& t) { return t == kNdr20Syntax || t == kNdr64Syntax; });
      if (c->abstract_syntax != items[i].abstract_syntax || (!keeps && switches)) {
        return std::unexpected(ec(Errc::kContextRedefined));
      }
    }
  }
  return {};
}

bool ContextTable::has_room_for(std::uint16_t p_cont_id) const {
  return find(p_cont_id) != nullptr || entries_.size() < max_contexts_;
}

std::expected<void, std::error_code> ContextTable::record(const PresentationContext& context) {
  auto it = std::ranges::find(entries_, context.p_cont_id, &PresentationContext::p_cont_id);
  if (it == entries_.end()) {
    if (entries_.size() >= max_contexts_) return std::unexpected(ec(Errc::kTooManyContexts));
    entries_.push_back(context);
    return {};
  }
  if (it->state == ContextState::kAccepted) {
    if (*it == context) return {};
    return std::unexpected(ec(Errc::kContextRedefined));
  }
  *it = context;
  return {};
}

// ---- Helpers -------------------------------------------------------------------------------

std::vector<std::uint8_t> build_fault(std::uint32_t call_id, std::uint16_t p_cont_id,
                                      std::uint32_t status, DataRep drep,
                                      std::uint8_t extra_pfc_flags) {
  Fault f;
  f.p_cont_id = p_cont_id;
  f.status = status;
  // Windows and Samba send a non-zero alloc_hint in a fault (Samba: 24, the fault body's
  // size); raw_protocol asserts it is not 0.
  f.alloc_hint = 24;
  const auto flags = static_cast<std::uint8_t>(pfc::kFirstFrag | pfc::kLastFrag | extra_pfc_flags);
  if (validate_drep(drep).has_value() == false) drep = DataRep::little_endian();
  auto bytes = encode_pdu(make_pdu(std::move(f), call_id, flags, drep));
  assert(bytes);  // fixed 32-byte layout with a valid drep cannot fail to encode
  return bytes ? std::move(*bytes) : std::vector<std::uint8_t>{};
}

// ---- ServerAssociation -----------------------------------------------------------------------

ServerAssociation::ServerAssociation(ServerConfig config)
    : config_(std::move(config)),
      contexts_(config_.max_contexts),
      reassembler_(config_.reassembly) {
  if (config_.new_assoc_group_id == 0) config_.new_assoc_group_id = 1;
}

Decision ServerAssociation::close(std::error_code reason, std::vector<std::uint8_t> pdu) {
  state_ = State::kClosed;
  reassembler_.clear();
  Decision d;
  d.action = Decision::Action::kCloseConnection;
  d.pdu = std::move(pdu);
  d.reason = reason;
  return d;
}

Decision ServerAssociation::nak(std::uint32_t call_id, DataRep drep, std::uint16_t reject_reason,
                                std::error_code why) {
  BindNak n;
  n.provider_reject_reason = reject_reason;
  n.versions = {RtVersion{5, 0}};
  // Windows pads the body to a multiple of 4 with zeros (3 bytes for one version; Samba's NDR
  // and raw_protocol expect them).
  n.trailing.assign((4 - (3 + 2 * n.versions.size()) % 4) % 4, 0);
  if (!validate_drep(drep)) drep = DataRep::little_endian();
  auto bytes = encode_pdu(make_pdu(std::move(n), call_id, pfc::kFirstFrag | pfc::kLastFrag, drep));
  return close(why, bytes ? std::move(*bytes) : std::vector<std::uint8_t>{});
}

Decision ServerAssociation::proto_fault(const Pdu& pdu, std::uint32_t status, std::error_code why) {
  std::uint16_t p_cont_id = 0;
  if (const auto* q = std::get_if<Request>(&pdu.body)) p_cont_id = q->p_cont_id;
  return close(why, build_fault(pdu.header.call_id, p_cont_id, status, drep_, pfc::kDidNotExecute));
}

std::size_t ServerAssociation::single_fragment_stub() const {
  constexpr std::size_t kRequestHeaderSize = 24;  // C706 §12.6.4.9, without object UUID
  return server_max_frag() - kRequestHeaderSize;
}

std::uint16_t ServerAssociation::server_max_frag() const {
  return static_cast<std::uint16_t>(
      std::clamp<std::uint32_t>(config_.max_frag, kMinNegotiatedFrag, kMaxFragLength) & ~7u);
}

bool ServerAssociation::drep_matches(const DataRep& drep) const {
  return same_format(drep, drep_);
}

bool ServerAssociation::transfer_acceptable(const SyntaxId& transfer) const {
  return transfer == kNdr20Syntax || (config_.accept_ndr64 && transfer == kNdr64Syntax);
}

ContextResult ServerAssociation::negotiate(const ContextElement& item, bool bind_time,
                                           bool& accepted_one) {
  const bool known = config_.interfaces && config_.interfaces(item.abstract_syntax);
  const ContextResult not_this_one{status::kResultProviderRejection,
                                   known ? status::kReasonProposedTransferSyntaxesNotSupported
                                         : status::kReasonAbstractSyntaxNotSupported,
                                   {}};
  // MS-RPCE 3.3.1.5.3: only the FIRST transfer syntax of an item names bind-time features
  // (handle_bind() already refused a bind with two such items). Such an item is never a
  // presentation context, whatever else it lists.
  if (bind_time && !item.transfer_syntaxes.empty()) {
    if (auto requested = bind_time_features(item.transfer_syntaxes.front())) {
      if (!contexts_.has_room_for(item.p_cont_id) || contexts_.accepted(item.p_cont_id)) {
        return {status::kResultProviderRejection, status::kReasonLocalLimitExceeded, {}};
      }
      features_ = *requested & config_.supported_features & 0xffff;
      PresentationContext entry{
          item.p_cont_id, item.abstract_syntax, {}, ContextState::kNegotiateAck};
      [[maybe_unused]] auto recorded = contexts_.record(entry);
      assert(recorded);  // has_room_for() and not accepted
      return {status::kResultNegotiateAck, static_cast<std::uint16_t>(features_), {}};
    }
  }
  if (!contexts_.has_room_for(item.p_cont_id)) {
    return {status::kResultProviderRejection, status::kReasonLocalLimitExceeded, {}};
  }
  // Windows accepts at most one presentation context per bind / alter_context: every item after
  // the first accepted one is rejected (proposed_transfer_syntaxes_not_supported, or
  // abstract_syntax_not_supported for an interface not offered), even one that re-offers a
  // context accepted earlier, which stays usable (test_no_auth_presentation_ctx_no_ndr64).
  if (accepted_one) {
    if (contexts_.find(item.p_cont_id) == nullptr) {
      [[maybe_unused]] auto recorded = contexts_.record(
          PresentationContext{item.p_cont_id, item.abstract_syntax, {}, ContextState::kRejected});
      assert(recorded);  // has_room_for()
    }
    return not_this_one;
  }
  // check_offer() passed, so an accepted id is re-offered with the same abstract syntax: it is
  // accepted again if its transfer syntax is among the offered ones, else this item is rejected
  // and the context keeps its definition (Windows; test_no_auth_presentation_ctx_valid2).
  if (const auto* c = contexts_.accepted(item.p_cont_id)) {
    if (std::ranges::find(item.transfer_syntaxes, c->transfer_syntax) ==
        item.transfer_syntaxes.end()) {
      return not_this_one;
    }
    accepted_one = true;
    return {status::kResultAcceptance, 0, c->transfer_syntax};
  }
  PresentationContext entry{item.p_cont_id, item.abstract_syntax, {}, ContextState::kRejected};
  ContextResult result = not_this_one;
  for (const auto& t : item.transfer_syntaxes) {
    if (known && transfer_acceptable(t)) {
      entry.transfer_syntax = t;
      entry.state = ContextState::kAccepted;
      result = {status::kResultAcceptance, 0, t};
      accepted_one = true;
      if (config_.stub_limit) {
        if (auto cap = config_.stub_limit(item.abstract_syntax)) {
          // Never below one full fragment's stub: see ServerConfig::stub_limit.
          stub_caps_[item.p_cont_id] = std::max<std::size_t>(*cap, single_fragment_stub());
        }
      }
      break;
    }
  }
  [[maybe_unused]] auto recorded = contexts_.record(entry);
  assert(recorded);  // has_room_for() and the accepted case above make this infallible
  return result;
}

Decision ServerAssociation::handle(Pdu pdu, TimePoint now) {
  switch (static_cast<PType>(pdu.header.ptype)) {
    case PType::kBind:
      return handle_bind(pdu);
    case PType::kAlterContext:
      return handle_alter_context(pdu);
    case PType::kRequest:
      return handle_request(std::move(pdu), now);
    case PType::kCoCancel:
    case PType::kOrphaned: {
      if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
      if (state_ == State::kUnbound) return close(ec(Errc::kRequestBeforeBind));
      if (!drep_matches(pdu.header.drep)) {
        return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kByteOrderChanged));
      }
      if (pdu.auth) return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kAuthNotSupported));
      // Windows notes a co_cancel / orphaned and otherwise ignores it: a call still being
      // reassembled goes on (its LAST fragment completes it and it is answered), and one for no
      // known call is dropped silently (raw_protocol test_co_cancel_*, test_orphaned_*). rpcgate
      // abandoned the call before, which made the LAST fragment a protocol error.
      const AssembledRequest* open = reassembler_.open_call();
      Decision d;
      if (open == nullptr || open->call_id != pdu.header.call_id) d.reason = ec(Errc::kUnknownCall);
      return d;
    }
    default:
      // auth3 without authentication, shutdown from a client, and server->client types.
      if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
      return close(ec(Errc::kUnexpectedPdu));
  }
}

Decision ServerAssociation::handle_bind(const Pdu& pdu) {
  const auto* bind = std::get_if<Bind>(&pdu.body);
  const PduHeader& h = pdu.header;
  if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
  if (bind == nullptr) return close(ec(Errc::kUnexpectedPdu));
  if (state_ == State::kBound) {
    return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified, ec(Errc::kBindAlreadyDone));
  }
  if (h.rpc_vers != kRpcVers || h.rpc_vers_minor > 1) {
    return nak(h.call_id, h.drep, status::kRejectProtocolVersionNotSupported,
               ec(Errc::kUnsupportedVersion));
  }
  if (pdu.auth || h.auth_length != 0) {
    // Windows (and Samba, dcesrv_auth_bind): an auth_level outside connect..privacy is
    // reason_not_specified; a valid level of a type we do not implement (all of them, until
    // authentication exists) is authentication_type_not_recognized.
    const std::uint8_t level = pdu.auth ? pdu.auth->auth_level : 0;
    const bool level_valid = level >= kAuthLevelConnect && level <= kAuthLevelPrivacy;
    return nak(h.call_id, h.drep,
               level_valid ? status::kRejectAuthenticationTypeNotRecognized
                           : status::kRejectReasonNotSpecified,
               ec(Errc::kAuthNotSupported));
  }
  if (bind->contexts.empty()) {
    return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified, ec(Errc::kNoContextItems));
  }
  // Windows refuses the whole bind for an item without transfer syntaxes and for a second
  // bind-time feature item (raw_protocol test_no_auth_presentation_ctx_invalid2,
  // test_no_auth_bind_time_twice).
  std::size_t feature_items = 0;
  for (const auto& item : bind->contexts) {
    if (item.transfer_syntaxes.empty()) {
      return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified,
                 ec(Errc::kNoTransferSyntaxes));
    }
    if (offers_features(item) && ++feature_items > 1) {
      return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified, ec(Errc::kTwoFeatureItems));
    }
  }
  if (auto ok = contexts_.check_offer(bind->contexts); !ok) {
    return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified, ok.error());
  }
  if (bind->assoc_group_id != 0 && config_.assoc_group_exists &&
      !config_.assoc_group_exists(bind->assoc_group_id)) {
    return nak(h.call_id, h.drep, status::kRejectReasonNotSpecified, ec(Errc::kUnknownAssocGroup));
  }

  state_ = State::kBound;
  drep_ = h.drep;
  rpc_vers_minor_ = h.rpc_vers_minor;
  // Windows' rule (Samba's too); see the header.
  const std::uint32_t server_max = server_max_frag();
  const std::uint32_t client = std::min(bind->max_xmit_frag, bind->max_recv_frag);
  const auto negotiated = static_cast<std::uint16_t>(
      std::min<std::uint32_t>(std::max<std::uint32_t>(kMinNegotiatedFrag, client), server_max) &
      ~7u);
  max_xmit_frag_ = negotiated;
  max_recv_frag_ = negotiated;
  assoc_group_id_ = bind->assoc_group_id != 0 ? bind->assoc_group_id : config_.new_assoc_group_id;

  BindAck ack;
  ack.max_xmit_frag = max_xmit_frag_;
  ack.max_recv_frag = max_recv_frag_;
  ack.assoc_group_id = assoc_group_id_;
  if (!config_.secondary_address.empty()) {
    ack.sec_addr = BindAckBody::make_sec_addr(config_.secondary_address);
  }
  bool accepted_one = false;
  for (const auto& item : bind->contexts) {
    ack.results.push_back(negotiate(item, /*bind_time=*/true, accepted_one));
  }
  // Concurrent multiplexing (MS-RPCE 3.3.1.5.1) is granted when asked for with a new context, as
  // Windows (and Samba) do.
  mpx_ = (h.pfc_flags & pfc::kConcMpx) && accepted_one;
  Pdu out = make_pdu(std::move(ack), h.call_id, ack_pfc_flags(h.pfc_flags, mpx_), drep_);
  out.header.rpc_vers_minor = rpc_vers_minor_;
  auto bytes = encode_pdu(out);
  if (!bytes) return close(bytes.error());
  Decision d;
  d.action = Decision::Action::kSend;
  d.pdu = std::move(*bytes);
  return d;
}

Decision ServerAssociation::handle_alter_context(const Pdu& pdu) {
  const auto* alter = std::get_if<AlterContext>(&pdu.body);
  const PduHeader& h = pdu.header;
  if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
  if (alter == nullptr) return close(ec(Errc::kUnexpectedPdu));
  if (state_ == State::kUnbound) return close(ec(Errc::kAlterBeforeBind));
  if (!drep_matches(h.drep)) {
    return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kByteOrderChanged));
  }
  if (pdu.auth || h.auth_length != 0) {
    return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kAuthNotSupported));
  }
  if (alter->contexts.empty()) {
    return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kNoContextItems));
  }
  for (const auto& item : alter->contexts) {
    if (item.transfer_syntaxes.empty()) {
      return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kNoTransferSyntaxes));
    }
  }
  if (auto ok = contexts_.check_offer(alter->contexts); !ok) {
    return proto_fault(pdu, status::kNcaSProtoError, ok.error());
  }
  AlterContextResp resp;
  resp.max_xmit_frag = max_xmit_frag_;
  resp.max_recv_frag = max_recv_frag_;
  resp.assoc_group_id = assoc_group_id_;
  bool accepted_one = false;
  const std::size_t accepted_before = accepted_count(contexts_);
  for (const auto& item : alter->contexts) {
    resp.results.push_back(negotiate(item, /*bind_time=*/false, accepted_one));
  }
  // An alter_context may grant multiplexing too, but only with a NEW context (Windows: a
  // CONC_MPX alter_context re-offering the bound context gets FIRST|LAST,
  // test_no_auth_request_alter_pfc_CONC_MPX).
  const bool mpx_granted =
      (h.pfc_flags & pfc::kConcMpx) && accepted_count(contexts_) > accepted_before;
  if (mpx_granted) mpx_ = true;
  Pdu out = make_pdu(std::move(resp), h.call_id, ack_pfc_flags(h.pfc_flags, mpx_granted), drep_);
  out.header.rpc_vers_minor = rpc_vers_minor_;
  auto bytes = encode_pdu(out);
  if (!bytes) return close(bytes.error());
  Decision d;
  d.action = Decision::Action::kSend;
  d.pdu = std::move(*bytes);
  return d;
}

Decision ServerAssociation::handle_request(Pdu pdu, TimePoint now) {
  const auto* q = std::get_if<Request>(&pdu.body);
  const PduHeader& h = pdu.header;
  if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
  if (q == nullptr) return close(ec(Errc::kUnexpectedPdu));
  if (state_ == State::kUnbound) return close(ec(Errc::kRequestBeforeBind));
  if (!drep_matches(h.drep)) {
    return proto_fault(pdu, status::kNcaSProtoError, ec(Errc::kByteOrderChanged));
  }
  if (pdu.auth || h.auth_length != 0) {
    // Windows: a request with an auth trailer on an association without authentication is
    // fault access_denied (no DID_NOT_EXECUTE) and a disconnect (raw_protocol
    // test_auth_none_*_request).
    return close(ec(Errc::kAuthNotSupported),
                 build_fault(h.call_id, q->p_cont_id, status::kRpcSAccessDenied, drep_));
  }
  if (h.frag_length > server_max_frag()) {
    return close(ec(Errc::kFragTooLong), build_fault(h.call_id, 0, status::kNcaSProtoError, drep_));
  }
  // Windows reassembles one call at a time (Samba does the same, dcesrv_core.c): a fragment of
  // another call while one is open is fault nca_s_proto_error (no DID_NOT_EXECUTE), then close.
  // Without CONC_MPX the fault names the call already open (its call_id and p_cont_id), with it
  // the new one (raw_protocol test_orphaned_request_after_first_{,mpx_}no_last).
  const bool first = (h.pfc_flags & pfc::kFirstFrag) != 0;
  if (const AssembledRequest* open = reassembler_.open_call();
      open != nullptr && (first || open->call_id != h.call_id)) {
    if (!mpx_) {
      return close(ec(Errc::kInterleavedCall),
                   build_fault(open->call_id, open->p_cont_id, status::kNcaSProtoError, drep_));
    }
    return close(ec(Errc::kInterleavedCall),
                 build_fault(h.call_id, 0, status::kNcaSProtoError, drep_));
  }
  // The first fragment decides the context (the reassembler makes later ones agree with it);
  // nothing is buffered for a context that was not accepted. Windows answers nca_s_unk_if on
  // p_cont_id 0 and keeps the connection (raw_protocol test_no_auth_presentation_ctx_invalid1).
  // A later fragment with no call open is the same when its context is unknown.
  if (contexts_.accepted(q->p_cont_id) == nullptr &&
      (first || reassembler_.calls_in_progress() == 0)) {
    Decision d;
    d.action = Decision::Action::kSend;
    d.reason = ec(Errc::kContextNotAccepted);
    d.pdu = build_fault(h.call_id, 0, status::kNcaSUnkIf, drep_, pfc::kDidNotExecute);
    return d;
  }
  const std::uint32_t call_id = h.call_id;
  const std::uint16_t p_cont_id = q->p_cont_id;
  std::optional<std::size_t> cap;
  if (auto it = stub_caps_.find(p_cont_id); it != stub_caps_.end()) cap = it->second;
  auto fed = reassembler_.feed(std::move(pdu), now, cap);
  if (!fed) {
    // Over a memory cap: Samba's answer (see the header); other rule violations: proto_error.
    const bool over_cap =
        fed.error() == Errc::kStubTooLarge || fed.error() == Errc::kReassemblyBudget;
    // A LAST/middle fragment of no call: Windows' fault carries no DID_NOT_EXECUTE.
    const std::uint8_t flags = fed.error() == Errc::kUnknownCall ? 0 : pfc::kDidNotExecute;
    return close(
        fed.error(),
        build_fault(call_id, p_cont_id,
                    over_cap ? status::kRpcSAccessDenied : status::kNcaSProtoError, drep_, flags));
  }
  Decision d;
  if (!*fed) return d;  // needs more fragments
  const auto* c = contexts_.accepted((*fed)->p_cont_id);
  assert(c != nullptr);  // checked on the first fragment; accepted entries never change
  if (c == nullptr) return close(ec(Errc::kContextNotAccepted));
  d.action = Decision::Action::kDispatch;
  d.call = ServerCall{std::move(**fed), c->abstract_syntax, c->transfer_syntax};
  return d;
}

Decision ServerAssociation::handle_expiry(TimePoint now) {
  if (state_ == State::kClosed || !reassembler_.expired(now)) return Decision{};
  return close(ec(Errc::kCallTimeout));
}

std::size_t ServerAssociation::stub_cap(std::uint16_t p_cont_id) const {
  auto it = stub_caps_.find(p_cont_id);
  return it != stub_caps_.end() ? it->second : config_.reassembly.max_stub_size;
}

void ServerAssociation::abort() {
  state_ = State::kClosed;
  reassembler_.clear();
}

Decision ServerAssociation::handle_malformed(std::error_code error,
                                             std::span<const std::uint8_t> raw) {
  if (state_ == State::kClosed) return close(ec(Errc::kAssociationClosed));
  // Only a readable common header gets an answer (version 5 is checked where it matters).
  if (raw.size() < kCommonHeaderSize) return close(error);
  DataRep drep{{raw[4], raw[5], raw[6], raw[7]}};
  if (!validate_drep(drep)) drep = state_ == State::kBound ? drep_ : DataRep::little_endian();
  common::ByteReader r(raw.subspan(12, 4), drep.endian());
  const std::uint32_t call_id = r.u32().value_or(0);
  const auto ptype = static_cast<PType>(raw[2]);
  const bool auth_error = error == Errc::kAuthLengthInconsistent ||
                          error == Errc::kAuthTrailerMisaligned || error == Errc::kAuthPadTooLong;
  const bool body_error = error == Errc::kFragTooShort || error == Errc::kTruncated ||
                          error == Errc::kTrailingBytes || error == Errc::kTooManyContextItems ||
                          error == Errc::kTooManyTransferSyntaxes;
  if (state_ == State::kUnbound && ptype == PType::kBind) {
    // Windows: a bind of another version, or with an auth_length that does not fit (also when
    // its body is short), is protocol_version_not_supported (raw_protocol
    // test_invalid_auth_noctx: 25 bytes, auth_length 8); one whose body does
    // not parse (e.g. a 25-byte bind without context items, test_no_auth_no_ctx) is
    // reason_not_specified. Always with the version list.
    const bool has_auth = raw[10] != 0 || raw[11] != 0;  // auth_length, either byte order
    if (error == Errc::kBadVersion || auth_error || (body_error && has_auth)) {
      return nak(call_id, drep, status::kRejectProtocolVersionNotSupported,
                 error == Errc::kBadVersion ? ec(Errc::kUnsupportedVersion) : error);
    }
    if (body_error) return nak(call_id, drep, status::kRejectReasonNotSpecified, error);
  }
  if (state_ == State::kBound && raw[0] == kRpcVers) {
    // A request fragment over the server's limit (the framer refused it): Windows answers
    // nca_s_proto_error on p_cont_id 0 without DID_NOT_EXECUTE, then disconnects
    // (raw_protocol _test_neg_xmit_check_values).
    if (error == Errc::kFragTooLong) {
      return close(error, build_fault(call_id, 0, status::kNcaSProtoError, drep_));
    }
    // An alter_context that does not parse: fault nca_s_proto_error with DID_NOT_EXECUTE, as
    // for one without context items (test_alter_no_auth_no_ctx).
    if (ptype == PType::kAlterContext && (body_error || auth_error)) {
      return close(error,
                   build_fault(call_id, 0, status::kNcaSProtoError, drep_, pfc::kDidNotExecute));
    }
  }
  return close(error);
}

std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code>
ServerAssociation::build_response(const AssembledRequest& call,
                                  std::span<const std::uint8_t> stub) const {
  if (state_ != State::kBound) return std::unexpected(ec(Errc::kInvalidArgument));
  return split_response(response_params(call.call_id, call.p_cont_id, call.drep), stub,
                        max_xmit_frag_);
}

FragmentParams ServerAssociation::response_params(std::uint32_t call_id, std::uint16_t p_cont_id,
                                                  DataRep drep) const {
  FragmentParams params;
  params.call_id = call_id;
  params.p_cont_id = static_cast<std::uint16_t>(p_cont_id & 0xff);  // Windows: see header
  params.drep = drep;
  params.rpc_vers_minor = rpc_vers_minor_;
  return params;
}

// ---- AssociationObserver ---------------------------------------------------------------------

AssociationObserver::AssociationObserver(ObserverLimits limits)
    : limits_(limits), contexts_(limits.max_contexts) {}

Verdict AssociationObserver::drop(std::error_code reason) {
  dropped_ = true;
  open_calls_.clear();
  outstanding_.clear();
  pending_.reset();
  return Verdict{Verdict::Action::kDrop, reason, std::nullopt};
}

Verdict AssociationObserver::observe(Direction direction, const Pdu& pdu) {
  if (dropped_) return drop(ec(Errc::kAssociationClosed));
  return direction == Direction::kClientToServer ? client_pdu(pdu) : server_pdu(pdu);
}

Verdict AssociationObserver::observe_error(Direction, std::error_code error) {
  return drop(dropped_ ? ec(Errc::kAssociationClosed) : error);
}

bool AssociationObserver::live_call(std::uint32_t call_id) const {
  return open_calls_.contains(call_id) || outstanding_.contains(call_id);
}

Verdict AssociationObserver::client_pdu(const Pdu& pdu) {
  if (phase_ == Phase::kRejected) return drop(ec(Errc::kAssociationClosed));
  if (client_drep_ && !same_format(*client_drep_, pdu.header.drep)) {
    return drop(ec(Errc::kByteOrderChanged));
  }
  switch (static_cast<PType>(pdu.header.ptype)) {
    case PType::kBind:
      if (const auto* b = std::get_if<Bind>(&pdu.body)) {
        if (phase_ != Phase::kIdle) return drop(ec(Errc::kBindAlreadyDone));
        return offer(pdu, *b, true);
      }
      break;
    case PType::kAlterContext:
      if (const auto* a = std::get_if<AlterContext>(&pdu.body)) {
        if (phase_ == Phase::kIdle) return drop(ec(Errc::kAlterBeforeBind));
        if (pending_) return drop(ec(Errc::kPresentationPending));
        return offer(pdu, *a, false);
      }
      break;
    case PType::kRequest:
      if (const auto* q = std::get_if<Request>(&pdu.body)) return request(pdu, *q);
      break;
    case PType::kAuth3:
      if (phase_ != Phase::kBound || !authenticated_) return drop(ec(Errc::kUnexpectedPdu));
      return Verdict{Verdict::Action::kAllow, {}, std::nullopt};
    case PType::kCoCancel:
    case PType::kOrphaned:
      // The server ignores both (the call goes on; an unknown call_id is dropped silently), and
      // a client's orphaned may legitimately race the response of its call: allowed once bound,
      // without changing any call's state.
      if (phase_ != Phase::kBound) return drop(ec(Errc::kRequestBeforeBind));
      return Verdict{Verdict::Action::kAllow,
                     live_call(pdu.header.call_id) ? std::error_code{} : ec(Errc::kUnknownCall),
                     std::nullopt};
    default:
      break;
  }
  return drop(ec(Errc::kUnexpectedPdu));
}

Verdict AssociationObserver::offer(const Pdu& pdu, const BindBody& body, bool is_bind) {
  if (body.contexts.empty()) return drop(ec(Errc::kNoContextItems));
  for (const auto& item : body.contexts) {
    if (item.transfer_syntaxes.empty()) return drop(ec(Errc::kNoTransferSyntaxes));
  }
  if (body.contexts.size() > limits_.max_contexts) return drop(ec(Errc::kTooManyContexts));
  if (auto ok = contexts_.check_offer(body.contexts); !ok) return drop(ok.error());
  if (is_bind) {
    client_drep_ = pdu.header.drep;
    phase_ = Phase::kBindPending;
  }
  pending_ = Pending{is_bind, pdu.header.call_id, pdu.auth.has_value(), body.contexts};
  return Verdict{Verdict::Action::kAllow, {}, std::nullopt};
}

Verdict AssociationObserver::answer(const Pdu& pdu, const BindAckBody& body, bool is_bind) {
  if (!pending_ || pending_->is_bind != is_bind || pending_->call_id != pdu.header.call_id) {
    return drop(ec(Errc::kUnsolicitedBindAck));
  }
  const auto& items = pending_->items;
  if (body.results.size() != items.size()) return drop(ec(Errc::kResultCountMismatch));
  // Apply to a copy so a bad result half-way leaves nothing behind (we drop anyway, but the
  // table must never hold a context the server did not accept).
  ContextTable next = contexts_;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const ContextResult& r = body.results[i];
    const ContextElement& item = items[i];
    PresentationContext entry{item.p_cont_id, item.abstract_syntax, {}, ContextState::kRejected};
    // A rejected re-offer of an accepted context leaves it as it was (the server keeps it).
    if (r.result != status::kResultAcceptance && next.accepted(item.p_cont_id) != nullptr) {
      if (r.result != status::kResultUserRejection &&
          r.result != status::kResultProviderRejection) {
        return drop(ec(Errc::kInvalidContextResult));
      }
      continue;
    }
    switch (r.result) {
      case status::kResultAcceptance:
        if (bind_time_features(r.transfer_syntax) ||
            std::ranges::find(item.transfer_syntaxes, r.transfer_syntax) ==
                item.transfer_syntaxes.end()) {
          return drop(ec(Errc::kInvalidContextResult));
        }
        entry.transfer_syntax = r.transfer_syntax;
        entry.state = ContextState::kAccepted;
        break;
      case status::kResultUserRejection:
      case status::kResultProviderRejection:
        break;
      case status::kResultNegotiateAck:
        if (!is_bind || !offers_features(item)) return drop(ec(Errc::kInvalidContextResult));
        entry.state = ContextState::kNegotiateAck;
        break;
      default:
        return drop(ec(Errc::kInvalidContextResult));
    }
    if (auto ok = next.record(entry); !ok) return drop(ok.error());
  }
  contexts_ = std::move(next);
  if (is_bind) {
    phase_ = Phase::kBound;
    max_recv_frag_ = body.max_recv_frag;
    max_xmit_frag_ = body.max_xmit_frag;
    authenticated_ = pending_->authenticated && pdu.auth.has_value();
  }
  pending_.reset();
  return Verdict{Verdict::Action::kAllow, {}, std::nullopt};
}

Verdict AssociationObserver::request(const Pdu& pdu, const Request& q) {
  const PduHeader& h = pdu.header;
  if (phase_ == Phase::kIdle || phase_ == Phase::kBindPending) {
    return drop(ec(Errc::kRequestBeforeBind));
  }
  // As the server: up to its own limit, whatever the bind_ack said (see association.h).
  if (h.frag_length > std::max<std::size_t>(max_recv_frag_, limits_.server_max_frag)) {
    return drop(ec(Errc::kFragTooLong));
  }
  if (pdu.auth && !authenticated_) return drop(ec(Errc::kAuthNotSupported));
  RequestTarget target;
  target.call_id = h.call_id;
  target.p_cont_id = q.p_cont_id;
  target.opnum = q.opnum;
  target.object = q.object;
  const bool first = h.pfc_flags & pfc::kFirstFrag;
  const bool last = h.pfc_flags & pfc::kLastFrag;
  if (first) {
    if (open_calls_.contains(h.call_id)) return drop(ec(Errc::kDuplicateFirstFragment));
    // As the server: one call in reassembly at a time.
    if (!open_calls_.empty()) return drop(ec(Errc::kInterleavedCall));
    if (contexts_.accepted(q.p_cont_id) == nullptr) return drop(ec(Errc::kContextNotAccepted));
    if (!last) {
      if (open_calls_.size() >= limits_.max_calls_in_progress) {
        return drop(ec(Errc::kTooManyCalls));
      }
      open_calls_.emplace(h.call_id, OpenCall{q.p_cont_id, q.opnum, q.object});
    }
    if (!(h.pfc_flags & pfc::kMaybe) && !outstanding_.contains(h.call_id)) {
      if (outstanding_.size() >= limits_.max_outstanding_calls) {
        return drop(ec(Errc::kTooManyCalls));
      }
      outstanding_.insert(h.call_id);
    }
    target.first_fragment = true;
  } else {
    auto it = open_calls_.find(h.call_id);
    if (it == open_calls_.end()) return drop(ec(Errc::kUnknownCall));
    if (it->second.p_cont_id != q.p_cont_id || it->second.opnum != q.opnum ||
        it->second.object != q.object) {
      return drop(ec(Errc::kFragmentMismatch));
    }
    if (last) open_calls_.erase(it);
  }
  const auto* c = contexts_.accepted(q.p_cont_id);
  assert(c != nullptr);  // checked on the first fragment; accepted entries never change
  if (c == nullptr) return drop(ec(Errc::kContextNotAccepted));
  target.abstract_syntax = c->abstract_syntax;
  target.transfer_syntax = c->transfer_syntax;
  return Verdict{Verdict::Action::kAllow, {}, std::move(target)};
}

Verdict AssociationObserver::server_pdu(const Pdu& pdu) {
  const PduHeader& h = pdu.header;
  if (server_drep_ && !same_format(*server_drep_, h.drep)) {
    return drop(ec(Errc::kByteOrderChanged));
  }
  server_drep_ = h.drep;
  const Verdict allow{Verdict::Action::kAllow, {}, std::nullopt};
  switch (static_cast<PType>(h.ptype)) {
    case PType::kBindAck:
      if (const auto* a = std::get_if<BindAck>(&pdu.body)) return answer(pdu, *a, true);
      break;
    case PType::kAlterContextResp:
      if (const auto* a = std::get_if<AlterContextResp>(&pdu.body)) return answer(pdu, *a, false);
      break;
    case PType::kBindNak:
      if (!pending_ || !pending_->is_bind || pending_->call_id != h.call_id) {
        return drop(ec(Errc::kUnsolicitedBindAck));
      }
      pending_.reset();
      phase_ = Phase::kRejected;
      return allow;
    case PType::kResponse:
      if (phase_ != Phase::kBound) return drop(ec(Errc::kUnexpectedPdu));
      if (h.frag_length > max_xmit_frag_) return drop(ec(Errc::kFragTooLong));
      if (!outstanding_.contains(h.call_id)) {
        return Verdict{Verdict::Action::kAllow, ec(Errc::kUnsolicitedResponse), std::nullopt};
      }
      if (h.pfc_flags & pfc::kLastFrag) outstanding_.erase(h.call_id);
      return allow;
    case PType::kFault:
      // A fault may answer a bind or alter_context (Impacket handles both) or a request.
      if (pending_ && pending_->call_id == h.call_id) {
        if (pending_->is_bind) phase_ = Phase::kRejected;
        pending_.reset();
        return allow;
      }
      if (max_xmit_frag_ != 0 && h.frag_length > max_xmit_frag_) {
        return drop(ec(Errc::kFragTooLong));
      }
      if (outstanding_.erase(h.call_id) == 0) {
        return Verdict{Verdict::Action::kAllow, ec(Errc::kUnsolicitedResponse), std::nullopt};
      }
      open_calls_.erase(h.call_id);
      return allow;
    case PType::kShutdown:
      return allow;
    default:
      break;
  }
  return drop(ec(Errc::kUnexpectedPdu));
}

}  // namespace rpcgate::rpc
