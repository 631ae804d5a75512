#include "firewall/epm_snoop.h"

#include <algorithm>

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
                   max_towers,
                   std::nullopt,
                   {}};
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

// ---- referrals, NAT, ept_lookup

const Address kPrivate = ipv4(10, 0, 1, 5);  // the server's own address, behind NAT
const Address kPublic = ipv4(203, 0, 113, 10);

TEST(EptMapSnoop, AThirdHostIsAReferralOnlyWhenThePolicySaysSo) {
  const Endian e = Endian::kLittle;
  const Bytes resp = map_response(
      {tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.9", "49668"),
       tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.8", "49669"),
       tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.9", "0")},  // a referral without a port
      e);
  // No referral function: a third host is kOtherHost, as before.
  auto d = decide_ept_map(map_request(kWinreg, e), e, resp, e, kServer, allow({kWinreg}));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->towers[0].verdict, TowerVerdict::kOtherHost);
  EXPECT_EQ(d->towers[0].host, ipv4(10, 0, 9, 9));
  // The policy's answer is the verdict, with the host and port named.
  MapPolicy p = allow({kWinreg});
  std::vector<std::pair<rpc::SyntaxId, Address>> asked;
  p.referral = [&](const rpc::SyntaxId& s, const Address& host) {
    asked.emplace_back(s, host);
    return host == ipv4(10, 0, 9, 9) ? TowerVerdict::kReferral
                                     : TowerVerdict::kReferralOutsideServers;
  };
  d = decide_ept_map(map_request(kWinreg, e), e, resp, e, kServer, p);
  ASSERT_TRUE(d);
  EXPECT_EQ(verdicts(*d), (std::vector<TowerVerdict>{TowerVerdict::kReferral,
                                                     TowerVerdict::kReferralOutsideServers,
                                                     TowerVerdict::kNoPort}));
  EXPECT_EQ(d->towers[0].port, 49668);
  EXPECT_EQ(d->towers[1].host, ipv4(10, 0, 9, 8));
  EXPECT_EQ(asked.size(), 2u);  // a tower without a port never asks
  EXPECT_EQ(asked[0].first, kWinreg);
  EXPECT_TRUE(d->ports().empty());  // ports(): the server's own only
  EXPECT_EQ(d->targets(),
            (std::vector<std::pair<Address, std::uint16_t>>{{ipv4(10, 0, 9, 9), 49668}}));
  EXPECT_TRUE(opens(TowerVerdict::kReferral));
  EXPECT_FALSE(opens(TowerVerdict::kReferralAnyServers));
}

