#include "epm/epm_service.h"

#include <cstdlib>
#include <new>
#include <random>
#include <set>
#include <utility>

#include <gtest/gtest.h>

#include "epm/testing/test_util.h"
#include "ndr/epm_types.h"
#include "rpc/status.h"

// Counts the allocations of this thread while `counting` is set: the test that a cached ept_map
// answer costs no allocation (EpmServiceCache.AHitAllocatesNothing). GCC, inlining the replaced
// operator delete, sees `new` paired with free(): exactly what a malloc-based replacement does.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
thread_local bool counting = false;
thread_local std::size_t allocations = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (counting) ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace rpcgate::epm {
namespace {

using namespace testing;
using namespace ndr::epm;
namespace st = rpc::status;
using common::Endian;

const std::string kZero20(40, '0');
// docs/wire-vectors.md: the towers of ept-map-request and ept-map-response.
constexpr std::string_view kTowerReq =  // SAMR v1.0, ncacn_ip_tcp, port 0, 0.0.0.0
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 00 00 01 00 09 04 00 00 00 00 00";
constexpr std::string_view kTowerResp =  // port 49664, 127.0.0.1
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 c2 00 01 00 09 04 00 7f 00 00 01";

EpmConfig seeded(std::uint64_t seed) {
  EpmConfig c;
  c.seed = seed;
  return c;
}

CallerInfo net(std::uint64_t id) {
  return CallerInfo{id, false, Ipv4{127, 0, 0, 1}, "test", std::nullopt, ""};
}
CallerInfo local(std::uint64_t id) {
  return CallerInfo{id, true, std::nullopt, "unix", 0u, ""};
}

EpmService samr_service(EpmConfig config = {}) {
  config.seed = 42;
  EpmService s(config);
  EXPECT_EQ(s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[49664]", kSamr10, "samr")}, false,
                          kPersistentOwner),
            0u);
  return s;
}

std::uint32_t status_of(const Outcome& r) {
  EXPECT_TRUE(r.has_value());
  return decode_ept_status_response(r.value_or(std::vector<std::uint8_t>{}), Endian::kLittle)
      .value_or(EptStatusResponse{0xdeadbeef})
      .status;
}

EptMapResponse map(EpmService& s, const EptMapRequest& req, const CallerInfo& c) {
  auto r = s.call(kOpnumEptMap, encode(req, Endian::kLittle), Endian::kLittle, c);
  EXPECT_TRUE(r.has_value());
  auto resp = decode_ept_map_response(r.value_or(std::vector<std::uint8_t>{}), Endian::kLittle);
  EXPECT_TRUE(resp.has_value());
  return resp.value_or(EptMapResponse{});
}

EptLookupResponse lookup(EpmService& s, const EptLookupRequest& req, const CallerInfo& c) {
  auto r = s.call(kOpnumEptLookup, encode(req, Endian::kLittle), Endian::kLittle, c);
  EXPECT_TRUE(r.has_value());
  auto resp = decode_ept_lookup_response(r.value_or(std::vector<std::uint8_t>{}), Endian::kLittle);
  EXPECT_TRUE(resp.has_value());
  return resp.value_or(EptLookupResponse{});
}

// ---- goldens (docs/wire-vectors.md ept-map-request, ept-map-response, ept-lookup) ----

TEST(EpmServiceGolden, EptMapSamr) {
  auto s = samr_service();
  const auto request = hex("01000000" + std::string(32, '0') + "02000000 4b000000 4b000000" +
                           std::string(kTowerReq) + "ab" + kZero20 + "01000000");
  auto r = s.call(kOpnumEptMap, request, Endian::kLittle, net(1));
  ASSERT_TRUE(r);
  // ept-map-response byte for byte, except the tower referent id: the vector has 3, rpcgate
  // numbers referents as Windows and Samba do (0x00020000); any non-zero id is valid NDR.
  const auto expected = hex(kZero20 + "01000000 01000000 00000000 01000000 00000200" +
                            "4b000000 4b000000" + std::string(kTowerResp) + "00 00000000");
  EXPECT_EQ(common::to_hex(*r), common::to_hex(expected));
  EXPECT_EQ(s.handle_count(1), 0u);
}

TEST(EpmServiceGolden, EptMapNotFound) {
  auto s = samr_service();
  auto t = tower("ncacn_ip_tcp:0.0.0.0[0]", kLsa00);
  auto r = s.call(kOpnumEptMap, encode(EptMapRequest{common::Uuid{}, t, {}, 1}, Endian::kLittle),
                  Endian::kLittle, net(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, hex(kZero20 + "00000000 01000000 00000000 00000000 d6a0c916"));
  EXPECT_EQ(s.stats().not_registered, 1u);
}

TEST(EpmServiceGolden, EptLookupFirstCall) {
  auto s = samr_service();
  const auto request = hex("00000000 00000000 00000000 01000000" + kZero20 + "f4010000");
  auto r = s.call(kOpnumEptLookup, request, Endian::kLittle, net(1));
  ASSERT_TRUE(r);
  const auto expected = hex(kZero20 + "01000000 f4010000 00000000 01000000" + std::string(32, '0') +
                            "00000200 00000000 05000000 73616d7200 000000 4b000000 4b000000" +
                            std::string(kTowerResp) + "00 00000000");
  EXPECT_EQ(common::to_hex(*r), common::to_hex(expected));
}

TEST(EpmServiceGolden, BigEndianCallGetsBigEndianAnswer) {
  auto s = samr_service();
  EptMapRequest req{common::Uuid{}, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 4};
  auto r = s.call(kOpnumEptMap, encode(req, Endian::kBig), Endian::kBig, net(1));
  ASSERT_TRUE(r);
  auto resp = decode_ept_map_response(*r, Endian::kBig);
  ASSERT_TRUE(resp);
  ASSERT_EQ(resp->towers.size(), 1u);
  EXPECT_EQ(binding_of(*resp->towers[0]), "ncacn_ip_tcp:127.0.0.1[49664]");
  EXPECT_EQ(resp->max_count, 4u);
}

// ---- host floor ----

TEST(EpmService, HostFloorFromCallerOrAdvertised) {
  auto s = samr_service();
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 1};
  auto v6 = net(1);
  v6.local_ipv4.reset();
  EXPECT_EQ(binding_of(*map(s, req, v6).towers.at(0)), "ncacn_ip_tcp:0.0.0.0[49664]");
  EpmConfig nat;
  nat.advertised_ipv4 = Ipv4{203, 0, 113, 9};
  auto s2 = samr_service(nat);
  EXPECT_EQ(binding_of(*map(s2, req, net(1)).towers.at(0)), "ncacn_ip_tcp:203.0.113.9[49664]");
}

// ---- faults and statuses ----

TEST(EpmService, FaultsAndStatuses) {
  auto s = samr_service();
  for (std::uint16_t op : {7, 8, 9, 100, 0xffff}) {
    auto r = s.call(op, {}, Endian::kLittle, net(1));
    ASSERT_FALSE(r) << op;
    EXPECT_EQ(r.error().status, st::kNcaSOpRngError);
  }
  for (std::uint16_t op = 0; op <= 6; ++op) {
    if (op == kOpnumEptInqObject) continue;  // no [in] parameter: junk is only trailing bytes
    const std::vector<std::uint8_t> junk{1, 2, 3};
    auto r = s.call(op, junk, Endian::kLittle, local(1));
    ASSERT_FALSE(r) << op;
    EXPECT_EQ(r.error().status, st::kRpcXBadStubData) << op;
  }
  EXPECT_EQ(s.stats().faults_bad_stub, 6u);
  EXPECT_EQ(s.stats().faults_op_rng, 5u);
  EXPECT_EQ(s.stats().calls[9], 3u);

  const auto t = tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10);
  EXPECT_EQ(map(s, {std::nullopt, t, {}, 0}, net(1)).status, st::kEptSCantPerformOp);
  EXPECT_EQ(map(s, {std::nullopt, std::nullopt, {}, 1}, net(1)).status, st::kEptSInvalidEntry);
  auto bad = t;
  bad.pop_back();
  EXPECT_EQ(map(s, {std::nullopt, bad, {}, 1}, net(1)).status, st::kEptSInvalidEntry);

  EptLookupRequest lr;
  lr.max_ents = 10;
  lr.inquiry_type = 4;
  EXPECT_EQ(lookup(s, lr, net(1)).status, st::kRpcSInvalidInquiryType);
  lr.inquiry_type = kRpcCEpMatchByIf;
  lr.if_id = RpcIfId{kSamr10.uuid, 1, 0};
  lr.vers_option = 0;
  EXPECT_EQ(lookup(s, lr, net(1)).status, st::kRpcSInvalidVersOption);
  lr.vers_option = 6;
  EXPECT_EQ(lookup(s, lr, net(1)).status, st::kRpcSInvalidVersOption);
  lr.inquiry_type = kRpcCEpAllElts;  // version option not consulted
  EXPECT_EQ(lookup(s, lr, net(1)).status, 0u);
  lr.max_ents = 0;
  EXPECT_EQ(lookup(s, lr, net(1)).status, st::kEptSCantPerformOp);

  // ept_inq_object
  auto r = s.call(kOpnumEptInqObject, {}, Endian::kLittle, net(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::uint8_t>(20, 0));
}

// Issue 11: bytes after the last [in] parameter are ignored (Windows, Samba), counted and
// reported; the answer is the one the exact stub gets.
TEST(EpmService, TrailingBytesAreIgnoredAndReported) {
  auto s = samr_service();
  std::vector<std::pair<std::uint16_t, std::size_t>> reported;
  s.on_trailing_bytes(
      [&](const CallerInfo&, std::uint16_t op, std::size_t n) { reported.emplace_back(op, n); });
  EptMapRequest mr{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 1};
  auto exact = encode(mr, Endian::kLittle);
  auto longer = exact;
  longer.insert(longer.end(), {0xde, 0xad, 0xbe, 0xef});
  auto a = s.call(kOpnumEptMap, exact, Endian::kLittle, net(1));
  auto b = s.call(kOpnumEptMap, longer, Endian::kLittle, net(1));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(decode_ept_map_response(*b, Endian::kLittle).value().towers.size(), 1u);
  auto r = s.call(kOpnumEptInqObject, std::vector<std::uint8_t>(8, 0), Endian::kLittle, net(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::uint8_t>(20, 0));
  // Registration too: a delete of nothing, with 4 extra bytes, still answers its status.
  EptDeleteRequest dr{{entry({}, "ncalrpc:[x]", kSamr10)}};
  auto del = encode(dr, Endian::kLittle);
  del.insert(del.end(), 4, 0);
  EXPECT_EQ(status_of(s.call(kOpnumEptDelete, del, Endian::kLittle, local(2))),
            st::kEptSNotRegistered);
  const std::vector<std::pair<std::uint16_t, std::size_t>> want{
      {kOpnumEptMap, 4}, {kOpnumEptInqObject, 8}, {kOpnumEptDelete, 4}};
  EXPECT_EQ(reported, want);
  EXPECT_EQ(s.stats().trailing_bytes_calls, 3u);
  EXPECT_EQ(s.stats().faults_bad_stub, 0u);
}

// ---- registration through the service ----

// Issue 11: a plain ept_insert (no lease asked for) outlives its connection, as in DCE's rpcd;
// only ept_delete / ept_mgmt_delete (or the daemon's sweep) remove it. A lease asked for after the
// insert does not reach back.
TEST(EpmService, InsertWithoutLeaseIsPersistent) {
  EpmService s(seeded(1));
  EptInsertRequest ins{{entry({}, "ncacn_ip_tcp:0.0.0.0[50000]", kLsa00, "lsarpc")}, false};
  const auto stub = encode(ins, Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, local(5))), 0u);
  s.hold_lease(5);
  EXPECT_EQ(s.connection_closed(5), 0u);
  ASSERT_EQ(s.db().size(), 1u);
  EXPECT_EQ(s.db().entries().begin()->second.owner, kPersistentOwner);
  EXPECT_EQ(s.db().entries().begin()->second.authority, 0u);
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kLsa00), {}, 1};
  EXPECT_EQ(binding_of(*map(s, req, net(9)).towers.at(0)), "ncacn_ip_tcp:127.0.0.1[50000]");
  // A later connection of the same uid deletes it.
  const auto del = encode(EptDeleteRequest{ins.entries}, Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptDelete, del, Endian::kLittle, local(8))), 0u);
  EXPECT_EQ(s.db().size(), 0u);
  // The same insert on a leased connection dies with it.
  s.hold_lease(9);
  auto leased = local(9);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, leased)), 0u);
  EXPECT_EQ(s.connection_closed(9), 1u);
  EXPECT_EQ(s.db().size(), 0u);
}

