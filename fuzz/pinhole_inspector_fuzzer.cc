// The firewall's pinhole-connection inspector (firewall/pinhole_inspector.h) fed both directions
// of a connection, interleaved as the input says, with time steps, over rules picked by the input.
//
// Input: [rules u8] then records of [control u8][length u16 LE][...]. control bit 0 = direction
// (0 client->server, 1 server->client); bit 1 set = a time step of `length` milliseconds (no
// bytes follow) and on_expiry() once the inspector's deadline has come; else `length` bytes fed.
// The rules byte: bit 0 = the winreg rule asks for privacy, bit 1 = the svcctl rule allows
// opnums 0-5 only, bit 2 = the any-version rule (UUIDs 00000000-...) is present.
//
// Invariants (trap on violation): a kDrop is the last action of its batch and nothing follows
// it, ever (and no deadline is left); no kOpen; every kForward is one whole PDU (its frag_length
// is its size); a forwarded bind / alter_context names only interfaces a rule allows; a
// forwarded FIRST request fragment has an opnum its rule allows.
#include <cstddef>
#include <cstdint>
#include <span>

#include "firewall/pinhole_inspector.h"
#include "op_reader.h"

using namespace rpcgate;

namespace {

firewall::RuleSet make_rules(std::uint8_t bits) {
  firewall::FirewallConfig c;
  firewall::Rule winreg;
  winreg.name = "winreg";
  winreg.interfaces.push_back(*firewall::parse_interface("winreg"));
  if (bits & 1) winreg.min_auth = firewall::AuthLevel::kPrivacy;
  c.rules.push_back(std::move(winreg));
  firewall::Rule svcctl;
  svcctl.name = "svcctl";
  svcctl.interfaces.push_back(*firewall::parse_interface("svcctl:2.0"));
  if (bits & 2) svcctl.opnums.push_back(firewall::OpnumRange{0, 5});
  c.rules.push_back(std::move(svcctl));
  if (bits & 4) {
    firewall::Rule any;
    any.name = "any-version";
    any.interfaces.push_back(*firewall::parse_interface("00000000-0000-0000-0000-000000000000"));
    c.rules.push_back(std::move(any));
  }
  return firewall::RuleSet(std::move(c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const firewall::RuleSet kRuleSets[8] = {make_rules(0), make_rules(1), make_rules(2),
                                                 make_rules(3), make_rules(4), make_rules(5),
                                                 make_rules(6), make_rules(7)};
  const firewall::RuleSet& rules = kRuleSets[data[0] & 7];
  const firewall::Address client = firewall::ipv4(10, 0, 0, 7);
  const firewall::Address server = firewall::ipv4(10, 0, 1, 5);
  rpc::TimePoint now(std::chrono::seconds(1));
  rpc::ConnectionOptions options;
  options.idle_before_bind = std::chrono::milliseconds(2000);
  options.idle_after_bind = std::chrono::milliseconds(8000);
  options.pdu = std::chrono::milliseconds(1000);
  firewall::PinholeInspector fw(client, server, 49664, rules, now, {}, options);
  std::span<const std::uint8_t> in(data + 1, size - 1);
  bool ended = false;
  while (in.size() >= 3) {
    const std::uint8_t control = in[0];
    const auto dir =
        (control & 1) ? rpc::Direction::kServerToClient : rpc::Direction::kClientToServer;
    const std::size_t field = in[1] | (in[2] << 8);
    std::vector<firewall::Action> actions;
    if (control & 2) {
      in = in.subspan(3);
      now += std::chrono::milliseconds(field);
      if (const auto e = fw.next_expiry(); e && now >= *e) actions = fw.on_expiry(now);
    } else {
      const std::size_t len = std::min<std::size_t>(field, in.size() - 3);
      const auto record = in.subspan(3, len);
      in = in.subspan(3 + len);
      actions = fw.feed(dir, record, now);
    }
    if (ended) CHECK(actions.empty());
    for (std::size_t i = 0; i < actions.size(); ++i) {
      const auto& a = actions[i];
      switch (a.kind) {
        case firewall::Action::Kind::kDrop:
          CHECK(i + 1 == actions.size());
          CHECK(fw.dropped() && a.drop.has_value() && !fw.next_expiry());
          ended = true;
          break;
        case firewall::Action::Kind::kOpen:
        case firewall::Action::Kind::kAnswer:
        case firewall::Action::Kind::kNote:
          CHECK(false);  // only the endpoint mapper's inspector opens, answers or notes
          break;
        case firewall::Action::Kind::kForward: {
          CHECK(!ended);
          auto pdu = rpc::decode_pdu(a.bytes);
          CHECK(pdu.has_value());
          CHECK(pdu->header.frag_length == a.bytes.size());
          if (a.direction != rpc::Direction::kClientToServer) break;
          const rpc::BindBody* body = std::get_if<rpc::Bind>(&pdu->body);
          if (body == nullptr) body = std::get_if<rpc::AlterContext>(&pdu->body);
          if (body != nullptr) {
            for (const auto& item : body->contexts)
              CHECK(rules.find(client, server, item.abstract_syntax) != nullptr);
          }
          if (const auto* q = std::get_if<rpc::Request>(&pdu->body);
              q != nullptr && (pdu->header.pfc_flags & rpc::pfc::kFirstFrag)) {
            const auto* c = fw.connection().observer()->contexts().accepted(q->p_cont_id);
            CHECK(c != nullptr);
            const auto* rule = rules.find(client, server, c->abstract_syntax);
            CHECK(rule != nullptr && rule->allows_opnum(q->opnum));
          }
          break;
        }
      }
    }
  }
  return 0;
}
