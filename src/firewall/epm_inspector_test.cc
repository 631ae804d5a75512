#include "firewall/epm_inspector.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::firewall {
namespace {

using Bytes = std::vector<std::uint8_t>;
using rpc::Direction;
using Kind = Action::Kind;

const rpc::TimePoint kT0{std::chrono::seconds(1000)};
const rpc::SyntaxId kWinreg{*common::Uuid::parse("338cd001-2244-31f1-aaaa-900038001003"), 1, 0};
const rpc::SyntaxId kSvcctl{*common::Uuid::parse("367abb81-9844-35f1-ad32-98f038001003"), 2, 0};
const Address kClient = ipv4(10, 0, 0, 7);
const Address kServer = ipv4(10, 0, 1, 5);

Bytes tower(const rpc::SyntaxId& iface, std::string host, std::string port) {
  ndr::StringBinding b;
  b.network_addr = std::move(host);
  b.endpoint = std::move(port);
  return ndr::encode_tower(*ndr::binding_to_tower(b, iface));
}

Bytes bind(const rpc::SyntaxId& iface) {
  rpc::Bind b;
  b.max_xmit_frag = b.max_recv_frag = 5840;
  b.contexts.push_back(rpc::ContextElement{0, iface, {rpc::kNdr20Syntax}});
  return *rpc::encode_pdu(rpc::make_pdu(std::move(b), 1));
}

// The bind_ack a real server (the engine's server role) gives the client's bind.
Bytes bind_ack(const Bytes& bind_pdu) {
  rpc::ConnectionHandler none;
  rpc::ServerConfig config;
  config.interfaces = rpc::make_interface_lookup({rpc::kEpmSyntax, kSvcctl});
  rpc::Connection server(rpc::ServerRole{config}, {}, none, kT0);
  server.feed(Direction::kClientToServer, bind_pdu, kT0);
  const auto out = server.next_output();
  return Bytes(out.bytes.begin(), out.bytes.end());
}

Bytes request(std::uint32_t call_id, std::uint16_t opnum, Bytes stub,
              std::uint8_t flags = rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag) {
  rpc::Request q;
  q.opnum = opnum;
  q.stub = std::move(stub);
  return *rpc::encode_pdu(rpc::make_pdu(std::move(q), call_id, flags));
}

Bytes map_request(std::uint32_t call_id, const rpc::SyntaxId& iface) {
  ndr::epm::EptMapRequest q;
  q.object = common::Uuid{};
  q.map_tower = tower(iface, "", "");
  q.max_towers = 4;
  return request(call_id, ndr::epm::kOpnumEptMap, ndr::epm::encode(q, common::Endian::kLittle));
}

Bytes map_response(std::uint32_t call_id, std::vector<std::optional<Bytes>> towers) {
  ndr::epm::EptMapResponse r;
  r.max_count = 4;
  r.towers = std::move(towers);
  rpc::Response resp;
  resp.stub = ndr::epm::encode(r, common::Endian::kLittle);
  return *rpc::encode_pdu(rpc::make_pdu(std::move(resp), call_id));
}

// One rule: clients may reach winreg on any server, with 2-minute pinholes.
RuleSet allow_winreg(bool dcom = false) {
  FirewallConfig c;
  c.dcom = dcom;
  Rule r;
  r.name = "winreg-rule";
  r.interfaces.push_back(*parse_interface("winreg"));
  r.pinhole_timeout = std::chrono::seconds(120);
  c.rules.push_back(std::move(r));
  return RuleSet(std::move(c));
}
const RuleSet kRules = allow_winreg();

std::vector<Kind> kinds(const std::vector<Action>& actions) {
  std::vector<Kind> k;
  for (const auto& a : actions)
    k.push_back(a.kind);
  return k;
}

struct EpmInspectorBound : ::testing::Test {
  EpmInspector fw{kClient, kServer, kRules, kT0};
  void SetUp() override {
    const Bytes b = bind(rpc::kEpmSyntax);
    ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer, b, kT0)),
              std::vector<Kind>{Kind::kForward});
    ASSERT_EQ(kinds(fw.feed(Direction::kServerToClient, bind_ack(b), kT0)),
              std::vector<Kind>{Kind::kForward});
  }
};