TEST(EpmService, RegistrationNeedsPermissionAndDiesWithConnection) {
  EpmService s(seeded(1));
  s.hold_lease(5);  // a broker client (AllocatePort / HoldLease on connection 5)
  EptInsertRequest ins{{entry({}, "ncacn_ip_tcp:0.0.0.0[50000]", kLsa00, "lsarpc")}, false};
  const auto stub = encode(ins, Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, net(5))),
            st::kEptSCantPerformOp);
  EXPECT_EQ(s.db().size(), 0u);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, local(5))), 0u);
  EXPECT_EQ(s.db().size(), 1u);
  const auto del = encode(EptDeleteRequest{ins.entries}, Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptDelete, del, Endian::kLittle, net(6))),
            st::kEptSCantPerformOp);
  const auto mdel = encode(
      EptMgmtDeleteRequest{false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[50000]", kLsa00)},
      Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptMgmtDelete, mdel, Endian::kLittle, net(6))),
            st::kEptSCantPerformOp);
  EXPECT_EQ(s.stats().refused_registrations, 3u);
  EXPECT_EQ(s.db().size(), 1u);
  // Visible to the network, with the caller's address.
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kLsa00), {}, 1};
  EXPECT_EQ(binding_of(*map(s, req, net(9)).towers.at(0)), "ncacn_ip_tcp:127.0.0.1[50000]");
  // Another connection closing changes nothing; the registrant's close removes its entries.
  EXPECT_EQ(s.connection_closed(6), 0u);
  EXPECT_EQ(s.connection_closed(5), 1u);
  EXPECT_EQ(map(s, req, net(9)).status, st::kEptSNotRegistered);
  EXPECT_FALSE(s.holds_lease(5));
  s.hold_lease(5);
  // ept_delete and ept_mgmt_delete with permission.
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, local(5))), 0u);
  EXPECT_EQ(status_of(s.call(kOpnumEptDelete, del, Endian::kLittle, local(7))), 0u);
  EXPECT_EQ(status_of(s.call(kOpnumEptDelete, del, Endian::kLittle, local(7))),
            st::kEptSNotRegistered);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, local(5))), 0u);
  EXPECT_EQ(status_of(s.call(kOpnumEptMgmtDelete, mdel, Endian::kLittle, local(7))), 0u);
  EXPECT_EQ(s.db().size(), 0u);
  EXPECT_EQ(s.stats().registrations, 3u);
  EXPECT_EQ(s.stats().unregistrations, 2u);
}

