#include "rpc/fragments.h"

#include <gtest/gtest.h>

#include "rpc/framer.h"

namespace rpcgate::rpc {
namespace {

using Bytes = std::vector<std::uint8_t>;

Pdu request(std::uint32_t call_id, std::uint8_t flags, Bytes stub, std::uint16_t p_cont_id = 0,
            std::uint16_t opnum = 3) {
  Request q;
  q.p_cont_id = p_cont_id;
  q.opnum = opnum;
  q.stub = std::move(stub);
  return make_pdu(std::move(q), call_id, flags);
}

constexpr std::uint8_t kFirst = pfc::kFirstFrag;
constexpr std::uint8_t kLast = pfc::kLastFrag;

Bytes pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return b;
}

TEST(Reassembler, SingleFragmentCall) {
  RequestReassembler r;
  auto call = r.feed(request(1, kFirst | kLast, {1, 2, 3}));
  ASSERT_TRUE(call && *call);
  EXPECT_EQ((*call)->call_id, 1u);
  EXPECT_EQ((*call)->opnum, 3);
  EXPECT_EQ((*call)->stub, (Bytes{1, 2, 3}));
  EXPECT_EQ(r.calls_in_progress(), 0u);
}

TEST(Reassembler, ThreeFragmentsInterleavedWithAnotherCall) {
  RequestReassembler r;
  EXPECT_FALSE(r.feed(request(1, kFirst, {1, 2})).value());
  EXPECT_FALSE(r.feed(request(2, kFirst, {9})).value());
  EXPECT_FALSE(r.feed(request(1, 0, {3})).value());
  EXPECT_EQ(r.calls_in_progress(), 2u);
  auto one = r.feed(request(1, kLast, {4, 5}));
  ASSERT_TRUE(one && *one);
  EXPECT_EQ((*one)->stub, (Bytes{1, 2, 3, 4, 5}));
  auto two = r.feed(request(2, kLast, {}));
  ASSERT_TRUE(two && *two);
  EXPECT_EQ((*two)->stub, (Bytes{9}));
  EXPECT_EQ(r.calls_in_progress(), 0u);
}

TEST(Reassembler, HeaderDisagreement) {
  struct Case {
    std::uint16_t p_cont_id, opnum;
  };
  for (const Case& c : {Case{1, 3}, Case{0, 4}}) {
    RequestReassembler r;
    ASSERT_TRUE(r.feed(request(1, kFirst, {1})));
    auto e = r.feed(request(1, kLast, {2}, c.p_cont_id, c.opnum));
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error(), Errc::kFragmentMismatch);
    EXPECT_EQ(r.calls_in_progress(), 0u);  // the call is dropped
  }
  RequestReassembler r;
  ASSERT_TRUE(r.feed(request(1, kFirst, {1})));
  Pdu be = request(1, kLast, {2});
  be.header.drep = DataRep::big_endian();
  EXPECT_EQ(r.feed(be).error(), Errc::kFragmentMismatch);
  ASSERT_TRUE(r.feed(request(1, kFirst, {1})));
  Pdu obj = request(1, kLast, {2});
  std::get<Request>(obj.body).object = Uuid::parse("01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(r.feed(obj).error(), Errc::kFragmentMismatch);
}

TEST(Reassembler, MissingFirst) {
  RequestReassembler r;
  EXPECT_EQ(r.feed(request(7, 0, {1})).error(), Errc::kUnknownCall);
  EXPECT_EQ(r.feed(request(7, kLast, {1})).error(), Errc::kUnknownCall);
}

TEST(Reassembler, DuplicateFirst) {
  RequestReassembler r;
  ASSERT_TRUE(r.feed(request(7, kFirst, {1})));
  EXPECT_EQ(r.feed(request(7, kFirst, {1})).error(), Errc::kDuplicateFirstFragment);
  // The offending call was dropped: a fresh single-fragment call with that call_id is fine.
  EXPECT_TRUE(r.feed(request(7, kFirst | kLast, {1})));
}

TEST(Reassembler, StubTooLarge) {
  RequestReassembler r(ReassemblyLimits{100, 16});
  EXPECT_EQ(r.feed(request(1, kFirst | kLast, Bytes(101))).error(), Errc::kStubTooLarge);
  EXPECT_TRUE(r.feed(request(1, kFirst | kLast, Bytes(100))));
  ASSERT_TRUE(r.feed(request(2, kFirst, Bytes(60))));
  EXPECT_EQ(r.feed(request(2, 0, Bytes(41))).error(), Errc::kStubTooLarge);
  EXPECT_EQ(r.calls_in_progress(), 0u);
  // alloc_hint is never trusted.
  Pdu huge_hint = request(3, kFirst, Bytes(8));
  std::get<Request>(huge_hint.body).alloc_hint = 0xffffffff;
  EXPECT_TRUE(r.feed(huge_hint));
}

TEST(Reassembler, MissingLastEndsInTooManyCalls) {
  RequestReassembler r;  // default: 16 calls
  for (std::uint32_t id = 0; id < 16; ++id)
    ASSERT_TRUE(r.feed(request(id, kFirst, {1}))) << id;
  EXPECT_EQ(r.feed(request(100, kFirst, {1})).error(), Errc::kTooManyCalls);
  // Single-PDU calls need no slot.
  EXPECT_TRUE(r.feed(request(100, kFirst | kLast, {1})).value());
  EXPECT_TRUE(r.abandon(3));
  EXPECT_FALSE(r.abandon(3));
  EXPECT_TRUE(r.feed(request(100, kFirst, {1})));
}

TEST(Reassembler, TheFirstFragmentFixesTheCallsCap) {
  RequestReassembler r;  // default max_stub_size 4 MiB
  // A FIRST|LAST or FIRST fragment over the cap given for its context.
  EXPECT_EQ(r.feed(request(1, kFirst | kLast, Bytes(11)), {}, 10).error(), Errc::kStubTooLarge);
  EXPECT_EQ(r.feed(request(2, kFirst, Bytes(11)), {}, 10).error(), Errc::kStubTooLarge);
  EXPECT_TRUE(r.feed(request(3, kFirst | kLast, Bytes(10)), {}, 10).value());
  // Exactly the cap across fragments, then one byte over. A later fragment's cap is ignored.
  EXPECT_FALSE(r.feed(request(4, kFirst, Bytes(6)), {}, 10).value());
  auto done = r.feed(request(4, kLast, Bytes(4)), {}, 1000);
  ASSERT_TRUE(done && *done);
  EXPECT_EQ((*done)->stub.size(), 10u);
  EXPECT_FALSE(r.feed(request(5, kFirst, Bytes(6)), {}, 10).value());
  EXPECT_EQ(r.feed(request(5, 0, Bytes(5)), {}, 1000).error(), Errc::kStubTooLarge);
  EXPECT_EQ(r.calls_in_progress(), 0u);
  EXPECT_EQ(r.held_bytes(), 0u);
}

TEST(Reassembler, HeldBytesCountCapacityAndStayWithinTheBudget) {
  ReassemblyLimits limits;
  limits.max_held_bytes = 100;
  RequestReassembler r(limits);
  EXPECT_FALSE(r.feed(request(1, kFirst, Bytes(40))).value());
  EXPECT_FALSE(r.feed(request(2, kFirst, Bytes(40))).value());
  EXPECT_EQ(r.held_bytes(), 80u);
  EXPECT_EQ(r.feed(request(3, kFirst, Bytes(21))).error(), Errc::kReassemblyBudget);
  EXPECT_EQ(r.held_bytes(), 80u);  // nothing allocated for the refused call
  EXPECT_FALSE(r.feed(request(3, kFirst, Bytes(20))).value());
  EXPECT_EQ(r.held_bytes(), 100u);  // exactly the budget
  EXPECT_EQ(r.calls_in_progress(), 3u);
  // Growing a buffer counts its new capacity: call 1 would need 41 bytes -> refused, forgotten.
  EXPECT_EQ(r.feed(request(1, 0, Bytes(1))).error(), Errc::kReassemblyBudget);
  EXPECT_EQ(r.held_bytes(), 60u);
  // Completion and abandon give the bytes back.
  auto two = r.feed(request(2, kLast, Bytes(1)));  // 41 bytes: grows within the budget
  ASSERT_TRUE(two && *two);
  EXPECT_EQ((*two)->stub.size(), 41u);
  EXPECT_EQ(r.held_bytes(), 20u);
  EXPECT_TRUE(r.abandon(3));
  EXPECT_EQ(r.held_bytes(), 0u);
  EXPECT_FALSE(r.feed(request(4, kFirst, Bytes(50))).value());
  r.clear();
  EXPECT_EQ(r.held_bytes(), 0u);
  EXPECT_EQ(r.calls_in_progress(), 0u);
}

TEST(Reassembler, GrowthNeverPassesTheCallsCap) {
  RequestReassembler r;
  EXPECT_FALSE(r.feed(request(1, kFirst, Bytes(10)), {}, 16).value());
  EXPECT_EQ(r.held_bytes(), 10u);
  EXPECT_FALSE(r.feed(request(1, 0, Bytes(1)), {}, 16).value());
  EXPECT_EQ(r.held_bytes(), 16u);  // doubling would give 20; the cap is 16
  EXPECT_FALSE(r.feed(request(1, 0, Bytes(5)), {}, 16).value());
  EXPECT_EQ(r.held_bytes(), 16u);
}

TEST(Reassembler, CallDeadlineCountsFromTheFirstFragment) {
  using std::chrono::milliseconds;
  ReassemblyLimits limits;
  limits.call_timeout = milliseconds(500);
  RequestReassembler r(limits);
  const TimePoint t0 = TimePoint() + std::chrono::hours(1);
  EXPECT_FALSE(r.expiry());
  EXPECT_FALSE(r.feed(request(1, kFirst, Bytes(4)), t0).value());
  EXPECT_FALSE(r.feed(request(2, kFirst, Bytes(4)), t0 + milliseconds(300)).value());
  // Later fragments do not move the deadline.
  EXPECT_FALSE(r.feed(request(1, 0, Bytes(4)), t0 + milliseconds(400)).value());
  EXPECT_EQ(r.expiry(), t0 + milliseconds(500));
  EXPECT_FALSE(r.expired(t0 + milliseconds(499)));
  EXPECT_TRUE(r.expired(t0 + milliseconds(500)));
  // Once call 1 completes, call 2's deadline is the next.
  EXPECT_TRUE(r.feed(request(1, kLast, Bytes(4)), t0 + milliseconds(450)).value());
  EXPECT_EQ(r.expiry(), t0 + milliseconds(800));
  EXPECT_FALSE(r.expired(t0 + milliseconds(799)));
  r.clear();
  EXPECT_FALSE(r.expiry());
  EXPECT_FALSE(r.expired(t0 + std::chrono::hours(1)));
  // A single-PDU call is never open, and a zero timeout means no deadline.
  EXPECT_TRUE(r.feed(request(3, kFirst | kLast, Bytes(4)), t0).value());
  EXPECT_FALSE(r.expiry());
  limits.call_timeout = milliseconds(0);
  RequestReassembler none(limits);
  EXPECT_FALSE(none.feed(request(1, kFirst, Bytes(4)), t0).value());
  EXPECT_FALSE(none.expiry());
}

TEST(Reassembler, NotARequest) {
  RequestReassembler r;
  EXPECT_EQ(r.feed(make_pdu(Response{}, 1)).error(), Errc::kNotARequest);
}

TEST(Split, ResponseFragmentsHonourMaxXmitFragAndAlign8) {
  const Bytes stub = pattern(10000);
  FragmentParams params;
  params.call_id = 9;
  params.p_cont_id = 2;
  auto pdus = split_response(params, stub, 4280);
  ASSERT_TRUE(pdus);
  ASSERT_EQ(pdus->size(), 3u);  // 4256 + 4256 + 1488
  Bytes joined;
  for (std::size_t i = 0; i < pdus->size(); ++i) {
    const auto& bytes = (*pdus)[i];
    EXPECT_LE(bytes.size(), 4280u);
    const Pdu pdu = decode_pdu(bytes).value();
    const auto& p = std::get<Response>(pdu.body);
    EXPECT_EQ(pdu.header.call_id, 9u);
    EXPECT_EQ(p.p_cont_id, 2);
    EXPECT_EQ(bool(pdu.header.pfc_flags & kFirst), i == 0);
    EXPECT_EQ(bool(pdu.header.pfc_flags & kLast), i + 1 == pdus->size());
    EXPECT_EQ(p.alloc_hint, stub.size() - joined.size());
    if (i + 1 < pdus->size()) {
      EXPECT_EQ(p.stub.size() % 8, 0u);
    }
    joined.insert(joined.end(), p.stub.begin(), p.stub.end());
  }
  EXPECT_EQ(joined, stub);
}

TEST(Split, EmptyStubAndExactFit) {
  auto one = split_response({}, {}, 4280);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(decode_pdu((*one)[0]).value().header.pfc_flags, kFirst | kLast);
  const Bytes stub = pattern(4256);  // exactly one full fragment
  auto exact = split_response({}, stub, 4280);
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->size(), 1u);
  EXPECT_EQ((*exact)[0].size(), 4280u);
}

