#include "runtime/heap.h"

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>
#include <malloc.h>

namespace rpcgate::runtime {
namespace {

#if defined(__SANITIZE_ADDRESS__)
#define RPCGATE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RPCGATE_TEST_ASAN 1
#endif
#endif

#ifdef RPCGATE_TEST_ASAN
// Under ASan, malloc is ASan's and its mallopt takes nothing: tune_heap() must say so (false)
// rather than claim settings that are not in effect.
TEST(Heap, UnderAsanTheSettingsAreRefusedAndSaidSo) {
  EXPECT_FALSE(tune_heap());
  EXPECT_FALSE(tune_heap());
}
#else
// What tune_heap() promises, observed through glibc's own accounting (mallinfo2): a block of a
// few MiB comes from the heap (glibc's default would mmap it: hblkhd grows), and freeing it
// leaves the heap as big as it was (the default trims the top back at once: arena shrinks).
TEST(Heap, BulkBlocksComeFromTheHeapAndFreeDoesNotTrimIt) {
  ASSERT_TRUE(tune_heap()) << "glibc refused the settings";
  EXPECT_TRUE(tune_heap());  // idempotent

  constexpr std::size_t kBlock = 2u << 20;  // above glibc's default mmap threshold (128 KiB)
  static_assert(kBlock < kHeapMmapThreshold && kBlock < kHeapTrimThreshold);
  const auto before = ::mallinfo2();
  void* p = std::malloc(kBlock);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBlock);  // touched, as a stub is
  const auto held = ::mallinfo2();
  EXPECT_EQ(held.hblkhd, before.hblkhd) << "the block was mmapped, not taken from the heap";
  EXPECT_GE(held.arena, before.arena);
  std::free(p);
  const auto after = ::mallinfo2();
  EXPECT_GE(after.arena, held.arena)
      << "free() trimmed the heap's top (" << held.arena << " -> " << after.arena << " bytes)";
  // What the process still can do: give it back on purpose (runtime::Server's malloc_trim).
  ::malloc_trim(0);
  EXPECT_LT(::mallinfo2().arena, held.arena) << "malloc_trim(0) gave nothing back";
}

#endif

}  // namespace
}  // namespace rpcgate::runtime
