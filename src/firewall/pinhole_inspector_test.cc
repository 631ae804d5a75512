#include "firewall/pinhole_inspector.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "rpc/status.h"

// Cases are named after the catalogue docs/evasions.md: A1.., C1..C14, E1..E6.
namespace rpcgate::firewall {
namespace {

using Bytes = std::vector<std::uint8_t>;
using rpc::Direction;
using Kind = Action::Kind;
using std::chrono::seconds;
constexpr auto kC2S = Direction::kClientToServer;
constexpr auto kS2C = Direction::kServerToClient;

const rpc::TimePoint kT0{seconds(1000)};
const Address kClient = ipv4(10, 0, 0, 7);
const Address kServer = ipv4(10, 0, 1, 5);
constexpr std::uint16_t kPort = 49664;

rpc::SyntaxId named(std::string_view name, std::uint16_t major, std::uint16_t minor = 0) {
  const auto it = std::ranges::find(well_known_interfaces(), name, &WellKnownInterface::name);
  return rpc::SyntaxId{*common::Uuid::parse(it->uuid), major, minor};
}
const rpc::SyntaxId kWinreg = named("winreg", 1);
const rpc::SyntaxId kSvcctl = named("svcctl", 2);
const rpc::SyntaxId kSamr = named("samr", 1);
const rpc::SyntaxId kLsa = named("lsarpc", 0);
const rpc::SyntaxId kSrvsvc = named("srvsvc", 3);  // no rule names it
const rpc::SyntaxId kDrsuapi = named("drsuapi", 4);
const rpc::SyntaxId kAtsvc = named("atsvc", 1);

Rule rule(std::string name, std::vector<std::string> interfaces) {
  Rule r;
  r.name = std::move(name);
  for (const auto& i : interfaces)
    r.interfaces.push_back(*parse_interface(i));
  return r;
}

RuleSet make_rules() {
  FirewallConfig c;
  c.rules.push_back(rule("winreg", {"winreg"}));
  Rule svcctl = rule("svcctl-read", {"svcctl:2.0"});
  svcctl.opnums = {OpnumRange{0, 5}, OpnumRange{12, 12}};
  c.rules.push_back(std::move(svcctl));
  Rule samr = rule("samr-sealed", {"samr"});
  samr.min_auth = AuthLevel::kPrivacy;
  c.rules.push_back(std::move(samr));
  Rule lsa = rule("lsa-connect", {"lsarpc"});
  lsa.min_auth = AuthLevel::kConnect;
  c.rules.push_back(std::move(lsa));
  Rule drs = rule("drs-v6-only", {"drsuapi"});
  drs.servers = {*parse_cidr("fd00::/8")};
  c.rules.push_back(std::move(drs));
  Rule at = rule("atsvc", {"atsvc"});
  c.rules.push_back(std::move(at));
  return RuleSet(std::move(c));
}
const RuleSet kRules = make_rules();

rpc::AuthTrailer ntlm(std::uint8_t level, std::size_t size = 16) {
  rpc::AuthTrailer a;
  a.auth_type = 10;  // RPC_C_AUTHN_WINNT
  a.auth_level = level;
  a.auth_context_id = 79231;
  a.auth_value = Bytes(size, 0x11);
  return a;
}

Bytes encode(rpc::Pdu pdu, std::optional<rpc::AuthTrailer> auth = std::nullopt) {
  if (auth) {
    pdu.auth = std::move(auth);
    pdu.auth->auth_pad_length = rpc::auth_pad_for(pdu);
  }
  return *rpc::encode_pdu(pdu);
}

rpc::ContextElement item(std::uint16_t id, const rpc::SyntaxId& iface,
                         std::vector<rpc::SyntaxId> transfer = {rpc::kNdr20Syntax}) {
  return rpc::ContextElement{id, iface, std::move(transfer)};
}

Bytes bind(std::vector<rpc::ContextElement> items, std::optional<rpc::AuthTrailer> auth = {},
           std::uint8_t flags = rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag) {
  rpc::Bind b;
  b.max_xmit_frag = b.max_recv_frag = 5840;
  b.contexts = std::move(items);
  return encode(rpc::make_pdu(std::move(b), 1, flags), std::move(auth));
}
Bytes bind(const rpc::SyntaxId& iface) {
  return bind({item(0, iface)});
}

Bytes alter(std::vector<rpc::ContextElement> items, std::optional<rpc::AuthTrailer> auth = {}) {
  rpc::AlterContext a;
  a.max_xmit_frag = a.max_recv_frag = 5840;
  a.contexts = std::move(items);
  return encode(rpc::make_pdu(std::move(a), 2), std::move(auth));
}

// What a real server (the engine's server role, offering every interface used here) answers.
Bytes server_answer(const Bytes& bind_pdu) {
  rpc::ConnectionHandler none;
  rpc::ServerConfig config;
  config.interfaces = rpc::make_interface_lookup(
      {kWinreg, kSvcctl, kSamr, kLsa, kSrvsvc, kDrsuapi, kAtsvc, named("svcctl", 2, 1)});
  rpc::Connection server(rpc::ServerRole{config}, {}, none, kT0);
  server.feed(kC2S, bind_pdu, kT0);
  const auto out = server.next_output();
  return Bytes(out.bytes.begin(), out.bytes.end());
}

// An authenticated server's bind_ack / alter_context_resp: the results, and a trailer (as an
// NTLM CHALLENGE would ride).
Bytes auth_ack(std::vector<rpc::ContextResult> results, std::uint8_t level, bool is_bind = true,
               std::uint32_t call_id = 1) {
  rpc::BindAckBody body;
  body.max_xmit_frag = body.max_recv_frag = 5840;
  body.assoc_group_id = 0x1234;
  body.results = std::move(results);
  if (is_bind) {
    body.sec_addr = rpc::BindAckBody::make_sec_addr("49664");
    return encode(rpc::make_pdu(rpc::BindAck{body}, call_id), ntlm(level, 32));
  }
  return encode(rpc::make_pdu(rpc::AlterContextResp{body}, call_id), ntlm(level, 32));
}
const rpc::ContextResult kAccept{rpc::status::kResultAcceptance, 0, rpc::kNdr20Syntax};

Bytes request(std::uint32_t call_id, std::uint16_t opnum, std::uint16_t p_cont_id = 0,
              std::optional<rpc::AuthTrailer> auth = {},
              std::uint8_t flags = rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag) {
  rpc::Request q;
  q.p_cont_id = p_cont_id;
  q.opnum = opnum;
  q.stub = Bytes(24, 0x5a);
  return encode(rpc::make_pdu(std::move(q), call_id, flags), std::move(auth));
}

Bytes response(std::uint32_t call_id) {
  rpc::Response r;
  r.stub = Bytes(8, 0);
  return encode(rpc::make_pdu(std::move(r), call_id));
}

std::vector<Kind> kinds(const std::vector<Action>& actions) {
  std::vector<Kind> k;
  for (const auto& a : actions)
    k.push_back(a.kind);
  return k;
}
const std::vector<Kind> kForwarded{Kind::kForward};
const std::vector<Kind> kDropped{Kind::kDrop};

struct Pinhole : ::testing::Test {
  PinholeInspector fw{kClient, kServer, kPort, kRules, kT0};

