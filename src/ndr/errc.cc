#include "ndr/errc.h"

#include "common/error.h"

namespace rpcgate::ndr {

const char* describe(Errc e) {
  switch (e) {
    case Errc::kTruncated:
      return "NDR: truncated stub";
    case Errc::kCountOverLimit:
      return "NDR: count exceeds limit or remaining bytes";
    case Errc::kCountInconsistent:
      return "NDR: inconsistent conformance/variance counts";
    case Errc::kNullRefPointer:
      return "NDR: NULL [ref] pointer";
    case Errc::kBadUnionDiscriminant:
      return "NDR: bad union discriminant";
    case Errc::kStringNotTerminated:
      return "NDR: [string] not NUL-terminated";
    case Errc::kStringEmbeddedNul:
      return "NDR: [string] with embedded NUL";
    case Errc::kStringNonZeroOffset:
      return "NDR: [string] with non-zero offset";
    case Errc::kEnumOutOfRange:
      return "NDR: 16-bit enum value out of range";
    case Errc::kDepthExceeded:
      return "NDR: nesting depth exceeded";
    case Errc::kAllocOverLimit:
      return "NDR: total allocation limit exceeded";
    case Errc::kTrailingBytes:
      return "NDR: trailing bytes after last field";
    case Errc::kBadFullPointer:
      return "NDR: invalid full pointer alias";
    case Errc::kTowerFloorCount:
      return "tower: floor_count out of range";
    case Errc::kTowerFloorLength:
      return "tower: lhs/rhs length inconsistent with protocol id";
    case Errc::kTowerBadFloor:
      return "tower: unexpected protocol id for floor";
    case Errc::kTowerUnsupported:
      return "tower: no known protocol sequence";
    case Errc::kBindingSyntax:
      return "string binding: syntax error";
    case Errc::kBindingBadObjectUuid:
      return "string binding: bad object UUID";
    case Errc::kBindingUnknownProtseq:
      return "string binding: unknown protocol sequence";
    case Errc::kBindingBadNetworkAddr:
      return "string binding: bad network address";
    case Errc::kBindingBadEndpoint:
      return "string binding: bad endpoint";
    case Errc::kBindingBadOption:
      return "string binding: bad option";
  }
  return "NDR: unknown error";
}

const std::error_category& ndr_category() {
  static const common::EnumCategory<Errc> c("rpcgate.ndr", &describe);
  return c;
}

std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), ndr_category()};
}

}  // namespace rpcgate::ndr
