#include "common/bytes.h"

#include <gtest/gtest.h>

namespace rpcgate::common {
namespace {

TEST(ByteReader, ReadsBothByteOrders) {
  const std::vector<std::uint8_t> data = {0x01, 0x02, 0x03, 0x04};
  ByteReader le(data, Endian::kLittle);
  EXPECT_EQ(le.u32(), 0x04030201u);
  ByteReader be(data, Endian::kBig);
  EXPECT_EQ(be.u32(), 0x01020304u);
  ByteReader mixed(data, Endian::kLittle);
  EXPECT_EQ(mixed.u16_be(), 0x0102u);
  EXPECT_EQ(mixed.u16(), 0x0403u);
}

TEST(ByteReader, TruncatedReadLeavesPositionUnchanged) {
  const std::vector<std::uint8_t> data = {0xaa, 0xbb, 0xcc};
  ByteReader r(data);
  ASSERT_EQ(r.u8(), 0xaa);
  EXPECT_EQ(r.u32(), std::nullopt);
  EXPECT_EQ(r.position(), 1u);
  EXPECT_FALSE(r.skip(3));
  EXPECT_EQ(r.position(), 1u);
  EXPECT_EQ(r.u16(), 0xccbb);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.u8(), std::nullopt);
}

TEST(ByteReader, AlignIsRelativeToSpanStart) {
  const std::vector<std::uint8_t> data(8, 0);
  ByteReader r(data);
  r.skip(1);
  EXPECT_TRUE(r.align(4));
  EXPECT_EQ(r.position(), 4u);
  EXPECT_TRUE(r.align(4));
  EXPECT_EQ(r.position(), 4u);
  r.skip(3);
  EXPECT_TRUE(r.align(8));
  EXPECT_EQ(r.position(), 8u);
  r.seek(1);
  EXPECT_FALSE(r.align(16));  // would need bytes beyond the end
  EXPECT_EQ(r.position(), 1u);
}

TEST(ByteWriter, WritesAndPatches) {
  ByteWriter w(Endian::kBig);
  w.u16(0x0102);
  w.u32(0);
  w.u8(7);
  w.align(4);
  EXPECT_EQ(w.size(), 8u);
  w.put_u32_at(2, 0xdeadbeef);
  EXPECT_EQ(to_hex(w.buffer()), "01 02 de ad be ef 07 00");
}

TEST(Hex, RoundTripsAndRejectsGarbage) {
  auto bytes = from_hex("05 00 0b\n03");
  ASSERT_TRUE(bytes);
  EXPECT_EQ(to_hex(*bytes, '\0'), "05000b03");
  EXPECT_EQ(from_hex("0"), std::nullopt);
  EXPECT_EQ(from_hex("zz"), std::nullopt);
}

}  // namespace
}  // namespace rpcgate::common
