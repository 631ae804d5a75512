#include "rpc/association.h"

#include <map>

#include <gtest/gtest.h>

#include "rpc/status.h"
#include "rpc/testing/test_vectors.h"

namespace rpcgate::rpc {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Action = Decision::Action;
constexpr std::uint8_t kFirst = pfc::kFirstFrag;
constexpr std::uint8_t kLast = pfc::kLastFrag;
constexpr std::uint8_t kWhole = kFirst | kLast;

const SyntaxId kSamr{Uuid::parse("12345778-1234-abcd-ef00-0123456789ac").value(), 1, 0};
const SyntaxId kUnknown{Uuid::parse("01020304-0506-0708-090a-0b0c0d0e0f10").value(), 1, 0};
const SyntaxId kBtfn = make_bind_time_feature_syntax(0x3);

// ---- builders ----------------------------------------------------------------------------------

// Encodes and decodes, so header fields (frag_length, auth_length) are what a peer would send.
Pdu wire(const Pdu& pdu) {
  auto bytes = encode_pdu(pdu);
  EXPECT_TRUE(bytes) << bytes.error().message();
  auto out = decode_pdu(*bytes);
  EXPECT_TRUE(out) << out.error().message();
  return *out;
}

Pdu decode(const Bytes& bytes) {
  auto out = decode_pdu(bytes);
  EXPECT_TRUE(out) << out.error().message();
  return out.value_or(Pdu{});
}

ContextElement item(std::uint16_t id, SyntaxId abstract, std::vector<SyntaxId> transfers) {
  return ContextElement{id, abstract, std::move(transfers)};
}

template <typename Body = Bind>
Pdu bind(std::uint32_t call_id, std::vector<ContextElement> items, std::uint8_t flags = kWhole,
         DataRep drep = DataRep::little_endian(), std::uint16_t xmit = 4280,
         std::uint16_t recv = 4280, std::uint32_t group = 0) {
  Body b;
  b.max_xmit_frag = xmit;
  b.max_recv_frag = recv;
  b.assoc_group_id = group;
  b.contexts = std::move(items);
  return wire(make_pdu(std::move(b), call_id, flags, drep));
}

Pdu alter(std::uint32_t call_id, std::vector<ContextElement> items,
          DataRep drep = DataRep::little_endian()) {
  return bind<AlterContext>(call_id, std::move(items), kWhole, drep);
}

Pdu request(std::uint32_t call_id, std::uint16_t p_cont_id, std::uint16_t opnum,
            std::uint8_t flags = kWhole, Bytes stub = {1, 2, 3, 4},
            DataRep drep = DataRep::little_endian()) {
  Request q;
  q.alloc_hint = static_cast<std::uint32_t>(stub.size());
  q.p_cont_id = p_cont_id;
  q.opnum = opnum;
  q.stub = std::move(stub);
  return wire(make_pdu(std::move(q), call_id, flags, drep));
}

template <typename Body>
Pdu ack(std::uint32_t call_id, std::vector<ContextResult> results, std::uint16_t frag = 4280,
        DataRep drep = DataRep::little_endian()) {
  Body b;
  b.max_xmit_frag = frag;
  b.max_recv_frag = frag;
  b.assoc_group_id = 0x12345;
  b.results = std::move(results);
  return wire(make_pdu(std::move(b), call_id, kWhole, drep));
}

ContextResult accept(SyntaxId t = kNdr20Syntax) {
  return {status::kResultAcceptance, 0, t};
}
ContextResult reject(std::uint16_t reason) {
  return {status::kResultProviderRejection, reason, {}};
}

AuthTrailer ntlm_trailer() {
  AuthTrailer a;
  a.auth_type = 10;
  a.auth_level = 6;
  a.auth_context_id = 79231;
  a.auth_value = Bytes(16, 0x11);
  return a;
}

Pdu with_auth(Pdu pdu) {
  pdu.auth = ntlm_trailer();
  pdu.auth->auth_pad_length = auth_pad_for(pdu);
  return wire(pdu);
}

std::map<std::string, Bytes> impacket_vectors() {
  std::map<std::string, Bytes> out;
  for (auto& v :
       testing::load_vectors(RPCGATE_SOURCE_DIR "/src/rpc/testdata/impacket_vectors.txt")) {
    out.emplace(v.name, std::move(v.bytes));
  }
  return out;
}

Pdu vector_pdu(const std::string& name) {
  static const auto all = impacket_vectors();
  auto it = all.find(name);
  if (it == all.end()) {
    ADD_FAILURE() << "missing vector " << name;
    return {};
  }
  return decode(it->second);
}

ServerConfig epm_config() {
  ServerConfig c;
  c.interfaces = make_interface_lookup({kEpmSyntax});
  c.secondary_address = "135";
  c.new_assoc_group_id = 0x12345;
  return c;
}

// The results of a bind_ack / alter_context_resp the server sent.
std::vector<ContextResult> results_of(const Decision& d) {
  EXPECT_EQ(d.action, Action::kSend) << d.reason.message();
  if (d.pdu.empty()) return {};
  const Pdu pdu = decode(d.pdu);
  if (const auto* a = std::get_if<BindAck>(&pdu.body)) return a->results;
  if (const auto* a = std::get_if<AlterContextResp>(&pdu.body)) return a->results;
  ADD_FAILURE() << "not a bind_ack / alter_context_resp";
  return {};
}

// Expects kCloseConnection(reason) carrying a bind_nak with `reject_reason`.
void expect_nak(const Decision& d, Errc reason, std::uint16_t reject_reason,
                std::uint32_t call_id) {
  EXPECT_EQ(d.action, Action::kCloseConnection);
  EXPECT_EQ(d.reason, reason) << d.reason.message();
  ASSERT_FALSE(d.pdu.empty());
  const Pdu pdu = decode(d.pdu);
  EXPECT_EQ(pdu.header.call_id, call_id);
  const auto* nak = std::get_if<BindNak>(&pdu.body);
  ASSERT_NE(nak, nullptr);
  EXPECT_EQ(nak->provider_reject_reason, reject_reason);
  EXPECT_EQ(nak->versions, (std::vector<RtVersion>{{5, 0}}));
}

// Expects kCloseConnection(reason) carrying a fault with `fault_status`, DID_NOT_EXECUTE.
void expect_fault_close(const Decision& d, Errc reason, std::uint32_t fault_status,
                        std::uint32_t call_id, Endian endian = Endian::kLittle) {
  EXPECT_EQ(d.action, Action::kCloseConnection);
  EXPECT_EQ(d.reason, reason) << d.reason.message();
  ASSERT_FALSE(d.pdu.empty());
  const Pdu pdu = decode(d.pdu);
  EXPECT_EQ(pdu.header.call_id, call_id);
  EXPECT_EQ(pdu.header.endian(), endian);
  EXPECT_EQ(pdu.header.pfc_flags, kWhole | pfc::kDidNotExecute);
  const auto* f = std::get_if<Fault>(&pdu.body);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->status, fault_status);
}

// Expects a fault with `fault_status` and exactly `pfc_flags`, sent with `action` (kSend: the
// connection stays; kCloseConnection: closed with `reason`).
void expect_fault(const Decision& d, Action action, Errc reason, std::uint32_t fault_status,
                  std::uint32_t call_id, std::uint16_t p_cont_id, std::uint8_t pfc_flags) {
  EXPECT_EQ(d.action, action);
  EXPECT_EQ(d.reason, reason) << d.reason.message();
  ASSERT_FALSE(d.pdu.empty());
  const Pdu pdu = decode(d.pdu);
  EXPECT_EQ(pdu.header.call_id, call_id);
  EXPECT_EQ(pdu.header.pfc_flags, pfc_flags);
  const auto* f = std::get_if<Fault>(&pdu.body);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->status, fault_status);
  EXPECT_EQ(f->p_cont_id, p_cont_id);
  EXPECT_NE(f->alloc_hint, 0u);  // Windows and Samba send 24; raw_protocol asserts non-zero
}

void expect_close(const Decision& d, Errc reason) {
  EXPECT_EQ(d.action, Action::kCloseConnection);
  EXPECT_EQ(d.reason, reason) << d.reason.message();
  EXPECT_TRUE(d.pdu.empty());
}

ServerAssociation bound_epm_server(ServerConfig config = epm_config()) {
  ServerAssociation s(std::move(config));
  EXPECT_EQ(s.handle(decode(testing::impacket_bind())).action, Action::kSend);
  return s;
}

// ---- interface matching / ContextTable ---------------------------------------------------------

TEST(InterfaceMatching, C706VersionRules) {
  const SyntaxId offered{kSamr.uuid, 1, 2};
  EXPECT_TRUE(interface_matches(offered, {kSamr.uuid, 1, 0}));
  EXPECT_TRUE(interface_matches(offered, {kSamr.uuid, 1, 2}));
  EXPECT_FALSE(interface_matches(offered, {kSamr.uuid, 1, 3}));  // server minor too old
  EXPECT_FALSE(interface_matches(offered, {kSamr.uuid, 2, 0}));  // major differs
  EXPECT_FALSE(interface_matches(offered, {kEpmSyntax.uuid, 1, 0}));
  auto lookup = make_interface_lookup({kEpmSyntax, offered});
  EXPECT_TRUE(lookup(kEpmSyntax));
  EXPECT_TRUE(lookup({kSamr.uuid, 1, 1}));
  EXPECT_FALSE(lookup(kMgmtSyntax));
}

TEST(ContextTable, AcceptedEntriesAreImmutable) {
  ContextTable t(2);
  const PresentationContext epm{0, kEpmSyntax, kNdr20Syntax, ContextState::kAccepted};
  ASSERT_TRUE(t.record(epm));
  EXPECT_TRUE(t.record(epm));  // identical: no-op
  auto other = epm;
  other.abstract_syntax = kMgmtSyntax;
  EXPECT_EQ(t.record(other).error(), Errc::kContextRedefined);
  other = epm;
  other.state = ContextState::kRejected;
  EXPECT_EQ(t.record(other).error(), Errc::kContextRedefined);
  // Rejected entries may be replaced by a later offer.
  ASSERT_TRUE(t.record({1, kSamr, {}, ContextState::kRejected}));
  EXPECT_TRUE(t.record({1, kSamr, kNdr20Syntax, ContextState::kAccepted}));
  EXPECT_EQ(t.accepted(1)->abstract_syntax, kSamr);
  EXPECT_FALSE(t.has_room_for(2));
  EXPECT_EQ(t.record({2, kSamr, {}, ContextState::kRejected}).error(), Errc::kTooManyContexts);
  EXPECT_EQ(t.size(), 2u);
}

