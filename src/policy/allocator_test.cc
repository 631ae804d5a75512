#include "policy/allocator.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace rpcgate::policy {
namespace {

// Policies are built by hand here: resolve() belongs to the policy parser and is tested there.
Policy unrestricted(PortRange range = kDefaultDynamicRange) {
  Policy p;
  p.restricted = false;
  p.dynamic_range = range;
  p.internet = PortSet::of(range);
  p.intranet = PortSet::of(range);
  return p;
}

// What resolve() makes of Ports = `listed`, PortsInternetAvailable = `internet_available`,
// UseInternetPorts = `use_internet`.
Policy restricted(const PortSet& listed, bool internet_available, bool use_internet,
                  PortRange dynamic) {
  Policy p;
  p.restricted = true;
  p.dynamic_range = dynamic;
  PortSet rest = listed.complement_within(dynamic);
  p.internet = internet_available ? listed : rest;
  p.intranet = internet_available ? rest : listed;
  p.default_class = use_internet ? PortClass::kInternet : PortClass::kIntranet;
  return p;
}

Policy invalid() {
  Policy p;
  p.restricted = true;
  p.valid = false;
  p.error = PolicyError{Errc::kInvalidParameter, "Ports", 1, "bad"};
  return p;
}

const PortSet& set_of(const Policy& p, PortClass c) {
  if (c == PortClass::kDefault) c = p.default_class;
  return c == PortClass::kIntranet ? p.intranet : p.internet;
}

// Allocates until failure; returns the ports in order and expects the failure to be 1721.
std::vector<std::uint16_t> drain(PortAllocator& a, PortClass c, const BindProbe& probe = {}) {
  std::vector<std::uint16_t> out;
  for (;;) {
    auto r = a.allocate(c, probe);
    if (!r) {
      EXPECT_EQ(r.error(), Errc::kOutOfResources);
      return out;
    }
    out.push_back(*r);
  }
}

TEST(PolicyErrc, CategoryAndMessages) {
  std::error_code ec = Errc::kOutOfResources;
  EXPECT_EQ(ec.value(), 1721);
  EXPECT_STREQ(ec.category().name(), "rpcgate.policy");
  EXPECT_NE(ec.message().find("RPC_S_OUT_OF_RESOURCES"), std::string::npos);
  ec = Errc::kInvalidParameter;
  EXPECT_EQ(ec.value(), 87);
  EXPECT_NE(ec.message().find("ERROR_INVALID_PARAMETER"), std::string::npos);
  for (Errc e : {Errc::kNotHeld, Errc::kNotInPolicy, Errc::kAlreadyHeld}) {
    EXPECT_FALSE(make_error_code(e).message().empty());
  }
}

TEST(PortAllocator, PortsStayInTheirClassUntilExhaustion) {
  // Y: Ports 5000-5009 are the Internet set, the rest of 5000-5029 is intranet.
  const Policy p = restricted(PortSet::of({5000, 5009}), true, true, {5000, 5029});
  PortAllocator a(p, 1);
  EXPECT_EQ(a.capacity(PortClass::kInternet), 10u);
  EXPECT_EQ(a.capacity(PortClass::kIntranet), 20u);

  auto internet = drain(a, PortClass::kInternet);
  ASSERT_EQ(internet.size(), 10u);
  for (auto port : internet)
    EXPECT_TRUE(p.internet.contains(port)) << port;
  EXPECT_EQ(std::set<std::uint16_t>(internet.begin(), internet.end()).size(), 10u);
  EXPECT_EQ(a.free_count(PortClass::kIntranet), 20u);  // untouched by Internet allocations

  auto intranet = drain(a, PortClass::kIntranet);
  ASSERT_EQ(intranet.size(), 20u);
  for (auto port : intranet)
    EXPECT_TRUE(p.intranet.contains(port)) << port;
  EXPECT_EQ(std::set<std::uint16_t>(intranet.begin(), intranet.end()).size(), 20u);
  EXPECT_EQ(a.held_count(), 30u);
}

TEST(PortAllocator, DefaultClassFollowsUseInternetPorts) {
  for (bool use_internet : {true, false}) {
    for (bool internet_available : {true, false}) {
      SCOPED_TRACE(std::string("UseInternetPorts=") + (use_internet ? "Y" : "N") +
                   " PortsInternetAvailable=" + (internet_available ? "Y" : "N"));
      const Policy p =
          restricted(PortSet::of({6000, 6004}), internet_available, use_internet, {6000, 6019});
      const PortClass expected = use_internet ? PortClass::kInternet : PortClass::kIntranet;
      const PortClass other = use_internet ? PortClass::kIntranet : PortClass::kInternet;
      PortAllocator a(p, 7);
      EXPECT_EQ(a.capacity(PortClass::kDefault), a.capacity(expected));
      auto ports = drain(a, PortClass::kDefault);
      EXPECT_EQ(ports.size(), set_of(p, expected).count());
      for (auto port : ports) {
        EXPECT_TRUE(set_of(p, expected).contains(port)) << port;
        EXPECT_FALSE(set_of(p, other).contains(port)) << port;
      }
      EXPECT_EQ(a.free_count(expected), 0u);
      EXPECT_EQ(a.free_count(other), a.capacity(other));
    }
  }
}

TEST(PortAllocator, DefaultRangeHandsOutEveryPortOnceThenFails) {
  PortAllocator a(unrestricted(), 42);
  auto ports = drain(a, PortClass::kInternet);
  ASSERT_EQ(ports.size(), 16384u);
  std::set<std::uint16_t> distinct(ports.begin(), ports.end());
  EXPECT_EQ(distinct.size(), 16384u);
  EXPECT_EQ(*distinct.begin(), 49152);
  EXPECT_EQ(*distinct.rbegin(), 65535);
  EXPECT_EQ(a.held_count(), 16384u);
  EXPECT_EQ(a.allocate(PortClass::kIntranet).error(), Errc::kOutOfResources);
  EXPECT_EQ(a.allocate(PortClass::kDefault).error(), Errc::kOutOfResources);
}

TEST(PortAllocator, WholePortSpaceIncludingZeroAnd65535) {
  PortAllocator a(unrestricted({0, 65535}), 3);
  EXPECT_EQ(a.capacity(PortClass::kInternet), 65536u);
  auto ports = drain(a, PortClass::kIntranet);
  ASSERT_EQ(ports.size(), 65536u);
  std::sort(ports.begin(), ports.end());
  for (std::size_t i = 0; i < ports.size(); ++i)
    ASSERT_EQ(ports[i], i);
  ASSERT_TRUE(a.release(0));
  ASSERT_TRUE(a.release(65535));
  auto again = drain(a, PortClass::kInternet);
  std::sort(again.begin(), again.end());
  EXPECT_EQ(again, (std::vector<std::uint16_t>{0, 65535}));
}

TEST(PortAllocator, ExhaustionExactlyWhenAllHeldAndReleaseMakesReusable) {
  PortAllocator a(unrestricted({7000, 7004}), 9);
  for (std::uint16_t port : {7000, 7001, 7003, 7004})
    ASSERT_TRUE(a.hold(port));
  EXPECT_EQ(a.free_count(PortClass::kInternet), 1u);
  auto last = a.allocate(PortClass::kInternet);
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 7002);
  EXPECT_EQ(a.allocate(PortClass::kInternet).error(), Errc::kOutOfResources);
  EXPECT_EQ(a.allocate(PortClass::kInternet).error(), Errc::kOutOfResources);
  ASSERT_TRUE(a.release(7003));
  EXPECT_FALSE(a.is_held(7003));
  auto reused = a.allocate(PortClass::kInternet);
  ASSERT_TRUE(reused);
  EXPECT_EQ(*reused, 7003);
  EXPECT_TRUE(a.is_held(7003));
}

