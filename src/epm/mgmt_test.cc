#include "epm/mgmt.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "epm/testing/test_util.h"
#include "rpc/pdu.h"
#include "rpc/status.h"

namespace rpcgate::epm {
namespace {

using namespace testing;
using common::Endian;
namespace st = rpc::status;

MgmtService service(std::vector<SyntaxId> ids) {
  return MgmtService([ids] {
    MgmtInfo info;
    info.if_ids = ids;
    info.stats = {10, 20, 30, 40};
    info.listening = true;
    info.principal_name = [](std::uint32_t authn) {
      return authn == 9 ? std::string("host/epm.example") : std::string();
    };
    return info;
  });
}

// src/epm/testdata/impacket_mgmt_vectors.txt: requests and responses built with Impacket's
// mgmt.py structures (the ones rpcmap.py parses). Every response must be byte-exact.
TEST(MgmtService, ImpacketVectors) {
  std::ifstream in(std::string(RPCGATE_SOURCE_DIR) + "/src/epm/testdata/impacket_mgmt_vectors.txt");
  ASSERT_TRUE(in) << "missing testdata";
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    int opnum = 0;
    std::string name, request, response;
    fields >> opnum >> name >> request >> response;
    const SyntaxId epm = rpc::kEpmSyntax, mgmt = rpc::kMgmtSyntax;
    auto s = name == "one" ? service({kSamr10}) : service({epm, mgmt});
    const auto req = request == "-" ? std::vector<std::uint8_t>{} : hex(request);
    auto r = s.call(static_cast<std::uint16_t>(opnum), req, Endian::kLittle);
    ASSERT_TRUE(r) << name;
    EXPECT_EQ(common::to_hex(*r), common::to_hex(hex(response))) << name;
    ++count;
  }
  EXPECT_EQ(count, 8);
}

TEST(MgmtService, FaultsAndEdges) {
  auto s = service({rpc::kMgmtSyntax});
  for (std::uint16_t op : {5, 6, 255, 0xffff}) {
    auto r = s.call(op, {}, Endian::kLittle);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, st::kNcaSOpRngError);
  }
  const std::vector<std::uint8_t> one{0};
  std::vector<std::pair<std::uint16_t, std::size_t>> reported;
  s.on_trailing_bytes([&](std::uint16_t op, std::size_t n) { reported.emplace_back(op, n); });
  for (std::uint16_t op : {kOpnumMgmtInqStats, kOpnumMgmtInqPrincName}) {
    auto r = s.call(op, one, Endian::kLittle);  // shorter than the [in] parameters
    ASSERT_FALSE(r) << op;
    EXPECT_EQ(r.error().status, st::kRpcXBadStubData);
  }
  EXPECT_TRUE(reported.empty());
  // No [in] parameter: a byte after it is ignored (as Windows and Samba), and reported.
  for (std::uint16_t op :
       {kOpnumMgmtInqIfIds, kOpnumMgmtIsServerListening, kOpnumMgmtStopServerListening}) {
    auto with = s.call(op, one, Endian::kLittle);
    auto without = s.call(op, {}, Endian::kLittle);
    ASSERT_TRUE(with) << op;
    EXPECT_EQ(*with, *without) << op;
  }
  // Samba's client (smbtorture 4.17 rpc.mgmt, captured with tshark; issue 11): inq_stats with
  // max_count 4 and an extra u32.
  auto samba = s.call(kOpnumMgmtInqStats, hex("04000000 00000000"), Endian::kLittle);
  ASSERT_TRUE(samba);
  EXPECT_EQ(*samba, hex("04000000 04000000 0a000000 14000000 1e000000 28000000 00000000"));
  const std::vector<std::pair<std::uint16_t, std::size_t>> want{{kOpnumMgmtInqIfIds, 1},
                                                                {kOpnumMgmtIsServerListening, 1},
                                                                {kOpnumMgmtStopServerListening, 1},
                                                                {kOpnumMgmtInqStats, 4}};
  EXPECT_EQ(reported, want);
  EXPECT_EQ(s.trailing_bytes_calls(), 4u);
  // inq_stats asks for more than exist: 4 returned.
  auto r = s.call(kOpnumMgmtInqStats, hex("ffffffff"), Endian::kLittle);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, hex("04000000 04000000 0a000000 14000000 1e000000 28000000 00000000"));
  r = s.call(kOpnumMgmtInqStats, hex("00000000"), Endian::kLittle);
  EXPECT_EQ(*r, hex("00000000 00000000 00000000"));
  // Big endian.
  r = s.call(kOpnumMgmtInqStats, hex("00000001"), Endian::kBig);
  EXPECT_EQ(*r, hex("00000001 00000001 0000000a 00000000"));
  // princ_name: too small a buffer, size 0.
  r = s.call(kOpnumMgmtInqPrincName, hex("09000000 04000000"), Endian::kLittle);
  EXPECT_EQ(*r, hex("04000000 00000000 01000000 00 000000 7a000000"));
  r = s.call(kOpnumMgmtInqPrincName, hex("09000000 00000000"), Endian::kLittle);
  EXPECT_EQ(*r, hex("00000000 00000000 00000000 7a000000"));
  // Empty interface list: a vector with count 0.
  auto empty = service({});
  r = empty.call(kOpnumMgmtInqIfIds, {}, Endian::kLittle);
  EXPECT_EQ(*r, hex("00000200 00000000 00000000 00000000"));
}

