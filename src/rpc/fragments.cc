#include "rpc/fragments.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

namespace rpcgate::rpc {
namespace {

std::unexpected<std::error_code> fail(Errc e) {
  return std::unexpected(make_error_code(e));
}

// Writes integers in one byte order at a cursor into memory the caller has sized (the fragments
// of one call are written where they are sent from: no buffer per fragment, one resize).
class Cursor {
 public:
  Cursor(std::uint8_t* at, common::Endian endian)
      : at_(at), little_(endian == common::Endian::kLittle) {}
  void u8(std::uint8_t v) { *at_++ = v; }
  void u16(std::uint16_t v) {
    at_[little_ ? 0 : 1] = static_cast<std::uint8_t>(v);
    at_[little_ ? 1 : 0] = static_cast<std::uint8_t>(v >> 8);
    at_ += 2;
  }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
      at_[little_ ? i : 3 - i] = static_cast<std::uint8_t>(v >> (8 * i));
    at_ += 4;
  }
  void bytes(std::span<const std::uint8_t> b) {
    if (!b.empty()) std::memcpy(at_, b.data(), b.size());
    at_ += b.size();
  }

 private:
  std::uint8_t* at_;
  bool little_;
};

// Writes every fragment of `stub` to `out` (see split_response); returns the fragment count.
std::expected<std::size_t, std::error_code> append(const FragmentParams& params,
                                                   std::span<const std::uint8_t> stub,
                                                   std::size_t max_xmit_frag, bool request,
                                                   std::vector<std::uint8_t>& out) {
  const std::size_t header = request ? 24 + (params.object ? 16 : 0) : std::size_t{24};
  if (max_xmit_frag > kMaxFragLength || max_xmit_frag < header + 8) {
    return fail(Errc::kInvalidArgument);
  }
  if (params.rpc_vers_minor > 1 || !validate_drep(params.drep)) return fail(Errc::kInvalidArgument);
  const std::size_t chunk = (max_xmit_frag - header) & ~std::size_t{7};
  const std::size_t fragments = stub.empty() ? 1 : (stub.size() + chunk - 1) / chunk;
  const std::size_t start = out.size();
  out.resize(start + stub.size() + fragments * header);
  Cursor w(out.data() + start, params.drep.endian());
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(chunk, stub.size() - offset);
    std::uint8_t flags = static_cast<std::uint8_t>(
        params.extra_pfc_flags & ~(pfc::kFirstFrag | pfc::kLastFrag | pfc::kObjectUuid));
    if (offset == 0) flags |= pfc::kFirstFrag;
    if (offset + n == stub.size()) flags |= pfc::kLastFrag;
    if (request && params.object) flags |= pfc::kObjectUuid;
    // Written directly - the bytes encode_pdu(make_pdu(Request/Response{...})) gives (asserted
    // by fragments_test) - so answering a call copies the stub once, into its fragment.
    w.u8(kRpcVers);
    w.u8(params.rpc_vers_minor);
    w.u8(static_cast<std::uint8_t>(request ? PType::kRequest : PType::kResponse));
    w.u8(flags);
    w.bytes(params.drep.bytes);
    w.u16(static_cast<std::uint16_t>(header + n));  // frag_length
    w.u16(0);                                       // auth_length
    w.u32(params.call_id);
    w.u32(static_cast<std::uint32_t>(stub.size() - offset));  // alloc_hint: bytes remaining
    w.u16(params.p_cont_id);
    if (request) {
      w.u16(params.opnum);
      if (params.object) {
        common::ByteWriter uuid(params.drep.endian());  // the NDR layout of a UUID (uuid.h)
        params.object->write(uuid);
        w.bytes(uuid.buffer());
      }
    } else {
      w.u8(0);  // cancel_count
      w.u8(0);  // reserved
    }
    w.bytes(stub.subspan(offset, n));
    offset += n;
  } while (offset < stub.size());
  return fragments;
}

std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> split(
    const FragmentParams& params, std::span<const std::uint8_t> stub, std::size_t max_xmit_frag,
    bool request) {
  std::vector<std::uint8_t> all;
  auto n = append(params, stub, max_xmit_frag, request, all);
  if (!n) return std::unexpected(n.error());
  std::vector<std::vector<std::uint8_t>> out;
  out.reserve(*n);
  for (std::size_t at = 0; at < all.size();) {
    const bool little = params.drep.endian() == common::Endian::kLittle;
    const std::size_t len = static_cast<std::size_t>(all[at + 8]) << (little ? 0 : 8) |
                            static_cast<std::size_t>(all[at + 9]) << (little ? 8 : 0);
    out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(at),
                     all.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
  }
  return out;
}

}  // namespace