TEST(PortAllocator, InvalidPolicyFailsEveryClassWith87) {
  Policy p = invalid();
  // Even if a hand-built invalid policy carries sets, they must not be used.
  p.internet = PortSet::of({5000, 5010});
  p.intranet = PortSet::of({6000, 6010});
  PortAllocator a(p, 1);
  int probes = 0;
  const BindProbe probe = [&](std::uint16_t) { return ++probes > 0; };
  for (int round = 0; round < 3; ++round) {
    for (PortClass c : {PortClass::kDefault, PortClass::kInternet, PortClass::kIntranet}) {
      auto r = a.allocate(c, probe);
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error(), Errc::kInvalidParameter);
      EXPECT_EQ(r.error().value(), 87);
      EXPECT_EQ(a.capacity(c), 0u);
      EXPECT_EQ(a.free_count(c), 0u);
    }
  }
  EXPECT_EQ(probes, 0);
  EXPECT_FALSE(a.policy_valid());
  EXPECT_EQ(a.hold(5000).error(), Errc::kNotInPolicy);
  EXPECT_EQ(a.held_count(), 0u);
  EXPECT_EQ(a.stats().invalid_failures, 9u);
  EXPECT_EQ(a.stats().exhaustion_failures, 0u);
}

TEST(PortAllocator, UnknownClassValueIsInvalidParameter) {
  PortAllocator a(unrestricted({7000, 7009}), 1);
  const auto bogus = static_cast<PortClass>(7);
  EXPECT_EQ(a.allocate(bogus).error(), Errc::kInvalidParameter);
  EXPECT_EQ(a.capacity(bogus), 0u);
  EXPECT_EQ(a.free_count(bogus), 0u);
  EXPECT_EQ(a.held_count(), 0u);
}

