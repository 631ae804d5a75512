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
// * its address floor must be the server that answered, or 0.0.0.0 (Windows' "this host"), or,
//   behind static NAT, the server's private address (MapPolicy::nat_private); a tower naming a
//   third host (a referral) opens nothing unless MapPolicy::referral says it may (then the
//   pinhole goes to that host: kReferral);
// * its port must be non-zero;
// * at most `max_towers` towers are considered (an ept_map asks for a handful).
// Towers that do not decode are skipped, never guessed at.
//
// ept_lookup answers (decide_ept_lookup) are judged entry by entry with the same checks, the
// entry's own interface floor standing for "the interface asked", and only when
// MapPolicy::allowed allows that interface. A NULL or undecodable tower is skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "firewall/pinholes.h"
#include "rpc/pdu.h"

namespace rpcgate::firewall {

enum class TowerVerdict : std::uint8_t;

struct MapPolicy {
  // Whether clients may reach `interface` at all (empty function: nothing is allowed).
  std::function<bool(const rpc::SyntaxId& interface)> allowed;
  std::size_t max_towers = 16;
  // Static NAT: the server the client asked is a public address and this is the private one
  // behind it; towers naming it count as naming the server (nullopt: no NAT).
  std::optional<Address> nat_private;
  // A tower naming a third `host` for `interface`: kReferral (open client -> host:port) or the
  // kReferral* verdict that says why not. Empty function: kOtherHost, nothing opens.
  std::function<TowerVerdict(const rpc::SyntaxId& interface, const Address& host)> referral;
};

enum class TowerVerdict : std::uint8_t {
  kOpen,                    // open client -> server:port for the interface
  kUndecodable,             // the tower's octets do not decode
  kNull,                    // a NULL tower pointer
  kOtherInterface,          // floor 1 names another interface than the one asked for
  kNotTcp,                  // not ncacn_ip_tcp
  kOtherHost,               // the address floor names neither the server nor 0.0.0.0
  kNoPort,                  // port 0 or not a number
  kOverLimit,               // beyond MapPolicy::max_towers
  kNotAllowed,              // the interface is not allowed: nothing is opened
  kReferral,                // a third host, and a referral is allowed: open client -> host:port
  kReferralNotAllowed,      // a third host; the interface's rule does not say referrals = true
  kReferralAnyServers,      // a third host; [firewall] servers is "any": referrals never open
  kReferralOutsideServers,  // a third host outside [firewall] servers
  kReferralRuleMismatch,    // a third host the interface's rule does not apply to
};
std::string_view to_string(TowerVerdict v);

// Whether the verdict opens a pinhole (kOpen, kReferral).
bool opens(TowerVerdict v);

struct TowerDecision {
  TowerVerdict verdict = TowerVerdict::kUndecodable;
  std::uint16_t port = 0;  // kOpen, kReferral
  // kOpen: the server asked (what the client connects to); kReferral and the kReferral*
  // verdicts: the host the tower names.
  Address host{};
  // The tower's interface floor (decide_ept_lookup: whenever the tower decodes).
  std::optional<rpc::SyntaxId> interface;
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
  // The distinct (host, port) of the towers that open (kOpen and kReferral), in order.
  std::vector<std::pair<Address, std::uint16_t>> targets() const;
};

struct LookupDecision {
  std::uint32_t status = 0;
  std::vector<TowerDecision> entries;  // one per returned entry, in order
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

// Decides on one ept_lookup answer: each entry's tower as an ept_map tower for the entry's own
// interface (which MapPolicy::allowed must allow; kNotAllowed otherwise), the first
// MapPolicy::max_towers entries only (kOverLimit after them). Errors: the response stub does not
// decode (ndr::Errc).
std::expected<LookupDecision, std::error_code> decide_ept_lookup(
    std::span<const std::uint8_t> response_stub, common::Endian response_endian,
    const Address& server, const MapPolicy& policy);

// Static NAT: the stub offsets of the 4 IPv4 address octets (the rhs of the tower's 0x09 floor)
// of every ncacn_ip_tcp tower in an ept_map (lookup = false) or ept_lookup (lookup = true)
// response stub whose address is `private_address` or 0.0.0.0, in wire order, each once (an
// aliased tower is on the wire once). The caller overwrites them with the public address: the
// answer keeps its length and every other byte. Towers that do not decode are left alone.
// Errors: the stub does not decode (ndr::Errc).
std::expected<std::vector<std::size_t>, std::error_code> nat_address_offsets(
    std::span<const std::uint8_t> response_stub, common::Endian endian, bool lookup,
    const Address& private_address);

}  // namespace rpcgate::firewall