TEST(ContextTable, CheckOffer) {
  ContextTable t;
  ASSERT_TRUE(t.record({0, kEpmSyntax, kNdr20Syntax, ContextState::kAccepted}));
  const std::vector<ContextElement> same = {item(0, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax})};
  EXPECT_TRUE(t.check_offer(same));
  const std::vector<ContextElement> other_uuid = {item(0, kMgmtSyntax, {kNdr20Syntax})};
  EXPECT_EQ(t.check_offer(other_uuid).error(), Errc::kContextRedefined);
  const std::vector<ContextElement> other_transfer = {item(0, kEpmSyntax, {kNdr64Syntax})};
  EXPECT_EQ(t.check_offer(other_transfer).error(), Errc::kContextRedefined);
  const std::vector<ContextElement> unknown_transfer = {item(0, kEpmSyntax, {kUnknown})};
  EXPECT_TRUE(t.check_offer(unknown_transfer));  // rejected per item later, context kept
  const std::vector<ContextElement> dup = {item(1, kSamr, {kNdr20Syntax}),
                                           item(1, kUnknown, {kNdr20Syntax})};
  EXPECT_EQ(t.check_offer(dup).error(), Errc::kDuplicateContextId);
  const std::vector<ContextElement> identical = {item(1, kSamr, {kNdr20Syntax}),
                                                 item(1, kSamr, {kNdr20Syntax})};
  EXPECT_TRUE(t.check_offer(identical));
}

TEST(BuildFault, GoldenOpRngError) {
  EXPECT_EQ(build_fault(1, 0, status::kNcaSOpRngError, DataRep::little_endian()),
            testing::op_rng_fault());
  const Pdu be = decode(build_fault(9, 2, status::kNcaSUnkIf, DataRep::big_endian(), 0x20));
  EXPECT_EQ(be.header.endian(), Endian::kBig);
  EXPECT_EQ(be.header.pfc_flags, kWhole | pfc::kDidNotExecute);
  EXPECT_EQ(std::get<Fault>(be.body).status, status::kNcaSUnkIf);
  EXPECT_EQ(std::get<Fault>(be.body).p_cont_id, 2);
}

// ---- ServerAssociation: bind ---------------------------------------------------------------

TEST(ServerBind, GoldenImpacketBindAckIsByteExact) {
  ServerAssociation s(epm_config());
  const Decision d = s.handle(decode(testing::impacket_bind()));
  ASSERT_EQ(d.action, Action::kSend);
  EXPECT_EQ(d.pdu, testing::impacket_bind_ack());
  EXPECT_EQ(s.state(), ServerAssociation::State::kBound);
  EXPECT_EQ(s.max_xmit_frag(), 4280);
  EXPECT_EQ(s.max_recv_frag(), 4280);
  EXPECT_EQ(s.assoc_group_id(), 0x12345u);
  ASSERT_NE(s.contexts().accepted(0), nullptr);
  EXPECT_EQ(s.contexts().accepted(0)->abstract_syntax, kEpmSyntax);
}

TEST(ServerBind, FirstRequestReusesBindCallIdAndGetsOpRngFault) {
  ServerAssociation s = bound_epm_server();
  Decision d = s.handle(decode(testing::ept_map_request()));  // call_id 1, like the bind
  ASSERT_EQ(d.action, Action::kDispatch) << d.reason.message();
  EXPECT_EQ(d.call->call.call_id, 1u);
  EXPECT_EQ(d.call->call.opnum, 3);
  EXPECT_EQ(d.call->call.stub.size(), 132u);
  EXPECT_EQ(d.call->abstract_syntax, kEpmSyntax);
  EXPECT_EQ(d.call->transfer_syntax, kNdr20Syntax);
  EXPECT_EQ(build_fault(d.call->call.call_id, d.call->call.p_cont_id, status::kNcaSOpRngError,
                        d.call->call.drep),
            testing::op_rng_fault());
}

TEST(ServerBind, FragmentSizeNegotiation) {
  struct Case {
    std::uint16_t xmit, recv, server_max, expect;
  } cases[] = {
      {4280, 4280, 5840, 4280},   // Impacket
      {5840, 5840, 5840, 5840},   // Windows
      {8192, 65535, 5840, 5840},  // capped by the server
      {5000, 3000, 5840, 3000},   // min of the client's two
      {4283, 4283, 5840, 4280},   // & ~7
      // Windows' floor is 2048, whatever the client offers (raw_protocol test_neg_xmit_*; rpcgate
      // used C706's 1432 before).
      {1000, 1000, 5840, 2048},
      {16, 0, 5840, 2048},
      {0, 0, 5840, 2048},
      {0, 0xffff, 5840, 2048},
      {3199, 0, 5840, 2048},
      {2000, 2000, 5840, 2048},
      {3199, 0xffff, 5840, 3192},  // test_neg_xmit_3199_ffff
      {0xffff, 3199, 5840, 3192},
      {0xffff, 0xffff, 5840, 5840},
      {9000, 9000, 9000, 9000},
      {65535, 65535, 65535, 65528},
      {4280, 4280, 100, 2048},  // a server max below 2048 is clamped up
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.xmit);
    ServerConfig config = epm_config();
    config.max_frag = c.server_max;
    ServerAssociation s(config);
    const Decision d = s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, kWhole,
                                     DataRep::little_endian(), c.xmit, c.recv));
    ASSERT_EQ(d.action, Action::kSend);
    const Pdu reply = decode(d.pdu);
    const auto& a = std::get<BindAck>(reply.body);
    EXPECT_EQ(a.max_xmit_frag, c.expect);
    EXPECT_EQ(a.max_recv_frag, c.expect);
    EXPECT_EQ(s.max_recv_frag(), c.expect);
  }
}

// Windows: a bind naming an association group that does not exist is refused
// (raw_protocol test_assoc_group_fail1/2); one that exists is joined.
TEST(ServerBind, UnknownAssocGroupIsNaked) {
  ServerConfig config = epm_config();
  config.assoc_group_exists = [](std::uint32_t id) { return id == 0x53f0; };
  ServerAssociation s(config);
  expect_nak(s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, kWhole,
                           DataRep::little_endian(), 4280, 4280, 1)),
             Errc::kUnknownAssocGroup, status::kRejectReasonNotSpecified, 1);
  ServerAssociation t(config);
  const Decision d = t.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, kWhole,
                                   DataRep::little_endian(), 4280, 4280, 0x53f0));
  ASSERT_EQ(d.action, Action::kSend);
  EXPECT_EQ(t.assoc_group_id(), 0x53f0u);
  ServerAssociation u(config);  // 0 asks for a new group
  ASSERT_EQ(u.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})})).action, Action::kSend);
  EXPECT_EQ(u.assoc_group_id(), config.new_assoc_group_id);
}

TEST(ServerBind, ClientAssocGroupIsEchoed) {
  ServerAssociation s(epm_config());
  const Decision d = s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, kWhole,
                                   DataRep::little_endian(), 4280, 4280, 0x53f0));
  EXPECT_EQ(std::get<BindAck>(decode(d.pdu).body).assoc_group_id, 0x53f0u);
  EXPECT_EQ(s.assoc_group_id(), 0x53f0u);
}

// docs/evasions.md C9: Samba's (and Windows') bind_nak reason_not_specified.
TEST(ServerBind, SecondBindIsNakedAndClosesTheConnection) {
  ServerAssociation s = bound_epm_server();
  expect_nak(s.handle(decode(testing::impacket_bind())), Errc::kBindAlreadyDone,
             status::kRejectReasonNotSpecified, 1);
  EXPECT_EQ(s.state(), ServerAssociation::State::kClosed);
  expect_close(s.handle(decode(testing::ept_map_request())), Errc::kAssociationClosed);
}

// Windows (raw_protocol test_auth_none_*_bind): a valid auth_level (connect..privacy) of a type
// not implemented is authentication_type_not_recognized, any other level reason_not_specified.
TEST(ServerBind, AuthenticatedBindIsNaked) {
  for (std::uint8_t level : {2, 3, 4, 5, 6}) {
    ServerAssociation s(epm_config());
    Pdu b = bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})});
    b.auth = ntlm_trailer();
    b.auth->auth_level = level;
    b.auth->auth_pad_length = auth_pad_for(b);
    expect_nak(s.handle(wire(b)), Errc::kAuthNotSupported,
               status::kRejectAuthenticationTypeNotRecognized, 1);
  }
  for (std::uint8_t level : {0, 1, 7, 255}) {
    ServerAssociation s(epm_config());
    Pdu b = bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})});
    b.auth = ntlm_trailer();
    b.auth->auth_level = level;
    b.auth->auth_pad_length = auth_pad_for(b);
    expect_nak(s.handle(wire(b)), Errc::kAuthNotSupported, status::kRejectReasonNotSpecified, 1);
  }
}

// Windows (raw_protocol test_invalid_auth_noctx): auth_length set but no trailer fits ->
// bind_nak protocol_version_not_supported.
TEST(ServerBind, BindWithBrokenAuthLengthIsNakedProtocolVersion) {
  {
    // The suite's exact PDU: a 25-byte bind without context items and auth_length 8.
    Bytes raw = *encode_pdu(bind(4, {}));
    raw.resize(25);
    raw[8] = 25;
    raw[10] = 8;
    auto pdu = decode_pdu(raw);
    ASSERT_FALSE(pdu);
    ServerAssociation s(epm_config());
    expect_nak(s.handle_malformed(pdu.error(), raw), static_cast<Errc>(pdu.error().value()),
               status::kRejectProtocolVersionNotSupported, 4);
  }
  Bytes raw = *encode_pdu(bind(3, {}));
  raw[10] = 8;  // auth_length 8, no sec_trailer
  auto pdu = decode_pdu(raw);
  ASSERT_FALSE(pdu);
  ServerAssociation s(epm_config());
  expect_nak(s.handle_malformed(pdu.error(), raw), static_cast<Errc>(pdu.error().value()),
             status::kRejectProtocolVersionNotSupported, 3);
}

TEST(ServerBind, NoContextItemsIsNaked) {
  ServerAssociation s(epm_config());
  const Decision d = s.handle(bind(4, {}));
  expect_nak(d, Errc::kNoContextItems, status::kRejectReasonNotSpecified, 4);
  // Windows pads the bind_nak body to 4 bytes: 16 + 2 + 1 + 2 + 3 (raw_protocol asserts _pad).
  EXPECT_EQ(d.pdu.size(), 24u);
  EXPECT_EQ(std::get<BindNak>(decode(d.pdu).body).trailing, (Bytes{0, 0, 0}));
}

