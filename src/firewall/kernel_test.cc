#include "firewall/kernel.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// Real kernel, no mocks: every test runs in a fresh network namespace of its own (the test's
// thread unshares one in SetUp), so the host's tables, rules and routes are never touched. Needs
// root (CAP_NET_ADMIN + CAP_SYS_ADMIN); without it the tests skip and say why.

namespace rpcgate::firewall::kernel {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// stdout (and stderr) of a shell command run in this thread's namespace.
std::string sh(const std::string& command) {
  std::string out;
  FILE* p = ::popen(("{ " + command + "; } 2>&1").c_str(), "r");
  if (!p) return "popen failed";
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    out.append(buf, n);
  ::pclose(p);
  return out;
}

// Polls `done` every 20 ms for at most `limit`: the kernel acts on its own clock here (expiry,
// packets in flight), so a bounded wait on the observable result is the test, not a sleep.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

Cidr cidr(const char* text, unsigned bits) {
  auto a = parse_address(text);
  const bool v4 = std::string(text).find(':') == std::string::npos;
  return Cidr{*a, v4 ? bits + 96 : bits};
}
PinholeKey key(const char* client, const char* server, std::uint16_t port) {
  return PinholeKey{*parse_address(client), *parse_address(server), port};
}

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace of its own, nftables";
    if (::unshare(CLONE_NEWNET) != 0)
      GTEST_SKIP() << "unshare(CLONE_NEWNET): " << std::strerror(errno);
    sh("ip link set lo up");
    auto nft = Nft::open();
    ASSERT_TRUE(nft) << nft.error();
    nft_.emplace(std::move(*nft));
  }

  std::optional<std::uint64_t> counter(const std::string& name) {
    auto c = nft_->counters();
    if (!c) return std::nullopt;
    for (auto& [n, v] : *c)
      if (n == name) return v;
    return std::nullopt;
  }
  std::vector<RecoveredPinhole> recovered() {
    auto r = nft_->recover();
    EXPECT_TRUE(r) << r.error();
    return r ? *r : std::vector<RecoveredPinhole>{};
  }
  const RecoveredPinhole* find(const std::vector<RecoveredPinhole>& all, const PinholeKey& k) {
    auto it = std::find_if(all.begin(), all.end(), [&](auto& r) { return r.key == k; });
    return it == all.end() ? nullptr : &*it;
  }

  std::optional<Nft> nft_;
};

TEST_F(KernelTest, InstallRendersAndLoadsTheTable) {
  TableSpec spec;
  spec.clients = {cidr("10.1.0.0", 16), cidr("fd00:1::", 64)};
  spec.servers = {cidr("10.2.0.0", 24), cidr("10.2.0.128", 25)};  // overlapping: merged
  spec.dynamic_ports = {{49152, 65535}, {5000, 5100}};
  const std::vector<PinholeElement> survivors = {{key("10.1.0.5", "10.2.0.9", 49704), 60s, "v4"},
                                                 {key("fd00:1::5", "fd00:2::9", 49705), 60s, "v6"}};
  const std::string text = nft_->render(spec, survivors);
  EXPECT_THAT(text, HasSubstr("set clients4 {"));
  EXPECT_THAT(text, HasSubstr("set clients6 {"));
  EXPECT_THAT(text, HasSubstr("set servers4 {"));
  EXPECT_THAT(text, Not(HasSubstr("set servers6")));
  // The servers are IPv4 only, so no IPv6 traffic is governed.
  EXPECT_THAT(text, Not(HasSubstr("meta nfproto ipv6")));
  EXPECT_THAT(text, HasSubstr("tproxy ip to :15135"));
  EXPECT_THAT(text, HasSubstr("tproxy ip to :15136"));

  ASSERT_EQ(nft_->installed(), false);
  auto r = nft_->install(spec, survivors);
  ASSERT_TRUE(r) << r.error() << "\n" << text;
  EXPECT_EQ(nft_->installed(), true);

  const std::string listing = sh("nft list table inet rpcgate_fwd");
  EXPECT_THAT(listing, HasSubstr("tcp dport 135 ct state new tproxy ip to :15135"));
  EXPECT_THAT(listing, HasSubstr("ip saddr @clients4 ip daddr @servers4"));
  EXPECT_THAT(listing, HasSubstr("10.2.0.0/24"));
  EXPECT_THAT(listing, HasSubstr("5000-5100"));
  EXPECT_THAT(listing, HasSubstr("ct mark 0x00000135 drop"));

  auto counters = nft_->counters();
  ASSERT_TRUE(counters) << counters.error();
  std::vector<std::pair<std::string, std::uint64_t>> want = {
      {"no_pinhole", 0}, {"relay_gone", 0}, {"epm_diverted", 0}, {"pinhole_diverted", 0}};
  EXPECT_EQ(*counters, want);
  EXPECT_EQ(recovered().size(), 2u);
}

