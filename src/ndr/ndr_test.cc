#include "ndr/ndr.h"

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

#include "ndr/testing/test_util.h"

namespace rpcgate::ndr {
namespace {

using testing::err;
using testing::hex;

class NdrBothOrders : public ::testing::TestWithParam<Endian> {};
INSTANTIATE_TEST_SUITE_P(Ndr, NdrBothOrders, ::testing::Values(Endian::kLittle, Endian::kBig));

TEST_P(NdrBothOrders, ScalarsRoundTripWithAlignment) {
  Encoder e(GetParam());
  e.u8(0x11);
  e.u16(0x2233);
  e.u32(0x44556677);
  e.u64(0x8899aabbccddeeffull);
  e.boolean(true);
  e.f32(1.5f);
  e.f64(-2.25);
  e.enum16(0x7fff);
  e.enum32(0x80000000u);
  e.i16(-2);
  e.i32(-3);
  e.i8(-4);
  e.i64(-5);
  const auto bytes = e.take();
  // u8 @0, pad 1, u16 @2, u32 @4, u64 @8, bool @16, pad 3, f32 @20, f64 @24, enum16 @32,
  // pad 2, enum32 @36, i16 @40, pad 2, i32 @44, i8 @48, pad 7, i64 @56.
  ASSERT_EQ(bytes.size(), 64u);
  Decoder d(bytes, GetParam());
  EXPECT_EQ(d.u8().value(), 0x11);
  EXPECT_EQ(d.u16().value(), 0x2233);
  EXPECT_EQ(d.u32().value(), 0x44556677u);
  EXPECT_EQ(d.u64().value(), 0x8899aabbccddeeffull);
  EXPECT_TRUE(d.boolean().value());
  EXPECT_EQ(d.f32().value(), 1.5f);
  EXPECT_EQ(d.f64().value(), -2.25);
  EXPECT_EQ(d.enum16().value(), 0x7fff);
  EXPECT_EQ(d.enum32().value(), 0x80000000u);
  EXPECT_EQ(d.i16().value(), -2);
  EXPECT_EQ(d.i32().value(), -3);
  EXPECT_EQ(d.i8().value(), -4);
  EXPECT_EQ(d.i64().value(), -5);
  EXPECT_TRUE(d.expect_end());
}

TEST(Ndr, LittleAndBigEndianLayouts) {
  Encoder le(Endian::kLittle), be(Endian::kBig);
  for (auto* e : {&le, &be}) {
    e->u8(1);
    e->u32(0x01020304);
    e->f32(1.0f);
  }
  EXPECT_EQ(le.buffer(), hex("01000000 04030201 0000803f"));
  EXPECT_EQ(be.buffer(), hex("01000000 01020304 3f800000"));
}

TEST(Ndr, ArbitraryPadBytesAcceptedAndRecorded) {
  const auto bytes = hex("07 ab ab ab 04 03 02 01");
  Decoder d(bytes, Endian::kLittle);
  std::vector<std::size_t> pads;
  d.record_padding(&pads);
  EXPECT_EQ(d.u8().value(), 7);
  EXPECT_EQ(d.u32().value(), 0x01020304u);
  EXPECT_EQ(pads, (std::vector<std::size_t>{1, 2, 3}));
}

TEST(Ndr, EveryTruncationIsAnError) {
  Encoder e(Endian::kLittle);
  e.u8(1);
  e.u64(2);
  e.string("abc");
  const auto full = e.take();
  for (std::size_t n = 0; n < full.size(); ++n) {
    Decoder d(std::span<const std::uint8_t>(full).first(n), Endian::kLittle);
    auto a = d.u8();
    auto b = a ? d.u64() : Result<std::uint64_t>(std::unexpected(a.error()));
    auto c = b ? d.string() : Result<std::string>(std::unexpected(b.error()));
    ASSERT_FALSE(c) << n;
    EXPECT_TRUE(c.error() == err(Errc::kTruncated) || c.error() == err(Errc::kCountOverLimit))
        << n << " " << c.error().message();
  }
}

TEST(Ndr, EnumAndBoolean) {
  const auto d_bytes = hex("00 80 02 00");
  Decoder d(d_bytes, Endian::kLittle);  // 0x8000 out of range for a 16-bit enum
  EXPECT_EQ(d.enum16().error(), err(Errc::kEnumOutOfRange));
  const auto b_bytes = hex("02");
  Decoder b(b_bytes, Endian::kLittle);  // any non-zero octet is TRUE
  EXPECT_TRUE(b.boolean().value());
}

TEST(Ndr, ConformantArrayChecks) {
  // Good: 3 x u16.
  const auto ok_bytes = hex("03000000 0100 0200 0300");
  Decoder ok(ok_bytes, Endian::kLittle);
  auto shape = ok.conformant_array(2);
  ASSERT_TRUE(shape);
  EXPECT_EQ(shape->wire_count(), 3u);
  // 0xffffffff elements: over the limit before anything is allocated.
  const auto huge_bytes = hex("ffffffff 00");
  Decoder huge(huge_bytes, Endian::kLittle);
  EXPECT_EQ(huge.conformant_array(1).error(), err(Errc::kCountOverLimit));
  // Within the limit but more than the bytes left.
  const auto lie_bytes = hex("10000000 0102");
  Decoder lie(lie_bytes, Endian::kLittle);
  EXPECT_EQ(lie.conformant_array(1).error(), err(Errc::kCountOverLimit));
  // A tighter configured limit.
  DecodeLimits limits;
  limits.max_array_elements = 2;
  const auto limited_bytes = hex("03000000 010203");
  Decoder limited(limited_bytes, Endian::kLittle, limits);
  EXPECT_EQ(limited.conformant_array(1).error(), err(Errc::kCountOverLimit));
}

TEST(Ndr, VaryingAndConformantVaryingChecks) {
  const auto v_bytes = hex("01000000 02000000 aabb");
  Decoder v(v_bytes, Endian::kLittle);
  auto vs = v.varying_array(3, 1);
  ASSERT_TRUE(vs);
  EXPECT_EQ(vs->offset, 1u);
  EXPECT_EQ(vs->actual_count, 2u);
  const auto v_over_bytes = hex("02000000 02000000 aabb");
  Decoder v_over(v_over_bytes, Endian::kLittle);  // 2 + 2 > bound 3
  EXPECT_EQ(v_over.varying_array(3, 1).error(), err(Errc::kCountInconsistent));

  const auto actual_gt_max_bytes = hex("01000000 00000000 02000000 aabb");
  Decoder actual_gt_max(actual_gt_max_bytes, Endian::kLittle);
  EXPECT_EQ(actual_gt_max.conformant_varying_array(1).error(), err(Errc::kCountInconsistent));
  // offset + actual_count overflows 32 bits: still inconsistent, never wraps.
  const auto wrap_bytes = hex("04000000 ffffffff 02000000 aabb");
  Decoder wrap(wrap_bytes, Endian::kLittle);
  EXPECT_EQ(wrap.conformant_varying_array(1).error(), err(Errc::kCountInconsistent));
  const auto max_huge_bytes = hex("ffffffff 00000000 01000000 aa");
  Decoder max_huge(max_huge_bytes, Endian::kLittle);
  EXPECT_EQ(max_huge.conformant_varying_array(1).error(), err(Errc::kCountOverLimit));
}

TEST(Ndr, AllocationBudget) {
  DecodeLimits limits;
  limits.max_total_alloc = 4;
  const auto d_bytes = hex("03000000 010203 00 03000000 010203");
  Decoder d(d_bytes, Endian::kLittle, limits);
  ASSERT_TRUE(d.conformant_array(1));
  ASSERT_TRUE(d.bytes(3));
  EXPECT_EQ(d.conformant_array(1).error(), err(Errc::kAllocOverLimit));
}

TEST_P(NdrBothOrders, StringsRoundTrip) {
  Encoder e(GetParam());
  e.string("samr");
  e.wstring(u"\\pipe\\lsass");
  e.varying_string("");
  e.string("");
  const auto bytes = e.take();
  Decoder d(bytes, GetParam());
  EXPECT_EQ(d.string().value(), "samr");
  EXPECT_EQ(d.wstring().value(), u"\\pipe\\lsass");
  EXPECT_EQ(d.varying_string(64).value(), "");
  EXPECT_EQ(d.string().value(), "");
  EXPECT_TRUE(d.expect_end());
}

TEST(Ndr, StringGoldenLayout) {
  Encoder e(Endian::kLittle);
  e.string("ab");
  EXPECT_EQ(e.buffer(), hex("03000000 00000000 03000000 616200"));
}

TEST(Ndr, StringErrors) {
  auto decode = [](std::string_view h) {
    auto b = hex(h);
    Decoder d(b, Endian::kLittle);
    return d.string();
  };
  EXPECT_EQ(decode("03000000 00000000 03000000 616263").error(), err(Errc::kStringNotTerminated));
  EXPECT_EQ(decode("03000000 00000000 03000000 610000").error(), err(Errc::kStringEmbeddedNul));
  EXPECT_EQ(decode("03000000 01000000 02000000 6100").error(), err(Errc::kStringNonZeroOffset));
  EXPECT_EQ(decode("03000000 00000000 00000000").error(), err(Errc::kStringNotTerminated));
  EXPECT_EQ(decode("03000000 00000000 04000000 61626300").error(), err(Errc::kCountInconsistent));
  EXPECT_EQ(decode("ffffffff 00000000 04000000 61626300").error(), err(Errc::kCountOverLimit));
  EXPECT_EQ(decode("10000000 00000000 10000000 6100").error(), err(Errc::kCountOverLimit));
  // Varying string in a struct: the fixed bound applies (annotation: 64 incl. NUL).
  auto b = hex("00000000 41000000");
  Decoder d(b, Endian::kLittle);
  EXPECT_EQ(d.varying_string(64).error(), err(Errc::kCountInconsistent));
  // Wide string not terminated.
  auto w = hex("02000000 00000000 02000000 6100 6200");
  Decoder dw(w, Endian::kLittle);
  EXPECT_EQ(dw.wstring().error(), err(Errc::kStringNotTerminated));
}

TEST(Ndr, UniqueAndRefPointers) {
  // NULL, Impacket-style 1, Samba/MS-style 0x00020000, random.
  const auto d_bytes = hex("00000000 01000000 00000200 39300000 00000000");
  Decoder d(d_bytes, Endian::kLittle);
  EXPECT_FALSE(d.unique_pointer().value());
  EXPECT_TRUE(d.unique_pointer().value());
  EXPECT_TRUE(d.unique_pointer().value());
  EXPECT_TRUE(d.embedded_ref_pointer());
  EXPECT_EQ(d.embedded_ref_pointer().error(), err(Errc::kNullRefPointer));

  Encoder ms(Endian::kLittle);
  ms.unique_pointer(true);
  ms.unique_pointer(false);
  ms.unique_pointer(true);
  EXPECT_EQ(ms.buffer(), hex("00000200 00000000 04000200"));
  Encoder seq(Endian::kLittle, {ReferentStyle::kSequential, 0});
  seq.unique_pointer(true);
  seq.unique_pointer(true);
  EXPECT_EQ(seq.buffer(), hex("01000000 02000000"));
}

TEST(Ndr, FullPointerAliasing) {
  int a = 0, b = 0;
  Encoder e(Endian::kLittle);
  EXPECT_TRUE(e.full_pointer(&a).first);
  EXPECT_TRUE(e.full_pointer(&b).first);
  EXPECT_FALSE(e.full_pointer(&a).first);
  EXPECT_TRUE(e.full_pointer(nullptr).is_null());
  EXPECT_EQ(e.buffer(), hex("00000200 04000200 00000200 00000000"));

  Decoder d(e.buffer(), Endian::kLittle);
  auto p1 = d.full_pointer().value();
  auto p2 = d.full_pointer().value();
  auto p3 = d.full_pointer().value();
  auto p4 = d.full_pointer().value();
  EXPECT_TRUE(p1.first);
  EXPECT_TRUE(p2.first);
  EXPECT_FALSE(p3.first);
  EXPECT_EQ(p3.referent_id, p1.referent_id);
  EXPECT_TRUE(p4.is_null());
}

// struct Inner { u16 x; [unique] u32* q; };  struct Outer { u32 a; [unique] Inner* p1;
// [unique] u32* p2; };  NDR: Outer's scalars, then p1's referent (Inner) followed immediately
// by Inner's own deferred q referent, then p2's referent.
struct Inner {
  std::uint16_t x = 0;
  std::optional<std::uint32_t> q;
};
struct Outer {
  std::uint32_t a = 0;
  std::optional<Inner> p1;
  std::optional<std::uint32_t> p2;
};

void encode_outer(Encoder& e, const Outer& o) {
  e.u32(o.a);
  e.unique_pointer(o.p1.has_value());
  if (o.p1) {
    e.defer([&o](Encoder& ee) {
      ee.u16(o.p1->x);
      ee.unique_pointer(o.p1->q.has_value());
      if (o.p1->q) ee.defer([&o](Encoder& eee) { eee.u32(*o.p1->q); });
    });
  }
  e.unique_pointer(o.p2.has_value());
  if (o.p2) e.defer([&o](Encoder& ee) { ee.u32(*o.p2); });
  e.flush_deferred();
}

Result<Outer> decode_outer(Decoder& d) {
  Outer o;
  auto a = d.u32();
  if (!a) return std::unexpected(a.error());
  o.a = *a;
  auto p1 = d.unique_pointer();
  if (!p1) return std::unexpected(p1.error());
  if (*p1) {
    o.p1.emplace();
    d.defer([&o](Decoder& dd) -> Result<void> {
      auto x = dd.u16();
      if (!x) return std::unexpected(x.error());
      o.p1->x = *x;
      auto q = dd.unique_pointer();
      if (!q) return std::unexpected(q.error());
      if (*q) {
        dd.defer([&o](Decoder& ddd) -> Result<void> {
          auto v = ddd.u32();
          if (!v) return std::unexpected(v.error());
          o.p1->q = *v;
          return {};
        });
      }
      return {};
    });
  }
  auto p2 = d.unique_pointer();
  if (!p2) return std::unexpected(p2.error());
  if (*p2) {
    d.defer([&o](Decoder& dd) -> Result<void> {
      auto v = dd.u32();
      if (!v) return std::unexpected(v.error());
      o.p2 = *v;
      return {};
    });
  }
  if (auto r = d.flush_deferred(); !r) return std::unexpected(r.error());
  return o;
}

TEST_P(NdrBothOrders, DeferredPointeesFollowTheConstruct) {
  Outer o{0x11111111, Inner{0x2222, 0x33333333}, 0x44444444};
  Encoder e(GetParam());
  encode_outer(e, o);
  if (GetParam() == Endian::kLittle) {
    EXPECT_EQ(e.buffer(), hex("11111111 00000200 04000200"  // a, p1, p2
                              "2222 0000 08000200"          // *p1: x, pad, q
                              "33333333"                    // *q (deferred inside *p1)
                              "44444444"));                 // *p2
  }
  Decoder d(e.buffer(), GetParam());
  auto back = decode_outer(d);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->a, o.a);
  EXPECT_EQ(back->p1->x, 0x2222);
  EXPECT_EQ(back->p1->q, o.p1->q);
  EXPECT_EQ(back->p2, o.p2);
  EXPECT_TRUE(d.expect_end());