// ---- ownership (issue 10 item 2) ----

CallerInfo as_uid(std::uint64_t id, std::optional<std::uint32_t> uid) {
  return CallerInfo{id, true, std::nullopt, "unix", uid, ""};
}

TEST(EpmService, NobodyCannotChangeRootsOrEpmdsEntries) {
  EpmService s(seeded(1));
  std::vector<std::string> log;
  s.on_refusal([&](const CallerInfo& c, const Refusal& r) {
    log.push_back(std::to_string(c.uid.value_or(99999)) + ": " + to_string(r));
  });
  const auto epm = entry({}, "ncacn_ip_tcp:0.0.0.0[135]", kLsa00, "epm");
  ASSERT_EQ(s.db().insert({epm}, true, kPersistentOwner), 0u);
  const auto roots = entry({}, "ncacn_ip_tcp:0.0.0.0[5000]", kSamr10, "root's");
  auto call = [&](std::uint16_t opnum, const std::vector<std::uint8_t>& stub, const CallerInfo& c) {
    return status_of(s.call(opnum, stub, Endian::kLittle, c));
  };
  auto insert = [&](const EptEntry& e, bool replace, const CallerInfo& c) {
    return call(kOpnumEptInsert, encode(EptInsertRequest{{e}, replace}, Endian::kLittle), c);
  };
  auto erase = [&](const EptEntry& e, const CallerInfo& c) {
    return call(kOpnumEptDelete, encode(EptDeleteRequest{{e}}, Endian::kLittle), c);
  };
  auto mgmt_delete = [&](const EptEntry& e, const CallerInfo& c) {
    return call(kOpnumEptMgmtDelete,
                encode(EptMgmtDeleteRequest{false, std::nullopt, e.tower}, Endian::kLittle), c);
  };
  ASSERT_EQ(insert(roots, true, as_uid(1, 0)), 0u);
  const auto nobody = as_uid(2, 65534);
  EXPECT_EQ(erase(roots, nobody), st::kEptSCantPerformOp);
  EXPECT_EQ(insert(entry({}, "ncacn_ip_tcp:0.0.0.0[6666]", kSamr10, "hijack"), true, nobody),
            st::kEptSCantPerformOp);
  EXPECT_EQ(insert(roots, false, nobody), st::kEptSCantPerformOp);
  EXPECT_EQ(mgmt_delete(roots, nobody), st::kEptSCantPerformOp);
  EXPECT_EQ(erase(epm, nobody), st::kEptSCantPerformOp);
  EXPECT_EQ(erase(epm, as_uid(1, 0)), st::kEptSCantPerformOp);  // not even root
  EXPECT_EQ(s.stats().refused_not_owner, 6u);
  EXPECT_EQ(s.db().size(), 2u);
  EXPECT_EQ(log.front(), "65534: entry of uid 0 (caller uid 65534)");
  EXPECT_EQ(log.back(), "0: entry of epmd (caller uid 0)");
  // ept_map still answers root's port.
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 4};
  auto m = map(s, req, net(9));
  ASSERT_EQ(m.towers.size(), 1u);
  EXPECT_EQ(binding_of(*m.towers[0]), "ncacn_ip_tcp:127.0.0.1[5000]");
  // Nobody's own entries are its to change; root may delete them.
  const auto mine = entry({}, "ncacn_ip_tcp:0.0.0.0[7000]", kSamr10, "nobody's");
  auto other_if = mine;
  other_if.tower =
      tower("ncacn_ip_tcp:0.0.0.0[7000]", iface("0a0a0a0a-1234-abcd-ef00-0123456789ab", 1, 0));
  ASSERT_EQ(insert(other_if, false, nobody), 0u);
  EXPECT_EQ(erase(other_if, nobody), 0u);
  ASSERT_EQ(insert(other_if, false, nobody), 0u);
  EXPECT_EQ(erase(other_if, as_uid(1, 0)), 0u);
  // A caller without a uid changes nothing, even with may_register (defence in depth).
  EXPECT_EQ(insert(mine, false, as_uid(3, std::nullopt)), st::kEptSCantPerformOp);
  EXPECT_EQ(erase(roots, as_uid(3, std::nullopt)), st::kEptSCantPerformOp);
  EXPECT_EQ(s.stats().refused_registrations, 2u);
  EXPECT_EQ(log.back(), "99999: caller without a uid");
  EXPECT_EQ(s.db().size(), 2u);
}

