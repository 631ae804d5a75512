// Socket plumbing shared by the server, the broker and the epmd client: listening sockets that
// take the same port on every address, Unix stream listeners, SCM_RIGHTS file-descriptor passing
// and SO_PEERCRED. Plain POSIX calls with error codes; no event loop here (server.h adds that).
//
// Every function is thread-safe in the sense of the underlying system calls; none keeps state.
// Every descriptor created here is close-on-exec.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>
#include <sys/socket.h>
#include <sys/types.h>

namespace rpcgate::runtime {

// An owned file descriptor (-1 = none). Move-only; closes on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Gives up ownership.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Closes every descriptor in `fds` (ignoring -1) and clears it.
void close_all(std::vector<int>& fds);

// Why a listen call failed, naming the address ("0.0.0.0:135", "[::1]:49152", "/run/x.sock").
struct ListenError {
  std::error_code code;
  std::string address;
  std::string message() const;  // "cannot listen on ADDRESS: MESSAGE"
};

struct TcpListeners {
  std::vector<Fd> fds;  // one per address, in the order given
  std::uint16_t port = 0;
};

// Numeric IPv4/IPv6 addresses ("127.0.0.1", "::1"), as a server's --listen options take them.
// Error: the first text that is not one.
std::expected<std::vector<asio::ip::address>, std::string> parse_addresses(
    const std::vector<std::string>& texts);

// "1.2.3.4:5" / "[::1]:5".
std::string format_endpoint(const asio::ip::address& address, std::uint16_t port);

// Fills `ss` with address:port (IPv6 scope id kept) and returns the length to pass to
// bind()/connect().
socklen_t make_sockaddr(const asio::ip::address& address, std::uint16_t port, sockaddr_storage& ss);
// Formats an AF_INET/AF_INET6/AF_UNIX sockaddr ("unix:PATH" for named Unix sockets, "unix" for
// unnamed ones); "?" for anything else.
std::string format_sockaddr(const sockaddr* sa, socklen_t len);

// The key of a client's per-peer budgets (connections, reassembly bytes, ...): what one party
// plausibly controls. IPv4: the address ("192.0.2.7"). IPv6: its /64 ("2001:db8:1:2::/64"), the
// smallest prefix a site or a host is routinely given (RFC 6177), so one attacker cannot count
// as 2^64 peers. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, on a dual-stack socket) is the
// IPv4 peer it maps. peer_key(sockaddr) gives "" for anything that is not AF_INET/AF_INET6.
std::string peer_key(const asio::ip::address& address);
std::string peer_key(const sockaddr* sa, socklen_t len);

// Listening TCP sockets (SO_REUSEADDR, IPv6 with IPV6_V6ONLY so IPv4 and IPv6 are separate
// sockets) on the SAME port on every address of `addresses` (non-empty), all or nothing:
// * port != 0: bind that port on each address; the first failure closes what was opened and is
//   returned naming that address (e.g. EADDRINUSE on "[::1]:135").
// * port == 0: the kernel chooses on the first address, the others bind the same port; when one
//   of them reports EADDRINUSE everything is closed and the whole sequence is retried with a new
//   kernel choice, at most `max_tries` times (then the last EADDRINUSE is returned). Other errors
//   (EADDRNOTAVAIL, EAFNOSUPPORT, EACCES...) fail at once.
// `backlog` is passed to listen(). The sockets are blocking; callers that need non-blocking set it.
std::expected<TcpListeners, ListenError> listen_tcp_same_port(
    const std::vector<asio::ip::address>& addresses, std::uint16_t port, int backlog = 1024,
    int max_tries = 16);

// Who owns a Unix socket file and who may connect to it (connecting needs write permission).
struct UnixSocketAccess {
  unsigned mode = 0666;
  std::optional<uid_t> owner;  // chown after bind (nullopt: the creating process' euid)
  std::optional<gid_t> group;  // chown after bind (nullopt: the creating process' egid)
};

// A listening Unix stream socket at `path`: creates missing parent directories (mode 0755, owned
// by the caller), replaces a stale socket file (only a socket: any other existing file is
// EEXIST). The file gets `access.mode` at bind (the umask is set to ~mode around bind(), so the
// socket is never more open than asked, not even briefly; the umask is process-wide: call this
// before starting other threads that create files), then `access.owner`/`group` by lchown - by
// path, so the parent directory must be one only trusted users can write to (see
// check_socket_directory). Errors name the path. Paths longer than sun_path are ENAMETOOLONG.
std::expected<Fd, ListenError> listen_unix(const std::string& path, UnixSocketAccess access,
                                           int backlog = 1024);
inline std::expected<Fd, ListenError> listen_unix(const std::string& path, unsigned mode = 0666,
                                                  int backlog = 1024) {
  return listen_unix(path, UnixSocketAccess{mode, {}, {}}, backlog);
}

// Why check_socket_directory refused a directory.
struct UnsafeDirectory {
  std::string path;  // the offending directory (after resolving symbolic links)
  uid_t owner = 0;
  unsigned mode = 0;
  std::error_code code;  // set when the directory could not be examined (then owner/mode are 0)
  // "control socket directory /x: owned by uid 65534, mode 0777: must be owned by root or by
  // uid 998 and not writable by group or others (except with the sticky bit)"
  std::string message(std::span<const uid_t> trusted_owners) const;
};

// The rule OpenSSH's StrictModes applies to ~/.ssh, for the directories of a socket that grants
// rights: every existing ancestor of `socket_path` (symbolic links resolved, up to /) must be
// owned by one of `trusted_owners` and must not be writable by group or others - unless it has
// the sticky bit (/tmp: others may create names there but not rename or remove ours; the socket
// itself is only replaced if it is a socket, and lchown never follows a link). Otherwise another
// user could rename the directory or the socket and put their own in its place. Missing
// directories are skipped (listen_unix creates them, owned by the caller, mode 0755).
std::expected<void, UnsafeDirectory> check_socket_directory(const std::string& socket_path,
                                                            std::span<const uid_t> trusted_owners);

// True for an IPv4 loopback address (127.0.0.0/8), ::1 and IPv4-mapped 127.0.0.0/8.
bool is_loopback(const sockaddr* sa, socklen_t len);

// The owners of local TCP sockets, asked of the kernel: NETLINK_SOCK_DIAG, an inet_diag_req_v2
// exact lookup by 4-tuple (what `ss -tnpe` does), answered from the kernel's socket hash in the
// calling process' network namespace, with the uid that created the socket (in the caller's
// user namespace). One netlink socket, opened at the first lookup, kept open (also after a
// privilege drop: reading sock_diag needs no privilege); each lookup is one sendto + one recv,
// answered synchronously by the kernel within sendto() - per accepted loopback connection, not
// per call.
// Not thread-safe (one per thread).
class SocketOwners {
 public:
  // The uid of the TCP socket whose local address is `local` and remote address is `remote`
  // (both AF_INET, or both AF_INET6 - IPv4-mapped addresses are looked up as IPv4, as the kernel
  // does). For the peer of an accepted loopback connection pass (its getpeername, its
  // getsockname). Errors: ENOENT (no such socket, or only a TIME_WAIT / request socket, whose
  // owner the kernel does not keep), EAFNOSUPPORT (not TCP/IP addresses), EPROTO (an answer that
  // does not match the question), the errno of socket/sendto/recv.
  std::expected<uid_t, std::error_code> tcp_owner(const sockaddr* local, socklen_t local_len,
                                                  const sockaddr* remote, socklen_t remote_len);

