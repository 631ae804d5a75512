// The endpoint map: the registered (object, interface, tower) entries and the two queries the
// endpoint mapper answers over them, ept_map and ept_lookup. Sans-I/O: no sockets, threads,
// clocks; one owner thread (the daemon's event loop). Context handles live in EpmService
// (epm_service.h); this class only computes pages from a cursor.
//
// Semantics follow the DCE 1.2.2 endpoint mapper (dced `oeops.c` / rpcd `rpcdepdb.c`: epdb_insert,
// epdb_delete_replaceable_entries, map, map_mgmt, lookup_match), which is what C706 App. O
// describes and what Windows' RPCSS implements; ../shared/reference/epm-and-ports.md §2.3, §5.
//
// Ordering and paging snapshot: every stored entry gets an id from a counter that only grows
// (never reused). Queries walk entries in id order, so a cursor is just "the next id to
// consider" (plus the pass for ept_map). An insert during paging lands after every existing id
// (seen later in the same walk if it matches), a delete simply disappears from the walk; no
// entry is returned twice and no cursor can dangle. Entries deleted and re-inserted get a new
// id (they may then be seen again: they are a new registration).
//
// Statuses are the DCE values of ept.idl / C706 App. E (rpc/status.h): 0, ept_s_not_registered
// 0x16c9a0d6, ept_s_cant_perform_op 0x16c9a0cd, ept_s_invalid_entry 0x16c9a0d3.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/uuid.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::epm {

using Octets = std::vector<std::uint8_t>;
using Ipv4 = std::array<std::uint8_t, 4>;
using ndr::SyntaxId;

// Owner ids: the registration session (connection) that inserted an entry; 0 = persistent
// (configured entries, never removed by remove_owner()).
inline constexpr std::uint64_t kPersistentOwner = 0;

struct DbLimits {
  std::size_t max_entries = 4096;           // whole map
  std::size_t max_entries_per_owner = 256;  // per non-persistent owner
};

// One registration, with the tower's meaning decoded once at insert.
struct Entry {
  std::uint64_t id = 0;                  // insertion order; see "Ordering and paging snapshot"
  common::Uuid object;                   // nil = no object
  SyntaxId interface;                    // tower floor 1
  SyntaxId transfer_syntax;              // tower floor 2
  std::uint8_t rpc_protocol = 0;         // floor 3 id: 0x0a ncadg, 0x0b ncacn, 0x0c ncalrpc
  std::uint16_t rpc_protocol_minor = 0;  // floor 3 rhs
  ndr::Tower tower;                      // as registered
  Octets tower_octets;                   // as registered (exact-duplicate test, ept_delete)
  std::string annotation;                // <= 63 characters, no NUL
  std::uint64_t owner = kPersistentOwner;
  // Computed by make_entry for the per-call path (ept_map answers without re-encoding):
  std::vector<std::uint8_t> protseq_ids;   // see protseq()
  std::vector<std::size_t> wildcard_ipv4;  // offsets in tower_octets of 0.0.0.0 IPv4 floor values

  // Protocol ids of floors 4..n (e.g. {0x07, 0x09} for ncacn_ip_tcp): the "protseq" C706 maps on.
  const std::vector<std::uint8_t>& protseq() const { return protseq_ids; }
  // rhs of the first host floor (0x09 IPv4 / 0x11 NetBIOS), empty if none: the "network
  // address" of DCE's replace rule.
  std::vector<std::uint8_t> network_address() const;
  // rpc_protocol + floors 4..n without the host floors: one endpoint (protseq + port / pipe).
  std::vector<std::uint8_t> endpoint_key() const;
};

// Validates a wire entry into an Entry (id and owner unset). Errors (ept_s_invalid_entry): no
// tower, a tower decode_tower() / view_tower() reject (more than 6 floors included), fewer than
// 4 floors (no protseq), a nil interface or transfer-syntax uuid (DCE epdb_chk_entry), an
// annotation longer than 63 characters or holding a NUL.
std::expected<Entry, std::uint32_t> make_entry(const ndr::epm::EptEntry& wire);

