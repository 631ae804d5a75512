// What an RPC server process uses to talk to rpcgate-epmd over its local endpoint (a Unix stream
// socket, default /run/rpcgate/epmd.sock): take ports from the port broker (broker_protocol.h)
// and, once the EPM service exists, register endpoints.
//
// The connection IS the lease. Keep the EpmdClient open for the life of the process: every port
// it allocated (and every endpoint it registers) is released by epmd when the connection closes,
// whether the process exits, crashes or is killed (the kernel closes the socket; epmd sees EOF).
// Closing or destroying the EpmdClient therefore gives everything back.
//
// Synchronous, every operation bounded by the client's timeout (connect's `timeout`, and the same
// value per call afterwards; set_timeout() changes it). Meant for process startup. Not
// thread-safe. After a timeout or protocol error the connection is unusable (SyncClient) and the
// lease is gone with it: reconnect and allocate again.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <string>
#include <system_error>
#include <vector>

#include "policy/policy.h"
#include "runtime/broker_protocol.h"
#include "runtime/client.h"
#include "runtime/errc.h"
#include "runtime/net.h"

namespace rpcgate::runtime {

inline constexpr const char* kDefaultEpmdSocket = "/run/rpcgate/epmd.sock";

struct AllocatedPort {
  std::uint16_t port = 0;
  // Listening TCP sockets bound to `port`, owned (close-on-exec): IPv4 first, then IPv6, one per
  // family epmd could open (a host without IPv6 yields only the IPv4 socket). Pass each to
  // Server::adopt_listener(fd.release()).
  std::vector<Fd> fds;
};

class EpmdClient {
 public:
  // Connects and binds rpcgate_broker on context 0 (TODO(epm merge): EPM v3.0 on context 1).
  // Errors: kServerUnavailable (no socket / refused), kTimeout, kUnknownInterface (epmd does not
  // offer the broker), kProtocolError.
  static std::expected<EpmdClient, std::error_code> connect(
      const std::string& path = kDefaultEpmdSocket,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // AllocatePort: a port of `cls`, listening on the requested `families`
  // (broker::kFamilyIpv4 | broker::kFamilyIpv6). The port stays held until release_port() or the
  // connection closes. Errors (value = the Windows code): kInvalidParameter (87: the policy is
  // invalid, or a bad class/families), kOutOfResources (1721: the class is exhausted),
  // kAccessDenied (5: epmd's PeerPolicy refuses this process), kInvalidBinding (1702), kCallFailed
  // (fault; see last_fault()), kProtocolError (a reply without descriptors, more descriptors than
  // families, a descriptor not bound to the port, MSG_CTRUNC - every received fd is closed then),
  // kTimeout, kServerUnavailable.
  std::expected<AllocatedPort, std::error_code> allocate_port(
      policy::PortClass cls, std::uint32_t families = broker::kFamilyIpv4 | broker::kFamilyIpv6);

  // ReleasePort: gives back a port this connection holds (close the listening sockets first, or
  // the next holder cannot listen). Errors: kInvalidParameter (87: not held by this connection),
  // and the transport errors above.
  std::expected<void, std::error_code> release_port(std::uint16_t port);

  // TODO(epm merge): register_endpoint(interface, tower, annotation) via ept_insert (opnum 0) and
  // unregister_endpoint via ept_delete (opnum 1) on the EPM context, using src/ndr/epm_types.h.

  void set_timeout(std::chrono::milliseconds timeout) { client_.set_timeout(timeout); }
  std::optional<std::uint32_t> last_fault() const { return client_.last_fault(); }
  bool usable() const { return client_.usable(); }
  int native_handle() const { return client_.native_handle(); }

 private:
  explicit EpmdClient(SyncClient client) : client_(std::move(client)) {}
  SyncClient client_;
};

}  // namespace rpcgate::runtime
