// The firewall's endpoint-mapper inspector (firewall/epm_inspector.h) fed both directions of a
// connection, interleaved as the input says, with its pinhole decisions.
//
// Input: records of [control u8][length u16 LE][length bytes]; control bit 0 = direction (0
// client->server, 1 server->client). Bits 1-2 of the FIRST record's control byte pick the
// configuration: 0 the plain rules; bit 1 adds lookup pinholes and referrals (rules with
// referrals = true, [firewall] servers 127.0.0.0/8); bit 2 puts the server behind static NAT
// (the client asks 203.0.113.10, the server's towers name 127.0.0.1) with lookup pinholes.
//
// Invariants (trap on violation): a kDrop is the last action of its batch and nothing follows
// it, ever; a kOpen names only this client, this server (or, with referrals, a host inside the
// configured servers) and non-zero ports, for an interface the policy allows, and is followed in
// the same batch (after the kOpens of the answer's other interfaces) by the server->client PDU it
// was learned from; a kNote carries no bytes; every kForward is one whole PDU (its frag_length is
// its size: a NAT rewrite keeps the length).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "firewall/epm_inspector.h"
#include "op_reader.h"

using namespace rpcgate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const firewall::Address client = firewall::ipv4(10, 0, 0, 7);
  const firewall::Address private_server = firewall::ipv4(127, 0, 0, 1);
  const firewall::Address public_server = firewall::ipv4(203, 0, 113, 10);
  const unsigned variant = size > 0 ? (data[0] >> 1) & 3 : 0;
  // Allows the interfaces of two rules (UUIDs whose first byte is 0x00 or 0x12, as winreg's,
  // netlogon's, spoolss'... and a few fuzzed ones), so both outcomes are reached.
  static const std::array<firewall::RuleSet, 4> configs = [] {
    auto make = [](unsigned v) {
      firewall::FirewallConfig c;
      c.max_towers = 4;
      c.dcom = true;
      c.lookup_pinholes = v != 0;
      if (v & 1) c.servers.push_back(*firewall::parse_cidr("127.0.0.0/8"));
      if (v & 2)
        c.nat.push_back(
            firewall::NatEntry{firewall::ipv4(203, 0, 113, 10), firewall::ipv4(127, 0, 0, 1), 0});
      for (const char* name : {"winreg", "spoolss"}) {
        firewall::Rule r;
        r.name = name;
        r.referrals = (v & 1) != 0;
        r.interfaces.push_back(*firewall::parse_interface(name));
        c.rules.push_back(std::move(r));
      }
      firewall::Rule any;
      any.name = "any-version";
      any.referrals = (v & 1) != 0;
      any.interfaces.push_back(*firewall::parse_interface("00000000-0000-0000-0000-000000000000"));
      c.rules.push_back(std::move(any));
      return firewall::RuleSet(std::move(c));
    };
    return std::array<firewall::RuleSet, 4>{make(0), make(1), make(2), make(3)};
  }();
  const firewall::RuleSet& rules = configs[variant];
  const firewall::Address server = (variant & 2) ? public_server : private_server;
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
            CHECK(p.client == client && p.port != 0 &&
                  (p.server == server || ((variant & 1) && rules.in_configured_servers(p.server))));
          {
            // An ept_lookup answer opens one kOpen per interface, all before its kForward.
            std::size_t next = i + 1;
            while (next < actions.size() && actions[next].kind == firewall::Action::Kind::kOpen)
              ++next;
            CHECK(next < actions.size() && actions[next].kind == firewall::Action::Kind::kForward &&
                  actions[next].direction == rpc::Direction::kServerToClient);
          }
          break;
        case firewall::Action::Kind::kNote:
          CHECK(a.bytes.empty() && !a.note_event.empty() && !a.note_reason.empty());
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
