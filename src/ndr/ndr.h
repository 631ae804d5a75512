// NDR20 (transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.0) marshaling primitives.
// C706 ch. 14; MS-RPCE 2.2.4 (MIDL's representation choices). Sans-I/O: a Decoder reads one stub
// span, an Encoder appends to a buffer; nothing else.
//
// Byte order: integers, float/double and the first three UUID fields use the PDU's drep byte
// order (the caller passes it as common::Endian). Characters are ASCII, floats IEEE 754 (the only
// drep formats rpcgate accepts; the PDU layer rejects others). Towers are *not* NDR (tower.h).
//
// Alignment: every primitive of size n (2, 4, 8) is aligned to n *relative to the start of the
// stub span* (C706 14.2.2). Decoders skip pad bytes whatever their value (Impacket pads with 0xaa
// and 0xab); encoders write zero pad.
//
// Constructed types (C706 14.3) are composed by the caller:
//   arrays   conformant_array / varying_array / conformant_varying_array read the header(s),
//            check the counts and return an ArrayShape; the caller then reads `wire_count()`
//            elements. Checks happen before any allocation: max_count and actual_count against
//            DecodeLimits::max_array_elements, offset + actual_count <= max_count (or the fixed
//            bound), count * element size <= remaining bytes, and the total allocation budget.
//   strings  [string] char / wchar_t (conformant-varying, or varying inside a struct with a fixed
//            bound); offset must be 0, the element at actual_count - 1 must be NUL and no other.
//   pointers ref (top level: nothing on the wire; embedded: a non-zero referent id), unique
//            (0 = NULL, any other value is a referent id: Impacket sends 1, 2, ... or random,
//            Windows and Samba 0x00020000, 0x00020004, ...), full (referent ids alias: the
//            first occurrence carries the referent, later ones refer back to it).
//   deferral Referents of pointers *embedded* in a structure or array are marshalled after the
//            whole top-level construct (C706 14.3.12.3). Both sides keep a FIFO queue: while
//            reading or writing the construct, call defer(fn) for each non-NULL embedded
//            pointer; after the construct call flush_deferred(), which runs the callbacks in
//            order and runs the deferrals each callback queues *immediately after it* (so a
//            referent's own embedded pointees follow that referent, as MIDL and Samba emit
//            them). Callbacks must only capture objects that outlive flush_deferred() and whose
//            addresses do not change meanwhile (size vectors before deferring into them).
//            Top-level pointers (operation parameters) are not deferred: the referent follows
//            the referent id directly.
//   unions   union_discriminant() reads the discriminant (u8/u16/u32/enum16) that precedes the
//            arm both for encapsulated unions and for non-encapsulated [switch_is] unions
//            (MIDL writes the switch value again in front of the arm); for the latter pass the
//            [switch_is] value to check they agree. The caller then aligns to the arms' largest
//            alignment and reads the arm, returning Errc::kBadUnionDiscriminant for a value with
//            no arm and no [default].
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/bytes.h"
#include "common/uuid.h"
#include "ndr/errc.h"

namespace rpcgate::ndr {

using common::Endian;
using common::Uuid;

// Bounds applied to everything a Decoder reads from the wire.
struct DecodeLimits {
  std::size_t max_array_elements = 65536;   // per array (Snort caps EPM counts at UINT16_MAX)
  std::size_t max_string_length = 65536;    // per [string], in elements, NUL included
  std::size_t max_depth = 32;               // nested constructs + deferral levels
  std::size_t max_total_alloc = 16u << 20;  // bytes the decoded value may own in total
};

// A context handle on the wire (C706 ndr_context_handle; MS-RPCE 2.2.4.6): 20 bytes, align 4.
struct ContextHandle {
  std::uint32_t attributes = 0;  // context_handle_attributes, 0 in practice
  Uuid uuid;                     // context_handle_uuid; nil = the NULL handle
  bool is_null() const { return attributes == 0 && uuid.is_nil(); }
  friend bool operator==(const ContextHandle&, const ContextHandle&) = default;
};

// Counts of an array as read from the wire. For a conformant array offset = 0 and
// actual_count = max_count; for a varying array max_count is the fixed bound from the IDL.
struct ArrayShape {
  std::uint32_t max_count = 0;
  std::uint32_t offset = 0;
  std::uint32_t actual_count = 0;
  std::uint32_t wire_count() const { return actual_count; }  // elements present on the wire
};

// A full pointer as read: NULL, the first occurrence of a referent id (the referent follows,
// deferred or not as the position requires), or a later occurrence (no referent on the wire).
struct FullPointer {
  std::uint32_t referent_id = 0;
  bool first = false;
  bool is_null() const { return referent_id == 0; }
};

// Width of a union discriminant (C706 14.3.8: the discriminant's own IDL type).
enum class SwitchType : std::uint8_t { kU8, kU16, kU32, kEnum16 };

class Decoder {
 public:
  using Deferred = std::function<Result<void>(Decoder&)>;

