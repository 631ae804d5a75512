#include "rpc/pdu.h"

#include <utility>

namespace rpcgate::rpc {
namespace {

using common::ByteReader;
using common::ByteWriter;

constexpr std::size_t kRequestHeaderSize = 24;
constexpr std::size_t kObjectUuidSize = 16;
constexpr std::size_t kResponseHeaderSize = 24;
constexpr std::size_t kFaultHeaderSize = 32;
constexpr std::size_t kBindHeaderSize = 28;
// bind_ack up to and including sec_addr_len; the rest (string, pad, n_results) is variable.
constexpr std::size_t kBindAckFixedSize = 26;
constexpr std::size_t kBindNakHeaderSize = 19;
constexpr std::size_t kAuth3HeaderSize = 20;
constexpr std::size_t kContextElementMinSize = 4 + kSyntaxIdSize;  // with 0 transfer syntaxes
constexpr std::size_t kContextResultSize = 4 + kSyntaxIdSize;

// Feature negotiation UUID prefix 6cb71c2c-9812-4540 in canonical byte order.
constexpr std::array<std::uint8_t, 8> kBtfnPrefix{0x6c, 0xb7, 0x1c, 0x2c, 0x98, 0x12, 0x45, 0x40};

constexpr Uuid make_uuid(std::array<std::uint8_t, 16> b) {
  return Uuid(b);
}

std::unexpected<std::error_code> fail(Errc e) {
  return std::unexpected(make_error_code(e));
}

bool carries_auth(std::uint8_t ptype) {
  return ptype != static_cast<std::uint8_t>(PType::kBindNak) &&
         ptype != static_cast<std::uint8_t>(PType::kShutdown);
}

std::optional<SyntaxId> read_syntax(ByteReader& r) {
  if (r.remaining() < kSyntaxIdSize) return std::nullopt;
  SyntaxId s;
  s.uuid = *Uuid::read(r);
  const std::uint32_t if_version = *r.u32();
  s.major = static_cast<std::uint16_t>(if_version & 0xffff);
  s.minor = static_cast<std::uint16_t>(if_version >> 16);
  return s;
}

void write_syntax(ByteWriter& w, const SyntaxId& s) {
  s.uuid.write(w);
  w.u32(static_cast<std::uint32_t>(s.major) | static_cast<std::uint32_t>(s.minor) << 16);
}

// ---- body decoders: `r` spans the PDU from offset 0 to the end of the body (auth padding and
// trailer excluded) and is positioned at offset 16.

std::expected<BindBody, std::error_code> decode_bind_body(ByteReader& r,
                                                          const DecodeLimits& limits) {
  if (r.remaining() < kBindHeaderSize - kCommonHeaderSize) return fail(Errc::kTruncated);
  BindBody b;
  b.max_xmit_frag = *r.u16();
  b.max_recv_frag = *r.u16();
  b.assoc_group_id = *r.u32();
  const std::size_t n_context_elem = *r.u8();
  r.skip(3);
  if (n_context_elem > limits.max_context_items) return fail(Errc::kTooManyContextItems);
  if (n_context_elem * kContextElementMinSize > r.remaining()) return fail(Errc::kTruncated);
  b.contexts.reserve(n_context_elem);
  for (std::size_t i = 0; i < n_context_elem; ++i) {
    if (r.remaining() < kContextElementMinSize) return fail(Errc::kTruncated);
    ContextElement e;
    e.p_cont_id = *r.u16();
    const std::size_t n_transfer_syn = *r.u8();
    r.skip(1);
    e.abstract_syntax = *read_syntax(r);
    if (n_transfer_syn > limits.max_transfer_syntaxes) {
      return fail(Errc::kTooManyTransferSyntaxes);
    }
    if (n_transfer_syn * kSyntaxIdSize > r.remaining()) return fail(Errc::kTruncated);
    e.transfer_syntaxes.reserve(n_transfer_syn);
    for (std::size_t j = 0; j < n_transfer_syn; ++j)
      e.transfer_syntaxes.push_back(*read_syntax(r));
    b.contexts.push_back(std::move(e));
  }
  if (!r.empty()) return fail(Errc::kTrailingBytes);
  return b;
}

std::expected<BindAckBody, std::error_code> decode_bind_ack_body(ByteReader& r,
                                                                 const DecodeLimits& limits) {
  if (r.remaining() < kBindAckFixedSize - kCommonHeaderSize) return fail(Errc::kTruncated);
  BindAckBody b;
  b.max_xmit_frag = *r.u16();
  b.max_recv_frag = *r.u16();
  b.assoc_group_id = *r.u32();
  const std::size_t sec_addr_len = *r.u16();
  const auto sec_addr = r.bytes(sec_addr_len);
  if (!sec_addr) return fail(Errc::kTruncated);
  b.sec_addr.assign(sec_addr->begin(), sec_addr->end());
  // Pad to 4 relative to the PDU start (C706 §12.6.4.4; Impacket computes it the same way).
  if (!r.align(4) || r.remaining() < 4) return fail(Errc::kTruncated);
  const std::size_t n_results = *r.u8();
  r.skip(3);
  if (n_results > limits.max_results) return fail(Errc::kTooManyResults);
  if (n_results * kContextResultSize > r.remaining()) return fail(Errc::kTruncated);
  b.results.reserve(n_results);
  for (std::size_t i = 0; i < n_results; ++i) {
    ContextResult res;
    res.result = *r.u16();
    res.reason = *r.u16();
    res.transfer_syntax = *read_syntax(r);
    b.results.push_back(res);
  }
  if (!r.empty()) return fail(Errc::kTrailingBytes);
  return b;
}

std::expected<PduBody, std::error_code> decode_body(const PduHeader& h, ByteReader& r,
                                                    const DecodeLimits& limits,
                                                    std::vector<std::uint8_t>* recycle) {
  auto rest = [&r, recycle] {
    const auto s = r.rest();
    if (recycle == nullptr) return std::vector<std::uint8_t>(s.begin(), s.end());
    recycle->assign(s.begin(), s.end());  // no allocation when it is large enough
    return std::move(*recycle);
  };
  switch (static_cast<PType>(h.ptype)) {
    case PType::kRequest: {
      // decode_header guaranteed the fixed part is inside frag_length, but the auth padding may
      // have eaten into it: re-check against the body reader.
      const std::size_t need = kRequestHeaderSize - kCommonHeaderSize +
                               ((h.pfc_flags & pfc::kObjectUuid) ? kObjectUuidSize : 0);
      if (r.remaining() < need) return fail(Errc::kTruncated);
      Request q;
      q.alloc_hint = *r.u32();
      q.p_cont_id = *r.u16();
      q.opnum = *r.u16();
      if (h.pfc_flags & pfc::kObjectUuid) q.object = *Uuid::read(r);
      q.stub = rest();
      return q;
    }
    case PType::kResponse: {
      if (r.remaining() < kResponseHeaderSize - kCommonHeaderSize) return fail(Errc::kTruncated);
      Response p;
      p.alloc_hint = *r.u32();
      p.p_cont_id = *r.u16();
      p.cancel_count = *r.u8();
      r.skip(1);
      p.stub = rest();
      return p;
    }
    case PType::kFault: {
      if (r.remaining() < kFaultHeaderSize - kCommonHeaderSize) return fail(Errc::kTruncated);
      Fault f;
      f.alloc_hint = *r.u32();
      f.p_cont_id = *r.u16();
      f.cancel_count = *r.u8();
      f.flags = *r.u8();
      f.status = *r.u32();
      r.skip(4);
      f.stub = rest();
      return f;
    }
    case PType::kBind:
    case PType::kAlterContext: {
      auto b = decode_bind_body(r, limits);
      if (!b) return std::unexpected(b.error());
      if (h.ptype == static_cast<std::uint8_t>(PType::kBind)) return Bind{std::move(*b)};
      return AlterContext{std::move(*b)};
    }
    case PType::kBindAck:
    case PType::kAlterContextResp: {
      auto b = decode_bind_ack_body(r, limits);
      if (!b) return std::unexpected(b.error());
      if (h.ptype == static_cast<std::uint8_t>(PType::kBindAck)) return BindAck{std::move(*b)};
      return AlterContextResp{std::move(*b)};
    }
    case PType::kBindNak: {
      if (r.remaining() < kBindNakHeaderSize - kCommonHeaderSize) return fail(Errc::kTruncated);
      BindNak n;
      n.provider_reject_reason = *r.u16();
      const std::size_t n_versions = *r.u8();
      if (n_versions * 2 > r.remaining()) return fail(Errc::kTruncated);
      n.versions.reserve(n_versions);
      for (std::size_t i = 0; i < n_versions; ++i) {
        RtVersion v;
        v.major = *r.u8();
        v.minor = *r.u8();
        n.versions.push_back(v);
      }
      n.trailing = rest();
      return n;
    }
    case PType::kAuth3: {
      if (r.remaining() < kAuth3HeaderSize - kCommonHeaderSize) return fail(Errc::kTruncated);
      Auth3 a;
      a.max_xmit_frag = *r.u16();
      a.max_recv_frag = *r.u16();
      if (!r.empty()) return fail(Errc::kTrailingBytes);
      return a;
    }
    case PType::kShutdown:
    case PType::kCoCancel:
    case PType::kOrphaned:
      if (!r.empty()) return fail(Errc::kTrailingBytes);
      if (h.ptype == static_cast<std::uint8_t>(PType::kShutdown)) return Shutdown{};
      if (h.ptype == static_cast<std::uint8_t>(PType::kCoCancel)) return CoCancel{};
      return Orphaned{};
  }
  return fail(Errc::kUnsupportedPtype);  // unreachable: decode_header checked the ptype
}

// ---- encoders

bool write_bind_body(ByteWriter& w, const BindBody& b) {
  if (b.contexts.size() > 255) return false;
  w.u16(b.max_xmit_frag);
  w.u16(b.max_recv_frag);
  w.u32(b.assoc_group_id);
  w.u8(static_cast<std::uint8_t>(b.contexts.size()));
  w.zeros(3);
  for (const auto& e : b.contexts) {
    if (e.transfer_syntaxes.size() > 255) return false;
    w.u16(e.p_cont_id);
    w.u8(static_cast<std::uint8_t>(e.transfer_syntaxes.size()));
    w.u8(0);
    write_syntax(w, e.abstract_syntax);
    for (const auto& s : e.transfer_syntaxes)
      write_syntax(w, s);
  }
  return true;
}

bool write_bind_ack_body(ByteWriter& w, const BindAckBody& b) {
  if (b.results.size() > 255 || b.sec_addr.size() > 0xffff) return false;
  w.u16(b.max_xmit_frag);
  w.u16(b.max_recv_frag);
  w.u32(b.assoc_group_id);
  w.u16(static_cast<std::uint16_t>(b.sec_addr.size()));
  w.bytes(std::span(reinterpret_cast<const std::uint8_t*>(b.sec_addr.data()), b.sec_addr.size()));
  w.align(4);  // the writer's buffer starts at the PDU start
  w.u8(static_cast<std::uint8_t>(b.results.size()));
  w.zeros(3);
  for (const auto& res : b.results) {
    w.u16(res.result);
    w.u16(res.reason);
    write_syntax(w, res.transfer_syntax);
  }
  return true;
}

// Header (with frag_length/auth_length 0) and body; false if a count does not fit.
bool write_without_auth(ByteWriter& w, const Pdu& pdu) {
  const PduHeader& h = pdu.header;
  std::uint8_t flags = h.pfc_flags;
  if (const auto* q = std::get_if<Request>(&pdu.body)) {
    flags =
        static_cast<std::uint8_t>((flags & ~pfc::kObjectUuid) | (q->object ? pfc::kObjectUuid : 0));
  }
  w.u8(h.rpc_vers);
  w.u8(h.rpc_vers_minor);
  w.u8(h.ptype);
  w.u8(flags);
  w.bytes(h.drep.bytes);
  w.u16(0);  // frag_length, patched
  w.u16(0);  // auth_length, patched
  w.u32(h.call_id);

  struct Visitor {
    ByteWriter& w;
    bool operator()(const Request& q) const {
      w.u32(q.alloc_hint);
      w.u16(q.p_cont_id);
      w.u16(q.opnum);
      if (q.object) q.object->write(w);
      w.bytes(q.stub);
      return true;
    }
    bool operator()(const Response& p) const {
      w.u32(p.alloc_hint);
      w.u16(p.p_cont_id);
      w.u8(p.cancel_count);
      w.u8(0);
      w.bytes(p.stub);
      return true;
    }
    bool operator()(const Fault& f) const {
      w.u32(f.alloc_hint);
      w.u16(f.p_cont_id);
      w.u8(f.cancel_count);
      w.u8(f.flags);
      w.u32(f.status);
      w.u32(0);
      w.bytes(f.stub);
      return true;
    }
    bool operator()(const Bind& b) const { return write_bind_body(w, b); }
    bool operator()(const AlterContext& b) const { return write_bind_body(w, b); }
    bool operator()(const BindAck& b) const { return write_bind_ack_body(w, b); }
    bool operator()(const AlterContextResp& b) const { return write_bind_ack_body(w, b); }
    bool operator()(const BindNak& n) const {
      if (n.versions.size() > 255) return false;
      w.u16(n.provider_reject_reason);
      w.u8(static_cast<std::uint8_t>(n.versions.size()));
      for (const auto& v : n.versions) {
        w.u8(v.major);
        w.u8(v.minor);
      }
      w.bytes(n.trailing);
      return true;
    }
    bool operator()(const Auth3& a) const {
      w.u16(a.max_xmit_frag);
      w.u16(a.max_recv_frag);
      return true;
    }
    bool operator()(const Shutdown&) const { return true; }
    bool operator()(const CoCancel&) const { return true; }
    bool operator()(const Orphaned&) const { return true; }
  };
  return std::visit(Visitor{w}, pdu.body);
}

}  // namespace

// ---- public

std::string_view ptype_name(std::uint8_t ptype) {
  switch (ptype) {
    case 0:
      return "request";
    case 2:
      return "response";
    case 3:
      return "fault";
    case 11:
      return "bind";
    case 12:
      return "bind_ack";
    case 13:
      return "bind_nak";
    case 14:
      return "alter_context";
    case 15:
      return "alter_context_resp";
    case 16:
      return "auth3";
    case 17:
      return "shutdown";
    case 18:
      return "co_cancel";
    case 19:
      return "orphaned";
    default:
      return "unknown";
  }
}

bool is_supported_ptype(std::uint8_t ptype) {
  return ptype == 0 || ptype == 2 || ptype == 3 || (ptype >= 11 && ptype <= 19);
}

std::expected<void, std::error_code> validate_drep(const DataRep& drep) {
  if (drep.integer_format() > 1 || drep.char_format() != 0 || drep.float_format() != 0) {
    return fail(Errc::kBadDrep);
  }
  return {};
}

std::size_t min_frag_length(std::uint8_t ptype, std::uint8_t pfc_flags) {
  switch (ptype) {
    case 0:
      return kRequestHeaderSize + ((pfc_flags & pfc::kObjectUuid) ? kObjectUuidSize : 0);
    case 2:
      return kResponseHeaderSize;
    case 3:
      return kFaultHeaderSize;
    case 11:
    case 14:
      return kBindHeaderSize;
    case 12:
    case 15:
      return kBindAckFixedSize;
    case 13:
      return kBindNakHeaderSize;
    case 16:
      return kAuth3HeaderSize;
    case 17:
    case 18:
    case 19:
      return kCommonHeaderSize;
    default:
      return 0;
  }
}

std::expected<PduHeader, std::error_code> decode_header(std::span<const std::uint8_t> data) {
  if (data.size() < kCommonHeaderSize) return fail(Errc::kTruncated);
  PduHeader h;
  h.rpc_vers = data[0];
  h.rpc_vers_minor = data[1];
  h.ptype = data[2];
  h.pfc_flags = data[3];
  if (h.rpc_vers != kRpcVers || h.rpc_vers_minor > 1) return fail(Errc::kBadVersion);
  if (!is_supported_ptype(h.ptype)) return fail(Errc::kUnsupportedPtype);
  h.drep.bytes = {data[4], data[5], data[6], data[7]};
  if (auto ok = validate_drep(h.drep); !ok) return std::unexpected(ok.error());
  ByteReader r(data.subspan(8, 8), h.drep.endian());
  h.frag_length = *r.u16();
  h.auth_length = *r.u16();
  h.call_id = *r.u32();
  const std::size_t fixed = min_frag_length(h.ptype, h.pfc_flags);
  if (h.frag_length < fixed) return fail(Errc::kFragTooShort);
  if (h.auth_length != 0) {
    if (!carries_auth(h.ptype)) return fail(Errc::kAuthLengthInconsistent);
    if (std::size_t{h.auth_length} + kSecTrailerSize > h.frag_length - fixed) {
      return fail(Errc::kAuthLengthInconsistent);
    }
  }
  return h;
}

const SyntaxId kNdr20Syntax{make_uuid({0x8a, 0x88, 0x5d, 0x04, 0x1c, 0xeb, 0x11, 0xc9, 0x9f, 0xe8,
                                       0x08, 0x00, 0x2b, 0x10, 0x48, 0x60}),
                            2, 0};
const SyntaxId kNdr64Syntax{make_uuid({0x71, 0x71, 0x05, 0x33, 0xbe, 0xba, 0x49, 0x37, 0x83, 0x19,
                                       0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36}),
                            1, 0};
const SyntaxId kEpmSyntax{make_uuid({0xe1, 0xaf, 0x83, 0x08, 0x5d, 0x1f, 0x11, 0xc9, 0x91, 0xa4,
                                     0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa}),
                          3, 0};
const SyntaxId kMgmtSyntax{make_uuid({0xaf, 0xa8, 0xbd, 0x80, 0x7d, 0x8a, 0x11, 0xc9, 0xbe, 0xf4,
                                      0x08, 0x00, 0x2b, 0x10, 0x29, 0x89}),
                           1, 0};

std::optional<std::uint64_t> bind_time_features(const SyntaxId& syntax) {
  const auto& b = syntax.uuid.bytes();
  for (std::size_t i = 0; i < kBtfnPrefix.size(); ++i) {
    if (b[i] != kBtfnPrefix[i]) return std::nullopt;
  }
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < 8; ++i)
    bits |= static_cast<std::uint64_t>(b[8 + i]) << (8 * i);
  return bits;
}

