#include "rpc/connection.h"

#include <algorithm>
#include <utility>

#include "rpc/status.h"

namespace rpcgate::rpc {
namespace {

std::error_code ec(Errc e) {
  return make_error_code(e);
}

// Output buffers larger than this are given back once drained (an idle connection keeps
// only a small one; a connection that sent a large answer once does not keep its size).
constexpr std::size_t kKeepOutputCapacity = 4096;
// The request stub buffer kept for the next call (larger ones are freed with their call).
constexpr std::size_t kKeepStubCapacity = 4096;
// Sent bytes are discarded from the front of the buffer once this many accumulated.
constexpr std::size_t kCompactOutputAt = 64 * 1024;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

bool positive(std::chrono::milliseconds d) {
  return d.count() > 0;
}

void earliest(std::optional<TimePoint>& best, std::optional<TimePoint> t) {
  if (t && (!best || *t < *best)) best = t;
}

}  // namespace

std::string_view to_string(CloseReason r) {
  switch (r) {
    case CloseReason::kProtocol:
      return "protocol";
    case CloseReason::kIdleTimeout:
      return "idle timeout";
    case CloseReason::kPduTimeout:
      return "pdu timeout";
    case CloseReason::kWriteTimeout:
      return "write timeout";
    case CloseReason::kCallTimeout:
      return "call deadline";
    case CloseReason::kCallTooLarge:
      return "call over its interface's stub cap";
    case CloseReason::kConnectionBudget:
      return "reassembly budget per connection";
    case CloseReason::kEof:
      return "eof";
    case CloseReason::kReadError:
      return "read error";
    case CloseReason::kWriteError:
      return "write error";
    case CloseReason::kPeerBudget:
      return "reassembly budget per peer";
    case CloseReason::kServerBudget:
      return "reassembly budget of the server";
    case CloseReason::kStopped:
      return "server stop";
    case CloseReason::kCount:
      break;
  }
  return "?";
}

ConnectionOptions caller_timed_client_options() {
  ConnectionOptions o;
  o.idle_before_bind = o.idle_after_bind = o.pdu = o.write = o.response = {};
  o.max_outstanding_calls = 1;
  o.max_output_bytes = std::size_t{1} << 30;
  return o;
}

CallRef call_ref(const ServerCall& call) {
  return CallRef{call.call.call_id, call.call.p_cont_id, call.call.drep,
                 (call.call.pfc_flags & pfc::kMaybe) != 0};
}

Connection::Connection(RoleConfig role, ConnectionOptions options, ConnectionHandler& handler,
                       TimePoint now)
    : options_(options),
      handler_(&handler),
      part_(std::visit(Overloaded{
                           [](ServerRole& r) -> decltype(part_) {
                             return decltype(part_)(std::in_place_type<ServerPart>,
                                                    std::move(r.association));
                           },
                           [](ClientRole& r) -> decltype(part_) {
                             return decltype(part_)(std::in_place_type<ClientPart>, r);
                           },
                           [&options](ObserverRole& r) -> decltype(part_) {
                             return decltype(part_)(std::in_place_type<ObserverPart>, r.limits,
                                                    options.max_frag_before_bind);
                           },
                       },
                       role)),
      framer_(options.max_frag_before_bind),
      last_activity_(now) {
  // A client frames what it offered to receive: a bind_ack larger than that is refused at once.
  if (auto* c = std::get_if<ClientPart>(&part_))
    framer_.set_max_frag_length(c->config.max_recv_frag);
}

Role Connection::role() const {
  return static_cast<Role>(part_.index());
}

// ---- input --------------------------------------------------------------------------------------

bool Connection::paused() const {
  if (state_ != State::kOpen) return true;
  if (output_bytes() > options_.max_output_bytes) return true;
  return role() == Role::kServer && outstanding_ >= options_.max_outstanding_calls;
}

bool Connection::wants_input() const {
  return !paused();
}

void Connection::feed(Direction direction, std::span<const std::uint8_t> bytes, TimePoint now) {
  if (state_ != State::kOpen || bytes.empty()) return;
  counters_.bytes_in += bytes.size();
  last_activity_ = now;
  if (role() == Role::kObserver) {
    observer_input(direction, bytes, now);
    return;
  }
  const bool expected = role() == Role::kServer ? direction == Direction::kClientToServer
                                                : direction == Direction::kServerToClient;
  if (!expected) return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kInvalidArgument)});
  if (pending_in_.empty() && !paused() && !in_process_) {
    // The common case: everything is processed from the caller's buffer, nothing is copied.
    input(bytes, now);
    if (state_ == State::kOpen && !bytes.empty()) pending_in_.assign(bytes.begin(), bytes.end());
  } else {
    pending_in_.insert(pending_in_.end(), bytes.begin(), bytes.end());
    process(now);
  }
  refresh_pdu_deadline(now);
}