TEST_F(KernelTest, BothFamiliesAreGovernedByDefaultAndHostModeLoads) {
  TableSpec spec;
  spec.mode = Mode::kHost;
  const std::string text = nft_->render(spec, {});
  EXPECT_THAT(text, HasSubstr("meta nfproto ipv4 fib daddr type local tcp dport 135"));
  EXPECT_THAT(text, HasSubstr("meta nfproto ipv6 fib daddr type local tcp dport 135"));
  EXPECT_THAT(text, Not(HasSubstr("@clients")));
  auto r = nft_->install(spec, {});
  ASSERT_TRUE(r) << r.error();
  EXPECT_THAT(sh("nft list chain inet rpcgate_fwd prerouting"), HasSubstr("tproxy ip6 to :15135"));
}

TEST_F(KernelTest, InstallTwiceReplacesTheTableKeepingOnlyTheSurvivors) {
  TableSpec spec;
  const PinholeElement a{key("10.0.0.1", "10.0.1.1", 50001), 60s, "a"};
  const PinholeElement b{key("10.0.0.2", "10.0.1.1", 50002), 60s, "b"};
  const PinholeElement c{key("fd00::3", "fd01::1", 50003), 60s, "c"};
  ASSERT_TRUE(nft_->install(spec, std::vector{a, b}));
  ASSERT_TRUE(nft_->add(std::vector{c}));
  ASSERT_EQ(recovered().size(), 3u);

  spec.dynamic_ports = {{40000, 40010}};
  ASSERT_TRUE(nft_->install(spec, std::vector{b}));
  auto now = recovered();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].key, b.key);
  EXPECT_EQ(now[0].comment, "b");
  EXPECT_THAT(sh("nft list set inet rpcgate_fwd dynports"), HasSubstr("40000-40010"));
  EXPECT_THAT(sh("nft list set inet rpcgate_fwd dynports"), Not(HasSubstr("49152")));
}

TEST_F(KernelTest, ARefusedInstallLeavesTheRunningTableAsItWas) {
  TableSpec spec;
  const PinholeElement a{key("10.0.0.1", "10.0.1.1", 50001), 60s, "a"};
  ASSERT_TRUE(nft_->install(spec, std::vector{a}));
  // Three survivors in a set of two: the kernel refuses the batch, the old table stays whole.
  TableSpec small = spec;
  small.max_pinholes = 2;
  small.dynamic_ports = {{40000, 40010}};
  const std::vector<PinholeElement> three = {{key("10.0.0.7", "10.0.1.1", 1), 60s, ""},
                                             {key("10.0.0.8", "10.0.1.1", 2), 60s, ""},
                                             {key("10.0.0.9", "10.0.1.1", 3), 60s, ""}};
  auto r = nft_->install(small, three);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error(), HasSubstr("nft"));
  auto now = recovered();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].key, a.key);
  EXPECT_THAT(sh("nft list set inet rpcgate_fwd dynports"), HasSubstr("49152-65535"));
}

TEST_F(KernelTest, InvalidSpecsAndElementsAreRefusedBeforeAnythingIsSent) {
  TableSpec spec;
  spec.dynamic_ports = {};
  EXPECT_FALSE(nft_->install(spec, {}));
  spec = TableSpec{};
  spec.route_table = 254;
  EXPECT_FALSE(nft_->install(spec, {}));
  spec = TableSpec{};
  spec.pinhole_listen_port = spec.epm_listen_port;
  EXPECT_FALSE(nft_->install(spec, {}));
  EXPECT_EQ(nft_->installed(), false);

  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  const PinholeKey k = key("10.0.0.1", "10.0.1.1", 50001);
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 60s, std::string(129, 'x')}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 60s, "a\"b"}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 60s, "a\\b"}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 60s, "line\n"}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 0ms, "a"}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{k, 25h, "a"}}));
  EXPECT_FALSE(
      nft_->add(std::vector<PinholeElement>{{key("10.0.0.1", "fd00::1", 50001), 60s, "a"}}));
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{key("10.0.0.1", "10.0.1.1", 0), 60s, ""}}));
  EXPECT_TRUE(recovered().empty());
}