  // Feeds `bytes` and expects one kForward of exactly those bytes.
  void pass(Direction d, const Bytes& bytes) {
    const auto a = fw.feed(d, bytes, kT0);
    ASSERT_EQ(kinds(a), kForwarded);
    EXPECT_EQ(a[0].bytes, bytes);
    EXPECT_EQ(a[0].direction, d);
  }
  // Feeds `bytes` and expects one kDrop for `why`; returns it.
  Action refuse(Direction d, const Bytes& bytes, DropReason why) {
    auto a = fw.feed(d, bytes, kT0);
    EXPECT_EQ(kinds(a), kDropped);
    if (a.size() != 1) return {};
    EXPECT_EQ(a[0].drop, why) << to_string(a[0].drop.value_or(DropReason::kTimeout));
    EXPECT_TRUE(fw.dropped());
    // Nothing more, ever: not even a valid PDU in either direction.
    EXPECT_TRUE(fw.feed(kS2C, response(1), kT0).empty());
    EXPECT_TRUE(fw.feed(kC2S, request(9, 0), kT0).empty());
    return a[0];
  }
  void bound(const rpc::SyntaxId& iface) {
    const Bytes b = bind(iface);
    pass(kC2S, b);
    pass(kS2C, server_answer(b));
  }
};

// ---- E: the pinhole's own rules
// ------------------------------------------------------------------

TEST_F(Pinhole, E1_TheAllowedInterfaceIsBoundAndCalled) {
  bound(kWinreg);
  pass(kC2S, request(2, 5));
  pass(kS2C, response(2));
  EXPECT_FALSE(fw.dropped());
  EXPECT_EQ(fw.key(), (PinholeKey{kClient, kServer, kPort}));
}

TEST_F(Pinhole, E2_E6_AnotherInterfaceOnTheSamePortIsDropped) {
  const Action a = refuse(kC2S, bind(kSrvsvc), DropReason::kInterfaceNotAllowed);
  EXPECT_EQ(a.interface, kSrvsvc);
}

TEST_F(Pinhole, E3_ARequestWithoutBindIsDropped) {
  const Action a = refuse(kC2S, request(1, 0), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kRequestBeforeBind);
}

TEST_F(Pinhole, E3_BytesThatAreNotDceRpcAreDropped) {
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  refuse(kC2S, Bytes(http.begin(), http.end()), DropReason::kProtocol);
}

TEST_F(Pinhole, E4_C6_AnAlterContextAddingABlockedInterfaceIsDropped) {
  bound(kWinreg);
  const Action a = refuse(kC2S, alter({item(1, kSrvsvc)}), DropReason::kInterfaceNotAllowed);
  EXPECT_EQ(a.interface, kSrvsvc);
}

TEST_F(Pinhole, AnAlterContextAddingAnAllowedInterfacePasses) {
  bound(kWinreg);
  const Bytes a = alter({item(1, kSvcctl)});
  pass(kC2S, a);
  rpc::BindAckBody resp;
  resp.max_xmit_frag = resp.max_recv_frag = 5840;
  resp.assoc_group_id = 0x1234;
  resp.results = {kAccept};
  pass(kS2C, encode(rpc::make_pdu(rpc::AlterContextResp{resp}, 2)));
  pass(kC2S, request(3, 1, 1));
}

TEST_F(Pinhole, E5_AnOpnumOutsideTheRuleIsDropped) {
  bound(kSvcctl);
  pass(kC2S, request(2, 0));
  pass(kC2S, request(3, 5));
  pass(kC2S, request(4, 12));
  const Action a = refuse(kC2S, request(5, 6), DropReason::kOpnumNotAllowed);
  EXPECT_EQ(a.opnum, 6);
  EXPECT_EQ(a.interface, kSvcctl);
}

// The relay's zero-copy path: request and response heads alone, decided as the whole PDUs.
TEST_F(Pinhole, HeadsOfRequestsAndResponsesAreJudgedLikeWholePdus) {
  bound(kSvcctl);
  const Bytes q = request(2, 5);
  const auto head = std::span(q).first(24);
  auto a = fw.feed_head(kC2S, head, kT0);
  ASSERT_EQ(kinds(a), kForwarded);
  EXPECT_EQ(a[0].bytes, Bytes(head.begin(), head.end()));  // the head only: the rest is spliced
  const Bytes r = response(2);
  a = fw.feed_head(kS2C, std::span(r).first(24), kT0);
  ASSERT_EQ(kinds(a), kForwarded);
  const Bytes bad = request(3, 6);  // opnum 6: outside svcctl-read's 0-5, 12
  a = fw.feed_head(kC2S, std::span(bad).first(24), kT0);
  ASSERT_EQ(kinds(a), kDropped);
  EXPECT_EQ(a[0].drop, DropReason::kOpnumNotAllowed);
}

TEST(PinholeSinks, ForwardedPdusGoStraightIntoTheBuffersInOrder) {
  PinholeInspector fw{kClient, kServer, kPort, kRules, kT0};
  Bytes to_server, to_client;
  fw.set_sinks(&to_server, &to_client);
  const Bytes b = bind(kWinreg);
  const Bytes ack = server_answer(b);
  const Bytes q = request(2, 5);
  auto a = fw.feed(kC2S, b, kT0);
  ASSERT_EQ(kinds(a), kForwarded);
  EXPECT_TRUE(a[0].bytes.empty());  // in the sink instead
  fw.feed(kS2C, ack, kT0);
  // Two PDUs in one read: both appended, in order.
  Bytes two = q;
  const Bytes q2 = request(3, 5);
  two.insert(two.end(), q2.begin(), q2.end());
  a = fw.feed(kC2S, two, kT0);
  EXPECT_EQ(kinds(a), (std::vector<Kind>{Kind::kForward, Kind::kForward}));
  Bytes expect = b;
  expect.insert(expect.end(), two.begin(), two.end());
  EXPECT_EQ(to_server, expect);
  EXPECT_EQ(to_client, ack);
  // A dropped PDU never reaches the sink.
  const auto size = to_server.size();
  EXPECT_EQ(kinds(fw.feed(kC2S, bind(kWinreg), kT0)), kDropped);  // a second bind
  EXPECT_EQ(to_server.size(), size);
}

TEST(PinholeBodies, OnlyRequestsAndResponsesGoByHeadAndRequestsNotUnderAMinimumAuthLevel) {
  const PinholeInspector with_auth{kClient, kServer, kPort, kRules, kT0};  // samr needs privacy
  FirewallConfig c;
  c.rules.push_back(rule("winreg", {"winreg"}));
  const RuleSet plain_rules(std::move(c));
  const PinholeInspector plain{kClient, kServer, kPort, plain_rules, kT0};
  const Bytes b = bind(kWinreg);
  const Bytes q = request(2, 0);
  const Bytes r = response(2);
  auto head = [](const Bytes& x) { return std::span(x).first<rpc::kCommonHeaderSize>(); };
  EXPECT_TRUE(plain.body_needed(head(b)));
  EXPECT_FALSE(plain.body_needed(head(q)));
  EXPECT_FALSE(plain.body_needed(head(r)));
  EXPECT_TRUE(with_auth.body_needed(head(q)));
  EXPECT_FALSE(with_auth.body_needed(head(r)));
}

TEST_F(Pinhole, E5_TheFirstFragmentDecidesAndLaterOnesMustAgree) {
  bound(kSvcctl);
  pass(kC2S, request(2, 1, 0, {}, rpc::pfc::kFirstFrag));
  // The same call continued with another opnum: the observer's fragment rule.
  const Action a = refuse(kC2S, request(2, 13, 0, {}, 0), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kFragmentMismatch);
}

TEST_F(Pinhole, E5_AFragmentedCallOnAForbiddenOpnumIsDroppedAtItsFirstFragment) {
  bound(kSvcctl);
  refuse(kC2S, request(2, 7, 0, {}, rpc::pfc::kFirstFrag), DropReason::kOpnumNotAllowed);
}

TEST_F(Pinhole, E5_AFragmentedCallOnAnAllowedOpnumPasses) {
  bound(kSvcctl);
  pass(kC2S, request(2, 3, 0, {}, rpc::pfc::kFirstFrag));
  pass(kC2S, request(2, 3, 0, {}, 0));
  pass(kC2S, request(2, 3, 0, {}, rpc::pfc::kLastFrag));
  pass(kS2C, response(2));
}

TEST_F(Pinhole, ARuleForAnotherServerDoesNotApply) {
  // drsuapi is allowed only on fd00::/8 servers; this one is 10.0.1.5.
  refuse(kC2S, bind(kDrsuapi), DropReason::kInterfaceNotAllowed);
  PinholeInspector v6{kClient, *parse_address("fd00::5"), kPort, kRules, kT0};
  EXPECT_EQ(kinds(v6.feed(kC2S, bind(kDrsuapi), kT0)), kForwarded);
  PinholeInspector v6_client{*parse_address("fd00::7"), *parse_address("fd00::5"), kPort, kRules,
                             kT0};
  EXPECT_EQ(kinds(v6_client.feed(kC2S, bind(kDrsuapi), kT0)), kForwarded);
}

// ---- C: presentation contexts -----------------------------------------------------------------

TEST_F(Pinhole, C1_ABindMixingAllowedAndBlockedInterfacesIsDroppedWhole) {
  for (const auto& items :
       {std::vector{item(0, kWinreg), item(1, kSrvsvc)},
        std::vector{item(0, kSrvsvc), item(1, kWinreg)},
        std::vector{item(0, kWinreg), item(1, kWinreg), item(2, kSrvsvc), item(3, kWinreg)}}) {
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
    const auto a = f.feed(kC2S, bind(items), kT0);
    ASSERT_EQ(kinds(a), kDropped);
    EXPECT_EQ(a[0].drop, DropReason::kInterfaceNotAllowed);
    EXPECT_EQ(a[0].interface, kSrvsvc);
  }
}

TEST_F(Pinhole, C2_AnItemWithTwoTransferSyntaxesDoesNotHideTheNextItem) {
  const Action a = refuse(
      kC2S, bind({item(0, kWinreg, {rpc::kNdr20Syntax, rpc::kNdr64Syntax}), item(1, kSrvsvc)}),
      DropReason::kInterfaceNotAllowed);
  EXPECT_EQ(a.interface, kSrvsvc);
}

TEST_F(Pinhole, C3_C5_C8_C9_TheObserversBindRulesStillHold) {
  {
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};  // C3: no transfer syntax
    const auto a = f.feed(kC2S, bind({item(0, kWinreg, {})}), kT0);
    ASSERT_EQ(kinds(a), kDropped);
    EXPECT_EQ(a[0].error, rpc::Errc::kNoTransferSyntaxes);
  }
  {
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};  // C5: duplicate p_cont_id
    const auto a = f.feed(kC2S, bind({item(0, kWinreg), item(0, kSvcctl)}), kT0);
    ASSERT_EQ(kinds(a), kDropped);
    EXPECT_EQ(a[0].error, rpc::Errc::kDuplicateContextId);
  }
  {
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};  // C8: alter_context first
    const auto a = f.feed(kC2S, alter({item(0, kWinreg)}), kT0);
    ASSERT_EQ(kinds(a), kDropped);
    EXPECT_EQ(a[0].error, rpc::Errc::kAlterBeforeBind);
  }
  bound(kWinreg);  // C9: a second bind
  const Action a = refuse(kC2S, bind(kWinreg), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kBindAlreadyDone);
}

