// Connection-oriented DCE/RPC PDUs (C706 ch. 12.6, [MS-RPCE] 2.2.2): types, decode, encode.
//
// Sans-I/O and stateless: decode_pdu() takes exactly one complete PDU (as cut by rpc::Framer,
// framer.h) and returns a Pdu owning its variable-length parts; encode_pdu() turns a Pdu back into
// bytes. Everything stateful (which contexts are bound, byte order fixed at bind time, fragment
// reassembly) lives elsewhere: fragments.h reassembles request and response fragments; the
// association state machine (a later component) enforces bind/alter_context rules using the fields
// exposed here.
//
// Byte order: every integer is read and written in the PDU's own packed_drep order
// (PduHeader::drep). UUIDs follow common::Uuid's NDR rule. p_syntax_id_t's version is one u32
// if_version = major | minor << 16 in that byte order (C706 §12.6.3.1 `p_syntax_id_t`), so a
// big-endian peer writes EPM v3.0 as 00 00 00 03.
//
// Round trip: decode_pdu(encode_pdu(decode_pdu(x))) == decode_pdu(x) for every accepted x, and
// encode_pdu(decode_pdu(x)) == x byte for byte when x uses zero reserved fields and zero pad bytes
// (the canonical form every golden vector here uses). Reserved fields and pad bytes are not kept,
// except where noted (drep bytes 2-3, fault `flags`, bind_nak trailing bytes, raw sec_addr).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/uuid.h"
#include "rpc/errc.h"

namespace rpcgate::rpc {

using common::Endian;
using common::Uuid;

// ---- Common header (C706 §12.6.3.1) -------------------------------------------------------------

inline constexpr std::uint8_t kRpcVers = 5;
inline constexpr std::size_t kCommonHeaderSize = 16;  // up to and including call_id
inline constexpr std::size_t kSecTrailerSize = 8;     // auth_type .. auth_context_id
inline constexpr std::size_t kMaxFragLength = 65535;  // frag_length is a u16

enum class PType : std::uint8_t {
  kRequest = 0,
  kResponse = 2,
  kFault = 3,
  kBind = 11,
  kBindAck = 12,
  kBindNak = 13,
  kAlterContext = 14,
  kAlterContextResp = 15,
  kAuth3 = 16,  // MS-RPCE 2.2.2.10
  kShutdown = 17,
  kCoCancel = 18,
  kOrphaned = 19,
  // 20 = rts (ncacn_http, MS-RPCH) and 1, 4-10 (connectionless) are rejected: kUnsupportedPtype.
};

// "request", "bind_ack", ... ; "unknown" for values outside PType.
std::string_view ptype_name(std::uint8_t ptype);
// True for the 12 values of PType.
bool is_supported_ptype(std::uint8_t ptype);

// pfc_flags bits (C706 §12.6.3.1; MS-RPCE 2.2.2.3).
namespace pfc {
inline constexpr std::uint8_t kFirstFrag = 0x01;
inline constexpr std::uint8_t kLastFrag = 0x02;
inline constexpr std::uint8_t kPendingCancel = 0x04;      // C706 meaning (request/response)
inline constexpr std::uint8_t kSupportHeaderSign = 0x04;  // MS-RPCE meaning (bind/bind_ack)
inline constexpr std::uint8_t kReserved1 = 0x08;
inline constexpr std::uint8_t kConcMpx = 0x10;
inline constexpr std::uint8_t kDidNotExecute = 0x20;
inline constexpr std::uint8_t kMaybe = 0x40;
inline constexpr std::uint8_t kObjectUuid = 0x80;  // request carries an object UUID
}  // namespace pfc

// packed_drep (C706 §14.1): byte 0 high nibble = integer rep (0 big, 1 little endian), low nibble
// = character rep (0 ASCII, 1 EBCDIC); byte 1 = float rep (0 IEEE, 1 VAX, 2 Cray, 3 IBM); bytes
// 2-3 reserved. Only ASCII + IEEE are accepted (kBadDrep otherwise). The raw bytes are kept so
// reserved bytes survive a round trip and so the association can compare drep across PDUs (the
// "byte order fixed at bind" rule).
struct DataRep {
  std::array<std::uint8_t, 4> bytes{0x10, 0x00, 0x00, 0x00};

  static constexpr DataRep little_endian() { return DataRep{{0x10, 0x00, 0x00, 0x00}}; }
  static constexpr DataRep big_endian() { return DataRep{{0x00, 0x00, 0x00, 0x00}}; }
  // Valid only on a DataRep that passed validation (decoded or built by the helpers above).
  Endian endian() const { return (bytes[0] >> 4) == 1 ? Endian::kLittle : Endian::kBig; }
  std::uint8_t integer_format() const { return bytes[0] >> 4; }
  std::uint8_t char_format() const { return bytes[0] & 0x0f; }
  std::uint8_t float_format() const { return bytes[1]; }

