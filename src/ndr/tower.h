// Protocol towers (C706 Appendix L "Protocol Tower Encoding", Appendix I protocol ids; MS-RPCE
// 2.2.1.2.5, 3.1.3.5.3; examples in docs/wire-vectors.md). A tower is the octet string inside a
// twr_t:
//
//   u16 floor_count                       ; little-endian, *whatever the PDU's drep*
//   floor_count x { u16 lhs_len, lhs[lhs_len], u16 rhs_len, rhs[rhs_len] }   ; no alignment
//
// lhs[0] is the protocol id. Fixed layouts (checked by decode_tower for these ids):
//   0x0d uuid     lhs = 0x0d, uuid (16, NDR little-endian layout), u16 major LE -> lhs_len 19;
//                 rhs = u16 minor LE -> rhs_len 2. Floor 1 = interface, floor 2 = transfer syntax.
//   0x0a/0b/0c    RPC protocol ncadg / ncacn / ncalrpc: lhs_len 1, rhs = u16 minor (rhs_len 2)
//   0x07/08/1f    TCP / UDP / HTTP port: lhs_len 1, rhs = u16 port *big-endian* (rhs_len 2)
//   0x09          IPv4 address: lhs_len 1, rhs = 4 octets in network order
//   0x0f/10/11/20 SMB pipe `\PIPE\name`, ncalrpc endpoint / pipe path, NetBIOS host `\\HOST`,
//                 unix socket path: lhs_len 1, rhs = NUL-terminated string
// Other ids of Samba's epm_protocol enum must have lhs_len 1; ids outside that enum are kept
// as they are (Floor::known() is false) and not checked, so a firewall can still see them.
//
// Two layers: Tower (raw floors, lossless re-encoding) and TowerView (what floors 1-3 mean,
// plus the address floors), and conversions to/from StringBinding.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/uuid.h"
#include "ndr/binding.h"
#include "ndr/errc.h"
#include "ndr/ndr.h"
#include "rpc/pdu.h"