TEST(EpmService, QuotaRefusalsAreCountedAndReported) {
  auto config = seeded(2);
  config.db.max_entries_per_uid = 2;
  EpmService s(config);
  std::string last;
  s.on_refusal([&](const CallerInfo&, const Refusal& r) { last = to_string(r); });
  for (int i = 0; i < 3; ++i) {
    const auto stub = encode(
        EptInsertRequest{
            {entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(100 + i) + "]", kSamr10)}, false},
        Endian::kLittle);
    EXPECT_EQ(status_of(s.call(kOpnumEptInsert, stub, Endian::kLittle, as_uid(1 + i, 1000))),
              i < 2 ? 0u : st::kEptSCantPerformOp);
  }
  EXPECT_EQ(s.stats().refused_quota, 1u);
  EXPECT_EQ(last, "max_entries_per_uid 2 (uid 1000)");
  // Persistent entries (no lease) outlive their connections and still count for their uid
  // (issue 11): closing the connections frees nothing.
  EXPECT_EQ(s.connection_closed(1) + s.connection_closed(2), 0u);
  const auto again = encode(
      EptInsertRequest{{entry({}, "ncacn_ip_tcp:0.0.0.0[200]", kSamr10)}, false}, Endian::kLittle);
  EXPECT_EQ(status_of(s.call(kOpnumEptInsert, again, Endian::kLittle, as_uid(9, 1000))),
            st::kEptSCantPerformOp);
  EXPECT_EQ(s.stats().refused_quota, 2u);
}

// ---- paging ----

EpmService big_service(std::size_t n) {
  auto config = seeded(3);
  config.db.max_entries_per_owner = 4096;
  EpmService s(config);
  std::vector<EptEntry> entries;
  for (std::size_t i = 0; i < n; ++i)
    entries.push_back(entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(10000 + i) + "]", kSamr10,
                            "e" + std::to_string(i)));
  EXPECT_EQ(s.db().insert(entries, false, kPersistentOwner), 0u);
  return s;
}

TEST(EpmServicePaging, LookupOver1200Entries) {
  for (std::uint32_t max_ents : {500u, 2u, 1u, 1000u}) {
    auto s = big_service(1200);
    EptLookupRequest req;
    req.max_ents = max_ents;
    std::set<std::string> seen;
    std::size_t calls = 0;
    for (;;) {
      auto resp = lookup(s, req, net(1));
      ++calls;
      ASSERT_EQ(resp.status, 0u) << max_ents << " call " << calls;
      ASSERT_FALSE(resp.entries.empty());
      ASSERT_LE(resp.entries.size(), std::min(max_ents, 500u));
      EXPECT_EQ(resp.max_count, std::min(max_ents, 500u));
      for (const auto& e : resp.entries)
        EXPECT_TRUE(seen.insert(e.annotation).second) << e.annotation;
      if (resp.entry_handle.is_null()) break;
      EXPECT_EQ(s.handle_count(1), 1u);
      req.entry_handle = resp.entry_handle;
    }
    EXPECT_EQ(seen.size(), 1200u) << max_ents;
    EXPECT_EQ(calls, (1200 + std::min(max_ents, 500u) - 1) / std::min(max_ents, 500u));
    EXPECT_EQ(s.handle_count(1), 0u);  // freed on the last batch
    // The last batch returned a null handle; a fresh call starts over.
    req.entry_handle = {};
    EXPECT_EQ(lookup(s, req, net(1)).status, 0u);
  }
}

TEST(EpmServicePaging, MapPagesAndExactEnd) {
  auto s = big_service(7);
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 3};
  auto p1 = map(s, req, net(1));
  EXPECT_EQ(p1.towers.size(), 3u);
  EXPECT_FALSE(p1.entry_handle.is_null());
  req.entry_handle = p1.entry_handle;
  auto p2 = map(s, req, net(1));
  EXPECT_EQ(p2.towers.size(), 3u);
  EXPECT_EQ(p2.entry_handle, p1.entry_handle);
  auto p3 = map(s, req, net(1));
  EXPECT_EQ(p3.towers.size(), 1u);
  EXPECT_TRUE(p3.entry_handle.is_null());
  EXPECT_EQ(p3.status, 0u);
  // The handle is gone: reusing it is an invalid context.
  EXPECT_EQ(map(s, req, net(1)).status, st::kEptSInvalidContext);
  // Exactly max matches: no handle (another match must exist for one).
  auto s6 = big_service(3);
  req.entry_handle = {};
  auto only = map(s6, req, net(1));
  EXPECT_EQ(only.towers.size(), 3u);
  EXPECT_TRUE(only.entry_handle.is_null());
  EXPECT_EQ(s6.handle_count(1), 0u);
}

