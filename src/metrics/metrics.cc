#include "metrics/metrics.h"

#include <exception>
#include <limits>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <prometheus/exposer.h>

namespace rpcgate::metrics {

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::expected<Endpoint, std::string> parse_endpoint(std::string_view text) {
  const std::string t(text);
  auto fail = [&](std::string_view why) {
    return std::unexpected("metrics address \"" + t + "\": " + std::string(why) +
                           " (expected ADDR:PORT with a numeric address, e.g. 127.0.0.1:9135 or "
                           "[::1]:9135)");
  };
  if (text.size() > 64) return fail("too long");
  Endpoint e;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("bad bracketed IPv6 address");
    e.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    in6_addr a{};
    if (inet_pton(AF_INET6, e.host.c_str(), &a) != 1) return fail("not a numeric IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing port");
    e.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    in_addr a{};
    if (inet_pton(AF_INET, e.host.c_str(), &a) != 1)
      return fail("not a numeric IPv4 address (IPv6 goes in brackets)");
  }
  if (port_text.empty() || port_text.size() > 5) return fail("bad port");
  unsigned port = 0;
  for (const char c : port_text) {
    if (c < '0' || c > '9') return fail("bad port");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return fail("port outside 0-65535");
  e.port = static_cast<std::uint16_t>(port);
  return e;
}

LatencyHistogram::LatencyHistogram(std::span<const double> bounds)
    : bounds_s_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {
  for (const double b : bounds)
    bounds_ns_.push_back(static_cast<std::uint64_t>(b * 1e9 + 0.5));
}

prometheus::ClientMetric LatencyHistogram::collect() const {
  prometheus::ClientMetric m;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_ns_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < bounds_s_.size() ? bounds_s_[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return m;
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add_sample(prometheus::MetricFamily& f, double value,
                std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  prometheus::ClientMetric m;
  for (const auto& [name, v] : labels)
    m.label.push_back({std::string(name), std::string(v)});
  if (f.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

std::expected<std::unique_ptr<Exporter>, std::string> Exporter::start(const Endpoint& at) {
  std::unique_ptr<Exporter> e(new Exporter());
  e->at_ = at;
  e->registry_ = std::make_shared<prometheus::Registry>();
  try {
    // civetweb serves each connection on one of a fixed set of threads (kServeThreads); the
    // rest wait in its queue. An idle or slow client holds a thread until kRequestTimeout
    // (civetweb's default, 30 s, would let a few idle connections keep Prometheus out for that
    // long). None of this touches the daemon's own thread.
    e->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", at.to_string(), "num_threads", std::to_string(kServeThreads),
        "request_timeout_ms", std::to_string(kRequestTimeout.count())});
  } catch (const std::exception& ex) {
    // civetweb says only "null context when constructing CivetServer. Possible problem binding
    // to port." - name the usual causes.
    // Debian 12's libcivetweb is built without IPv6 (mg_check_feature(8) == 0): say so rather
    // than let an administrator hunt for a port conflict.
    const bool v6 = at.host.find(':') != std::string::npos;
    return std::unexpected(
        "metrics " + at.to_string() + ": cannot listen (" +
        (v6 ? std::string("IPv6: the civetweb prometheus-cpp serves with may be built without "
                          "IPv6, as Debian 12's is - use an IPv4 address; or ")
            : std::string()) +
        "port in use, or not an address of this host): " + ex.what());
  }
  const auto ports = e->exposer_->GetListeningPorts();
  e->port_ = ports.empty() ? at.port : static_cast<std::uint16_t>(ports.front());
  e->exposer_->RegisterCollectable(e->registry_);
  return e;
}

Exporter::~Exporter() {
  exposer_.reset();  // no scrape runs past this line
}

void Exporter::add(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  collectables_.push_back(std::move(collectable));
}

std::string Exporter::url() const {
  Endpoint shown = at_;
  shown.port = port_;
  return "http://" + shown.to_string() + "/metrics";
}

}  // namespace rpcgate::metrics