// split_* write fragments directly; they must be exactly what the general encoder produces.
TEST(Split, SameBytesAsEncodePdu) {
  const Bytes stub = pattern(700);
  for (bool request : {false, true}) {
    for (bool big : {false, true}) {
      for (bool object : {false, true}) {
        if (object && !request) continue;
        for (std::size_t size : {0u, 1u, 7u, 8u, 9u, 200u, 257u, 700u}) {
          FragmentParams params;
          params.call_id = 0x01020304;
          params.p_cont_id = 0x0506;
          params.opnum = 0x0708;
          params.extra_pfc_flags = pfc::kConcMpx | pfc::kObjectUuid | kFirst;  // masked as needed
          params.rpc_vers_minor = 1;
          if (big) params.drep = DataRep::big_endian();
          if (object) params.object = Uuid::parse("01234567-89ab-cdef-0123-456789abcdef");
          const auto piece = std::span<const std::uint8_t>(stub).first(size);
          auto frags =
              request ? split_request(params, piece, 120) : split_response(params, piece, 120);
          ASSERT_TRUE(frags);
          std::size_t offset = 0;
          for (std::size_t i = 0; i < frags->size(); ++i) {
            const std::size_t chunk = (120 - (request && object ? 40 : 24)) & ~std::size_t{7};
            const std::size_t n = std::min(chunk, size - offset);
            std::uint8_t flags = pfc::kConcMpx;
            if (i == 0) flags |= kFirst;
            if (i + 1 == frags->size()) flags |= kLast;
            const auto part = piece.subspan(offset, n);
            PduBody body;
            const auto hint = static_cast<std::uint32_t>(size - offset);
            if (request) {
              body = Request{hint, params.p_cont_id, params.opnum, params.object,
                             Bytes(part.begin(), part.end())};
            } else {
              body = Response{hint, params.p_cont_id, 0, Bytes(part.begin(), part.end())};
            }
            Pdu pdu = make_pdu(std::move(body), params.call_id, flags, params.drep);
            pdu.header.rpc_vers_minor = 1;
            EXPECT_EQ((*frags)[i], encode_pdu(pdu).value())
                << "request " << request << " big " << big << " object " << object << " size "
                << size << " fragment " << i;
            offset += n;
          }
          EXPECT_EQ(offset, size);
        }
      }
    }
  }
}

