// Framer + decode_pdu + RequestReassembler over a stream delivered in input-chosen chunks.
// Input: byte 0 = max_frag_length selector, byte 1.. = a chunk-size script (one byte per chunk,
// length given by byte 1), then the stream. Properties: no crash, consumed bytes never exceed the
// input, frames are exactly frag_length long, reassembled stubs stay within the limit, and the
// frames are the same whether the stream is fed at once or in the scripted chunks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "rpc/fragments.h"
#include "rpc/framer.h"
#include "rpc/pdu.h"

namespace {
using namespace rpcgate::rpc;

struct Outcome {
  std::vector<std::vector<std::uint8_t>> frames;
  bool failed = false;
};

Outcome run(std::span<const std::uint8_t> stream, std::span<const std::uint8_t> script,
            std::size_t max_frag) {
  Outcome out;
  Framer framer(max_frag);
  RequestReassembler reassembler(ReassemblyLimits{4096, 4});
  std::size_t step = 0;
  while (!stream.empty()) {
    std::size_t chunk = script.empty() ? stream.size() : script[step++ % script.size()] + 1u;
    if (chunk > stream.size()) chunk = stream.size();
    auto piece = stream.first(chunk);
    while (!piece.empty()) {
      auto n = framer.feed(piece);
      if (!n) {
        out.failed = true;
        if (framer.feed(piece).has_value()) std::abort();  // must stay failed
        return out;
      }
      if (*n > piece.size()) std::abort();
      piece = piece.subspan(*n);
      stream = stream.subspan(*n);
      if (framer.ready()) {
        auto frame = framer.frame();
        if (frame.size() != framer.header().frag_length || frame.size() > max_frag) std::abort();
        out.frames.emplace_back(frame.begin(), frame.end());
        if (auto pdu = decode_pdu(frame)) {
          if (auto call = reassembler.feed(std::move(*pdu)); call && *call) {
            if ((*call)->stub.size() > 4096) std::abort();
          }
          if (reassembler.calls_in_progress() > 4) std::abort();
        }
        framer.pop();
      }
    }
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::size_t max_frag = 16 + static_cast<std::size_t>(data[0]) * 257;
  const std::size_t script_len = std::min<std::size_t>(data[1], size - 2);
  auto script = std::span<const std::uint8_t>(data + 2, script_len);
  auto stream = std::span<const std::uint8_t>(data + 2 + script_len, size - 2 - script_len);
  const Outcome chunked = run(stream, script, max_frag);
  const Outcome whole = run(stream, {}, max_frag);
  if (chunked.frames != whole.frames || chunked.failed != whole.failed) std::abort();
  return 0;
}
