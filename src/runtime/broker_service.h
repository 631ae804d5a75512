// The server side of the port broker (broker_protocol.h): AllocatePort / ReleasePort as a Handler
// on top of epm::PortBroker, which keeps who holds which port (owner = the Server's connection
// id) and describes every failure as an epm::BrokerEvent. Hosted by rpcgate-epmd on its Unix
// listener.
//
// AllocatePort: refuses over TCP (status 1702) and when the caller's IncomingCall::may_register is
// false (status 5); otherwise draws a port of the class from the PortBroker with a probe that
// really binds and listens it (net.h listen_tcp_same_port, all or nothing) on the configured
// addresses of every requested family (default 0.0.0.0 and ::), and replies with the port and the
// listening sockets as SCM_RIGHTS (IPv4 first). A family the host cannot open at all (no IPv6:
// EAFNOSUPPORT at construction) is left out rather than failing every request. Failures: status
// 87 (invalid policy: event RPCGATE-5820 naming the offending policy entry; or a request with an
// unknown class / no known family bit: no PortBroker event) or 1721 (every free port of the
// class is held or failed the probe: RPCGATE-1721). The port stays held by the calling connection
// until ReleasePort or the connection closes; connection_closed() (hooked by attach()) releases
// it (PortBroker::release_owner).
// A stub that does not decode gets fault rpc_x_bad_stub_data; other opnums nca_s_op_rng_error.
//
// Per uid (the caller's SO_PEERCRED uid; root exempt): at most BrokerOptions::max_ports_per_uid
// ports held at once by all of that uid's connections; over it AllocatePort answers 1721
// (RPC_S_OUT_OF_RESOURCES: what a registrant already treats as "no port for you now") without
// touching the pool, event kRefused with `budget` naming the limit.
//
// ReleasePort: status 0 if the port was held by this connection, else 87.
//
// Leases (issue 11, epm_service.h "Leases"): a successful AllocatePort, and HoldLease (status 0;
// refused as AllocatePort: 1702 over TCP, 5 without may_register; 87 for flags != 0), call the
// on_lease() callback with the connection id; the daemon makes that connection's later
// ept_insert entries leased (EpmService::hold_lease). Event kLeaseHeld for HoldLease.
//
// QueryStatus (opnum 3, status_protocol.h; issue 15, `rpcgate status`): refused as AllocatePort
// (1702 over TCP, 5 without may_register - so only the peers the control socket admits as
// registrants see anything; 87 for flags != 0); otherwise the report of status_report(),
// encoded under status::StatusLimits (truncated, never refused, when it is larger). What it
// lists: every connection that was granted a lease (AllocatePort or HoldLease) and has not closed,
// with the SO_PEERCRED pid/uid/gid of that call, the command name read from /proc/PID/comm then
// ("?" if unreadable: the process already gone, or /proc hidden) and the wall-clock time of
// the grant (BrokerOptions::wall_clock); the ports it holds with their class (the one the
// request resolved to, kDefault following the policy's default class at the time; a port kept
// across a reload whose record is gone is classed by the current policy's sets) and allocation
// time; the endpoint map's entries (set_endpoint_map) - leased ones under their lease, the
// others (persistent, static, epmd's own) apart; and each class's pool (size, held, free).
// Cost: one pass over the endpoint map (at most 4096 entries) and the held ports per query.
//
// Thread model: the Server's (one io thread); not thread-safe. Lifetimes: the PortBroker and the
// BrokerService must outlive the Server they are attached to (or that Server's stop()).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>
#include <sys/socket.h>

#include "epm/endpoint_db.h"
#include "epm/port_broker.h"
#include "policy/policy.h"
#include "runtime/broker_protocol.h"
#include "runtime/server.h"
#include "runtime/status_protocol.h"

