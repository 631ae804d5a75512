#include "firewall/epm_snoop.h"

#include <algorithm>
#include <charconv>

#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::firewall {
namespace {

// The interface floor of an encoded tower, if it decodes.
std::optional<rpc::SyntaxId> tower_interface(std::span<const std::uint8_t> octets) {
  auto tower = ndr::decode_tower(octets);
  if (!tower) return std::nullopt;
  auto view = ndr::view_tower(*tower);
  if (!view) return std::nullopt;
  return view->interface;
}

TowerDecision judge(std::span<const std::uint8_t> octets, const rpc::SyntaxId& asked,
                    const Address& server) {
  auto tower = ndr::decode_tower(octets);
  if (!tower) return {TowerVerdict::kUndecodable};
  auto view = ndr::view_tower(*tower);
  if (!view) return {TowerVerdict::kUndecodable};
  if (view->interface.uuid != asked.uuid || view->interface.major != asked.major)
    return {TowerVerdict::kOtherInterface};
  auto binding = ndr::tower_to_binding(*tower);
  if (!binding || binding->protseq != ndr::Protseq::kNcacnIpTcp) return {TowerVerdict::kNotTcp};
  const std::string& host = binding->network_addr;
  if (!host.empty() && host != "0.0.0.0") {
    const auto named = parse_address(host);
    if (!named || *named != server) return {TowerVerdict::kOtherHost};
  }
  unsigned port = 0;
  const std::string& ep = binding->endpoint;
  const auto [end, ec] = std::from_chars(ep.data(), ep.data() + ep.size(), port);
  if (ec != std::errc() || end != ep.data() + ep.size() || port == 0 || port > 65535)
    return {TowerVerdict::kNoPort};
  return {TowerVerdict::kOpen, static_cast<std::uint16_t>(port)};
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
  }
  return "?";
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
      d.towers.push_back({TowerVerdict::kNotAllowed});
    } else if (i >= policy.max_towers) {
      d.towers.push_back({TowerVerdict::kOverLimit});
    } else if (!octets) {
      d.towers.push_back({TowerVerdict::kNull});
    } else {
      d.towers.push_back(judge(*octets, *d.interface, server));
    }
  }
  return d;
}

}  // namespace rpcgate::firewall
