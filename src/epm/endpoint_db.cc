#include "epm/endpoint_db.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <span>
#include <string>

#include "rpc/pdu.h"
#include "rpc/status.h"

namespace rpcgate::epm {
namespace {

namespace st = rpc::status;
namespace pid = ndr::protocol_id;

bool is_host_floor(const ndr::Floor& f) {
  return f.protocol_id() == pid::kIp || f.protocol_id() == pid::kNetbios;
}

// Floors 1-3 plus at least one address floor: DCE's tower_to_fields needs
// RPC_C_NUM_RPC_FLOORS + 1 floors to know the protseq.
constexpr std::size_t kMinFloors = 4;

// What DCE's tower_to_fields accepts, over a scanned tower: at least kMinFloors, uuid floors 1-2
// and an RPC protocol floor 3 (view_tower_head), a non-nil transfer syntax, and a non-nil
// interface unless `nil_interface_ok`. The one rule for registered towers (decode_checked) and
// ept_map's (parse_map_tower).
enum class NilInterface : bool { kRefused, kAllowed };
std::expected<ndr::TowerView, std::uint32_t> checked_head(std::span<const std::uint8_t> octets,
                                                          ndr::TowerRef& scanned,
                                                          NilInterface nil_interface) {
  auto s = ndr::scan_tower(octets);  // default TowerLimits: 3..6 floors
  if (!s || s->count < kMinFloors) return std::unexpected(st::kEptSInvalidEntry);
  scanned = *s;
  auto head = ndr::view_tower_head(scanned);
  if (!head || head->transfer_syntax.uuid.is_nil() ||
      (nil_interface == NilInterface::kRefused && head->interface.uuid.is_nil()))
    return std::unexpected(st::kEptSInvalidEntry);
  return *head;
}

// A registered tower: checked_head, plus its floors copied (the Entry keeps them).
struct Decoded {
  ndr::Tower tower;
  ndr::TowerView view;  // floors 1-3; address_floors left empty
};

std::expected<Decoded, std::uint32_t> decode_checked(std::span<const std::uint8_t> octets) {
  ndr::TowerRef scanned;
  // A registration may name the nil interface: Samba's dcerpc_binding_build_tower() puts the
  // binding's (nil) object there, and smbtorture's Insert_noreplace registers such a tower;
  // Windows and Samba store it (DCE's epdb_chk_entry refused it). It can be listed and deleted;
  // ept_map still refuses a nil interface, so nothing is ever mapped to it.
  auto head = checked_head(octets, scanned, NilInterface::kAllowed);
  if (!head) return std::unexpected(head.error());
  return Decoded{ndr::copy_tower(scanned), std::move(*head)};
}

std::vector<std::uint8_t> protseq_of(const std::vector<ndr::Floor>& address_floors) {
  std::vector<std::uint8_t> ids;
  ids.reserve(address_floors.size());
  for (const auto& f : address_floors)
    ids.push_back(f.protocol_id());
  return ids;
}

// The query's version is compatible with the entry's: same major, query minor <= entry minor.
bool version_ok(const SyntaxId& query, const SyntaxId& entry) {
  return query.uuid == entry.uuid && query.major == entry.major && query.minor <= entry.minor;
}

bool address_floors_equal(const Entry& e, const ndr::Tower& tower) {
  if (e.tower.floors.size() != tower.floors.size()) return false;
  return std::equal(e.tower.floors.begin() + 3, e.tower.floors.end(), tower.floors.begin() + 3);
}

void append(std::string& key, std::span<const std::uint8_t> bytes) {
  key.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void append_u16(std::string& key, std::uint16_t v) {
  key.push_back(static_cast<char>(v & 0xff));
  key.push_back(static_cast<char>(v >> 8));
}

// Object + tower octets: DCE's exact-duplicate test and ept_delete's lookup key.
std::string exact_key(const common::Uuid& object, std::span<const std::uint8_t> tower) {
  std::string key;
  key.reserve(16 + tower.size());
  append(key, object.bytes());
  append(key, tower);
  return key;
}

// DCE's replace key (epdb_delete_replaceable_entries): object, interface uuid + major, transfer
// syntax, RPC protocol id + minor, protseq. Every part fixed-size but the protseq, which is last.
std::string replace_key(const Entry& e) {
  std::string key;
  key.reserve(16 + 18 + 20 + 3 + e.protseq().size());
  append(key, e.object.bytes());
  append(key, e.interface.uuid.bytes());
  append_u16(key, e.interface.major);
  append(key, e.transfer_syntax.uuid.bytes());
  append_u16(key, e.transfer_syntax.major);
  append_u16(key, e.transfer_syntax.minor);
  key.push_back(static_cast<char>(e.rpc_protocol));
  append_u16(key, e.rpc_protocol_minor);
  append(key, e.protseq());
  return key;
}

std::string address_key(const Entry& e) {
  const auto a = e.network_address();
  return std::string(a.begin(), a.end());
}

std::string authority_name(std::uint64_t a) {
  return a == kEpmdAuthority ? std::string("epmd") : "uid " + std::to_string(a);
}

bool lookup_matches(const LookupQuery& q, const Entry& e) {
  using namespace ndr::epm;
  bool by_if = false;
  switch (q.inquiry_type) {
    case kRpcCEpAllElts:
      return true;
    case kRpcCEpMatchByObj:
      return e.object == q.object;
    case kRpcCEpMatchByIf:
      by_if = e.interface.uuid == q.if_id.uuid;
      break;
    case kRpcCEpMatchByBoth:
      by_if = e.interface.uuid == q.if_id.uuid && e.object == q.object;
      break;
    default:
      return false;
  }
  if (!by_if) return false;
  const auto qmaj = q.if_id.vers_major, qmin = q.if_id.vers_minor;
  const auto emaj = e.interface.major, emin = e.interface.minor;
  switch (q.vers_option) {
    case kRpcCVersAll:
      return true;
    case kRpcCVersCompatible:
      return qmaj == emaj && qmin <= emin;
    case kRpcCVersExact:
      return qmaj == emaj && qmin == emin;
    case kRpcCVersMajorOnly:
      return qmaj == emaj;
    case kRpcCVersUpto:
      return emaj < qmaj || (emaj == qmaj && emin <= qmin);
    default:
      return false;
  }
}

}  // namespace

std::vector<std::uint8_t> Entry::network_address() const {
  for (std::size_t i = 3; i < tower.floors.size(); ++i)
    if (is_host_floor(tower.floors[i])) return tower.floors[i].rhs;
  return {};
}

std::vector<std::uint8_t> Entry::endpoint_key() const {
  std::vector<std::uint8_t> key{rpc_protocol};
  for (std::size_t i = 3; i < tower.floors.size(); ++i) {
    const auto& f = tower.floors[i];
    if (is_host_floor(f)) continue;
    // Length-prefixed so that different splits cannot collide.
    key.push_back(static_cast<std::uint8_t>(f.lhs.size()));
    key.insert(key.end(), f.lhs.begin(), f.lhs.end());
    key.push_back(static_cast<std::uint8_t>(f.rhs.size() & 0xff));
    key.push_back(static_cast<std::uint8_t>(f.rhs.size() >> 8));
    key.insert(key.end(), f.rhs.begin(), f.rhs.end());
  }
  return key;
}

std::expected<Entry, std::uint32_t> make_entry(const ndr::epm::EptEntry& wire) {
  if (!wire.tower) return std::unexpected(st::kEptSInvalidEntry);
  if (wire.annotation.size() >= ndr::epm::kMaxAnnotationSize ||
      wire.annotation.find('\0') != std::string::npos)
    return std::unexpected(st::kEptSInvalidEntry);
  auto decoded = decode_checked(*wire.tower);
  if (!decoded) return std::unexpected(decoded.error());
  Entry e;
  e.object = wire.object;
  e.interface = decoded->view.interface;
  e.transfer_syntax = decoded->view.transfer_syntax;
  e.rpc_protocol = decoded->view.rpc_protocol;
  e.rpc_protocol_minor = decoded->view.rpc_protocol_minor;
  e.tower = std::move(decoded->tower);
  e.tower_octets = *wire.tower;
  e.annotation = wire.annotation;
  e.protseq_ids = protseq_of({e.tower.floors.begin() + 3, e.tower.floors.end()});
  // Offsets of each floor's rhs in the encoding: u16 count, then {u16 len, lhs, u16 len, rhs}.
  std::size_t at = 2;
  for (const auto& f : e.tower.floors) {
    at += 2 + f.lhs.size() + 2;
    if (f.protocol_id() == pid::kIp && f.rhs.size() == 4 &&
        std::all_of(f.rhs.begin(), f.rhs.end(), [](std::uint8_t b) { return b == 0; }))
      e.wildcard_ipv4.push_back(at);
    at += f.rhs.size();
  }
  return e;
}

std::expected<MapQuery, std::uint32_t> parse_map_tower(const std::optional<Octets>& tower,
                                                       const std::optional<common::Uuid>& object) {
  if (!tower) return std::unexpected(st::kEptSInvalidEntry);
  ndr::TowerRef scanned;
  // No copy: this runs for every ept_map.
  auto head = checked_head(*tower, scanned, NilInterface::kRefused);
  if (!head) return std::unexpected(head.error());
  MapQuery q;
  q.object = object.value_or(common::Uuid{});
  q.interface = head->interface;
  q.transfer_syntax = head->transfer_syntax;
  q.rpc_protocol = head->rpc_protocol;
  q.protseq.reserve(scanned.count - 3);
  for (std::size_t i = 3; i < scanned.count; ++i)
    q.protseq.push_back(scanned.floors[i].protocol_id());
  return q;
}

bool is_mgmt_interface(const common::Uuid& uuid) {
  return uuid == rpc::kMgmtSyntax.uuid;
}

bool valid_inquiry_type(std::uint32_t inquiry_type) {
  return inquiry_type <= ndr::epm::kRpcCEpMatchByBoth;
}

bool valid_vers_option(std::uint32_t vers_option) {
  return vers_option >= ndr::epm::kRpcCVersAll && vers_option <= ndr::epm::kRpcCVersUpto;
}

bool may_change(std::uint64_t caller, std::uint64_t entry) {
  if (caller == kEpmdAuthority) return true;
  if (entry == kEpmdAuthority) return false;
  return caller == kRootAuthority || caller == entry;
}

std::string to_string(const Refusal& r) {
  using R = Refusal::Reason;
  const auto who = authority_name(r.caller);
  switch (r.reason) {
    case R::kForeignEntry:
    case R::kEpmdEntry:
      return "entry of " + authority_name(r.entry_authority) + " (caller " + who + ")";
    case R::kNoAuthority:
      return "caller without a uid";
    case R::kMaxEntries:
      return "max_entries " + std::to_string(r.limit) + " (" + who + ")";
    case R::kRootReserve:
      return "max_entries - root_reserve " + std::to_string(r.limit) + " (" + who + ")";
    case R::kPerOwner:
      return "max_entries_per_owner " + std::to_string(r.limit) + " (" + who + ")";
    case R::kPerUid:
      return "max_entries_per_uid " + std::to_string(r.limit) + " (" + who + ")";
  }
  return "?";
}

namespace {
// The next EndpointDb's first generation (see generation()).
std::atomic<std::uint64_t> next_generation_base{0};
}  // namespace

EndpointDb::EndpointDb(DbLimits limits)
    : limits_(limits), generation_(next_generation_base.fetch_add(std::uint64_t{1} << 32)) {}

std::uint32_t EndpointDb::refuse(Refusal r) {
  last_refusal_ = r;
  return st::kEptSCantPerformOp;
}

void EndpointDb::link(Entry e) {
  ++generation_;
  const auto id = e.id;
  by_exact_.emplace(exact_key(e.object, e.tower_octets), id);
  auto& group = groups_[replace_key(e)];
  ++group.minors[e.interface.minor];
  group.by_address[address_key(e)].insert(id);
  if (e.owner != kPersistentOwner) by_lease_[e.owner].insert(id);
  ++per_authority_[e.authority];
  entries_.emplace(id, std::move(e));
}

Entry EndpointDb::unlink(std::uint64_t id) {
  ++generation_;
  auto node = entries_.extract(id);
  Entry e = std::move(node.mapped());
  ++work_;
  by_exact_.erase(exact_key(e.object, e.tower_octets));
  const auto gk = replace_key(e);
  auto g = groups_.find(gk);
  if (auto m = g->second.minors.find(e.interface.minor); --m->second == 0)
    g->second.minors.erase(m);
  auto a = g->second.by_address.find(address_key(e));
  a->second.erase(id);
  if (a->second.empty()) g->second.by_address.erase(a);
  if (g->second.minors.empty()) groups_.erase(g);
  if (e.owner != kPersistentOwner) {
    auto l = by_lease_.find(e.owner);
    l->second.erase(id);
    if (l->second.empty()) by_lease_.erase(l);
  }
  if (auto p = per_authority_.find(e.authority); --p->second == 0) per_authority_.erase(p);
  return e;
}

std::optional<Refusal> EndpointDb::cap_exceeded(const Registrant& who,
                                                std::optional<std::size_t> call) const {
  using R = Refusal::Reason;
  const bool trusted = who.authority == kRootAuthority || who.authority == kEpmdAuthority;
  // `call`: only the call's own entries count (the check before any work); else the map now.
  const auto total = call.value_or(entries_.size());
  if (total > limits_.max_entries)
    return Refusal{R::kMaxEntries, limits_.max_entries, who.authority, 0};
  if (!trusted) {
    const auto cap = limits_.max_entries - std::min(limits_.root_reserve, limits_.max_entries);
    if (total > cap) return Refusal{R::kRootReserve, cap, who.authority, 0};
    if (call.value_or(count_for_authority(who.authority)) > limits_.max_entries_per_uid)
      return Refusal{R::kPerUid, limits_.max_entries_per_uid, who.authority, 0};
  }
  if (who.lease != kPersistentOwner &&
      call.value_or(count_for(who.lease)) > limits_.max_entries_per_owner)
    return Refusal{R::kPerOwner, limits_.max_entries_per_owner, who.authority, 0};
  return std::nullopt;
}

// One validated entry (DCE epdb_insert), recording what it did in `undo`.
std::uint32_t EndpointDb::apply(Entry incoming, bool replace, std::uint64_t authority,
                                std::vector<Undo>& undo) {
  auto foreign = [&](const Entry& e) {
    return refuse(Refusal{e.authority == kEpmdAuthority ? Refusal::Reason::kEpmdEntry
                                                        : Refusal::Reason::kForeignEntry,
                          0, authority, e.authority});
  };
  if (replace) {
    if (auto g = groups_.find(replace_key(incoming)); g != groups_.end()) {
      ++work_;
      if (g->second.minors.rbegin()->first > incoming.interface.minor) return st::kEptSInvalidEntry;
      if (auto a = g->second.by_address.find(address_key(incoming));
          a != g->second.by_address.end()) {
        std::vector<std::uint64_t> doomed;
        for (const auto id : a->second) {
          ++work_;
          const Entry& e = entries_.at(id);
          if (e.tower_octets == incoming.tower_octets) continue;  // the duplicate, below
          if (!may_change(authority, e.authority)) return foreign(e);
          doomed.push_back(id);
        }
        for (const auto id : doomed)
          undo.push_back(Undo{0, unlink(id)});
      }
    }
  }
  if (auto d = by_exact_.find(exact_key(incoming.object, incoming.tower_octets));
      d != by_exact_.end()) {
    ++work_;
    const Entry& existing = entries_.at(d->second);
    if (!may_change(authority, existing.authority)) return foreign(existing);
    Entry old = unlink(d->second);
    Entry updated = old;
    updated.annotation = std::move(incoming.annotation);
    updated.owner = incoming.owner;
    updated.authority = incoming.authority;
    undo.push_back(Undo{0, std::move(old)});
    undo.push_back(Undo{updated.id, std::nullopt});
    link(std::move(updated));
    return 0;
  }
  incoming.id = next_id_++;
  undo.push_back(Undo{incoming.id, std::nullopt});
  link(std::move(incoming));
  return 0;
}

std::uint32_t EndpointDb::insert(const std::vector<ndr::epm::EptEntry>& entries, bool replace,
                                 Registrant who) {
  last_refusal_.reset();
  // Bounded before any work: more entries than the caller could ever hold.
  if (auto r = cap_exceeded(who, entries.size())) return refuse(*r);
  std::vector<Entry> validated;
  validated.reserve(entries.size());
  for (const auto& wire : entries) {
    auto e = make_entry(wire);
    if (!e) return e.error();
    e->owner = who.lease;
    e->authority = who.authority;
    validated.push_back(std::move(*e));
  }
  // All or nothing: apply in place, undo on failure.
  std::vector<Undo> undo;
  const auto next_id = next_id_;
  std::uint32_t status = 0;
  for (auto& e : validated)
    if (status = apply(std::move(e), replace, who.authority, undo); status != 0) break;
  if (status == 0)
    if (auto r = cap_exceeded(who, std::nullopt)) status = refuse(*r);
  if (status != 0) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->removed)
        link(std::move(*it->removed));
      else
        (void)unlink(it->added);
    }
    next_id_ = next_id;
  }
  return status;
}

