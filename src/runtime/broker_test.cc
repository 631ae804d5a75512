#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "epm/epm_service.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"
#include "runtime/broker_service.h"
#include "runtime/epm_host.h"
#include "runtime/epmd_client.h"
#include "runtime/status_protocol.h"
#include "runtime/sync_client.h"
#include "runtime/testing/test_fixture.h"
#include "runtime/testing/test_interface.h"

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

// A PortsInternetAvailable=Y policy resolved from Ports entries (policy::resolve), as the daemon
// loads it: invalid entries produce an invalid Policy naming the entry.
policy::Policy resolved_policy(std::vector<std::string> ports) {
  policy::PolicyInput in;
  in.source = "broker_test.toml";
  in.ports = policy::RawValue{policy::RawValue::Type::kMultiString, "REG_MULTI_SZ", ports, 3};
  in.ports_internet_available =
      policy::RawValue{policy::RawValue::Type::kString, "REG_SZ", {"Y"}, 4};
  in.use_internet_ports = policy::RawValue{policy::RawValue::Type::kString, "REG_SZ", {"Y"}, 5};
  return policy::resolve(in);
}

// QueryStatus's times come from this clock in these tests.
constexpr std::uint64_t kWallClock = 1'796'000'000;

// The daemon's shape: one Server hosting the broker and the EPM on a Unix socket.
class BrokerTest : public ::testing::Test {
 protected:
  void start(const policy::Policy& policy, PeerPolicy peers = {}) {
    broker_ = std::make_unique<epm::PortBroker>(policy, 42);
    BrokerOptions options;
    options.wall_clock = [] { return kWallClock; };
    service_ = std::make_unique<BrokerService>(*broker_, options);
    service_->on_event([this](const BrokerEvent& e) {
      std::lock_guard lock(events_mutex_);
      events_.push_back(e);
    });
    epm_ = std::make_unique<epm::EpmService>();
    service_->set_endpoint_map(&epm_->db());
    service_->on_lease([this](std::uint64_t id) { epm_->hold_lease(id); });  // as the daemon
    st_ = std::make_unique<testing::ServerThread>();
    ASSERT_TRUE(service_->attach(st_->server()));
    ASSERT_TRUE(attach_epm_service(st_->server(), *epm_, [this](std::uint64_t, std::size_t n) {
      std::lock_guard lock(events_mutex_);
      unregistered_.push_back(n);
    }));
    testing::add_test_interface(st_->server());
    dir_ = std::filesystem::temp_directory_path() /
           ("rpcgate-broker-test-" + std::to_string(::getpid()));
    path_ = (dir_ / "epmd.sock").string();
    auto l = st_->server().listen_unix(path_, peers);
    ASSERT_TRUE(l) << l.error().message();
    auto t = st_->server().listen_tcp({asio::ip::make_address("127.0.0.1")}, 0);
    ASSERT_TRUE(t);
    tcp_port_ = *t;
    st_->start();
  }
  void TearDown() override {
    if (st_) st_->stop();
    std::filesystem::remove_all(dir_);
  }
  std::size_t held() {
    return st_->on_io([this] { return broker_->stats().held; });
  }
  std::size_t entries() {
    return st_->on_io([this] { return epm_->db().size(); });
  }
  std::vector<BrokerEvent> events() {
    std::lock_guard lock(events_mutex_);
    return events_;
  }
  // What attach_epm_service's hook reported: per closed connection, the registrations it removed.
  std::vector<std::size_t> unregistered() {
    std::lock_guard lock(events_mutex_);
    return unregistered_;
  }

  std::unique_ptr<epm::PortBroker> broker_;
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<epm::EpmService> epm_;
  std::unique_ptr<testing::ServerThread> st_;
  std::filesystem::path dir_;
  std::string path_;
  std::uint16_t tcp_port_ = 0;
  std::mutex events_mutex_;
  std::vector<BrokerEvent> events_;
  std::vector<std::size_t> unregistered_;
};

// The pools below sit in 27100-27299, under Linux's ephemeral range (32768-60999 by default):
// these tests run on the host's network beside other tests, and an outgoing connection there
// could take a pool port inside the ephemeral range, turning an allocation into a false 1721.

