#include "runtime/broker_service.h"

#include <chrono>
#include <fstream>

#include <sys/socket.h>
#include <unistd.h>

#include "ndr/binding.h"
#include "ndr/tower.h"
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

// /proc/PID/comm without its newline, "?" when it cannot be read (the process is gone, /proc is
// mounted hidepid, or there is no pid). Read once per lease: the name a process had when it took
// its lease is the one an operator looks for (a later exec would not change what it serves).
std::string command_of(const std::string& proc_root, std::uint32_t pid) {
  if (pid == 0) return "?";
  std::ifstream in(proc_root + "/" + std::to_string(pid) + "/comm");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return "?";
  return name;
}

// The registered tower as a string binding; "?" when it names none.
std::string binding_of(const epm::Entry& e) {
  auto b = ndr::tower_to_binding(e.tower);
  return b ? ndr::format_binding(*b) : "?";
}

status::Registration registration_of(const epm::Entry& e) {
  status::Registration r;
  r.object = e.object;
  r.interface = e.interface.uuid;
  r.major = e.interface.major;
  r.minor = e.interface.minor;
  r.annotation = e.annotation;
  r.binding = binding_of(e);
  r.uid = e.authority > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(e.authority);
  return r;
}

// The class a held port is counted in when no allocation record says: the set that holds it
// (internet first, as the pools list it).
policy::PortClass class_in(const policy::Policy& p, std::uint16_t port) {
  if (p.internet.contains(port)) return policy::PortClass::kInternet;
  return policy::PortClass::kIntranet;
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
      case status::kOpQueryStatus:
        return query_status(ctx, std::move(r));
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
      auto cls = static_cast<policy::PortClass>(req->port_class);
      if (cls == policy::PortClass::kDefault) cls = broker_.policy().default_class;
      lease_of(ctx).ports[*port] = {cls, wall_now()};
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
    if (auto it = leases_.find(ctx.connection_id); it != leases_.end())
      it->second.ports.erase(req->port);
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
    lease_of(ctx);
    if (lease_) lease_(ctx.connection_id);
  }
  emit(ev);
  r.reply(broker::encode(broker::ReleasePortResponse{ev.status}, ctx.endian));
}

void BrokerService::query_status(IncomingCall& ctx, Responder r) {
  auto req = status::decode_query_status_request(ctx.stub, ctx.endian);
  if (!req) return r.fault(kFaultBadStubData);
  status::StatusReport report;
  if (const auto refused = refusal_status(ctx); refused != broker::kStatusOk) {
    BrokerEvent ev = event_for(ctx);
    ev.kind = BrokerEvent::Kind::kRefused;
    ev.status = refused;
    emit(ev);
    report.status = refused;
  } else if (req->flags != 0) {
    report.status = broker::kStatusInvalidParameter;
  } else {
    report = status_report();
  }
  report.now = wall_now();
  r.reply(status::encode(report, ctx.endian));
}

status::StatusReport BrokerService::status_report() const {
  status::StatusReport report;
  report.now = wall_now();
  const auto stats = broker_.stats().allocator;
  auto pool = [](policy::PortClass cls, const policy::PortAllocator::ClassStats& s) {
    return status::Pool{cls, static_cast<std::uint32_t>(s.capacity),
                        static_cast<std::uint32_t>(s.held), static_cast<std::uint32_t>(s.free)};
  };
  report.pools = {pool(policy::PortClass::kInternet, stats.internet),
                  pool(policy::PortClass::kIntranet, stats.intranet)};
  std::map<std::uint64_t, std::size_t> index;  // connection id -> report.leases position
  for (const auto& [id, rec] : leases_) {
    status::Lease l;
    l.connection_id = id;
    l.since = rec.since;
    l.pid = rec.pid;
    l.uid = rec.uid;
    l.gid = rec.gid;
    l.command = rec.command;
    for (const std::uint16_t port : broker_.holdings(id)) {
      auto it = rec.ports.find(port);
      l.ports.push_back(it != rec.ports.end()
                            ? status::HeldPort{port, it->second.port_class, it->second.since}
                            : status::HeldPort{port, class_in(broker_.policy(), port), rec.since});
    }
    index[id] = report.leases.size();
    report.leases.push_back(std::move(l));
  }
  if (endpoint_map_ == nullptr) return report;
  for (const auto& [entry_id, e] : endpoint_map_->entries()) {
    status::Registration r = registration_of(e);
    if (auto it = index.find(e.owner); it != index.end()) {
      r.kind = status::Kind::kLeased;
      r.connection_id = e.owner;
      report.leases[it->second].registrations.push_back(std::move(r));
      continue;
    }
    if (e.authority == epm::kEpmdAuthority) {
      r.kind = e.owner == epm::kPersistentOwner ? status::Kind::kEpmd : status::Kind::kStatic;
    } else {
      // Persistent; also a leased entry whose lease this service never granted (none today).
      r.kind = status::Kind::kPersistent;
    }
    report.registrations.push_back(std::move(r));
  }
  return report;
}

BrokerService::LeaseRecord& BrokerService::lease_of(const IncomingCall& ctx) {
  auto [it, fresh] = leases_.try_emplace(ctx.connection_id);
  if (fresh) {
    auto& rec = it->second;
    if (ctx.peer_cred) {
      rec.pid = static_cast<std::uint32_t>(ctx.peer_cred->pid);
      rec.uid = ctx.peer_cred->uid;
      rec.gid = ctx.peer_cred->gid;
    } else if (ctx.peer_uid) {
      rec.uid = *ctx.peer_uid;
    }
    rec.command = command_of(options_.proc_root, rec.pid);
    rec.since = wall_now();
  }
  return it->second;
}

std::uint64_t BrokerService::wall_now() const {
  if (options_.wall_clock) return options_.wall_clock();
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count());
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
  leases_.erase(connection_id);
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
