#include "runtime/status_protocol.h"

#include <gtest/gtest.h>

#include "ndr/errc.h"
#include "ndr/ndr.h"

namespace rpcgate::runtime::status {
namespace {

using common::Endian;
using common::Uuid;
using policy::PortClass;

Uuid uuid(const char* text) {
  return *Uuid::parse(text);
}

Registration leased(std::uint64_t lease, const char* iface, std::string annotation,
                    std::string binding) {
  Registration r;
  r.kind = Kind::kLeased;
  r.connection_id = lease;
  r.uid = 0;
  r.interface = uuid(iface);
  r.major = 1;
  r.minor = 0;
  r.annotation = std::move(annotation);
  r.binding = std::move(binding);
  return r;
}

// Two servers (one with two ports), a persistent entry, epmd's own, both pools.
StatusReport sample() {
  StatusReport r;
  r.now = 1'796'000'000;
  r.pools = {{PortClass::kInternet, 100, 2, 98}, {PortClass::kIntranet, 100, 1, 99}};
  Lease a;
  a.connection_id = 3;
  a.since = 1'795'999'000;
  a.pid = 4242;
  a.uid = 0;
  a.gid = 0;
  a.command = "rpcgate-echo";
  a.ports = {{50010, PortClass::kInternet, 1'795'999'001}, {50020, PortClass::kInternet, 7}};
  a.registrations = {leased(3, "60a15ec5-4de8-11d7-a637-005056a20182", "rpcgate echo",
                            "ncacn_ip_tcp:0.0.0.0[50010]")};
  Lease b;
  b.connection_id = 9;
  b.since = 1'795'999'500;
  b.pid = 77;
  b.uid = 1000;
  b.gid = 1000;
  b.command = "?";
  b.ports = {{50150, PortClass::kIntranet, 1'795'999'501}};
  b.registrations = {
      leased(9, "11111111-2222-3333-4444-555555555501", "", "ncacn_ip_tcp:0.0.0.0[50150]"),
      leased(9, "11111111-2222-3333-4444-555555555502", "beta", "ncacn_ip_tcp:0.0.0.0[50150]")};
  b.registrations[1].object = uuid("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
  b.registrations[1].major = 2;
  b.registrations[1].minor = 7;
  b.registrations[0].uid = b.registrations[1].uid = 1000;
  r.leases = {a, b};
  Registration p;
  p.kind = Kind::kPersistent;
  p.uid = 0;
  p.interface = uuid("11111111-2222-3333-4444-555555555511");
  p.major = 1;
  p.annotation = "dce registrant";
  p.binding = "ncacn_ip_tcp:0.0.0.0[5000]";
  Registration e;
  e.kind = Kind::kEpmd;
  e.uid = 0xffffffffu;
  e.interface = uuid("e1af8308-5d1f-11c9-91a4-08002b14a0fa");
  e.major = 3;
  e.annotation = "rpcgate endpoint mapper";
  e.binding = "ncacn_ip_tcp:0.0.0.0[135]";
  r.registrations = {p, e};
  return r;
}

TEST(StatusProtocol, RequestRoundTripAndExactSize) {
  for (auto endian : {Endian::kLittle, Endian::kBig}) {
    const auto bytes = encode(QueryStatusRequest{7}, endian);
    ASSERT_EQ(bytes.size(), kRequestStubSize);
    EXPECT_EQ(decode_query_status_request(bytes, endian), QueryStatusRequest{7});
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_FALSE(decode_query_status_request(longer, endian));
    EXPECT_FALSE(decode_query_status_request(std::span(bytes).first(bytes.size() - 1), endian));
  }
}

TEST(StatusProtocol, ReportRoundTripsInBothByteOrders) {
  const auto report = sample();
  EXPECT_EQ(fit(report), report);  // consistent and within the limits: unchanged
  for (auto endian : {Endian::kLittle, Endian::kBig}) {
    const auto bytes = encode(report, endian);
    auto back = decode_status_report(bytes, endian);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, report);
    EXPECT_EQ(encode(*back, endian), bytes);
  }
  StatusReport empty;
  empty.now = 5;
  auto back = decode_status_report(encode(empty, Endian::kLittle), Endian::kLittle);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, empty);
}

// The layout in the header, written out by hand for a small report (little-endian).
TEST(StatusProtocol, GoldenLayout) {
  StatusReport r;
  r.now = 0x0102030405060708;
  r.pools = {{PortClass::kIntranet, 10, 1, 9}};
  Lease l;
  l.connection_id = 5;
  l.since = 6;
  l.pid = 7;
  l.uid = 8;
  l.gid = 9;
  l.command = "ab";
  l.ports = {{0xc350, PortClass::kIntranet, 11}};
  l.registrations = {leased(5, "01020304-0506-0708-090a-0b0c0d0e0f10", "x", "b")};
  r.leases = {l};
  std::vector<std::uint8_t> want;
  auto u8 = [&](std::initializer_list<int> bytes) {
    for (int b : bytes)
      want.push_back(static_cast<std::uint8_t>(b));
  };
  auto u32 = [&](std::uint32_t v) {
    u8({int(v & 0xff), int(v >> 8 & 0xff), int(v >> 16 & 0xff), int(v >> 24)});
  };
  auto u64 = [&](std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v));
    u32(static_cast<std::uint32_t>(v >> 32));
  };
  u32(0);                                  // 0   flags
  u32(0);                                  // 4   pad to 8
  u64(0x0102030405060708);                 // 8   now
  u32(1);                                  // 16  pools
  u32(2), u32(10), u32(1), u32(9);         // 20  intranet: size 10, held 1, free 9
  u32(1);                                  // 36  leases
  u64(5), u64(6), u32(7), u32(8), u32(9);  // 40  connection 5, since 6, pid 7, uid 8, gid 9
  u32(0), u32(3), u8({'a', 'b', 0});       // 68  command "ab"
  u8({0});                                 // 79  pad to 4
  u32(1);                                  // 80  ports
  u32(0);                                  // 84  pad to 8
  u64(5), u64(11);                         // 88  connection 5, since 11
  u8({0x50, 0xc3, 2, 0});                  // 104 port 50000, intranet
  u32(1);                                  // 108 registrations
  u64(5), u32(0), u32(0);                  // 112 connection 5, kind leased, uid 0
  u8({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});         // 128 object nil
  u8({4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16});  // 144 interface
  u8({1, 0, 0, 0});                                             // 160 version 1.0
  u32(0), u32(2), u8({'x', 0});                                 // 164 annotation "x"
  u8({0, 0});                                                   // 174 pad to 4
  u32(0), u32(2), u8({'b', 0});                                 // 176 binding "b"
  u8({0, 0});                                                   // 186 pad to 4
  u32(0);                                                       // 188 status
  ASSERT_EQ(want.size(), 192u);
  EXPECT_EQ(encode(r, Endian::kLittle), want);
  auto back = decode_status_report(want, Endian::kLittle);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, r);
}

// Every prefix of a valid stub is refused (the decoder needs the exact stub), and so is any
// byte after it.
TEST(StatusProtocol, EveryTruncationAndTrailingByteIsRefused) {
  for (auto endian : {Endian::kLittle, Endian::kBig}) {
    const auto bytes = encode(sample(), endian);
    for (std::size_t n = 0; n < bytes.size(); ++n)
      EXPECT_FALSE(decode_status_report(std::span(bytes).first(n), endian)) << "prefix " << n;
    auto longer = bytes;
    longer.push_back(0);
    auto r = decode_status_report(longer, endian);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), ndr::Errc::kTrailingBytes);
  }
}

