// What a sans-I/O RPC service (EpmService, MgmtService) takes and returns for one call. The
// runtime has already reassembled the request, stripped the PDU header and auth trailer and
// checked the presentation context; it hands over the opnum and the stub, and turns the result
// into a response PDU (stub) or a fault PDU (status), with the request's call_id, p_cont_id and
// drep (the response stub is encoded in the request's byte order).
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace rpcgate::epm {

// The status of a fault PDU to send instead of a response (C706 §12.6.4.7): nca_s_op_rng_error
// (0x1c010002) for an opnum the interface does not have or does not implement,
// rpc_x_bad_stub_data (0x6f7) for a stub that does not decode (what Windows sends: Windows
// Server 2003's EPM in fortra/impacket issue #78). Only the status: the fault PDU itself
// (rpc::Fault, rpc/pdu.h) is the runtime's to build.
struct FaultStatus {
  std::uint32_t status = 0;
  friend bool operator==(const FaultStatus&, const FaultStatus&) = default;
};

// How a call ended: the response stub, or a fault. Operation-level errors (ept_s_not_registered,
// access refused, ...) are *not* faults: they are a status inside a normal response stub.
using Outcome = std::expected<std::vector<std::uint8_t>, FaultStatus>;

// The same without owning the stub: a view of a buffer the service keeps (its reply buffer or a
// cached answer), valid until the service's next call or change. What the hot path returns, so
// that an answer costs no allocation; copy it (or send it) before calling the service again.
using OutcomeView = std::expected<std::span<const std::uint8_t>, FaultStatus>;

// What the transport knows about the caller.
struct CallerInfo {
  // Non-zero id of the transport connection (association); context handles belong to it and
  // registrations made on it are removed when it closes. 0 is reserved: registrations made
  // with connection_id 0 are persistent (never removed by a close).
  std::uint64_t connection_id = 0;
  // The transport decided the caller may change the map (ept_insert / ept_delete /
  // ept_mgmt_delete): a Unix socket whose peer credentials are allowed, or loopback TCP when the
  // configuration enables it. Never true for a network peer (MS-RPCE 3.1.3.5.3: registration is
  // local only; DCE rpcdep.c is_unpriv_handle).
  bool may_register = false;
  // The IPv4 address the client connected to (the EPM's side of the connection); nullopt when
  // the connection is IPv6 or not IP. Used for the host floor of returned towers.
  std::optional<std::array<std::uint8_t, 4>> local_ipv4;
  // For logs only ("198.51.100.7:50312", "uid 0 via /run/rpcgate/epm.sock").
  std::string_view peer;
  // The caller's uid when the transport knows it (SO_PEERCRED on the control socket, the owner
  // of the peer socket for loopback TCP); nullopt for a network peer. Entry ownership and the
  // per-uid quotas are judged on it.
  std::optional<std::uint32_t> uid;
  // The per-peer budget key (the client's IP address, an IPv6 client's /64); "" for local callers.
  std::string_view peer_key;
};

}  // namespace rpcgate::epm