TEST(PortAllocator, UnrestrictedClassesShareHeldState) {
  PortAllocator a(unrestricted({8000, 8009}), 5);
  std::set<std::uint16_t> seen;
  for (int i = 0; i < 5; ++i) {
    auto r = a.allocate(PortClass::kInternet);
    ASSERT_TRUE(r);
    EXPECT_TRUE(seen.insert(*r).second);
    EXPECT_EQ(a.free_count(PortClass::kIntranet), 10u - seen.size());
  }
  for (int i = 0; i < 5; ++i) {
    auto r = a.allocate(PortClass::kIntranet);
    ASSERT_TRUE(r);
    EXPECT_TRUE(seen.insert(*r).second) << "port " << *r << " handed out twice";
  }
  EXPECT_EQ(a.allocate(PortClass::kInternet).error(), Errc::kOutOfResources);
  EXPECT_EQ(a.allocate(PortClass::kIntranet).error(), Errc::kOutOfResources);
  ASSERT_TRUE(a.release(8004));
  EXPECT_EQ(a.free_count(PortClass::kInternet), 1u);
  EXPECT_EQ(a.free_count(PortClass::kIntranet), 1u);
  EXPECT_EQ(*a.allocate(PortClass::kIntranet), 8004);
  EXPECT_EQ(a.free_count(PortClass::kInternet), 0u);
}

TEST(PortAllocator, PartiallyOverlappingClasses) {
  Policy p;
  p.internet = PortSet::of({100, 109});
  p.intranet = PortSet::of({105, 114});
  PortAllocator a(p, 11);
  ASSERT_TRUE(a.hold(107));
  EXPECT_EQ(a.free_count(PortClass::kInternet), 9u);
  EXPECT_EQ(a.free_count(PortClass::kIntranet), 9u);
  auto internet = drain(a, PortClass::kInternet);
  EXPECT_EQ(internet.size(), 9u);
  auto intranet = drain(a, PortClass::kIntranet);
  EXPECT_EQ(intranet.size(), 5u);  // 110-114: 105-109 went to Internet or hold()
  for (auto port : intranet)
    EXPECT_GE(port, 110);
  ASSERT_TRUE(a.release(106));
  EXPECT_EQ(a.free_count(PortClass::kInternet), 1u);
  EXPECT_EQ(a.free_count(PortClass::kIntranet), 1u);
  auto s = a.stats();
  EXPECT_EQ(s.held, 14u);
  EXPECT_EQ(s.internet.held, 9u);
  EXPECT_EQ(s.intranet.held, 9u);
}

TEST(PortAllocator, ProbeRejectedPortsAreSkippedButStayFree) {
  PortAllocator a(unrestricted({9000, 9099}), 13);
  const BindProbe odd_only = [](std::uint16_t port) { return port % 2 == 1; };
  auto ports = drain(a, PortClass::kInternet, odd_only);
  ASSERT_EQ(ports.size(), 50u);
  for (auto port : ports)
    EXPECT_EQ(port % 2, 1) << port;
  EXPECT_EQ(a.free_count(PortClass::kInternet), 50u);
  for (std::uint16_t port = 9000; port < 9100; port += 2)
    EXPECT_FALSE(a.is_held(port));
  // Without the probe the even ports are handed out.
  auto rest = drain(a, PortClass::kInternet);
  ASSERT_EQ(rest.size(), 50u);
  for (auto port : rest)
    EXPECT_EQ(port % 2, 0) << port;
}

