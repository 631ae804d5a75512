#include "epm/port_broker.h"

#include <fmt/format.h>

namespace rpcgate::epm {
namespace {

policy::PortClass resolve_class(const policy::Policy& p, policy::PortClass cls) {
  return cls == policy::PortClass::kDefault ? p.default_class : cls;
}

}  // namespace

std::string BrokerEvent::to_string() const {
  return fmt::format(
      "{} code={} source=\"{}\" class={} owner={} internet={}/{} free intranet={}/{} free: {}",
      event_id, code, policy_source, policy::to_string(resolved), owner, internet.free,
      internet.capacity, intranet.free, intranet.capacity, offending);
}

PortBroker::PortBroker(const policy::Policy& policy, std::optional<std::uint64_t> seed)
    : policy_(policy), seed_(seed), allocator_(policy, seed) {}

BrokerEvent PortBroker::make_event(std::error_code code, policy::PortClass cls,
                                   std::uint64_t owner) const {
  const auto s = allocator_.stats();
  BrokerEvent ev;
  ev.code = code.value();
  ev.policy_source = policy_.source;
  ev.requested = cls;
  ev.resolved = resolve_class(policy_, cls);
  ev.owner = owner;
  ev.internet = s.internet;
  ev.intranet = s.intranet;
  if (code == policy::Errc::kInvalidParameter) {
    ev.event_id = kEventInvalidPolicy;
    ev.offending = policy_.error ? policy_.error->message
                                 : fmt::format("port class {} is not valid", static_cast<int>(cls));
  } else {
    ev.event_id = kEventPortsExhausted;
    const auto capacity = allocator_.capacity(cls);
    const auto free = allocator_.free_count(cls);
    ev.offending =
        free == 0 ? fmt::format("no free port in the {} class ({} ports, all held)",
                                policy::to_string(ev.resolved), capacity)
                  : fmt::format("every free port of the {} class ({} of {}) failed the bind probe",
                                policy::to_string(ev.resolved), free, capacity);
  }
  return ev;
}

std::expected<std::uint16_t, BrokerFailure> PortBroker::allocate(std::uint64_t owner,
                                                                 policy::PortClass cls,
                                                                 const policy::BindProbe& probe) {
  auto port = allocator_.allocate(cls, probe);
  if (!port) {
    if (port.error() == policy::Errc::kInvalidParameter)
      ++stats_.failures_invalid;
    else
      ++stats_.failures_exhausted;
    return std::unexpected(BrokerFailure{port.error(), make_event(port.error(), cls, owner)});
  }
  owner_of_[*port] = owner;
  by_owner_[owner].insert(*port);
  ++stats_.allocations;
  return *port;
}

bool PortBroker::release(std::uint64_t owner, std::uint16_t port) {
  auto it = owner_of_.find(port);
  if (it == owner_of_.end() || it->second != owner) return false;
  owner_of_.erase(it);
  auto& mine = by_owner_[owner];
  mine.erase(port);
  if (mine.empty()) by_owner_.erase(owner);
  (void)allocator_.release(port);  // held by construction
  ++stats_.releases;
  return true;
}

std::vector<std::uint16_t> PortBroker::release_owner(std::uint64_t owner) {
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return {};
  std::vector<std::uint16_t> ports(it->second.begin(), it->second.end());
  by_owner_.erase(it);
  for (auto port : ports) {
    owner_of_.erase(port);
    (void)allocator_.release(port);
    ++stats_.releases;
  }
  return ports;
}

std::vector<std::uint16_t> PortBroker::holdings(std::uint64_t owner) const {
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

std::optional<std::uint64_t> PortBroker::owner_of(std::uint16_t port) const {
  auto it = owner_of_.find(port);
  if (it == owner_of_.end()) return std::nullopt;
  return it->second;
}

ReloadReport PortBroker::reload(const policy::Policy& policy) {
  ReloadReport report;
  policy_ = policy;
  allocator_ = policy::PortAllocator(policy_, seed_);
  for (auto it = owner_of_.begin(); it != owner_of_.end();) {
    const auto [port, owner] = *it;
    if (allocator_.hold(port)) {
      report.kept.push_back(port);
      ++it;
    } else {
      report.dropped.push_back(port);
      auto& mine = by_owner_[owner];
      mine.erase(port);
      if (mine.empty()) by_owner_.erase(owner);
      it = owner_of_.erase(it);
    }
  }
  ++stats_.reloads;
  stats_.dropped_on_reload += report.dropped.size();
  return report;
}

BrokerStats PortBroker::stats() const {
  BrokerStats s = stats_;
  s.allocator = allocator_.stats();
  s.owners = by_owner_.size();
  s.held = owner_of_.size();
  return s;
}

}  // namespace rpcgate::epm