void Connection::process(TimePoint now) {
  if (in_process_ || pending_in_.empty() || paused()) return;
  std::vector<std::uint8_t> data = std::move(pending_in_);
  pending_in_.clear();
  std::span<const std::uint8_t> rest(data);
  input(rest, now);
  if (state_ == State::kOpen && !rest.empty())
    pending_in_.insert(pending_in_.begin(), rest.begin(), rest.end());
}

void Connection::input(std::span<const std::uint8_t>& data, TimePoint now) {
  in_process_ = true;
  if (role() == Role::kServer) {
    server_input(data, now);
  } else {
    client_input(data, now);
  }
  in_process_ = false;
}

Connection::Frame Connection::next_frame(std::span<const std::uint8_t>& data) {
  if (auto whole = framer_.whole_pdu(data)) {
    data = data.subspan(whole->size());
    return Frame{*whole, false, {}};  // read in place, not copied
  }
  auto n = framer_.feed(data);
  if (!n) {
    data = {};
    return Frame{{}, true, n.error()};
  }
  data = data.subspan(*n);
  if (!framer_.ready()) return Frame{};
  return Frame{framer_.frame(), true, {}};
}

void Connection::refresh_pdu_deadline(TimePoint now) {
  if (paused() || framer_.buffered() == 0 || !positive(options_.pdu)) {
    pdu_deadline_.reset();
  } else if (!pdu_deadline_) {
    pdu_deadline_ = now + options_.pdu;
  }
}

// ---- server -------------------------------------------------------------------------------------

void Connection::server_input(std::span<const std::uint8_t>& data, TimePoint now) {
  auto& s = std::get<ServerPart>(part_);
  while (!data.empty() && !paused()) {
    const auto before = data;
    const Frame f = next_frame(data);
    if (f.error) {
      // The refused PDU's header as the framer holds it (input may split it anywhere).
      const auto held = framer_.held();
      server_apply(s.assoc.handle_malformed(f.error, held.empty() ? before : held),
                   CloseInfo{CloseReason::kProtocol, f.error}, now);
      return;
    }
    if (f.bytes.empty()) continue;
    const auto frame = f.bytes;
    const bool buffered = f.buffered;
    ++counters_.pdus_in;
    auto pdu = decode_pdu(frame, {}, &spare_stub_);
    std::uint16_t p_cont_id = 0;
    if (pdu) {
      if (const auto* q = std::get_if<Request>(&pdu->body)) p_cont_id = q->p_cont_id;
    }
    const std::size_t held_before = s.held;
    Decision d =
        pdu ? s.assoc.handle(std::move(*pdu), now) : s.assoc.handle_malformed(pdu.error(), frame);
    if (buffered) framer_.pop();
    pdu_deadline_.reset();
    CloseInfo info{CloseReason::kProtocol, d.reason};
    if (d.reason == Errc::kStubTooLarge) {
      info =
          CloseInfo{CloseReason::kCallTooLarge, d.reason, s.assoc.stub_cap(p_cont_id), held_before};
    } else if (d.reason == Errc::kReassemblyBudget) {
      info = CloseInfo{CloseReason::kConnectionBudget, d.reason,
                       s.assoc.config().reassembly.max_held_bytes, held_before};
    }
    sync_held();
    if (state_ == State::kClosed) return;  // a budget spanning connections closed this one
    if (!s.bound_reported && s.assoc.state() == ServerAssociation::State::kBound &&
        s.assoc.max_recv_frag() != 0) {
      // Windows accepts request fragments up to its own limit, not only the negotiated one.
      framer_.set_max_frag_length(s.assoc.server_max_frag());
      s.bound_reported = true;
      handler_->on_bound(s.assoc.assoc_group_id());
      if (state_ != State::kOpen) return;
    }
    server_apply(std::move(d), info, now);
  }
}

