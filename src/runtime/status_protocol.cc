#include "runtime/status_protocol.h"

#include <algorithm>
#include <unordered_map>

#include "ndr/ndr.h"

namespace rpcgate::runtime::status {
namespace {

using ndr::Errc;
using ndr::Result;

// Upper bounds of each element's encoded size, pad included (see the layout in the header): the
// struct's alignment pad (at most 7 before a hyper), its fixed members, and per varying string
// at most 3 pad, 8 of header and the characters with the NUL.
constexpr std::size_t kFixedBound = 64;  // flags, now, four conformances, status, their pad
constexpr std::size_t kPoolBound = 16;
constexpr std::size_t kPortBound = 7 + 20;
std::size_t lease_bound(const Lease& l) {
  return 7 + 28 + 3 + 8 + l.command.size() + 1;
}
std::size_t registration_bound(const Registration& r) {
  return 7 + 52 + 2 * (3 + 8) + r.annotation.size() + 1 + r.binding.size() + 1;
}

// The least each element takes on the wire (no pad, empty strings): what a count is checked
// against before anything is allocated.
constexpr std::size_t kPoolWire = 16;
constexpr std::size_t kLeaseWire = 28 + 8 + 1;
constexpr std::size_t kPortWire = 20;
constexpr std::size_t kRegistrationWire = 52 + 2 * (8 + 1);

// A [string] char x[bound]: no NUL inside, at most bound - 1 characters.
std::string fit_string(const std::string& s, std::uint32_t bound) {
  std::string out = s.substr(0, s.find('\0'));
  if (out.size() > bound - 1) out.resize(bound - 1);
  return out;
}

Registration fit_registration(const Registration& r) {
  Registration out = r;
  out.annotation = fit_string(r.annotation, kAnnotationBound);
  out.binding = fit_string(r.binding, kBindingBound);
  return out;
}

bool valid_class(std::uint32_t c) {
  return c == static_cast<std::uint32_t>(policy::PortClass::kInternet) ||
         c == static_cast<std::uint32_t>(policy::PortClass::kIntranet);
}

void encode_registration(ndr::Encoder& e, const Registration& r) {
  e.u64(r.connection_id);
  e.u32(static_cast<std::uint32_t>(r.kind));
  e.u32(r.uid);
  e.uuid(r.object);
  e.uuid(r.interface);
  e.u16(r.major);
  e.u16(r.minor);
  e.varying_string(r.annotation);
  e.varying_string(r.binding);
}

#define STATUS_TRY(var, expr) \
  auto var = (expr);          \
  if (!var) return std::unexpected(var.error())

Result<std::uint32_t> count(ndr::Decoder& d, std::size_t wire_size, std::size_t limit,
                            std::size_t decoded_size) {
  STATUS_TRY(shape, d.conformant_array(wire_size));
  if (shape->actual_count > limit) return ndr::fail(Errc::kCountOverLimit);
  if (auto r = d.charge(std::size_t{shape->actual_count} * decoded_size); !r)
    return std::unexpected(r.error());
  return shape->actual_count;
}

Result<Registration> decode_registration(ndr::Decoder& d) {
  Registration r;
  STATUS_TRY(connection_id, d.u64());
  STATUS_TRY(kind, d.u32());
  STATUS_TRY(uid, d.u32());
  STATUS_TRY(object, d.uuid());
  STATUS_TRY(interface, d.uuid());
  STATUS_TRY(major, d.u16());
  STATUS_TRY(minor, d.u16());
  STATUS_TRY(annotation, d.varying_string(kAnnotationBound));
  STATUS_TRY(binding, d.varying_string(kBindingBound));
  if (*kind > static_cast<std::uint32_t>(Kind::kEpmd)) return ndr::fail(Errc::kEnumOutOfRange);
  r.kind = static_cast<Kind>(*kind);
  r.connection_id = *connection_id;
  if ((r.kind == Kind::kLeased) != (r.connection_id != 0))
    return ndr::fail(Errc::kCountInconsistent);
  r.uid = *uid;
  r.object = *object;
  r.interface = *interface;
  r.major = *major;
  r.minor = *minor;
  r.annotation = std::move(*annotation);
  r.binding = std::move(*binding);
  return r;
}

Result<StatusReport> decode_report(ndr::Decoder& d, const StatusLimits& limits) {
  StatusReport v;
  STATUS_TRY(flags, d.u32());
  v.truncated = (*flags & kFlagTruncated) != 0;
  STATUS_TRY(now, d.u64());
  v.now = *now;

  STATUS_TRY(pools, count(d, kPoolWire, limits.max_pools, sizeof(Pool)));
  for (std::uint32_t i = 0; i < *pools; ++i) {
    STATUS_TRY(cls, d.u32());
    STATUS_TRY(size, d.u32());
    STATUS_TRY(held, d.u32());
    STATUS_TRY(free_ports, d.u32());
    if (!valid_class(*cls)) return ndr::fail(Errc::kEnumOutOfRange);
    v.pools.push_back({static_cast<policy::PortClass>(*cls), *size, *held, *free_ports});
  }

  std::unordered_map<std::uint64_t, std::size_t> lease_index;
  STATUS_TRY(leases, count(d, kLeaseWire, limits.max_leases, sizeof(Lease)));
  v.leases.reserve(*leases);
  for (std::uint32_t i = 0; i < *leases; ++i) {
    Lease l;
    STATUS_TRY(connection_id, d.u64());
    STATUS_TRY(since, d.u64());
    STATUS_TRY(pid, d.u32());
    STATUS_TRY(uid, d.u32());
    STATUS_TRY(gid, d.u32());
    STATUS_TRY(command, d.varying_string(kCommandBound));
    if (*connection_id == 0 || !lease_index.emplace(*connection_id, i).second)
      return ndr::fail(Errc::kCountInconsistent);
    l.connection_id = *connection_id;
    l.since = *since;
    l.pid = *pid;
    l.uid = *uid;
    l.gid = *gid;
    l.command = std::move(*command);
    v.leases.push_back(std::move(l));
  }

  STATUS_TRY(ports, count(d, kPortWire, limits.max_ports, sizeof(HeldPort)));
  for (std::uint32_t i = 0; i < *ports; ++i) {
    STATUS_TRY(connection_id, d.u64());
    STATUS_TRY(since, d.u64());
    STATUS_TRY(port, d.u16());
    STATUS_TRY(cls, d.u16());
    if (!valid_class(*cls)) return ndr::fail(Errc::kEnumOutOfRange);
    auto it = lease_index.find(*connection_id);
    if (it == lease_index.end()) return ndr::fail(Errc::kCountInconsistent);
    v.leases[it->second].ports.push_back({*port, static_cast<policy::PortClass>(*cls), *since});
  }

  STATUS_TRY(registrations,
             count(d, kRegistrationWire, limits.max_registrations, sizeof(Registration)));
  for (std::uint32_t i = 0; i < *registrations; ++i) {
    STATUS_TRY(r, decode_registration(d));
    if (r->kind != Kind::kLeased) {
      v.registrations.push_back(std::move(*r));
      continue;
    }
    auto it = lease_index.find(r->connection_id);
    if (it == lease_index.end()) return ndr::fail(Errc::kCountInconsistent);
    v.leases[it->second].registrations.push_back(std::move(*r));
  }
  STATUS_TRY(status, d.u32());
  v.status = *status;
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return v;
}

}  // namespace

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::kLeased:
      return "leased";
    case Kind::kPersistent:
      return "persistent";
    case Kind::kStatic:
      return "static";
    case Kind::kEpmd:
      return "epmd";
  }
  return "?";
}