  friend bool operator==(const DataRep&, const DataRep&) = default;
};

// Checks the rules above; kBadDrep on failure.
std::expected<void, std::error_code> validate_drep(const DataRep& drep);

struct PduHeader {
  std::uint8_t rpc_vers = kRpcVers;
  std::uint8_t rpc_vers_minor = 0;  // 0 (Microsoft, Impacket) or 1 (DCE)
  std::uint8_t ptype = 0;           // a PType value
  std::uint8_t pfc_flags = pfc::kFirstFrag | pfc::kLastFrag;
  DataRep drep;
  std::uint16_t frag_length = 0;  // decode: as on the wire; encode: ignored (computed)
  std::uint16_t auth_length = 0;  // decode: as on the wire; encode: ignored (computed)
  std::uint32_t call_id = 0;

  Endian endian() const { return drep.endian(); }
  friend bool operator==(const PduHeader&, const PduHeader&) = default;
};

// Parses and validates the 16-byte common header at the start of `data` (needs >= 16 bytes, else
// kTruncated): version (kBadVersion), ptype (kUnsupportedPtype), drep (kBadDrep), frag_length >=
// the fixed header size of its ptype (kFragTooShort), and auth_length: when non-zero,
// auth_length + 8 must fit in frag_length after that fixed header (kAuthLengthInconsistent);
// bind_nak and shutdown carry no auth_verifier, so their auth_length must be 0. Used by the
// framer before the rest of the PDU has arrived.
std::expected<PduHeader, std::error_code> decode_header(std::span<const std::uint8_t> data);

// Minimum frag_length of a PDU type (its fixed part; for request +16 when pfc::kObjectUuid).
// 0 for unsupported types.
std::size_t min_frag_length(std::uint8_t ptype, std::uint8_t pfc_flags);

// ---- Presentation syntaxes (C706 §12.6.3.1 p_syntax_id_t) -------------------------------------

struct SyntaxId {
  Uuid uuid;
  std::uint16_t major = 0;  // wire: if_version & 0xffff
  std::uint16_t minor = 0;  // wire: if_version >> 16

