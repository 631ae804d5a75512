#include "common/bytes.h"

#include <cctype>

namespace rpcgate::common {

std::optional<std::span<const std::uint8_t>> ByteReader::bytes(std::size_t n) {
  if (remaining() < n) return std::nullopt;
  auto out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

bool ByteReader::skip(std::size_t n) {
  if (remaining() < n) return false;
  pos_ += n;
  return true;
}

bool ByteReader::align(std::size_t alignment) {
  if (alignment <= 1) return true;
  const std::size_t pad = (alignment - pos_ % alignment) % alignment;
  return skip(pad);
}

bool ByteReader::seek(std::size_t offset) {
  if (offset > data_.size()) return false;
  pos_ = offset;
  return true;
}

template <typename T>
void ByteWriter::put_int_at(std::size_t offset, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    const std::size_t shift = endian_ == Endian::kLittle ? i : sizeof(T) - 1 - i;
    buf_.at(offset + i) = static_cast<std::uint8_t>(v >> (8 * shift));
  }
}

void ByteWriter::put_u16_at(std::size_t offset, std::uint16_t v) {
  put_int_at(offset, v);
}
void ByteWriter::put_u32_at(std::size_t offset, std::uint32_t v) {
  put_int_at(offset, v);
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int high = -1;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) return std::nullopt;
  return out;
}

std::string to_hex(std::span<const std::uint8_t> data, char sep) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 3);
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (i != 0 && sep != '\0') out.push_back(sep);
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

}  // namespace rpcgate::common
