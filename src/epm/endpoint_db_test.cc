#include "epm/endpoint_db.h"

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "common/testing/testdata.h"
#include "epm/testing/test_util.h"
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

// Issue 11: towers of every protocol sequence are stored, listed and mapped on their own protseq;
// unknown protocol ids are kept as opaque floors; render_tower touches only IPv4 host floors.
TEST(EndpointDbMap, EveryProtseqInsertLookupMap) {
  const char* bindings_in[] = {"ncacn_ip_tcp:0.0.0.0[49664]", "ncadg_ip_udp:0.0.0.0[49665]",
                               "ncacn_http:0.0.0.0[593]",     "ncacn_np:\\\\HOST[\\PIPE\\samr]",
                               "ncalrpc:[LRPC-1234]",         "ncacn_unix_stream:[/run/samr.sock]"};
  // An unknown id (0x42, rhs 00000000) after the TCP floor, in place of the IPv4 floor.
  ndr::Tower odd = *ndr::decode_tower(tower("ncacn_ip_tcp:0.0.0.0[49666]", kSamr10));
  odd.floors[4] = ndr::Floor{{0x42}, {0, 0, 0, 0}};
  const auto odd_octets = ndr::encode_tower(odd);
  EndpointDb db;
  std::vector<EptEntry> wire;
  for (const char* b : bindings_in)
    wire.push_back(entry({}, b, kSamr10, b));
  wire.push_back(EptEntry{{}, odd_octets, "unknown"});
  ASSERT_EQ(db.insert(wire, false, Registrant{1, 1000}), 0u);
  // ept_lookup returns every one, towers as registered.
  auto all = db.lookup(LookupQuery{}, 0, 100);
  ASSERT_EQ(all.entries.size(), wire.size());
  for (std::size_t i = 0; i < wire.size(); ++i)
    EXPECT_EQ(all.entries[i]->tower_octets, *wire[i].tower) << i;
  // ept_map on each protseq finds exactly its own entry; the host floor of the request is
  // ignored, and only a 0.0.0.0 IPv4 floor is rewritten.
  const Ipv4 host{192, 0, 2, 7};
  const char* map_with[] = {"ncacn_ip_tcp:10.9.9.9[1]",
                            "ncadg_ip_udp:0.0.0.0[0]",
                            "ncacn_http:0.0.0.0[0]",
                            "ncacn_np:\\\\X[\\PIPE\\y]",
                            "ncalrpc:[z]",
                            "ncacn_unix_stream:[/q]"};
  const char* rendered[] = {"ncacn_ip_tcp:192.0.2.7[49664]", "ncadg_ip_udp:192.0.2.7[49665]",
                            "ncacn_http:192.0.2.7[593]",     "ncacn_np:\\\\HOST[\\PIPE\\samr]",
                            "ncalrpc:[LRPC-1234]",           "ncacn_unix_stream:[/run/samr.sock]"};
  for (std::size_t i = 0; i < std::size(map_with); ++i) {
    auto page = db.map(query({}, map_with[i], kSamr10), {}, 10);
    ASSERT_EQ(page.entries.size(), 1u) << map_with[i];
    EXPECT_EQ(page.entries[0]->annotation, bindings_in[i]);
    EXPECT_EQ(binding_of(render_tower(*page.entries[0], std::nullopt, host)), rendered[i]);
  }
  // The opaque tower: mapped by its own protseq {0x07, 0x42}, its 00000000 rhs left alone.
  auto q = parse_map_tower(odd_octets, std::nullopt);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->protseq, (std::vector<std::uint8_t>{0x07, 0x42}));
  auto page = db.map(*q, {}, 10);
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(render_tower(*page.entries[0], std::nullopt, host), odd_octets);
  // Each deletes by its exact tower.
  EXPECT_EQ(db.erase(wire, 1000), 0u);
  EXPECT_EQ(db.size(), 0u);
}