  friend bool operator==(const SyntaxId&, const SyntaxId&) = default;
};
inline constexpr std::size_t kSyntaxIdSize = 20;

// Well-known syntaxes.
extern const SyntaxId kNdr20Syntax;  // 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.0
extern const SyntaxId kNdr64Syntax;  // 71710533-beba-4937-8319-b5dbef9ccc36 v1.0
extern const SyntaxId kEpmSyntax;    // e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 (abstract)
extern const SyntaxId kMgmtSyntax;   // afa8bd80-7d8a-11c9-bef4-08002b102989 v1.0 (abstract)

// Bind-time feature negotiation (MS-RPCE 2.2.2.14, 3.3.1.5.3): a transfer syntax whose UUID starts
// 6cb71c2c-9812-4540 carries an 8-byte bitmask in its last 8 UUID bytes; canonical byte 8 holds
// bits 0-7 (Windows sends 6cb71c2c-9812-4540-0300-000000000000 = 0x03). The bind_ack answers with
// result kNegotiateAck and the accepted bits in `reason`.
inline constexpr std::uint64_t kBtfnSecurityContextMultiplexing = 0x01;
inline constexpr std::uint64_t kBtfnKeepConnectionOnOrphan = 0x02;
// The bitmask if `syntax` is a feature-negotiation syntax (detected by the UUID prefix only; the
// version, normally 1.0, is not checked), else nullopt.
std::optional<std::uint64_t> bind_time_features(const SyntaxId& syntax);
// The v1.0 feature-negotiation syntax carrying `features`.
SyntaxId make_bind_time_feature_syntax(std::uint64_t features);

// ---- Bodies ------------------------------------------------------------------------------------

// request (C706 §12.6.4.9). Stub excludes the auth padding.
struct Request {
  std::uint32_t alloc_hint = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;
  std::optional<Uuid> object;  // present iff pfc::kObjectUuid (encode sets the flag from this)
  std::vector<std::uint8_t> stub;
  friend bool operator==(const Request&, const Request&) = default;
};

// response (C706 §12.6.4.10).
struct Response {
  std::uint32_t alloc_hint = 0;
  std::uint16_t p_cont_id = 0;
  std::uint8_t cancel_count = 0;
  std::vector<std::uint8_t> stub;
  friend bool operator==(const Response&, const Response&) = default;
};

// fault (C706 §12.6.4.7; MS-RPCE 2.2.2.6 adds flags bit 0x01 = extended error info present).
struct Fault {
  std::uint32_t alloc_hint = 0;
  std::uint16_t p_cont_id = 0;
  std::uint8_t cancel_count = 0;
  std::uint8_t flags = 0;          // C706 "reserved"
  std::uint32_t status = 0;        // nca_s_* / Win32 value; status.h names it
  std::vector<std::uint8_t> stub;  // after the 4 reserved bytes (usually empty)
  friend bool operator==(const Fault&, const Fault&) = default;
};

// p_cont_elem_t. Decoded as sent: zero transfer syntaxes is not a decode error (C706 leaves it
// to the receiver); the association decides (docs/evasions.md C3). Count limits: DecodeLimits.
struct ContextElement {
  std::uint16_t p_cont_id = 0;
  SyntaxId abstract_syntax;
  std::vector<SyntaxId> transfer_syntaxes;
  friend bool operator==(const ContextElement&, const ContextElement&) = default;
};

// bind (C706 §12.6.4.3) and alter_context (§12.6.4.1) share this layout. Zero context elements
// decode fine (the state machine rejects them).
struct BindBody {
  std::uint16_t max_xmit_frag = 0;
  std::uint16_t max_recv_frag = 0;
  std::uint32_t assoc_group_id = 0;
  std::vector<ContextElement> contexts;
  friend bool operator==(const BindBody&, const BindBody&) = default;
};
struct Bind : BindBody {
  friend bool operator==(const Bind&, const Bind&) = default;
};
struct AlterContext : BindBody {
  friend bool operator==(const AlterContext&, const AlterContext&) = default;
};

// p_result_t: result / reason as in status.h (ContextResult*, ProviderReason*); for result
// kNegotiateAck (3) `reason` is the accepted bind-time feature bitmask.
struct ContextResult {
  std::uint16_t result = 0;
  std::uint16_t reason = 0;
  SyntaxId transfer_syntax;
  friend bool operator==(const ContextResult&, const ContextResult&) = default;
};

// bind_ack (C706 §12.6.4.4) and alter_context_resp (§12.6.4.2). sec_addr holds the port_any_t
// string exactly as sent (sec_addr_len bytes, normally including the terminating NUL, e.g.
// std::string("135", 4)); empty = sec_addr_len 0 (usual in alter_context_resp). After it the
// encoder pads with zeros to 4 relative to the PDU start.
struct BindAckBody {
  std::uint16_t max_xmit_frag = 0;
  std::uint16_t max_recv_frag = 0;
  std::uint32_t assoc_group_id = 0;
  std::string sec_addr;
  std::vector<ContextResult> results;

