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
};

const std::error_category& runtime_category();
std::error_code make_error_code(Errc e);

// The Errc for a broker / Windows status word (5, 87, 1702, 1721), nullopt for any other value.
std::optional<Errc> errc_from_status(std::uint32_t status);

}  // namespace rpcgate::runtime

template <>
struct std::is_error_code_enum<rpcgate::runtime::Errc> : std::true_type {};
