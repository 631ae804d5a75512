#include "runtime/net.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace rpcgate::runtime {
namespace {

std::error_code last_error() {
  return {errno, std::system_category()};
}

// One listening socket on address:port, or the errno.
std::expected<Fd, std::error_code> listen_one(const asio::ip::address& address, std::uint16_t port,
                                              int backlog) {
  int family = address.is_v4() ? AF_INET : AF_INET6;
  Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(last_error());
  int one = 1;
  // SO_REUSEADDR: a restarted daemon must not wait for TIME_WAIT connections of its predecessor.
  // On Linux it never lets two listeners share a port.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return std::unexpected(last_error());
  if (family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    return std::unexpected(last_error());
  sockaddr_storage ss;
  socklen_t len = make_sockaddr(address, port, ss);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return std::unexpected(last_error());
  if (::listen(fd.get(), backlog) != 0) return std::unexpected(last_error());
  return fd;
}

}  // namespace

socklen_t make_sockaddr(const asio::ip::address& address, std::uint16_t port,
                        sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    auto bytes = address.to_v4().to_bytes();
    std::memcpy(&sin->sin_addr, bytes.data(), bytes.size());
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  auto v6 = address.to_v6();
  auto bytes = v6.to_bytes();
  std::memcpy(&sin6->sin6_addr, bytes.data(), bytes.size());
  sin6->sin6_scope_id = v6.scope_id();
  return sizeof(sockaddr_in6);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void close_all(std::vector<int>& fds) {
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  fds.clear();
}

std::string ListenError::message() const {
  return "cannot listen on " + address + ": " + code.message();
}

std::expected<std::vector<asio::ip::address>, std::string> parse_addresses(
    const std::vector<std::string>& texts) {
  std::vector<asio::ip::address> out;
  out.reserve(texts.size());
  for (const auto& text : texts) {
    asio::error_code ec;
    auto a = asio::ip::make_address(text, ec);
    if (ec) return std::unexpected(text);
    out.push_back(a);
  }
  return out;
}

std::string format_endpoint(const asio::ip::address& address, std::uint16_t port) {
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(port);
  return address.to_string() + ":" + std::to_string(port);
}

std::string format_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return "?";
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &sin->sin_addr, b.size());
    return format_endpoint(asio::ip::address_v4(b), ntohs(sin->sin_port));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &sin6->sin6_addr, b.size());
    return format_endpoint(asio::ip::address_v6(b, sin6->sin6_scope_id), ntohs(sin6->sin6_port));
  }
  if (sa->sa_family == AF_UNIX) {
    const auto* sun = reinterpret_cast<const sockaddr_un*>(sa);
    auto path_len = static_cast<std::size_t>(len) - offsetof(sockaddr_un, sun_path);
    if (path_len == 0 || sun->sun_path[0] == '\0') return "unix";
    return "unix:" + std::string(sun->sun_path, strnlen(sun->sun_path, path_len));
  }
  return "?";
}

std::string peer_key(const asio::ip::address& address) {
  if (address.is_v4()) return address.to_string();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  auto bytes = v6.to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), std::uint8_t{0});
  return asio::ip::address_v6(bytes).to_string() + "/64";  // no scope id: a /64 is global
}

std::string peer_key(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return {};
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, b.size());
    return peer_key(asio::ip::address(asio::ip::address_v4(b)));
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, b.size());
    return peer_key(asio::ip::address(asio::ip::address_v6(b)));
  }
  return {};
}

std::expected<TcpListeners, ListenError> listen_tcp_same_port(
    const std::vector<asio::ip::address>& addresses, std::uint16_t port, int backlog,
    int max_tries) {
  if (addresses.empty())
    return std::unexpected(
        ListenError{std::make_error_code(std::errc::invalid_argument), "(no address)"});
  ListenError last;
  for (int attempt = 0; attempt < std::max(1, max_tries); ++attempt) {
    TcpListeners out;
    out.port = port;
    bool retry = false;
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      auto fd = listen_one(addresses[i], out.port, backlog);
      if (!fd) {
        last = ListenError{fd.error(), format_endpoint(addresses[i], out.port)};
        // Only a port the kernel chose for us may be exchanged for another one.
        retry = port == 0 && i > 0 && fd.error() == std::errc::address_in_use;
        break;
      }
      if (out.port == 0) {
        out.port = local_port(fd->get());
        if (out.port == 0)
          return std::unexpected(ListenError{last_error(), format_endpoint(addresses[i], 0)});
      }
      out.fds.push_back(std::move(*fd));
    }
    if (out.fds.size() == addresses.size()) return out;
    if (!retry) break;  // out.fds closes what was opened
  }
  return std::unexpected(last);
}

