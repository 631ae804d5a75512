#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace rpcgate::bench {

std::size_t Histogram::bucket_of(std::uint64_t v) {
  v = std::min(v, kMaxValue);
  if (v < 2 * kSubBuckets) return static_cast<std::size_t>(v);
  // shift >= 1: the value's top kSubBucketBits + 1 bits select the bucket (mantissa in
  // [kSubBuckets, 2 * kSubBuckets)).
  const int shift = std::bit_width(v) - (kSubBucketBits + 1);
  const std::uint64_t mantissa = v >> shift;
  return static_cast<std::size_t>(2 * kSubBuckets + (shift - 1) * kSubBuckets +
                                  (mantissa - kSubBuckets));
}

std::uint64_t Histogram::bucket_low(std::size_t index) {
  if (index < 2 * kSubBuckets) return index;
  const std::size_t above = index - 2 * kSubBuckets;
  const int shift = static_cast<int>(above / kSubBuckets) + 1;
  const std::uint64_t mantissa = kSubBuckets + above % kSubBuckets;
  return mantissa << shift;
}

std::uint64_t Histogram::bucket_high(std::size_t index) {
  if (index < 2 * kSubBuckets) return index;
  const std::size_t above = index - 2 * kSubBuckets;
  const int shift = static_cast<int>(above / kSubBuckets) + 1;
  return bucket_low(index) + (std::uint64_t{1} << shift) - 1;
}

void Histogram::record(std::uint64_t value_ns) {
  ++counts_[bucket_of(value_ns)];
  ++count_;
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
  sum_ += static_cast<long double>(value_ns);
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < kBucketCount; ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::reset() {
  *this = Histogram{};
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // The rank (1-based) of the order statistic: ceil(p/100 * n), at least 1.
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::uint64_t mid = bucket_low(i) + (bucket_high(i) - bucket_low(i)) / 2;
      return std::clamp(mid, min(), max_);
    }
  }
  return max_;
}

}  // namespace rpcgate::bench
