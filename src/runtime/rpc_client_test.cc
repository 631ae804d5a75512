#include "runtime/rpc_client.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bytes.h"
#include "epm/epm_service.h"
#include "ndr/tower.h"
#include "rpc/status.h"
#include "runtime/epm_host.h"
#include "runtime/testing/test_fixture.h"
#include "runtime/testing/test_interface.h"

namespace rpcgate::runtime {
namespace {

using namespace std::chrono_literals;
namespace st = rpc::status;

const asio::ip::address kLoopback = asio::ip::make_address("127.0.0.1");

ndr::StringBinding binding(std::string_view text) {
  auto b = ndr::parse_binding(text);
  EXPECT_TRUE(b) << text;
  return b.value_or(ndr::StringBinding{});
}

std::vector<std::uint8_t> hex(std::string_view text) {
  std::string compact;
  for (char c : text)
    if (c != ' ') compact.push_back(c);
  return common::from_hex(compact).value();
}

// ---- binding -> connection target ----

TEST(ConnectTarget, FromBindings) {
  auto t = connect_target(binding("ncacn_ip_tcp:127.0.0.1[50000]"));
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (ConnectTarget{"127.0.0.1", 50000, std::nullopt}));
  t = connect_target(binding("ncacn_ip_tcp:fe80::1[135]"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "fe80::1");
  EXPECT_EQ(t->port, 135);
  t = connect_target(binding("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01@ncacn_ip_tcp:dc01.example"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "dc01.example");
  EXPECT_FALSE(t->port);  // resolved through the endpoint mapper
  EXPECT_EQ(t->object, common::Uuid::parse("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01"));
  t = connect_target(binding("ncacn_ip_tcp:[135]"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "127.0.0.1");
  t = connect_target(binding("ncacn_np:\\\\HOST[\\pipe\\epmapper]"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Errc::kInvalidParameter);
  EXPECT_EQ(t.error().message, "unsupported protocol sequence ncacn_np (only ncacn_ip_tcp)");
  ndr::StringBinding hand;
  hand.network_addr = "h";
  hand.endpoint = "65536";
  EXPECT_FALSE(connect_target(hand));
}

// ---- tower -> endpoint ----

TEST(TowerEndpoint, TcpPortFloor) {
  // docs/wire-vectors.md ept-map-response (port 49664) and tower-wine-tcp (port 135).
  const auto ours =
      hex("05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
          "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
          "01 00 0b 02 00 00 00 01 00 07 02 00 c2 00 01 00 09 04 00 7f 00 00 01");
  const auto microsoft =
      hex("05 00 13 00 0d 00 db f1 a4 47 ca 67 10 b3 1f 00 dd 01 06 62 da 00 00 02 00 00 00"
          "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
          "01 00 0b 02 00 00 00 01 00 07 02 00 00 87 01 00 09 04 00 0a 00 00 01");
  EXPECT_EQ(tcp_port_of_tower(ours).value(), 49664);
  EXPECT_EQ(tcp_port_of_tower(microsoft).value(), 135);
  for (std::size_t n = 0; n < ours.size(); ++n)
    EXPECT_FALSE(tcp_port_of_tower(std::span(ours).first(n))) << n;
  ndr::StringBinding lrpc;
  lrpc.protseq = ndr::Protseq::kNcalrpc;
  lrpc.endpoint = "epmapper";
  auto tower = ndr::binding_to_tower(lrpc, rpc::kEpmSyntax);
  ASSERT_TRUE(tower);
  auto r = tcp_port_of_tower(ndr::encode_tower(*tower));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocolError);
  EXPECT_EQ(r.error().message, "tower is ncalrpc, not ncacn_ip_tcp");
}

// ---- messages ----

TEST(ClientMessages, Formatting) {
  EXPECT_EQ(describe_fault(st::kNcaSOpRngError), "fault nca_s_op_rng_error (0x1c010002)");
  EXPECT_EQ(describe_bind_rejection({.result = st::kResultProviderRejection,
                                     .reason = st::kReasonAbstractSyntaxNotSupported}),
            "bind rejected: abstract_syntax_not_supported");
  EXPECT_EQ(describe_bind_rejection({.result = st::kResultUserRejection}),
            "bind rejected: user_rejection");
  EXPECT_EQ(describe_bind_rejection(
                {.nak = true, .reject_reason = st::kRejectProtocolVersionNotSupported}),
            "bind rejected (bind_nak): protocol_version_not_supported");
  EXPECT_EQ(format_duration(5s), "5 s");
  EXPECT_EQ(format_duration(1500ms), "1.5 s");
  EXPECT_EQ(format_duration(250ms), "250 ms");
}

// ---- against real sockets ----

// A listening socket on 127.0.0.1 whose connections get `answer` (then stay open) or nothing.
class FakeServer {
 public:
  explicit FakeServer(std::vector<std::uint8_t> answer) : answer_(std::move(answer)) {
    fd_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(::listen(fd_.get(), 8), 0);
    port_ = local_port(fd_.get());
    thread_ = std::thread([this] {
      Fd c(::accept(fd_.get(), nullptr, nullptr));
      if (!c) return;
      if (!answer_.empty()) (void)!::write(c.get(), answer_.data(), answer_.size());
      while (!stop_)
        std::this_thread::sleep_for(10ms);
    });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  std::vector<std::uint8_t> answer_;
  Fd fd_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

ClientOptions quick() {
  ClientOptions o;
  o.connect_timeout = 2s;
  o.call_timeout = 300ms;
  return o;
}

TEST(RpcClientNetwork, RefusedSilentAndHostile) {
  std::uint16_t closed_port = 0;
  {
    FakeServer s({});
    closed_port = s.port();
  }
  auto c = RpcClient::connect("127.0.0.1", closed_port, quick());
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error().network);
  EXPECT_EQ(c.error().message,
            "connect to 127.0.0.1:" + std::to_string(closed_port) + ": connection refused");

  {
    FakeServer silent({});
    auto t0 = std::chrono::steady_clock::now();
    auto s = RpcClient::connect("127.0.0.1", silent.port(), quick());
    ASSERT_TRUE(s);
    auto b = s->bind({rpc::kEpmSyntax});
    ASSERT_FALSE(b);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_TRUE(b.error().network);
    EXPECT_EQ(b.error().code, Errc::kTimeout);
    EXPECT_EQ(b.error().message, "bind to " + s->peer() + ": no answer, timed out after 300 ms");
  }
  // A bind_ack header claiming frag_length 65535 (more than the max_recv_frag 5840 the bind
  // offered: refused at once, not waited for) and plain garbage.
  for (const auto& answer :
       {hex("05000c03 10000000 ffff0000 01000000"), hex("474554202f20485454502f312e310d0a")}) {
    FakeServer hostile(answer);
    auto h = RpcClient::connect("127.0.0.1", hostile.port(), quick());
    ASSERT_TRUE(h);
    auto b = h->bind({rpc::kEpmSyntax});
    ASSERT_FALSE(b);
    EXPECT_EQ(b.error().code, Errc::kProtocolError) << b.error().message;
    EXPECT_FALSE(b.error().network);
  }
  auto name = RpcClient::connect("no-such-host.invalid", 135, quick());
  ASSERT_FALSE(name);
  EXPECT_TRUE(name.error().network);
  EXPECT_NE(name.error().message.find("cannot resolve host name \"no-such-host.invalid\""),
            std::string::npos);
}

// An EPM + MGMT + test interface server in-process, with two registrations.
class RpcClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::add_test_interface(st_.server());
    ASSERT_TRUE(attach_epm_service(st_.server(), epm_));
    auto port = st_.server().listen_tcp({kLoopback}, 0);
    ASSERT_TRUE(port);
    port_ = *port;
    for (int i = 0; i < 5; ++i) {
      ndr::StringBinding b;
      b.endpoint = std::to_string(40000 + i);
      rpc::SyntaxId id = testing::test_syntax();
      id.minor = static_cast<std::uint16_t>(i);
      if (i > 0)
        id.uuid =
            common::Uuid::parse("11111111-2222-3333-4444-55555555550" + std::to_string(i)).value();
      auto tower = ndr::binding_to_tower(b, id);
      ASSERT_TRUE(tower);
      ndr::epm::EptEntry e{common::Uuid{}, ndr::encode_tower(*tower), "entry" + std::to_string(i)};
      ASSERT_EQ(epm_.db().insert({e}, false, 0), 0u);
    }
    st_.start();
    options_ = quick();
    options_.epm_port = port_;
  }

  epm::EpmService epm_;
  testing::ServerThread st_;
  std::uint16_t port_ = 0;
  ClientOptions options_;
};

TEST_F(RpcClientTest, LookupPagesAndFreesHandles) {
  auto c = RpcClient::connect("127.0.0.1", port_, options_);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->bind({rpc::kEpmSyntax}));
  for (std::uint32_t page : {1u, 2u, 500u}) {
    auto all = ept_lookup_all(*c, page);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->size(), 5u) << page;
  }
  EXPECT_EQ(st_.on_io([&] { return epm_.stats().handles; }), 0u);
  // Aborting mid-way (cap of 2 entries with pages of 1) releases the handle.
  auto capped = ept_lookup_all(*c, 1, 2);
  ASSERT_FALSE(capped);
  EXPECT_EQ(capped.error().code, Errc::kProtocolError);
  EXPECT_EQ(st_.on_io([&] { return epm_.stats().handles; }), 0u);
}

TEST_F(RpcClientTest, MapKeepsTheHostAndNamesNotRegistered) {
  auto c = RpcClient::connect("localhost", port_, options_);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->bind({rpc::kEpmSyntax}));
  auto b = ept_map(*c, testing::test_syntax(), ndr::Protseq::kNcacnIpTcp);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(ndr::format_binding(*b), "ncacn_ip_tcp:localhost[40000]");
  rpc::SyntaxId unknown{common::Uuid::parse("99999999-2222-3333-4444-555555555501").value(), 1, 0};
  auto nb = ept_map(*c, unknown, ndr::Protseq::kNcacnIpTcp);
  ASSERT_FALSE(nb);
  EXPECT_EQ(nb.error().code, Errc::kEptNotRegistered);
  EXPECT_EQ(nb.error().message, "ept_s_not_registered (0x16c9a0d6)");
  EXPECT_FALSE(nb.error().network);
  EXPECT_EQ(st_.on_io([&] { return epm_.stats().handles; }), 0u);
}

