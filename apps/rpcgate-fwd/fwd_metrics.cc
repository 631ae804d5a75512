#include "fwd_metrics.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string_view>

#include <sys/eventfd.h>
#include <unistd.h>

#include "firewall/inspector.h"

namespace rpcgate::fwd {
namespace {

using prometheus::MetricType;

// The relay's counter keys (relay.cc count()) that are not decisions of their own or that
// other families report.
constexpr std::string_view kClosed = "closed";
constexpr std::string_view kReset = "reset";
constexpr std::array<std::string_view, 3> kPinholeResults{"pinhole-opened", "pinhole-refreshed",
                                                          "pinhole-kept"};
constexpr std::array<std::string_view, 3> kPinholeRefusals{"client-pinhole-limit", "pinhole-limit",
                                                           "kernel-error"};

std::uint64_t value_of(const std::map<std::string, std::uint64_t>& m, std::string_view key) {
  const auto it = m.find(std::string(key));
  return it == m.end() ? 0 : it->second;
}

}  // namespace

class FwdMetrics::Collector : public prometheus::Collectable {
 public:
  explicit Collector(const FwdMetrics& m) : m_(m) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto h = metrics::family("rpcgate_fwd_inspection_duration_seconds",
                             "From bytes read off a relayed connection to their actions applied "
                             "(judged, queued; a pinhole's kernel write included).",
                             MetricType::Histogram);
    h.metric.push_back(m_.inspection_.collect());
    out.push_back(std::move(h));
    h = metrics::family("rpcgate_fwd_pinhole_install_duration_seconds",
                        "From an ept_map answer read to its pinholes written to the kernel "
                        "(the client waits this long for the answer).",
                        MetricType::Histogram);
    h.metric.push_back(m_.install_.collect());
    out.push_back(std::move(h));
    const auto s = m_.take();
    if (!s) return out;

    auto gauge = [](std::string name, std::string help) {
      return metrics::family(std::move(name), std::move(help), MetricType::Gauge);
    };
    auto counter = [](std::string name, std::string help) {
      return metrics::family(std::move(name), std::move(help), MetricType::Counter);
    };
    const auto& c = s->counters;
    auto f = gauge("rpcgate_fwd_pinholes", "Live pinholes (client . server . port).");
    metrics::add_sample(f, static_cast<double>(s->pinholes));
    out.push_back(std::move(f));
    f = counter("rpcgate_fwd_pinholes_installed_total",
                "Pinholes written to the kernel set: opened, or refreshed by a later ept_map.");
    metrics::add_sample(
        f, static_cast<double>(value_of(c, kPinholeResults[0]) + value_of(c, kPinholeResults[1])));
    out.push_back(std::move(f));
    f = counter("rpcgate_fwd_pinholes_expired_total", "Pinholes that lapsed.");
    metrics::add_sample(f, static_cast<double>(s->pinholes_expired));
    out.push_back(std::move(f));
    f = counter("rpcgate_fwd_pinholes_refused_total",
                "Pinholes an allowed ept_map answer asked for and did not get, by reason.");
    for (const auto reason : kPinholeRefusals)
      metrics::add_sample(f, static_cast<double>(value_of(c, reason)), {{"reason", reason}});
    out.push_back(std::move(f));

    // Decisions: every drop reason is listed (0 until it happens), then what else the relay
    // counted under its own reason codes.
    f = counter("rpcgate_fwd_decisions_total",
                "Decision records by reason code: allow (a relayed connection ran to its end), "
                "or why the firewall dropped a connection or answered an ept_map itself.");
    metrics::add_sample(f, static_cast<double>(value_of(c, kClosed) + value_of(c, kReset)),
                        {{"reason", "allow"}});
    std::set<std::string_view> listed;
    for (auto r = static_cast<int>(firewall::DropReason::kProtocol);
         r <= static_cast<int>(firewall::DropReason::kMapNotAllowed); ++r) {
      const auto reason = firewall::to_string(static_cast<firewall::DropReason>(r));
      listed.insert(reason);
      metrics::add_sample(f, static_cast<double>(value_of(c, reason)), {{"reason", reason}});
    }
    for (const auto& [reason, n] : c) {
      const std::string_view r = reason;
      if (r == kClosed || r == kReset || listed.contains(r) ||
          std::find(kPinholeResults.begin(), kPinholeResults.end(), r) != kPinholeResults.end() ||
          std::find(kPinholeRefusals.begin(), kPinholeRefusals.end(), r) != kPinholeRefusals.end())
        continue;
      metrics::add_sample(f, static_cast<double>(n), {{"reason", r}});
    }
    out.push_back(std::move(f));

    f = gauge("rpcgate_fwd_connections", "Relayed connections now.");
    metrics::add_sample(f, static_cast<double>(s->connections));
    out.push_back(std::move(f));
    f = counter("rpcgate_fwd_connections_relayed_total", "Connections relayed since start.");
    metrics::add_sample(f, static_cast<double>(s->relayed_total));
    out.push_back(std::move(f));
    f = counter("rpcgate_fwd_relayed_bytes_total", "Bytes relayed, by direction.");
    metrics::add_sample(f, static_cast<double>(s->bytes_from_client),
                        {{"direction", "client_to_server"}});
    metrics::add_sample(f, static_cast<double>(s->bytes_from_server),
                        {{"direction", "server_to_client"}});
    out.push_back(std::move(f));
    if (!s->kernel_counters.empty()) {
      f = counter("rpcgate_fwd_kernel_packets_total",
                  "Packets counted by the nftables table inet rpcgate_fwd, by counter "
                  "(no_pinhole: governed connections dropped in the kernel).");
      for (const auto& [name, packets] : s->kernel_counters)
        metrics::add_sample(f, static_cast<double>(packets), {{"counter", name}});
      out.push_back(std::move(f));
    }
    return out;
  }

 private:
  const FwdMetrics& m_;
};

std::expected<std::unique_ptr<FwdMetrics>, std::string> FwdMetrics::start(
    const metrics::Endpoint& at) {
  std::unique_ptr<FwdMetrics> m(new FwdMetrics());
  m->wakeup_ = runtime::Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!m->wakeup_) return std::unexpected(std::string("metrics: eventfd: ") + std::strerror(errno));
  auto exporter = metrics::Exporter::start(at);
  if (!exporter) return std::unexpected(exporter.error());
  m->exporter_ = std::move(*exporter);
  m->exporter_->add(std::make_shared<Collector>(*m));
  return m;
}

FwdMetrics::~FwdMetrics() {
  exporter_.reset();  // no scrape reads the members below past this line
}

void FwdMetrics::publish(RelaySnapshot snapshot) {
  std::uint64_t drained = 0;
  while (::read(wakeup_.get(), &drained, sizeof drained) > 0) {
  }
  {
    const std::lock_guard lock(mutex_);
    latest_ = std::move(snapshot);
    ++generation_;
  }
  published_.notify_all();
}

std::optional<RelaySnapshot> FwdMetrics::take() const {
  std::unique_lock lock(mutex_);
  const std::uint64_t before = generation_;
  const std::uint64_t one = 1;
  if (::write(wakeup_.get(), &one, sizeof one) != sizeof one) return std::nullopt;
  if (!published_.wait_for(lock, metrics::kSnapshotTimeout, [&] { return generation_ != before; }))
    return std::nullopt;  // the loop is stopping, or stuck
  return latest_;
}

}  // namespace rpcgate::fwd
