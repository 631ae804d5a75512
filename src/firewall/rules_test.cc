#include "firewall/rules.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include <gtest/gtest.h>
#include <unistd.h>

namespace rpcgate::firewall {
namespace {

using std::chrono::seconds;

rpc::SyntaxId syntax(std::string_view uuid, std::uint16_t major, std::uint16_t minor) {
  return rpc::SyntaxId{*common::Uuid::parse(uuid), major, minor};
}

Address addr(const std::string& text) {
  return *parse_address(text);
}

// ---- CIDR ----------------------------------------------------------------------------------

TEST(Cidr, ParsesBothFamiliesAndPrintsThemBack) {
  for (const char* text : {"10.0.0.0/8", "10.0.0.5/32", "0.0.0.0/0", "192.0.2.128/25", "fd00::/8",
                           "::1/128", "::/0", "2001:db8::/32"}) {
    const auto c = parse_cidr(text);
    ASSERT_TRUE(c.has_value()) << text << ": " << c.error();
    EXPECT_EQ(to_string(*c), text);
  }
  EXPECT_EQ(to_string(*parse_cidr("10.0.0.5")), "10.0.0.5/32");  // a host
  EXPECT_EQ(to_string(*parse_cidr("::1")), "::1/128");
  EXPECT_TRUE(parse_cidr("10.0.0.0/8")->ipv4());
  EXPECT_FALSE(parse_cidr("fd00::/8")->ipv4());
  EXPECT_FALSE(parse_cidr("::/0")->ipv4());
}

TEST(Cidr, RefusesHostBitsBadPrefixesAndNonAddresses) {
  for (const char* text : {"10.0.0.1/8", "fd00::1/8", "10.0.0.0/33", "::/129", "10.0.0.0/",
                           "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0/8", "host.example",
                           "", "/8", "10.0.0.0/8/8", " 10.0.0.0/8"}) {
    const auto c = parse_cidr(text);
    EXPECT_FALSE(c.has_value()) << text;
  }
  const std::string with_nul("10.0.0.1\0/32", 12);
  EXPECT_FALSE(parse_cidr(with_nul).has_value());
  EXPECT_NE(parse_cidr("10.0.0.1/8").error().find("host bits"), std::string::npos);
}

TEST(Cidr, ContainsByPrefix) {
  const Cidr net = *parse_cidr("10.1.0.0/16");
  EXPECT_TRUE(net.contains(ipv4(10, 1, 0, 0)));
  EXPECT_TRUE(net.contains(ipv4(10, 1, 255, 255)));
  EXPECT_FALSE(net.contains(ipv4(10, 2, 0, 0)));
  const Cidr odd = *parse_cidr("192.0.2.128/25");
  EXPECT_TRUE(odd.contains(ipv4(192, 0, 2, 200)));
  EXPECT_FALSE(odd.contains(ipv4(192, 0, 2, 127)));
  const Cidr v6 = *parse_cidr("fd00::/8");
  EXPECT_TRUE(v6.contains(addr("fdab::1")));
  EXPECT_FALSE(v6.contains(addr("fe80::1")));
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(ipv4(203, 0, 113, 9)));
}

TEST(Cidr, AFamilyNeverMatchesTheOther) {
  // 0.0.0.0/0 is every IPv4 address and no IPv6 one; ::/0 is every IPv6 address and no IPv4
  // one, although IPv4 is stored IPv4-mapped inside ::/0's range.
  const Cidr any4 = *parse_cidr("0.0.0.0/0");
  const Cidr any6 = *parse_cidr("::/0");
  for (const char* v6 : {"::1", "fd00::1", "2001:db8::5", "::"}) {
    EXPECT_FALSE(any4.contains(addr(v6))) << v6;
    EXPECT_TRUE(any6.contains(addr(v6))) << v6;
  }
  for (const auto& v4 : {ipv4(0, 0, 0, 0), ipv4(10, 0, 0, 1), ipv4(255, 255, 255, 255)}) {
    EXPECT_TRUE(any4.contains(v4));
    EXPECT_FALSE(any6.contains(v4));
  }
  EXPECT_FALSE(parse_cidr("::1/128")->contains(ipv4(0, 0, 0, 1)));
}

// ---- Auth levels, durations ------------------------------------------------------------------

TEST(AuthLevel, NamesRoundTripCaseInsensitively) {
  for (const auto level : {AuthLevel::kNone, AuthLevel::kConnect, AuthLevel::kCall,
                           AuthLevel::kPacket, AuthLevel::kIntegrity, AuthLevel::kPrivacy}) {
    EXPECT_EQ(parse_auth_level(to_string(level)), level);
  }
  EXPECT_EQ(parse_auth_level("Privacy"), AuthLevel::kPrivacy);
  EXPECT_EQ(static_cast<int>(AuthLevel::kIntegrity), 5);  // RPC_C_AUTHN_LEVEL_PKT_INTEGRITY
  EXPECT_FALSE(parse_auth_level("secret").has_value());
  EXPECT_FALSE(parse_auth_level("").has_value());
}

TEST(Duration, UnitsAndRange) {
  EXPECT_EQ(parse_duration("90"), seconds(90));
  EXPECT_EQ(parse_duration("60s"), seconds(60));
  EXPECT_EQ(parse_duration("5m"), seconds(300));
  EXPECT_EQ(parse_duration("24h"), seconds(86400));
  EXPECT_EQ(parse_duration("1"), seconds(1));
  for (const char* text : {"0", "0s", "25h", "86401", "", "s", "-5", "+5", "5 s", "1.5m", "5d",
                           "99999999999999999999999"}) {
    EXPECT_FALSE(parse_duration(text).has_value()) << text;
  }
}

// ---- Interfaces ------------------------------------------------------------------------------

TEST(Interface, UuidAnyVersionOrMajorWithAMinimumMinor) {
  const auto any = parse_interface("E3514235-4B06-11D1-AB04-00C04FC2DCD2");
  ASSERT_TRUE(any.has_value()) << any.error();
  EXPECT_FALSE(any->major);
  EXPECT_TRUE(any->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 0)));
  EXPECT_TRUE(any->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 7, 3)));
  EXPECT_FALSE(any->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd3", 4, 0)));

  const auto v = parse_interface("e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.1");
  ASSERT_TRUE(v.has_value()) << v.error();
  EXPECT_EQ(v->major, 4);
  EXPECT_EQ(v->min_minor, 1);
  EXPECT_EQ(v->name, "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.1");
  EXPECT_TRUE(v->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 1)));
  EXPECT_TRUE(v->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 9)));
  EXPECT_FALSE(v->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 0)));  // older minor
  EXPECT_FALSE(v->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 5, 1)));  // other major
  EXPECT_FALSE(v->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 3, 1)));

  for (const char* text :
       {"e3514235-4b06-11d1-ab04-00c04fc2dcd2:4", "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.",
        "e3514235-4b06-11d1-ab04-00c04fc2dcd2:.0", "e3514235-4b06-11d1-ab04-00c04fc2dcd2:65536.0",
        "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.0.0", "e3514235-4b06-11d1-ab04-00c04fc2dcd:4.0",
        "drsuapi:4", "nosuchpipe", "nosuchpipe:1.0", ""}) {
    EXPECT_FALSE(parse_interface(text).has_value()) << text;
  }
}