TEST_F(BrokerTest, AllocatesListeningSocketsAndReleasesOnClose) {
  start(policy_of({27100, 27163}));
  {
    auto client = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto a = client->allocate_port(policy::PortClass::kInternet);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_GE(a->port, 27100);
    EXPECT_LE(a->port, 27163);
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

// ept_map over TCP for `interface` on ncacn_ip_tcp, as a network client asks; the bindings.
std::vector<std::string> map_tcp(std::uint16_t epm_port, const rpc::SyntaxId& interface) {
  auto c = SyncClient::connect_tcp(asio::ip::make_address("127.0.0.1"), epm_port, 2s);
  if (!c || !c->bind({rpc::kEpmSyntax})) return {"connect/bind failed"};
  auto tower = ndr::binding_to_tower(ndr::StringBinding{}, interface);  // ncacn_ip_tcp, port 0
  if (!tower) return {"no tower"};
  ndr::epm::EptMapRequest req;
  req.map_tower = ndr::encode_tower(*tower);
  req.max_towers = 4;
  auto r = c->call(0, ndr::epm::kOpnumEptMap, ndr::epm::encode(req, common::Endian::kLittle));
  if (!r) return {"call failed"};
  auto resp = ndr::epm::decode_ept_map_response(r->stub, common::Endian::kLittle);
  if (!resp) return {"bad response"};
  std::vector<std::string> out;
  for (const auto& octets : resp->towers) {
    auto t = octets ? ndr::decode_tower(*octets) : ndr::Result<ndr::Tower>();
    auto b = t ? ndr::tower_to_binding(*t) : ndr::Result<ndr::StringBinding>();
    out.push_back(octets && t && b ? ndr::format_binding(*b) : "bad tower");
  }
  return out;
}

TEST_F(BrokerTest, AllocateRegisterMapAndTheLeaseEndsOnClose) {
  start(policy_of({27220, 27229}));
  const auto& iface = testing::test_syntax();
  std::uint16_t port = 0;
  {
    auto client = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(client) << client.error().message();
    auto a = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
    ASSERT_TRUE(a) << a.error().message();
    port = a->port;
    auto r = client->register_endpoint(iface, port, "rpcgate test");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(client->last_status(), 0u);
    EXPECT_EQ(entries(), 1u);
    const auto want = "ncacn_ip_tcp:127.0.0.1[" + std::to_string(port) + "]";
    EXPECT_EQ(map_tcp(tcp_port_, iface), std::vector<std::string>{want});
    // MGMT maps to every registered endpoint (rpcmap.py style).
    EXPECT_EQ(map_tcp(tcp_port_, rpc::kMgmtSyntax), std::vector<std::string>{want});

    // ept_delete, and its status when nothing matches.
    ASSERT_TRUE(client->unregister_endpoint(iface, port));
    EXPECT_EQ(entries(), 0u);
    EXPECT_TRUE(map_tcp(tcp_port_, iface).empty());
    auto again = client->unregister_endpoint(iface, port);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), Errc::kEptNotRegistered);
    EXPECT_EQ(client->last_status(), ndr::epm::kEptSNotRegistered);

    // Client-side checks: a 64-character annotation, an IPv6 host.
    auto long_note = client->register_endpoint(iface, port, std::string(64, 'x'));
    ASSERT_FALSE(long_note);
    EXPECT_EQ(long_note.error(), Errc::kInvalidParameter);
    ndr::StringBinding v6_binding;
    v6_binding.network_addr = "::1";
    v6_binding.endpoint = "135";
    auto v6 = client->register_endpoint(iface, v6_binding);
    ASSERT_FALSE(v6);
    EXPECT_EQ(v6.error(), Errc::kInvalidParameter);

    ASSERT_TRUE(client->register_endpoint(iface, port, "rpcgate test"));
    ASSERT_TRUE(client->register_endpoint(iface, port, "rpcgate test"));  // replace: still one
    EXPECT_EQ(entries(), 1u);
    EXPECT_EQ(held(), 1u);
  }  // the process "dies": its connection closes
  auto deadline = Clock::now() + 2s;
  while ((entries() != 0 || held() != 0) && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(entries(), 0u);
  EXPECT_EQ(held(), 0u);
  EXPECT_TRUE(map_tcp(tcp_port_, iface).empty());
  auto evs = events();
  ASSERT_FALSE(evs.empty());
  EXPECT_EQ(evs.back().kind, BrokerEvent::Kind::kConnectionGone);
  EXPECT_EQ(evs.back().port, port);
}

TEST_F(BrokerTest, ExhaustionIs1721) {
  start(policy_of({27170, 27170}));
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
  ASSERT_TRUE(a) << a.error().message();
  auto b = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), Errc::kOutOfResources);
  EXPECT_EQ(b.error().value(), 1721);
  EXPECT_TRUE(client->usable());
  auto evs = events();
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].kind, BrokerEvent::Kind::kAllocated);
  EXPECT_FALSE(evs[0].failure);
  ASSERT_TRUE(evs[1].failure);
  EXPECT_EQ(evs[1].failure->event_id, epm::kEventPortsExhausted);
  EXPECT_EQ(evs[1].failure->internet.capacity, 1u);
  EXPECT_EQ(evs[1].failure->internet.free, 0u);
}

