// Cuts a connection-oriented DCE/RPC byte stream into PDUs by frag_length (C706 §12.6.3.1),
// incrementally and sans-I/O, after boost::beast::http::basic_parser::put().
//
// Usage:
//   while (!data.empty()) {
//     auto n = framer.feed(data);
//     if (!n) return drop(n.error());          // the connection is dead; the framer stays failed
//     data = data.subspan(*n);
//     if (framer.ready()) { handle(framer.frame()); framer.pop(); }
//   }
//
// Contract:
// * feed() consumes bytes only up to the end of the current PDU; once a PDU is complete it
//   returns without consuming more (ready() is true) until pop(). So memory is bounded by
//   max_frag_length and the caller keeps the rest of its buffer. "Need more" is not an error:
//   feed() consumed everything and ready() is false.
// * The 16-byte common header is validated as soon as it is complete (decode_header(): version,
//   ptype, drep, frag_length >= the type's fixed header, auth_length consistency), and
//   frag_length against max_frag_length (kFragTooLong) - before any body byte is buffered.
// * Errors are sticky: after the first error every feed() returns kFramerFailed. A byte stream
//   cannot be resynchronised; the framer never scans for "05 00" (docs/evasions.md A4).
// * The framer does not decode bodies; pass frame() to decode_pdu() (pdu.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include "rpc/pdu.h"

namespace rpcgate::rpc {

class Framer {
 public:
  // `max_frag_length`: the largest frag_length accepted (16..65535; values outside are clamped).
  // Before negotiation use the configured cap; after bind_ack lower it with set_max_frag_length()
  // to the negotiated max_recv_frag / max_xmit_frag of the direction being framed.
  explicit Framer(std::size_t max_frag_length = kMaxFragLength);

  // Consumes from `data` (see contract). Returns bytes consumed (0 when ready() is already
  // true or data is empty) or the error: decode_header()'s errors, kFragTooLong, kFramerFailed.
  std::expected<std::size_t, std::error_code> feed(std::span<const std::uint8_t> data);

  // Zero-copy fast path: when nothing is held (no partial PDU, none ready, not failed) and `data`
  // starts with a whole PDU whose header passes the checks feed() makes, returns that PDU's bytes
  // (a prefix of `data`; header() describes it) without copying anything. The caller consumes
  // them itself. Otherwise nullopt and nothing changes: use feed(), which buffers, or reports the
  // error. Same PDUs, same errors as feed() alone, whatever the mix of the two.
  std::optional<std::span<const std::uint8_t>> whole_pdu(std::span<const std::uint8_t> data);

  // True when a complete PDU is available in frame().
  bool ready() const { return ready_; }
  // The complete PDU (frag_length bytes). Valid until pop() or the next feed(); only if ready().
  std::span<const std::uint8_t> frame() const { return buf_; }
  // Its validated common header. Only if ready().
  const PduHeader& header() const { return header_; }
  // Discards the current PDU so feed() continues with the next one. No-op if !ready().
  void pop();

  // Takes effect for the next PDU whose header is not yet complete.
  void set_max_frag_length(std::size_t max_frag_length);
  std::size_t max_frag_length() const { return max_frag_length_; }
  bool failed() const { return static_cast<bool>(error_); }
  // Bytes of the current, incomplete PDU held so far.
  std::size_t buffered() const { return ready_ ? 0 : buf_.size(); }
  // Those bytes themselves: after feed() failed on a header (kFragTooLong, kBadVersion...), the
  // offending PDU's common header, aligned however the input was split (for the error answer).
  std::span<const std::uint8_t> held() const {
    return ready_ ? std::span<const std::uint8_t>{} : buf_;
  }

 private:
  std::vector<std::uint8_t> buf_;
  PduHeader header_;
  std::size_t max_frag_length_;
  std::size_t need_ = kCommonHeaderSize;  // total bytes needed for the current stage
  bool have_header_ = false;
  bool ready_ = false;
  std::error_code error_;
};

}  // namespace rpcgate::rpc
