#include "epm/endpoint_db.h"

#include <set>

#include <gtest/gtest.h>

#include "epm/internal/test_util.h"
#include "rpc/pdu.h"
#include "rpc/status.h"

namespace rpcgate::epm {
namespace {

using namespace testing;
namespace st = rpc::status;
using ndr::epm::EptEntry;

MapQuery query(const common::Uuid& object, std::string_view binding, const SyntaxId& interface,
               const SyntaxId& transfer = ndr::ndr20_syntax()) {
  auto q = parse_map_tower(tower(binding, interface, transfer), object);
  EXPECT_TRUE(q.has_value());
  return q.value_or(MapQuery{});
}

std::vector<std::string> bindings(const Page<MapCursor>& page) {
  std::vector<std::string> out;
  for (const Entry* e : page.entries)
    out.push_back((e->object.is_nil()   ? "nil "
                   : e->object == kObj1 ? "o1 "
                                        : "o? ") +
                  binding_of(e->tower_octets));
  return out;
}

// render_tower patches the entry's pre-encoded tower; it must equal rebuilding the tower floor
// by floor: 0.0.0.0 host floors take `host`, a specific address stays, floor 1 names
// `interface` when given.
TEST(EndpointDbRender, SameAsRebuildingTheTower) {
  const auto samr = iface("12345778-1234-abcd-ef00-0123456789ac", 1, 0);
  const Ipv4 host{192, 0, 2, 7};
  for (const char* binding :
       {"ncacn_ip_tcp:0.0.0.0[49664]", "ncacn_ip_tcp:10.1.2.3[49665]",
        "ncadg_ip_udp:0.0.0.0[49666]", "ncacn_np:\\\\HOST[\\pipe\\x]", "ncalrpc:[LRPC-1]"}) {
    SCOPED_TRACE(binding);
    auto e = make_entry(entry({}, binding, samr));
    ASSERT_TRUE(e);
    // render_tower patches the registered octets: they must be the canonical encoding.
    EXPECT_EQ(ndr::encode_tower(ndr::decode_tower(e->tower_octets).value()), e->tower_octets);
    for (bool mgmt : {false, true}) {
      const std::optional<SyntaxId> floor1 =
          mgmt ? std::optional<SyntaxId>(rpc::kMgmtSyntax) : std::nullopt;
      ndr::Tower expected = ndr::decode_tower(e->tower_octets).value();
      if (floor1) {
        ndr::TowerView v = ndr::view_tower(expected).value();
        v.interface = *floor1;
        expected.floors[0] = ndr::make_tower(v).floors[0];
      }
      for (auto& f : expected.floors)
        if (f.protocol_id() == ndr::protocol_id::kIp && f.rhs == std::vector<std::uint8_t>(4, 0))
          f.rhs.assign(host.begin(), host.end());
      EXPECT_EQ(render_tower(*e, floor1, host), ndr::encode_tower(expected)) << "mgmt " << mgmt;
    }
  }
}

// ---- C706 ept_map matching table ----

TEST(EndpointDbMap, MinorVersionRule) {
  EndpointDb db;
  const auto samr11 = iface("12345778-1234-abcd-ef00-0123456789ac", 1, 1);
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[49664]", samr11)}, false, 7), 0u);
  const auto tcp = "ncacn_ip_tcp:0.0.0.0[0]";
  // requested minor <= registered minor
  EXPECT_EQ(db.map(query({}, tcp, kSamr10), {}, 10).entries.size(), 1u);
  EXPECT_EQ(db.map(query({}, tcp, samr11), {}, 10).entries.size(), 1u);
  EXPECT_EQ(db.map(query({}, tcp, iface("12345778-1234-abcd-ef00-0123456789ac", 1, 2)), {}, 10)
                .entries.size(),
            0u);
  // different major never matches
  EXPECT_EQ(db.map(query({}, tcp, iface("12345778-1234-abcd-ef00-0123456789ac", 2, 0)), {}, 10)
                .entries.size(),
            0u);
  EXPECT_EQ(db.map(query({}, tcp, iface("12345778-1234-abcd-ef00-0123456789ac", 0, 0)), {}, 10)
                .entries.size(),
            0u);
  // other interface
  EXPECT_EQ(db.map(query({}, tcp, kLsa00), {}, 10).entries.size(), 0u);
}

TEST(EndpointDbMap, ObjectTwoPassOrder) {
  EndpointDb db;
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10),
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[1001]", kSamr10),
                       entry(kObj2, "ncacn_ip_tcp:0.0.0.0[1002]", kSamr10),
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[1003]", kLsa00)},
                      false, 1),
            0u);
  const auto tcp = "ncacn_ip_tcp:0.0.0.0[0]";
  // Object O1: its own entries first (pass 1), then nil-object ones (pass 2).
  EXPECT_EQ(bindings(db.map(query(kObj1, tcp, kSamr10), {}, 10)),
            (std::vector<std::string>{"o1 ncacn_ip_tcp:0.0.0.0[1001]",
                                      "nil ncacn_ip_tcp:0.0.0.0[1000]"}));
  // Nil object: nil-object entries only (C706 table: <nil,I1> does not match <O1,I1>).
  EXPECT_EQ(bindings(db.map(query({}, tcp, kSamr10), {}, 10)),
            (std::vector<std::string>{"nil ncacn_ip_tcp:0.0.0.0[1000]"}));
  // Object with no own registration: nil-object entries match any object (MS-RPCE 2.2.1.2.5).
  EXPECT_EQ(
      bindings(db.map(query(uuid("00000000-0000-0000-0000-000000000001"), tcp, kSamr10), {}, 10)),
      (std::vector<std::string>{"nil ncacn_ip_tcp:0.0.0.0[1000]"}));
  // LSA only registered with O1: nil object finds nothing.
  EXPECT_TRUE(db.map(query({}, tcp, kLsa00), {}, 10).entries.empty());
  // Paging across the pass boundary.
  auto p1 = db.map(query(kObj1, tcp, kSamr10), {}, 1);
  ASSERT_EQ(p1.entries.size(), 1u);
  ASSERT_TRUE(p1.next);
  EXPECT_EQ(p1.next->pass, 2);
  auto p2 = db.map(query(kObj1, tcp, kSamr10), *p1.next, 1);
  EXPECT_EQ(bindings(p2), (std::vector<std::string>{"nil ncacn_ip_tcp:0.0.0.0[1000]"}));
  EXPECT_FALSE(p2.next);
}

