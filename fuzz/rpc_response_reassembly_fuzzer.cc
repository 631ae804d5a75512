// Operation sequence through ResponseReassembler, checked against a reference model.
//
// Input: byte 0 picks the limits (bits 0-2 max_stub_size from kStubSizes, bits 3-4
// max_calls_in_progress 1..4); then operations, one control byte each (value % 6):
//   0 bytes:     [len u16 LE][len bytes] -> a Framer that persists across operations (a new one
//                after a framing error) -> decode_pdu -> feed. Seeds carry split_response output
//                here.
//   1 response:  [call_id][pfc_flags][p_cont_id][options][alloc_hint][stub len]; options bit 0
//                big-endian drep, bit 1 alloc_hint is u32 LE, bit 2 stub len is u16 LE (else
//                each is a u8, taken modulo max_stub_size + 2 when the cap is small). Small
//                values by default, so fragments fit small caps and buffers grow.
//   2 fault:     [call_id][status u32 LE][stub len u8]
//   3 abandon:   [call_id]
//   4 clear
//   5 round trip: [call_id u32 LE][p_cont_id][drep][extra pfc_flags][stub len u16 LE]
//                [max_xmit_frag u16 LE] -> split_response -> decode_pdu -> a fresh reassembler.
// Built PDUs use call_ids 0..7 (call_id & 7) and p_cont_ids 0..1 so that fragments of the same
// calls meet.
//
// Invariants (trap on violation): no crash; every outcome of feed() (error code, or the response
// completed with its call_id, p_cont_id, drep, stub, fault, pfc_flags) equals the model's; at
// every step calls_in_progress() equals the model's and is <= max_calls_in_progress, and
// held_bytes() is >= the bytes the model holds and <= calls_in_progress() * max_stub_size (so
// never above max_calls_in_progress * max_stub_size); every returned stub is <= max_stub_size; a
// split_response output whose stub fits max_stub_size reassembles to the original stub, and one
// that does not ends in kStubTooLarge.
//
// Seeds (corpus/rpc_response_reassembly_fuzzer/): split_response outputs fed as bytes (one or
// two interleaved responses, a fault between fragments, exactly at the cap and one byte over),
// and operation sequences; growth_to_the_cap makes a buffer grow where doubling would pass
// max_stub_size (random mutation rarely finds that in a minute).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "op_reader.h"
#include "rpc/fragments.h"
#include "rpc/framer.h"
#include "rpc/pdu.h"

namespace {
using namespace rpcgate::rpc;
using rpcgate::fuzzing::Reader;
using Bytes = std::vector<std::uint8_t>;
using Outcome = std::expected<std::optional<AssembledResponse>, std::error_code>;

constexpr std::size_t kStubSizes[] = {0, 1, 8, 16, 100, 4096, 65536, 16u << 20};

// The rules of fragments.h, written as plainly as possible.
class Model {
 public:
  explicit Model(ResponseLimits limits) : limits_(limits) {}

  Outcome feed(const Pdu& pdu) {
    const PduHeader& h = pdu.header;
    if (const auto* f = std::get_if<Fault>(&pdu.body)) {
      open_.erase(h.call_id);
      if (f->stub.size() > limits_.max_stub_size) return error(Errc::kStubTooLarge);
      return AssembledResponse{h.call_id, f->p_cont_id, h.drep, f->stub, f->status, h.pfc_flags};
    }
    const auto* r = std::get_if<Response>(&pdu.body);
    if (r == nullptr) return error(Errc::kNotAResponse);
    const bool first = h.pfc_flags & pfc::kFirstFrag;
    const bool last = h.pfc_flags & pfc::kLastFrag;
    auto it = open_.find(h.call_id);
    if (first) {
      if (it != open_.end()) {
        open_.erase(it);
        return error(Errc::kDuplicateFirstFragment);
      }
      if (r->stub.size() > limits_.max_stub_size) return error(Errc::kStubTooLarge);
      AssembledResponse a{h.call_id, r->p_cont_id, h.drep, r->stub, std::nullopt, h.pfc_flags};
      if (last) return a;
      if (open_.size() >= limits_.max_calls_in_progress) return error(Errc::kTooManyCalls);
      open_.emplace(h.call_id, std::move(a));
      return std::nullopt;
    }
    if (it == open_.end()) return error(Errc::kUnknownCall);
    AssembledResponse& a = it->second;
    if (a.p_cont_id != r->p_cont_id || a.drep != h.drep) {
      open_.erase(it);
      return error(Errc::kFragmentMismatch);
    }
    if (a.stub.size() + r->stub.size() > limits_.max_stub_size) {
      open_.erase(it);
      return error(Errc::kStubTooLarge);
    }
    a.stub.insert(a.stub.end(), r->stub.begin(), r->stub.end());
    if (!last) return std::nullopt;
    AssembledResponse done = std::move(a);
    open_.erase(it);
    return done;
  }
  void abandon(std::uint32_t call_id) { open_.erase(call_id); }
  void clear() { open_.clear(); }
  std::size_t calls() const { return open_.size(); }
  std::size_t bytes() const {
    std::size_t n = 0;
    for (const auto& [id, a] : open_)
      n += a.stub.size();
    return n;
  }

