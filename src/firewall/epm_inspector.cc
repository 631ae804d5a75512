#include "firewall/epm_inspector.h"

#include "ndr/epm_types.h"

namespace rpcgate::firewall {

std::string_view to_string(EpmDrop d) {
  switch (d) {
    case EpmDrop::kProtocol:
      return "protocol";
    case EpmDrop::kOtherInterface:
      return "interface other than the endpoint mapper's on port 135";
    case EpmDrop::kRegistration:
      return "registration from the network";
    case EpmDrop::kFragmentedMap:
      return "fragmented ept_map";
    case EpmDrop::kBadMap:
      return "ept_map stub does not decode";
    case EpmDrop::kTooManyMaps:
      return "too many ept_map requests awaiting an answer";
  }
  return "?";
}

EpmInspector::EpmInspector(Address client, Address server, MapPolicy policy, rpc::TimePoint now,
                           rpc::ObserverLimits limits, rpc::ConnectionOptions options)
    : client_(client),
      server_(server),
      policy_(std::move(policy)),
      engine_(rpc::ObserverRole{limits}, options, *this, now) {}

std::vector<EpmAction> EpmInspector::feed(rpc::Direction direction,
                                          std::span<const std::uint8_t> bytes, rpc::TimePoint now) {
  out_.clear();
  if (!dropped_) engine_.feed(direction, bytes, now);
  return std::move(out_);
}

void EpmInspector::drop(EpmDrop why, std::error_code error) {
  if (dropped_) return;
  dropped_ = true;
  maps_.clear();
  EpmAction a;
  a.kind = EpmAction::Kind::kDrop;
  a.drop = why;
  a.error = error;
  out_.push_back(std::move(a));
}

void EpmInspector::on_verdict(const rpc::VerdictView& v) {
  if (dropped_) return;
  if (!v.verdict->allowed()) return drop(EpmDrop::kProtocol, v.verdict->reason);
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
      if (body == nullptr) return drop(EpmDrop::kProtocol);
      for (const auto& item : body->contexts)
        if (item.abstract_syntax.uuid != rpc::kEpmSyntax.uuid ||
            item.abstract_syntax.major != rpc::kEpmSyntax.major)
          return drop(EpmDrop::kOtherInterface);
    } else if (v.verdict->request && v.verdict->request->first_fragment) {
      const auto opnum = v.verdict->request->opnum;
      if (opnum == ndr::epm::kOpnumEptInsert || opnum == ndr::epm::kOpnumEptDelete ||
          opnum == ndr::epm::kOpnumEptMgmtDelete)
        return drop(EpmDrop::kRegistration);
      if (opnum == ndr::epm::kOpnumEptMap) {
        if (!whole) return drop(EpmDrop::kFragmentedMap);
        auto pdu = rpc::decode_pdu(v.pdu);
        auto* q = pdu ? std::get_if<rpc::Request>(&pdu->body) : nullptr;
        if (q == nullptr) return drop(EpmDrop::kBadMap);
        if (maps_.size() >= kMaxPendingMaps && !maps_.contains(v.header->call_id))
          return drop(EpmDrop::kTooManyMaps);
        maps_.insert_or_assign(v.header->call_id, Pending{std::move(q->stub), v.header->endian()});
      }
    }
  } else if (v.answers != nullptr && v.answers->opnum == ndr::epm::kOpnumEptMap) {
    auto it = maps_.find(v.header->call_id);
    if (type == rpc::PType::kResponse && it != maps_.end()) {
      if (!whole) return drop(EpmDrop::kFragmentedMap);
      auto pdu = rpc::decode_pdu(v.pdu);
      const auto* r = pdu ? std::get_if<rpc::Response>(&pdu->body) : nullptr;
      if (r == nullptr) return drop(EpmDrop::kBadMap);
      auto decision = decide_ept_map(it->second.stub, it->second.endian, r->stub,
                                     v.header->endian(), server_, policy_);
      maps_.erase(it);
      if (!decision) return drop(EpmDrop::kBadMap, decision.error());
      if (const auto ports = decision->ports(); !ports.empty()) {
        EpmAction open;
        open.kind = EpmAction::Kind::kOpen;
        open.direction = v.direction;
        open.interface = decision->interface;
        for (const auto port : ports)
          open.pinholes.push_back(PinholeKey{client_, server_, port});
        out_.push_back(std::move(open));  // before the response is released
      }
    } else if (it != maps_.end()) {
      maps_.erase(it);  // a fault ends the call: nothing to learn
    }
  }
  EpmAction forward;
  forward.direction = v.direction;
  forward.bytes.assign(v.pdu.begin(), v.pdu.end());
  out_.push_back(std::move(forward));
}

}  // namespace rpcgate::firewall