template <typename P>
std::expected<std::optional<AssembledRequest>, std::error_code> RequestReassembler::feed_impl(
    P&& pdu, TimePoint now, std::optional<std::size_t> stub_cap) {
  auto* q = std::get_if<Request>(&pdu.body);
  if (q == nullptr) return fail(Errc::kNotARequest);
  const PduHeader& h = pdu.header;
  const bool first = h.pfc_flags & pfc::kFirstFrag;
  const bool last = h.pfc_flags & pfc::kLastFrag;
  auto it = calls_.find(h.call_id);

  if (first) {
    if (it != calls_.end()) {
      forget(it);
      return fail(Errc::kDuplicateFirstFragment);
    }
    const std::size_t cap = stub_cap.value_or(limits_.max_stub_size);
    if (q->stub.size() > cap) return fail(Errc::kStubTooLarge);
    if (!last && calls_.size() >= limits_.max_calls_in_progress) {
      return fail(Errc::kTooManyCalls);
    }
    AssembledRequest call;
    call.call_id = h.call_id;
    call.p_cont_id = q->p_cont_id;
    call.opnum = q->opnum;
    call.object = q->object;
    call.drep = h.drep;
    call.pfc_flags = h.pfc_flags;
    if (last) {
      // Handed back at once: nothing is held.
      if constexpr (std::is_rvalue_reference_v<P&&>) {
        call.stub = std::move(q->stub);
      } else {
        call.stub = q->stub;
      }
      return std::optional<AssembledRequest>(std::move(call));
    }
    // A copy sized to the fragment: the decoded PDU's buffer may be larger than its stub.
    if (limits_.max_held_bytes != 0 &&
        q->stub.size() > limits_.max_held_bytes - std::min(held_, limits_.max_held_bytes)) {
      return fail(Errc::kReassemblyBudget);
    }
    call.stub.reserve(q->stub.size());
    call.stub.assign(q->stub.begin(), q->stub.end());
    const std::size_t held = call.stub.capacity();
    held_ += held;
    calls_.emplace(h.call_id, Open{std::move(call), cap, held, now});
    return std::optional<AssembledRequest>();
  }

  if (it == calls_.end()) return fail(Errc::kUnknownCall);
  AssembledRequest& call = it->second.call;
  if (call.p_cont_id != q->p_cont_id || call.opnum != q->opnum || call.object != q->object ||
      call.drep != h.drep) {
    forget(it);
    return fail(Errc::kFragmentMismatch);
  }
  const std::size_t cap = it->second.cap;
  if (q->stub.size() > cap - call.stub.size()) {
    forget(it);
    return fail(Errc::kStubTooLarge);
  }
  const std::size_t needed = call.stub.size() + q->stub.size();
  if (needed > call.stub.capacity()) {
    // Grow geometrically (amortised O(1) appends) but never past the call's cap, and check the
    // budget on what will really be allocated before allocating it.
    const std::size_t old_capacity = it->second.held;
    const std::size_t grown = std::min(std::max(needed, old_capacity * 2), cap);
    const std::size_t others = held_ - old_capacity;
    if (limits_.max_held_bytes != 0 &&
        (others > limits_.max_held_bytes || grown > limits_.max_held_bytes - others)) {
      forget(it);
      return fail(Errc::kReassemblyBudget);
    }
    call.stub.reserve(grown);
    it->second.held = call.stub.capacity();
    held_ = others + it->second.held;
  }
  call.stub.insert(call.stub.end(), q->stub.begin(), q->stub.end());
  if (!last) return std::optional<AssembledRequest>();
  std::optional<AssembledRequest> done(std::move(call));
  forget(it);
  return done;
}

void RequestReassembler::forget(std::unordered_map<std::uint32_t, Open>::iterator it) {
  held_ -= it->second.held;  // not the stub's capacity: a completed call's stub was moved out
  calls_.erase(it);
}

const AssembledRequest* RequestReassembler::open_call() const {
  return calls_.empty() ? nullptr : &calls_.begin()->second.call;
}

bool RequestReassembler::abandon(std::uint32_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return false;
  forget(it);
  return true;
}

void RequestReassembler::clear() {
  // A fresh table: erase() keeps the buckets.
  calls_ = {};
  held_ = 0;
}

std::optional<TimePoint> RequestReassembler::expiry() const {
  if (calls_.empty() || limits_.call_timeout <= std::chrono::milliseconds::zero()) {
    return std::nullopt;
  }
  TimePoint earliest = TimePoint::max();
  for (const auto& [id, open] : calls_)  // at most max_calls_in_progress
    earliest = std::min(earliest, open.started);
  return earliest + limits_.call_timeout;
}

bool RequestReassembler::expired(TimePoint now) const {
  const auto e = expiry();
  return e && now >= *e;
}

std::expected<std::optional<AssembledRequest>, std::error_code> RequestReassembler::feed(
    const Pdu& pdu, TimePoint now, std::optional<std::size_t> stub_cap) {
  return feed_impl(pdu, now, stub_cap);
}

std::expected<std::optional<AssembledRequest>, std::error_code> RequestReassembler::feed(
    Pdu&& pdu, TimePoint now, std::optional<std::size_t> stub_cap) {
  return feed_impl(std::move(pdu), now, stub_cap);
}

