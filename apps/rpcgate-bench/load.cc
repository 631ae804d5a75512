#include "load.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo/echo.h"
#include "ndr/epm_types.h"
#include "runtime/net.h"
#include "runtime/rpc_client.h"

namespace rpcgate::bench {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Request/response header sizes (C706 §12.6.4.9-10): common header + alloc_hint, p_cont_id,
// opnum / cancel_count + reserved.
constexpr std::size_t kRequestHeaderSize = 24;
constexpr std::size_t kResponseHeaderSize = 24;
constexpr std::size_t kCallIdOffset = 12;
constexpr std::uint32_t kBindCallId = 1;
// Room for one fragment of at most kMaxFrag and the start of the next.
constexpr std::size_t kRecvBufferSize = 8192;
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

void store_u32_le(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

std::uint8_t echo_byte(std::size_t i) {
  return static_cast<std::uint8_t>(i * 7 + 3);
}

// One call's PDUs, ready to send: the request stub cut into fragments of at most max_frag bytes
// (little-endian, p_cont_id 0), and where each fragment's call_id sits.
struct EncodedCall {
  std::vector<std::uint8_t> bytes;
  std::vector<std::size_t> call_id_at;
};

std::expected<EncodedCall, std::string> encode_call(std::uint16_t opnum,
                                                    std::span<const std::uint8_t> stub,
                                                    std::size_t max_frag) {
  // Stub fragments are multiples of 8 so every fragment but the last keeps NDR alignment
  // (Samba's rule for its own fragments).
  const std::size_t chunk = (max_frag - std::min(max_frag, kRequestHeaderSize)) & ~std::size_t{7};
  if (chunk == 0) return std::unexpected(fmt::format("negotiated max_frag {} too small", max_frag));
  EncodedCall out;
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(chunk, stub.size() - offset);
    rpc::Request r;
    r.alloc_hint = static_cast<std::uint32_t>(stub.size() - offset);
    r.opnum = opnum;
    r.stub.assign(stub.begin() + static_cast<std::ptrdiff_t>(offset),
                  stub.begin() + static_cast<std::ptrdiff_t>(offset + n));
    std::uint8_t flags = 0;
    if (offset == 0) flags |= rpc::pfc::kFirstFrag;
    if (offset + n == stub.size()) flags |= rpc::pfc::kLastFrag;
    auto pdu = rpc::encode_pdu(rpc::make_pdu(std::move(r), 0, flags));
    if (!pdu)
      return std::unexpected(fmt::format("cannot encode request: {}", pdu.error().message()));
    out.call_id_at.push_back(out.bytes.size() + kCallIdOffset);
    out.bytes.insert(out.bytes.end(), pdu->begin(), pdu->end());
    offset += n;
  } while (offset < stub.size());
  return out;
}

// What every worker shares, read-only: the bind PDU and the request stub.
struct Plan {
  const LoadConfig* config = nullptr;
  std::vector<std::uint8_t> bind_pdu;
  std::uint16_t opnum = 0;
  std::vector<std::uint8_t> stub;
  std::string peer;  // "127.0.0.1:135"
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

std::expected<Plan, std::string> make_plan(const LoadConfig& c) {
  Plan p;
  p.config = &c;
  p.peer = runtime::format_endpoint(c.address, c.port);
  p.addr_len = runtime::make_sockaddr(c.address, c.port, p.addr);
  rpc::Bind bind;
  bind.max_xmit_frag = kMaxFrag;
  bind.max_recv_frag = kMaxFrag;
  rpc::ContextElement ctx;
  ctx.abstract_syntax = c.mode == Mode::kEcho ? echo::rpcecho_syntax() : rpc::kEpmSyntax;
  ctx.transfer_syntaxes = {rpc::kNdr20Syntax};
  bind.contexts = {ctx};
  auto b = rpc::encode_pdu(rpc::make_pdu(std::move(bind), kBindCallId));
  if (!b) return std::unexpected(fmt::format("cannot encode bind: {}", b.error().message()));
  p.bind_pdu = std::move(*b);
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

struct Conn {
  runtime::Fd fd;
  State state = State::kIdle;
  std::uint32_t events = 0;         // registered epoll events
  std::uint64_t generation = 0;     // +1 at every close: a handler that closed or replaced the
                                    // socket must not touch the old buffer state
  bool ever_bound = false;          // a first bind failure is fatal
  std::size_t negotiated_frag = 0;  // what `call` was fragmented for
  EncodedCall call;
  std::span<const std::uint8_t> out;  // being sent
  std::size_t sent = 0;
  std::unique_ptr<std::uint8_t[]> in;
  std::size_t in_len = 0;
  std::uint32_t call_id = kBindCallId;
  std::uint64_t calls = 0;     // completed on this connection (for the periodic full check)
  std::size_t stub_bytes = 0;  // response stub bytes of the current call so far
  TimePoint started;           // of the current operation (connect, bind or call)
  TimePoint iteration_start;   // kConnect: the connect; otherwise = started of the call
  TimePoint retry_at;
};

class Worker {
 public:
  Worker(const Plan& plan, TimePoint measure_from, TimePoint end, std::atomic<bool>& stop)
      : plan_(plan), cfg_(*plan.config), measure_from_(measure_from), end_(end), stop_(stop) {}

  void add(runtime::Fd fd) {
    auto c = std::make_unique<Conn>();
    c->fd = std::move(fd);
    conns_.push_back(std::move(c));
  }
  void add_unconnected() { conns_.push_back(std::make_unique<Conn>()); }

  // Runs until `end` or a fatal error (then sets stop and fatal()).
  void run();

  LoadResult& result() { return result_; }
  const std::optional<std::string>& fatal() const { return fatal_; }

 private:
  void start_connect(Conn& c, TimePoint now);
  void on_connected(Conn& c, TimePoint now);
  void start_call(Conn& c, TimePoint now);
  void flush(Conn& c);
  void on_readable(Conn& c);
  // Returns false when the connection was closed.
  bool on_pdu(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu);
  bool on_bind_reply(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu);
  bool on_response(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu);
  void complete_call(Conn& c, TimePoint now);
  void end_call_in_error(Conn& c, ErrorKind kind);
  void fail(Conn& c, ErrorKind kind);
  void set_events(Conn& c, std::uint32_t events);
  void close(Conn& c);
  void count(ErrorKind kind);
  void set_fatal(std::string message);
  void scan_timers(TimePoint now);
  bool check_response_stub(Conn& c, common::Endian endian, std::span<const std::uint8_t> stub,
                           bool single_fragment);

  const Plan& plan_;
  const LoadConfig& cfg_;
  TimePoint measure_from_;
  TimePoint end_;
  std::atomic<bool>& stop_;
  runtime::Fd epoll_;
  std::vector<std::unique_ptr<Conn>> conns_;
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
  ++c.generation;
  c.events = 0;
  c.in_len = 0;
  c.out = {};
  c.sent = 0;
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
  c.in_len = 0;
  c.call_id = kBindCallId;
  const int fd = ::socket(plan_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(c, ErrorKind::kConnect);
  c.fd.reset(fd);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&plan_.addr), plan_.addr_len) == 0)
    return on_connected(c, now);
  if (errno != EINPROGRESS) return fail(c, ErrorKind::kConnect);
  c.state = State::kConnecting;
  set_events(c, EPOLLOUT);
}

void Worker::on_connected(Conn& c, TimePoint now) {
  if (!c.in) c.in = std::make_unique<std::uint8_t[]>(kRecvBufferSize);
  c.state = State::kBinding;
  c.started = now;
  c.call_id = kBindCallId;
  c.out = plan_.bind_pdu;
  c.sent = 0;
  set_events(c, EPOLLIN);
  flush(c);
}

void Worker::start_call(Conn& c, TimePoint now) {
  ++c.call_id;
  if (c.call_id == 0) c.call_id = kBindCallId + 1;
  for (std::size_t at : c.call.call_id_at)
    store_u32_le(c.call.bytes.data() + at, c.call_id);
  c.state = State::kCalling;
  c.started = now;
  if (cfg_.mode != Mode::kConnect) c.iteration_start = now;
  c.stub_bytes = 0;
  c.out = c.call.bytes;
  c.sent = 0;
  flush(c);
}

void Worker::flush(Conn& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, EPOLLIN | EPOLLOUT);
      return;
    }
    return fail(c, ErrorKind::kClosed);
  }
  c.out = {};
  c.sent = 0;
  if (c.fd) set_events(c, EPOLLIN);
}