TEST(EpmServicePaging, HandleFreeForeignKindAndCap) {
  auto s = big_service(50);
  EptLookupRequest req;
  req.max_ents = 1;
  auto first = lookup(s, req, net(1));
  ASSERT_FALSE(first.entry_handle.is_null());
  // Another connection cannot use it, nor free it.
  auto foreign = req;
  foreign.entry_handle = first.entry_handle;
  EXPECT_EQ(lookup(s, foreign, net(2)).status, st::kEptSInvalidContext);
  auto free_on = [&](std::uint64_t conn, const ndr::ContextHandle& h) {
    auto r =
        s.call(kOpnumEptLookupHandleFree, encode(EptLookupHandleFreeRequest{h}, Endian::kLittle),
               Endian::kLittle, net(conn));
    EXPECT_TRUE(r.has_value());
    return decode_ept_lookup_handle_free_response(r.value_or(std::vector<std::uint8_t>{}),
                                                  Endian::kLittle)
        .value_or(EptLookupHandleFreeResponse{{}, 0xdeadbeef});
  };
  EXPECT_EQ(free_on(2, first.entry_handle).status, st::kEptSInvalidContext);
  EXPECT_EQ(s.handle_count(1), 1u);
  // Still valid on its own connection.
  EXPECT_EQ(lookup(s, foreign, net(1)).entries.at(0).annotation, "e1");
  // A guessed handle is invalid too.
  foreign.entry_handle.uuid = uuid("01234567-89ab-cdef-0123-456789abcdef");
  EXPECT_EQ(lookup(s, foreign, net(1)).status, st::kEptSInvalidContext);
  // Different inquiry type on the same handle: invalid context, and the handle is freed (DCE).
  auto other = req;
  other.entry_handle = first.entry_handle;
  other.inquiry_type = kRpcCEpMatchByObj;
  EXPECT_EQ(lookup(s, other, net(1)).status, st::kEptSInvalidContext);
  EXPECT_EQ(s.handle_count(1), 0u);
  // A lookup handle in ept_map: invalid context.
  auto h = lookup(s, req, net(1)).entry_handle;
  EXPECT_EQ(map(s, {std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), h, 1}, net(1)).status,
            st::kEptSInvalidContext);
  // handle_free: zeroes the handle; null handle is fine.
  h = lookup(s, req, net(1)).entry_handle;
  auto freed = free_on(1, h);
  EXPECT_EQ(freed.status, 0u);
  EXPECT_TRUE(freed.entry_handle.is_null());
  EXPECT_EQ(free_on(1, {}).status, 0u);
  EXPECT_EQ(s.handle_count(1), 0u);
  // Cap: 64 per connection; the 65th evicts the oldest.
  std::vector<ndr::ContextHandle> handles;
  for (int i = 0; i < 65; ++i)
    handles.push_back(lookup(s, req, net(3)).entry_handle);
  EXPECT_EQ(s.handle_count(3), 64u);
  EXPECT_EQ(s.stats().handles_evicted, 1u);
  auto oldest = req;
  oldest.entry_handle = handles.front();
  EXPECT_EQ(lookup(s, oldest, net(3)).status, st::kEptSInvalidContext);
  oldest.entry_handle = handles.back();
  EXPECT_EQ(lookup(s, oldest, net(3)).status, 0u);
  // Handles are distinct and not guessable from one another (no two equal, none nil).
  std::set<common::Uuid> distinct;
  for (const auto& x : handles)
    distinct.insert(x.uuid);
  EXPECT_EQ(distinct.size(), 65u);
  // Run-down on close.
  s.connection_closed(3);
  EXPECT_EQ(s.handle_count(3), 0u);
  EXPECT_EQ(s.stats().handles, 0u);
  EXPECT_EQ(lookup(s, oldest, net(3)).status, st::kEptSInvalidContext);
}

// ---- handle hoarding (issue 10 item 5) ----

CallerInfo from(std::uint64_t id, std::string_view peer_key) {
  return CallerInfo{id, false, Ipv4{127, 0, 0, 1}, "test", std::nullopt, peer_key};
}

TEST(EpmServicePaging, GlobalHandleCapEvictsTheBiggestHoldersLeastRecentlyUsed) {
  EpmConfig config;
  config.seed = 9;
  config.max_handles_total = 4;
  EpmService s(config);
  ASSERT_EQ(s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1]", kSamr10),
                           entry({}, "ncacn_ip_tcp:0.0.0.0[2]", kSamr10)},
                          false, kPersistentOwner),
            0u);
  EptLookupRequest req;
  req.max_ents = 1;
  // A hoarder at 10.0.0.1 takes 3 handles on 3 connections, 10.0.0.2 one.
  std::vector<ndr::ContextHandle> hoarded;
  for (std::uint64_t c = 1; c <= 3; ++c)
    hoarded.push_back(lookup(s, req, from(c, "10.0.0.1")).entry_handle);
  const auto other = lookup(s, req, from(4, "10.0.0.2")).entry_handle;
  EXPECT_EQ(s.stats().handles, 4u);
  // A newcomer is served; the hoarder's least recently used handle went (not the newcomer's,
  // not 10.0.0.2's).
  auto newcomer = lookup(s, req, from(5, "10.0.0.3"));
  EXPECT_EQ(newcomer.status, 0u);
  EXPECT_FALSE(newcomer.entry_handle.is_null());
  EXPECT_EQ(s.stats().handles_evicted_total, 1u);
  EXPECT_EQ(s.peer_handle_count("10.0.0.1"), 2u);
  EXPECT_EQ(s.peer_handle_count("10.0.0.2"), 1u);
  auto again = req;
  again.entry_handle = hoarded[0];
  EXPECT_EQ(lookup(s, again, from(1, "10.0.0.1")).status, st::kEptSInvalidContext);
  // Using a handle makes it recent: the hoarder's next victim is its handle 3, not 2.
  again.entry_handle = hoarded[1];
  again.max_ents = 1;
  s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[3]", kSamr10)}, false, kPersistentOwner);
  EXPECT_EQ(lookup(s, again, from(2, "10.0.0.1")).status, 0u);  // page 2 of 3, handle kept
  EXPECT_EQ(lookup(s, req, from(6, "10.0.0.4")).status, 0u);
  again.entry_handle = hoarded[2];
  EXPECT_EQ(lookup(s, again, from(3, "10.0.0.1")).status, st::kEptSInvalidContext);
  again.entry_handle = other;
  EXPECT_EQ(lookup(s, again, from(4, "10.0.0.2")).status, 0u);
  EXPECT_EQ(s.stats().handles, 4u);
}

TEST(EpmServicePaging, PerPeerHandleCap) {
  EpmConfig config;
  config.seed = 10;
  config.max_handles_per_peer = 3;
  EpmService s(config);
  ASSERT_EQ(s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1]", kSamr10),
                           entry({}, "ncacn_ip_tcp:0.0.0.0[2]", kSamr10)},
                          false, kPersistentOwner),
            0u);
  EptLookupRequest req;
  req.max_ents = 1;
  for (std::uint64_t c = 1; c <= 10; ++c)
    EXPECT_EQ(lookup(s, req, from(c, "2001:db8:1:2::/64")).status, 0u);
  EXPECT_EQ(s.peer_handle_count("2001:db8:1:2::/64"), 3u);
  EXPECT_EQ(s.stats().handles_evicted_peer, 7u);
  // Local callers (no peer key): per uid, else per connection.
  for (std::uint64_t c = 20; c < 25; ++c)
    EXPECT_EQ(lookup(s, req, local(c)).status, 0u);
  EXPECT_EQ(s.peer_handle_count("uid 0"), 3u);
  for (std::uint64_t c = 30; c < 33; ++c) {
    auto nouid = local(c);
    nouid.uid.reset();
    EXPECT_EQ(lookup(s, req, nouid).status, 0u);
    EXPECT_EQ(s.peer_handle_count("connection " + std::to_string(c)), 1u);
  }
  // Closing the connections returns their handles from every index.
  for (std::uint64_t c = 1; c < 33; ++c)
    s.connection_closed(c);
  EXPECT_EQ(s.stats().handles, 0u);
  EXPECT_EQ(s.peer_handle_count("uid 0"), 0u);
  EXPECT_EQ(s.peer_handle_count("2001:db8:1:2::/64"), 0u);
}