TEST(Interface, WellKnownNamesAreCaseInsensitiveAndPinTheirMajor) {
  const auto d = parse_interface("DrsUapi");
  ASSERT_TRUE(d.has_value()) << d.error();
  EXPECT_EQ(d->name, "drsuapi");
  EXPECT_TRUE(d->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 0)));
  EXPECT_FALSE(d->matches(syntax("e3514235-4b06-11d1-ab04-00c04fc2dcd2", 3, 0)));
  const auto named = parse_interface("WINREG:1.2");
  ASSERT_TRUE(named.has_value()) << named.error();
  EXPECT_EQ(named->name, "WINREG:1.2");
  EXPECT_TRUE(named->matches(syntax("338cd001-2244-31f1-aaaa-900038001003", 1, 2)));
  EXPECT_FALSE(named->matches(syntax("338cd001-2244-31f1-aaaa-900038001003", 1, 1)));
  // A name allows every minor of its major.
  EXPECT_TRUE(
      parse_interface("frsrpc")->matches(syntax("f5cc59b4-4264-101a-8c59-08002b2f8426", 1, 0)));
}

TEST(Interface, WellKnownTableHoldsTheVerifiedIdentifiers) {
  // The brief's list, spelled out once more by hand: a typo in either place fails here.
  const struct {
    const char* name;
    const char* uuid;
    std::uint16_t major, minor;
  } expected[] = {
      {"lsarpc", "12345778-1234-abcd-ef00-0123456789ab", 0, 0},
      {"samr", "12345778-1234-abcd-ef00-0123456789ac", 1, 0},
      {"netlogon", "12345678-1234-abcd-ef00-01234567cffb", 1, 0},
      {"drsuapi", "e3514235-4b06-11d1-ab04-00c04fc2dcd2", 4, 0},
      {"spoolss", "12345678-1234-abcd-ef00-0123456789ab", 1, 0},
      {"winreg", "338cd001-2244-31f1-aaaa-900038001003", 1, 0},
      {"svcctl", "367abb81-9844-35f1-ad32-98f038001003", 2, 0},
      {"eventlog", "82273fdc-e32a-18c3-3f78-827929dc23ea", 0, 0},
      {"srvsvc", "4b324fc8-1670-01d3-1278-5a47bf6ee188", 3, 0},
      {"wkssvc", "6bffd098-a112-3610-9833-46c3f87e345a", 1, 0},
      {"epmapper", "e1af8308-5d1f-11c9-91a4-08002b14a0fa", 3, 0},
      {"rpcecho", "60a15ec5-4de8-11d7-a637-005056a20182", 1, 0},
      {"mgmt", "afa8bd80-7d8a-11c9-bef4-08002b102989", 1, 0},
      {"isystemactivator", "000001a0-0000-0000-c000-000000000046", 0, 0},
      {"ioxidresolver", "99fcfec4-5260-101b-bbcb-00aa0021347a", 0, 0},
  };
  for (const auto& e : expected) {
    const auto it = std::ranges::find(well_known_interfaces(), std::string_view(e.name),
                                      &WellKnownInterface::name);
    ASSERT_NE(it, well_known_interfaces().end()) << e.name;
    EXPECT_EQ(it->uuid, e.uuid) << e.name;
    EXPECT_EQ(it->major, e.major) << e.name;
    EXPECT_EQ(it->minor, e.minor) << e.name;
  }
  std::set<std::string_view> names;
  for (const auto& w : well_known_interfaces()) {
    EXPECT_TRUE(names.insert(w.name).second) << w.name;  // unique
    EXPECT_TRUE(common::Uuid::parse(w.uuid).has_value()) << w.name;
    EXPECT_EQ(common::Uuid::parse(w.uuid)->to_string(), w.uuid) << w.name;  // lower case
    EXPECT_TRUE(parse_interface(w.name).has_value()) << w.name;
  }
  // The epm module's constant and the table agree.
  EXPECT_TRUE(parse_interface("epmapper")->matches(rpc::kEpmSyntax));
  EXPECT_TRUE(parse_interface("mgmt")->matches(rpc::kMgmtSyntax));
}