namespace rpcgate::ndr {

// Tower floor protocol identifiers (Samba epmapper.idl enum epm_protocol).
namespace protocol_id {
inline constexpr std::uint8_t kDnetNsp = 0x04;
inline constexpr std::uint8_t kOsiTp4 = 0x05;
inline constexpr std::uint8_t kOsiClns = 0x06;
inline constexpr std::uint8_t kTcp = 0x07;
inline constexpr std::uint8_t kUdp = 0x08;
inline constexpr std::uint8_t kIp = 0x09;
inline constexpr std::uint8_t kNcadg = 0x0a;
inline constexpr std::uint8_t kNcacn = 0x0b;
inline constexpr std::uint8_t kNcalrpc = 0x0c;
inline constexpr std::uint8_t kUuid = 0x0d;
inline constexpr std::uint8_t kIpx = 0x0e;
inline constexpr std::uint8_t kSmb = 0x0f;        // named pipe `\PIPE\name`
inline constexpr std::uint8_t kNamedPipe = 0x10;  // ncalrpc endpoint / local pipe
inline constexpr std::uint8_t kNetbios = 0x11;    // `\\HOST`
inline constexpr std::uint8_t kNetbeui = 0x12;
inline constexpr std::uint8_t kSpx = 0x13;
inline constexpr std::uint8_t kNbIpx = 0x14;
inline constexpr std::uint8_t kDsp = 0x16;
inline constexpr std::uint8_t kDdp = 0x17;
inline constexpr std::uint8_t kAppletalk = 0x18;
inline constexpr std::uint8_t kVinesSpp = 0x1a;
inline constexpr std::uint8_t kVinesIpc = 0x1b;
inline constexpr std::uint8_t kStreettalk = 0x1c;
inline constexpr std::uint8_t kHttp = 0x1f;
inline constexpr std::uint8_t kUnixStream = 0x20;
inline constexpr std::uint8_t kNull = 0x21;
}  // namespace protocol_id

// True if `id` is in the epm_protocol enum above.
bool is_known_protocol_id(std::uint8_t id);

struct Floor {
  std::vector<std::uint8_t> lhs;  // never empty in a decoded tower
  std::vector<std::uint8_t> rhs;
  std::uint8_t protocol_id() const { return lhs.empty() ? 0 : lhs[0]; }
  bool known() const { return is_known_protocol_id(protocol_id()); }
  friend bool operator==(const Floor&, const Floor&) = default;
};

struct Tower {
  std::vector<Floor> floors;
  friend bool operator==(const Tower&, const Tower&) = default;
};

struct TowerLimits {
  std::size_t min_floors = 3;  // interface, transfer syntax, RPC protocol
  std::size_t max_floors = 6;  // MS-RPCE 3.1.3.5.3: towers with more floors SHOULD be rejected
};

// A tower's floors as views into its octets: what decode_tower checks, without copying. For
// per-call paths (the endpoint mapper's ept_map) that only look at a tower.
struct FloorRef {
  std::span<const std::uint8_t> lhs;  // never empty
  std::span<const std::uint8_t> rhs;
  std::uint8_t protocol_id() const { return lhs.empty() ? 0 : lhs[0]; }
};
inline constexpr std::size_t kMaxTowerFloors = 16;  // TowerLimits::max_floors above it counts as it
struct TowerRef {
  std::array<FloorRef, kMaxTowerFloors> floors{};
  std::size_t count = 0;
  std::span<const FloorRef> all() const { return {floors.data(), count}; }
};
// Exactly decode_tower's checks and errors; the views point into `octets`.
Result<TowerRef> scan_tower(std::span<const std::uint8_t> octets, const TowerLimits& limits = {});
// The floors copied out of their octets (decode_tower = scan_tower + copy_tower).
Tower copy_tower(const TowerRef& tower);

// Decodes a whole tower octet string. Errors: kTruncated (a length or body runs past the end;
// nothing is read out of bounds), kTowerFloorCount, kTowerFloorLength (lhs_len 0, or lengths
// that contradict a known protocol id), kTrailingBytes (octets after the last floor).
Result<Tower> decode_tower(std::span<const std::uint8_t> octets, const TowerLimits& limits = {});
// Encodes floors as they are (no validation); decode_tower(encode_tower(t)) == t for any t that
// decode_tower produced.
std::vector<std::uint8_t> encode_tower(const Tower& tower);

// An RPC syntax identifier (p_syntax_id_t / RPC_IF_ID): the PDU codec's type, so a tower's
// interface floor and a bind's abstract syntax compare directly.
using SyntaxId = rpc::SyntaxId;
// NDR20 8a885d04-1ceb-11c9-9fe8-08002b104860 v2.0 and NDR64 71710533-beba-4937-8319-b5dbef9ccc36
// v1.0 (rpc::kNdr20Syntax, rpc::kNdr64Syntax).
SyntaxId ndr20_syntax();
SyntaxId ndr64_syntax();

// Meaning of a tower's floors (C706 App. L): floors 1-3 decoded, floors 4.. kept raw.
struct TowerView {
  SyntaxId interface;                               // floor 1
  SyntaxId transfer_syntax;                         // floor 2
  std::uint8_t rpc_protocol = protocol_id::kNcacn;  // floor 3 protocol id: 0x0a / 0x0b / 0x0c
  std::uint16_t rpc_protocol_minor = 0;             // floor 3 rhs
  std::vector<Floor> address_floors;                // floors 4..n (endpoint, host), as on the wire
  bool has_unknown_protocol = false;                // some floor's id is not in epm_protocol
  friend bool operator==(const TowerView&, const TowerView&) = default;
};

// Errors: kTowerFloorCount (fewer than 3 floors), kTowerBadFloor (floors 1-2 not 0x0d, floor 3
// not 0x0a/0x0b/0x0c), kTowerFloorLength.
Result<TowerView> view_tower(const Tower& tower);
// view_tower's meaning of floors 1-3 (interface, transfer syntax, RPC protocol and its minor;
// address_floors left empty, has_unknown_protocol over all floors) for a tower from scan_tower
// (which checked every floor), with the same errors.
Result<TowerView> view_tower_head(const TowerRef& tower);
Tower make_tower(const TowerView& view);

// The protseq, endpoint (port in decimal / pipe or socket name) and network address (dotted
// IPv4 / NetBIOS name) of a tower; object is never set. Errors: those of view_tower, and
// kTowerUnsupported when floors 3.. are not one of the Protseq id sequences, kTowerFloorLength
// for a string floor that is not NUL-terminated.
Result<StringBinding> tower_to_binding(const Tower& tower);
// A readable fallback for a tower tower_to_binding() cannot name (an unknown protocol id, an
// unusual floor sequence): its RPC protocol id and floors 4..n as `id:rhs-hex`, e.g.
// "floors(0x0b; 0x07:c202; 0x42:00000000)". Never fails; bytes are shown, never interpreted.
// For a tower with fewer than 3 floors: "floors()".
std::string describe_floors(const Tower& tower);
// Builds a tower for `interface` over `binding`'s protseq with the given transfer syntax. IP
// protseqs need a dotted IPv4 address or an empty one (0.0.0.0; towers cannot carry IPv6 or
// host names: kTowerUnsupported) and a numeric endpoint (empty = port 0).
Result<Tower> binding_to_tower(const StringBinding& binding, const SyntaxId& interface,
                               const SyntaxId& transfer_syntax = ndr20_syntax());

// --- twr_t inside NDR stubs (C706 App. L / ept.idl: `typedef struct { unsigned32 tower_length;
// [size_is(tower_length)] byte tower_octet_string[]; } twr_t;`) ---
// A conformant structure: u32 max_count (hoisted to the front, C706 14.3.7.1), u32 tower_length,
// then the octets. max_count must equal tower_length (kCountInconsistent); the length is checked
// against the limits and the remaining bytes before anything is copied. The octets are returned
// raw: a malformed tower does not make the stub undecodable (the firewall skips bad towers).
Result<std::vector<std::uint8_t>> decode_twr(Decoder& decoder);
void encode_twr(Encoder& encoder, std::span<const std::uint8_t> octets);

}  // namespace rpcgate::ndr