namespace rpcgate::runtime {

struct BrokerOptions {
  std::vector<asio::ip::address> ipv4_addresses{asio::ip::address_v4::any()};
  std::vector<asio::ip::address> ipv6_addresses{asio::ip::address_v6::any()};
  int backlog = 1024;
  // Ports one non-root uid may hold at once, over all its connections (see above).
  std::size_t max_ports_per_uid = 256;
  // Seconds since 1970 for QueryStatus's "since" and "now" (nullptr: the system clock). Read
  // at each grant, allocation and query only.
  std::function<std::uint64_t()> wall_clock;
  // Where /proc/PID/comm is read for a lease's command name (tests point it elsewhere).
  std::string proc_root = "/proc";
};

// One broker decision, for the daemon's log.
struct BrokerEvent {
  enum class Kind : std::uint8_t {
    kAllocated,       // port handed out
    kAllocateFailed,  // status 87 / 1721 (error: policy::Errc; failure: the PortBroker's event)
    kRefused,         // status 5 / 1702, or 1721 over a per-uid budget (`budget` says which)
    kReleased,        // ReleasePort
    kReleaseFailed,   // ReleasePort of a port not held by the connection (87)
    kConnectionGone,  // released because the connection closed
    kLeaseHeld,       // HoldLease granted
  };
  Kind kind = Kind::kAllocated;
  std::uint64_t connection_id = 0;
  std::uint16_t port = 0;
  std::uint32_t status = 0;
  std::uint32_t port_class = 0;
  std::optional<ucred> peer;
  std::string peer_address;
  std::error_code error;
  std::string budget;  // kRefused over a budget: "max_ports_per_uid 256 (uid 1000 holds 256)"
  // kAllocateFailed from the PortBroker: event id (RPCGATE-5820 / RPCGATE-1721), the offending
  // policy entry or exhaustion sentence, policy source, pool state (free/held per class). Absent
  // for a request the broker judged itself (unknown class, no family): `error` says 87 then.
  std::optional<epm::BrokerEvent> failure;
};

class BrokerService {
 public:
  // `broker` owners are this service's connection ids; it may be shared for inspection
  // (stats(), holdings()) but ports must not be allocated from it for other owners that collide
  // with the Server's connection ids.
  explicit BrokerService(epm::PortBroker& broker, BrokerOptions options = {});

  // add_interface(broker_syntax(), handler()) and on_connection_closed(connection_closed).
  // False if the broker interface was already registered on `server`.
  bool attach(Server& server);

  // The Handler for the broker interface (captures this).
  Handler handler();
  // Releases every port held by `connection_id` (one kConnectionGone event per port).
  void connection_closed(std::uint64_t connection_id);

  // Hot reload (SIGHUP): PortBroker::reload. Held ports the new policy still contains stay with
  // their connections; the others are dropped from the books (report.dropped: their servers
  // keep their sockets). An invalid policy makes every later AllocatePort answer 87.
  epm::ReloadReport reload(const policy::Policy& policy) { return broker_.reload(policy); }

  // Every decision, for the daemon's log (journal / stderr). Called on the io thread, during
  // the call; must not throw.
  void on_event(std::function<void(const BrokerEvent&)> sink) { sink_ = std::move(sink); }
  // Called (io thread, during the call) with the connection id of every successful AllocatePort
  // and HoldLease; must not throw.
  void on_lease(std::function<void(std::uint64_t)> fn) { lease_ = std::move(fn); }
  std::size_t held_by(std::uint64_t connection_id) const {
    return broker_.holdings(connection_id).size();
  }
  const epm::PortBroker& port_broker() const { return broker_; }

  // The endpoint map QueryStatus lists (the EpmService's db()); must outlive this service.
  // Without one, QueryStatus lists no registrations.
  void set_endpoint_map(const epm::EndpointDb* db) { endpoint_map_ = db; }
  // What QueryStatus answers a registrant now, before the wire limits (status 0).
  status::StatusReport status_report() const;

 private:
  // A connection granted a lease, as QueryStatus shows it.
  struct LeaseRecord {
    std::uint32_t pid = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::string command;
    std::uint64_t since = 0;
    struct Port {
      policy::PortClass port_class = policy::PortClass::kInternet;
      std::uint64_t since = 0;
    };
    std::map<std::uint16_t, Port> ports;  // as allocated; PortBroker's holdings are the truth
  };

  void allocate(IncomingCall& ctx, Responder r);
  void release(IncomingCall& ctx, Responder r);
  void hold_lease(IncomingCall& ctx, Responder r);
  void query_status(IncomingCall& ctx, Responder r);
  // The lease record of the call's connection, made at its first grant.
  LeaseRecord& lease_of(const IncomingCall& ctx);
  std::uint64_t wall_now() const;
  void emit(const BrokerEvent& e) const {
    if (sink_) sink_(e);
  }

  // Ports held by all connections of `uid` that allocated through this service.
  std::size_t held_by_uid(uid_t uid) const;

  epm::PortBroker& broker_;
  BrokerOptions options_;
  std::map<uid_t, std::set<std::uint64_t>> connections_by_uid_;  // that allocated a port
  std::map<std::uint64_t, uid_t> uid_of_connection_;
  std::function<void(const BrokerEvent&)> sink_;
  std::function<void(std::uint64_t)> lease_;
  std::map<std::uint64_t, LeaseRecord> leases_;  // by connection id, while it lives
  const epm::EndpointDb* endpoint_map_ = nullptr;
};

}  // namespace rpcgate::runtime
