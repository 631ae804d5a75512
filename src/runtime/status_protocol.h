// QueryStatus: who holds which port and what it serves, asked of rpcgate-epmd over its control
// socket (`rpcgate status`, issue 15). Opnum 3 of the port broker interface (broker_protocol.h,
// rpcgate_broker 2cd4ce45-89a0-4180-be18-590cec9bb12f v1.0), answered by BrokerService
// (broker_service.h "QueryStatus") on the same terms as the broker's other operations: only over
// the Unix control socket (1702 over TCP) and only to peers its PeerPolicy admits as registrants
// (5 otherwise). Sans-I/O codecs; no sockets, no clock.
//
// Wire layout, NDR20 in the PDU's byte order (C706 ch. 14; every primitive aligned to its size
// from the stub start; struct members in order; [string] char x[N] inside a struct is a varying
// string: u32 offset (0), u32 actual_count (characters + the NUL), the characters, the NUL):
//
//   opnum 3  QueryStatus([in] u32 flags, [out] status_t status)    flags: reserved, 0
//
//   [out] u32   flags                 bit 0 kTruncated: the daemon left entries out (limits below)
//   [out] hyper now                   the daemon's wall clock at the answer, seconds since 1970
//   [out] u32   pool count (conformance), then that many
//           { u32 port_class; u32 size; u32 held; u32 free; }          16 bytes each
//         port_class 1 internet, 2 intranet (policy::PortClass); the classes may overlap (an
//         unrestricted policy has one set for both), so a port may count in both pools
//   [out] u32   lease count (conformance), then that many
//           { hyper connection_id; hyper since; u32 pid; u32 uid; u32 gid;
//             [string] char command[kCommandBound]; }
//         one per control-socket connection holding a lease (a port from AllocatePort, or
//         HoldLease): pid/uid/gid from SO_PEERCRED, command = /proc/PID/comm read when the lease
//         was first granted ("?" when it could not be read), since = that time (wall clock s)
//   [out] u32   port count (conformance), then that many
//           { hyper connection_id; hyper since; u16 port; u16 port_class; }
//         every port held through the broker, by the lease (connection_id) holding it; since =
//         when it was allocated; port_class 1 or 2 as for pools
//   [out] u32   registration count (conformance), then that many
//           { hyper connection_id; u32 kind; u32 uid; uuid object; uuid interface;
//             u16 major; u16 minor; [string] char annotation[kAnnotationBound];
//             [string] char binding[kBindingBound]; }
//         the endpoint map's entries: kind 0 leased (connection_id = the lease, removed when it
//         closes), 1 persistent (connection_id 0, uid = its owner), 2 static (rpcgate.toml
//         [[epmd.entry]]), 3 epmd's own; binding = the registered tower as a string binding
//         (ncacn_ip_tcp:0.0.0.0[50123]; "?" for a tower that has none)
//   [out] u32   status                0; 5 not a registrant; 87 flags != 0; 1702 over TCP
//                                     (not 0: every array is empty)
//
// Limits (StatusLimits), applied by encode() - which leaves out what does not fit and sets
// kTruncated - and by the decoder - which refuses what exceeds them: counts per array, and the
// whole response stub (max_response_bytes, 1 MiB: room for the 4096 entries the map holds at
// their usual size; at their longest a full map is over it and is truncated). encode() fills in
// this order: pools, then leases each with its ports and leased registrations (a lease that does
// not fit is left out whole), then the other registrations. Strings longer than their bound minus
// one, or holding a NUL, are cut at the bound / the NUL by encode().
//
// Decoder (decode_status_report): the exact stub or an error (ndr::Errc, category rpcgate.ndr):
// kTruncated (the stub ends early), kTrailingBytes (bytes after status), kCountOverLimit (a count
// over StatusLimits, or more elements than the bytes left can hold, or a stub over
// max_response_bytes), kCountInconsistent / kString* (a varying string not as [string] requires),
// kEnumOutOfRange (a port_class other than 1 or 2, a kind above 3), kCountInconsistent also for a
// meaning that does not hold together: lease connection_id 0 or listed twice, a port whose lease
// is not listed, a leased registration whose lease is not listed, another kind with a non-zero
// connection_id. Decoded ports and leased registrations are grouped under their Lease, in wire
// order (so a stub that interleaves two leases' ports encodes back grouped, to the same report).
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "common/bytes.h"
#include "common/uuid.h"
#include "policy/policy.h"