 private:
  Fd netlink_;
  std::uint32_t seq_ = 0;
};

// Non-blocking sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL) of `data` with `fds` as one SCM_RIGHTS
// control message (none if empty; at most 253 fds). Returns bytes sent (the fds travel with the
// first byte: if the result is > 0 they were sent). Errors: the errno (EAGAIN when the socket
// buffer is full and nothing was sent).
std::expected<std::size_t, std::error_code> send_with_fds(int socket,
                                                          std::span<const std::uint8_t> data,
                                                          std::span<const int> fds);

struct Received {
  std::size_t bytes = 0;   // 0 = end of stream
  std::vector<Fd> fds;     // SCM_RIGHTS descriptors that arrived with these bytes (CLOEXEC)
  bool truncated = false;  // MSG_CTRUNC: some descriptors were lost (the caller should fail)
};

// recvmsg(MSG_CMSG_CLOEXEC | `flags`) into `buffer`, collecting up to 16 SCM_RIGHTS descriptors.
// Other control messages are ignored. Errors: the errno (EAGAIN with MSG_DONTWAIT).
std::expected<Received, std::error_code> recv_with_fds(int socket, std::span<std::uint8_t> buffer,
                                                       int flags = 0);

// The peer of a connected Unix socket (SO_PEERCRED); nullopt when unavailable.
std::optional<ucred> peer_credentials(int socket);

// Restricts the ephemeral ports the kernel picks for this socket's bind(0)/connect to lo..hi
// (IP_LOCAL_PORT_RANGE, Linux >= 6.3). Errors: ENOPROTOOPT on older kernels (callers ignore it:
// the system-wide ip_local_port_range applies then), EINVAL for a bad range.
std::expected<void, std::error_code> set_local_port_range(int socket, std::uint16_t lo,
                                                          std::uint16_t hi);

// A new stream socket of sa->sa_family (close-on-exec, left non-blocking) connected to `sa`
// within `timeout` (non-blocking connect + poll). Errors: the errno of socket()/connect() or of
// SO_ERROR (ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ENOENT, EAGAIN...); std::errc::timed_out
// when the deadline passed first.
std::expected<Fd, std::error_code> connect_stream(const sockaddr* sa, socklen_t len,
                                                  std::chrono::milliseconds timeout);

// The local port of a bound socket, 0 on error.
std::uint16_t local_port(int socket);

}  // namespace rpcgate::runtime