std::uint32_t EndpointDb::erase(const std::vector<ndr::epm::EptEntry>& entries,
                                std::uint64_t authority) {
  last_refusal_.reset();
  for (const auto& wire : entries) {
    if (!wire.tower) return st::kEptSInvalidEntry;
    auto it = by_exact_.find(exact_key(wire.object, *wire.tower));
    if (it == by_exact_.end()) return st::kEptSNotRegistered;
    const Entry& e = entries_.at(it->second);
    if (!may_change(authority, e.authority))
      return refuse(Refusal{e.authority == kEpmdAuthority ? Refusal::Reason::kEpmdEntry
                                                          : Refusal::Reason::kForeignEntry,
                            0, authority, e.authority});
    (void)unlink(it->second);
  }
  return 0;
}

std::size_t EndpointDb::remove_owner(std::uint64_t owner) {
  if (owner == kPersistentOwner) return 0;
  auto it = by_lease_.find(owner);
  if (it == by_lease_.end()) return 0;
  const std::vector<std::uint64_t> ids(it->second.begin(), it->second.end());
  for (const auto id : ids)
    (void)unlink(id);
  return ids.size();
}

std::optional<Entry> EndpointDb::remove(std::uint64_t id) {
  if (!entries_.contains(id)) return std::nullopt;
  return unlink(id);
}