TEST_F(KernelTest, AddAndRecoverRoundTripCommentsAndRemainingTimeInBothFamilies) {
  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  const std::string longest(kMaxCommentBytes, 'c');
  const std::string interfaces =
      "12345778-1234-abcd-ef00-0123456789ab:1.0,e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.0";
  const std::vector<PinholeElement> elements = {
      {key("10.0.0.1", "10.0.1.1", 49152), 60s, interfaces},
      {key("10.0.0.1", "10.0.1.1", 65535), 2h, longest},
      {key("fd00::1", "fd01::1", 50000), 90s, "v6 :,.-"},
      {key("fd00::1", "fd01::2", 50000), 1500ms, ""}};
  auto r = nft_->add(elements);
  ASSERT_TRUE(r) << r.error();
  const auto got = recovered();
  ASSERT_EQ(got.size(), elements.size());
  for (const PinholeElement& e : elements) {
    const RecoveredPinhole* g = find(got, e.key);
    ASSERT_NE(g, nullptr) << to_string(e.key.client) << " " << e.key.port;
    EXPECT_EQ(g->comment, e.comment);
    EXPECT_LE(g->expires_in, e.timeout);
    EXPECT_GT(g->expires_in, e.timeout - 5s);  // generous for a loaded machine
  }
}

TEST_F(KernelTest, AddingAnExistingElementRefreshesItsTimeoutAndComment) {
  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  const PinholeKey k = key("10.0.0.1", "10.0.1.1", 50001);
  ASSERT_TRUE(nft_->add(std::vector<PinholeElement>{{k, 10s, "old"}}));
  // The same key twice in one call: the last one wins, and the batch does not fail.
  auto r = nft_->add(std::vector<PinholeElement>{{k, 30s, "ignored"}, {k, 1h, "new"}});
  ASSERT_TRUE(r) << r.error();
  auto got = recovered();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].comment, "new");
  EXPECT_GT(got[0].expires_in, 30min);
}

TEST_F(KernelTest, AFullSetRefusesANewElementAndKeepsTheOthers) {
  TableSpec spec;
  spec.max_pinholes = 2;
  ASSERT_TRUE(nft_->install(spec, {}));
  const PinholeElement a{key("10.0.0.1", "10.0.1.1", 50001), 60s, "a"};
  const PinholeElement b{key("10.0.0.2", "10.0.1.1", 50001), 60s, "b"};
  const PinholeElement c{key("10.0.0.3", "10.0.1.1", 50001), 60s, "c"};
  ASSERT_TRUE(nft_->add(std::vector{a, b}));
  EXPECT_TRUE(nft_->add(std::vector{a, b}));  // refreshing in a full set works
  EXPECT_FALSE(nft_->add(std::vector{c}));
  EXPECT_EQ(recovered().size(), 2u);
  EXPECT_EQ(find(recovered(), c.key), nullptr);
}

TEST_F(KernelTest, RemoveDeletesTheNamedElementsAndIgnoresAbsentOnes) {
  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  const PinholeElement a{key("10.0.0.1", "10.0.1.1", 50001), 60s, "a"};
  const PinholeElement b{key("fd00::1", "fd01::1", 50001), 60s, "b"};
  const PinholeElement c{key("10.0.0.3", "10.0.1.1", 50001), 60s, "c"};
  ASSERT_TRUE(nft_->add(std::vector{a, b, c}));
  auto r = nft_->remove(std::vector{a.key, b.key, key("10.9.9.9", "10.0.1.1", 7), a.key});
  ASSERT_TRUE(r) << r.error();
  auto got = recovered();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, c.key);
}