SyntaxId make_bind_time_feature_syntax(std::uint64_t features) {
  std::array<std::uint8_t, 16> b{};
  for (std::size_t i = 0; i < kBtfnPrefix.size(); ++i)
    b[i] = kBtfnPrefix[i];
  for (std::size_t i = 0; i < 8; ++i)
    b[8 + i] = static_cast<std::uint8_t>(features >> (8 * i));
  return SyntaxId{Uuid(b), 1, 0};
}

std::string_view BindAckBody::secondary_address() const {
  std::string_view s(sec_addr);
  if (!s.empty() && s.back() == '\0') s.remove_suffix(1);
  return s;
}

std::string BindAckBody::make_sec_addr(std::string_view port) {
  std::string s(port);
  s.push_back('\0');
  return s;
}

PType ptype_of(const PduBody& body) {
  static constexpr PType kByIndex[] = {
      PType::kRequest, PType::kResponse, PType::kFault,        PType::kBind,
      PType::kBindAck, PType::kBindNak,  PType::kAlterContext, PType::kAlterContextResp,
      PType::kAuth3,   PType::kShutdown, PType::kCoCancel,     PType::kOrphaned};
  static_assert(std::size(kByIndex) == std::variant_size_v<PduBody>);
  return kByIndex[body.index()];
}

