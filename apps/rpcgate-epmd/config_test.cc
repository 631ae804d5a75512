#include "config.h"

#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "epm/epm_service.h"
#include "runtime/broker_service.h"
#include "runtime/liveness_prober.h"
#include "runtime/server.h"

namespace rpcgate::epmd {
namespace {

TEST(ListenAddress, ParsesNumericAddresses) {
  EXPECT_EQ(parse_listen_address("0.0.0.0:135"), (ListenAddress{"0.0.0.0", 135}));
  EXPECT_EQ(parse_listen_address("[::]:135"), (ListenAddress{"::", 135}));
  EXPECT_EQ(parse_listen_address("[::1]:0"), (ListenAddress{"::1", 0}));
  EXPECT_EQ(parse_listen_address("127.0.0.1:1135")->to_string(), "127.0.0.1:1135");
  EXPECT_EQ(parse_listen_address("[::1]:1135")->to_string(), "[::1]:1135");
}

TEST(ListenAddress, RejectsWithTheReason) {
  EXPECT_NE(parse_listen_address("localhost:135").error().find("numeric IPv4"), std::string::npos);
  EXPECT_NE(parse_listen_address("0.0.0.0").error().find("missing port"), std::string::npos);
  EXPECT_NE(parse_listen_address("0.0.0.0:70000").error().find("outside"), std::string::npos);
  EXPECT_NE(parse_listen_address("0.0.0.0:1x").error().find("bad port"), std::string::npos);
  EXPECT_NE(parse_listen_address("[::1:135").error().find("bracketed"), std::string::npos);
  EXPECT_NE(parse_listen_address("[1.2.3.4]:135").error().find("IPv6"), std::string::npos);
  EXPECT_FALSE(parse_listen_address("::1:135"));  // IPv6 needs brackets
}

TEST(Config, DefaultsWithoutEpmdTable) {
  auto c = parse_config_toml("[policy]\nports = [\"5000-5100\"]\n", "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listen, (std::vector<ListenAddress>{{"0.0.0.0", 135}, {"::", 135}}));
  EXPECT_EQ(c->control, "/run/rpcgate/epmd.sock");
  EXPECT_TRUE(c->tcp_registration);
  EXPECT_FALSE(c->advertise);
  EXPECT_EQ(c->max_connections, runtime::ServerOptions{}.max_connections);
  EXPECT_EQ(c->max_connections_per_peer, runtime::ServerOptions{}.max_connections_per_peer);
  EXPECT_TRUE(c->registrants.empty());
  EXPECT_EQ(c->max_local_connections_per_uid,
            runtime::ServerOptions{}.max_local_connections_per_uid);
  EXPECT_EQ(c->max_ports_per_uid, runtime::BrokerOptions{}.max_ports_per_uid);
}

TEST(Config, RegistrantsAndPerUidBudgets) {
  auto c = parse_config_toml(R"([epmd]
registrants = ["root", "@root", "nobody"]
max_local_connections_per_uid = 8
max_ports_per_uid = 16
)",
                             "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->registrants, (std::vector<std::string>{"root", "@root", "nobody"}));
  EXPECT_EQ(c->max_local_connections_per_uid, 8u);
  EXPECT_EQ(c->max_ports_per_uid, 16u);
  for (const char* bad : {"registrants = \"root\"", "registrants = [\"\"]", "registrants = [\"@\"]",
                          "registrants = [1]"}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("registrants"), std::string::npos) << e.error();
  }
  for (const char* bad :
       {"max_local_connections_per_uid = 0", "max_local_connections_per_uid = 129",
        "max_ports_per_uid = 0", "max_ports_per_uid = 65536", "max_ports_per_uid = \"1\""}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("must be an integer from 1 to"), std::string::npos) << e.error();
  }
}

TEST(Config, RegistrantNamesResolveOrNameTheUnknownOne) {
  auto r = resolve_registrants({"root", "@root", "nobody"});
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->uids, (std::vector<uid_t>{0, 65534}));
  EXPECT_EQ(r->gids, (std::vector<gid_t>{0}));
  auto user = resolve_registrants({"root", "no-such-user-rpcgate"});
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error(), "registrants: no such user \"no-such-user-rpcgate\"");
  auto group = resolve_registrants({"@no-such-group-rpcgate"});
  ASSERT_FALSE(group);
  EXPECT_EQ(group.error(), "registrants: no such group \"no-such-group-rpcgate\"");
}

