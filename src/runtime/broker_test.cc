#include <filesystem>
#include <thread>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/broker_service.h"
#include "runtime/client.h"
#include "runtime/epmd_client.h"
#include "runtime/internal/test_fixture.h"
#include "runtime/internal/test_interface.h"

namespace rpcgate::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

policy::Policy policy_of(policy::PortRange range) {
  policy::Policy p;
  p.restricted = true;
  p.internet = policy::PortSet::of(range);
  p.intranet = policy::PortSet::of(range);
  return p;
}

class BrokerTest : public ::testing::Test {
 protected:
  void start(const policy::Policy& policy, PeerPolicy peers = {}) {
    allocator_ = std::make_unique<policy::PortAllocator>(policy, 42);
    broker_ = std::make_unique<BrokerService>(*allocator_);
    st_ = std::make_unique<testing::ServerThread>();
    ASSERT_TRUE(broker_->attach(st_->server()));
    testing::add_test_interface(st_->server());
    dir_ = std::filesystem::temp_directory_path() /
           ("rpcgate-broker-test-" + std::to_string(::getpid()));
    path_ = (dir_ / "epmd.sock").string();
    auto l = st_->server().listen_unix(path_, peers);
    ASSERT_TRUE(l) << l.error().message();
    st_->start();
  }
  void TearDown() override {
    if (st_) st_->stop();
    std::filesystem::remove_all(dir_);
  }
  std::size_t held() {
    return st_->on_io([this] { return allocator_->held_count(); });
  }

  std::unique_ptr<policy::PortAllocator> allocator_;
  std::unique_ptr<BrokerService> broker_;
  std::unique_ptr<testing::ServerThread> st_;
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(BrokerTest, AllocatesListeningSocketsAndReleasesOnClose) {
  start(policy_of({47100, 47163}));
  {
    auto client = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto a = client->allocate_port(policy::PortClass::kInternet);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_GE(a->port, 47100);
    EXPECT_LE(a->port, 47163);
    ASSERT_GE(a->fds.size(), 1u);
    for (const auto& fd : a->fds) {
      EXPECT_EQ(local_port(fd.get()), a->port);
      int listening = 0;
      socklen_t len = sizeof listening;
      ASSERT_EQ(::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
      EXPECT_EQ(listening, 1);
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(a->fds[0].get(), reinterpret_cast<sockaddr*>(&ss), &len);
    EXPECT_EQ(ss.ss_family, AF_INET);  // IPv4 first
    auto b = client->allocate_port(policy::PortClass::kDefault, broker::kFamilyIpv4);
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_NE(b->port, a->port);
    EXPECT_EQ(b->fds.size(), 1u);
    EXPECT_EQ(held(), 2u);
    EXPECT_TRUE(client->release_port(b->port));
    EXPECT_EQ(held(), 1u);
    auto again = client->release_port(b->port);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), Errc::kInvalidParameter);
  }  // the client's connection closes: the lease ends
  auto deadline = Clock::now() + 2s;
  while (held() != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(held(), 0u);
}

TEST_F(BrokerTest, ExhaustionIs1721) {
  start(policy_of({47170, 47170}));
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
  ASSERT_TRUE(a) << a.error().message();
  auto b = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), Errc::kOutOfResources);
  EXPECT_EQ(b.error().value(), 1721);
  EXPECT_TRUE(client->usable());
}

TEST_F(BrokerTest, InvalidPolicyIs87) {
  policy::Policy p;
  p.valid = false;
  start(p);
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().value(), 87);
}

TEST_F(BrokerTest, PeerPolicyRefusalIs5AndPeerCredIsVisible) {
  PeerPolicy nobody;
  nobody.allow_root = false;
  nobody.allow_same_uid = false;
  start(policy_of({47180, 47189}), nobody);
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), Errc::kAccessDenied);

  auto raw = SyncClient::connect_unix(path_, 2s);
  ASSERT_TRUE(raw);
  ASSERT_TRUE(raw->bind({testing::test_syntax()}));
  auto r = raw->call(0, 4, {});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->stub.size(), 8u);
  std::uint32_t uid = r->stub[0] | r->stub[1] << 8 | r->stub[2] << 16 |
                      static_cast<std::uint32_t>(r->stub[3]) << 24;
  EXPECT_EQ(uid, ::geteuid());
  EXPECT_EQ(r->stub[4], 0);  // may_register false under this PeerPolicy
}

TEST(BrokerTcp, RefusedOverTcpWith1702) {
  policy::PortAllocator allocator(policy_of({47190, 47199}), 1);
  BrokerService broker(allocator);
  testing::ServerThread st;
  ASSERT_TRUE(broker.attach(st.server()));
  auto port = st.server().listen_tcp({asio::ip::make_address("127.0.0.1")}, 0);
  ASSERT_TRUE(port);
  st.start();
  auto c = SyncClient::connect_tcp(asio::ip::make_address("127.0.0.1"), *port, 2s);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->bind({broker::broker_syntax()}));
  auto r = c->call(0, broker::kOpAllocatePort,
                   broker::encode(broker::AllocatePortRequest{}, common::Endian::kLittle));
  ASSERT_TRUE(r);
  auto resp = broker::decode_allocate_port_response(r->stub, common::Endian::kLittle);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->status, broker::kStatusInvalidBinding);
  EXPECT_TRUE(r->fds.empty());
}

}  // namespace
}  // namespace rpcgate::runtime