TEST(EndpointDbMap, ProtseqAndTransferSyntax) {
  EndpointDb db;
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10),
                       entry({}, "ncacn_np:[\\PIPE\\samr]", kSamr10)},
                      false, 1),
            0u);
  EXPECT_EQ(db.map(query({}, "ncadg_ip_udp:0.0.0.0[0]", kSamr10), {}, 10).entries.size(), 0u);
  EXPECT_EQ(db.map(query({}, "ncacn_http:0.0.0.0[0]", kSamr10), {}, 10).entries.size(), 0u);
  EXPECT_EQ(bindings(db.map(query({}, "ncacn_np:[\\PIPE\\x]", kSamr10), {}, 10)),
            (std::vector<std::string>{"nil ncacn_np:[\\PIPE\\samr]"}));
  // NDR64 request against an NDR20 registration: no match (as Samba, and C706's drep rule).
  EXPECT_EQ(db.map(query({}, "ncacn_ip_tcp:0.0.0.0[0]", kSamr10, ndr::ndr64_syntax()), {}, 10)
                .entries.size(),
            0u);
  // The network address of the request is ignored (MS-RPCE 3.1.3.5.3).
  EXPECT_EQ(db.map(query({}, "ncacn_ip_tcp:10.1.2.3[99]", kSamr10), {}, 10).entries.size(), 1u);
}

