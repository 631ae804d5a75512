// End to end from our side: the real rpcgate-echo (and, for the endpoint-mapper case, the real
// rpcgate-epmd) as child processes, called through runtime::RpcClient with the echo.h request
// encoders and response decoders. tests/echo_test.py does the same with Impacket's NDR classes;
// both check Samba's semantics (echo.h, answer()).
//
// Every wait is bounded (file polls with deadlines, ClientOptions timeouts, joins of threads
// whose only call has a 5 s deadline); every child is SIGTERMed, then SIGKILLed, in TearDown.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "echo/echo.h"
#include "ndr/binding.h"
#include "rpc/status.h"
#include "runtime/errc.h"
#include "runtime/rpc_client.h"

extern char** environ;

namespace rpcgate::echo {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using runtime::ClientError;
using runtime::ClientOptions;
using runtime::Reply;
using runtime::RpcClient;

constexpr Endian kLe = Endian::kLittle;

// A child process whose stdout and stderr go to files in `dir` (no pipe to fill up if nobody
// reads). Killed on destruction if still running.
class Child {
 public:
  Child(const std::filesystem::path& dir, const std::string& name, std::vector<std::string> args)
      : out_(dir / (name + ".out")), err_(dir / (name + ".err")) {
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::posix_spawn_file_actions_addopen(&fa, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    ::posix_spawn_file_actions_destroy(&fa);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  bool started() const { return pid_ > 0; }
  bool running() {
    reap();
    return started() && !exited_;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }
  std::string output() const { return "stdout: " + out() + "\nstderr: " + err(); }

  // Polls stdout + stderr until `find` returns a value, the child exits or `timeout` passes.
  template <typename T>
  std::optional<T> wait_for(const std::function<std::optional<T>(const std::string&)>& find,
                            std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (auto v = find(out() + err())) return v;
      if (!running()) return find(out() + err());
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  // SIGTERM, up to 5 s for it to exit, then SIGKILL.
  void stop() {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + 5s;
    while (running() && Clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      exited_ = true;
    }
  }

 private:
  void reap() {
    if (pid_ > 0 && !exited_ && ::waitpid(pid_, nullptr, WNOHANG) == pid_) exited_ = true;
  }
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  pid_t pid_ = -1;
  bool exited_ = false;
  std::filesystem::path out_, err_;
};

// `port=N` on its own line.
std::optional<std::uint16_t> echo_port(const std::string& text) {
  if (text.rfind("port=", 0) != 0) return std::nullopt;
  const auto end = text.find('\n');
  if (end == std::string::npos) return std::nullopt;
  return static_cast<std::uint16_t>(std::stoul(text.substr(5, end - 5)));
}

// rpcgate-epmd's "listening on 127.0.0.1:PORT" log line.
std::optional<std::uint16_t> epmd_port(const std::string& text) {
  const std::string marker = "listening on 127.0.0.1:";
  const auto at = text.find(marker);
  if (at == std::string::npos) return std::nullopt;
  const auto digits = at + marker.size();
  const auto end = text.find_first_not_of("0123456789", digits);
  if (end == std::string::npos || end == digits) return std::nullopt;
  return static_cast<std::uint16_t>(std::stoul(text.substr(digits, end - digits)));
}

ndr::StringBinding binding(const std::string& text) {
  auto b = ndr::parse_binding(text);
  EXPECT_TRUE(b) << text;
  return b.value_or(ndr::StringBinding{});
}

ClientOptions options() {
  ClientOptions o;
  o.connect_timeout = 5s;
  o.call_timeout = 5s;
  return o;
}

class EchoClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "rpcgate-echoclient-XXXXXX");
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    // The children of the asan build are instrumented too: their reports count as failures.
    for (auto& child : children_) {
      child->stop();
      const auto err = child->err();
      EXPECT_EQ(err.find("Sanitizer"), std::string::npos) << err;
      EXPECT_EQ(err.find("runtime error:"), std::string::npos) << err;
    }
    children_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Child& spawn(const std::string& name, std::vector<std::string> args) {
    children_.push_back(std::make_unique<Child>(dir_, name, std::move(args)));
    return *children_.back();
  }

  // A standalone rpcgate-echo on 127.0.0.1, port 0; returns its port (0 on failure).
  std::uint16_t start_echo() {
    auto& echo = spawn("echo", {RPCGATE_ECHO, "--no-register", "--port", "0", "--listen",
                                "127.0.0.1", "--log-level", "warn"});
    EXPECT_TRUE(echo.started());
    auto port = echo.wait_for<std::uint16_t>(echo_port);
    EXPECT_TRUE(port) << echo.output();
    return port.value_or(0);
  }

  std::optional<RpcClient> open(std::uint16_t port) {
    auto c = RpcClient::open(binding("ncacn_ip_tcp:127.0.0.1[" + std::to_string(port) + "]"),
                             {rpcecho_syntax()}, options());
    EXPECT_TRUE(c) << c.error().message;
    if (!c) return std::nullopt;
    return std::move(*c);
  }

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<Child>> children_;
};

std::expected<Reply, ClientError> call(RpcClient& c, Opnum op,
                                       const std::vector<std::uint8_t>& stub) {
  return c.call(0, static_cast<std::uint16_t>(op), stub);
}

TEST_F(EchoClientTest, EveryOperationFromOurClient) {
  const auto port = start_echo();
  ASSERT_NE(port, 0);
  auto c = open(port);
  ASSERT_TRUE(c);

  // 0 AddOne
  for (auto [in, out] : {std::pair<std::uint32_t, std::uint32_t>{41, 42}, {0xffffffff, 0}}) {
    auto r = call(*c, Opnum::kAddOne, AddOneRequest{in}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = AddOneResponse::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->out_data, out);
  }

  // 1 EchoData: small, empty, and 100 KiB - far above max_xmit_frag / max_recv_frag (5840), so
  // the request and the response are both fragmented.
  std::vector<std::uint8_t> big(100 * 1024);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 7 + 3);
  const std::vector<std::uint8_t> small{'r', 'p', 'c', 'g', 'a', 't', 'e'};
  for (const auto& in : {small, big, std::vector<std::uint8_t>{}}) {
    auto r = call(*c, Opnum::kEchoData, EchoDataRequest{in}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = EchoDataResponse::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->data, in) << in.size();
  }

