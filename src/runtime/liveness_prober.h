// The I/O half of the liveness sweep (epm/liveness.h has the rules): every `interval`, one round
// of non-blocking connects to the targets epm::Sweeper names, at most `max_in_flight` at once,
// each bounded by `probe_timeout`, on the daemon's io_context (never blocking it). A connect
// that completes is "alive" (the socket is closed at once, nothing is sent: a server sees an
// empty connection, as from DCE's rpcd ping or a port scan); refused, unreachable or timed out is
// "dead". After the round, entries whose target failed `failures` consecutive rounds are removed
// from the EpmService's map and reported to on_removed() (the daemon logs each at info).
// A round still running when the next tick comes is not restarted (the tick is skipped), so a
// round's probes are bounded by max_in_flight whatever the interval.
//
// Defaults: interval 60 s (DCE rpcd sweeps every 60 s... order of a minute), failures 3,
// probe_timeout 2 s (capped at the interval), max_in_flight 32.
// Thread model: the io_context's thread. The prober must outlive its pending handlers (stop()
// and then destroy it before the io_context, or let io.run() end first).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "epm/epm_service.h"
#include "epm/liveness.h"

namespace rpcgate::runtime {

struct SweepOptions {
  std::chrono::milliseconds interval{60'000};
  std::uint32_t failures = 3;
  std::chrono::milliseconds probe_timeout{2'000};
  std::size_t max_in_flight = 32;
};

struct SweepStats {
  std::uint64_t rounds = 0;
  std::uint64_t rounds_skipped = 0;  // a tick while the previous round still ran
  std::uint64_t probes = 0;
  std::uint64_t probe_failures = 0;
  std::uint64_t removed = 0;
  std::size_t max_in_flight_seen = 0;  // the most probes open at once (<= max_in_flight)
};

class LivenessProber {
 public:
  LivenessProber(asio::io_context& io, epm::EpmService& epm, SweepOptions options);
  ~LivenessProber();
  LivenessProber(const LivenessProber&) = delete;
  LivenessProber& operator=(const LivenessProber&) = delete;

  void start();
  void stop();
  // Called for each entry the sweep removes, just before it goes (`failures` = the count that
  // removed it). Must not throw.
  void on_removed(
      std::function<void(const epm::Entry&, const epm::ProbeTarget&, std::uint32_t)> fn) {
    removed_ = std::move(fn);
  }
  const SweepStats& stats() const { return stats_; }

 private:
  struct Probe;
  void arm();
  void begin_round();
  void launch_more();
  void finished(const epm::ProbeTarget& target, bool alive);
  void end_round();

  asio::io_context& io_;
  epm::EpmService& epm_;
  SweepOptions options_;
  epm::Sweeper sweeper_;
  asio::steady_timer timer_;
  std::vector<epm::ProbeTarget> targets_;
  std::size_t next_ = 0;
  std::size_t in_flight_ = 0;
  bool running_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards late handlers
  std::function<void(const epm::Entry&, const epm::ProbeTarget&, std::uint32_t)> removed_;
  SweepStats stats_;
};

}  // namespace rpcgate::runtime
