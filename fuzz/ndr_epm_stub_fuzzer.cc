// EPM stub decoders. Byte 0 selects the stub type (bits 0-2) and the drep byte order (bit 3);
// the rest is the stub. A stub that decodes is re-encoded and must decode to the same value
// (the encoder writes zero pad and its own referent ids, so bytes may differ from the input;
// a request's ignored trailing bytes are not re-encoded).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ndr/epm_types.h"

namespace {

using namespace rpcgate::ndr;
using namespace rpcgate::ndr::epm;

template <typename Decode>
void check(std::span<const std::uint8_t> stub, Endian endian, Decode decode) {
  DecodeLimits limits;
  limits.max_array_elements = 4096;
  limits.max_total_alloc = 1u << 20;
  auto value = decode(stub, endian, limits);
  if (!value) return;
  // Requests ignore bytes after their last [in] parameter and only count them; the encoder
  // writes none, so the round trip compares the parameters.
  if constexpr (requires { value->trailing_bytes; }) {
    if (value->trailing_bytes > stub.size()) std::abort();
    value->trailing_bytes = 0;
  }
  const auto bytes = encode(*value, endian);
  auto again = decode(bytes, endian, limits);
  if (!again || *again != *value) std::abort();
  if (encode(*again, endian) != bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Endian endian = (data[0] & 0x08) ? Endian::kBig : Endian::kLittle;
  const std::span<const std::uint8_t> stub(data + 1, size - 1);
  using S = std::span<const std::uint8_t>;
  switch (data[0] & 0x07) {
    case 0:
      check(stub, endian,
            [](S s, Endian e, const DecodeLimits& l) { return decode_ept_map_request(s, e, l); });
      break;
    case 1:
      check(stub, endian,
            [](S s, Endian e, const DecodeLimits& l) { return decode_ept_map_response(s, e, l); });
      break;
    case 2:
      check(stub, endian, [](S s, Endian e, const DecodeLimits& l) {
        return decode_ept_lookup_request(s, e, l);
      });
      break;
    case 3:
      check(stub, endian, [](S s, Endian e, const DecodeLimits& l) {
        return decode_ept_lookup_response(s, e, l);
      });
      break;
    case 4:
      check(stub, endian, [](S s, Endian e, const DecodeLimits& l) {
        return decode_ept_lookup_handle_free_request(s, e, l);
      });
      break;
    default:
      check(stub, endian, [](S s, Endian e, const DecodeLimits& l) {
        return decode_ept_lookup_handle_free_response(s, e, l);
      });
      break;
  }
  return 0;
}
