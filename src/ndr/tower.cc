#include "ndr/tower.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include <arpa/inet.h>

namespace rpcgate::ndr {
namespace {

using common::ByteReader;
using common::ByteWriter;
namespace pid = protocol_id;

constexpr std::size_t kUuidLhsLength = 19;  // id + uuid + u16 major

// Expected (lhs_len, rhs_len) for ids with a fixed layout; rhs 0 = any.
struct FloorShape {
  std::size_t lhs;
  std::size_t rhs;
};
std::optional<FloorShape> shape_of(std::uint8_t id) {
  switch (id) {
    case pid::kUuid:
      return FloorShape{kUuidLhsLength, 2};
    case pid::kNcadg:
    case pid::kNcacn:
    case pid::kNcalrpc:
    case pid::kTcp:
    case pid::kUdp:
    case pid::kHttp:
      return FloorShape{1, 2};
    case pid::kIp:
      return FloorShape{1, 4};
    default:
      break;
  }
  if (is_known_protocol_id(id)) return FloorShape{1, 0};
  return std::nullopt;
}

Result<void> check_floor(std::span<const std::uint8_t> lhs, std::span<const std::uint8_t> rhs) {
  if (lhs.empty()) return fail(Errc::kTowerFloorLength);
  const auto shape = shape_of(lhs[0]);
  if (!shape) return {};  // unknown id: preserved, not judged
  if (lhs.size() != shape->lhs) return fail(Errc::kTowerFloorLength);
  if (shape->rhs != 0 && rhs.size() != shape->rhs) return fail(Errc::kTowerFloorLength);
  return {};
}
Result<void> check_floor(const Floor& f) {
  return check_floor(f.lhs, f.rhs);
}

// SyntaxId from a 0x0d floor (lhs: id, uuid LE, major LE; rhs: minor LE), shape checked.
SyntaxId syntax_of(std::span<const std::uint8_t> lhs, std::span<const std::uint8_t> rhs) {
  ByteReader r(lhs, common::Endian::kLittle);
  r.skip(1);
  SyntaxId s;
  s.uuid = *common::Uuid::read(r);
  s.major = *r.u16();
  ByteReader rr(rhs, common::Endian::kLittle);
  s.minor = *rr.u16();
  return s;
}

// Floors 1-3 of a tower whose floors passed check_floor (view_tower, view_tower_head).
Result<TowerView> head_of(const FloorRef& f1, const FloorRef& f2, const FloorRef& f3) {
  if (f1.protocol_id() != pid::kUuid || f2.protocol_id() != pid::kUuid)
    return fail(Errc::kTowerBadFloor);
  const auto rpc = f3.protocol_id();
  if (rpc != pid::kNcacn && rpc != pid::kNcadg && rpc != pid::kNcalrpc)
    return fail(Errc::kTowerBadFloor);
  TowerView v;
  v.interface = syntax_of(f1.lhs, f1.rhs);
  v.transfer_syntax = syntax_of(f2.lhs, f2.rhs);
  v.rpc_protocol = rpc;
  v.rpc_protocol_minor = static_cast<std::uint16_t>(f3.rhs[0] | (f3.rhs[1] << 8));
  return v;
}

FloorRef ref_of(const Floor& f) {
  return {f.lhs, f.rhs};
}

Floor syntax_floor(const SyntaxId& s) {
  ByteWriter lhs(common::Endian::kLittle);
  lhs.u8(pid::kUuid);
  s.uuid.write(lhs);
  lhs.u16(s.major);
  ByteWriter rhs(common::Endian::kLittle);
  rhs.u16(s.minor);
  return Floor{lhs.take(), rhs.take()};
}

Floor simple_floor(std::uint8_t id, std::vector<std::uint8_t> rhs) {
  return Floor{{id}, std::move(rhs)};
}

std::vector<std::uint8_t> nul_terminated(std::string_view s) {
  std::vector<std::uint8_t> v(s.begin(), s.end());
  v.push_back(0);
  return v;
}

Result<std::string> floor_string(const Floor& f) {
  if (f.rhs.empty()) return std::string();
  if (f.rhs.back() != 0) return fail(Errc::kTowerFloorLength);
  std::string s(f.rhs.begin(), f.rhs.end() - 1);
  if (s.find('\0') != std::string::npos) return fail(Errc::kTowerFloorLength);
  return s;
}

struct ProtseqIds {
  Protseq protseq;
  std::array<std::uint8_t, 3> ids;
  std::size_t count;
};
constexpr std::array<ProtseqIds, 6> kProtseqIds{{
    {Protseq::kNcacnIpTcp, {pid::kNcacn, pid::kTcp, pid::kIp}, 3},
    {Protseq::kNcadgIpUdp, {pid::kNcadg, pid::kUdp, pid::kIp}, 3},
    {Protseq::kNcacnNp, {pid::kNcacn, pid::kSmb, pid::kNetbios}, 3},
    {Protseq::kNcacnHttp, {pid::kNcacn, pid::kHttp, pid::kIp}, 3},
    {Protseq::kNcalrpc, {pid::kNcalrpc, pid::kNamedPipe, 0}, 2},
    {Protseq::kNcacnUnixStream, {pid::kNcacn, pid::kUnixStream, 0}, 2},
}};

}  // namespace

bool is_known_protocol_id(std::uint8_t id) {
  return (id >= pid::kDnetNsp && id <= pid::kNbIpx) || (id >= pid::kDsp && id <= pid::kAppletalk) ||
         (id >= pid::kVinesSpp && id <= pid::kStreettalk) || (id >= pid::kHttp && id <= pid::kNull);
}

SyntaxId ndr20_syntax() {
  return rpc::kNdr20Syntax;
}
SyntaxId ndr64_syntax() {
  return rpc::kNdr64Syntax;
}

Result<TowerRef> scan_tower(std::span<const std::uint8_t> octets, const TowerLimits& limits) {
  // Towers are little-endian whatever the stub's byte order (C706 App. L).
  ByteReader r(octets, common::Endian::kLittle);
  const auto floor_count = r.u16();
  if (!floor_count) return fail(Errc::kTruncated);
  if (*floor_count < limits.min_floors || *floor_count > limits.max_floors ||
      *floor_count > kMaxTowerFloors)
    return fail(Errc::kTowerFloorCount);
  TowerRef t;
  for (std::uint16_t i = 0; i < *floor_count; ++i) {
    const auto lhs_len = r.u16();
    if (!lhs_len) return fail(Errc::kTruncated);
    const auto lhs = r.bytes(*lhs_len);
    if (!lhs) return fail(Errc::kTruncated);
    const auto rhs_len = r.u16();
    if (!rhs_len) return fail(Errc::kTruncated);
    const auto rhs = r.bytes(*rhs_len);
    if (!rhs) return fail(Errc::kTruncated);
    if (auto ok = check_floor(*lhs, *rhs); !ok) return std::unexpected(ok.error());
    t.floors[t.count++] = FloorRef{*lhs, *rhs};
  }
  if (!r.empty()) return fail(Errc::kTrailingBytes);
  return t;
}

Tower copy_tower(const TowerRef& tower) {
  Tower t;
  t.floors.reserve(tower.count);
  for (const auto& f : tower.all())
    t.floors.push_back(Floor{{f.lhs.begin(), f.lhs.end()}, {f.rhs.begin(), f.rhs.end()}});
  return t;
}

Result<Tower> decode_tower(std::span<const std::uint8_t> octets, const TowerLimits& limits) {
  auto scanned = scan_tower(octets, limits);
  if (!scanned) return std::unexpected(scanned.error());
  return copy_tower(*scanned);
}

std::vector<std::uint8_t> encode_tower(const Tower& tower) {
  ByteWriter w(common::Endian::kLittle);
  w.u16(static_cast<std::uint16_t>(tower.floors.size()));
  for (const auto& f : tower.floors) {
    w.u16(static_cast<std::uint16_t>(f.lhs.size()));
    w.bytes(f.lhs);
    w.u16(static_cast<std::uint16_t>(f.rhs.size()));
    w.bytes(f.rhs);
  }
  return w.take();
}

Result<TowerView> view_tower(const Tower& tower) {
  if (tower.floors.size() < 3) return fail(Errc::kTowerFloorCount);
  for (const auto& f : tower.floors)
    if (auto ok = check_floor(f); !ok) return std::unexpected(ok.error());
  auto v = head_of(ref_of(tower.floors[0]), ref_of(tower.floors[1]), ref_of(tower.floors[2]));
  if (!v) return v;
  v->address_floors.assign(tower.floors.begin() + 3, tower.floors.end());
  v->has_unknown_protocol =
      std::ranges::any_of(tower.floors, [](const Floor& f) { return !f.known(); });
  return v;
}

Result<TowerView> view_tower_head(const TowerRef& tower) {
  if (tower.count < 3) return fail(Errc::kTowerFloorCount);
  // Every floor passed check_floor in scan_tower.
  auto v = head_of(tower.floors[0], tower.floors[1], tower.floors[2]);
  if (!v) return v;
  v->has_unknown_protocol = std::ranges::any_of(
      tower.all(), [](const FloorRef& f) { return !is_known_protocol_id(f.protocol_id()); });
  return v;
}

Tower make_tower(const TowerView& view) {
  Tower t;
  t.floors.push_back(syntax_floor(view.interface));
  t.floors.push_back(syntax_floor(view.transfer_syntax));
  t.floors.push_back(
      simple_floor(view.rpc_protocol, {static_cast<std::uint8_t>(view.rpc_protocol_minor & 0xff),
                                       static_cast<std::uint8_t>(view.rpc_protocol_minor >> 8)}));
  t.floors.insert(t.floors.end(), view.address_floors.begin(), view.address_floors.end());
  return t;
}

Result<StringBinding> tower_to_binding(const Tower& tower) {
  auto view = view_tower(tower);
  if (!view) return std::unexpected(view.error());
  const auto& addr = view->address_floors;
  const ProtseqIds* match = nullptr;
  for (const auto& p : kProtseqIds) {
    if (addr.size() + 1 != p.count || p.ids[0] != view->rpc_protocol) continue;
    bool same = true;
    for (std::size_t i = 1; i < p.count; ++i)
      same = same && addr[i - 1].protocol_id() == p.ids[i];
    if (same) {
      match = &p;
      break;
    }
  }
  if (match == nullptr) return fail(Errc::kTowerUnsupported);
  StringBinding b;
  b.protseq = match->protseq;
  const Floor& ep = addr[0];
  if (is_ip_protseq(b.protseq)) {
    b.endpoint = std::to_string((ep.rhs[0] << 8) | ep.rhs[1]);  // big-endian port
    const auto& ip = addr[1].rhs;
    b.network_addr = std::to_string(ip[0]) + "." + std::to_string(ip[1]) + "." +
                     std::to_string(ip[2]) + "." + std::to_string(ip[3]);
  } else {
    auto endpoint = floor_string(ep);
    if (!endpoint) return std::unexpected(endpoint.error());
    b.endpoint = std::move(*endpoint);
    if (addr.size() > 1) {
      auto host = floor_string(addr[1]);
      if (!host) return std::unexpected(host.error());
      b.network_addr = std::move(*host);
    }
  }
  return b;
}

std::string describe_floors(const Tower& tower) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto byte = [](std::string& out, std::uint8_t b) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  };
  std::string out = "floors(";
  for (std::size_t i = 2; i < tower.floors.size(); ++i) {
    const auto& f = tower.floors[i];
    if (i > 2) out += "; ";
    out += "0x";
    byte(out, f.protocol_id());
    if (i == 2) continue;  // the RPC protocol floor: its minor version says nothing here
    out += ':';
    for (auto b : f.rhs)
      byte(out, b);
  }
  return out + ")";
}

