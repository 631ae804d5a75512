#include "ndr/ndr.h"

#include <algorithm>
#include <bit>

namespace rpcgate::ndr {
namespace {

// std::expected::transform is missing from GCC 12's libstdc++.
template <typename T, typename Fn>
auto map_value(Result<T> r, Fn fn) -> Result<decltype(fn(*r))> {
  if (!r) return std::unexpected(r.error());
  return fn(*r);
}

}  // namespace

// ---------------------------------------------------------------- Decoder: scalars

void Decoder::log_pad(std::size_t pad) {
  for (std::size_t i = 0; i < pad; ++i)
    pad_log_->push_back(reader_.position() + i);
}

Result<std::span<const std::uint8_t>> Decoder::aligned(std::size_t n) {
  if (auto r = align(n); !r) return std::unexpected(r.error());
  auto b = reader_.bytes(n);
  if (!b) return fail(Errc::kTruncated);
  return *b;
}

Result<std::uint8_t> Decoder::u8() {
  auto v = reader_.u8();
  if (!v) return fail(Errc::kTruncated);
  return *v;
}

// Each wider read aligns, then lets ByteReader apply the drep byte order. ByteReader leaves the
// position unchanged on failure, so a truncated value reports kTruncated without side effects
// beyond the (legitimate) pad skip.
Result<std::uint64_t> Decoder::u64() {
  if (auto r = align(8); !r) return std::unexpected(r.error());
  auto v = reader_.u64();
  if (!v) return fail(Errc::kTruncated);
  return *v;
}

Result<std::int8_t> Decoder::i8() {
  return map_value(u8(), [](std::uint8_t v) { return static_cast<std::int8_t>(v); });
}
Result<std::int16_t> Decoder::i16() {
  return map_value(u16(), [](std::uint16_t v) { return static_cast<std::int16_t>(v); });
}
Result<std::int32_t> Decoder::i32() {
  return map_value(u32(), [](std::uint32_t v) { return static_cast<std::int32_t>(v); });
}
Result<std::int64_t> Decoder::i64() {
  return map_value(u64(), [](std::uint64_t v) { return static_cast<std::int64_t>(v); });
}
Result<float> Decoder::f32() {
  return map_value(u32(), [](std::uint32_t v) { return std::bit_cast<float>(v); });
}
Result<double> Decoder::f64() {
  return map_value(u64(), [](std::uint64_t v) { return std::bit_cast<double>(v); });
}
Result<bool> Decoder::boolean() {
  return map_value(u8(), [](std::uint8_t v) { return v != 0; });
}

Result<std::uint16_t> Decoder::enum16() {
  auto v = u16();
  if (v && *v > 0x7fff) return fail(Errc::kEnumOutOfRange);
  return v;
}

Result<std::uint32_t> Decoder::enum32() {
  return u32();
}

Result<std::span<const std::uint8_t>> Decoder::bytes(std::size_t n) {
  auto b = reader_.bytes(n);
  if (!b) return fail(Errc::kTruncated);
  return *b;
}

Result<Uuid> Decoder::uuid() {
  if (auto r = align(4); !r) return std::unexpected(r.error());
  auto u = Uuid::read(reader_);
  if (!u) return fail(Errc::kTruncated);
  return *u;
}

Result<ContextHandle> Decoder::context_handle() {
  ContextHandle h;
  auto attributes = u32();
  if (!attributes) return std::unexpected(attributes.error());
  auto id = uuid();
  if (!id) return std::unexpected(id.error());
  h.attributes = *attributes;
  h.uuid = *id;
  return h;
}

// ---------------------------------------------------------------- Decoder: arrays

Result<void> Decoder::charge(std::size_t bytes) {
  if (bytes > limits_.max_total_alloc - std::min(allocated_, limits_.max_total_alloc))
    return fail(Errc::kAllocOverLimit);
  allocated_ += bytes;
  return {};
}

// The element count is checked against the limit and against what is left *before* anything
// is allocated: a hostile 0xffffffff never reaches reserve().
Result<void> Decoder::check_count(std::uint64_t count, std::size_t element_size) {
  if (count > limits_.max_array_elements) return fail(Errc::kCountOverLimit);
  if (count * element_size > reader_.remaining()) return fail(Errc::kCountOverLimit);
  return charge(static_cast<std::size_t>(count) * element_size);
}

Result<ArrayShape> Decoder::conformant_array(std::size_t element_size) {
  auto max_count = u32();
  if (!max_count) return std::unexpected(max_count.error());
  if (auto r = check_count(*max_count, element_size); !r) return std::unexpected(r.error());
  return ArrayShape{*max_count, 0, *max_count};
}

Result<ArrayShape> Decoder::varying_array(std::uint32_t bound, std::size_t element_size) {
  auto offset = u32();
  if (!offset) return std::unexpected(offset.error());
  auto actual_count = u32();
  if (!actual_count) return std::unexpected(actual_count.error());
  if (std::uint64_t{*offset} + *actual_count > bound) return fail(Errc::kCountInconsistent);
  if (auto r = check_count(*actual_count, element_size); !r) return std::unexpected(r.error());
  return ArrayShape{bound, *offset, *actual_count};
}

Result<ArrayShape> Decoder::conformant_varying_array(std::size_t element_size) {
  auto max_count = u32();
  if (!max_count) return std::unexpected(max_count.error());
  if (*max_count > limits_.max_array_elements) return fail(Errc::kCountOverLimit);
  auto offset = u32();
  if (!offset) return std::unexpected(offset.error());
  auto actual_count = u32();
  if (!actual_count) return std::unexpected(actual_count.error());
  if (std::uint64_t{*offset} + *actual_count > *max_count) return fail(Errc::kCountInconsistent);
  if (auto r = check_count(*actual_count, element_size); !r) return std::unexpected(r.error());
  return ArrayShape{*max_count, *offset, *actual_count};
}

// ---------------------------------------------------------------- Decoder: strings

template <typename Char>
Result<std::basic_string<Char>> Decoder::string_body(const ArrayShape& shape) {
  if (shape.offset != 0) return fail(Errc::kStringNonZeroOffset);
  if (shape.actual_count == 0) return fail(Errc::kStringNotTerminated);
  if (shape.actual_count > limits_.max_string_length) return fail(Errc::kCountOverLimit);
  if (std::uint64_t{shape.actual_count} * sizeof(Char) > reader_.remaining())
    return fail(Errc::kCountOverLimit);
  if (auto r = charge(shape.actual_count * sizeof(Char)); !r) return std::unexpected(r.error());
  std::basic_string<Char> s;
  s.reserve(shape.actual_count - 1);
  for (std::uint32_t i = 0; i < shape.actual_count; ++i) {
    Char c;
    if constexpr (sizeof(Char) == 1) {
      c = static_cast<Char>(*reader_.u8());
    } else {
      c = static_cast<Char>(*reader_.u16());
    }
    const bool last = i + 1 == shape.actual_count;
    if (last && c != 0) return fail(Errc::kStringNotTerminated);
    if (!last && c == 0) return fail(Errc::kStringEmbeddedNul);
    if (!last) s.push_back(c);
  }
  return s;
}

// Strings are read through string_body rather than the array helpers so the string limit (not
// the array limit) applies, and so the offset / NUL rules of [string] are enforced.
Result<std::string> Decoder::string() {
  auto max_count = u32();
  if (!max_count) return std::unexpected(max_count.error());
  if (*max_count > limits_.max_string_length) return fail(Errc::kCountOverLimit);
  auto variance = varying_array_header(*max_count);
  if (!variance) return std::unexpected(variance.error());
  return string_body<char>(*variance);
}

Result<std::u16string> Decoder::wstring() {
  auto max_count = u32();
  if (!max_count) return std::unexpected(max_count.error());
  if (*max_count > limits_.max_string_length) return fail(Errc::kCountOverLimit);
  auto variance = varying_array_header(*max_count);
  if (!variance) return std::unexpected(variance.error());
  if (auto r = align(2); !r) return std::unexpected(r.error());
  return string_body<char16_t>(*variance);
}

Result<std::string> Decoder::varying_string(std::uint32_t bound) {
  auto variance = varying_array_header(bound);
  if (!variance) return std::unexpected(variance.error());
  return string_body<char>(*variance);
}

Result<ArrayShape> Decoder::varying_array_header(std::uint32_t bound) {
  auto offset = u32();
  if (!offset) return std::unexpected(offset.error());
  auto actual_count = u32();
  if (!actual_count) return std::unexpected(actual_count.error());
  if (std::uint64_t{*offset} + *actual_count > bound) return fail(Errc::kCountInconsistent);
  return ArrayShape{bound, *offset, *actual_count};
}

// ---------------------------------------------------------------- Decoder: pointers

Result<std::uint32_t> Decoder::referent_id() {
  return u32();
}

Result<bool> Decoder::unique_pointer() {
  return map_value(u32(), [](std::uint32_t id) { return id != 0; });
}

Result<void> Decoder::embedded_ref_pointer() {
  auto id = u32();
  if (!id) return std::unexpected(id.error());
  if (*id == 0) return fail(Errc::kNullRefPointer);
  return {};
}

Result<FullPointer> Decoder::full_pointer() {
  auto id = u32();
  if (!id) return std::unexpected(id.error());
  if (*id == 0) return FullPointer{};
  const bool first = full_ids_.insert(*id).second;
  // The alias map grows with distinct ids only; bound it like an array.
  if (full_ids_.size() > limits_.max_array_elements) return fail(Errc::kCountOverLimit);
  return FullPointer{*id, first};
}

// ---------------------------------------------------------------- Decoder: deferral, unions

Result<void> Decoder::flush_deferred() {
  if (deferred_.empty()) return {};
  if (auto r = enter(); !r) return r;
  std::vector<Deferred> queue;
  queue.swap(deferred_);
  for (auto& fn : queue) {
    auto r = fn(*this);
    if (r) r = flush_deferred();  // this referent's own pointees come right after it
    if (!r) {
      leave();
      return r;
    }
  }
  leave();
  return {};
}

Result<std::uint32_t> Decoder::union_discriminant(SwitchType type,
                                                  std::optional<std::uint32_t> switch_is) {
  Result<std::uint32_t> v = fail(Errc::kBadUnionDiscriminant);
  switch (type) {
    case SwitchType::kU8:
      v = u8();
      break;
    case SwitchType::kU16:
      v = u16();
      break;
    case SwitchType::kU32:
      v = u32();
      break;
    case SwitchType::kEnum16:
      v = enum16();
      break;
  }
  if (v && switch_is && *switch_is != *v) return fail(Errc::kBadUnionDiscriminant);
  return v;
}

Result<void> Decoder::enter() {
  if (depth_ >= limits_.max_depth) return fail(Errc::kDepthExceeded);
  ++depth_;
  return {};
}

Result<void> Decoder::expect_end() const {
  if (!reader_.empty()) return fail(Errc::kTrailingBytes);
  return {};
}

// ---------------------------------------------------------------- Encoder

void Encoder::u64(std::uint64_t v) {
  writer_.align(8);
  writer_.u64(v);
}
void Encoder::f32(float v) {
  u32(std::bit_cast<std::uint32_t>(v));
}
void Encoder::f64(double v) {
  u64(std::bit_cast<std::uint64_t>(v));
}

void Encoder::uuid(const Uuid& u) {
  writer_.align(4);
  u.write(writer_);
}

void Encoder::context_handle(const ContextHandle& h) {
  u32(h.attributes);
  uuid(h.uuid);
}

void Encoder::string(std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size() + 1);
  conformance(n);
  variance(0, n);
  for (char c : s)
    u8(static_cast<std::uint8_t>(c));
  u8(0);
}