void Worker::on_readable(Conn& c) {
  const std::uint64_t generation = c.generation;
  for (;;) {
    if (!c.fd) return;
    const ssize_t n =
        ::recv(c.fd.get(), c.in.get() + c.in_len, kRecvBufferSize - c.in_len, MSG_DONTWAIT);
    if (n == 0) return fail(c, ErrorKind::kClosed);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return fail(c, ErrorKind::kClosed);
    }
    c.in_len += static_cast<std::size_t>(n);
    std::size_t pos = 0;
    while (c.in_len - pos >= rpc::kCommonHeaderSize) {
      const std::span<const std::uint8_t> rest(c.in.get() + pos, c.in_len - pos);
      auto h = rpc::decode_header(rest);
      if (!h || h->frag_length > kMaxFrag) return fail(c, ErrorKind::kProtocol);
      if (rest.size() < h->frag_length) break;
      on_pdu(c, *h, rest.first(h->frag_length));
      if (c.generation != generation) return;  // closed, or a new connection (kConnect)
      pos += h->frag_length;
    }
    if (pos > 0) {
      std::memmove(c.in.get(), c.in.get() + pos, c.in_len - pos);
      c.in_len -= pos;
    }
  }
}

bool Worker::on_pdu(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu) {
  if (h.call_id != c.call_id) {
    fail(c, ErrorKind::kProtocol);
    return false;
  }
  if (c.state == State::kBinding) return on_bind_reply(c, h, pdu);
  if (c.state == State::kCalling) return on_response(c, h, pdu);
  fail(c, ErrorKind::kProtocol);  // nothing was asked
  return false;
}

