// Bounds-checked byte reading and writing for wire and file codecs.
//
// Contract: a ByteReader never reads outside the span it was given. Every read either returns the
// value and advances, or returns std::nullopt and leaves the position unchanged (so a caller can
// report "truncated" at the exact offset). Integers are read in the reader's byte order, which a
// DCE/RPC decoder sets from the PDU's packed_drep. No allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rpcgate::common {

enum class Endian : std::uint8_t { kLittle, kBig };

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

  std::optional<std::uint8_t> u8();
  std::optional<std::uint16_t> u16();
  std::optional<std::uint32_t> u32();
  std::optional<std::uint64_t> u64();
  // Big-endian regardless of the reader's byte order (tower port floors, IPv4 addresses).
  std::optional<std::uint16_t> u16_be();
  std::optional<std::uint32_t> u32_be();
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
  template <typename T>
  std::optional<T> read_int(Endian endian);

  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  Endian endian_;
};

// Appends to a growable buffer. Writes cannot fail (beyond std::bad_alloc, which is fatal).
class ByteWriter {
 public:
  explicit ByteWriter(Endian endian = Endian::kLittle) : endian_(endian) {}

  void u8(std::uint8_t v) { buf_.push_back(v); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void u16_be(std::uint16_t v);
  void u32_be(std::uint32_t v);
  void bytes(std::span<const std::uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void zeros(std::size_t n) { buf_.insert(buf_.end(), n, 0); }
  // Pads with zero bytes to a multiple of `alignment` from offset 0 of this buffer.
  void align(std::size_t alignment);
  // Overwrites an already-written integer (e.g. frag_length once the PDU is complete).
  void put_u16_at(std::size_t offset, std::uint16_t v);
  void put_u32_at(std::size_t offset, std::uint32_t v);

  std::size_t size() const { return buf_.size(); }
  Endian endian() const { return endian_; }
  const std::vector<std::uint8_t>& buffer() const { return buf_; }
  std::vector<std::uint8_t> take() { return std::move(buf_); }

 private:
  template <typename T>
  void write_int(T v, Endian endian);
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
