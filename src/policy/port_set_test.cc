#include "policy/port_set.h"

#include <vector>

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

TEST(PortSet, FromRangesIsTheUnionOfAdds) {
  // Overlapping, adjacent, nested, unordered and duplicate ranges, the port space's edges.
  const std::vector<PortRange> ranges = {{50, 60},       {0, 0},     {61, 70},   {55, 58},
                                         {65535, 65535}, {100, 200}, {150, 300}, {0, 10},
                                         {65000, 65535}, {50, 60},   {302, 302}, {64999, 64999}};
  PortSet added;
  for (const auto& r : ranges)
    added.add(r);
  const PortSet merged = PortSet::from_ranges(ranges);
  EXPECT_EQ(merged, added);
  EXPECT_EQ(merged.count(), added.count());
  EXPECT_EQ(merged.to_string(), "0-10,50-70,100-300,302,64999-65535");
  EXPECT_TRUE(PortSet::from_ranges({}).empty());
  EXPECT_EQ(PortSet::from_ranges(std::vector<PortRange>(65536, PortRange{0, 65535})).count(),
            65536u);
}

}  // namespace
}  // namespace rpcgate::policy
