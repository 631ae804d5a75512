// QueryStatus response decoder (runtime/status_protocol.h), what `rpcgate status` reads from
// rpcgate-epmd. Byte 0: bit 0 selects the byte order (big-endian when set), bit 1 small limits
// (every limit low, so the over-limit paths are reached by short inputs); the rest is the stub.
// A stub that decodes is re-encoded: that must decode to fit() of the first value, fit within
// max_response_bytes, and re-encode to the same bytes.
// Seeds (fuzz/corpus/status_report_fuzzer/): encoded reports - empty, a refusal, two servers with
// ports and registrations, in both byte orders - and a few inconsistent ones.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "runtime/status_protocol.h"

using namespace rpcgate::runtime::status;
using rpcgate::common::Endian;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Endian endian = (data[0] & 0x01) ? Endian::kBig : Endian::kLittle;
  StatusLimits limits;
  if (data[0] & 0x02) {
    limits.max_pools = 1;
    limits.max_leases = 2;
    limits.max_ports = 3;
    limits.max_registrations = 3;
    limits.max_response_bytes = 512;
  }
  const std::span<const std::uint8_t> stub(data + 1, size - 1);
  auto value = decode_status_report(stub, endian, limits);
  if (!value) return 0;
  const auto bytes = encode(*value, endian, limits);
  if (bytes.size() > limits.max_response_bytes) std::abort();
  auto again = decode_status_report(bytes, endian, limits);
  if (!again || *again != fit(*value, limits)) std::abort();
  if (encode(*again, endian, limits) != bytes) std::abort();
  return 0;
}