void Connection::server_apply(Decision d, const CloseInfo& info, TimePoint now) {
  using A = Decision::Action;
  switch (d.action) {
    case A::kSend:
      queue(d.pdu, now);
      break;
    case A::kDispatch:
      if (d.call) {
        ++outstanding_;
        ++counters_.calls;
        handler_->on_call(*d.call);
        // The stub was the handler's only during the call: its buffer decodes the next one.
        if (d.call->call.stub.capacity() <= kKeepStubCapacity) {
          spare_stub_ = std::move(d.call->call.stub);
          spare_stub_.clear();
        }
      }
      break;
    case A::kCloseConnection:
      if (!d.pdu.empty()) queue(d.pdu, now);
      closing(info);
      break;
    case A::kIgnore:
      break;
  }
}

void Connection::sync_held() {
  auto* s = std::get_if<ServerPart>(&part_);
  if (s == nullptr) return;
  const std::size_t now_held = s->assoc.reassembly_held_bytes();
  if (now_held == s->held) return;
  const std::size_t before = s->held;
  s->held = now_held;
  handler_->on_reassembly_change(before, now_held);
}

std::size_t Connection::reassembly_held() const {
  const auto* s = std::get_if<ServerPart>(&part_);
  return s != nullptr ? s->held : 0;
}

const ServerAssociation* Connection::server() const {
  const auto* s = std::get_if<ServerPart>(&part_);
  return s != nullptr ? &s->assoc : nullptr;
}

void Connection::respond(const CallRef& call, std::span<const std::uint8_t> stub, TimePoint now,
                         std::vector<int> fds) {
  auto* s = std::get_if<ServerPart>(&part_);
  if (s == nullptr || state_ != State::kOpen) {
    unsent_fds_.insert(unsent_fds_.end(), fds.begin(), fds.end());
    return;
  }
  if (outstanding_ > 0) --outstanding_;
  if (call.maybe) {
    unsent_fds_.insert(unsent_fds_.end(), fds.begin(), fds.end());
  } else {
    const std::size_t at = out_.size();
    auto n = append_response(s->assoc.response_params(call.call_id, call.p_cont_id, call.drep),
                             stub, s->assoc.max_xmit_frag(), out_);
    if (!n) {
      unsent_fds_.insert(unsent_fds_.end(), fds.begin(), fds.end());
      fault_out(call, status::kNcaSFaultUnspec, now);
    } else {
      counters_.pdus_out += *n;
      if (!fds.empty()) attachments_.push_back(Attachment{at, std::move(fds)});
      queued(now);
    }
  }
  after_answer(now);
}

void Connection::respond_fault(const CallRef& call, std::uint32_t status, TimePoint now) {
  if (role() != Role::kServer || state_ != State::kOpen) return;
  if (outstanding_ > 0) --outstanding_;
  if (!call.maybe) fault_out(call, status, now);
  after_answer(now);
}

void Connection::fault_out(const CallRef& call, std::uint32_t status, TimePoint now) {
  ++counters_.faults;
  // Windows marks an opnum out of range as not executed (raw_protocol
  // test_no_auth_presentation_ctx_valid1).
  const std::uint8_t flags =
      status == status::kNcaSOpRngError ? pfc::kDidNotExecute : std::uint8_t{0};
  queue(build_fault(call.call_id, call.p_cont_id, status, call.drep, flags), now);
}

void Connection::after_answer(TimePoint now) {
  process(now);
  refresh_pdu_deadline(now);
}

// ---- client -------------------------------------------------------------------------------------

Connection::ClientPart::ClientPart(const ClientRole& c) : config(c), responses(c.responses) {}

bool Connection::bind(std::span<const SyntaxId> interfaces, TimePoint now) {
  auto* c = std::get_if<ClientPart>(&part_);
  if (c == nullptr || state_ != State::kOpen || c->bind_started || interfaces.empty()) return false;
  c->bind_started = true;
  c->binding.assign(interfaces.begin(), interfaces.end());
  c->next_context = 0;
  send_bind_step(now);
  return state_ == State::kOpen;
}