// A stub as a client receives it in fragments: split at every byte, reassembled, decoded.
TEST(StatusProtocol, SplitAtEveryByteReassemblesToTheSameReport) {
  const auto bytes = encode(sample(), Endian::kLittle);
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    std::vector<std::uint8_t> joined(bytes.begin(), bytes.begin() + static_cast<long>(cut));
    joined.insert(joined.end(), bytes.begin() + static_cast<long>(cut), bytes.end());
    auto r = decode_status_report(joined, Endian::kLittle);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, sample());
  }
}

StatusReport many(std::size_t leases, std::size_t ports_each, std::size_t regs_each,
                  std::size_t persistent) {
  StatusReport r;
  r.pools = {{PortClass::kInternet, 1000, 0, 1000}, {PortClass::kIntranet, 1000, 0, 1000}};
  for (std::size_t i = 0; i < leases; ++i) {
    Lease l;
    l.connection_id = i + 1;
    l.pid = static_cast<std::uint32_t>(100 + i);
    l.command = "srv" + std::to_string(i);
    for (std::size_t p = 0; p < ports_each; ++p)
      l.ports.push_back(
          {static_cast<std::uint16_t>(40000 + i * ports_each + p), PortClass::kInternet, 1});
    for (std::size_t g = 0; g < regs_each; ++g)
      l.registrations.push_back(
          leased(i + 1, "11111111-2222-3333-4444-555555555501", "a", "ncacn_ip_tcp:0.0.0.0[1]"));
    r.leases.push_back(std::move(l));
  }
  for (std::size_t i = 0; i < persistent; ++i) {
    Registration p;
    p.kind = Kind::kPersistent;
    p.interface = uuid("11111111-2222-3333-4444-555555555511");
    p.binding = "ncacn_ip_tcp:0.0.0.0[" + std::to_string(i) + "]";
    r.registrations.push_back(std::move(p));
  }
  return r;
}

