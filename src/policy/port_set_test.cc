#include "policy/port_set.h"

#include <gtest/gtest.h>

namespace rpcgate::policy {
namespace {

TEST(PortRange, ParsesStrictGrammar) {
  EXPECT_EQ(parse_port_range("5984"), (PortRange{5984, 5984}));
  EXPECT_EQ(parse_port_range(" 5000 - 5100 "), (PortRange{5000, 5100}));
  EXPECT_EQ(parse_port_range("0-65535"), (PortRange{0, 65535}));
  EXPECT_FALSE(parse_port_range("65536"));
  EXPECT_FALSE(parse_port_range("5100-5000"));
  EXPECT_FALSE(parse_port_range("5000-"));
  EXPECT_FALSE(parse_port_range("-5000"));
  EXPECT_FALSE(parse_port_range("0x100"));
  EXPECT_FALSE(parse_port_range(""));
  EXPECT_FALSE(parse_port_range("1-2-3"));
  EXPECT_FALSE(parse_port_range("+5"));
}

TEST(PortSet, MergesRangesAndCounts) {
  PortSet s;
  s.add({5000, 5100});
  s.add({5101, 5200});
  s.add(5984);
  s.add({5050, 5060});  // already present: count unchanged
  EXPECT_EQ(s.count(), 202u);
  EXPECT_EQ(s.to_string(), "5000-5200,5984");
  s.remove({5100, 5100});
  EXPECT_EQ(s.to_string(), "5000-5099,5101-5200,5984");
  EXPECT_EQ(s.count(), 201u);
}

TEST(PortSet, ComplementAndIntersection) {
  PortSet listed = PortSet::of({50000, 50099});
  PortSet rest = listed.complement_within({49152, 65535});
  EXPECT_EQ(rest.to_string(), "49152-49999,50100-65535");
  EXPECT_EQ(rest.count(), 16384u - 100u);
  EXPECT_FALSE(rest.intersects(listed));
  EXPECT_EQ(PortSet::of({0, 65535}).intersection(listed), listed);
}

TEST(PortSet, EdgesOfThePortSpace) {
  PortSet s = PortSet::of({0, 65535});
  EXPECT_EQ(s.count(), 65536u);
  EXPECT_EQ(s.to_string(), "0-65535");
  EXPECT_TRUE(s.contains(0));
  EXPECT_TRUE(s.contains(65535));
  EXPECT_TRUE(s.complement_within({0, 65535}).empty());
}

}  // namespace
}  // namespace rpcgate::policy