void Encoder::wstring(std::u16string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size() + 1);
  conformance(n);
  variance(0, n);
  for (char16_t c : s)
    u16(c);
  u16(0);
}

void Encoder::varying_string(std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size() + 1);
  variance(0, n);
  for (char c : s)
    u8(static_cast<std::uint8_t>(c));
  u8(0);
}

std::uint32_t Encoder::next_referent_id() {
  const std::uint32_t n = referents_issued_++;
  const bool ms = options_.referent_style == ReferentStyle::kMicrosoft;
  const std::uint32_t first =
      options_.first_referent_id != 0 ? options_.first_referent_id : (ms ? 0x00020000u : 1u);
  return first + (ms ? 4u : 1u) * n;
}

std::uint32_t Encoder::unique_pointer(bool present) {
  const std::uint32_t id = present ? next_referent_id() : 0;
  u32(id);
  return id;
}

FullPointer Encoder::full_pointer(const void* key) {
  if (key == nullptr) {
    u32(0);
    return {};
  }
  for (const auto& [k, id] : full_ids_) {
    if (k == key) {
      u32(id);
      return {id, false};
    }
  }
  const std::uint32_t id = next_referent_id();
  full_ids_.emplace_back(key, id);
  u32(id);
  return {id, true};
}

void Encoder::flush_deferred() {
  std::vector<Deferred> queue;
  queue.swap(deferred_);
  for (auto& fn : queue) {
    fn(*this);
    flush_deferred();
  }
}

void Encoder::union_discriminant(SwitchType type, std::uint32_t value) {
  switch (type) {
    case SwitchType::kU8:
      u8(static_cast<std::uint8_t>(value));
      break;
    case SwitchType::kU16:
    case SwitchType::kEnum16:
      u16(static_cast<std::uint16_t>(value));
      break;
    case SwitchType::kU32:
      u32(value);
      break;
  }
}

}  // namespace rpcgate::ndr