TEST_F(EpmInspectorBound, AnAllowedEptMapOpensItsPinholeBeforeTheAnswerIsReleased) {
  const Bytes q = map_request(2, kWinreg);
  auto a = fw.feed(Direction::kClientToServer, q, kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kForward});
  EXPECT_EQ(a[0].bytes, q);
  const Bytes r = map_response(2, {tower(kWinreg, "10.0.1.5", "49664"),
                                   tower(kWinreg, "10.0.9.9", "49665")});  // a referral: no
  a = fw.feed(Direction::kServerToClient, r, kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[0].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kServer, 49664}}));
  EXPECT_EQ(a[0].interface, kWinreg);
  EXPECT_EQ(a[0].rule, "winreg-rule");
  EXPECT_EQ(a[0].timeout, std::chrono::seconds(120));
  EXPECT_EQ(a[1].bytes, r);
  EXPECT_EQ(a[1].direction, Direction::kServerToClient);
}

TEST_F(EpmInspectorBound, AnInterfaceNotAllowedIsAnsweredNotRegisteredByTheFirewall) {
  // Not forwarded: the inspector answers the client itself, fail-fast, and opens nothing.
  auto a = fw.feed(Direction::kClientToServer, map_request(2, kSvcctl), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kAnswer});
  EXPECT_EQ(a[0].direction, Direction::kServerToClient);
  EXPECT_EQ(a[0].drop, DropReason::kMapNotAllowed);
  EXPECT_EQ(a[0].interface, kSvcctl);
  auto pdu = rpc::decode_pdu(a[0].bytes);
  ASSERT_TRUE(pdu);
  EXPECT_EQ(pdu->header.call_id, 2u);
  const auto* resp = std::get_if<rpc::Response>(&pdu->body);
  ASSERT_NE(resp, nullptr);
  auto answer = ndr::epm::decode_ept_map_response(resp->stub, common::Endian::kLittle);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, ndr::epm::kEptSNotRegistered);
  EXPECT_TRUE(answer->towers.empty());
  EXPECT_EQ(answer->max_count, 4u);
  // The connection goes on: an allowed map on it still opens its pinhole.
  fw.feed(Direction::kClientToServer, map_request(3, kWinreg), kT0);
  a = fw.feed(Direction::kServerToClient, map_response(3, {tower(kWinreg, "10.0.1.5", "49664")}),
              kT0);
  EXPECT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kForward}));
}

TEST(EpmInspector, ASealedEptMapIsReportedAsSuchAndOpensNothing) {
  // An authenticated endpoint mapper at packet privacy (NTLM): the request stub is ciphertext.
  rpc::AuthTrailer t;
  t.auth_type = 10;
  t.auth_level = 6;
  t.auth_value = Bytes(16, 1);
  EpmInspector fw{kClient, kServer, kRules, kT0};
  const Bytes plain = bind(rpc::kEpmSyntax);
  auto b = *rpc::decode_pdu(plain);
  b.auth = t;
  auto ack = *rpc::decode_pdu(bind_ack(plain));
  ack.auth = t;
  ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer, *rpc::encode_pdu(b), kT0)),
            std::vector<Kind>{Kind::kForward});
  ASSERT_EQ(kinds(fw.feed(Direction::kServerToClient, *rpc::encode_pdu(ack), kT0)),
            std::vector<Kind>{Kind::kForward});
  rpc::Request q;
  q.opnum = ndr::epm::kOpnumEptMap;
  q.stub = Bytes(64, 0xA5);
  auto pdu = rpc::make_pdu(std::move(q), 2);
  pdu.auth = t;
  const auto a = fw.feed(Direction::kClientToServer, *rpc::encode_pdu(pdu), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmSealed) << a[0].error.message();
  EXPECT_EQ(to_string(DropReason::kEpmSealed), "epm-sealed");
}

