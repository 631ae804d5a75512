// Stubs of the endpoint mapper interface e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 (C706 App. O
// ept.idl; MS-RPCE 2.2.1.2, 3.1.3.5.3; Samba epmapper.idl), NDR20, either drep byte order:
//   opnum 2 ept_lookup, 3 ept_map, 4 ept_lookup_handle_free (requests and responses);
//   opnum 0 ept_insert, 1 ept_delete, 5 ept_inq_object, 6 ept_mgmt_delete (requests and
//   responses; see the block "Registration and management operations" below).
// Golden layouts: docs/wire-vectors.md (ept-map-request, ept-map-response, ept-lookup).
//
// Decoding contract: the span is exactly the stub (the PDU layer strips the header, auth
// verifier and auth pad). Requests (what a server decodes): bytes after the last [in] parameter
// are not read and not an error - their count is the request's `trailing_bytes` - because
// Windows' and Samba's servers ignore them and Samba's own client sends some (mgmt_inq_stats
// with an extra u32; issue 11); everything up to the last parameter is checked as before, and
// the stub itself stays bounded by the interface's per-call cap (kMaxRequestStub). Responses
// (what our client decodes): every byte must be consumed (kTrailingBytes) - a server that
// appends bytes to an answer is not one we want to trust the towers of. Pad bytes may hold any
// value (Impacket sends 0xaa/0xab); encoders write zero pad, so a peer's stub re-encodes
// byte-exact except for its pad bytes. Referent ids: requests' top-level object / map_tower /
// Ifid pointers are unique pointers (any non-zero id). The twr_p_t elements of a response are
// `[ptr]` full pointers (ept.idl, Samba `[full]`): a referent id repeated within the stub is an
// alias; its tower is not on the wire again and the decoded value is a copy of the first one.
// Encoders never alias. Towers are kept as raw octets (decode_tower() / view_tower() interpret
// them), so one malformed tower does not hide the others; only the NDR framing is judged here.
//
// Counts: num_towers must equal the ITowers actual_count (length_is), num_ents the entries
// actual_count; the array offset must be 0 (kCountInconsistent otherwise: nobody sends partial
// arrays here and accepting them would desynchronise the towers). Annotations are
// `[string] char[64]`: varying (offset, actual_count; no max_count), NUL included, <= 64.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/uuid.h"
#include "ndr/errc.h"
#include "ndr/ndr.h"
#include "rpc/status.h"

