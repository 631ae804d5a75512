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
      return "An ept_map request or response (or, with lookup pinholes, an ept_lookup request) "
             "came in more than one fragment.";
    case DropReason::kEpmBadMap:
      return "An ept_map request or response (or, with lookup pinholes, an ept_lookup one) did "
             "not decode.";
    case DropReason::kEpmTooManyMaps:
      return "Too many ept_map (or ept_lookup) requests were awaiting their answer on one "
             "connection.";
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

Inspector::Inspector(rpc::TimePoint now, rpc::ObserverLimits limits, rpc::ConnectionOptions options)
    : engine_(rpc::ObserverRole{limits}, options, *this, now) {}

std::vector<Action> Inspector::feed(rpc::Direction direction, std::span<const std::uint8_t> bytes,
                                    rpc::TimePoint now) {
  return run([&](rpc::Connection& e) { e.feed(direction, bytes, now); }, DropReason::kProtocol);
}

std::vector<Action> Inspector::on_expiry(rpc::TimePoint now) {
  return run([&](rpc::Connection& e) { e.on_expiry(now); }, DropReason::kTimeout);
}

std::optional<rpc::TimePoint> Inspector::next_expiry() const {
  if (dropped_) return std::nullopt;
  return engine_.next_expiry();
}

void Inspector::drop(DropReason why, std::error_code error, std::optional<rpc::SyntaxId> interface,
                     std::optional<std::uint16_t> opnum) {
  if (dropped_) return;
  dropped_ = true;
  Action a;
  a.kind = Action::Kind::kDrop;
  a.drop = why;
  a.error = error;
  a.interface = interface;
  a.opnum = opnum;
  out_.push_back(std::move(a));
  engine_.close(rpc::CloseReason::kProtocol, rpc::TimePoint{}, error);
}

}  // namespace rpcgate::firewall