TEST_F(EpmInspectorBound, RegistrationFromTheNetworkIsDropped) {
  for (const std::uint16_t opnum :
       {ndr::epm::kOpnumEptInsert, ndr::epm::kOpnumEptDelete, ndr::epm::kOpnumEptMgmtDelete}) {
    EpmInspector f{kClient, kServer, kRules, kT0};
    const Bytes b = bind(rpc::kEpmSyntax);
    f.feed(Direction::kClientToServer, b, kT0);
    f.feed(Direction::kServerToClient, bind_ack(b), kT0);
    const auto a = f.feed(Direction::kClientToServer, request(2, opnum, Bytes(16, 0)), kT0);
    ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop}) << opnum;
    EXPECT_EQ(a[0].drop, DropReason::kEpmRegistration);
    EXPECT_EQ(a[0].opnum, opnum);
    EXPECT_TRUE(f.dropped());
    EXPECT_TRUE(f.feed(Direction::kClientToServer, map_request(3, kWinreg), kT0).empty());
  }
}

TEST_F(EpmInspectorBound, PendingEptMapsAreBoundedPerConnection) {
  for (std::uint32_t id = 2; id < 2 + kMaxPendingMaps; ++id)
    ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer, map_request(id, kWinreg), kT0)),
              std::vector<Kind>{Kind::kForward})
        << id;
  const auto a =
      fw.feed(Direction::kClientToServer, map_request(2 + kMaxPendingMaps, kWinreg), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmTooManyMaps);
}

TEST_F(EpmInspectorBound, AFragmentedEptMapIsDropped) {
  const auto a =
      fw.feed(Direction::kClientToServer,
              request(2, ndr::epm::kOpnumEptMap, Bytes(16, 0), rpc::pfc::kFirstFrag), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmFragmentedMap);
}

TEST_F(EpmInspectorBound, AnUndecodableMapAnswerIsDroppedNotGuessed) {
  fw.feed(Direction::kClientToServer, map_request(2, kWinreg), kT0);
  rpc::Response resp;
  resp.stub = Bytes(7, 0xee);
  const auto a =
      fw.feed(Direction::kServerToClient, *rpc::encode_pdu(rpc::make_pdu(std::move(resp), 2)), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmBadMap);
}

TEST(EpmInspector, OnlyTheEndpointMapperMayBeBoundOnItsPort) {
  EpmInspector fw{kClient, kServer, kRules, kT0};
  const auto a = fw.feed(Direction::kClientToServer, bind(kSvcctl), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmOtherInterface);
  EXPECT_EQ(a[0].interface, kSvcctl);
}

// DCOM activation on 135 only in DCOM mode, and nothing else even then.
TEST(EpmInspector, DcomModeLetsTheActivatorAndOxidResolverBind) {
  const rpc::SyntaxId activator{*common::Uuid::parse("000001a0-0000-0000-c000-000000000046"), 0, 0};
  const rpc::SyntaxId oxid{*common::Uuid::parse("99fcfec4-5260-101b-bbcb-00aa0021347a"), 0, 0};
  const RuleSet dcom = allow_winreg(true);
  for (const auto& iface : {activator, oxid}) {
    EpmInspector off{kClient, kServer, kRules, kT0};
    auto a = off.feed(Direction::kClientToServer, bind(iface), kT0);
    ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
    EXPECT_EQ(a[0].drop, DropReason::kEpmOtherInterface);
    EpmInspector on{kClient, kServer, dcom, kT0};
    EXPECT_EQ(kinds(on.feed(Direction::kClientToServer, bind(iface), kT0)),
              std::vector<Kind>{Kind::kForward});
  }
  EpmInspector on{kClient, kServer, dcom, kT0};
  EXPECT_EQ(kinds(on.feed(Direction::kClientToServer, bind(kSvcctl), kT0)),
            std::vector<Kind>{Kind::kDrop});
}

TEST(EpmInspector, TheEngineDeadlinesDropWithTimeout) {
  rpc::ConnectionOptions options;
  options.idle_before_bind = std::chrono::milliseconds(5000);
  EpmInspector fw{kClient, kServer, kRules, kT0, {}, options};
  ASSERT_EQ(fw.next_expiry(), kT0 + std::chrono::seconds(5));
  EXPECT_TRUE(fw.on_expiry(kT0 + std::chrono::seconds(4)).empty());
  EXPECT_FALSE(fw.dropped());
  const auto a = fw.on_expiry(kT0 + std::chrono::seconds(5));
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kTimeout);
  EXPECT_TRUE(fw.dropped());
  EXPECT_EQ(fw.next_expiry(), std::nullopt);
  EXPECT_TRUE(fw.on_expiry(kT0 + std::chrono::seconds(9)).empty());
  EXPECT_TRUE(fw.feed(Direction::kClientToServer, bind(rpc::kEpmSyntax), kT0).empty());
}