void Connection::send_bind_step(TimePoint now) {
  auto& c = std::get<ClientPart>(part_);
  const auto i = static_cast<std::uint16_t>(c.next_context);
  const std::uint32_t call_id = c.next_call_id++;
  ContextElement item{i, c.binding[i], {kNdr20Syntax}};
  std::expected<std::vector<std::uint8_t>, std::error_code> bytes;
  if (i == 0) {
    Bind b;
    b.max_xmit_frag = c.config.max_xmit_frag;
    b.max_recv_frag = c.config.max_recv_frag;
    b.contexts.push_back(std::move(item));
    bytes = encode_pdu(make_pdu(std::move(b), call_id));
  } else {
    AlterContext a;
    a.max_xmit_frag = c.config.max_xmit_frag;
    a.max_recv_frag = c.config.max_recv_frag;
    a.assoc_group_id = c.assoc_group_id;
    a.contexts.push_back(std::move(item));
    bytes = encode_pdu(make_pdu(std::move(a), call_id));
  }
  if (!bytes) return closed(CloseInfo{CloseReason::kProtocol, bytes.error()});
  c.bind_call_id = call_id;
  c.bind_sent = now;
  queue(*bytes, now);
}

bool Connection::bound() const {
  const auto* c = std::get_if<ClientPart>(&part_);
  return c != nullptr && c->bound;
}

std::uint32_t Connection::call(std::uint16_t p_cont_id, std::uint16_t opnum,
                               std::span<const std::uint8_t> stub, TimePoint now,
                               std::optional<Uuid> object) {
  auto* c = std::get_if<ClientPart>(&part_);
  if (c == nullptr || state_ != State::kOpen || !c->bound || p_cont_id >= c->binding.size() ||
      c->waiting.size() >= options_.max_outstanding_calls)
    return 0;
  if (c->next_call_id == 0) ++c->next_call_id;  // 0 means "no call" to our callers
  FragmentParams params;
  params.call_id = c->next_call_id;
  params.p_cont_id = p_cont_id;
  params.opnum = opnum;
  params.object = object;
  auto n = append_request(params, stub, c->max_xmit_frag, out_);
  if (!n) return 0;
  ++c->next_call_id;
  counters_.pdus_out += *n;
  ++counters_.calls;
  c->waiting.emplace_back(params.call_id, now);
  queued(now);
  return params.call_id;
}

std::uint16_t Connection::max_xmit_frag() const {
  const auto* c = std::get_if<ClientPart>(&part_);
  if (c != nullptr) return c->max_xmit_frag;
  const auto* s = std::get_if<ServerPart>(&part_);
  return s != nullptr ? s->assoc.max_xmit_frag() : 0;
}

std::uint32_t Connection::assoc_group_id() const {
  const auto* c = std::get_if<ClientPart>(&part_);
  if (c != nullptr) return c->assoc_group_id;
  const auto* s = std::get_if<ServerPart>(&part_);
  return s != nullptr ? s->assoc.assoc_group_id() : 0;
}

std::string_view Connection::secondary_address() const {
  const auto* c = std::get_if<ClientPart>(&part_);
  return c != nullptr ? std::string_view(c->sec_addr) : std::string_view();
}

void Connection::client_input(std::span<const std::uint8_t>& data, TimePoint now) {
  auto& c = std::get<ClientPart>(part_);
  while (!data.empty() && state_ == State::kOpen) {
    const Frame f = next_frame(data);
    if (f.error) return closed(CloseInfo{CloseReason::kProtocol, f.error});
    if (f.bytes.empty()) continue;
    const auto frame = f.bytes;
    const bool buffered = f.buffered;
    ++counters_.pdus_in;
    pdu_deadline_.reset();
    const PduHeader& h = framer_.header();
    if (h.ptype == static_cast<std::uint8_t>(PType::kResponse) && h.auth_length == 0 &&
        (h.pfc_flags & (pfc::kFirstFrag | pfc::kLastFrag)) == (pfc::kFirstFrag | pfc::kLastFrag) &&
        c.responses.calls_in_progress() == 0) {
      // The common answer, one whole fragment: its stub is handed over where it lies (no decode
      // into a Pdu, no copy). decode_header checked that the 24-byte header fits.
      client_single_response(h, frame);
    } else {
      auto pdu = decode_pdu(frame);
      if (!pdu) {
        data = {};
        if (buffered) framer_.pop();
        return closed(CloseInfo{CloseReason::kProtocol, pdu.error()});
      }
      client_pdu(std::move(*pdu), now);
    }
    if (buffered) framer_.pop();
  }
}