bool Worker::on_bind_reply(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu) {
  // Once per connection: decoding into objects is fine here.
  auto decoded = rpc::decode_pdu(pdu);
  const rpc::BindAck* ack = decoded ? std::get_if<rpc::BindAck>(&decoded->body) : nullptr;
  const bool accepted = ack != nullptr && !ack->results.empty() && ack->results[0].result == 0;
  if (!accepted) {
    const bool rejection =
        h.ptype == static_cast<std::uint8_t>(rpc::PType::kBindNak) || ack != nullptr;
    if (!c.ever_bound && rejection)
      set_fatal(fmt::format("bind to {} rejected ({}): wrong interface for this server?",
                            plan_.peer, rpc::ptype_name(h.ptype)));
    fail(c, rejection ? ErrorKind::kBind : ErrorKind::kProtocol);
    return false;
  }
  c.ever_bound = true;
  const std::size_t frag =
      std::min<std::size_t>(kMaxFrag, ack->max_recv_frag == 0 ? kMaxFrag : ack->max_recv_frag);
  if (frag != c.negotiated_frag) {
    auto call = encode_call(plan_.opnum, plan_.stub, frag);
    if (!call) {
      set_fatal(call.error());
      fail(c, ErrorKind::kProtocol);
      return false;
    }
    c.call = std::move(*call);
    c.negotiated_frag = frag;
  }
  start_call(c, Clock::now());
  return static_cast<bool>(c.fd);
}

