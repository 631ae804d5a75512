#include "load.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo/echo.h"
#include "ndr/epm_types.h"
#include "rpc/connection.h"
#include "runtime/net.h"
#include "runtime/rpc_client.h"

namespace rpcgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Room for a few fragments of at most kMaxFrag per recv().
constexpr std::size_t kRecvBufferSize = 64 * 1024;
constexpr std::uint32_t kAddOneInput = 0x01020304;

std::string lower_first(std::string m) {
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

std::uint32_t load_u32(const std::uint8_t* p, common::Endian e) {
  if (e == common::Endian::kLittle)
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  return static_cast<std::uint32_t>(p[3]) | static_cast<std::uint32_t>(p[2]) << 8 |
         static_cast<std::uint32_t>(p[1]) << 16 | static_cast<std::uint32_t>(p[0]) << 24;
}

std::uint8_t echo_byte(std::size_t i) {
  return static_cast<std::uint8_t>(i * 7 + 3);
}

// What every worker shares, read-only: the bind PDU and the request stub.
struct Plan {
  const LoadConfig* config = nullptr;
  rpc::SyntaxId interface;  // bound as context 0
  std::uint16_t opnum = 0;
  std::vector<std::uint8_t> stub;
  std::string peer;  // "127.0.0.1:135"
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  struct Source {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string text;
  };
  std::vector<Source> sources;  // empty: the kernel picks
  // A new connection per call (kConnect, or kEcho with reconnect).
  bool reconnect = false;
};

// A non-blocking TCP socket for connection `index`, bound to its source address when the plan
// has any, connect() started. The errno and what failed on error.
struct Opened {
  runtime::Fd fd;
  bool connected = false;  // connect() completed at once
};
std::expected<Opened, std::pair<int, std::string>> open_socket(const Plan& p, unsigned index) {
  runtime::Fd fd(::socket(p.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::unexpected(std::pair{errno, std::string("socket")});
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!p.sources.empty()) {
    const auto& src = p.sources[index % p.sources.size()];
    // Without it bind() picks the port for the address alone and runs out far sooner.
    ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&src.addr), src.len) != 0)
      return std::unexpected(std::pair{errno, "bind to source " + src.text});
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&p.addr), p.addr_len) == 0)
    return Opened{std::move(fd), true};
  if (errno != EINPROGRESS) return std::unexpected(std::pair{errno, std::string("connect")});
  return Opened{std::move(fd), false};
}