  Outer nulls{5, Inner{1, std::nullopt}, std::nullopt};
  Encoder e2(GetParam());
  encode_outer(e2, nulls);
  Decoder d2(e2.buffer(), GetParam());
  auto back2 = decode_outer(d2);
  ASSERT_TRUE(back2);
  EXPECT_FALSE(back2->p1->q.has_value());
  EXPECT_FALSE(back2->p2.has_value());
}

// A linked list [unique] Node* next chains deferrals; the depth limit stops a long chain.
TEST(Ndr, DeferralDepthLimit) {
  Encoder e(Endian::kLittle);
  for (int i = 0; i < 100; ++i)
    e.u32(1);  // 100 non-NULL "next" pointers, each deferred
  e.u32(0);
  std::function<Result<void>(Decoder&)> node = [&node](Decoder& d) -> Result<void> {
    auto next = d.unique_pointer();
    if (!next) return std::unexpected(next.error());
    if (*next) d.defer(node);
    return {};
  };
  DecodeLimits limits;
  limits.max_depth = 32;
  Decoder d(e.buffer(), Endian::kLittle, limits);
  ASSERT_TRUE(node(d));
  EXPECT_EQ(d.flush_deferred().error(), err(Errc::kDepthExceeded));

  limits.max_depth = 200;
  Decoder ok(e.buffer(), Endian::kLittle, limits);
  ASSERT_TRUE(node(ok));
  EXPECT_TRUE(ok.flush_deferred());
  EXPECT_TRUE(ok.expect_end());
}

// Non-encapsulated union (IDL: [switch_is(level)] union { [case(1)] u16 a; [case(2)] u32 b; })
// as MIDL marshals it: the discriminant again, then the arm aligned to the arm's alignment.
Result<std::uint32_t> decode_union(Decoder& d, std::uint32_t level) {
  auto disc = d.union_discriminant(SwitchType::kU32, level);
  if (!disc) return std::unexpected(disc.error());
  switch (*disc) {
    case 1: {
      auto a = d.u16();
      if (!a) return std::unexpected(a.error());
      return *a;
    }
    case 2:
      return d.u32();
    default:
      return fail(Errc::kBadUnionDiscriminant);
  }
}

TEST_P(NdrBothOrders, Unions) {
  Encoder e(GetParam());
  e.union_discriminant(SwitchType::kU32, 2);
  e.u32(0xdeadbeef);
  e.union_discriminant(SwitchType::kU32, 1);
  e.u16(0x1234);
  e.union_discriminant(SwitchType::kU32, 7);
  Decoder d(e.buffer(), GetParam());
  EXPECT_EQ(decode_union(d, 2).value(), 0xdeadbeefu);
  EXPECT_EQ(decode_union(d, 1).value(), 0x1234u);
  EXPECT_EQ(decode_union(d, 7).error(), err(Errc::kBadUnionDiscriminant));  // no arm

  Decoder mismatch(e.buffer(), GetParam());
  EXPECT_EQ(decode_union(mismatch, 1).error(), err(Errc::kBadUnionDiscriminant));

  Encoder e16(GetParam());
  e16.union_discriminant(SwitchType::kU16, 3);
  Decoder d16(e16.buffer(), GetParam());
  EXPECT_EQ(d16.union_discriminant(SwitchType::kU16).value(), 3u);
}

TEST_P(NdrBothOrders, ContextHandles) {
  ContextHandle h{0, *Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da")};
  Encoder e(GetParam());
  e.u8(9);
  e.context_handle(h);
  e.context_handle(ContextHandle{});
  ASSERT_EQ(e.size(), 44u);
  if (GetParam() == Endian::kLittle) {
    EXPECT_EQ(std::vector<std::uint8_t>(e.buffer().begin() + 8, e.buffer().begin() + 24),
              hex("40fc296b47ca6710b31d00dd010662da"));
  }
  Decoder d(e.buffer(), GetParam());
  ASSERT_TRUE(d.u8());
  EXPECT_EQ(d.context_handle().value(), h);
  EXPECT_TRUE(d.context_handle().value().is_null());
  EXPECT_FALSE(h.is_null());
}

TEST(Ndr, TrailingBytesAndCategory) {
  const auto d_bytes = hex("00");
  Decoder d(d_bytes, Endian::kLittle);
  EXPECT_EQ(d.expect_end().error(), err(Errc::kTrailingBytes));
  EXPECT_STREQ(ndr_category().name(), "rpcgate.ndr");
  EXPECT_EQ(err(Errc::kTruncated).message(), "NDR: truncated stub");
  std::error_code ec = Errc::kCountOverLimit;
  EXPECT_EQ(ec, err(Errc::kCountOverLimit));
}

}  // namespace
}  // namespace rpcgate::ndr
