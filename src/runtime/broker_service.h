// The server side of the port broker (broker_protocol.h): AllocatePort / ReleasePort as a Handler
// on top of policy::PortAllocator. Hosted by rpcgate-epmd on its Unix listener.
//
// AllocatePort: refuses over TCP (status 1702) and when the caller's CallContext::may_register is
// false (status 5); otherwise draws a port of the class from the allocator with a probe that
// really binds and listens it (net.h listen_tcp_same_port, all or nothing) on the configured
// addresses of every requested family (default 0.0.0.0 and ::), and replies with the port and the
// listening sockets as SCM_RIGHTS (IPv4 first). A family the host cannot open at all (no IPv6:
// EAFNOSUPPORT at construction) is left out rather than failing every request. Failures: status
// 87 (invalid policy, unknown class, families without a known bit) or 1721 (every free port of
// the class is held or failed the probe). The port stays held by the calling connection until
// ReleasePort or the connection closes; connection_closed() (hooked by attach()) releases it.
// A stub that does not decode gets fault rpc_x_bad_stub_data; other opnums nca_s_op_rng_error.
//
// ReleasePort: status 0 if the port was held by this connection, else 87.
//
// Thread model: the Server's (one io thread); not thread-safe. Lifetimes: the allocator and the
// BrokerService must outlive the Server they are attached to (or that Server's stop()).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <asio/ip/address.hpp>
#include <sys/socket.h>

#include "policy/allocator.h"
#include "runtime/broker_protocol.h"
#include "runtime/server.h"

namespace rpcgate::runtime {

struct BrokerOptions {
  std::vector<asio::ip::address> ipv4_addresses{asio::ip::address_v4::any()};
  std::vector<asio::ip::address> ipv6_addresses{asio::ip::address_v6::any()};
  int backlog = 1024;
};

// One broker decision, for the daemon's log.
struct BrokerEvent {
  enum class Kind : std::uint8_t {
    kAllocated,       // port handed out
    kAllocateFailed,  // status 87 / 1721 (error: the allocator's policy::Errc)
    kRefused,         // status 5 / 1702
    kReleased,        // ReleasePort
    kReleaseFailed,   // ReleasePort of a port not held by the connection (87)
    kConnectionGone,  // released because the connection closed
  };
  Kind kind = Kind::kAllocated;
  std::uint64_t connection_id = 0;
  std::uint16_t port = 0;
  std::uint32_t status = 0;
  std::uint32_t port_class = 0;
  std::optional<ucred> peer;
  std::string peer_address;
  std::error_code error;
};

class BrokerService {
 public:
  BrokerService(policy::PortAllocator& allocator, BrokerOptions options = {});

  // add_interface(broker_syntax(), handler()) and on_connection_closed(connection_closed).
  // False if the broker interface was already registered on `server`.
  bool attach(Server& server);

  // The Handler for the broker interface (captures this).
  Handler handler();
  // Releases every port held by `connection_id`.
  void connection_closed(std::uint64_t connection_id);

  void on_event(std::function<void(const BrokerEvent&)> sink) { sink_ = std::move(sink); }
  std::size_t held_by(std::uint64_t connection_id) const;

 private:
  void allocate(CallContext& ctx, Responder r);
  void release(CallContext& ctx, Responder r);
  void emit(BrokerEvent e) const {
    if (sink_) sink_(e);
  }

  policy::PortAllocator& allocator_;
  BrokerOptions options_;
  std::unordered_map<std::uint64_t, std::vector<std::uint16_t>> held_;
  std::function<void(const BrokerEvent&)> sink_;
};

}  // namespace rpcgate::runtime
