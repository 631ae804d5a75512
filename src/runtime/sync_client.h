// A small synchronous DCE/RPC client over a stream socket (TCP or Unix), for startup-time calls
// of a server process (EpmdClient) and for tests: the socket shell of an rpc::Connection in the
// client role (rpc/connection.h: binding, request fragmentation, response reassembly). Every
// wait has a deadline: no call can block forever. Not thread-safe: one thread uses one
// SyncClient at a time.
//
// One call at a time: call() writes the request fragments (split at the negotiated size) and
// reads until the response is complete or a fault. File descriptors arriving as SCM_RIGHTS
// with any fragment of the response (Unix sockets) are collected, close-on-exec, in arrival
// order. After any error other than a fault (timeout, protocol error, closed connection) the
// connection is unusable: every later call fails with kServerUnavailable.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "common/bytes.h"
#include "rpc/connection.h"
#include "rpc/pdu.h"
#include "runtime/errc.h"
#include "runtime/net.h"

namespace rpcgate::runtime {

struct Reply {
  std::vector<std::uint8_t> stub;
  std::vector<Fd> fds;
  common::Endian endian = common::Endian::kLittle;  // the response's drep byte order
};

// Why the last bind() failed when the server said no (rather than timing out or sending
// garbage): a bind_nak with its provider_reject_reason, or the first rejected context of a
// bind_ack with its result / reason (rpc/status.h names them).
struct BindRejection {
  bool nak = false;
  std::uint16_t reject_reason = 0;  // bind_nak provider_reject_reason
  std::uint16_t p_cont_id = 0;      // bind_ack: the rejected context
  std::uint16_t result = 0;         // bind_ack p_result_t result (user / provider rejection)
  std::uint16_t reason = 0;         // bind_ack p_result_t reason (abstract syntax not supported...)
};

class SyncClient {
 public:
  // Connects (non-blocking connect + poll) within `timeout`. Errors: kTimeout, kServerUnavailable
  // (connect failed: ENOENT, ECONNREFUSED, EAGAIN for a full Unix backlog...).
  static std::expected<SyncClient, std::error_code> connect_unix(const std::string& path,
                                                                 std::chrono::milliseconds timeout);
  static std::expected<SyncClient, std::error_code> connect_tcp(const asio::ip::address& address,
                                                                std::uint16_t port,
                                                                std::chrono::milliseconds timeout);
  // Takes over a connected stream socket (e.g. from connect_stream(), which reports the errno).
  static SyncClient adopt(Fd connected) { return SyncClient(std::move(connected)); }

  // Binds presentation contexts 0..n-1 to `interfaces` (NDR 2.0 each), max frags 5840: context 0
  // in the bind, each other one in its own alter_context, because Windows (and rpcgate's server)
  // accepts one new presentation context per bind / alter_context (rpc/association.h).
  // Errors: kUnknownInterface (any context not accepted, or bind_nak: last_bind_rejection() says
  // which and why), kTimeout, kProtocolError (also a fault answering an alter_context),
  // kCallFailed (connection closed).
  std::expected<void, std::error_code> bind(const std::vector<rpc::SyntaxId>& interfaces);

  // One call on context `p_cont_id`. Errors: kCallFailed with last_fault() set when the server
  // answered with a fault; kTimeout; kProtocolError (undecodable PDU, MSG_CTRUNC, unexpected
  // PDU type or call_id, a response stub larger than max_response()); kCallFailed (connection
  // closed); kServerUnavailable (not usable).
  std::expected<Reply, std::error_code> call(std::uint16_t p_cont_id, std::uint16_t opnum,
                                             std::span<const std::uint8_t> stub);

  // Per-operation deadline for bind() and call() (default 5 s).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // Largest reassembled response stub call() accepts (default 64 MiB); more is kProtocolError.
  // Takes effect at the next bind().
  void set_max_response(std::size_t bytes) { max_response_ = bytes; }
  std::size_t max_response() const { return max_response_; }
  std::optional<std::uint32_t> last_fault() const { return last_fault_; }
  std::optional<BindRejection> last_bind_rejection() const { return last_rejection_; }
  std::uint16_t max_xmit_frag() const { return core_ ? core_->engine.max_xmit_frag() : 0; }
  std::uint32_t assoc_group_id() const { return core_ ? core_->engine.assoc_group_id() : 0; }
  std::string secondary_address() const {
    return core_ ? std::string(core_->engine.secondary_address()) : std::string();
  }
  int native_handle() const { return fd_.get(); }
  bool usable() const { return static_cast<bool>(fd_) && !broken_; }

 private:
  explicit SyncClient(Fd fd) : fd_(std::move(fd)) {}
  using Deadline = std::chrono::steady_clock::time_point;
  // The engine and what its callbacks report, at a stable address (SyncClient is movable).
  struct Core : rpc::ConnectionHandler {
    explicit Core(const rpc::ClientRole& role);
    void on_bind_result(const rpc::BindResult& r) override { bind_result = r; }
    void on_response(const rpc::ResponseView& r) override;
    std::optional<rpc::BindResult> bind_result;
    std::optional<Reply> reply;
    std::optional<std::uint32_t> fault;
    rpc::Connection engine;
  };
  // Writes the engine's output and feeds it what arrives until `done()` or the deadline.
  // Errors: kTimeout, kCallFailed (closed), kProtocolError (the engine closed on a protocol
  // error, or MSG_CTRUNC).
  template <typename Done>
  std::expected<void, std::error_code> run(Deadline deadline, std::vector<Fd>& fds, Done done);
  std::error_code fail(std::error_code e) {
    broken_ = true;
    return e;
  }

  Fd fd_;
  std::unique_ptr<Core> core_;  // from the first bind()
  std::chrono::milliseconds timeout_{5000};
  std::size_t max_response_ = 64u << 20;
  std::optional<std::uint32_t> last_fault_;
  std::optional<BindRejection> last_rejection_;
  bool broken_ = false;
};

}  // namespace rpcgate::runtime
