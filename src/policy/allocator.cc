#include "policy/allocator.h"

#include <cassert>
#include <utility>

namespace rpcgate::policy {

namespace {
std::unexpected<std::error_code> fail(Errc e) {
  return std::unexpected(make_error_code(e));
}

std::mt19937_64 make_rng(std::optional<std::uint64_t> seed) {
  if (seed) return std::mt19937_64(*seed);
  std::random_device device;
  const std::uint64_t hi = device();
  return std::mt19937_64((hi << 32) ^ device());
}
}  // namespace

void PortAllocator::Pool::init(const PortSet& set) {
  members_ = set;
  free_ = set.ports();  // ascending: the initial order only matters for seeded reproducibility
  if (free_.empty()) return;
  // The index spans only lowest..highest member: 32 KiB for the default 49152-65535 class.
  base_ = free_.front();
  pos_.assign(static_cast<std::size_t>(free_.back()) - base_ + 1, 0);
  for (std::size_t i = 0; i < free_.size(); ++i)
    pos_[free_[i] - base_] = static_cast<std::uint16_t>(i);
}

void PortAllocator::Pool::remove(std::uint16_t port) {
  const std::size_t i = pos_[port - base_];
  assert(i < free_.size() && free_[i] == port);
  const std::uint16_t last = free_.back();
  free_[i] = last;
  pos_[last - base_] = static_cast<std::uint16_t>(i);
  free_.pop_back();
}

void PortAllocator::Pool::push(std::uint16_t port) {
  // A class has at most 65536 ports, so every index fits in 16 bits.
  pos_[port - base_] = static_cast<std::uint16_t>(free_.size());
  free_.push_back(port);
}

void PortAllocator::Pool::swap_at(std::size_t i, std::size_t j) {
  std::swap(free_[i], free_[j]);
  pos_[free_[i] - base_] = static_cast<std::uint16_t>(i);
  pos_[free_[j] - base_] = static_cast<std::uint16_t>(j);
}

PortAllocator::PortAllocator(const Policy& policy, std::optional<std::uint64_t> seed)
    : valid_(policy.valid), default_class_(policy.default_class), rng_(make_rng(seed)) {
  // An invalid policy's sets are meaningless (resolve() leaves them empty; a hand-built Policy
  // might not): treat both classes as empty so hold() cannot adopt ports either.
  if (valid_) {
    internet_.init(policy.internet);
    intranet_.init(policy.intranet);
  }
}

PortAllocator::Pool* PortAllocator::pool_for(PortClass cls) {
  return const_cast<Pool*>(std::as_const(*this).pool_for(cls));
}

const PortAllocator::Pool* PortAllocator::pool_for(PortClass cls) const {
  // An unresolved default_class (kDefault itself) falls back to Internet, Windows' default for
  // UseInternetPorts when nothing restricts it.
  if (cls == PortClass::kDefault) cls = default_class_;
  switch (cls) {
    case PortClass::kIntranet:
      return &intranet_;
    case PortClass::kInternet:
    case PortClass::kDefault:
      return &internet_;
  }
  return nullptr;
}

std::size_t PortAllocator::uniform_below(std::size_t bound) {
  assert(bound > 0);
  // Reject the lowest 2^64 mod bound values so that the remaining span is a multiple of bound
  // (OpenBSD arc4random_uniform). With bound <= 65536 a rejection has probability < 2^-48.
  const std::uint64_t b = bound;
  const std::uint64_t threshold = (0 - b) % b;
  for (;;) {
    const std::uint64_t r = rng_();
    if (r >= threshold) return static_cast<std::size_t>(r % b);
  }
}

void PortAllocator::take(std::uint16_t port) {
  held_.set(port);
  ++held_count_;
  if (internet_.members_.contains(port)) internet_.remove(port);
  if (intranet_.members_.contains(port)) intranet_.remove(port);
}

std::expected<std::uint16_t, std::error_code> PortAllocator::allocate(PortClass cls,
                                                                      const BindProbe& probe) {
  assert(!in_allocate_ && "a BindProbe must not call back into the allocator");
  Pool* pool = valid_ ? pool_for(cls) : nullptr;
  if (pool == nullptr) {
    ++counters_.invalid_failures;
    return fail(Errc::kInvalidParameter);
  }
  // Partial Fisher-Yates: free_[0, untried) holds the ports not yet tried in this call. Each draw
  // moves its pick to the end of that prefix, so a port the probe rejects is never drawn twice in
  // one call yet stays in the free pool, and each draw is O(1) however full the pool is.
  for (std::size_t untried = pool->free_.size(); untried > 0;) {
    const std::size_t pick = uniform_below(untried);
    --untried;
    pool->swap_at(pick, untried);
    const std::uint16_t port = pool->free_[untried];
    if (probe) {
      in_allocate_ = true;
      const bool bound = probe(port);
      in_allocate_ = false;
      if (!bound) {
        ++counters_.probe_failures;
        continue;
      }
    }
    take(port);
    ++counters_.allocations;
    return port;
  }
  ++counters_.exhaustion_failures;
  return fail(Errc::kOutOfResources);
}

std::expected<void, std::error_code> PortAllocator::hold(std::uint16_t port) {
  assert(!in_allocate_ && "a BindProbe must not call back into the allocator");
  if (!internet_.members_.contains(port) && !intranet_.members_.contains(port)) {
    return fail(Errc::kNotInPolicy);
  }
  if (held_.test(port)) return fail(Errc::kAlreadyHeld);
  take(port);
  ++counters_.holds;
  return {};
}

std::expected<void, std::error_code> PortAllocator::release(std::uint16_t port) {
  assert(!in_allocate_ && "a BindProbe must not call back into the allocator");
  if (!held_.test(port)) return fail(Errc::kNotHeld);
  held_.reset(port);
  --held_count_;
  if (internet_.members_.contains(port)) internet_.push(port);
  if (intranet_.members_.contains(port)) intranet_.push(port);
  ++counters_.releases;
  return {};
}

std::size_t PortAllocator::free_count(PortClass cls) const {
  const Pool* pool = pool_for(cls);
  return pool != nullptr ? pool->free_.size() : 0;
}

std::size_t PortAllocator::capacity(PortClass cls) const {
  const Pool* pool = pool_for(cls);
  return pool != nullptr ? pool->members_.count() : 0;
}

PortAllocator::Stats PortAllocator::stats() const {
  Stats s = counters_;
  const auto fill = [](const Pool& pool, ClassStats& out) {
    out.capacity = pool.members_.count();
    out.free = pool.free_.size();
    out.held = out.capacity - out.free;
  };
  fill(internet_, s.internet);
  fill(intranet_, s.intranet);
  s.held = held_count_;
  return s;
}

}  // namespace rpcgate::policy