// Each limit: encode() leaves out what is over it and says so; a decoder with that limit
// refuses a stub that is over it.
TEST(StatusProtocol, EveryLimitTruncatesOnEncodeAndIsRefusedOnDecode) {
  struct Case {
    const char* name;
    StatusLimits limits;
    StatusReport report;
    std::size_t leases, persistent;
  };
  StatusLimits pools, leases, ports, regs, bytes;
  pools.max_pools = 1;
  leases.max_leases = 3;
  ports.max_ports = 5;         // leases of 2 ports: 2 fit
  regs.max_registrations = 4;  // leases of 1 registration: 3 fit, then 1 persistent
  bytes.max_response_bytes = 2000;
  const Case cases[] = {
      {"max_pools", pools, many(2, 1, 1, 1), 2, 1},
      {"max_leases", leases, many(5, 1, 1, 1), 3, 1},
      {"max_ports", ports, many(4, 2, 0, 0), 2, 0},
      {"max_registrations", regs, many(3, 0, 1, 3), 3, 1},
      {"max_response_bytes", bytes, many(0, 0, 0, 100), 0, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto full = encode(c.report, Endian::kLittle, StatusLimits{});
    ASSERT_TRUE(decode_status_report(full, Endian::kLittle));
    EXPECT_FALSE(decode_status_report(full, Endian::kLittle, c.limits));  // over the limit
    const auto cut = encode(c.report, Endian::kLittle, c.limits);
    EXPECT_LE(cut.size(), c.limits.max_response_bytes);
    auto r = decode_status_report(cut, Endian::kLittle, c.limits);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->truncated);
    EXPECT_EQ(*r, fit(c.report, c.limits));
    if (c.limits.max_pools == 1) {
      EXPECT_EQ(r->pools.size(), 1u);
    }
    EXPECT_EQ(r->leases.size(), c.leases);
    if (std::string(c.name) != "max_response_bytes") {
      EXPECT_EQ(r->registrations.size(), c.persistent);
    } else {
      EXPECT_GT(r->registrations.size(), 10u);
      EXPECT_LT(r->registrations.size(), 100u);
    }
  }
  // A stub over max_response_bytes is refused before it is read.
  StatusLimits tiny;
  tiny.max_response_bytes = 10;
  auto r = decode_status_report(encode(sample(), Endian::kLittle), Endian::kLittle, tiny);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ndr::Errc::kCountOverLimit);
}

TEST(StatusProtocol, TheWholeMapAtItsLongestIsTruncatedUnderOneMebibyte) {
  auto r = many(128, 2, 2, 4096 - 256);
  for (auto& p : r.registrations) {
    p.annotation = std::string(63, 'a');
    p.binding = "ncacn_np:" + std::string(253, 'h') + "[" + std::string(256, 'p') + "]";
  }
  const auto bytes = encode(r, Endian::kLittle);
  EXPECT_LE(bytes.size(), StatusLimits{}.max_response_bytes);
  auto back = decode_status_report(bytes, Endian::kLittle);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->truncated);
  EXPECT_EQ(back->leases.size(), 128u);  // leases first, then what fits
  EXPECT_GT(back->registrations.size(), 1000u);
}

