#include "common/uuid.h"

#include <gtest/gtest.h>

namespace rpcgate::common {
namespace {

TEST(Uuid, ParsesAndFormats) {
  auto u = Uuid::parse("E1AF8308-5D1F-11C9-91A4-08002B14A0FA");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->to_string(), "e1af8308-5d1f-11c9-91a4-08002b14a0fa");
  EXPECT_EQ(Uuid::parse("{e1af8308-5d1f-11c9-91a4-08002b14a0fa}"), u);
  EXPECT_FALSE(Uuid::parse("e1af8308-5d1f-11c9-91a4-08002b14a0f"));
  EXPECT_FALSE(Uuid::parse("e1af8308x5d1f-11c9-91a4-08002b14a0fa"));
  EXPECT_FALSE(Uuid::parse("g1af8308-5d1f-11c9-91a4-08002b14a0fa"));
  EXPECT_TRUE(Uuid().is_nil());
  EXPECT_FALSE(u->is_nil());
}

// The EPM interface UUID as Impacket's bind carries it (docs/wire-vectors.md bind-epm), NDR LE.
TEST(Uuid, NdrLittleEndianGolden) {
  auto wire = *from_hex("08 83 af e1 1f 5d c9 11 91 a4 08 00 2b 14 a0 fa");
  ByteReader r(wire, Endian::kLittle);
  auto u = Uuid::read(r);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->to_string(), "e1af8308-5d1f-11c9-91a4-08002b14a0fa");
  ByteWriter w(Endian::kLittle);
  u->write(w);
  EXPECT_EQ(w.buffer(), wire);
}

TEST(Uuid, NdrBigEndianIsCanonicalOrder) {
  auto u = *Uuid::parse("e1af8308-5d1f-11c9-91a4-08002b14a0fa");
  ByteWriter w(Endian::kBig);
  u.write(w);
  EXPECT_EQ(to_hex(w.buffer(), '\0'), "e1af83085d1f11c991a408002b14a0fa");
  ByteReader r(w.buffer(), Endian::kBig);
  EXPECT_EQ(Uuid::read(r), u);
}

TEST(Uuid, TruncatedReadFails) {
  std::vector<std::uint8_t> wire(15, 0);
  ByteReader r(wire);
  EXPECT_EQ(Uuid::read(r), std::nullopt);
  EXPECT_EQ(r.position(), 0u);
}

}  // namespace
}  // namespace rpcgate::common
