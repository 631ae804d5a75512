// Request and response fragment reassembly and stub fragmentation (C706 §12.6.3.7
// "Fragmentation and Reassembly"; MS-RPCE 3.3.1.5.6, 3.3.2.4.1).
//
// A call's stub may span several request/response PDUs with the same call_id: the first carries
// pfc::kFirstFrag, the last pfc::kLastFrag (a single-PDU call carries both). alloc_hint is only a
// hint: requests never use it to allocate, responses reserve at most 64 KiB from it.
#pragma once

#include <chrono>
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

// The reassembler never reads a clock: the caller passes the time in (sans-I/O).
using TimePoint = std::chrono::steady_clock::time_point;

struct ReassemblyLimits {
  // Total stub bytes of one call (4 MiB, Samba's DCERPC_NCACN_REQUEST_DEFAULT_MAX_SIZE) when the
  // caller gives no cap of its own for the call's context (feed()'s `stub_cap`, e.g. the
  // interface's: an endpoint mapper request needs far less).
  std::size_t max_stub_size = 4u << 20;
  std::size_t max_calls_in_progress = 16;  // multi-fragment calls awaiting their LAST fragment
  // Bytes held for all open calls of this reassembler (one connection), counted as allocated:
  // the capacity of every open call's stub buffer, not its size. 0 = no budget.
  std::size_t max_held_bytes = 8u << 20;
  // FIRST fragment -> LAST fragment of one call, checked by expired(now); zero = no deadline.
  // Each fragment is a whole PDU, so a per-PDU timeout never fires for a call whose LAST
  // fragment never comes.
  std::chrono::milliseconds call_timeout{5000};
};

// A complete request call.
struct AssembledRequest {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  std::uint16_t opnum = 0;
  std::optional<Uuid> object;
  DataRep drep;                // byte order of the stub (same in every fragment)
  std::uint8_t pfc_flags = 0;  // of the first fragment (kConcMpx, kMaybe, kObjectUuid...)
  std::vector<std::uint8_t> stub;
  friend bool operator==(const AssembledRequest&, const AssembledRequest&) = default;
};

// Reassembles request fragments into calls. One instance per connection (one direction).
//
// Rules (each violation returns an error; the offending call, if any, is dropped; the caller
// should treat any error as fatal to the connection - e.g. fault nca_s_proto_error and close):
// * FIRST while a call with the same call_id is in progress: kDuplicateFirstFragment.
// * non-FIRST fragment for a call_id not in progress ("missing FIRST", orphan middle or LAST):
//   kUnknownCall.
// * a later fragment whose p_cont_id, opnum, object UUID or packed_drep differs from the first:
//   kFragmentMismatch (docs/evasions.md B11; the first fragment decides what the call is).
// * stub total > the call's cap: kStubTooLarge (also for a single-PDU call). The cap is fixed by
//   the FIRST fragment: feed()'s `stub_cap` if given (the cap of the interface its context is
//   bound to), else limits.max_stub_size - so a FIRST fragment of a small interface cannot start
//   a 4 MiB call.
// * the bytes held for all open calls (stub buffer capacities) would exceed max_held_bytes:
//   kReassemblyBudget. Checked before the buffer grows, so the budget is never allocated past.
// * FIRST-without-LAST when max_calls_in_progress calls are already open: kTooManyCalls.
// * a PDU that is not a request: kNotARequest.
// A call whose LAST never comes stays open until abandon()/clear(), or until the caller sees
// expired(now) (call_timeout after its FIRST fragment) and ends the connection; so missing LAST
// fragments end in kTooManyCalls / kReassemblyBudget / the deadline, never in unbounded memory.
// Auth trailers are not part of the stub; verify each fragment's trailer before feeding it.
class RequestReassembler {
 public:
  explicit RequestReassembler(ReassemblyLimits limits = {}) : limits_(limits) {}
  RequestReassembler(RequestReassembler&&) = default;
  RequestReassembler& operator=(RequestReassembler&&) = default;

  // Feeds one decoded PDU received at `now`. Returns the complete call when `pdu` completes one
  // (a FIRST|LAST PDU, or the LAST fragment of an open call), std::nullopt while the call needs
  // more fragments. `stub_cap`: the cap of the call a FIRST fragment starts (ignored on later
  // fragments: the first fragment decides); nullopt = limits().max_stub_size.
  std::expected<std::optional<AssembledRequest>, std::error_code> feed(
      const Pdu& pdu, TimePoint now = {}, std::optional<std::size_t> stub_cap = std::nullopt);
  // Same, taking the stub by move (no copy for single-fragment calls).
  std::expected<std::optional<AssembledRequest>, std::error_code> feed(
      Pdu&& pdu, TimePoint now = {}, std::optional<std::size_t> stub_cap = std::nullopt);

  // Forgets an open call (co_cancel, orphaned). True if it was open.
  bool abandon(std::uint32_t call_id);
  // Forgets every open call and frees their buffers.
  void clear();
  std::size_t calls_in_progress() const { return calls_.size(); }
  // One call still being reassembled (its call_id, p_cont_id, opnum...; the stub so far), or
  // nullptr if none. Which one is unspecified when several are open.
  const AssembledRequest* open_call() const;
  // Bytes allocated for the stubs of open calls (sum of their buffers' capacities).
  std::size_t held_bytes() const { return held_; }
  // The earliest FIRST fragment time of an open call + call_timeout; nullopt when no call is open
  // or there is no deadline.
  std::optional<TimePoint> expiry() const;
  // Whether an open call has passed its deadline at `now`.
  bool expired(TimePoint now) const;
  const ReassemblyLimits& limits() const { return limits_; }