TEST(Config, ReadsEveryKey) {
  auto c = parse_config_toml(R"([epmd]
listen = ["127.0.0.1:1135", "[::1]:1135"]
control = "/tmp/x.sock"
advertise = "192.0.2.10"
tcp_registration = false
broker_addresses = ["127.0.0.1"]
user = "nobody"
log_level = "debug"
seed = 7
max_connections = 20000
max_connections_per_peer = 5000
)",
                             "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->listen.size(), 2u);
  EXPECT_EQ(c->listen[1], (ListenAddress{"::1", 1135}));
  EXPECT_EQ(c->control, "/tmp/x.sock");
  EXPECT_EQ(*c->advertise, (std::array<std::uint8_t, 4>{192, 0, 2, 10}));
  EXPECT_FALSE(c->tcp_registration);
  EXPECT_EQ(c->broker_addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(*c->user, "nobody");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(*c->seed, 7u);
  EXPECT_EQ(c->max_connections, 20000u);
  EXPECT_EQ(c->max_connections_per_peer, 5000u);
}

TEST(Config, ConnectionLimitsAreValidated) {
  // Either alone; a per-peer limit above the total is allowed (the total is then the limit).
  auto one = parse_config_toml("[epmd]\nmax_connections = 1\n", "f.toml");
  ASSERT_TRUE(one) << one.error();
  EXPECT_EQ(one->max_connections, 1u);
  EXPECT_EQ(one->max_connections_per_peer, 1024u);
  auto top = parse_config_toml("[epmd]\nmax_connections_per_peer = 1048576\n", "f.toml");
  ASSERT_TRUE(top) << top.error();
  EXPECT_EQ(top->max_connections_per_peer, kMaxConnectionsLimit);
  for (const char* bad :
       {"max_connections = 0", "max_connections = -5", "max_connections = 1048577",
        "max_connections = \"10000\"", "max_connections = 1.5", "max_connections_per_peer = 0",
        "max_connections_per_peer = 99999999999"}) {
    auto c = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().find("must be an integer from 1 to 1048576"), std::string::npos)
        << c.error();
  }
}

TEST(Config, EndpointMapBudgets) {
  // Defaults agree with the endpoint mapper's own.
  auto d = parse_config_toml("", "f.toml");
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->max_entries_per_uid, epm::DbLimits{}.max_entries_per_uid);
  EXPECT_EQ(d->max_handles_per_peer, epm::EpmConfig{}.max_handles_per_peer);
  EXPECT_EQ(d->max_handles_total, epm::EpmConfig{}.max_handles_total);
  auto c = parse_config_toml(
      "[epmd]\nmax_entries_per_uid = 10\nmax_handles_per_peer = 8\nmax_handles_total = 16\n",
      "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->max_entries_per_uid, 10u);
  EXPECT_EQ(c->max_handles_per_peer, 8u);
  EXPECT_EQ(c->max_handles_total, 16u);
  for (const char* bad : {"max_entries_per_uid = 0", "max_handles_per_peer = -1",
                          "max_handles_total = 1048577", "max_handles_total = \"16\""}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("must be an integer from 1 to 1048576"), std::string::npos)
        << e.error();
  }
}