TEST_F(KernelTest, AnElementIsGoneOnceItsTimeoutExpires) {
  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  const PinholeElement shortlived{key("10.0.0.1", "10.0.1.1", 50001), 1s, "short"};
  const PinholeElement other{key("10.0.0.2", "10.0.1.1", 50001), 1h, "long"};
  ASSERT_TRUE(nft_->add(std::vector{shortlived, other}));
  ASSERT_NE(find(recovered(), shortlived.key), nullptr);
  EXPECT_TRUE(eventually([&] { return find(recovered(), shortlived.key) == nullptr; }));
  EXPECT_NE(find(recovered(), other.key), nullptr);
}

TEST_F(KernelTest, UninstallLeavesNoTableAndIsIdempotent) {
  ASSERT_TRUE(nft_->install(TableSpec{}, {}));
  ASSERT_TRUE(nft_->uninstall());
  EXPECT_EQ(nft_->installed(), false);
  EXPECT_EQ(sh("nft list ruleset"), "");
  EXPECT_TRUE(nft_->uninstall());
  EXPECT_TRUE(recovered().empty());
  EXPECT_FALSE(nft_->counters());
  EXPECT_FALSE(nft_->add(std::vector<PinholeElement>{{key("10.0.0.1", "10.0.1.1", 1), 1s, ""}}));
}

std::string routing_state() {
  return sh(
      "ip -j rule show; ip -6 -j rule show; ip -j route show table 135; "
      "ip -6 -j route show table 135; ip -j route show table all; "
      "ip -6 -j route show table all");
}

TEST_F(KernelTest, RoutingInstallIsIdempotentAndRemoveRestoresExactlyTheStateBefore) {
  // Neighbours that look alike and must survive: another table, another mark, another route in
  // our table.
  sh("ip rule add fwmark 0x135 lookup 136; ip rule add fwmark 0x136 lookup 135; "
     "ip -6 rule add fwmark 0x135 lookup 136; ip route add unreachable 192.0.2.0/24 table 135; "
     "ip -6 route add unreachable 2001:db8::/32 table 135");
  const std::string before = routing_state();
  ASSERT_THAT(before, HasSubstr("192.0.2.0/24"));

  auto r = install_routing(0x135, 135);
  ASSERT_TRUE(r) << r.error();
  const std::string once = routing_state();
  EXPECT_NE(once, before);
  EXPECT_THAT(sh("ip rule show"), HasSubstr("fwmark 0x135 lookup 135"));
  EXPECT_THAT(sh("ip -6 rule show"), HasSubstr("fwmark 0x135 lookup 135"));
  EXPECT_THAT(sh("ip route show table 135"), HasSubstr("local default dev lo"));
  EXPECT_THAT(sh("ip -6 route show table 135"), HasSubstr("local default dev lo"));

  r = install_routing(0x135, 135);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(routing_state(), once);

  r = remove_routing(0x135, 135);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(routing_state(), before);
  r = remove_routing(0x135, 135);  // nothing left to remove: not an error
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(routing_state(), before);
}

TEST_F(KernelTest, RoutingWorksWithATableAbove255) {
  const std::string before = routing_state();
  auto r = install_routing(0x7, 1000);
  ASSERT_TRUE(r) << r.error();
  EXPECT_THAT(sh("ip rule show"), HasSubstr("fwmark 0x7 lookup 1000"));
  EXPECT_THAT(sh("ip route show table 1000"), HasSubstr("local default dev lo"));
  ASSERT_TRUE(install_routing(0x7, 1000));
  ASSERT_TRUE(remove_routing(0x7, 1000));
  EXPECT_EQ(routing_state(), before);
  EXPECT_FALSE(install_routing(0, 1000));
  EXPECT_FALSE(install_routing(7, 255));
}

// ----------------------------------------------------------------------------------------------
// End to end: a client in a namespace of its own, joined by a veth pair to this test's namespace
// (the firewall). Its SYNs meet the table's prerouting chain for real.