TEST_F(Pinhole, C7_AnAlterContextRedefiningAnAcceptedContextIsDropped) {
  bound(kWinreg);
  const Action a = refuse(kC2S, alter({item(0, kSvcctl)}), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kContextRedefined);
}

TEST_F(Pinhole, C10_ARequestOnAContextNeverAcceptedIsDropped) {
  bound(kWinreg);
  const Action a = refuse(kC2S, request(2, 0, 7), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kContextNotAccepted);
}

TEST_F(Pinhole, C12_ARequestOnTheFeatureNegotiationContextIsDropped) {
  const Bytes b =
      bind({item(0, kWinreg), item(1, kWinreg, {rpc::make_bind_time_feature_syntax(3)})});
  pass(kC2S, b);
  pass(kS2C, server_answer(b));
  const Action a = refuse(kC2S, request(2, 0, 1), DropReason::kProtocol);
  EXPECT_EQ(a.error, rpc::Errc::kContextNotAccepted);
}

TEST_F(Pinhole, C13_AVersionOutsideTheRuleIsDropped) {
  // svcctl:2.0 allows 2.x; winreg (a name) allows 1.x.
  refuse(kC2S, bind(named("svcctl", 3)), DropReason::kInterfaceNotAllowed);
  PinholeInspector minor{kClient, kServer, kPort, kRules, kT0};
  EXPECT_EQ(kinds(minor.feed(kC2S, bind(named("svcctl", 2, 1)), kT0)), kForwarded);
  PinholeInspector other{kClient, kServer, kPort, kRules, kT0};
  EXPECT_EQ(kinds(other.feed(kC2S, bind(named("winreg", 2)), kT0)), kDropped);
}