  Decoder(std::span<const std::uint8_t> stub, Endian endian, DecodeLimits limits = {})
      : reader_(stub, endian), limits_(limits) {}
  // The Decoder keeps a view: refuse temporaries that would dangle.
  Decoder(std::vector<std::uint8_t>&&, Endian, DecodeLimits = {}) = delete;
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  Endian endian() const { return reader_.endian(); }
  std::size_t position() const { return reader_.position(); }
  std::size_t remaining() const { return reader_.remaining(); }
  const DecodeLimits& limits() const { return limits_; }
  // Records the stub offset of every pad byte skipped from now on (tests use it to compare a
  // re-encoding with zero pad against a peer's non-zero pad). Pass nullptr to stop.
  void record_padding(std::vector<std::size_t>* out) { pad_log_ = out; }

  // Skips pad to a multiple of `n` (1, 2, 4, 8) from the stub start. kTruncated if the pad is.
  // Inline (with u16/u32 below): NDR decoding is on every call's path.
  Result<void> align(std::size_t n) {
    const std::size_t pad = (n - reader_.position() % n) % n;
    if (pad > reader_.remaining()) return fail(Errc::kTruncated);
    if (pad_log_ != nullptr) log_pad(pad);
    reader_.skip(pad);
    return {};
  }
  // Aligned reads (C706 14.2). Errors: kTruncated.
  Result<std::uint8_t> u8();
  Result<std::uint16_t> u16() {
    if (auto r = align(2); !r) return std::unexpected(r.error());
    auto v = reader_.u16();
    if (!v) return fail(Errc::kTruncated);
    return *v;
  }
  Result<std::uint32_t> u32() {
    if (auto r = align(4); !r) return std::unexpected(r.error());
    auto v = reader_.u32();
    if (!v) return fail(Errc::kTruncated);
    return *v;
  }
  Result<std::uint64_t> u64();  // hyper, align 8
  Result<std::int8_t> i8();
  Result<std::int16_t> i16();
  Result<std::int32_t> i32();
  Result<std::int64_t> i64();
  Result<float> f32();     // IEEE single, align 4
  Result<double> f64();    // IEEE double, align 8
  Result<bool> boolean();  // one octet, 0 = FALSE, any other value TRUE (C706 14.2.3)
  // C706/MIDL default enum: u16, align 2; values above 0x7fff -> kEnumOutOfRange.
  Result<std::uint16_t> enum16();
  Result<std::uint32_t> enum32();  // MIDL [v1_enum]: u32, align 4
  // n raw octets, no alignment; the view points into the stub.
  Result<std::span<const std::uint8_t>> bytes(std::size_t n);
  Result<Uuid> uuid();                     // align 4, NDR layout for endian()
  Result<ContextHandle> context_handle();  // align 4

  // --- arrays (C706 14.3.3) ---
  // Conformant: u32 max_count. Checks max_count against limits and remaining bytes.
  Result<ArrayShape> conformant_array(std::size_t element_size);
  // Varying with a fixed bound (IDL array size): u32 offset, u32 actual_count.
  Result<ArrayShape> varying_array(std::uint32_t bound, std::size_t element_size);
  // Conformant-varying: max_count, offset, actual_count.
  Result<ArrayShape> conformant_varying_array(std::size_t element_size);
  // Charges `bytes` against DecodeLimits::max_total_alloc; kAllocOverLimit when exceeded.
  // The array helpers charge wire_count() * element_size themselves; callers charge what they
  // allocate beyond that (e.g. a struct per element, or copies made for full-pointer aliases).
  Result<void> charge(std::size_t bytes);

  // --- strings (C706 14.3.4) ---
  Result<std::string> string();      // [string] char*: conformant-varying, u8 elements
  Result<std::u16string> wstring();  // [string] wchar_t*: conformant-varying, u16 elements
  // [string] char name[bound] inside a structure: varying only (offset, actual_count).
  Result<std::string> varying_string(std::uint32_t bound);

  // --- pointers (C706 14.3.10-14.3.12) ---
  Result<std::uint32_t> referent_id();  // raw u32, align 4
  // Unique pointer: true if non-NULL (then the referent follows or is deferred by the caller).
  Result<bool> unique_pointer();
  // Embedded [ref] pointer: a referent id that must be non-zero (kNullRefPointer).
  Result<void> embedded_ref_pointer();
  // Full pointer (aliasing map scoped to this Decoder, i.e. one stub).
  Result<FullPointer> full_pointer();

