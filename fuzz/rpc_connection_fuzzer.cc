// Operation sequences over the connection engine (rpc/connection.h) in all three roles at once:
// a client-role Connection talks to a server-role Connection through a simulated stream, and an
// observer-role Connection watches both directions, as the firewall will. Each input byte picks
// an operation: the client binds or calls, a number of the queued bytes is delivered in either
// direction (so every PDU is split at fuzzer-chosen points), hostile bytes are injected into
// either direction, time moves and every deadline that came is acted on, the server answers a
// held call (response or fault) or the caller closes a side.
//
// Invariants (trap on violation):
// * every connection that ends has a reason (a protocol close also an error), and an engine
//   that is closed stays closed, sends nothing and dispatches nothing;
// * no call is dispatched on a context the server's association did not accept, with the
//   syntaxes it accepted;
// * after on_expiry(now) no deadline is left at or before `now`;
// * while all traffic came from the two engines (nothing injected), the observer allows every
//   PDU, knows which call each response answers (the same call_id, with the opnum the client
//   sent), and the client gets at most one answer per call it made.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "op_reader.h"
#include "rpc/connection.h"

namespace {
using namespace rpcgate::rpc;
using namespace std::chrono_literals;
using rpcgate::fuzzing::Reader;

const SyntaxId kUnknownSyntax{rpcgate::common::Uuid{}, 7, 0};

void check_ended(const Connection& c) {
  if (c.state() != Connection::State::kClosed) return;
  const auto& info = c.close_info();
  CHECK(info.reason < CloseReason::kCount);
  if (info.reason == CloseReason::kProtocol) CHECK(static_cast<bool>(info.error));
  CHECK(c.next_output().bytes.empty());
  CHECK(!c.next_expiry().has_value());
}

ConnectionOptions options() {
  ConnectionOptions o;
  o.idle_before_bind = 100ms;
  o.idle_after_bind = 1000ms;
  o.pdu = 200ms;
  o.write = 300ms;
  o.response = 500ms;
  o.max_outstanding_calls = 4;
  o.max_output_bytes = 64 * 1024;
  return o;
}

struct World {
  struct ServerSide : ConnectionHandler {
    World* w = nullptr;
    void on_call(ServerCall& call) override {
      const Connection& s = *w->server;
      CHECK(s.state() != Connection::State::kClosed);
      const auto* ctx = s.server()->contexts().accepted(call.call.p_cont_id);
      CHECK(ctx != nullptr && ctx->abstract_syntax == call.abstract_syntax &&
            ctx->transfer_syntax == call.transfer_syntax);
      w->held.push_back(call_ref(call));
      w->held_stub.push_back(call.call.stub.size());
    }
  };
  struct ClientSide : ConnectionHandler {
    World* w = nullptr;
    void on_bind_result(const BindResult&) override {}
    void on_response(const ResponseView& r) override {
      CHECK(w->client->state() != Connection::State::kClosed);
      auto it = w->sent.find(r.call_id);
      CHECK(it != w->sent.end());  // the engine only reports calls it made, once each
      w->sent.erase(it);
    }
  };
  struct Watching : ConnectionHandler {
    World* w = nullptr;
    void on_verdict(const VerdictView& v) override {
      CHECK(v.verdict != nullptr);
      if (!v.verdict->allowed()) {
        CHECK(static_cast<bool>(v.verdict->reason));
        CHECK(w->injected);  // traffic between the two engines is always allowed
        return;
      }
      if (v.answers != nullptr) {
        CHECK(v.header != nullptr && v.answers->call_id == v.header->call_id);
        if (!w->injected) {
          auto it = w->opnums.find(v.header->call_id);
          CHECK(it != w->opnums.end() && it->second == v.answers->opnum);
        }
      }
    }
  };

  static ServerConfig config() {
    ServerConfig c;
    c.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
    c.secondary_address = "135";
    c.new_assoc_group_id = 7;
    c.max_contexts = 8;
    c.reassembly = ReassemblyLimits{16384, 4, 32768, 300ms};
    return c;
  }

  TimePoint now{std::chrono::seconds(1000)};
  ServerSide server_side;
  ClientSide client_side;
  Watching watching;
  std::unique_ptr<Connection> server;
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> observer;
  std::vector<CallRef> held;  // dispatched, not yet answered
  std::vector<std::size_t> held_stub;
  std::map<std::uint32_t, std::uint16_t> sent;    // client calls awaiting an answer
  std::map<std::uint32_t, std::uint16_t> opnums;  // every call the client made: opnum
  bool injected = false;