TEST(EpmServicePaging, HoardersFromOneAddressDoNotStopAnotherClientsPaging) {
  // Scaled down: 64 connections x 4 handles from one address against a table of 32.
  EpmConfig config;
  config.seed = 11;
  config.max_handles_per_connection = 4;
  config.max_handles_per_peer = 1024;
  config.max_handles_total = 32;
  auto s = EpmService(config);
  std::vector<EptEntry> entries;
  for (int i = 0; i < 20; ++i)
    entries.push_back(entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(1000 + i) + "]", kSamr10,
                            "e" + std::to_string(i)));
  ASSERT_EQ(s.db().insert(entries, false, kPersistentOwner), 0u);
  EptLookupRequest req;
  req.max_ents = 1;
  EptLookupRequest victim = req;
  std::set<std::string> seen;
  for (int round = 0; round < 64; ++round) {
    for (int k = 0; k < 4; ++k)
      ASSERT_EQ(lookup(s, req, from(100 + round, "198.51.100.7")).status, 0u);
    if (seen.size() < 20) {
      auto page = lookup(s, victim, from(1, "203.0.113.9"));
      ASSERT_EQ(page.status, 0u) << "round " << round;
      seen.insert(page.entries.at(0).annotation);
      victim.entry_handle = page.entry_handle;
    }
    EXPECT_LE(s.stats().handles, 32u);
  }
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_TRUE(victim.entry_handle.is_null());
}

TEST(EpmServicePaging, ConcurrentInsertDeleteDuringPaging) {
  auto s = big_service(10);
  EptLookupRequest req;
  req.max_ents = 3;
  auto p1 = lookup(s, req, net(1));
  ASSERT_EQ(p1.entries.size(), 3u);
  // Delete an entry already returned, one not yet returned, and insert a new one.
  ASSERT_EQ(s.db().erase({entry({}, "ncacn_ip_tcp:0.0.0.0[10000]", kSamr10),
                          entry({}, "ncacn_ip_tcp:0.0.0.0[10005]", kSamr10)}),
            0u);
  ASSERT_EQ(s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[20000]", kSamr10, "new")}, false, 0),
            0u);
  std::set<std::string> seen;
  for (const auto& e : p1.entries)
    seen.insert(e.annotation);
  req.entry_handle = p1.entry_handle;
  while (!req.entry_handle.is_null()) {
    auto p = lookup(s, req, net(1));
    ASSERT_EQ(p.status, 0u);
    for (const auto& e : p.entries)
      EXPECT_TRUE(seen.insert(e.annotation).second) << e.annotation;
    req.entry_handle = p.entry_handle;
  }
  EXPECT_EQ(seen.size(), 10u);  // e0-e9 (e0 came before its deletion) without e5, plus "new"
  EXPECT_FALSE(seen.contains("e5"));
  EXPECT_TRUE(seen.contains("new"));
  // Deleting the whole map under a live handle: the next call answers not_registered.
  auto s2 = big_service(4);
  req = {};
  req.max_ents = 1;
  auto h = lookup(s2, req, net(1)).entry_handle;
  for (std::size_t i = 0; i < 4; ++i)
    (void)s2.db().erase(
        {entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(10000 + i) + "]", kSamr10)});
  req.entry_handle = h;
  auto after = lookup(s2, req, net(1));
  EXPECT_EQ(after.status, st::kEptSNotRegistered);
  EXPECT_TRUE(after.entry_handle.is_null());
  EXPECT_EQ(s2.handle_count(1), 0u);
}

TEST(EpmService, MgmtMapThroughService) {
  EpmService s(seeded(5));
  ASSERT_EQ(s.db().insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10),
                           entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kLsa00),
                           entry({}, "ncacn_ip_tcp:0.0.0.0[1001]", kLsa00)},
                          false, 0),
            0u);
  auto resp =
      map(s, {common::Uuid{}, tower("ncacn_ip_tcp:0.0.0.0[0]", rpc::kMgmtSyntax), {}, 10}, net(1));
  ASSERT_EQ(resp.towers.size(), 2u);
  EXPECT_EQ(binding_of(*resp.towers[0]), "ncacn_ip_tcp:127.0.0.1[1000]");
  EXPECT_EQ(binding_of(*resp.towers[1]), "ncacn_ip_tcp:127.0.0.1[1001]");
  EXPECT_EQ(interface_of(*resp.towers[1]), rpc::kMgmtSyntax);
}

// ---- the ept_map answer cache ----

std::vector<std::string> bindings(EpmService& s, const std::vector<std::uint8_t>& stub,
                                  const CallerInfo& c, Endian endian = Endian::kLittle) {
  auto r = s.call(kOpnumEptMap, stub, endian, c);
  EXPECT_TRUE(r.has_value());
  auto resp = decode_ept_map_response(r.value_or(std::vector<std::uint8_t>{}), endian);
  EXPECT_TRUE(resp.has_value());
  std::vector<std::string> out;
  for (const auto& t : resp.value_or(EptMapResponse{}).towers)
    out.push_back(t ? binding_of(*t) : "NULL");
  return out;
}

using Strings = std::vector<std::string>;

