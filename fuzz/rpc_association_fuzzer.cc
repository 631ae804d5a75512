// Two-direction record sequence through the connection engine (rpc/connection.h) in the server
// and observer roles (after Suricata's fuzz_applayerparserparse: records alternate directions).
//
// Input: records of [control u8][length u16 LE][length bytes]. control bit 0 = direction
// (0 client->server, 1 server->client); bits 1-3 = a time step taken before the record (0, or
// 2^(k-1)*10 ms) after which every deadline that came is acted on. Client bytes go to a
// server-role Connection and to an observer-role Connection; whatever the server sends back
// (bind_ack, bind_nak, faults, responses to every dispatched call) is fed to the observer as
// server->client. Server->client records from the input are hostile-server traffic for the
// observer only.
//
// Invariants (abort on violation): no crash; every call the server dispatches is on a context
// its association accepted (same abstract and transfer syntax); every closed engine has a
// reason, and a protocol close an error; a verdict is ALLOW or DROP with a reason, an allowed
// request has its target, and after a DROP the observer is closed; and as long as all
// server->client traffic came from the real server, the observer never holds or allows a context
// the server did not accept, and every response it lets through names the call it answers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "rpc/connection.h"
#include "rpc/pdu.h"

namespace {
using namespace rpcgate::rpc;
using namespace std::chrono_literals;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_closed(const Connection& c) {
  if (c.state() != Connection::State::kClosed) return;
  const auto& info = c.close_info();
  check(info.reason < CloseReason::kCount);
  if (info.reason == CloseReason::kProtocol) check(static_cast<bool>(info.error));
}

struct Harness : ConnectionHandler {
  struct Observing : ConnectionHandler {
    Harness* h = nullptr;
    void on_verdict(const VerdictView& v) override { h->verdict(v); }
  };

  static ServerConfig config() {
    ServerConfig c;
    c.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
    c.secondary_address = "135";
    c.new_assoc_group_id = 0x12345;
    c.max_contexts = 8;
    c.reassembly = ReassemblyLimits{8192, 4};
    c.supported_features = 0x3;
    return c;
  }
  static ConnectionOptions options() {
    ConnectionOptions o;
    o.idle_before_bind = 100ms;
    o.idle_after_bind = 1000ms;
    o.pdu = 200ms;
    o.write = 300ms;
    return o;
  }

  TimePoint now{std::chrono::seconds(1000)};
  Observing observing;
  Connection server{ServerRole{config()}, options(), *this, now};
  Connection observer{ObserverRole{ObserverLimits{8, 4, 32}}, options(), observing, now};
  bool injected = false;  // the input supplied server->client bytes

  Harness() { observing.h = this; }

  void on_call(ServerCall& call) override {
    const auto* s = server.server()->contexts().accepted(call.call.p_cont_id);
    check(s != nullptr && s->abstract_syntax == call.abstract_syntax &&
          s->transfer_syntax == call.transfer_syntax);
    const std::vector<std::uint8_t> stub(call.call.stub.size() % 100, 0xab);
    server.respond(call_ref(call), stub, now);
  }

  void verdict(const VerdictView& v) {
    check(v.verdict != nullptr);
    check(v.verdict->allowed() || v.verdict->reason);
    if (v.verdict->allowed() && v.verdict->request) {
      check(v.direction == Direction::kClientToServer);
      if (!injected) {
        const auto* s = server.server()->contexts().accepted(v.verdict->request->p_cont_id);
        check(s != nullptr && s->abstract_syntax == v.verdict->request->abstract_syntax &&
              s->transfer_syntax == v.verdict->request->transfer_syntax);
      }
    }
    if (v.answers != nullptr) {
      check(v.header != nullptr && v.answers->call_id == v.header->call_id);
    }
  }

  void check_tables() const {
    check_closed(server);
    check_closed(observer);
    if (observer.observer()->dropped()) check(observer.state() == Connection::State::kClosed);
    if (injected) return;
    for (const auto& c : observer.observer()->contexts().entries()) {
      if (c.state != ContextState::kAccepted) continue;
      const auto* s = server.server()->contexts().accepted(c.p_cont_id);
      check(s != nullptr && *s == c);
    }
  }

  // Server output goes to the observer as server->client traffic, as it is "sent".
  void pump() {
    for (auto out = server.next_output(); !out.bytes.empty(); out = server.next_output()) {
      check(out.bytes.size() <= server.output_bytes());
      observer.feed(Direction::kServerToClient, out.bytes, now);
      server.output_sent(out.bytes.size(), now);
    }
    check_tables();
  }

  void step(std::uint8_t control) {
    const unsigned k = (control >> 1) & 7;
    if (k == 0) return;
    now += std::chrono::milliseconds(10 << (k - 1));
    for (Connection* c : {&server, &observer}) {
      c->on_expiry(now);
      if (auto e = c->next_expiry()) check(*e > now || c->state() == Connection::State::kClosed);
    }
    pump();
  }

  void feed(Direction dir, std::span<const std::uint8_t> data) {
    if (dir == Direction::kClientToServer) {
      server.feed(dir, data, now);
      observer.feed(dir, data, now);
      pump();
    } else {
      injected = true;
      observer.feed(dir, data, now);
      check_tables();
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness h;
  std::span<const std::uint8_t> in(data, size);
  while (in.size() >= 3) {
    const auto dir = (in[0] & 1) ? Direction::kServerToClient : Direction::kClientToServer;
    const std::size_t len = std::min<std::size_t>(in[1] | (in[2] << 8), in.size() - 3);
    const auto record = in.subspan(3, len);
    h.step(in[0]);
    in = in.subspan(3 + len);
    h.feed(dir, record);
  }
  return 0;
}
