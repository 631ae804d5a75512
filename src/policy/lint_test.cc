// lint() and the host fact parsers, with synthetic HostFacts only.
#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace rpcgate::policy {
namespace {

Policy restricted(std::vector<std::string> ports, const char* pia, const char* uip,
                  PortRange dynamic = kDefaultDynamicRange) {
  PolicyInput in;
  in.ports = RawValue{RawValue::Type::kMultiString, "REG_MULTI_SZ", std::move(ports), 0};
  in.ports_internet_available = RawValue{RawValue::Type::kString, "REG_SZ", {pia}, 0};
  in.use_internet_ports = RawValue{RawValue::Type::kString, "REG_SZ", {uip}, 0};
  in.dynamic_range = dynamic;
  Policy p = resolve(in);
  EXPECT_TRUE(p.valid);
  return p;
}

std::vector<std::string> codes(const std::vector<Warning>& ws) {
  std::vector<std::string> out;
  for (const auto& w : ws)
    out.push_back(w.code);
  return out;
}

const Warning* find(const std::vector<Warning>& ws, std::string_view code) {
  const auto it =
      std::find_if(ws.begin(), ws.end(), [&](const Warning& w) { return w.code == code; });
  return it == ws.end() ? nullptr : &*it;
}

const HostFacts kNoHost{};

TEST(Lint, InvalidPolicyHasNoWarnings) {
  PolicyInput in;
  in.ports = RawValue{RawValue::Type::kMultiString, "REG_MULTI_SZ", {"135"}, 0};
  const Policy p = resolve(in);
  ASSERT_FALSE(p.valid);
  EXPECT_TRUE(lint(p, HostFacts{PortRange{0, 65535}, {}}).empty());
}

TEST(Lint, CleanPolicyHasNoWarnings) {
  // 100 ports above 5000, no well-known ones, all reserved from the ephemeral allocator.
  const Policy p = restricted({"50000-50099"}, "Y", "Y", PortRange{50000, 50199});
  HostFacts host{PortRange{32768, 60999}, PortSet::of({50000, 50199})};
  EXPECT_TRUE(lint(p, host).empty());
  EXPECT_TRUE(lint(p, HostFacts{PortRange{32768, 40000}, {}}).empty());
}

TEST(Lint, SmallClass) {
  const Policy p = restricted({"50000-50098"}, "Y", "Y");
  const auto ws = lint(p, kNoHost);
  EXPECT_EQ(codes(ws), std::vector<std::string>{"small-class"});
  EXPECT_EQ(ws[0].message,
            "The Internet class has only 99 ports (50000-50098); KB 154596 recommends at least "
            "100 because several system services need RPC ports.");
  // 100 is enough.
  EXPECT_TRUE(lint(restricted({"50000-50099"}, "Y", "Y"), kNoHost).empty());
  // One port: singular.
  const auto one = lint(restricted({"50000"}, "Y", "Y"), kNoHost);
  ASSERT_EQ(codes(one), std::vector<std::string>{"small-class"});
  EXPECT_NE(one[0].message.find("has only 1 port (50000)"), std::string::npos);
  // The complement can be the small one.
  const auto small_intranet = lint(restricted({"49152-65500"}, "Y", "Y"), kNoHost);
  ASSERT_EQ(codes(small_intranet), std::vector<std::string>{"small-class"});
  EXPECT_NE(small_intranet[0].message.find("The intranet class has only 35 ports (65501-65535)"),
            std::string::npos);
}

TEST(Lint, EmptyClass) {
  // PortsInternetAvailable=N listing the whole dynamic range leaves no Internet ports.
  const auto ws = lint(restricted({"49152-65535"}, "N", "Y"), kNoHost);
  EXPECT_EQ(codes(ws), std::vector<std::string>{"empty-class"});
  EXPECT_EQ(ws[0].message,
            "The Internet class has no ports (the ports listed in Ports cover the whole dynamic "
            "range 49152-65535, leaving nothing for the Internet class), so every request for an "
            "Internet port will fail with 1721 (RPC_S_OUT_OF_RESOURCES), including every request "
            "that uses the default class, because UseInternetPorts is Y.");
  const auto intranet = lint(restricted({"49000-65535"}, "Y", "Y"), kNoHost);
  ASSERT_TRUE(find(intranet, "empty-class"));
  EXPECT_NE(find(intranet, "empty-class")->message.find("The intranet class has no ports"),
            std::string::npos);
  EXPECT_EQ(find(intranet, "empty-class")->message.find("default class"), std::string::npos);
}

TEST(Lint, LowPorts) {
  const auto ws = lint(restricted({"4900-5099"}, "Y", "Y"), kNoHost);
  EXPECT_EQ(codes(ws), std::vector<std::string>{"low-ports"});
  EXPECT_EQ(ws[0].message,
            "The Internet class includes 100 ports below 5000 (4900-4999); KB 154596 recommends "
            "ports above 5000 because lower ports may already be used by other applications.");
  EXPECT_TRUE(lint(restricted({"5000-5099"}, "Y", "Y"), kNoHost).empty());
}

TEST(Lint, EphemeralOverlap) {
  HostFacts host{PortRange{32768, 60999}, {}};
  host.reserved.add({50000, 50049});
  const auto ws = lint(restricted({"50000-50199"}, "Y", "Y", PortRange{50000, 50399}), host);
  // Both classes overlap: Internet 50050-50199 (150), intranet 50200-50399 (200).
  EXPECT_EQ(codes(ws), (std::vector<std::string>{"ephemeral-overlap", "ephemeral-overlap"}));
  EXPECT_EQ(ws[0].message,
            "150 ports of the Internet class (50050-50199) lie inside the kernel's ephemeral port "
            "range 32768-60999 (net.ipv4.ip_local_port_range) and are not in "
            "net.ipv4.ip_local_reserved_ports, so outgoing connections can take them before an "
            "RPC server does; reserve them with `rpcgate policy export --format sysctl`.");
  EXPECT_NE(ws[1].message.find("200 ports of the intranet class (50200-50399)"), std::string::npos);
  // All reserved: nothing to say.
  host.reserved.add({50000, 50399});
  EXPECT_TRUE(lint(restricted({"50000-50199"}, "Y", "Y", PortRange{50000, 50399}), host).empty());
}

TEST(Lint, UnrestrictedDefaultOverlapsLinuxEphemeralRange) {
  const Policy p = resolve(embedded_default());
  const auto ws = lint(p, HostFacts{PortRange{32768, 60999}, {}});
  ASSERT_EQ(codes(ws), std::vector<std::string>{"ephemeral-overlap"});
  EXPECT_EQ(ws[0].message.substr(0, 60),
            "11848 ports of the dynamic range 49152-65535 (49152-60999) l");
  EXPECT_TRUE(lint(p, kNoHost).empty());
}

TEST(Lint, WellKnownPorts) {
  // KB 154596's own example range contains WinRM's ports.
  const auto kb = lint(restricted({"5000-6000"}, "Y", "Y"), kNoHost);
  ASSERT_EQ(codes(kb), std::vector<std::string>{"well-known-port"});
  EXPECT_EQ(kb[0].message,
            "The Internet class includes the well-known server ports 5722 (DFSR RPC), 5985 (WinRM "
            "HTTP), 5986 (WinRM HTTPS); a dynamic RPC endpoint could take a port a service needs, "
            "and a firewall would open it as dynamic RPC.");
  const auto epm = lint(restricted({"135", "445", "5100-5199"}, "N", "N"), kNoHost);
  const Warning* w = find(epm, "well-known-port");
  ASSERT_NE(w, nullptr);
  EXPECT_NE(w->message.find("The intranet class includes the well-known server ports 135 (RPC "
                            "endpoint mapper), 445 (SMB);"),
            std::string::npos);
  EXPECT_TRUE(find(epm, "low-ports"));
}

TEST(Lint, FragmentedSetsAreAbbreviated) {
  const auto ws =
      lint(restricted({"50000", "50002", "50004", "50006", "50008", "50010"}, "Y", "Y"), kNoHost);
  ASSERT_EQ(codes(ws), std::vector<std::string>{"small-class"});
  EXPECT_NE(ws[0].message.find("(50000, 50002, 50004, 50006 and 2 more ranges)"),
            std::string::npos);
}

TEST(HostFacts, ParseIpLocalPortRange) {
  EXPECT_EQ(parse_ip_local_port_range("32768\t60999\n"), (PortRange{32768, 60999}));
  EXPECT_EQ(parse_ip_local_port_range("1024 65535"), (PortRange{1024, 65535}));
  EXPECT_FALSE(parse_ip_local_port_range(""));
  EXPECT_FALSE(parse_ip_local_port_range("32768"));
  EXPECT_FALSE(parse_ip_local_port_range("60999\t32768\n"));
  EXPECT_FALSE(parse_ip_local_port_range("32768\t70000\n"));
  EXPECT_FALSE(parse_ip_local_port_range("32768\t60999\t1\n"));
  EXPECT_FALSE(parse_ip_local_port_range("a\tb\n"));
}

TEST(HostFacts, ParseReservedPorts) {
  EXPECT_EQ(parse_reserved_ports("\n"), PortSet{});
  EXPECT_EQ(parse_reserved_ports(""), PortSet{});
  const auto s = parse_reserved_ports("8080,50000-50099\n");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->to_string(), "8080,50000-50099");
  EXPECT_FALSE(parse_reserved_ports("8080,\n"));
  EXPECT_FALSE(parse_reserved_ports("x\n"));
  EXPECT_FALSE(parse_reserved_ports("70000\n"));
}

TEST(HostFacts, ReadHostFactsDoesNotFail) {
  // Whatever this machine has: the call must return, and a present range must be sane.
  const HostFacts h = read_host_facts();
  if (h.ephemeral) {
    EXPECT_LE(h.ephemeral->lo, h.ephemeral->hi);
  }
}

}  // namespace
}  // namespace rpcgate::policy
