#include "firewall/pinholes.h"

#include <algorithm>
#include <charconv>

#include <arpa/inet.h>

#include "rpc/association.h"

namespace rpcgate::firewall {

Address ipv4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return Address{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

std::optional<Address> parse_address(const std::string& text) {
  Address out{};
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v4);
    return ipv4(b[0], b[1], b[2], b[3]);
  }
  if (::inet_pton(AF_INET6, text.c_str(), out.data()) == 1) return out;
  return std::nullopt;
}

std::string to_string(const Address& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  const bool mapped = std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) &&
                      a[10] == 0xff && a[11] == 0xff;
  if (mapped) return ::inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  return ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
}

std::string interfaces_comment(const std::vector<rpc::SyntaxId>& interfaces) {
  std::string c;
  for (const auto& s : interfaces) {
    std::string one =
        s.uuid.to_string() + ":" + std::to_string(s.major) + "." + std::to_string(s.minor);
    if (c.size() + one.size() + (c.empty() ? 0 : 1) > kMaxPinholeComment) break;
    if (!c.empty()) c += ',';
    c += one;
  }
  return c;
}

std::vector<rpc::SyntaxId> parse_interfaces_comment(std::string_view c) {
  std::vector<rpc::SyntaxId> out;
  auto number = [](std::string_view t, std::uint16_t& v) {
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && end == t.data() + t.size() && !t.empty();
  };
  while (!c.empty()) {
    const auto comma = c.find(',');
    const std::string_view one = c.substr(0, comma);
    c = comma == std::string_view::npos ? std::string_view{} : c.substr(comma + 1);
    const auto colon = one.find(':');
    if (colon == std::string_view::npos) continue;
    const auto dot = one.find('.', colon);
    if (dot == std::string_view::npos) continue;
    auto uuid = common::Uuid::parse(one.substr(0, colon));
    rpc::SyntaxId s;
    if (!uuid || !number(one.substr(colon + 1, dot - colon - 1), s.major) ||
        !number(one.substr(dot + 1), s.minor))
      continue;
    s.uuid = *uuid;
    out.push_back(s);
  }
  return out;
}

std::string_view to_string(OpenResult r) {
  switch (r) {
    case OpenResult::kOpened:
      return "opened";
    case OpenResult::kRefreshed:
      return "refreshed";
    case OpenResult::kTooManyInterfaces:
      return "interfaces per pinhole exhausted";
    case OpenResult::kClientFull:
      return "pinholes per client exhausted";
    case OpenResult::kTableFull:
      return "pinhole table full";
  }
  return "?";
}

OpenResult PinholeTable::open(const PinholeKey& key, const rpc::SyntaxId& interface, TimePoint now,
                              std::chrono::milliseconds timeout) {
  expire(now);
  TimePoint expires = now + timeout;
  if (auto it = pinholes_.find(key); it != pinholes_.end()) {
    Pinhole& p = it->second;
    expires = std::max(expires, p.expires);
    // One index entry per pinhole (a client refreshing often must not grow the index).
    auto [lo, hi] = by_expiry_.equal_range(p.expires);
    for (auto e = lo; e != hi; ++e) {
      if (e->second == key) {
        by_expiry_.erase(e);
        break;
      }
    }
    p.expires = expires;
    by_expiry_.emplace(expires, key);
    if (std::find(p.interfaces.begin(), p.interfaces.end(), interface) != p.interfaces.end())
      return OpenResult::kRefreshed;
    if (p.interfaces.size() >= limits_.max_interfaces) return OpenResult::kTooManyInterfaces;
    p.interfaces.push_back(interface);
    return OpenResult::kRefreshed;
  }
  if (pinholes_.size() >= limits_.max_total) return OpenResult::kTableFull;
  auto& n = per_client_[key.client];
  if (n >= limits_.max_per_client) {
    if (n == 0) per_client_.erase(key.client);
    return OpenResult::kClientFull;
  }
  ++n;
  pinholes_.emplace(key, Pinhole{key, {interface}, expires});
  by_expiry_.emplace(expires, key);
  return OpenResult::kOpened;
}

const Pinhole* PinholeTable::find(const PinholeKey& key, TimePoint now) const {
  auto it = pinholes_.find(key);
  if (it == pinholes_.end() || now >= it->second.expires) return nullptr;
  return &it->second;
}

bool PinholeTable::allows(const PinholeKey& key, const rpc::SyntaxId& interface,
                          TimePoint now) const {
  const Pinhole* p = find(key, now);
  if (p == nullptr) return false;
  return std::any_of(p->interfaces.begin(), p->interfaces.end(), [&](const rpc::SyntaxId& offered) {
    return rpc::interface_matches(offered, interface);
  });
}

std::size_t PinholeTable::expire(TimePoint now) {
  std::size_t dropped = 0;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
    const PinholeKey key = by_expiry_.begin()->second;
    const TimePoint when = by_expiry_.begin()->first;
    by_expiry_.erase(by_expiry_.begin());
    auto it = pinholes_.find(key);
    if (it == pinholes_.end() || it->second.expires != when) continue;  // cannot happen
    pinholes_.erase(it);
    if (auto c = per_client_.find(key.client); c != per_client_.end() && --c->second == 0)
      per_client_.erase(c);
    ++dropped;
  }
  return dropped;
}

std::optional<TimePoint> PinholeTable::next_expiry() const {
  if (by_expiry_.empty()) return std::nullopt;
  return by_expiry_.begin()->first;
}

std::size_t PinholeTable::count_for(const Address& client) const {
  auto it = per_client_.find(client);
  return it == per_client_.end() ? 0 : it->second;
}

}  // namespace rpcgate::firewall
