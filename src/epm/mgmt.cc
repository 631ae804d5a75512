#include "epm/mgmt.h"

#include "ndr/ndr.h"
#include "rpc/status.h"

namespace rpcgate::epm {
namespace {

namespace st = rpc::status;

Outcome bad_stub() {
  return std::unexpected(FaultStatus{st::kRpcXBadStubData});
}

// Reads the u32 [in] parameters of an operation; nullopt if the stub is shorter. Bytes after
// them are not read; their count goes to `trailing` (see the header: ignored, as Samba and
// Windows do).
template <std::size_t N>
std::optional<std::array<std::uint32_t, N>> read_u32s(std::span<const std::uint8_t> stub,
                                                      common::Endian endian,
                                                      std::size_t& trailing) {
  ndr::Decoder d(stub, endian);
  std::array<std::uint32_t, N> out{};
  for (auto& v : out) {
    auto r = d.u32();
    if (!r) return std::nullopt;
    v = *r;
  }
  trailing = d.remaining();
  return out;
}

}  // namespace

std::vector<std::uint8_t> encode_inq_if_ids_response(const InqIfIdsResponse& v,
                                                     common::Endian endian) {
  ndr::Encoder e(endian);
  e.unique_pointer(v.if_ids.has_value());  // *if_id_vector
  if (v.if_ids) {
    const auto n = static_cast<std::uint32_t>(v.if_ids->size());
    e.conformance(n);  // conformant structure: max_count first
    e.u32(n);          // count
    for (std::uint32_t i = 0; i < n; ++i)
      e.unique_pointer(true);
    for (const auto& id : *v.if_ids) {  // deferred referents, in order
      e.uuid(id.uuid);
      e.u16(id.major);
      e.u16(id.minor);
    }
  }
  e.u32(v.status);
  return e.take();
}

ndr::Result<InqIfIdsResponse> decode_inq_if_ids_response(std::span<const std::uint8_t> stub,
                                                         common::Endian endian,
                                                         const ndr::DecodeLimits& limits) {
  ndr::Decoder d(stub, endian, limits);
  InqIfIdsResponse v;
  auto present = d.unique_pointer();
  if (!present) return std::unexpected(present.error());
  if (*present) {
    // rpc_if_id_p_t if_id[count]: a 4-byte referent each, then 20 bytes per non-NULL one.
    auto shape = d.conformant_array(4);
    if (!shape) return std::unexpected(shape.error());
    auto count = d.u32();
    if (!count) return std::unexpected(count.error());
    if (*count != shape->max_count) return ndr::fail(ndr::Errc::kCountInconsistent);
    std::vector<bool> non_null;
    non_null.reserve(*count);
    for (std::uint32_t i = 0; i < *count; ++i) {
      auto p = d.unique_pointer();
      if (!p) return std::unexpected(p.error());
      non_null.push_back(*p);
    }
    v.if_ids.emplace();
    for (bool here : non_null) {
      if (!here) continue;
      if (auto c = d.charge(sizeof(ndr::SyntaxId)); !c) return std::unexpected(c.error());
      auto uuid = d.uuid();
      if (!uuid) return std::unexpected(uuid.error());
      auto major = d.u16();
      if (!major) return std::unexpected(major.error());
      auto minor = d.u16();
      if (!minor) return std::unexpected(minor.error());
      v.if_ids->push_back(ndr::SyntaxId{*uuid, *major, *minor});
    }
  }
  auto status = d.u32();
  if (!status) return std::unexpected(status.error());
  v.status = *status;
  if (auto r = d.expect_end(); !r) return std::unexpected(r.error());
  return v;
}

Outcome MgmtService::call(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                          common::Endian endian) {
  std::size_t trailing = 0;
  auto result = dispatch(opnum, stub, endian, trailing);
  if (trailing != 0) {
    ++trailing_bytes_calls_;
    if (on_trailing_bytes_) on_trailing_bytes_(opnum, trailing);
  }
  return result;
}

Outcome MgmtService::dispatch(std::uint16_t opnum, std::span<const std::uint8_t> stub,
                              common::Endian endian, std::size_t& trailing) {
  ndr::Encoder e(endian);
  switch (opnum) {
    case kOpnumMgmtInqIfIds: {
      if (!read_u32s<0>(stub, endian, trailing)) return bad_stub();
      MgmtInfo info = provider_();
      return encode_inq_if_ids_response(InqIfIdsResponse{std::move(info.if_ids), 0}, endian);
    }
    case kOpnumMgmtInqStats: {
      auto in = read_u32s<1>(stub, endian, trailing);
      if (!in) return bad_stub();
      const MgmtInfo info = provider_();
      const auto n = static_cast<std::uint32_t>(std::min<std::size_t>((*in)[0], kMgmtStatsCount));
      e.u32(n);
      e.conformance(n);
      for (std::uint32_t i = 0; i < n; ++i)
        e.u32(info.stats[i]);
      e.u32(0);
      return e.take();
    }
    case kOpnumMgmtIsServerListening: {
      if (!read_u32s<0>(stub, endian, trailing)) return bad_stub();
      e.u32(0);                                // *status
      e.u32(provider_().listening ? 1u : 0u);  // boolean32 result
      return e.take();
    }
    case kOpnumMgmtStopServerListening:
      if (!read_u32s<0>(stub, endian, trailing)) return bad_stub();
      e.u32(st::kRpcSAccessDenied);
      return e.take();
    case kOpnumMgmtInqPrincName: {
      auto in = read_u32s<2>(stub, endian, trailing);
      if (!in) return bad_stub();
      const auto [authn_proto, size] = *in;
      const MgmtInfo info = provider_();
      std::string name = info.principal_name ? info.principal_name(authn_proto) : std::string();
      std::uint32_t status = 0;
      if (name.empty() || name.find('\0') != std::string::npos) {
        name.clear();
        status = kRpcSUnknownAuthnService;
      } else if (name.size() + 1 > size) {
        name.clear();
        status = kErrorInsufficientBuffer;
      }
      e.conformance(size);
      if (size == 0) {
        e.variance(0, 0);
      } else {
        e.variance(0, static_cast<std::uint32_t>(name.size() + 1));
        e.bytes({reinterpret_cast<const std::uint8_t*>(name.data()), name.size()});
        e.u8(0);
      }
      e.u32(status);  // aligned to 4 by the encoder
      return e.take();
    }
    default:
      return std::unexpected(FaultStatus{st::kNcaSOpRngError});
  }
}

}  // namespace rpcgate::epm