TEST_F(BrokerTest, InvalidPolicyIs87AndTheEventNamesTheEntry) {
  start(resolved_policy({"27200-27209", "27210", "70000"}));
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), Errc::kInvalidParameter);
  EXPECT_EQ(a.error().value(), 87);
  EXPECT_EQ(client->last_status(), 87u);
  auto evs = events();
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].kind, BrokerEvent::Kind::kAllocateFailed);
  EXPECT_EQ(evs[0].status, 87u);
  ASSERT_TRUE(evs[0].failure);
  EXPECT_EQ(evs[0].failure->event_id, epm::kEventInvalidPolicy);
  EXPECT_EQ(evs[0].failure->offending, "Ports entry 3 \"70000\": port outside 0-65535");
  EXPECT_EQ(evs[0].failure->policy_source, "broker_test.toml");
  EXPECT_EQ(evs[0].failure->owner, evs[0].connection_id);

  // Hot reload with a valid policy: the same connection now gets a port.
  st_->on_io([this] { return service_->reload(resolved_policy({"27200-27209"})); });
  auto b = client->allocate_port(policy::PortClass::kInternet, broker::kFamilyIpv4);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_GE(b->port, 27200);
  EXPECT_LE(b->port, 27209);
}

// Issue 11: EpmdClient asks for a lease (HoldLease) before registering, so its entries go with
// its connection even without a broker port; set_persistent(true) entries stay.
TEST_F(BrokerTest, HoldLeaseMakesEntriesLeasedAndPersistentOnesStay) {
  start(policy_of({27190, 27199}));
  const auto iface = testing::test_syntax();
  {
    auto client = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->register_endpoint(iface, 27191, "leased"));
    EXPECT_EQ(entries(), 1u);
    auto evs = events();
    ASSERT_FALSE(evs.empty());
    EXPECT_EQ(evs.back().kind, BrokerEvent::Kind::kLeaseHeld);
    EXPECT_EQ(evs.back().status, 0u);
  }
  const auto deadline = Clock::now() + 2s;
  while (entries() != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(entries(), 0u);
  // The leased entry went with its connection, and the hook was told how many.
  EXPECT_EQ(unregistered(), std::vector<std::size_t>{1});
  {
    auto client = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(client);
    client->set_persistent(true);
    ASSERT_TRUE(client->register_endpoint(iface, 27192, "persistent"));
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(entries(), 1u);
  // A close that removed nothing is not reported.
  EXPECT_EQ(unregistered(), std::vector<std::size_t>{1});
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->unregister_endpoint(iface, 27192));
  EXPECT_EQ(entries(), 0u);
}

TEST_F(BrokerTest, PeerPolicyRefusalIs5AndPeerCredIsVisible) {
  PeerPolicy nobody;
  nobody.allow_root = false;
  nobody.allow_same_uid = false;
  start(policy_of({27180, 27189}), nobody);
  auto client = EpmdClient::connect(path_, 2s);
  ASSERT_TRUE(client);
  auto a = client->allocate_port(policy::PortClass::kInternet);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), Errc::kAccessDenied);
  auto lease = client->hold_lease();
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error(), Errc::kAccessDenied);
  auto reg = client->register_endpoint(testing::test_syntax(), 27185);
  ASSERT_FALSE(reg);
  EXPECT_EQ(reg.error(), Errc::kEptCantPerformOp);
  EXPECT_EQ(reg.error().value(), 1752);
  EXPECT_EQ(client->last_status(), ndr::epm::kEptSCantPerformOp);
  EXPECT_EQ(entries(), 0u);

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

