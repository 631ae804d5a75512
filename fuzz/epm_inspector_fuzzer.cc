// The firewall's endpoint-mapper inspector (firewall/epm_inspector.h) fed both directions of a
// connection, interleaved as the input says, with its pinhole decisions.
//
// Input: records of [control u8][length u16 LE][length bytes]; control bit 0 = direction (0
// client->server, 1 server->client).
//
// Invariants (trap on violation): a kDrop is the last action of its batch and nothing follows
// it, ever; a kOpen names only this client, this server and non-zero ports, for an interface the
// policy allows, and is followed in the same batch by the server->client PDU it was learned
// from; every kForward is one whole PDU (its frag_length is its size).
#include <cstddef>
#include <cstdint>
#include <span>

#include "firewall/epm_inspector.h"
#include "op_reader.h"

using namespace rpcgate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const firewall::Address client = firewall::ipv4(10, 0, 0, 7);
  const firewall::Address server = firewall::ipv4(127, 0, 0, 1);
  // Allows the interfaces of two rules (UUIDs whose first byte is 0x00 or 0x12, as winreg's,
  // netlogon's, spoolss'... and a few fuzzed ones), so both outcomes are reached.
  static const firewall::RuleSet rules = [] {
    firewall::FirewallConfig c;
    c.max_towers = 4;
    c.dcom = true;
    for (const char* name : {"winreg", "spoolss"}) {
      firewall::Rule r;
      r.name = name;
      r.interfaces.push_back(*firewall::parse_interface(name));
      c.rules.push_back(std::move(r));
    }
    firewall::Rule any;
    any.name = "any-version";
    any.interfaces.push_back(*firewall::parse_interface("00000000-0000-0000-0000-000000000000"));
    c.rules.push_back(std::move(any));
    return firewall::RuleSet(std::move(c));
  }();
  auto allowed = [&](const rpc::SyntaxId& s) { return rules.find(client, server, s) != nullptr; };
  firewall::EpmInspector fw(client, server, rules, rpc::TimePoint(std::chrono::seconds(1)));
  std::span<const std::uint8_t> in(data, size);
  bool ended = false;
  while (in.size() >= 3) {
    const auto dir =
        (in[0] & 1) ? rpc::Direction::kServerToClient : rpc::Direction::kClientToServer;
    const std::size_t len = std::min<std::size_t>(in[1] | (in[2] << 8), in.size() - 3);
    const auto record = in.subspan(3, len);
    in = in.subspan(3 + len);
    const auto actions = fw.feed(dir, record, rpc::TimePoint(std::chrono::seconds(1)));
    if (ended) CHECK(actions.empty());
    for (std::size_t i = 0; i < actions.size(); ++i) {
      const auto& a = actions[i];
      switch (a.kind) {
        case firewall::Action::Kind::kDrop:
          CHECK(i + 1 == actions.size());
          CHECK(fw.dropped());
          ended = true;
          break;
        case firewall::Action::Kind::kOpen:
          CHECK(!a.pinholes.empty() && a.interface && allowed(*a.interface) && !a.rule.empty() &&
                a.timeout.count() > 0);
          for (const auto& p : a.pinholes)
            CHECK(p.client == client && p.server == server && p.port != 0);
          CHECK(i + 1 < actions.size() && actions[i + 1].kind == firewall::Action::Kind::kForward &&
                actions[i + 1].direction == rpc::Direction::kServerToClient);
          break;
        case firewall::Action::Kind::kAnswer:
          // Only for an interface no rule allows, and only towards the client.
          CHECK(a.interface && !allowed(*a.interface) &&
                a.drop == firewall::DropReason::kMapNotAllowed &&
                a.direction == rpc::Direction::kServerToClient);
          [[fallthrough]];
        case firewall::Action::Kind::kForward: {
          CHECK(a.bytes.size() >= rpc::kCommonHeaderSize);
          const bool little = (a.bytes[4] & 0x10) != 0;
          const std::size_t frag =
              little ? (a.bytes[8] | a.bytes[9] << 8) : (a.bytes[9] | a.bytes[8] << 8);
          CHECK(frag == a.bytes.size());
          break;
        }
      }
    }
  }
  return 0;
}
