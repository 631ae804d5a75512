// rpc-floor-server: the "what the machine allows" floor for rpcgate-bench. A single-threaded
// epoll server that cuts the byte stream into PDUs by frag_length (the 16-byte common header,
// C706 §12.6.3.1) and parses nothing else:
//   bind (ptype 11)    -> the canned 60-byte bind_ack of docs/wire-vectors.md bind-ack-epm
//                         (max frags 4280, sec_addr "135", NDR accepted), call_id copied;
//   request (ptype 0)  -> the canned 152-byte ept_map response (ept-map-response: one tower,
//                         127.0.0.1[49664], status 0), call_id copied;
//   anything else      -> ignored.
// A frag_length below 16 closes the connection. No limits, no timeouts, no logging: it exists to
// be measured against (`rpcgate-bench epm-map --target 127.0.0.1:PORT`), never to be deployed.
//
//   rpc-floor-server --listen 127.0.0.1:PORT     (PORT 0: the kernel chooses)
// stdout, once listening: `port=N` (flushed). Exit 1 when it cannot listen, 2 on bad usage.
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_common.h"

namespace {

constexpr std::array<std::uint8_t, 60> kBindAck = {
    0x05, 0x00, 0x0c, 0x03, 0x10, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0xb8, 0x10, 0xb8, 0x10, 0x45, 0x23, 0x01, 0x00, 0x04, 0x00, 0x31, 0x33, 0x35, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x5d, 0x88, 0x8a, 0xeb,
    0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60, 0x02, 0x00, 0x00, 0x00};

constexpr std::array<std::uint8_t, 152> kEptMapResponse = {
    // header, alloc_hint 0x80, p_cont_id 0
    0x05, 0x00, 0x02, 0x03, 0x10, 0x00, 0x00, 0x00, 0x98, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // entry_handle
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    // num_towers, max_count, offset, actual_count, referent
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00,
    // tower_length, max_count
    0x4b, 0x00, 0x00, 0x00, 0x4b, 0x00, 0x00, 0x00,
    // the 75-byte tower: SAMR v1.0, NDR v2.0, ncacn, TCP 49664, IP 127.0.0.1
    0x05, 0x00, 0x13, 0x00, 0x0d, 0x78, 0x57, 0x34, 0x12, 0x34, 0x12, 0xcd, 0xab, 0xef, 0x00, 0x01,
    0x23, 0x45, 0x67, 0x89, 0xac, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x13, 0x00, 0x0d, 0x04, 0x5d,
    0x88, 0x8a, 0xeb, 0x1c, 0xc9, 0x11, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60, 0x02, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02, 0x00,
    0xc2, 0x00, 0x01, 0x00, 0x09, 0x04, 0x00, 0x7f, 0x00, 0x00, 0x01,
    // pad, status
    0x00, 0x00, 0x00, 0x00, 0x00};

constexpr std::size_t kHeaderSize = 16;
constexpr std::size_t kReadBufferSize = 65536;

struct Conn {
  int fd = -1;
  std::vector<std::uint8_t> pending;  // the start of an incomplete PDU
  std::vector<std::uint8_t> out;      // what send() did not take yet
  bool want_out = false;
};

// u16 / u32 in the PDU's own byte order (drep byte 0 high nibble: 1 little, 0 big endian).
std::uint32_t load(const std::uint8_t* p, std::size_t n, bool little) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint32_t>(p[little ? i : n - 1 - i]) << (8 * i);
  return v;
}

