// The endpoint map: the registered (object, interface, tower) entries and the two queries the
// endpoint mapper answers over them, ept_map and ept_lookup. Sans-I/O: no sockets, threads,
// clocks; one owner thread (the daemon's event loop). Context handles live in EpmService
// (epm_service.h); this class only computes pages from a cursor.
//
// Semantics follow the DCE 1.2.2 endpoint mapper (dced `oeops.c` / rpcd `rpcdepdb.c`: epdb_insert,
// epdb_delete_replaceable_entries, map, map_mgmt, lookup_match), which is what C706 App. O
// describes and what Windows' RPCSS implements ([MS-RPCE] 2.2.1.2.5 ept_map, 3.1.3.5.3 towers).
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
// Ownership (issue 10): every entry has two owners, kept apart on purpose.
//   lease      the registration session (connection id) whose close removes the entry
//              (remove_owner); 0 = persistent. Liveness only, never authority.
//   authority  who may change the entry over the wire: the uid that inserted it (CallerInfo::uid),
//              or kEpmdAuthority for epmd's own entries (its EPM towers, configured static
//              entries), which nobody may change over the wire, root and epmd's own uid included.
// A change of an entry (ept_delete, ept_mgmt_delete, and ept_insert's replace rule, which removes
// replaceable entries and rewrites an exact duplicate's annotation and owners) is allowed when the
// caller's authority equals the entry's, or the caller is root (uid 0) and the entry is not
// epmd's, or the caller is kEpmdAuthority (the daemon itself, never a wire caller); otherwise
// ept_s_cant_perform_op and last_refusal() says why.
//
// Cost (issue 10 item 4): entries are indexed by (object, tower octets) (exact duplicates,
// ept_delete), by DCE's replace key and network address (replace), by lease (remove_owner) and
// counted per authority, so insert, replace and delete cost O(log n) amortized per entry given
// (each removed entry is paid for by its own insert) and the caps are O(1) counters. ept_map and
// ept_lookup walk the id-ordered map as before; ept_mgmt_delete, one call, scans it once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/uuid.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::epm {

using Octets = std::vector<std::uint8_t>;
using Ipv4 = std::array<std::uint8_t, 4>;
using ndr::SyntaxId;

// Owner ids (leases): the registration session (connection) that inserted an entry; 0 =
// persistent (configured entries, never removed by remove_owner()).
inline constexpr std::uint64_t kPersistentOwner = 0;

// Authorities: a uid (0 .. 2^32-1), or epmd itself. Root is uid 0.
inline constexpr std::uint64_t kEpmdAuthority = std::uint64_t{1} << 32;
inline constexpr std::uint64_t kRootAuthority = 0;

// Who inserts or asks for a change.
struct Registrant {
  std::uint64_t lease = kPersistentOwner;
  std::uint64_t authority = kEpmdAuthority;
};

// True if `caller` may change (delete, replace, rewrite) an entry whose authority is `entry`:
// see "Ownership" above.
bool may_change(std::uint64_t caller, std::uint64_t entry);

// Caps, all checked on the result of an operation (a replace may free what it takes) but bounded
// before any work: a call carrying more entries than the caller's smallest cap is refused
// outright. Every refusal is ept_s_cant_perform_op with nothing changed, and last_refusal()
// names the cap and its value.
// Root reserve: a non-root uid may grow the map only up to max_entries - root_reserve; the rest
// is for root and epmd itself, so that no set of unprivileged users can fill the map and make
// root's next registration fail (issue 10: `nobody` filled the 4096 entries). Root and epmd are
// exempt from max_entries_per_uid (they are trusted) but not from max_entries nor, for a
// non-persistent lease, from max_entries_per_owner.
struct DbLimits {
  std::size_t max_entries = 4096;           // whole map
  std::size_t max_entries_per_owner = 256;  // per non-persistent lease (connection)
  std::size_t max_entries_per_uid = 1024;   // per non-root uid, over all its connections
  std::size_t root_reserve = 512;           // of max_entries, usable by root and epmd only
};