// open_socket, then waits for the connect within `timeout`. Error: one sentence.
std::expected<runtime::Fd, std::string> connect_now(const Plan& p, unsigned index,
                                                    std::chrono::milliseconds timeout) {
  auto o = open_socket(p, index);
  const std::string from =
      p.sources.empty() ? "" : " from " + p.sources[index % p.sources.size()].text;
  if (!o)
    return std::unexpected(fmt::format("connect to {}{}: {}: {}", p.peer, from, o.error().second,
                                       lower_first(std::strerror(o.error().first))));
  if (o->connected) return std::move(o->fd);
  pollfd pfd{o->fd.get(), POLLOUT, 0};
  int r;
  do {
    r = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  int err = 0;
  if (r == 0) {
    err = ETIMEDOUT;
  } else if (r < 0) {
    err = errno;
  } else {
    socklen_t len = sizeof err;
    ::getsockopt(o->fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  }
  if (err != 0)
    return std::unexpected(
        fmt::format("connect to {}{}: {}", p.peer, from, lower_first(std::strerror(err))));
  return std::move(o->fd);
}

std::expected<Plan, std::string> make_plan(const LoadConfig& c) {
  Plan p;
  p.config = &c;
  p.peer = runtime::format_endpoint(c.address, c.port);
  p.addr_len = runtime::make_sockaddr(c.address, c.port, p.addr);
  p.reconnect = c.mode == Mode::kConnect || (c.mode == Mode::kEcho && c.reconnect);
  for (const auto& a : c.sources) {
    if (a.is_v4() != c.address.is_v4())
      return std::unexpected(
          fmt::format("source {} is not of the target {}'s address family", a.to_string(), p.peer));
    Plan::Source src;
    src.len = runtime::make_sockaddr(a, 0, src.addr);
    src.text = a.to_string();
    p.sources.push_back(std::move(src));
  }
  p.interface = c.mode == Mode::kEcho ? echo::rpcecho_syntax() : rpc::kEpmSyntax;
  if (c.mode == Mode::kEcho) {
    if (c.op == EchoOp::kAddOne) {
      p.opnum = static_cast<std::uint16_t>(echo::Opnum::kAddOne);
      p.stub = echo::AddOneRequest{kAddOneInput}.encode(common::Endian::kLittle);
    } else {
      p.opnum = static_cast<std::uint16_t>(echo::Opnum::kEchoData);
      std::vector<std::uint8_t> data(c.size);
      for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = echo_byte(i);
      p.stub = echo::EchoDataRequest{data}.encode(common::Endian::kLittle);
    }
  } else {
    p.opnum = ndr::epm::kOpnumEptMap;
    auto stub = runtime::ept_map_request_stub(c.interface, ndr::Protseq::kNcacnIpTcp);
    if (!stub) return std::unexpected(stub.error().message);
    p.stub = std::move(*stub);
  }
  return p;
}

enum class State { kIdle, kConnecting, kBinding, kCalling, kRetry, kDone };

class Worker;

// One connection: the socket shell of an rpc::Connection in the client role (binding, request
// fragmentation, response reassembly are the engine's). Its callbacks only record the answer;
// the worker acts on it after feed() returns (a connect-mode iteration replaces the engine).
struct Conn : rpc::ConnectionHandler {
  enum class Answer { kNone, kBound, kBindRejected, kOk, kFault, kBadStatus };
  Worker* worker = nullptr;
  unsigned index = 0;  // over all workers: picks the source address
  runtime::Fd fd;
  std::unique_ptr<rpc::Connection> engine;
  State state = State::kIdle;
  std::uint32_t events = 0;  // registered epoll events
  bool ever_bound = false;   // a first bind failure is fatal
  Answer answer = Answer::kNone;
  std::uint64_t calls = 0;    // completed on this connection (for the periodic full check)
  TimePoint started;          // of the current operation (connect, bind or call)
  TimePoint iteration_start;  // kConnect: the connect; otherwise = started of the call
  TimePoint retry_at;

  void on_bind_result(const rpc::BindResult& r) override {
    answer = r.accepted ? Answer::kBound : Answer::kBindRejected;
  }
  void on_response(const rpc::ResponseView& r) override;
};

// CPU used in the measured window, by the load generator and by the server.
struct CpuWindow {
  std::optional<int> server_pid;
  double client_start = 0, client_end = 0;
  std::optional<double> server_start, server_end;
  void sample(bool start) {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const double self = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                        static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
    const auto server = server_pid ? process_cpu_seconds(*server_pid) : std::nullopt;
    (start ? client_start : client_end) = self;
    (start ? server_start : server_end) = server;
  }
};

class Worker {
 public:
  Worker(const Plan& plan, TimePoint measure_from, TimePoint end, std::atomic<bool>& stop)
      : plan_(plan), cfg_(*plan.config), measure_from_(measure_from), end_(end), stop_(stop) {}
  // This worker samples the CPU used at the measured window's ends.
  void sample_cpu(CpuWindow* window) { cpu_ = window; }

  void add(unsigned index, runtime::Fd fd) {
    auto c = std::make_unique<Conn>();
    c->worker = this;
    c->index = index;
    c->fd = std::move(fd);
    conns_.push_back(std::move(c));
  }
  void add_unconnected(unsigned index) {
    conns_.push_back(std::make_unique<Conn>());
    conns_.back()->worker = this;
    conns_.back()->index = index;
  }

  // Runs until `end` or a fatal error (then sets stop and fatal()).
  void run();

  LoadResult& result() { return result_; }
  const std::optional<std::string>& fatal() const { return fatal_; }

 private:
  friend struct Conn;
  void start_connect(Conn& c, TimePoint now);
  void on_connected(Conn& c, TimePoint now);
  void start_call(Conn& c, TimePoint now);
  void flush(Conn& c);
  void on_readable(Conn& c);
  // Acts on what the engine's callbacks recorded (Conn::answer) or on its close.
  void after_input(Conn& c);
  void complete_call(Conn& c, TimePoint now);
  void end_call_in_error(Conn& c, ErrorKind kind);
  void fail(Conn& c, ErrorKind kind);
  void set_events(Conn& c, std::uint32_t events);
  void close(Conn& c);
  void count(ErrorKind kind);
  void set_fatal(std::string message);
  void scan_timers(TimePoint now);
  bool check_response_stub(Conn& c, common::Endian endian, std::span<const std::uint8_t> stub);

  const Plan& plan_;
  const LoadConfig& cfg_;
  TimePoint measure_from_;
  TimePoint end_;
  std::atomic<bool>& stop_;
  runtime::Fd epoll_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::uint8_t> in_;  // one receive buffer for all connections (one thread)
  CpuWindow* cpu_ = nullptr;
  bool cpu_started_ = false;
  LoadResult result_;
  std::optional<std::string> fatal_;
};

void Worker::count(ErrorKind kind) {
  result_.errors.count(kind);
}

void Worker::set_fatal(std::string message) {
  if (!fatal_) fatal_ = std::move(message);
  stop_.store(true, std::memory_order_relaxed);
}

void Worker::set_events(Conn& c, std::uint32_t events) {
  if (c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  const int op = c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_.get(), op, c.fd.get(), &ev) == 0) c.events = events;
}

void Worker::close(Conn& c) {
  c.fd.reset();  // closing removes it from the epoll set
  c.engine.reset();
  c.events = 0;
  c.answer = Conn::Answer::kNone;
}

void Worker::fail(Conn& c, ErrorKind kind) {
  count(kind);
  close(c);
  c.state = State::kRetry;
  c.retry_at = Clock::now() + kRetryDelay;
}

void Worker::start_connect(Conn& c, TimePoint now) {
  c.started = now;
  c.iteration_start = now;
  auto opened = open_socket(plan_, c.index);
  if (!opened) return fail(c, ErrorKind::kConnect);
  c.fd = std::move(opened->fd);
  if (opened->connected) return on_connected(c, now);
  c.state = State::kConnecting;
  set_events(c, EPOLLOUT);
}

void Worker::on_connected(Conn& c, TimePoint now) {
  c.state = State::kBinding;
  c.started = now;
  rpc::ClientRole role;
  role.max_xmit_frag = kMaxFrag;
  role.max_recv_frag = kMaxFrag;
  // Deadlines are the worker's (scan_timers); the engine has none of its own.
  c.engine = std::make_unique<rpc::Connection>(role, rpc::caller_timed_client_options(), c, now);
  c.engine->bind(std::span<const rpc::SyntaxId>(&plan_.interface, 1), now);
  set_events(c, EPOLLIN);
  flush(c);
}

void Worker::start_call(Conn& c, TimePoint now) {
  c.state = State::kCalling;
  c.started = now;
  if (!plan_.reconnect) c.iteration_start = now;
  if (c.engine->call(0, plan_.opnum, plan_.stub, now) == 0) {
    set_fatal(fmt::format("cannot send the request to {} (stub of {} bytes)", plan_.peer,
                          plan_.stub.size()));
    return fail(c, ErrorKind::kProtocol);
  }
  flush(c);
}

void Worker::flush(Conn& c) {
  while (c.fd && c.engine) {
    const auto out = c.engine->next_output();
    if (out.bytes.empty()) break;
    const ssize_t n =
        ::send(c.fd.get(), out.bytes.data(), out.bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.engine->output_sent(static_cast<std::size_t>(n), Clock::now());
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, EPOLLIN | EPOLLOUT);
      return;
    }
    return fail(c, ErrorKind::kClosed);
  }
  if (c.fd) set_events(c, EPOLLIN);
}