TEST(EpmInspector, AHalfPduDropsAtThePduDeadline) {
  rpc::ConnectionOptions options;
  options.pdu = std::chrono::milliseconds(2000);
  EpmInspector fw{kClient, kServer, kRules, kT0, {}, options};
  const Bytes b = bind(rpc::kEpmSyntax);
  EXPECT_TRUE(fw.feed(Direction::kClientToServer, std::span(b).first(10), kT0).empty());
  ASSERT_EQ(fw.next_expiry(), kT0 + std::chrono::seconds(2));
  const auto a = fw.on_expiry(kT0 + std::chrono::seconds(2));
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kTimeout);
}

TEST(DropReason, CodesAreDistinctKebabCase) {
  std::set<std::string_view> codes;
  for (int i = 0; i <= static_cast<int>(DropReason::kTimeout); ++i) {
    const auto r = static_cast<DropReason>(i);
    const auto code = to_string(r);
    EXPECT_TRUE(codes.insert(code).second) << code;
    EXPECT_TRUE(std::ranges::all_of(code, [](char c) {
      return (c >= 'a' && c <= 'z') || c == '-';
    })) << code;
    EXPECT_TRUE(describe(r).ends_with(".")) << code;
  }
  EXPECT_EQ(to_string(DropReason::kInterfaceNotAllowed), "interface-not-allowed");
}

TEST(EpmInspector, BytesThatAreNotDceRpcAreDroppedAtOnce) {
  EpmInspector fw{kClient, kServer, kRules, kT0};
  const std::string http = "GET / HTTP/1.1\r\n\r\n";
  const auto a =
      fw.feed(Direction::kClientToServer,
              std::span(reinterpret_cast<const std::uint8_t*>(http.data()), http.size()), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kProtocol);
}

TEST_F(EpmInspectorBound, APduSplitAnywhereGivesTheSameActions) {
  const Bytes q = map_request(2, kWinreg);
  const Bytes r = map_response(2, {tower(kWinreg, "0.0.0.0", "49664")});
  for (std::size_t cut = 1; cut < r.size(); ++cut) {
    EpmInspector f{kClient, kServer, kRules, kT0};
    const Bytes b = bind(rpc::kEpmSyntax);
    f.feed(Direction::kClientToServer, b, kT0);
    f.feed(Direction::kServerToClient, bind_ack(b), kT0);
    f.feed(Direction::kClientToServer, q, kT0);
    auto a = f.feed(Direction::kServerToClient, std::span(r).first(cut), kT0);
    EXPECT_TRUE(a.empty()) << cut;
    a = f.feed(Direction::kServerToClient, std::span(r).subspan(cut), kT0);
    ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kForward})) << cut;
  }
}

// ---- ept_lookup pinholes ---------------------------------------------------------------------

Bytes lookup_request(std::uint32_t call_id) {
  ndr::epm::EptLookupRequest q;
  q.max_ents = 500;
  return request(call_id, ndr::epm::kOpnumEptLookup, ndr::epm::encode(q, common::Endian::kLittle));
}

Bytes lookup_response(std::uint32_t call_id, std::vector<std::optional<Bytes>> towers,
                      std::uint8_t flags = rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag) {
  ndr::epm::EptLookupResponse r;
  for (auto& t : towers)
    r.entries.push_back(ndr::epm::EptEntry{common::Uuid{}, std::move(t), "entry"});
  rpc::Response resp;
  resp.stub = ndr::epm::encode(r, common::Endian::kLittle);
  return *rpc::encode_pdu(rpc::make_pdu(std::move(resp), call_id, flags));
}

const rpc::SyntaxId kSpoolss{*common::Uuid::parse("12345678-1234-abcd-ef00-0123456789ab"), 1, 0};