  // 2 SinkData: the empty response stub.
  {
    auto r = call(*c, Opnum::kSinkData, SinkDataRequest{big}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->stub.empty());
  }

  // 3 SourceData: bytes i & 0xff.
  {
    auto r = call(*c, Opnum::kSourceData, SourceDataRequest{1000}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = SourceDataResponse::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    ASSERT_EQ(d->data.size(), 1000u);
    for (std::size_t i = 0; i < d->data.size(); ++i)
      ASSERT_EQ(d->data[i], i & 0xff) << i;
  }

  // 4 TestCall: s2 = s1.
  for (const std::u16string s1 : {u"hello", u"", u"gr\u00fc\u00dfe \u20ac"}) {
    auto r = call(*c, Opnum::kTestCall, TestCallRequest{s1}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = TestCallResponse::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    ASSERT_TRUE(d->s2);
    EXPECT_EQ(*d->s2, s1);
  }

  // 5 TestCall2: levels 1-7, then level 8 -> fault rpc_x_bad_stub_data (Samba's
  // DCERPC_FAULT_NDR), after which the connection is still usable.
  const EchoInfo expected[] = {
      {1, 0, 10}, {2, 0, 20}, {3, 0, 30}, {4, 0, 40}, {5, 50, 60}, {6, 70, 80}, {7, 80, 90},
  };
  for (const auto& want : expected) {
    auto r = call(*c, Opnum::kTestCall2, TestCall2Request{want.level}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = TestCall2Response::decode(r->stub, r->endian, want.level);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->info, want) << want.level;
    EXPECT_EQ(d->result, 0u) << want.level;
  }
  {
    auto r = call(*c, Opnum::kTestCall2, TestCall2Request{8}.encode(kLe));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, runtime::Errc::kCallFailed);
    EXPECT_EQ(r.error().status, rpc::status::kRpcXBadStubData);
    EXPECT_EQ(r.error().message, "fault rpc_x_bad_stub_data (0x000006f7)");
    EXPECT_FALSE(r.error().network);
    EXPECT_TRUE(c->usable());
  }

  // 6 TestSleep(0): answers its argument at once (the parallel case is its own test).
  {
    auto r = call(*c, Opnum::kTestSleep, TestSleepRequest{0}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = TestSleepResponse::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->result, 0u);
  }

  // 7 TestEnum: the arguments back with foo2.e1 = ECHO_ENUM2, for both arms of foo3.
  {
    TestEnumArgs one{kEchoEnum1, {kEchoEnum1, 1}, kEchoEnum2, {}};
    TestEnumArgs two{kEchoEnum2, {kEchoEnum1, 2}, 0, {kEchoEnum2, 1}};
    for (const auto& args : {one, two}) {
      auto r = call(*c, Opnum::kTestEnum, args.encode(kLe));
      ASSERT_TRUE(r) << r.error().message;
      auto d = TestEnumArgs::decode(r->stub, r->endian);
      ASSERT_TRUE(d) << d.error().message();
      auto want = args;
      want.foo2.e1 = kEchoEnum2;
      EXPECT_EQ(*d, want) << args.foo1;
    }
  }

  // 8 TestSurrounding: x doubled, 2x zeros.
  {
    auto r = call(*c, Opnum::kTestSurrounding, Surrounding{{1, 2, 3}}.encode(kLe));
    ASSERT_TRUE(r) << r.error().message;
    auto d = Surrounding::decode(r->stub, r->endian);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->surrounding, std::vector<std::uint16_t>(6, 0));
  }

