// The remote management interface afa8bd80-7d8a-11c9-bef4-08002b102989 v1.0 that every DCE/MS RPC
// server exports (C706 App. Q mgmt.idl; Samba librpc/idl/mgmt.idl; Impacket
// impacket/dcerpc/v5/mgmt.py), as a sans-I/O service. Impacket's rpcmap.py binds it and calls
// inq_if_ids to list a server's interfaces.
//
// Operations, NDR20 (response stubs in the request's byte order):
//   0 inq_if_ids([out] rpc_if_id_vector_p_t *if_id_vector, [out] error_status_t *status)
//       request: empty. response: unique pointer (referent 0x00020000) to the conformant
//       structure rpc_if_id_vector_t {u32 count; [size_is(count)] rpc_if_id_p_t if_id[]}: u32
//       max_count (hoisted, = count), u32 count, count unique referent ids, then each
//       rpc_if_id_t (uuid, u16 vers_major, u16 vers_minor), then u32 status 0. An empty list
//       is sent as a vector with count 0 (Windows answers rpc_s_no_interfaces with a NULL
//       vector only when it has no interfaces at all, which cannot happen here: MGMT itself).
//   1 inq_stats([in, out] unsigned32 *count, [out, size_is(*count)] unsigned32 statistics[],
//               [out] error_status_t *status)
//       request: u32 count. response: u32 count = min(count, 4), conformant array (max_count =
//       that count) of rpc_c_stats_calls_in, calls_out, pkts_in, pkts_out, u32 status 0.
//   2 is_server_listening([out] error_status_t *status) -> boolean32
//       request: empty. response: u32 status 0, u32 result (1 = listening; MgmtInfo::listening).
//   3 stop_server_listening([out] error_status_t *status)
//       request: empty. response: u32 status rpc_s_access_denied (5): remote stop is refused,
//       as Windows does unless the server installs an authorization function that allows it
//       (RpcMgmtSetAuthorizationFn); the daemon is stopped by its service manager, not by RPC.
//   4 inq_princ_name([in] unsigned32 authn_proto, [in] unsigned32 princ_name_size,
//                    [out, string, size_is(princ_name_size)] char princ_name[],
//                    [out] error_status_t *status)
//       request: u32 authn_proto, u32 princ_name_size. response: conformant varying string
//       (max_count = princ_name_size, offset 0, actual_count incl. NUL), u32 status. The name
//       comes from MgmtInfo::principal_name(authn_proto); "" (no such authentication service:
//       rpcgate's EPM is unauthenticated) => "" and rpc_s_unknown_authn_service (1747, Windows'
//       value). A name that does not fit with its NUL in princ_name_size => "" and
//       ERROR_INSUFFICIENT_BUFFER (122) (never a truncated name). princ_name_size 0 cannot
//       even hold the NUL: max_count 0, actual_count 0.
//   > 4: fault nca_s_op_rng_error (0x1c010002). A stub shorter than the [in] parameters: fault
//       rpc_x_bad_stub_data (0x6f7). Bytes after the last [in] parameter are ignored, as
//       Windows' and Samba's servers do: Samba's client sends inq_stats with an extra u32
//       (issue 11). They are counted (trailing_bytes_calls) and reported to
//       on_trailing_bytes(); the stub stays bounded by kMgmtMaxRequestStub at the transport.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "epm/call.h"
#include "ndr/ndr.h"
#include "ndr/tower.h"

namespace rpcgate::epm {

inline constexpr std::uint16_t kOpnumMgmtInqIfIds = 0;
inline constexpr std::uint16_t kOpnumMgmtInqStats = 1;
inline constexpr std::uint16_t kOpnumMgmtIsServerListening = 2;
inline constexpr std::uint16_t kOpnumMgmtStopServerListening = 3;
inline constexpr std::uint16_t kOpnumMgmtInqPrincName = 4;
inline constexpr std::uint32_t kRpcSUnknownAuthnService = 1747;  // RPC_S_UNKNOWN_AUTHN_SERVICE
inline constexpr std::uint32_t kErrorInsufficientBuffer = 122;
inline constexpr std::size_t kMgmtStatsCount = 4;  // rpc_c_stats_array_max_size
// The largest request stub (the per-call cap for Server::add_interface): inq_princ_name's two
// u32 (authn_proto, princ_name_size); inq_stats has one u32, the others none. So Samba's
// inq_stats (count + one extra u32) fits, and no request is ever read past 8 bytes.
inline constexpr std::size_t kMgmtMaxRequestStub = 8;

// What the server reports. Indices of `stats`: 0 calls in, 1 calls out, 2 packets in, 3
// packets out (rpc_c_stats_calls_in ... rpc_c_stats_pkts_out).
struct MgmtInfo {
  std::vector<ndr::SyntaxId> if_ids;  // in the order to report them (MGMT itself included)
  std::array<std::uint32_t, kMgmtStatsCount> stats{};
  bool listening = true;
  // authn_proto -> principal name; return "" for services the server does not use.
  std::function<std::string(std::uint32_t authn_proto)> principal_name;
};
// Called once per call that needs the information (cheap to keep current).
using MgmtProvider = std::function<MgmtInfo()>;

// inq_if_ids [out], for clients (rpcgate ifids) and the service alike. `if_ids` nullopt = a
// NULL if_id_vector (Windows sends that with rpc_s_no_interfaces).
struct InqIfIdsResponse {
  std::optional<std::vector<ndr::SyntaxId>> if_ids;
  std::uint32_t status = 0;
  friend bool operator==(const InqIfIdsResponse&, const InqIfIdsResponse&) = default;
};
// The wire layout in the header comment (referent ids 0x00020000, ...).
std::vector<std::uint8_t> encode_inq_if_ids_response(const InqIfIdsResponse& v,
                                                     common::Endian endian);
// Decodes a whole inq_if_ids response stub. A NULL element pointer (nobody sends one) is
// skipped. Errors: ndr::Errc (kTruncated, kCountOverLimit for count > limits.max_array_elements
// or more than the stub can hold, kCountInconsistent when max_count != count, kTrailingBytes).
ndr::Result<InqIfIdsResponse> decode_inq_if_ids_response(std::span<const std::uint8_t> stub,
                                                         common::Endian endian,
                                                         const ndr::DecodeLimits& limits = {});

class MgmtService {
 public:
  explicit MgmtService(MgmtProvider provider) : provider_(std::move(provider)) {}

  Outcome call(std::uint16_t opnum, std::span<const std::uint8_t> stub, common::Endian endian);

  // Called for each request with `bytes` ignored bytes after its last [in] parameter (for a
  // debug log line).
  void on_trailing_bytes(std::function<void(std::uint16_t opnum, std::size_t bytes)> fn) {
    on_trailing_bytes_ = std::move(fn);
  }
  // Requests that had such bytes, since construction.
  std::uint64_t trailing_bytes_calls() const { return trailing_bytes_calls_; }

 private:
  Outcome dispatch(std::uint16_t opnum, std::span<const std::uint8_t> stub, common::Endian endian,
                   std::size_t& trailing);

  MgmtProvider provider_;
  std::function<void(std::uint16_t, std::size_t)> on_trailing_bytes_;
  std::uint64_t trailing_bytes_calls_ = 0;
};

}  // namespace rpcgate::epm
