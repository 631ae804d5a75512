#include "firewall/epm_snoop.h"

#include <gtest/gtest.h>

#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::firewall {
namespace {

using common::Endian;
using Bytes = std::vector<std::uint8_t>;

const rpc::SyntaxId kWinreg{*common::Uuid::parse("338cd001-2244-31f1-aaaa-900038001003"), 1, 0};
const rpc::SyntaxId kSvcctl{*common::Uuid::parse("367abb81-9844-35f1-ad32-98f038001003"), 2, 0};
const Address kServer = ipv4(10, 0, 1, 5);

Bytes tower(const rpc::SyntaxId& iface, ndr::Protseq protseq, std::string host, std::string port) {
  ndr::StringBinding b;
  b.protseq = protseq;
  b.network_addr = std::move(host);
  b.endpoint = std::move(port);
  auto t = ndr::binding_to_tower(b, iface);
  EXPECT_TRUE(t) << t.error().message();
  return ndr::encode_tower(*t);
}

Bytes map_request(const rpc::SyntaxId& iface, Endian e) {
  ndr::epm::EptMapRequest q;
  q.object = common::Uuid{};
  q.map_tower = tower(iface, ndr::Protseq::kNcacnIpTcp, "", "");
  q.max_towers = 4;
  return ndr::epm::encode(q, e);
}

Bytes map_response(std::vector<std::optional<Bytes>> towers, Endian e, std::uint32_t status = 0) {
  ndr::epm::EptMapResponse r;
  r.max_count = static_cast<std::uint32_t>(std::max<std::size_t>(towers.size(), 4));
  r.towers = std::move(towers);
  r.status = status;
  return ndr::epm::encode(r, e);
}

MapPolicy allow(std::vector<rpc::SyntaxId> allowed, std::size_t max_towers = 16) {
  return MapPolicy{[allowed](const rpc::SyntaxId& s) {
                     for (const auto& a : allowed)
                       if (a.uuid == s.uuid && a.major == s.major) return true;
                     return false;
                   },
                   max_towers};
}

std::vector<TowerVerdict> verdicts(const MapDecision& d) {
  std::vector<TowerVerdict> v;
  for (const auto& t : d.towers)
    v.push_back(t.verdict);
  return v;
}

TEST(EptMapSnoop, AnAllowedInterfaceOpensTheTcpPortsOnTheServerItself) {
  for (const Endian e : {Endian::kLittle, Endian::kBig}) {
    const auto d = decide_ept_map(
        map_request(kWinreg, e), e,
        map_response({tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664"),
                      tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", "49665"),
                      tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664")},
                     e),
        e, kServer, allow({kWinreg}));
    ASSERT_TRUE(d) << d.error().message();
    ASSERT_TRUE(d->interface);
    EXPECT_EQ(*d->interface, kWinreg);
    EXPECT_TRUE(d->allowed);
    EXPECT_EQ(d->ports(), (std::vector<std::uint16_t>{49664, 49665}));
  }
}

TEST(EptMapSnoop, EveryTowerThatCouldOpenSomethingElseOpensNothing) {
  const Endian e = Endian::kLittle;
  Bytes garbage{0x05, 0x00, 0x13, 0x00};
  const auto d = decide_ept_map(
      map_request(kWinreg, e), e,
      map_response({tower(kSvcctl, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49666"),  // C: other
                    tower(kWinreg, ndr::Protseq::kNcadgIpUdp, "10.0.1.5", "49667"),  // UDP
                    tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.9", "49668"),  // referral
                    tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "0"),      // port 0
                    std::nullopt, garbage},
                   e),
      e, kServer, allow({kWinreg}));
  ASSERT_TRUE(d);
  EXPECT_EQ(verdicts(*d),
            (std::vector<TowerVerdict>{TowerVerdict::kOtherInterface, TowerVerdict::kNotTcp,
                                       TowerVerdict::kOtherHost, TowerVerdict::kNoPort,
                                       TowerVerdict::kNull, TowerVerdict::kUndecodable}));
  EXPECT_TRUE(d->ports().empty());
}

TEST(EptMapSnoop, AnInterfaceThePolicyDoesNotAllowOpensNothing) {
  const Endian e = Endian::kLittle;
  const auto d = decide_ept_map(
      map_request(kSvcctl, e), e,
      map_response({tower(kSvcctl, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49666")}, e), e, kServer,
      allow({kWinreg}));
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->allowed);
  EXPECT_EQ(verdicts(*d), std::vector<TowerVerdict>{TowerVerdict::kNotAllowed});
  EXPECT_TRUE(d->ports().empty());
  // No policy at all allows nothing.
  EXPECT_TRUE(decide_ept_map(map_request(kWinreg, e), e,
                             map_response({tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "", "1")}, e),
                             e, kServer, MapPolicy{})
                  ->ports()
                  .empty());
}

TEST(EptMapSnoop, TowersBeyondTheLimitAreNotConsidered) {
  const Endian e = Endian::kLittle;
  std::vector<std::optional<Bytes>> towers;
  for (int i = 0; i < 5; ++i)
    towers.push_back(
        tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", std::to_string(50000 + i)));
  const auto d = decide_ept_map(map_request(kWinreg, e), e, map_response(towers, e), e, kServer,
                                allow({kWinreg}, 2));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->ports(), (std::vector<std::uint16_t>{50000, 50001}));
  EXPECT_EQ(d->towers[4].verdict, TowerVerdict::kOverLimit);
}

TEST(EptMapSnoop, StubsThatDoNotDecodeAreErrorsAtEveryTruncation) {
  const Endian e = Endian::kLittle;
  const Bytes req = map_request(kWinreg, e);
  const Bytes resp = map_response({tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "", "49664")}, e);
  for (std::size_t n = 0; n < req.size(); ++n)
    EXPECT_FALSE(decide_ept_map(std::span(req).first(n), e, resp, e, kServer, allow({kWinreg})))
        << n;
  for (std::size_t n = 0; n < resp.size(); ++n)
    EXPECT_FALSE(decide_ept_map(req, e, std::span(resp).first(n), e, kServer, allow({kWinreg})))
        << n;
}

}  // namespace
}  // namespace rpcgate::firewall