  // sec_addr without one trailing NUL.
  std::string_view secondary_address() const;
  // "135" -> "135\0" (the form Windows and Impacket send).
  static std::string make_sec_addr(std::string_view port);
  friend bool operator==(const BindAckBody&, const BindAckBody&) = default;
};
struct BindAck : BindAckBody {
  friend bool operator==(const BindAck&, const BindAck&) = default;
};
struct AlterContextResp : BindAckBody {
  friend bool operator==(const AlterContextResp&, const AlterContextResp&) = default;
};

struct RtVersion {
  std::uint8_t major = 5;
  std::uint8_t minor = 0;
  friend bool operator==(const RtVersion&, const RtVersion&) = default;
};

// bind_nak (C706 §12.6.4.5; MS-RPCE 2.2.2.5). `trailing` keeps whatever follows the versions
// list (Windows may append a 16-byte signature for reasons 8/9; others pad) byte for byte.
struct BindNak {
  std::uint16_t provider_reject_reason = 0;  // status.h RejectReason*
  std::vector<RtVersion> versions;
  std::vector<std::uint8_t> trailing;
  friend bool operator==(const BindNak&, const BindNak&) = default;
};

// rpc_auth_3 (MS-RPCE 2.2.2.10): 4 bytes (max_xmit_frag/max_recv_frag, ignored by Windows) then
// the auth trailer.
struct Auth3 {
  std::uint16_t max_xmit_frag = 0;
  std::uint16_t max_recv_frag = 0;
  friend bool operator==(const Auth3&, const Auth3&) = default;
};

// Header-only PDUs (C706 §12.6.4.8 shutdown, §12.6.4.6 co_cancel, §12.6.4.7 orphaned).
// co_cancel and orphaned may carry an auth trailer; shutdown may not.
struct Shutdown {
  friend bool operator==(const Shutdown&, const Shutdown&) = default;
};
struct CoCancel {
  friend bool operator==(const CoCancel&, const CoCancel&) = default;
};
struct Orphaned {
  friend bool operator==(const Orphaned&, const Orphaned&) = default;
};

using PduBody = std::variant<Request, Response, Fault, Bind, BindAck, BindNak, AlterContext,
                             AlterContextResp, Auth3, Shutdown, CoCancel, Orphaned>;

// The PType a body is encoded as.
PType ptype_of(const PduBody& body);

// ---- Security trailer (C706 §13.2.6.1 auth_verifier_co_t; MS-RPCE 2.2.2.11 sec_trailer) --------
//
// Layout at the end of the PDU: [stub][auth_pad_length pad bytes][8-byte sec_trailer][auth_value
// of auth_length bytes]. The sec_trailer must start 4-byte aligned from the PDU start.
// Authentication itself is a later component; this only parses and bound-checks.
struct AuthTrailer {
  std::uint8_t auth_type = 0;   // e.g. 9 SPNEGO, 10 NTLM (RPC_C_AUTHN_WINNT), 16 Kerberos
  std::uint8_t auth_level = 0;  // 1 none .. 5 pkt_integrity, 6 pkt_privacy
  std::uint8_t auth_pad_length = 0;
  std::uint8_t auth_reserved = 0;
  std::uint32_t auth_context_id = 0;
  std::vector<std::uint8_t> auth_value;  // the verifier: auth_length bytes
  friend bool operator==(const AuthTrailer&, const AuthTrailer&) = default;
};

// ---- The PDU -----------------------------------------------------------------------------------

struct Pdu {
  PduHeader header;
  PduBody body;
  std::optional<AuthTrailer> auth;  // present iff auth_length != 0
  friend bool operator==(const Pdu&, const Pdu&) = default;
};

// Builds a Pdu with header.ptype set from the body (little-endian, minor 0, FIRST|LAST).
Pdu make_pdu(PduBody body, std::uint32_t call_id,
             std::uint8_t pfc_flags = pfc::kFirstFrag | pfc::kLastFrag,
             DataRep drep = DataRep::little_endian());

// Limits applied while decoding. The u8 counts on the wire cap each at 255 anyway; the defaults
// are what a sane peer never reaches (real binds carry 1-3 items with 1-2 syntaxes; Windows
// offers NDR + NDR64 + feature negotiation) while keeping hostile binds small. 0 = none allowed.
struct DecodeLimits {
  std::size_t max_context_items = 64;      // n_context_elem in bind / alter_context
  std::size_t max_transfer_syntaxes = 16;  // n_transfer_syn per context element
  std::size_t max_results = 64;            // n_results in bind_ack / alter_context_resp
};

// Decodes exactly one complete PDU. `pdu` must be the whole PDU: its size must equal frag_length
// (kFragLengthMismatch otherwise; kTruncated if shorter than 16). Errors: everything
// decode_header reports, then per body: kTruncated (a field or a count of items runs past the
// body), kTooManyContextItems / kTooManyTransferSyntaxes / kTooManyResults (limits),
// kTrailingBytes (fixed-layout body followed by unexplained bytes), kAuthTrailerMisaligned,
// kAuthPadTooLong. Every length/count is checked before use; nothing is allocated from a wire
// count before it is bounded by the PDU size.
std::expected<Pdu, std::error_code> decode_pdu(std::span<const std::uint8_t> pdu,
                                               const DecodeLimits& limits = {});
// The same, building a request's or response's stub in `*recycle`'s buffer (moved into the Pdu;
// `recycle` is left empty): a connection hands back the buffer of the call it just finished, so
// decoding a call costs no allocation. `recycle` may be nullptr.
std::expected<Pdu, std::error_code> decode_pdu(std::span<const std::uint8_t> pdu,
                                               const DecodeLimits& limits,
                                               std::vector<std::uint8_t>* recycle);

// Encodes `pdu` in header.drep's byte order. Computes frag_length and auth_length (the header's
// values are ignored); sets/clears pfc::kObjectUuid for requests from Request::object; writes
// zero reserved fields and zero pad bytes (bind_ack sec_addr padding; auth padding of
// auth->auth_pad_length bytes after the stub). Errors: kInvalidArgument (header.ptype differs from
// ptype_of(body), invalid drep/version, more than 255 items/syntaxes/results/versions, auth on
// bind_nak/shutdown, sec_trailer would not be 4-byte aligned — choose auth_pad_length with
// auth_pad_for()), kTooLargeToEncode (> 65535 bytes).
std::expected<std::vector<std::uint8_t>, std::error_code> encode_pdu(const Pdu& pdu);

// The auth_pad_length that makes the sec_trailer 4-byte aligned after `pdu`'s body (use before
// encode_pdu when adding an auth trailer).
std::uint8_t auth_pad_for(const Pdu& pdu);

}  // namespace rpcgate::rpc