// smbtorture's Insert_noreplace: Samba builds `ncalrpc:[SMBTORTURE]` with the nil interface in
// floor 1 (the binding's object). Stored and deletable like Windows and Samba; never mapped.
TEST(EndpointDbMap, NilInterfaceRegistrationIsStoredButNotMapped) {
  // The ept_insert stub smbtorture 4.17 (Debian samba-testsuite) sends, captured with tshark.
  const auto stub =
      hex("01000000 01000000 00000000000000000000000000000000 01000000 00000000 14000000"
          "736d62746f727475726520656e64706f696e7400 4b000000 4b000000"
          "040013000d00000000000000000000000000000000000002000000"
          "13000d045d888aeb1cc9119fe808002b104860020002000000"
          "01000c02000000 0100100b00534d42544f525455524500 00 00000000");
  auto req = ndr::epm::decode_ept_insert_request(stub, common::Endian::kLittle);
  ASSERT_TRUE(req) << req.error().message();
  ASSERT_EQ(req->entries.size(), 1u);
  EXPECT_EQ(req->trailing_bytes, 0u);
  EXPECT_FALSE(req->replace);
  const auto t = *req->entries[0].tower;
  EXPECT_EQ(t, tower("ncalrpc:[SMBTORTURE]", SyntaxId{}));  // what binding_to_tower builds too
  EndpointDb db;
  ASSERT_EQ(db.insert({EptEntry{{}, t, "smbtorture endpoint"}}, false, Registrant{1, 0}), 0u);
  EXPECT_EQ(db.size(), 1u);
  EXPECT_EQ(parse_map_tower(t, std::nullopt).error(), st::kEptSInvalidEntry);
  EXPECT_EQ(db.mgmt_delete(false, std::nullopt, t, 0), 0u);
  ASSERT_EQ(db.insert({EptEntry{{}, t, ""}}, false, Registrant{1, 0}), 0u);
  EXPECT_EQ(db.erase({EptEntry{{}, t, ""}}, 0), 0u);
  EXPECT_EQ(db.size(), 0u);
  // A nil transfer syntax is still refused (DCE epdb_chk_entry).
  EXPECT_EQ(db.insert({EptEntry{{}, tower("ncalrpc:[x]", kSamr10, SyntaxId{}), ""}}, false, 1),
            st::kEptSInvalidEntry);
}

// Samba's towers (src/epm/testdata/samba_towers.txt, captured from smbtorture 4.17): each
// decodes, re-encodes byte-exact and reads as expected; every one with an interface is a valid
// ept_map tower, and registered, it is found by mapping it. The UDP one is Samba's own mix
// (ncacn 0x0b over UDP 0x08, not ncadg): kept as opaque floors, mapped on exactly that protseq.
TEST(EndpointDbMap, SambaTowers) {
  const auto records = common::testing::read_tab_records(std::string(RPCGATE_SOURCE_DIR) +
                                                         "/src/epm/testdata/samba_towers.txt");
  ASSERT_TRUE(records) << "missing testdata";
  EXPECT_EQ(records->size(), 7u);
  for (const auto& record : *records) {
    ASSERT_EQ(record.size(), 3u);
    const std::string& name = record[0];
    const std::string& reading = record[2];
    const auto octets = hex(record[1]);
    auto t = ndr::decode_tower(octets);
    ASSERT_TRUE(t) << name;
    EXPECT_EQ(ndr::encode_tower(*t), octets) << name;
    auto b = ndr::tower_to_binding(*t);
    EXPECT_EQ(b ? ndr::format_binding(*b) : ndr::describe_floors(*t), reading) << name;
    EndpointDb db;
    ASSERT_EQ(db.insert({EptEntry{{}, octets, name}}, false, Registrant{1, 0}), 0u) << name;
    auto q = parse_map_tower(octets, std::nullopt);
    if (name == "insert_ncalrpc_nil_interface") {
      EXPECT_FALSE(q) << name;
    } else {
      ASSERT_TRUE(q) << name;
      auto page = db.map(*q, {}, 10);
      ASSERT_EQ(page.entries.size(), 1u) << name;
      EXPECT_EQ(page.entries[0]->tower_octets, octets) << name;
    }
  }
}

