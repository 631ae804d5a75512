#include "rpc/framer.h"

#include <algorithm>

namespace rpcgate::rpc {

Framer::Framer(std::size_t max_frag_length) {
  set_max_frag_length(max_frag_length);
  buf_.reserve(kCommonHeaderSize);
}

void Framer::set_max_frag_length(std::size_t max_frag_length) {
  max_frag_length_ = std::clamp(max_frag_length, kCommonHeaderSize, kMaxFragLength);
}

void Framer::pop() {
  if (!ready_) return;
  buf_.clear();
  need_ = kCommonHeaderSize;
  have_header_ = false;
  ready_ = false;
}

std::expected<std::size_t, std::error_code> Framer::feed(std::span<const std::uint8_t> data) {
  if (error_) return std::unexpected(make_error_code(Errc::kFramerFailed));
  std::size_t consumed = 0;
  while (!ready_ && consumed < data.size()) {
    const std::size_t take = std::min(need_ - buf_.size(), data.size() - consumed);
    buf_.insert(buf_.end(), data.begin() + static_cast<std::ptrdiff_t>(consumed),
                data.begin() + static_cast<std::ptrdiff_t>(consumed + take));
    consumed += take;
    if (buf_.size() < need_) break;
    if (!have_header_) {
      auto h = decode_header(buf_);
      if (!h) {
        error_ = h.error();
        return std::unexpected(error_);
      }
      if (h->frag_length > max_frag_length_) {
        error_ = make_error_code(Errc::kFragTooLong);
        return std::unexpected(error_);
      }
      header_ = *h;
      have_header_ = true;
      need_ = h->frag_length;
      buf_.reserve(need_);
      if (buf_.size() < need_) continue;
    }
    ready_ = true;
  }
  return consumed;
}

std::optional<std::span<const std::uint8_t>> Framer::whole_pdu(std::span<const std::uint8_t> data) {
  if (error_ || ready_ || !buf_.empty() || data.size() < kCommonHeaderSize) return std::nullopt;
  auto h = decode_header(data);
  // Anything unusual (a bad header, an over-long or incomplete PDU) goes through feed(), which
  // reports it or keeps the partial PDU.
  if (!h || h->frag_length > max_frag_length_ || h->frag_length > data.size()) return std::nullopt;
  header_ = *h;
  return data.first(h->frag_length);
}

}  // namespace rpcgate::rpc
