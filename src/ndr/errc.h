// Errors of the NDR component: NDR20 primitives, protocol towers, string bindings, EPM stubs.
//
// Every decoder in src/ndr/ returns std::expected<T, std::error_code> whose error is one of these
// (category "rpcgate.ndr"). The firewall maps any of them to "malformed stub" (rpc_x_bad_stub_data,
// 0x6F7, when it answers with a fault); the values are stable and may be logged.
#pragma once

#include <expected>
#include <system_error>

namespace rpcgate::ndr {

enum class Errc : int {
  // --- NDR primitives (C706 ch. 14) ---
  kTruncated = 1,         // a read (value, pad, array body) runs past the end of the stub
  kCountOverLimit,        // a wire count exceeds DecodeLimits or the bytes that remain
  kCountInconsistent,     // offset + actual_count > max_count, size_is/length_is mismatch
  kNullRefPointer,        // an embedded [ref] pointer with referent id 0
  kBadUnionDiscriminant,  // discriminant mismatch or no arm for it
  kStringNotTerminated,   // [string] whose last element (at actual_count) is not NUL
  kStringEmbeddedNul,     // [string] with a NUL before actual_count
  kStringNonZeroOffset,   // [string] varying part with offset != 0 (MIDL never sends one)
  kEnumOutOfRange,        // 16-bit enum above 0x7fff (MIDL: RPC_X_ENUM_VALUE_OUT_OF_RANGE)
  kDepthExceeded,         // nesting / deferral recursion deeper than DecodeLimits::max_depth
  kAllocOverLimit,        // total decoded allocation above DecodeLimits::max_total_alloc
  kTrailingBytes,         // bytes left after the last field of a stub or tower
  kBadFullPointer,        // full pointer referent id reused where aliasing is impossible
  // --- Towers (C706 App. L, MS-RPCE 3.1.3.5.3) ---
  kTowerFloorCount,   // floor_count below the minimum or above TowerLimits::max_floors
  kTowerFloorLength,  // lhs/rhs length inconsistent with the floor's protocol id
  kTowerBadFloor,     // a floor's protocol id is not what its position requires
  kTowerUnsupported,  // tower is well formed but maps to no known protocol sequence
  // --- String bindings (C706 App. "String Bindings"; MS "String Binding") ---
  kBindingSyntax,          // structure: missing ':', unbalanced '[', dangling escape, ...
  kBindingBadObjectUuid,   // text before '@' is not a UUID
  kBindingUnknownProtseq,  // protseq not in the supported table
  kBindingBadNetworkAddr,  // address invalid for the protseq (bad IPv6 literal, control char)
  kBindingBadEndpoint,     // endpoint invalid for the protseq (port not 0-65535, pipe name)
  kBindingBadOption,       // option without '=' or with an empty key
};

const std::error_category& ndr_category();
std::error_code make_error_code(Errc e);
const char* describe(Errc e);

// The result type of every fallible function in this component.
template <typename T>
using Result = std::expected<T, std::error_code>;

// Shorthand for `return fail(Errc::kTruncated);` inside functions returning Result<T>.
inline std::unexpected<std::error_code> fail(Errc e) {
  return std::unexpected(make_error_code(e));
}

}  // namespace rpcgate::ndr

template <>
struct std::is_error_code_enum<rpcgate::ndr::Errc> : std::true_type {};