// The client: a forked child in a new network namespace that runs commands from a pipe, one
// line each: "connect ADDR PORT" (starts a non-blocking connect, answers "started") and
// "wait MS" (waits up to MS for it: "connected", "pending" or "error").
class Client {
 public:
  bool start() {
    int down[2], up[2];
    if (::pipe(down) != 0 || ::pipe(up) != 0) return false;
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::close(down[1]);
      ::close(up[0]);
      serve(down[0], up[1]);
    }
    ::close(down[0]);
    ::close(up[1]);
    to_ = down[1];
    from_ = up[0];
    return line() == "ready";
  }
  ~Client() {
    if (pid_ > 0) {
      ::close(to_);
      ::close(from_);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string ask(const std::string& command) {
    const std::string l = command + "\n";
    if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "write failed";
    return line();
  }

 private:
  std::string line() { return read_line(from_); }
  static std::string read_line(int fd) {
    std::string out;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n')
      out += c;
    return out;
  }
  static void reply(int fd, const std::string& s) {
    const std::string l = s + "\n";
    (void)!::write(fd, l.data(), l.size());
  }
  [[noreturn]] static void serve(int in, int out) {
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
    reply(out, "ready");
    int sock = -1;
    for (;;) {
      const std::string cmd = read_line(in);
      if (cmd.empty()) ::_exit(0);
      if (cmd.starts_with("sh ")) {
        reply(out, std::to_string(std::system(cmd.substr(3).c_str())));
      } else if (cmd.starts_with("connect ")) {
        const auto sp = cmd.rfind(' ');
        const std::string addr = cmd.substr(8, sp - 8);
        const int port = std::stoi(cmd.substr(sp + 1));
        if (sock >= 0) ::close(sock);
        sockaddr_storage ss{};
        socklen_t len;
        if (addr.find(':') != std::string::npos) {
          auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
          s6->sin6_family = AF_INET6;
          s6->sin6_port = htons(static_cast<std::uint16_t>(port));
          ::inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr);
          len = sizeof *s6;
        } else {
          auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
          s4->sin_family = AF_INET;
          s4->sin_port = htons(static_cast<std::uint16_t>(port));
          ::inet_pton(AF_INET, addr.c_str(), &s4->sin_addr);
          len = sizeof *s4;
        }
        sock = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ::connect(sock, reinterpret_cast<sockaddr*>(&ss), len);
        reply(out, "started");
      } else if (cmd.starts_with("wait ")) {
        pollfd p{sock, POLLOUT, 0};
        const int n = ::poll(&p, 1, std::stoi(cmd.substr(5)));
        int err = 0;
        socklen_t el = sizeof err;
        ::getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &el);
        reply(out, n == 0 ? "pending" : err == 0 ? "connected" : "error");
      }
    }
  }
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