 private:
  struct Open {
    AssembledRequest call;
    std::size_t cap = 0;   // stub cap fixed by the FIRST fragment
    std::size_t held = 0;  // call.stub.capacity() as counted in held_
    TimePoint started;     // when the FIRST fragment came
  };
  template <typename P>
  std::expected<std::optional<AssembledRequest>, std::error_code> feed_impl(
      P&& pdu, TimePoint now, std::optional<std::size_t> cap);
  void forget(std::unordered_map<std::uint32_t, Open>::iterator it);

  ReassemblyLimits limits_;
  std::unordered_map<std::uint32_t, Open> calls_;
  std::size_t held_ = 0;
};

// ---- Responses (client side; also an observer's server->client direction) --------------------

struct ResponseLimits {
  std::size_t max_stub_size = 16u << 20;   // one response's total stub bytes
  std::size_t max_calls_in_progress = 16;  // responses with FIRST seen and LAST not yet
};

// A complete response (or the fault that ended a call).
struct AssembledResponse {
  std::uint32_t call_id = 0;
  std::uint16_t p_cont_id = 0;
  DataRep drep;  // of the FIRST fragment (all fragments agree)
  std::vector<std::uint8_t> stub;
  std::optional<std::uint32_t> fault;  // set for a fault PDU (stub empty, unless the fault
                                       // carried one)
  std::uint8_t pfc_flags = 0;          // of the first (or only) fragment
  friend bool operator==(const AssembledResponse&, const AssembledResponse&) = default;
};

// Reassembles response fragments (C706 §12.6.4.10) into responses, and ends a call on its fault
// (C706 §12.6.4.7). One instance per connection, fed the PDUs the server sent. Which call_ids the
// client asked for is not its business: the caller matches AssembledResponse::call_id to its
// calls (a response to no call is the caller's protocol error).
//
// Rules (each violation returns an error and drops the offending call, if one was open; the
// caller treats any error as fatal to the connection):
// * a PDU that is neither a response nor a fault: kNotAResponse.
// * a fault completes its call at once, whether fragments of it were open or not; its pfc_flags
//   are not read as fragmentation (faults are never fragmented in practice) and it is not
//   compared with the open fragments: the fault's own header and p_cont_id are reported.
// * FIRST while a response with the same call_id is open: kDuplicateFirstFragment.
// * non-FIRST fragment for a call_id with no open response: kUnknownCall.
// * a later fragment whose p_cont_id or packed_drep differs from the FIRST: kFragmentMismatch.
// * total stub bytes of one response (or a fault's stub) > limits.max_stub_size: kStubTooLarge,
//   checked before the buffer grows.
// * FIRST-without-LAST when max_calls_in_progress responses are already open: kTooManyCalls.
// Fragments of different calls may interleave (multiplexed responses, pfc::kConcMpx); each call
// is checked on its own.
//
// Memory: a single-fragment response's stub is moved out of the Pdu (no copy). An open response
// buffer never has a capacity above max_stub_size, so held_bytes() <= max_calls_in_progress *
// max_stub_size. alloc_hint is a hint from the peer: the FIRST fragment reserves
// min(alloc_hint, max_stub_size, kTrustedAllocHint) (at least its own stub), so a peer that
// claims a huge response must send the bytes before they are allocated; beyond that the buffer
// grows geometrically, capped at max_stub_size.
class ResponseReassembler {
 public:
  // The most of alloc_hint reserved up front (64 KiB: a dozen default-sized fragments).
  static constexpr std::size_t kTrustedAllocHint = 64u << 10;

  explicit ResponseReassembler(ResponseLimits limits = {}) : limits_(limits) {}
  ResponseReassembler(ResponseReassembler&&) = default;
  ResponseReassembler& operator=(ResponseReassembler&&) = default;

  // Feeds one decoded PDU from the server that is a response or a fault. Returns the complete
  // response when `pdu` completes one (a FIRST|LAST response, the LAST fragment of an open one,
  // or a fault), std::nullopt while more fragments are needed. Errors: see the rules above.
  std::expected<std::optional<AssembledResponse>, std::error_code> feed(Pdu&& pdu);

  // Forgets an open response (the caller gave up on the call). True if it was open.
  bool abandon(std::uint32_t call_id);
  // Forgets every open response and frees their buffers.
  void clear();
  std::size_t calls_in_progress() const { return calls_.size(); }
  // Bytes allocated for the stubs of open responses (sum of their buffers' capacities).
  std::size_t held_bytes() const { return held_; }
  const ResponseLimits& limits() const { return limits_; }

 private:
  struct Open {
    AssembledResponse response;
    std::size_t held = 0;  // response.stub.capacity() as counted in held_
  };
  void forget(std::unordered_map<std::uint32_t, Open>::iterator it);

  ResponseLimits limits_;
  std::unordered_map<std::uint32_t, Open> calls_;
  std::size_t held_ = 0;
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

// The same fragments appended to `out` back to back (what a connection sends from: no buffer
// per fragment, no allocation when `out` has room). Returns the number of fragments; on error
// (split_response's) nothing is appended.
std::expected<std::size_t, std::error_code> append_response(const FragmentParams& params,
                                                            std::span<const std::uint8_t> stub,
                                                            std::size_t max_xmit_frag,
                                                            std::vector<std::uint8_t>& out);
std::expected<std::size_t, std::error_code> append_request(const FragmentParams& params,
                                                           std::span<const std::uint8_t> stub,
                                                           std::size_t max_xmit_frag,
                                                           std::vector<std::uint8_t>& out);

}  // namespace rpcgate::rpc
