// String bindings: parse -> format -> parse must give the same value, and formatting that
// value again must give the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ndr/binding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rpcgate::ndr;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto binding = parse_binding(text);
  if (!binding) return 0;
  const auto formatted = format_binding(*binding);
  auto again = parse_binding(formatted);
  if (!again || *again != *binding) std::abort();
  if (format_binding(*again) != formatted) std::abort();
  return 0;
}
