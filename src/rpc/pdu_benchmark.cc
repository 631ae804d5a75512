// Framing + decoding throughput for the two PDUs an EPM sees most: the 72-byte bind and the
// 156-byte ept_map request (docs/wire-vectors.md ept-map-request, bind-epm).
#include <benchmark/benchmark.h>

#include "rpc/framer.h"
#include "rpc/pdu.h"
#include "rpc/testing/test_vectors.h"

namespace rpcgate::rpc {
namespace {

void frame_and_decode(benchmark::State& state, const std::vector<std::uint8_t>& pdu) {
  Framer framer;
  for (auto _ : state) {
    auto n = framer.feed(pdu);
    auto decoded = decode_pdu(framer.frame());
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(decoded);
    framer.pop();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * pdu.size()));
}

void decode_only(benchmark::State& state, const std::vector<std::uint8_t>& pdu) {
  for (auto _ : state) {
    auto decoded = decode_pdu(pdu);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * pdu.size()));
}

void encode(benchmark::State& state, const std::vector<std::uint8_t>& bytes) {
  const Pdu pdu = decode_pdu(bytes).value();
  for (auto _ : state) {
    auto out = encode_pdu(pdu);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
}

void BM_FrameDecodeBind72(benchmark::State& s) {
  frame_and_decode(s, testing::impacket_bind());
}
void BM_FrameDecodeEptMap156(benchmark::State& s) {
  frame_and_decode(s, testing::ept_map_request());
}
void BM_DecodeBind72(benchmark::State& s) {
  decode_only(s, testing::impacket_bind());
}
void BM_DecodeEptMap156(benchmark::State& s) {
  decode_only(s, testing::ept_map_request());
}
void BM_EncodeBind72(benchmark::State& s) {
  encode(s, testing::impacket_bind());
}
void BM_EncodeEptMap156(benchmark::State& s) {
  encode(s, testing::ept_map_request());
}

BENCHMARK(BM_FrameDecodeBind72);
BENCHMARK(BM_FrameDecodeEptMap156);
BENCHMARK(BM_DecodeBind72);
BENCHMARK(BM_DecodeEptMap156);
BENCHMARK(BM_EncodeBind72);
BENCHMARK(BM_EncodeEptMap156);

}  // namespace
}  // namespace rpcgate::rpc
