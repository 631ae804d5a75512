// Operation sequences over the firewall's pinhole table (firewall/pinholes.h): opens from a few
// clients to a few ports with a few interfaces, time steps, expiries and lookups.
//
// Invariants (trap on violation): the table never holds more than max_total pinholes, a client
// never more than max_per_client, a pinhole never more than max_interfaces interfaces; after
// expire(now) nothing expired is left and next_expiry() is later than now; allows() implies a
// live pinhole holding that interface; an opened or refreshed pinhole allows its interface at
// once.
#include <cstddef>
#include <cstdint>

#include "firewall/pinholes.h"
#include "op_reader.h"

using rpcgate::firewall::PinholeKey;
using rpcgate::firewall::PinholeLimits;
using rpcgate::firewall::PinholeTable;
using rpcgate::fuzzing::Reader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace std::chrono_literals;
  const PinholeLimits limits{
      .timeout = 100ms, .max_interfaces = 3, .max_per_client = 4, .max_total = 10};
  PinholeTable t(limits);
  rpcgate::firewall::TimePoint now{std::chrono::seconds(1)};
  Reader in{data, size};
  auto key_of = [](std::uint8_t b) {
    return PinholeKey{rpcgate::firewall::ipv4(10, 0, 0, b & 7),
                      rpcgate::firewall::ipv4(10, 0, 1, 5),
                      static_cast<std::uint16_t>(49664 + ((b >> 3) & 7))};
  };
  auto iface_of = [](std::uint8_t b) {
    rpcgate::rpc::SyntaxId s;
    s.major = static_cast<std::uint16_t>(b & 7);
    return s;
  };
  while (!in.done()) {
    const std::uint8_t op = in.byte();
    switch (op % 4) {
      case 0: {
        const auto key = key_of(in.byte());
        const auto iface = iface_of(in.byte());
        const auto r = t.open(key, iface, now);
        if (r == rpcgate::firewall::OpenResult::kOpened ||
            (r == rpcgate::firewall::OpenResult::kRefreshed))
          CHECK(t.allows(key, iface, now));
        break;
      }
      case 1:
        now += std::chrono::milliseconds(in.byte());
        break;
      case 2: {
        t.expire(now);
        if (auto e = t.next_expiry()) CHECK(*e > now);
        break;
      }
      case 3: {
        const auto key = key_of(in.byte());
        const auto iface = iface_of(in.byte());
        if (t.allows(key, iface, now)) {
          const auto* p = t.find(key, now);
          CHECK(p != nullptr && p->expires > now);
        }
        break;
      }
    }
    CHECK(t.size() <= limits.max_total);
    std::size_t sum = 0;
    for (std::uint8_t c = 0; c < 8; ++c) {
      const std::size_t n = t.count_for(rpcgate::firewall::ipv4(10, 0, 0, c));
      CHECK(n <= limits.max_per_client);
      sum += n;
    }
    CHECK(sum == t.size());
    for (std::uint8_t b = 0; b < 64; ++b) {
      const auto* p = t.find(key_of(b), now);
      if (p != nullptr) CHECK(p->interfaces.size() <= limits.max_interfaces);
    }
  }
  return 0;
}