// winreg (2-minute pinholes) and spoolss (the default timeout), with or without lookup
// pinholes and their own timeout.
RuleSet lookup_rules(bool on, std::optional<std::chrono::seconds> lookup_timeout = std::nullopt,
                     std::size_t max_towers = 16) {
  FirewallConfig c;
  c.lookup_pinholes = on;
  c.lookup_pinhole_timeout = lookup_timeout;
  c.max_towers = max_towers;
  c.pinhole_timeout = std::chrono::seconds(60);
  for (const char* name : {"winreg", "spoolss"}) {
    Rule r;
    r.name = std::string(name) + "-rule";
    r.interfaces.push_back(*parse_interface(name));
    if (std::string_view(name) == "winreg") r.pinhole_timeout = std::chrono::seconds(120);
    c.rules.push_back(std::move(r));
  }
  return RuleSet(std::move(c));
}

void bind_epm(EpmInspector& f) {
  const Bytes b = bind(rpc::kEpmSyntax);
  ASSERT_EQ(kinds(f.feed(Direction::kClientToServer, b, kT0)), std::vector<Kind>{Kind::kForward});
  ASSERT_EQ(kinds(f.feed(Direction::kServerToClient, bind_ack(b), kT0)),
            std::vector<Kind>{Kind::kForward});
}

std::vector<std::optional<Bytes>> lookup_towers() {
  return {tower(kWinreg, "10.0.1.5", "49664"),
          tower(kSvcctl, "10.0.1.5", "49665"),  // svcctl: no
          tower(kSpoolss, "0.0.0.0", "49666"),
          tower(kWinreg, "10.0.9.9", "49667"),  // referral
          std::nullopt,
          Bytes{1, 0, 0x13},  // skipped
          tower(kWinreg, "10.0.1.5", "49668")};
}

TEST(EpmInspectorLookup, OffAnEptLookupPassesAndOpensNothing) {
  const RuleSet rules = lookup_rules(false);
  EpmInspector fw{kClient, kServer, rules, kT0};
  bind_epm(fw);
  EXPECT_EQ(kinds(fw.feed(Direction::kClientToServer, lookup_request(2), kT0)),
            std::vector<Kind>{Kind::kForward});
  const Bytes r = lookup_response(2, lookup_towers());
  const auto a = fw.feed(Direction::kServerToClient, r, kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kForward});
  EXPECT_EQ(a[0].bytes, r);
}

TEST(EpmInspectorLookup, OnEachAllowedEntryOpensForItsInterfaceBeforeTheAnswer) {
  for (const auto timeout : {std::optional<std::chrono::seconds>{},
                             std::optional<std::chrono::seconds>{std::chrono::seconds(300)}}) {
    const RuleSet rules = lookup_rules(true, timeout);
    EpmInspector fw{kClient, kServer, rules, kT0};
    bind_epm(fw);
    EXPECT_EQ(kinds(fw.feed(Direction::kClientToServer, lookup_request(2), kT0)),
              std::vector<Kind>{Kind::kForward});
    const Bytes r = lookup_response(2, lookup_towers());
    const auto a = fw.feed(Direction::kServerToClient, r, kT0);
    ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kOpen, Kind::kForward}));
    EXPECT_EQ(a[0].interface, kWinreg);
    EXPECT_TRUE(a[0].lookup);
    EXPECT_EQ(a[0].rule, "winreg-rule");
    EXPECT_EQ(a[0].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kServer, 49664},
                                                      PinholeKey{kClient, kServer, 49668}}));
    EXPECT_EQ(a[0].timeout, timeout.value_or(std::chrono::seconds(120)));
    EXPECT_EQ(a[1].interface, kSpoolss);
    EXPECT_EQ(a[1].rule, "spoolss-rule");
    EXPECT_EQ(a[1].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kServer, 49666}}));
    EXPECT_EQ(a[1].timeout, timeout.value_or(std::chrono::seconds(60)));
    EXPECT_EQ(a[2].bytes, r);  // not rewritten (no NAT)
  }
}

