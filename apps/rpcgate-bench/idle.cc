#include "idle.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo/echo.h"
#include "load.h"
#include "ndr/epm_types.h"
#include "rpc/connection.h"
#include "runtime/net.h"
#include "runtime/rpc_client.h"
#include "runtime/sync_client.h"

namespace rpcgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

constexpr std::chrono::milliseconds kScanEvery{10};

std::string errno_text(int e) {
  std::string m = std::strerror(e);
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

sockaddr_in ipv4_sockaddr(std::uint32_t host_order) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host_order);
  a.sin_port = 0;
  return a;
}

// 127.0.0.1 + index.
sockaddr_in source_address(unsigned index) {
  return ipv4_sockaddr(INADDR_LOOPBACK + index);
}

// Connection i's source: from the list when there is one, else 127.0.0.(1 + i % sources).
sockaddr_in source_of(const IdleConfig& c, std::size_t i) {
  if (!c.source_list.empty())
    return ipv4_sockaddr(c.source_list[i % c.source_list.size()].to_uint());
  return source_address(static_cast<unsigned>(i % c.sources));
}

asio::ip::address_v4 probe_source_of(const IdleConfig& c) {
  if (!c.source_list.empty()) return c.probe_source.value_or(c.source_list.front());
  return asio::ip::address_v4(INADDR_LOOPBACK + c.sources);
}

const rpc::SyntaxId& bind_syntax(IdleBind b) {
  static const rpc::SyntaxId rpcecho = echo::rpcecho_syntax();
  return b == IdleBind::kRpcecho ? rpcecho : rpc::kEpmSyntax;
}

constexpr std::uint32_t kAddOneInput = 0x0a0b0c0d;

sockaddr_in target_address(const IdleConfig& c) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(c.address.to_uint());
  a.sin_port = htons(c.port);
  return a;
}

// A non-blocking TCP socket bound to `source` (port chosen at connect time), connect() started.
// Returns the socket and whether the connect already completed; the errno on failure.
std::expected<std::pair<runtime::Fd, bool>, int> start_connect(const sockaddr_in& source,
                                                               const sockaddr_in& target) {
  runtime::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(errno);
  const int one = 1;
  // Without it bind() picks the port for the address alone and runs out far sooner.
  ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0)
    return std::unexpected(errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target), sizeof target) == 0)
    return std::pair{std::move(fd), true};
  if (errno != EINPROGRESS) return std::unexpected(errno);
  return std::pair{std::move(fd), false};
}

// The same, waiting for the connect within `timeout`.
std::expected<runtime::Fd, std::string> connect_from(const sockaddr_in& source,
                                                     const sockaddr_in& target,
                                                     std::chrono::milliseconds timeout) {
  auto started = start_connect(source, target);
  if (!started) return std::unexpected(errno_text(started.error()));
  auto& [fd, done] = *started;
  if (done) return std::move(fd);
  pollfd p{fd.get(), POLLOUT, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return std::unexpected(fmt::format("timed out after {}", runtime::format_duration(timeout)));
  if (r < 0) return std::unexpected(errno_text(errno));
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return std::unexpected(errno_text(err));
  return std::move(fd);
}

// One connection being opened or held: the socket shell of an rpc::Connection in the client role
// during the handshake (binding EPM); the engine is dropped once the bind is answered, so a held
// connection costs its descriptor only.
struct Conn : rpc::ConnectionHandler {
  runtime::Fd fd;
  enum class State : std::uint8_t { kNotStarted, kConnecting, kBinding, kHeld, kFailed };
  State state = State::kNotStarted;
  std::unique_ptr<rpc::Connection> engine;
  std::optional<rpc::BindResult> bind_result;
  TimePoint started;
  void on_bind_result(const rpc::BindResult& r) override { bind_result = r; }
};

class Opener {
 public:
  Opener(const IdleConfig& config, IdleResult& result)
      : cfg_(config),
        result_(result),
        conns_(config.connections),
        target_(target_address(config)) {}

  // Opens every connection (or gives up on it). Error: epoll could not be created.
  std::expected<void, std::string> run();
  std::vector<Conn>& conns() { return conns_; }

 private:
  void start(std::size_t i, TimePoint now);
  void on_writable(Conn& c);
  void on_readable(Conn& c);
  void send_bind(Conn& c);
  void fail(Conn& c, ErrorKind f);
  void held(Conn& c);
  void finished(Conn& c);

  const IdleConfig& cfg_;
  IdleResult& result_;
  std::vector<Conn> conns_;
  sockaddr_in target_;
  runtime::Fd epoll_;
  unsigned in_flight_ = 0;
};

void Opener::fail(Conn& c, ErrorKind f) {
  result_.failures.count(f);
  ++result_.connections_failed;
  const bool was_in_flight =
      c.state == Conn::State::kConnecting || c.state == Conn::State::kBinding;
  c.state = Conn::State::kFailed;
  c.fd.reset();  // also leaves the epoll set
  if (was_in_flight) finished(c);
}

void Opener::finished(Conn& c) {
  c.engine.reset();
  --in_flight_;
}

void Opener::held(Conn& c) {
  // Held connections are not watched: step 3 of the model polls them once.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  c.state = Conn::State::kHeld;
  ++result_.connections_held;
  finished(c);
}

void Opener::start(std::size_t i, TimePoint now) {
  Conn& c = conns_[i];
  c.started = now;
  ++in_flight_;
  c.state = Conn::State::kConnecting;
  auto s = start_connect(source_of(cfg_, i), target_);
  if (!s) return fail(c, ErrorKind::kConnect);
  c.fd = std::move(s->first);
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN;
  ev.data.u64 = i;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0)
    return fail(c, ErrorKind::kConnect);
  if (s->second) send_bind(c);
}