  // --- deferral (see header comment) ---
  void defer(Deferred fn) { deferred_.push_back(std::move(fn)); }
  bool has_deferred() const { return !deferred_.empty(); }
  // Runs the queued callbacks; first error wins. kDepthExceeded for runaway recursion.
  Result<void> flush_deferred();

  // --- unions (C706 14.3.8) ---
  // Reads the discriminant; if `switch_is` is given it must equal the wire value.
  Result<std::uint32_t> union_discriminant(SwitchType type,
                                           std::optional<std::uint32_t> switch_is = {});

  // --- nesting ---
  // enter() before decoding a nested construct and leave() after; kDepthExceeded past the limit.
  Result<void> enter();
  void leave() { --depth_; }

  // kTrailingBytes if anything is left in the stub.
  Result<void> expect_end() const;

 private:
  Result<std::span<const std::uint8_t>> aligned(std::size_t n);
  Result<void> check_count(std::uint64_t count, std::size_t element_size);
  Result<ArrayShape> varying_array_header(std::uint32_t bound);  // offset + actual <= bound
  template <typename Char>
  Result<std::basic_string<Char>> string_body(const ArrayShape& shape);

  common::ByteReader reader_;
  DecodeLimits limits_;
  void log_pad(std::size_t pad);
  std::vector<std::size_t>* pad_log_ = nullptr;
  std::vector<Deferred> deferred_;
  std::unordered_set<std::uint32_t> full_ids_;
  std::size_t depth_ = 0;
  std::size_t allocated_ = 0;
};

// How an Encoder numbers referents. Windows and Samba: 0x00020000, then +4 (kMicrosoft);
// Impacket-style small integers 1, 2, 3, ... (kSequential). Decoders accept any non-zero id.
enum class ReferentStyle : std::uint8_t { kMicrosoft, kSequential };

struct EncodeOptions {
  ReferentStyle referent_style = ReferentStyle::kMicrosoft;
  // First id to issue; 0 = the style's default (0x00020000 or 1). Later ids step by 4 or 1.
  std::uint32_t first_referent_id = 0;
};

class Encoder {
 public:
  using Deferred = std::function<void(Encoder&)>;

  explicit Encoder(Endian endian, EncodeOptions options = {})
      : writer_(endian), options_(options) {}
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  Endian endian() const { return writer_.endian(); }
  std::size_t size() const { return writer_.size(); }
  const std::vector<std::uint8_t>& buffer() const { return writer_.buffer(); }
  std::vector<std::uint8_t> take() { return writer_.take(); }
  // Capacity hint (the final size of a stub, when the caller can bound it).
  void reserve(std::size_t n) { writer_.reserve(n); }

  void align(std::size_t n) { writer_.align(n); }  // zero pad
  void u8(std::uint8_t v) { writer_.u8(v); }
  void u16(std::uint16_t v) {
    writer_.align(2);
    writer_.u16(v);
  }
  void u32(std::uint32_t v) {
    writer_.align(4);
    writer_.u32(v);
  }
  void u64(std::uint64_t v);
  void i8(std::int8_t v) { u8(static_cast<std::uint8_t>(v)); }
  void i16(std::int16_t v) { u16(static_cast<std::uint16_t>(v)); }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f32(float v);
  void f64(double v);
  void boolean(bool v) { u8(v ? 1 : 0); }
  void enum16(std::uint16_t v) { u16(v); }  // caller keeps v <= 0x7fff
  void enum32(std::uint32_t v) { u32(v); }
  void bytes(std::span<const std::uint8_t> b) { writer_.bytes(b); }
  void uuid(const Uuid& u);
  void context_handle(const ContextHandle& h);

  void conformance(std::uint32_t max_count) { u32(max_count); }
  void variance(std::uint32_t offset, std::uint32_t actual_count) {
    u32(offset);
    u32(actual_count);
  }
  void string(std::string_view s);          // conformant-varying, NUL appended
  void wstring(std::u16string_view s);      // conformant-varying, NUL appended
  void varying_string(std::string_view s);  // varying only, NUL appended

  // Allocates the next referent id.
  std::uint32_t next_referent_id();
  // Writes 0 or a fresh referent id; returns the id written.
  std::uint32_t unique_pointer(bool present);
  // Full pointer keyed by object identity: a fresh id and first = true the first time `key` is
  // seen, the same id and first = false afterwards; nullptr writes NULL.
  FullPointer full_pointer(const void* key);

  void defer(Deferred fn) { deferred_.push_back(std::move(fn)); }
  void flush_deferred();
  void union_discriminant(SwitchType type, std::uint32_t value);

 private:
  common::ByteWriter writer_;
  EncodeOptions options_;
  std::uint32_t referents_issued_ = 0;
  std::vector<Deferred> deferred_;
  std::vector<std::pair<const void*, std::uint32_t>> full_ids_;
};

}  // namespace rpcgate::ndr
