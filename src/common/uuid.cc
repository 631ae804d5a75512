#include "common/uuid.h"

namespace rpcgate::common {
namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::optional<Uuid> Uuid::parse(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') {
    text = text.substr(1, 36);
  }
  if (text.size() != 36) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  std::size_t byte = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    const int hi = hex_value(text[i]);
    const int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[byte++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return Uuid(out);
}

std::optional<Uuid> Uuid::read(ByteReader& reader) {
  if (reader.remaining() < 16) return std::nullopt;
  const auto time_low = *reader.u32();
  const auto time_mid = *reader.u16();
  const auto time_hi = *reader.u16();
  const auto rest = *reader.bytes(8);
  std::array<std::uint8_t, 16> out{};
  out[0] = static_cast<std::uint8_t>(time_low >> 24);
  out[1] = static_cast<std::uint8_t>(time_low >> 16);
  out[2] = static_cast<std::uint8_t>(time_low >> 8);
  out[3] = static_cast<std::uint8_t>(time_low);
  out[4] = static_cast<std::uint8_t>(time_mid >> 8);
  out[5] = static_cast<std::uint8_t>(time_mid);
  out[6] = static_cast<std::uint8_t>(time_hi >> 8);
  out[7] = static_cast<std::uint8_t>(time_hi);
  for (std::size_t i = 0; i < 8; ++i)
    out[8 + i] = rest[i];
  return Uuid(out);
}

void Uuid::write(ByteWriter& writer) const {
  const auto& b = bytes_;
  writer.u32(static_cast<std::uint32_t>(b[0]) << 24 | static_cast<std::uint32_t>(b[1]) << 16 |
             static_cast<std::uint32_t>(b[2]) << 8 | b[3]);
  writer.u16(static_cast<std::uint16_t>(b[4] << 8 | b[5]));
  writer.u16(static_cast<std::uint16_t>(b[6] << 8 | b[7]));
  writer.bytes(std::span(b).subspan(8));
}

std::string Uuid::to_string() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kDigits[bytes_[i] >> 4]);
    out.push_back(kDigits[bytes_[i] & 0xf]);
  }
  return out;
}

bool Uuid::is_nil() const {
  for (auto b : bytes_) {
    if (b != 0) return false;
  }
  return true;
}

}  // namespace rpcgate::common
