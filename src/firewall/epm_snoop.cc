#include "firewall/epm_snoop.h"

#include <algorithm>
#include <charconv>

#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::firewall {
namespace {

// A decision that says only its verdict.
TowerDecision only(TowerVerdict v) {
  return TowerDecision{v, 0, {}, std::nullopt};
}

// The interface floor of an encoded tower, if it decodes.
std::optional<rpc::SyntaxId> tower_interface(std::span<const std::uint8_t> octets) {
  auto tower = ndr::decode_tower(octets);
  if (!tower) return std::nullopt;
  auto view = ndr::view_tower(*tower);
  if (!view) return std::nullopt;
  return view->interface;
}

TowerDecision judge(std::span<const std::uint8_t> octets, const rpc::SyntaxId& asked,
                    const Address& server, const MapPolicy& policy) {
  auto tower = ndr::decode_tower(octets);
  if (!tower) return only(TowerVerdict::kUndecodable);
  auto view = ndr::view_tower(*tower);
  if (!view) return only(TowerVerdict::kUndecodable);
  if (view->interface.uuid != asked.uuid || view->interface.major != asked.major)
    return {TowerVerdict::kOtherInterface, 0, {}, view->interface};
  auto binding = ndr::tower_to_binding(*tower);
  if (!binding || binding->protseq != ndr::Protseq::kNcacnIpTcp)
    return {TowerVerdict::kNotTcp, 0, {}, view->interface};
  const std::string& host = binding->network_addr;
  std::optional<Address> third;  // a host other than the server (a referral)
  if (!host.empty() && host != "0.0.0.0") {
    const auto named = parse_address(host);
    if (!named) return {TowerVerdict::kOtherHost, 0, {}, view->interface};
    // Behind static NAT the server names itself by its private address.
    const bool is_server =
        *named == server || (policy.nat_private && *named == *policy.nat_private);
    if (!is_server) {
      if (!policy.referral) return {TowerVerdict::kOtherHost, 0, *named, view->interface};
      third = *named;
    }
  }
  unsigned port = 0;
  const std::string& ep = binding->endpoint;
  const auto [end, ec] = std::from_chars(ep.data(), ep.data() + ep.size(), port);
  if (ec != std::errc() || end != ep.data() + ep.size() || port == 0 || port > 65535)
    return {TowerVerdict::kNoPort, 0, third.value_or(Address{}), view->interface};
  if (third) {
    return {policy.referral(view->interface, *third), static_cast<std::uint16_t>(port), *third,
            view->interface};
  }
  return {TowerVerdict::kOpen, static_cast<std::uint16_t>(port), server, view->interface};
}

}  // namespace

std::optional<rpc::SyntaxId> requested_interface(std::span<const std::uint8_t> request_stub,
                                                 common::Endian endian, std::uint32_t* max_towers) {
  auto request = ndr::epm::decode_ept_map_request(request_stub, endian);
  if (!request || !request->map_tower) return std::nullopt;
  if (max_towers != nullptr) *max_towers = request->max_towers;
  return tower_interface(*request->map_tower);
}

std::string_view to_string(TowerVerdict v) {
  switch (v) {
    case TowerVerdict::kOpen:
      return "open";
    case TowerVerdict::kUndecodable:
      return "tower does not decode";
    case TowerVerdict::kNull:
      return "null tower";
    case TowerVerdict::kOtherInterface:
      return "tower names another interface";
    case TowerVerdict::kNotTcp:
      return "not ncacn_ip_tcp";
    case TowerVerdict::kOtherHost:
      return "tower names another host";
    case TowerVerdict::kNoPort:
      return "no port";
    case TowerVerdict::kOverLimit:
      return "more towers than allowed";
    case TowerVerdict::kNotAllowed:
      return "interface not allowed";
    case TowerVerdict::kReferral:
      return "referral";
    case TowerVerdict::kReferralNotAllowed:
      return "referral: the rule does not allow referrals";
    case TowerVerdict::kReferralAnyServers:
      return "referral: [firewall] servers is any, so referrals never open";
    case TowerVerdict::kReferralOutsideServers:
      return "referral: the host is outside [firewall] servers";
    case TowerVerdict::kReferralRuleMismatch:
      return "referral: the rule does not apply to the host";
  }
  return "?";
}

bool opens(TowerVerdict v) {
  return v == TowerVerdict::kOpen || v == TowerVerdict::kReferral;
}

std::vector<std::pair<Address, std::uint16_t>> MapDecision::targets() const {
  std::vector<std::pair<Address, std::uint16_t>> out;
  for (const auto& t : towers) {
    if (!opens(t.verdict)) continue;
    const std::pair target{t.host, t.port};
    if (std::find(out.begin(), out.end(), target) == out.end()) out.push_back(target);
  }
  return out;
}

std::vector<std::uint16_t> MapDecision::ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& t : towers)
    if (t.verdict == TowerVerdict::kOpen && std::find(out.begin(), out.end(), t.port) == out.end())
      out.push_back(t.port);
  return out;
}