TEST(EpmServiceCache, ARepeatedMapIsAnsweredFromTheCacheWithTheSameBytesAndCounts) {
  auto s = samr_service();
  std::vector<std::size_t> reported;
  s.on_trailing_bytes(
      [&](const CallerInfo&, std::uint16_t, std::size_t n) { reported.push_back(n); });
  auto stub = encode(EptMapRequest{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 4},
                     Endian::kLittle);
  const auto first = s.call(kOpnumEptMap, stub, Endian::kLittle, net(1));
  const auto again = s.call(kOpnumEptMap, stub, Endian::kLittle, net(2));  // another connection
  ASSERT_TRUE(first && again);
  EXPECT_EQ(*first, *again);
  EXPECT_EQ(s.map_cache().stats().hits, 1u);
  const auto view = s.respond(kOpnumEptMap, stub, Endian::kLittle, net(3));
  ASSERT_TRUE(view);
  EXPECT_EQ(std::vector<std::uint8_t>(view->begin(), view->end()), *first);
  EXPECT_EQ(s.map_cache().stats().hits, 2u);
  EXPECT_EQ(s.stats().calls[kOpnumEptMap], 3u);
  // A not-registered answer is cached too, and still counted on every call.
  const auto lsa =
      encode(EptMapRequest{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kLsa00), {}, 4},
             Endian::kLittle);
  EXPECT_TRUE(bindings(s, lsa, net(1)).empty());
  EXPECT_TRUE(bindings(s, lsa, net(1)).empty());
  EXPECT_EQ(s.map_cache().stats().hits, 3u);
  EXPECT_EQ(s.stats().not_registered, 2u);
  // Trailing bytes are reported on a hit as on the computed answer.
  stub.insert(stub.end(), {1, 2, 3});
  EXPECT_EQ(bindings(s, stub, net(1)), Strings{"ncacn_ip_tcp:127.0.0.1[49664]"});
  EXPECT_EQ(bindings(s, stub, net(1)), Strings{"ncacn_ip_tcp:127.0.0.1[49664]"});
  EXPECT_EQ(s.map_cache().stats().hits, 4u);
  EXPECT_EQ(reported, (std::vector<std::size_t>{3, 3}));
  EXPECT_EQ(s.stats().trailing_bytes_calls, 2u);
}

// Every way the map changes is visible in the very next ept_map: over the wire (ept_insert,
// ept_insert with replace, ept_delete, ept_mgmt_delete), by the daemon (db().insert: static
// entries), a lease dropped with its connection, the liveness sweep (db().remove).
TEST(EpmServiceCache, EveryChangeToTheMapIsSeenByTheNextMap) {
  EpmService s(seeded(1));
  const auto stub =
      encode(EptMapRequest{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kLsa00), {}, 10},
             Endian::kLittle);
  auto seen = [&] {
    auto b = bindings(s, stub, net(1));
    EXPECT_EQ(bindings(s, stub, net(1)), b);  // the second answer is the cached one
    return b;
  };
  auto wire = [&](std::uint16_t op, const std::vector<std::uint8_t>& req, const CallerInfo& c) {
    return status_of(s.call(op, req, Endian::kLittle, c));
  };
  const auto a = entry({}, "ncacn_ip_tcp:0.0.0.0[50000]", kLsa00, "a");
  const auto b = entry({}, "ncacn_ip_tcp:0.0.0.0[50001]", kLsa00, "b");
  EXPECT_EQ(seen(), Strings{});
  EXPECT_EQ(wire(kOpnumEptInsert, encode(EptInsertRequest{{a}, false}, Endian::kLittle), local(5)),
            0u);
  EXPECT_EQ(seen(), Strings{"ncacn_ip_tcp:127.0.0.1[50000]"});
  ASSERT_EQ(s.db().insert({b}, false, kPersistentOwner), 0u);  // the daemon's static entries
  EXPECT_EQ(seen(), (Strings{"ncacn_ip_tcp:127.0.0.1[50000]", "ncacn_ip_tcp:127.0.0.1[50001]"}));
  EXPECT_EQ(wire(kOpnumEptDelete, encode(EptDeleteRequest{{a}}, Endian::kLittle), local(6)), 0u);
  EXPECT_EQ(seen(), Strings{"ncacn_ip_tcp:127.0.0.1[50001]"});
  // A lease: the entry goes with its connection.
  s.hold_lease(7);
  EXPECT_EQ(wire(kOpnumEptInsert, encode(EptInsertRequest{{a}, false}, Endian::kLittle), local(7)),
            0u);
  EXPECT_EQ(seen(), (Strings{"ncacn_ip_tcp:127.0.0.1[50001]", "ncacn_ip_tcp:127.0.0.1[50000]"}));
  EXPECT_EQ(s.connection_closed(7), 1u);
  EXPECT_EQ(seen(), Strings{"ncacn_ip_tcp:127.0.0.1[50001]"});
  // The liveness sweep removes a dead endpoint by id.
  ASSERT_TRUE(s.db().remove(s.db().entries().begin()->first));
  EXPECT_EQ(seen(), Strings{});
  // Replace: the same interface on another port replaces the registration.
  EXPECT_EQ(wire(kOpnumEptInsert, encode(EptInsertRequest{{a}, false}, Endian::kLittle), local(5)),
            0u);
  EXPECT_EQ(seen(), Strings{"ncacn_ip_tcp:127.0.0.1[50000]"});
  const auto c = entry({}, "ncacn_ip_tcp:0.0.0.0[50002]", kLsa00, "c");
  EXPECT_EQ(wire(kOpnumEptInsert, encode(EptInsertRequest{{c}, true}, Endian::kLittle), local(5)),
            0u);
  EXPECT_EQ(seen(), Strings{"ncacn_ip_tcp:127.0.0.1[50002]"});
  EXPECT_EQ(
      wire(kOpnumEptMgmtDelete,
           encode(EptMgmtDeleteRequest{false, std::nullopt, c.tower}, Endian::kLittle), local(5)),
      0u);
  EXPECT_EQ(seen(), Strings{});
  EXPECT_GE(s.map_cache().stats().invalidated, 8u);
}

// The daemon could also replace the whole map (db() = EndpointDb(...)): a new map never reuses a
// generation, so the cache does not answer from the old one.
TEST(EpmServiceCache, AReplacedMapIsSeenByTheNextMap) {
  auto s = samr_service();
  const auto stub =
      encode(EptMapRequest{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 4},
             Endian::kLittle);
  EXPECT_EQ(bindings(s, stub, net(1)), Strings{"ncacn_ip_tcp:127.0.0.1[49664]"});
  // The new map has had as many changes as the old one (one insert): without a base of its own
  // its generation would be the old one's.
  EndpointDb fresh(s.db().limits());
  ASSERT_EQ(fresh.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[49665]", kSamr10, "samr")}, false,
                         kPersistentOwner),
            0u);
  s.db() = std::move(fresh);
  EXPECT_EQ(bindings(s, stub, net(1)), Strings{"ncacn_ip_tcp:127.0.0.1[49665]"});
  EXPECT_NE(EndpointDb().generation(), EndpointDb().generation());
}

