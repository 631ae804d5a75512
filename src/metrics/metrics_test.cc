#include "metrics/metrics.h"

#include <chrono>
#include <cmath>
#include <string>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rpcgate::metrics {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(ParseEndpoint, AcceptsNumericAddressesWithPorts) {
  auto v4 = parse_endpoint("127.0.0.1:9135");
  ASSERT_TRUE(v4) << v4.error();
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9135);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:9135");
  auto v6 = parse_endpoint("[::1]:9135");
  ASSERT_TRUE(v6) << v6.error();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->to_string(), "[::1]:9135");
  auto any = parse_endpoint("0.0.0.0:0");
  ASSERT_TRUE(any) << any.error();
  EXPECT_EQ(any->port, 0);
}

TEST(ParseEndpoint, RefusesWithASentenceNamingTheText) {
  for (const char* bad : {"", "9135", "localhost:9135", "127.0.0.1", "127.0.0.1:",
                          "127.0.0.1:65536", "127.0.0.1:91a5", "::1:9135", "[::1]9135", "[::1",
                          "[127.0.0.1]:9135", "1.2.3:80", "127.0.0.1:123456"}) {
    auto e = parse_endpoint(bad);
    ASSERT_FALSE(e) << bad;
    EXPECT_NE(e.error().find(std::string("\"") + bad + "\""), std::string::npos) << e.error();
    EXPECT_NE(e.error().find("ADDR:PORT"), std::string::npos) << e.error();
  }
}

TEST(LatencyHistogram, CountsIntoCumulativeBucketsAndSumsSeconds) {
  const std::array<double, 3> bounds{1e-6, 1e-3, 1.0};
  LatencyHistogram h(bounds);
  h.observe(nanoseconds(500));         // <= 1 us
  h.observe(nanoseconds(1000));        // == 1 us: le is inclusive
  h.observe(microseconds(10));         // <= 1 ms
  h.observe(std::chrono::seconds(2));  // +Inf
  h.observe(nanoseconds(-5));          // a clock step back counts as 0
  const auto m = h.collect();
  ASSERT_EQ(m.histogram.bucket.size(), 4u);
  EXPECT_EQ(m.histogram.bucket[0].cumulative_count, 3u);
  EXPECT_EQ(m.histogram.bucket[1].cumulative_count, 4u);
  EXPECT_EQ(m.histogram.bucket[2].cumulative_count, 4u);
  EXPECT_EQ(m.histogram.bucket[3].cumulative_count, 5u);
  EXPECT_TRUE(std::isinf(m.histogram.bucket[3].upper_bound));
  EXPECT_DOUBLE_EQ(m.histogram.bucket[1].upper_bound, 1e-3);
  EXPECT_EQ(m.histogram.sample_count, 5u);
  EXPECT_NEAR(m.histogram.sample_sum, 2.0000115, 1e-9);
}

// GET /metrics over loopback TCP, the whole answer (headers and body).
std::string scrape(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return "connect failed";
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0 && out.size() < (1u << 20);)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

class FixedCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto f = family("rpcgate_test_things", "Things now.", prometheus::MetricType::Gauge);
    add_sample(f, 3, {{"kind", "a"}});
    auto h =
        family("rpcgate_test_duration_seconds", "Durations.", prometheus::MetricType::Histogram);
    h.metric.push_back(histogram_.collect());
    return {f, h};
  }
  LatencyHistogram histogram_{kFastCallBuckets};
};

TEST(Exporter, ServesTheRegistryAndCollectablesOverHttp) {
  auto e = Exporter::start(*parse_endpoint("127.0.0.1:0"));
  ASSERT_TRUE(e) << e.error();
  ASSERT_NE((*e)->port(), 0);
  EXPECT_EQ((*e)->url(), "http://127.0.0.1:" + std::to_string((*e)->port()) + "/metrics");
  auto& counter = prometheus::BuildCounter()
                      .Name("rpcgate_test_events_total")
                      .Help("Events.")
                      .Register((*e)->registry())
                      .Add({{"code", "1721"}});
  counter.Increment(2);
  auto c = std::make_shared<FixedCollectable>();
  c->histogram_.observe(microseconds(3));
  (*e)->add(c);
  const auto text = scrape((*e)->port());
  EXPECT_NE(text.find("200 OK"), std::string::npos) << text;
  EXPECT_NE(text.find("rpcgate_test_events_total{code=\"1721\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE rpcgate_test_things gauge"), std::string::npos) << text;
  EXPECT_NE(text.find("rpcgate_test_things{kind=\"a\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("rpcgate_test_duration_seconds_bucket{le=\"5e-06\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rpcgate_test_duration_seconds_count 1"), std::string::npos) << text;
}

TEST(Exporter, APortInUseIsAClearError) {
  auto first = Exporter::start(*parse_endpoint("127.0.0.1:0"));
  ASSERT_TRUE(first) << first.error();
  const auto taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = Exporter::start(*parse_endpoint(taken));
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find("metrics " + taken + ": cannot listen"), std::string::npos)
      << second.error();
}

TEST(Exporter, IPv6SaysWhyItMayNotListen) {
  auto e = Exporter::start(*parse_endpoint("[::1]:0"));
  if (e) GTEST_SKIP() << "this civetweb serves IPv6";
  EXPECT_NE(e.error().find("metrics [::1]:0: cannot listen (IPv6"), std::string::npos) << e.error();
}

TEST(Exporter, AnAddressOfNoInterfaceIsAClearError) {
  auto e = Exporter::start(*parse_endpoint("192.0.2.1:9135"));  // TEST-NET-1: not ours
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("cannot listen"), std::string::npos) << e.error();
}

}  // namespace
}  // namespace rpcgate::metrics
