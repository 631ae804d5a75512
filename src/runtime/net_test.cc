#include "runtime/net.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rpcgate::runtime {
namespace {

const asio::ip::address kV4 = asio::ip::make_address("127.0.0.1");
const asio::ip::address kV6 = asio::ip::make_address("::1");

bool ipv6_loopback_available() {
  auto l = listen_tcp_same_port({kV6}, 0);
  return l.has_value();
}

std::string temp_dir() {
  auto d =
      std::filesystem::temp_directory_path() / ("rpcgate-net-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(Net, SamePortOnIpv4AndIpv6) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 unavailable";
  auto l = listen_tcp_same_port({kV4, kV6}, 0);
  ASSERT_TRUE(l) << l.error().message();
  ASSERT_EQ(l->fds.size(), 2u);
  EXPECT_NE(l->port, 0);
  EXPECT_EQ(local_port(l->fds[0].get()), l->port);
  EXPECT_EQ(local_port(l->fds[1].get()), l->port);
}

TEST(Net, FixedPortConflictNamesTheAddress) {
  auto taken = listen_tcp_same_port({kV4}, 0);
  ASSERT_TRUE(taken);
  auto again = listen_tcp_same_port({kV4}, taken->port);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, std::errc::address_in_use);
  EXPECT_EQ(again.error().address, "127.0.0.1:" + std::to_string(taken->port));
  EXPECT_NE(again.error().message().find("127.0.0.1:"), std::string::npos);
}

TEST(Net, FixedPortConflictOnSecondAddressClosesTheFirst) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 unavailable";
  auto v6 = listen_tcp_same_port({kV6}, 0);
  ASSERT_TRUE(v6);
  auto both = listen_tcp_same_port({kV4, kV6}, v6->port);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().address, "[::1]:" + std::to_string(v6->port));
  // Nothing was left listening on the IPv4 address.
  auto v4 = listen_tcp_same_port({kV4}, v6->port);
  EXPECT_TRUE(v4) << v4.error().message();
}

TEST(Net, PassesFileDescriptors) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Fd a(sv[0]), b(sv[1]);
  auto l = listen_tcp_same_port({kV4}, 0);
  ASSERT_TRUE(l);
  std::uint8_t msg[3] = {1, 2, 3};
  int fds[1] = {l->fds[0].get()};
  auto sent = send_with_fds(a.get(), msg, fds);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, 3u);
  std::uint8_t buf[16];
  auto r = recv_with_fds(b.get(), buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->bytes, 3u);
  EXPECT_FALSE(r->truncated);
  ASSERT_EQ(r->fds.size(), 1u);
  EXPECT_EQ(local_port(r->fds[0].get()), l->port);
}

TEST(Net, UnixListenerReplacesStaleSocketButNotOtherFiles) {
  auto dir = temp_dir();
  auto path = dir + "/sub/epmd.sock";
  {
    auto l = listen_unix(path, 0660);
    ASSERT_TRUE(l) << l.error().message();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
  }
  auto again = listen_unix(path);  // stale socket file from the first listener
  EXPECT_TRUE(again) << again.error().message();
  auto file = dir + "/plain";
  std::ofstream(file) << "x";
  auto refused = listen_unix(file);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().address, file);
  std::filesystem::remove_all(dir);
}

TEST(Net, LocalPortRangeIsSetOrUnsupported) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto r = set_local_port_range(fd.get(), 40000, 40100);
  if (!r) {
    EXPECT_EQ(r.error(), std::errc::no_protocol_option);
    GTEST_SKIP() << "IP_LOCAL_PORT_RANGE unsupported by this kernel";
  }
}

// Issue 10 item 9: one IPv6 host or site must not count as 2^64 peers.
TEST(Net, PeerKeyIsTheIpv4AddressOrTheIpv6Slash64) {
  auto key = [](const char* text) { return peer_key(asio::ip::make_address(text)); };
  EXPECT_EQ(key("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(key("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
  EXPECT_NE(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));  // the next /64 is another peer
  EXPECT_EQ(key("::1"), "::/64");
  EXPECT_EQ(key("fe80::1%1"), "fe80::/64");  // no scope id in the key
  // IPv4-mapped (a dual-stack socket): the IPv4 peer, so both listeners count it once.
  EXPECT_EQ(key("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(key("::ffff:192.0.2.7"), key("192.0.2.7"));

  sockaddr_storage ss{};
  socklen_t len = make_sockaddr(asio::ip::make_address("2001:db8::9"), 135, ss);
  EXPECT_EQ(peer_key(reinterpret_cast<sockaddr*>(&ss), len), "2001:db8::/64");
  len = make_sockaddr(asio::ip::make_address("198.51.100.1"), 135, ss);
  EXPECT_EQ(peer_key(reinterpret_cast<sockaddr*>(&ss), len), "198.51.100.1");
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_EQ(peer_key(reinterpret_cast<sockaddr*>(&unix_addr), sizeof unix_addr), "");
}

}  // namespace
}  // namespace rpcgate::runtime