Result<Tower> binding_to_tower(const StringBinding& binding, const SyntaxId& interface,
                               const SyntaxId& transfer_syntax) {
  const ProtseqIds* p = nullptr;
  for (const auto& e : kProtseqIds)
    if (e.protseq == binding.protseq) p = &e;
  if (p == nullptr) return fail(Errc::kTowerUnsupported);
  TowerView v;
  v.interface = interface;
  v.transfer_syntax = transfer_syntax;
  v.rpc_protocol = p->ids[0];
  if (is_ip_protseq(binding.protseq)) {
    unsigned port = 0;
    if (!binding.endpoint.empty()) {
      const char* first = binding.endpoint.data();
      const char* last = first + binding.endpoint.size();
      auto [ptr, ec] = std::from_chars(first, last, port);
      if (ec != std::errc{} || ptr != last || port > 65535) return fail(Errc::kBindingBadEndpoint);
    }
    std::array<std::uint8_t, 4> ip{};
    if (!binding.network_addr.empty() &&
        inet_pton(AF_INET, binding.network_addr.c_str(), ip.data()) != 1)
      return fail(Errc::kTowerUnsupported);
    v.address_floors.push_back(simple_floor(
        p->ids[1], {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port & 0xff)}));
    v.address_floors.push_back(simple_floor(p->ids[2], {ip.begin(), ip.end()}));
  } else {
    v.address_floors.push_back(simple_floor(p->ids[1], nul_terminated(binding.endpoint)));
    if (p->count == 3)
      v.address_floors.push_back(simple_floor(p->ids[2], nul_terminated(binding.network_addr)));
  }
  return make_tower(v);
}

Result<std::vector<std::uint8_t>> decode_twr(Decoder& decoder) {
  auto shape = decoder.conformant_array(1);  // max_count; limit + remaining checked
  if (!shape) return std::unexpected(shape.error());
  auto tower_length = decoder.u32();
  if (!tower_length) return std::unexpected(tower_length.error());
  if (*tower_length != shape->max_count) return fail(Errc::kCountInconsistent);
  auto octets = decoder.bytes(*tower_length);
  if (!octets) return std::unexpected(octets.error());
  return std::vector<std::uint8_t>(octets->begin(), octets->end());
}

void encode_twr(Encoder& encoder, std::span<const std::uint8_t> octets) {
  encoder.conformance(static_cast<std::uint32_t>(octets.size()));
  encoder.u32(static_cast<std::uint32_t>(octets.size()));
  encoder.bytes(octets);
}

}  // namespace rpcgate::ndr
