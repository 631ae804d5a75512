#include "echo/echo.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "ndr/errc.h"

namespace rpcgate::echo {
namespace {

using common::Endian;
using Bytes = std::vector<std::uint8_t>;

Bytes hex(std::string_view text) {
  if (text == "-") return {};
  auto b = common::from_hex(text);
  EXPECT_TRUE(b.has_value()) << text;
  return b.value_or(Bytes{});
}

std::error_code err(ndr::Errc e) {
  return ndr::make_error_code(e);
}

// Impacket pads with 0xaa..0xbf where rpcgate writes 0: equal except at such pad bytes.
bool same_but_pad(const Bytes& ours, const Bytes& theirs) {
  if (ours.size() != theirs.size()) return false;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] == theirs[i]) continue;
    if (ours[i] != 0 || theirs[i] < 0xaa || theirs[i] > 0xbf) return false;
  }
  return true;
}

struct Vector {
  int opnum = 0;
  std::string name;
  Bytes request;
  Bytes response;
};

std::vector<Vector> load_vectors() {
  std::ifstream in(std::string(RPCGATE_SOURCE_DIR) +
                   "/src/echo/testdata/impacket_echo_vectors.txt");
  EXPECT_TRUE(in) << "missing testdata";
  std::vector<Vector> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    Vector v;
    std::string req, resp;
    fields >> v.opnum >> v.name >> req >> resp;
    v.request = hex(req);
    v.response = hex(resp);
    out.push_back(std::move(v));
  }
  return out;
}

// Decodes `stub` as the request (request = true) or response of `op`, then re-encodes the value.
Result<Bytes> reencode(Opnum op, bool request, std::span<const std::uint8_t> stub, Endian endian,
                       std::uint16_t level = 0) {
  auto again = [&](auto decoded) -> Result<Bytes> {
    if (!decoded) return std::unexpected(decoded.error());
    return decoded->encode(endian);
  };
  switch (op) {
    case Opnum::kAddOne:
      return request ? again(AddOneRequest::decode(stub, endian))
                     : again(AddOneResponse::decode(stub, endian));
    case Opnum::kEchoData:
    case Opnum::kSinkData:
      if (!request && op == Opnum::kSinkData) {
        if (!stub.empty()) return std::unexpected(err(ndr::Errc::kTrailingBytes));
        return Bytes{};
      }
      return request ? again(DataRequest::decode(stub, endian))
                     : again(DataResponse::decode(stub, endian));
    case Opnum::kSourceData:
      return request ? again(SourceDataRequest::decode(stub, endian))
                     : again(DataResponse::decode(stub, endian));
    case Opnum::kTestCall:
      return request ? again(TestCallRequest::decode(stub, endian))
                     : again(TestCallResponse::decode(stub, endian));
    case Opnum::kTestCall2:
      return request ? again(TestCall2Request::decode(stub, endian))
                     : again(TestCall2Response::decode(stub, endian, level));
    case Opnum::kTestSleep:
      return request ? again(TestSleepRequest::decode(stub, endian))
                     : again(U32Response::decode(stub, endian));
    case Opnum::kTestEnum:
      return again(TestEnumArgs::decode(stub, endian));
    case Opnum::kTestSurrounding:
      return again(Surrounding::decode(stub, endian));
    case Opnum::kTestDoublePointer:
      return request ? again(TestDoublePointerRequest::decode(stub, endian))
                     : again(U16Response::decode(stub, endian));
  }
  return std::unexpected(err(ndr::Errc::kBadUnionDiscriminant));
}

std::uint16_t level_of(const Vector& v) {
  return v.opnum == 5 ? static_cast<std::uint16_t>(v.request.at(0)) : 0;
}

// Requests and responses built with Impacket's NDR classes (tests/rpcecho_impacket.py): every
// request decodes, the server's answer equals Impacket's response (but for pad bytes), and
// every stub re-encodes to Impacket's bytes.
TEST(Echo, ImpacketVectors) {
  const auto vectors = load_vectors();
  for (const auto& v : vectors) {
    SCOPED_TRACE(std::to_string(v.opnum) + " " + v.name);
    const auto op = static_cast<Opnum>(v.opnum);
    auto out = answer(op, v.request, Endian::kLittle);
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_TRUE(same_but_pad(*out, v.response))
        << common::to_hex(*out) << "\n vs " << common::to_hex(v.response);
    auto req = reencode(op, true, v.request, Endian::kLittle);
    ASSERT_TRUE(req) << req.error().message();
    EXPECT_TRUE(same_but_pad(*req, v.request)) << common::to_hex(*req);
    auto resp = reencode(op, false, v.response, Endian::kLittle, level_of(v));
    ASSERT_TRUE(resp) << resp.error().message();
    EXPECT_TRUE(same_but_pad(*resp, v.response)) << common::to_hex(*resp);
  }
  EXPECT_EQ(vectors.size(), 30u);
}

