#include "histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace rpcgate::bench {
namespace {

// The exact order statistic percentile() approximates.
std::uint64_t exact(std::vector<std::uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

void expect_within_1pct(std::uint64_t got, std::uint64_t want) {
  EXPECT_LE(std::fabs(static_cast<double>(got) - static_cast<double>(want)),
            0.01 * static_cast<double>(want) + 0.5)
      << "got " << got << " want " << want;
}

TEST(HistogramTest, EmptyIsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(HistogramTest, BucketsTileTheRangeWithoutGaps) {
  EXPECT_EQ(Histogram::bucket_low(0), 0u);
  for (std::size_t i = 1; i < Histogram::kBucketCount; ++i) {
    ASSERT_EQ(Histogram::bucket_low(i), Histogram::bucket_high(i - 1) + 1) << i;
    // A bucket is at most 1/128 of its lower bound wide.
    const auto width = Histogram::bucket_high(i) - Histogram::bucket_low(i) + 1;
    ASSERT_LE(width * Histogram::kSubBuckets,
              std::max<std::uint64_t>(Histogram::bucket_low(i), Histogram::kSubBuckets))
        << i;
    ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_low(i)), i);
    ASSERT_EQ(Histogram::bucket_of(Histogram::bucket_high(i)), i);
  }
  EXPECT_EQ(Histogram::bucket_high(Histogram::kBucketCount - 1), Histogram::kMaxValue);
  EXPECT_EQ(Histogram::bucket_of(~std::uint64_t{0}), Histogram::kBucketCount - 1);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v)
    h.record(v);
  EXPECT_EQ(h.percentile(50), 50u);
  EXPECT_EQ(h.percentile(99), 99u);
  EXPECT_EQ(h.percentile(99.9), 100u);
  EXPECT_EQ(h.percentile(100), 100u);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(HistogramTest, PercentilesWithinOnePercentOfExact) {
  // Latency-like: log-normal around 300 us with a long tail, in nanoseconds.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(std::log(300'000.0), 0.8);
  std::vector<std::uint64_t> values;
  Histogram h;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0})
    expect_within_1pct(h.percentile(p), exact(values, p));
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
}

TEST(HistogramTest, UniformSpreadOverManyOctaves) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> dist(1, 10'000'000'000ull);  // up to 10 s
  std::vector<std::uint64_t> values;
  Histogram h;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = dist(rng);
    values.push_back(v);
    h.record(v);
  }
  for (double p : {50.0, 99.0, 99.9})
    expect_within_1pct(h.percentile(p), exact(values, p));
}

TEST(HistogramTest, MergeEqualsRecordingEverything) {
  Histogram a, b, all;
  for (std::uint64_t v = 1000; v < 50'000; v += 7) {
    (v % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {50.0, 99.0, 99.9})
    EXPECT_EQ(a.percentile(p), all.percentile(p));
}

TEST(HistogramTest, HugeValuesClampToTheTopBucket) {
  Histogram h;
  h.record(~std::uint64_t{0});
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), ~std::uint64_t{0});
  EXPECT_GE(h.percentile(50), Histogram::bucket_low(Histogram::kBucketCount - 1));
}

}  // namespace
}  // namespace rpcgate::bench