// What an ept_map tower asks for (C706 App. O ept_map; dced tower_to_fields).
struct MapQuery {
  common::Uuid object;  // NULL pointer and nil are the same: "no object"
  SyntaxId interface;
  SyntaxId transfer_syntax;
  std::uint8_t rpc_protocol = 0;
  std::vector<std::uint8_t> protseq;  // floors 4..n protocol ids; addresses are ignored (MS-RPCE)
};
// Errors (ept_s_invalid_entry, as DCE ept_map answers a bad map_tower): NULL tower, a tower
// decode_tower() / view_tower() reject (more than 6 floors: MS-RPCE 3.1.3.5.3 SHOULD reject),
// fewer than 4 floors, nil interface or transfer-syntax uuid.
// Decodes nothing into the heap but the protseq (ndr::scan_tower): it runs for every ept_map.
std::expected<MapQuery, std::uint32_t> parse_map_tower(const std::optional<Octets>& tower,
                                                       const std::optional<common::Uuid>& object);

// Position of a paged ept_map: pass 1 = entries with the query's object, pass 2 = nil-object
// entries; next_id = first id not yet considered in that pass.
struct MapCursor {
  std::uint8_t pass = 1;
  std::uint64_t next_id = 0;
  friend bool operator==(const MapCursor&, const MapCursor&) = default;
};

// The management interface afa8bd80-7d8a-11c9-bef4-08002b102989 (every server exports it).
bool is_mgmt_interface(const common::Uuid& uuid);

// ept_lookup filter (C706 numbering; the caller validated inquiry_type 0-3 and vers_option 1-5).
struct LookupQuery {
  std::uint32_t inquiry_type = ndr::epm::kRpcCEpAllElts;
  common::Uuid object;      // NULL pointer = nil
  ndr::epm::RpcIfId if_id;  // NULL pointer = nil uuid v0.0 (matches nothing: inserts reject nil)
  std::uint32_t vers_option = ndr::epm::kRpcCVersAll;
};
// True if inquiry_type is 0..3 / vers_option is 1..5.
bool valid_inquiry_type(std::uint32_t inquiry_type);
bool valid_vers_option(std::uint32_t vers_option);

// A page: the entries (pointers into the db, valid until its next mutation) and where the next
// page starts, or nullopt when no further entry matches (the caller then returns a null handle).
template <typename Cursor>
struct Page {
  std::vector<const Entry*> entries;
  std::optional<Cursor> next;
};

class EndpointDb {
 public:
  explicit EndpointDb(DbLimits limits = {}) : limits_(limits) {}

  // ept_insert: all or nothing. Each entry is validated (make_entry) first; then, in order:
  //   replace: entries with the same object, interface uuid + major, protseq, transfer syntax
  //            (uuid, major, minor), RPC protocol (id, minor) and network address are removed
  //            whatever their endpoint; if one of them has a *higher* interface minor than the
  //            new entry, the insert fails with ept_s_invalid_entry (DCE
  //            epdb_delete_replaceable_entries: a server must not downgrade a newer one).
  //   an exact duplicate (same object and the same tower octets) is not stored twice: its
  //            annotation and owner are updated (DCE epdb_replace_entry; the latest registrant
  //            owns it, so it lives as long as that session).
  //   otherwise the entry is added with a fresh id.
  // Caps (DbLimits, checked on the result): ept_s_cant_perform_op, nothing changed. Returns 0 or
  // the first error status.
  std::uint32_t insert(const std::vector<ndr::epm::EptEntry>& entries, bool replace,
                       std::uint64_t owner);

  // ept_delete: each entry is found by object + exact tower octets (DCE epdb_lookup_entry);
  // processed in order, stopping at the first that is not registered (ept_s_not_registered;
  // the earlier ones stay deleted, as DCE). No tower: ept_s_invalid_entry.
  std::uint32_t erase(const std::vector<ndr::epm::EptEntry>& entries);

