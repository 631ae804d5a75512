#include "firewall/epm_inspector.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "ndr/epm_types.h"
#include "rpc/fragments.h"

namespace rpcgate::firewall {

namespace {
// DCOM's activation and OXID resolution interfaces, which Windows serves on 135 ([MS-DCOM] 1.9;
// rules.cc's well-known table names them too).
const rpc::SyntaxId kISystemActivator{*common::Uuid::parse("000001a0-0000-0000-c000-000000000046"),
                                      0, 0};
const rpc::SyntaxId kIOXIDResolver{*common::Uuid::parse("99fcfec4-5260-101b-bbcb-00aa0021347a"), 0,
                                   0};

bool same_interface(const rpc::SyntaxId& a, const rpc::SyntaxId& b) {
  return a.uuid == b.uuid && a.major == b.major;
}

bool is_v4(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) && a[10] == 0xff &&
         a[11] == 0xff;
}

// A response's stub starts after the common header and alloc_hint, p_cont_id, cancel_count and
// a reserved octet (C706 12.6.4.10).
constexpr std::size_t kResponseStubOffset = 24;

std::string_view verdict_reason(TowerVerdict v) {
  switch (v) {
    case TowerVerdict::kReferralNotAllowed:
      return "referral-not-allowed";  // not logged: the rule never asked for referrals
    case TowerVerdict::kReferralAnyServers:
      return "referral-any-servers";
    case TowerVerdict::kReferralOutsideServers:
      return "referral-outside-servers";
    case TowerVerdict::kReferralRuleMismatch:
      return "referral-rule-mismatch";
    default:
      return to_string(v);
  }
}
}  // namespace

EpmInspector::EpmInspector(Address client, Address server, const RuleSet& rules, rpc::TimePoint now,
                           rpc::ObserverLimits limits, rpc::ConnectionOptions options)
    : Inspector(now, limits, options),
      client_(client),
      server_(server),
      rules_(&rules),
      policy_{
          [this](const rpc::SyntaxId& s) { return rules_->find(client_, server_, s) != nullptr; },
          rules.config().max_towers, std::nullopt,
          [this](const rpc::SyntaxId& s, const Address& host) { return referral(s, host); }},
      nat_private_(rules.nat_private(server)) {
  policy_.nat_private = nat_private_;
}

TowerVerdict EpmInspector::referral(const rpc::SyntaxId& interface, const Address& host) const {
  const Rule* rule = rules_->find(client_, server_, interface);
  if (rule == nullptr || !rule->referrals) return TowerVerdict::kReferralNotAllowed;
  if (is_v4(host) != is_v4(client_)) return TowerVerdict::kOtherHost;  // a pinhole is one family
  // "Any servers" would let an endpoint mapper send clients anywhere: referrals need a list.
  if (rules_->config().servers.empty()) return TowerVerdict::kReferralAnyServers;
  if (!rules_->in_configured_servers(host)) return TowerVerdict::kReferralOutsideServers;
  if (!rule->applies(client_, host)) return TowerVerdict::kReferralRuleMismatch;
  return TowerVerdict::kReferral;
}

void EpmInspector::note(std::string_view event, std::string_view reason, std::string message,
                        std::optional<PinholeKey> key, bool warning) {
  Action a;
  a.kind = Action::Kind::kNote;
  a.direction = rpc::Direction::kServerToClient;
  a.note_event = event;
  a.note_reason = reason;
  a.message = std::move(message);
  a.warning = warning;
  if (key) a.pinholes.push_back(*key);
  out_.push_back(std::move(a));
}

