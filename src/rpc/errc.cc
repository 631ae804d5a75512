#include "rpc/errc.h"

#include "common/error.h"

namespace rpcgate::rpc {

const char* describe(Errc e) {
  switch (e) {
    case Errc::kOk:
      return "success";
    case Errc::kTruncated:
      return "PDU truncated";
    case Errc::kBadVersion:
      return "unsupported rpc_vers/rpc_vers_minor (need 5.0 or 5.1)";
    case Errc::kUnsupportedPtype:
      return "unsupported PDU type";
    case Errc::kBadDrep:
      return "unsupported packed_drep (need ASCII, IEEE, big/little endian)";
    case Errc::kFragTooShort:
      return "frag_length below the PDU type's fixed header";
    case Errc::kFragTooLong:
      return "frag_length above the configured maximum";
    case Errc::kFragLengthMismatch:
      return "input size differs from frag_length";
    case Errc::kAuthLengthInconsistent:
      return "auth_length inconsistent with frag_length";
    case Errc::kAuthTrailerMisaligned:
      return "sec_trailer not 4-byte aligned";
    case Errc::kAuthPadTooLong:
      return "auth_pad_length larger than the stub";
    case Errc::kTooManyContextItems:
      return "too many presentation context items";
    case Errc::kTooManyTransferSyntaxes:
      return "too many transfer syntaxes in a context item";
    case Errc::kTooManyResults:
      return "too many presentation context results";
    case Errc::kTrailingBytes:
      return "unexpected bytes after the PDU body";
    case Errc::kFramerFailed:
      return "framer already failed (stream cannot resync)";
    case Errc::kFragmentMismatch:
      return "fragment disagrees with the first fragment of its call";
    case Errc::kUnknownCall:
      return "fragment for a call that is not in progress (missing FIRST)";
    case Errc::kDuplicateFirstFragment:
      return "FIRST fragment for a call already in progress";
    case Errc::kStubTooLarge:
      return "reassembled stub too large";
    case Errc::kTooManyCalls:
      return "too many calls in progress";
    case Errc::kNotARequest:
      return "PDU is not a request";
    case Errc::kNotAResponse:
      return "PDU is neither a response nor a fault";
    case Errc::kReassemblyBudget:
      return "unfinished calls would exceed the connection's reassembly budget";
    case Errc::kCallTimeout:
      return "a call's fragments did not arrive within the call deadline";
    case Errc::kInvalidArgument:
      return "PDU cannot be encoded (invalid field values)";
    case Errc::kTooLargeToEncode:
      return "encoded PDU would exceed 65535 bytes";
    case Errc::kBindAlreadyDone:
      return "second bind on an already bound connection";
    case Errc::kAlterBeforeBind:
      return "alter_context before bind";
    case Errc::kRequestBeforeBind:
      return "request before the association was bound";
    case Errc::kContextNotAccepted:
      return "presentation context not accepted by the server";
    case Errc::kContextRedefined:
      return "alter_context redefines an accepted presentation context";
    case Errc::kDuplicateContextId:
      return "p_cont_id offered twice with different syntaxes";
    case Errc::kNoContextItems:
      return "bind/alter_context without context items";
    case Errc::kNoTransferSyntaxes:
      return "context item without transfer syntaxes";
    case Errc::kInterleavedCall:
      return "request fragment of another call while one is being reassembled";
    case Errc::kUnknownAssocGroup:
      return "bind names an unknown association group";
    case Errc::kTwoFeatureItems:
      return "bind with two bind-time feature negotiation items";
    case Errc::kTooManyContexts:
      return "too many presentation contexts on the association";
    case Errc::kByteOrderChanged:
      return "packed_drep differs from the bind";
    case Errc::kAuthNotSupported:
      return "authentication not supported or not negotiated";
    case Errc::kFragmentedBind:
      return "fragmented bind/alter_context";
    case Errc::kPresentationPending:
      return "bind/alter_context while another is pending";
    case Errc::kUnsolicitedBindAck:
      return "bind_ack/bind_nak/alter_context_resp without a matching pending bind";
    case Errc::kResultCountMismatch:
      return "number of context results differs from the items offered";
    case Errc::kInvalidContextResult:
      return "context result inconsistent with the items offered";
    case Errc::kUnexpectedPdu:
      return "PDU type not valid in this direction or state";
    case Errc::kAssociationClosed:
      return "association already closed";
    case Errc::kUnsolicitedResponse:
      return "response for a call that was never requested";
    case Errc::kUnsupportedVersion:
      return "protocol version not supported";
  }
  return "unknown rpc error";
}

const std::error_category& rpc_category() {
  static const common::EnumCategory<Errc> category("rpcgate.rpc", &describe);
  return category;
}

std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), rpc_category()};
}

}  // namespace rpcgate::rpc