TEST(EpmInspectorLookup, EntriesBeyondMaxTowersOpenNothing) {
  const RuleSet rules = lookup_rules(true, std::nullopt, 1);
  EpmInspector fw{kClient, kServer, rules, kT0};
  bind_epm(fw);
  fw.feed(Direction::kClientToServer, lookup_request(2), kT0);
  const auto a = fw.feed(Direction::kServerToClient, lookup_response(2, lookup_towers()), kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[0].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kServer, 49664}}));
}

TEST(EpmInspectorLookup, AFragmentedAnswerPassesAndOpensNothingSaidAsSuch) {
  const RuleSet rules = lookup_rules(true);
  EpmInspector fw{kClient, kServer, rules, kT0};
  bind_epm(fw);
  fw.feed(Direction::kClientToServer, lookup_request(2), kT0);
  const Bytes first = lookup_response(2, lookup_towers(), rpc::pfc::kFirstFrag);
  auto a = fw.feed(Direction::kServerToClient, first, kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kNote, Kind::kForward}));
  EXPECT_EQ(a[0].note_reason, "lookup-fragmented");
  EXPECT_EQ(a[1].bytes, first);
}

TEST(EpmInspectorLookup, RequestsAreRememberedLikeMapsAndBoundedWithThem) {
  const RuleSet rules = lookup_rules(true);
  EpmInspector fw{kClient, kServer, rules, kT0};
  bind_epm(fw);
  for (std::uint32_t id = 2; id < 2 + kMaxPendingMaps; ++id)
    ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer,
                            id % 2 ? lookup_request(id) : map_request(id, kWinreg), kT0)),
              std::vector<Kind>{Kind::kForward})
        << id;
  auto a = fw.feed(Direction::kClientToServer, lookup_request(2 + kMaxPendingMaps), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmTooManyMaps);
  // A fragmented or undecodable lookup request is dropped as an ept_map one is.
  for (const auto& [q, reason] :
       {std::pair{request(2, ndr::epm::kOpnumEptLookup, Bytes(16, 0), rpc::pfc::kFirstFrag),
                  DropReason::kEpmFragmentedMap},
        std::pair{request(2, ndr::epm::kOpnumEptLookup, Bytes(7, 0)), DropReason::kEpmBadMap}}) {
    EpmInspector f{kClient, kServer, rules, kT0};
    bind_epm(f);
    a = f.feed(Direction::kClientToServer, q, kT0);
    ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
    EXPECT_EQ(a[0].drop, reason);
  }
  // An answer that does not decode is dropped, never guessed at.
  EpmInspector f{kClient, kServer, rules, kT0};
  bind_epm(f);
  f.feed(Direction::kClientToServer, lookup_request(2), kT0);
  rpc::Response resp;
  resp.stub = Bytes(9, 0xee);
  a = f.feed(Direction::kServerToClient, *rpc::encode_pdu(rpc::make_pdu(std::move(resp), 2)), kT0);
  ASSERT_EQ(kinds(a), std::vector<Kind>{Kind::kDrop});
  EXPECT_EQ(a[0].drop, DropReason::kEpmBadMap);
}

// ---- referrals ---------------------------------------------------------------------------------

const Address kThird = ipv4(10, 0, 2, 9);  // the referred host

// winreg with referrals; `servers`: the [firewall] servers ("any" when empty); `rule_servers`:
// the rule's own.
RuleSet referral_rules(bool referrals, std::vector<std::string> servers,
                       std::vector<std::string> rule_servers = {}) {
  FirewallConfig c;
  for (const auto& s : servers)
    c.servers.push_back(*parse_cidr(s));
  Rule r;
  r.name = "winreg-referrals";
  r.referrals = referrals;
  r.interfaces.push_back(*parse_interface("winreg"));
  for (const auto& s : rule_servers)
    r.servers.push_back(*parse_cidr(s));
  c.rules.push_back(std::move(r));
  return RuleSet(std::move(c));
}

std::vector<Action> map_exchange(const RuleSet& rules, const Bytes& response,
                                 const Address& server = kServer) {
  EpmInspector fw{kClient, server, rules, kT0};
  bind_epm(fw);
  EXPECT_EQ(kinds(fw.feed(Direction::kClientToServer, map_request(2, kWinreg), kT0)),
            std::vector<Kind>{Kind::kForward});
  return fw.feed(Direction::kServerToClient, response, kT0);
}

