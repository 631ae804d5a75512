// The endpoint mapper interface e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 as a sans-I/O service:
// stub in, stub (or fault) out, over an EndpointDb, plus the ept_lookup_handle_t context handles
// of every connection. No sockets, threads or clocks; one owner thread.
//
// Operations (C706 App. O ept.idl; [MS-RPCE] 2.2.1.2; bytes: docs/wire-vectors.md):
//   0 ept_insert       may_register and a uid ? EndpointDb::insert(entries, replace,
//                      {lease, uid}) : ept_s_cant_perform_op (0x16c9a0cd) in the
//                      response (not a fault); lease = connection_id if the connection holds a
//                      lease (hold_lease), else kPersistentOwner: see "Leases" below
//   1 ept_delete       may_register and a uid ? EndpointDb::erase(entries, uid)
//                      : ept_s_cant_perform_op
//   2 ept_lookup       see "Paging"; bad inquiry_type => rpc_s_invalid_inquiry_type 0x16c9a0a9,
//                      bad vers_option (types 1 and 3 only, DCE) => rpc_s_invalid_vers_option
//                      0x16c9a0bd, max_ents 0 => ept_s_cant_perform_op; a handle of another
//                      inquiry type or of ept_map => ept_s_invalid_context 0x16c9a0d5 and that
//                      handle is freed (DCE rpcdepdb.c)
//   3 ept_map          see "Paging"; max_towers 0 => ept_s_cant_perform_op; NULL / malformed
//                      tower, > 6 floors, < 4 floors, nil interface => ept_s_invalid_entry
//                      (DCE ept_map); an ept_lookup handle => ept_s_invalid_context (freed)
//   4 ept_lookup_handle_free  frees a handle of this connection: status 0 and a null handle;
//                      a null handle: status 0; an unknown or foreign handle:
//                      ept_s_invalid_context (null handle returned)
//   5 ept_inq_object   EpmConfig::ept_object (nil by default) and status 0 (DCE; Windows and
//                      Samba answer ept_s_cant_perform_op, no client depends on either)
//   6 ept_mgmt_delete  may_register and a uid ? EndpointDb::mgmt_delete(..., uid)
//                      : ept_s_cant_perform_op
//   7 ept_map_auth, 8 ept_map_auth_async, > 8: fault nca_s_op_rng_error (0x1c010002), as Samba
//   any stub that does not decode: fault rpc_x_bad_stub_data (0x6f7), as Windows
//   bytes after the last [in] parameter: ignored, as Windows' and Samba's servers do (issue 11;
//   ndr/epm_types.h); counted in EpmStats::trailing_bytes_calls and reported to
//   on_trailing_bytes() for a debug log line. The stub is still bounded by kMaxRequestStub.
//
// Ownership (issue 10; endpoint_db.h "Ownership"): the operations that change the map act with
// the caller's uid (CallerInfo::uid) as authority: a caller changes only its own uid's entries,
// root (uid 0) any but epmd's own, nobody over the wire epmd's own (inserted by the daemon
// through db() with kEpmdAuthority). A caller without a uid changes nothing, even with
// may_register (defence in depth: the transport should not grant it then). Every refusal is
// ept_s_cant_perform_op in the response, counted in EpmStats (refused_registrations,
// refused_not_owner, refused_quota) and reported to the on_refusal() callback with the cap or
// the owner that refused, for the log. Multi-entry calls: ept_insert is all or nothing;
// ept_delete stops at the first entry it may not delete (the earlier ones stay deleted, DCE's
// rule for a missing entry); ept_mgmt_delete removes nothing if one match is foreign.
//
// Leases (issue 11): a registration is either leased or persistent, and the caller chooses.
//   leased      the connection called hold_lease() (the daemon calls it for a control-socket
//               connection that took a port with the broker's AllocatePort or asked for a lease
//               with HoldLease, broker_protocol.h) BEFORE the ept_insert: the entry goes when that
//               connection closes (connection_closed), as a brokered server's port does. Our own
//               registrant library (EpmdClient::register_endpoint) always asks first.
//   persistent  any other ept_insert (a DCE rpc_ep_register, Impacket, `rpcgate register`): the
//               entry stays after the connection closes, as in DCE's rpcd (C706), until
//               ept_delete / ept_mgmt_delete by its uid or root, or until the daemon's liveness
//               sweep (epm/liveness.h) finds its endpoint dead.
// Entries inserted before hold_lease() stay persistent (a lease is not retroactive: what was
// inserted is what the registrant asked for then). Persistent entries count against
// max_entries_per_uid and max_entries like any other, but not against max_entries_per_owner:
// that cap bounds what one connection's close removes at once, and they outlive the connection.
//
// Paging (ept_lookup and ept_map): up to min(max, 500) results per call (MS-RPCE: range
// 0..500). If another match follows, the response carries a context handle (a new one on the
// first call, the same one on later calls) and status 0. When no match follows (the last
// batch), the handle is freed and the response carries a null handle and status 0 (Windows and
// DCE; Samba's ept_s_not_registered on the last batch breaks Impacket's rpcdump.py).
// ept_s_not_registered (0x16c9a0d6) only when a call returns 0 results. The array conformance
// (max_count) in the response is the request's max_ents / max_towers, as MIDL writes it, for
// the values MS-RPCE allows ([range(0,500)]); above 500 Windows' stub faults (rpc_x_bad_stub_data)
// while rpcgate is lenient: it answers as for 500, conformance 500 included (so a response never
// claims an array bigger than the cap, which the firewall's decoder would refuse past 65536).
// Tower host floors: EpmConfig::advertised_ipv4, else CallerInfo::local_ipv4, else 0.0.0.0,
// substituted for registered wildcard (0.0.0.0) addresses (render_tower).
//
// Context handles: 16 random bytes (std::random_device, or a seeded generator for tests and
// fuzzing) with attributes 0; they name a cursor (EndpointDb paging snapshot: the next entry
// id), never memory. A handle is only valid on the connection that got it: on any other it is
// ept_s_invalid_context (Windows' runtime would fault nca_s_fault_context_mismatch instead;
// rpcgate keeps DCE's status, which Impacket reports as a clean error). Three caps, each of
// which makes room by freeing a handle rather than refusing the newcomer (a client that
// abandons paging, like Impacket which never calls handle_free, keeps working; an abusive one
// stays bounded), checked in this order when a call needs a new handle:
//   max_handles_per_connection (64): that connection's oldest (by creation) goes;
//   max_handles_per_peer (4096): that peer's least recently used goes. The peer is
//     CallerInfo::peer_key (client IP, IPv6 /64); a local caller (peer_key "") is keyed by its
//     uid, or by its connection when the uid is unknown;
//   max_handles_total (65536): the least recently used handle of the biggest holder (the peer
//     with the most handles; ties: the greatest key) goes - so 1024 connections x 64 handles
//     from one address cannot stop another client's paging (issue 10 item 5).
// Every handle is idle between calls (calls are serialised on the owner thread), so "least
// recently used" is the oldest idle one. A call never fails for want of a handle (a cap of 0 is
// taken as 1).
// connection_closed() runs the connection's handles down and removes its registrations.
//
// Answer cache (ept_map_cache.h): an ept_map with a NULL entry_handle whose answer carries no
// handle (every result fit in one page, or none matched) is stateless: the same request bytes,
// byte order and host floor get the same answer until the map changes. Such answers are kept
// encoded (EpmConfig::map_cache bounds them) and a repeated request is answered from the cache:
// no decode, scan, match or encode, and no allocation (respond() returns a view). A hit counts in
// EpmStats (calls, not_registered) and reports trailing bytes as a computed answer does. Any
// change to the map (EndpointDb::generation()) empties the cache, so the next ept_map sees it.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/bytes.h"
#include "common/uuid.h"
#include "epm/call.h"
#include "epm/endpoint_db.h"
#include "epm/ept_map_cache.h"
#include "ndr/ndr.h"