template <std::size_t N>
void append_canned(std::vector<std::uint8_t>& out, const std::array<std::uint8_t, N>& canned,
                   std::uint32_t call_id) {
  const std::size_t at = out.size();
  out.insert(out.end(), canned.begin(), canned.end());
  for (int i = 0; i < 4; ++i)  // the canned PDUs are little-endian
    out[at + 12 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(call_id >> (8 * i));
}

// Answers every complete PDU of data[0..len); returns bytes consumed, or -1 for a bad
// frag_length.
long answer(const std::uint8_t* data, std::size_t len, std::vector<std::uint8_t>& out) {
  std::size_t pos = 0;
  while (len - pos >= kHeaderSize) {
    const std::uint8_t* p = data + pos;
    const bool little = (p[4] >> 4) == 1;
    const std::size_t frag = load(p + 8, 2, little);
    if (frag < kHeaderSize) return -1;
    if (len - pos < frag) break;
    const std::uint32_t call_id = load(p + 12, 4, little);
    if (p[2] == 11) append_canned(out, kBindAck, call_id);
    if (p[2] == 0) append_canned(out, kEptMapResponse, call_id);
    pos += frag;
  }
  return static_cast<long>(pos);
}

class FloorServer {
 public:
  explicit FloorServer(int listener) : listener_(listener) {}
  int run();

 private:
  void accept_all();
  void on_readable(Conn& c);
  void send_out(Conn& c);
  void close(Conn& c);
  void watch(Conn& c, bool want_out);

  int listener_;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;  // indexed by fd
  std::vector<std::uint8_t> batch_;
  std::array<std::uint8_t, kReadBufferSize> buf_{};
};

void FloorServer::watch(Conn& c, bool want_out) {
  epoll_event ev{};
  ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
  ev.data.fd = c.fd;
  ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = want_out;
}

void FloorServer::close(Conn& c) {
  const int fd = c.fd;
  ::close(fd);
  conns_[static_cast<std::size_t>(fd)].reset();
}

void FloorServer::accept_all() {
  for (;;) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or out of descriptors: try again on the next event
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (conns_.size() <= static_cast<std::size_t>(fd))
      conns_.resize(static_cast<std::size_t>(fd) + 1);
    conns_[static_cast<std::size_t>(fd)] = std::make_unique<Conn>();
    conns_[static_cast<std::size_t>(fd)]->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void FloorServer::send_out(Conn& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(c.out.begin(), c.out.begin() + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c.want_out) watch(c, true);
      return;
    }
    return close(c);
  }
  if (c.want_out) watch(c, false);
}

void FloorServer::on_readable(Conn& c) {
  const ssize_t n = ::recv(c.fd, buf_.data(), buf_.size(), MSG_DONTWAIT);
  if (n == 0) return close(c);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return close(c);
  }
  const auto got = static_cast<std::size_t>(n);
  batch_.clear();
  long used = 0;
  if (c.pending.empty()) {
    used = answer(buf_.data(), got, batch_);
    if (used < 0) return close(c);
    c.pending.assign(buf_.begin() + used, buf_.begin() + n);
  } else {
    c.pending.insert(c.pending.end(), buf_.begin(), buf_.begin() + n);
    used = answer(c.pending.data(), c.pending.size(), batch_);
    if (used < 0) return close(c);
    c.pending.erase(c.pending.begin(), c.pending.begin() + used);
  }
  if (batch_.empty()) return;
  c.out.insert(c.out.end(), batch_.begin(), batch_.end());
  send_out(c);
}

int FloorServer::run() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) return 1;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener_;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &ev);
  std::array<epoll_event, 256> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == listener_) {
        accept_all();
        continue;
      }
      Conn* c = static_cast<std::size_t>(fd) < conns_.size()
                    ? conns_[static_cast<std::size_t>(fd)].get()
                    : nullptr;
      if (c == nullptr) continue;
      const std::uint32_t e = events[static_cast<std::size_t>(i)].events;
      if ((e & EPOLLOUT) != 0) send_out(*c);
      c = conns_[static_cast<std::size_t>(fd)].get();
      if (c != nullptr && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) on_readable(*c);
    }
  }
}

int usage() {
  std::fprintf(stderr, "usage: rpc-floor-server --listen IPV4:PORT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::strcmp(argv[1], "--listen") != 0) return usage();
  const std::string listen = argv[2];
  sockaddr_in sa{};
  if (!rpcgate::bench::parse_ipv4_endpoint(listen, sa)) return usage();
  const int fd = rpcgate::bench::listen_and_announce(sa, 4096, "rpc-floor-server", listen);
  if (fd < 0) return 1;
  return FloorServer(fd).run();
}
