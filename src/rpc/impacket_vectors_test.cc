// Impacket-generated PDUs (tests/vectors/gen_impacket_pdus.py -> src/rpc/testdata/): decode to the
// fields the generator put in, and every big-endian twin decodes to the same PDU as its
// little-endian original (docs/evasions.md B6: byte order must not change a decision).
#include <map>

#include <gtest/gtest.h>

#include "rpc/pdu.h"
#include "rpc/status.h"
#include "rpc/testing/test_vectors.h"

namespace rpcgate::rpc {
namespace {

std::map<std::string, std::vector<std::uint8_t>> vectors() {
  std::map<std::string, std::vector<std::uint8_t>> out;
  for (auto& v :
       testing::load_vectors(RPCGATE_SOURCE_DIR "/src/rpc/testdata/impacket_vectors.txt")) {
    out.emplace(v.name, std::move(v.bytes));
  }
  return out;
}

Pdu get(const std::string& name) {
  static const auto all = vectors();
  auto it = all.find(name);
  if (it == all.end()) {
    ADD_FAILURE() << "missing vector " << name;
    return {};
  }
  auto pdu = decode_pdu(it->second);
  EXPECT_TRUE(pdu) << name << ": " << pdu.error().message();
  return pdu.value_or(Pdu{});
}

TEST(ImpacketVectors, FileIsComplete) {
  const auto all = vectors();
  EXPECT_EQ(all.size(), 24u);
  for (const auto& [name, bytes] : all) {
    if (name.ends_with("_be")) continue;
    EXPECT_TRUE(all.contains(name + "_be")) << name;
  }
}

TEST(ImpacketVectors, BigEndianTwinsDecodeToTheSamePdu) {
  for (const auto& [name, bytes] : vectors()) {
    if (name.ends_with("_be")) continue;
    SCOPED_TRACE(name);
    Pdu le = get(name);
    Pdu be = get(name + "_be");
    EXPECT_EQ(le.header.endian(), Endian::kLittle);
    EXPECT_EQ(be.header.endian(), Endian::kBig);
    be.header.drep = le.header.drep;
    EXPECT_EQ(be, le);
  }
}

TEST(ImpacketVectors, BindMulti) {
  const Pdu pdu = get("impacket_bind_multi_be");
  const auto& b = std::get<Bind>(pdu.body);
  EXPECT_EQ(pdu.header.call_id, 2u);
  EXPECT_EQ(b.assoc_group_id, 0x1234u);
  ASSERT_EQ(b.contexts.size(), 5u);
  const auto samr = Uuid::parse("12345778-1234-abcd-ef00-0123456789ac").value();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(b.contexts[i].p_cont_id, i);
    EXPECT_EQ(b.contexts[i].abstract_syntax, (SyntaxId{samr, 1, 0}));
    ASSERT_EQ(b.contexts[i].transfer_syntaxes.size(), 1u);
  }
  EXPECT_EQ(b.contexts[0].transfer_syntaxes[0], kNdr20Syntax);
  EXPECT_EQ(b.contexts[1].transfer_syntaxes[0], kNdr64Syntax);
  EXPECT_EQ(bind_time_features(b.contexts[2].transfer_syntaxes[0]), 3u);
  EXPECT_EQ(b.contexts[3].abstract_syntax, kEpmSyntax);
  EXPECT_EQ(b.contexts[3].transfer_syntaxes, (std::vector<SyntaxId>{kNdr20Syntax, kNdr64Syntax}));
  EXPECT_EQ(b.contexts[4].abstract_syntax, kMgmtSyntax);
  ASSERT_EQ(b.contexts[4].transfer_syntaxes.size(), 3u);
  EXPECT_EQ(b.contexts[4].transfer_syntaxes[1], kNdr20Syntax);
}

TEST(ImpacketVectors, AlterContextAndResponses) {
  const Pdu alter = get("impacket_alter_context");
  const auto& a = std::get<AlterContext>(alter.body);
  ASSERT_EQ(a.contexts.size(), 1u);
  EXPECT_EQ(a.contexts[0].p_cont_id, 5);
  EXPECT_EQ(a.contexts[0].abstract_syntax, kMgmtSyntax);

  const Pdu ack = get("impacket_bind_ack_multi");
  const auto& k = std::get<BindAck>(ack.body);
  EXPECT_EQ(k.secondary_address(), "49664");
  EXPECT_EQ(k.max_xmit_frag, 5840);
  ASSERT_EQ(k.results.size(), 5u);
  EXPECT_EQ(k.results[1].result, status::kResultProviderRejection);
  EXPECT_EQ(k.results[1].reason, status::kReasonProposedTransferSyntaxesNotSupported);
  EXPECT_EQ(k.results[2].result, status::kResultNegotiateAck);
  EXPECT_EQ(k.results[2].reason, 3);  // accepted feature bits
  EXPECT_EQ(k.results[3].transfer_syntax, kNdr20Syntax);

  const Pdu empty_pdu = get("impacket_alter_context_resp_empty");
  const auto& empty = std::get<AlterContextResp>(empty_pdu.body);
  EXPECT_TRUE(empty.sec_addr.empty());
  ASSERT_EQ(empty.results.size(), 1u);
  const Pdu resp_pdu = get("impacket_alter_context_resp");
  EXPECT_EQ(std::get<AlterContextResp>(resp_pdu.body).secondary_address(), "1025");

  const Pdu nak_pdu = get("impacket_bind_nak");
  const auto& nak = std::get<BindNak>(nak_pdu.body);
  EXPECT_EQ(nak.provider_reject_reason, status::kRejectProtocolVersionNotSupported);
  EXPECT_EQ(nak.versions, (std::vector<RtVersion>{{5, 0}}));
  EXPECT_TRUE(nak.trailing.empty());
}

TEST(ImpacketVectors, Requests) {
  const Pdu obj = get("impacket_request_object");
  const auto& q = std::get<Request>(obj.body);
  EXPECT_TRUE(obj.header.pfc_flags & pfc::kObjectUuid);
  EXPECT_EQ(q.object, Uuid::parse("01234567-89ab-cdef-0123-456789abcdef"));
  EXPECT_EQ(q.p_cont_id, 1);
  EXPECT_EQ(q.opnum, 7);
  EXPECT_EQ(q.alloc_hint, 24u);
  EXPECT_EQ(q.stub.size(), 24u);

  const Pdu auth = get("impacket_request_auth_be");
  ASSERT_TRUE(auth.auth);
  EXPECT_EQ(auth.auth->auth_context_id, 79231u);
  EXPECT_EQ(auth.auth->auth_pad_length, 3);
  EXPECT_EQ(std::get<Request>(auth.body).stub.size(), 13u);

  const Pdu fault = get("impacket_fault");
  EXPECT_EQ(std::get<Fault>(fault.body).status, status::kNcaSUnkIf);
  EXPECT_EQ(std::get<Fault>(fault.body).p_cont_id, 1);

  const Pdu auth3 = get("impacket_auth3");
  EXPECT_EQ(std::get<Auth3>(auth3.body).max_xmit_frag, 0x2020);
  ASSERT_TRUE(auth3.auth);
  EXPECT_EQ(auth3.auth->auth_type, 10);
}

}  // namespace
}  // namespace rpcgate::rpc