namespace rpcgate::runtime::status {

inline constexpr std::uint16_t kOpQueryStatus = 3;
// QueryStatus's request stub is one u32 (fits broker::kMaxRequestStub).
inline constexpr std::size_t kRequestStubSize = 4;

inline constexpr std::uint32_t kFlagTruncated = 0x1;

// Bounds of the varying strings, the NUL included (TASK_COMM_LEN is 16; EPM annotations are at
// most 64 with the NUL, ndr/epm_types.h; a binding of the longest tower rpcgate stores is under
// 600 characters).
inline constexpr std::uint32_t kCommandBound = 64;
inline constexpr std::uint32_t kAnnotationBound = 64;
inline constexpr std::uint32_t kBindingBound = 1024;

struct StatusLimits {
  std::size_t max_pools = 8;
  std::size_t max_leases = 1024;         // epmd holds at most 128 control-socket connections
  std::size_t max_ports = 16384;         // the whole dynamic range
  std::size_t max_registrations = 4096;  // the endpoint map's max_entries
  std::size_t max_response_bytes = 1u << 20;
};

enum class Kind : std::uint32_t { kLeased = 0, kPersistent = 1, kStatic = 2, kEpmd = 3 };
std::string_view to_string(Kind k);  // "leased", "persistent", "static", "epmd"

struct Pool {
  policy::PortClass port_class = policy::PortClass::kInternet;  // kInternet or kIntranet
  std::uint32_t size = 0;
  std::uint32_t held = 0;
  std::uint32_t free = 0;
  friend bool operator==(const Pool&, const Pool&) = default;
};

struct HeldPort {
  std::uint16_t port = 0;
  policy::PortClass port_class = policy::PortClass::kInternet;  // kInternet or kIntranet
  std::uint64_t since = 0;                                      // wall clock, s since 1970
  friend bool operator==(const HeldPort&, const HeldPort&) = default;
};

struct Registration {
  Kind kind = Kind::kPersistent;
  std::uint64_t connection_id = 0;  // the lease for kLeased, else 0
  std::uint32_t uid = 0;            // owner uid; 0xffffffff for epmd's own and static entries
  common::Uuid object;
  common::Uuid interface;
  std::uint16_t major = 0;
  std::uint16_t minor = 0;
  std::string annotation;
  std::string binding;
  friend bool operator==(const Registration&, const Registration&) = default;
};

struct Lease {
  std::uint64_t connection_id = 0;  // the daemon's connection id (never 0)
  std::uint64_t since = 0;          // when the lease was granted, wall clock s since 1970
  std::uint32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string command;                      // /proc/PID/comm then, "?" if it could not be read
  std::vector<HeldPort> ports;              // ascending
  std::vector<Registration> registrations;  // kind kLeased, connection_id == this one's
  friend bool operator==(const Lease&, const Lease&) = default;
};

struct StatusReport {
  std::uint32_t status = 0;
  bool truncated = false;
  std::uint64_t now = 0;
  std::vector<Pool> pools;
  std::vector<Lease> leases;
  std::vector<Registration> registrations;  // not leased (persistent, static, epmd's own)
  friend bool operator==(const StatusReport&, const StatusReport&) = default;
};

struct QueryStatusRequest {
  std::uint32_t flags = 0;  // reserved, 0 (anything else: status 87)
  friend bool operator==(const QueryStatusRequest&, const QueryStatusRequest&) = default;
};

std::vector<std::uint8_t> encode(const QueryStatusRequest& v, common::Endian endian);
// The exact 4-byte stub, else std::errc::bad_message (as broker_protocol.h's requests).
std::expected<QueryStatusRequest, std::error_code> decode_query_status_request(
    std::span<const std::uint8_t> stub, common::Endian endian);

// What encode() sends of `report`: strings cut to their bounds, entries left out past the limits
// in the order described above (truncated set when anything was), a lease's registrations made
// kLeased with its connection_id, and the top-level ones given connection_id 0 (a kLeased one
// there becomes kPersistent: the wire cannot name a lease that is not listed). A consistent report
// that fits is returned unchanged; one with a status other than 0 keeps only status and now.
// decode_status_report(encode(r)) == fit(r).
StatusReport fit(const StatusReport& report, const StatusLimits& limits = {});
// The response stub of fit(report, limits); never longer than limits.max_response_bytes.
std::vector<std::uint8_t> encode(const StatusReport& report, common::Endian endian,
                                 const StatusLimits& limits = {});
// See "Decoder" above.
std::expected<StatusReport, std::error_code> decode_status_report(
    std::span<const std::uint8_t> stub, common::Endian endian, const StatusLimits& limits = {});

}  // namespace rpcgate::runtime::status
