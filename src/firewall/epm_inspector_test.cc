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

}  // namespace
}  // namespace rpcgate::firewall
