// Tower decoder: decode -> encode must reproduce the input exactly (towers have no padding or
// alternative encodings), and the typed view / binding conversions must not misbehave.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ndr/tower.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rpcgate::ndr;
  const std::span<const std::uint8_t> input(data, size);
  TowerLimits limits;
  limits.max_floors = 16;  // explore past the default 6 too
  auto tower = decode_tower(input, limits);
  if (!tower) return 0;
  const auto bytes = encode_tower(*tower);
  if (!std::equal(bytes.begin(), bytes.end(), input.begin(), input.end())) std::abort();
  auto again = decode_tower(bytes, limits);
  if (!again || *again != *tower) std::abort();
  if (describe_floors(*tower).rfind("floors(", 0) != 0) std::abort();  // any tower: a fallback
  if (auto view = view_tower(*tower)) {
    if (encode_tower(make_tower(*view)) != bytes) std::abort();
    if (auto binding = tower_to_binding(*tower)) {
      auto rebuilt = binding_to_tower(*binding, view->interface, view->transfer_syntax);
      if (rebuilt) {
        auto b2 = tower_to_binding(*rebuilt);
        if (!b2 || *b2 != *binding) std::abort();
      }
    }
  }
  return 0;
}