void Opener::send_bind(Conn& c) {
  c.state = Conn::State::kBinding;
  rpc::ClientRole role;
  role.max_xmit_frag = kMaxFrag;
  role.max_recv_frag = kMaxFrag;
  c.engine = std::make_unique<rpc::Connection>(role, rpc::caller_timed_client_options(), c,
                                               Clock::now());  // step_timeout applies
  c.engine->bind(std::span<const rpc::SyntaxId>(&bind_syntax(cfg_.bind), 1), Clock::now());
  on_writable(c);
}

void Opener::on_writable(Conn& c) {
  for (auto out = c.engine->next_output(); !out.bytes.empty(); out = c.engine->next_output()) {
    const ssize_t n =
        ::send(c.fd.get(), out.bytes.data(), out.bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.engine->output_sent(static_cast<std::size_t>(n), Clock::now());
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT again
    return fail(c, ErrorKind::kClosed);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

void Opener::on_readable(Conn& c) {
  std::uint8_t buf[kMaxFrag];
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return fail(c, ErrorKind::kClosed);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return fail(c, ErrorKind::kClosed);
    }
    c.engine->feed(rpc::Direction::kServerToClient,
                   std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)), Clock::now());
    if (c.bind_result) return c.bind_result->accepted ? held(c) : fail(c, ErrorKind::kBind);
    if (c.engine->state() != rpc::Connection::State::kOpen) return fail(c, ErrorKind::kProtocol);
  }
}

std::expected<void, std::string> Opener::run() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return std::unexpected(fmt::format("epoll_create1: {}", errno_text(errno)));
  const auto begin = Clock::now();
  const auto deadline = begin + cfg_.timeout;
  std::size_t next = 0;
  auto next_scan = begin + kScanEvery;
  std::vector<epoll_event> events(std::max(1u, cfg_.max_in_flight));
  while (result_.connections_held + result_.connections_failed < conns_.size()) {
    auto now = Clock::now();
    if (now >= deadline) {
      for (auto& c : conns_) {
        if (c.state == Conn::State::kConnecting || c.state == Conn::State::kBinding ||
            c.state == Conn::State::kNotStarted)
          fail(c, ErrorKind::kTimeout);
      }
      break;
    }
    while (in_flight_ < cfg_.max_in_flight && next < conns_.size())
      start(next++, now);
    if (now >= next_scan) {
      for (std::size_t i = 0; i < next; ++i) {
        Conn& c = conns_[i];
        if ((c.state == Conn::State::kConnecting || c.state == Conn::State::kBinding) &&
            now - c.started > cfg_.step_timeout)
          fail(c, ErrorKind::kTimeout);
      }
      next_scan = now + kScanEvery;
    }
    if (in_flight_ == 0) continue;
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                               static_cast<int>(kScanEvery.count()));
    for (int e = 0; e < n; ++e) {
      Conn& c = conns_[events[e].data.u64];
      const std::uint32_t ev = events[e].events;
      if (c.state == Conn::State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP)) != 0) {
          fail(c, ErrorKind::kConnect);
          continue;
        }
        if ((ev & EPOLLOUT) == 0) continue;
        send_bind(c);
        continue;
      }
      if (c.state != Conn::State::kBinding) continue;
      if ((ev & EPOLLOUT) != 0 && c.engine->output_bytes() > 0) on_writable(c);
      if (c.state == Conn::State::kBinding && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
        on_readable(c);
    }
  }
  return {};
}