// ---- A: the stream
// -------------------------------------------------------------------------------

TEST_F(Pinhole, A2_ARequestPipelinedBehindTheBindIsDropped) {
  Bytes both = bind(kWinreg);
  const Bytes q = request(2, 0);
  both.insert(both.end(), q.begin(), q.end());
  const auto a = fw.feed(kC2S, both, kT0);
  ASSERT_EQ(kinds(a), (std::vector<Kind>{Kind::kForward, Kind::kDrop}));
  EXPECT_EQ(a[1].error, rpc::Errc::kRequestBeforeBind);
}

TEST(PinholeSplit, A1_ABindSplitAtEveryByteGivesTheSameDecision) {
  for (const auto& [b, expected] :
       {std::pair{bind({item(0, kWinreg), item(1, kWinreg, {rpc::kNdr64Syntax})}), Kind::kForward},
        std::pair{bind({item(0, kWinreg), item(1, kSrvsvc)}), Kind::kDrop}}) {
    for (std::size_t cut = 1; cut < b.size(); ++cut) {
      PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
      EXPECT_TRUE(f.feed(kC2S, std::span(b).first(cut), kT0).empty()) << cut;
      const auto a = f.feed(kC2S, std::span(b).subspan(cut), kT0);
      ASSERT_EQ(kinds(a), std::vector<Kind>{expected}) << cut;
      if (expected == Kind::kForward) {
        EXPECT_EQ(a[0].bytes, b);
      }
    }
    // And one byte at a time.
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
    std::vector<Action> all;
    for (const auto byte : b) {
      auto a = f.feed(kC2S, std::span(&byte, 1), kT0);
      all.insert(all.end(), a.begin(), a.end());
    }
    ASSERT_EQ(kinds(all), std::vector<Kind>{expected});
  }
}