std::vector<std::uint8_t> encode(const QueryStatusRequest& v, common::Endian endian) {
  common::ByteWriter w(endian);
  w.u32(v.flags);
  return w.take();
}

std::expected<QueryStatusRequest, std::error_code> decode_query_status_request(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  common::ByteReader r(stub, endian);
  auto flags = r.u32();
  if (!flags || !r.empty()) return std::unexpected(std::make_error_code(std::errc::bad_message));
  return QueryStatusRequest{*flags};
}

StatusReport fit(const StatusReport& report, const StatusLimits& limits) {
  StatusReport out;
  out.status = report.status;
  out.now = report.now;
  out.truncated = report.truncated;
  if (report.status != 0) return out;
  std::size_t budget =
      limits.max_response_bytes > kFixedBound ? limits.max_response_bytes - kFixedBound : 0;
  // Takes `cost` bytes of the budget if there are that many left.
  auto take = [&budget](std::size_t cost) {
    if (cost > budget) return false;
    budget -= cost;
    return true;
  };
  for (const auto& p : report.pools) {
    if (out.pools.size() >= limits.max_pools || !take(kPoolBound)) {
      out.truncated = true;
      break;
    }
    out.pools.push_back(p);
  }
  std::size_t ports = 0;
  std::size_t registrations = 0;
  for (const auto& l : report.leases) {
    Lease fitted = l;
    fitted.command = fit_string(l.command, kCommandBound);
    std::size_t cost = lease_bound(fitted) + kPortBound * l.ports.size();
    for (auto& r : fitted.registrations) {
      r = fit_registration(r);
      // A lease's registrations are its own, whatever the caller filled in.
      r.kind = Kind::kLeased;
      r.connection_id = l.connection_id;
      cost += registration_bound(r);
    }
    if (out.leases.size() >= limits.max_leases || ports + l.ports.size() > limits.max_ports ||
        registrations + fitted.registrations.size() > limits.max_registrations || !take(cost)) {
      out.truncated = true;
      continue;
    }
    ports += fitted.ports.size();
    registrations += fitted.registrations.size();
    out.leases.push_back(std::move(fitted));
  }
  for (const auto& r : report.registrations) {
    Registration fitted = fit_registration(r);
    // Not under a listed lease: the wire cannot say "leased" for it.
    if (fitted.kind == Kind::kLeased) fitted.kind = Kind::kPersistent;
    fitted.connection_id = 0;
    if (registrations >= limits.max_registrations || !take(registration_bound(fitted))) {
      out.truncated = true;
      continue;
    }
    ++registrations;
    out.registrations.push_back(std::move(fitted));
  }
  return out;
}

