// parse_reg -> resolve -> lint on arbitrary bytes: never crash, never throw, and keep the
// resolver's invariants (an invalid policy has empty sets and an 87 error; a valid restricted one
// has disjoint classes).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rpcgate::policy;
  const std::span<const std::uint8_t> bytes(data, size);
  auto input = parse_reg(bytes, "fuzz.reg");
  if (!input) {
    (void)input.error().to_string();
    return 0;
  }
  const Policy policy = resolve(*input);
  if (!policy.valid) {
    if (!policy.error || policy.error->code != Errc::kInvalidParameter ||
        !policy.internet.empty() || !policy.intranet.empty()) {
      std::abort();
    }
  } else if (policy.restricted && policy.internet.intersects(policy.intranet)) {
    std::abort();
  }
  HostFacts host;
  host.ephemeral = PortRange{32768, 60999};
  host.reserved.add(PortRange{50000, 50100});
  (void)lint(policy, host);
  return 0;
}