TEST(EptMapSnoop, BehindNatThePrivateAddressIsTheServer) {
  const Endian e = Endian::kLittle;
  const Bytes resp = map_response({tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664"),
                                   tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", "49665")},
                                  e);
  // The client asked the public address: without NAT the private one is another host.
  auto d = decide_ept_map(map_request(kWinreg, e), e, resp, e, kPublic, allow({kWinreg}));
  ASSERT_TRUE(d);
  EXPECT_EQ(verdicts(*d),
            (std::vector<TowerVerdict>{TowerVerdict::kOtherHost, TowerVerdict::kOpen}));
  MapPolicy p = allow({kWinreg});
  p.nat_private = kPrivate;
  d = decide_ept_map(map_request(kWinreg, e), e, resp, e, kPublic, p);
  ASSERT_TRUE(d);
  EXPECT_EQ(verdicts(*d), (std::vector<TowerVerdict>{TowerVerdict::kOpen, TowerVerdict::kOpen}));
  // What the client will connect to: the public address.
  EXPECT_EQ(d->targets(),
            (std::vector<std::pair<Address, std::uint16_t>>{{kPublic, 49664}, {kPublic, 49665}}));
}

Bytes lookup_response(std::vector<std::optional<Bytes>> towers, Endian e) {
  ndr::epm::EptLookupResponse r;
  for (auto& t : towers)
    r.entries.push_back(ndr::epm::EptEntry{common::Uuid{}, std::move(t), "x"});
  r.max_count = static_cast<std::uint32_t>(r.entries.size());
  return ndr::epm::encode(r, e);
}

TEST(EptLookupSnoop, EachEntryIsJudgedAsAnEptMapTowerForItsOwnInterface) {
  for (const Endian e : {Endian::kLittle, Endian::kBig}) {
    const Bytes garbage{0x01, 0x00, 0x13};
    const auto d = decide_ept_lookup(
        lookup_response(
            {tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664"),
             tower(kSvcctl, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49665"),
             tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", "49666"),
             tower(kWinreg, ndr::Protseq::kNcadgIpUdp, "10.0.1.5", "49667"),
             tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.9", "49668"),
             tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "0"), std::nullopt, garbage},
            e),
        e, kServer, allow({kWinreg}));
    ASSERT_TRUE(d) << d.error().message();
    std::vector<TowerVerdict> v;
    for (const auto& t : d->entries)
      v.push_back(t.verdict);
    EXPECT_EQ(v, (std::vector<TowerVerdict>{TowerVerdict::kOpen, TowerVerdict::kNotAllowed,
                                            TowerVerdict::kOpen, TowerVerdict::kNotTcp,
                                            TowerVerdict::kOtherHost, TowerVerdict::kNoPort,
                                            TowerVerdict::kNull, TowerVerdict::kUndecodable}));
    EXPECT_EQ(d->entries[0].interface, kWinreg);
    EXPECT_EQ(d->entries[0].port, 49664);
    EXPECT_EQ(d->entries[1].interface, kSvcctl);
    EXPECT_EQ(d->entries[2].host, kServer);
  }
}

TEST(EptLookupSnoop, EntriesBeyondTheLimitAreNotConsideredAndBadStubsAreErrors) {
  const Endian e = Endian::kLittle;
  std::vector<std::optional<Bytes>> towers;
  for (int i = 0; i < 4; ++i)
    towers.push_back(
        tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", std::to_string(50000 + i)));
  const Bytes resp = lookup_response(towers, e);
  const auto d = decide_ept_lookup(resp, e, kServer, allow({kWinreg}, 2));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->entries[1].verdict, TowerVerdict::kOpen);
  EXPECT_EQ(d->entries[2].verdict, TowerVerdict::kOverLimit);
  EXPECT_EQ(d->entries[3].verdict, TowerVerdict::kOverLimit);
  for (std::size_t n = 0; n < resp.size(); ++n)
    EXPECT_FALSE(decide_ept_lookup(std::span(resp).first(n), e, kServer, allow({kWinreg}))) << n;
  // No policy allows nothing.
  const auto none = decide_ept_lookup(resp, e, kServer, MapPolicy{});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->entries[0].verdict, TowerVerdict::kNotAllowed);
}