namespace rpcgate::ndr::epm {

inline constexpr std::uint16_t kOpnumEptLookup = 2;
inline constexpr std::uint16_t kOpnumEptMap = 3;
inline constexpr std::uint16_t kOpnumEptLookupHandleFree = 4;
inline constexpr std::uint16_t kOpnumEptInsert = 0;
inline constexpr std::uint16_t kOpnumEptDelete = 1;
inline constexpr std::uint16_t kOpnumEptInqObject = 5;
inline constexpr std::uint16_t kOpnumEptMgmtDelete = 6;
inline constexpr std::uint32_t kMaxAnnotationSize = 64;  // ept_max_annotation_size
// EPM operation status values; rpc/status.h is the one table of codes and names.
inline constexpr std::uint32_t kEptSNotRegistered = rpc::status::kEptSNotRegistered;
inline constexpr std::uint32_t kEptSCantPerformOp = rpc::status::kEptSCantPerformOp;
inline constexpr std::uint32_t kEptSInvalidEntry = rpc::status::kEptSInvalidEntry;

// inquiry_type and vers_option values (C706 / MS-RPCE numbering; Samba's IDL is off by one).
inline constexpr std::uint32_t kRpcCEpAllElts = 0;
inline constexpr std::uint32_t kRpcCEpMatchByIf = 1;
inline constexpr std::uint32_t kRpcCEpMatchByObj = 2;
inline constexpr std::uint32_t kRpcCEpMatchByBoth = 3;
inline constexpr std::uint32_t kRpcCVersAll = 1;
inline constexpr std::uint32_t kRpcCVersCompatible = 2;
inline constexpr std::uint32_t kRpcCVersExact = 3;
inline constexpr std::uint32_t kRpcCVersMajorOnly = 4;
inline constexpr std::uint32_t kRpcCVersUpto = 5;

using Octets = std::vector<std::uint8_t>;

// RPC_IF_ID: uuid, u16 vers_major, u16 vers_minor.
struct RpcIfId {
  common::Uuid uuid;
  std::uint16_t vers_major = 0;
  std::uint16_t vers_minor = 0;
  friend bool operator==(const RpcIfId&, const RpcIfId&) = default;
};

// ept_map [in]: obj, map_tower, entry_handle, max_towers.
struct EptMapRequest {
  std::optional<common::Uuid> object;  // NULL pointer = nullopt (nil UUID is a non-NULL value)
  std::optional<Octets> map_tower;     // twr_t octets; NULL = nullopt
  ContextHandle entry_handle;
  std::uint32_t max_towers = 0;
  std::size_t trailing_bytes = 0;  // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptMapRequest&, const EptMapRequest&) = default;
};

// ept_map [out]: entry_handle, num_towers, ITowers[max_towers] (length num_towers), status.
struct EptMapResponse {
  ContextHandle entry_handle;
  std::uint32_t max_count = 0;                // ITowers conformance (= the request's max_towers)
  std::vector<std::optional<Octets>> towers;  // num_towers = towers.size(); NULL = nullopt
  std::uint32_t status = 0;
  friend bool operator==(const EptMapResponse&, const EptMapResponse&) = default;
};

// ept_lookup [in].
struct EptLookupRequest {
  std::uint32_t inquiry_type = kRpcCEpAllElts;
  std::optional<common::Uuid> object;
  std::optional<RpcIfId> if_id;  // "Ifid"
  std::uint32_t vers_option = kRpcCVersAll;
  ContextHandle entry_handle;
  std::uint32_t max_ents = 0;
  std::size_t trailing_bytes = 0;  // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptLookupRequest&, const EptLookupRequest&) = default;
};

// ept_entry_t.
struct EptEntry {
  common::Uuid object;
  std::optional<Octets> tower;
  std::string annotation;  // without the NUL
  friend bool operator==(const EptEntry&, const EptEntry&) = default;
};

// ept_lookup [out].
struct EptLookupResponse {
  ContextHandle entry_handle;
  std::uint32_t max_count = 0;    // entries conformance (= the request's max_ents)
  std::vector<EptEntry> entries;  // num_ents = entries.size()
  std::uint32_t status = 0;
  friend bool operator==(const EptLookupResponse&, const EptLookupResponse&) = default;
};

// ept_lookup_handle_free: [in, out] entry_handle; [out] status.
struct EptLookupHandleFreeRequest {
  ContextHandle entry_handle;
  std::size_t trailing_bytes = 0;  // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptLookupHandleFreeRequest&,
                         const EptLookupHandleFreeRequest&) = default;
};
struct EptLookupHandleFreeResponse {
  ContextHandle entry_handle;
  std::uint32_t status = 0;
  friend bool operator==(const EptLookupHandleFreeResponse&,
                         const EptLookupHandleFreeResponse&) = default;
};

// Decoders: Errc values of ndr/errc.h (kTruncated, kCountOverLimit, kCountInconsistent,
// kStringNotTerminated, kTrailingBytes, ...). The Decoder& overloads read from the decoder's
// current position to the end of its stub (callers that want pad positions or shared limits).
Result<EptMapRequest> decode_ept_map_request(std::span<const std::uint8_t> stub, Endian endian,
                                             const DecodeLimits& limits = {});
Result<EptMapResponse> decode_ept_map_response(std::span<const std::uint8_t> stub, Endian endian,
                                               const DecodeLimits& limits = {});
Result<EptLookupRequest> decode_ept_lookup_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits = {});
Result<EptLookupResponse> decode_ept_lookup_response(std::span<const std::uint8_t> stub,
                                                     Endian endian,
                                                     const DecodeLimits& limits = {});
Result<EptLookupHandleFreeRequest> decode_ept_lookup_handle_free_request(
    std::span<const std::uint8_t> stub, Endian endian, const DecodeLimits& limits = {});
Result<EptLookupHandleFreeResponse> decode_ept_lookup_handle_free_response(
    std::span<const std::uint8_t> stub, Endian endian, const DecodeLimits& limits = {});

Result<EptMapRequest> decode_ept_map_request(Decoder& decoder);
Result<EptMapResponse> decode_ept_map_response(Decoder& decoder);
Result<EptLookupRequest> decode_ept_lookup_request(Decoder& decoder);
Result<EptLookupResponse> decode_ept_lookup_response(Decoder& decoder);
Result<EptLookupHandleFreeRequest> decode_ept_lookup_handle_free_request(Decoder& decoder);
Result<EptLookupHandleFreeResponse> decode_ept_lookup_handle_free_response(Decoder& decoder);

