// Cost of one allocate + release pair as a function of pool size and fullness. The allocator's
// contract is O(1) per pair whatever the fullness; a scan-based allocator would show its cost
// growing toward the 99.9 % rows (or with the pool size).
//
//   build/bench/allocator_benchmark
#include <cstdint>

#include <benchmark/benchmark.h>

#include "policy/allocator.h"

namespace {

using rpcgate::policy::Policy;
using rpcgate::policy::PortAllocator;
using rpcgate::policy::PortClass;
using rpcgate::policy::PortRange;
using rpcgate::policy::PortSet;

// Args: {first port of the pool (the pool runs to 65535), fullness in per mille}.
void BM_AllocateRelease(benchmark::State& state) {
  const auto lo = static_cast<std::uint16_t>(state.range(0));
  const auto permille = static_cast<std::size_t>(state.range(1));
  Policy policy;
  policy.internet = PortSet::of(PortRange{lo, 65535});
  policy.intranet = policy.internet;
  PortAllocator allocator(policy, 1);
  const std::size_t capacity = allocator.capacity(PortClass::kInternet);
  const std::size_t prefill = capacity * permille / 1000;
  for (std::size_t i = 0; i < prefill; ++i) {
    if (!allocator.allocate(PortClass::kInternet)) {
      state.SkipWithError("prefill failed");
      return;
    }
  }
  for (auto _ : state) {
    auto port = allocator.allocate(PortClass::kInternet);
    benchmark::DoNotOptimize(port);
    if (!port || !allocator.release(*port)) {
      state.SkipWithError("allocate/release failed");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["pool"] = static_cast<double>(capacity);
  state.counters["free"] = static_cast<double>(allocator.free_count(PortClass::kInternet));
}
BENCHMARK(BM_AllocateRelease)
    ->ArgNames({"lo", "permille"})
    ->ArgsProduct({{49152, 0}, {10, 500, 999}});

// The same pair where every allocation first meets 3 ports the probe rejects (bind() failures):
// the cost grows with the rejections, not with the pool.
void BM_AllocateReleaseWithRejections(benchmark::State& state) {
  const auto permille = static_cast<std::size_t>(state.range(0));
  Policy policy;
  policy.internet = PortSet::of(PortRange{49152, 65535});
  policy.intranet = policy.internet;
  PortAllocator allocator(policy, 1);
  const std::size_t prefill = allocator.capacity(PortClass::kInternet) * permille / 1000;
  for (std::size_t i = 0; i < prefill; ++i)
    (void)allocator.allocate(PortClass::kInternet);
  int calls = 0;
  const rpcgate::policy::BindProbe probe = [&](std::uint16_t) { return ++calls % 4 == 0; };
  for (auto _ : state) {
    calls = 0;
    auto port = allocator.allocate(PortClass::kInternet, probe);
    if (!port || !allocator.release(*port)) {
      state.SkipWithError("allocate/release failed");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocateReleaseWithRejections)->ArgName("permille")->Arg(10)->Arg(500)->Arg(999);

}  // namespace