// A listening socket on the firewall: transparent (what tproxy diverts to) or ordinary.
int listener(int family, std::uint16_t port, bool transparent, const char* addr = nullptr) {
  const int s = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (transparent) ::setsockopt(s, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    if (addr) ::inet_pton(AF_INET6, addr, &s6->sin6_addr);
    len = sizeof *s6;
  } else {
    if (transparent) ::setsockopt(s, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    if (addr) ::inet_pton(AF_INET, addr, &s4->sin_addr);
    len = sizeof *s4;
  }
  if (::bind(s, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(s, 8) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// Accepts one connection within 5 s; returns its local address ("ADDR:PORT") and closes it.
std::string accept_one(int l) {
  pollfd p{l, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return "nothing accepted";
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int c = ::accept(l, nullptr, nullptr);
  if (c < 0) return "accept failed";
  ::getsockname(c, reinterpret_cast<sockaddr*>(&ss), &len);
  ::close(c);
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(s6->sin6_port));
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(s4->sin_port));
}

class EndToEndTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(client_.start());
    const std::string pid = std::to_string(client_.pid());
    ASSERT_EQ(sh("ip link add vfw type veth peer name vc netns " + pid +
                 " && ip addr add 10.77.0.1/24 dev vfw && ip -6 addr add fd77::1/64 dev vfw nodad"
                 " && ip link set vfw up && echo ok"),
              "ok\n");
    ASSERT_EQ(
        client_.ask("sh ip link set lo up && ip link set vc up && "
                    "ip addr add 10.77.0.2/24 dev vc && ip -6 addr add fd77::2/64 dev vc nodad"
                    " && ip route add default via 10.77.0.1 && "
                    "ip -6 route add default via fd77::1"),
        "0");
    TableSpec spec;
    ASSERT_TRUE(nft_->install(spec, {}));
    auto r = install_routing(spec.mark, spec.route_table);
    ASSERT_TRUE(r) << r.error();
  }
  // Connects from the client; returns what the client saw once `settled` holds (or 5 s passed).
  std::string attempt(const std::string& addr, int port) {
    return client_.ask("connect " + addr + " " + std::to_string(port));
  }
  std::uint64_t count(const char* name) { return counter(name).value_or(~0ull); }

  Client client_;
};

TEST_F(EndToEndTest, AConnectionWithoutAPinholeIsDroppedAndCounted) {
  ASSERT_EQ(attempt("10.77.1.2", 50000), "started");
  ASSERT_TRUE(eventually([&] { return count("no_pinhole") >= 1; })) << count("no_pinhole");
  EXPECT_EQ(client_.ask("wait 0"), "pending");  // no SYN-ACK and no RST: dropped
  EXPECT_EQ(count("pinhole_diverted"), 0u);

  ASSERT_EQ(attempt("fd77:1::2", 50000), "started");
  ASSERT_TRUE(eventually([&] { return count("no_pinhole") >= 2; })) << count("no_pinhole");
  EXPECT_EQ(client_.ask("wait 0"), "pending");
}

TEST_F(EndToEndTest, TheEndpointMapperPortWithoutARelayIsDropped) {
  // No listener on 15135: nft's tproxy falls through, the next rule must drop.
  ASSERT_EQ(attempt("10.77.1.2", 135), "started");
  ASSERT_TRUE(eventually([&] { return count("relay_gone") >= 1; }));
  EXPECT_EQ(client_.ask("wait 0"), "pending");
  EXPECT_EQ(count("epm_diverted"), 0u);
}

TEST_F(EndToEndTest, UngovernedTrafficPasses) {
  const int l = listener(AF_INET, 8080, false);
  ASSERT_GE(l, 0);
  ASSERT_EQ(attempt("10.77.0.1", 8080), "started");
  EXPECT_EQ(client_.ask("wait 5000"), "connected");
  ::close(l);
  EXPECT_EQ(count("no_pinhole"), 0u);
}

TEST_F(EndToEndTest, APinholedConnectionIsDivertedToTheTransparentListener) {
  const int l4 = listener(AF_INET, 15136, true);
  const int l6 = listener(AF_INET6, 15136, true);
  const int epm = listener(AF_INET, 15135, true);
  ASSERT_GE(l4, 0);
  ASSERT_GE(l6, 0);
  ASSERT_GE(epm, 0);
  ASSERT_TRUE(
      nft_->add(std::vector<PinholeElement>{{key("10.77.0.2", "10.77.1.2", 50000), 60s, "a"},
                                            {key("fd77::2", "fd77:1::2", 50000), 60s, "b"}}));

  ASSERT_EQ(attempt("10.77.1.2", 50000), "started");
  EXPECT_EQ(accept_one(l4), "10.77.1.2:50000");  // getsockname(): the original destination
  EXPECT_EQ(client_.ask("wait 5000"), "connected");
  EXPECT_EQ(count("pinhole_diverted"), 1u);

  ASSERT_EQ(attempt("fd77:1::2", 50000), "started");
  EXPECT_EQ(accept_one(l6), "fd77:1::2:50000");
  EXPECT_EQ(client_.ask("wait 5000"), "connected");
  EXPECT_EQ(count("pinhole_diverted"), 2u);

  // Another port of the same server is not pinholed.
  ASSERT_EQ(attempt("10.77.1.2", 50001), "started");
  ASSERT_TRUE(eventually([&] { return count("no_pinhole") >= 1; }));
  EXPECT_EQ(client_.ask("wait 0"), "pending");

  // The endpoint mapper's port goes to its own listener.
  ASSERT_EQ(attempt("10.77.1.2", 135), "started");
  EXPECT_EQ(accept_one(epm), "10.77.1.2:135");
  EXPECT_EQ(client_.ask("wait 5000"), "connected");
  EXPECT_EQ(count("epm_diverted"), 1u);

  // The daemon is gone (its listeners closed): the pinhole no longer lets anything through.
  ::close(l4);
  ::close(l6);
  ::close(epm);
  ASSERT_EQ(attempt("10.77.1.2", 50000), "started");
  ASSERT_TRUE(eventually([&] { return count("relay_gone") >= 1; }));
  EXPECT_EQ(client_.ask("wait 0"), "pending");
}

}  // namespace
}  // namespace rpcgate::firewall::kernel