void Connection::client_single_response(const PduHeader& h, std::span<const std::uint8_t> frame) {
  auto& c = std::get<ClientPart>(part_);
  const auto waiting = std::find_if(c.waiting.begin(), c.waiting.end(),
                                    [&h](const auto& w) { return w.first == h.call_id; });
  if (waiting == c.waiting.end())
    return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kUnsolicitedResponse)});
  const auto stub = frame.subspan(24);
  if (stub.size() > c.config.responses.max_stub_size)
    return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kStubTooLarge)});
  const bool little = h.endian() == common::Endian::kLittle;
  const auto p_cont_id =
      static_cast<std::uint16_t>(little ? frame[20] | frame[21] << 8 : frame[21] | frame[20] << 8);
  c.waiting.erase(waiting);
  handler_->on_response(ResponseView{h.call_id, p_cont_id, h.drep, stub, std::nullopt});
}

void Connection::client_pdu(Pdu&& pdu, TimePoint now) {
  auto& c = std::get<ClientPart>(part_);
  const auto type = static_cast<PType>(pdu.header.ptype);
  if (type == PType::kBindAck || type == PType::kBindNak || type == PType::kAlterContextResp) {
    if (c.bind_call_id == 0 || pdu.header.call_id != c.bind_call_id)
      return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kUnsolicitedBindAck)});
    return client_bind_answer(pdu, now);
  }
  if (type != PType::kResponse && type != PType::kFault)
    return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kUnexpectedPdu)});
  const std::uint32_t call_id = pdu.header.call_id;
  const auto waiting = std::find_if(c.waiting.begin(), c.waiting.end(),
                                    [call_id](const auto& w) { return w.first == call_id; });
  if (waiting == c.waiting.end())
    return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kUnsolicitedResponse)});
  auto done = c.responses.feed(std::move(pdu));
  if (!done) return closed(CloseInfo{CloseReason::kProtocol, done.error()});
  if (!*done) return;
  c.waiting.erase(waiting);
  const AssembledResponse& r = **done;
  handler_->on_response(ResponseView{r.call_id, r.p_cont_id, r.drep, r.stub, r.fault});
}

void Connection::client_bind_answer(const Pdu& pdu, TimePoint now) {
  auto& c = std::get<ClientPart>(part_);
  c.bind_call_id = 0;
  c.bind_sent.reset();
  if (const auto* nak = std::get_if<BindNak>(&pdu.body)) {
    handler_->on_bind_result(BindResult{.nak = true, .reject_reason = nak->provider_reject_reason});
    // The server ends the association after a bind_nak.
    return closing(CloseInfo{CloseReason::kProtocol, ec(Errc::kAssociationClosed)});
  }
  const BindAckBody* body = nullptr;
  if (c.next_context == 0) {
    body = std::get_if<BindAck>(&pdu.body);
  } else {
    body = std::get_if<AlterContextResp>(&pdu.body);
  }
  if (body == nullptr) return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kUnexpectedPdu)});
  if (body->results.size() != 1)
    return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kResultCountMismatch)});
  if (c.next_context == 0) {
    c.max_xmit_frag = body->max_recv_frag;  // what the server receives
    c.assoc_group_id = body->assoc_group_id;
    c.sec_addr = std::string(body->secondary_address());
    if (c.max_xmit_frag < kMustRecvFragSize) c.max_xmit_frag = kMustRecvFragSize;
    framer_.set_max_frag_length(std::min<std::size_t>(body->max_xmit_frag, c.config.max_recv_frag));
  }
  const auto& result = body->results[0];
  if (result.result != 0) {
    handler_->on_bind_result(BindResult{.p_cont_id = static_cast<std::uint16_t>(c.next_context),
                                        .result = result.result,
                                        .reason = result.reason});
    return;
  }
  if (++c.next_context < c.binding.size()) return send_bind_step(now);
  c.bound = true;
  handler_->on_bind_result(BindResult{.accepted = true});
}

// ---- observer -----------------------------------------------------------------------------------

Connection::ObserverPart::ObserverPart(ObserverLimits l, std::uint16_t max_frag_before_bind)
    : limits(l), observer(l), server_framer(max_frag_before_bind) {}

const AssociationObserver* Connection::observer() const {
  const auto* o = std::get_if<ObserverPart>(&part_);
  return o != nullptr ? &o->observer : nullptr;
}

