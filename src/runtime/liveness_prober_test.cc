#include "runtime/liveness_prober.h"

#include <chrono>
#include <thread>

#include <arpa/inet.h>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "epm/testing/test_util.h"
#include "runtime/net.h"

namespace rpcgate::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kUid = 1000;

void add(epm::EpmService& epm, std::uint16_t port, std::string annotation) {
  ASSERT_EQ(epm.db().insert(
                {epm::testing::entry({}, "ncacn_ip_tcp:127.0.0.1[" + std::to_string(port) + "]",
                                     epm::testing::kSamr10, std::move(annotation))},
                false, epm::Registrant{epm::kPersistentOwner, kUid}),
            0u);
}

bool registered(const epm::EpmService& epm, std::string_view annotation) {
  for (const auto& [id, e] : epm.db().entries())
    if (e.annotation == annotation) return true;
  return false;
}

// A port nothing listens on: bound, then closed.
std::uint16_t closed_port(asio::io_context& io) {
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

TEST(LivenessProber, RemovesOnlyDeadEndpointsAfterConsecutiveFailures) {
  asio::io_context io;
  epm::EpmService epm;
  asio::ip::tcp::acceptor live(io, {asio::ip::make_address("127.0.0.1"), 0});
  add(epm, live.local_endpoint().port(), "live");
  add(epm, closed_port(io), "dead");
  ASSERT_EQ(epm.db().insert({epm::testing::entry({}, "ncacn_ip_tcp:127.0.0.1[1]",
                                                 epm::testing::kSamr10, "epmd's")},
                            false, epm::Registrant{epm::kPersistentOwner, epm::kEpmdAuthority}),
            0u);
  LivenessProber prober(io, epm, {.interval = 30ms, .failures = 3, .probe_timeout = 500ms});
  std::vector<std::string> removed;
  prober.on_removed([&](const epm::Entry& e, const epm::ProbeTarget&, std::uint32_t failures) {
    EXPECT_EQ(failures, 3u);
    removed.push_back(e.annotation);
  });
  prober.start();
  // Two failed rounds are not enough.
  io.run_for(75ms);
  EXPECT_TRUE(registered(epm, "dead"));
  const auto deadline = Clock::now() + 3s;
  while (registered(epm, "dead") && Clock::now() < deadline)
    io.run_for(10ms);
  EXPECT_FALSE(registered(epm, "dead"));
  io.run_for(100ms);  // more rounds: the live one and epmd's stay
  EXPECT_TRUE(registered(epm, "live"));
  EXPECT_TRUE(registered(epm, "epmd's"));
  EXPECT_EQ(removed, std::vector<std::string>{"dead"});
  EXPECT_GE(prober.stats().rounds, 3u);
  EXPECT_EQ(prober.stats().removed, 1u);
  prober.stop();
}

// A probe that gets no answer (SYN dropped: the listener's accept queue is full) fails by its
// timeout, and the loop keeps serving other work meanwhile.
TEST(LivenessProber, UnansweredProbeTimesOutWithoutBlockingTheLoop) {
  asio::io_context io;
  epm::EpmService epm;
  asio::ip::tcp::acceptor full(io, {asio::ip::make_address("127.0.0.1"), 0});
  full.listen(0);
  const auto port = full.local_endpoint().port();
  // Fill the accept queue (never accepted): later SYNs are dropped. Raw non-blocking connects:
  // asio's synchronous connect would wait for the handshake.
  std::vector<Fd> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)::connect(fillers.back().get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  }
  std::this_thread::sleep_for(50ms);
  add(epm, port, "busy");
  LivenessProber prober(io, epm, {.interval = 100ms, .failures = 1, .probe_timeout = 150ms});
  const auto started = Clock::now();
  prober.start();
  // While the probe hangs, posted work runs promptly.
  std::chrono::milliseconds worst{0};
  const auto until = Clock::now() + 2s;
  while (registered(epm, "busy") && Clock::now() < until) {
    const auto posted = Clock::now();
    auto ran = posted;
    asio::post(io, [&] { ran = Clock::now(); });
    io.run_for(20ms);
    worst = std::max(worst, std::chrono::duration_cast<std::chrono::milliseconds>(ran - posted));
  }
  EXPECT_FALSE(registered(epm, "busy"));
  // Removed by the timeout (first round at 100 ms + the probe timeout, capped at the interval:
  // 100 ms), not by a quick refusal (which would be at about 100 ms).
  EXPECT_GE(Clock::now() - started, 190ms);
  EXPECT_LT(worst, 50ms);
  EXPECT_GE(prober.stats().probe_failures, 1u);
  prober.stop();
}

TEST(LivenessProber, InFlightIsBounded) {
  asio::io_context io;
  epm::EpmService epm;
  for (int i = 0; i < 40; ++i)
    add(epm, static_cast<std::uint16_t>(closed_port(io)), "dead" + std::to_string(i));
  LivenessProber prober(
      io, epm, {.interval = 20ms, .failures = 1, .probe_timeout = 200ms, .max_in_flight = 4});
  prober.start();
  const auto until = Clock::now() + 3s;
  while (epm.db().size() > 0 && Clock::now() < until) {
    io.run_for(5ms);
    EXPECT_LE(prober.stats().max_in_flight_seen, 4u);
  }
  EXPECT_EQ(epm.db().size(), 0u);
  EXPECT_EQ(prober.stats().max_in_flight_seen, 4u);
  prober.stop();
}

}  // namespace
}  // namespace rpcgate::runtime
