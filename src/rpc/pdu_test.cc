#include "rpc/pdu.h"

#include <gtest/gtest.h>

#include "rpc/status.h"
#include "rpc/testing/test_vectors.h"

namespace rpcgate::rpc {
namespace {

using testing::NamedVector;

std::vector<NamedVector> all_vectors() {
  auto v = testing::golden_vectors();
  auto imp = testing::load_vectors(RPCGATE_SOURCE_DIR "/src/rpc/testdata/impacket_vectors.txt");
  v.insert(v.end(), imp.begin(), imp.end());
  return v;
}

Pdu decode_ok(std::span<const std::uint8_t> bytes, const DecodeLimits& limits = {}) {
  auto pdu = decode_pdu(bytes, limits);
  EXPECT_TRUE(pdu.has_value()) << pdu.error().message();
  return pdu.value_or(Pdu{});
}

std::error_code decode_error(std::span<const std::uint8_t> bytes, const DecodeLimits& limits = {}) {
  auto pdu = decode_pdu(bytes, limits);
  EXPECT_FALSE(pdu.has_value());
  return pdu ? std::error_code() : pdu.error();
}

void set_u16_le(std::vector<std::uint8_t>& b, std::size_t off, std::uint16_t v) {
  b[off] = static_cast<std::uint8_t>(v);
  b[off + 1] = static_cast<std::uint8_t>(v >> 8);
}

TEST(PduGolden, EptMapRequest) {
  const auto bytes = testing::ept_map_request();
  ASSERT_EQ(bytes.size(), 156u);
  const Pdu pdu = decode_ok(bytes);
  EXPECT_EQ(pdu.header.rpc_vers, 5);
  EXPECT_EQ(pdu.header.rpc_vers_minor, 0);
  EXPECT_EQ(pdu.header.ptype, static_cast<std::uint8_t>(PType::kRequest));
  EXPECT_EQ(pdu.header.pfc_flags, pfc::kFirstFrag | pfc::kLastFrag);
  EXPECT_EQ(pdu.header.endian(), Endian::kLittle);
  EXPECT_EQ(pdu.header.frag_length, 156);
  EXPECT_EQ(pdu.header.auth_length, 0);
  EXPECT_EQ(pdu.header.call_id, 1u);
  EXPECT_FALSE(pdu.auth);
  const auto& q = std::get<Request>(pdu.body);
  EXPECT_EQ(q.alloc_hint, 0x84u);
  EXPECT_EQ(q.p_cont_id, 0);
  EXPECT_EQ(q.opnum, 3);
  EXPECT_FALSE(q.object);
  ASSERT_EQ(q.stub.size(), 132u);
  EXPECT_TRUE(std::equal(q.stub.begin(), q.stub.end(), bytes.begin() + 24));
  EXPECT_EQ(encode_pdu(pdu).value(), bytes);
}

TEST(PduGolden, EptMapResponse) {
  const auto bytes = testing::ept_map_response();
  ASSERT_EQ(bytes.size(), 152u);
  const Pdu pdu = decode_ok(bytes);
  EXPECT_EQ(pdu.header.ptype, static_cast<std::uint8_t>(PType::kResponse));
  const auto& p = std::get<Response>(pdu.body);
  EXPECT_EQ(p.alloc_hint, 0x80u);
  EXPECT_EQ(p.p_cont_id, 0);
  EXPECT_EQ(p.cancel_count, 0);
  ASSERT_EQ(p.stub.size(), 128u);
  EXPECT_EQ(p.stub[0x14], 1);  // num_towers
  EXPECT_EQ(encode_pdu(pdu).value(), bytes);
}

TEST(PduGolden, Bind) {
  const auto bytes = testing::impacket_bind();
  ASSERT_EQ(bytes.size(), 72u);
  const Pdu pdu = decode_ok(bytes);
  EXPECT_EQ(pdu.header.ptype, static_cast<std::uint8_t>(PType::kBind));
  EXPECT_EQ(pdu.header.call_id, 1u);
  const auto& b = std::get<Bind>(pdu.body);
  EXPECT_EQ(b.max_xmit_frag, 4280);
  EXPECT_EQ(b.max_recv_frag, 4280);
  EXPECT_EQ(b.assoc_group_id, 0u);
  ASSERT_EQ(b.contexts.size(), 1u);
  EXPECT_EQ(b.contexts[0].p_cont_id, 0);
  EXPECT_EQ(b.contexts[0].abstract_syntax, kEpmSyntax);
  EXPECT_EQ(b.contexts[0].abstract_syntax.uuid.to_string(), "e1af8308-5d1f-11c9-91a4-08002b14a0fa");
  ASSERT_EQ(b.contexts[0].transfer_syntaxes.size(), 1u);
  EXPECT_EQ(b.contexts[0].transfer_syntaxes[0], kNdr20Syntax);
  EXPECT_EQ(encode_pdu(pdu).value(), bytes);
}

TEST(PduGolden, BindAck) {
  const auto bytes = testing::impacket_bind_ack();
  ASSERT_EQ(bytes.size(), 60u);
  const Pdu pdu = decode_ok(bytes);
  const auto& a = std::get<BindAck>(pdu.body);
  EXPECT_EQ(a.max_xmit_frag, 4280);
  EXPECT_EQ(a.max_recv_frag, 4280);
  EXPECT_EQ(a.assoc_group_id, 0x12345u);
  EXPECT_EQ(a.sec_addr, std::string("135", 4));
  EXPECT_EQ(a.secondary_address(), "135");
  ASSERT_EQ(a.results.size(), 1u);
  EXPECT_EQ(a.results[0].result, status::kResultAcceptance);
  EXPECT_EQ(a.results[0].reason, 0);
  EXPECT_EQ(a.results[0].transfer_syntax, kNdr20Syntax);
  EXPECT_EQ(encode_pdu(pdu).value(), bytes);

  // Built from scratch, it is the same bytes.
  BindAck built;
  built.max_xmit_frag = built.max_recv_frag = 4280;
  built.assoc_group_id = 0x12345;
  built.sec_addr = BindAckBody::make_sec_addr("135");
  built.results.push_back({status::kResultAcceptance, 0, kNdr20Syntax});
  EXPECT_EQ(encode_pdu(make_pdu(built, 1)).value(), bytes);
}

TEST(PduGolden, Fault) {
  const auto bytes = testing::op_rng_fault();
  ASSERT_EQ(bytes.size(), 32u);
  const Pdu pdu = decode_ok(bytes);
  const auto& f = std::get<Fault>(pdu.body);
  EXPECT_EQ(f.status, status::kNcaSOpRngError);
  EXPECT_EQ(status::format_status(f.status), "nca_s_op_rng_error (0x1c010002)");
  EXPECT_TRUE(f.stub.empty());
  EXPECT_EQ(encode_pdu(pdu).value(), bytes);
}

TEST(PduRoundTrip, AllVectorsReencodeByteExactAndDecodeEqual) {
  const auto vectors = all_vectors();
  ASSERT_GE(vectors.size(), 29u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    const Pdu pdu = decode_ok(v.bytes);
    auto encoded = encode_pdu(pdu);
    ASSERT_TRUE(encoded) << encoded.error().message();
    EXPECT_EQ(*encoded, v.bytes);
    EXPECT_EQ(decode_ok(*encoded), pdu);
  }
}

TEST(PduTruncated, EveryPrefixIsACleanError) {
  for (const auto& v : all_vectors()) {
    SCOPED_TRACE(v.name);
    for (std::size_t n = 0; n < v.bytes.size(); ++n) {
      std::span<const std::uint8_t> prefix(v.bytes.data(), n);
      EXPECT_EQ(decode_error(prefix), Errc::kTruncated) << n;
    }
  }
}

TEST(PduTruncated, EveryPrefixWithPatchedFragLengthNeverCrashes) {
  // Same prefixes, but frag_length claims exactly the prefix: bodies end mid-field.
  for (const auto& v : all_vectors()) {
    SCOPED_TRACE(v.name);
    const bool little = v.bytes[4] == 0x10;
    for (std::size_t n = 16; n < v.bytes.size(); ++n) {
      std::vector<std::uint8_t> b(v.bytes.begin(), v.bytes.begin() + static_cast<long>(n));
      b[little ? 8 : 9] = static_cast<std::uint8_t>(n);
      b[little ? 9 : 8] = static_cast<std::uint8_t>(n >> 8);
      auto pdu = decode_pdu(b);
      if (pdu) {
        EXPECT_EQ(decode_pdu(encode_pdu(*pdu).value()).value(), *pdu);
      }
    }
  }
}

TEST(PduHeader, BadVersion) {
  auto b = testing::impacket_bind();
  b[0] = 4;
  EXPECT_EQ(decode_error(b), Errc::kBadVersion);
  b[0] = 5;
  b[1] = 2;
  EXPECT_EQ(decode_error(b), Errc::kBadVersion);
  b[1] = 1;  // DCE sends 5.1
  EXPECT_TRUE(decode_pdu(b));
}

TEST(PduHeader, UnsupportedPtypes) {
  auto b = testing::impacket_bind();
  for (int t : {1, 4, 5, 6, 7, 8, 9, 10, 20, 21, 255}) {
    b[2] = static_cast<std::uint8_t>(t);
    EXPECT_EQ(decode_error(b), Errc::kUnsupportedPtype) << t;
  }
}

TEST(PduHeader, BadDrep) {
  auto b = testing::impacket_bind();
  b[4] = 0x11;  // little-endian, EBCDIC
  EXPECT_EQ(decode_error(b), Errc::kBadDrep);
  b[4] = 0x20;  // integer rep 2
  EXPECT_EQ(decode_error(b), Errc::kBadDrep);
  b[4] = 0x10;
  for (std::uint8_t f : {1, 2, 3}) {  // VAX, Cray, IBM floats
    b[5] = f;
    EXPECT_EQ(decode_error(b), Errc::kBadDrep);
  }
}

TEST(PduHeader, FragTooShort) {
  auto b = testing::impacket_bind();
  for (std::uint16_t len : {0, 1, 15}) {
    set_u16_le(b, 8, len);
    EXPECT_EQ(decode_error(b), Errc::kFragTooShort) << len;
  }
  set_u16_le(b, 8, 27);  // bind's fixed part is 28
  EXPECT_EQ(decode_error(std::span(b).first(27)), Errc::kFragTooShort);
  auto q = testing::ept_map_request();
  q[3] |= pfc::kObjectUuid;  // request header grows to 40
  set_u16_le(q, 8, 39);
  EXPECT_EQ(decode_error(std::span(q).first(39)), Errc::kFragTooShort);
}

TEST(PduHeader, FragLengthMismatch) {
  auto b = testing::impacket_bind();
  b.push_back(0);
  EXPECT_EQ(decode_error(b), Errc::kFragLengthMismatch);
}

TEST(PduAuth, LengthInconsistent) {
  auto b = testing::impacket_bind();
  set_u16_le(b, 10, 200);
  EXPECT_EQ(decode_error(b), Errc::kAuthLengthInconsistent);
  set_u16_le(b, 10, 72 - 28 - 8 + 1);  // one byte too many
  EXPECT_EQ(decode_error(b), Errc::kAuthLengthInconsistent);
  // shutdown and bind_nak carry no auth_verifier.
  auto s = common::from_hex(
               "05 00 11 03 10 00 00 00 1c 00 04 00 01 00 00 00"
               "0a 02 00 00 00 00 00 00 aa bb cc dd")
               .value();
  EXPECT_EQ(decode_error(s), Errc::kAuthLengthInconsistent);
  s[2] = static_cast<std::uint8_t>(PType::kCoCancel);  // co_cancel may
  const Pdu c = decode_ok(s);
  ASSERT_TRUE(c.auth);
  EXPECT_EQ(c.auth->auth_type, 10);
  EXPECT_EQ(c.auth->auth_level, 2);
  EXPECT_EQ(c.auth->auth_value, (std::vector<std::uint8_t>{0xaa, 0xbb, 0xcc, 0xdd}));
  EXPECT_EQ(encode_pdu(c).value(), s);
}

std::vector<std::uint8_t> impacket_vector(std::string_view name) {
  for (auto& v : all_vectors()) {
    if (v.name == name) return v.bytes;
  }
  ADD_FAILURE() << "no vector " << name;
  return {};
}

TEST(PduAuth, RequestTrailer) {
  const auto bytes = impacket_vector("impacket_request_auth");
  const Pdu pdu = decode_ok(bytes);
  ASSERT_TRUE(pdu.auth);
  EXPECT_EQ(pdu.header.auth_length, 16);
  EXPECT_EQ(pdu.auth->auth_type, 10);
  EXPECT_EQ(pdu.auth->auth_level, 6);
  EXPECT_EQ(pdu.auth->auth_pad_length, 3);
  EXPECT_EQ(pdu.auth->auth_context_id, 79231u);
  EXPECT_EQ(pdu.auth->auth_value.size(), 16u);
  EXPECT_EQ(pdu.auth->auth_value[0], 0x10);
  const auto& q = std::get<Request>(pdu.body);
  EXPECT_EQ(q.stub.size(), 13u);  // padding excluded
  EXPECT_EQ(q.stub.back(), 0x4c);
  Pdu copy = pdu;
  copy.auth->auth_pad_length = 0;
  EXPECT_EQ(auth_pad_for(copy), 3);
}

TEST(PduAuth, TrailerMisaligned) {
  auto b = impacket_vector("impacket_request_auth");
  b.erase(b.begin() + 37);  // drop one pad byte: sec_trailer now starts at 39
  set_u16_le(b, 8, static_cast<std::uint16_t>(b.size()));
  EXPECT_EQ(decode_error(b), Errc::kAuthTrailerMisaligned);
}

TEST(PduAuth, PadTooLong) {
  auto b = impacket_vector("impacket_request_auth");
  b[40 + 2] = 17;  // trailer at 40, stub region [24, 40) holds 16 bytes
  EXPECT_EQ(decode_error(b), Errc::kAuthPadTooLong);
  b[40 + 2] = 16;  // whole stub is padding: allowed, empty stub
  EXPECT_TRUE(std::get<Request>(decode_ok(b).body).stub.empty());
}

std::vector<std::uint8_t> bind_with_items(std::size_t n_items, std::size_t n_claimed,
                                          std::size_t n_syntaxes = 1) {
  Bind bind;
  bind.max_xmit_frag = bind.max_recv_frag = 5840;
  for (std::size_t i = 0; i < n_items; ++i) {
    ContextElement e;
    e.p_cont_id = static_cast<std::uint16_t>(i);
    e.abstract_syntax = kEpmSyntax;
    e.transfer_syntaxes.assign(n_syntaxes, kNdr20Syntax);
    bind.contexts.push_back(e);
  }
  auto b = encode_pdu(make_pdu(bind, 1)).value();
  b[24] = static_cast<std::uint8_t>(n_claimed);
  return b;
}

TEST(PduLimits, TooManyContextItems) {
  // 255 items (the most a u8 can claim; ~11 KB): over the default limit of 64.
  EXPECT_EQ(decode_error(bind_with_items(255, 255)), Errc::kTooManyContextItems);
  // The count is checked before anything is read or allocated.
  EXPECT_EQ(decode_error(bind_with_items(1, 200)), Errc::kTooManyContextItems);
  DecodeLimits limits;
  limits.max_context_items = 255;
  EXPECT_EQ(decode_ok(bind_with_items(255, 255), limits).header.frag_length, 28 + 255 * 44);
  EXPECT_EQ(decode_error(bind_with_items(1, 200), limits), Errc::kTruncated);
  limits.max_context_items = 2;
  EXPECT_EQ(decode_error(impacket_vector("impacket_bind_multi"), limits),
            Errc::kTooManyContextItems);
  // Zero items decode (the association rejects them).
  EXPECT_TRUE(std::get<Bind>(decode_ok(bind_with_items(0, 0)).body).contexts.empty());
}

TEST(PduLimits, TooManyTransferSyntaxes) {
  DecodeLimits limits;
  limits.max_transfer_syntaxes = 2;  // impacket_bind_multi item 4 offers three
  EXPECT_EQ(decode_error(impacket_vector("impacket_bind_multi"), limits),
            Errc::kTooManyTransferSyntaxes);
  EXPECT_EQ(decode_error(bind_with_items(1, 1, 17)), Errc::kTooManyTransferSyntaxes);
  // Zero transfer syntaxes decode.
  EXPECT_TRUE(std::get<Bind>(decode_ok(bind_with_items(2, 2, 0)).body)
                  .contexts[1]
                  .transfer_syntaxes.empty());
}

TEST(PduLimits, TooManyResults) {
  DecodeLimits limits;
  limits.max_results = 4;
  EXPECT_EQ(decode_error(impacket_vector("impacket_bind_ack_multi"), limits),
            Errc::kTooManyResults);
}

TEST(PduBody, TrailingBytesAfterFixedBodies) {
  for (auto b : {testing::impacket_bind(), testing::impacket_bind_ack()}) {
    b.insert(b.end(), {0, 0, 0, 0});
    set_u16_le(b, 8, static_cast<std::uint16_t>(b.size()));
    EXPECT_EQ(decode_error(b), Errc::kTrailingBytes);
  }
  auto s = common::from_hex("05 00 11 03 10 00 00 00 11 00 00 00 01 00 00 00 00").value();
  EXPECT_EQ(decode_error(s), Errc::kTrailingBytes);
  s.pop_back();
  set_u16_le(s, 8, 16);
  EXPECT_TRUE(std::holds_alternative<Shutdown>(decode_ok(s).body));
}

TEST(PduBody, BindAckSecAddrRunsPastEnd) {
  auto b = testing::impacket_bind_ack();
  set_u16_le(b, 24, 40);  // sec_addr_len 40 of 34 remaining
  EXPECT_EQ(decode_error(b), Errc::kTruncated);
}

TEST(PduSyntax, WellKnownAndFeatureNegotiation) {
  EXPECT_EQ(kNdr20Syntax.uuid.to_string(), "8a885d04-1ceb-11c9-9fe8-08002b104860");
  EXPECT_EQ(kNdr64Syntax.uuid.to_string(), "71710533-beba-4937-8319-b5dbef9ccc36");
  EXPECT_EQ(kMgmtSyntax.uuid.to_string(), "afa8bd80-7d8a-11c9-bef4-08002b102989");
  EXPECT_EQ(kEpmSyntax.major, 3);
  EXPECT_FALSE(bind_time_features(kNdr20Syntax));
  const SyntaxId btfn =
      make_bind_time_feature_syntax(kBtfnSecurityContextMultiplexing | kBtfnKeepConnectionOnOrphan);
  EXPECT_EQ(btfn.uuid.to_string(), "6cb71c2c-9812-4540-0300-000000000000");
  EXPECT_EQ(bind_time_features(btfn), 3u);
  const Pdu pdu = decode_ok(impacket_vector("impacket_bind_multi"));
  const auto& b = std::get<Bind>(pdu.body);
  EXPECT_EQ(b.contexts[2].transfer_syntaxes[0], btfn);
}

TEST(PduEncode, Errors) {
  Pdu pdu = make_pdu(Shutdown{}, 1);
  pdu.header.ptype = 0;
  EXPECT_EQ(encode_pdu(pdu).error(), Errc::kInvalidArgument);
  pdu = make_pdu(Shutdown{}, 1);
  pdu.auth = AuthTrailer{10, 2, 0, 0, 1, {1, 2, 3, 4}};
  EXPECT_EQ(encode_pdu(pdu).error(), Errc::kInvalidArgument);  // shutdown has no auth
  Request q;
  q.stub.assign(13, 0);
  pdu = make_pdu(q, 1);
  pdu.auth = AuthTrailer{10, 6, 0, 0, 1, std::vector<std::uint8_t>(16, 1)};
  EXPECT_EQ(encode_pdu(pdu).error(), Errc::kInvalidArgument);  // sec_trailer at 37
  pdu.auth->auth_pad_length = auth_pad_for(pdu);
  auto ok = encode_pdu(pdu);
  ASSERT_TRUE(ok);
  EXPECT_EQ(decode_ok(*ok), [&] {
    Pdu expect = pdu;
    expect.header.frag_length = 64;
    expect.header.auth_length = 16;
    return expect;
  }());
  q.stub.assign(65535 - 24 + 1, 0);
  EXPECT_EQ(encode_pdu(make_pdu(q, 1)).error(), Errc::kTooLargeToEncode);
  Bind bind;
  bind.contexts.resize(256);
  EXPECT_EQ(encode_pdu(make_pdu(bind, 1)).error(), Errc::kInvalidArgument);
}

TEST(PduEncode, BigEndianIfVersion) {
  Bind bind;
  bind.contexts.push_back({0, kEpmSyntax, {kNdr20Syntax}});
  const auto b = encode_pdu(make_pdu(bind, 1, 3, DataRep::big_endian())).value();
  // abstract syntax at 32: uuid (16) then if_version 3 as big-endian u32.
  EXPECT_EQ(common::to_hex(std::span(b).subspan(32, 20)),
            "e1 af 83 08 5d 1f 11 c9 91 a4 08 00 2b 14 a0 fa 00 00 00 03");
}

TEST(PduNames, Ptypes) {
  EXPECT_EQ(ptype_name(11), "bind");
  EXPECT_EQ(ptype_name(20), "unknown");
  EXPECT_EQ(std::error_code(Errc::kFragTooShort).message(),
            "frag_length below the PDU type's fixed header");
  EXPECT_STREQ(std::error_code(Errc::kFragTooShort).category().name(), "rpcgate.rpc");
}

}  // namespace
}  // namespace rpcgate::rpc