TEST(ServerBind, UnsupportedVersionIsNakedWithVersionList) {
  ServerAssociation s(epm_config());
  Bytes raw = testing::impacket_bind();
  raw[1] = 2;  // rpc_vers_minor 2: decode_pdu refuses it
  auto pdu = decode_pdu(raw);
  ASSERT_FALSE(pdu);
  EXPECT_EQ(pdu.error(), Errc::kBadVersion);
  expect_nak(s.handle_malformed(pdu.error(), raw), Errc::kUnsupportedVersion,
             status::kRejectProtocolVersionNotSupported, 1);
  // Other garbage closes without a reply.
  ServerAssociation t(epm_config());
  const Bytes garbage = testing::ept_map_request();  // a request before bind
  expect_close(t.handle_malformed(make_error_code(Errc::kFragTooShort), garbage),
               Errc::kFragTooShort);
  ServerAssociation v(epm_config());
  expect_close(v.handle_malformed(make_error_code(Errc::kFragTooShort), Bytes(15, 5)),
               Errc::kFragTooShort);
  // A bind whose body does not parse: reason_not_specified (Windows, test_no_auth_no_ctx sends a
  // 25-byte bind without context items).
  ServerAssociation w(epm_config());
  Bytes short_bind = *encode_pdu(bind(6, {}));
  short_bind.resize(25);
  short_bind[8] = 25;
  auto bad = decode_pdu(short_bind);
  ASSERT_FALSE(bad);
  expect_nak(w.handle_malformed(bad.error(), short_bind), static_cast<Errc>(bad.error().value()),
             status::kRejectReasonNotSpecified, 6);
  // A hand-built Pdu with a bad version (decode_pdu never yields one) gets the same answer.
  ServerAssociation u(epm_config());
  Pdu p = bind(2, {item(0, kEpmSyntax, {kNdr20Syntax})});
  p.header.rpc_vers_minor = 7;
  expect_nak(u.handle(p), Errc::kUnsupportedVersion, status::kRejectProtocolVersionNotSupported, 2);
}

// docs/evasions.md B9 / B10, revisited for issue 12: Windows accepts a bind or alter_context with
// any pfc_flags (raw_protocol test_no_auth_request_{bind,alter}_pfc_*) and answers FIRST|LAST
// plus SUPPORT_HEADER_SIGN, and CONC_MPX in a bind_ack.
TEST(ServerBind, AnyPfcFlagsAndTheEchoedOnes) {
  struct Case {
    std::uint8_t flags, bind_ack, alter_resp;
  } cases[] = {
      {0x00, kWhole, kWhole},
      {kFirst, kWhole, kWhole},
      {kLast, kWhole, kWhole},
      {kWhole, kWhole, kWhole},
      {pfc::kSupportHeaderSign, kWhole | pfc::kSupportHeaderSign, kWhole | pfc::kSupportHeaderSign},
      {0x08, kWhole, kWhole},
      {pfc::kConcMpx, kWhole | pfc::kConcMpx, kWhole},
      {pfc::kDidNotExecute, kWhole, kWhole},
      {pfc::kMaybe, kWhole, kWhole},
      {pfc::kObjectUuid, kWhole, kWhole},
      {0xff, kWhole | pfc::kSupportHeaderSign | pfc::kConcMpx, kWhole | pfc::kSupportHeaderSign},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.flags));
    ServerAssociation s(epm_config());
    const Decision b = s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, c.flags));
    ASSERT_EQ(b.action, Action::kSend);
    EXPECT_EQ(decode(b.pdu).header.pfc_flags, c.bind_ack);
    EXPECT_EQ(results_of(b), (std::vector<ContextResult>{accept()}));
    ServerAssociation t = bound_epm_server();
    Pdu a = alter(2, {item(0, kEpmSyntax, {kNdr20Syntax})});
    a.header.pfc_flags = c.flags;
    const Decision r = t.handle(wire(a));
    ASSERT_EQ(r.action, Action::kSend);
    EXPECT_EQ(decode(r.pdu).header.pfc_flags, c.alter_resp);
    EXPECT_EQ(t.handle(request(3, 0, 3)).action, Action::kDispatch);
  }
}

// docs/evasions.md C5.
TEST(ServerBind, DuplicateContextIdWithDifferentUuidsIsNaked) {
  ServerAssociation s(epm_config());
  expect_nak(
      s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(0, kUnknown, {kNdr20Syntax})})),
      Errc::kDuplicateContextId, status::kRejectReasonNotSpecified, 1);
  ServerAssociation t(epm_config());
  EXPECT_EQ(results_of(t.handle(bind(
                1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(0, kEpmSyntax, {kNdr20Syntax})}))),
            (std::vector<ContextResult>{
                accept(), reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
  EXPECT_EQ(t.contexts().accepted(0)->transfer_syntax, kNdr20Syntax);
}

// NDR64-only, several transfer syntaxes per item, and Windows' one acceptance per bind
// (raw_protocol test_no_auth_presentation_ctx_no_ndr64): every item after the accepted one is
// proposed_transfer_syntaxes_not_supported (abstract_syntax_not_supported if its interface is not
// offered), whatever it offers.
TEST(ServerBind, PerItemTransferSyntaxResults) {
  ServerAssociation s(epm_config());
  const auto r = results_of(s.handle(bind(1, {
                                                 item(1, kUnknown, {kNdr20Syntax}),
                                                 item(2, kEpmSyntax, {kNdr64Syntax}),
                                                 item(3, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax}),
                                                 item(4, kEpmSyntax, {kUnknown}),
                                                 item(5, kEpmSyntax, {kNdr20Syntax}),
                                                 item(6, kUnknown, {kNdr20Syntax}),
                                             })));
  EXPECT_EQ(r, (std::vector<ContextResult>{
                   reject(status::kReasonAbstractSyntaxNotSupported),
                   reject(status::kReasonProposedTransferSyntaxesNotSupported),
                   accept(kNdr20Syntax),
                   reject(status::kReasonProposedTransferSyntaxesNotSupported),
                   reject(status::kReasonProposedTransferSyntaxesNotSupported),
                   reject(status::kReasonAbstractSyntaxNotSupported),
               }));
  EXPECT_EQ(s.contexts().accepted(2), nullptr);
  EXPECT_EQ(s.contexts().accepted(3)->transfer_syntax, kNdr20Syntax);
  EXPECT_EQ(s.contexts().accepted(5), nullptr);

  ServerConfig config = epm_config();
  config.accept_ndr64 = true;
  ServerAssociation n(config);
  EXPECT_EQ(
      results_of(n.handle(bind(1, {item(2, kEpmSyntax, {kNdr64Syntax}),
                                   item(3, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax})}))),
      (std::vector<ContextResult>{accept(kNdr64Syntax),
                                  reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
}

// docs/evasions.md C3, revisited for issue 12: an item without transfer syntaxes refuses the whole
// bind (Windows, raw_protocol test_no_auth_presentation_ctx_invalid2) and is a protocol error in
// an alter_context (test_no_auth_presentation_ctx_invalid3).
TEST(ServerBind, ItemWithoutTransferSyntaxes) {
  ServerAssociation s(epm_config());
  expect_nak(s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(1, kEpmSyntax, {})})),
             Errc::kNoTransferSyntaxes, status::kRejectReasonNotSpecified, 1);
  ServerAssociation t = bound_epm_server();
  expect_fault(t.handle(alter(2, {item(0, kEpmSyntax, {})})), Action::kCloseConnection,
               Errc::kNoTransferSyntaxes, status::kNcaSProtoError, 2, 0,
               kWhole | pfc::kDidNotExecute);
}

// docs/evasions.md C14 / MS KB899148: Windows offers NDR, NDR64 and feature negotiation for the
// same interface as three items, with PFC_SUPPORT_HEADER_SIGN. Must be accepted.
TEST(ServerBind, WindowsNdrNdr64BtfnBindIsAccepted) {
  const auto items = std::vector<ContextElement>{item(0, kEpmSyntax, {kNdr20Syntax}),
                                                 item(1, kEpmSyntax, {kNdr64Syntax}),
                                                 item(2, kEpmSyntax, {kBtfn})};
  ServerAssociation s(epm_config());
  EXPECT_EQ(results_of(s.handle(bind(1, items, kWhole | pfc::kSupportHeaderSign))),
            (std::vector<ContextResult>{
                accept(),
                reject(status::kReasonProposedTransferSyntaxesNotSupported),
                {status::kResultNegotiateAck, 0x3, {}},  // both bits, as Windows grants
            }));
  EXPECT_EQ(s.features(), 0x3u);
  EXPECT_EQ(s.contexts().find(2)->state, ContextState::kNegotiateAck);
  EXPECT_EQ(s.handle(request(2, 0, 3)).action, Action::kDispatch);
  // The feature-negotiation context is never usable: fault nca_s_unk_if on p_cont_id 0, and the
  // connection stays (Windows).
  expect_fault(s.handle(request(3, 2, 3)), Action::kSend, Errc::kContextNotAccepted,
               status::kNcaSUnkIf, 3, 0, kWhole | pfc::kDidNotExecute);
  EXPECT_EQ(s.handle(request(4, 0, 3)).action, Action::kDispatch);

  ServerConfig config = epm_config();
  config.accept_ndr64 = true;
  config.supported_features = kBtfnKeepConnectionOnOrphan;
  ServerAssociation n(config);
  EXPECT_EQ(results_of(n.handle(bind(1, items, kWhole | pfc::kSupportHeaderSign))),
            (std::vector<ContextResult>{accept(),
                                        reject(status::kReasonProposedTransferSyntaxesNotSupported),
                                        {status::kResultNegotiateAck, 0x2, {}}}));
  const Decision d = n.handle(request(2, 0, 3));
  ASSERT_EQ(d.action, Action::kDispatch);
  EXPECT_EQ(d.call->transfer_syntax, kNdr20Syntax);
}

