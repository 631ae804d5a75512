#include "common/clock.h"

#include <gtest/gtest.h>

namespace rpcgate::common {
namespace {

using namespace std::chrono_literals;

TEST(ManualClock, MovesOnlyWhenAdvancedAndNeverBackwards) {
  ManualClock c;
  const auto t0 = c.now();
  EXPECT_NE(t0, SteadyTime{});
  EXPECT_EQ(c.now(), t0);
  c.advance(250ms);
  EXPECT_EQ(c.now() - t0, 250ms);
  c.advance(-1s);
  EXPECT_EQ(c.now() - t0, 250ms);
}

TEST(ManualClock, AdvanceRunsSubscribersUntilUnsubscribed) {
  ManualClock c;
  int a = 0, b = 0;
  const auto ida = c.subscribe([&] { ++a; });
  c.subscribe([&] { ++b; });
  c.advance(1ms);
  c.unsubscribe(ida);
  c.advance(1ms);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
}

TEST(SteadyClock, IsMonotonic) {
  auto& c = SteadyClock::instance();
  const auto t0 = c.now();
  EXPECT_GE(c.now(), t0);
}

}  // namespace
}  // namespace rpcgate::common