TEST_F(Pinhole, A5_TheEngineDeadlinesDropWithTimeout) {
  rpc::ConnectionOptions options;
  options.pdu = std::chrono::milliseconds(3000);
  PinholeInspector f{kClient, kServer, kPort, kRules, kT0, {}, options};
  const Bytes b = bind(kWinreg);
  EXPECT_TRUE(f.feed(kC2S, std::span(b).first(20), kT0).empty());
  ASSERT_EQ(f.next_expiry(), kT0 + seconds(3));
  EXPECT_TRUE(f.on_expiry(kT0 + seconds(2)).empty());
  const auto a = f.on_expiry(kT0 + seconds(3));
  ASSERT_EQ(kinds(a), kDropped);
  EXPECT_EQ(a[0].drop, DropReason::kTimeout);
  EXPECT_EQ(f.next_expiry(), std::nullopt);
  EXPECT_TRUE(f.feed(kC2S, std::span(b).subspan(20), kT0).empty());
}

// ---- Authentication levels --------------------------------------------------------------------

TEST_F(Pinhole, MinAuthNeedsTheBindAtThatLevel) {
  refuse(kC2S, bind(kSamr), DropReason::kAuthLevel);
  for (const std::uint8_t level : {2, 4, 5, 7, 0xff}) {  // 7 and up are no level at all
    PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
    const auto a = f.feed(kC2S, bind({item(0, kSamr)}, ntlm(level)), kT0);
    ASSERT_EQ(kinds(a), kDropped) << int(level);
    EXPECT_EQ(a[0].drop, DropReason::kAuthLevel);
    EXPECT_EQ(a[0].interface, kSamr);
  }
}

