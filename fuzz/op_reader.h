// Shared by the operation-sequence fuzzers: the input read as a stream of operation bytes, and
// the invariant check that stops the fuzzer with a crash it can minimise.
#pragma once

#include <cstddef>
#include <cstdint>

// An invariant of the fuzzed code; a failure traps (libFuzzer reports it as a crash).
#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

namespace rpcgate::fuzzing {

// The fuzzer's input, one byte at a time; past the end every byte reads 0.
struct Reader {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t at = 0;
  bool done() const { return at >= size; }
  std::uint8_t byte() { return at < size ? data[at++] : 0; }
};

}  // namespace rpcgate::fuzzing
