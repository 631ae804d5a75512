#include "config.h"

#include <gtest/gtest.h>

#include "epm/epm_service.h"
#include "runtime/broker_service.h"
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

}  // namespace
}  // namespace rpcgate::epmd