TEST(Config, ReassemblyBudgetsAndCallTimeout) {
  auto d = parse_config_toml("", "f.toml");
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->max_reassembly_bytes_per_connection, 1u << 20);
  EXPECT_EQ(d->max_reassembly_bytes_per_peer, 4u << 20);
  EXPECT_EQ(d->max_reassembly_bytes, 32u << 20);
  EXPECT_EQ(d->call_timeout_ms, 5000u);
  EXPECT_TRUE(check_budgets(*d));
  // The smallest budget still holds one largest legitimate endpoint mapper call.
  EXPECT_EQ(kMinReassemblyBytes, epm::kMaxRequestStub);
  EXPECT_GE(d->max_reassembly_bytes_per_connection, kMinReassemblyBytes);

  auto c = parse_config_toml(R"([epmd]
max_reassembly_bytes_per_connection = 241676
max_reassembly_bytes_per_peer = 241676
max_reassembly_bytes = 1099511627776
call_timeout_ms = 100
)",
                             "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->max_reassembly_bytes_per_connection, 241676u);
  EXPECT_EQ(c->max_reassembly_bytes_per_peer, 241676u);
  EXPECT_EQ(c->max_reassembly_bytes, kMaxReassemblyBytesLimit);
  EXPECT_EQ(c->call_timeout_ms, 100u);

  for (const char* bad :
       {"max_reassembly_bytes_per_connection = 241675", "max_reassembly_bytes_per_peer = -1",
        "max_reassembly_bytes = 1099511627777", "max_reassembly_bytes = \"1M\"",
        "max_reassembly_bytes_per_peer = 2.5"}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("must be an integer from 241676"), std::string::npos) << e.error();
  }
  for (const char* bad :
       {"call_timeout_ms = 99", "call_timeout_ms = 300001", "call_timeout_ms = \"5s\""}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("call_timeout_ms must be an integer from 100 to 300000"),
              std::string::npos)
        << e.error();
  }
  // per connection <= per peer <= in all.
  auto inverted = parse_config_toml("[epmd]\nmax_reassembly_bytes_per_peer = 500000\n", "f.toml");
  ASSERT_FALSE(inverted);
  EXPECT_NE(inverted.error().find("max_reassembly_bytes_per_connection (1048576) must not exceed "
                                  "max_reassembly_bytes_per_peer (500000)"),
            std::string::npos)
      << inverted.error();
  auto total = parse_config_toml("[epmd]\nmax_reassembly_bytes = 2097152\n", "f.toml");
  ASSERT_FALSE(total);
  EXPECT_NE(total.error().find("must not exceed max_reassembly_bytes (2097152)"), std::string::npos)
      << total.error();
}

TEST(Config, ErrorsNameTheFileAndKey) {
  auto typo = parse_config_toml("[epmd]\nlisten_on = []\n", "f.toml");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().find("f.toml: [epmd] unknown key \"listen_on\""), std::string::npos);
  auto bad = parse_config_toml("[epmd]\nlisten = [\"nowhere\"]\n", "f.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("\"nowhere\""), std::string::npos);
  EXPECT_FALSE(parse_config_toml("[epmd]\ntcp_registration = \"yes\"\n", "f.toml"));
  EXPECT_FALSE(parse_config_toml("[epmd]\nadvertise = \"::1\"\n", "f.toml"));
  EXPECT_FALSE(parse_config_toml("[epmd]\nlisten = []\n", "f.toml"));
  EXPECT_FALSE(parse_config_toml("[epmd]\nlog_level = \"loud\"\n", "f.toml"));
  EXPECT_FALSE(parse_config_toml("[epmd]\nseed = -1\n", "f.toml"));
  auto syntax = parse_config_toml("[epmd\n", "f.toml");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().find("f.toml:1"), std::string::npos);
}

TEST(Config, SweepKeys) {
  auto d = parse_config_toml("", "f.toml");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sweep_interval_ms,
            static_cast<std::uint64_t>(runtime::SweepOptions{}.interval.count()));
  EXPECT_EQ(d->sweep_failures, runtime::SweepOptions{}.failures);
  auto c = parse_config_toml("[epmd]\nsweep_interval_ms = 1000\nsweep_failures = 2\n", "f.toml");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->sweep_interval_ms, 1000u);
  EXPECT_EQ(c->sweep_failures, 2u);
  EXPECT_EQ(parse_config_toml("[epmd]\nsweep_interval_ms = 0\n", "f.toml")->sweep_interval_ms, 0u);
  for (const char* bad :
       {"sweep_interval_ms = 50", "sweep_interval_ms = -1", "sweep_interval_ms = 86400001",
        "sweep_failures = 0", "sweep_failures = 101", "sweep_failures = \"3\""}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find(std::string(bad).substr(0, std::string(bad).find(' '))),
              std::string::npos)
        << e.error();
  }
}

