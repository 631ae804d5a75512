#include "runtime/sync_client.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpc/fragments.h"
#include "rpc/framer.h"
#include "rpc/status.h"

namespace rpcgate::runtime {
namespace {

using Clock = std::chrono::steady_clock;

// poll() for `events` until `deadline`. false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // let the following call report the error
  }
}

std::expected<Fd, std::error_code> connect_sockaddr(const sockaddr* sa, socklen_t len,
                                                    std::chrono::milliseconds timeout) {
  auto fd = connect_stream(sa, len, timeout);
  if (fd) return fd;
  return std::unexpected(make_error_code(
      fd.error() == std::errc::timed_out ? Errc::kTimeout : Errc::kServerUnavailable));
}

}  // namespace

std::expected<SyncClient, std::error_code> SyncClient::connect_unix(
    const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path)
    return std::unexpected(make_error_code(Errc::kServerUnavailable));
  std::memcpy(sun.sun_path, path.data(), path.size());
  auto fd = connect_sockaddr(reinterpret_cast<sockaddr*>(&sun), sizeof sun, timeout);
  if (!fd) return std::unexpected(fd.error());
  return SyncClient(std::move(*fd));
}

std::expected<SyncClient, std::error_code> SyncClient::connect_tcp(
    const asio::ip::address& address, std::uint16_t port, std::chrono::milliseconds timeout) {
  sockaddr_storage ss{};
  const socklen_t len = make_sockaddr(address, port, ss);
  auto fd = connect_sockaddr(reinterpret_cast<sockaddr*>(&ss), len, timeout);
  if (!fd) return std::unexpected(fd.error());
  return SyncClient(std::move(*fd));
}

SyncClient::Core::Core(const rpc::ClientRole& role)
    // No engine deadline: every wait of a SyncClient has its own.
    : engine(role, rpc::caller_timed_client_options(), *this, Clock::now()) {}

void SyncClient::Core::on_response(const rpc::ResponseView& r) {
  if (r.fault) {
    fault = r.fault;
    return;
  }
  Reply out;
  out.stub.assign(r.stub.begin(), r.stub.end());
  out.endian = r.drep.endian();
  reply = std::move(out);
}

template <typename Done>
std::expected<void, std::error_code> SyncClient::run(Deadline deadline, std::vector<Fd>& fds,
                                                     Done done) {
  rpc::Connection& engine = core_->engine;
  std::uint8_t buf[8192];
  for (;;) {
    // Write everything queued first (a request's fragments), then read.
    for (auto out = engine.next_output(); !out.bytes.empty(); out = engine.next_output()) {
      const ssize_t n =
          ::send(fd_.get(), out.bytes.data(), out.bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        engine.output_sent(static_cast<std::size_t>(n), Clock::now());
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_for(fd_.get(), POLLOUT, deadline))
          return std::unexpected(fail(make_error_code(Errc::kTimeout)));
        continue;
      }
      return std::unexpected(fail(make_error_code(Errc::kCallFailed)));
    }
    if (done()) return {};
    if (engine.state() == rpc::Connection::State::kClosed) {
      // A bind_nak ends the association: done() has seen it. Anything else is a protocol error.
      return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
    }
    auto r = recv_with_fds(fd_.get(), buf, MSG_DONTWAIT);
    if (!r) {
      if (r.error() == std::errc::resource_unavailable_try_again ||
          r.error() == std::errc::operation_would_block || r.error() == std::errc::interrupted) {
        if (!wait_for(fd_.get(), POLLIN, deadline))
          return std::unexpected(fail(make_error_code(Errc::kTimeout)));
        continue;
      }
      return std::unexpected(fail(make_error_code(Errc::kCallFailed)));
    }
    for (auto& f : r->fds)
      fds.push_back(std::move(f));
    if (r->truncated) return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
    if (r->bytes == 0) return std::unexpected(fail(make_error_code(Errc::kCallFailed)));
    engine.feed(rpc::Direction::kServerToClient, std::span<const std::uint8_t>(buf, r->bytes),
                Clock::now());
  }
}

std::expected<void, std::error_code> SyncClient::bind(
    const std::vector<rpc::SyntaxId>& interfaces) {
  if (!usable() || core_) return std::unexpected(make_error_code(Errc::kServerUnavailable));
  last_rejection_.reset();
  const auto deadline = Clock::now() + timeout_;
  rpc::ClientRole role;
  role.max_xmit_frag = rpc::kDefaultServerMaxFrag;
  role.max_recv_frag = rpc::kDefaultServerMaxFrag;
  role.responses.max_stub_size = max_response_;
  core_ = std::make_unique<Core>(role);
  if (!core_->engine.bind(interfaces, Clock::now()))
    return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
  std::vector<Fd> fds;
  auto ran = run(deadline, fds, [this] { return core_->bind_result.has_value(); });
  if (!ran) return ran;
  const rpc::BindResult& r = *core_->bind_result;
  if (r.accepted) return {};
  last_rejection_ = BindRejection{.nak = r.nak,
                                  .reject_reason = r.reject_reason,
                                  .p_cont_id = r.p_cont_id,
                                  .result = r.result,
                                  .reason = r.reason};
  return std::unexpected(fail(make_error_code(Errc::kUnknownInterface)));
}

std::expected<Reply, std::error_code> SyncClient::call(std::uint16_t p_cont_id, std::uint16_t opnum,
                                                       std::span<const std::uint8_t> stub) {
  if (!usable() || !core_ || !core_->engine.bound())
    return std::unexpected(make_error_code(Errc::kServerUnavailable));
  last_fault_.reset();
  const auto deadline = Clock::now() + timeout_;
  core_->reply.reset();
  core_->fault.reset();
  if (core_->engine.call(p_cont_id, opnum, stub, Clock::now()) == 0)
    return std::unexpected(make_error_code(Errc::kProtocolError));
  std::vector<Fd> fds;
  auto ran = run(deadline, fds, [this] { return core_->reply || core_->fault; });
  if (!ran) return std::unexpected(ran.error());
  if (core_->fault) {
    last_fault_ = core_->fault;
    return std::unexpected(make_error_code(Errc::kCallFailed));
  }
  Reply reply = std::move(*core_->reply);
  reply.fds = std::move(fds);
  return reply;
}

}  // namespace rpcgate::runtime