std::vector<std::uint8_t> encode(const StatusReport& report, common::Endian endian,
                                 const StatusLimits& limits) {
  const StatusReport v = fit(report, limits);
  ndr::Encoder e(endian);
  e.u32(v.truncated ? kFlagTruncated : 0);
  e.u64(v.now);
  e.conformance(static_cast<std::uint32_t>(v.pools.size()));
  for (const auto& p : v.pools) {
    e.u32(static_cast<std::uint32_t>(p.port_class));
    e.u32(p.size);
    e.u32(p.held);
    e.u32(p.free);
  }
  e.conformance(static_cast<std::uint32_t>(v.leases.size()));
  std::size_t ports = 0;
  std::size_t leased = 0;
  for (const auto& l : v.leases) {
    e.u64(l.connection_id);
    e.u64(l.since);
    e.u32(l.pid);
    e.u32(l.uid);
    e.u32(l.gid);
    e.varying_string(l.command);
    ports += l.ports.size();
    leased += l.registrations.size();
  }
  e.conformance(static_cast<std::uint32_t>(ports));
  for (const auto& l : v.leases) {
    for (const auto& p : l.ports) {
      e.u64(l.connection_id);
      e.u64(p.since);
      e.u16(p.port);
      e.u16(static_cast<std::uint16_t>(p.port_class));
    }
  }
  e.conformance(static_cast<std::uint32_t>(leased + v.registrations.size()));
  for (const auto& l : v.leases) {
    for (const auto& r : l.registrations)
      encode_registration(e, r);
  }
  for (const auto& r : v.registrations)
    encode_registration(e, r);
  e.u32(v.status);
  return e.take();
}

std::expected<StatusReport, std::error_code> decode_status_report(
    std::span<const std::uint8_t> stub, common::Endian endian, const StatusLimits& limits) {
  if (stub.size() > limits.max_response_bytes) return ndr::fail(Errc::kCountOverLimit);
  ndr::DecodeLimits nl;
  nl.max_array_elements = std::max({limits.max_pools, limits.max_leases, limits.max_ports,
                                    limits.max_registrations, std::size_t{1}});
  nl.max_string_length = kBindingBound;
  // What a stub of max_response_bytes can make us hold: each element's struct and strings.
  nl.max_total_alloc = 64u << 20;
  ndr::Decoder d(stub, endian, nl);
  return decode_report(d, limits);
}

}  // namespace rpcgate::runtime::status