  World() {
    server_side.w = this;
    client_side.w = this;
    watching.w = this;
    server = std::make_unique<Connection>(ServerRole{config()}, options(), server_side, now);
    ClientRole role;
    role.max_xmit_frag = 2048;
    role.max_recv_frag = 2048;
    role.responses.max_stub_size = 65536;
    client = std::make_unique<Connection>(role, options(), client_side, now);
    observer = std::make_unique<Connection>(ObserverRole{ObserverLimits{8, 4, 32}}, options(),
                                            watching, now);
  }

  void check_all() {
    check_ended(*server);
    check_ended(*client);
    check_ended(*observer);
  }

  // Delivers up to `n` queued bytes of `from` to `to` (and the observer).
  void deliver(Connection& from, Connection& to, Direction d, std::size_t n) {
    while (n > 0) {
      const auto out = from.next_output();
      if (out.bytes.empty()) break;
      const auto part = out.bytes.first(std::min(n, out.bytes.size()));
      const std::vector<std::uint8_t> copy(part.begin(), part.end());
      from.output_sent(copy.size(), now);
      n -= copy.size();
      to.feed(d, copy, now);
      observer->feed(d, copy, now);
    }
  }

  void run(Reader& in) {
    while (!in.done()) {
      const std::uint8_t op = in.byte();
      switch (op % 10) {
        case 0: {  // bind 1..3 contexts, some unknown to the server
          std::vector<SyntaxId> ifs;
          const unsigned n = 1 + in.byte() % 3;
          for (unsigned i = 0; i < n; ++i) {
            const std::uint8_t k = in.byte() % 3;
            ifs.push_back(k == 0 ? kEpmSyntax : k == 1 ? kMgmtSyntax : kUnknownSyntax);
          }
          client->bind(ifs, now);
          break;
        }
        case 1: {  // call with a stub of up to ~12 KiB (fragmented at 2048)
          const std::uint16_t p_cont_id = in.byte() % 4;
          const std::uint16_t opnum = in.byte() % 8;
          const std::size_t len = static_cast<std::size_t>(in.byte()) * 48;
          const std::vector<std::uint8_t> stub(len, 0x5a);
          const std::uint32_t id = client->call(p_cont_id, opnum, stub, now);
          if (id != 0) {
            CHECK(!sent.contains(id));
            sent.emplace(id, opnum);
            opnums[id] = opnum;
          }
          break;
        }
        case 2:
          deliver(*client, *server, Direction::kClientToServer, 1 + in.byte() * 16);
          break;
        case 3:
          deliver(*server, *client, Direction::kServerToClient, 1 + in.byte() * 16);
          break;
        case 4: {  // hostile client bytes
          injected = true;
          std::vector<std::uint8_t> junk(1 + in.byte() % 64);
          for (auto& b : junk)
            b = in.byte();
          server->feed(Direction::kClientToServer, junk, now);
          observer->feed(Direction::kClientToServer, junk, now);
          break;
        }
        case 5: {  // hostile server bytes
          injected = true;
          std::vector<std::uint8_t> junk(1 + in.byte() % 64);
          for (auto& b : junk)
            b = in.byte();
          client->feed(Direction::kServerToClient, junk, now);
          observer->feed(Direction::kServerToClient, junk, now);
          break;
        }
        case 6: {  // time passes; deadlines act
          now += std::chrono::milliseconds(1 + in.byte() * 4);
          for (Connection* c : {server.get(), client.get(), observer.get()}) {
            c->on_expiry(now);
            if (auto e = c->next_expiry()) CHECK(*e > now);
          }
          break;
        }
        case 7:
        case 8: {  // the server answers a held call
          if (held.empty()) break;
          const std::size_t i = in.byte() % held.size();
          const CallRef ref = held[i];
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
          held_stub.erase(held_stub.begin() + static_cast<std::ptrdiff_t>(i));
          if (op % 10 == 7) {
            const std::vector<std::uint8_t> stub(static_cast<std::size_t>(in.byte()) * 40, 0x11);
            server->respond(ref, stub, now);
          } else {
            server->respond_fault(ref, 0x1c010002, now);
          }
          break;
        }
        case 9: {  // the caller closes a side
          const std::uint8_t which = in.byte() % 3;
          Connection* c = which == 0 ? server.get() : which == 1 ? client.get() : observer.get();
          c->close(CloseReason::kEof, now);
          CHECK(c->state() == Connection::State::kClosed);
          break;
        }
      }
      check_all();
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World w;
  Reader in{data, size};
  w.run(in);
  return 0;
}
