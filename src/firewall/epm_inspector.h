// The firewall's view of one client connection to an endpoint mapper (TCP 135), sans-I/O: the
// observer role of the connection engine (rpc/connection.h) judges every PDU of both
// directions, and this class adds what only the endpoint mapper's traffic means to a firewall:
//
// * only the endpoint mapper's interface may be bound on 135 (kOtherInterface otherwise: DCOM
//   activation and the rest are not relayed);
// * ept_insert, ept_delete and ept_mgmt_delete from the network are dropped (kRegistration):
//   registration is local only ([MS-RPCE] 3.1.3.5.3 and C706 App. O leave it to the host);
// * an ept_map request is remembered by call_id (its stub must fit one fragment, as every
//   client's does; a fragmented one is dropped: kFragmentedMap) until its response comes; the
//   response is decided with decide_ept_map (epm_snoop.h), and the pinholes it allows are
//   returned as an kOpen action BEFORE the kForward of the response itself - the relay installs
//   them in the kernel first, so the client can never race its own pinhole;
// * everything else the observer allows is forwarded as it came (kForward, whole PDUs); the
//   first DROP ends the connection (kDrop with the reason) and nothing after it is forwarded.
//
// Bounded: at most kMaxPendingMaps ept_map requests are remembered per connection (a client
// waits for a handful; one more is dropped: kTooManyMaps), each at most one fragment - so a
// connection holds at most 16 x 5840 bytes here, not the observer's 1024 outstanding calls' worth.
// Per client and in all, the relay that owns the inspectors bounds their number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "firewall/epm_snoop.h"
#include "firewall/pinholes.h"
#include "rpc/connection.h"

namespace rpcgate::firewall {

enum class EpmDrop : std::uint8_t {
  kProtocol,        // the observer's DROP (see `error`)
  kOtherInterface,  // a bind / alter_context offers an interface other than the EPM's
  kRegistration,    // ept_insert / ept_delete / ept_mgmt_delete from the network
  kFragmentedMap,   // an ept_map request in more than one fragment
  kBadMap,          // an ept_map request or response stub that does not decode
  kTooManyMaps,     // more than kMaxPendingMaps ept_map requests awaiting their response
};

inline constexpr std::size_t kMaxPendingMaps = 16;
std::string_view to_string(EpmDrop d);

struct EpmAction {
  enum class Kind : std::uint8_t { kForward, kOpen, kDrop };
  Kind kind = Kind::kForward;
  rpc::Direction direction = rpc::Direction::kClientToServer;
  std::vector<std::uint8_t> bytes;  // kForward: one whole PDU
  // kOpen: the pinholes to install (client . server . port) for `interface`.
  std::vector<PinholeKey> pinholes;
  std::optional<rpc::SyntaxId> interface;
  // kDrop: why.
  std::optional<EpmDrop> drop;
  std::error_code error;
};

class EpmInspector : rpc::ConnectionHandler {
 public:
  EpmInspector(Address client, Address server, MapPolicy policy, rpc::TimePoint now,
               rpc::ObserverLimits limits = {}, rpc::ConnectionOptions options = {});

  // Bytes seen in `direction` at `now`: the actions they lead to, in order. After a kDrop the
  // connection is over: every later call returns nothing.
  std::vector<EpmAction> feed(rpc::Direction direction, std::span<const std::uint8_t> bytes,
                              rpc::TimePoint now);
  bool dropped() const { return dropped_; }
  const rpc::Connection& connection() const { return engine_; }

 private:
  void on_verdict(const rpc::VerdictView& v) override;
  void drop(EpmDrop why, std::error_code error = {});

  Address client_;
  Address server_;
  MapPolicy policy_;
  rpc::Connection engine_;
  struct Pending {
    std::vector<std::uint8_t> stub;
    common::Endian endian = common::Endian::kLittle;
  };
  std::unordered_map<std::uint32_t, Pending> maps_;  // ept_map requests awaiting their response
  std::vector<EpmAction> out_;                       // actions of the current feed()
  bool dropped_ = false;
};

}  // namespace rpcgate::firewall
