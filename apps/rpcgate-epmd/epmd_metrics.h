// rpcgate-epmd's Prometheus series (`--metrics ADDR:PORT`, `metrics = "ADDR:PORT"` in [epmd]),
// served by metrics::Exporter (src/metrics/metrics.h). Off by default: without the option no
// EpmdMetrics exists and the daemon registers its interfaces exactly as before.
//
// Series (README "Metrics" lists them with their labels):
//   rpcgate_epmd_calls_total{interface,opnum,status}  counter, on the call path
//   rpcgate_epmd_call_duration_seconds                histogram, on the call path
//   rpcgate_epmd_policy_valid, _pool_ports{class}, _pool_ports_held{class}, _leases,
//   _registrations, _connections                      gauges, read at scrape time
//   rpcgate_epmd_port_allocations_total, _port_allocation_failures_total{code},
//   _registration_inserts_total, _registration_deletes_total{cause},
//   _connections_refused_total{cause}                 counters, read at scrape time
//
// The call path (what `make bench` with --metrics measures): the EPM and broker interfaces are
// registered through attach_epm / attach_broker, whose Handler times the service's work with two
// steady_clock reads, then adds 1 to a prometheus::Counter found by array index (interface,
// opnum, status: each a small integer, the Counter resolved on the first call of that triple and
// kept) and observes the duration in a lock-free histogram. No string is built, no map searched,
// no lock taken per call.
//
// Label cardinality is bounded by construction: `interface` is "epm" or "broker" (the Handler
// that runs decides it, never a UUID from the wire; interface_label() folds any other UUID into
// "other"), `opnum` is the interface's opnums or "other" beyond them, `status` one of kStatuses
// ("other" for any status not listed). The MGMT interface (afa8bd80 v1.0) is answered inside
// runtime::Server and is not in calls_total.
//
// Status of a call: "fault" when a fault PDU answered it; otherwise the operation's status -
// for EPM the error_status_t that ends every ept_* response stub, for the broker the status of
// the BrokerEvent its call emitted - named as rpc/status.h names it ("ok" for 0), the Win32
// codes the broker returns as numbers ("5", "87", "1702", "1721").
//
// Threads: everything here runs on the io thread except Collect(), which the exporter's threads
// call: it posts the snapshot to the io thread and waits for it (metrics::kSnapshotTimeout).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include <asio/io_context.hpp>
#include <prometheus/counter.h>
#include <prometheus/family.h>

#include "epm/epm_service.h"
#include "epm/port_broker.h"
#include "metrics/metrics.h"
#include "rpc/pdu.h"
#include "runtime/broker_service.h"
#include "runtime/epm_host.h"
#include "runtime/server.h"

namespace rpcgate::epmd {

class EpmdMetrics;

// What a scrape reads of the daemon, taken on the io thread.
struct EpmdSnapshot {
  bool policy_valid = true;
  epm::BrokerStats broker;
  epm::EpmStats epm;
  runtime::ServerStats server;
  std::size_t leases = 0;             // connections holding a lease (HoldLease / AllocatePort)
  std::uint64_t sweep_removals = 0;   // entries the liveness sweep removed
  std::uint64_t budget_refusals = 0;  // AllocatePort answered 1721 over max_ports_per_uid
};

// Label indices of calls_total (see the file comment).
enum class CallInterface : std::uint8_t { kEpm, kBroker, kOther, kCount };
// "epm" for the EPM UUID (any version), "broker" for the broker's, kOther for any other UUID.
CallInterface interface_label(const rpc::SyntaxId& interface);
inline constexpr std::size_t kOpnumLabels = 10;  // 0..8 (EPM's nine), then "other"
// Status labels: "ok", "fault", the named ones, then "other".
inline constexpr std::size_t kStatusOk = 0;
inline constexpr std::size_t kStatusFault = 1;
std::size_t status_label(std::uint32_t status);  // for a response (not a fault)
std::string_view status_name(std::size_t label);
std::size_t status_label_count();

class EpmdMetrics {
 public:
  // Listens on `at` (metrics::Exporter::start; error: its sentence). `io`: the daemon's loop,
  // where scrape-time snapshots are taken.
  static std::expected<std::unique_ptr<EpmdMetrics>, std::string> start(const metrics::Endpoint& at,
                                                                        asio::io_context& io);
  ~EpmdMetrics();
  EpmdMetrics(const EpmdMetrics&) = delete;
  EpmdMetrics& operator=(const EpmdMetrics&) = delete;

  // From now on scrapes read these (io thread, before io.run()). Adds a connection-close hook
  // to `server` (a lease ends with its connection). All must outlive io.run().
  void serve(runtime::Server& server, const epm::EpmService& epm,
             const runtime::BrokerService& broker);

  // One call answered, `took` in the service (io thread).
  void call(CallInterface interface, std::uint16_t opnum, std::size_t status,
            std::chrono::nanoseconds took) {
    const std::size_t op = opnum < kOpnumLabels - 1 ? opnum : kOpnumLabels - 1;
    const std::size_t i =
        (static_cast<std::size_t>(interface) * kOpnumLabels + op) * kMaxStatusLabels + status;
    prometheus::Counter* c = calls_[i];
    if (c == nullptr) c = calls_[i] = &resolve(interface, op, status);
    c->Increment();
    latency_.observe(took);
  }
  // The broker's event sink (io thread): leases, per-uid refusals, and the status of the call in
  // progress.
  void broker_event(const runtime::BrokerEvent& e);
  // The liveness sweep removed an entry (io thread).
  void sweep_removed() { ++sweep_removals_; }

  // Status of the broker call in progress, set by broker_event() (attach_broker's Handler).
  std::optional<std::uint32_t>& broker_status() { return broker_status_; }

  const metrics::Exporter& exporter() const { return *exporter_; }

  static constexpr std::size_t kMaxStatusLabels = 16;

 private:
  class Collector;
  explicit EpmdMetrics(asio::io_context& io) : io_(io) {}
  prometheus::Counter& resolve(CallInterface interface, std::size_t opnum, std::size_t status);
  EpmdSnapshot snapshot() const;  // io thread

  asio::io_context& io_;
  runtime::Server* server_ = nullptr;
  const epm::EpmService* epm_ = nullptr;
  const runtime::BrokerService* broker_ = nullptr;
  std::unordered_set<std::uint64_t> leases_;
  std::uint64_t sweep_removals_ = 0;
  std::uint64_t budget_refusals_ = 0;
  std::optional<std::uint32_t> broker_status_;
  prometheus::Family<prometheus::Counter>* calls_family_ = nullptr;
  std::array<prometheus::Counter*,
             static_cast<std::size_t>(CallInterface::kCount) * kOpnumLabels * kMaxStatusLabels>
      calls_{};
  metrics::LatencyHistogram latency_{metrics::kFastCallBuckets};
  std::unique_ptr<metrics::Exporter> exporter_;  // last: stops serving before the rest goes
};

// runtime::attach_epm_service, with each call counted and timed when `metrics` is set (nullptr:
// exactly runtime::attach_epm_service).
bool attach_epm(runtime::Server& server, epm::EpmService& service,
                runtime::UnregisteredHook on_unregistered, EpmdMetrics* metrics);
// BrokerService::attach, with each call counted and timed when `metrics` is set. The broker's
// event sink must forward to metrics->broker_event() (the call's status comes from it).
bool attach_broker(runtime::Server& server, runtime::BrokerService& broker, EpmdMetrics* metrics);

}  // namespace rpcgate::epmd
