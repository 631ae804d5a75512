// Operation-sequence fuzzer for PortAllocator (after nghttp2's fuzz/ksl.cc): the input picks a
// policy shape, then each byte pair is one operation, and every result is checked against a
// reference model (the set of held ports). Any divergence traps.
//
// Header (missing bytes read as 0):
//   [0] shape: bits 0-1 mode (0 unrestricted, 1 Ports=Internet "Y", 2 Ports=intranet "N",
//       3 invalid); bit 2 UseInternetPorts=N; bit 3 invalid policy carries stray sets; bits 4-5
//       number of Ports ranges - 1; bit 6 classes overlap arbitrarily (hand-built policy).
//   [1,2] window base (big endian, clamped so the 96-port window fits below 65536)
//   [3,4] dynamic range: base + [3] % 32, length [4] % 64 + 1
//   [5] seed
//   then per range two bytes: lo = base + b % 96, hi = lo + b' % 16 (clamped to the window)
// Ops, two bytes (op, arg):
//   op % 8 in 0-2: allocate class arg % 3 (arg % 16 == 15: a value outside PortClass) with probe
//                  mode op >> 3: 0 none, 1 reject all, n: reject ports with hash(port, arg) % n ==
//                  0
//   3: release the (arg % held)-th held port      4: release window port arg % 96
//   5: hold window port arg % 96, or 0 / 65535     6: query everything      7: allocate default
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <vector>

#include "op_reader.h"
#include "policy/allocator.h"

namespace {

using rpcgate::policy::BindProbe;
using rpcgate::policy::Errc;
using rpcgate::policy::Policy;
using rpcgate::policy::PortAllocator;
using rpcgate::policy::PortClass;
using rpcgate::policy::PortRange;
using rpcgate::policy::PortSet;

constexpr std::uint32_t kWindow = 96;

using rpcgate::fuzzing::Reader;

struct Model {
  bool valid = true;
  PortClass default_class = PortClass::kInternet;
  PortSet internet;
  PortSet intranet;
  std::set<std::uint16_t> held;
  PortAllocator::Stats counters;

