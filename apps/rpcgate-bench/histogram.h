// A fixed-bucket log-linear latency histogram (HdrHistogram's layout, reduced to what
// rpcgate-bench needs): values in nanoseconds, no allocation after construction, record() is a
// few integer operations, so it sits on the load generator's hot path.
//
// Buckets: values 0..255 have one bucket each (exact); above, every power-of-two range
// [2^k, 2^(k+1)) is split into kSubBuckets = 128 equal buckets, so a bucket is at most 1/128 of
// its lower bound wide. percentile() reports the middle of the bucket holding the rank, hence
// within 0.4 % of an exact order statistic of the recorded values. Values above kMaxValue (about
// 18 minutes) are clamped to it (and counted in the top bucket); min(), max() and mean() are
// exact.
//
// Not thread-safe: one histogram per thread, then merge().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace rpcgate::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr std::uint64_t kSubBuckets = 1u << kSubBucketBits;  // per power of two
  static constexpr int kMaxValueBits = 40;
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << kMaxValueBits) - 1;
  // 256 exact buckets, then 128 per power of two from 2^8 to 2^39.
  static constexpr std::size_t kBucketCount =
      2 * kSubBuckets + (kMaxValueBits - kSubBucketBits - 1) * kSubBuckets;

  void record(std::uint64_t value_ns);
  // Adds every value of `other`.
  void merge(const Histogram& other);
  void reset();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const;  // 0 when empty
  // The value at percentile `p` (0..100, clamped): the smallest recorded value v such that at
  // least p % of the values are <= v, to the bucket resolution above (the bucket's midpoint,
  // clamped to [min(), max()]). 0 when empty.
  std::uint64_t percentile(double p) const;

  // Bucket index of `value_ns` and the inclusive range of a bucket (exposed for tests).
  static std::size_t bucket_of(std::uint64_t value_ns);
  static std::uint64_t bucket_low(std::size_t index);
  static std::uint64_t bucket_high(std::size_t index);

 private:
  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace rpcgate::bench