void Connection::observer_input(Direction d, std::span<const std::uint8_t> data, TimePoint now) {
  auto& o = std::get<ObserverPart>(part_);
  const bool from_client = d == Direction::kClientToServer;
  Framer& framer = from_client ? framer_ : o.server_framer;
  auto& deadline = from_client ? pdu_deadline_ : o.server_pdu_deadline;
  while (!data.empty() && state_ == State::kOpen) {
    const auto before = data;
    auto n = framer.feed(data);
    if (!n) {
      const Verdict v = o.observer.observe_error(d, n.error());
      const auto held = framer.held();
      handler_->on_verdict(VerdictView{d, nullptr, held.empty() ? before : held, &v, nullptr});
      return closed(CloseInfo{CloseReason::kProtocol, n.error()});
    }
    data = data.subspan(*n);
    if (!framer.ready()) continue;
    ++counters_.pdus_in;
    observer_pdu(d, framer.frame());
    framer.pop();
    deadline.reset();
  }
  if (state_ != State::kOpen || framer.buffered() == 0 || !positive(options_.pdu)) {
    deadline.reset();
  } else if (!deadline) {
    deadline = now + options_.pdu;
  }
}

std::size_t Connection::head_size(std::span<const std::uint8_t, kCommonHeaderSize> header) {
  const auto type = static_cast<PType>(header[2]);
  if (type != PType::kRequest && type != PType::kResponse) return 0;
  return min_frag_length(header[2], header[3]);
}

std::size_t Connection::partial_bytes(Direction direction) const {
  const auto* o = std::get_if<ObserverPart>(&part_);
  if (o == nullptr) return 0;
  return direction == Direction::kClientToServer ? framer_.buffered() : o->server_framer.buffered();
}

void Connection::feed_head(Direction d, std::span<const std::uint8_t> head, TimePoint now) {
  if (state_ != State::kOpen || head.empty()) return;
  auto* o = std::get_if<ObserverPart>(&part_);
  const bool from_client = d == Direction::kClientToServer;
  if (o == nullptr) return closed(CloseInfo{CloseReason::kProtocol, ec(Errc::kInvalidArgument)});
  Framer& framer = from_client ? framer_ : o->server_framer;
  counters_.bytes_in += head.size();
  last_activity_ = now;
  ++counters_.pdus_in;
  auto fail = [&](std::error_code e) {
    const Verdict v = o->observer.observe_error(d, e);
    handler_->on_verdict(VerdictView{d, nullptr, head, &v, nullptr});
    closed(CloseInfo{CloseReason::kProtocol, e});
  };
  auto header = decode_header(head);
  if (!header) return fail(header.error());
  if (framer.buffered() != 0 || head.size() < kCommonHeaderSize ||
      head_size(head.first<kCommonHeaderSize>()) != head.size())
    return fail(ec(Errc::kInvalidArgument));
  if (header->frag_length > framer.max_frag_length()) return fail(ec(Errc::kFragTooLong));
  // The fixed fields, decoded by the one PDU decoder: the head as a PDU of its own length.
  std::array<std::uint8_t, 64> copy{};
  std::copy(head.begin(), head.end(), copy.begin());
  const auto len = static_cast<std::uint16_t>(head.size());
  const bool little = header->endian() == Endian::kLittle;
  copy[8] = static_cast<std::uint8_t>(little ? len & 0xff : len >> 8);
  copy[9] = static_cast<std::uint8_t>(little ? len >> 8 : len & 0xff);
  copy[10] = copy[11] = 0;  // auth_length: the trailer is in the unseen part
  auto pdu = decode_pdu(std::span<const std::uint8_t>(copy.data(), head.size()));
  if (pdu) {
    pdu->header = *header;
    if (header->auth_length != 0) pdu->auth = AuthTrailer{};
  }
  observer_decoded(d, std::move(pdu), head);
}

// A request or response without an auth trailer is judged on its header and fixed fields only
// (the observer never looks into stubs), so its stub is not copied out: decode_head() - a
// firewall relaying bulk calls would otherwise copy every byte once more. Everything else, and
// any PDU with a trailer (whose layout is checked), is decoded whole.
std::expected<Pdu, std::error_code> Connection::decode_head(std::span<const std::uint8_t> frame) {
  auto header = decode_header(frame);
  if (!header) return std::unexpected(header.error());
  const auto size = head_size(frame.first<kCommonHeaderSize>());
  if (size == 0 || header->auth_length != 0 || frame.size() < size ||
      header->frag_length != frame.size())
    return decode_pdu(frame);
  std::array<std::uint8_t, 64> copy{};
  std::copy(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(size), copy.begin());
  const auto len = static_cast<std::uint16_t>(size);
  const bool little = header->endian() == Endian::kLittle;
  copy[8] = static_cast<std::uint8_t>(little ? len & 0xff : len >> 8);
  copy[9] = static_cast<std::uint8_t>(little ? len >> 8 : len & 0xff);
  copy[10] = copy[11] = 0;
  auto pdu = decode_pdu(std::span<const std::uint8_t>(copy.data(), size));
  if (pdu) {
    pdu->header = *header;
    if (header->auth_length != 0) pdu->auth = AuthTrailer{};
  }
  return pdu;
}

