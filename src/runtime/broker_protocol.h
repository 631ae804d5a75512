// The port broker interface between an RPC server process and rpcgate-epmd.
//
// Windows hands dynamic ports out centrally: RPCSS's local interface "localepmp"
// (0b0a6584-9e0f-11cf-a3cf-00805f68cb1b) has AllocateReservedIPPort (hsc.fr, "RPC interfaces
// supported by the rpcss service"), and "ports allocated to a process remain allocated until
// that process dies" (Microsoft Learn, "Configuring the Registry for Port Allocations and
// Selective Binding"). rpcgate does
// the same over its local endpoint (ncalrpc: a Unix stream socket, default
// /run/rpcgate/epmd.sock) with a private DCE/RPC interface, NDR20 stubs:
//
//   interface rpcgate_broker 2cd4ce45-89a0-4180-be18-590cec9bb12f v1.0
//   opnum 0  AllocatePort([in] u32 port_class, [in] u32 families,
//                         [out] u16 port, [out] u32 status)
//   opnum 1  ReleasePort([in] u16 port, [out] u32 status)
//   opnum 2  HoldLease([in] u32 flags, [out] u32 status)
//   opnum 3  QueryStatus([in] u32 flags, [out] status_t status): who holds which port and what
//            it serves, for `rpcgate status`; layout and limits in status_protocol.h
//
// AllocatePort: epmd picks a port of the class from the policy (policy::PortAllocator), binds and
// listens on it itself for every requested address family, and passes the listening sockets to
// the caller as SCM_RIGHTS ancillary data on the response PDU (IPv4 socket first, then IPv6).
// There is no window in which another process can take the port between allocation and listen.
// The port stays held by the calling connection: when that connection closes (the process exits
// or is killed), epmd releases the port and unregisters every endpoint the connection inserted.
//
// HoldLease (issue 11): the endpoints this connection registers from now on are leased to it -
// removed when it closes - instead of persistent (epm_service.h "Leases"). AllocatePort implies
// it. For a server that registers a port it did not take from the broker (a static port, or
// `rpcgate register --lease` wrapping one). flags must be 0 (reserved). Refused like AllocatePort:
// 1702 over TCP, 5 without may_register.
//
// status: 0 success; 87 ERROR_INVALID_PARAMETER (the policy is invalid); 1721
// RPC_S_OUT_OF_RESOURCES (every port of the class is held or cannot be bound); 5 access denied
// (the caller's credentials are not allowed to hold ports); 1702 (RPC_S_INVALID_BINDING) when
// called over a transport that cannot carry file descriptors (TCP).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <system_error>
#include <vector>

#include "common/bytes.h"
#include "rpc/pdu.h"

namespace rpcgate::runtime::broker {

inline constexpr std::uint16_t kOpAllocatePort = 0;
inline constexpr std::uint16_t kOpReleasePort = 1;
inline constexpr std::uint16_t kOpHoldLease = 2;
// The largest request stub (the per-call cap given to Server::add_interface): AllocatePort's two
// u32 (port_class, families); ReleasePort's is one u16.
inline constexpr std::size_t kMaxRequestStub = 8;

// rpcgate_broker 2cd4ce45-89a0-4180-be18-590cec9bb12f v1.0
const rpc::SyntaxId& broker_syntax();

// `families` bits.
inline constexpr std::uint32_t kFamilyIpv4 = 0x1;
inline constexpr std::uint32_t kFamilyIpv6 = 0x2;

inline constexpr std::uint32_t kStatusOk = 0;
inline constexpr std::uint32_t kStatusAccessDenied = 5;
inline constexpr std::uint32_t kStatusInvalidParameter = 87;
inline constexpr std::uint32_t kStatusInvalidBinding = 1702;
inline constexpr std::uint32_t kStatusOutOfResources = 1721;

struct AllocatePortRequest {
  std::uint32_t port_class = 0;  // policy::PortClass value: 0 default, 1 internet, 2 intranet
  std::uint32_t families = kFamilyIpv4 | kFamilyIpv6;
  friend bool operator==(const AllocatePortRequest&, const AllocatePortRequest&) = default;
};
struct AllocatePortResponse {
  std::uint16_t port = 0;
  std::uint32_t status = kStatusOk;
  friend bool operator==(const AllocatePortResponse&, const AllocatePortResponse&) = default;
};
struct ReleasePortRequest {
  std::uint16_t port = 0;
  friend bool operator==(const ReleasePortRequest&, const ReleasePortRequest&) = default;
};
struct ReleasePortResponse {
  std::uint32_t status = kStatusOk;
  friend bool operator==(const ReleasePortResponse&, const ReleasePortResponse&) = default;
};

struct HoldLeaseRequest {
  std::uint32_t flags = 0;  // reserved, 0 (anything else: status 87)
  friend bool operator==(const HoldLeaseRequest&, const HoldLeaseRequest&) = default;
};
// The response is a ReleasePortResponse (one u32 status).

// Stub codecs (NDR20 in `endian`). Decoders require the exact stub: truncated input or trailing
// bytes are errors (std::errc::bad_message), an unknown port_class is accepted here and judged
// by the broker.
std::vector<std::uint8_t> encode(const AllocatePortRequest& v, common::Endian endian);
std::vector<std::uint8_t> encode(const AllocatePortResponse& v, common::Endian endian);
std::vector<std::uint8_t> encode(const ReleasePortRequest& v, common::Endian endian);
std::vector<std::uint8_t> encode(const ReleasePortResponse& v, common::Endian endian);
std::vector<std::uint8_t> encode(const HoldLeaseRequest& v, common::Endian endian);
std::expected<HoldLeaseRequest, std::error_code> decode_hold_lease_request(
    std::span<const std::uint8_t> stub, common::Endian endian);
std::expected<AllocatePortRequest, std::error_code> decode_allocate_port_request(
    std::span<const std::uint8_t> stub, common::Endian endian);
std::expected<AllocatePortResponse, std::error_code> decode_allocate_port_response(
    std::span<const std::uint8_t> stub, common::Endian endian);
std::expected<ReleasePortRequest, std::error_code> decode_release_port_request(
    std::span<const std::uint8_t> stub, common::Endian endian);
std::expected<ReleasePortResponse, std::error_code> decode_release_port_response(
    std::span<const std::uint8_t> stub, common::Endian endian);

}  // namespace rpcgate::runtime::broker
