#include "epm/ept_map_cache.h"

#include <gtest/gtest.h>

namespace rpcgate::epm {
namespace {

using common::Endian;
using Bytes = std::vector<std::uint8_t>;

constexpr Ipv4 kHost{127, 0, 0, 1};

Bytes request(std::uint32_t n, std::size_t size = 64) {
  Bytes b(size, 0x5a);
  for (std::size_t i = 0; i < 4 && i < size; ++i)
    b[i] = static_cast<std::uint8_t>(n >> (8 * i));
  return b;
}

EptMapCache::Answer answer(std::uint8_t fill, std::size_t size = 100, std::uint32_t status = 0) {
  return EptMapCache::Answer{Bytes(size, fill), status, 0};
}

TEST(EptMapCache, HitReturnsTheStoredAnswerForTheSameBytesOnly) {
  EptMapCache c;
  const auto req = request(1);
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, req), nullptr);
  c.insert(0, Endian::kLittle, kHost, req, answer(0xaa, 100, 7));
  const auto* hit = c.find(0, Endian::kLittle, kHost, req);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->stub, Bytes(100, 0xaa));
  EXPECT_EQ(hit->status, 7u);
  // Every part of the key counts: the bytes, their length, the byte order, the host floor.
  auto other = req;
  other.back() ^= 1;
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, other), nullptr);
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, std::span(req).first(req.size() - 1)), nullptr);
  EXPECT_EQ(c.find(0, Endian::kBig, kHost, req), nullptr);
  EXPECT_EQ(c.find(0, Endian::kLittle, Ipv4{10, 0, 0, 1}, req), nullptr);
  EXPECT_EQ(c.stats().hits, 1u);
  EXPECT_EQ(c.stats().misses, 5u);
}

TEST(EptMapCache, AnotherGenerationEmptiesIt) {
  EptMapCache c;
  const auto req = request(1);
  c.insert(3, Endian::kLittle, kHost, req, answer(1));
  ASSERT_NE(c.find(3, Endian::kLittle, kHost, req), nullptr);
  EXPECT_EQ(c.find(4, Endian::kLittle, kHost, req), nullptr);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.stats().invalidated, 1u);
  // An insert computed under an older generation than the stored answers' also clears them:
  // the generation is the one the answer was computed under, whichever it is.
  c.insert(4, Endian::kLittle, kHost, request(2), answer(2));
  c.insert(5, Endian::kLittle, kHost, request(3), answer(3));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.find(5, Endian::kLittle, kHost, request(2)), nullptr);
  EXPECT_NE(c.find(5, Endian::kLittle, kHost, request(3)), nullptr);
}

// The attack: a client sends many distinct requests (each a miss the service computes and
// stores). The cache never holds more than its bounds, and keeps serving the newest.
TEST(EptMapCache, ManyDistinctRequestsNeverGrowItPastItsBounds) {
  const EptMapCacheLimits limits{
      .max_entries = 256, .max_bytes = 256 * 1024, .max_entry_bytes = 16384};
  EptMapCache c(limits);
  for (std::uint32_t i = 0; i < 100'000; ++i) {
    const auto req = request(i, 40 + i % 200);
    ASSERT_EQ(c.find(0, Endian::kLittle, kHost, req), nullptr) << i;
    c.insert(0, Endian::kLittle, kHost, req, answer(static_cast<std::uint8_t>(i), 50 + i % 3000));
    ASSERT_LE(c.size(), limits.max_entries) << i;
    ASSERT_LE(c.bytes(), limits.max_bytes) << i;
  }
  EXPECT_GT(c.stats().evicted, 90'000u);
  // The newest answer is there, the oldest went first.
  const auto* newest = c.find(0, Endian::kLittle, kHost, request(99'999, 40 + 99'999 % 200));
  ASSERT_NE(newest, nullptr);
  EXPECT_EQ(newest->stub, Bytes(50 + 99'999 % 3000, static_cast<std::uint8_t>(99'999)));
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, request(0, 40)), nullptr);
}

TEST(EptMapCache, TheByteBoundEvictsOldestFirst) {
  EptMapCache c(EptMapCacheLimits{.max_entries = 100, .max_bytes = 1000, .max_entry_bytes = 600});
  c.insert(0, Endian::kLittle, kHost, request(1, 100), answer(1, 300));  // 400 bytes
  c.insert(0, Endian::kLittle, kHost, request(2, 100), answer(2, 300));  // 800
  EXPECT_EQ(c.bytes(), 800u);
  c.insert(0, Endian::kLittle, kHost, request(3, 100), answer(3, 300));  // 1200: 1 goes
  EXPECT_EQ(c.bytes(), 800u);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, request(1, 100)), nullptr);
  EXPECT_NE(c.find(0, Endian::kLittle, kHost, request(2, 100)), nullptr);
  EXPECT_NE(c.find(0, Endian::kLittle, kHost, request(3, 100)), nullptr);
}

TEST(EptMapCache, AnAnswerOverTheEntryBoundIsNotStored) {
  EptMapCache c(EptMapCacheLimits{.max_entries = 10, .max_bytes = 100'000, .max_entry_bytes = 500});
  c.insert(0, Endian::kLittle, kHost, request(1, 100), answer(1, 401));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.stats().too_big, 1u);
  c.insert(0, Endian::kLittle, kHost, request(1, 100), answer(1, 400));
  EXPECT_EQ(c.size(), 1u);
}

TEST(EptMapCache, DisabledStoresNothing) {
  EptMapCache c(EptMapCacheLimits{.max_entries = 0});
  c.insert(0, Endian::kLittle, kHost, request(1), answer(1));
  EXPECT_EQ(c.find(0, Endian::kLittle, kHost, request(1)), nullptr);
  EXPECT_EQ(c.size(), 0u);
}

TEST(EptMapCache, StoringTheSameRequestAgainReplacesItsAnswer) {
  EptMapCache c(EptMapCacheLimits{.max_entries = 4, .max_bytes = 1000, .max_entry_bytes = 1000});
  c.insert(0, Endian::kLittle, kHost, request(1, 100), answer(1, 100));
  c.insert(0, Endian::kLittle, kHost, request(1, 100), answer(2, 300));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.bytes(), 400u);
  const auto* hit = c.find(0, Endian::kLittle, kHost, request(1, 100));
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->stub, Bytes(300, 2));
}

}  // namespace
}  // namespace rpcgate::epm