// Closes `fd` after the server has closed its side: shutdown(SHUT_WR), then read until EOF (at
// most `timeout`). Once the server saw the EOF and closed, it no longer counts the connection
// against its limits: the next connections meet a known count.
void close_gracefully(int fd, std::chrono::milliseconds timeout) {
  if (::shutdown(fd, SHUT_WR) != 0) return;
  const auto deadline = Clock::now() + timeout;
  std::uint8_t buf[256];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return;
  }
}

// A new client: connect from `source`, bind EPM, and with a `stub` one ept_map whose status must
// be 0 with a tower (kRpcecho: bind rpcecho, and with a `stub` one AddOne, answered in + 1).
// Returns the time that took; the connection is then closed gracefully (not timed). Error: one
// sentence.
std::expected<Clock::duration, std::string> probe(const sockaddr_in& source,
                                                  const sockaddr_in& target,
                                                  const std::string& peer, IdleBind bind,
                                                  const std::vector<std::uint8_t>* stub,
                                                  std::chrono::milliseconds timeout) {
  const auto t0 = Clock::now();
  auto fd = connect_from(source, target, timeout);
  if (!fd) return std::unexpected(fmt::format("connect to {}: {}", peer, fd.error()));
  auto client = runtime::SyncClient::adopt(std::move(*fd));
  client.set_timeout(timeout);
  if (auto b = client.bind({bind_syntax(bind)}); !b)
    return std::unexpected(
        runtime::describe_call_error(b.error(), client, peer, "bind", timeout).message);
  if (stub != nullptr && bind == IdleBind::kRpcecho) {
    auto r = client.call(0, static_cast<std::uint16_t>(echo::Opnum::kAddOne), *stub);
    if (!r)
      return std::unexpected(
          runtime::describe_call_error(r.error(), client, peer, "call", timeout).message);
    auto decoded = echo::AddOneResponse::decode(r->stub, r->endian);
    if (!decoded || decoded->out_data != kAddOneInput + 1)
      return std::unexpected("AddOne answered wrong");
  } else if (stub != nullptr) {
    auto r = client.call(0, ndr::epm::kOpnumEptMap, *stub);
    if (!r)
      return std::unexpected(
          runtime::describe_call_error(r.error(), client, peer, "call", timeout).message);
    auto decoded = ndr::epm::decode_ept_map_response(r->stub, r->endian);
    if (!decoded) return std::unexpected("ept_map response does not decode");
    if (decoded->status != 0) return std::unexpected(runtime::describe_fault(decoded->status));
    if (decoded->towers.empty()) return std::unexpected("ept_map returned no tower");
  }
  const auto took = Clock::now() - t0;
  close_gracefully(client.native_handle(), timeout);
  return took;
}

// Polls every held connection once: those the server closed or reset no longer count.
unsigned count_alive(std::vector<Conn>& conns) {
  std::vector<pollfd> fds;
  for (auto& c : conns)
    if (c.state == Conn::State::kHeld) fds.push_back({c.fd.get(), POLLIN | POLLRDHUP, 0});
  if (fds.empty()) return 0;
  int r;
  do {
    r = ::poll(fds.data(), fds.size(), 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return 0;
  unsigned alive = 0;
  for (const auto& p : fds) {
    if ((p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) != 0) continue;
    if ((p.revents & POLLIN) != 0) {
      std::uint8_t b;
      const ssize_t n = ::recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) continue;
    }
    ++alive;  // unasked-for bytes would be odd, but the connection is open
  }
  return alive;
}

double seconds_since(TimePoint t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

unsigned default_sources(unsigned connections) {
  const unsigned k = (connections + kConnectionsPerSource - 1) / kConnectionsPerSource;
  return std::clamp(k, 1u, kMaxSources);
}

std::optional<std::uint64_t> count_open_fds(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it(fmt::format("/proc/{}/fd", pid), ec);
  if (ec) return std::nullopt;
  std::uint64_t n = 0;
  for (const auto end = std::filesystem::directory_iterator(); it != end; it.increment(ec)) {
    if (ec) return std::nullopt;
    ++n;
  }
  return n;
}

std::optional<std::uint64_t> read_vm_rss_kib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::uint64_t kib = 0;
    bool digits = false;
    for (char ch : line.substr(6)) {
      if (ch >= '0' && ch <= '9') {
        kib = kib * 10 + static_cast<std::uint64_t>(ch - '0');
        digits = true;
      } else if (digits) {
        break;
      }
    }
    if (digits) return kib;
  }
  return std::nullopt;
}