// Encoders (zero pad; referent ids per `options`). The response encoders write
// max_count = max(value.max_count, number of elements) so the output is always consistent.
std::vector<std::uint8_t> encode(const EptMapRequest& v, Endian endian, EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptMapResponse& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptLookupRequest& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptLookupResponse& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptLookupHandleFreeRequest& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptLookupHandleFreeResponse& v, Endian endian,
                                 EncodeOptions options = {});

// ---- Registration and management operations (C706 App. O ept.idl; Samba epmapper.idl) ----
//
//   void ept_insert([in] unsigned32 num_ents, [in, size_is(num_ents)] ept_entry_t entries[],
//                   [in] boolean32 replace, [out] error_status_t *status);
//   void ept_delete([in] unsigned32 num_ents, [in, size_is(num_ents)] ept_entry_t entries[],
//                   [out] error_status_t *status);
//   void ept_inq_object([out] uuid_t *ept_object, [out] error_status_t *status);
//   void ept_mgmt_delete([in] boolean32 object_speced, [in, ptr] uuid_p_t object,
//                        [in, ptr] twr_p_t tower, [out] error_status_t *status);
//
// Wire: entries[] is a top-level conformant array: u32 num_ents, u32 max_count (must equal
// num_ents, kCountInconsistent otherwise), the ept_entry_t bodies (object, [ptr] tower referent
// id, annotation varying string), then the deferred twr_t referents in order, then (insert
// only) u32 replace. Tower referent ids are full pointers as in the lookup response (an alias is
// decoded as a copy). ept_inq_object's [out] uuid is a top-level [ref]: 16 bytes, no referent
// id. ept_mgmt_delete's object and tower are top-level full pointers: referent id then the
// referent inline. The responses of insert, delete and mgmt_delete are one u32 status.

struct EptInsertRequest {
  std::vector<EptEntry> entries;   // num_ents = entries.size()
  bool replace = false;            // boolean32: any non-zero value is TRUE
  std::size_t trailing_bytes = 0;  // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptInsertRequest&, const EptInsertRequest&) = default;
};
struct EptDeleteRequest {
  std::vector<EptEntry> entries;
  std::size_t trailing_bytes = 0;  // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptDeleteRequest&, const EptDeleteRequest&) = default;
};
// The [out] of insert, delete and mgmt_delete.
struct EptStatusResponse {
  std::uint32_t status = 0;
  friend bool operator==(const EptStatusResponse&, const EptStatusResponse&) = default;
};
// ept_inq_object has no [in] parameters: its request stub must be empty.
struct EptInqObjectResponse {
  common::Uuid ept_object;
  std::uint32_t status = 0;
  friend bool operator==(const EptInqObjectResponse&, const EptInqObjectResponse&) = default;
};
struct EptMgmtDeleteRequest {
  bool object_speced = false;
  std::optional<common::Uuid> object;  // NULL pointer = nullopt
  std::optional<Octets> tower;         // NULL pointer = nullopt
  std::size_t trailing_bytes = 0;      // after the last [in] parameter: ignored (header)
  friend bool operator==(const EptMgmtDeleteRequest&, const EptMgmtDeleteRequest&) = default;
};

Result<EptInsertRequest> decode_ept_insert_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits = {});
Result<EptDeleteRequest> decode_ept_delete_request(std::span<const std::uint8_t> stub,
                                                   Endian endian, const DecodeLimits& limits = {});
Result<EptStatusResponse> decode_ept_status_response(std::span<const std::uint8_t> stub,
                                                     Endian endian,
                                                     const DecodeLimits& limits = {});
// ept_inq_object has no [in] parameter: never fails; returns the stub's size, all of it
// trailing bytes (ignored, see the header).
std::size_t decode_ept_inq_object_request(std::span<const std::uint8_t> stub);
Result<EptInqObjectResponse> decode_ept_inq_object_response(std::span<const std::uint8_t> stub,
                                                            Endian endian,
                                                            const DecodeLimits& limits = {});
Result<EptMgmtDeleteRequest> decode_ept_mgmt_delete_request(std::span<const std::uint8_t> stub,
                                                            Endian endian,
                                                            const DecodeLimits& limits = {});

std::vector<std::uint8_t> encode(const EptInsertRequest& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptDeleteRequest& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptStatusResponse& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptInqObjectResponse& v, Endian endian,
                                 EncodeOptions options = {});
std::vector<std::uint8_t> encode(const EptMgmtDeleteRequest& v, Endian endian,
                                 EncodeOptions options = {});

}  // namespace rpcgate::ndr::epm