namespace rpcgate::epm {

inline constexpr std::uint16_t kOpnumEptMapAuth = 7;
inline constexpr std::uint16_t kOpnumEptMapAuthAsync = 8;
inline constexpr std::uint16_t kEpmOpnumCount = 9;  // 0..8 exist in MS-RPCE; 0..6 implemented

// The largest request stub the endpoint mapper can legitimately receive, the per-call cap given
// to Server::add_interface: an ept_insert (ept_delete is 4 bytes shorter) of the most entries one
// owner may hold, each with the longest annotation and the longest tower that means anything.
// Every other request is smaller (ept_map / ept_lookup: one tower and a few fixed fields).
//   tower (ndr/tower.h TowerLimits: at most 6 floors, MS-RPCE 3.1.3.5.3), little-endian:
//     floor count u16                                                         2
//     floors 1-2, interface / transfer syntax: u16 + lhs (0x0d, uuid, u16 major) 19
//                                              + u16 + rhs (u16 minor) 2 = 25, twice  50
//     floor 3, RPC protocol: u16 + lhs 1 + u16 + rhs (u16 minor) 2                7
//     floors 4-6, address: u16 + lhs 1 + u16 + rhs; the longest rhs a real address floor
//       carries is a string endpoint or host name: kMaxAddressFloorRhs (a named pipe name is
//       at most 256 characters, a DNS name 253, a Unix socket path 107) -> 261, thrice  783
//     = 842
//   ept_insert stub (ndr/epm_types.h), NDR20:
//     num_ents u32 + the array's max_count u32                                   8
//     per entry: object uuid 16 + tower referent id 4 + annotation (offset u32,
//       actual_count u32, at most kMaxAnnotationSize 64 chars) 72             = 92
//     per entry, deferred twr_t: max_count u32 + tower_length u32 + 842 octets,
//       padded to 4                                                          = 852
//     replace u32                                                                4
//   = 8 + 256 * (92 + 852) + 4 = 241'676 bytes with DbLimits' 256 entries per owner.
inline constexpr std::size_t kMaxAddressFloorRhs = 256;
inline constexpr std::size_t kMaxTowerOctets =
    2 + 2 * (2 + 19 + 2 + 2) + (2 + 1 + 2 + 2) + 3 * (2 + 1 + 2 + kMaxAddressFloorRhs);
inline constexpr std::size_t kMaxRequestStub =
    8 +
    DbLimits{}.max_entries_per_owner * ((16 + 4 + 4 + 4 + ndr::epm::kMaxAnnotationSize) +
                                        ((4 + 4 + kMaxTowerOctets + 3) & ~std::size_t{3})) +
    4;
static_assert(kMaxTowerOctets == 842);
static_assert(DbLimits{}.max_entries_per_owner != 256 || kMaxRequestStub == 241'676);

struct EpmConfig {
  DbLimits db;
  std::size_t max_handles_per_connection = 64;
  std::size_t max_handles_per_peer = 4096;
  std::size_t max_handles_total = 65536;
  std::uint32_t max_results = 500;      // cap on max_ents / max_towers per call
  std::optional<Ipv4> advertised_ipv4;  // NAT: the address clients must use
  common::Uuid ept_object;              // ept_inq_object's answer (nil by default)
  std::optional<std::uint64_t> seed;    // deterministic handles (tests, fuzzing)
  EptMapCacheLimits map_cache;          // see "Answer cache"; max_entries 0 disables it
  // Applied to every request stub; counts above these are a malformed stub (fault 0x6f7).
  ndr::DecodeLimits decode_limits{.max_array_elements = 4096,
                                  .max_string_length = 4096,
                                  .max_depth = 32,
                                  .max_total_alloc = 4u << 20};
};

struct EpmStats {
  std::array<std::uint64_t, kEpmOpnumCount + 1> calls{};  // by opnum; [9] = opnum > 8
  std::uint64_t faults_bad_stub = 0;                      // fault 0x6f7
  std::uint64_t faults_op_rng = 0;                        // fault nca_s_op_rng_error
  std::uint64_t trailing_bytes_calls = 0;   // requests with ignored bytes after the last param.
  std::uint64_t not_registered = 0;         // map / lookup answers with no result
  std::uint64_t invalid_context = 0;        // ept_s_invalid_context answers
  std::uint64_t refused_registrations = 0;  // insert / delete / mgmt_delete without may_register
                                            // or without a uid
  std::uint64_t refused_not_owner = 0;      // changes of another uid's / epmd's entries
  std::uint64_t refused_quota = 0;          // DbLimits caps
  std::uint64_t registrations = 0;          // successful ept_insert calls
  std::uint64_t unregistrations = 0;        // successful ept_delete / ept_mgmt_delete calls
  std::uint64_t owner_removals = 0;         // entries removed by connection_closed()
  std::uint64_t handles_created = 0;
  std::uint64_t handles_evicted = 0;        // oldest freed at the per-connection cap
  std::uint64_t handles_evicted_peer = 0;   // least recently used freed at the per-peer cap
  std::uint64_t handles_evicted_total = 0;  // biggest holder's LRU freed at the total cap
  std::size_t entries = 0;                  // current
  std::size_t handles = 0;                  // current
};

class EpmService {
 public:
  explicit EpmService(EpmConfig config = {});

  // One call of the EPM interface. `stub` is the request stub in `endian` byte order (the
  // PDU's drep); the response stub uses the same byte order. See the header comment for each
  // opnum's contract. The answer is a view of the service's reply buffer or of a cached ept_map
  // answer ("Answer cache"): valid until the next respond() / call() or change through db();
  // send or copy it before that. No allocation when the answer comes from the cache.
  OutcomeView respond(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                      common::Endian endian, const CallerInfo& caller);
  // The same, returning a copy of the stub (tests, fuzzers: anything that keeps answers).
  Outcome call(std::uint16_t opnum, std::span<const std::uint8_t> stub, common::Endian endian,
               const CallerInfo& caller);

  // The connection ended (or its association was torn down): frees its context handles
  // (rundown), removes the entries it registered under its lease (persistent ones stay) and
  // forgets the lease. Returns the number of entries removed.
  std::size_t connection_closed(std::uint64_t connection_id);

  // From now on, ept_insert on `connection_id` creates entries leased to that connection (see
  // "Leases"). Idempotent; ends with connection_closed(connection_id). 0 is ignored.
  void hold_lease(std::uint64_t connection_id);
  bool holds_lease(std::uint64_t connection_id) const { return leases_.contains(connection_id); }

  // Direct access for the daemon (persistent entries from configuration: owner 0) and tests.
  EndpointDb& db() { return db_; }
  const EndpointDb& db() const { return db_; }
  // The ept_map answer cache (its statistics; see "Answer cache").
  const EptMapCache& map_cache() const { return map_cache_; }
  EpmStats stats() const;
  std::size_t handle_count(std::uint64_t connection_id) const;
  // Handles held by the peer key `key` (see "Context handles": "uid N" for a local caller).
  std::size_t peer_handle_count(std::string_view key) const;
  // Called for each refused change with the caller and why (for the daemon's log).
  void on_refusal(std::function<void(const CallerInfo&, const Refusal&)> fn) {
    on_refusal_ = std::move(fn);
  }
  // Called for each request whose stub had `bytes` unread bytes after its last [in] parameter
  // (ignored; for the daemon's debug log).
  void on_trailing_bytes(
      std::function<void(const CallerInfo&, std::uint16_t opnum, std::size_t bytes)> fn) {
    on_trailing_bytes_ = std::move(fn);
  }

 private:
  enum class HandleKind : std::uint8_t { kLookup, kMap };
  struct HandleState {
    std::uint64_t connection_id = 0;
    HandleKind kind = HandleKind::kLookup;
    std::uint32_t inquiry_type = 0;  // kLookup
    std::uint64_t lookup_next = 0;   // kLookup
    MapCursor map_next;              // kMap
    std::string peer;                // per-peer key (set by new_handle)
    std::uint64_t last_use = 0;      // use_clock_ at creation or last page
  };
  struct PeerHandles {
    std::map<std::uint64_t, common::Uuid> by_use;  // last_use -> handle, least recent first
  };
  // Result of resolving a request's entry_handle.
  enum class HandleLookup : std::uint8_t { kNull, kFound, kInvalid };

  Outcome dispatch(std::uint16_t opnum, std::span<const std::uint8_t> stub, common::Endian endian,
                   const CallerInfo& caller);
  Outcome ept_insert(std::span<const std::uint8_t> stub, common::Endian endian,
                     const CallerInfo& caller);
  Outcome ept_delete(std::span<const std::uint8_t> stub, common::Endian endian,
                     const CallerInfo& caller);
  Outcome ept_lookup(std::span<const std::uint8_t> stub, common::Endian endian,
                     const CallerInfo& caller);
  Outcome ept_map(std::span<const std::uint8_t> stub, common::Endian endian,
                  const CallerInfo& caller);
  Outcome ept_lookup_handle_free(std::span<const std::uint8_t> stub, common::Endian endian,
                                 const CallerInfo& caller);
  Outcome ept_inq_object(std::span<const std::uint8_t> stub, common::Endian endian,
                         const CallerInfo& caller);
  // A request had `bytes` > 0 unread bytes after its last parameter: counted and reported.
  void trailing(const CallerInfo& caller, std::uint16_t opnum, std::size_t bytes);
  Outcome ept_mgmt_delete(std::span<const std::uint8_t> stub, common::Endian endian,
                          const CallerInfo& caller);

  HandleLookup find_handle(const ndr::ContextHandle& h, std::uint64_t connection_id,
                           HandleState** out);
  // A new handle for the caller, freeing others at the caps (see "Context handles").
  common::Uuid new_handle(const CallerInfo& caller, HandleState state);
  void free_handle(const common::Uuid& uuid);
  void touch(const common::Uuid& uuid, HandleState& state);
  // A change refused before the db (no may_register, or no uid): counted, reported, and
  // ept_s_cant_perform_op returned.
  std::uint32_t unauthorized(const CallerInfo& caller);
  // The db's answer to a change, passed through; a refusal is counted and reported.
  std::uint32_t counted(const CallerInfo& caller, std::uint32_t status);
  // After a page of ept_lookup / ept_map: when more results remain (`next`), the handle the
  // response carries is the caller's own, moved on to `next`, or a new one for `next`; when done,
  // the caller's handle (if any) is freed and the null handle returned.
  ndr::ContextHandle after_page(const CallerInfo& caller, HandleLookup found,
                                const ndr::ContextHandle& current, HandleState* state,
                                const std::optional<HandleState>& next);
  // Counts the statuses EpmStats tracks.
  void count_status(std::uint32_t status);
  common::Uuid random_uuid();
  Ipv4 host_for(const CallerInfo& caller) const;

  EpmConfig config_;
  EndpointDb db_;
  std::unordered_map<common::Uuid, HandleState> handles_;
  std::unordered_map<std::uint64_t, std::deque<common::Uuid>> by_connection_;  // oldest first
  std::unordered_map<std::string, PeerHandles> by_peer_;
  std::set<std::pair<std::size_t, std::string>> holders_;  // (handles, peer key), biggest last
  std::uint64_t use_clock_ = 0;
  std::function<void(const CallerInfo&, const Refusal&)> on_refusal_;
  std::unordered_set<std::uint64_t> leases_;  // connections holding a lease (hold_lease)
  std::function<void(const CallerInfo&, std::uint16_t, std::size_t)> on_trailing_bytes_;
  std::optional<std::mt19937_64> seeded_;
  std::unique_ptr<std::random_device> random_;  // unique_ptr: keeps EpmService movable
  EpmStats stats_;
  EptMapCache map_cache_;
  std::vector<std::uint8_t> reply_;  // the stub respond() returns a view of (computed answers)
};

}  // namespace rpcgate::epm