// Every vector in big-endian: our encoding round-trips, and the server answers the big-endian
// request with the big-endian form of the same response.
TEST(Echo, BigEndianRoundTrip) {
  for (const auto& v : load_vectors()) {
    SCOPED_TRACE(std::to_string(v.opnum) + " " + v.name);
    const auto op = static_cast<Opnum>(v.opnum);
    auto le_req = reencode(op, true, v.request, Endian::kLittle);
    ASSERT_TRUE(le_req);
    // Decode little, encode big.
    Result<Bytes> be_req;
    switch (op) {
      case Opnum::kAddOne:
        be_req = AddOneRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kEchoData:
      case Opnum::kSinkData:
        be_req = DataRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kSourceData:
        be_req = SourceDataRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestCall:
        be_req = TestCallRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestCall2:
        be_req = TestCall2Request::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestSleep:
        be_req = TestSleepRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestEnum:
        be_req = TestEnumArgs::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestSurrounding:
        be_req = Surrounding::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
      case Opnum::kTestDoublePointer:
        be_req = TestDoublePointerRequest::decode(*le_req, Endian::kLittle)->encode(Endian::kBig);
        break;
    }
    ASSERT_TRUE(be_req);
    auto be_out = answer(op, *be_req, Endian::kBig);
    ASSERT_TRUE(be_out) << be_out.error().message();
    auto le_out = answer(op, *le_req, Endian::kLittle);
    ASSERT_TRUE(le_out);
    ASSERT_EQ(be_out->size(), le_out->size());
    // Re-decoding the big-endian response and encoding it little-endian gives the LE response.
    auto back = reencode(op, false, *be_out, Endian::kBig, level_of(v));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, *be_out);
  }
}

TEST(Echo, BigEndianGolden) {
  EXPECT_EQ(common::to_hex(*answer(Opnum::kAddOne, hex("00000029"), Endian::kBig), 0), "0000002a");
  // TestCall2 level 5: switch 0005, pad to 8, v1 0x32, pad, v2 hyper 60, NTSTATUS 0.
  EXPECT_EQ(common::to_hex(*answer(Opnum::kTestCall2, hex("0005"), Endian::kBig), 0),
            "0005000000000000"
            "3200000000000000"
            "000000000000003c"
            "00000000");
  // TestSurrounding x = 1: max_count 2, x 2, two zero uint16s.
  EXPECT_EQ(common::to_hex(
                *answer(Opnum::kTestSurrounding, hex("00000001000000010007"), Endian::kBig), 0),
            "00000002000000020000"
            "0000");
  EXPECT_EQ(common::to_hex(
                *answer(Opnum::kTestDoublePointer, hex("0002000000020004beef"), Endian::kBig), 0),
            "beef");
}

// Every proper prefix of every request and response fails cleanly (no crash, an NDR error).
TEST(Echo, TruncationAtEveryLength) {
  std::size_t checked = 0;
  for (const auto& v : load_vectors()) {
    SCOPED_TRACE(std::to_string(v.opnum) + " " + v.name);
    const auto op = static_cast<Opnum>(v.opnum);
    for (std::size_t n = 0; n < v.request.size(); ++n) {
      const std::span<const std::uint8_t> prefix(v.request.data(), n);
      auto r = answer(op, prefix, Endian::kLittle);
      ASSERT_FALSE(r) << "request prefix " << n;
      EXPECT_EQ(&r.error().category(), &ndr::ndr_category());
      ++checked;
    }
    for (std::size_t n = 0; n < v.response.size(); ++n) {
      const std::span<const std::uint8_t> prefix(v.response.data(), n);
      ASSERT_FALSE(reencode(op, false, prefix, Endian::kLittle, level_of(v)))
          << "response prefix " << n;
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000u);
}

TEST(Echo, TrailingBytesRejected) {
  for (const auto& v : load_vectors()) {
    SCOPED_TRACE(std::to_string(v.opnum) + " " + v.name);
    Bytes longer = v.request;
    longer.insert(longer.end(), 8, 0);
    auto r = answer(static_cast<Opnum>(v.opnum), longer, Endian::kLittle);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), err(ndr::Errc::kTrailingBytes));
  }
}

