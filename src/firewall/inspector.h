// What the firewall's connection inspectors tell the relay that owns them: one Action type for
// the endpoint-mapper inspector (epm_inspector.h) and the pinhole inspector
// (pinhole_inspector.h), so the relay loop, its log records and its counters treat both alike.
//
// Both inspectors are an Inspector (below: sans-I/O, after nghttp2: bytes and `now` in, actions
// out) and make the same promises:
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
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "firewall/pinholes.h"
#include "rpc/association.h"
#include "rpc/connection.h"
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
  // kNote: nothing to carry out, only to log - a decision about a tower that opened nothing but
  // must be said (a referral refused and why, an answer not rewritten for NAT because it is
  // signed): `note_event` and `note_reason` are the record's event and reason code, `message`
  // its sentence, `pinholes` (if any) the pinhole it is about.
  enum class Kind : std::uint8_t { kForward, kOpen, kDrop, kAnswer, kNote };
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
  bool lookup = false;                 // kOpen: learned from an ept_lookup answer
  std::string_view note_event;         // kNote: "tower", "nat" (static strings)
  std::string_view note_reason;        // kNote: a kebab-case code (static string)
  std::string message;                 // kNote: one sentence
  bool warning = false;                // kNote: worth an administrator's attention
};

// What both inspectors share: the engine's observer role judging every PDU, the actions of the
// current call, and the sticky DROP. A subclass judges in on_verdict() (it sees only PDUs the
// observer allowed, or the observer's DROP) and calls forward() or drop().
class Inspector : rpc::ConnectionHandler {
 public:
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // Bytes seen in `direction` at `now`: the actions they lead to, in order. After a kDrop every
  // later call returns nothing.
  std::vector<Action> feed(rpc::Direction direction, std::span<const std::uint8_t> bytes,
                           rpc::TimePoint now);
  // The engine's deadlines (idle before / after bind, a PDU not complete in time): call at
  // next_expiry(); a deadline that has come drops the connection (kDrop kTimeout).
  std::vector<Action> on_expiry(rpc::TimePoint now);
  std::optional<rpc::TimePoint> next_expiry() const;
  bool dropped() const { return dropped_; }
  const rpc::Connection& connection() const { return engine_; }

 protected:
  Inspector(rpc::TimePoint now, rpc::ObserverLimits limits, rpc::ConnectionOptions options);
  ~Inspector() override = default;

  // Runs `step` on the engine unless dropped; an engine that closed meanwhile (every close of
  // the observer comes with a DROP verdict: this is the net under it) drops with `on_close`.
  template <typename Step>
  std::vector<Action> run(Step&& step, DropReason on_close) {
    out_.clear();
    if (!dropped_) {
      step(engine_);
      if (engine_.state() != rpc::Connection::State::kOpen)
        drop(on_close,
             on_close == DropReason::kProtocol ? engine_.close_info().error : std::error_code{});
    }
    return std::move(out_);
  }
  // The sticky DROP: one kDrop action, and the engine closed - it must not judge (or buffer)
  // anything more, or a later PDU could be allowed by an observer that knows nothing of it.
  void drop(DropReason why, std::error_code error = {},
            std::optional<rpc::SyntaxId> interface = std::nullopt,
            std::optional<std::uint16_t> opnum = std::nullopt);

  rpc::Connection engine_;
  std::vector<Action> out_;  // actions of the current call

 private:
  bool dropped_ = false;
};

}  // namespace rpcgate::firewall