std::expected<Fd, ListenError> listen_unix(const std::string& path, UnixSocketAccess access,
                                           int backlog) {
  auto fail = [&](std::error_code ec) { return std::unexpected(ListenError{ec, path}); };
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path)
    return fail(std::make_error_code(std::errc::filename_too_long));
  std::memcpy(sun.sun_path, path.data(), path.size());

  // Missing directories one by one, each 0755 (not create_directories' 0777 & ~umask: a umask of
  // 077 would lock out a server that dropped root, a umask of 0 would open them to everyone).
  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::path partial;
    for (const auto& part : parent) {
      partial /= part;
      if (::mkdir(partial.c_str(), 0755) == 0) {
        ::chmod(partial.c_str(), 0755);
      } else if (errno != EEXIST) {
        return fail(last_error());
      }
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // Replace only a socket (a previous instance's leftover); never delete another kind of file.
    if (!S_ISSOCK(st.st_mode)) return fail(std::make_error_code(std::errc::file_exists));
    if (::unlink(path.c_str()) != 0) return fail(last_error());
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(last_error());
  // The mode at bind, not by chmod afterwards: between bind() and a chmod by path the socket
  // would be open to what the umask allows, and the path could meanwhile name another file.
  const mode_t old_umask = ::umask(~static_cast<mode_t>(access.mode) & 0777);
  const int bound = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  const int bind_errno = errno;
  ::umask(old_umask);
  if (bound != 0) return fail({bind_errno, std::system_category()});
  if (access.owner || access.group) {
    // Only by path (fchown on a socket descriptor changes the socket inode, not the file). The
    // file is already no more open than `mode`, and check_socket_directory keeps others from
    // replacing it in between.
    if (::fchownat(AT_FDCWD, path.c_str(), access.owner ? *access.owner : static_cast<uid_t>(-1),
                   access.group ? *access.group : static_cast<gid_t>(-1),
                   AT_SYMLINK_NOFOLLOW) != 0) {
      const auto e = last_error();
      ::unlink(path.c_str());
      return fail(e);
    }
  }
  if (::listen(fd.get(), backlog) != 0) return fail(last_error());
  return fd;
}

std::string UnsafeDirectory::message(std::span<const uid_t> trusted_owners) const {
  if (code) return "control socket directory " + path + ": " + code.message();
  char mode_text[8];
  std::snprintf(mode_text, sizeof mode_text, "%04o", mode & 07777);
  std::string owners;
  for (auto uid : trusted_owners)
    owners += (owners.empty() ? "" : " or ") + std::string("uid ") + std::to_string(uid);
  return "control socket directory " + path + ": owned by uid " + std::to_string(owner) +
         ", mode " + mode_text + ": must be owned by " + owners +
         " and not writable by group or others (except with the sticky bit)";
}

std::expected<void, UnsafeDirectory> check_socket_directory(const std::string& socket_path,
                                                            std::span<const uid_t> trusted_owners) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(socket_path), ec).parent_path();
  if (ec) return std::unexpected(UnsafeDirectory{socket_path, 0, 0, ec});
  // The nearest existing ancestor; what is missing will be created by us.
  while (!dir.empty() && dir != dir.root_path() && !fs::exists(dir, ec))
    dir = dir.parent_path();
  // Symbolic links resolved, as OpenSSH's safe_path() does with realpath(): the directories
  // that matter are those the kernel walks.
  dir = fs::canonical(dir, ec);
  if (ec) return std::unexpected(UnsafeDirectory{dir.string(), 0, 0, ec});
  for (;;) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0)
      return std::unexpected(UnsafeDirectory{dir.string(), 0, 0, last_error()});
    const bool trusted_owner =
        std::find(trusted_owners.begin(), trusted_owners.end(), st.st_uid) != trusted_owners.end();
    const bool writable_by_others = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if (!S_ISDIR(st.st_mode) || !trusted_owner || (writable_by_others && !(st.st_mode & S_ISVTX)))
      return std::unexpected(
          UnsafeDirectory{dir.string(), st.st_uid, static_cast<unsigned>(st.st_mode), {}});
    if (dir == dir.root_path()) break;
    dir = dir.parent_path();
  }
  return {};
}

bool is_loopback(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  return false;
}