  // The registration session `owner` ended: its entries go. Returns how many. Owner 0
  // (persistent) removes nothing.
  std::size_t remove_owner(std::uint64_t owner);

  // ept_mgmt_delete (DCE epdb_delete_entries_by_obj_if_addr): removes every entry whose
  // interface uuid, major and minor equal the tower's, whose RPC protocol and address floors
  // (floors 4..n, endpoint and host) equal the tower's, and, if object_speced, whose object
  // equals `object` (NULL = nil). 0 if any was removed, ept_s_not_registered if none,
  // ept_s_invalid_entry for a NULL / malformed tower.
  std::uint32_t mgmt_delete(bool object_speced, const std::optional<common::Uuid>& object,
                            const std::optional<Octets>& tower);

  // ept_map matching (C706; DCE map / map_match): an entry matches if its interface uuid and
  // major equal the query's and the query's minor <= the entry's minor, its transfer syntax
  // uuid and major are equal and the query's minor <= the entry's, its RPC protocol id is equal
  // and its protseq (floors 4..n protocol ids) is equal. Order: with a non-nil object, pass 1
  // returns the entries registered with that object, then pass 2 the nil-object entries
  // ("interfaces registered with a NULL object UUID match any object UUID", MS-RPCE 2.2.1.2.5);
  // with a nil object only pass 2. Within a pass, id order.
  // MGMT (is_mgmt_interface(query.interface.uuid), any version): every registered server
  // exports it, so the interface test is skipped and only the first entry (in the order above)
  // of each distinct endpoint (Entry::endpoint_key) is returned. DCE's map_mgmt does this per
  // object and refuses a nil object (ept_s_invalid_entry); rpcgate accepts a nil object and
  // then answers for every nil-object registration, which is what a client mapping MGMT of "the
  // servers on this host" wants.
  // At most `max` entries (max >= 1); `next` is set only if another match follows.
  Page<MapCursor> map(const MapQuery& query, MapCursor from, std::size_t max) const;

  // ept_lookup matching (C706; DCE lookup_match): inquiry_type 0 every entry; 1 interface
  // uuid equal; 2 object equal; 3 both. For 1 and 3 the version also has to pass vers_option
  // (query version vs entry version): 1 all; 2 compatible = same major, entry minor >= query
  // minor; 3 exact; 4 same major; 5 upto = entry version <= query version (entry major lower,
  // or same major and entry minor <= query minor). For 0 and 2 vers_option is not consulted
  // (DCE). Order: id order from `from` (the first id to consider). At most `max` (>= 1).
  Page<std::uint64_t> lookup(const LookupQuery& query, std::uint64_t from, std::size_t max) const;

  std::size_t size() const { return entries_.size(); }
  std::size_t count_for(std::uint64_t owner) const;
  const std::map<std::uint64_t, Entry>& entries() const { return entries_; }
  const DbLimits& limits() const { return limits_; }

 private:
  DbLimits limits_;
  std::map<std::uint64_t, Entry> entries_;  // by id
  std::uint64_t next_id_ = 1;
};

// The tower to send for `entry`: its registered floors, with the interface floor replaced by
// `interface` when given (MGMT answers name MGMT in floor 1, so a firewall that checks that the
// answer is for the requested interface accepts it), and every IPv4 host floor that holds the
// wildcard 0.0.0.0 replaced by `host` (Samba srv_epmapper.c: the address the client reached the
// endpoint mapper on, or the configured advertised address; 0.0.0.0 when the client came over
// IPv6, since towers have no IPv6 floor). A specific registered address is kept.
// Built from entry.tower_octets (equal to encode_tower(entry.tower): decoding is lossless) by
// patching bytes in place - the floors keep their lengths - so no decode or encode per answer.
// `entry` must come from make_entry.
Octets render_tower(const Entry& entry, const std::optional<SyntaxId>& interface, const Ipv4& host);

}  // namespace rpcgate::epm