TEST(Split, TooSmallMaxXmitFrag) {
  EXPECT_EQ(split_response({}, pattern(10), 31).error(), Errc::kInvalidArgument);
  EXPECT_TRUE(split_response({}, pattern(10), 32));
  FragmentParams obj;
  obj.object = Uuid::parse("01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(split_request(obj, pattern(10), 47).error(), Errc::kInvalidArgument);
  EXPECT_EQ(split_response({}, pattern(10), 65536).error(), Errc::kInvalidArgument);
}

TEST(Split, RequestThroughFramerAndReassemblerBigEndian) {
  const Bytes stub = pattern(5000);
  FragmentParams params;
  params.call_id = 42;
  params.p_cont_id = 1;
  params.opnum = 7;
  params.object = Uuid::parse("01234567-89ab-cdef-0123-456789abcdef");
  params.drep = DataRep::big_endian();
  auto pdus = split_request(params, stub, 64);  // 64 - 40 = 24 stub bytes per fragment
  ASSERT_TRUE(pdus);
  EXPECT_EQ(pdus->size(), 209u);
  Bytes stream;
  for (const auto& p : *pdus)
    stream.insert(stream.end(), p.begin(), p.end());
  Framer framer(64);
  RequestReassembler r;
  std::optional<AssembledRequest> done;
  std::span<const std::uint8_t> data(stream);
  for (std::size_t chunk = 3; !data.empty();) {
    auto n = framer.feed(data.first(std::min(chunk, data.size())));
    ASSERT_TRUE(n);
    data = data.subspan(*n);
    if (framer.ready()) {
      auto pdu = decode_pdu(framer.frame());
      ASSERT_TRUE(pdu);
      auto call = r.feed(std::move(*pdu));
      ASSERT_TRUE(call);
      if (*call) done = std::move(**call);
      framer.pop();
    }
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(done->call_id, 42u);
  EXPECT_EQ(done->opnum, 7);
  EXPECT_EQ(done->p_cont_id, 1);
  EXPECT_EQ(done->object, params.object);
  EXPECT_EQ(done->drep, DataRep::big_endian());
  EXPECT_EQ(done->stub, stub);
}

// ---- ResponseReassembler ------------------------------------------------------------------

Pdu response(std::uint32_t call_id, std::uint8_t flags, Bytes stub, std::uint16_t p_cont_id = 0,
             std::uint32_t alloc_hint = 0, DataRep drep = DataRep::little_endian()) {
  Response r;
  r.alloc_hint = alloc_hint;
  r.p_cont_id = p_cont_id;
  r.stub = std::move(stub);
  return make_pdu(std::move(r), call_id, flags, drep);
}

Pdu fault(std::uint32_t call_id, std::uint32_t status, Bytes stub = {},
          std::uint16_t p_cont_id = 0) {
  Fault f;
  f.p_cont_id = p_cont_id;
  f.status = status;
  f.stub = std::move(stub);
  return make_pdu(std::move(f), call_id);
}

// The error of a feed() result; an empty error_code when it succeeded (so a wrong success fails
// the comparison instead of reading error() of a value).
std::error_code error_of(
    const std::expected<std::optional<AssembledResponse>, std::error_code>& result) {
  return result ? std::error_code() : result.error();
}

constexpr std::uint32_t kOpRangeError = 0x1c010002;  // nca_s_op_rng_error

// Frames `stream` (cut into pieces at `cuts`, ascending offsets), decodes each PDU and feeds it to
// a fresh reassembler; returns the completed responses in order. Any error fails the test.
std::vector<AssembledResponse> reassemble_stream(std::span<const std::uint8_t> stream,
                                                 std::span<const std::size_t> cuts,
                                                 ResponseLimits limits = {}) {
  Framer framer(kMaxFragLength);
  ResponseReassembler r(limits);
  std::vector<AssembledResponse> out;
  std::size_t from = 0;
  auto feed_piece = [&](std::span<const std::uint8_t> piece) {
    while (!piece.empty()) {
      auto n = framer.feed(piece);
      if (!n) {
        ADD_FAILURE() << "framer: " << n.error().message();
        return;
      }
      piece = piece.subspan(*n);
      if (framer.ready()) {
        auto pdu = decode_pdu(framer.frame());
        if (!pdu) {
          ADD_FAILURE() << "decode: " << pdu.error().message();
          return;
        }
        auto done = r.feed(std::move(*pdu));
        if (!done) {
          ADD_FAILURE() << "reassembler: " << done.error().message();
          return;
        }
        if (*done) out.push_back(std::move(**done));
        framer.pop();
      }
    }
  };
  for (std::size_t cut : cuts) {
    feed_piece(stream.subspan(from, cut - from));
    from = cut;
  }
  feed_piece(stream.subspan(from));
  EXPECT_EQ(r.calls_in_progress(), 0u);
  EXPECT_EQ(r.held_bytes(), 0u);
  return out;
}

Bytes concat(const std::vector<Bytes>& pdus) {
  Bytes stream;
  for (const auto& p : pdus)
    stream.insert(stream.end(), p.begin(), p.end());
  return stream;
}

// Golden bytes of a two-fragment response (max_xmit_frag 32: 8 stub bytes per fragment), written
// out by hand from C706 §12.6.4.10 in both byte orders, then reassembled.
TEST(ResponseReassembler, GoldenTwoFragmentResponseBothByteOrders) {
  const Bytes stub{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<Bytes> little{
      {0x05, 0x00, 0x02, 0x01, 0x10, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
       0x00, 0x05, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00,
       0x00, 0x00, 0,    1,    2,    3,    4,    5,    6,    7},
      {0x05, 0x00, 0x02, 0x02, 0x10, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x05,
       0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 8,    9}};
  const std::vector<Bytes> big{
      {0x05, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,
       0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x01,
       0x00, 0x00, 0,    1,    2,    3,    4,    5,    6,    7},
      {0x05, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00,
       0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 8,    9}};
  for (bool be : {false, true}) {
    FragmentParams params;
    params.call_id = 5;
    params.p_cont_id = 1;
    if (be) params.drep = DataRep::big_endian();
    auto frags = split_response(params, stub, 32);
    ASSERT_TRUE(frags);
    EXPECT_EQ(*frags, be ? big : little);
    ResponseReassembler r;
    EXPECT_FALSE(r.feed(decode_pdu((*frags)[0]).value()).value());
    EXPECT_EQ(r.calls_in_progress(), 1u);
    auto done = r.feed(decode_pdu((*frags)[1]).value());
    ASSERT_TRUE(done && *done);
    EXPECT_EQ(**done, (AssembledResponse{5, 1, params.drep, stub, std::nullopt, pfc::kFirstFrag}));
  }
}

TEST(ResponseReassembler, SplitResponseRoundTripsAtEveryFragSizeAndByteOrder) {
  for (bool be : {false, true}) {
    for (std::size_t frag : {32u, 33u, 40u, 64u, 1024u, 4280u, 5840u, 65535u}) {
      for (std::size_t size : {0u, 1u, 8u, 100u, 4256u, 70000u}) {
        const Bytes stub = pattern(size);
        FragmentParams params;
        params.call_id = static_cast<std::uint32_t>(frag * 100 + size);
        params.p_cont_id = 3;
        params.extra_pfc_flags = pfc::kConcMpx;
        if (be) params.drep = DataRep::big_endian();
        auto frags = split_response(params, stub, frag);
        ASSERT_TRUE(frags);
        ResponseReassembler r;
        std::optional<AssembledResponse> done;
        for (std::size_t i = 0; i < frags->size(); ++i) {
          auto out = r.feed(decode_pdu((*frags)[i]).value());
          ASSERT_TRUE(out) << out.error().message();
          ASSERT_EQ(out->has_value(), i + 1 == frags->size()) << i;
          if (*out) done = std::move(**out);
        }
        const std::uint8_t flags =
            pfc::kConcMpx | kFirst | (frags->size() == 1 ? kLast : std::uint8_t{0});
        ASSERT_TRUE(done);
        EXPECT_EQ(*done,
                  (AssembledResponse{params.call_id, 3, params.drep, stub, std::nullopt, flags}))
            << "be " << be << " frag " << frag << " size " << size;
        EXPECT_EQ(r.held_bytes(), 0u);
      }
    }
  }
}

// The same responses come out wherever the byte stream is cut (Beast's parsegrind).
TEST(ResponseReassembler, SplitAtEveryByteThroughFramerAndDecoder) {
  const Bytes stub = pattern(200);
  FragmentParams params;
  params.call_id = 11;
  params.p_cont_id = 2;
  auto first = split_response(params, stub, 64);  // 40 stub bytes per fragment: 5 fragments
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 5u);
  params.call_id = 12;
  params.drep = DataRep::big_endian();
  auto second = split_response(params, std::span(stub).first(3), 64);
  ASSERT_TRUE(second);
  Bytes stream = concat(*first);
  const Bytes tail = concat(*second);
  stream.insert(stream.end(), tail.begin(), tail.end());
  const std::vector<AssembledResponse> expected{
      {11, 2, DataRep::little_endian(), stub, std::nullopt, kFirst},
      {12, 2, DataRep::big_endian(), Bytes(stub.begin(), stub.begin() + 3), std::nullopt,
       kFirst | kLast}};
  ASSERT_EQ(reassemble_stream(stream, {}), expected);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const std::size_t cuts[] = {cut};
    EXPECT_EQ(reassemble_stream(stream, cuts), expected) << "cut at " << cut;
  }
  // Two cuts, byte by byte near a fragment boundary.
  for (std::size_t a = 60; a < 70; ++a)
    for (std::size_t b = a; b < 140; ++b) {
      const std::size_t cuts[] = {a, b};
      EXPECT_EQ(reassemble_stream(stream, cuts), expected) << "cuts " << a << " " << b;
    }
}

TEST(ResponseReassembler, SingleFragmentStubIsMovedNotCopied) {
  ResponseReassembler r;
  Pdu one = response(1, kFirst | kLast, pattern(100), 4);
  const std::uint8_t* data = std::get<Response>(one.body).stub.data();
  auto done = r.feed(std::move(one));
  ASSERT_TRUE(done && *done);
  EXPECT_EQ((*done)->stub.data(), data);
  EXPECT_EQ((*done)->p_cont_id, 4);
  EXPECT_EQ(r.held_bytes(), 0u);
  Pdu f = fault(2, kOpRangeError, pattern(16));
  data = std::get<Fault>(f.body).stub.data();
  auto failed = r.feed(std::move(f));
  ASSERT_TRUE(failed && *failed);
  EXPECT_EQ((*failed)->stub.data(), data);
}

TEST(ResponseReassembler, NotAResponse) {
  ResponseReassembler r;
  EXPECT_EQ(error_of(r.feed(request(1, kFirst | kLast, {1}))), Errc::kNotAResponse);
  EXPECT_EQ(error_of(r.feed(make_pdu(BindAck{}, 1))), Errc::kNotAResponse);
  EXPECT_EQ(error_of(r.feed(make_pdu(Shutdown{}, 1))), Errc::kNotAResponse);
}

TEST(ResponseReassembler, UnknownCall) {
  ResponseReassembler r;
  EXPECT_EQ(error_of(r.feed(response(7, 0, {1}))), Errc::kUnknownCall);
  EXPECT_EQ(error_of(r.feed(response(7, kLast, {1}))), Errc::kUnknownCall);
  ASSERT_FALSE(r.feed(response(7, kFirst, {1})).value());
  EXPECT_EQ(error_of(r.feed(response(8, kLast, {1}))), Errc::kUnknownCall);  // another call_id
  EXPECT_EQ(r.calls_in_progress(), 1u);                                      // call 7 is untouched
}

TEST(ResponseReassembler, DuplicateFirstDropsTheCall) {
  ResponseReassembler r;
  ASSERT_FALSE(r.feed(response(7, kFirst, {1})).value());
  EXPECT_EQ(error_of(r.feed(response(7, kFirst, {2}))), Errc::kDuplicateFirstFragment);
  EXPECT_EQ(r.calls_in_progress(), 0u);
  EXPECT_EQ(r.held_bytes(), 0u);
  EXPECT_EQ(error_of(r.feed(response(7, kLast, {3}))), Errc::kUnknownCall);
  EXPECT_TRUE(r.feed(response(7, kFirst | kLast, {4})).value());
}

TEST(ResponseReassembler, FragmentMismatch) {
  {
    ResponseReassembler r;
    ASSERT_FALSE(r.feed(response(1, kFirst, {1}, 0)).value());
    EXPECT_EQ(error_of(r.feed(response(1, kLast, {2}, 1))), Errc::kFragmentMismatch);
    EXPECT_EQ(r.calls_in_progress(), 0u);
    EXPECT_EQ(r.held_bytes(), 0u);
  }
  {
    ResponseReassembler r;
    ASSERT_FALSE(r.feed(response(1, kFirst, {1})).value());
    EXPECT_EQ(error_of(r.feed(response(1, 0, {2}, 0, 0, DataRep::big_endian()))),
              Errc::kFragmentMismatch);
    EXPECT_EQ(r.calls_in_progress(), 0u);
  }
  {
    // alloc_hint and cancel_count may differ: only p_cont_id and packed_drep are compared.
    ResponseReassembler r;
    ASSERT_FALSE(r.feed(response(1, kFirst, {1}, 2, 2)).value());
    Pdu next = response(1, kLast, {2}, 2, 1);
    std::get<Response>(next.body).cancel_count = 1;
    auto done = r.feed(std::move(next));
    ASSERT_TRUE(done && *done);
    EXPECT_EQ((*done)->stub, (Bytes{1, 2}));
  }
}

TEST(ResponseReassembler, StubCapExactlyAndOneByteOver) {
  ResponseReassembler r(ResponseLimits{100, 16});
  // One fragment.
  EXPECT_EQ(error_of(r.feed(response(1, kFirst | kLast, Bytes(101)))), Errc::kStubTooLarge);
  auto whole = r.feed(response(1, kFirst | kLast, Bytes(100)));
  ASSERT_TRUE(whole && *whole);
  EXPECT_EQ((*whole)->stub.size(), 100u);
  EXPECT_EQ(error_of(r.feed(response(2, kFirst, Bytes(101)))), Errc::kStubTooLarge);
  EXPECT_EQ(r.calls_in_progress(), 0u);
  // Across fragments.
  ASSERT_FALSE(r.feed(response(3, kFirst, Bytes(60))).value());
  ASSERT_FALSE(r.feed(response(3, 0, Bytes(30))).value());
  auto done = r.feed(response(3, kLast, Bytes(10)));
  ASSERT_TRUE(done && *done);
  EXPECT_EQ((*done)->stub.size(), 100u);
  ASSERT_FALSE(r.feed(response(4, kFirst, Bytes(60))).value());
  EXPECT_EQ(error_of(r.feed(response(4, 0, Bytes(41)))), Errc::kStubTooLarge);
  EXPECT_EQ(r.calls_in_progress(), 0u);
  EXPECT_EQ(r.held_bytes(), 0u);
  // A fault's stub too.
  EXPECT_TRUE(r.feed(fault(5, kOpRangeError, Bytes(100))).value());
  EXPECT_EQ(error_of(r.feed(fault(5, kOpRangeError, Bytes(101)))), Errc::kStubTooLarge);
}

TEST(ResponseReassembler, TooManyCalls) {
  ResponseReassembler r(ResponseLimits{1000, 2});
  ASSERT_FALSE(r.feed(response(1, kFirst, {1})).value());
  ASSERT_FALSE(r.feed(response(2, kFirst, {1})).value());
  EXPECT_EQ(error_of(r.feed(response(3, kFirst, {1}))), Errc::kTooManyCalls);
  EXPECT_EQ(r.calls_in_progress(), 2u);
  // A single-fragment response needs no slot; a fault frees one.
  EXPECT_TRUE(r.feed(response(3, kFirst | kLast, {1})).value());
  EXPECT_TRUE(r.feed(fault(1, kOpRangeError)).value());
  EXPECT_FALSE(r.feed(response(3, kFirst, {1})).value());
  EXPECT_EQ(r.calls_in_progress(), 2u);
}

TEST(ResponseReassembler, FaultMidwayEndsTheCall) {
  ResponseReassembler r;
  ASSERT_FALSE(r.feed(response(7, kFirst, Bytes(8), 1)).value());
  ASSERT_FALSE(r.feed(response(8, kFirst, Bytes(8), 1)).value());
  ASSERT_FALSE(r.feed(response(7, 0, Bytes(8), 1)).value());
  auto failed = r.feed(fault(7, kOpRangeError, {}, 1));
  ASSERT_TRUE(failed && *failed);
  EXPECT_EQ((*failed)->call_id, 7u);
  EXPECT_EQ((*failed)->fault, kOpRangeError);
  EXPECT_TRUE((*failed)->stub.empty());  // the 16 bytes reassembled so far are dropped
  EXPECT_EQ(r.calls_in_progress(), 1u);  // call 8 stays open
  EXPECT_EQ(r.held_bytes(), 8u);
  EXPECT_EQ(error_of(r.feed(response(7, kLast, Bytes(8), 1))), Errc::kUnknownCall);
  auto eight = r.feed(response(8, kLast, Bytes(8), 1));
  ASSERT_TRUE(eight && *eight);
  EXPECT_FALSE((*eight)->fault);
  EXPECT_EQ((*eight)->stub.size(), 16u);
  // A fault with no fragments before it is a complete answer too.
  auto alone = r.feed(fault(9, 5));
  ASSERT_TRUE(alone && *alone);
  EXPECT_EQ((*alone)->fault, 5u);
  EXPECT_EQ(r.held_bytes(), 0u);
}

TEST(ResponseReassembler, InterleavedCallsAreCheckedEachOnItsOwn) {
  ResponseReassembler r;
  ASSERT_FALSE(r.feed(response(1, kFirst, {1, 2}, 0)).value());
  ASSERT_FALSE(r.feed(response(2, kFirst, {9}, 1, 0, DataRep::big_endian())).value());
  ASSERT_FALSE(r.feed(response(1, 0, {3}, 0)).value());
  auto two = r.feed(response(2, kLast, {10}, 1, 0, DataRep::big_endian()));
  ASSERT_TRUE(two && *two);
  EXPECT_EQ(**two, (AssembledResponse{2, 1, DataRep::big_endian(), {9, 10}, std::nullopt, kFirst}));
  // A mismatch on call 3 drops call 3 only.
  ASSERT_FALSE(r.feed(response(3, kFirst, {5}, 0)).value());
  EXPECT_EQ(error_of(r.feed(response(3, kLast, {6}, 1))), Errc::kFragmentMismatch);
  auto one = r.feed(response(1, kLast, {4}, 0));
  ASSERT_TRUE(one && *one);
  EXPECT_EQ((*one)->stub, (Bytes{1, 2, 3, 4}));
  EXPECT_EQ(r.calls_in_progress(), 0u);
}

TEST(ResponseReassembler, AllocHintIsTrustedOnlyUpToTheCaps) {
  {
    ResponseReassembler r(ResponseLimits{1000, 16});
    ASSERT_FALSE(r.feed(response(1, kFirst, Bytes(10), 0, 300)).value());
    EXPECT_EQ(r.held_bytes(), 300u);  // reserved for the whole response
    ASSERT_FALSE(r.feed(response(2, kFirst, Bytes(10), 0, 0xffffffff)).value());
    EXPECT_EQ(r.held_bytes(), 300u + 1000u);  // at most max_stub_size
    ASSERT_FALSE(r.feed(response(3, kFirst, Bytes(10), 0, 2)).value());
    EXPECT_EQ(r.held_bytes(), 1310u);  // at least the fragment
  }
  ResponseReassembler r;  // 16 MiB: the hint counts up to kTrustedAllocHint
  ASSERT_FALSE(r.feed(response(1, kFirst, Bytes(10), 0, 0xffffffff)).value());
  EXPECT_EQ(r.held_bytes(), ResponseReassembler::kTrustedAllocHint);
  // Growing past the reserve is geometric.
  ASSERT_FALSE(r.feed(response(1, 0, Bytes(ResponseReassembler::kTrustedAllocHint))).value());
  EXPECT_EQ(r.held_bytes(), 2 * ResponseReassembler::kTrustedAllocHint);
}

TEST(ResponseReassembler, GrowthNeverPassesTheCap) {
  ResponseReassembler r(ResponseLimits{16, 16});
  ASSERT_FALSE(r.feed(response(1, kFirst, Bytes(10))).value());
  EXPECT_EQ(r.held_bytes(), 10u);
  ASSERT_FALSE(r.feed(response(1, 0, Bytes(1))).value());
  EXPECT_EQ(r.held_bytes(), 16u);  // doubling would give 20
  auto done = r.feed(response(1, kLast, Bytes(5)));
  ASSERT_TRUE(done && *done);
  EXPECT_EQ((*done)->stub.size(), 16u);
  EXPECT_EQ(r.held_bytes(), 0u);
}

TEST(ResponseReassembler, AbandonAndClear) {
  ResponseReassembler r;
  ASSERT_FALSE(r.feed(response(1, kFirst, Bytes(10))).value());
  ASSERT_FALSE(r.feed(response(2, kFirst, Bytes(20))).value());
  EXPECT_EQ(r.held_bytes(), 30u);
  EXPECT_TRUE(r.abandon(1));
  EXPECT_FALSE(r.abandon(1));
  EXPECT_EQ(r.held_bytes(), 20u);
  EXPECT_EQ(error_of(r.feed(response(1, kLast, {1}))), Errc::kUnknownCall);
  r.clear();
  EXPECT_EQ(r.calls_in_progress(), 0u);
  EXPECT_EQ(r.held_bytes(), 0u);
  EXPECT_EQ(error_of(r.feed(response(2, kLast, {1}))), Errc::kUnknownCall);
  EXPECT_EQ(r.limits().max_stub_size, 16u << 20);
  EXPECT_EQ(r.limits().max_calls_in_progress, 16u);
}

}  // namespace
}  // namespace rpcgate::rpc
