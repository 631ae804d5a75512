#include "runtime/client.h"

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

std::expected<void, std::error_code> SyncClient::write_all(std::span<const std::uint8_t> data,
                                                           Deadline deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data = data.subspan(static_cast<std::size_t>(n));
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
  return {};
}

std::expected<rpc::Pdu, std::error_code> SyncClient::read_pdu(Deadline deadline,
                                                              std::vector<Fd>& fds) {
  rpc::Framer framer(max_recv_frag_ != 0 ? max_recv_frag_ : rpc::kMaxFragLength);
  std::size_t used = 0;
  for (;;) {
    while (used < inbuf_.size() && !framer.ready()) {
      auto n = framer.feed(std::span<const std::uint8_t>(inbuf_).subspan(used));
      if (!n) return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
      used += *n;
    }
    if (framer.ready()) {
      auto pdu = rpc::decode_pdu(framer.frame());
      inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<std::ptrdiff_t>(used));
      if (!pdu) return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
      return std::move(*pdu);
    }
    inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<std::ptrdiff_t>(used));
    used = 0;
    // `framer` keeps the partial PDU it consumed; read more.
    std::uint8_t buf[8192];
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
    inbuf_.insert(inbuf_.end(), buf, buf + r->bytes);
  }
}

std::expected<void, std::error_code> SyncClient::bind(
    const std::vector<rpc::SyntaxId>& interfaces) {
  if (!usable()) return std::unexpected(make_error_code(Errc::kServerUnavailable));
  last_rejection_.reset();
  auto deadline = Clock::now() + timeout_;
  rpc::Bind bind;
  bind.max_xmit_frag = 5840;
  bind.max_recv_frag = 5840;
  if (!interfaces.empty())
    bind.contexts.push_back(rpc::ContextElement{0, interfaces[0], {rpc::kNdr20Syntax}});
  auto bytes = rpc::encode_pdu(rpc::make_pdu(bind, next_call_id_++));
  if (!bytes) return std::unexpected(make_error_code(Errc::kProtocolError));
  if (auto w = write_all(*bytes, deadline); !w) return w;
  // The bind_ack must fit the max_recv_frag we just offered: a larger frag_length is refused
  // at once (kProtocolError) instead of waiting for up to 64 KiB from a hostile server.
  max_recv_frag_ = bind.max_recv_frag;
  std::vector<Fd> fds;
  auto pdu = read_pdu(deadline, fds);
  if (!pdu) return std::unexpected(pdu.error());
  if (const auto* nak = std::get_if<rpc::BindNak>(&pdu->body)) {
    last_rejection_ = BindRejection{.nak = true, .reject_reason = nak->provider_reject_reason};
    return std::unexpected(fail(make_error_code(Errc::kUnknownInterface)));
  }
  const auto* ack = std::get_if<rpc::BindAck>(&pdu->body);
  if (ack == nullptr || ack->results.size() != bind.contexts.size())
    return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
  if (!ack->results.empty() && ack->results[0].result != 0) {
    last_rejection_ = BindRejection{
        .p_cont_id = 0, .result = ack->results[0].result, .reason = ack->results[0].reason};
    return std::unexpected(fail(make_error_code(Errc::kUnknownInterface)));
  }
  max_xmit_frag_ = ack->max_recv_frag;
  max_recv_frag_ = ack->max_xmit_frag;
  assoc_group_id_ = ack->assoc_group_id;
  sec_addr_ = std::string(ack->secondary_address());
  for (std::size_t i = 1; i < interfaces.size(); ++i) {
    rpc::AlterContext alter;
    alter.max_xmit_frag = 5840;
    alter.max_recv_frag = 5840;
    alter.assoc_group_id = assoc_group_id_;
    alter.contexts.push_back(
        rpc::ContextElement{static_cast<std::uint16_t>(i), interfaces[i], {rpc::kNdr20Syntax}});
    auto out = rpc::encode_pdu(rpc::make_pdu(alter, next_call_id_++));
    if (!out) return std::unexpected(make_error_code(Errc::kProtocolError));
    if (auto w = write_all(*out, deadline); !w) return w;
    auto reply = read_pdu(deadline, fds);
    if (!reply) return std::unexpected(reply.error());
    const auto* resp = std::get_if<rpc::AlterContextResp>(&reply->body);
    if (resp == nullptr || resp->results.size() != 1)
      return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
    if (resp->results[0].result != 0) {
      last_rejection_ = BindRejection{.p_cont_id = static_cast<std::uint16_t>(i),
                                      .result = resp->results[0].result,
                                      .reason = resp->results[0].reason};
      return std::unexpected(fail(make_error_code(Errc::kUnknownInterface)));
    }
  }
  return {};
}

std::expected<CallReply, std::error_code> SyncClient::call(std::uint16_t p_cont_id,
                                                           std::uint16_t opnum,
                                                           std::span<const std::uint8_t> stub) {
  if (!usable() || max_xmit_frag_ == 0)
    return std::unexpected(make_error_code(Errc::kServerUnavailable));
  last_fault_.reset();
  auto deadline = Clock::now() + timeout_;
  rpc::FragmentParams params;
  params.call_id = next_call_id_++;
  params.p_cont_id = p_cont_id;
  params.opnum = opnum;
  auto frags = rpc::split_request(params, stub, max_xmit_frag_);
  if (!frags) return std::unexpected(make_error_code(Errc::kProtocolError));
  for (const auto& f : *frags)
    if (auto w = write_all(f, deadline); !w) return std::unexpected(w.error());
  CallReply reply;
  for (bool first = true;; first = false) {
    auto pdu = read_pdu(deadline, reply.fds);
    if (!pdu) return std::unexpected(pdu.error());
    if (pdu->header.call_id != params.call_id)
      return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
    if (const auto* f = std::get_if<rpc::Fault>(&pdu->body)) {
      last_fault_ = f->status;
      return std::unexpected(make_error_code(Errc::kCallFailed));
    }
    auto* r = std::get_if<rpc::Response>(&pdu->body);
    if (r == nullptr || first != ((pdu->header.pfc_flags & rpc::pfc::kFirstFrag) != 0) ||
        reply.stub.size() + r->stub.size() > max_response_)
      return std::unexpected(fail(make_error_code(Errc::kProtocolError)));
    if (first) reply.endian = pdu->header.endian();
    reply.stub.insert(reply.stub.end(), r->stub.begin(), r->stub.end());
    if (pdu->header.pfc_flags & rpc::pfc::kLastFrag) return reply;
  }
}

}  // namespace rpcgate::runtime