void Worker::on_readable(Conn& c) {
  for (;;) {
    if (!c.fd || !c.engine) return;
    const ssize_t n = ::recv(c.fd.get(), in_.data(), in_.size(), MSG_DONTWAIT);
    if (n == 0) return fail(c, ErrorKind::kClosed);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return fail(c, ErrorKind::kClosed);
    }
    c.engine->feed(rpc::Direction::kServerToClient,
                   std::span<const std::uint8_t>(in_.data(), static_cast<std::size_t>(n)),
                   Clock::now());
    after_input(c);
  }
}

void Conn::on_response(const rpc::ResponseView& r) {
  if (r.fault) {
    answer = Answer::kFault;
    return;
  }
  answer = worker->check_response_stub(*this, r.drep.endian(), r.stub) ? Answer::kOk
                                                                       : Answer::kBadStatus;
}

void Worker::after_input(Conn& c) {
  const auto answer = std::exchange(c.answer, Conn::Answer::kNone);
  switch (answer) {
    case Conn::Answer::kNone:
      break;
    case Conn::Answer::kBound:
      if (c.state != State::kBinding) return fail(c, ErrorKind::kProtocol);
      c.ever_bound = true;
      return start_call(c, Clock::now());
    case Conn::Answer::kBindRejected:
      if (!c.ever_bound)
        set_fatal(fmt::format("bind to {} rejected: wrong interface for this server?", plan_.peer));
      return fail(c, ErrorKind::kBind);
    case Conn::Answer::kOk:
      return complete_call(c, Clock::now());
    case Conn::Answer::kFault:
      return end_call_in_error(c, ErrorKind::kFault);
    case Conn::Answer::kBadStatus:
      return end_call_in_error(c, ErrorKind::kStatus);
  }
  if (c.engine && c.engine->state() == rpc::Connection::State::kClosed) {
    const bool nak = c.state == State::kBinding;
    if (nak && !c.ever_bound)
      set_fatal(fmt::format("bind to {} rejected (bind_nak): wrong interface for this server?",
                            plan_.peer));
    fail(c, nak ? ErrorKind::kBind : ErrorKind::kProtocol);
  }
}

