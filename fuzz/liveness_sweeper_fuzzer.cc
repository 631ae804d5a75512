// Operation-sequence fuzzer for epm::Sweeper (the liveness sweep's decisions, epm/liveness.h)
// over a real EndpointDb, checked against a reference model: per port one entry with its lease
// and authority, per swept port its consecutive failed rounds. Any divergence traps.
//
// Header: [0] failures = b % 4 + 1.
// Ops, two bytes (op, arg); port = 5000 + arg % 16:
//   op % 8 = 0 insert at port as uid 1000, persistent (swept)   1 ... leased to connection 7
//            2 insert at port as epmd (not swept)               3 remove the entry at port
//            4 begin_round (targets = the swept ports)          5 report port alive (arg & 0x80)
//            6 dead_entries (removed from db and model)         7 report every swept port dead
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "epm/endpoint_db.h"
#include "epm/liveness.h"
#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"
#include "op_reader.h"

namespace {

using namespace rpcgate;

using rpcgate::fuzzing::Reader;

ndr::epm::EptEntry wire_entry(std::uint16_t port) {
  static const ndr::SyntaxId kIf{*common::Uuid::parse("12345778-1234-abcd-ef00-0123456789ab"), 1,
                                 0};
  auto b = ndr::parse_binding("ncacn_ip_tcp:0.0.0.0[" + std::to_string(port) + "]");
  auto t = ndr::binding_to_tower(*b, kIf);
  return {common::Uuid{}, ndr::encode_tower(*t), "fuzz"};
}

epm::ProbeTarget target_of(std::uint16_t port) {
  epm::ProbeTarget t;
  t.kind = epm::ProbeTarget::Kind::kTcp;
  t.address = {127, 0, 0, 1};
  t.port = port;
  return t;
}

struct ModelEntry {
  std::uint64_t lease = 0;
  std::uint64_t authority = 0;
  bool swept() const { return lease == epm::kPersistentOwner && authority != epm::kEpmdAuthority; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  const std::uint32_t failures = in.byte() % 4 + 1;
  epm::EndpointDb db;
  epm::Sweeper sweeper(failures);
  std::map<std::uint16_t, ModelEntry> entries;    // by port
  std::map<std::uint16_t, std::uint32_t> failed;  // consecutive failed rounds by port
  auto swept_ports = [&] {
    std::set<std::uint16_t> out;
    for (const auto& [port, e] : entries)
      if (e.swept()) out.insert(port);
    return out;
  };
  auto id_of = [&](std::uint16_t port) -> std::uint64_t {
    for (const auto& [id, e] : db.entries())
      if (auto t = epm::probe_target(e); t && t->port == port) return id;
    for (const auto& [id, e] : db.entries()) {
      const auto& f = e.tower.floors;
      if (f.size() >= 4 && f[3].rhs.size() == 2 && (f[3].rhs[0] << 8 | f[3].rhs[1]) == port)
        return id;
    }
    return 0;
  };
  for (int ops = 0; !in.done() && ops < 4096; ++ops) {
    const std::uint8_t op = in.byte();
    const std::uint8_t arg = in.byte();
    const auto port = static_cast<std::uint16_t>(5000 + arg % 16);
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {
        const epm::Registrant who{op % 8 == 1 ? 7u : epm::kPersistentOwner,
                                  op % 8 == 2 ? epm::kEpmdAuthority : 1000u};
        const auto status = db.insert({wire_entry(port)}, false, who);
        auto it = entries.find(port);
        const bool allowed =
            it == entries.end() || epm::may_change(who.authority, it->second.authority);
        CHECK((status == 0) == allowed);
        if (allowed) entries[port] = {who.lease, who.authority};
        break;
      }
      case 3: {
        const auto id = id_of(port);
        CHECK((id != 0) == entries.contains(port));
        if (id != 0) {
          CHECK(db.remove(id).has_value());
          entries.erase(port);
        }
        break;
      }
      case 4: {
        const auto targets = sweeper.begin_round(db);
        const auto want = swept_ports();
        CHECK(targets.size() == want.size());
        for (const auto& t : targets)
          CHECK(t.kind == epm::ProbeTarget::Kind::kTcp && want.contains(t.port) &&
                t.to_string() == "127.0.0.1:" + std::to_string(t.port));
        std::erase_if(failed, [&](const auto& kv) { return !want.contains(kv.first); });
        break;
      }
      case 5: {
        const bool alive = (arg & 0x80) != 0;
        sweeper.report(target_of(port), alive);
        if (alive) {
          failed.erase(port);
        } else {
          ++failed[port];
        }
        break;
      }
      case 6: {
        const auto dead = sweeper.dead_entries(db);
        std::set<std::uint16_t> want;
        std::set<std::uint16_t> reached;
        for (const auto& [p, n] : failed)
          if (n >= failures) reached.insert(p);
        for (const auto p : swept_ports())
          if (reached.contains(p)) want.insert(p);
        CHECK(dead.size() == want.size());
        for (const auto id : dead) {
          auto e = db.remove(id);
          CHECK(e.has_value());
          auto t = epm::probe_target(*e);
          CHECK(t && want.contains(t->port));
          entries.erase(t->port);
        }
        for (const auto p : reached)
          failed.erase(p);
        break;
      }
      case 7:
        for (const auto p : swept_ports()) {
          sweeper.report(target_of(p), false);
          ++failed[p];
        }
        break;
    }
    for (const auto& [p, n] : failed)
      CHECK(sweeper.failures_of(target_of(p)) == n);
    CHECK(db.size() == entries.size());
  }
  return 0;
}