// Windows (raw_protocol test_no_auth_bind_time_*): only the first transfer syntax of an item
// names features; two feature items refuse the bind.
TEST(ServerBind, FeatureNegotiationItems) {
  ServerAssociation s(epm_config());
  expect_nak(s.handle(bind(1, {item(0, kEpmSyntax, {kBtfn}), item(1, kUnknown, {kBtfn})})),
             Errc::kTwoFeatureItems, status::kRejectReasonNotSpecified, 1);
  ServerAssociation t(epm_config());
  EXPECT_EQ(results_of(t.handle(bind(1, {item(1, kUnknown, {kUnknown, kBtfn, kBtfn})}))),
            (std::vector<ContextResult>{reject(status::kReasonAbstractSyntaxNotSupported)}));
  ServerAssociation u(epm_config());
  EXPECT_EQ(
      results_of(u.handle(bind(1, {item(1, kEpmSyntax,
                                        {make_bind_time_feature_syntax(0x1),
                                         make_bind_time_feature_syntax(0x2), kNdr20Syntax})}))),
      (std::vector<ContextResult>{{status::kResultNegotiateAck, 0x1, {}}}));
  EXPECT_EQ(u.contexts().accepted(1), nullptr);
}

// docs/evasions.md C1: accept the known interfaces, reject the unknown ones, per item. Impacket's
// multi-item bind (LE and BE) against a server offering SAMR and EPM must yield exactly the
// results of the Windows-like bind_ack vector.
TEST(ServerBind, ImpacketMultiItemBindMatchesReferenceResults) {
  auto expected = std::get<BindAck>(vector_pdu("impacket_bind_ack_multi").body).results;
  // The vector is hand-built (tests/vectors/gen_impacket_pdus.py) and accepts item 3 too; Windows
  // accepts one context per bind (association.h), so item 3 (EPM, NDR) is rejected after item 0.
  ASSERT_EQ(expected.size(), 5u);
  expected[3] = reject(status::kReasonProposedTransferSyntaxesNotSupported);
  for (const char* name : {"impacket_bind_multi", "impacket_bind_multi_be"}) {
    SCOPED_TRACE(name);
    ServerConfig config = epm_config();
    config.interfaces = make_interface_lookup({kSamr, kEpmSyntax});
    config.supported_features = 0x3;
    ServerAssociation s(config);
    const Pdu bind_pdu = vector_pdu(name);
    const Decision d = s.handle(bind_pdu);
    ASSERT_EQ(d.action, Action::kSend);
    const Pdu reply = decode(d.pdu);
    EXPECT_EQ(reply.header.drep, bind_pdu.header.drep);  // mirrors the client's byte order
    EXPECT_EQ(reply.header.call_id, 2u);
    const auto& a = std::get<BindAck>(reply.body);
    EXPECT_EQ(a.results, expected);
    EXPECT_EQ(a.assoc_group_id, 0x1234u);
    EXPECT_EQ(a.secondary_address(), "135");
  }
}

TEST(ServerBind, BigEndianAssociation) {
  ServerAssociation s(epm_config());
  const Decision d = s.handle(vector_pdu("impacket_bind_epm_be"));
  ASSERT_EQ(d.action, Action::kSend);
  Pdu be = decode(d.pdu);
  EXPECT_EQ(be.header.endian(), Endian::kBig);
  be.header.drep = DataRep::little_endian();
  EXPECT_EQ(be, decode(testing::impacket_bind_ack()));
  const Decision call = s.handle(request(5, 0, 2, kWhole, {9, 9}, DataRep::big_endian()));
  ASSERT_EQ(call.action, Action::kDispatch);
  EXPECT_EQ(call.call->call.drep, DataRep::big_endian());
  // docs/evasions.md B7: the byte order is fixed by the bind. Fault in the bind's byte order.
  expect_fault_close(s.handle(request(6, 0, 2)), Errc::kByteOrderChanged, status::kNcaSProtoError,
                     6, Endian::kBig);
}

// ---- ServerAssociation: alter_context --------------------------------------------------------

TEST(ServerAlter, ImpacketAlterContextVectors) {
  const auto expected =
      std::get<AlterContextResp>(vector_pdu("impacket_alter_context_resp").body).results;
  for (const char* suffix : {"", "_be"}) {
    SCOPED_TRACE(suffix);
    ServerConfig config = epm_config();
    config.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
    ServerAssociation s(config);
    ASSERT_EQ(s.handle(vector_pdu(std::string("impacket_bind_epm") + suffix)).action,
              Action::kSend);
    const Decision d = s.handle(vector_pdu(std::string("impacket_alter_context") + suffix));
    ASSERT_EQ(d.action, Action::kSend);
    const Pdu reply = decode(d.pdu);
    EXPECT_EQ(reply.header.call_id, 3u);
    const auto& r = std::get<AlterContextResp>(reply.body);
    EXPECT_EQ(r.results, expected);
    EXPECT_TRUE(r.sec_addr.empty());  // Windows sends sec_addr_len 0 here
    EXPECT_EQ(r.assoc_group_id, 0x12345u);
    EXPECT_EQ(s.contexts().accepted(5)->abstract_syntax, kMgmtSyntax);
  }
  // Without MGMT on offer: provider_rejection / abstract_syntax_not_supported.
  ServerAssociation s(epm_config());
  s.handle(vector_pdu("impacket_bind_epm"));
  EXPECT_EQ(results_of(s.handle(vector_pdu("impacket_alter_context"))),
            (std::vector<ContextResult>{reject(status::kReasonAbstractSyntaxNotSupported)}));
}

TEST(ServerAlter, BeforeBindClosesWithoutReply) {
  ServerAssociation s(epm_config());
  expect_close(s.handle(vector_pdu("impacket_alter_context")), Errc::kAlterBeforeBind);
  expect_close(s.handle(decode(testing::impacket_bind())), Errc::kAssociationClosed);
}

