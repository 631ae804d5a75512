// The EPM's hot path after framing: decoding an ept_map request stub (the 132-byte stub of
// docs/wire-vectors.md ept-map-request, as Impacket sends it) and its tower, and encoding the
// response stub.
#include <benchmark/benchmark.h>

#include "common/bytes.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::ndr::epm {
namespace {

const std::vector<std::uint8_t>& map_request_stub() {
  static const auto stub = *common::from_hex(
      "01000000 00000000000000000000000000000000 02000000 4b000000 4b000000"
      "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
      "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
      "01 00 0b 02 00 00 00 01 00 07 02 00 00 00 01 00 09 04 00 00 00 00 00"
      "ab 0000000000000000000000000000000000000000 01000000");
  return stub;
}

void BM_DecodeEptMapRequest(benchmark::State& state) {
  const auto& stub = map_request_stub();
  if (!decode_ept_map_request(stub, common::Endian::kLittle)) {
    state.SkipWithError("golden ept_map stub does not decode");
    return;
  }
  for (auto _ : state) {
    auto req = decode_ept_map_request(stub, common::Endian::kLittle);
    auto tower = decode_tower(*req->map_tower);
    benchmark::DoNotOptimize(req);
    benchmark::DoNotOptimize(tower);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stub.size()));
}
BENCHMARK(BM_DecodeEptMapRequest);

void BM_EncodeEptMapResponse(benchmark::State& state) {
  auto req = decode_ept_map_request(map_request_stub(), common::Endian::kLittle).value();
  EptMapResponse resp;
  resp.max_count = req.max_towers;
  resp.towers.push_back(*req.map_tower);
  for (auto _ : state) {
    auto out = encode(resp, common::Endian::kLittle);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_EncodeEptMapResponse);

}  // namespace
}  // namespace rpcgate::ndr::epm