// ---- TOML --------------------------------------------------------------------------------------

std::expected<FirewallConfig, std::string> parse(std::string_view text) {
  return parse_firewall_toml(text, "fw.toml");
}

TEST(FirewallToml, NoFirewallTableGivesTheDefaults) {
  for (const char* text : {"", "[policy]\nports = [\"5000-5100\"]\n", "[firewall]\n"}) {
    const auto c = parse(text);
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ(c->mode, Mode::kRouter);
    EXPECT_TRUE(c->clients.empty() && c->servers.empty() && c->rules.empty());
    EXPECT_EQ(c->pinhole_timeout, seconds(60));
    EXPECT_EQ(c->epm_listen_port, 15135);
    EXPECT_EQ(c->pinhole_listen_port, 15136);
    EXPECT_FALSE(c->dcom || c->lookup_pinholes);
    EXPECT_EQ(c->max_towers, 16u);
    EXPECT_EQ(c->control, "/run/rpcgate/fwd.sock");
  }
}

TEST(FirewallToml, EveryKey) {
  const auto c = parse(R"([policy]
ports = ["5000-5100"]
[firewall]
mode = "host"
clients = ["10.0.0.0/8", "fd00::/8"]
servers = ["192.0.2.0/24"]
policy = "/etc/rpcgate/ports.reg"
pinhole_timeout = "90s"
epm_listen_port = 20135
pinhole_listen_port = 20136
lookup_pinholes = true
dcom = true
max_towers = 4
max_pinholes_per_client = 8
max_pinholes = 1000
max_connections = 100
max_connections_per_client = 10
control = "/tmp/fwd.sock"

[[firewall.rule]]
name = "dc-replication"
interfaces = ["drsuapi", "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.0", "12345678-1234-abcd-ef00-01234567cffb"]
clients = ["10.1.0.0/16"]
servers = ["10.2.0.5/32"]
opnums = ["0-5", "12", 14]
min_auth = "integrity"
pinhole_timeout = "2m"

[[firewall.rule]]
name = "echo"
interfaces = ["rpcecho"]
pinhole_timeout = 30
)");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->mode, Mode::kHost);
  ASSERT_EQ(c->clients.size(), 2u);
  EXPECT_EQ(to_string(c->clients[1]), "fd00::/8");
  EXPECT_EQ(to_string(c->servers.at(0)), "192.0.2.0/24");
  EXPECT_EQ(c->policy_file, "/etc/rpcgate/ports.reg");
  EXPECT_EQ(c->pinhole_timeout, seconds(90));
  EXPECT_EQ(c->epm_listen_port, 20135);
  EXPECT_EQ(c->pinhole_listen_port, 20136);
  EXPECT_TRUE(c->lookup_pinholes);
  EXPECT_TRUE(c->dcom);
  EXPECT_EQ(c->max_towers, 4u);
  EXPECT_EQ(c->max_pinholes_per_client, 8u);
  EXPECT_EQ(c->max_pinholes, 1000u);
  EXPECT_EQ(c->max_connections, 100u);
  EXPECT_EQ(c->max_connections_per_client, 10u);
  EXPECT_EQ(c->control, "/tmp/fwd.sock");
  ASSERT_EQ(c->rules.size(), 2u);
  const Rule& r = c->rules[0];
  EXPECT_EQ(r.name, "dc-replication");
  ASSERT_EQ(r.interfaces.size(), 3u);
  EXPECT_EQ(r.interfaces[0].name, "drsuapi");
  EXPECT_FALSE(r.interfaces[2].major);
  EXPECT_EQ(to_string(r.clients.at(0)), "10.1.0.0/16");
  EXPECT_EQ(to_string(r.servers.at(0)), "10.2.0.5/32");
  ASSERT_EQ(r.opnums.size(), 3u);
  EXPECT_EQ(r.opnums[0].first, 0);
  EXPECT_EQ(r.opnums[0].last, 5);
  EXPECT_EQ(r.opnums[1].first, 12);
  EXPECT_EQ(r.opnums[1].last, 12);
  EXPECT_EQ(r.opnums[2].first, 14);
  EXPECT_TRUE(r.allows_opnum(5));
  EXPECT_TRUE(r.allows_opnum(12));
  EXPECT_TRUE(r.allows_opnum(14));
  EXPECT_FALSE(r.allows_opnum(6));
  EXPECT_FALSE(r.allows_opnum(13));
  EXPECT_EQ(r.min_auth, AuthLevel::kIntegrity);
  EXPECT_EQ(r.pinhole_timeout, seconds(120));
  const Rule& e = c->rules[1];
  EXPECT_EQ(e.min_auth, AuthLevel::kNone);
  EXPECT_TRUE(e.opnums.empty());
  EXPECT_TRUE(e.allows_opnum(65535));
  EXPECT_EQ(e.pinhole_timeout, seconds(30));
}