// The client side: what Impacket sends for EPM + MGMT decodes to exactly that list; every
// truncation fails cleanly; over-limit and inconsistent counts are refused before allocating.
TEST(InqIfIdsResponse, DecodesImpacketVectorAndRejectsBadInput) {
  const auto wire =
      hex("00000200020000000200000004000200080002000883afe11f5dc91191a408002b14a0fa0300000080bda8af"
          "8a7dc911bef408002b1029890100000000000000");
  auto v = decode_inq_if_ids_response(wire, Endian::kLittle);
  ASSERT_TRUE(v) << v.error().message();
  const std::vector<SyntaxId> want{rpc::kEpmSyntax, rpc::kMgmtSyntax};
  EXPECT_EQ(v->if_ids, want);
  EXPECT_EQ(v->status, 0u);
  EXPECT_EQ(encode_inq_if_ids_response(*v, Endian::kLittle), wire);
  for (std::size_t n = 0; n < wire.size(); ++n) {
    auto t = decode_inq_if_ids_response(std::span(wire).first(n), Endian::kLittle);
    EXPECT_FALSE(t) << n;
  }
  auto trailing = wire;
  trailing.push_back(0);
  EXPECT_EQ(decode_inq_if_ids_response(trailing, Endian::kLittle).error(),
            ndr::Errc::kTrailingBytes);
  // count 0x10000000 with a 4-byte stub behind it.
  EXPECT_EQ(decode_inq_if_ids_response(hex("00000200 00000010 00000010 00000000"), Endian::kLittle)
                .error(),
            ndr::Errc::kCountOverLimit);
  EXPECT_EQ(decode_inq_if_ids_response(hex("00000200 01000000 02000000 00000000"), Endian::kLittle)
                .error(),
            ndr::Errc::kCountInconsistent);
  // NULL vector (Windows, rpc_s_no_interfaces 0x16c9a0c8 style status), big endian round trip.
  auto null_vector = decode_inq_if_ids_response(hex("00000000 16c9a0c8"), Endian::kBig);
  ASSERT_TRUE(null_vector);
  EXPECT_FALSE(null_vector->if_ids);
  EXPECT_EQ(null_vector->status, 0x16c9a0c8u);
  const InqIfIdsResponse big{std::vector<SyntaxId>{kSamr10}, 0};
  EXPECT_EQ(decode_inq_if_ids_response(encode_inq_if_ids_response(big, Endian::kBig), Endian::kBig),
            big);
}

}  // namespace
}  // namespace rpcgate::epm
