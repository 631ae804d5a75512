// Errors of the runtime component (rpcgate.runtime category).
//
// The values are the Windows error numbers the same failure has in the Microsoft RPC runtime, so
// `ec.value()` can be shown, logged or returned as an exit status unchanged, and a broker status
// (broker_protocol.h) maps to the Errc with the same number.
#pragma once

#include <cstdint>
#include <optional>
#include <system_error>

namespace rpcgate::runtime {

enum class Errc : int {
  kAccessDenied = 5,          // ERROR_ACCESS_DENIED: broker refused (caller may not hold ports)
  kInvalidParameter = 87,     // ERROR_INVALID_PARAMETER: the port policy is invalid / bad argument
  kTimeout = 1460,            // ERROR_TIMEOUT: a connect/read/write deadline passed
  kInvalidBinding = 1702,     // RPC_S_INVALID_BINDING: broker called over a transport without fds
  kUnknownInterface = 1717,   // RPC_S_UNKNOWN_IF: the bind was rejected for an interface
  kOutOfResources = 1721,     // RPC_S_OUT_OF_RESOURCES: every port of the class is held/unbindable
  kServerUnavailable = 1722,  // RPC_S_SERVER_UNAVAILABLE: connect() failed / not connected
  kCallFailed = 1726,         // RPC_S_CALL_FAILED: the server answered with a fault, or the
                              // connection closed during a call
  kProtocolError = 1728,      // RPC_S_PROTOCOL_ERROR: a reply that does not decode, missing or
                              // truncated file descriptors (MSG_CTRUNC), unexpected PDU type
  kEptInvalidEntry = 1751,    // EPT_S_INVALID_ENTRY: the EPM rejected the entry (bad tower, nil
                              // interface, annotation > 63 characters, would downgrade a minor)
  kEptCantPerformOp = 1752,   // EPT_S_CANT_PERFORM_OP: the EPM refused (caller may not register,
                              // or a registration cap is reached)
  kEptNotRegistered = 1753,   // EPT_S_NOT_REGISTERED: no such entry (unregister)
};

const std::error_category& runtime_category();
std::error_code make_error_code(Errc e);

// The Errc for a broker / Windows status word (5, 87, 1702, 1721), nullopt for any other value.
std::optional<Errc> errc_from_status(std::uint32_t status);

// The Errc for a non-zero endpoint-mapper status word: the DCE values (ept_s_invalid_entry
// 0x16c9a0d3, ept_s_cant_perform_op 0x16c9a0cd, ept_s_not_registered 0x16c9a0d6) and their
// Windows numbers (1751, 1752, 1753) map to kEptInvalidEntry / kEptCantPerformOp /
// kEptNotRegistered, 5 to kAccessDenied, anything else to kCallFailed (the raw status is kept by
// the caller, e.g. EpmdClient::last_status()). Status 0 is not an error: callers test it first.
Errc errc_from_ept_status(std::uint32_t status);

}  // namespace rpcgate::runtime

template <>
struct std::is_error_code_enum<rpcgate::runtime::Errc> : std::true_type {};
