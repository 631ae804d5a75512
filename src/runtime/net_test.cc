#include "runtime/net.h"

#include <array>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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

// Connects a TCP socket to `listener` (127.0.0.1 or ::1) as `uid` (a forked child that drops to
// it when uid != euid), accepts it, and asks for the owner of the peer's socket as the server
// would: tcp_owner(its getpeername, its getsockname).
std::expected<uid_t, std::error_code> owner_of_peer(const asio::ip::address& address, uid_t uid) {
  auto l = listen_tcp_same_port({address}, 0);
  EXPECT_TRUE(l);
  if (!l) return std::unexpected(std::make_error_code(std::errc::io_error));
  sockaddr_storage target;
  socklen_t tlen = make_sockaddr(address, l->port, target);
  int ready[2], done[2];
  EXPECT_EQ(::pipe(ready), 0);
  EXPECT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    if (uid != ::geteuid() && (::setgid(uid) != 0 || ::setuid(uid) != 0)) ::_exit(1);
    auto c =
        connect_stream(reinterpret_cast<sockaddr*>(&target), tlen, std::chrono::milliseconds(2000));
    if (!c) ::_exit(2);
    char b = 'x';
    (void)!::write(ready[1], &b, 1);
    (void)!::read(done[0], &b, 1);  // keep the socket open until the parent looked it up
    ::_exit(0);
  }
  char b;
  EXPECT_EQ(::read(ready[0], &b, 1), 1);
  Fd accepted(::accept4(l->fds[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  ::getpeername(accepted.get(), reinterpret_cast<sockaddr*>(&peer), &plen);
  ::getsockname(accepted.get(), reinterpret_cast<sockaddr*>(&local), &llen);
  EXPECT_TRUE(is_loopback(reinterpret_cast<sockaddr*>(&peer), plen));
  SocketOwners owners;
  auto owner = owners.tcp_owner(reinterpret_cast<sockaddr*>(&peer), plen,
                                reinterpret_cast<sockaddr*>(&local), llen);
  (void)!::write(done[1], &b, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (int fd : {ready[0], ready[1], done[0], done[1]})
    ::close(fd);
  return owner;
}

TEST(Net, OwnerOfLoopbackPeerSocketIsItsUid) {
  auto mine = owner_of_peer(kV4, ::geteuid());
  ASSERT_TRUE(mine) << mine.error().message();
  EXPECT_EQ(*mine, ::geteuid());
  if (::geteuid() != 0) GTEST_SKIP() << "another uid needs root";
  auto nobody = owner_of_peer(kV4, 65534);
  ASSERT_TRUE(nobody) << nobody.error().message();
  EXPECT_EQ(*nobody, 65534u);
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 unavailable";
  auto v6 = owner_of_peer(kV6, 65534);
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_EQ(*v6, 65534u);
}

TEST(Net, OwnerOfNoSuchSocketIsUnknown) {
  auto l = listen_tcp_same_port({kV4}, 0);
  ASSERT_TRUE(l);
  sockaddr_storage local, remote;
  socklen_t llen = make_sockaddr(kV4, 1, local);  // nobody is connected from port 1
  socklen_t rlen = make_sockaddr(kV4, l->port, remote);
  SocketOwners owners;
  auto owner = owners.tcp_owner(reinterpret_cast<sockaddr*>(&local), llen,
                                reinterpret_cast<sockaddr*>(&remote), rlen);
  ASSERT_FALSE(owner);
  EXPECT_EQ(owner.error(), std::errc::no_such_file_or_directory) << owner.error().message();
  // Not TCP/IP: refused without asking.
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  auto unix_owner = owners.tcp_owner(reinterpret_cast<sockaddr*>(&sun), sizeof sun,
                                     reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  ASSERT_FALSE(unix_owner);
  EXPECT_EQ(unix_owner.error(), std::errc::address_family_not_supported);
}

TEST(Net, LoopbackAddresses) {
  auto check = [](const char* text) {
    sockaddr_storage ss;
    socklen_t len = make_sockaddr(asio::ip::make_address(text), 1, ss);
    return is_loopback(reinterpret_cast<sockaddr*>(&ss), len);
  };
  EXPECT_TRUE(check("127.0.0.1"));
  EXPECT_TRUE(check("127.255.0.9"));
  EXPECT_TRUE(check("::1"));
  EXPECT_TRUE(check("::ffff:127.0.0.2"));
  EXPECT_FALSE(check("128.0.0.1"));
  EXPECT_FALSE(check("10.0.0.1"));
  EXPECT_FALSE(check("::2"));
  EXPECT_FALSE(check("::ffff:10.0.0.1"));
}

TEST(Net, UnixSocketModeIsSetAtBindAndOwnerByChown) {
  const auto dir = temp_dir() + "/mode";
  const auto path = dir + "/s.sock";
  const mode_t old = ::umask(0);  // the socket must not take its mode from the umask
  auto l = listen_unix(path, UnixSocketAccess{0600, std::nullopt, std::nullopt});
  ::umask(old);
  ASSERT_TRUE(l) << l.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);  // created 0755
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  if (::geteuid() == 0) {
    auto owned = listen_unix(path, UnixSocketAccess{0660, 65534, 65534});
    ASSERT_TRUE(owned) << owned.error().message();
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65534u);
  }
  std::filesystem::remove_all(dir);
}

TEST(Net, SocketDirectoryMustBeOwnedByATrustedUserAndNotWritableByOthers) {
  const auto base = temp_dir() + "/strict";
  std::filesystem::create_directories(base);
  ::chmod(base.c_str(), 0755);
  const uid_t me = ::geteuid();
  const std::array<uid_t, 1> trusted{me};
  auto fine = check_socket_directory(base + "/missing/s.sock", trusted);
  EXPECT_TRUE(fine) << fine.error().message(trusted);
  ::chmod(base.c_str(), 0777);  // world-writable: anyone could rename the socket away
  auto open = check_socket_directory(base + "/s.sock", trusted);
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().path, base);
  EXPECT_NE(open.error().message(trusted).find("mode 0777"), std::string::npos);
  ::chmod(base.c_str(), 01777);  // sticky, as /tmp
  EXPECT_TRUE(check_socket_directory(base + "/s.sock", trusted));
  ::chmod(base.c_str(), 0755);
  const std::array<uid_t, 1> other{me + 1};
  auto foreign = check_socket_directory(base + "/s.sock", other);  // owned by an untrusted uid
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().message(other).find("owned by uid " + std::to_string(me)),
            std::string::npos)
      << foreign.error().message(other);
  // A symbolic link to an unsafe directory is judged by its target.
  const auto unsafe = base + "/unsafe";
  std::filesystem::create_directories(unsafe);
  ::chmod(unsafe.c_str(), 0777);
  std::filesystem::create_directory_symlink(unsafe, base + "/link");
  auto via_link = check_socket_directory(base + "/link/s.sock", trusted);
  ASSERT_FALSE(via_link);
  EXPECT_EQ(via_link.error().path, unsafe);
  std::filesystem::remove_all(base);
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
