#include "firewall/pinholes.h"

#include <gtest/gtest.h>

namespace rpcgate::firewall {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0{std::chrono::seconds(1000)};
const rpc::SyntaxId kWinreg{*common::Uuid::parse("338cd001-2244-31f1-aaaa-900038001003"), 1, 0};
const rpc::SyntaxId kSvcctl{*common::Uuid::parse("367abb81-9844-35f1-ad32-98f038001003"), 2, 0};

PinholeKey key(std::uint8_t client, std::uint16_t port = 49664) {
  return PinholeKey{ipv4(10, 0, 0, client), ipv4(10, 0, 1, 5), port};
}

TEST(PinholeTable, OpensForTheTimeoutAndClosesExactlyThen) {
  PinholeTable t(PinholeLimits{.timeout = 60s});
  EXPECT_EQ(t.open(key(1), kWinreg, kT0), OpenResult::kOpened);
  EXPECT_TRUE(t.allows(key(1), kWinreg, kT0 + 59'999ms));
  EXPECT_FALSE(t.allows(key(1), kWinreg, kT0 + 60s));
  EXPECT_EQ(t.next_expiry(), kT0 + 60s);
  EXPECT_EQ(t.expire(kT0 + 59s), 0u);
  EXPECT_EQ(t.expire(kT0 + 60s), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.count_for(key(1).client), 0u);
  EXPECT_EQ(t.next_expiry(), std::nullopt);
}

TEST(PinholeTable, OnlyThatClientThatServerThatPortAndTheLearnedInterfaces) {
  PinholeTable t;
  t.open(key(1), kWinreg, kT0);
  EXPECT_TRUE(t.allows(key(1), kWinreg, kT0));
  EXPECT_FALSE(t.allows(key(2), kWinreg, kT0));         // another client
  EXPECT_FALSE(t.allows(key(1, 49665), kWinreg, kT0));  // another port
  EXPECT_FALSE(t.allows(key(1), kSvcctl, kT0));         // another interface on the same port
  PinholeKey other_server = key(1);
  other_server.server = ipv4(10, 0, 1, 6);
  EXPECT_FALSE(t.allows(other_server, kWinreg, kT0));
  // Version rule of the server: same major, our minor >= the asked one.
  EXPECT_FALSE(t.allows(key(1), rpc::SyntaxId{kWinreg.uuid, 1, 1}, kT0));
  EXPECT_FALSE(t.allows(key(1), rpc::SyntaxId{kWinreg.uuid, 2, 0}, kT0));
  // A second ept_map for another interface on the same port adds it.
  EXPECT_EQ(t.open(key(1), kSvcctl, kT0 + 1s), OpenResult::kRefreshed);
  EXPECT_TRUE(t.allows(key(1), kSvcctl, kT0 + 1s));
  EXPECT_EQ(t.size(), 1u);
}

TEST(PinholeTable, ARefreshMovesTheExpiryWithoutGrowingTheIndex) {
  PinholeTable t(PinholeLimits{.timeout = 10s});
  t.open(key(1), kWinreg, kT0);
  for (int i = 1; i <= 1000; ++i)
    EXPECT_EQ(t.open(key(1), kWinreg, kT0 + std::chrono::milliseconds(i)), OpenResult::kRefreshed);
  EXPECT_EQ(t.next_expiry(), kT0 + 1000ms + 10s);
  EXPECT_EQ(t.expire(kT0 + 10s + 999ms), 0u);  // the old expiries are gone, not stale
  EXPECT_TRUE(t.allows(key(1), kWinreg, kT0 + 10s + 999ms));
  EXPECT_EQ(t.expire(kT0 + 11s), 1u);
}

TEST(PinholeTable, BudgetsPerPinholePerClientAndInAll) {
  PinholeTable t(PinholeLimits{.max_interfaces = 2, .max_per_client = 3, .max_total = 4});
  t.open(key(1), kWinreg, kT0);
  t.open(key(1), kSvcctl, kT0);
  EXPECT_EQ(t.open(key(1), rpc::SyntaxId{kWinreg.uuid, 9, 0}, kT0), OpenResult::kTooManyInterfaces);
  EXPECT_FALSE(t.allows(key(1), rpc::SyntaxId{kWinreg.uuid, 9, 0}, kT0));
  EXPECT_EQ(t.open(key(1, 2), kWinreg, kT0), OpenResult::kOpened);
  EXPECT_EQ(t.open(key(1, 3), kWinreg, kT0), OpenResult::kOpened);
  EXPECT_EQ(t.open(key(1, 4), kWinreg, kT0), OpenResult::kClientFull);
  EXPECT_EQ(t.count_for(key(1).client), 3u);
  EXPECT_EQ(t.open(key(2), kWinreg, kT0), OpenResult::kOpened);  // another client: its own
  EXPECT_EQ(t.open(key(3), kWinreg, kT0), OpenResult::kTableFull);
  EXPECT_EQ(t.size(), 4u);
  // Expired pinholes never count against a budget.
  EXPECT_EQ(t.open(key(3), kWinreg, kT0 + 60s), OpenResult::kOpened);
  EXPECT_EQ(t.size(), 1u);
}

TEST(Address, ParsesAndPrintsBothFamilies) {
  EXPECT_EQ(parse_address("10.0.0.1"), ipv4(10, 0, 0, 1));
  EXPECT_EQ(to_string(ipv4(10, 0, 0, 1)), "10.0.0.1");
  auto v6 = parse_address("fd00::1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(to_string(*v6), "fd00::1");
  EXPECT_FALSE(parse_address("10.0.0.256"));
  EXPECT_FALSE(parse_address("host"));
}

TEST(PinholeComment, RoundTripsTheInterfacesThatFitAndSkipsWhatDoesNotParse) {
  const rpc::SyntaxId a{*common::Uuid::parse("12345778-1234-abcd-ef00-0123456789ab"), 0, 0};
  const rpc::SyntaxId b{*common::Uuid::parse("338cd001-2244-31f1-aaaa-900038001003"), 1, 2};
  const auto c = interfaces_comment({a, b});
  EXPECT_EQ(c, "12345778-1234-abcd-ef00-0123456789ab:0.0,338cd001-2244-31f1-aaaa-900038001003:1.2");
  EXPECT_EQ(parse_interfaces_comment(c), (std::vector<rpc::SyntaxId>{a, b}));
  // Four do not fit in 127 bytes: the first three are kept, whole.
  const auto full = interfaces_comment({a, b, a, b});
  EXPECT_LE(full.size(), kMaxPinholeComment);
  EXPECT_EQ(parse_interfaces_comment(full).size(), 3u);
  EXPECT_EQ(parse_interfaces_comment("junk,338cd001-2244-31f1-aaaa-900038001003:1.2,x:1.,:1.0"),
            (std::vector<rpc::SyntaxId>{b}));
  EXPECT_TRUE(parse_interfaces_comment("").empty());
  EXPECT_TRUE(parse_interfaces_comment("338cd001-2244-31f1-aaaa-900038001003:70000.0").empty());
}

}  // namespace
}  // namespace rpcgate::firewall
