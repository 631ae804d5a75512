// Raw-socket helpers for runtime tests: byte-exact input (golden binds, garbage, half PDUs) and
// bounded reads. Every wait is bounded by its timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <asio/ip/address.hpp>

#include "runtime/net.h"

namespace rpcgate::runtime::testing {

using namespace std::chrono_literals;

// The 72-byte Impacket 0.10.0 bind for EPM v3.0 (docs/wire-vectors.md bind-epm).
std::vector<std::uint8_t> impacket_epm_bind();
// An Impacket-style bind (call_id 1, 4280/4280, context 0 = `uuid` vMAJOR.MINOR + NDR 2.0).
std::vector<std::uint8_t> bind_pdu(const std::string& uuid, std::uint16_t major,
                                   std::uint16_t minor, std::uint32_t call_id = 1);

class RawConn {
 public:
  static std::optional<RawConn> tcp(std::uint16_t port, std::string address = "127.0.0.1");
  static std::optional<RawConn> unix_socket(const std::string& path);

  bool send(std::span<const std::uint8_t> bytes);
  // One recv() (waiting up to `timeout`); empty on timeout or EOF.
  std::vector<std::uint8_t> recv_once(std::chrono::milliseconds timeout = 2s);
  // One whole PDU (header first, then up to frag_length); nullopt on timeout/EOF/garbage.
  std::optional<std::vector<std::uint8_t>> read_pdu(std::chrono::milliseconds timeout = 2s);
  // True if the peer closes (EOF or reset) within `timeout`; input before that is discarded.
  bool wait_closed(std::chrono::milliseconds timeout);
  int fd() const { return fd_.get(); }

 private:
  explicit RawConn(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

}  // namespace rpcgate::runtime::testing