TEST(Echo, OverLimitCounts) {
  const auto le = Endian::kLittle;
  // EchoData / SinkData: len above 16 MiB, before any allocation or body.
  EXPECT_EQ(answer(Opnum::kEchoData, hex("0100000101000001"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  EXPECT_EQ(answer(Opnum::kSinkData, hex("ffffffffffffffff"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  // A max_count larger than what remains.
  EXPECT_EQ(answer(Opnum::kEchoData, hex("1000000010000000616263"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  // size_is(len) disagreeing with the conformance.
  EXPECT_EQ(answer(Opnum::kEchoData, hex("0200000003000000616263"), le).error(),
            err(ndr::Errc::kCountInconsistent));
  // SourceData: exactly the limit is fine (not executed here), one more is refused.
  EXPECT_TRUE(SourceDataRequest::decode(hex("00000001"), le));
  EXPECT_EQ(answer(Opnum::kSourceData, hex("01000001"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  // TestSleep: one hour at most.
  EXPECT_TRUE(TestSleepRequest::decode(hex("100e0000"), le));
  EXPECT_EQ(answer(Opnum::kTestSleep, hex("110e0000"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  // TestSurrounding: max_count != x, x over the limit, x past the end.
  EXPECT_EQ(answer(Opnum::kTestSurrounding, hex("02000000030000000100020003000000"), le).error(),
            err(ndr::Errc::kCountInconsistent));
  EXPECT_EQ(answer(Opnum::kTestSurrounding, hex("0100100001001000"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  EXPECT_EQ(answer(Opnum::kTestSurrounding, hex("ffff0000ffff0000"), le).error(),
            err(ndr::Errc::kTruncated));
  // TestCall: a string longer than kMaxStringLength units.
  EXPECT_EQ(answer(Opnum::kTestCall, hex("01000100000000000100010000000000"), le).error(),
            err(ndr::Errc::kCountOverLimit));
  // A string without its NUL.
  EXPECT_FALSE(answer(Opnum::kTestCall, hex("02000000000000000200000068006900"), le));
}

TEST(Echo, BadDiscriminantsAndLevels) {
  const auto le = Endian::kLittle;
  // TestCall2 level 0 and 8: Samba cannot marshal the union -> bad stub data.
  EXPECT_EQ(answer(Opnum::kTestCall2, hex("0000"), le).error(),
            err(ndr::Errc::kBadUnionDiscriminant));
  EXPECT_EQ(answer(Opnum::kTestCall2, hex("0800"), le).error(),
            err(ndr::Errc::kBadUnionDiscriminant));
  // TestEnum with foo1 = 3: no arm.
  EXPECT_EQ(answer(Opnum::kTestEnum, hex("0300000001000000010000000300"), le).error(),
            err(ndr::Errc::kBadUnionDiscriminant));
  // foo3's switch disagrees with *foo1.
  EXPECT_EQ(answer(Opnum::kTestEnum, hex("0100000001000000010000000200"), le).error(),
            err(ndr::Errc::kBadUnionDiscriminant));
  // enum16 above 0x7fff.
  EXPECT_EQ(answer(Opnum::kTestEnum, hex("0100000000800000010000000100ffff"), le).error(),
            err(ndr::Errc::kEnumOutOfRange));
  // A response whose switch is not the request's level.
  EXPECT_FALSE(TestCall2Response::decode(hex("0100000a00000000"), le, 2));
  // An info level that cannot be encoded.
  EXPECT_TRUE((TestCall2Response{EchoInfo{8, 0, 0}, 0}.encode(le).empty()));
}

TEST(Echo, Semantics) {
  const auto le = Endian::kLittle;
  auto source = answer(Opnum::kSourceData, SourceDataRequest{600}.encode(le), le);
  ASSERT_TRUE(source);
  auto data = DataResponse::decode(*source, le);
  ASSERT_TRUE(data);
  ASSERT_EQ(data->data.size(), 600u);
  for (std::size_t i = 0; i < 600; ++i)
    ASSERT_EQ(data->data[i], i & 0xff);

  for (std::uint16_t level = 1; level <= 7; ++level) {
    auto out = answer(Opnum::kTestCall2, TestCall2Request{level}.encode(le), le);
    ASSERT_TRUE(out);
    auto r = TestCall2Response::decode(*out, le, level);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->info.level, level);
    EXPECT_EQ(r->result, 0u);
  }

  TestEnumArgs a;
  a.foo1 = kEchoEnum2;
  a.foo2 = {kEchoEnum1, 7};
  a.foo3_e2 = {kEchoEnum1, 9};
  auto out = answer(Opnum::kTestEnum, a.encode(le), le);
  ASSERT_TRUE(out);
  auto back = TestEnumArgs::decode(*out, le);
  ASSERT_TRUE(back);
  a.foo2.e1 = kEchoEnum2;
  EXPECT_EQ(*back, a);

  TestCallResponse null_s2;
  auto n = TestCallResponse::decode(null_s2.encode(le), le);
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->s2.has_value());

  EXPECT_EQ(rpcecho_syntax().uuid.to_string(), "60a15ec5-4de8-11d7-a637-005056a20182");
  EXPECT_EQ(rpcecho_syntax().major, 1);
}

}  // namespace
}  // namespace rpcgate::echo
