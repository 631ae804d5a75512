// DCE UUIDs (C706 Appendix A) as text and in NDR byte order.
//
// Stored in canonical (RFC 4122 / text) byte order. On the wire DCE/RPC writes time_low (u32),
// time_mid (u16) and time_hi_and_version (u16) in the sender's integer byte order, then the eight
// clock_seq/node bytes as they are; read()/write() apply that rule for the given Endian.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"

namespace rpcgate::common {

class Uuid {
 public:
  constexpr Uuid() = default;
  constexpr explicit Uuid(const std::array<std::uint8_t, 16>& canonical) : bytes_(canonical) {}

  // "e1af8308-5d1f-11c9-91a4-08002b14a0fa", case-insensitive, optional surrounding braces.
  static std::optional<Uuid> parse(std::string_view text);
  // Reads 16 bytes in NDR layout for `reader`'s byte order; nullopt if truncated.
  static std::optional<Uuid> read(ByteReader& reader);
  void write(ByteWriter& writer) const;

  std::string to_string() const;  // lower-case, no braces
  bool is_nil() const;
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }

  friend constexpr auto operator<=>(const Uuid&, const Uuid&) = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};
};

}  // namespace rpcgate::common

template <>
struct std::hash<rpcgate::common::Uuid> {
  std::size_t operator()(const rpcgate::common::Uuid& u) const noexcept {
    std::size_t h = 1469598103934665603ull;
    for (auto b : u.bytes())
      h = (h ^ b) * 1099511628211ull;
    return h;
  }
};