// The offsets name exactly the 4 address bytes of the towers naming the private address or
// 0.0.0.0: writing the public address there changes nothing else, and the towers then name it.
void expect_rewrite(const Bytes& stub, Endian e, bool lookup, std::size_t expected) {
  auto offsets = nat_address_offsets(stub, e, lookup, kPrivate);
  ASSERT_TRUE(offsets) << offsets.error().message();
  ASSERT_EQ(offsets->size(), expected);
  Bytes rewritten = stub;
  for (const auto off : *offsets)
    std::copy(kPublic.begin() + 12, kPublic.end(), rewritten.begin() + off);
  ASSERT_EQ(rewritten.size(), stub.size());
  std::size_t changed = 0;
  for (std::size_t i = 0; i < stub.size(); ++i) {
    const bool in_address =
        std::ranges::any_of(*offsets, [&](std::size_t off) { return i >= off && i < off + 4; });
    if (!in_address) {
      EXPECT_EQ(rewritten[i], stub[i]) << i;
    }
    changed += rewritten[i] != stub[i];
  }
  EXPECT_GT(changed, 0u);
  std::vector<std::optional<Bytes>> before, after;
  if (lookup) {
    const auto b = ndr::epm::decode_ept_lookup_response(stub, e);
    const auto a = ndr::epm::decode_ept_lookup_response(rewritten, e);
    ASSERT_TRUE(b && a);
    for (const auto& entry : b->entries)
      before.push_back(entry.tower);
    for (const auto& entry : a->entries)
      after.push_back(entry.tower);
  } else {
    before = ndr::epm::decode_ept_map_response(stub, e)->towers;
    after = ndr::epm::decode_ept_map_response(rewritten, e)->towers;
  }
  ASSERT_EQ(before.size(), after.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    if (!before[i]) continue;
    auto b = ndr::decode_tower(*before[i]);
    auto a = ndr::decode_tower(*after[i]);
    if (!b) continue;
    ASSERT_TRUE(a);
    auto bb = ndr::tower_to_binding(*b);
    auto ab = ndr::tower_to_binding(*a);
    ASSERT_TRUE(bb && ab);
    const bool rewrite = bb->protseq == ndr::Protseq::kNcacnIpTcp &&
                         (bb->network_addr == "10.0.1.5" || bb->network_addr == "0.0.0.0");
    EXPECT_EQ(ab->network_addr, rewrite ? "203.0.113.10" : bb->network_addr) << i;
    EXPECT_EQ(ab->endpoint, bb->endpoint);
  }
}

TEST(NatRewrite, OnlyTheFourAddressBytesOfThePrivateAndAnyTowersChange) {
  for (const Endian e : {Endian::kLittle, Endian::kBig}) {
    const std::vector<std::optional<Bytes>> towers = {
        tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664"),
        tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "0.0.0.0", "49665"),
        tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.9.9", "49666"),  // another host: kept
        tower(kWinreg, ndr::Protseq::kNcadgIpUdp, "10.0.1.5", "49667"),  // UDP: kept
        std::nullopt,
        Bytes{0x01, 0x00, 0x13},  // does not decode: kept
        tower(kSvcctl, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49668"),
    };
    expect_rewrite(map_response(towers, e), e, false, 3);
    expect_rewrite(lookup_response(towers, e), e, true, 3);
  }
}

TEST(NatRewrite, AnAliasedTowerIsOnTheWireOnceAndRewrittenOnce) {
  // Two [ptr] elements with the same referent id: the second is an alias (ndr/epm_types.h).
  const Endian e = Endian::kLittle;
  Bytes stub = map_response(
      {tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664"), std::nullopt}, e);
  // handle 20, num_towers 4, max/offset/actual 12: the referent ids at 36 and 40.
  ASSERT_NE(Bytes(stub.begin() + 36, stub.begin() + 40), Bytes(4, 0));
  ASSERT_EQ(Bytes(stub.begin() + 40, stub.begin() + 44), Bytes(4, 0));
  std::copy(stub.begin() + 36, stub.begin() + 40, stub.begin() + 40);
  ASSERT_TRUE(ndr::epm::decode_ept_map_response(stub, e));
  expect_rewrite(stub, e, false, 1);
}

TEST(NatRewrite, AStubThatDoesNotDecodeIsAnError) {
  const Endian e = Endian::kLittle;
  const Bytes stub =
      map_response({tower(kWinreg, ndr::Protseq::kNcacnIpTcp, "10.0.1.5", "49664")}, e);
  for (std::size_t n = 0; n < stub.size(); ++n)
    EXPECT_FALSE(nat_address_offsets(std::span(stub).first(n), e, false, kPrivate)) << n;
  EXPECT_FALSE(nat_address_offsets(stub, e, true, kPrivate));  // not a lookup answer
}

}  // namespace
}  // namespace rpcgate::firewall