  const PortSet* set_for(PortClass c) const {
    if (!valid) return nullptr;
    if (c == PortClass::kDefault) c = default_class;
    if (c == PortClass::kInternet) return &internet;
    if (c == PortClass::kIntranet) return &intranet;
    return nullptr;
  }
  bool in_policy(std::uint16_t port) const {
    return valid && (internet.contains(port) || intranet.contains(port));
  }
  std::size_t capacity(PortClass c) const {
    const PortSet* s = set_for(c);
    return s != nullptr ? s->count() : 0;
  }
  std::size_t free_count(PortClass c) const {
    const PortSet* s = set_for(c);
    if (s == nullptr) return 0;
    std::size_t n = s->count();
    for (auto port : held)
      n -= s->contains(port) ? 1 : 0;
    return n;
  }
};

void check_all(const PortAllocator& a, const Model& m, std::uint16_t base) {
  CHECK(a.held_count() == m.held.size());
  CHECK(a.policy_valid() == m.valid);
  for (PortClass c : {PortClass::kDefault, PortClass::kInternet, PortClass::kIntranet,
                      static_cast<PortClass>(3)}) {
    CHECK(a.capacity(c) == m.capacity(c));
    CHECK(a.free_count(c) == m.free_count(c));
  }
  for (std::uint32_t p = base; p < base + kWindow; ++p) {
    CHECK(a.is_held(static_cast<std::uint16_t>(p)) ==
          m.held.contains(static_cast<std::uint16_t>(p)));
  }
  CHECK(a.is_held(0) == m.held.contains(0));
  CHECK(a.is_held(65535) == m.held.contains(65535));
  const auto s = a.stats();
  CHECK(s.held == m.held.size());
  CHECK(s.internet.capacity == m.capacity(PortClass::kInternet));
  CHECK(s.internet.free == m.free_count(PortClass::kInternet));
  CHECK(s.internet.held == s.internet.capacity - s.internet.free);
  CHECK(s.intranet.capacity == m.capacity(PortClass::kIntranet));
  CHECK(s.intranet.free == m.free_count(PortClass::kIntranet));
  CHECK(s.intranet.held == s.intranet.capacity - s.intranet.free);
  CHECK(s.allocations == m.counters.allocations);
  CHECK(s.holds == m.counters.holds);
  CHECK(s.releases == m.counters.releases);
  CHECK(s.exhaustion_failures == m.counters.exhaustion_failures);
  CHECK(s.invalid_failures == m.counters.invalid_failures);
  CHECK(s.probe_failures == m.counters.probe_failures);
}

void do_allocate(PortAllocator& a, Model& m, PortClass cls, std::uint8_t probe_mode,
                 std::uint8_t salt) {
  std::vector<std::uint16_t> probed;
  bool last_answer = false;
  const BindProbe probe = [&](std::uint16_t port) {
    const PortSet* s = m.set_for(cls);
    CHECK(s != nullptr && s->contains(port));  // only ports of the requested class
    CHECK(!m.held.contains(port));             // only free ports
    for (auto p : probed)
      CHECK(p != port);  // each port at most once per call
    probed.push_back(port);
    if (probe_mode == 1) {
      last_answer = false;
    } else {
      const std::uint32_t h = (static_cast<std::uint32_t>(port) * 2654435761u) >> 7;
      last_answer = (h ^ salt) % probe_mode != 0;
    }
    return last_answer;
  };
  const std::size_t free_before = m.free_count(cls);
  auto r = a.allocate(cls, probe_mode == 0 ? BindProbe{} : probe);
  const std::size_t rejected = probed.empty() ? 0 : probed.size() - (r ? 1 : 0);
  m.counters.probe_failures += rejected;
  if (m.set_for(cls) == nullptr) {
    CHECK(!r && r.error() == Errc::kInvalidParameter);
    CHECK(probed.empty());
    ++m.counters.invalid_failures;
    return;
  }
  if (r) {
    CHECK(m.set_for(cls)->contains(*r));
    CHECK(m.held.insert(*r).second);  // never handed out twice
    if (probe_mode != 0) CHECK(!probed.empty() && probed.back() == *r && last_answer);
    ++m.counters.allocations;
  } else {
    CHECK(r.error() == Errc::kOutOfResources);
    // 1721 only when every free port of the class was tried and refused.
    CHECK(probed.size() == (probe_mode == 0 ? 0 : free_before));
    CHECK(probe_mode != 0 || free_before == 0);
    ++m.counters.exhaustion_failures;
  }
}

void do_release(PortAllocator& a, Model& m, std::uint16_t port) {
  auto r = a.release(port);
  if (m.held.erase(port) == 1) {
    CHECK(r.has_value());
    ++m.counters.releases;
  } else {
    CHECK(!r && r.error() == Errc::kNotHeld);
  }
}

void do_hold(PortAllocator& a, Model& m, std::uint16_t port) {
  auto r = a.hold(port);
  if (!m.in_policy(port)) {
    CHECK(!r && r.error() == Errc::kNotInPolicy);
  } else if (m.held.contains(port)) {
    CHECK(!r && r.error() == Errc::kAlreadyHeld);
  } else {
    CHECK(r.has_value());
    m.held.insert(port);
    ++m.counters.holds;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  const std::uint8_t shape = in.byte();
  const unsigned mode = shape & 3;
  std::uint32_t base = static_cast<std::uint32_t>(in.byte()) << 8;
  base |= in.byte();
  if (base > 65536 - kWindow) base = 65536 - kWindow;
  const std::uint32_t dyn_lo = base + in.byte() % 32;
  const std::uint32_t dyn_hi = dyn_lo + in.byte() % 64;
  const PortRange dynamic{static_cast<std::uint16_t>(dyn_lo), static_cast<std::uint16_t>(dyn_hi)};
  const std::uint64_t seed = in.byte();
  PortSet listed;
  PortSet other;
  const unsigned nranges = ((shape >> 4) & 3) + 1;
  for (unsigned i = 0; i < 2 * nranges; ++i) {
    const std::uint32_t lo = base + in.byte() % kWindow;
    std::uint32_t hi = lo + in.byte() % 16;
    if (hi >= base + kWindow) hi = base + kWindow - 1;
    (i % 2 == 0 ? listed : other)
        .add(PortRange{static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)});
  }

  // The policy shapes resolve() produces, plus hand-built ones it never does (overlapping
  // restricted classes, an invalid policy with sets) that the allocator must still survive.
  Policy policy;
  policy.dynamic_range = dynamic;
  policy.default_class = (shape & 4) ? PortClass::kIntranet : PortClass::kInternet;
  switch (mode) {
    case 0:
      policy.internet = PortSet::of(dynamic);
      policy.intranet = PortSet::of(dynamic);
      break;
    case 1:
    case 2: {
      policy.restricted = true;
      const PortSet rest = (shape & 0x40) ? other : listed.complement_within(dynamic);
      policy.internet = mode == 1 ? listed : rest;
      policy.intranet = mode == 1 ? rest : listed;
      break;
    }
    default:
      policy.restricted = true;
      policy.valid = false;
      if (shape & 8) {
        policy.internet = listed;
        policy.intranet = other;
      }
      break;
  }

  PortAllocator a(policy, seed);
  Model m;
  m.valid = policy.valid;
  m.default_class = policy.default_class;
  if (m.valid) {
    m.internet = policy.internet;
    m.intranet = policy.intranet;
  }
  check_all(a, m, static_cast<std::uint16_t>(base));

  while (!in.done()) {
    const std::uint8_t op = in.byte();
    const std::uint8_t arg = in.byte();
    const std::uint16_t window_port = static_cast<std::uint16_t>(base + arg % kWindow);
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {
        const auto cls =
            arg % 16 == 15 ? static_cast<PortClass>(3 + arg / 16) : static_cast<PortClass>(arg % 3);
        do_allocate(a, m, cls, static_cast<std::uint8_t>(op >> 3), arg);
        break;
      }
      case 3:
        if (!m.held.empty()) {
          auto it = m.held.begin();
          std::advance(it, arg % m.held.size());
          do_release(a, m, *it);
        } else {
          do_release(a, m, window_port);
        }
        break;
      case 4:
        do_release(a, m, window_port);
        break;
      case 5:
        do_hold(a, m,
                arg == 255   ? std::uint16_t{65535}
                : arg == 254 ? std::uint16_t{0}
                             : window_port);
        break;
      case 6:
        check_all(a, m, static_cast<std::uint16_t>(base));
        break;
      default:
        do_allocate(a, m, PortClass::kDefault, 0, arg);
        break;
    }
    CHECK(a.held_count() == m.held.size());
  }
  check_all(a, m, static_cast<std::uint16_t>(base));
  return 0;
}