// QueryStatus on a connection bound to the broker interface (context 0).
std::expected<status::StatusReport, std::error_code> query_status(SyncClient& c,
                                                                  std::uint32_t flags = 0) {
  auto r = c.call(0, status::kOpQueryStatus,
                  status::encode(status::QueryStatusRequest{flags}, common::Endian::kLittle));
  if (!r) return std::unexpected(r.error());
  return status::decode_status_report(r->stub, r->endian);
}

std::string own_command() {
  std::ifstream in("/proc/self/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST_F(BrokerTest, QueryStatusListsLeasesTheirPortsAndRegistrationsAndThePools) {
  start(policy_of({27300, 27309}));
  const auto iface = testing::test_syntax();
  std::optional<EpmdClient> a;
  {
    auto connected = EpmdClient::connect(path_, 2s);
    ASSERT_TRUE(connected);
    a.emplace(std::move(*connected));
  }
  auto port = a->allocate_port(policy::PortClass::kDefault, broker::kFamilyIpv4);
  ASSERT_TRUE(port);
  ASSERT_TRUE(a->register_endpoint(iface, port->port, "status a"));
  auto b = EpmdClient::connect(path_, 2s);  // a lease without a port (a static-port server)
  ASSERT_TRUE(b);
  const rpc::SyntaxId other{*common::Uuid::parse("11111111-2222-3333-4444-555555555502"), 2, 1};
  ASSERT_TRUE(b->register_endpoint(other, 27450, "status b"));
  {
    auto c = EpmdClient::connect(path_, 2s);  // persistent: stays, under no lease
    ASSERT_TRUE(c);
    c->set_persistent(true);
    // Another interface: the same one at 0.0.0.0 would replace a's entry (DCE's replace rule).
    const rpc::SyntaxId third{*common::Uuid::parse("11111111-2222-3333-4444-555555555503"), 1, 0};
    ASSERT_TRUE(c->register_endpoint(third, 27451, "persistent"));
  }
  std::this_thread::sleep_for(100ms);

  auto raw = SyncClient::connect_unix(path_, 2s);
  ASSERT_TRUE(raw);
  ASSERT_TRUE(raw->bind({broker::broker_syntax()}));
  auto s = query_status(*raw);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->status, 0u);
  EXPECT_FALSE(s->truncated);
  EXPECT_EQ(s->now, kWallClock);
  ASSERT_EQ(s->leases.size(), 2u);
  const auto& la = s->leases[0];
  EXPECT_EQ(la.pid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(la.uid, ::geteuid());
  EXPECT_EQ(la.gid, ::getegid());
  EXPECT_EQ(la.command, own_command());
  EXPECT_EQ(la.since, kWallClock);
  ASSERT_EQ(la.ports.size(), 1u);
  EXPECT_EQ(la.ports[0].port, port->port);
  // kDefault resolved by the policy (policy_of leaves the default class internet).
  EXPECT_EQ(la.ports[0].port_class, policy::PortClass::kInternet);
  ASSERT_EQ(la.registrations.size(), 1u);
  EXPECT_EQ(la.registrations[0].interface, iface.uuid);
  EXPECT_EQ(la.registrations[0].annotation, "status a");
  EXPECT_EQ(la.registrations[0].binding,
            "ncacn_ip_tcp:0.0.0.0[" + std::to_string(port->port) + "]");
  const auto& lb = s->leases[1];
  EXPECT_TRUE(lb.ports.empty());
  ASSERT_EQ(lb.registrations.size(), 1u);
  EXPECT_EQ(lb.registrations[0].major, 2);
  EXPECT_EQ(lb.registrations[0].minor, 1);
  EXPECT_EQ(lb.registrations[0].binding, "ncacn_ip_tcp:0.0.0.0[27450]");
  ASSERT_EQ(s->registrations.size(), 1u);
  EXPECT_EQ(s->registrations[0].kind, status::Kind::kPersistent);
  EXPECT_EQ(s->registrations[0].uid, ::geteuid());
  EXPECT_EQ(s->registrations[0].annotation, "persistent");
  ASSERT_EQ(s->pools.size(), 2u);
  EXPECT_EQ(s->pools[0], (status::Pool{policy::PortClass::kInternet, 10, 1, 9}));

  // The lease ends with its connection: its port and entry go from the report too.
  port->fds.clear();
  a.reset();
  const auto deadline = Clock::now() + 2s;
  while (held() != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  s = query_status(*raw);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->leases.size(), 1u);
  EXPECT_EQ(s->leases[0].registrations[0].annotation, "status b");
  EXPECT_EQ(s->pools[0].held, 0u);
}

TEST_F(BrokerTest, QueryStatusIsRefusedOverTcpToNonRegistrantsAndWithFlags) {
  PeerPolicy nobody;
  nobody.allow_root = false;
  nobody.allow_same_uid = false;
  start(policy_of({27310, 27319}), nobody);
  auto raw = SyncClient::connect_unix(path_, 2s);
  ASSERT_TRUE(raw);
  ASSERT_TRUE(raw->bind({broker::broker_syntax()}));
  auto s = query_status(*raw);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, broker::kStatusAccessDenied);
  EXPECT_TRUE(s->leases.empty());
  EXPECT_TRUE(s->pools.empty());

  auto tcp = SyncClient::connect_tcp(asio::ip::make_address("127.0.0.1"), tcp_port_, 2s);
  ASSERT_TRUE(tcp);
  ASSERT_TRUE(tcp->bind({broker::broker_syntax()}));
  s = query_status(*tcp);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, broker::kStatusInvalidBinding);
  EXPECT_TRUE(s->pools.empty());
}