TEST_F(Pinhole, MinAuthPrivacyNeedsEveryRequestSealed) {
  pass(kC2S, bind({item(0, kSamr)}, ntlm(6)));
  pass(kS2C, auth_ack({kAccept}, 6));
  rpc::Auth3 auth3;
  pass(kC2S, encode(rpc::make_pdu(auth3, 1), ntlm(6)));
  pass(kC2S, request(2, 5, 0, ntlm(6)));
  pass(kS2C, response(2));
  // A fragmented call: every fragment carries its verifier.
  pass(kC2S, request(3, 5, 0, ntlm(6), rpc::pfc::kFirstFrag));
  const Action a =
      refuse(kC2S, request(3, 5, 0, ntlm(5), rpc::pfc::kLastFrag), DropReason::kAuthLevel);
  EXPECT_EQ(a.opnum, 5);
}

TEST_F(Pinhole, MinAuthPrivacyRefusesARequestWithoutATrailer) {
  pass(kC2S, bind({item(0, kSamr)}, ntlm(6)));
  pass(kS2C, auth_ack({kAccept}, 6));
  refuse(kC2S, request(2, 5), DropReason::kAuthLevel);
}

TEST_F(Pinhole, MinAuthConnectAuthenticatesTheBindOnly) {
  refuse(kC2S, bind(kLsa), DropReason::kAuthLevel);
  PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
  ASSERT_EQ(kinds(f.feed(kC2S, bind({item(0, kLsa)}, ntlm(2)), kT0)), kForwarded);
  ASSERT_EQ(kinds(f.feed(kS2C, auth_ack({kAccept}, 2), kT0)), kForwarded);
  EXPECT_EQ(kinds(f.feed(kC2S, request(2, 1), kT0)), kForwarded);  // connect: no verifier
  EXPECT_EQ(kinds(f.feed(kC2S, request(3, 1, 0, ntlm(6)), kT0)), kForwarded);
}

