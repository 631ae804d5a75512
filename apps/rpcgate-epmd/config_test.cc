#include "config.h"

#include <gtest/gtest.h>

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
