// Prometheus metrics for rpcgate's daemons (issue 15): one place that owns the exposition
// endpoint, on top of prometheus-cpp (Debian's prometheus-cpp-dev: its Registry and its pull
// Exposer, an embedded civetweb serving GET /metrics in the text exposition format). rpcgate
// writes no HTTP of its own.
//
// Off by default: a daemon without `--metrics ADDR:PORT` (or `metrics = "ADDR:PORT"` in its
// table of rpcgate.toml) never constructs an Exporter, so nothing listens, no thread starts and
// its call paths test one null pointer.
//
// Threads. The Exporter's civetweb threads call every registered Collectable's Collect() while
// the daemon's own thread runs its event loop, so:
//   * what a daemon changes on its hot path is lock-free: prometheus::Counter (an atomic double)
//     and LatencyHistogram below (atomic buckets: prometheus::Histogram::Observe takes a
//     std::mutex on every observation);
//   * current state (pool use, connections, pinholes) is read at scrape time by a Collectable
//     of the daemon's, which asks the daemon's thread for a snapshot (never reads its
//     structures from the scrape thread) and waits for it at most kSnapshotTimeout.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace rpcgate::metrics {

// How long a scrape waits for the daemon's thread to take a snapshot; past it the scrape
// answers without those series (the event loop is stuck or stopping: better a short answer
// than a hung scrape).
inline constexpr std::chrono::milliseconds kSnapshotTimeout{2'000};

// The endpoint's budget, the same whatever connects: kServeThreads threads serve GET /metrics
// (a scrape and slower ones beside it); a connection that has not sent a whole request within
// kRequestTimeout is closed. A client that holds every thread delays scrapes by at most that
// long per connection it opens: there is no per-peer limit in civetweb, so bind the endpoint to
// a management address (README, "Metrics").
inline constexpr unsigned kServeThreads = 4;
inline constexpr std::chrono::milliseconds kRequestTimeout{5'000};

// Where GET /metrics is served: a numeric address and a port. IPv6 parses, but serving it needs a
// civetweb built with IPv6, which Debian 12's libcivetweb is not (start() then says so).
struct Endpoint {
  std::string host;               // numeric IPv4 or IPv6, without brackets
  std::uint16_t port = 0;         // 0: the kernel chooses (tests; Exporter::port() says which)
  std::string to_string() const;  // "127.0.0.1:9135", "[::1]:9135"
};

// "127.0.0.1:9135", "[::1]:9135", "0.0.0.0:9135". Numeric addresses only (as the listeners:
// nothing depends on name resolution at boot), port 0..65535. Error: one sentence naming `text`
// and the expected form.
std::expected<Endpoint, std::string> parse_endpoint(std::string_view text);

// A histogram of durations with fixed bucket bounds, lock-free: observe() is two relaxed atomic
// additions after a search of the (few) bounds. Any thread may observe() and collect() at once;
// a scrape may see an observation's bucket before its sum (never a torn value).
class LatencyHistogram {
 public:
  // `bounds` ascending, in seconds (the +Inf bucket is implicit).
  explicit LatencyHistogram(std::span<const double> bounds);
  void observe(std::chrono::nanoseconds d) {
    const auto ns = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
    std::size_t i = 0;
    while (i < bounds_ns_.size() && ns > bounds_ns_[i])
      ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
  // The sample in prometheus-cpp's form (cumulative buckets, sum in seconds).
  prometheus::ClientMetric collect() const;

 private:
  std::vector<std::uint64_t> bounds_ns_;
  std::vector<double> bounds_s_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_ns_.size() + 1 (+Inf)
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Bucket bounds (seconds) for work measured in microseconds: an endpoint-mapper call (a cached
// ept_map answer takes about 1 us, an ept_lookup page of 500 entries about 1 ms), one inspection
// step of the firewall.
inline constexpr std::array<double, 14> kFastCallBuckets{
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1.0};
// For work that waits on the kernel (a libnftables batch, about 0.1 ms): 10 us .. 1 s.
inline constexpr std::array<double, 12> kKernelCallBuckets{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                                           1e-3, 2.5e-3, 5e-3, 1e-2, 0.1,    1.0};

// Building a scrape-time family: MetricFamily{name, help, type} and its samples.
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);
// Adds one sample (gauge or counter, by the family's type) with `labels` (name, value pairs).
void add_sample(prometheus::MetricFamily& f, double value,
                std::initializer_list<std::pair<std::string_view, std::string_view>> labels = {});

// The exposition endpoint. start() binds; from then on GET /metrics on it answers with the
// registry's series and every added Collectable's, in that order.
class Exporter {
 public:
  // Listens on `at`. Error: "metrics ADDR:PORT: cannot listen (...)": the port is in use, the
  // address is not local, or the library refused it.
  static std::expected<std::unique_ptr<Exporter>, std::string> start(const Endpoint& at);
  // Stops serving (waits for a scrape in progress), then drops the collectables.
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // For series built with prometheus-cpp's builders (BuildCounter() ...).
  prometheus::Registry& registry() { return *registry_; }
  // Adds a scrape-time collectable; the Exporter keeps it alive until it is destroyed.
  void add(std::shared_ptr<prometheus::Collectable> collectable);
  // The port listened on (what the kernel chose for port 0).
  std::uint16_t port() const { return port_; }
  // "http://127.0.0.1:9135/metrics", for the daemon's start-up line.
  std::string url() const;

 private:
  Exporter() = default;
  Endpoint at_;
  std::uint16_t port_ = 0;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<prometheus::Exposer> exposer_;  // last: destroyed (stopped) first
};

}  // namespace rpcgate::metrics