bool Worker::check_response_stub(Conn& c, common::Endian endian,
                                 std::span<const std::uint8_t> stub) {
  // Every kFullCheckEvery-th answer is decoded whole; the others are checked cheaply.
  const bool full = c.calls % kFullCheckEvery == 0;
  switch (cfg_.mode) {
    case Mode::kEpmMap:
    case Mode::kConnect: {
      if (full) {
        auto r = ndr::epm::decode_ept_map_response(stub, endian);
        return r && r->status == 0 && !r->towers.empty();
      }
      // The status word ends the stub (docs/wire-vectors.md ept-map-response).
      return stub.size() >= 4 && load_u32(stub.data() + stub.size() - 4, endian) == 0;
    }
    case Mode::kEcho:
      if (cfg_.op == EchoOp::kAddOne) {
        auto r = echo::AddOneResponse::decode(stub, endian);
        return r && r->out_data == kAddOneInput + 1;
      }
      // Response stub: u32 max_count, then the bytes.
      if (stub.size() != 4 + std::size_t{cfg_.size}) return false;
      if (full) {
        auto r = echo::EchoDataResponse::decode(stub, endian);
        if (!r || r->data.size() != cfg_.size) return false;
        for (std::size_t i = 0; i < r->data.size(); ++i)
          if (r->data[i] != echo_byte(i)) return false;
      }
      return true;
  }
  return false;
}

void Worker::complete_call(Conn& c, TimePoint now) {
  ++c.calls;
  if (now >= measure_from_ && now < end_) {
    result_.latency.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.iteration_start).count()));
  }
  if (now >= end_ || stop_.load(std::memory_order_relaxed)) {
    c.state = State::kDone;
    return;
  }
  if (plan_.reconnect) {
    close(c);
    return start_connect(c, now);
  }
  start_call(c, now);
}

void Worker::end_call_in_error(Conn& c, ErrorKind kind) {
  // A fault or a bad status ends the call, not the association (C706 §12.6.4.7).
  count(kind);
  ++c.calls;
  const auto now = Clock::now();
  if (now >= end_) {
    c.state = State::kDone;
    return;
  }
  if (plan_.reconnect) {
    close(c);
    return start_connect(c, now);
  }
  start_call(c, now);
}

void Worker::scan_timers(TimePoint now) {
  for (auto& cp : conns_) {
    Conn& c = *cp;
    switch (c.state) {
      case State::kConnecting:
      case State::kBinding:
      case State::kCalling:
        if (now - c.started > cfg_.call_timeout) fail(c, ErrorKind::kTimeout);
        break;
      case State::kRetry:
        if (now >= c.retry_at) start_connect(c, now);
        break;
      default:
        break;
    }
  }
}

