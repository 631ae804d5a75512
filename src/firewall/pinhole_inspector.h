// The firewall's view of one connection through a pinhole (client -> server:port, opened by an
// ept_map answer), sans-I/O: the observer role of the connection engine (rpc/connection.h)
// judges every PDU of both directions - framing, the bind / alter_context / bind_ack rules, the
// contexts the server accepted, fragment rules, byte order, call caps (association.h,
// AssociationObserver; docs/evasions.md A, B and most of C) - and this class adds what the rules
// say about this client and this server (docs/evasions.md C and E):
//
// * every item of the bind and of every alter_context must name an interface some rule allows
//   for (client, server): rules.find(client, server, abstract_syntax) != nullptr, version rules
//   included. One item that is not allowed drops the whole connection (kInterfaceNotAllowed,
//   with the offending interface): a bind mixing allowed and blocked interfaces (C1, C2), an
//   alter_context adding a blocked one (C6, E4), an interface other than the one learned on a
//   port Windows shares between many (E2, E6), a version outside the rule (C13). Windows' own
//   bind - NDR, NDR64 and a bind-time feature negotiation item, all for the SAME interface, with
//   PFC_SUPPORT_HEADER_SIGN and an NTLM / Kerberos trailer, then AUTH3 - passes (C14): every
//   item names the allowed interface.
// * a request's opnum must be one its context's rule allows (Rule::opnums): decided on the FIRST
//   fragment (kOpnumNotAllowed, with the interface and opnum; E5); the observer makes every later
//   fragment of the call agree with it (same p_cont_id, opnum and object).
// * authentication (Rule::min_auth, from the sec trailer the PDU decoder exposes,
//   rpc::AuthTrailer::auth_level; [MS-RPCE] 2.2.2.11; a level above privacy counts as none): an
//   item whose rule asks for more than "none" needs the bind / alter_context to carry a trailer
//   at that level or above - an alter_context without a trailer is judged at the level the bind
//   established - and every request fragment on such a context needs a trailer at that level or
//   above, except that at min_auth "connect" a request may carry none (connect-level requests
//   carry no verifier) once the bind authenticated at connect or above (kAuthLevel).
// * requests on contexts never accepted (C10, C12), before the bind_ack (A2), without a bind or
//   bytes that are not DCE/RPC (E3) are the observer's DROP (kProtocol, Action::error says why).
//
// Output as inspector.h promises: every PDU allowed is one kForward (whole, as it came); the
// first DROP ends the connection and nothing after it is forwarded. The engine's deadlines (idle,
// a PDU not complete in time) come out of on_expiry() as kDrop kTimeout.
//
// Cost: a bind / alter_context is decoded once more here (to read its items and trailer); a
// request is decoded again only when its rule has a min_auth and it carries a trailer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "firewall/inspector.h"
#include "firewall/pinholes.h"
#include "firewall/rules.h"
#include "rpc/connection.h"

namespace rpcgate::firewall {

class PinholeInspector : public Inspector {
 public:
  // `client` connected to `server`:`port` through a pinhole. `rules` must outlive the inspector
  // (a reload builds a new RuleSet for new connections).
  PinholeInspector(Address client, Address server, std::uint16_t port, const RuleSet& rules,
                   rpc::TimePoint now, rpc::ObserverLimits limits = {},
                   rpc::ConnectionOptions options = {});

  // feed(), on_expiry(), next_expiry(), dropped(), connection(): Inspector's (inspector.h):
  // kForward per PDU, or a final kDrop.

  // The zero-copy path (rpc::Connection::feed_head): the head of one request or response, whose
  // remaining frag_length - head.size() bytes the relay passes on unseen if the answer is a
  // kForward (of the head). Only when body_needed() is false for this PDU.
  std::vector<Action> feed_head(rpc::Direction direction, std::span<const std::uint8_t> head,
                                rpc::TimePoint now);
  // Whether a PDU with this common header must be read whole (feed()) rather than as a head:
  // every type but request and response, and requests when some rule requires a minimum
  // authentication level (the level is in the sec trailer, at the end of the PDU).
  bool body_needed(std::span<const std::uint8_t, rpc::kCommonHeaderSize> header) const;

  // Forwarded PDUs are appended to these buffers (towards the server / the client) instead of
  // being copied into each kForward action, which then carries no bytes: one copy and one
  // allocation less per PDU on a bulk connection. The buffers must outlive the inspector.
  void set_sinks(std::vector<std::uint8_t>* to_server, std::vector<std::uint8_t>* to_client) {
    to_server_ = to_server;
    to_client_ = to_client;
  }

  PinholeKey key() const { return PinholeKey{client_, server_, port_}; }

 private:
  void on_verdict(const rpc::VerdictView& v) override;
  // Returns false when it dropped.
  bool offer(const rpc::VerdictView& v);
  bool request(const rpc::VerdictView& v);
  const Rule* rule_for(const rpc::SyntaxId& interface) const;

  Address client_;
  Address server_;
  std::uint16_t port_;
  const RuleSet* rules_;
  // The auth_level of the bind's sec trailer (0: none), the level an alter_context without a
  // trailer is judged at.
  std::uint8_t bind_auth_level_ = 0;
  bool any_min_auth_ = false;  // some rule has min_auth above none
  std::vector<std::uint8_t>* to_server_ = nullptr;
  std::vector<std::uint8_t>* to_client_ = nullptr;
};

}  // namespace rpcgate::firewall