TEST(PortAllocator, AllProbesFailingIs1721AndHoldsNothing) {
  PortAllocator a(unrestricted({9000, 9031}), 17);
  ASSERT_TRUE(a.hold(9010));
  std::map<std::uint16_t, int> probed;
  const BindProbe reject = [&](std::uint16_t port) {
    ++probed[port];
    return false;
  };
  auto r = a.allocate(PortClass::kIntranet, reject);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::kOutOfResources);
  EXPECT_EQ(probed.size(), 31u);  // every free port, not the held one
  EXPECT_FALSE(probed.contains(9010));
  for (auto [port, n] : probed)
    EXPECT_EQ(n, 1) << port;
  EXPECT_EQ(a.held_count(), 1u);
  EXPECT_EQ(a.free_count(PortClass::kIntranet), 31u);
  const auto s = a.stats();
  EXPECT_EQ(s.probe_failures, 31u);
  EXPECT_EQ(s.exhaustion_failures, 1u);
  EXPECT_EQ(s.allocations, 0u);
}

TEST(PortAllocator, EachPortProbedAtMostOncePerCall) {
  PortAllocator a(unrestricted({9000, 9063}), 19);
  for (int round = 0; round < 20; ++round) {
    // Accept only the (round+1)-th distinct port offered; each call sees a fresh probe.
    std::vector<std::uint16_t> offered;
    const BindProbe probe = [&](std::uint16_t port) {
      offered.push_back(port);
      return static_cast<int>(offered.size()) > round;
    };
    const std::size_t free_before = a.free_count(PortClass::kInternet);
    auto r = a.allocate(PortClass::kInternet, probe);
    ASSERT_TRUE(r);
    ASSERT_EQ(offered.size(), static_cast<std::size_t>(round) + 1);
    EXPECT_EQ(offered.back(), *r);
    EXPECT_EQ(std::set<std::uint16_t>(offered.begin(), offered.end()).size(), offered.size());
    for (auto port : offered)
      EXPECT_TRUE(port == *r || !a.is_held(port));
    EXPECT_EQ(a.free_count(PortClass::kInternet), free_before - 1);
  }
}

TEST(PortAllocator, HoldAndReleaseErrors) {
  const Policy p = restricted(PortSet::of({5000, 5009}), true, true, {5000, 5019});
  PortAllocator a(p, 23);
  EXPECT_EQ(a.hold(4999).error(), Errc::kNotInPolicy);
  EXPECT_EQ(a.hold(5020).error(), Errc::kNotInPolicy);
  EXPECT_EQ(a.release(5000).error(), Errc::kNotHeld);
  EXPECT_EQ(a.release(4999).error(), Errc::kNotHeld);
  ASSERT_TRUE(a.hold(5005));
  EXPECT_EQ(a.hold(5005).error(), Errc::kAlreadyHeld);
  ASSERT_TRUE(a.hold(5015));  // intranet ports can be adopted too
  // A held port is never handed out.
  auto internet = drain(a, PortClass::kInternet);
  EXPECT_EQ(internet.size(), 9u);
  EXPECT_EQ(std::count(internet.begin(), internet.end(), 5005), 0);
  auto allocated = a.allocate(PortClass::kIntranet);
  ASSERT_TRUE(allocated);
  EXPECT_EQ(a.hold(*allocated).error(), Errc::kAlreadyHeld);
  ASSERT_TRUE(a.release(5005));
  EXPECT_EQ(a.release(5005).error(), Errc::kNotHeld);
  EXPECT_EQ(*a.allocate(PortClass::kInternet), 5005);
  const auto s = a.stats();
  EXPECT_EQ(s.holds, 2u);
  EXPECT_EQ(s.releases, 1u);
  EXPECT_EQ(s.allocations, 11u);
  EXPECT_EQ(s.exhaustion_failures, 1u);
}

