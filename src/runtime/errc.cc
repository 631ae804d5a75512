#include "runtime/errc.h"

#include "common/error.h"

namespace rpcgate::runtime {
namespace {

const char* describe(Errc e) {
  switch (e) {
    case Errc::kAccessDenied:
      return "access denied (5)";
    case Errc::kInvalidParameter:
      return "the parameter is incorrect: invalid port policy (87)";
    case Errc::kTimeout:
      return "timed out (1460)";
    case Errc::kInvalidBinding:
      return "the binding handle is invalid: transport cannot carry file descriptors (1702)";
    case Errc::kUnknownInterface:
      return "the interface is unknown: bind rejected (1717)";
    case Errc::kOutOfResources:
      return "not enough resources are available: no free port in the class (1721)";
    case Errc::kServerUnavailable:
      return "the RPC server is unavailable (1722)";
    case Errc::kCallFailed:
      return "the remote procedure call failed (1726)";
    case Errc::kProtocolError:
      return "a remote procedure call protocol error occurred (1728)";
    case Errc::kEptInvalidEntry:
      return "the endpoint mapper rejected the entry: invalid entry (1751)";
    case Errc::kEptCantPerformOp:
      return "the endpoint mapper cannot perform the operation: registration refused or a cap "
             "reached (1752)";
    case Errc::kEptNotRegistered:
      return "the endpoint is not registered in the endpoint mapper (1753)";
  }
  return "unknown runtime error";
}

}  // namespace

const std::error_category& runtime_category() {
  static const common::EnumCategory<Errc> c("rpcgate.runtime", &describe);
  return c;
}

std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), runtime_category()};
}

std::optional<Errc> errc_from_status(std::uint32_t status) {
  switch (status) {
    case 5:
      return Errc::kAccessDenied;
    case 87:
      return Errc::kInvalidParameter;
    case 1702:
      return Errc::kInvalidBinding;
    case 1721:
      return Errc::kOutOfResources;
    default:
      return std::nullopt;
  }
}

Errc errc_from_ept_status(std::uint32_t status) {
  switch (status) {
    case 0x16c9a0d3:  // ept_s_invalid_entry
    case 1751:
      return Errc::kEptInvalidEntry;
    case 0x16c9a0cd:  // ept_s_cant_perform_op
    case 1752:
      return Errc::kEptCantPerformOp;
    case 0x16c9a0d6:  // ept_s_not_registered
    case 1753:
      return Errc::kEptNotRegistered;
    case 5:
      return Errc::kAccessDenied;
    default:
      return Errc::kCallFailed;
  }
}

}  // namespace rpcgate::runtime