// docs/evasions.md C7: another abstract syntax on an accepted p_cont_id is a protocol error. The
// same abstract syntax without the accepted transfer syntax is rejected per item and the context
// keeps its definition (Windows, raw_protocol test_no_auth_presentation_ctx_valid2).
TEST(ServerAlter, RedefiningAnAcceptedContext) {
  {
    ServerAssociation s = bound_epm_server();
    expect_fault_close(s.handle(alter(2, {item(0, kMgmtSyntax, {kNdr20Syntax})})),
                       Errc::kContextRedefined, status::kNcaSProtoError, 2);
  }
  {
    // Another NDR flavour: Windows would have to switch, a protocol error
    // (raw_protocol test_no_auth_presentation_ctx_invalid4), whether NDR64 is accepted or not.
    for (bool ndr64 : {true, false}) {
      ServerConfig config = epm_config();
      config.accept_ndr64 = ndr64;
      ServerAssociation s = bound_epm_server(config);
      expect_fault_close(s.handle(alter(2, {item(0, kEpmSyntax, {kUnknown, kNdr64Syntax})})),
                         Errc::kContextRedefined, status::kNcaSProtoError, 2);
    }
  }
  {
    // Only syntaxes nobody knows: the item is rejected, the context kept
    // (test_no_auth_presentation_ctx_valid2).
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(
        results_of(s.handle(alter(2, {item(0, kEpmSyntax, {kUnknown, kMgmtSyntax})}))),
        (std::vector<ContextResult>{reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
    EXPECT_EQ(s.contexts().accepted(0)->transfer_syntax, kNdr20Syntax);
    EXPECT_EQ(s.handle(request(3, 0, 3)).action, Action::kDispatch);
  }
  {
    // The same definition again is idempotent, even if NDR64 would now be preferred.
    ServerConfig config = epm_config();
    config.accept_ndr64 = true;
    ServerAssociation s = bound_epm_server(config);
    EXPECT_EQ(results_of(s.handle(alter(2, {item(0, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax})}))),
              (std::vector<ContextResult>{accept(kNdr20Syntax)}));
    EXPECT_EQ(s.contexts().accepted(0)->transfer_syntax, kNdr20Syntax);
  }
  {
    // A rejected context may be offered again with something acceptable.
    ServerAssociation s(epm_config());
    EXPECT_EQ(
        results_of(s.handle(bind(1, {item(1, kEpmSyntax, {kNdr64Syntax})}))),
        (std::vector<ContextResult>{reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
    EXPECT_EQ(results_of(s.handle(alter(2, {item(1, kEpmSyntax, {kNdr20Syntax})}))),
              (std::vector<ContextResult>{accept()}));
  }
}

// Windows: one acceptance per alter_context, and an accepted context re-offered after it is
// rejected but stays usable (raw_protocol test_no_auth_presentation_ctx_no_ndr64).
TEST(ServerAlter, OneAcceptancePerAlterContext) {
  ServerAssociation s = bound_epm_server();
  EXPECT_EQ(results_of(s.handle(alter(
                2, {item(3, kEpmSyntax, {kNdr20Syntax}), item(4, kEpmSyntax, {kNdr20Syntax})}))),
            (std::vector<ContextResult>{
                accept(), reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
  EXPECT_EQ(results_of(s.handle(alter(
                3, {item(4, kEpmSyntax, {kNdr20Syntax}), item(3, kEpmSyntax, {kNdr20Syntax})}))),
            (std::vector<ContextResult>{
                accept(), reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
  EXPECT_EQ(s.handle(request(4, 3, 3)).action, Action::kDispatch);
  EXPECT_EQ(s.handle(request(5, 4, 3)).action, Action::kDispatch);
}

TEST(ServerAlter, ProtocolErrors) {
  {
    // An alter_context that does not parse (25 bytes, no context items: raw_protocol
    // test_alter_no_auth_no_ctx): fault nca_s_proto_error, not executed, then close.
    ServerAssociation s = bound_epm_server();
    Bytes raw = *encode_pdu(alter(7, {}));
    raw.resize(25);
    raw[8] = 25;
    auto bad = decode_pdu(raw);
    ASSERT_FALSE(bad);
    expect_fault(s.handle_malformed(bad.error(), raw), Action::kCloseConnection,
                 static_cast<Errc>(bad.error().value()), status::kNcaSProtoError, 7, 0,
                 kWhole | pfc::kDidNotExecute);
  }
  {
    ServerAssociation s = bound_epm_server();
    expect_fault_close(s.handle(alter(2, {})), Errc::kNoContextItems, status::kNcaSProtoError, 2);
  }
  {
    ServerAssociation s = bound_epm_server();
    expect_fault_close(
        s.handle(alter(2, {item(1, kEpmSyntax, {kNdr20Syntax})}, DataRep::big_endian())),
        Errc::kByteOrderChanged, status::kNcaSProtoError, 2);
  }
  {
    ServerAssociation s = bound_epm_server();
    expect_fault_close(s.handle(alter(2, {item(1, kEpmSyntax, {kNdr20Syntax}),
                                          item(1, kMgmtSyntax, {kNdr20Syntax})})),
                       Errc::kDuplicateContextId, status::kNcaSProtoError, 2);
  }
  {
    // Feature negotiation is bind-time only.
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(
        results_of(s.handle(alter(2, {item(1, kEpmSyntax, {kBtfn})}))),
        (std::vector<ContextResult>{reject(status::kReasonProposedTransferSyntaxesNotSupported)}));
  }
}

// docs/evasions.md C4: thousands of items arrive as many capped alter_contexts; the association
// limit holds across them. Rejected items (every item after a PDU's one acceptance) take room too.
TEST(ServerAlter, ContextLimitAcrossAlterContexts) {
  ServerAssociation s = bound_epm_server();  // 1 context used
  std::uint16_t next_id = 1;
  std::size_t accepted = 1, limited = 0;
  for (std::uint32_t call = 2; call < 2 + 40; ++call) {  // 40 x 60 = 2400 items
    std::vector<ContextElement> items;
    for (int i = 0; i < 60; ++i)
      items.push_back(item(next_id++, kEpmSyntax, {kNdr20Syntax}));
    for (const auto& r : results_of(s.handle(alter(call, items)))) {
      if (r.result == status::kResultAcceptance) ++accepted;
      if (r.reason == status::kReasonLocalLimitExceeded) ++limited;
    }
  }
  // Alter 1: ids 1..60 (one accepted, 59 rejected: 61 entries); alter 2: id 61 accepted, 62 and
  // 63 rejected (64 entries), the rest of it and every later item over the limit.
  EXPECT_EQ(accepted, 3u);
  EXPECT_EQ(limited, 2400 - (kDefaultMaxContexts - 1));
  EXPECT_EQ(s.contexts().size(), kDefaultMaxContexts);
  EXPECT_EQ(s.state(), ServerAssociation::State::kBound);
  // One item per alter_context: every one accepted until the table is full.
  ServerAssociation t = bound_epm_server();
  accepted = 1;
  for (std::uint16_t id = 1; id < 100; ++id) {
    if (results_of(t.handle(alter(id + 1u, {item(id, kEpmSyntax, {kNdr20Syntax})})))[0].result ==
        status::kResultAcceptance) {
      ++accepted;
    }
  }
  EXPECT_EQ(accepted, kDefaultMaxContexts);
}

// ---- ServerAssociation: requests and other PDUs ---------------------------------------------

TEST(ServerRequest, BeforeBindClosesWithoutReply) {
  ServerAssociation s(epm_config());
  expect_close(s.handle(decode(testing::ept_map_request())), Errc::kRequestBeforeBind);
}

// docs/evasions.md C10: never guessed. Windows answers fault nca_s_unk_if on p_cont_id 0 with
// DID_NOT_EXECUTE and keeps the connection (raw_protocol test_no_auth_presentation_ctx_invalid1).
TEST(ServerRequest, UnacceptedContextsGetUnkIfFault) {
  for (std::uint16_t ctx : {1, 7, 0xffff}) {
    ServerConfig config = epm_config();
    ServerAssociation s(config);
    s.handle(bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(1, kUnknown, {kNdr20Syntax})}));
    expect_fault(s.handle(request(5, ctx, 3)), Action::kSend, Errc::kContextNotAccepted,
                 status::kNcaSUnkIf, 5, 0, kWhole | pfc::kDidNotExecute);
    // Nothing was buffered, and the association goes on.
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);
    EXPECT_EQ(s.handle(request(6, 0, 3)).action, Action::kDispatch);
    // A FIRST-only fragment on an unknown context is refused the same way.
    expect_fault(s.handle(request(7, ctx, 3, kFirst)), Action::kSend, Errc::kContextNotAccepted,
                 status::kNcaSUnkIf, 7, 0, kWhole | pfc::kDidNotExecute);
    EXPECT_EQ(s.handle(request(8, 0, 3)).action, Action::kDispatch);
  }
}

// Windows answers p_cont_id & 0xff in responses (raw_protocol test_orphaned_no_request).
TEST(ServerResponse, ContextIdLowByte) {
  ServerAssociation s(epm_config());
  s.handle(bind(1, {item(0xffff, kEpmSyntax, {kNdr20Syntax})}));
  const Decision d = s.handle(request(2, 0xffff, 3));
  ASSERT_EQ(d.action, Action::kDispatch);
  auto frags = s.build_response(d.call->call, Bytes(4, 1));
  ASSERT_TRUE(frags);
  EXPECT_EQ(std::get<Response>(decode(frags->front()).body).p_cont_id, 0xff);
}

// docs/evasions.md B11 / B12: fragment header disagreement, missing FIRST, duplicate FIRST.
TEST(ServerRequest, FragmentRules) {
  {
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(s.handle(request(7, 0, 3, kFirst, Bytes(8, 1))).action, Action::kIgnore);
    EXPECT_EQ(s.handle(request(7, 0, 3, 0, Bytes(8, 2))).action, Action::kIgnore);
    const Decision d = s.handle(request(7, 0, 3, kLast, Bytes(3, 3)));
    ASSERT_EQ(d.action, Action::kDispatch);
    EXPECT_EQ(d.call->call.stub.size(), 19u);
    EXPECT_EQ(d.call->call.stub[18], 3);
  }
  {
    ServerAssociation s = bound_epm_server();
    s.handle(request(7, 0, 3, kFirst));
    expect_fault_close(s.handle(request(7, 0, 4, kLast)), Errc::kFragmentMismatch,
                       status::kNcaSProtoError, 7);
  }
  {
    ServerAssociation s = bound_epm_server();
    s.handle(request(7, 0, 3, kFirst));
    expect_fault_close(s.handle(request(7, 1, 3, kLast)), Errc::kFragmentMismatch,
                       status::kNcaSProtoError, 7);
  }
  {
    ServerAssociation s = bound_epm_server();
    expect_fault(s.handle(request(8, 0, 3, kLast)), Action::kCloseConnection, Errc::kUnknownCall,
                 status::kNcaSProtoError, 8, 0, kWhole);
  }
  {
    ServerAssociation s = bound_epm_server();
    expect_fault(s.handle(request(8, 0, 3, 0)), Action::kCloseConnection, Errc::kUnknownCall,
                 status::kNcaSProtoError, 8, 0, kWhole);
  }
  {
    // A second FIRST of the call being reassembled: one call at a time (below).
    ServerAssociation s = bound_epm_server();
    s.handle(request(7, 0, 3, kFirst));
    expect_fault(s.handle(request(7, 0, 3, kFirst)), Action::kCloseConnection,
                 Errc::kInterleavedCall, status::kNcaSProtoError, 7, 0, kWhole);
  }
}

// Windows reassembles one call at a time (raw_protocol test_orphaned_request_after_first_*):
// without multiplexing the fault names the open call, with it the new one (p_cont_id 0).
TEST(ServerRequest, OneCallInReassembly) {
  {
    ServerAssociation s(epm_config());
    s.handle(bind(1, {item(5, kEpmSyntax, {kNdr20Syntax})}));
    EXPECT_EQ(s.handle(request(1, 5, 3, kFirst)).action, Action::kIgnore);
    expect_fault(s.handle(request(2, 5, 3)), Action::kCloseConnection, Errc::kInterleavedCall,
                 status::kNcaSProtoError, 1, 5, kWhole);
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);
  }
  {
    ServerAssociation s(epm_config());
    const Decision b = s.handle(bind(1, {item(5, kEpmSyntax, {kNdr20Syntax})}, pfc::kConcMpx));
    ASSERT_EQ(decode(b.pdu).header.pfc_flags, kWhole | pfc::kConcMpx);
    EXPECT_EQ(s.handle(request(1, 5, 3, kFirst)).action, Action::kIgnore);
    expect_fault(s.handle(request(2, 4, 3)), Action::kCloseConnection, Errc::kInterleavedCall,
                 status::kNcaSProtoError, 2, 0, kWhole);
  }
  {
    // A later fragment of another call while one is open.
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(s.handle(request(1, 0, 3, kFirst)).action, Action::kIgnore);
    expect_fault(s.handle(request(2, 0, 3, kLast)), Action::kCloseConnection,
                 Errc::kInterleavedCall, status::kNcaSProtoError, 1, 0, kWhole);
  }
}

// docs/evasions.md B2 / B15.
TEST(ServerRequest, Limits) {
  {
    // Negotiated 4280, but Windows takes fragments up to its own limit (5840) and refuses
    // larger ones with nca_s_proto_error on p_cont_id 0 (raw_protocol test_neg_xmit_*).
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(s.handle(request(2, 0, 3, kWhole, Bytes(4280 - 23, 0))).action, Action::kDispatch);
    EXPECT_EQ(s.handle(request(3, 0, 3, kWhole, Bytes(5840 - 24, 0))).action, Action::kDispatch);
    expect_fault(s.handle(request(4, 0, 3, kWhole, Bytes(5840 - 23, 0))), Action::kCloseConnection,
                 Errc::kFragTooLong, status::kNcaSProtoError, 4, 0, kWhole);
  }
  {
    // The framer refuses such a fragment before it decodes: the same answer.
    ServerAssociation s = bound_epm_server();
    const Bytes raw = *encode_pdu(request(9, 0, 3, kWhole, Bytes(5840 - 23, 0)));
    expect_fault(s.handle_malformed(make_error_code(Errc::kFragTooLong), raw),
                 Action::kCloseConnection, Errc::kFragTooLong, status::kNcaSProtoError, 9, 0,
                 kWhole);
  }
  {
    ServerConfig config = epm_config();
    config.reassembly = ReassemblyLimits{64, 2};
    ServerAssociation s = bound_epm_server(config);
    expect_fault_close(s.handle(request(1, 0, 3, kWhole, Bytes(65, 0))), Errc::kStubTooLarge,
                       status::kRpcSAccessDenied, 1);
  }
  {
    // Windows (raw_protocol test_auth_none_*_request): access denied, not executed but without
    // the flag, on the request's context.
    ServerAssociation s = bound_epm_server();
    const Pdu q = vector_pdu("impacket_request_auth");
    expect_fault(s.handle(q), Action::kCloseConnection, Errc::kAuthNotSupported,
                 status::kRpcSAccessDenied, 6, std::get<Request>(q.body).p_cont_id, kWhole);
  }
}

// Issue 10 item 1: the cap of the interface a context is bound to, the connection's budget and
// the call deadline. Over a cap: fault 5 (access denied, Samba's answer), then close.
TEST(ServerRequest, InterfaceStubCapConnectionBudgetAndCallDeadline) {
  ServerConfig config = epm_config();
  config.stub_limit = [](const SyntaxId& s) -> std::optional<std::size_t> {
    if (s.uuid == kEpmSyntax.uuid) return 8000;
    return std::nullopt;
  };
  {
    ServerAssociation s = bound_epm_server(config);
    EXPECT_EQ(s.stub_cap(0), 8000u);
    EXPECT_EQ(s.handle(request(2, 0, 3, kFirst, Bytes(5000, 0))).action, Action::kIgnore);
    EXPECT_GE(s.reassembly_held_bytes(), 5000u);
    EXPECT_EQ(s.handle(request(2, 0, 3, kLast, Bytes(3000, 0))).action, Action::kDispatch);
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);
    EXPECT_EQ(s.handle(request(3, 0, 3, kFirst, Bytes(5000, 0))).action, Action::kIgnore);
    expect_fault_close(s.handle(request(3, 0, 3, 0, Bytes(3001, 0))), Errc::kStubTooLarge,
                       status::kRpcSAccessDenied, 3);
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);
  }
  {
    // A cap below one full fragment's stub is raised to it (5840 - 24): Windows answers any call
    // that fits one fragment (raw_protocol test_neg_xmit_* send 5816 bytes to MGMT).
    config.stub_limit = [](const SyntaxId&) -> std::optional<std::size_t> { return 8; };
    ServerAssociation s = bound_epm_server(config);
    EXPECT_EQ(s.stub_cap(0), 5816u);
    EXPECT_EQ(s.handle(request(2, 0, 3, kWhole, Bytes(5816, 0))).action, Action::kDispatch);
    EXPECT_EQ(s.handle(request(3, 0, 3, kFirst, Bytes(5000, 0))).action, Action::kIgnore);
    expect_fault_close(s.handle(request(3, 0, 3, kLast, Bytes(817, 0))), Errc::kStubTooLarge,
                       status::kRpcSAccessDenied, 3);
  }
  {
    config.stub_limit = [](const SyntaxId&) -> std::optional<std::size_t> { return std::nullopt; };
    config.reassembly.max_stub_size = 50;  // the default cap then applies
    ServerAssociation s = bound_epm_server(config);
    EXPECT_EQ(s.stub_cap(0), 50u);
    expect_fault_close(s.handle(request(2, 0, 3, kFirst, Bytes(51, 0))), Errc::kStubTooLarge,
                       status::kRpcSAccessDenied, 2);
  }
  {
    ServerConfig budget = epm_config();
    budget.reassembly.max_held_bytes = 64;
    ServerAssociation s = bound_epm_server(budget);
    // One call at a time (Windows), so the budget is met by one call growing past it.
    EXPECT_EQ(s.handle(request(2, 0, 3, kFirst, Bytes(40, 0))).action, Action::kIgnore);
    EXPECT_EQ(s.reassembly_held_bytes(), 40u);
    expect_fault_close(s.handle(request(2, 0, 3, 0, Bytes(30, 0))), Errc::kReassemblyBudget,
                       status::kRpcSAccessDenied, 2);
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);  // closing frees every unfinished call
  }
  {
    using std::chrono::milliseconds;
    ServerConfig timed = epm_config();
    timed.reassembly.call_timeout = milliseconds(200);
    ServerAssociation s = bound_epm_server(timed);
    const TimePoint t0 = TimePoint() + std::chrono::hours(1);
    EXPECT_FALSE(s.call_expiry());
    EXPECT_EQ(s.handle(request(2, 0, 3, kFirst), t0).action, Action::kIgnore);
    EXPECT_EQ(s.handle(request(2, 0, 3, 0), t0 + milliseconds(150)).action, Action::kIgnore);
    EXPECT_EQ(s.call_expiry(), t0 + milliseconds(200));
    EXPECT_EQ(s.handle_expiry(t0 + milliseconds(199)).action, Action::kIgnore);
    const Decision d = s.handle_expiry(t0 + milliseconds(200));
    expect_close(d, Errc::kCallTimeout);
    EXPECT_TRUE(d.pdu.empty());
    EXPECT_EQ(s.state(), ServerAssociation::State::kClosed);
    EXPECT_EQ(s.reassembly_held_bytes(), 0u);
  }
}

// docs/evasions.md B16.
TEST(ServerOther, Auth3ShutdownAndServerTypesFromTheClient) {
  for (const char* name :
       {"impacket_auth3", "impacket_response", "impacket_fault", "impacket_bind_ack_multi",
        "impacket_bind_nak", "impacket_alter_context_resp"}) {
    SCOPED_TRACE(name);
    ServerAssociation s = bound_epm_server();
    expect_close(s.handle(vector_pdu(name)), Errc::kUnexpectedPdu);
  }
  ServerAssociation s = bound_epm_server();
  expect_close(s.handle(wire(make_pdu(Shutdown{}, 9))), Errc::kUnexpectedPdu);
}

// Windows notes co_cancel / orphaned and goes on: the call being reassembled completes with its
// LAST fragment (raw_protocol test_co_cancel_request_after_first,
// test_orphaned_request_after_first_last; rpcgate abandoned the call before).
TEST(ServerOther, OrphanedAndCancelAreIgnored) {
  for (const auto& body : {PduBody{Orphaned{}}, PduBody{CoCancel{}}}) {
    ServerAssociation s = bound_epm_server();
    EXPECT_EQ(s.handle(request(7, 0, 3, kFirst)).action, Action::kIgnore);
    const Decision d = s.handle(wire(make_pdu(body, 7)));
    EXPECT_EQ(d.action, Action::kIgnore);
    EXPECT_FALSE(d.reason);
    EXPECT_EQ(s.handle(request(7, 0, 3, kLast)).action, Action::kDispatch);

    ServerAssociation t = bound_epm_server();
    const Decision unknown = t.handle(wire(make_pdu(body, 99)));
    EXPECT_EQ(unknown.action, Action::kIgnore);
    EXPECT_EQ(unknown.reason, Errc::kUnknownCall);
    EXPECT_EQ(t.state(), ServerAssociation::State::kBound);

    ServerAssociation u(epm_config());
    expect_close(u.handle(wire(make_pdu(body, 1))), Errc::kRequestBeforeBind);
  }
}

TEST(ServerResponse, SplitWithNegotiatedSize) {
  ServerAssociation s = bound_epm_server();
  const Decision d = s.handle(request(4, 0, 2));
  ASSERT_EQ(d.action, Action::kDispatch);
  Bytes stub(10000);
  for (std::size_t i = 0; i < stub.size(); ++i)
    stub[i] = static_cast<std::uint8_t>(i);
  auto frags = s.build_response(d.call->call, stub);
  ASSERT_TRUE(frags);
  ASSERT_EQ(frags->size(), 3u);
  Bytes joined;
  for (std::size_t i = 0; i < frags->size(); ++i) {
    EXPECT_LE((*frags)[i].size(), 4280u);
    const Pdu p = decode((*frags)[i]);
    EXPECT_EQ(p.header.call_id, 4u);
    EXPECT_EQ(bool(p.header.pfc_flags & kFirst), i == 0);
    EXPECT_EQ(bool(p.header.pfc_flags & kLast), i + 1 == frags->size());
    const auto& r = std::get<Response>(p.body);
    joined.insert(joined.end(), r.stub.begin(), r.stub.end());
  }
  EXPECT_EQ(joined, stub);
  ServerAssociation unbound(epm_config());
  EXPECT_FALSE(unbound.build_response(d.call->call, stub));
}

// ---- AssociationObserver -----------------------------------------------------------------------

constexpr auto kC2S = Direction::kClientToServer;
constexpr auto kS2C = Direction::kServerToClient;

void expect_allow(const Verdict& v) {
  EXPECT_TRUE(v.allowed()) << v.reason.message();
  EXPECT_FALSE(v.reason) << v.reason.message();
}

void expect_drop(const Verdict& v, Errc reason) {
  EXPECT_FALSE(v.allowed());
  EXPECT_EQ(v.reason, reason) << v.reason.message();
}

// An observer that has seen the golden Impacket bind and our server's bind_ack.
AssociationObserver bound_observer() {
  AssociationObserver o;
  expect_allow(o.observe(kC2S, decode(testing::impacket_bind())));
  expect_allow(o.observe(kS2C, decode(testing::impacket_bind_ack())));
  EXPECT_TRUE(o.bound());
  return o;
}

TEST(Observer, GoldenExchange) {
  AssociationObserver o = bound_observer();
  EXPECT_EQ(o.max_recv_frag(), 4280);
  const Verdict v = o.observe(kC2S, decode(testing::ept_map_request()));
  expect_allow(v);
  ASSERT_TRUE(v.request);
  EXPECT_EQ(v.request->abstract_syntax, kEpmSyntax);
  EXPECT_EQ(v.request->transfer_syntax, kNdr20Syntax);
  EXPECT_EQ(v.request->opnum, 3);
  EXPECT_EQ(v.request->call_id, 1u);
  EXPECT_TRUE(v.request->first_fragment);
  expect_allow(o.observe(kS2C, decode(testing::ept_map_response())));
  // The call is answered: a second response is unsolicited (let through, flagged).
  const Verdict again = o.observe(kS2C, decode(testing::op_rng_fault()));
  EXPECT_TRUE(again.allowed());
  EXPECT_EQ(again.reason, Errc::kUnsolicitedResponse);
}

TEST(Observer, ImpacketMultiBindVectors) {
  for (const char* suffix : {"", "_be"}) {
    SCOPED_TRACE(suffix);
    const std::string s(suffix);
    AssociationObserver o;
    expect_allow(o.observe(kC2S, vector_pdu("impacket_bind_multi" + s)));
    expect_allow(o.observe(kS2C, vector_pdu("impacket_bind_ack_multi" + s)));
    const DataRep drep = s.empty() ? DataRep::little_endian() : DataRep::big_endian();
    const Verdict samr = o.observe(kC2S, request(3, 0, 1, kWhole, {}, drep));
    expect_allow(samr);
    EXPECT_EQ(samr.request->abstract_syntax, kSamr);
    const Verdict epm = o.observe(kC2S, request(4, 3, 2, kWhole, {}, drep));
    expect_allow(epm);
    EXPECT_EQ(epm.request->abstract_syntax, kEpmSyntax);
    EXPECT_EQ(o.contexts().find(2)->state, ContextState::kNegotiateAck);
    // ctx 1 (NDR64, rejected), 2 (negotiate_ack, docs/evasions.md C12), 4 (unknown interface).
    for (std::uint16_t ctx : {1, 2, 4, 9}) {
      AssociationObserver p;
      p.observe(kC2S, vector_pdu("impacket_bind_multi" + s));
      p.observe(kS2C, vector_pdu("impacket_bind_ack_multi" + s));
      expect_drop(p.observe(kC2S, request(5, ctx, 1, kWhole, {}, drep)), Errc::kContextNotAccepted);
      expect_drop(p.observe(kS2C, vector_pdu("impacket_response" + s)), Errc::kAssociationClosed);
    }
  }
}

TEST(Observer, ImpacketAlterContextVectors) {
  for (const char* suffix : {"", "_be"}) {
    const std::string s(suffix);
    AssociationObserver o;
    expect_allow(o.observe(kC2S, vector_pdu("impacket_bind_epm" + s)));
    const DataRep drep = s.empty() ? DataRep::little_endian() : DataRep::big_endian();
    expect_allow(o.observe(kS2C, ack<BindAck>(1, {accept()}, 4280, drep)));
    expect_allow(o.observe(kC2S, vector_pdu("impacket_alter_context" + s)));
    expect_allow(o.observe(kS2C, vector_pdu("impacket_alter_context_resp" + s)));
    EXPECT_EQ(o.contexts().accepted(5)->abstract_syntax, kMgmtSyntax);
  }
}

TEST(Observer, SecondBindIsDroppedAndDropIsSticky) {
  AssociationObserver o = bound_observer();
  expect_drop(o.observe(kC2S, decode(testing::impacket_bind())), Errc::kBindAlreadyDone);
  EXPECT_TRUE(o.dropped());
  expect_drop(o.observe(kC2S, decode(testing::ept_map_request())), Errc::kAssociationClosed);
  expect_drop(o.observe(kS2C, decode(testing::op_rng_fault())), Errc::kAssociationClosed);
  // A second bind while the first is pending, too.
  AssociationObserver p;
  p.observe(kC2S, decode(testing::impacket_bind()));
  expect_drop(p.observe(kC2S, decode(testing::impacket_bind())), Errc::kBindAlreadyDone);
}

TEST(Observer, AlterBeforeBindAndWhilePending) {
  AssociationObserver o;
  expect_drop(o.observe(kC2S, vector_pdu("impacket_alter_context")), Errc::kAlterBeforeBind);
  AssociationObserver p;
  p.observe(kC2S, decode(testing::impacket_bind()));
  expect_drop(p.observe(kC2S, vector_pdu("impacket_alter_context")), Errc::kPresentationPending);
  AssociationObserver q = bound_observer();
  expect_allow(q.observe(kC2S, alter(2, {item(1, kMgmtSyntax, {kNdr20Syntax})})));
  expect_drop(q.observe(kC2S, alter(3, {item(2, kMgmtSyntax, {kNdr20Syntax})})),
              Errc::kPresentationPending);
}

// docs/evasions.md A2: a request pipelined behind the bind is never forwarded.
TEST(Observer, RequestBeforeBindAck) {
  AssociationObserver o;
  expect_drop(o.observe(kC2S, decode(testing::ept_map_request())), Errc::kRequestBeforeBind);
  AssociationObserver p;
  expect_allow(p.observe(kC2S, decode(testing::impacket_bind())));
  expect_drop(p.observe(kC2S, decode(testing::ept_map_request())), Errc::kRequestBeforeBind);
}

// docs/evasions.md C11.
TEST(Observer, BindAckMustMatchThePendingBind) {
  const auto bind2 = bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(1, kSamr, {kNdr20Syntax})});
  struct Case {
    Pdu reply;
    Errc reason;
  } cases[] = {
      {ack<BindAck>(1, {accept()}), Errc::kResultCountMismatch},
      {ack<BindAck>(1, {accept(), accept(), accept()}), Errc::kResultCountMismatch},
      {ack<BindAck>(2, {accept(), accept()}), Errc::kUnsolicitedBindAck},
      {ack<AlterContextResp>(1, {accept(), accept()}), Errc::kUnsolicitedBindAck},
      {ack<BindAck>(1, {accept(), accept(kNdr64Syntax)}), Errc::kInvalidContextResult},
      {ack<BindAck>(1, {accept(), accept(kBtfn)}), Errc::kInvalidContextResult},
      {ack<BindAck>(1, {accept(), {status::kResultNegotiateAck, 3, {}}}),
       Errc::kInvalidContextResult},
      {ack<BindAck>(1, {accept(), {7, 0, {}}}), Errc::kInvalidContextResult},
      {wire(make_pdu(BindNak{0, {{5, 0}}, {}}, 2)), Errc::kUnsolicitedBindAck},
  };
  for (const auto& c : cases) {
    AssociationObserver o;
    expect_allow(o.observe(kC2S, bind2));
    expect_drop(o.observe(kS2C, c.reply), c.reason);
    EXPECT_EQ(o.contexts().size(), 0u);  // nothing half-recorded
  }
  AssociationObserver o;
  expect_drop(o.observe(kS2C, decode(testing::impacket_bind_ack())), Errc::kUnsolicitedBindAck);
}

TEST(Observer, BindNakEndsTheAssociation) {
  AssociationObserver o;
  o.observe(kC2S, vector_pdu("impacket_bind_epm"));
  Pdu nak = vector_pdu("impacket_bind_nak");
  nak.header.call_id = 1;
  expect_allow(o.observe(kS2C, wire(nak)));
  expect_drop(o.observe(kC2S, decode(testing::impacket_bind())), Errc::kAssociationClosed);
}

// docs/evasions.md B7.
TEST(Observer, ByteOrderChange) {
  AssociationObserver o = bound_observer();
  expect_drop(o.observe(kC2S, request(2, 0, 3, kWhole, {}, DataRep::big_endian())),
              Errc::kByteOrderChanged);
  AssociationObserver p = bound_observer();
  expect_drop(
      p.observe(kC2S, alter(2, {item(1, kMgmtSyntax, {kNdr20Syntax})}, DataRep::big_endian())),
      Errc::kByteOrderChanged);
  AssociationObserver q = bound_observer();
  q.observe(kC2S, request(2, 0, 3));
  expect_drop(q.observe(kS2C, decode(build_fault(2, 0, 1, DataRep::big_endian()))),
              Errc::kByteOrderChanged);
}

// docs/evasions.md C6 / C7.
TEST(Observer, AlterContext) {
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kC2S, alter(2, {item(0, kSamr, {kNdr20Syntax})})),
                Errc::kContextRedefined);
  }
  {
    // Identical re-offer answered with the same syntax: fine; with another: drop.
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, alter(2, {item(0, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax})})));
    expect_allow(o.observe(kS2C, ack<AlterContextResp>(2, {accept()})));
    expect_allow(o.observe(kC2S, alter(3, {item(0, kEpmSyntax, {kNdr64Syntax, kNdr20Syntax})})));
    expect_drop(o.observe(kS2C, ack<AlterContextResp>(3, {accept(kNdr64Syntax)})),
                Errc::kContextRedefined);
  }
  {
    // A server rejecting a re-offer of an accepted context keeps the context (Windows, and
    // ServerAssociation: the re-offer lacks the transfer syntax, or comes after another
    // acceptance in the same alter_context).
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, alter(2, {item(0, kEpmSyntax, {kUnknown})})));
    expect_allow(o.observe(
        kS2C,
        ack<AlterContextResp>(2, {reject(status::kReasonProposedTransferSyntaxesNotSupported)})));
    EXPECT_EQ(o.contexts().accepted(0)->transfer_syntax, kNdr20Syntax);
    expect_allow(o.observe(kC2S, request(3, 0, 3)));
  }
  {
    // A new context added by alter_context: requests see its interface only once acked.
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, alter(2, {item(1, kSamr, {kNdr20Syntax})})));
    expect_drop(o.observe(kC2S, request(3, 1, 0)), Errc::kContextNotAccepted);
  }
  {
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, alter(2, {item(1, kSamr, {kNdr20Syntax})})));
    expect_allow(o.observe(kS2C, ack<AlterContextResp>(2, {accept()})));
    const Verdict v = o.observe(kC2S, request(3, 1, 0));
    expect_allow(v);
    EXPECT_EQ(v.request->abstract_syntax, kSamr);
    // negotiate_ack is bind-time only.
    expect_allow(o.observe(kC2S, alter(4, {item(2, kSamr, {kBtfn})})));
    expect_drop(o.observe(kS2C, ack<AlterContextResp>(4, {{status::kResultNegotiateAck, 2, {}}})),
                Errc::kInvalidContextResult);
  }
  {
    // A fault answering the alter_context clears it.
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, alter(2, {item(1, kSamr, {kNdr20Syntax})})));
    expect_allow(o.observe(
        kS2C, decode(build_fault(2, 0, status::kNcaSProtoError, DataRep::little_endian()))));
    expect_drop(o.observe(kC2S, request(3, 1, 0)), Errc::kContextNotAccepted);
  }
}

