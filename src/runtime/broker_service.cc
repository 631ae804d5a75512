#include "runtime/broker_service.h"

#include <sys/socket.h>
#include <unistd.h>

#include "runtime/net.h"

namespace rpcgate::runtime {
namespace {

bool family_available(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// The event of one broker call, naming who asked.
BrokerEvent event_for(const IncomingCall& ctx) {
  BrokerEvent ev;
  ev.connection_id = ctx.connection_id;
  ev.peer = ctx.peer_cred;
  ev.peer_address = ctx.peer_address;
  return ev;
}

// Whether the caller may use the broker at all: 0 if so; 1702 over TCP (the broker hands out
// descriptors, a local-only thing); 5 for a local peer that is not a registrant.
std::uint32_t refusal_status(const IncomingCall& ctx) {
  if (ctx.transport != Transport::kUnix) return broker::kStatusInvalidBinding;
  if (!ctx.may_register) return broker::kStatusAccessDenied;
  return broker::kStatusOk;
}

}  // namespace

BrokerService::BrokerService(epm::PortBroker& broker, BrokerOptions options)
    : broker_(broker), options_(std::move(options)) {
  if (!family_available(AF_INET6)) options_.ipv6_addresses.clear();
}

bool BrokerService::attach(Server& server) {
  if (!server.add_interface(broker::broker_syntax(), handler(), broker::kMaxRequestStub))
    return false;
  server.on_connection_closed([this](std::uint64_t id) { connection_closed(id); });
  return true;
}

Handler BrokerService::handler() {
  return [this](IncomingCall& ctx, Responder r) {
    switch (ctx.opnum) {
      case broker::kOpAllocatePort:
        return allocate(ctx, std::move(r));
      case broker::kOpReleasePort:
        return release(ctx, std::move(r));
      case broker::kOpHoldLease:
        return hold_lease(ctx, std::move(r));
      default:
        return fault_op_range(r);
    }
  };
}

void BrokerService::allocate(IncomingCall& ctx, Responder r) {
  auto req = broker::decode_allocate_port_request(ctx.stub, ctx.endian);
  if (!req) return r.fault(kFaultBadStubData);
  BrokerEvent ev = event_for(ctx);
  ev.port_class = req->port_class;
  auto answer = [&](std::uint16_t port, std::uint32_t status, std::vector<int> fds = {}) {
    r.reply(broker::encode(broker::AllocatePortResponse{port, status}, ctx.endian), std::move(fds));
  };
  if (const auto refused = refusal_status(ctx); refused != broker::kStatusOk) {
    ev.kind = BrokerEvent::Kind::kRefused;
    ev.status = refused;
    emit(ev);
    return answer(0, ev.status);
  }
  if (ctx.peer_uid && *ctx.peer_uid != 0) {
    if (const auto held = held_by_uid(*ctx.peer_uid); held >= options_.max_ports_per_uid) {
      ev.kind = BrokerEvent::Kind::kRefused;
      ev.status = broker::kStatusOutOfResources;
      ev.budget = "max_ports_per_uid " + std::to_string(options_.max_ports_per_uid) + " (uid " +
                  std::to_string(*ctx.peer_uid) + " holds " + std::to_string(held) + ")";
      emit(ev);
      return answer(0, ev.status);
    }
  }
  std::vector<asio::ip::address> addresses;
  if (req->families & broker::kFamilyIpv4)
    addresses.insert(addresses.end(), options_.ipv4_addresses.begin(),
                     options_.ipv4_addresses.end());
  if (req->families & broker::kFamilyIpv6)
    addresses.insert(addresses.end(), options_.ipv6_addresses.begin(),
                     options_.ipv6_addresses.end());

  std::uint32_t status = broker::kStatusOk;
  std::vector<int> fds;
  if (req->port_class > static_cast<std::uint32_t>(policy::PortClass::kIntranet) ||
      addresses.empty()) {
    status = broker::kStatusInvalidParameter;
    ev.error = policy::make_error_code(policy::Errc::kInvalidParameter);
  } else {
    auto probe = [&](std::uint16_t port) {
      auto l = listen_tcp_same_port(addresses, port, options_.backlog, 1);
      if (!l) return false;
      for (auto& fd : l->fds)
        fds.push_back(fd.release());
      return true;
    };
    auto port =
        broker_.allocate(ctx.connection_id, static_cast<policy::PortClass>(req->port_class), probe);
    if (!port) {
      close_all(fds);
      ev.error = port.error().code;
      ev.failure = std::move(port.error().event);
      status = ev.error == policy::Errc::kInvalidParameter ? broker::kStatusInvalidParameter
                                                           : broker::kStatusOutOfResources;
    } else {
      if (ctx.peer_uid) {
        connections_by_uid_[*ctx.peer_uid].insert(ctx.connection_id);
        uid_of_connection_[ctx.connection_id] = *ctx.peer_uid;
      }
      ev.kind = BrokerEvent::Kind::kAllocated;
      ev.port = *port;
      if (lease_) lease_(ctx.connection_id);
      emit(ev);
      return answer(*port, broker::kStatusOk, std::move(fds));
    }
  }
  ev.kind = BrokerEvent::Kind::kAllocateFailed;
  ev.status = status;
  emit(ev);
  answer(0, status);
}

void BrokerService::release(IncomingCall& ctx, Responder r) {
  auto req = broker::decode_release_port_request(ctx.stub, ctx.endian);
  if (!req) return r.fault(kFaultBadStubData);
  BrokerEvent ev = event_for(ctx);
  ev.port = req->port;
  std::uint32_t status = broker::kStatusInvalidParameter;
  if (const auto refused = refusal_status(ctx); refused != broker::kStatusOk) {
    status = refused;
    ev.kind = BrokerEvent::Kind::kRefused;
  } else if (broker_.release(ctx.connection_id, req->port)) {
    status = broker::kStatusOk;
  }
  if (status == broker::kStatusInvalidParameter)
    ev.kind = BrokerEvent::Kind::kReleaseFailed;
  else if (status == broker::kStatusOk)
    ev.kind = BrokerEvent::Kind::kReleased;
  ev.status = status;
  emit(ev);
  r.reply(broker::encode(broker::ReleasePortResponse{status}, ctx.endian));
}

void BrokerService::hold_lease(IncomingCall& ctx, Responder r) {
  auto req = broker::decode_hold_lease_request(ctx.stub, ctx.endian);
  if (!req) return r.fault(kFaultBadStubData);
  BrokerEvent ev = event_for(ctx);
  if (const auto refused = refusal_status(ctx); refused != broker::kStatusOk) {
    ev.kind = BrokerEvent::Kind::kRefused;
    ev.status = refused;
  } else if (req->flags != 0) {
    ev.kind = BrokerEvent::Kind::kRefused;
    ev.status = broker::kStatusInvalidParameter;
  } else {
    ev.kind = BrokerEvent::Kind::kLeaseHeld;
    ev.status = broker::kStatusOk;
    if (lease_) lease_(ctx.connection_id);
  }
  emit(ev);
  r.reply(broker::encode(broker::ReleasePortResponse{ev.status}, ctx.endian));
}

std::size_t BrokerService::held_by_uid(uid_t uid) const {
  auto it = connections_by_uid_.find(uid);
  if (it == connections_by_uid_.end()) return 0;
  std::size_t held = 0;
  for (auto id : it->second)
    held += broker_.holdings(id).size();
  return held;
}

void BrokerService::connection_closed(std::uint64_t connection_id) {
  if (auto it = uid_of_connection_.find(connection_id); it != uid_of_connection_.end()) {
    auto by_uid = connections_by_uid_.find(it->second);
    if (by_uid != connections_by_uid_.end()) {
      by_uid->second.erase(connection_id);
      if (by_uid->second.empty()) connections_by_uid_.erase(by_uid);
    }
    uid_of_connection_.erase(it);
  }
  for (auto port : broker_.release_owner(connection_id)) {
    BrokerEvent ev;
    ev.kind = BrokerEvent::Kind::kConnectionGone;
    ev.connection_id = connection_id;
    ev.port = port;
    emit(ev);
  }
}

}  // namespace rpcgate::runtime