Pdu make_pdu(PduBody body, std::uint32_t call_id, std::uint8_t pfc_flags, DataRep drep) {
  Pdu pdu;
  pdu.header.ptype = static_cast<std::uint8_t>(ptype_of(body));
  pdu.header.pfc_flags = pfc_flags;
  pdu.header.drep = drep;
  pdu.header.call_id = call_id;
  pdu.body = std::move(body);
  return pdu;
}

std::expected<Pdu, std::error_code> decode_pdu(std::span<const std::uint8_t> pdu,
                                               const DecodeLimits& limits) {
  return decode_pdu(pdu, limits, nullptr);
}

std::expected<Pdu, std::error_code> decode_pdu(std::span<const std::uint8_t> pdu,
                                               const DecodeLimits& limits,
                                               std::vector<std::uint8_t>* recycle) {
  auto header = decode_header(pdu);
  if (!header) return std::unexpected(header.error());
  const PduHeader& h = *header;
  if (pdu.size() < h.frag_length) return fail(Errc::kTruncated);
  if (pdu.size() > h.frag_length) return fail(Errc::kFragLengthMismatch);

  Pdu out;
  out.header = h;
  std::size_t body_end = h.frag_length;
  if (h.auth_length != 0) {
    // decode_header proved frag_length >= fixed + 8 + auth_length.
    const std::size_t trailer_start = h.frag_length - h.auth_length - kSecTrailerSize;
    if (trailer_start % 4 != 0) return fail(Errc::kAuthTrailerMisaligned);
    ByteReader t(pdu.subspan(trailer_start), h.endian());
    AuthTrailer a;
    a.auth_type = *t.u8();
    a.auth_level = *t.u8();
    a.auth_pad_length = *t.u8();
    a.auth_reserved = *t.u8();
    a.auth_context_id = *t.u32();
    const auto value = t.rest();
    a.auth_value.assign(value.begin(), value.end());
    const std::size_t fixed = min_frag_length(h.ptype, h.pfc_flags);
    if (a.auth_pad_length > trailer_start - fixed) return fail(Errc::kAuthPadTooLong);
    body_end = trailer_start - a.auth_pad_length;
    out.auth = std::move(a);
  }
  ByteReader r(pdu.first(body_end), h.endian());
  r.seek(kCommonHeaderSize);
  auto body = decode_body(h, r, limits, recycle);
  if (!body) return std::unexpected(body.error());
  out.body = std::move(*body);
  return out;
}