std::uint32_t EndpointDb::mgmt_delete(bool object_speced, const std::optional<common::Uuid>& object,
                                      const std::optional<Octets>& tower, std::uint64_t authority) {
  last_refusal_.reset();
  if (!tower) return st::kEptSInvalidEntry;
  auto decoded = decode_checked(*tower);
  if (!decoded) return decoded.error();
  const auto target = object.value_or(common::Uuid{});
  std::vector<std::uint64_t> matching;
  for (const auto& [id, e] : entries_) {
    if ((!object_speced || e.object == target) && e.interface == decoded->view.interface &&
        e.rpc_protocol == decoded->view.rpc_protocol && address_floors_equal(e, decoded->tower)) {
      if (!may_change(authority, e.authority))
        return refuse(Refusal{e.authority == kEpmdAuthority ? Refusal::Reason::kEpmdEntry
                                                            : Refusal::Reason::kForeignEntry,
                              0, authority, e.authority});
      matching.push_back(id);
    }
  }
  for (const auto id : matching)
    (void)unlink(id);
  return matching.empty() ? st::kEptSNotRegistered : 0;
}

Page<MapCursor> EndpointDb::map(const MapQuery& q, MapCursor from, std::size_t max) const {
  const bool mgmt = is_mgmt_interface(q.interface.uuid);
  auto transport_ok = [&](const Entry& e) {
    return version_ok(q.transfer_syntax, e.transfer_syntax) && e.rpc_protocol == q.rpc_protocol &&
           e.protseq() == q.protseq;
  };
  auto matches = [&](const Entry& e, std::uint8_t pass) {
    const auto& want_object = pass == 1 ? q.object : common::Uuid{};
    if (e.object != want_object) return false;
    if (!mgmt && !version_ok(q.interface, e.interface)) return false;
    return transport_ok(e);
  };
  // Ordered candidates of both passes (MGMT: first per endpoint over the whole walk, so a page
  // boundary cannot let an endpoint through twice).
  struct Candidate {
    MapCursor at;
    const Entry* entry;
  };
  std::vector<Candidate> all;
  std::set<std::vector<std::uint8_t>> seen;
  for (std::uint8_t pass = q.object.is_nil() ? 2 : 1; pass <= 2; ++pass) {
    for (const auto& [id, e] : entries_) {
      if (!matches(e, pass)) continue;
      if (mgmt && !seen.insert(e.endpoint_key()).second) continue;
      all.push_back({{pass, id}, &e});
    }
  }
  Page<MapCursor> page;
  auto it = std::find_if(all.begin(), all.end(), [&](const Candidate& c) {
    return c.at.pass > from.pass || (c.at.pass == from.pass && c.at.next_id >= from.next_id);
  });
  for (; it != all.end() && page.entries.size() < max; ++it)
    page.entries.push_back(it->entry);
  if (it != all.end()) page.next = it->at;
  return page;
}