std::expected<uid_t, std::error_code> SocketOwners::tcp_owner(const sockaddr* local,
                                                              socklen_t local_len,
                                                              const sockaddr* remote,
                                                              socklen_t remote_len) {
  const auto fail = [](std::errc e) { return std::unexpected(std::make_error_code(e)); };
  if (local == nullptr || remote == nullptr || local->sa_family != remote->sa_family)
    return fail(std::errc::address_family_not_supported);
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.nlh.nlmsg_seq = ++seq_;
  msg.req.sdiag_family = static_cast<std::uint8_t>(local->sa_family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (local->sa_family == AF_INET && local_len >= static_cast<socklen_t>(sizeof(sockaddr_in)) &&
      remote_len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* l = reinterpret_cast<const sockaddr_in*>(local);
    const auto* r = reinterpret_cast<const sockaddr_in*>(remote);
    msg.req.id.idiag_sport = l->sin_port;
    msg.req.id.idiag_dport = r->sin_port;
    std::memcpy(msg.req.id.idiag_src, &l->sin_addr, 4);
    std::memcpy(msg.req.id.idiag_dst, &r->sin_addr, 4);
  } else if (local->sa_family == AF_INET6 &&
             local_len >= static_cast<socklen_t>(sizeof(sockaddr_in6)) &&
             remote_len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* l = reinterpret_cast<const sockaddr_in6*>(local);
    const auto* r = reinterpret_cast<const sockaddr_in6*>(remote);
    msg.req.id.idiag_sport = l->sin6_port;
    msg.req.id.idiag_dport = r->sin6_port;
    std::memcpy(msg.req.id.idiag_src, &l->sin6_addr, 16);
    std::memcpy(msg.req.id.idiag_dst, &r->sin6_addr, 16);
  } else {
    return fail(std::errc::address_family_not_supported);
  }
  if (!netlink_) {
    netlink_.reset(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!netlink_) return std::unexpected(last_error());
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(netlink_.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    const auto e = last_error();
    netlink_.reset();  // a fresh socket next time (e.g. after ENOBUFS)
    return std::unexpected(e);
  }
  // The kernel answers within sendto(); MSG_DONTWAIT so a missing answer is an error, never a
  // stalled event loop. Answers to an earlier question (none expected) are skipped by seq.
  alignas(nlmsghdr) std::uint8_t buf[4096];
  for (;;) {
    const ssize_t n = ::recv(netlink_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto e = last_error();
      netlink_.reset();
      return std::unexpected(e);
    }
    // NLMSG_OK / NLMSG_NEXT spelled out: the macros compare an int length with the u32
    // nlmsg_len (clang's -Wsign-compare).
    const auto total = static_cast<std::size_t>(n);
    for (std::size_t off = 0, len = 0; off + sizeof(nlmsghdr) <= total; off += NLMSG_ALIGN(len)) {
      auto* h = reinterpret_cast<nlmsghdr*>(buf + off);
      len = h->nlmsg_len;
      if (len < sizeof(nlmsghdr) || len > total - off) break;
      if (h->nlmsg_seq != msg.nlh.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return fail(std::errc::protocol_error);
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (err->error == 0) return fail(std::errc::protocol_error);
        return std::unexpected(std::error_code(-err->error, std::system_category()));
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        return fail(std::errc::protocol_error);
      const auto* d = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (d->id.idiag_sport != msg.req.id.idiag_sport ||
          d->id.idiag_dport != msg.req.id.idiag_dport)
        return fail(std::errc::protocol_error);
      // TIME_WAIT and request (SYN_RECV / NEW_SYN_RECV = 12) minisockets carry no owner: the
      // kernel reports uid 0 for them, which must not pass for root. A listener is never the
      // peer of a connection.
      constexpr std::uint8_t kNewSynRecv = 12;
      if (d->idiag_state == TCP_TIME_WAIT || d->idiag_state == TCP_SYN_RECV ||
          d->idiag_state == kNewSynRecv || d->idiag_state == TCP_LISTEN)
        return fail(std::errc::no_such_file_or_directory);
      return static_cast<uid_t>(d->idiag_uid);
    }
  }
}

std::expected<std::size_t, std::error_code> send_with_fds(int socket,
                                                          std::span<const std::uint8_t> data,
                                                          std::span<const int> fds) {
  iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<std::uint8_t> control;
  if (!fds.empty()) {
    if (fds.size() > 253) return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return std::unexpected(last_error());
  }
}

std::expected<Received, std::error_code> recv_with_fds(int socket, std::span<std::uint8_t> buffer,
                                                       int flags) {
  constexpr std::size_t kMaxFds = 16;
  alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return std::unexpected(last_error());
  Received out;
  out.bytes = static_cast<std::size_t>(n);
  out.truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  return out;
}

std::optional<ucred> peer_credentials(int socket) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
    return std::nullopt;
  return cred;
}

std::expected<void, std::error_code> set_local_port_range(int socket, std::uint16_t lo,
                                                          std::uint16_t hi) {
#ifndef IP_LOCAL_PORT_RANGE
  constexpr int IP_LOCAL_PORT_RANGE = 51;  // linux/in.h, kernel >= 6.3
#endif
  std::uint32_t value = static_cast<std::uint32_t>(hi) << 16 | lo;
  if (::setsockopt(socket, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &value, sizeof value) != 0)
    return std::unexpected(last_error());
  return {};
}

std::uint16_t local_port(int socket) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(socket, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

std::expected<Fd, std::error_code> connect_stream(const sockaddr* sa, socklen_t len,
                                                  std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  Fd fd(::socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return std::unexpected(std::error_code(errno, std::system_category()));
  if (::connect(fd.get(), sa, len) == 0) return fd;
  if (errno != EINPROGRESS) return std::unexpected(std::error_code(errno, std::system_category()));
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::unexpected(std::make_error_code(std::errc::timed_out));
    pollfd p{fd.get(), POLLOUT, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (r > 0) break;
    if (r < 0 && errno != EINTR)
      return std::unexpected(std::error_code(errno, std::system_category()));
  }
  int err = 0;
  socklen_t elen = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
    return std::unexpected(std::error_code(errno, std::system_category()));
  if (err != 0) return std::unexpected(std::error_code(err, std::system_category()));
  return fd;
}

}  // namespace rpcgate::runtime