TEST(EndpointDbMap, MgmtOneTowerPerEndpoint) {
  EndpointDb db;
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kLsa00),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[1001]", kLsa00),
                       entry({}, "ncadg_ip_udp:0.0.0.0[1000]", kLsa00)},
                      false, 1),
            0u);
  const auto q = query({}, "ncacn_ip_tcp:0.0.0.0[0]", rpc::kMgmtSyntax);
  auto all = db.map(q, {}, 10);
  EXPECT_EQ(bindings(all), (std::vector<std::string>{"nil ncacn_ip_tcp:0.0.0.0[1000]",
                                                     "nil ncacn_ip_tcp:0.0.0.0[1001]"}));
  // Paging one at a time never repeats an endpoint.
  auto p1 = db.map(q, {}, 1);
  ASSERT_TRUE(p1.next);
  auto p2 = db.map(q, *p1.next, 1);
  EXPECT_EQ(bindings(p2), (std::vector<std::string>{"nil ncacn_ip_tcp:0.0.0.0[1001]"}));
  EXPECT_FALSE(p2.next);
  // Rendered with MGMT in floor 1.
  const auto octets = render_tower(*all.entries[0], rpc::kMgmtSyntax, {127, 0, 0, 1});
  EXPECT_EQ(interface_of(octets), rpc::kMgmtSyntax);
  EXPECT_EQ(binding_of(octets), "ncacn_ip_tcp:127.0.0.1[1000]");
}

TEST(EndpointDbMap, MalformedAndOversizedTowers) {
  // > 6 floors: the §7.3 tower with two extra floors.
  auto t = tower("ncacn_ip_tcp:0.0.0.0[0]", kSamr10);
  auto seven = t;
  seven[0] = 7;
  for (int i = 0; i < 2; ++i)
    for (auto b : {0x01, 0x00, 0x07, 0x02, 0x00, 0x00, 0x00})
      seven.push_back(static_cast<std::uint8_t>(b));
  EXPECT_EQ(parse_map_tower(seven, std::nullopt).error(), st::kEptSInvalidEntry);
  EXPECT_EQ(parse_map_tower(std::nullopt, std::nullopt).error(), st::kEptSInvalidEntry);
  auto truncated = t;
  truncated.pop_back();
  EXPECT_EQ(parse_map_tower(truncated, std::nullopt).error(), st::kEptSInvalidEntry);
  // 3 floors: no protseq.
  ndr::Tower three = *ndr::decode_tower(t);
  three.floors.resize(3);
  EXPECT_EQ(parse_map_tower(ndr::encode_tower(three), std::nullopt).error(), st::kEptSInvalidEntry);
  // Nil interface uuid.
  EXPECT_EQ(parse_map_tower(tower("ncacn_ip_tcp:0.0.0.0[0]", SyntaxId{}), std::nullopt).error(),
            st::kEptSInvalidEntry);
  // The same rules guard inserts.
  EndpointDb db;
  EXPECT_EQ(db.insert({EptEntry{{}, seven, ""}}, false, 1), st::kEptSInvalidEntry);
  EXPECT_EQ(db.insert({EptEntry{{}, std::nullopt, ""}}, false, 1), st::kEptSInvalidEntry);
  EXPECT_EQ(db.insert({EptEntry{{}, t, std::string(64, 'a')}}, false, 1), st::kEptSInvalidEntry);
  EXPECT_EQ(db.size(), 0u);
}

// ---- ept_lookup filters: every inquiry type x every version option ----