// Runs a fixed mixed workload and returns the ports allocated.
std::vector<std::uint16_t> workload(std::uint64_t seed) {
  PortAllocator a(unrestricted(), seed);
  std::vector<std::uint16_t> out;
  std::vector<std::uint16_t> held;
  const BindProbe probe = [](std::uint16_t port) { return port % 7 != 0; };
  for (int i = 0; i < 2000; ++i) {
    auto r = a.allocate(i % 3 == 0 ? PortClass::kIntranet : PortClass::kInternet,
                        i % 5 == 0 ? probe : BindProbe{});
    if (!r) {
      ADD_FAILURE() << r.error().message();
      break;
    }
    out.push_back(*r);
    held.push_back(*r);
    if (i % 4 == 3) {
      EXPECT_TRUE(a.release(held[held.size() / 2]));
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(held.size() / 2));
    }
  }
  return out;
}

TEST(PortAllocator, SameSeedSameSequence) {
  EXPECT_EQ(workload(1234), workload(1234));
  EXPECT_EQ(workload(0), workload(0));
}

TEST(PortAllocator, DifferentSeedsDifferentSequences) {
  // Two independent uniform sequences over 16384 ports agree on the first 2000 draws with
  // probability far below 2^-1000.
  EXPECT_NE(workload(1), workload(2));
  EXPECT_NE(workload(1234), workload(1235));
}

TEST(PortAllocator, UnseededAllocatorWorks) {
  PortAllocator a(unrestricted({40000, 40009}));
  auto ports = drain(a, PortClass::kDefault);
  EXPECT_EQ(std::set<std::uint16_t>(ports.begin(), ports.end()).size(), 10u);
}

// Pearson's chi-square over equally likely cells. Quantiles at 0.999: 27.88 for 9 degrees of
// freedom, 148.2 for 99. The seeds are fixed, so these tests are deterministic; what they catch is
// a biased pick. Counting ports alone is not enough: the free vector is reordered by every
// swap-remove and push, so a pick biased by *position* still spreads evenly over ports in the long
// run. The tests therefore condition on history (the previous pick, the order ports became free),
// which a positional bias does correlate with.
double chi_square(const std::vector<int>& counts, double expected) {
  double chi2 = 0;
  for (int n : counts)
    chi2 += (n - expected) * (n - expected) / expected;
  return chi2;
}

TEST(PortAllocator, RoughlyUniformOverAllocateReleaseCycles) {
  constexpr int kCycles = 100000;
  PortAllocator a(unrestricted({10000, 10009}), 2024);
  std::vector<int> by_port(10, 0);
  std::vector<int> by_transition(100, 0);  // (previous pick, this pick)
  int previous = 0;
  for (int i = 0; i < kCycles; ++i) {
    auto r = a.allocate(PortClass::kInternet);
    ASSERT_TRUE(r);
    const int port = *r - 10000;
    ++by_port[port];
    if (i > 0) ++by_transition[previous * 10 + port];
    previous = port;
    ASSERT_TRUE(a.release(*r));
  }
  EXPECT_LT(chi_square(by_port, kCycles / 10.0), 27.88);
  EXPECT_LT(chi_square(by_transition, (kCycles - 1) / 100.0), 148.2);
}

TEST(PortAllocator, RoughlyUniformWithHeldPortsAndChurn) {
  // 20-port pool, 10 ports held at any time, the oldest released each cycle: among the 10 free
  // ports, the one picked must not depend on how recently it became free.
  constexpr int kCycles = 100000;
  PortAllocator a(unrestricted({10000, 10019}), 99);
  std::vector<std::uint16_t> held;
  std::vector<std::uint16_t> free_by_age;  // oldest-free first
  for (std::uint16_t p = 10000; p < 10010; ++p) {
    ASSERT_TRUE(a.hold(p));
    held.push_back(p);
  }
  for (std::uint16_t p = 10010; p < 10020; ++p)
    free_by_age.push_back(p);
  std::vector<int> by_age(10, 0);
  for (int i = 0; i < kCycles; ++i) {
    auto r = a.allocate(PortClass::kInternet);
    ASSERT_TRUE(r);
    auto it = std::find(free_by_age.begin(), free_by_age.end(), *r);
    ASSERT_NE(it, free_by_age.end());
    ++by_age[it - free_by_age.begin()];
    free_by_age.erase(it);
    ASSERT_TRUE(a.release(held.front()));
    free_by_age.push_back(held.front());
    held.erase(held.begin());
    held.push_back(*r);
  }
  EXPECT_LT(chi_square(by_age, kCycles / 10.0), 27.88);
}