bool EpmInspector::on_answer(const rpc::VerdictView& v, bool lookup,
                             std::span<const std::uint8_t> request, common::Endian request_endian,
                             std::vector<std::uint8_t>& forward) {
  auto pdu = rpc::decode_pdu(v.pdu);
  const auto* r = pdu ? std::get_if<rpc::Response>(&pdu->body) : nullptr;
  if (r == nullptr) {
    drop(DropReason::kEpmBadMap);
    return false;
  }
  // NAT: a signed answer is forwarded as it is (rewriting would break its verifier) and judged
  // as without NAT.
  const bool signed_answer = pdu->auth.has_value();
  MapPolicy policy = policy_;
  if (signed_answer) policy.nat_private.reset();
  struct Open {
    const Rule* rule = nullptr;
    std::vector<PinholeKey> keys;
  };
  std::map<std::tuple<common::Uuid, std::uint16_t, std::uint16_t>, Open> grouped;
  std::vector<rpc::SyntaxId> order;  // of the interfaces in `grouped`
  const auto add = [&](const rpc::SyntaxId& interface, const TowerDecision& t) {
    const PinholeKey key{client_, t.host, t.port};
    if (opens(t.verdict)) {
      auto [it, fresh] = grouped.try_emplace({interface.uuid, interface.major, interface.minor});
      if (fresh) {
        it->second.rule = rules_->find(client_, server_, interface);
        order.push_back(interface);
      }
      if (std::find(it->second.keys.begin(), it->second.keys.end(), key) == it->second.keys.end())
        it->second.keys.push_back(key);
    } else if (t.verdict == TowerVerdict::kReferralAnyServers ||
               t.verdict == TowerVerdict::kReferralOutsideServers ||
               t.verdict == TowerVerdict::kReferralRuleMismatch) {
      note("tower", verdict_reason(t.verdict),
           "referral to " + to_string(t.host) + ":" + std::to_string(t.port) +
               " not opened: " + std::string(to_string(t.verdict)),
           key, t.verdict == TowerVerdict::kReferralAnyServers);
    }
  };
  const auto endian = v.header->endian();
  if (lookup) {
    auto decision = decide_ept_lookup(r->stub, endian, server_, policy);
    if (!decision) {
      drop(DropReason::kEpmBadMap, decision.error());
      return false;
    }
    for (const auto& t : decision->entries)
      if (t.interface) add(*t.interface, t);
  } else {
    auto decision = decide_ept_map(request, request_endian, r->stub, endian, server_, policy);
    if (!decision) {
      drop(DropReason::kEpmBadMap, decision.error());
      return false;
    }
    // decide_ept_map opens towers only for an allowed interface.
    if (decision->interface)
      for (const auto& t : decision->towers)
        add(*decision->interface, t);
  }
  if (nat_private_) {
    if (signed_answer) {
      note("nat", "not-rewritten-signed",
           "not rewritten: signed (an auth trailer protects the answer; its towers keep " +
               to_string(*nat_private_) + ")");
    } else if (r->stub.size() + kResponseStubOffset == forward.size()) {
      auto offsets = nat_address_offsets(r->stub, endian, lookup, *nat_private_);
      if (!offsets) {
        drop(DropReason::kEpmBadMap, offsets.error());
        return false;
      }
      for (const auto off : *offsets)
        std::copy(server_.begin() + 12, server_.end(), forward.begin() + kResponseStubOffset + off);
      if (!offsets->empty()) {
        note("nat", "rewritten",
             std::to_string(offsets->size()) + " tower address(es) " + to_string(*nat_private_) +
                 " / 0.0.0.0 rewritten to " + to_string(server_));
      }
    }
  }
  for (const auto& interface : order) {
    auto& o = grouped.at({interface.uuid, interface.major, interface.minor});
    Action open;
    open.kind = Action::Kind::kOpen;
    open.direction = v.direction;
    open.interface = interface;
    open.lookup = lookup;
    if (o.rule != nullptr) {
      open.rule = o.rule->name;
      open.timeout = lookup ? rules_->lookup_timeout(*o.rule) : rules_->timeout(*o.rule);
    }
    open.pinholes = std::move(o.keys);
    out_.push_back(std::move(open));  // before the response is released
  }
  return true;
}

bool EpmInspector::bindable(const rpc::SyntaxId& interface) const {
  if (same_interface(interface, rpc::kEpmSyntax)) return true;
  return rules_->config().dcom && (same_interface(interface, kISystemActivator) ||
                                   same_interface(interface, kIOXIDResolver));
}

void EpmInspector::answer_not_registered(const rpc::PduHeader& request, std::uint16_t p_cont_id,
                                         std::uint32_t max_towers, const rpc::SyntaxId& asked) {
  ndr::epm::EptMapResponse answer;
  answer.max_count = max_towers;
  answer.status = ndr::epm::kEptSNotRegistered;
  const auto stub = ndr::epm::encode(answer, request.endian());
  rpc::FragmentParams params;
  params.call_id = request.call_id;
  params.p_cont_id = p_cont_id;
  params.drep = request.drep;
  params.rpc_vers_minor = request.rpc_vers_minor;
  Action a;
  a.kind = Action::Kind::kAnswer;
  a.direction = rpc::Direction::kServerToClient;
  a.drop = DropReason::kMapNotAllowed;
  a.interface = asked;
  a.opnum = ndr::epm::kOpnumEptMap;
  if (!rpc::append_response(params, stub, rpc::kDefaultServerMaxFrag, a.bytes))
    return drop(DropReason::kEpmBadMap);
  out_.push_back(std::move(a));
}