// docs/evasions.md C3, C5, B9, B10.
TEST(Observer, BindContentRules) {
  struct Case {
    Pdu bind;
    Errc reason;
  } cases[] = {
      {bind(1, {}), Errc::kNoContextItems},
      {bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(1, kSamr, {})}),
       Errc::kNoTransferSyntaxes},
      {bind(1, {item(0, kEpmSyntax, {kNdr20Syntax}), item(0, kSamr, {kNdr20Syntax})}),
       Errc::kDuplicateContextId},
  };
  for (const auto& c : cases) {
    AssociationObserver o;
    expect_drop(o.observe(kC2S, c.bind), c.reason);
  }
  // Any pfc_flags make a complete bind whose UUIDs are enforced (Suricata #8457; Windows and
  // ServerAssociation accept FIRST alone and LAST alone too, raw_protocol
  // test_no_auth_request_bind_pfc_*).
  for (std::uint8_t flags : {0x00, 0x01, 0x02, 0x04, 0x10, 0xff}) {
    SCOPED_TRACE(static_cast<int>(flags));
    AssociationObserver o;
    expect_allow(o.observe(kC2S, bind(1, {item(0, kEpmSyntax, {kNdr20Syntax})}, flags)));
    expect_allow(o.observe(kS2C, ack<BindAck>(1, {accept()})));
    EXPECT_EQ(o.observe(kC2S, request(2, 0, 3)).request->abstract_syntax, kEpmSyntax);
  }
}