void Connection::observer_pdu(Direction d, std::span<const std::uint8_t> frame) {
  observer_decoded(d, decode_head(frame), frame);
}

void Connection::observer_decoded(Direction d, std::expected<Pdu, std::error_code> pdu,
                                  std::span<const std::uint8_t> frame) {
  auto& o = std::get<ObserverPart>(part_);
  const Verdict v = pdu ? o.observer.observe(d, *pdu) : o.observer.observe_error(d, pdu.error());
  std::optional<RequestTarget> answered;
  if (pdu && v.allowed()) {
    const auto type = static_cast<PType>(pdu->header.ptype);
    if (d == Direction::kClientToServer && v.request && v.request->first_fragment) {
      // Bounded: the observer drops a connection over ObserverLimits::max_outstanding_calls.
      o.requests.insert_or_assign(pdu->header.call_id, *v.request);
    } else if (d == Direction::kServerToClient &&
               (type == PType::kResponse || type == PType::kFault)) {
      if (auto it = o.requests.find(pdu->header.call_id); it != o.requests.end()) {
        answered = it->second;
        if (type == PType::kFault || (pdu->header.pfc_flags & pfc::kLastFrag) != 0)
          o.requests.erase(it);
      }
    }
  }
  handler_->on_verdict(
      VerdictView{d, pdu ? &pdu->header : nullptr, frame, &v, answered ? &*answered : nullptr});
  if (!v.allowed()) return closed(CloseInfo{CloseReason::kProtocol, v.reason});
  if (!o.negotiated && o.observer.bound() && o.observer.max_recv_frag() != 0) {
    // The server accepts request fragments up to its own limit (association.h).
    framer_.set_max_frag_length(
        std::max<std::size_t>(o.observer.max_recv_frag(), o.limits.server_max_frag));
    o.server_framer.set_max_frag_length(o.observer.max_xmit_frag());
    o.negotiated = true;
  }
}

// ---- output -------------------------------------------------------------------------------------

void Connection::queue(std::span<const std::uint8_t> bytes, TimePoint now) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  ++counters_.pdus_out;
  queued(now);
}

void Connection::queued(TimePoint now) {
  if (!write_deadline_ && positive(options_.write)) write_deadline_ = now + options_.write;
}

Connection::Output Connection::next_output() const {
  if (out_head_ == out_.size()) return {};
  std::size_t end = out_.size();
  std::span<const int> fds;
  for (const auto& a : attachments_) {  // sorted by offset; almost always empty
    if (a.at == out_head_) {
      fds = a.fds;
    } else if (a.at > out_head_) {
      end = a.at;
      break;
    }
  }
  return Output{std::span<const std::uint8_t>(out_).subspan(out_head_, end - out_head_), fds};
}

void Connection::output_sent(std::size_t n, TimePoint now) {
  n = std::min(n, output_bytes());
  if (n == 0) return;
  if (!attachments_.empty() && attachments_.front().at == out_head_) {
    attachments_.erase(attachments_.begin());  // the kernel holds its own references now
  }
  out_head_ += n;
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
    if (out_.capacity() > kKeepOutputCapacity) out_ = {};
    write_deadline_.reset();
    last_activity_ = now;
    if (state_ == State::kClosing) return closed(close_);
    return after_answer(now);  // output no longer holds input back
  }
  if (out_head_ >= kCompactOutputAt) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_head_));
    for (auto& a : attachments_)
      a.at -= out_head_;
    out_head_ = 0;
  }
  if (positive(options_.write)) write_deadline_ = now + options_.write;
  if (!paused()) after_answer(now);
}

std::vector<int> Connection::take_unsent_fds() {
  std::vector<int> fds = std::move(unsent_fds_);
  unsent_fds_.clear();
  return fds;
}

