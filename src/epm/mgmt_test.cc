#include "epm/mgmt.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "epm/internal/test_util.h"
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
  for (std::uint16_t op = 0; op <= 4; ++op) {
    auto r = s.call(op, one, Endian::kLittle);  // trailing / truncated input
    ASSERT_FALSE(r) << op;
    EXPECT_EQ(r.error().status, st::kRpcXBadStubData);
  }
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

}  // namespace
}  // namespace rpcgate::epm