// docs/evasions.md C4: the observer's table limit holds across alter_contexts.
TEST(Observer, ContextLimitAcrossAlterContexts) {
  AssociationObserver o = bound_observer();
  std::uint16_t next_id = 1;
  Verdict last;
  for (std::uint32_t call = 2; call < 40 && !o.dropped(); ++call) {
    std::vector<ContextElement> items;
    std::vector<ContextResult> results;
    for (int i = 0; i < 60; ++i) {
      items.push_back(item(next_id++, kEpmSyntax, {kNdr20Syntax}));
      results.push_back(accept());
    }
    expect_allow(o.observe(kC2S, alter(call, items)));
    last = o.observe(kS2C, ack<AlterContextResp>(call, results));
  }
  expect_drop(last, Errc::kTooManyContexts);
  EXPECT_LE(o.contexts().size(), kDefaultMaxContexts);
  AssociationObserver p;
  std::vector<ContextElement> many;
  for (std::uint16_t i = 0; i < 64 + 1; ++i)
    many.push_back(item(i, kEpmSyntax, {kNdr20Syntax}));
  Bind b;
  b.contexts = many;
  Pdu pdu = make_pdu(b, 1);  // 65 items: over the codec's default cap, so not via wire()
  expect_drop(p.observe(kC2S, pdu), Errc::kTooManyContexts);
}

