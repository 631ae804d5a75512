// Operation sequences through EpmService and MgmtService, as the daemon drives them.
// Input: records of
//   u8 connection id (1..8 after masking; 0 is never used by the daemon)
//   u8 flags: bit0 may_register, bit1 big-endian drep, bit2 MGMT (else EPM), bit3 caller is
//             IPv6 (no local_ipv4), bits4-5 the caller's uid (none, 0, 1000, 65534), bit6 a
//             network peer key (one of three), bit7 close the connection instead of calling
//   u8 opnum
//   u16 little-endian stub length, then the stub (clamped to what remains)
// Invariants: no crash or sanitizer report; every call returns a stub or a fault whose status is
// nca_s_op_rng_error or rpc_x_bad_stub_data; ept_lookup / ept_map answers decode with the ndr
// decoders; the entry, per-owner, per-uid, root-reserve and handle (per connection, per peer,
// total) caps hold after every step; epmd's own entries (inserted first) are never changed; a
// closed connection keeps no handle and no entry; a twin service without the ept_map answer
// cache (EpmConfig::map_cache disabled), fed the same calls, gives byte-identical answers (the
// cache is invisible: no stale answer after a change, no cached stateful answer).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "epm/epm_service.h"
#include "epm/mgmt.h"
#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"
#include "rpc/pdu.h"
#include "rpc/status.h"

namespace {

using namespace rpcgate;

constexpr std::size_t kMaxEntries = 64;
constexpr std::size_t kMaxPerOwner = 16;
constexpr std::size_t kMaxHandlesPerConnection = 4;
constexpr std::size_t kMaxPerUid = 24;
constexpr std::size_t kRootReserve = 8;
constexpr std::size_t kMaxHandlesPerPeer = 6;
constexpr std::size_t kMaxHandles = 16;
constexpr std::array<std::optional<std::uint32_t>, 4> kUids{std::nullopt, 0u, 1000u, 65534u};
constexpr std::array<std::string_view, 3> kPeers{"192.0.2.1", "192.0.2.2", "2001:db8::/64"};

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  epm::EpmConfig config;
  config.seed = 1;
  config.db.max_entries = kMaxEntries;
  config.db.max_entries_per_owner = kMaxPerOwner;
  config.db.max_entries_per_uid = kMaxPerUid;
  config.db.root_reserve = kRootReserve;
  config.max_handles_per_connection = kMaxHandlesPerConnection;
  config.max_handles_per_peer = kMaxHandlesPerPeer;
  config.max_handles_total = kMaxHandles;
  auto uncached_config = config;
  uncached_config.map_cache.max_entries = 0;
  config.map_cache.max_entries = 4;  // small: evictions as well as hits
  epm::EpmService service(config);
  epm::EpmService uncached(uncached_config);
  epm::MgmtService mgmt([] {
    epm::MgmtInfo info;
    info.if_ids = {rpc::kEpmSyntax, rpc::kMgmtSyntax};
    info.stats = {1, 2, 3, 4};
    info.principal_name = [](std::uint32_t a) { return a == 9 ? std::string("x") : std::string(); };
    return info;
  });

  // epmd's own entries, as the daemon inserts them: nobody may change them over the wire.
  std::vector<ndr::epm::EptEntry> own;
  for (const char* port : {"135", "1135"}) {
    ndr::StringBinding b{std::nullopt, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", port, {}};
    own.push_back(
        {common::Uuid(), ndr::encode_tower(*ndr::binding_to_tower(b, rpc::kEpmSyntax)), "epm"});
  }
  check(service.db().insert(own, true, epm::kPersistentOwner) == 0);
  check(uncached.db().insert(own, true, epm::kPersistentOwner) == 0);
  const auto own_entries = service.db().entries();

  std::size_t pos = 0;
  while (size - pos >= 5) {
    const std::uint64_t conn = (data[pos] & 0x07) + 1;
    const std::uint8_t flags = data[pos + 1];
    const std::uint16_t opnum = data[pos + 2];
    std::size_t len = data[pos + 3] | (std::size_t{data[pos + 4]} << 8);
    pos += 5;
    len = std::min(len, size - pos);
    const std::span<const std::uint8_t> stub(data + pos, len);
    pos += len;

    if (flags & 0x80) {
      check(service.connection_closed(conn) == uncached.connection_closed(conn));
      check(service.handle_count(conn) == 0);
      check(service.db().count_for(conn) == 0);
      continue;
    }
    const auto endian = (flags & 0x02) ? common::Endian::kBig : common::Endian::kLittle;
    epm::CallerInfo caller{conn,   (flags & 0x01) != 0,     std::nullopt,
                           "fuzz", kUids[(flags >> 4) & 3], ""};
    if (flags & 0x40) caller.peer_key = kPeers[conn % kPeers.size()];
    if (!(flags & 0x08)) caller.local_ipv4 = epm::Ipv4{10, 0, 0, static_cast<std::uint8_t>(conn)};

    const auto r =
        (flags & 0x04) ? mgmt.call(opnum, stub, endian) : service.call(opnum, stub, endian, caller);
    if (!(flags & 0x04)) check(r == uncached.call(opnum, stub, endian, caller));
    if (!r) {
      check(r.error().status == rpc::status::kNcaSOpRngError ||
            r.error().status == rpc::status::kRpcXBadStubData);
    } else {
      check(!r->empty());
      if (!(flags & 0x04) && opnum == ndr::epm::kOpnumEptLookup)
        check(ndr::epm::decode_ept_lookup_response(*r, endian).has_value());
      if (!(flags & 0x04) && opnum == ndr::epm::kOpnumEptMap)
        check(ndr::epm::decode_ept_map_response(*r, endian).has_value());
    }
    const auto stats = service.stats();
    check(stats.entries <= kMaxEntries);
    check(stats.handles <= kMaxHandles);
    for (std::uint64_t c = 1; c <= 8; ++c) {
      check(service.handle_count(c) <= kMaxHandlesPerConnection);
      check(service.db().count_for(c) <= kMaxPerOwner);
    }
    for (const auto peer : kPeers)
      check(service.peer_handle_count(peer) <= kMaxHandlesPerPeer);
    const auto unprivileged =
        service.db().count_for_authority(1000) + service.db().count_for_authority(65534);
    check(service.db().count_for_authority(1000) <= kMaxPerUid);
    check(service.db().count_for_authority(65534) <= kMaxPerUid);
    check(unprivileged <= kMaxEntries - kRootReserve);
    for (const auto& [id, e] : own_entries) {
      auto it = service.db().entries().find(id);
      check(it != service.db().entries().end() && it->second.authority == epm::kEpmdAuthority &&
            it->second.tower_octets == e.tower_octets && it->second.annotation == e.annotation);
    }
  }
  return 0;
}
