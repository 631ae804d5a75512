// The liveness sweep of persistent registrations (issue 11), as DCE's rpcd does (rpcd's
// `sweep_database` / `ping_server`: an entry whose server stops answering is removed after a few
// tries). Sans-I/O: this class decides what to probe and what to remove; the daemon
// (runtime/liveness_prober.h) does the connects and brings the results back. No sockets, clocks.
//
// What is swept: persistent entries (lease kPersistentOwner) of a uid (authority != kEpmdAuthority:
// epmd's own towers and the configured static entries are not) whose tower is
//   ncacn_ip_tcp  (floors 0x0b, 0x07 port, 0x09 IPv4): probed by a TCP connect to the registered
//                 address and port; the wildcard 0.0.0.0 is probed at 127.0.0.1 (a server
//                 listening on every address listens on loopback too). Port 0 is not swept.
//   ncalrpc       (floors 0x0c, 0x10 endpoint): probed by a connect to the Unix stream socket named
//                 by the endpoint when it is an absolute path ("/run/foo/rpc.sock"); other names
//                 (Windows' and Samba's LRPC names, kept in a directory rpcgate does not know) are
//                 not swept.
// Every other protocol sequence (ncacn_np, ncacn_http, ncadg_ip_udp, unknown ones) is not swept:
// nothing cheap and reliable says whether a UDP or pipe endpoint is alive. Leased entries need no
// sweep: their connection's close removes them.
//
// Entries sharing an endpoint are probed once per round (one ProbeTarget). A target's counter
// counts consecutive failed rounds: a success resets it, and when it reaches `failures` every
// swept entry on that target is removed (dead_entries). A target no longer registered is
// forgotten at the next begin_round. A round in which a target got no report (the prober ran out
// of time) changes nothing for it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "epm/endpoint_db.h"

namespace rpcgate::epm {

struct ProbeTarget {
  enum class Kind : std::uint8_t { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  Ipv4 address{};          // kTcp: the registered address, 0.0.0.0 replaced by 127.0.0.1
  std::uint16_t port = 0;  // kTcp
  std::string path;        // kUnix: absolute path
  // "127.0.0.1:5000" / "/run/foo.sock": for logs, and the target's identity.
  std::string to_string() const;
  friend auto operator<=>(const ProbeTarget&, const ProbeTarget&) = default;
};

// The endpoint to probe for `e`, or nullopt if `e` is not swept (see above).
std::optional<ProbeTarget> probe_target(const Entry& e);

class Sweeper {
 public:
  // `failures` >= 1 (0 is taken as 1): consecutive failed rounds before removal.
  explicit Sweeper(std::uint32_t failures = 3) : failures_(failures == 0 ? 1 : failures) {}

  // The distinct targets of the swept entries of `db` now, in a stable order; counters of
  // targets that no longer appear are dropped.
  std::vector<ProbeTarget> begin_round(const EndpointDb& db);
  // One probe's result for this round.
  void report(const ProbeTarget& target, bool alive);
  // The ids of swept entries whose target reached `failures` (the caller removes them, and logs
  // each); those targets' counters restart at 0.
  std::vector<std::uint64_t> dead_entries(const EndpointDb& db);

  std::uint32_t failures_of(const ProbeTarget& target) const;
  std::uint32_t failures() const { return failures_; }

 private:
  std::uint32_t failures_;
  std::map<ProbeTarget, std::uint32_t> failed_;  // consecutive failed rounds per target
};

}  // namespace rpcgate::epm