TEST(StatusProtocol, StringsAreCutToTheirBoundsAndAtANul) {
  auto r = sample();
  r.leases[0].command = std::string(100, 'c');
  r.leases[0].registrations[0].annotation = std::string("ab\0cd", 5);
  r.registrations[0].binding = std::string(2000, 'b');
  auto back = decode_status_report(encode(r, Endian::kLittle), Endian::kLittle);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->leases[0].command, std::string(kCommandBound - 1, 'c'));
  EXPECT_EQ(back->leases[0].registrations[0].annotation, "ab");
  EXPECT_EQ(back->registrations[0].binding, std::string(kBindingBound - 1, 'b'));
  EXPECT_FALSE(back->truncated);  // cut strings are not left-out entries
}

TEST(StatusProtocol, ANonZeroStatusCarriesNothingElse) {
  auto r = sample();
  r.status = 5;
  auto back = decode_status_report(encode(r, Endian::kBig), Endian::kBig);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, 5u);
  EXPECT_EQ(back->now, r.now);
  EXPECT_TRUE(back->pools.empty());
  EXPECT_TRUE(back->leases.empty());
  EXPECT_TRUE(back->registrations.empty());
}

// Stubs whose parts do not hold together, built field by field.
struct Raw {
  std::uint32_t pool_class = 1;
  std::uint64_t lease_a = 1, lease_b = 2;
  std::uint64_t port_lease = 1;
  std::uint16_t port_class = 1;
  std::uint64_t reg_lease = 1;
  std::uint32_t reg_kind = 0;
  std::vector<std::uint8_t> encode() const {
    ndr::Encoder e(Endian::kLittle);
    e.u32(0);
    e.u64(0);
    e.conformance(1);
    e.u32(pool_class), e.u32(1), e.u32(0), e.u32(1);
    e.conformance(2);
    for (auto id : {lease_a, lease_b}) {
      e.u64(id), e.u64(0), e.u32(1), e.u32(0), e.u32(0);
      e.varying_string("x");
    }
    e.conformance(1);
    e.u64(port_lease), e.u64(0), e.u16(50000), e.u16(port_class);
    e.conformance(1);
    e.u64(reg_lease), e.u32(reg_kind), e.u32(0);
    e.uuid({}), e.uuid(uuid("11111111-2222-3333-4444-555555555501"));
    e.u16(1), e.u16(0);
    e.varying_string("");
    e.varying_string("b");
    e.u32(0);
    return e.take();
  }
};

TEST(StatusProtocol, InconsistentReportsAreRefused) {
  ASSERT_TRUE(decode_status_report(Raw{}.encode(), Endian::kLittle));
  auto refused = [](Raw raw, ndr::Errc why) {
    auto r = decode_status_report(raw.encode(), Endian::kLittle);
    if (r) return ::testing::AssertionFailure() << "decoded";
    if (r.error() != why) return ::testing::AssertionFailure() << r.error().message();
    return ::testing::AssertionSuccess();
  };
  Raw r;
  r.pool_class = 0;
  EXPECT_TRUE(refused(r, ndr::Errc::kEnumOutOfRange));
  r = {};
  r.port_class = 3;
  EXPECT_TRUE(refused(r, ndr::Errc::kEnumOutOfRange));
  r = {};
  r.reg_kind = 4;
  EXPECT_TRUE(refused(r, ndr::Errc::kEnumOutOfRange));
  r = {};
  r.lease_a = 0;  // no connection has id 0
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
  r = {};
  r.lease_b = 1;  // listed twice
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
  r = {};
  r.port_lease = 3;  // a port of a lease not listed
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
  r = {};
  r.reg_lease = 3;  // a leased registration of a lease not listed
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
  r = {};
  r.reg_kind = 1;  // persistent, yet naming a lease
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
  r = {};
  r.reg_lease = 0;  // leased, naming no lease
  EXPECT_TRUE(refused(r, ndr::Errc::kCountInconsistent));
}

TEST(StatusProtocol, FitMakesALeasesRegistrationsItsOwn) {
  auto r = sample();
  r.leases[0].registrations[0].kind = Kind::kPersistent;
  r.leases[0].registrations[0].connection_id = 99;
  r.registrations[0].kind = Kind::kLeased;
  r.registrations[0].connection_id = 3;
  auto back = decode_status_report(encode(r, Endian::kLittle), Endian::kLittle);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, sample());
}

}  // namespace
}  // namespace rpcgate::runtime::status
