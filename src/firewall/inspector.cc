#include "firewall/inspector.h"

namespace rpcgate::firewall {

std::string_view to_string(DropReason r) {
  switch (r) {
    case DropReason::kProtocol:
      return "protocol";
    case DropReason::kEpmOtherInterface:
      return "epm-other-interface";
    case DropReason::kEpmRegistration:
      return "epm-registration";
    case DropReason::kEpmFragmentedMap:
      return "epm-fragmented-map";
    case DropReason::kEpmBadMap:
      return "epm-bad-map";
    case DropReason::kEpmTooManyMaps:
      return "epm-too-many-maps";
    case DropReason::kInterfaceNotAllowed:
      return "interface-not-allowed";
    case DropReason::kOpnumNotAllowed:
      return "opnum-not-allowed";
    case DropReason::kAuthLevel:
      return "auth-level";
    case DropReason::kTimeout:
      return "timeout";
    case DropReason::kMapNotAllowed:
      return "map-not-allowed";
    case DropReason::kEpmSealed:
      return "epm-sealed";
  }
  return "unknown";
}

std::string_view describe(DropReason r) {
  switch (r) {
    case DropReason::kProtocol:
      return "The connection broke a DCE/RPC protocol rule.";
    case DropReason::kEpmOtherInterface:
      return "A bind on the endpoint mapper's port offered an interface other than the endpoint "
             "mapper's.";
    case DropReason::kEpmRegistration:
      return "An endpoint registration (ept_insert, ept_delete or ept_mgmt_delete) came from the "
             "network.";
    case DropReason::kEpmFragmentedMap:
      return "An ept_map request or response came in more than one fragment.";
    case DropReason::kEpmBadMap:
      return "An ept_map request or response did not decode.";
    case DropReason::kEpmTooManyMaps:
      return "Too many ept_map requests were awaiting their answer on one connection.";
    case DropReason::kInterfaceNotAllowed:
      return "A bind or alter_context offered an interface no rule allows for this client and "
             "server.";
    case DropReason::kOpnumNotAllowed:
      return "A request called an operation its interface's rule does not allow.";
    case DropReason::kAuthLevel:
      return "A bind, alter_context or request was below the authentication level its rule "
             "requires.";
    case DropReason::kTimeout:
      return "The connection was idle, or a PDU did not complete, for too long.";
    case DropReason::kEpmSealed:
      return "An ept_map came at packet privacy (encrypted endpoint mapper): the firewall cannot "
             "read the answer, so it cannot open a pinhole; use integrity, or allow the ports "
             "statically.";
    case DropReason::kMapNotAllowed:
      return "An ept_map asked for an interface no rule allows: the firewall answered \"not "
             "registered\" itself and the server never saw the request.";
  }
  return "Unknown reason.";
}

}  // namespace rpcgate::firewall