TEST_F(RpcClientTest, OpenResolvesThroughTheEndpointMapperAndReportsRejectionsAndFaults) {
  // No port: resolved to 40000, where nothing listens -> refused, naming the mapped port.
  auto r = RpcClient::open(binding("ncacn_ip_tcp:127.0.0.1"), {testing::test_syntax()}, options_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "connect to 127.0.0.1:40000: connection refused");
  auto resolved =
      resolve_endpoint(binding("ncacn_ip_tcp:127.0.0.1"), testing::test_syntax(), options_);
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->endpoint, "40000");

  const auto direct = binding("ncacn_ip_tcp:127.0.0.1[" + std::to_string(port_) + "]");
  rpc::SyntaxId unknown{common::Uuid::parse("99999999-2222-3333-4444-555555555501").value(), 1, 0};
  auto rejected = RpcClient::open(direct, {unknown}, options_);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, Errc::kUnknownInterface);
  EXPECT_EQ(rejected.error().message, "bind rejected: abstract_syntax_not_supported");

  auto c = RpcClient::open(direct, {testing::test_syntax(), rpc::kMgmtSyntax}, options_);
  ASSERT_TRUE(c) << c.error().message;
  auto fault = c->call(0, 77, {});
  ASSERT_FALSE(fault);
  EXPECT_EQ(fault.error().message, "fault nca_s_op_rng_error (0x1c010002)");
  EXPECT_EQ(fault.error().status, st::kNcaSOpRngError);
  // Fragmentation both ways: 100 KB echoed.
  std::vector<std::uint8_t> big(100000);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 7);
  auto echo = c->call(0, 0, big);
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(echo->stub, big);
  auto ids = mgmt_inq_if_ids(*c, 1);
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_NE(std::find(ids->begin(), ids->end(), testing::test_syntax()), ids->end());
  EXPECT_NE(std::find(ids->begin(), ids->end(), rpc::kMgmtSyntax), ids->end());
}

TEST_F(RpcClientTest, ResponseOverTheLimitIsAProtocolError) {
  options_.max_response = 64 * 1024;
  auto c = RpcClient::open(binding("ncacn_ip_tcp:127.0.0.1[" + std::to_string(port_) + "]"),
                           {testing::test_syntax()}, options_);
  ASSERT_TRUE(c);
  const std::vector<std::uint8_t> size{0x00, 0x00, 0x02, 0x00};  // Blob(128 KiB)
  auto r = c->call(0, 2, size);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocolError);
}

}  // namespace
}  // namespace rpcgate::runtime