 private:
  static Outcome error(Errc e) { return std::unexpected(make_error_code(e)); }
  ResponseLimits limits_;
  std::map<std::uint32_t, AssembledResponse> open_;
};

std::uint16_t u16(Reader& in) {
  const std::uint16_t lo = in.byte();
  return static_cast<std::uint16_t>(lo | in.byte() << 8);
}
std::uint32_t u32(Reader& in) {
  const std::uint32_t lo = u16(in);
  return lo | static_cast<std::uint32_t>(u16(in)) << 16;
}
// A length (stub or alloc_hint) from one byte: 0..max_stub_size+1 when the cap is small (so
// fragments fit it, or pass it by exactly one byte, as often as not), else 0..255.
std::size_t small_len(Reader& in, const ResponseLimits& limits) {
  const std::size_t b = in.byte();
  return limits.max_stub_size < 254 ? b % (limits.max_stub_size + 2) : b;
}
Bytes pattern(std::size_t n, std::uint8_t seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<std::uint8_t>(i * 31 + seed);
  return b;
}

struct Harness {
  ResponseLimits limits;
  ResponseReassembler real;
  Model model;

  explicit Harness(ResponseLimits l) : limits(l), real(l), model(l) {}

  void check_state() const {
    CHECK(real.calls_in_progress() == model.calls());
    CHECK(real.calls_in_progress() <= limits.max_calls_in_progress);
    CHECK(real.held_bytes() >= model.bytes());
    // No open buffer above max_stub_size, so at most max_calls_in_progress * max_stub_size.
    CHECK(real.held_bytes() <= real.calls_in_progress() * limits.max_stub_size);
  }

  Outcome feed(Pdu&& pdu) {
    Outcome want = model.feed(pdu);
    Outcome got = real.feed(std::move(pdu));
    CHECK(got.has_value() == want.has_value());
    if (!got) {
      CHECK(got.error() == want.error());
    } else {
      CHECK(*got == *want);
      if (*got) CHECK((*got)->stub.size() <= limits.max_stub_size);
    }
    check_state();
    return got;
  }
};

void round_trip(Reader& in, const ResponseLimits& limits) {
  FragmentParams params;
  params.call_id = u32(in);
  params.p_cont_id = in.byte();
  if (in.byte() & 1) params.drep = DataRep::big_endian();
  params.extra_pfc_flags = in.byte();
  const Bytes stub = pattern(u16(in), static_cast<std::uint8_t>(params.call_id));
  const std::size_t max_xmit_frag = std::max<std::size_t>(32, u16(in));
  auto frags = split_response(params, stub, max_xmit_frag);
  CHECK(frags.has_value());
  Harness h(limits);
  std::optional<AssembledResponse> done;
  std::optional<std::error_code> failed;
  for (const auto& bytes : *frags) {
    auto pdu = decode_pdu(bytes);
    CHECK(pdu.has_value());
    auto out = h.feed(std::move(*pdu));
    if (!out) {
      failed = out.error();
      break;
    }
    CHECK(!done);
    if (*out) done = std::move(**out);
  }
  if (stub.size() <= limits.max_stub_size) {
    const std::uint8_t flags =
        (params.extra_pfc_flags & ~(pfc::kFirstFrag | pfc::kLastFrag | pfc::kObjectUuid)) |
        pfc::kFirstFrag | (frags->size() == 1 ? pfc::kLastFrag : 0);
    CHECK(!failed && done);
    CHECK(*done == (AssembledResponse{params.call_id, params.p_cont_id, params.drep, stub,
                                      std::nullopt, static_cast<std::uint8_t>(flags)}));
  } else {
    CHECK(failed && *failed == Errc::kStubTooLarge);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  ResponseLimits limits;
  const std::uint8_t l = in.byte();
  limits.max_stub_size = kStubSizes[l & 7];
  limits.max_calls_in_progress = 1 + ((l >> 3) & 3);
  Harness h(limits);
  std::optional<Framer> framer(std::in_place, kMaxFragLength);
  while (!in.done()) {
    switch (in.byte() % 6) {
      case 0: {
        const std::size_t len = std::min<std::size_t>(u16(in), in.size - in.at);
        std::span<const std::uint8_t> piece(in.data + in.at, len);
        in.at += len;
        while (!piece.empty()) {
          auto n = framer->feed(piece);
          if (!n) {
            framer.emplace(kMaxFragLength);
            break;
          }
          piece = piece.subspan(*n);
          if (framer->ready()) {
            if (auto pdu = decode_pdu(framer->frame())) h.feed(std::move(*pdu));
            framer->pop();
          }
        }
        break;
      }
      case 1: {
        Response r;
        const std::uint32_t call_id = in.byte() & 7;
        const std::uint8_t flags = in.byte();
        r.p_cont_id = in.byte() & 1;
        const std::uint8_t options = in.byte();
        const DataRep drep = options & 1 ? DataRep::big_endian() : DataRep::little_endian();
        r.alloc_hint = options & 2 ? u32(in) : static_cast<std::uint32_t>(small_len(in, limits));
        const std::size_t len = options & 4 ? u16(in) : small_len(in, limits);
        r.stub = pattern(len, static_cast<std::uint8_t>(call_id));
        h.feed(make_pdu(std::move(r), call_id, flags, drep));
        break;
      }
      case 2: {
        Fault f;
        const std::uint32_t call_id = in.byte() & 7;
        f.status = u32(in);
        f.stub = pattern(in.byte(), 0);
        h.feed(make_pdu(std::move(f), call_id));
        break;
      }
      case 3: {
        const std::uint32_t call_id = in.byte() & 7;
        h.real.abandon(call_id);
        h.model.abandon(call_id);
        h.check_state();
        break;
      }
      case 4:
        h.real.clear();
        h.model.clear();
        h.check_state();
        CHECK(h.real.held_bytes() == 0);
        break;
      case 5:
        round_trip(in, limits);
        break;
    }
  }
  return 0;
}
