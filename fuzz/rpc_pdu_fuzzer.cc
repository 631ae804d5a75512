// decode_pdu on arbitrary bytes. Property: whatever decodes re-encodes, and the re-encoding
// decodes to the same Pdu (round trip); any divergence aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "rpc/pdu.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rpcgate::rpc;
  std::span<const std::uint8_t> input(data, size);
  DecodeLimits limits;
  limits.max_context_items = 255;  // exercise the full u8 range
  limits.max_transfer_syntaxes = 255;
  limits.max_results = 255;
  auto pdu = decode_pdu(input, limits);
  if (!pdu) return 0;
  auto bytes = encode_pdu(*pdu);
  if (!bytes) std::abort();  // a decoded PDU must always be encodable
  auto again = decode_pdu(*bytes, limits);
  if (!again || !(*again == *pdu)) std::abort();
  if (bytes->size() != input.size()) std::abort();  // same layout, same length
  return 0;
}
