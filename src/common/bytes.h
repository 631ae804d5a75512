// Bounds-checked byte reading and writing for wire and file codecs.
//
// Contract: a ByteReader never reads outside the span it was given. Every read either returns the
// value and advances, or returns std::nullopt and leaves the position unchanged (so a caller can
// report "truncated" at the exact offset). Integers are read in the reader's byte order, which a
// DCE/RPC decoder sets from the PDU's packed_drep. No allocation, no exceptions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rpcgate::common {

enum class Endian : std::uint8_t { kLittle, kBig };

namespace detail {
// std::byteswap is C++23.
template <typename T>
constexpr T byteswap(T v) {
  if constexpr (sizeof(T) == 1) {
    return v;
  } else if constexpr (sizeof(T) == 2) {
    return static_cast<T>(__builtin_bswap16(v));
  } else if constexpr (sizeof(T) == 4) {
    return static_cast<T>(__builtin_bswap32(v));
  } else {
    static_assert(sizeof(T) == 8);
    return static_cast<T>(__builtin_bswap64(v));
  }
}
// True if integers in `wire` order must be swapped on this machine.
constexpr bool must_swap(Endian wire) {
  return (wire == Endian::kBig) == (std::endian::native == std::endian::little);
}
}  // namespace detail

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> data, Endian endian = Endian::kLittle)
      : data_(data), endian_(endian) {}

  std::size_t position() const { return pos_; }
  std::size_t size() const { return data_.size(); }
  std::size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ == data_.size(); }
  Endian endian() const { return endian_; }
  void set_endian(Endian endian) { endian_ = endian; }
  std::span<const std::uint8_t> data() const { return data_; }
  std::span<const std::uint8_t> rest() const { return data_.subspan(pos_); }

  std::optional<std::uint8_t> u8() { return read_int<std::uint8_t>(endian_); }
  std::optional<std::uint16_t> u16() { return read_int<std::uint16_t>(endian_); }
  std::optional<std::uint32_t> u32() { return read_int<std::uint32_t>(endian_); }
  std::optional<std::uint64_t> u64() { return read_int<std::uint64_t>(endian_); }
  // Big-endian regardless of the reader's byte order (tower port floors, IPv4 addresses).
  std::optional<std::uint16_t> u16_be() { return read_int<std::uint16_t>(Endian::kBig); }
  std::optional<std::uint32_t> u32_be() { return read_int<std::uint32_t>(Endian::kBig); }
  // The next n bytes as a view into the input; nullopt if fewer remain.
  std::optional<std::span<const std::uint8_t>> bytes(std::size_t n);
  // Advances n bytes; false (position unchanged) if fewer remain.
  bool skip(std::size_t n);
  // Advances to the next multiple of `alignment` counted from offset 0 of the span (NDR aligns
  // relative to the start of the stub). False if the padding itself is truncated.
  bool align(std::size_t alignment);
  // Moves to an absolute offset within the span; false if out of range.
  bool seek(std::size_t offset);

 private:
  // Inline: every NDR and PDU field goes through here, on the daemon's per-call path.
  template <typename T>
  std::optional<T> read_int(Endian endian) {
    if (remaining() < sizeof(T)) return std::nullopt;
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    if (detail::must_swap(endian)) v = detail::byteswap(v);
    pos_ += sizeof(T);
    return v;
  }

  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  Endian endian_;
};

// Appends to a growable buffer. Writes cannot fail (beyond std::bad_alloc, which is fatal).
class ByteWriter {
 public:
  explicit ByteWriter(Endian endian = Endian::kLittle) : endian_(endian) {}

  void u8(std::uint8_t v) { buf_.push_back(v); }
  void u16(std::uint16_t v) { write_int(v, endian_); }
  void u32(std::uint32_t v) { write_int(v, endian_); }
  void u64(std::uint64_t v) { write_int(v, endian_); }
  void u16_be(std::uint16_t v) { write_int(v, Endian::kBig); }
  void u32_be(std::uint32_t v) { write_int(v, Endian::kBig); }
  // Capacity hint for a writer whose final size is known or bounded (saves regrowth).
  void reserve(std::size_t n) { buf_.reserve(n); }
  void bytes(std::span<const std::uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void zeros(std::size_t n) { buf_.insert(buf_.end(), n, 0); }
  // Pads with zero bytes to a multiple of `alignment` from offset 0 of this buffer.
  void align(std::size_t alignment) {
    if (alignment <= 1) return;
    const std::size_t pad = (alignment - buf_.size() % alignment) % alignment;
    if (pad != 0) buf_.resize(buf_.size() + pad);  // value-initialised: zeros
  }
  // Overwrites an already-written integer (e.g. frag_length once the PDU is complete).
  void put_u16_at(std::size_t offset, std::uint16_t v);
  void put_u32_at(std::size_t offset, std::uint32_t v);

  std::size_t size() const { return buf_.size(); }
  Endian endian() const { return endian_; }
  const std::vector<std::uint8_t>& buffer() const { return buf_; }
  std::vector<std::uint8_t> take() { return std::move(buf_); }

 private:
  template <typename T>
  void write_int(T v, Endian endian) {
    if (detail::must_swap(endian)) v = detail::byteswap(v);
    const auto at = buf_.size();
    buf_.resize(at + sizeof(T));
    std::memcpy(buf_.data() + at, &v, sizeof(T));
  }
  template <typename T>
  void put_int_at(std::size_t offset, T v);

  std::vector<std::uint8_t> buf_;
  Endian endian_;
};

// "05 00 0b 03" / "05000b03" (whitespace and newlines ignored) -> bytes; nullopt on odd length or
// a non-hex character. For golden vectors in tests and for CLI input.
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text);
// Lower-case hex, bytes separated by `sep` (none if '\0').
std::string to_hex(std::span<const std::uint8_t> data, char sep = ' ');

}  // namespace rpcgate::common