Page<std::uint64_t> EndpointDb::lookup(const LookupQuery& q, std::uint64_t from,
                                       std::size_t max) const {
  Page<std::uint64_t> page;
  for (auto it = entries_.lower_bound(from); it != entries_.end(); ++it) {
    if (!lookup_matches(q, it->second)) continue;
    if (page.entries.size() == max) {
      page.next = it->first;
      break;
    }
    page.entries.push_back(&it->second);
  }
  return page;
}

std::size_t EndpointDb::count_for(std::uint64_t owner) const {
  if (owner == kPersistentOwner) {
    return static_cast<std::size_t>(std::count_if(
        entries_.begin(), entries_.end(), [](const auto& kv) { return kv.second.owner == 0; }));
  }
  auto it = by_lease_.find(owner);
  return it == by_lease_.end() ? 0 : it->second.size();
}

std::size_t EndpointDb::count_for_authority(std::uint64_t authority) const {
  auto it = per_authority_.find(authority);
  return it == per_authority_.end() ? 0 : it->second;
}

Octets render_tower(const Entry& entry, const std::optional<SyntaxId>& interface,
                    const Ipv4& host) {
  Octets out = entry.tower_octets;
  if (interface && out.size() >= 27) {
    // Floor 1 is a uuid floor (make_entry checked): u16 count, u16 19, {0x0d, uuid, u16 major},
    // u16 2, u16 minor - all little-endian whatever the stub's byte order.
    common::ByteWriter w(common::Endian::kLittle);
    interface->uuid.write(w);
    w.u16(interface->major);
    w.u16(2);
    w.u16(interface->minor);
    std::copy(w.buffer().begin(), w.buffer().end(), out.begin() + 5);
  }
  for (auto at : entry.wildcard_ipv4)
    std::copy(host.begin(), host.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
  return out;
}

}  // namespace rpcgate::epm