// Every error names FILE:LINE and what is wrong.
TEST(FirewallToml, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* where;  // "fw.toml:LINE:"
    const char* what;   // a part of the message
  };
  const Case cases[] = {
      {"[firewall]\nmode = \"bridge\"\n", "fw.toml:2:", "\"router\" or \"host\""},
      {"[firewall]\nmode = 1\n", "fw.toml:2:", "must be a string"},
      {"[firewall]\n\nmodes = \"host\"\n", "fw.toml:3:", "unknown key \"modes\""},
      {"[firewall]\nclients = \"10.0.0.0/8\"\n", "fw.toml:2:", "array of strings"},
      {"[firewall]\nclients = []\n", "fw.toml:2:", "omit the key"},
      {"[firewall]\nclients = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n]\n",
       "fw.toml:4:", "host bits"},
      {"[firewall]\nservers = [10]\n", "fw.toml:2:", "must be strings"},
      {"[firewall]\npolicy = \"\"\n", "fw.toml:2:", "must not be empty"},
      {"[firewall]\ncontrol = 5\n", "fw.toml:2:", "must be a string"},
      {"[firewall]\npinhole_timeout = \"forever\"\n", "fw.toml:2:", "invalid duration"},
      {"[firewall]\npinhole_timeout = 0\n", "fw.toml:2:", "1 s .. 24 h"},
      {"[firewall]\npinhole_timeout = 1.5\n", "fw.toml:2:", "a duration"},
      {"[firewall]\nepm_listen_port = 0\n", "fw.toml:2:", "1..65535"},
      {"[firewall]\npinhole_listen_port = 65536\n", "fw.toml:2:", "1..65535"},
      {"[firewall]\nepm_listen_port = 15136\n", "fw.toml:1:", "must differ"},
      {"[firewall]\nlookup_pinholes = \"yes\"\n", "fw.toml:2:", "true or false"},
      {"[firewall]\ndcom = 1\n", "fw.toml:2:", "true or false"},
      {"[firewall]\nmax_towers = 0\n", "fw.toml:2:", "max_towers must be 1.."},
      {"[firewall]\nmax_pinholes_per_client = -1\n", "fw.toml:2:", "must be 1.."},
      {"[firewall]\nmax_pinholes = 0\n", "fw.toml:2:", "must be 1.."},
      {"[firewall]\nmax_connections = 0\n", "fw.toml:2:", "must be 1.."},
      {"[firewall]\nmax_connections_per_client = 0\n", "fw.toml:2:", "must be 1.."},
      {"[firewall]\nmax_towers = \"4\"\n", "fw.toml:2:", "an integer"},
      {"firewall = 5\n", "fw.toml:1:", "must be a table"},
      {"[firewall]\nrule = 5\n", "fw.toml:2:", "array of tables"},
      {"[firewall]\nmode = \"router\"\nmode = \"host\"\n", "fw.toml:3:", "TOML:"},
      // Rules.
      {"[[firewall.rule]]\ninterfaces = [\"samr\"]\n", "fw.toml:1:", "has no name"},
      {"[firewall]\n[[firewall.rule]]\nname = \"a\"\n", "fw.toml:2:", "has no interfaces"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = []\n", "fw.toml:3:", "omit the key"},
      {"[[firewall.rule]]\nname = \"\"\ninterfaces = [\"samr\"]\n", "fw.toml:2:", "1..128"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\n\n[[firewall.rule]]\n"
       "name = \"a\"\ninterfaces = [\"lsarpc\"]\n",
       "fw.toml:6:", "used twice"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\", \"smar\"]\n",
       "fw.toml:3:", "invalid interface \"smar\""},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nclients = [\"10.0.0.0/33\"]\n",
       "fw.toml:4:", "prefix length"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nservers = []\n",
       "fw.toml:4:", "omit the key"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nopnums = [\"5-3\"]\n",
       "fw.toml:4:", "FIRST <= LAST"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nopnums = [\"70000\"]\n",
       "fw.toml:4:", "invalid opnum range"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nopnums = [-1]\n",
       "fw.toml:4:", "invalid opnum range"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nopnums = []\n",
       "fw.toml:4:", "omit the key"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nmin_auth = \"strong\"\n",
       "fw.toml:4:", "invalid auth level"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\npinhole_timeout = \"2d\"\n",
       "fw.toml:4:", "invalid duration"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\ninterface = [\"lsarpc\"]\n",
       "fw.toml:4:", "unknown key \"interface\" in firewall.rule[1]"},
      {"[[firewall.rule]]\nname = \"a\"\ninterfaces = [\"samr\"]\nclient = [\"10.0.0.0/8\"]\n",
       "fw.toml:4:", "unknown key \"client\""},
      {"[firewall]\nfoo = 1\n", "fw.toml:2:", "valid keys: mode"},
      {"[firewall\n", "fw.toml:1:", "TOML:"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto r = parse(c.text);
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().starts_with(c.where)) << r.error();
    EXPECT_NE(r.error().find(c.what), std::string::npos) << r.error();
  }
}

TEST(FirewallToml, LoadReadsAFileAndNamesIt) {
  char path[] = "/tmp/rpcgate_rules_test_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream out(path);
    out << "[firewall]\n\n[[firewall.rule]]\nname = \"x\"\ninterfaces = [\"samr\"]\nmin_auth = 3\n";
  }
  const auto r = load_firewall_toml(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().rfind(std::string(path) + ":6:", 0), 0u) << r.error();
  {
    std::ofstream out(path);
    out << "[firewall]\n[[firewall.rule]]\nname = \"x\"\ninterfaces = [\"samr\"]\n";
  }
  const auto ok = load_firewall_toml(path);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(ok->rules.size(), 1u);
  std::remove(path);
  EXPECT_FALSE(load_firewall_toml(path).has_value());
}

// ---- RuleSet -----------------------------------------------------------------------------------

RuleSet rules_of(std::string_view text) {
  auto c = parse(text);
  EXPECT_TRUE(c.has_value()) << c.error();
  return RuleSet(c ? std::move(*c) : FirewallConfig{});
}

TEST(RuleSet, FindIsTheFirstRuleThatAppliesAndMatches) {
  const RuleSet rules = rules_of(R"([firewall]
clients = ["10.0.0.0/8"]
servers = ["10.2.0.0/16", "fd00::/8"]
pinhole_timeout = 45
[[firewall.rule]]
name = "narrow"
interfaces = ["samr"]
clients = ["10.1.0.0/16"]
pinhole_timeout = "3m"
[[firewall.rule]]
name = "wide"
interfaces = ["samr", "lsarpc"]
[[firewall.rule]]
name = "v6-only"
interfaces = ["winreg:1.0"]
servers = ["fd00::/8"]
)");
  const auto samr = syntax("12345778-1234-abcd-ef00-0123456789ac", 1, 0);
  const auto lsa = syntax("12345778-1234-abcd-ef00-0123456789ab", 0, 0);
  const auto winreg = syntax("338cd001-2244-31f1-aaaa-900038001003", 1, 0);
  const Address inner = ipv4(10, 1, 2, 3), outer = ipv4(10, 9, 9, 9), server = ipv4(10, 2, 0, 5);

  ASSERT_NE(rules.find(inner, server, samr), nullptr);
  EXPECT_EQ(rules.find(inner, server, samr)->name, "narrow");
  EXPECT_EQ(rules.timeout(*rules.find(inner, server, samr)), seconds(180));
  EXPECT_EQ(rules.find(outer, server, samr)->name, "wide");
  EXPECT_EQ(rules.timeout(*rules.find(outer, server, samr)), seconds(45));
  EXPECT_EQ(rules.find(inner, server, lsa)->name, "wide");
  EXPECT_EQ(rules.find(inner, server, winreg), nullptr);  // only on an IPv6 server
  EXPECT_EQ(rules.find(inner, addr("fd00::5"), winreg)->name, "v6-only");
  EXPECT_EQ(
      rules.find(inner, addr("fd00::5"), syntax("338cd001-2244-31f1-aaaa-900038001003", 2, 0)),
      nullptr);  // another major
  EXPECT_EQ(rules.find(inner, server, syntax("12345778-1234-abcd-ef00-0123456789ac", 2, 0)),
            nullptr);  // samr is v1

  EXPECT_TRUE(rules.governs(inner, server));
  EXPECT_TRUE(rules.governs(outer, addr("fd00::1")));
  EXPECT_FALSE(rules.governs(ipv4(192, 168, 0, 1), server));
  EXPECT_FALSE(rules.governs(inner, ipv4(10, 3, 0, 1)));
  EXPECT_FALSE(rules.governs(addr("fd00::7"), server));  // IPv6 client, IPv4 clients list
}

TEST(RuleSet, NoRulesAllowNothingAndGovernEverything) {
  const RuleSet rules{FirewallConfig{}};
  EXPECT_EQ(rules.find(ipv4(1, 2, 3, 4), ipv4(5, 6, 7, 8), rpc::kEpmSyntax), nullptr);
  EXPECT_TRUE(rules.governs(ipv4(1, 2, 3, 4), addr("::1")));
}

// packaging/rpcgate.toml is installed as /etc/rpcgate/rpcgate.toml with every setting commented
// out; a "# key = value" line holds the key's default (tests/conffile_test.py checks the rest).
// Read as shipped, and with those lines uncommented, its [firewall] must be FirewallConfig{}.
TEST(FirewallToml, ShippedConffileMeansTheDefaults) {
  static const std::regex kDefault("^# [a-z_]+ = .+$");
  for (bool uncommented : {false, true}) {
    std::ifstream in(std::string(RPCGATE_SOURCE_DIR) + "/packaging/rpcgate.toml");
    ASSERT_TRUE(in) << "packaging/rpcgate.toml";
    std::string text, line;
    while (std::getline(in, line))
      text += (uncommented && std::regex_match(line, kDefault) ? line.substr(2) : line) + "\n";
    if (uncommented) {
      EXPECT_NE(text.find("\nmax_connections_per_client = "), std::string::npos);
    }
    auto c = parse_firewall_toml(text, "packaging/rpcgate.toml");
    ASSERT_TRUE(c) << c.error();
    const FirewallConfig d;
    EXPECT_EQ(c->mode, d.mode);
    EXPECT_TRUE(c->clients.empty());
    EXPECT_TRUE(c->servers.empty());
    EXPECT_EQ(c->policy_file, d.policy_file);
    EXPECT_EQ(c->pinhole_timeout, d.pinhole_timeout);
    EXPECT_EQ(c->epm_listen_port, d.epm_listen_port);
    EXPECT_EQ(c->pinhole_listen_port, d.pinhole_listen_port);
    EXPECT_EQ(c->lookup_pinholes, d.lookup_pinholes);
    EXPECT_EQ(c->dcom, d.dcom);
    EXPECT_EQ(c->max_towers, d.max_towers);
    EXPECT_EQ(c->max_pinholes_per_client, d.max_pinholes_per_client);
    EXPECT_EQ(c->max_pinholes, d.max_pinholes);
    EXPECT_EQ(c->max_connections, d.max_connections);
    EXPECT_EQ(c->max_connections_per_client, d.max_connections_per_client);
    EXPECT_EQ(c->control, d.control);
    EXPECT_TRUE(c->rules.empty());
  }
}

// ---- lookup pinholes, referrals, static NAT ------------------------------------------------

TEST(FirewallToml, LookupPinholesReferralsAndNat) {
  const auto c = parse_firewall_toml(
      "[firewall]\n"
      "lookup_pinholes = true\n"
      "lookup_pinhole_timeout = \"5m\"\n"
      "servers = [\"10.2.0.0/16\"]\n"
      "[[firewall.rule]]\n"
      "name = \"r\"\n"
      "interfaces = [\"winreg\"]\n"
      "referrals = true\n"
      "[[firewall.nat]]\n"
      "public = \"203.0.113.10\"\n"
      "private = \"10.2.0.5\"\n"
      "[[firewall.nat]]\n"
      "public = \"203.0.113.11\"\n"
      "private = \"10.2.0.6\"\n",
      "fw.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->lookup_pinholes);
  EXPECT_EQ(c->lookup_pinhole_timeout, seconds(300));
  ASSERT_EQ(c->rules.size(), 1u);
  EXPECT_TRUE(c->rules[0].referrals);
  ASSERT_EQ(c->nat.size(), 2u);
  EXPECT_EQ(c->nat[0].public_address, addr("203.0.113.10"));
  EXPECT_EQ(c->nat[0].private_address, addr("10.2.0.5"));
  EXPECT_EQ(c->nat[1].line, 12u);
  // Defaults: off, the rule's timeout, no referrals, no NAT.
  const auto d = parse_firewall_toml(
      "[firewall]\n[[firewall.rule]]\nname = \"r\"\n"
      "interfaces = [\"winreg\"]\n",
      "fw.toml");
  ASSERT_TRUE(d) << d.error();
  EXPECT_FALSE(d->lookup_pinholes);
  EXPECT_FALSE(d->lookup_pinhole_timeout);
  EXPECT_FALSE(d->rules[0].referrals);
  EXPECT_TRUE(d->nat.empty());
}

TEST(FirewallToml, NatErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  };
  const Case cases[] = {
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"10.2.0.5\"\n"
       "[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"10.2.0.6\"\n",
       "fw.toml:5:", "already used by the entry on line 2"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"10.2.0.5\"\n"
       "[[firewall.nat]]\npublic = \"203.0.113.11\"\nprivate = \"10.2.0.5\"\n",
       "fw.toml:5:", "private address 10.2.0.5 is already used"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"10.2.0.5\"\n"
       "[[firewall.nat]]\npublic = \"10.2.0.5\"\nprivate = \"10.2.0.7\"\n",
       "fw.toml:5:", "public address 10.2.0.5 is already used"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"203.0.113.10\"\n",
       "fw.toml:2:", "the same address"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"2001:db8::1\"\nprivate = \"10.2.0.5\"\n",
       "fw.toml:3:", "IPv4 only"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.0/24\"\nprivate = \"10.2.0.5\"\n",
       "fw.toml:3:", "must be an IPv4 address"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\n",
       "fw.toml:2:", "private is missing"},
      {"[firewall]\n[[firewall.nat]]\npublic = \"203.0.113.10\"\nprivate = \"10.2.0.5\"\n"
       "port = 135\n",
       "fw.toml:5:", "unknown key \"port\""},
      {"[firewall]\nnat = 5\n", "fw.toml:2:", "array of tables"},
      {"[firewall]\nlookup_pinhole_timeout = \"never\"\n", "fw.toml:2:", "invalid duration"},
      {"[firewall]\n[[firewall.rule]]\nname = \"r\"\ninterfaces = [\"winreg\"]\n"
       "referrals = \"yes\"\n",
       "fw.toml:5:", "true or false"},
  };
  for (const auto& c : cases) {
    const auto r = parse_firewall_toml(c.text, "fw.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_TRUE(r.error().starts_with(c.where)) << r.error();
    EXPECT_NE(r.error().find(c.what), std::string::npos) << r.error();
  }
  // validate_nat (the command line's --nat) says the same without a line.
  std::vector<NatEntry> dup{{addr("203.0.113.10"), addr("10.2.0.5"), 0},
                            {addr("203.0.113.10"), addr("10.2.0.6"), 0}};
  EXPECT_NE(validate_nat(dup).find("already used"), std::string::npos);
  dup.pop_back();
  EXPECT_EQ(validate_nat(dup), "");
}

TEST(RuleSet, ANatPublicAddressIsJudgedAsItsPrivateOne) {
  FirewallConfig c;
  c.servers.push_back(*parse_cidr("10.2.0.0/16"));
  c.nat.push_back(NatEntry{addr("203.0.113.10"), addr("10.2.0.5"), 0});
  Rule r;
  r.name = "only-10.2.0.5";
  r.interfaces.push_back(*parse_interface("winreg"));
  r.servers.push_back(*parse_cidr("10.2.0.5/32"));
  c.rules.push_back(r);
  const RuleSet rules(c);
  const auto winreg = syntax("338cd001-2244-31f1-aaaa-900038001003", 1, 0);
  EXPECT_EQ(rules.nat_private(addr("203.0.113.10")), addr("10.2.0.5"));
  EXPECT_FALSE(rules.nat_private(addr("10.2.0.5")));
  EXPECT_EQ(rules.real_server(addr("203.0.113.10")), addr("10.2.0.5"));
  EXPECT_EQ(rules.real_server(addr("10.2.0.9")), addr("10.2.0.9"));
  EXPECT_TRUE(rules.governs(addr("10.1.0.1"), addr("203.0.113.10")));
  EXPECT_FALSE(rules.governs(addr("10.1.0.1"), addr("203.0.113.11")));
  EXPECT_NE(rules.find(addr("10.1.0.1"), addr("203.0.113.10"), winreg), nullptr);
  EXPECT_NE(rules.find(addr("10.1.0.1"), addr("10.2.0.5"), winreg), nullptr);
  EXPECT_EQ(rules.find(addr("10.1.0.1"), addr("10.2.0.6"), winreg), nullptr);
  EXPECT_TRUE(rules.in_configured_servers(addr("10.2.9.9")));
  EXPECT_FALSE(rules.in_configured_servers(addr("10.3.0.1")));
  EXPECT_FALSE(RuleSet(FirewallConfig{}).in_configured_servers(addr("10.2.9.9")));  // "any"
}

TEST(RuleSet, LookupPinholesHaveTheirOwnTimeoutOrTheRules) {
  FirewallConfig c;
  c.pinhole_timeout = seconds(60);
  Rule r;
  r.name = "r";
  r.pinhole_timeout = seconds(120);
  c.rules.push_back(r);
  EXPECT_EQ(RuleSet(c).lookup_timeout(RuleSet(c).config().rules[0]), seconds(120));
  c.lookup_pinhole_timeout = seconds(300);
  const RuleSet set(c);
  EXPECT_EQ(set.lookup_timeout(set.config().rules[0]), seconds(300));
  EXPECT_EQ(set.timeout(set.config().rules[0]), seconds(120));
}

}  // namespace
}  // namespace rpcgate::firewall
