#include "runtime/liveness_prober.h"

#include <algorithm>

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

namespace rpcgate::runtime {

// One connect and its deadline; whichever ends first reports, once.
struct LivenessProber::Probe {
  template <typename Socket>
  static void run(LivenessProber& self, Socket socket, typename Socket::endpoint_type endpoint,
                  epm::ProbeTarget target) {
    struct State {
      Socket socket;
      asio::steady_timer deadline;
      epm::ProbeTarget target;
      bool done = false;
    };
    auto st = std::make_shared<State>(
        State{std::move(socket), asio::steady_timer(self.io_), std::move(target)});
    std::weak_ptr<bool> guard = self.alive_;
    LivenessProber* p = &self;
    auto report = [st, guard, p](bool alive) {
      if (st->done) return;
      st->done = true;
      std::error_code ignored;
      st->deadline.cancel();
      st->socket.close(ignored);
      if (guard.expired()) return;
      p->finished(st->target, alive);
    };
    st->deadline.expires_after(
        std::min<std::chrono::milliseconds>(self.options_.probe_timeout, self.options_.interval));
    st->deadline.async_wait([report](const std::error_code& ec) {
      if (!ec) report(false);
    });
    st->socket.async_connect(endpoint,
                             [report](const std::error_code& ec) mutable { report(!ec); });
  }
};

LivenessProber::LivenessProber(asio::io_context& io, epm::EpmService& epm, SweepOptions options)
    : io_(io), epm_(epm), options_(options), sweeper_(options.failures), timer_(io) {
  if (options_.max_in_flight == 0) options_.max_in_flight = 1;
  if (options_.interval.count() <= 0) options_.interval = std::chrono::milliseconds(1);
}

LivenessProber::~LivenessProber() {
  alive_.reset();
}

void LivenessProber::start() {
  stopped_ = false;
  arm();
}

void LivenessProber::stop() {
  stopped_ = true;
  timer_.cancel();
}

void LivenessProber::arm() {
  timer_.expires_after(options_.interval);
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;
    if (running_) {
      ++stats_.rounds_skipped;
    } else {
      begin_round();
    }
    arm();
  });
}

void LivenessProber::begin_round() {
  targets_ = sweeper_.begin_round(epm_.db());
  next_ = 0;
  in_flight_ = 0;
  ++stats_.rounds;
  if (targets_.empty()) return;
  running_ = true;
  launch_more();
}

void LivenessProber::launch_more() {
  while (in_flight_ < options_.max_in_flight && next_ < targets_.size()) {
    const auto& t = targets_[next_++];
    ++in_flight_;
    ++stats_.probes;
    std::error_code ec;
    if (t.kind == epm::ProbeTarget::Kind::kTcp) {
      asio::ip::tcp::socket s(io_);
      s.open(asio::ip::tcp::v4(), ec);
      if (!ec) {
        const asio::ip::tcp::endpoint ep(asio::ip::address_v4(t.address), t.port);
        Probe::run(*this, std::move(s), ep, t);
        stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, in_flight_);
        continue;
      }
    } else {
      asio::local::stream_protocol::socket s(io_);
      s.open(asio::local::stream_protocol(), ec);
      if (!ec) {
        const asio::local::stream_protocol::endpoint ep(t.path);
        Probe::run(*this, std::move(s), ep, t);
        stats_.max_in_flight_seen = std::max(stats_.max_in_flight_seen, in_flight_);
        continue;
      }
    }
    // No socket (out of descriptors): no verdict on the target this round.
    --in_flight_;
  }
  if (in_flight_ == 0 && next_ >= targets_.size()) end_round();
}

void LivenessProber::finished(const epm::ProbeTarget& target, bool alive) {
  if (!alive) ++stats_.probe_failures;
  sweeper_.report(target, alive);
  --in_flight_;
  launch_more();
}

void LivenessProber::end_round() {
  running_ = false;
  for (const auto id : sweeper_.dead_entries(epm_.db())) {
    const auto it = epm_.db().entries().find(id);
    if (it == epm_.db().entries().end()) continue;
    if (auto target = epm::probe_target(it->second); target && removed_)
      removed_(it->second, *target, sweeper_.failures());
    (void)epm_.db().remove(id);
    ++stats_.removed;
  }
}

}  // namespace rpcgate::runtime