// Random operation sequences checked against a reference model: the set of held ports.
TEST(PortAllocator, MatchesReferenceModel) {
  const std::vector<Policy> policies = {
      unrestricted({20000, 20063}),
      restricted(PortSet::of({20000, 20015}), true, true, {20000, 20047}),
      restricted(PortSet::of({20010, 20020}), false, false, {20000, 20039}),
      restricted(PortSet::of({100, 105}), true, false, {20000, 20031}),  // listed outside range
      invalid(),
  };
  std::mt19937_64 ops(77);
  for (std::size_t pi = 0; pi < policies.size(); ++pi) {
    SCOPED_TRACE("policy " + std::to_string(pi));
    const Policy& p = policies[pi];
    PortAllocator a(p, pi);
    std::set<std::uint16_t> model;
    const auto in_policy = [&](std::uint16_t port) {
      return p.valid && (p.internet.contains(port) || p.intranet.contains(port));
    };
    const auto model_free = [&](PortClass c) {
      if (!p.valid) return std::size_t{0};
      const PortSet& s = set_of(p, c);
      std::size_t held = 0;
      for (auto port : model)
        held += s.contains(port) ? 1 : 0;
      return s.count() - held;
    };
    std::vector<std::uint16_t> candidates = {99, 100, 105, 20000, 20031, 20063, 20064, 65535};
    for (int step = 0; step < 20000; ++step) {
      const auto cls = static_cast<PortClass>(ops() % 3);
      switch (ops() % 4) {
        case 0: {  // allocate, sometimes with a probe that rejects a pseudo-random subset
          const std::uint64_t salt = ops();
          const bool use_probe = salt % 2 == 0;
          std::set<std::uint16_t> rejected;
          const BindProbe probe = [&](std::uint16_t port) {
            EXPECT_TRUE(rejected.insert(port).second) << "probed twice: " << port;
            if ((port ^ salt) % 3 == 0) return false;
            rejected.erase(port);
            return true;
          };
          const std::size_t free_before = model_free(cls);
          auto r = a.allocate(cls, use_probe ? probe : BindProbe{});
          if (!p.valid) {
            ASSERT_EQ(r.error(), Errc::kInvalidParameter);
          } else if (r) {
            ASSERT_TRUE(set_of(p, cls).contains(*r));
            ASSERT_TRUE(model.insert(*r).second) << "handed out twice: " << *r;
            ASSERT_FALSE(rejected.contains(*r));
          } else {
            ASSERT_EQ(r.error(), Errc::kOutOfResources);
            // Only legitimate if every free port of the class was tried and refused.
            ASSERT_EQ(rejected.size(), free_before);
          }
          for (auto port : rejected)
            ASSERT_FALSE(model.contains(port));
          break;
        }
        case 1: {  // release a held port, or one that is not held
          if (!model.empty() && ops() % 4 != 0) {
            auto it = model.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(ops() % model.size()));
            ASSERT_TRUE(a.release(*it));
            model.erase(it);
          } else {
            const std::uint16_t port = candidates[ops() % candidates.size()];
            auto r = a.release(port);
            ASSERT_EQ(static_cast<bool>(r), model.erase(port) == 1);
            if (!r) {
              ASSERT_EQ(r.error(), Errc::kNotHeld);
            }
          }
          break;
        }
        case 2: {  // hold a port near or in the pools
          const std::uint16_t port = ops() % 2 ? static_cast<std::uint16_t>(20000 + ops() % 70)
                                               : candidates[ops() % candidates.size()];
          auto r = a.hold(port);
          if (!in_policy(port)) {
            ASSERT_EQ(r.error(), Errc::kNotInPolicy);
          } else if (model.contains(port)) {
            ASSERT_EQ(r.error(), Errc::kAlreadyHeld);
          } else {
            ASSERT_TRUE(r);
            model.insert(port);
          }
          break;
        }
        default:
          break;
      }
      ASSERT_EQ(a.held_count(), model.size());
      for (PortClass c : {PortClass::kDefault, PortClass::kInternet, PortClass::kIntranet}) {
        ASSERT_EQ(a.free_count(c), model_free(c));
      }
    }
    for (std::uint32_t port = 0; port < 65536; ++port) {
      ASSERT_EQ(a.is_held(static_cast<std::uint16_t>(port)),
                model.contains(static_cast<std::uint16_t>(port)));
    }
  }
}

}  // namespace
}  // namespace rpcgate::policy