  // 9 TestDoublePointer: ***data, or 0 when *data or **data is NULL.
  {
    using Data = std::optional<std::optional<std::uint16_t>>;
    const std::pair<Data, std::uint16_t> cases[] = {
        {Data{std::optional<std::uint16_t>{7}}, 7},
        {Data{std::optional<std::uint16_t>{}}, 0},
        {Data{}, 0},
    };
    for (const auto& [data, want] : cases) {
      auto r = call(*c, Opnum::kTestDoublePointer, TestDoublePointerRequest{data}.encode(kLe));
      ASSERT_TRUE(r) << r.error().message;
      auto d = TestDoublePointerResponse::decode(r->stub, r->endian);
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->result, want);
    }
  }

  // 10: no such operation.
  {
    auto r = c->call(0, kOpnumCount, {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, runtime::Errc::kCallFailed);
    EXPECT_EQ(r.error().status, rpc::status::kNcaSOpRngError);
    EXPECT_EQ(r.error().message, "fault nca_s_op_rng_error (0x1c010002)");
  }

  // Faults leave the connection usable.
  auto r = call(*c, Opnum::kAddOne, AddOneRequest{1}.encode(kLe));
  ASSERT_TRUE(r) << r.error().message;
  auto d = AddOneResponse::decode(r->stub, r->endian);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->out_data, 2u);
}

// Five TestSleep(1) outstanding at once on five connections: the server must not serialise them
// (that would take 5 s; the bound is 2.5 s).
TEST_F(EchoClientTest, SleepsOnFiveConnectionsOverlap) {
  const auto port = start_echo();
  ASSERT_NE(port, 0);
  constexpr int kCalls = 5;
  std::vector<RpcClient> clients;
  for (int i = 0; i < kCalls; ++i) {
    auto c = open(port);
    ASSERT_TRUE(c);
    clients.push_back(std::move(*c));
  }
  std::vector<std::optional<std::uint32_t>> results(kCalls);
  std::vector<std::string> errors(kCalls);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      auto r = call(clients[i], Opnum::kTestSleep, TestSleepRequest{1}.encode(kLe));
      if (!r) {
        errors[i] = r.error().message;
        return;
      }
      if (auto d = TestSleepResponse::decode(r->stub, r->endian))
        results[i] = d->result;
      else
        errors[i] = d.error().message();
    });
  }
  for (auto& t : threads)
    t.join();  // bounded: each call has call_timeout (5 s)
  const auto elapsed = Clock::now() - start;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(results[i], 1u) << i;
  }
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 2500ms) << std::chrono::duration<double>(elapsed).count() << " s";
}

// A binding without a port, resolved through a real rpcgate-epmd (on a port of its own, passed
// as ClientOptions::epm_port) where rpcgate-echo registered a broker port.
TEST_F(EchoClientTest, PortResolvedThroughRpcgateEpmd) {
  const auto policy = dir_ / "rpcgate.toml";
  {
    // Pool under the ephemeral range (32768-60999): other tests' outgoing connections on this
    // host network cannot take its ports.
    std::ofstream f(policy);
    f << "[policy]\n"
         "ports = [\"27300-27349\"]\n"
         "ports_internet_available = \"Y\"\n"
         "use_internet_ports = \"N\"\n"
         "dynamic_range = \"27300-27399\"\n";
  }
  const auto control = (dir_ / "epmd.sock").string();
  auto& epmd = spawn("epmd", {RPCGATE_EPMD, "--listen", "127.0.0.1:0", "--control", control,
                              "--policy", policy.string()});
  ASSERT_TRUE(epmd.started());
  const auto epm_port = epmd.wait_for<std::uint16_t>(epmd_port);
  ASSERT_TRUE(epm_port) << epmd.output();

  auto& echo = spawn(
      "echo", {RPCGATE_ECHO, "--control", control, "--class", "internet", "--log-level", "warn"});
  ASSERT_TRUE(echo.started());
  const auto port = echo.wait_for<std::uint16_t>(echo_port);
  ASSERT_TRUE(port) << echo.output() << "\nepmd " << epmd.output();
  EXPECT_GE(*port, 27300);
  EXPECT_LE(*port, 27349);

  auto o = options();
  o.epm_port = *epm_port;
  auto c = RpcClient::open(binding("ncacn_ip_tcp:127.0.0.1"), {rpcecho_syntax()}, o);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->port(), *port);
  auto r = call(*c, Opnum::kAddOne, AddOneRequest{41}.encode(kLe));
  ASSERT_TRUE(r) << r.error().message;
  auto d = AddOneResponse::decode(r->stub, r->endian);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->out_data, 42u);
}

}  // namespace
}  // namespace rpcgate::echo
