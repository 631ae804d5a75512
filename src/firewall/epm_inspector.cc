#include "firewall/epm_inspector.h"

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
}  // namespace

EpmInspector::EpmInspector(Address client, Address server, const RuleSet& rules, rpc::TimePoint now,
                           rpc::ObserverLimits limits, rpc::ConnectionOptions options)
    : Inspector(now, limits, options),
      client_(client),
      server_(server),
      rules_(&rules),
      policy_{
          [this](const rpc::SyntaxId& s) { return rules_->find(client_, server_, s) != nullptr; },
          rules.config().max_towers} {}

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
        maps_.insert_or_assign(v.header->call_id, Pending{std::move(q->stub), v.header->endian()});
      }
    }
  } else if (v.answers != nullptr && v.answers->opnum == ndr::epm::kOpnumEptMap) {
    auto it = maps_.find(v.header->call_id);
    if (type == rpc::PType::kResponse && it != maps_.end()) {
      if (!whole) return drop(DropReason::kEpmFragmentedMap);
      auto pdu = rpc::decode_pdu(v.pdu);
      const auto* r = pdu ? std::get_if<rpc::Response>(&pdu->body) : nullptr;
      if (r == nullptr) return drop(DropReason::kEpmBadMap);
      auto decision = decide_ept_map(it->second.stub, it->second.endian, r->stub,
                                     v.header->endian(), server_, policy_);
      maps_.erase(it);
      if (!decision) return drop(DropReason::kEpmBadMap, decision.error());
      if (const auto ports = decision->ports(); !ports.empty()) {
        Action open;
        open.kind = Action::Kind::kOpen;
        open.direction = v.direction;
        open.interface = decision->interface;
        // decide_ept_map opened ports only for an allowed interface: a rule names it.
        if (const Rule* rule = rules_->find(client_, server_, *decision->interface)) {
          open.rule = rule->name;
          open.timeout = rules_->timeout(*rule);
        }
        for (const auto port : ports)
          open.pinholes.push_back(PinholeKey{client_, server_, port});
        out_.push_back(std::move(open));  // before the response is released
      }
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