std::expected<std::optional<AssembledResponse>, std::error_code> ResponseReassembler::feed(
    Pdu&& pdu) {
  const PduHeader& h = pdu.header;
  auto it = calls_.find(h.call_id);

  if (auto* f = std::get_if<Fault>(&pdu.body)) {
    // The server gave up on the call: whatever was reassembled of it is dropped.
    if (it != calls_.end()) forget(it);
    if (f->stub.size() > limits_.max_stub_size) return fail(Errc::kStubTooLarge);
    AssembledResponse done;
    done.call_id = h.call_id;
    done.p_cont_id = f->p_cont_id;
    done.drep = h.drep;
    done.stub = std::move(f->stub);
    done.fault = f->status;
    done.pfc_flags = h.pfc_flags;
    return std::optional<AssembledResponse>(std::move(done));
  }
  auto* r = std::get_if<Response>(&pdu.body);
  if (r == nullptr) return fail(Errc::kNotAResponse);
  const bool first = h.pfc_flags & pfc::kFirstFrag;
  const bool last = h.pfc_flags & pfc::kLastFrag;

  if (first) {
    if (it != calls_.end()) {
      forget(it);
      return fail(Errc::kDuplicateFirstFragment);
    }
    if (r->stub.size() > limits_.max_stub_size) return fail(Errc::kStubTooLarge);
    if (!last && calls_.size() >= limits_.max_calls_in_progress) return fail(Errc::kTooManyCalls);
    AssembledResponse response;
    response.call_id = h.call_id;
    response.p_cont_id = r->p_cont_id;
    response.drep = h.drep;
    response.pfc_flags = h.pfc_flags;
    if (last) {
      response.stub = std::move(r->stub);
      return std::optional<AssembledResponse>(std::move(response));
    }
    // Copied into a buffer sized for the whole response (as far as alloc_hint is trusted), so the
    // later fragments append without reallocating.
    const std::size_t hint =
        std::min<std::size_t>({r->alloc_hint, limits_.max_stub_size, kTrustedAllocHint});
    response.stub.reserve(std::max(hint, r->stub.size()));
    response.stub.assign(r->stub.begin(), r->stub.end());
    const std::size_t held = response.stub.capacity();
    held_ += held;
    calls_.emplace(h.call_id, Open{std::move(response), held});
    return std::optional<AssembledResponse>();
  }

  if (it == calls_.end()) return fail(Errc::kUnknownCall);
  AssembledResponse& response = it->second.response;
  if (response.p_cont_id != r->p_cont_id || response.drep != h.drep) {
    forget(it);
    return fail(Errc::kFragmentMismatch);
  }
  if (r->stub.size() > limits_.max_stub_size - response.stub.size()) {
    forget(it);
    return fail(Errc::kStubTooLarge);
  }
  const std::size_t needed = response.stub.size() + r->stub.size();
  if (needed > response.stub.capacity()) {
    // Geometric growth (amortised O(1) appends), never past the cap.
    const std::size_t grown =
        std::min(std::max(needed, it->second.held * 2), limits_.max_stub_size);
    response.stub.reserve(grown);
    held_ -= it->second.held;
    it->second.held = response.stub.capacity();
    held_ += it->second.held;
  }
  response.stub.insert(response.stub.end(), r->stub.begin(), r->stub.end());
  if (!last) return std::optional<AssembledResponse>();
  std::optional<AssembledResponse> done(std::move(response));
  forget(it);
  return done;
}

void ResponseReassembler::forget(std::unordered_map<std::uint32_t, Open>::iterator it) {
  held_ -= it->second.held;  // a completed response's stub was moved out: use the count kept
  calls_.erase(it);
}

bool ResponseReassembler::abandon(std::uint32_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return false;
  forget(it);
  return true;
}

void ResponseReassembler::clear() {
  calls_ = {};  // a fresh table: erase() keeps the buckets
  held_ = 0;
}

std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> split_response(
    const FragmentParams& params, std::span<const std::uint8_t> stub, std::size_t max_xmit_frag) {
  return split(params, stub, max_xmit_frag, false);
}

std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> split_request(
    const FragmentParams& params, std::span<const std::uint8_t> stub, std::size_t max_xmit_frag) {
  return split(params, stub, max_xmit_frag, true);
}

std::expected<std::size_t, std::error_code> append_response(const FragmentParams& params,
                                                            std::span<const std::uint8_t> stub,
                                                            std::size_t max_xmit_frag,
                                                            std::vector<std::uint8_t>& out) {
  return append(params, stub, max_xmit_frag, false, out);
}

std::expected<std::size_t, std::error_code> append_request(const FragmentParams& params,
                                                           std::span<const std::uint8_t> stub,
                                                           std::size_t max_xmit_frag,
                                                           std::vector<std::uint8_t>& out) {
  return append(params, stub, max_xmit_frag, true, out);
}

}  // namespace rpcgate::rpc
