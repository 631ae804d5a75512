// Request fragment reassembly and stub fragmentation (C706 §12.6.3.7 "Fragmentation and
// Reassembly"; MS-RPCE 3.3.1.5.6, 3.3.2.4.1).
//
// A call's stub may span several request/response PDUs with the same call_id: the first carries
// pfc::kFirstFrag, the last pfc::kLastFrag (a single-PDU call carries both). alloc_hint is only a
// hint and is never used to allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "rpc/pdu.h"

namespace rpcgate::rpc {

struct ReassemblyLimits {
  std::size_t max_stub_size = 4u << 20;    // total stub bytes of one call (4 MiB)
  std::size_t max_calls_in_progress = 16;  // multi-fragment calls awaiting their LAST fragment
};

// A complete request call.
struct Call {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;
  std::optional<Uuid> object;
  DataRep drep;                // byte order of the stub (same in every fragment)
  std::uint8_t pfc_flags = 0;  // of the first fragment (kConcMpx, kMaybe, kObjectUuid...)
  std::vector<std::uint8_t> stub;
  friend bool operator==(const Call&, const Call&) = default;
};

// Reassembles request fragments into calls. One instance per connection (one direction).
//
// Rules (each violation returns an error; the offending call, if any, is dropped; the caller
// should treat any error as fatal to the connection - e.g. fault nca_s_proto_error and close):
// * FIRST while a call with the same call_id is in progress: kDuplicateFirstFragment.
// * non-FIRST fragment for a call_id not in progress ("missing FIRST", orphan middle or LAST):
//   kUnknownCall.
// * a later fragment whose p_cont_id, opnum, object UUID or packed_drep differs from the first:
//   kFragmentMismatch (firewalls.md B11; the first fragment decides what the call is).
// * stub total > max_stub_size: kStubTooLarge (also for a single-PDU call).
// * FIRST-without-LAST when max_calls_in_progress calls are already open: kTooManyCalls. A call
//   whose LAST never comes stays open until abandon()/clear(); so missing LAST fragments end in
//   kTooManyCalls, never in unbounded memory.
// * a PDU that is not a request: kNotARequest.
// Auth trailers are not part of the stub; verify each fragment's trailer before feeding it.
class RequestReassembler {
 public:
  explicit RequestReassembler(ReassemblyLimits limits = {}) : limits_(limits) {}

  // Feeds one decoded PDU. Returns the complete call when `pdu` completes one (a FIRST|LAST
  // PDU, or the LAST fragment of an open call), std::nullopt while the call needs more fragments.
  std::expected<std::optional<Call>, std::error_code> feed(const Pdu& pdu);
  // Same, taking the stub by move (no copy for single-fragment calls).
  std::expected<std::optional<Call>, std::error_code> feed(Pdu&& pdu);

  // Forgets an open call (co_cancel, orphaned). True if it was open.
  bool abandon(std::uint32_t call_id) { return calls_.erase(call_id) != 0; }
  void clear() { calls_.clear(); }
  std::size_t calls_in_progress() const { return calls_.size(); }
  const ReassemblyLimits& limits() const { return limits_; }

 private:
  template <typename P>
  std::expected<std::optional<Call>, std::error_code> feed_impl(P&& pdu);

  ReassemblyLimits limits_;
  std::unordered_map<std::uint32_t, Call> calls_;
};

// What every fragment of a split stub repeats.
struct FragmentParams {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;           // requests only
  std::optional<Uuid> object;        // requests only
  std::uint8_t extra_pfc_flags = 0;  // OR-ed into every fragment (e.g. kConcMpx); FIRST/LAST are
                                     // set by the splitter
  DataRep drep = DataRep::little_endian();
  std::uint8_t rpc_vers_minor = 0;
};

// Splits `stub` into encoded response PDUs (no auth), each at most `max_xmit_frag` bytes (the
// negotiated size for this direction): FIRST on the first, LAST on the last, alloc_hint = stub
// bytes remaining from this fragment on, stub chunks a multiple of 8 bytes except the last
// (Windows keeps fragment boundaries 8-aligned for NDR). An empty stub gives one FIRST|LAST PDU.
// Errors: kInvalidArgument if max_xmit_frag leaves fewer than 8 stub bytes per fragment
// (max_xmit_frag < 32) or exceeds 65535.
std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> split_response(
    const FragmentParams& params, std::span<const std::uint8_t> stub, std::size_t max_xmit_frag);

// Same for a request (24-byte header, +16 with an object UUID).
std::expected<std::vector<std::vector<std::uint8_t>>, std::error_code> split_request(
    const FragmentParams& params, std::span<const std::uint8_t> stub, std::size_t max_xmit_frag);

}  // namespace rpcgate::rpc