// ---- timers and closing -------------------------------------------------------------------------

std::optional<TimePoint> Connection::next_expiry() const {
  if (state_ == State::kClosed) return std::nullopt;
  std::optional<TimePoint> best = write_deadline_;
  if (state_ == State::kClosing) return best;  // only the flush is left
  earliest(best, pdu_deadline_);
  bool owed = outstanding_ != 0 || output_bytes() != 0;
  bool bound_now = false;
  std::visit(Overloaded{
                 [&](const ServerPart& s) {
                   earliest(best, s.assoc.call_expiry());
                   bound_now = s.assoc.state() == ServerAssociation::State::kBound;
                 },
                 [&](const ClientPart& c) {
                   if (positive(options_.response)) {
                     if (c.bind_sent) earliest(best, *c.bind_sent + options_.response);
                     for (const auto& [id, sent] : c.waiting)  // a handful
                       earliest(best, sent + options_.response);
                   }
                   owed = owed || c.bind_call_id != 0 || !c.waiting.empty();
                   bound_now = c.bound;
                 },
                 [&](const ObserverPart& o) {
                   earliest(best, o.server_pdu_deadline);
                   owed = owed || !o.requests.empty();
                   bound_now = o.observer.bound();
                 },
             },
             part_);
  const auto idle = bound_now ? options_.idle_after_bind : options_.idle_before_bind;
  if (!owed && positive(idle)) earliest(best, last_activity_ + idle);
  return best;
}

void Connection::on_expiry(TimePoint now) {
  if (state_ == State::kClosed) return;
  if (write_deadline_ && now >= *write_deadline_)
    return closed(CloseInfo{CloseReason::kWriteTimeout, {}});
  if (state_ == State::kClosing) return;
  if (pdu_deadline_ && now >= *pdu_deadline_)
    return closed(CloseInfo{CloseReason::kPduTimeout, {}});
  if (auto* s = std::get_if<ServerPart>(&part_)) {
    if (auto d = s->assoc.handle_expiry(now); d.action == Decision::Action::kCloseConnection) {
      return closed(CloseInfo{
          CloseReason::kCallTimeout, d.reason,
          static_cast<std::size_t>(s->assoc.config().reassembly.call_timeout.count()), s->held});
    }
  }
  if (auto* c = std::get_if<ClientPart>(&part_); c != nullptr && positive(options_.response)) {
    bool late = c->bind_sent && now >= *c->bind_sent + options_.response;
    for (const auto& [id, sent] : c->waiting)
      late = late || now >= sent + options_.response;
    if (late) return closed(CloseInfo{CloseReason::kCallTimeout, ec(Errc::kCallTimeout)});
  }
  if (auto* o = std::get_if<ObserverPart>(&part_);
      o != nullptr && o->server_pdu_deadline && now >= *o->server_pdu_deadline)
    return closed(CloseInfo{CloseReason::kPduTimeout, {}});
  if (auto e = next_expiry(); e && now >= *e) closed(CloseInfo{CloseReason::kIdleTimeout, {}});
}

void Connection::close(CloseReason reason, TimePoint /*now*/, std::error_code error) {
  if (state_ == State::kClosed) return;
  closed(CloseInfo{reason, error});
}

void Connection::closing(const CloseInfo& info) {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  close_ = info;
  pending_in_ = {};
  pdu_deadline_.reset();
  if (output_bytes() == 0) closed(close_);
}

void Connection::closed(const CloseInfo& info) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  close_ = info;
  pending_in_ = {};
  spare_stub_ = {};
  out_ = {};
  out_head_ = 0;
  for (auto& a : attachments_)
    unsent_fds_.insert(unsent_fds_.end(), a.fds.begin(), a.fds.end());
  attachments_.clear();
  pdu_deadline_.reset();
  write_deadline_.reset();
  std::visit(Overloaded{
                 [&](ServerPart& s) {
                   s.assoc.abort();  // frees the unfinished calls' buffers now
                 },
                 [&](ClientPart& c) {
                   c.responses.clear();
                   c.waiting.clear();
                   c.bind_sent.reset();
                 },
                 [&](ObserverPart& o) {
                   o.requests.clear();
                   o.server_pdu_deadline.reset();
                 },
             },
             part_);
  sync_held();
}

}  // namespace rpcgate::rpc