bool Worker::check_response_stub(Conn& c, common::Endian endian, std::span<const std::uint8_t> stub,
                                 bool single_fragment) {
  const bool full = c.calls % kFullCheckEvery == 0 && single_fragment;
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

bool Worker::on_response(Conn& c, const rpc::PduHeader& h, std::span<const std::uint8_t> pdu) {
  if (h.ptype == static_cast<std::uint8_t>(rpc::PType::kFault)) {
    end_call_in_error(c, ErrorKind::kFault);
    return static_cast<bool>(c.fd);
  }
  if (h.ptype != static_cast<std::uint8_t>(rpc::PType::kResponse) || h.auth_length != 0 ||
      pdu.size() < kResponseHeaderSize) {
    fail(c, ErrorKind::kProtocol);
    return false;
  }
  const auto stub = pdu.subspan(kResponseHeaderSize);
  const bool first = c.stub_bytes == 0 && (h.pfc_flags & rpc::pfc::kFirstFrag) != 0;
  const bool last = (h.pfc_flags & rpc::pfc::kLastFrag) != 0;
  c.stub_bytes += stub.size();
  if (!last) return true;
  bool ok = true;
  if (cfg_.mode == Mode::kEcho && cfg_.op == EchoOp::kEchoData) {
    // Response stub: u32 max_count, then the bytes.
    ok = c.stub_bytes == 4 + std::size_t{cfg_.size} &&
         check_response_stub(c, h.endian(), stub, first);
  } else if (first) {
    ok = check_response_stub(c, h.endian(), stub, true);
  } else {
    // A fragmented ept_map / AddOne response: only the status word can be checked cheaply.
    ok = cfg_.mode != Mode::kEcho && stub.size() >= 4 &&
         load_u32(stub.data() + stub.size() - 4, h.endian()) == 0;
  }
  if (!ok) {
    end_call_in_error(c, ErrorKind::kStatus);
    return static_cast<bool>(c.fd);
  }
  complete_call(c, Clock::now());
  return static_cast<bool>(c.fd);
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
  if (cfg_.mode == Mode::kConnect) {
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
  if (cfg_.mode == Mode::kConnect) {
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
      if ((ev & EPOLLOUT) != 0 && !c.out.empty()) flush(c);
      if (c.fd && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) on_readable(c);
    }
  }
  for (auto& c : conns_)
    close(*c);
}

}  // namespace

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
  if (config.mode == Mode::kConnect) {
    // Fail early and clearly when nothing listens there.
    auto fd = runtime::connect_stream(reinterpret_cast<const sockaddr*>(&plan->addr),
                                      plan->addr_len, config.call_timeout);
    if (!fd)
      return std::unexpected(
          fmt::format("connect to {}: {}", plan->peer, lower_first(fd.error().message())));
  } else {
    for (unsigned i = 0; i < config.connections; ++i) {
      auto fd = runtime::connect_stream(reinterpret_cast<const sockaddr*>(&plan->addr),
                                        plan->addr_len, config.call_timeout);
      if (!fd)
        return std::unexpected(fmt::format("connect to {}: {} ({} of {} connections open)",
                                           plan->peer, lower_first(fd.error().message()), i,
                                           config.connections));
      fds.push_back(std::move(*fd));
    }
  }

  const auto start = Clock::now();
  const auto measure_from = start + config.warmup;
  const auto end = measure_from + config.duration;
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.push_back(std::make_unique<Worker>(*plan, measure_from, end, stop));
  for (unsigned i = 0; i < config.connections; ++i) {
    Worker& w = *workers[i % threads];
    if (config.mode == Mode::kConnect)
      w.add_unconnected();
    else
      w.add(std::move(fds[i]));
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
  }
  out.calls = out.latency.count();
  out.seconds =
      finished > measure_from ? std::chrono::duration<double>(finished - measure_from).count() : 0;
  return out;
}

}  // namespace rpcgate::bench