TEST_F(BrokerTest, QueryStatusFlagsAndBadStubs) {
  start(policy_of({27320, 27329}));
  auto raw = SyncClient::connect_unix(path_, 2s);
  ASSERT_TRUE(raw);
  ASSERT_TRUE(raw->bind({broker::broker_syntax()}));
  auto s = query_status(*raw, 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, broker::kStatusInvalidParameter);
  const std::uint8_t short_stub[2] = {0, 0};
  auto r = raw->call(0, status::kOpQueryStatus, short_stub);
  ASSERT_FALSE(r);
  EXPECT_EQ(raw->last_fault(), kFaultBadStubData);
}

// rpcgate-testsrv as a child process: argv, its stdout and stderr, bounded waits.
class Testsrv {
 public:
  explicit Testsrv(std::vector<std::string> args) {
    args.insert(args.begin(), RPCGATE_TESTSRV);
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    ::posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    out_ = Fd(out[0]);
    err_ = Fd(err[0]);
  }
  ~Testsrv() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The first stdout line (without the newline), or "" after `timeout`.
  std::string line(std::chrono::milliseconds timeout = 5s) { return read_line(out_, timeout); }
  std::string error_line(std::chrono::milliseconds timeout = 5s) {
    return read_line(err_, timeout);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit status (or 128 + signal), nullopt if it did not exit within `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = 5s) {
    auto deadline = Clock::now() + timeout;
    while (!status_ && Clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_)
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      else
        std::this_thread::sleep_for(5ms);
    }
    return status_;
  }
  bool started() const { return pid_ > 0; }

 private:
  static std::string read_line(const Fd& fd, std::chrono::milliseconds timeout) {
    std::string text;
    auto deadline = Clock::now() + timeout;
    char c = 0;
    while (Clock::now() < deadline) {
      pollfd p{fd.get(), POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) != 1) break;
      if (::read(fd.get(), &c, 1) != 1 || c == '\n') return text;
      text.push_back(c);
    }
    return text;
  }
  pid_t pid_ = -1;
  Fd out_, err_;
  std::optional<int> status_;
};

TEST_F(BrokerTest, TestsrvRegistersADynamicPortAndUnregistersOnSigterm) {
  start(policy_of({27240, 27249}));
  const std::string uuid = "12345678-1234-4abc-8def-0123456789ab";
  const rpc::SyntaxId iface{*common::Uuid::parse(uuid), 2, 3};
  Testsrv srv({"--epmd", path_, "--class", "internet", "--uuid", uuid, "--version", "2.3",
               "--annotation", "e2e"});
  ASSERT_TRUE(srv.started());
  const auto line = srv.line();
  ASSERT_EQ(line.rfind("port=", 0), 0u) << line << " / " << srv.error_line(100ms);
  const int port = std::stoi(line.substr(5));
  EXPECT_GE(port, 27240);
  EXPECT_LE(port, 27249);
  EXPECT_EQ(held(), 1u);
  EXPECT_EQ(map_tcp(tcp_port_, iface),
            std::vector<std::string>{"ncacn_ip_tcp:127.0.0.1[" + std::to_string(port) + "]"});
  // It serves the interface on that port (echo, opnum 0), and MGMT lists it.
  auto c = SyncClient::connect_tcp(asio::ip::make_address("127.0.0.1"),
                                   static_cast<std::uint16_t>(port), 2s);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->bind({iface}));
  const std::vector<std::uint8_t> ping{1, 2, 3, 4};
  auto echo = c->call(0, 0, ping);
  ASSERT_TRUE(echo) << echo.error().message();
  EXPECT_EQ(echo->stub, ping);

  srv.signal(SIGTERM);
  EXPECT_EQ(srv.wait(), 0);
  auto deadline = Clock::now() + 2s;
  while ((entries() != 0 || held() != 0) && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(entries(), 0u);
  EXPECT_EQ(held(), 0u);
}

TEST_F(BrokerTest, TestsrvKilledLosesItsRegistration) {
  start(policy_of({27250, 27259}));
  Testsrv srv({"--epmd", path_, "--port", "0"});
  ASSERT_EQ(srv.line().rfind("port=", 0), 0u);
  EXPECT_EQ(entries(), 1u);
  EXPECT_EQ(held(), 0u);  // static port: nothing from the broker
  srv.signal(SIGKILL);
  EXPECT_EQ(srv.wait(), 128 + SIGKILL);
  auto deadline = Clock::now() + 2s;
  while (entries() != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(entries(), 0u);
}

TEST_F(BrokerTest, TestsrvExitsWithTheWindowsCode) {
  start(resolved_policy({"27260", "70000"}));
  Testsrv bad({"--epmd", path_, "--class", "default"});
  EXPECT_EQ(bad.wait(), 87);
  const auto message = bad.error_line();
  EXPECT_NE(message.find("cannot allocate a port"), std::string::npos) << message;
  EXPECT_NE(message.find("error 87"), std::string::npos) << message;
  EXPECT_EQ(bad.line(100ms), "");

  st_->on_io([this] { return service_->reload(resolved_policy({"27260"})); });
  Testsrv first({"--epmd", path_, "--class", "internet"});
  EXPECT_EQ(first.line(), "port=27260");
  Testsrv second({"--epmd", path_, "--class", "internet"});
  EXPECT_EQ(second.wait(), 1721 % 256);
  EXPECT_NE(second.error_line().find("error 1721"), std::string::npos);

  Testsrv nowhere({"--epmd", (dir_ / "missing.sock").string()});
  EXPECT_EQ(nowhere.wait(), 1722 % 256);
}

TEST(BrokerTcp, RefusedOverTcpWith1702) {
  epm::PortBroker port_broker(policy_of({27190, 27199}), 1);
  BrokerService broker(port_broker);
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
  // HoldLease too: a lease is a control-socket connection's (issue 11); over TCP an ept_insert
  // is always persistent.
  bool leased = false;
  st.on_io([&] { broker.on_lease([&](std::uint64_t) { leased = true; }); });
  auto h = c->call(0, broker::kOpHoldLease,
                   broker::encode(broker::HoldLeaseRequest{}, common::Endian::kLittle));
  ASSERT_TRUE(h);
  auto hold = broker::decode_release_port_response(h->stub, common::Endian::kLittle);
  ASSERT_TRUE(hold);
  EXPECT_EQ(hold->status, broker::kStatusInvalidBinding);
  EXPECT_FALSE(st.on_io([&] { return leased; }));
  // A stub that is not one u32: fault (nothing granted).
  auto bad = c->call(0, broker::kOpHoldLease, {});
  EXPECT_FALSE(bad);
}

}  // namespace
}  // namespace rpcgate::runtime