TEST(EndpointDbLookup, InquiryTypesAndVersionOptions) {
  EndpointDb db;
  const auto u = "12345778-1234-abcd-ef00-0123456789ac";
  // ids 1..5: v1.0 v1.1 v1.2 v2.0 (nil object), v1.1 with object O1; LSA v0.0.
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1]", iface(u, 1, 0), "a"),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[2]", iface(u, 1, 1), "b"),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[3]", iface(u, 1, 2), "c"),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[4]", iface(u, 2, 0), "d"),
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[5]", iface(u, 1, 1), "e"),
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[6]", kLsa00, "f")},
                      false, 1),
            0u);
  auto run = [&](std::uint32_t type, const common::Uuid& object, std::uint16_t maj,
                 std::uint16_t min, std::uint32_t vers) {
    LookupQuery q{type, object, {uuid(u), maj, min}, vers};
    std::string out;
    for (const Entry* e : db.lookup(q, 0, 100).entries)
      out += e->annotation;
    return out;
  };
  using namespace ndr::epm;
  for (std::uint32_t v = kRpcCVersAll; v <= kRpcCVersUpto; ++v) {
    // 0 all and 2 by object ignore the version option (DCE).
    EXPECT_EQ(run(kRpcCEpAllElts, {}, 1, 1, v), "abcdef") << v;
    EXPECT_EQ(run(kRpcCEpMatchByObj, kObj1, 1, 1, v), "ef") << v;
    EXPECT_EQ(run(kRpcCEpMatchByObj, {}, 1, 1, v), "abcd") << v;
  }
  // 1 by interface, query v1.1:
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 1, 1, kRpcCVersAll), "abcde");
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 1, 1, kRpcCVersCompatible), "bce");  // 1.x, x >= 1
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 1, 1, kRpcCVersExact), "be");
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 1, 1, kRpcCVersMajorOnly), "abce");
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 1, 1, kRpcCVersUpto), "abe");  // <= 1.1
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 2, 5, kRpcCVersUpto), "abcde");
  EXPECT_EQ(run(kRpcCEpMatchByIf, {}, 0, 9, kRpcCVersUpto), "");
  // 3 both (object O1), query v1.1:
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 1, kRpcCVersAll), "e");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 1, kRpcCVersCompatible), "e");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 1, kRpcCVersExact), "e");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 1, kRpcCVersMajorOnly), "e");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 1, kRpcCVersUpto), "e");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, kObj1, 1, 2, kRpcCVersExact), "");
  EXPECT_EQ(run(kRpcCEpMatchByBoth, {}, 1, 1, kRpcCVersExact), "b");
  EXPECT_TRUE(valid_vers_option(5));
  EXPECT_FALSE(valid_vers_option(0));
  EXPECT_FALSE(valid_vers_option(6));
  EXPECT_TRUE(valid_inquiry_type(3));
  EXPECT_FALSE(valid_inquiry_type(4));
}

// ---- registration ----

TEST(EndpointDbInsert, DuplicatesReplaceAndCaps) {
  EndpointDb db(DbLimits{.max_entries = 5, .max_entries_per_owner = 3});
  const auto a = entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10, "one");
  ASSERT_EQ(db.insert({a}, false, 1), 0u);
  auto a2 = a;
  a2.annotation = "two";
  ASSERT_EQ(db.insert({a2}, false, 2), 0u);  // exact duplicate: annotation + owner updated
  ASSERT_EQ(db.size(), 1u);
  EXPECT_EQ(db.entries().begin()->second.annotation, "two");
  EXPECT_EQ(db.count_for(2), 1u);

  // Without replace a new port is added; with replace the older endpoint of the same
  // object/interface/protseq/address goes.
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1001]", kSamr10)}, false, 2), 0u);
  EXPECT_EQ(db.size(), 2u);
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1002]", kSamr10, "new")}, true, 2), 0u);
  ASSERT_EQ(db.size(), 1u);
  EXPECT_EQ(binding_of(db.entries().begin()->second.tower_octets), "ncacn_ip_tcp:0.0.0.0[1002]");
  // Replace keeps other addresses, objects, interfaces and protseqs.
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:10.0.0.1[7]", kSamr10),
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[8]", kSamr10),
                       entry({}, "ncadg_ip_udp:0.0.0.0[9]", kSamr10)},
                      true, 3),
            0u);
  EXPECT_EQ(db.size(), 4u);
  // Replace by an older minor than a registered one fails (DCE), nothing changes.
  const auto samr11 = iface("12345778-1234-abcd-ef00-0123456789ac", 1, 1);
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1100]", samr11)}, true, 2), 0u);
  EXPECT_EQ(db.size(), 4u);  // replaced the v1.0 entry on 0.0.0.0
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[1200]", kSamr10)}, true, 2),
            st::kEptSInvalidEntry);
  EXPECT_EQ(db.size(), 4u);

  // Caps: owner 3 holds 3 (its cap): one more fails atomically; total cap 5.
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[2000]", kLsa00)}, false, 3),
            st::kEptSCantPerformOp);
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[2001]", kLsa00)}, false, 4), 0u);
  EXPECT_EQ(db.size(), 5u);
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[2002]", kLsa00)}, false, 5),
            st::kEptSCantPerformOp);
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[2003]", kLsa00),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[2004]", kLsa00)},
                      false, kPersistentOwner),
            st::kEptSCantPerformOp);
  EXPECT_EQ(db.size(), 5u);
  // An invalid entry later in the batch rejects the whole batch.
  EXPECT_EQ(db.remove_owner(4), 1u);
  EXPECT_EQ(
      db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[3000]", kLsa00), EptEntry{{}, std::nullopt, ""}},
                false, 6),
      st::kEptSInvalidEntry);
  EXPECT_EQ(db.size(), 4u);
}

