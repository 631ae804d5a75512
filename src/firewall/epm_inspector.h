// The firewall's view of one client connection to an endpoint mapper (TCP 135), sans-I/O: the
// observer role of the connection engine (rpc/connection.h) judges every PDU of both
// directions, and this class adds what only the endpoint mapper's traffic means to a firewall:
//
// * only the endpoint mapper's interface may be bound on 135 (kEpmOtherInterface otherwise: DCOM
//   activation and the rest are not relayed, unless FirewallConfig::dcom lets ISystemActivator
//   and IOXIDResolver through, as firewalls' DCOM modes do);
// * ept_insert, ept_delete and ept_mgmt_delete from the network are dropped (kEpmRegistration):
//   registration is local only ([MS-RPCE] 3.1.3.5.3 and C706 App. O leave it to the host);
// * an ept_map request is remembered by call_id (its stub must fit one fragment, as every
//   client's does; a fragmented one is dropped: kEpmFragmentedMap) until its response comes; the
//   response is decided with decide_ept_map (epm_snoop.h; the MapPolicy asks the RuleSet), and
//   the pinholes it allows are returned as a kOpen action (with the rule's name and pinhole
//   timeout) BEFORE the kForward of the response itself - the relay installs them in the kernel
//   first, so the client can never race its own pinhole;
// * an ept_map for an interface no rule allows (for this client and server) is not forwarded:
//   the inspector answers it itself with ept_s_not_registered and no towers (kAnswer,
//   kMapNotAllowed), as an endpoint mapper without that interface would. Why answer rather than
//   drop: the client fails at once with the error it would get from a server that lacks the
//   interface, instead of connecting to a port the kernel drops and waiting for a timeout; the
//   connection (and the client's other, allowed, maps on it) goes on; and the server never
//   sees what was asked. (An NDR64 EPM context is forwarded as before: it opens nothing.)
// * with FirewallConfig::lookup_pinholes, ept_lookup requests are remembered the same way (one
//   fragment each, kMaxPendingMaps in all, shared with ept_map), and each entry of the answer
//   whose tower passes an ept_map tower's checks (epm_snoop.h decide_ept_lookup) and whose
//   interface a rule allows for this client and server opens a pinhole (one kOpen per
//   interface, with its rule's name and RuleSet::lookup_timeout); an answer in several
//   fragments is forwarded and opens nothing (kNote). Without it, ept_lookup opens nothing;
// * referrals: a tower naming a third host opens client -> host:port only if the interface's
//   rule says referrals = true, the host is inside the configured [firewall] servers (never
//   with "any servers") and the rule applies to (client, host) too; a referral refused although
//   its rule asks for referrals is a kNote naming the host and why (a warning with "any
//   servers");
// * static NAT (FirewallConfig::nat): when the client asked a NAT public address, towers naming
//   the private address count as naming the server, and in an unsigned answer every
//   ncacn_ip_tcp tower naming the private address or 0.0.0.0 has its 4 address bytes rewritten
//   to the public one in place (the PDU keeps its length; pinholes are client . public . port,
//   what the client will connect to). A signed answer (auth trailer) is never rewritten - that
//   would break its verifier - and is judged as without NAT (kNote "not rewritten: signed");
// * everything else the observer allows is forwarded as it came (kForward, whole PDUs); the
//   first DROP ends the connection (kDrop with the reason) and nothing after it is forwarded.
//
// Bounded: at most kMaxPendingMaps ept_map requests are remembered per connection (a client
// waits for a handful; one more is dropped: kEpmTooManyMaps), each at most one fragment - so a
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
#include "firewall/inspector.h"
#include "firewall/pinholes.h"
#include "firewall/rules.h"
#include "rpc/connection.h"

namespace rpcgate::firewall {

inline constexpr std::size_t kMaxPendingMaps = 16;

class EpmInspector : public Inspector {
 public:
  // `client` connected to `server`:135. `rules` decide which interfaces may be mapped (an
  // interface is allowed when rules.find(client, server, interface) names a rule; that rule's
  // name and pinhole timeout go into the kOpen) and, with FirewallConfig::dcom, let
  // ISystemActivator and IOXIDResolver be bound on 135 besides the endpoint mapper. `rules` must
  // outlive the inspector (a reload builds a new RuleSet for new connections).
  EpmInspector(Address client, Address server, const RuleSet& rules, rpc::TimePoint now,
               rpc::ObserverLimits limits = {}, rpc::ConnectionOptions options = {});

  // feed(), on_expiry(), next_expiry(), dropped(), connection(): Inspector's (inspector.h).

 private:
  void on_verdict(const rpc::VerdictView& v) override;
  bool bindable(const rpc::SyntaxId& interface) const;
  TowerVerdict referral(const rpc::SyntaxId& interface, const Address& host) const;
  // The answer to a remembered ept_map / ept_lookup (`pdu` is the response PDU, `forward` the
  // kForward action that will carry it: rewritten in place for NAT). False: dropped.
  bool on_answer(const rpc::VerdictView& v, bool lookup, std::span<const std::uint8_t> request,
                 common::Endian request_endian, std::vector<std::uint8_t>& forward);
  void note(std::string_view event, std::string_view reason, std::string message,
            std::optional<PinholeKey> key = std::nullopt, bool warning = false);
  void answer_not_registered(const rpc::PduHeader& request, std::uint16_t p_cont_id,
                             std::uint32_t max_towers, const rpc::SyntaxId& asked);

  Address client_;
  Address server_;
  const RuleSet* rules_;
  MapPolicy policy_;
  std::optional<Address> nat_private_;  // server_ is a NAT public address: its private one
  struct Pending {
    std::vector<std::uint8_t> stub;
    common::Endian endian = common::Endian::kLittle;
    bool lookup = false;  // an ept_lookup (lookup pinholes on), else an ept_map
  };
  // ept_map (and ept_lookup) requests awaiting their response
  std::unordered_map<std::uint32_t, Pending> maps_;
};

}  // namespace rpcgate::firewall