// Why the last mutation answered ept_s_cant_perform_op (for logs and EpmStats).
struct Refusal {
  enum class Reason : std::uint8_t {
    kForeignEntry,  // the change touched an entry of another uid
    kEpmdEntry,     // ... an entry of epmd itself
    kNoAuthority,   // the caller has no uid (EpmService: defence in depth)
    kMaxEntries,    // DbLimits::max_entries
    kRootReserve,   // max_entries - root_reserve, for a non-root uid
    kPerOwner,      // DbLimits::max_entries_per_owner
    kPerUid,        // DbLimits::max_entries_per_uid
  };
  Reason reason = Reason::kForeignEntry;
  std::size_t limit = 0;              // the cap's value (caps only)
  std::uint64_t caller = 0;           // the caller's authority
  std::uint64_t entry_authority = 0;  // the touched entry's (ownership refusals only)
  friend bool operator==(const Refusal&, const Refusal&) = default;
};
// "max_entries_per_uid 1024 (uid 65534)", "entry of uid 0 (caller uid 65534)", ...
std::string to_string(const Refusal& r);

// One registration, with the tower's meaning decoded once at insert.
struct Entry {
  std::uint64_t id = 0;                      // insertion order; see "Ordering and paging snapshot"
  common::Uuid object;                       // nil = no object
  SyntaxId interface;                        // tower floor 1
  SyntaxId transfer_syntax;                  // tower floor 2
  std::uint8_t rpc_protocol = 0;             // floor 3 id: 0x0a ncadg, 0x0b ncacn, 0x0c ncalrpc
  std::uint16_t rpc_protocol_minor = 0;      // floor 3 rhs
  ndr::Tower tower;                          // as registered
  Octets tower_octets;                       // as registered (exact-duplicate test, ept_delete)
  std::string annotation;                    // <= 63 characters, no NUL
  std::uint64_t owner = kPersistentOwner;    // lease (connection id)
  std::uint64_t authority = kEpmdAuthority;  // uid that may change it; see "Ownership"
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

// Validates a wire entry into an Entry (id, owner and authority unset). Errors
// (ept_s_invalid_entry): no tower, a tower decode_tower() / view_tower() reject (more than 6 floors
// included), fewer than 4 floors (no protseq), a nil transfer-syntax uuid (DCE epdb_chk_entry),
// an annotation longer than 63 characters or holding a NUL. A nil interface uuid is accepted
// (unlike DCE, like Windows and Samba: Samba's tools build such towers, smbtorture registers
// one); ept_map never matches it (parse_map_tower refuses a nil interface).
// Every protocol sequence is stored (issue 11): floors 4..n may be any well-formed floors -
// ncacn_ip_tcp, ncadg_ip_udp, ncacn_http (port + IPv4), ncacn_np (pipe + NetBIOS host),
// ncalrpc (port name), ncacn_unix_stream, or protocol ids rpcgate does not know, kept as opaque
// floors (scan_tower's count and length rules still apply).
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
  explicit EndpointDb(DbLimits limits = {});

  // ept_insert by `who`: all or nothing. Each entry is validated (make_entry) first; then, in
  // order:
  //   replace: entries with the same object, interface uuid + major, protseq, transfer syntax
  //            (uuid, major, minor), RPC protocol (id, minor) and network address are removed
  //            whatever their endpoint; if one of them has a *higher* interface minor than the
  //            new entry, the insert fails with ept_s_invalid_entry (DCE
  //            epdb_delete_replaceable_entries: a server must not downgrade a newer one).
  //   an exact duplicate (same object and the same tower octets) is not stored twice: its
  //            annotation, lease and authority are updated, its id kept (DCE
  //            epdb_replace_entry; the latest registrant owns it, so it lives as long as that
  //            session) - with or without `replace`.
  //   otherwise the entry is added with a fresh id.
  // Removing a replaceable entry or rewriting a duplicate is a change: an entry `who` may not
  // change (may_change) fails the whole call with ept_s_cant_perform_op, nothing changed.
  // Caps (DbLimits): ept_s_cant_perform_op, nothing changed. Returns 0 or the first error.
  std::uint32_t insert(const std::vector<ndr::epm::EptEntry>& entries, bool replace,
                       Registrant who);
  // The same as epmd itself (authority kEpmdAuthority) with lease `owner`: the daemon's own
  // entries, configuration, tests.
  std::uint32_t insert(const std::vector<ndr::epm::EptEntry>& entries, bool replace,
                       std::uint64_t owner) {
    return insert(entries, replace, Registrant{owner, kEpmdAuthority});
  }