TEST(EndpointDbMap, MalformedAndOversizedTowers) {
  // > 6 floors: the ept-map-request tower (docs/wire-vectors.md) with two extra floors.
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

// ---- ownership (issue 10 item 2) ----

constexpr std::uint64_t kNobody = 65534;
constexpr std::uint64_t kAlice = 1000;

Registrant as(std::uint64_t lease, std::uint64_t uid) {
  return Registrant{lease, uid};
}

// Every stored entry as (id, annotation, lease, authority, binding): equal before and after a
// refused call means nothing changed.
std::vector<std::tuple<std::uint64_t, std::string, std::uint64_t, std::uint64_t, std::string>>
snapshot(const EndpointDb& db) {
  std::vector<std::tuple<std::uint64_t, std::string, std::uint64_t, std::uint64_t, std::string>>
      out;
  for (const auto& [id, e] : db.entries())
    out.emplace_back(id, e.annotation, e.owner, e.authority, binding_of(e.tower_octets));
  return out;
}

TEST(EndpointDbOwnership, OnlyTheOwnerUidOrRootChangesAnEntry) {
  EndpointDb db;
  const auto root_entry = entry({}, "ncacn_ip_tcp:0.0.0.0[5000]", kSamr10, "root's");
  ASSERT_EQ(db.insert({root_entry}, true, as(1, kRootAuthority)), 0u);
  const auto before = snapshot(db);
  // The attack of issue 10: nobody deletes root's entry, or replaces it with its own port
  // (same interface, same address: DCE's replace rule), or rewrites it as an exact duplicate
  // (which would make nobody its owner), or removes it by ept_mgmt_delete.
  EXPECT_EQ(db.erase({root_entry}, kNobody), st::kEptSCantPerformOp);
  EXPECT_EQ(db.last_refusal(),
            (Refusal{Refusal::Reason::kForeignEntry, 0, kNobody, kRootAuthority}));
  EXPECT_EQ(
      db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[6666]", kSamr10, "evil")}, true, as(2, kNobody)),
      st::kEptSCantPerformOp);
  auto dup = root_entry;
  dup.annotation = "mine now";
  EXPECT_EQ(db.insert({dup}, false, as(2, kNobody)), st::kEptSCantPerformOp);
  EXPECT_EQ(db.insert({dup}, true, as(2, kNobody)), st::kEptSCantPerformOp);
  EXPECT_EQ(
      db.mgmt_delete(false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[5000]", kSamr10), kNobody),
      st::kEptSCantPerformOp);
  EXPECT_EQ(snapshot(db), before);
  // The same uid may, on another connection too (the uid is the authority, not the lease).
  ASSERT_EQ(
      db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[7000]", kLsa00, "alice")}, false, as(3, kAlice)),
      0u);
  EXPECT_EQ(
      db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[7001]", kLsa00, "alice 2")}, true, as(4, kAlice)),
      0u);
  EXPECT_EQ(db.count_for_authority(kAlice), 1u);
  EXPECT_EQ(db.count_for(4), 1u);  // the lease moved with the replace
  EXPECT_EQ(db.count_for(3), 0u);
  // Nobody without a registration of its own on the interface: still refused.
  EXPECT_EQ(db.erase({entry({}, "ncacn_ip_tcp:0.0.0.0[7001]", kLsa00)}, kNobody),
            st::kEptSCantPerformOp);
  // Root changes anybody's: an exact duplicate moves the entry to root, keeping its id.
  const auto alice_id = db.entries().rbegin()->first;
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[7001]", kLsa00, "root took it")}, false,
                      as(5, kRootAuthority)),
            0u);
  EXPECT_EQ(db.entries().at(alice_id).authority, kRootAuthority);
  EXPECT_EQ(db.entries().at(alice_id).owner, 5u);
  EXPECT_EQ(db.count_for_authority(kAlice), 0u);
  EXPECT_EQ(db.erase({entry({}, "ncacn_ip_tcp:0.0.0.0[7001]", kLsa00)}, kAlice),
            st::kEptSCantPerformOp);
  EXPECT_EQ(db.erase({entry({}, "ncacn_ip_tcp:0.0.0.0[7001]", kLsa00)}, kRootAuthority), 0u);
  EXPECT_EQ(db.erase({root_entry}, kRootAuthority), 0u);
  EXPECT_EQ(db.size(), 0u);
}

TEST(EndpointDbOwnership, EpmdsOwnEntriesAreChangedByNobodyOverTheWire) {
  EndpointDb db;
  const auto epm = entry({}, "ncacn_ip_tcp:0.0.0.0[135]", kSamr10, "rpcgate endpoint mapper");
  ASSERT_EQ(db.insert({epm}, true, kPersistentOwner), 0u);  // the daemon: kEpmdAuthority
  EXPECT_EQ(db.entries().begin()->second.authority, kEpmdAuthority);
  const auto before = snapshot(db);
  for (const std::uint64_t uid : {kRootAuthority, kNobody, kAlice}) {
    EXPECT_EQ(db.erase({epm}, uid), st::kEptSCantPerformOp) << uid;
    EXPECT_EQ(db.last_refusal()->reason, Refusal::Reason::kEpmdEntry);
    EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[6666]", kSamr10)}, true, as(9, uid)),
              st::kEptSCantPerformOp)
        << uid;
    EXPECT_EQ(db.insert({epm}, false, as(9, uid)), st::kEptSCantPerformOp) << uid;
    EXPECT_EQ(db.mgmt_delete(false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[135]", kSamr10), uid),
              st::kEptSCantPerformOp)
        << uid;
  }
  EXPECT_EQ(snapshot(db), before);
  EXPECT_EQ(to_string(*db.last_refusal()), "entry of epmd (caller uid 1000)");
  // The daemon itself may.
  EXPECT_EQ(db.erase({epm}), 0u);
}

