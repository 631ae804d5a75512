// Where time comes from. The protocol engines never read a clock (sans-I/O: rpc::Connection takes
// `now` as an argument); the runtime asks a Clock, so tests can replace real time with a
// ManualClock and run every timeout in simulated milliseconds (no sleeps, no timer races under
// sanitizers). After nghttp2/ngtcp2 (the caller passes the time) and Envoy's simulated time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

namespace rpcgate::common {

using SteadyTime = std::chrono::steady_clock::time_point;

// Monotonic time for deadlines. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  // The process-wide instance (what a runtime uses when it was given no Clock).
  static SteadyClock& instance();
};

// Time that moves only when a test moves it. now() starts at an arbitrary fixed point (not the
// epoch of steady_clock, so "time_point{}" never means "now"). advance() runs the subscribers
// (in subscription order, on the advancing thread, without the clock's lock held) so that a
// runtime waiting for a deadline can look at its timers again; a runtime on another thread
// posts the work to its own thread from the subscriber.
class ManualClock final : public Clock {
 public:
  ManualClock() : now_ns_(kStart) {}
  SteadyTime now() const override {
    return SteadyTime(std::chrono::nanoseconds(now_ns_.load(std::memory_order_acquire)));
  }
  // Moves time forward by `d` (>= 0; a negative step is ignored: the clock is monotonic).
  void advance(std::chrono::nanoseconds d);

  // Runs `f` after every advance(). Returns an id for unsubscribe(). `f` must not call
  // subscribe()/unsubscribe().
  std::size_t subscribe(std::function<void()> f);
  void unsubscribe(std::size_t id);

 private:
  static constexpr std::int64_t kStart = 1'000'000'000'000;  // 1000 s after the zero point
  std::atomic<std::int64_t> now_ns_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::size_t, std::function<void()>>> subscribers_;
  std::size_t next_id_ = 1;
};

}  // namespace rpcgate::common
