// rpcgate-fwd's Prometheus series (`--metrics ADDR:PORT`, `metrics = "ADDR:PORT"` in
// [firewall]), served by metrics::Exporter (src/metrics/metrics.h). Off by default: without the
// option no FwdMetrics exists and the relay tests one null pointer where it would report.
//
// Series (README "Metrics", docs/firewall.md "Metrics"):
//   rpcgate_fwd_pinholes                       gauge: live pinholes in the relay's table
//   rpcgate_fwd_pinholes_installed_total       pinholes written to the kernel (opened, refreshed)
//   rpcgate_fwd_pinholes_expired_total         pinholes that lapsed
//   rpcgate_fwd_pinholes_refused_total{reason} client-pinhole-limit, pinhole-limit, kernel-error
//   rpcgate_fwd_decisions_total{reason}        one per decision record: "allow" for a relayed
//                                              connection that ran to its end (closed, client- or
//                                              server-reset), else the record's reason code (the
//                                              DropReason strings, map-not-allowed, no-pinhole,
//                                              connection-limit, ...)
//   rpcgate_fwd_connections                    gauge: relayed connections now
//   rpcgate_fwd_connections_relayed_total
//   rpcgate_fwd_relayed_bytes_total{direction} client_to_server, server_to_client
//   rpcgate_fwd_kernel_packets_total{counter}  the nftables table's named counters (no_pinhole:
//                                              governed connections dropped in the kernel)
//   rpcgate_fwd_inspection_duration_seconds    histogram: bytes read -> their actions applied
//                                              (a pinhole's kernel write included)
//   rpcgate_fwd_pinhole_install_duration_seconds  histogram: ept_map answer read -> its pinholes
//                                              in the kernel
// Every reason code is a string literal of the relay's (never bytes from the wire), so labels
// are bounded.
//
// Threads: the relay is one epoll loop that owns its counters; a scrape (an exporter thread)
// makes wakeup_fd() readable and waits (metrics::kSnapshotTimeout) for the loop to publish() a
// RelaySnapshot. The two histograms are observed by the loop, lock-free.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "metrics/metrics.h"
#include "relay.h"
#include "runtime/net.h"

namespace rpcgate::fwd {

class FwdMetrics final : public RelayMetrics {
 public:
  // Listens on `at` (metrics::Exporter::start's error otherwise, or eventfd's).
  static std::expected<std::unique_ptr<FwdMetrics>, std::string> start(const metrics::Endpoint& at);
  ~FwdMetrics() override;

  int wakeup_fd() const override { return wakeup_.get(); }
  void publish(RelaySnapshot snapshot) override;
  void inspected(std::chrono::nanoseconds took) override { inspection_.observe(took); }
  void installed(std::chrono::nanoseconds took) override { install_.observe(took); }

  const metrics::Exporter& exporter() const { return *exporter_; }

 private:
  class Collector;
  FwdMetrics() = default;
  // The loop's snapshot (exporter thread); nullopt when it did not answer in time.
  std::optional<RelaySnapshot> take() const;

  runtime::Fd wakeup_;  // eventfd
  mutable std::mutex mutex_;
  mutable std::condition_variable published_;
  std::uint64_t generation_ = 0;  // publish() calls (under mutex_)
  RelaySnapshot latest_;          // under mutex_
  metrics::LatencyHistogram inspection_{metrics::kFastCallBuckets};
  metrics::LatencyHistogram install_{metrics::kKernelCallBuckets};
  std::unique_ptr<metrics::Exporter> exporter_;  // last: stops serving before the rest goes
};

}  // namespace rpcgate::fwd
