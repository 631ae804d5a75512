// What an RPC server process uses to talk to rpcgate-epmd over its local endpoint (a Unix stream
// socket, default /run/rpcgate/epmd.sock): take ports from the port broker (broker_protocol.h)
// and register its endpoints in the endpoint mapper (EPM v3.0 ept_insert / ept_delete), both on
// ONE connection: one bind with two presentation contexts (0 = rpcgate_broker, 1 = EPM).
//
// The connection IS the lease. Keep the EpmdClient open for the life of the process: every port
// it allocated and every endpoint it registered is released / removed by epmd when the
// connection closes, whether the process exits, crashes or is killed (the kernel closes the
// socket; epmd sees EOF). Closing or destroying the EpmdClient therefore gives everything back;
// unregister_endpoint() / release_port() are only needed to give something back earlier.
// epmd leases registrations only to a connection that asked (issue 11: a plain ept_insert is
// persistent, as in DCE): register_endpoint() asks (HoldLease) before its first insert, unless
// set_persistent(true) - then the entries stay after the connection closes, until
// unregister_endpoint() (by any connection of the same uid, or root) or epmd's liveness sweep.
//
// Synchronous, every operation bounded by the client's timeout (connect's `timeout`, and the same
// value per call afterwards; set_timeout() changes it). Meant for process startup. Not
// thread-safe. After a timeout or protocol error the connection is unusable (SyncClient) and the
// lease is gone with it: reconnect, allocate and register again.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/uuid.h"
#include "ndr/binding.h"
#include "policy/policy.h"
#include "rpc/pdu.h"
#include "runtime/broker_protocol.h"
#include "runtime/errc.h"
#include "runtime/net.h"
#include "runtime/sync_client.h"

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
  // Connects and binds rpcgate_broker on context 0 and EPM v3.0 on context 1 (one bind PDU).
  // Errors: kServerUnavailable (no socket / refused), kTimeout, kUnknownInterface (epmd does not
  // offer the broker or the EPM on that socket), kProtocolError.
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

  // HoldLease (broker_protocol.h): the endpoints registered from now on are removed when this
  // connection closes. register_endpoint() calls it itself (once) unless set_persistent(true).
  // An epmd without HoldLease (fault nca_s_op_rng_error: it leases every registration) counts as
  // success. Errors: kAccessDenied (5), kInvalidBinding (1702), and the transport errors.
  std::expected<void, std::error_code> hold_lease();
  // true: register_endpoint() does not ask for a lease; its entries are persistent - unless this
  // connection already holds one (a successful allocate_port() or hold_lease(): epmd leases
  // every later entry of a port holder).
  void set_persistent(bool persistent) { persistent_ = persistent; }

  // ReleasePort: gives back a port this connection holds (close the listening sockets first, or
  // the next holder cannot listen). Errors: kInvalidParameter (87: not held by this connection),
  // and the transport errors above.
  std::expected<void, std::error_code> release_port(std::uint16_t port);

  // ept_insert (opnum 0, replace = TRUE) of one entry: `object` (nullopt = nil), the tower of
  // `interface` over `binding` with NDR 2.0 (ndr::binding_to_tower), `annotation`. Register the
  // wildcard host: ncacn_ip_tcp with an empty or 0.0.0.0 network address; the EPM answers
  // ept_map with the address the mapping client connected to (or its configured advertised
  // address). replace = TRUE removes this process' earlier entries for the same interface
  // uuid+major, object and protseq (a restarted server replaces its old port). The entry lives
  // until unregister_endpoint() or until this connection closes (a lease is asked for first,
  // see hold_lease(); a refused HoldLease is not an error here: the insert's answer is the
  // result). With set_persistent(true) it outlives the connection.
  // Errors: kInvalidParameter (the binding cannot be a tower: IPv6 / host name / non-numeric
  // port; or an annotation over 63 characters), kEptCantPerformOp (1752: epmd's PeerPolicy does
  // not let this process register, or a registration cap is reached), kEptInvalidEntry (1751),
  // kAccessDenied, kCallFailed (fault, see last_fault(); or an unknown status, see
  // last_status()), kProtocolError, kTimeout, kServerUnavailable. last_status() holds the EPM's
  // raw status word (e.g. 0x16c9a0cd) after every completed call.
  std::expected<void, std::error_code> register_endpoint(const rpc::SyntaxId& interface,
                                                         const ndr::StringBinding& binding,
                                                         std::string_view annotation = {},
                                                         std::optional<common::Uuid> object = {});
  // Shorthand: ncacn_ip_tcp:0.0.0.0[port].
  std::expected<void, std::error_code> register_endpoint(const rpc::SyntaxId& interface,
                                                         std::uint16_t port,
                                                         std::string_view annotation = {},
                                                         std::optional<common::Uuid> object = {});

  // ept_delete (opnum 1) of the entry registered with the same interface, binding and object
  // (the EPM matches object + exact tower octets; the annotation does not matter).
  // Errors: kEptNotRegistered (1753: no such entry), kEptCantPerformOp, and those above.
  std::expected<void, std::error_code> unregister_endpoint(const rpc::SyntaxId& interface,
                                                           const ndr::StringBinding& binding,
                                                           std::optional<common::Uuid> object = {});
  std::expected<void, std::error_code> unregister_endpoint(const rpc::SyntaxId& interface,
                                                           std::uint16_t port,
                                                           std::optional<common::Uuid> object = {});

  void set_timeout(std::chrono::milliseconds timeout) { client_.set_timeout(timeout); }
  std::optional<std::uint32_t> last_fault() const { return client_.last_fault(); }
  // The status word of the last completed broker / EPM call (0 = success); nullopt before any
  // call and after a call that got no decodable response.
  std::optional<std::uint32_t> last_status() const { return last_status_; }
  bool usable() const { return client_.usable(); }
  int native_handle() const { return client_.native_handle(); }

 private:
  explicit EpmdClient(SyncClient client) : client_(std::move(client)) {}
  // ept_insert (insert = true) / ept_delete of one entry.
  std::expected<void, std::error_code> ept_change(bool insert, const rpc::SyntaxId& interface,
                                                  const ndr::StringBinding& binding,
                                                  std::string_view annotation,
                                                  const std::optional<common::Uuid>& object);
  SyncClient client_;
  std::optional<std::uint32_t> last_status_;
  bool persistent_ = false;
  bool lease_asked_ = false;
};

}  // namespace rpcgate::runtime
