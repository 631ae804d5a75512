// What the firewall's connection inspectors tell the relay that owns them: one Action type for
// the endpoint-mapper inspector (epm_inspector.h) and the pinhole inspector
// (pinhole_inspector.h), so the relay loop, its log records and its counters treat both alike.
//
// Both inspectors have the same shape (sans-I/O, after nghttp2: bytes and `now` in, actions out):
//   std::vector<Action> feed(rpc::Direction, std::span<const std::uint8_t>, rpc::TimePoint now);
//   std::vector<Action> on_expiry(rpc::TimePoint now);   // engine deadlines -> kDrop kTimeout
//   std::optional<rpc::TimePoint> next_expiry() const;
//   bool dropped() const;
// and the same promises:
// * the actions of one call come in the order the relay must carry them out: a kOpen before the
//   kForward of the response it was learned from (the pinhole is in the kernel before the client
//   can see the port), each kForward one whole PDU as it came;
// * the first kDrop is the last action of its batch and of the connection: every later call
//   returns nothing, and nothing buffered is ever forwarded after it (fail closed: a relay never
//   "stops inspecting" and passes the rest).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "firewall/pinholes.h"
#include "rpc/association.h"
#include "rpc/pdu.h"

namespace rpcgate::firewall {

// Why a connection was dropped (a reason code in every log record; counters are kept by it).
enum class DropReason : std::uint8_t {
  kProtocol,             // the observer's DROP (Action::error names the rpc::Errc)
  kEpmOtherInterface,    // a bind / alter_context on 135 offers an interface other than the EPM's
  kEpmRegistration,      // ept_insert / ept_delete / ept_mgmt_delete from the network
  kEpmFragmentedMap,     // an ept_map request or response in more than one fragment
  kEpmBadMap,            // an ept_map request or response stub that does not decode
  kEpmTooManyMaps,       // more than kMaxPendingMaps ept_map requests awaiting their response
  kInterfaceNotAllowed,  // a bind / alter_context item no rule allows (Action::interface)
  kOpnumNotAllowed,      // a request whose opnum its interface's rule does not allow
  kAuthLevel,            // a bind, alter_context or request below its rule's min_auth
  kTimeout,              // the engine's deadline (idle / PDU): the connection is closed
  kEpmSealed,            // an ept_map at packet privacy: its answer cannot be read, so nothing
                         // can be opened (authenticated EPM with encryption)
  kMapNotAllowed,        // kAnswer: ept_map for an interface no rule allows, answered "not
                         // registered" by the firewall (the server never sees it)
};
// Short kebab-case reason code for logs and counters, e.g. "interface-not-allowed".
std::string_view to_string(DropReason r);
// One human sentence.
std::string_view describe(DropReason r);

struct Action {
  // kAnswer: the inspector answered the client itself and did not forward the request (an
  // ept_map for an interface no rule allows: see EpmInspector); `bytes` go to the client,
  // `drop` says why, the connection goes on.
  enum class Kind : std::uint8_t { kForward, kOpen, kDrop, kAnswer };
  Kind kind = Kind::kForward;
  rpc::Direction direction = rpc::Direction::kClientToServer;
  std::vector<std::uint8_t> bytes;  // kForward: one whole PDU
  // kOpen: the pinholes to install (client . server . port) for `interface`.
  std::vector<PinholeKey> pinholes;
  // kOpen: the mapped interface; kDrop: the offending one, if any.
  std::optional<rpc::SyntaxId> interface;
  std::optional<std::uint16_t> opnum;  // kDrop of a request: its opnum
  std::string rule;                    // kOpen: the rule that allowed it (for logs)
  std::chrono::seconds timeout{0};     // kOpen: the pinhole lifetime the rule gives
  std::optional<DropReason> drop;      // kDrop: why
  std::error_code error;               // kDrop kProtocol: the observer's reason
};

}  // namespace rpcgate::firewall