std::expected<void, std::string> ensure_fd_limit(std::uint64_t needed) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return std::unexpected(fmt::format("getrlimit(RLIMIT_NOFILE): {}", errno_text(errno)));
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur >= needed) return {};
  if (lim.rlim_cur == RLIM_INFINITY) return {};
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed)
    return std::unexpected(fmt::format(
        "needs {} file descriptors but the hard limit (RLIMIT_NOFILE) is {}: raise it (ulimit "
        "-Hn as root, or LimitNOFILE=) or open fewer connections",
        needed, lim.rlim_max));
  lim.rlim_cur = needed;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
    return std::unexpected(
        fmt::format("cannot raise RLIMIT_NOFILE to {}: {}", needed, errno_text(errno)));
  return {};
}

std::expected<IdleResult, std::string> run_idle(const IdleConfig& config) {
  const auto begin = Clock::now();
  if (auto ok = ensure_fd_limit(std::uint64_t{config.connections} + kSpareFds); !ok)
    return std::unexpected(ok.error());
  std::vector<std::uint8_t> probe_stub;
  if (config.bind == IdleBind::kRpcecho) {
    probe_stub = echo::AddOneRequest{kAddOneInput}.encode(common::Endian::kLittle);
  } else {
    auto stub = runtime::ept_map_request_stub(config.interface, ndr::Protseq::kNcacnIpTcp);
    if (!stub) return std::unexpected(stub.error().message);
    probe_stub = std::move(*stub);
  }

  const sockaddr_in target = target_address(config);
  const std::string peer = fmt::format("{}:{}", config.address.to_string(), config.port);

  // Reachable, and an endpoint mapper: connect and bind once (not measured), from the probes'
  // address so that the server's per-peer count of the sources starts at 0.
  const auto probe_address = probe_source_of(config);
  const auto probe_from = ipv4_sockaddr(probe_address.to_uint());
  if (auto ok = probe(probe_from, target, peer, config.bind, nullptr, config.step_timeout); !ok)
    return std::unexpected(ok.error());

  IdleResult result;
  result.sources = config.sources;
  result.probe_source = probe_address.to_string();
  if (config.server_pid) {
    result.rss_before_kib = read_vm_rss_kib(*config.server_pid);
    result.fds_before = count_open_fds(*config.server_pid);
  }

  const auto open_begin = Clock::now();
  Opener opener(config, result);
  if (auto ok = opener.run(); !ok) return std::unexpected(ok.error());
  result.open_seconds = seconds_since(open_begin);

  if (config.server_pid) {
    std::this_thread::sleep_for(config.settle);
    result.rss_after_kib = read_vm_rss_kib(*config.server_pid);
    result.fds_after = count_open_fds(*config.server_pid);
    if (result.fds_before && result.fds_after && result.connections_held > 0)
      result.fds_per_connection =
          (static_cast<double>(*result.fds_after) - static_cast<double>(*result.fds_before)) /
          result.connections_held;
    if (result.rss_before_kib && result.rss_after_kib && result.connections_held > 0) {
      const auto delta = static_cast<std::int64_t>(*result.rss_after_kib) -
                         static_cast<std::int64_t>(*result.rss_before_kib);
      result.bytes_per_connection =
          delta * 1024 / static_cast<std::int64_t>(result.connections_held);
    }
  }

  for (unsigned i = 0; i < config.probes; ++i) {
    auto took = probe(probe_from, target, peer, config.bind, &probe_stub, config.step_timeout);
    if (took) {
      result.probe_latency_ns.push_back(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(*took).count()));
    } else {
      ++result.probe_errors;
      if (result.first_probe_error.empty()) result.first_probe_error = took.error();
    }
  }

  result.held_after_probes = count_alive(opener.conns());
  if (config.hold.count() > 0) std::this_thread::sleep_for(config.hold);
  opener.conns().clear();
  result.seconds = seconds_since(begin);
  return result;
}

}  // namespace rpcgate::bench
