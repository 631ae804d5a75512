// The dynamic port allocator: hands out ports of the policy's Internet / intranet classes, the job
// Windows' RPCSS does centrally (localepmp AllocateReservedIPPort, in hsc.fr's "RPC interfaces
// supported by the rpcss service"; KB 154596 "a particular random port in the range").
//
// Choice within a class: uniformly random among the free ports. Windows documents only "random";
// Samba hands out the lowest free port first and DCE picks a random start and then goes
// round-robin. Both of those make the next endpoint predictable from the previous one, and Samba's
// cursor keeps colliding with the same busy ports; uniform random gives neither a pattern to an
// observer nor a hot spot. With a seed the sequence is reproducible (tests, fuzzing, `--seed`
// debugging).
//
// Sans-I/O: the allocator never opens a socket. Whether a port can really be bound (another
// process may hold it) is asked through the caller's BindProbe, and a port that fails the probe
// stays free in the pool: it is only skipped for that call.
//
// Not thread-safe: one allocator is owned by one thread (the daemon's event loop). A BindProbe must
// not call back into the allocator.
//
// Held state is per port, not per class: in the unrestricted policy both classes are the same
// dynamic range, so a port taken for an Internet request is gone from the intranet pool too, and a
// release returns it to every class it belongs to.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <random>
#include <system_error>
#include <vector>

#include "policy/policy.h"
#include "policy/port_set.h"

namespace rpcgate::policy {

// Tries to bind `port` for real; true = bound (the port is handed out), false = in use elsewhere
// (skip it). An empty probe accepts every port.
using BindProbe = std::function<bool(std::uint16_t port)>;

class PortAllocator {
 public:
  struct ClassStats {
    std::size_t capacity = 0;  // ports in the class set (0 when the policy is invalid)
    std::size_t free = 0;      // of those, not held
    std::size_t held = 0;      // of those, held (capacity - free)
  };
  // A snapshot for metrics and `--json`. Counters only grow over the allocator's lifetime.
  struct Stats {
    ClassStats internet;
    ClassStats intranet;
    std::size_t held = 0;                   // distinct held ports (classes may overlap)
    std::uint64_t allocations = 0;          // successful allocate()
    std::uint64_t holds = 0;                // successful hold()
    std::uint64_t releases = 0;             // successful release()
    std::uint64_t exhaustion_failures = 0;  // allocate() => kOutOfResources
    std::uint64_t invalid_failures = 0;     // allocate() => kInvalidParameter
    std::uint64_t probe_failures = 0;       // BindProbe calls that returned false
  };

  // Copies what it needs from `policy` (validity, default class, the two class sets); the policy
  // may be destroyed afterwards. An invalid policy (valid == false) yields empty classes whatever
  // its sets hold. `seed` given: a std::mt19937_64 seeded with it, so the same sequence of calls
  // (and probe answers) yields the same ports on every platform. No seed: std::random_device.
  // Cost: O(65536) time (one scan of each class bitmap). Memory per class: an 8 KiB bitmap, 2 bytes
  // per port for the free list and 2 bytes per port of the class's span (lowest to highest port)
  // for the position index, plus one shared 8 KiB held bitmap: about 150 KiB for the default
  // (unrestricted 49152-65535, both classes) policy, at most about 540 KiB (two 0-65535 classes).
  // The free lists never grow past their initial capacity, so release() never reallocates.
  explicit PortAllocator(const Policy& policy, std::optional<std::uint64_t> seed = std::nullopt);

  // Picks a uniformly random free port of `cls` (kDefault follows the policy's default class) and
  // marks it held. With a probe: each candidate is probed, at most once per call; a rejected port
  // stays free and another untried free port is drawn, until one is accepted or none is left.
  // Errors:
  //   kInvalidParameter (87)   the policy is invalid (for every class), or `cls` is not a
  //                            PortClass value; the probe is not called.
  //   kOutOfResources (1721)   no free port in the class, or every free port failed the probe;
  //                            nothing is held then.
  // Cost: O(1) plus O(1) per rejected probe, whatever the fullness of the pool.
  std::expected<std::uint16_t, std::error_code> allocate(PortClass cls,
                                                         const BindProbe& probe = {});

  // Marks a specific port held without probing, e.g. re-adopting an endpoint after a restart.
  // Errors: kNotInPolicy (the port is in neither class set, always so for an invalid policy),
  // kAlreadyHeld. O(1).
  std::expected<void, std::error_code> hold(std::uint16_t port);

  // Returns a held port to the free pool of every class it belongs to. Error: kNotHeld. O(1).
  std::expected<void, std::error_code> release(std::uint16_t port);

  bool is_held(std::uint16_t port) const { return held_.test(port); }
  std::size_t held_count() const { return held_count_; }
  // kDefault follows the default class; a value outside PortClass counts as an empty class.
  std::size_t free_count(PortClass cls) const;
  std::size_t capacity(PortClass cls) const;
  bool policy_valid() const { return valid_; }
  Stats stats() const;

 private:
  // The free ports of one class: `free_` dense and unordered, `pos_[p - base_]` the index of p in
  // `free_` while p is a free member. Membership in `free_` is implied by (member && !held), so
  // `pos_` needs no sentinel and each update is a swap-remove or a push_back. `pos_` spans the
  // lowest to the highest member only.
  struct Pool {
    PortSet members_;
    std::vector<std::uint16_t> free_;
    std::vector<std::uint16_t> pos_;
    std::uint16_t base_ = 0;

    void init(const PortSet& set);
    void remove(std::uint16_t port);
    void push(std::uint16_t port);
    void swap_at(std::size_t i, std::size_t j);
  };

  Pool* pool_for(PortClass cls);
  const Pool* pool_for(PortClass cls) const;
  // Uniform in [0, bound), bound > 0, by rejection: unlike std::uniform_int_distribution, whose
  // algorithm differs between libstdc++ and libc++, this keeps seeded runs identical everywhere.
  std::size_t uniform_below(std::size_t bound);
  void take(std::uint16_t port);  // mark held, remove from every pool

  bool valid_ = true;
  PortClass default_class_ = PortClass::kInternet;
  Pool internet_;
  Pool intranet_;
  std::bitset<65536> held_;
  std::size_t held_count_ = 0;
  std::mt19937_64 rng_;
  Stats counters_;  // only the counter fields are maintained; stats() fills the rest
  bool in_allocate_ = false;
};

}  // namespace rpcgate::policy