std::expected<std::vector<std::uint8_t>, std::error_code> encode_pdu(const Pdu& pdu) {
  const PduHeader& h = pdu.header;
  if (h.ptype != static_cast<std::uint8_t>(ptype_of(pdu.body))) {
    return fail(Errc::kInvalidArgument);
  }
  if (h.rpc_vers != kRpcVers || h.rpc_vers_minor > 1 || !validate_drep(h.drep)) {
    return fail(Errc::kInvalidArgument);
  }
  ByteWriter w(h.endian());
  if (!write_without_auth(w, pdu)) return fail(Errc::kInvalidArgument);
  std::size_t auth_length = 0;
  if (pdu.auth) {
    const AuthTrailer& a = *pdu.auth;
    if (!carries_auth(h.ptype) || a.auth_value.empty()) return fail(Errc::kInvalidArgument);
    w.zeros(a.auth_pad_length);
    if (w.size() % 4 != 0) return fail(Errc::kInvalidArgument);
    w.u8(a.auth_type);
    w.u8(a.auth_level);
    w.u8(a.auth_pad_length);
    w.u8(a.auth_reserved);
    w.u32(a.auth_context_id);
    w.bytes(a.auth_value);
    auth_length = a.auth_value.size();
  }
  if (w.size() > kMaxFragLength) return fail(Errc::kTooLargeToEncode);
  w.put_u16_at(8, static_cast<std::uint16_t>(w.size()));
  w.put_u16_at(10, static_cast<std::uint16_t>(auth_length));
  return w.take();
}

std::uint8_t auth_pad_for(const Pdu& pdu) {
  ByteWriter w(pdu.header.endian());
  write_without_auth(w, pdu);
  return static_cast<std::uint8_t>((4 - w.size() % 4) % 4);
}

}  // namespace rpcgate::rpc