  // ept_delete by `authority`: each entry is found by object + exact tower octets (DCE
  // epdb_lookup_entry); processed in order, stopping at the first failure, the earlier ones
  // staying deleted (as DCE): not registered (ept_s_not_registered), an entry `authority` may
  // not change (ept_s_cant_perform_op), no tower (ept_s_invalid_entry).
  std::uint32_t erase(const std::vector<ndr::epm::EptEntry>& entries,
                      std::uint64_t authority = kEpmdAuthority);

  // The registration session `owner` ended: its entries go. Returns how many. Owner 0
  // (persistent) removes nothing.
  std::size_t remove_owner(std::uint64_t owner);

  // Removes the entry `id` whatever its owners (the daemon's liveness sweep: it found the
  // endpoint dead). Returns the removed entry, or nullopt if there is none.
  std::optional<Entry> remove(std::uint64_t id);

  // ept_mgmt_delete (DCE epdb_delete_entries_by_obj_if_addr): removes every entry whose
  // interface uuid, major and minor equal the tower's, whose RPC protocol and address floors
  // (floors 4..n, endpoint and host) equal the tower's, and, if object_speced, whose object
  // equals `object` (NULL = nil). 0 if any was removed, ept_s_not_registered if none,
  // ept_s_invalid_entry for a NULL / malformed tower. All or nothing: if `authority` may not
  // change one of the matching entries, none is removed (ept_s_cant_perform_op) - one call names
  // one set of entries, and removing only the caller's part of it would be a silent half answer.
  std::uint32_t mgmt_delete(bool object_speced, const std::optional<common::Uuid>& object,
                            const std::optional<Octets>& tower,
                            std::uint64_t authority = kEpmdAuthority);

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
  // Entries of lease `owner` / of authority `authority`. O(1).
  std::size_t count_for(std::uint64_t owner) const;
  std::size_t count_for_authority(std::uint64_t authority) const;
  const std::map<std::uint64_t, Entry>& entries() const { return entries_; }
  const DbLimits& limits() const { return limits_; }
  // Why the last insert / erase / mgmt_delete answered ept_s_cant_perform_op; nullopt after one
  // that did not.
  const std::optional<Refusal>& last_refusal() const { return last_refusal_; }
  // Stored entries examined or moved by insert, erase and remove_owner since construction: the
  // complexity tests' witness (linear in the entries given, not in the map's size).
  std::uint64_t work() const { return work_; }
  // Changes whenever the map may have changed: every entry added, removed or rewritten (insert,
  // its rollback, erase, remove_owner, remove, mgmt_delete - the daemon's static reload and
  // liveness sweep go through these) bumps it. Never decreases. A cache of answers computed from
  // the map (EptMapCache) is valid only while it is unchanged. Each EndpointDb constructed starts
  // at its own base (2^32 apart), so a map replaced by assignment does not reuse a generation.
  std::uint64_t generation() const { return generation_; }

 private:
  struct ReplaceGroup {
    std::map<std::uint16_t, std::size_t> minors;  // interface minor -> entries (the max refuses)
    std::unordered_map<std::string, std::set<std::uint64_t>> by_address;  // network address
  };
  // What insert() did, to roll back: an id it added, or an entry it removed.
  struct Undo {
    std::uint64_t added = 0;
    std::optional<Entry> removed;
  };

  std::uint32_t apply(Entry incoming, bool replace, std::uint64_t authority,
                      std::vector<Undo>& undo);
  // The first cap `who` exceeds: counting only a call of `call` entries, or the map as it is.
  std::optional<Refusal> cap_exceeded(const Registrant& who, std::optional<std::size_t> call) const;
  std::uint32_t refuse(Refusal r);
  void link(Entry e);
  Entry unlink(std::uint64_t id);

  DbLimits limits_;
  std::map<std::uint64_t, Entry> entries_;  // by id
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::string, std::uint64_t> by_exact_;  // object + tower octets -> id
  std::unordered_map<std::string, ReplaceGroup> groups_;     // DCE's replace key
  std::unordered_map<std::uint64_t, std::set<std::uint64_t>> by_lease_;
  std::unordered_map<std::uint64_t, std::size_t> per_authority_;
  std::optional<Refusal> last_refusal_;
  std::uint64_t work_ = 0;
  std::uint64_t generation_ = 0;  // link() and unlink() bump it: every change passes there
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
