#include "firewall/pinhole_inspector.h"

namespace rpcgate::firewall {

namespace {
// A sec trailer's auth_level as a level to compare: outside none..privacy ([MS-RPCE]
// 2.2.1.1.8) it meets no min_auth (a server refuses such a level; it must not pass as "high").
std::uint8_t level_of(const std::optional<rpc::AuthTrailer>& auth) {
  if (!auth || auth->auth_level > static_cast<std::uint8_t>(AuthLevel::kPrivacy)) return 0;
  return auth->auth_level;
}
}  // namespace

PinholeInspector::PinholeInspector(Address client, Address server, std::uint16_t port,
                                   const RuleSet& rules, rpc::TimePoint now,
                                   rpc::ObserverLimits limits, rpc::ConnectionOptions options)
    : Inspector(now, limits, options),
      client_(client),
      server_(server),
      port_(port),
      rules_(&rules) {
  for (const auto& r : rules.config().rules)
    any_min_auth_ = any_min_auth_ || r.min_auth != AuthLevel::kNone;
}

bool PinholeInspector::body_needed(
    std::span<const std::uint8_t, rpc::kCommonHeaderSize> header) const {
  if (rpc::Connection::head_size(header) == 0) return true;
  return any_min_auth_ && header[2] == static_cast<std::uint8_t>(rpc::PType::kRequest);
}

std::vector<Action> PinholeInspector::feed_head(rpc::Direction direction,
                                                std::span<const std::uint8_t> head,
                                                rpc::TimePoint now) {
  return run([&](rpc::Connection& e) { e.feed_head(direction, head, now); }, DropReason::kProtocol);
}

const Rule* PinholeInspector::rule_for(const rpc::SyntaxId& interface) const {
  return rules_->find(client_, server_, interface);
}

bool PinholeInspector::offer(const rpc::VerdictView& v) {
  const auto type = static_cast<rpc::PType>(v.header->ptype);
  auto pdu = rpc::decode_pdu(v.pdu);
  const rpc::BindBody* body = nullptr;
  if (pdu) {
    if (type == rpc::PType::kBind) {
      body = std::get_if<rpc::Bind>(&pdu->body);
    } else {
      body = std::get_if<rpc::AlterContext>(&pdu->body);
    }
  }
  if (body == nullptr) {  // the observer allowed what decodes; never guess otherwise
    drop(DropReason::kProtocol, pdu ? std::error_code{} : pdu.error());
    return false;
  }
  const std::uint8_t trailer_level = level_of(pdu->auth);
  if (type == rpc::PType::kBind) bind_auth_level_ = trailer_level;
  // An alter_context without a trailer keeps the security context the bind set up.
  const std::uint8_t level =
      pdu->auth || type == rpc::PType::kBind ? trailer_level : bind_auth_level_;
  for (const auto& item : body->contexts) {
    const Rule* rule = rule_for(item.abstract_syntax);
    if (rule == nullptr) {
      drop(DropReason::kInterfaceNotAllowed, {}, item.abstract_syntax);
      return false;
    }
    if (rule->min_auth != AuthLevel::kNone && level < static_cast<std::uint8_t>(rule->min_auth)) {
      drop(DropReason::kAuthLevel, {}, item.abstract_syntax);
      return false;
    }
  }
  return true;
}

bool PinholeInspector::request(const rpc::VerdictView& v) {
  const rpc::RequestTarget& target = *v.verdict->request;
  const Rule* rule = rule_for(target.abstract_syntax);
  if (rule == nullptr) {  // bound through offer(), so a rule exists; never assume it
    drop(DropReason::kInterfaceNotAllowed, {}, target.abstract_syntax, target.opnum);
    return false;
  }
  // Later fragments carry the same opnum (the observer drops one that does not).
  if (target.first_fragment && !rule->allows_opnum(target.opnum)) {
    drop(DropReason::kOpnumNotAllowed, {}, target.abstract_syntax, target.opnum);
    return false;
  }
  if (rule->min_auth == AuthLevel::kNone) return true;
  const auto need = static_cast<std::uint8_t>(rule->min_auth);
  if (v.header->auth_length == 0) {
    // Connect level authenticates the bind only: its requests carry no verifier.
    if (rule->min_auth == AuthLevel::kConnect && bind_auth_level_ >= need) return true;
    drop(DropReason::kAuthLevel, {}, target.abstract_syntax, target.opnum);
    return false;
  }
  auto pdu = rpc::decode_pdu(v.pdu);
  if (!pdu || level_of(pdu->auth) < need) {
    drop(DropReason::kAuthLevel, pdu ? std::error_code{} : pdu.error(), target.abstract_syntax,
         target.opnum);
    return false;
  }
  return true;
}

void PinholeInspector::on_verdict(const rpc::VerdictView& v) {
  if (dropped()) return;
  if (!v.verdict->allowed()) return drop(DropReason::kProtocol, v.verdict->reason);
  if (v.direction == rpc::Direction::kClientToServer) {
    const auto type = static_cast<rpc::PType>(v.header->ptype);
    if (type == rpc::PType::kBind || type == rpc::PType::kAlterContext) {
      if (!offer(v)) return;
    } else if (v.verdict->request) {
      if (!request(v)) return;
    }
  }
  Action forward;
  forward.direction = v.direction;
  auto* sink = v.direction == rpc::Direction::kClientToServer ? to_server_ : to_client_;
  if (sink != nullptr) {
    sink->insert(sink->end(), v.pdu.begin(), v.pdu.end());
  } else {
    forward.bytes.assign(v.pdu.begin(), v.pdu.end());
  }
  out_.push_back(std::move(forward));
}

}  // namespace rpcgate::firewall