TEST(EndpointDbOwnership, MultiEntryCalls) {
  EndpointDb db;
  const auto mine1 = entry({}, "ncacn_ip_tcp:0.0.0.0[1]", kSamr10);
  const auto mine2 = entry({}, "ncacn_ip_tcp:0.0.0.0[2]", kSamr10);
  const auto theirs = entry({}, "ncacn_ip_tcp:0.0.0.0[3]", kLsa00);
  ASSERT_EQ(db.insert({mine1, mine2}, false, as(1, kNobody)), 0u);
  ASSERT_EQ(db.insert({theirs}, false, as(2, kAlice)), 0u);
  // ept_delete stops at the first entry it may not delete; the earlier ones stay deleted (DCE's
  // rule for a missing entry), the later ones stay.
  EXPECT_EQ(db.erase({mine1, theirs, mine2}, kNobody), st::kEptSCantPerformOp);
  EXPECT_EQ(db.size(), 2u);
  EXPECT_EQ(db.count_for_authority(kNobody), 1u);
  EXPECT_EQ(db.count_for_authority(kAlice), 1u);
  // ept_insert is all or nothing: a call that replaces its own entries, adds one back, adds one
  // under another object and then would replace a foreign one is undone entirely (ids, leases,
  // authorities, annotations).
  ASSERT_EQ(db.insert({mine1}, false, as(1, kNobody)), 0u);
  const auto before = snapshot(db);
  auto mine2_again = mine2;
  mine2_again.annotation = "rewritten";
  EXPECT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[4]", kSamr10), mine2_again,
                       entry(kObj1, "ncacn_ip_tcp:0.0.0.0[5]", kSamr10),
                       entry({}, "ncacn_ip_tcp:0.0.0.0[6]", kLsa00)},
                      true, as(7, kNobody)),
            st::kEptSCantPerformOp);
  EXPECT_EQ(snapshot(db), before);
  EXPECT_EQ(db.count_for(7), 0u);
  EXPECT_EQ(db.count_for(1), 2u);
  // The indexes were restored too: each entry is still found and removable.
  EXPECT_EQ(db.erase({mine1, mine2}, kNobody), 0u);
  EXPECT_EQ(db.erase({theirs}, kAlice), 0u);
  EXPECT_EQ(db.size(), 0u);
  // ept_mgmt_delete: all or nothing when one match is foreign (here: same interface and
  // endpoint, two objects, two owners).
  ASSERT_EQ(db.insert({entry({}, "ncacn_ip_tcp:0.0.0.0[8]", kSamr10)}, false, as(1, kNobody)), 0u);
  ASSERT_EQ(db.insert({entry(kObj1, "ncacn_ip_tcp:0.0.0.0[8]", kSamr10)}, false, as(2, kAlice)),
            0u);
  EXPECT_EQ(db.mgmt_delete(false, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[8]", kSamr10), kNobody),
            st::kEptSCantPerformOp);
  EXPECT_EQ(db.size(), 2u);
  EXPECT_EQ(db.mgmt_delete(true, std::nullopt, tower("ncacn_ip_tcp:0.0.0.0[8]", kSamr10), kNobody),
            0u);
  EXPECT_EQ(db.size(), 1u);
}