TEST(Config, MetricsIsOffByDefaultAndAnAddressWhenSet) {
  EXPECT_FALSE(parse_config_toml("", "f.toml")->metrics);
  auto c = parse_config_toml("[epmd]\nmetrics = \"[::1]:9135\"\n", "f.toml");
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(c->metrics);
  EXPECT_EQ(c->metrics->to_string(), "[::1]:9135");
  for (const char* bad : {"metrics = \"localhost:9135\"", "metrics = \"127.0.0.1\"",
                          "metrics = 9135", "metrics = \"127.0.0.1:99999\""}) {
    auto e = parse_config_toml(std::string("[epmd]\n") + bad + "\n", "f.toml");
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find("f.toml: [epmd] metrics"), std::string::npos) << e.error();
  }
}

TEST(Config, StaticEntries) {
  auto c = parse_config_toml(R"([epmd]
[[epmd.entry]]
interface = "12345778-1234-abcd-ef00-0123456789ab"
version = "1.2"
binding = "ncacn_ip_tcp:0.0.0.0[5000]"
annotation = "lsarpc"
[[epmd.entry]]
interface = "12345778-1234-abcd-ef00-0123456789ac"
object = "6b29fc40-ca47-1067-b31d-00dd010662da"
binding = "ncacn_ip_tcp:127.0.0.1[5001]"
)",
                             "f.toml");
  ASSERT_TRUE(c) << c.error();
  ASSERT_EQ(c->static_entries.size(), 2u);
  EXPECT_EQ(c->static_entries[0].text,
            "12345778-1234-abcd-ef00-0123456789ab:1.2 at ncacn_ip_tcp:0.0.0.0[5000]");
  EXPECT_EQ(c->static_entries[0].entry.annotation, "lsarpc");
  EXPECT_TRUE(c->static_entries[0].entry.object.is_nil());
  EXPECT_EQ(c->static_entries[1].entry.object.to_string(), "6b29fc40-ca47-1067-b31d-00dd010662da");
  // Each entry is what the map accepts; version 0.0 by default.
  auto e = epm::make_entry(c->static_entries[1].entry);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->interface.major, 0);
  epm::EndpointDb db;
  EXPECT_EQ(db.insert({c->static_entries[0].entry, c->static_entries[1].entry}, false,
                      epm::Registrant{kStaticLease, epm::kEpmdAuthority}),
            0u);
}

TEST(Config, InvalidStaticEntryNamesFileIndexAndWhy) {
  const std::string ok =
      "interface = \"12345778-1234-abcd-ef00-0123456789ab\"\n"
      "binding = \"ncacn_ip_tcp:0.0.0.0[5000]\"\n";
  struct Case {
    std::string body;
    std::string_view why;
  };
  const Case cases[] = {
      {"binding = \"ncacn_ip_tcp:0.0.0.0[5000]\"\n", "interface is required"},
      {"interface = \"12345778-1234-abcd-ef00-0123456789ab\"\n", "binding is required"},
      {"interface = \"not-a-uuid\"\nbinding = \"ncacn_ip_tcp:0.0.0.0[5000]\"\n",
       "interface \"not-a-uuid\" is not a UUID"},
      {"interface = \"00000000-0000-0000-0000-000000000000\"\n"
       "binding = \"ncacn_ip_tcp:0.0.0.0[5000]\"\n",
       "nil UUID"},
      {ok + "version = \"1\"\n", "major.minor"},
      {ok + "version = \"1.70000\"\n", "major.minor"},
      {ok + "annotation = \"" + std::string(64, 'a') + "\"\n", "63 characters"},
      {ok + "port = 5\n", "unknown key \"port\""},
      {ok + "version = 1\n", "version must be a string"},
      {"interface = \"12345778-1234-abcd-ef00-0123456789ab\"\nbinding = \"bogus:x\"\n",
       "binding \"bogus:x\""},
      {"interface = \"12345778-1234-abcd-ef00-0123456789ab\"\n"
       "binding = \"6b29fc40-ca47-1067-b31d-00dd010662da@ncacn_ip_tcp:0.0.0.0[5000]\"\n",
       "object = "},
  };
  for (const auto& c : cases) {
    const std::string text = "[epmd]\n[[epmd.entry]]\n" + ok + "[[epmd.entry]]\n" + c.body;
    auto e = parse_config_toml(text, "rpcgate.toml");
    ASSERT_FALSE(e) << c.body;
    EXPECT_NE(e.error().find("rpcgate.toml: [[epmd.entry]] #2: "), std::string::npos) << e.error();
    EXPECT_NE(e.error().find(c.why), std::string::npos) << e.error();
  }
  std::string many = "[epmd]\n";
  for (std::size_t i = 0; i <= kMaxStaticEntries; ++i)
    many += "[[epmd.entry]]\n" + ok;
  auto e = parse_config_toml(many, "f.toml");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("at most " + std::to_string(kMaxStaticEntries)), std::string::npos);
}