TEST_F(Pinhole, AnAlterContextIsJudgedAtItsOwnTrailerOrTheBindsLevel) {
  // Bound at privacy with winreg (no min_auth); an alter_context adds samr (privacy) without a
  // trailer: the bind's level counts.
  pass(kC2S, bind({item(0, kWinreg)}, ntlm(6)));
  pass(kS2C, auth_ack({kAccept}, 6));
  pass(kC2S, alter({item(1, kSamr)}));
  // One at integrity with a trailer saying so is below privacy.
  PinholeInspector f{kClient, kServer, kPort, kRules, kT0};
  ASSERT_EQ(kinds(f.feed(kC2S, bind({item(0, kWinreg)}, ntlm(6)), kT0)), kForwarded);
  ASSERT_EQ(kinds(f.feed(kS2C, auth_ack({kAccept}, 6), kT0)), kForwarded);
  const auto a = f.feed(kC2S, alter({item(1, kSamr)}, ntlm(5)), kT0);
  ASSERT_EQ(kinds(a), kDropped);
  EXPECT_EQ(a[0].drop, DropReason::kAuthLevel);
  // And an unauthenticated bind cannot add a min_auth interface later.
  PinholeInspector g{kClient, kServer, kPort, kRules, kT0};
  const Bytes b = bind(kWinreg);
  ASSERT_EQ(kinds(g.feed(kC2S, b, kT0)), kForwarded);
  ASSERT_EQ(kinds(g.feed(kS2C, server_answer(b), kT0)), kForwarded);
  EXPECT_EQ(kinds(g.feed(kC2S, alter({item(1, kSamr)}), kT0)), kDropped);
}

// ---- C14: Windows' own bind
// ----------------------------------------------------------------------

Bytes hex(std::string_view h) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

// A Windows client's bind to atsvc (1ff70682-0a51-30e8-076d-740be8cee98b v1.0), as captured in
// the public krb5.pcap trace (frame 283, also a test vector of Suricata's dcerpc parser): three
// items for the same interface - NDR 2.0, NDR64, and bind-time feature negotiation 0x03 -
// max_xmit/recv 5840, 160 bytes.
const Bytes kWindowsAtsvcBind =
    hex("05000b0310000000a000000002000000b810b8100000000003000000000001008206f71f510ae830076d740be8"
        "cee98b01000000045d888aeb1cc9119fe808002b10486002000000010001008206f71f510ae830076d740be8ce"
        "e98b0100000033057171babe37498319b5dbef9ccc3601000000020001008206f71f510ae830076d740be8cee9"
        "8b010000002c1cb76c12984045030000000000000001000000");