std::expected<MapDecision, std::error_code> decide_ept_map(
    std::span<const std::uint8_t> request_stub, common::Endian request_endian,
    std::span<const std::uint8_t> response_stub, common::Endian response_endian,
    const Address& server, const MapPolicy& policy) {
  auto request = ndr::epm::decode_ept_map_request(request_stub, request_endian);
  if (!request) return std::unexpected(request.error());
  auto response = ndr::epm::decode_ept_map_response(response_stub, response_endian);
  if (!response) return std::unexpected(response.error());
  MapDecision d;
  d.status = response->status;
  if (request->map_tower) d.interface = tower_interface(*request->map_tower);
  d.allowed = d.interface && policy.allowed && policy.allowed(*d.interface);
  d.towers.reserve(response->towers.size());
  for (std::size_t i = 0; i < response->towers.size(); ++i) {
    const auto& octets = response->towers[i];
    if (!d.allowed) {
      d.towers.push_back(only(TowerVerdict::kNotAllowed));
    } else if (i >= policy.max_towers) {
      d.towers.push_back(only(TowerVerdict::kOverLimit));
    } else if (!octets) {
      d.towers.push_back(only(TowerVerdict::kNull));
    } else {
      d.towers.push_back(judge(*octets, *d.interface, server, policy));
    }
  }
  return d;
}

std::expected<LookupDecision, std::error_code> decide_ept_lookup(
    std::span<const std::uint8_t> response_stub, common::Endian response_endian,
    const Address& server, const MapPolicy& policy) {
  auto response = ndr::epm::decode_ept_lookup_response(response_stub, response_endian);
  if (!response) return std::unexpected(response.error());
  LookupDecision d;
  d.status = response->status;
  d.entries.reserve(response->entries.size());
  for (std::size_t i = 0; i < response->entries.size(); ++i) {
    const auto& octets = response->entries[i].tower;
    if (i >= policy.max_towers) {
      d.entries.push_back(only(TowerVerdict::kOverLimit));
      continue;
    }
    if (!octets) {
      d.entries.push_back(only(TowerVerdict::kNull));
      continue;
    }
    const auto interface = tower_interface(*octets);
    if (!interface) {
      d.entries.push_back(only(TowerVerdict::kUndecodable));
    } else if (!policy.allowed || !policy.allowed(*interface)) {
      d.entries.push_back({TowerVerdict::kNotAllowed, 0, {}, interface});
    } else {
      d.entries.push_back(judge(*octets, *interface, server, policy));
    }
  }
  return d;
}

namespace {

// The stub offset of the 4 address octets of an ncacn_ip_tcp tower naming `private_address` or
// 0.0.0.0 whose octets start at `start`, if it is one.
std::optional<std::size_t> nat_offset(std::span<const std::uint8_t> stub, std::size_t start,
                                      std::size_t length, const Address& private_address) {
  const auto octets = stub.subspan(start, length);
  auto tower = ndr::scan_tower(octets);
  if (!tower) return std::nullopt;
  const auto floors = tower->all();
  const bool tcp = std::ranges::any_of(
      floors, [](const ndr::FloorRef& f) { return f.protocol_id() == ndr::protocol_id::kTcp; });
  if (!tcp) return std::nullopt;
  for (const auto& f : floors) {
    if (f.protocol_id() != ndr::protocol_id::kIp || f.rhs.size() != 4) continue;
    const bool any = std::ranges::all_of(f.rhs, [](std::uint8_t b) { return b == 0; });
    const bool named = std::equal(f.rhs.begin(), f.rhs.end(), private_address.begin() + 12);
    if (!any && !named) return std::nullopt;
    return start + static_cast<std::size_t>(f.rhs.data() - octets.data());
  }
  return std::nullopt;
}

}  // namespace

std::expected<std::vector<std::size_t>, std::error_code> nat_address_offsets(
    std::span<const std::uint8_t> response_stub, common::Endian endian, bool lookup,
    const Address& private_address) {
  // Decoded whole first (every check of the decoder: counts, pointers, trailing bytes), then
  // walked again the same way to learn where each tower's octets lie.
  if (lookup) {
    if (auto r = ndr::epm::decode_ept_lookup_response(response_stub, endian); !r)
      return std::unexpected(r.error());
  } else if (auto r = ndr::epm::decode_ept_map_response(response_stub, endian); !r) {
    return std::unexpected(r.error());
  }
  ndr::Decoder d(response_stub, endian);
  std::vector<std::pair<std::size_t, std::size_t>> towers;  // start, length
  const auto read_pointer = [&]() -> ndr::Result<void> {
    auto fp = d.full_pointer();
    if (!fp) return std::unexpected(fp.error());
    if (fp->is_null() || !fp->first) return {};  // an alias: its octets are on the wire once
    d.defer([&towers](ndr::Decoder& dd) -> ndr::Result<void> {
      auto octets = ndr::decode_twr(dd);
      if (!octets) return std::unexpected(octets.error());
      towers.emplace_back(dd.position() - octets->size(), octets->size());
      return {};
    });
    return {};
  };
  const auto walk = [&]() -> ndr::Result<void> {
    if (auto h = d.context_handle(); !h) return std::unexpected(h.error());
    if (auto n = d.u32(); !n) return std::unexpected(n.error());
    auto shape = d.conformant_varying_array(lookup ? 28 : 4);
    if (!shape) return std::unexpected(shape.error());
    for (std::uint32_t i = 0; i < shape->actual_count; ++i) {
      if (lookup) {
        if (auto u = d.uuid(); !u) return std::unexpected(u.error());
      }
      if (auto r = read_pointer(); !r) return r;
      if (lookup) {
        if (auto a = d.varying_string(ndr::epm::kMaxAnnotationSize); !a)
          return std::unexpected(a.error());
      }
    }
    return d.flush_deferred();
  };
  if (auto r = walk(); !r) return std::unexpected(r.error());
  std::vector<std::size_t> out;
  for (const auto& [start, length] : towers)
    if (auto off = nat_offset(response_stub, start, length, private_address)) out.push_back(*off);
  return out;
}

}  // namespace rpcgate::firewall
