#include "epm/endpoint_db.h"

#include <algorithm>
#include <set>

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
// and an RPC protocol floor 3 (view_tower_head), neither UUID nil. The one rule for registered
// towers (decode_checked) and ept_map's (parse_map_tower).
std::expected<ndr::TowerView, std::uint32_t> checked_head(std::span<const std::uint8_t> octets,
                                                          ndr::TowerRef& scanned) {
  auto s = ndr::scan_tower(octets);  // default TowerLimits: 3..6 floors
  if (!s || s->count < kMinFloors) return std::unexpected(st::kEptSInvalidEntry);
  scanned = *s;
  auto head = ndr::view_tower_head(scanned);
  if (!head || head->interface.uuid.is_nil() || head->transfer_syntax.uuid.is_nil())
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
  auto head = checked_head(octets, scanned);
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

bool is_replace_candidate(const Entry& existing, const Entry& incoming) {
  return existing.object == incoming.object && existing.interface.uuid == incoming.interface.uuid &&
         existing.interface.major == incoming.interface.major &&
         existing.protseq() == incoming.protseq() &&
         existing.transfer_syntax == incoming.transfer_syntax &&
         existing.rpc_protocol == incoming.rpc_protocol &&
         existing.rpc_protocol_minor == incoming.rpc_protocol_minor;
}

// Applies one validated entry to `entries` (DCE epdb_insert). Returns a status.
std::uint32_t apply_insert(std::map<std::uint64_t, Entry>& entries, std::uint64_t& next_id,
                           Entry incoming, bool replace) {
  if (replace) {
    for (const auto& [id, e] : entries)
      if (is_replace_candidate(e, incoming) && e.interface.minor > incoming.interface.minor)
        return st::kEptSInvalidEntry;
    const auto address = incoming.network_address();
    std::erase_if(entries, [&](const auto& kv) {
      return is_replace_candidate(kv.second, incoming) && kv.second.network_address() == address &&
             kv.second.tower_octets != incoming.tower_octets;
    });
  }
  for (auto& [id, e] : entries) {
    if (e.object == incoming.object && e.tower_octets == incoming.tower_octets) {
      e.annotation = std::move(incoming.annotation);
      e.owner = incoming.owner;
      return 0;
    }
  }
  incoming.id = next_id++;
  const auto id = incoming.id;
  entries.emplace(id, std::move(incoming));
  return 0;
}

bool caps_hold(const std::map<std::uint64_t, Entry>& entries, const DbLimits& limits,
               std::uint64_t owner) {
  if (entries.size() > limits.max_entries) return false;
  if (owner == kPersistentOwner) return true;
  const auto n = std::count_if(entries.begin(), entries.end(),
                               [&](const auto& kv) { return kv.second.owner == owner; });
  return static_cast<std::size_t>(n) <= limits.max_entries_per_owner;
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
  auto head = checked_head(*tower, scanned);  // no copy: this runs for every ept_map
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

std::uint32_t EndpointDb::insert(const std::vector<ndr::epm::EptEntry>& entries, bool replace,
                                 std::uint64_t owner) {
  std::vector<Entry> validated;
  validated.reserve(entries.size());
  for (const auto& wire : entries) {
    auto e = make_entry(wire);
    if (!e) return e.error();
    e->owner = owner;
    validated.push_back(std::move(*e));
  }
  // All or nothing: apply to a copy (registrations are rare and the map is capped) and swap.
  auto copy = entries_;
  auto next_id = next_id_;
  for (auto& e : validated)
    if (auto status = apply_insert(copy, next_id, std::move(e), replace); status != 0)
      return status;
  if (!caps_hold(copy, limits_, owner)) return st::kEptSCantPerformOp;
  entries_ = std::move(copy);
  next_id_ = next_id;
  return 0;
}

std::uint32_t EndpointDb::erase(const std::vector<ndr::epm::EptEntry>& entries) {
  for (const auto& wire : entries) {
    if (!wire.tower) return st::kEptSInvalidEntry;
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& kv) {
      return kv.second.object == wire.object && kv.second.tower_octets == *wire.tower;
    });
    if (it == entries_.end()) return st::kEptSNotRegistered;
    entries_.erase(it);
  }
  return 0;
}

std::size_t EndpointDb::remove_owner(std::uint64_t owner) {
  if (owner == kPersistentOwner) return 0;
  return std::erase_if(entries_, [&](const auto& kv) { return kv.second.owner == owner; });
}

std::uint32_t EndpointDb::mgmt_delete(bool object_speced, const std::optional<common::Uuid>& object,
                                      const std::optional<Octets>& tower) {
  if (!tower) return st::kEptSInvalidEntry;
  auto decoded = decode_checked(*tower);
  if (!decoded) return decoded.error();
  const auto target = object.value_or(common::Uuid{});
  const auto n = std::erase_if(entries_, [&](const auto& kv) {
    const Entry& e = kv.second;
    return (!object_speced || e.object == target) && e.interface == decoded->view.interface &&
           e.rpc_protocol == decoded->view.rpc_protocol && address_floors_equal(e, decoded->tower);
  });
  return n > 0 ? 0 : st::kEptSNotRegistered;
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
  return static_cast<std::size_t>(std::count_if(
      entries_.begin(), entries_.end(), [&](const auto& kv) { return kv.second.owner == owner; }));
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
