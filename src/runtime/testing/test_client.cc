#include "runtime/testing/test_client.h"

#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/uuid.h"
#include "rpc/pdu.h"

namespace rpcgate::runtime::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool wait_readable(int fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

}  // namespace

std::vector<std::uint8_t> impacket_epm_bind() {
  return {0x05, 0x00, 0x0b, 0x03, 0x10, 0x00, 0x00, 0x00, 0x48, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
          0x00, 0xb8, 0x10, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
          0x01, 0x00, 0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b,
          0x14, 0xa0, 0xfa, 0x03, 0x00, 0x00, 0x00, 0x04, 0x5d, 0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11,
          0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60, 0x02, 0x00, 0x00, 0x00};
}

std::vector<std::uint8_t> bind_pdu(const std::string& uuid, std::uint16_t major,
                                   std::uint16_t minor, std::uint32_t call_id) {
  rpc::Bind bind;
  bind.max_xmit_frag = 4280;
  bind.max_recv_frag = 4280;
  bind.contexts.push_back(rpc::ContextElement{
      0, rpc::SyntaxId{*common::Uuid::parse(uuid), major, minor}, {rpc::kNdr20Syntax}});
  return *rpc::encode_pdu(rpc::make_pdu(bind, call_id));
}

std::optional<RawConn> RawConn::tcp(std::uint16_t port, std::string address) {
  auto addr = asio::ip::make_address(address);
  sockaddr_storage ss{};
  const socklen_t len = make_sockaddr(addr, port, ss);
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return std::nullopt;
  return RawConn(std::move(fd));
}

std::optional<RawConn> RawConn::unix_socket(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), std::min(path.size(), sizeof sun.sun_path - 1));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0)
    return std::nullopt;
  return RawConn(std::move(fd));
}

bool RawConn::send(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

std::vector<std::uint8_t> RawConn::recv_once(std::chrono::milliseconds timeout) {
  if (!wait_readable(fd_.get(), Clock::now() + timeout)) return {};
  std::vector<std::uint8_t> buf(65536);
  ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
  buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return buf;
}

std::optional<std::vector<std::uint8_t>> RawConn::read_pdu(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::vector<std::uint8_t> out;
  std::size_t need = rpc::kCommonHeaderSize;
  while (out.size() < need) {
    if (!wait_readable(fd_.get(), deadline)) return std::nullopt;
    std::uint8_t buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, need - out.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return std::nullopt;
    out.insert(out.end(), buf, buf + n);
    if (out.size() == rpc::kCommonHeaderSize) {
      auto h = rpc::decode_header(out);
      if (!h) return std::nullopt;
      need = h->frag_length;
    }
  }
  return out;
}

bool RawConn::wait_closed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!wait_readable(fd_.get(), deadline)) return false;
    std::uint8_t buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return true;
  }
}

}  // namespace rpcgate::runtime::testing