TEST(EndpointDbInsert, EraseRemoveOwnerMgmtDelete) {
  EndpointDb db;
  const auto a = entry({}, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10);
  const auto b = entry(kObj1, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10);
  const auto c = entry({}, "ncacn_ip_tcp:0.0.0.0[1001]", kLsa00);
  ASSERT_EQ(db.insert({a, b}, false, 1), 0u);
  ASSERT_EQ(db.insert({c}, false, kPersistentOwner), 0u);
  // ept_delete: object + exact tower; not found => ept_s_not_registered.
  EXPECT_EQ(db.erase({entry(kObj2, "ncacn_ip_tcp:0.0.0.0[1000]", kSamr10)}),
            st::kEptSNotRegistered);
  EXPECT_EQ(db.erase({b}), 0u);
  EXPECT_EQ(db.erase({b}), st::kEptSNotRegistered);
  ASSERT_EQ(db.insert({b}, false, 1), 0u);
  // mgmt_delete: interface + address; object only when speced.
  EXPECT_EQ(db.mgmt_delete(true, kObj2, tower("ncacn_ip_tcp:0.0.0.0[1000]", kSamr10)),
            st::kEptSNotRegistered);
  EXPECT_EQ(db.mgmt_delete(false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[1001]", kSamr10)),
            st::kEptSNotRegistered);  // other port
  EXPECT_EQ(db.mgmt_delete(true, kObj1, tower("ncacn_ip_tcp:0.0.0.0[1000]", kSamr10)), 0u);
  EXPECT_EQ(db.size(), 2u);
  EXPECT_EQ(db.mgmt_delete(false, std::nullopt, std::nullopt), st::kEptSInvalidEntry);
  EXPECT_EQ(db.mgmt_delete(false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[1000]", kSamr10)), 0u);
  ASSERT_EQ(db.insert({a, b}, false, 1), 0u);
  EXPECT_EQ(db.remove_owner(1), 2u);
  EXPECT_EQ(db.remove_owner(kPersistentOwner), 0u);
  EXPECT_EQ(db.size(), 1u);
}

TEST(EndpointDbRender, HostFloorRule) {
  EndpointDb db;
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[49664]", kSamr10),
                       entry({}, "ncacn_ip_tcp:10.9.8.7[49665]", kSamr10)},
                      false, 1),
            0u);
  auto it = db.entries().begin();
  EXPECT_EQ(binding_of(render_tower(it->second, std::nullopt, {127, 0, 0, 1})),
            "ncacn_ip_tcp:127.0.0.1[49664]");
  EXPECT_EQ(binding_of(render_tower(it->second, std::nullopt, {0, 0, 0, 0})),
            "ncacn_ip_tcp:0.0.0.0[49664]");
  ++it;  // a specific registered address is kept
  EXPECT_EQ(binding_of(render_tower(it->second, std::nullopt, {127, 0, 0, 1})),
            "ncacn_ip_tcp:10.9.8.7[49665]");
}

}  // namespace
}  // namespace rpcgate::epm
