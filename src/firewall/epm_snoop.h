// What an endpoint-mapper answer may open in the firewall, decided from the ept_map request and
// response stubs the observer relayed (C706 App. O ept_map; [MS-RPCE] 2.2.1.2.5 and 3.1.3.5.3
// for the tower encodings). Sans-I/O and stateless: the caller (the firewall's EPM relay) holds
// the request stub of each outstanding call (the observer names which request a response answers)
// and installs the pinholes this returns before it releases the response to the client.
//
// Per returned tower (docs/evasions.md names the attacks these rules answer):
// * its interface floor must be the interface the client asked for (same UUID and major): an
//   endpoint mapper, or something posing as one, cannot open a port for another interface;
// * its protocol must be ncacn_ip_tcp (other protseqs are not what this firewall relays);
// * its address floor must be the server that answered, or 0.0.0.0 (Windows' "this host"):
//   a tower naming a third host (a referral) opens nothing;
// * its port must be non-zero;
// * at most `max_towers` towers are considered (an ept_map asks for a handful).
// Towers that do not decode are skipped, never guessed at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/bytes.h"
#include "firewall/pinholes.h"
#include "rpc/pdu.h"

namespace rpcgate::firewall {

struct MapPolicy {
  // Whether clients may reach `interface` at all (empty function: nothing is allowed).
  std::function<bool(const rpc::SyntaxId& interface)> allowed;
  std::size_t max_towers = 16;
};

enum class TowerVerdict : std::uint8_t {
  kOpen,            // open client -> server:port for the interface
  kUndecodable,     // the tower's octets do not decode
  kNull,            // a NULL tower pointer
  kOtherInterface,  // floor 1 names another interface than the one asked for
  kNotTcp,          // not ncacn_ip_tcp
  kOtherHost,       // the address floor names neither the server nor 0.0.0.0
  kNoPort,          // port 0 or not a number
  kOverLimit,       // beyond MapPolicy::max_towers
  kNotAllowed,      // the interface is not allowed: nothing is opened
};
std::string_view to_string(TowerVerdict v);

struct TowerDecision {
  TowerVerdict verdict = TowerVerdict::kUndecodable;
  std::uint16_t port = 0;  // kOpen
};

struct MapDecision {
  // The interface the client asked for (from the request's map tower), nullopt when the
  // request carried no usable tower (then nothing is opened).
  std::optional<rpc::SyntaxId> interface;
  bool allowed = false;               // MapPolicy::allowed(interface)
  std::uint32_t status = 0;           // the response's status word
  std::vector<TowerDecision> towers;  // one per returned tower, in order
  // The distinct ports of the kOpen towers, in order.
  std::vector<std::uint16_t> ports() const;
};

// The interface an ept_map request asks for (its map tower's floor 1), or nullopt when the stub
// does not decode or carries no usable tower. `max_towers` receives the request's max_towers.
std::optional<rpc::SyntaxId> requested_interface(std::span<const std::uint8_t> request_stub,
                                                 common::Endian endian,
                                                 std::uint32_t* max_towers = nullptr);

// Decides on one ept_map exchange. `server` is the address the client connected to (the
// endpoint mapper it asked). Errors (the caller drops the response and opens nothing): the
// request or response stub does not decode (ndr::Errc).
std::expected<MapDecision, std::error_code> decide_ept_map(
    std::span<const std::uint8_t> request_stub, common::Endian request_endian,
    std::span<const std::uint8_t> response_stub, common::Endian response_endian,
    const Address& server, const MapPolicy& policy);

}  // namespace rpcgate::firewall