TEST(EndpointDbQuota, PerUidAndRootReserve) {
  // Non-root may use 16 of 20; each uid 5.
  EndpointDb db(DbLimits{.max_entries = 20,
                         .max_entries_per_owner = 100,
                         .max_entries_per_uid = 5,
                         .root_reserve = 4});
  auto port = [n = 0]() mutable {
    return entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(10000 + n++) + "]", kSamr10);
  };
  // Per uid over all its connections.
  ASSERT_EQ(db.insert({port(), port(), port()}, false, as(1, kNobody)), 0u);
  ASSERT_EQ(db.insert({port(), port()}, false, as(2, kNobody)), 0u);
  EXPECT_EQ(db.insert({port()}, false, as(3, kNobody)), st::kEptSCantPerformOp);
  EXPECT_EQ(db.last_refusal(), (Refusal{Refusal::Reason::kPerUid, 5, kNobody, 0}));
  EXPECT_EQ(to_string(*db.last_refusal()), "max_entries_per_uid 5 (uid 65534)");
  // A call bigger than the cap is refused before any work.
  std::vector<EptEntry> six;
  for (int i = 0; i < 6; ++i)
    six.push_back(port());
  const auto work = db.work();
  EXPECT_EQ(db.insert(six, false, as(9, 4242)), st::kEptSCantPerformOp);
  EXPECT_EQ(db.work(), work);
  // Unprivileged users together reach max_entries - root_reserve, not max_entries.
  for (std::uint64_t uid = 2000; db.size() < 16; ++uid) {
    std::vector<EptEntry> batch;
    for (std::size_t i = 0; i < std::min<std::size_t>(5, 16 - db.size()); ++i)
      batch.push_back(port());
    ASSERT_EQ(db.insert(batch, false, as(uid, uid)), 0u);
  }
  EXPECT_EQ(db.insert({port()}, false, as(50, 3000)), st::kEptSCantPerformOp);
  EXPECT_EQ(db.last_refusal(), (Refusal{Refusal::Reason::kRootReserve, 16, 3000, 0}));
  // Root's next registration succeeds (the issue: nobody filled the map and root's failed),
  // and root is not held to max_entries_per_uid.
  ASSERT_EQ(db.insert({port(), port(), port(), port()}, false, as(60, kRootAuthority)), 0u);
  EXPECT_EQ(db.size(), 20u);
  EXPECT_EQ(db.insert({port()}, false, as(60, kRootAuthority)), st::kEptSCantPerformOp);
  EXPECT_EQ(db.last_refusal(), (Refusal{Refusal::Reason::kMaxEntries, 20, 0, 0}));
  EXPECT_EQ(db.remove_owner(60), 4u);
  EXPECT_EQ(db.size(), 16u);
}

// ---- cost (issue 10 item 4): linear in the entries given, not in the map ----

TEST(EndpointDbCost, InsertReplaceDeleteAreLinear) {
  constexpr std::size_t kN = 4096;
  DbLimits limits{.max_entries = kN + 1, .max_entries_per_owner = kN, .max_entries_per_uid = kN};
  auto ports = [](std::size_t n, std::uint16_t base, const SyntaxId& i) {
    std::vector<EptEntry> v;
    for (std::size_t k = 0; k < n; ++k)
      v.push_back(entry({}, "ncacn_ip_tcp:0.0.0.0[" + std::to_string(base + k) + "]", i));
    return v;
  };
  const auto many = ports(kN, 10000, kSamr10);
  // One entry per call (the 4096 ept_insert calls), new entries of one interface.
  EndpointDb db(limits);
  for (const auto& e : many)
    ASSERT_EQ(db.insert({e}, false, as(1, kRootAuthority)), 0u);
  EXPECT_EQ(db.size(), kN);
  EXPECT_LE(db.work(), 2 * kN);  // was kN * kN / 2 comparisons plus a copy of the map per call
  // Exact duplicates, one per call: found by index.
  auto w = db.work();
  for (const auto& e : many)
    ASSERT_EQ(db.insert({e}, false, as(1, kRootAuthority)), 0u);
  EXPECT_LE(db.work() - w, 3 * kN);
  // ept_delete one by one.
  w = db.work();
  for (const auto& e : many)
    ASSERT_EQ(db.erase({e}, kRootAuthority), 0u);
  EXPECT_LE(db.work() - w, 2 * kN);
  // Replace: each entry replaces the previous one (same interface and address).
  EndpointDb r(limits);
  for (const auto& e : many)
    ASSERT_EQ(r.insert({e}, true, as(1, kRootAuthority)), 0u);
  EXPECT_EQ(r.size(), 1u);
  EXPECT_LE(r.work(), 4 * kN);
  // The same as one call of 4096, and a connection close removing them all.
  EndpointDb one(limits);
  ASSERT_EQ(one.insert(ports(kN, 20000, kLsa00), false, as(1, kRootAuthority)), 0u);
  EXPECT_LE(one.work(), 2 * kN);
  w = one.work();
  EXPECT_EQ(one.remove_owner(1), kN);
  EXPECT_LE(one.work() - w, 2 * kN);
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