// The NTLM NEGOTIATE a Windows Server 2022 client sends in its bind's auth_value (flags
// 0xa2088207, version 10.0 build 20348, NTLM revision 15).
const Bytes kWindowsNtlmNegotiate =
    hex("4e544c4d5353500001000000078208a2000000000000000000000000000000000a007c4f0000000f");

TEST_F(Pinhole, C14_WindowsNdrNdr64FeatureBindPasses) {
  const auto pdu = rpc::decode_pdu(kWindowsAtsvcBind);
  ASSERT_TRUE(pdu.has_value());
  const auto& items = std::get<rpc::Bind>(pdu->body).contexts;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].abstract_syntax, kAtsvc);
  EXPECT_EQ(items[1].transfer_syntaxes.at(0), rpc::kNdr64Syntax);
  EXPECT_EQ(rpc::bind_time_features(items[2].transfer_syntaxes.at(0)), 3u);

  pass(kC2S, kWindowsAtsvcBind);
  pass(kS2C, server_answer(kWindowsAtsvcBind));  // NDR accepted, NDR64 rejected, negotiate_ack
  pass(kC2S, request(3, 1));
  pass(kS2C, response(3));
}

TEST_F(Pinhole, C14_WindowsAuthenticatedBindWithHeaderSigningAndAuth3Passes) {
  // The captured bind as Windows sends it authenticated: PFC_SUPPORT_HEADER_SIGN, an NTLM
  // trailer at packet privacy, then AUTH3, then sealed requests - under a rule that asks for
  // privacy.
  FirewallConfig c;
  Rule at = rule("atsvc-sealed", {"atsvc:1.0"});
  at.min_auth = AuthLevel::kPrivacy;
  c.rules.push_back(std::move(at));
  const RuleSet sealed(std::move(c));
  PinholeInspector f{kClient, kServer, kPort, sealed, kT0};

  rpc::Pdu b = *rpc::decode_pdu(kWindowsAtsvcBind);
  b.header.pfc_flags |= rpc::pfc::kSupportHeaderSign;
  rpc::AuthTrailer negotiate = ntlm(6);
  negotiate.auth_context_id = 0;
  negotiate.auth_value = kWindowsNtlmNegotiate;
  const Bytes bind_pdu = encode(b, negotiate);
  EXPECT_EQ(bind_pdu[3], 0x07);
  ASSERT_EQ(kinds(f.feed(kC2S, bind_pdu, kT0)), kForwarded);

  const std::vector<rpc::ContextResult> results = {
      kAccept,
      {rpc::status::kResultProviderRejection,
       rpc::status::kReasonProposedTransferSyntaxesNotSupported,
       {}},
      {rpc::status::kResultNegotiateAck, 0x3, {}}};
  ASSERT_EQ(kinds(f.feed(kS2C, auth_ack(results, 6, true, 2), kT0)), kForwarded);
  ASSERT_EQ(kinds(f.feed(kC2S, encode(rpc::make_pdu(rpc::Auth3{}, 2), ntlm(6, 88)), kT0)),
            kForwarded);
  for (std::uint32_t call = 3; call < 6; ++call) {
    ASSERT_EQ(kinds(f.feed(kC2S, request(call, 1, 0, ntlm(6)), kT0)), kForwarded) << call;
    ASSERT_EQ(kinds(f.feed(kS2C, response(call), kT0)), kForwarded) << call;
  }
  // The same bind at integrity is below the rule.
  PinholeInspector g{kClient, kServer, kPort, sealed, kT0};
  negotiate.auth_level = 5;
  const auto a = g.feed(kC2S, encode(b, negotiate), kT0);
  ASSERT_EQ(kinds(a), kDropped);
  EXPECT_EQ(a[0].drop, DropReason::kAuthLevel);
}

}  // namespace
}  // namespace rpcgate::firewall
