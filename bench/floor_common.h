// What the two floor programs of the benchmarks (rpc-floor-server, rpc-relay-floor) share: an
// IPV4:PORT argument and a listener that says `port=N` once it listens. Header-only and outside
// the libraries on purpose: the floors link nothing of rpcgate, so they measure only the machine.
#pragma once

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace rpcgate::bench {

// "IPV4:PORT" -> out. False for anything else (no name lookup, port 0-65535).
inline bool parse_ipv4_endpoint(const std::string& s, sockaddr_in& out) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::memset(&out, 0, sizeof out);
  out.sin_family = AF_INET;
  if (::inet_pton(AF_INET, s.substr(0, colon).c_str(), &out.sin_addr) != 1) return false;
  unsigned port = 0;
  const char* first = s.data() + colon + 1;
  const char* last = s.data() + s.size();
  const auto [p, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || p != last || port > 65535) return false;
  out.sin_port = htons(static_cast<std::uint16_t>(port));
  return true;
}

// A non-blocking listener on `at` (SO_REUSEADDR); prints `port=N` (the port bound, also when
// `at` asked for 0) on stdout and flushes it. On failure says why on stderr, as `program`, and
// returns -1.
inline int listen_and_announce(const sockaddr_in& at, int backlog, const char* program,
                               const std::string& text) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 ||
      ::listen(fd, backlog) != 0) {
    std::fprintf(stderr, "%s: cannot listen on %s: %s\n", program, text.c_str(),
                 std::strerror(errno));
    return -1;
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  std::printf("port=%u\n", static_cast<unsigned>(ntohs(bound.sin_port)));
  std::fflush(stdout);
  return fd;
}

}  // namespace rpcgate::bench