// packaging/rpcgate.toml is installed as /etc/rpcgate/rpcgate.toml with every setting commented
// out; a "# key = value" line holds the key's default (tests/conffile_test.py checks the rest).
// Read as shipped, and with those lines uncommented, its [epmd] must be exactly Config{}.
std::string shipped_conffile(bool uncomment_defaults) {
  std::ifstream in(std::string(RPCGATE_SOURCE_DIR) + "/packaging/rpcgate.toml");
  EXPECT_TRUE(in) << "packaging/rpcgate.toml";
  static const std::regex kDefault("^# [a-z_]+ = .+$");
  std::string text, line;
  while (std::getline(in, line))
    text += (uncomment_defaults && std::regex_match(line, kDefault) ? line.substr(2) : line) + "\n";
  return text;
}

TEST(Config, ShippedConffileMeansTheDefaults) {
  for (bool uncommented : {false, true}) {
    const std::string text = shipped_conffile(uncommented);
    if (uncommented) {
      EXPECT_NE(text.find("\nmax_reassembly_bytes = "), std::string::npos);
    }
    auto c = parse_config_toml(text, "packaging/rpcgate.toml");
    ASSERT_TRUE(c) << c.error();
    const Config d;
    EXPECT_EQ(c->listen, d.listen);
    EXPECT_EQ(c->control, d.control);
    EXPECT_EQ(c->advertise, d.advertise);
    EXPECT_EQ(c->tcp_registration, d.tcp_registration);
    EXPECT_EQ(c->broker_addresses, d.broker_addresses);
    EXPECT_EQ(c->user, d.user);
    EXPECT_EQ(c->log_level, d.log_level);
    EXPECT_EQ(c->seed, d.seed);
    EXPECT_EQ(c->max_connections, d.max_connections);
    EXPECT_EQ(c->max_connections_per_peer, d.max_connections_per_peer);
    EXPECT_EQ(c->max_entries_per_uid, d.max_entries_per_uid);
    EXPECT_EQ(c->max_handles_per_peer, d.max_handles_per_peer);
    EXPECT_EQ(c->max_handles_total, d.max_handles_total);
    EXPECT_EQ(c->max_reassembly_bytes_per_connection, d.max_reassembly_bytes_per_connection);
    EXPECT_EQ(c->max_reassembly_bytes_per_peer, d.max_reassembly_bytes_per_peer);
    EXPECT_EQ(c->max_reassembly_bytes, d.max_reassembly_bytes);
    EXPECT_EQ(c->call_timeout_ms, d.call_timeout_ms);
    EXPECT_EQ(c->registrants, d.registrants);
    EXPECT_EQ(c->max_local_connections_per_uid, d.max_local_connections_per_uid);
    EXPECT_EQ(c->max_ports_per_uid, d.max_ports_per_uid);
    EXPECT_EQ(c->sweep_interval_ms, d.sweep_interval_ms);
    EXPECT_EQ(c->sweep_failures, d.sweep_failures);
    EXPECT_EQ(c->static_entries, d.static_entries);
  }
}

}  // namespace
}  // namespace rpcgate::epmd
