#include "common/clock.h"

#include <algorithm>

namespace rpcgate::common {

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

void ManualClock::advance(std::chrono::nanoseconds d) {
  if (d.count() > 0) now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  std::vector<std::function<void()>> run;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, f] : subscribers_)
      run.push_back(f);
  }
  for (auto& f : run)
    f();
}

std::size_t ManualClock::subscribe(std::function<void()> f) {
  std::lock_guard lock(mu_);
  subscribers_.emplace_back(next_id_, std::move(f));
  return next_id_++;
}

void ManualClock::unsubscribe(std::size_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(subscribers_, [id](const auto& s) { return s.first == id; });
}

}  // namespace rpcgate::common
