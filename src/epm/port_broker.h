// Who holds which dynamic port: bookkeeping on top of policy::PortAllocator, the job RPCSS does
// centrally on Windows ("ports allocated to a process remain allocated until that process
// dies": Microsoft Learn, "Configuring the Registry for Port Allocations and Selective
// Binding"; KB 154596). Sans-I/O: whether a port can really be bound is
// asked through the caller's BindProbe; no clock, no socket. One owner thread.
//
// Owners are opaque u64 ids chosen by the daemon (the registration session / process of a
// server); owner 0 is allowed and has no special meaning here.
//
// Failures come back as a BrokerFailure: the std::error_code the allocator reported
// (policy::Errc::kInvalidParameter = 87 or kOutOfResources = 1721) and a BrokerEvent with what
// an operator needs in the journal:
//   RPCGATE-5820  invalid port policy (87). Named after Netlogon event 5820, which is what
//                 Windows logs when the Rpc\Internet restriction is invalid ("The parameter is
//                 incorrect"); `offending` is the policy's own error sentence, e.g.
//                 `Ports entry 3 "70000": port outside 0-65535`.
//   RPCGATE-1721  pool exhausted (RPC_S_OUT_OF_RESOURCES); `offending` says which class and why
//                 (no free port, or every free port failed the bind probe).
// Both carry the policy source and the free/held counts of both classes at the time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "policy/allocator.h"
#include "policy/policy.h"

namespace rpcgate::epm {

inline constexpr std::string_view kEventInvalidPolicy = "RPCGATE-5820";
inline constexpr std::string_view kEventPortsExhausted = "RPCGATE-1721";

struct BrokerEvent {
  std::string_view event_id;  // kEventInvalidPolicy / kEventPortsExhausted (static storage)
  int code = 0;               // 87 / 1721
  std::string policy_source;  // file path or "embedded default"
  std::string offending;      // policy error message, or the exhaustion sentence
  policy::PortClass requested = policy::PortClass::kDefault;
  policy::PortClass resolved = policy::PortClass::kInternet;  // kDefault resolved by the policy
  std::uint64_t owner = 0;
  policy::PortAllocator::ClassStats internet;  // capacity / free / held at the failure
  policy::PortAllocator::ClassStats intranet;
  // One line for logs: `RPCGATE-1721 code=1721 source="..." class=internet owner=7
  // internet=0/100 free intranet=... : <offending>`.
  std::string to_string() const;
};

struct BrokerFailure {
  std::error_code code;  // policy::Errc::kInvalidParameter / kOutOfResources
  BrokerEvent event;
};

struct BrokerStats {
  policy::PortAllocator::Stats allocator;  // pools and allocator counters (current policy)
  std::size_t owners = 0;                  // owners holding at least one port
  std::size_t held = 0;                    // ports held through the broker
  std::uint64_t allocations = 0;
  std::uint64_t releases = 0;            // release() + release_owner() ports
  std::uint64_t failures_invalid = 0;    // 87
  std::uint64_t failures_exhausted = 0;  // 1721
  std::uint64_t reloads = 0;
  std::uint64_t dropped_on_reload = 0;  // held ports the new policy no longer contains
};

// What reload() did with the ports held under the previous policy.
struct ReloadReport {
  std::vector<std::uint16_t> kept;     // still in the new policy: held again, same owner
  std::vector<std::uint16_t> dropped;  // not in the new policy: forgotten (see reload())
};

class PortBroker {
 public:
  // `seed` as PortAllocator (reproducible choices for tests); kept for reloads.
  explicit PortBroker(const policy::Policy& policy,
                      std::optional<std::uint64_t> seed = std::nullopt);

  // A port of class `cls` for `owner` (PortAllocator::allocate: uniform random among the free
  // ports, `probe` asked for each candidate). Errors: 87 (policy invalid) / 1721 (exhausted or
  // every candidate failed the probe), with the event. O(1) plus the probes.
  std::expected<std::uint16_t, BrokerFailure> allocate(std::uint64_t owner, policy::PortClass cls,
                                                       const policy::BindProbe& probe = {});

  // Returns `port` to the pool if `owner` holds it; false (nothing changes) otherwise, so one
  // owner cannot release another's port.
  bool release(std::uint64_t owner, std::uint16_t port);

  // The owner died or unregistered: all its ports go back. Returns them (ascending).
  std::vector<std::uint16_t> release_owner(std::uint64_t owner);

  // Ports held by `owner`, ascending (empty if none).
  std::vector<std::uint16_t> holdings(std::uint64_t owner) const;
  // Owner of `port`, if held through the broker.
  std::optional<std::uint64_t> owner_of(std::uint16_t port) const;

  // Hot reload: a fresh allocator for `policy`; every port held now is held again under the
  // same owner if the new policy contains it (either class). Ports it no longer contains are
  // dropped from the books and listed in the report: their servers keep their sockets (the
  // broker cannot close them), but they are no longer counted and may be handed out again
  // once the new policy includes them. An invalid new policy drops every port (Windows: an
  // invalid configuration makes every dynamic allocation fail).
  ReloadReport reload(const policy::Policy& policy);

  BrokerStats stats() const;
  const policy::Policy& policy() const { return policy_; }

 private:
  BrokerEvent make_event(std::error_code code, policy::PortClass cls, std::uint64_t owner) const;

  policy::Policy policy_;
  std::optional<std::uint64_t> seed_;
  policy::PortAllocator allocator_;
  std::map<std::uint16_t, std::uint64_t> owner_of_;            // port -> owner
  std::map<std::uint64_t, std::set<std::uint16_t>> by_owner_;  // owner -> ports
  BrokerStats stats_;
};

}  // namespace rpcgate::epm
