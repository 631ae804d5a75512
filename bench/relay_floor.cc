// rpc-relay-floor: the "what any relay costs" floor for the firewall benchmark. A single-threaded
// epoll TCP relay that accepts on one address, connects each accepted connection on to one fixed
// target, and moves bytes both ways as rpcgate-fwd's copy path does (256 KiB reads, a read shorter
// than asked ends the turn, TCP_NODELAY) - and nothing else: no PDU framing, no inspection, no
// tproxy, no logging, no limits, no timeouts. Measured beside rpcgate-fwd and a direct route
// (bench/fwd_side_by_side.sh), it says how much of rpcgate-fwd's cost is terminating TCP twice,
// which every proxy pays, and how much is rpcgate-fwd's own. Never to be deployed.
//
//   rpc-relay-floor --listen IPV4:PORT --to IPV4:PORT     (listen PORT 0: the kernel chooses)
// stdout, once listening: `port=N` (flushed). Exit 1 when it cannot listen, 2 on bad usage.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_common.h"

namespace {

constexpr std::size_t kChunk = 256 * 1024;

// One direction: bytes read from `from` and not yet written to `to`.
struct Pipe {
  std::vector<std::uint8_t> buf;
  std::size_t sent = 0;
  bool eof = false;
};

struct Conn {
  int c = -1, s = -1;
  bool connected = false;
  Pipe up, down;                                    // client -> server, server -> client
  std::uint32_t c_events = 0, s_events = EPOLLOUT;  // what epoll waits for now
  ~Conn() {
    if (c >= 0) ::close(c);
    if (s >= 0) ::close(s);
  }
};

int g_epoll = -1;
std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> g_conns;

void set_events(int fd, std::uint64_t key, std::uint32_t events, bool add) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  ::epoll_ctl(g_epoll, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

// Writes what `p` holds to `to`; false when `to` failed.
bool drain(Pipe& p, int to) {
  while (p.sent < p.buf.size()) {
    const ssize_t n = ::send(to, p.buf.data() + p.sent, p.buf.size() - p.sent, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    p.sent += static_cast<std::size_t>(n);
  }
  p.buf.clear();
  p.sent = 0;
  return true;
}

// Reads from `from` into `p` while `p` is empty (one chunk in flight per direction, as
// back-pressure), writing each chunk on at once; false when the connection is done with.
bool pump(Pipe& p, int from, int to, std::vector<std::uint8_t>& scratch) {
  for (int rounds = 0; rounds < 4 && p.buf.empty() && !p.eof; ++rounds) {
    const ssize_t n = ::recv(from, scratch.data(), scratch.size(), 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) {
      p.eof = true;
      ::shutdown(to, SHUT_WR);
      return true;
    }
    p.buf.assign(scratch.begin(), scratch.begin() + n);
    if (!drain(p, to)) return false;
    if (static_cast<std::size_t>(n) < scratch.size()) break;
  }
  return true;
}

void update(std::uint64_t id, Conn& k) {
  const auto want = [&](const Pipe& in, const Pipe& out) {
    std::uint32_t ev = 0;
    if (in.buf.empty() && !in.eof) ev |= EPOLLIN;
    if (!out.buf.empty()) ev |= EPOLLOUT;
    return ev;
  };
  // Changed only when it changes: an epoll_ctl per event would be a syscall rpcgate-fwd does not
  // make, and this floor must not cost more than it has to.
  if (const auto ev = want(k.up, k.down); ev != k.c_events) {
    set_events(k.c, id << 1, ev, false);
    k.c_events = ev;
  }
  if (const auto ev = k.connected ? want(k.down, k.up) : EPOLLOUT; ev != k.s_events) {
    set_events(k.s, (id << 1) | 1, ev, false);
    k.s_events = ev;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_at, to;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--listen" || a == "--to") && i + 1 < argc) {
      (a == "--listen" ? listen_at : to) = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::puts("usage: rpc-relay-floor --listen IPV4:PORT --to IPV4:PORT");
      return 0;
    } else {
      std::fprintf(stderr, "rpc-relay-floor: unknown argument %s (--help)\n", a.c_str());
      return 2;
    }
  }
  sockaddr_in la{}, ta{};
  if (!rpcgate::bench::parse_ipv4_endpoint(listen_at, la) ||
      !rpcgate::bench::parse_ipv4_endpoint(to, ta)) {
    std::fprintf(stderr, "rpc-relay-floor: --listen and --to take IPV4:PORT\n");
    return 2;
  }
  const int lfd = rpcgate::bench::listen_and_announce(la, 1024, "rpc-relay-floor", listen_at);
  if (lfd < 0) return 1;
  const int one = 1;

  g_epoll = ::epoll_create1(EPOLL_CLOEXEC);
  constexpr std::uint64_t kListener = ~std::uint64_t{0};
  set_events(lfd, kListener, EPOLLIN, true);
  std::vector<std::uint8_t> scratch(kChunk);
  std::uint64_t next_id = 1;
  std::vector<epoll_event> events(64);
  for (;;) {
    const int n = ::epoll_wait(g_epoll, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t key = events[static_cast<std::size_t>(i)].data.u64;
      if (key == kListener) {
        for (;;) {
          const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          auto k = std::make_unique<Conn>();
          k->c = c;
          k->s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ::setsockopt(k->s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (::connect(k->s, reinterpret_cast<sockaddr*>(&ta), sizeof ta) != 0 &&
              errno != EINPROGRESS)
            continue;  // closes both
          const std::uint64_t id = next_id++;
          set_events(c, id << 1, 0, true);
          set_events(k->s, (id << 1) | 1, EPOLLOUT, true);
          g_conns.emplace(id, std::move(k));
        }
        continue;
      }
      const std::uint64_t id = key >> 1;
      const bool server_side = key & 1;
      auto it = g_conns.find(id);
      if (it == g_conns.end()) continue;
      Conn& k = *it->second;
      bool ok = true;
      if (server_side && !k.connected) {
        int err = 0;
        socklen_t el = sizeof err;
        ::getsockopt(k.s, SOL_SOCKET, SO_ERROR, &err, &el);
        ok = err == 0;
        k.connected = ok;
      } else if (server_side) {
        ok = drain(k.up, k.s) && pump(k.down, k.s, k.c, scratch);
      } else {
        ok = drain(k.down, k.c) && pump(k.up, k.c, k.s, scratch);
      }
      // Both directions ended and written out: done (a reset ends it at once).
      if (!ok || (k.up.eof && k.down.eof && k.up.buf.empty() && k.down.buf.empty())) {
        g_conns.erase(it);
        continue;
      }
      update(id, k);
    }
  }
}