void Worker::run() {
  in_.resize(kRecvBufferSize);
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return set_fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  const auto now = Clock::now();
  for (auto& c : conns_) {
    if (c->fd) {
      const int one = 1;
      ::setsockopt(c->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      on_connected(*c, now);
    } else {
      start_connect(*c, now);
    }
  }
  std::vector<epoll_event> events(std::max<std::size_t>(conns_.size(), 1));
  auto next_scan = now;
  for (;;) {
    const auto t = Clock::now();
    if (t >= end_ || stop_.load(std::memory_order_relaxed)) break;
    if (cpu_ != nullptr && !cpu_started_ && t >= measure_from_) {
      cpu_->sample(true);
      cpu_started_ = true;
    }
    if (t >= next_scan) {
      scan_timers(t);
      next_scan = t + std::chrono::milliseconds(10);
    }
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::min(end_, next_scan) - t);
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                               static_cast<int>(std::max<std::int64_t>(wait.count(), 0)) + 1);
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (!c.fd) continue;
      const std::uint32_t ev = events[i].events;
      if (c.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP)) != 0) {
          fail(c, ErrorKind::kConnect);
          continue;
        }
        on_connected(c, Clock::now());
        continue;
      }
      if ((ev & EPOLLOUT) != 0) flush(c);
      if (c.fd && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) on_readable(c);
    }
  }
  if (cpu_ != nullptr) {
    if (!cpu_started_) cpu_->sample(true);  // stopped early: an empty window
    cpu_->sample(false);
  }
  const auto ended = Clock::now();
  for (auto& c : conns_) {
    const bool waiting = c->state == State::kConnecting || c->state == State::kBinding ||
                         c->state == State::kCalling;
    if (waiting && ended - c->started >= kStalledAfter) ++result_.stalled_at_end;
    close(*c);
  }
}

}  // namespace

std::optional<double> process_cpu_seconds(int pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "r");
  if (f == nullptr) return std::nullopt;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the command name, which is in parentheses and may contain spaces: state is
  // field 3, utime 14, stime 15.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return std::nullopt;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2)
    return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void ErrorCounts::count(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnect:
      ++connect;
      break;
    case ErrorKind::kBind:
      ++bind;
      break;
    case ErrorKind::kFault:
      ++fault;
      break;
    case ErrorKind::kStatus:
      ++status;
      break;
    case ErrorKind::kProtocol:
      ++protocol;
      break;
    case ErrorKind::kTimeout:
      ++timeout;
      break;
    case ErrorKind::kClosed:
      ++closed;
      break;
  }
}

void ErrorCounts::add(const ErrorCounts& o) {
  connect += o.connect;
  bind += o.bind;
  fault += o.fault;
  status += o.status;
  protocol += o.protocol;
  timeout += o.timeout;
  closed += o.closed;
}

std::expected<LoadResult, std::string> run_load(const LoadConfig& config) {
  auto plan = make_plan(config);
  if (!plan) return std::unexpected(plan.error());
  const unsigned threads = std::clamp(config.threads, 1u, std::max(config.connections, 1u));

  std::atomic<bool> stop{false};
  std::vector<runtime::Fd> fds;
  if (plan->reconnect) {
    // Fail early and clearly when nothing listens there (from every source).
    for (std::size_t i = 0; i < std::max<std::size_t>(plan->sources.size(), 1); ++i) {
      auto fd = connect_now(*plan, static_cast<unsigned>(i), config.call_timeout);
      if (!fd) return std::unexpected(fd.error());
    }
  } else {
    for (unsigned i = 0; i < config.connections; ++i) {
      auto fd = connect_now(*plan, i, config.call_timeout);
      if (!fd)
        return std::unexpected(
            fmt::format("{} ({} of {} connections open)", fd.error(), i, config.connections));
      fds.push_back(std::move(*fd));
    }
  }

  const auto start = Clock::now();
  const auto measure_from = start + config.warmup;
  const auto end = measure_from + config.duration;
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(*plan, measure_from, end, stop));
  CpuWindow cpu;
  cpu.server_pid = config.server_pid;
  workers[0]->sample_cpu(&cpu);
  for (unsigned i = 0; i < config.connections; ++i) {
    Worker& w = *workers[i % threads];
    if (plan->reconnect)
      w.add_unconnected(i);
    else
      w.add(i, std::move(fds[i]));
  }
  {
    std::vector<std::jthread> running;
    for (unsigned t = 1; t < threads; ++t)
      running.emplace_back([&w = *workers[t]] { w.run(); });
    workers[0]->run();
  }
  const auto finished = std::min(Clock::now(), end);

  LoadResult out;
  for (auto& w : workers) {
    if (w->fatal()) return std::unexpected(*w->fatal());
    out.latency.merge(w->result().latency);
    out.errors.add(w->result().errors);
    out.stalled_at_end += w->result().stalled_at_end;
  }
  out.calls = out.latency.count();
  out.client_cpu_s = std::max(0.0, cpu.client_end - cpu.client_start);
  if (cpu.server_start && cpu.server_end)
    out.server_cpu_s = std::max(0.0, *cpu.server_end - *cpu.server_start);
  out.seconds =
      finished > measure_from ? std::chrono::duration<double>(finished - measure_from).count() : 0;
  return out;
}

}  // namespace rpcgate::bench