// docs/evasions.md B11, B12, B15, B2.
TEST(Observer, RequestFragments) {
  {
    AssociationObserver o = bound_observer();
    const Verdict first = o.observe(kC2S, request(7, 0, 3, kFirst));
    expect_allow(first);
    EXPECT_TRUE(first.request->first_fragment);
    const Verdict mid = o.observe(kC2S, request(7, 0, 3, 0));
    expect_allow(mid);
    EXPECT_FALSE(mid.request->first_fragment);
    expect_allow(o.observe(kC2S, request(7, 0, 3, kLast)));
    expect_drop(o.observe(kC2S, request(7, 0, 3, kLast)), Errc::kUnknownCall);
  }
  {
    AssociationObserver o = bound_observer();
    o.observe(kC2S, request(7, 0, 3, kFirst));
    expect_drop(o.observe(kC2S, request(7, 0, 4, kLast)), Errc::kFragmentMismatch);
  }
  {
    AssociationObserver o = bound_observer();
    o.observe(kC2S, request(7, 0, 3, kFirst));
    expect_drop(o.observe(kC2S, request(7, 1, 3, kLast)), Errc::kFragmentMismatch);
  }
  {
    AssociationObserver o = bound_observer();
    o.observe(kC2S, request(7, 0, 3, kFirst));
    expect_drop(o.observe(kC2S, request(7, 0, 3, kFirst)), Errc::kDuplicateFirstFragment);
  }
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kC2S, request(7, 0, 3, 0)), Errc::kUnknownCall);
  }
  {
    // One call in reassembly at a time, as the server (and Windows).
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, request(1, 0, 3, kFirst)));
    expect_drop(o.observe(kC2S, request(2, 0, 3, kFirst)), Errc::kInterleavedCall);
    AssociationObserver p = bound_observer();
    expect_allow(p.observe(kC2S, request(1, 0, 3, kFirst)));
    expect_drop(p.observe(kC2S, request(2, 0, 3)), Errc::kInterleavedCall);
  }
  {
    AssociationObserver o(ObserverLimits{64, 2, 3});
    expect_allow(o.observe(kC2S, decode(testing::impacket_bind())));
    expect_allow(o.observe(kS2C, decode(testing::impacket_bind_ack())));
    for (std::uint32_t id = 1; id <= 3; ++id)
      expect_allow(o.observe(kC2S, request(id, 0, 3)));
    expect_drop(o.observe(kC2S, request(4, 0, 3)), Errc::kTooManyCalls);
  }
  {
    // Negotiated 4280; the server takes fragments up to its own 5840 (as Windows), so does the
    // observer.
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kC2S, request(2, 0, 3, kWhole, Bytes(4280 - 23, 0))));
    expect_allow(o.observe(kC2S, request(3, 0, 3, kWhole, Bytes(5840 - 24, 0))));
    expect_drop(o.observe(kC2S, request(4, 0, 3, kWhole, Bytes(5840 - 23, 0))), Errc::kFragTooLong);
  }
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kC2S, vector_pdu("impacket_request_auth")), Errc::kAuthNotSupported);
  }
}

// docs/evasions.md B16, C14.
TEST(Observer, Auth3CancelOrphanedShutdown) {
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kC2S, vector_pdu("impacket_auth3")), Errc::kUnexpectedPdu);
  }
  {
    // Authenticated Windows-style bind: auth3 then becomes legal; so do signed requests.
    AssociationObserver o;
    expect_allow(o.observe(
        kC2S, with_auth(bind(1,
                             {item(0, kEpmSyntax, {kNdr20Syntax}),
                              item(1, kEpmSyntax, {kNdr64Syntax}), item(2, kEpmSyntax, {kBtfn})},
                             kWhole | pfc::kSupportHeaderSign))));
    expect_allow(o.observe(
        kS2C,
        with_auth(ack<BindAck>(1, {accept(), reject(2), {status::kResultNegotiateAck, 3, {}}}))));
    expect_allow(o.observe(kC2S, vector_pdu("impacket_auth3")));
    const Verdict v = o.observe(kC2S, vector_pdu("impacket_request_auth"));  // ctx 0, opnum 3
    expect_allow(v);
    EXPECT_EQ(v.request->abstract_syntax, kEpmSyntax);
  }
  {
    // The server ignores co_cancel / orphaned for no call (raw_protocol test_co_cancel_no_request,
    // test_orphaned_no_request), and an orphaned may race its call's response: allowed, marked.
    AssociationObserver o = bound_observer();
    const Verdict v = o.observe(kC2S, wire(make_pdu(Orphaned{}, 7)));
    EXPECT_TRUE(v.allowed());
    EXPECT_EQ(v.reason, Errc::kUnknownCall);
    AssociationObserver p = bound_observer();
    EXPECT_TRUE(p.observe(kC2S, wire(make_pdu(CoCancel{}, 7))).allowed());
    expect_allow(p.observe(kC2S, request(8, 0, 3)));
    AssociationObserver q;
    expect_drop(q.observe(kC2S, wire(make_pdu(CoCancel{}, 7))), Errc::kRequestBeforeBind);
  }
  {
    // The call goes on after an orphaned: its LAST fragment completes it (Windows).
    AssociationObserver o = bound_observer();
    o.observe(kC2S, request(7, 0, 3, kFirst));
    expect_allow(o.observe(kC2S, wire(make_pdu(Orphaned{}, 7))));
    expect_allow(o.observe(kC2S, request(7, 0, 3, kLast)));
    expect_allow(o.observe(kS2C, decode(build_fault(7, 0, 1, DataRep::little_endian()))));
  }
  {
    AssociationObserver o = bound_observer();
    o.observe(kC2S, request(7, 0, 3));
    expect_allow(o.observe(kC2S, wire(make_pdu(CoCancel{}, 7))));
    expect_allow(o.observe(kS2C, decode(build_fault(7, 0, 1, DataRep::little_endian()))));
  }
  {
    AssociationObserver o = bound_observer();
    expect_allow(o.observe(kS2C, wire(make_pdu(Shutdown{}, 0))));
    expect_drop(o.observe(kC2S, wire(make_pdu(Shutdown{}, 0))), Errc::kUnexpectedPdu);
  }
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kS2C, request(7, 0, 3)), Errc::kUnexpectedPdu);
  }
  {
    AssociationObserver o = bound_observer();
    expect_drop(o.observe(kC2S, vector_pdu("impacket_response")), Errc::kUnexpectedPdu);
  }
}

TEST(Observer, ServerResponseChecks) {
  AssociationObserver o = bound_observer();
  expect_allow(o.observe(kC2S, request(5, 0, 3)));
  Response r;
  r.stub = Bytes(4280 - 23, 0);
  expect_drop(o.observe(kS2C, wire(make_pdu(r, 5))), Errc::kFragTooLong);
  AssociationObserver p;
  p.observe(kC2S, decode(testing::impacket_bind()));
  expect_drop(p.observe(kS2C, vector_pdu("impacket_response")), Errc::kUnexpectedPdu);
}

// The observer as a firewall in front of our own server: for every client PDU the server's
// answer is fed back to the observer; accepted contexts must agree at every step.
TEST(Observer, FollowsServerAssociation) {
  ServerConfig config = epm_config();
  config.interfaces = make_interface_lookup({kEpmSyntax, kSamr});
  ServerAssociation server(config);
  AssociationObserver o;
  const std::vector<Pdu> client = {
      bind(1,
           {item(0, kEpmSyntax, {kNdr20Syntax}), item(1, kEpmSyntax, {kNdr64Syntax}),
            item(2, kEpmSyntax, {kBtfn}), item(3, kUnknown, {kNdr20Syntax})},
           kWhole | pfc::kSupportHeaderSign),
      request(1, 0, 3),
      alter(2,
            {item(4, kSamr, {kNdr64Syntax, kNdr20Syntax}), item(5, kMgmtSyntax, {kNdr20Syntax})}),
      request(3, 4, 7),
  };
  for (const auto& pdu : client) {
    const Verdict v = o.observe(kC2S, pdu);
    expect_allow(v);
    const Decision d = server.handle(pdu);
    if (d.action == Action::kSend) expect_allow(o.observe(kS2C, decode(d.pdu)));
    if (d.action == Action::kDispatch) {
      ASSERT_TRUE(v.request);
      EXPECT_EQ(v.request->abstract_syntax, d.call->abstract_syntax);
      EXPECT_EQ(v.request->transfer_syntax, d.call->transfer_syntax);
      expect_allow(
          o.observe(kS2C, decode(build_fault(d.call->call.call_id, d.call->call.p_cont_id,
                                             status::kNcaSOpRngError, d.call->call.drep))));
    }
  }
  for (const auto& c : o.contexts().entries()) {
    EXPECT_EQ(*server.contexts().find(c.p_cont_id), c);
  }
  EXPECT_EQ(o.contexts().size(), server.contexts().size());
  for (std::uint16_t ctx : {1, 2, 3, 5}) {
    AssociationObserver copy = o;
    expect_drop(copy.observe(kC2S, request(9, ctx, 0)), Errc::kContextNotAccepted);
  }
}

}  // namespace
}  // namespace rpcgate::rpc
