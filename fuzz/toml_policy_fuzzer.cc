// parse_toml -> resolve -> lint on arbitrary text: never crash, never let a toml++ exception out.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rpcgate::policy;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto input = parse_toml(text, "fuzz.toml");
  if (!input) {
    (void)input.error().to_string();
    return 0;
  }
  const Policy policy = resolve(*input);
  if (!policy.valid && (!policy.error || !policy.internet.empty() || !policy.intranet.empty())) {
    std::abort();
  }
  (void)lint(policy, HostFacts{PortRange{32768, 60999}, {}});
  return 0;
}
