#include "epm/liveness.h"

#include <set>

#include "ndr/tower.h"

namespace rpcgate::epm {

namespace pid = ndr::protocol_id;

std::string ProbeTarget::to_string() const {
  if (kind == Kind::kUnix) return path;
  return std::to_string(address[0]) + "." + std::to_string(address[1]) + "." +
         std::to_string(address[2]) + "." + std::to_string(address[3]) + ":" + std::to_string(port);
}

std::optional<ProbeTarget> probe_target(const Entry& e) {
  if (e.owner != kPersistentOwner || e.authority == kEpmdAuthority) return std::nullopt;
  const auto& f = e.tower.floors;
  if (f.size() < 4) return std::nullopt;
  ProbeTarget t;
  if (e.rpc_protocol == pid::kNcacn && f.size() == 5 && f[3].protocol_id() == pid::kTcp &&
      f[4].protocol_id() == pid::kIp && f[3].rhs.size() == 2 && f[4].rhs.size() == 4) {
    t.kind = ProbeTarget::Kind::kTcp;
    t.port = static_cast<std::uint16_t>(f[3].rhs[0] << 8 | f[3].rhs[1]);  // big-endian
    for (std::size_t i = 0; i < 4; ++i)
      t.address[i] = f[4].rhs[i];
    if (t.address == Ipv4{0, 0, 0, 0}) t.address = {127, 0, 0, 1};
    if (t.port == 0) return std::nullopt;
    return t;
  }
  if (e.rpc_protocol == pid::kNcalrpc && f.size() == 4 && f[3].protocol_id() == pid::kNamedPipe) {
    std::string path(f[3].rhs.begin(), f[3].rhs.end());
    while (!path.empty() && path.back() == '\0')
      path.pop_back();
    // sockaddr_un holds 107 characters and a NUL; a NUL inside is not a path.
    if (path.empty() || path.front() != '/' || path.size() > 107 ||
        path.find('\0') != std::string::npos)
      return std::nullopt;
    t.kind = ProbeTarget::Kind::kUnix;
    t.path = std::move(path);
    return t;
  }
  return std::nullopt;
}

std::vector<ProbeTarget> Sweeper::begin_round(const EndpointDb& db) {
  std::set<ProbeTarget> targets;
  for (const auto& [id, e] : db.entries())
    if (auto t = probe_target(e)) targets.insert(std::move(*t));
  std::erase_if(failed_, [&](const auto& kv) { return !targets.contains(kv.first); });
  return {targets.begin(), targets.end()};
}

void Sweeper::report(const ProbeTarget& target, bool alive) {
  if (alive) {
    failed_.erase(target);
  } else {
    ++failed_[target];
  }
}

std::vector<std::uint64_t> Sweeper::dead_entries(const EndpointDb& db) {
  std::vector<std::uint64_t> dead;
  std::set<ProbeTarget> reached;
  for (const auto& [target, n] : failed_)
    if (n >= failures_) reached.insert(target);
  if (reached.empty()) return dead;
  for (const auto& [id, e] : db.entries()) {
    auto t = probe_target(e);
    if (t && reached.contains(*t)) dead.push_back(id);
  }
  for (const auto& t : reached)
    failed_.erase(t);
  return dead;
}

std::uint32_t Sweeper::failures_of(const ProbeTarget& target) const {
  auto it = failed_.find(target);
  return it == failed_.end() ? 0 : it->second;
}

}  // namespace rpcgate::epm
