// Two-direction operation sequence through Framer -> decode_pdu -> ServerAssociation and
// AssociationObserver (after Suricata's fuzz_applayerparserparse: records alternate directions).
//
// Input: records of [control u8][length u16 LE][length bytes]. control bit 0 = direction
// (0 client->server, 1 server->client). Client bytes go to the ServerAssociation and the
// observer; whatever the server sends back (bind_ack, bind_nak, faults, responses built with
// build_response) is fed to the observer as server->client. Server->client records from the input
// are hostile-server traffic for the observer only.
//
// Invariants (abort on violation): no crash; every Decision and Verdict is well formed (kSend has
// bytes, kDispatch a call, kCloseConnection a reason, DROP a reason, an allowed request its
// target); both are sticky after close/drop; and as long as all server->client traffic came from
// the real ServerAssociation, the observer never holds or allows a context the server did not
// accept (same abstract and transfer syntax).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "rpc/association.h"
#include "rpc/framer.h"
#include "rpc/pdu.h"

namespace {
using namespace rpcgate::rpc;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Harness {
  ServerAssociation server;
  AssociationObserver observer;
  Framer client_framer;
  Framer server_framer;
  bool injected = false;  // the input supplied server->client bytes
  bool server_closed = false;

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

  Harness()
      : server(config()),
        observer(ObserverLimits{8, 4, 32}),
        client_framer(kMaxFragLength),
        server_framer(kMaxFragLength) {}

  void check_tables() const {
    if (injected) return;
    for (const auto& c : observer.contexts().entries()) {
      if (c.state != ContextState::kAccepted) continue;
      const auto* s = server.contexts().accepted(c.p_cont_id);
      check(s != nullptr && *s == c);
    }
  }

  Verdict observe(Direction dir, const Pdu& pdu) {
    const bool was_dropped = observer.dropped();
    Verdict v = observer.observe(dir, pdu);
    check(v.allowed() || v.reason);
    if (was_dropped) check(!v.allowed());
    if (v.allowed() && v.request) {
      check(dir == Direction::kClientToServer);
      if (!injected) {
        const auto* s = server.contexts().accepted(v.request->p_cont_id);
        check(s != nullptr && s->abstract_syntax == v.request->abstract_syntax &&
              s->transfer_syntax == v.request->transfer_syntax);
      }
    }
    check_tables();
    return v;
  }

  // Server output goes to the observer as server->client traffic.
  void server_sent(std::span<const std::uint8_t> bytes) {
    auto pdu = decode_pdu(bytes);
    check(pdu.has_value());  // the server only emits PDUs our decoder accepts
    observe(Direction::kServerToClient, *pdu);
  }

  void client_frame(std::span<const std::uint8_t> frame) {
    auto pdu = decode_pdu(frame);
    Decision d;
    if (!pdu) {
      check(!observer.observe_error(Direction::kClientToServer, pdu.error()).allowed());
      d = server.handle_malformed(pdu.error(), frame);
    } else {
      observe(Direction::kClientToServer, *pdu);
      d = server.handle(*pdu);
    }
    switch (d.action) {
      case Decision::Action::kSend:
        check(!server_closed && !d.pdu.empty());
        server_sent(d.pdu);
        break;
      case Decision::Action::kDispatch: {
        check(!server_closed && d.call.has_value());
        const std::vector<std::uint8_t> stub(d.call->call.stub.size() % 100, 0xab);
        auto frags = server.build_response(d.call->call, stub);
        check(frags.has_value());
        for (const auto& f : *frags) {
          check(f.size() <= server.max_xmit_frag());
          server_sent(f);
        }
        break;
      }
      case Decision::Action::kCloseConnection:
        check(static_cast<bool>(d.reason));
        if (!d.pdu.empty() && !server_closed) server_sent(d.pdu);
        server_closed = true;
        check(server.state() == ServerAssociation::State::kClosed);
        break;
      case Decision::Action::kIgnore:
        check(!server_closed);
        break;
    }
  }

  void feed(Direction dir, std::span<const std::uint8_t> data) {
    Framer& framer = dir == Direction::kClientToServer ? client_framer : server_framer;
    while (!data.empty()) {
      auto n = framer.feed(data);
      if (!n) {
        if (dir == Direction::kClientToServer) {
          check(!observer.observe_error(dir, n.error()).allowed());
          server.handle_malformed(n.error(), data);
          server_closed = true;
        } else {
          check(!observer.observe_error(dir, n.error()).allowed());
        }
        return;
      }
      data = data.subspan(*n);
      if (!framer.ready()) continue;
      if (dir == Direction::kClientToServer) {
        client_frame(framer.frame());
      } else if (auto pdu = decode_pdu(framer.frame())) {
        observe(dir, *pdu);
      } else {
        check(!observer.observe_error(dir, pdu.error()).allowed());
      }
      framer.pop();
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
    in = in.subspan(3 + len);
    if (dir == Direction::kServerToClient) h.injected = true;
    h.feed(dir, record);
  }
  return 0;
}