TEST(EpmInspectorReferral, OpensToTheReferredHostWhenAllThreeConditionsHold) {
  const RuleSet rules = referral_rules(true, {"10.0.0.0/16"}, {"10.0.1.0/24", "10.0.2.0/24"});
  const auto a = map_exchange(rules, map_response(2, {tower(kWinreg, "10.0.2.9", "49700"),
                                                      tower(kWinreg, "10.0.1.5", "49701")}));
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[0].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kThird, 49700},
                                                    PinholeKey{kClient, kServer, 49701}}));
  EXPECT_EQ(a[0].rule, "winreg-referrals");
}

TEST(EpmInspectorReferral, EachMissingConditionOpensNothingAndSaysWhy) {
  const Bytes r = map_response(2, {tower(kWinreg, "10.0.2.9", "49700")});
  // (a) the rule does not ask for referrals: nothing, and nothing said (the default).
  auto a = map_exchange(referral_rules(false, {"10.0.0.0/16"}), r);
  EXPECT_EQ(kinds(a), std::vector<Kind>{Kind::kForward});
  struct Case {
    RuleSet rules;
    std::string_view reason;
    bool warning;
  };
  const Case cases[] = {
      // (b) "any servers": never, and a warning.
      {referral_rules(true, {}), "referral-any-servers", true},
      // (b) outside the [firewall] servers.
      {referral_rules(true, {"10.0.1.0/24"}), "referral-outside-servers", false},
      // (c) inside them, but the rule does not apply to the referred host.
      {referral_rules(true, {"10.0.0.0/16"}, {"10.0.1.0/24"}), "referral-rule-mismatch", false},
  };
  for (const auto& c : cases) {
    a = map_exchange(c.rules, r);
    ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kNote, Kind::kForward})) << c.reason;
    EXPECT_EQ(a[0].note_event, "tower");
    EXPECT_EQ(a[0].note_reason, c.reason);
    EXPECT_EQ(a[0].warning, c.warning);
    EXPECT_EQ(a[0].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kThird, 49700}}));
    EXPECT_NE(a[0].message.find("10.0.2.9"), std::string::npos) << a[0].message;
  }
}

// ---- static NAT ------------------------------------------------------------------------------

const Address kPublic = ipv4(203, 0, 113, 10);

RuleSet nat_rules() {
  FirewallConfig c;
  c.lookup_pinholes = true;
  c.nat.push_back(NatEntry{kPublic, kServer, 0});
  Rule r;
  r.name = "winreg-on-the-private-server";
  r.interfaces.push_back(*parse_interface("winreg"));
  r.servers.push_back(*parse_cidr("10.0.1.5/32"));  // rules name the private address
  c.rules.push_back(std::move(r));
  return RuleSet(std::move(c));
}

// The bytes that differ between two PDUs of the same size: their offsets.
std::vector<std::size_t> differences(const Bytes& a, const Bytes& b) {
  EXPECT_EQ(a.size(), b.size());
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) out.push_back(i);
  return out;
}