// An answer that carries a handle (more results follow) creates state; a request with a handle
// depends on it. Neither is ever answered from the cache.
TEST(EpmServiceCache, StatefulAnswersAreNeverCached) {
  auto s = big_service(7);
  EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 3};
  const auto p1 = map(s, req, net(1));
  const auto p1_again = map(s, req, net(1));
  ASSERT_FALSE(p1.entry_handle.is_null());
  ASSERT_FALSE(p1_again.entry_handle.is_null());
  EXPECT_NE(p1.entry_handle, p1_again.entry_handle);  // a new handle each time, as before
  EXPECT_EQ(s.handle_count(1), 2u);
  req.entry_handle = p1.entry_handle;
  EXPECT_EQ(map(s, req, net(1)).towers.size(), 3u);  // page 2
  const auto p3 = map(s, req, net(1));               // page 3, the last: handle freed
  EXPECT_EQ(p3.towers.size(), 1u);
  EXPECT_TRUE(p3.entry_handle.is_null());
  // The same bytes again: the handle is gone, and the answer says so (not page 3 from a cache).
  EXPECT_EQ(map(s, req, net(1)).status, st::kEptSInvalidContext);
  EXPECT_EQ(s.map_cache().size(), 0u);
  EXPECT_EQ(s.map_cache().stats().hits, 0u);
}

TEST(EpmServiceCache, HostFloorAndByteOrderArePartOfTheKey) {
  auto s = samr_service();
  const EptMapRequest req{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 1};
  const auto le = encode(req, Endian::kLittle);
  auto other = net(2);
  other.local_ipv4 = Ipv4{10, 1, 2, 3};
  auto v6 = net(3);
  v6.local_ipv4.reset();
  for (int round = 0; round < 2; ++round) {  // the second round is answered from the cache
    EXPECT_EQ(bindings(s, le, net(1)), Strings{"ncacn_ip_tcp:127.0.0.1[49664]"});
    EXPECT_EQ(bindings(s, le, other), Strings{"ncacn_ip_tcp:10.1.2.3[49664]"});
    EXPECT_EQ(bindings(s, le, v6), Strings{"ncacn_ip_tcp:0.0.0.0[49664]"});
    EXPECT_EQ(bindings(s, encode(req, Endian::kBig), net(1), Endian::kBig),
              Strings{"ncacn_ip_tcp:127.0.0.1[49664]"});
  }
  EXPECT_EQ(s.map_cache().stats().hits, 4u);
}

// Differential: a service with the cache and one without, fed the same random calls (maps of a
// few towers, with and without handles, in both byte orders and from several hosts, interleaved
// with inserts, deletes and closes), give byte-identical answers and end in the same state.
TEST(EpmServiceCache, CachedAndComputedAnswersAreIdentical) {
  EpmConfig with = seeded(11);
  EpmConfig without = seeded(11);
  without.map_cache.max_entries = 0;
  with.map_cache.max_entries = 8;  // small: evictions happen too
  EpmService a(with), b(without);
  std::mt19937 rng(1234);
  const std::array<SyntaxId, 3> ifs{kSamr10, kLsa00, rpc::kMgmtSyntax};
  std::vector<EptEntry> pool;
  for (int i = 0; i < 6; ++i)
    pool.push_back(entry(i % 3 == 0 ? kObj1 : common::Uuid{},
                         "ncacn_ip_tcp:0.0.0.0[" + std::to_string(40000 + i) + "]",
                         ifs[static_cast<std::size_t>(i) % 2], "p"));
  std::vector<ndr::ContextHandle> handles{{}};
  for (int step = 0; step < 4000; ++step) {
    const auto conn = 1 + rng() % 3;
    auto caller = local(conn);
    caller.local_ipv4 = rng() % 2 ? Ipv4{127, 0, 0, 1} : Ipv4{192, 0, 2, 7};
    const auto endian = rng() % 4 == 0 ? Endian::kBig : Endian::kLittle;
    std::vector<std::uint8_t> stub;
    std::uint16_t op = kOpnumEptMap;
    switch (rng() % 40) {  // mostly maps, so that repeats (cache hits) happen between changes
      case 0:
        op = kOpnumEptInsert;
        stub = encode(EptInsertRequest{{pool[rng() % pool.size()]}, rng() % 4 == 0}, endian);
        break;
      case 1:
        op = kOpnumEptDelete;
        stub = encode(EptDeleteRequest{{pool[rng() % pool.size()]}}, endian);
        break;
      case 2:
        EXPECT_EQ(a.connection_closed(conn), b.connection_closed(conn));
        continue;
      default: {
        EptMapRequest req{rng() % 3 == 0 ? std::optional(kObj1) : std::nullopt,
                          tower("ncacn_ip_tcp:0.0.0.0[0]", ifs[rng() % ifs.size()]),
                          rng() % 4 ? ndr::ContextHandle{} : handles[rng() % handles.size()],
                          static_cast<std::uint32_t>(1 + rng() % 4)};
        stub = encode(req, endian);
        if (rng() % 8 == 0) stub.push_back(0);  // a trailing byte
        break;
      }
    }
    const auto ra = a.call(op, stub, endian, caller);
    const auto rb = b.call(op, stub, endian, caller);
    ASSERT_EQ(ra, rb) << "step " << step;
    if (op == kOpnumEptMap && ra) {
      auto resp = decode_ept_map_response(*ra, endian);
      ASSERT_TRUE(resp);
      if (!resp->entry_handle.is_null()) handles.push_back(resp->entry_handle);
    }
  }
  EXPECT_EQ(a.db().size(), b.db().size());
  EXPECT_EQ(a.stats().handles, b.stats().handles);
  EXPECT_EQ(a.stats().not_registered, b.stats().not_registered);
  EXPECT_GT(a.map_cache().stats().hits, 100u);
  EXPECT_GT(a.map_cache().stats().invalidated, 10u);
}

TEST(EpmServiceCache, AHitAllocatesNothing) {
  auto s = samr_service();
  const auto stub =
      encode(EptMapRequest{std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10), {}, 4},
             Endian::kLittle);
  const auto caller = net(1);
  counting = true;
  const auto miss = s.respond(kOpnumEptMap, stub, Endian::kLittle, caller);
  const auto miss_allocations = std::exchange(allocations, 0);
  const auto hit = s.respond(kOpnumEptMap, stub, Endian::kLittle, caller);
  counting = false;
  ASSERT_TRUE(miss && hit);
  EXPECT_GT(miss_allocations, 0u);  // the counter works: a computed answer allocates
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(s.map_cache().stats().hits, 1u);
}

}  // namespace
}  // namespace rpcgate::epm
