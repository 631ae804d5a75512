#include "runtime/broker_protocol.h"

namespace rpcgate::runtime::broker {
namespace {

using common::ByteReader;
using common::ByteWriter;

std::unexpected<std::error_code> bad() {
  return std::unexpected(std::make_error_code(std::errc::bad_message));
}

// Reads exactly the stub or fails; NDR aligns every primitive to its size from the stub start.
template <typename T, typename Fn>
std::expected<T, std::error_code> read_exact(std::span<const std::uint8_t> stub,
                                             common::Endian endian, Fn fn) {
  ByteReader r(stub, endian);
  T out;
  if (!fn(r, out) || !r.empty()) return bad();
  return out;
}

}  // namespace

const rpc::SyntaxId& broker_syntax() {
  static const rpc::SyntaxId kSyntax{*common::Uuid::parse("2cd4ce45-89a0-4180-be18-590cec9bb12f"),
                                     1, 0};
  return kSyntax;
}

std::vector<std::uint8_t> encode(const AllocatePortRequest& v, common::Endian endian) {
  ByteWriter w(endian);
  w.u32(v.port_class);
  w.u32(v.families);
  return w.take();
}

std::vector<std::uint8_t> encode(const AllocatePortResponse& v, common::Endian endian) {
  ByteWriter w(endian);
  w.u16(v.port);
  w.align(4);
  w.u32(v.status);
  return w.take();
}

std::vector<std::uint8_t> encode(const ReleasePortRequest& v, common::Endian endian) {
  ByteWriter w(endian);
  w.u16(v.port);
  return w.take();
}

std::vector<std::uint8_t> encode(const ReleasePortResponse& v, common::Endian endian) {
  ByteWriter w(endian);
  w.u32(v.status);
  return w.take();
}

std::expected<AllocatePortRequest, std::error_code> decode_allocate_port_request(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  return read_exact<AllocatePortRequest>(stub, endian, [](ByteReader& r, AllocatePortRequest& o) {
    auto c = r.u32();
    auto f = r.u32();
    if (!c || !f) return false;
    o = {*c, *f};
    return true;
  });
}

std::expected<AllocatePortResponse, std::error_code> decode_allocate_port_response(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  return read_exact<AllocatePortResponse>(stub, endian, [](ByteReader& r, AllocatePortResponse& o) {
    auto p = r.u16();
    if (!p || !r.align(4)) return false;
    auto s = r.u32();
    if (!s) return false;
    o = {*p, *s};
    return true;
  });
}

std::expected<ReleasePortRequest, std::error_code> decode_release_port_request(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  return read_exact<ReleasePortRequest>(stub, endian, [](ByteReader& r, ReleasePortRequest& o) {
    auto p = r.u16();
    if (!p) return false;
    o = {*p};
    return true;
  });
}

std::expected<ReleasePortResponse, std::error_code> decode_release_port_response(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  return read_exact<ReleasePortResponse>(stub, endian, [](ByteReader& r, ReleasePortResponse& o) {
    auto s = r.u32();
    if (!s) return false;
    o = {*s};
    return true;
  });
}

std::vector<std::uint8_t> encode(const HoldLeaseRequest& v, common::Endian endian) {
  ByteWriter w(endian);
  w.u32(v.flags);
  return w.take();
}

std::expected<HoldLeaseRequest, std::error_code> decode_hold_lease_request(
    std::span<const std::uint8_t> stub, common::Endian endian) {
  return read_exact<HoldLeaseRequest>(stub, endian, [](ByteReader& r, HoldLeaseRequest& o) {
    auto f = r.u32();
    if (!f) return false;
    o = {*f};
    return true;
  });
}

}  // namespace rpcgate::runtime::broker