TEST(EpmInspectorNat, TowersNamingThePrivateAddressAreRewrittenInPlaceToThePublicOne) {
  const RuleSet rules = nat_rules();
  const Bytes r = map_response(2, {tower(kWinreg, "10.0.1.5", "49664")});
  const auto a = map_exchange(rules, r, kPublic);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kNote, Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[0].note_event, "nat");
  EXPECT_EQ(a[0].note_reason, "rewritten");
  EXPECT_EQ(a[1].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kPublic, 49664}}));
  // Exactly the 4 address bytes changed, to 203.0.113.10; the answer still decodes to it.
  const Bytes& out = a[2].bytes;
  const auto diff = differences(r, out);
  ASSERT_FALSE(diff.empty());
  ASSERT_LE(diff.size(), 4u);
  const std::size_t at = diff.front();
  ASSERT_LE(diff.back(), at + 3);
  std::size_t start = at;
  while (start > 0 && !(out[start] == 203 && out[start + 1] == 0 && out[start + 2] == 113))
    --start;
  EXPECT_EQ(Bytes(out.begin() + static_cast<std::ptrdiff_t>(start),
                  out.begin() + static_cast<std::ptrdiff_t>(start) + 4),
            (Bytes{203, 0, 113, 10}));
  EXPECT_EQ(Bytes(r.begin() + static_cast<std::ptrdiff_t>(start),
                  r.begin() + static_cast<std::ptrdiff_t>(start) + 4),
            (Bytes{10, 0, 1, 5}));
  auto pdu = rpc::decode_pdu(out);
  ASSERT_TRUE(pdu);
  auto answer = ndr::epm::decode_ept_map_response(std::get<rpc::Response>(pdu->body).stub,
                                                  common::Endian::kLittle);
  ASSERT_TRUE(answer);
  auto binding = ndr::tower_to_binding(*ndr::decode_tower(*answer->towers[0]));
  ASSERT_TRUE(binding);
  EXPECT_EQ(binding->network_addr, "203.0.113.10");
  EXPECT_EQ(binding->endpoint, "49664");
}

TEST(EpmInspectorNat, LookupAnswersAreRewrittenToo) {
  const RuleSet rules = nat_rules();
  EpmInspector fw{kClient, kPublic, rules, kT0};
  bind_epm(fw);
  fw.feed(Direction::kClientToServer, lookup_request(2), kT0);
  const Bytes r = lookup_response(
      2, {tower(kWinreg, "0.0.0.0", "49664"), tower(kSvcctl, "10.0.1.5", "49665")});  // not allowed
  const auto a = fw.feed(Direction::kServerToClient, r, kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kNote, Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[1].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kPublic, 49664}}));
  // Both towers (the one not allowed too): 0.0.0.0 and 10.0.1.5 -> 203.0.113.10, 3 bytes each.
  EXPECT_EQ(differences(r, a[2].bytes).size(), 6u);
}

TEST(EpmInspectorNat, ASignedAnswerIsNotRewrittenAndOpensWhatItWouldWithoutNat) {
  const RuleSet rules = nat_rules();
  rpc::AuthTrailer t;
  t.auth_type = 10;
  t.auth_level = 5;  // integrity: readable, signed
  t.auth_value = Bytes(16, 1);
  EpmInspector fw{kClient, kPublic, rules, kT0};
  const Bytes plain = bind(rpc::kEpmSyntax);
  auto b = *rpc::decode_pdu(plain);
  b.auth = t;
  auto ack = *rpc::decode_pdu(bind_ack(plain));
  ack.auth = t;
  ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer, *rpc::encode_pdu(b), kT0)),
            std::vector<Kind>{Kind::kForward});
  ASSERT_EQ(kinds(fw.feed(Direction::kServerToClient, *rpc::encode_pdu(ack), kT0)),
            std::vector<Kind>{Kind::kForward});
  auto q = *rpc::decode_pdu(map_request(2, kWinreg));
  q.auth = t;
  ASSERT_EQ(kinds(fw.feed(Direction::kClientToServer, *rpc::encode_pdu(q), kT0)),
            std::vector<Kind>{Kind::kForward});
  auto resp = *rpc::decode_pdu(
      map_response(2, {tower(kWinreg, "10.0.1.5", "49664"), tower(kWinreg, "0.0.0.0", "49665")}));
  resp.auth = t;
  const Bytes r = *rpc::encode_pdu(resp);
  const auto a = fw.feed(Direction::kServerToClient, r, kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kNote, Kind::kOpen, Kind::kForward}));
  EXPECT_EQ(a[0].note_event, "nat");
  EXPECT_EQ(a[0].note_reason, "not-rewritten-signed");
  EXPECT_NE(a[0].message.find("not rewritten: signed"), std::string::npos);
  // Without NAT the private address is another host: only 0.0.0.0 opens (at the public one).
  EXPECT_EQ(a[1].pinholes, (std::vector<PinholeKey>{PinholeKey{kClient, kPublic, 49665}}));
  EXPECT_EQ(a[2].bytes, r);
}

}  // namespace
}  // namespace rpcgate::firewall