void EpmInspector::on_verdict(const rpc::VerdictView& v) {
  if (dropped()) return;
  if (!v.verdict->allowed()) return drop(DropReason::kProtocol, v.verdict->reason);
  const auto type = static_cast<rpc::PType>(v.header->ptype);
  const bool whole = (v.header->pfc_flags & (rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag)) ==
                     (rpc::pfc::kFirstFrag | rpc::pfc::kLastFrag);
  if (v.direction == rpc::Direction::kClientToServer) {
    if (type == rpc::PType::kBind || type == rpc::PType::kAlterContext) {
      auto pdu = rpc::decode_pdu(v.pdu);
      const auto* body =
          pdu ? (type == rpc::PType::kBind
                     ? static_cast<const rpc::BindBody*>(std::get_if<rpc::Bind>(&pdu->body))
                     : std::get_if<rpc::AlterContext>(&pdu->body))
              : nullptr;
      if (body == nullptr) return drop(DropReason::kProtocol);
      for (const auto& item : body->contexts)
        if (!bindable(item.abstract_syntax))
          return drop(DropReason::kEpmOtherInterface, {}, item.abstract_syntax);
    } else if (v.verdict->request && v.verdict->request->first_fragment) {
      const auto opnum = v.verdict->request->opnum;
      if (opnum == ndr::epm::kOpnumEptInsert || opnum == ndr::epm::kOpnumEptDelete ||
          opnum == ndr::epm::kOpnumEptMgmtDelete) {
        return drop(DropReason::kEpmRegistration, {}, std::nullopt, opnum);
      }
      if (opnum == ndr::epm::kOpnumEptMap) {
        if (!whole) return drop(DropReason::kEpmFragmentedMap);
        auto pdu = rpc::decode_pdu(v.pdu);
        auto* q = pdu ? std::get_if<rpc::Request>(&pdu->body) : nullptr;
        if (q == nullptr) return drop(DropReason::kEpmBadMap);
        // Sealed (packet privacy): the stubs are ciphertext. Say so, rather than "does not
        // decode": the administrator's fix is integrity, or a static port rule.
        if (pdu->auth && pdu->auth->auth_level >= 6) return drop(DropReason::kEpmSealed);
        // An interface no rule allows: answer "not registered" at once, as an endpoint mapper
        // without it would, so the client fails fast (no connect that the kernel would drop
        // after a timeout), and the server never learns what was asked. NDR20 only (what every
        // client negotiates for the EPM); an NDR64 context is forwarded and opens nothing.
        std::uint32_t max_towers = 0;
        const auto asked = requested_interface(q->stub, v.header->endian(), &max_towers);
        if (asked && rules_->find(client_, server_, *asked) == nullptr &&
            v.verdict->request->transfer_syntax == rpc::kNdr20Syntax)
          return answer_not_registered(*v.header, v.verdict->request->p_cont_id, max_towers,
                                       *asked);
        if (maps_.size() >= kMaxPendingMaps && !maps_.contains(v.header->call_id))
          return drop(DropReason::kEpmTooManyMaps);
        maps_.insert_or_assign(v.header->call_id,
                               Pending{std::move(q->stub), v.header->endian(), false});
      } else if (opnum == ndr::epm::kOpnumEptLookup && rules_->config().lookup_pinholes) {
        // Remembered as an ept_map is, so that its answer can open pinholes.
        if (!whole) return drop(DropReason::kEpmFragmentedMap);
        auto pdu = rpc::decode_pdu(v.pdu);
        auto* q = pdu ? std::get_if<rpc::Request>(&pdu->body) : nullptr;
        if (q == nullptr) return drop(DropReason::kEpmBadMap);
        // Sealed: the answer cannot be read; it passes and opens nothing, as without the option.
        // An NDR64 context is not ours to decode either.
        if (!(pdu->auth && pdu->auth->auth_level >= 6) &&
            v.verdict->request->transfer_syntax == rpc::kNdr20Syntax) {
          if (!ndr::epm::decode_ept_lookup_request(q->stub, v.header->endian()))
            return drop(DropReason::kEpmBadMap);
          if (maps_.size() >= kMaxPendingMaps && !maps_.contains(v.header->call_id))
            return drop(DropReason::kEpmTooManyMaps);
          maps_.insert_or_assign(v.header->call_id,
                                 Pending{std::move(q->stub), v.header->endian(), true});
        }
      }
    }
  } else if (v.answers != nullptr && (v.answers->opnum == ndr::epm::kOpnumEptMap ||
                                      v.answers->opnum == ndr::epm::kOpnumEptLookup)) {
    auto it = maps_.find(v.header->call_id);
    if (type == rpc::PType::kResponse && it != maps_.end()) {
      const Pending pending = std::move(it->second);
      maps_.erase(it);
      Action forward;
      forward.direction = v.direction;
      forward.bytes.assign(v.pdu.begin(), v.pdu.end());
      if (!whole) {
        // A long ept_lookup answer comes in fragments; it is not reassembled here, so it opens
        // nothing (and passes, as without lookup pinholes). An ept_map answer never does.
        if (!pending.lookup) return drop(DropReason::kEpmFragmentedMap);
        note("tower", "lookup-fragmented",
             "ept_lookup answer in several fragments: passed, nothing opened");
      } else if (!on_answer(v, pending.lookup, pending.stub, pending.endian, forward.bytes)) {
        return;
      }
      out_.push_back(std::move(forward));
      return;
    } else if (it != maps_.end()) {
      maps_.erase(it);  // a fault ends the call: nothing to learn
    }
  }
  Action forward;
  forward.direction = v.direction;
  forward.bytes.assign(v.pdu.begin(), v.pdu.end());
  out_.push_back(std::move(forward));
}

}  // namespace rpcgate::firewall
