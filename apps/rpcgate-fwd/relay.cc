#include "relay.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "firewall/epm_inspector.h"
#include "firewall/inspector.h"
#include "firewall/kernel.h"
#include "firewall/pinhole_inspector.h"
#include "firewall/pinholes.h"
#include "runtime/net.h"

namespace rpcgate::fwd {
namespace {

using firewall::Action;
using firewall::Address;
using firewall::PinholeKey;
using runtime::Fd;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// Bytes queued towards one side before the other side is no longer read (TCP back-pressure).
constexpr std::size_t kMaxQueued = 512 * 1024;
// One recv takes what a 64 KiB call's fragments and their headers amount to (64 KiB of stub is
// 65.8 KB on the wire) in one go, so one read and one send move it: a relay's CPU is mostly
// per-syscall and per-wake-up cost (a 64 KiB echo call cost 87 us with 64 KiB reads and a recv
// until EAGAIN, 72 us with these; README "The firewall measured"). Bounded anyway by kMaxQueued.
constexpr std::size_t kReadChunk = 256 * 1024;
// A spliced body waits in a pipe (the default pipe holds 64 KiB); reading pauses when it is full.
constexpr std::size_t kPipeBytes = 64 * 1024;
constexpr std::size_t kMaxControlRequest = 256;
constexpr std::size_t kMaxControlConnections = 8;

enum class Kind : std::uint8_t { kEpm, kPinhole };
std::string_view to_string(Kind k) {
  return k == Kind::kEpm ? "epm" : "pinhole";
}

// epoll_event.data.u64: tag in the top byte, an id below.
enum class Tag : std::uint8_t {
  kListener,
  kClient,
  kServer,
  kControlListener,
  kControl,
  kSignal,
  kMetrics
};
std::uint64_t key_of(Tag t, std::uint64_t id) {
  return (std::uint64_t{static_cast<std::uint8_t>(t)} << 56) | id;
}
Tag tag_of(std::uint64_t k) {
  return static_cast<Tag>(k >> 56);
}
std::uint64_t id_of(std::uint64_t k) {
  return k & ((std::uint64_t{1} << 56) - 1);
}

Address from_sockaddr(const sockaddr_storage& ss, std::uint16_t& port) {
  Address a{};
  if (ss.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&s->sin_addr);
    a = firewall::ipv4(b[0], b[1], b[2], b[3]);
    port = ntohs(s->sin_port);
  } else {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(a.data(), &s->sin6_addr, 16);
    port = ntohs(s->sin6_port);
  }
  return a;
}

bool is_v4(const Address& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; }) && a[10] == 0xff &&
         a[11] == 0xff;
}

socklen_t to_sockaddr(const Address& a, std::uint16_t port, sockaddr_storage& ss) {
  std::memset(&ss, 0, sizeof ss);
  if (is_v4(a)) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    std::memcpy(&s->sin_addr, a.data() + 12, 4);
    return sizeof(sockaddr_in);
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  std::memcpy(&s->sin6_addr, a.data(), 16);
  return sizeof(sockaddr_in6);
}

std::string syntax_text(const rpc::SyntaxId& s) {
  return s.uuid.to_string() + " v" + std::to_string(s.major) + "." + std::to_string(s.minor);
}

firewall::kernel::TableSpec table_spec(const Options& o) {
  firewall::kernel::TableSpec t;
  t.mode = o.config.mode;
  t.clients = o.config.clients;
  t.servers = o.config.servers;
  // Static NAT: a public address is governed like the server behind it (with "any servers"
  // it already is).
  if (!t.servers.empty())
    for (const auto& n : o.config.nat)
      t.servers.push_back(firewall::Cidr{n.public_address, 128});
  t.dynamic_ports = o.dynamic_ports;
  t.epm_listen_port = o.config.epm_listen_port;
  t.pinhole_listen_port = o.config.pinhole_listen_port;
  t.mark = o.mark;
  t.route_table = o.route_table;
  t.max_pinholes = o.config.max_pinholes;
  return t;
}

// A transparent listener: accepts connections the kernel's tproxy rule diverts to `port`, for
// any destination address. The error keeps its errno (a machine without IPv6 is not fatal).
struct ListenFailure {
  int error = 0;
  std::string message;
};
std::expected<Fd, ListenFailure> transparent_listener(int family, std::uint16_t port) {
  auto fail = [](int e, std::string what) {
    return std::unexpected(ListenFailure{e, what + ": " + std::strerror(e)});
  };
  Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail(errno, "socket");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const int level = family == AF_INET ? SOL_IP : SOL_IPV6;
  const int opt = family == AF_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT;
  if (::setsockopt(fd.get(), level, opt, &one, sizeof one) != 0)
    return fail(errno, "IP_TRANSPARENT (needs CAP_NET_ADMIN)");
  sockaddr_storage ss{};
  socklen_t len = to_sockaddr(family == AF_INET ? firewall::ipv4(0, 0, 0, 0) : Address{}, port, ss);
  const std::string where = (family == AF_INET ? "0.0.0.0:" : "[::]:") + std::to_string(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return fail(errno, "cannot listen on " + where);
  if (::listen(fd.get(), 1024) != 0) return fail(errno, "cannot listen on " + where);
  return fd;
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Close with a RST (SO_LINGER 0): a dropped connection must not look like a clean end.
void reset(Fd& fd) {
  if (!fd) return;
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

// Percentiles of the pinhole install times (microseconds), over the last kSamples.
class Samples {
 public:
  void add(std::uint64_t v) {
    if (values_.size() < kSamples) {
      values_.push_back(v);
    } else {
      values_[next_] = v;
    }
    next_ = (next_ + 1) % kSamples;
    ++count_;
  }
  nlohmann::json summary() const {
    nlohmann::json j;
    j["count"] = count_;
    if (values_.empty()) return j;
    auto v = values_;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
      return v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))];
    };
    j["p50"] = at(0.50);
    j["p99"] = at(0.99);
    j["max"] = v.back();
    return j;
  }

 private:
  static constexpr std::size_t kSamples = 4096;
  std::vector<std::uint64_t> values_;
  std::size_t next_ = 0;
  std::uint64_t count_ = 0;
};

struct Side {
  Fd fd;
  std::vector<std::uint8_t> out;  // queued towards this side
  std::size_t sent = 0;           // of `out`
  bool read_eof = false;          // this side closed its sending direction
  bool shut = false;              // we shut down our sending direction towards it
  std::uint32_t events = 0;       // what epoll waits for on this side
  bool registered = false;        // added to the epoll set
  std::uint64_t bytes_in = 0;
  std::size_t queued() const { return out.size() - sent; }
  // The zero-copy path (pinhole flows): the PDU being read FROM this side. Its head (header and
  // fixed body fields) or, for PDUs judged whole, all of it, is read into user space; the rest
  // of a request's or response's frag_length goes through `pipe` to the other side unseen.
  std::array<std::uint8_t, 40> head{};
  std::size_t have = 0;        // head bytes read
  std::size_t whole_left = 0;  // bytes still to read of a PDU judged whole (feed())
  std::size_t body_left = 0;   // body bytes still to move to the other side
  Fd pipe_r, pipe_w;           // created at the first spliced body
  std::size_t in_pipe = 0;     // bytes from this side in the pipe
};

struct Flow {
  std::uint64_t id = 0;
  Kind kind = Kind::kEpm;
  Address client{}, server{};
  Address upstream{};  // where the relay connects: the server, or its NAT private address
  std::uint16_t client_port = 0, server_port = 0;
  std::shared_ptr<const firewall::RuleSet> rules;
  Side c, s;
  bool connected = false;
  std::unique_ptr<firewall::EpmInspector> epm;
  std::unique_ptr<firewall::PinholeInspector> pin;
  std::optional<TimePoint> timer;  // the key in Relay::timers_
  std::size_t accounted = 0;       // its queued bytes as counted in Relay::queued_total_
  TimePoint started;
  std::uint64_t pdus = 0;
};

struct ControlConn {
  Fd fd;
  std::string in, out;
  std::size_t sent = 0;
};

class Relay {
 public:
  Relay(Options o, DecisionLog& log, Reload reload, RelayMetrics* metrics)
      : options_(std::move(o)), log_(log), reload_(std::move(reload)), metrics_(metrics) {}
  std::expected<void, std::string> start();
  int loop();

 private:
  // Set-up.
  std::expected<void, std::string> open_listeners();
  std::expected<void, std::string> install_kernel(bool recover);
  void rebuild_limits();
  // Events.
  void on_accept(std::uint64_t listener);
  void on_flow_event(std::uint64_t id, bool client_side, std::uint32_t events);
  void handle_flow_event(std::uint64_t id, bool client_side, std::uint32_t events);
  // Brings queued_total_ up to date for `f`, then drops the biggest holders while the total is
  // over Options::max_queued_bytes.
  void account(std::uint64_t id);
  void on_connected(Flow& f);
  void read_side(Flow& f, bool client_side);
  // The zero-copy reader of pinhole flows: heads through the inspector, bodies spliced.
  // Returns false when the flow ended.
  bool pump(Flow& f, bool client_side);
  bool pump_body(Flow& f, Side& me, Side& other, bool client_side);
  // The copy path of pinhole flows (the default): the same framing as pump(), over big reads -
  // heads through the inspector, body bytes appended to the other side's queue as they arrive,
  // never buffered whole. Returns false when the flow ended.
  bool pump_copy(Flow& f, bool client_side);
  // One PDU head of `me` complete in me.head (me.have bytes): judged whole (header fed; the
  // rest follows through feed) or by its head (feed_head; the body passes unseen). The actions
  // are applied. Returns false when the flow ended. Shared by pump() and pump_copy().
  bool judge_head(Flow& f, Side& me, rpc::Direction dir, TimePoint now);
  bool read_failed(Flow& f, bool client_side, int error);
  bool truncated(Flow& f, bool client_side);
  void apply(Flow& f, std::vector<Action> actions, TimePoint received);
  void open_pinholes(Flow& f, const Action& a, TimePoint received);
  bool flush(Flow& f, Side& to);
  void update(Flow& f);
  void drop(Flow& f, std::string_view reason, const Action* a = nullptr, std::string message = {});
  void finish(Flow& f, std::string_view reason);
  void schedule(Flow& f);
  void on_timers(TimePoint now);
  void on_signal();
  void on_control_accept();
  void on_control(std::uint64_t id, std::uint32_t events);
  std::string status_json();
  void publish_metrics();
  // Helpers.
  void ctl(int op, int fd, std::uint64_t key, std::uint32_t events);
  Record base(const Flow& f, std::string_view event) const;
  void count(std::string_view reason) { ++counters_[std::string(reason)]; }

  Options options_;
  DecisionLog& log_;
  Reload reload_;
  std::shared_ptr<const firewall::RuleSet> rules_;
  std::optional<firewall::kernel::Nft> nft_;
  firewall::PinholeTable pinholes_;
  Fd epoll_, signal_, control_;
  struct Listener {
    Fd fd;
    Kind kind;
  };
  std::vector<Listener> listeners_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Flow>> flows_;
  std::map<Address, std::size_t> per_client_;
  std::multimap<TimePoint, std::uint64_t> timers_;
  std::unordered_map<std::uint64_t, ControlConn> controls_;
  std::uint64_t next_id_ = 1;
  std::map<std::string, std::uint64_t> counters_;
  Samples install_us_;
  std::vector<std::uint8_t> scratch_ = std::vector<std::uint8_t>(kReadChunk);
  TimePoint started_ = Clock::now();
  bool stop_ = false;
  std::uint64_t relayed_total_ = 0;
  bool splice_ = options_.splice;
  std::uint64_t spliced_bytes_ = 0;
  std::size_t queued_total_ = 0;  // body bytes moved socket to socket, never in user space
  std::size_t splice_min_ = options_.splice_min;
  RelayMetrics* metrics_ = nullptr;  // nullptr: metrics off
  std::uint64_t pinholes_expired_ = 0;
  std::uint64_t finished_bytes_from_client_ = 0, finished_bytes_from_server_ = 0;
};

void Relay::ctl(int op, int fd, std::uint64_t key, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  ::epoll_ctl(epoll_.get(), op, fd, &ev);
}

std::expected<void, std::string> Relay::open_listeners() {
  for (auto [kind, port] : {std::pair{Kind::kEpm, options_.config.epm_listen_port},
                            std::pair{Kind::kPinhole, options_.config.pinhole_listen_port}}) {
    for (int family : {AF_INET, AF_INET6}) {
      auto fd = transparent_listener(family, port);
      if (!fd) {
        // A machine without IPv6 still governs IPv4; anything else is fatal.
        if (family == AF_INET6 &&
            (fd.error().error == EAFNOSUPPORT || fd.error().error == EADDRNOTAVAIL)) {
          log_.write(note("warning", "no IPv6 listener: " + fd.error().message),
                     Priority::kWarning);
          continue;
        }
        return std::unexpected(fd.error().message);
      }
      listeners_.push_back(Listener{std::move(*fd), kind});
    }
  }
  return {};
}

void Relay::rebuild_limits() {
  firewall::PinholeLimits limits;
  limits.timeout = options_.config.pinhole_timeout;
  limits.max_per_client = options_.config.max_pinholes_per_client;
  limits.max_total = options_.config.max_pinholes;
  firewall::PinholeTable fresh(limits);
  // Carry live pinholes over (a reload may change the caps; the kernel set keeps them anyway).
  pinholes_ = std::move(fresh);
}

std::expected<void, std::string> Relay::install_kernel(bool recover) {
  std::vector<firewall::kernel::PinholeElement> survivors;
  const auto now = Clock::now();
  if (recover) {
    auto old = nft_->recover();
    if (!old) return std::unexpected("cannot read the existing table: " + old.error());
    for (const auto& r : *old) {
      if (r.expires_in <= milliseconds(0)) continue;
      auto ifaces = firewall::parse_interfaces_comment(r.comment);
      if (ifaces.empty()) continue;  // not ours to trust: it lapses
      for (const auto& i : ifaces)
        pinholes_.open(r.key, i, now, r.expires_in);
      survivors.push_back({r.key, r.expires_in, r.comment});
    }
  } else {
    for (const auto& [key, p] : pinholes_.all()) {
      const auto left = duration_cast<milliseconds>(p.expires - now);
      if (left > milliseconds(0))
        survivors.push_back({key, left, firewall::interfaces_comment(p.interfaces)});
    }
  }
  auto ok = nft_->install(table_spec(options_), survivors);
  if (!ok) return std::unexpected("cannot install table inet rpcgate_fwd: " + ok.error());
  auto routed = firewall::kernel::install_routing(options_.mark, options_.route_table);
  if (!routed) return std::unexpected("cannot install policy routing: " + routed.error());
  if (recover && !survivors.empty())
    log_.write(note("recover", std::to_string(survivors.size()) +
                                   " unexpired pinholes recovered from the kernel"));
  return {};
}

std::expected<void, std::string> Relay::start() {
  rules_ = std::make_shared<const firewall::RuleSet>(options_.config);
  rebuild_limits();
  if (auto ok = open_listeners(); !ok) return ok;
  auto nft = firewall::kernel::Nft::open();
  if (!nft) return std::unexpected("libnftables: " + nft.error());
  nft_.emplace(std::move(*nft));
  if (auto ok = install_kernel(true); !ok) return ok;

  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signal_ = Fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  ctl(EPOLL_CTL_ADD, signal_.get(), key_of(Tag::kSignal, 0), EPOLLIN);
  for (std::size_t i = 0; i < listeners_.size(); ++i)
    ctl(EPOLL_CTL_ADD, listeners_[i].fd.get(), key_of(Tag::kListener, i), EPOLLIN);
  if (metrics_ != nullptr)
    ctl(EPOLL_CTL_ADD, metrics_->wakeup_fd(), key_of(Tag::kMetrics, 0), EPOLLIN);
  if (!options_.config.control.empty()) {
    // Root only (0600): the status names every client and server. Without it the firewall
    // still works; only `rpcgate-fwd status` does not, so this is a warning, not a failure.
    auto c = runtime::listen_unix(options_.config.control, 0600, 64);
    if (!c) {
      log_.write(note("warning", "no control socket (rpcgate-fwd status will not answer): " +
                                     c.error().message()),
                 Priority::kWarning);
    } else {
      control_ = std::move(*c);
      ::fcntl(control_.get(), F_SETFL, O_NONBLOCK);
      ctl(EPOLL_CTL_ADD, control_.get(), key_of(Tag::kControlListener, 0), EPOLLIN);
    }
  }
  std::string allowed;
  for (const auto& r : options_.config.rules) {
    for (const auto& i : r.interfaces)
      allowed += (allowed.empty() ? "" : ", ") + i.name;
  }
  log_.write(
      note("start", std::string("rpcgate-fwd governing TCP 135 and the dynamic ports in ") +
                        (options_.config.mode == firewall::Mode::kRouter ? "router" : "host") +
                        " mode; allowed: " + (allowed.empty() ? "nothing" : allowed)));
  sd_notify(0, "READY=1");
  return {};
}

Record Relay::base(const Flow& f, std::string_view event) const {
  Record r;
  r.event = event;
  r.kind = std::string(to_string(f.kind));
  r.client = firewall::to_string(f.client);
  r.client_port = f.client_port;
  r.server = firewall::to_string(f.server);
  r.port = f.server_port;
  if (f.upstream != f.server) r.upstream = firewall::to_string(f.upstream);
  return r;
}

void Relay::on_accept(std::uint64_t index) {
  auto& listener = listeners_[index];
  for (int n = 0; n < 64; ++n) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    Fd cfd(::accept4(listener.fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!cfd) return;  // EAGAIN, or an error the next readiness retries
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    ::getsockname(cfd.get(), reinterpret_cast<sockaddr*>(&local), &llen);
    auto f = std::make_unique<Flow>();
    f->id = next_id_++;
    f->kind = listener.kind;
    f->client = from_sockaddr(peer, f->client_port);
    f->server = from_sockaddr(local, f->server_port);
    f->upstream = rules_->real_server(f->server);
    f->rules = rules_;
    f->started = Clock::now();
    f->c.fd = std::move(cfd);
    const auto now = f->started;

    auto refuse = [&](std::string_view reason, std::string message) {
      count(reason);
      Record r = base(*f, "drop");
      r.reason = reason;
      r.message = std::move(message);
      log_.write(r, Priority::kNotice);
      reset(f->c.fd);
    };
    if (!rules_->governs(f->client, f->server)) {
      // The kernel diverts only governed traffic; this is a rule change racing a connection.
      refuse("not-governed", "connection outside the governed clients and servers");
      continue;
    }
    if (flows_.size() >= options_.config.max_connections) {
      refuse("connection-limit", "relayed connections at max_connections");
      continue;
    }
    if (per_client_[f->client] >= options_.config.max_connections_per_client) {
      refuse("client-connection-limit", "this client at max_connections_per_client");
      continue;
    }
    rpc::ConnectionOptions copts;
    copts.idle_after_bind = options_.idle_timeout;
    copts.max_output_bytes = kMaxQueued;
    if (f->kind == Kind::kEpm) {
      f->epm = std::make_unique<firewall::EpmInspector>(f->client, f->server, *f->rules, now,
                                                        rpc::ObserverLimits{}, copts);
    } else {
      const PinholeKey key{f->client, f->server, f->server_port};
      if (pinholes_.find(key, now) == nullptr) {
        // The kernel let it through but the pinhole has just expired here (or the relay
        // restarted without it): fail closed.
        refuse("no-pinhole", "no live pinhole for this client, server and port");
        continue;
      }
      f->pin = std::make_unique<firewall::PinholeInspector>(
          f->client, f->server, f->server_port, *f->rules, now, rpc::ObserverLimits{}, copts);
      f->pin->set_sinks(&f->s.out, &f->c.out);  // whole PDUs straight into the output buffers
    }

    // The upstream leg: from the client's own address in router mode (IP_TRANSPARENT; the
    // server's answers come back through the table's `socket transparent` rule and the policy
    // route), from this host's address in host mode.
    sockaddr_storage dst{};
    const socklen_t dlen = to_sockaddr(f->upstream, f->server_port, dst);
    Fd sfd(::socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sfd) {
      refuse("upstream-error", std::string("socket: ") + std::strerror(errno));
      continue;
    }
    if (options_.config.mode == firewall::Mode::kRouter) {
      const int one = 1;
      const bool v4 = dst.ss_family == AF_INET;
      ::setsockopt(sfd.get(), v4 ? SOL_IP : SOL_IPV6, v4 ? IP_TRANSPARENT : IPV6_TRANSPARENT, &one,
                   sizeof one);
      // The client's own port too, so the upstream leg has the client's very 4-tuple: with a
      // port of our choosing, a later connection of the client's from that port to the same
      // server port would be taken for our socket (`socket transparent`) and hang. The client's
      // kernel never reuses a port while its connection lives, so this tuple is free.
      ::setsockopt(sfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_storage src{};
      const socklen_t slen = to_sockaddr(f->client, f->client_port, src);
      if (::bind(sfd.get(), reinterpret_cast<sockaddr*>(&src), slen) != 0) {
        refuse("upstream-error",
               std::string("bind to the client's address: ") + std::strerror(errno));
        continue;
      }
    }
    if (::connect(sfd.get(), reinterpret_cast<sockaddr*>(&dst), dlen) != 0 &&
        errno != EINPROGRESS) {
      refuse("upstream-unreachable", std::string("connect: ") + std::strerror(errno));
      continue;
    }
    set_nodelay(f->c.fd.get());
    set_nodelay(sfd.get());
    f->s.fd = std::move(sfd);
    ++per_client_[f->client];
    ++relayed_total_;
    Flow& flow = *f;
    flows_.emplace(flow.id, std::move(f));
    update(flow);
    schedule(flow);
  }
}

void Relay::on_connected(Flow& f) {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(f.s.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    count("upstream-unreachable");
    Record r = base(f, "drop");
    r.reason = "upstream-unreachable";
    r.message = std::string("connect to the server: ") + std::strerror(err);
    log_.write(r, Priority::kNotice);
    reset(f.c.fd);
    f.s.fd.reset();
    return finish(f, "");
  }
  f.connected = true;
  update(f);
}

void Relay::on_flow_event(std::uint64_t id, bool client_side, std::uint32_t events) {
  handle_flow_event(id, client_side, events);
  account(id);
}

void Relay::account(std::uint64_t id) {
  if (auto it = flows_.find(id); it != flows_.end()) {
    Flow& f = *it->second;
    const std::size_t now = f.c.queued() + f.s.queued() + f.c.in_pipe + f.s.in_pipe;
    queued_total_ = queued_total_ - f.accounted + now;
    f.accounted = now;
  }
  while (queued_total_ > options_.max_queued_bytes && !flows_.empty()) {
    Flow* biggest = nullptr;
    for (auto& [fid, flow] : flows_)
      if (biggest == nullptr || flow->accounted > biggest->accounted) biggest = flow.get();
    const auto held = biggest->accounted;
    drop(*biggest, "relay-memory-budget", nullptr,
         std::to_string(held) + " bytes queued by this connection, " +
             std::to_string(queued_total_) + " by all: over --max-queued-bytes " +
             std::to_string(options_.max_queued_bytes) + "; the biggest holder is closed");
  }
}

void Relay::handle_flow_event(std::uint64_t id, bool client_side, std::uint32_t events) {
  auto it = flows_.find(id);
  if (it == flows_.end()) return;
  Flow& f = *it->second;
  Side& me = client_side ? f.c : f.s;
  if (!client_side && !f.connected) {
    on_connected(f);
    if (flows_.find(id) == flows_.end()) return;
    if (!f.connected) return;
  }
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(me.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    count("reset");
    Record r = base(f, "allow");
    r.reason = client_side ? "client-reset" : "server-reset";
    r.message = std::strerror(err);
    log_.write(r);
    reset(client_side ? f.s.fd : f.c.fd);
    return finish(f, "");
  }
  if (events & EPOLLOUT) {
    if (!flush(f, me)) return;
    // A body waiting in the pipe towards me (or a pause because I was full) goes on.
    if (f.pin && splice_ && !pump(f, !client_side)) return;
  }
  if ((events & EPOLLHUP) && me.read_eof) return finish(f, "closed");
  if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) {
    if (f.pin && splice_) {
      if (pump(f, client_side)) {
        update(f);
        if (flows_.find(id) != flows_.end()) schedule(f);
      }
    } else if (f.pin) {
      pump_copy(f, client_side);
    } else {
      read_side(f, client_side);
    }
  } else if (events & EPOLLOUT) {
    update(f);
  }
}

// A recv error (the peer reset, a timeout): the connection it came from is already dead, so the
// linger-0 close sends nothing there; the other side is reset.
bool Relay::read_failed(Flow& f, bool client_side, int error) {
  count("reset");
  Record r = base(f, "allow");
  r.reason = client_side ? "client-reset" : "server-reset";
  r.message = std::strerror(error);
  log_.write(r);
  reset(f.c.fd);
  reset(f.s.fd);
  finish(f, "");
  return false;
}

// The peer closed in the middle of a PDU: what was forwarded of it cannot be completed, so both
// connections are reset (a truncated stream is never resynchronised).
bool Relay::truncated(Flow& f, bool client_side) {
  count("truncated");
  Record r = base(f, "drop");
  r.reason = "truncated";
  r.message =
      std::string("the ") + (client_side ? "client" : "server") + " closed in the middle of a PDU";
  log_.write(r, Priority::kNotice);
  reset(f.c.fd);
  reset(f.s.fd);
  finish(f, "");
  return false;
}

bool Relay::pump_body(Flow& f, Side& me, Side& other, bool client_side) {
  // The head (queued in other.out) leaves before its body.
  if (!flush(f, other)) return false;
  while (other.queued() == 0 && (me.body_left > 0 || me.in_pipe > 0)) {
    bool moved = false;
    if (me.body_left > 0 && me.body_left < splice_min_ && me.in_pipe == 0) {
      // A small body: one copy costs less than two splices.
      std::array<std::uint8_t, 4096> small{};
      const ssize_t n = ::recv(me.fd.get(), small.data(), std::min(me.body_left, small.size()), 0);
      if (n == 0) return truncated(f, client_side);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        return read_failed(f, client_side, errno);
      }
      me.bytes_in += static_cast<std::size_t>(n);
      me.body_left -= static_cast<std::size_t>(n);
      other.out.insert(other.out.end(), small.begin(), small.begin() + n);
      if (!flush(f, other)) return false;
      continue;
    }
    if (me.body_left > 0 && me.in_pipe < kPipeBytes) {
      if (!me.pipe_r) {
        int p[2];
        if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return read_failed(f, client_side, errno);
        me.pipe_r = Fd(p[0]);
        me.pipe_w = Fd(p[1]);
      }
      const ssize_t n = ::splice(me.fd.get(), nullptr, me.pipe_w.get(), nullptr,
                                 std::min(me.body_left, kPipeBytes - me.in_pipe),
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) return truncated(f, client_side);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return read_failed(f, client_side, errno);
      if (n > 0) {
        me.bytes_in += static_cast<std::size_t>(n);
        me.body_left -= static_cast<std::size_t>(n);
        me.in_pipe += static_cast<std::size_t>(n);
        moved = true;
      }
    }
    if (me.in_pipe > 0) {
      const ssize_t m =
          ::splice(me.pipe_r.get(), nullptr, other.fd.get(), nullptr, me.in_pipe,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (me.body_left > 0 ? SPLICE_F_MORE : 0));
      if (m < 0 && errno != EAGAIN && errno != EINTR) return read_failed(f, !client_side, errno);
      if (m > 0) {
        me.in_pipe -= static_cast<std::size_t>(m);
        spliced_bytes_ += static_cast<std::uint64_t>(m);
        moved = true;
      }
    }
    if (!moved) break;
  }
  return true;
}

bool Relay::pump(Flow& f, bool client_side) {
  const std::uint64_t id = f.id;
  Side& me = client_side ? f.c : f.s;
  Side& other = client_side ? f.s : f.c;
  const auto dir = client_side ? rpc::Direction::kClientToServer : rpc::Direction::kServerToClient;
  // Bounded per wake-up so one busy connection cannot starve the others.
  for (int rounds = 0; rounds < 64; ++rounds) {
    if (me.body_left > 0 || me.in_pipe > 0) {
      if (!pump_body(f, me, other, client_side)) return false;
      if (me.body_left > 0 || me.in_pipe > 0) break;  // wait: me not readable or other full
      continue;
    }
    if (me.read_eof || other.queued() >= kMaxQueued) break;
    ssize_t n = 0;
    if (me.whole_left == 0) {
      const std::size_t want =
          me.have < rpc::kCommonHeaderSize
              ? rpc::kCommonHeaderSize - me.have
              : rpc::Connection::head_size(std::span(me.head).first<rpc::kCommonHeaderSize>()) -
                    me.have;
      n = ::recv(me.fd.get(), me.head.data() + me.have, want, 0);
    } else {
      n = ::recv(me.fd.get(), scratch_.data(), std::min(me.whole_left, scratch_.size()), 0);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return read_failed(f, client_side, errno);
    }
    if (n == 0) {
      // A partial head or PDU is never forwarded; between PDUs this is a clean half-close.
      me.read_eof = true;
      if (me.have != 0 || me.whole_left != 0) return truncated(f, client_side);
      break;
    }
    me.bytes_in += static_cast<std::size_t>(n);
    const auto now = Clock::now();
    if (me.whole_left != 0) {
      // The rest of a PDU judged whole: the engine frames and buffers it.
      me.whole_left -= static_cast<std::size_t>(n);
      apply(f, f.pin->feed(dir, {scratch_.data(), static_cast<std::size_t>(n)}, now), now);
      if (flows_.find(id) == flows_.end()) return false;
    } else {
      me.have += static_cast<std::size_t>(n);
      if (!judge_head(f, me, dir, now)) return false;
    }
    if (metrics_ != nullptr) metrics_->inspected(Clock::now() - now);
    if (!flush(f, other)) return false;
  }
  return true;
}

bool Relay::judge_head(Flow& f, Side& me, rpc::Direction dir, TimePoint now) {
  if (me.have < rpc::kCommonHeaderSize) return true;
  const std::uint64_t id = f.id;
  const auto header = std::span(me.head).first<rpc::kCommonHeaderSize>();
  const auto decoded = rpc::decode_header(header);
  const std::size_t frag = decoded ? decoded->frag_length : 0;
  const std::size_t size = rpc::Connection::head_size(header);
  std::vector<Action> actions;
  if (me.have == rpc::kCommonHeaderSize &&
      (!decoded || f.pin->body_needed(header) || frag < size)) {
    // Judged whole (bind, alter_context, auth3, faults, requests under min_auth) - and any
    // header that does not even decode, which the engine drops at once.
    actions = f.pin->feed(dir, header, now);
    me.whole_left = decoded && frag > rpc::kCommonHeaderSize ? frag - rpc::kCommonHeaderSize : 0;
    me.have = 0;
  } else if (me.have < size) {
    return true;
  } else {
    actions = f.pin->feed_head(dir, std::span(me.head).first(size), now);
    me.body_left = frag - size;
    me.have = 0;
  }
  apply(f, std::move(actions), now);
  return flows_.find(id) != flows_.end();
}

bool Relay::pump_copy(Flow& f, bool client_side) {
  const std::uint64_t id = f.id;
  Side& me = client_side ? f.c : f.s;
  Side& other = client_side ? f.s : f.c;
  const auto dir = client_side ? rpc::Direction::kClientToServer : rpc::Direction::kServerToClient;
  // Bounded per wake-up so one busy connection cannot starve the others.
  for (int rounds = 0; rounds < 4 && !me.read_eof && other.queued() < kMaxQueued; ++rounds) {
    const ssize_t n = ::recv(me.fd.get(), scratch_.data(), scratch_.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return read_failed(f, client_side, errno);
    }
    if (n == 0) {
      // A partial head or PDU is never completed; between PDUs this is a clean half-close.
      me.read_eof = true;
      if (me.have != 0 || me.whole_left != 0 || me.body_left != 0) return truncated(f, client_side);
      break;
    }
    me.bytes_in += static_cast<std::size_t>(n);
    const auto now = Clock::now();
    std::span<const std::uint8_t> in(scratch_.data(), static_cast<std::size_t>(n));
    while (!in.empty()) {
      if (me.body_left > 0) {
        // Body bytes of a PDU whose head passed: to the other side as they come.
        const std::size_t k = std::min(me.body_left, in.size());
        if (other.sent == other.out.size()) {
          other.out.clear();
          other.sent = 0;
        }
        other.out.insert(other.out.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(k));
        me.body_left -= k;
        in = in.subspan(k);
      } else if (me.whole_left > 0) {
        const std::size_t k = std::min(me.whole_left, in.size());
        me.whole_left -= k;
        apply(f, f.pin->feed(dir, in.first(k), now), now);
        if (flows_.find(id) == flows_.end()) return false;
        in = in.subspan(k);
      } else {
        const std::size_t want =
            me.have < rpc::kCommonHeaderSize
                ? rpc::kCommonHeaderSize - me.have
                : rpc::Connection::head_size(std::span(me.head).first<rpc::kCommonHeaderSize>()) -
                      me.have;
        const std::size_t k = std::min(want, in.size());
        std::copy_n(in.begin(), k, me.head.begin() + static_cast<std::ptrdiff_t>(me.have));
        me.have += k;
        in = in.subspan(k);
        if (!judge_head(f, me, dir, now)) return false;
      }
    }
    // The chunk's framing and judging, its body bytes queued.
    if (metrics_ != nullptr) metrics_->inspected(Clock::now() - now);
    if (!flush(f, other)) return false;
    // A short read emptied the socket: another recv would only say EAGAIN (one syscall per
    // wake-up saved). Level-triggered epoll wakes us for what comes next, a FIN included.
    if (static_cast<std::size_t>(n) < scratch_.size()) break;
  }
  update(f);  // may end the flow (both directions closed)
  if (flows_.find(id) != flows_.end()) schedule(f);
  return true;
}

void Relay::read_side(Flow& f, bool client_side) {
  const std::uint64_t id = f.id;
  Side& me = client_side ? f.c : f.s;
  Side& other = client_side ? f.s : f.c;
  const auto dir = client_side ? rpc::Direction::kClientToServer : rpc::Direction::kServerToClient;
  // Bounded per wake-up so one busy connection cannot starve the others.
  for (int rounds = 0; rounds < 4 && !me.read_eof && other.queued() < kMaxQueued; ++rounds) {
    const ssize_t n = ::recv(me.fd.get(), scratch_.data(), scratch_.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return (void)read_failed(f, client_side, errno);
    }
    if (n == 0) {
      me.read_eof = true;
      // A PDU cut by the close: what the engine holds of it is never forwarded, and the
      // connection ends as a drop (a truncated stream is never resynchronised).
      const auto& engine = f.epm ? f.epm->connection() : f.pin->connection();
      if (engine.partial_bytes(dir) != 0) return (void)truncated(f, client_side);
      break;
    }
    me.bytes_in += static_cast<std::size_t>(n);
    const auto now = Clock::now();
    auto actions = f.epm ? f.epm->feed(dir, {scratch_.data(), static_cast<std::size_t>(n)}, now)
                         : f.pin->feed(dir, {scratch_.data(), static_cast<std::size_t>(n)}, now);
    apply(f, std::move(actions), now);
    if (metrics_ != nullptr) metrics_->inspected(Clock::now() - now);
    if (flows_.find(id) == flows_.end()) return;
    if (static_cast<std::size_t>(n) < scratch_.size()) break;  // drained (see pump_copy)
  }
  if (!flush(f, other)) return;
  update(f);  // may end the flow (both directions closed)
  if (flows_.find(id) != flows_.end()) schedule(f);
}

void Relay::apply(Flow& f, std::vector<Action> actions, TimePoint received) {
  for (auto& a : actions) {
    switch (a.kind) {
      case Action::Kind::kForward: {
        Side& to = a.direction == rpc::Direction::kClientToServer ? f.s : f.c;
        if (to.sent == to.out.size()) {
          to.out.clear();
          to.sent = 0;
        }
        to.out.insert(to.out.end(), a.bytes.begin(), a.bytes.end());
        ++f.pdus;
        break;
      }
      case Action::Kind::kOpen:
        open_pinholes(f, a, received);
        break;
      case Action::Kind::kNote: {
        Record r = base(f, a.note_event);
        r.reason = a.note_reason;
        if (!a.pinholes.empty()) {
          r.referral = firewall::to_string(a.pinholes.front().server);
          r.port = a.pinholes.front().port;
        }
        r.message = a.message;
        count(std::string(a.note_event) + "-" + std::string(a.note_reason));
        log_.write(r, a.warning ? Priority::kWarning : Priority::kInfo);
        break;
      }
      case Action::Kind::kDrop:
        return drop(f, firewall::to_string(*a.drop), &a);
      case Action::Kind::kAnswer: {
        // The inspector answered for the server (an ept_map of an interface no rule allows).
        const auto reason = firewall::to_string(*a.drop);
        count(reason);
        Record r = base(f, "refuse");
        r.reason = reason;
        if (a.interface) r.interface = syntax_text(*a.interface);
        r.opnum = a.opnum;
        r.message = std::string(firewall::describe(*a.drop));
        log_.write(r, Priority::kNotice);
        if (f.c.sent == f.c.out.size()) {
          f.c.out.clear();
          f.c.sent = 0;
        }
        f.c.out.insert(f.c.out.end(), a.bytes.begin(), a.bytes.end());
        break;
      }
    }
  }
}

void Relay::open_pinholes(Flow& f, const Action& a, TimePoint received) {
  std::vector<firewall::kernel::PinholeElement> elements;
  std::vector<std::pair<PinholeKey, firewall::OpenResult>> results;
  std::set<PinholeKey> kept;  // live long enough: not rewritten in the kernel
  const auto timeout = a.timeout.count() > 0 ? milliseconds(a.timeout)
                                             : milliseconds(options_.config.pinhole_timeout);
  for (const auto& key : a.pinholes) {
    // A pinhole that has this interface and at least 9/10 of its lifetime left is not rewritten:
    // every kernel update costs a libnftables batch (~0.1 ms), and a client mapping in a loop
    // must not make the firewall spend its CPU on them. So a pinhole is refreshed at most once
    // per tenth of its lifetime, and may close up to a tenth early - never late.
    if (const auto* p = pinholes_.find(key, received);
        p != nullptr && p->expires - received >= timeout - timeout / 10 &&
        std::find(p->interfaces.begin(), p->interfaces.end(), *a.interface) !=
            p->interfaces.end()) {
      results.emplace_back(key, firewall::OpenResult::kRefreshed);
      kept.insert(key);
      continue;
    }
    const auto r = pinholes_.open(key, *a.interface, received, timeout);
    results.emplace_back(key, r);
    if (r == firewall::OpenResult::kClientFull || r == firewall::OpenResult::kTableFull) continue;
    const auto* p = pinholes_.find(key, received);
    elements.push_back({key, duration_cast<milliseconds>(p->expires - received),
                        firewall::interfaces_comment(p->interfaces)});
  }
  std::string kernel_error;
  if (!elements.empty()) {
    if (auto ok = nft_->add(elements); !ok) kernel_error = ok.error();
  }
  const auto us =
      static_cast<std::uint64_t>(duration_cast<microseconds>(Clock::now() - received).count());
  if (!elements.empty()) install_us_.add(us);
  if (metrics_ != nullptr && !elements.empty()) metrics_->installed(Clock::now() - received);
  for (const auto& [key, r] : results) {
    Record rec = base(f, "pinhole");
    rec.port = key.port;
    rec.interface = syntax_text(*a.interface);
    rec.rule = a.rule;
    if (key.server != f.server) rec.referral = firewall::to_string(key.server);
    if (a.lookup) rec.message = "learned from an ept_lookup answer";
    const bool refused =
        r == firewall::OpenResult::kClientFull || r == firewall::OpenResult::kTableFull;
    if (refused) {
      rec.event = "drop";
      rec.reason =
          r == firewall::OpenResult::kClientFull ? "client-pinhole-limit" : "pinhole-limit";
      rec.message = std::string(firewall::to_string(r)) + ": no pinhole opened";
      count(rec.reason);
      log_.write(rec, Priority::kWarning);
      continue;
    }
    if (!kernel_error.empty() && !kept.contains(key)) {
      rec.event = "error";
      rec.reason = "kernel";
      rec.message = "pinhole not installed: " + kernel_error;
      count("kernel-error");
      log_.write(rec, Priority::kError);
      continue;
    }
    rec.reason = r == firewall::OpenResult::kOpened ? "opened"
                 : kept.contains(key)               ? "kept"
                                                    : "refreshed";
    rec.timeout_s = static_cast<std::uint64_t>(timeout.count() / 1000);
    if (!kept.contains(key)) rec.install_us = us;
    count(std::string("pinhole-") + std::string(rec.reason));
    log_.write(rec);
  }
}

bool Relay::flush(Flow& f, Side& to) {
  while (to.queued() > 0) {
    const ssize_t n = ::send(to.fd.get(), to.out.data() + to.sent, to.queued(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      count("reset");
      Record r = base(f, "allow");
      r.reason = &to == &f.c ? "client-reset" : "server-reset";
      r.message = std::strerror(errno);
      log_.write(r);
      reset(&to == &f.c ? f.s.fd : f.c.fd);
      to.fd.reset();
      finish(f, "");
      return false;
    }
    to.sent += static_cast<std::size_t>(n);
  }
  if (to.queued() == 0) {
    to.out.clear();
    to.sent = 0;
  }
  return true;
}

// Recomputes what each side waits for, and ends the flow once both directions are done.
void Relay::update(Flow& f) {
  // A side that has closed, and whose bytes are all forwarded: pass the half-close on.
  for (auto [from, to] : {std::pair{&f.c, &f.s}, std::pair{&f.s, &f.c}}) {
    if (from->read_eof && !to->shut && to->queued() == 0 && from->in_pipe == 0 && f.connected) {
      ::shutdown(to->fd.get(), SHUT_WR);
      to->shut = true;
    }
  }
  if (f.c.shut && f.s.shut) return finish(f, "closed");
  auto want = [&](Side& me, Side& other, bool server_side) {
    std::uint32_t ev = 0;
    if (server_side && !f.connected) return std::uint32_t{EPOLLOUT};
    if (!f.connected) return std::uint32_t{0};
    // Reading pauses while the other side cannot take more (queued bytes, or a full pipe).
    // A body waits for the other side (its head still queued, or the pipe full or holding the
    // whole rest): wake up on the other side's EPOLLOUT instead, or this would spin.
    // (The copy path queues body bytes like any others: only kMaxQueued pauses it.)
    const bool body_blocked =
        splice_ && (me.body_left > 0 || me.in_pipe > 0) &&
        (other.queued() > 0 || me.in_pipe >= kPipeBytes || (me.in_pipe > 0 && me.body_left == 0));
    if (!me.read_eof && other.queued() < kMaxQueued && !body_blocked) ev |= EPOLLIN | EPOLLRDHUP;
    if (me.queued() > 0 || other.in_pipe > 0) ev |= EPOLLOUT;
    return ev;
  };
  for (bool client_side : {true, false}) {
    Side& me = client_side ? f.c : f.s;
    Side& other = client_side ? f.s : f.c;
    const std::uint32_t ev = want(me, other, !client_side);
    if (ev == me.events) continue;
    const auto key = key_of(client_side ? Tag::kClient : Tag::kServer, f.id);
    // Registered once, then modified - also to no events at all (a side waiting for the other
    // one's pipe to drain): "no events" must not be mistaken for "not registered".
    ctl(me.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, me.fd.get(), key, ev);
    me.registered = true;
    me.events = ev;
  }
}

void Relay::drop(Flow& f, std::string_view reason, const Action* a, std::string message) {
  count(reason);
  Record r = base(f, "drop");
  r.reason = reason;
  if (a != nullptr) {
    if (a->interface) r.interface = syntax_text(*a->interface);
    r.opnum = a->opnum;
    if (message.empty()) {
      message = std::string(firewall::describe(*a->drop));
      if (a->error) message += ": " + a->error.message();
    }
  }
  r.message = std::move(message);
  log_.write(r, Priority::kNotice);
  reset(f.c.fd);
  reset(f.s.fd);
  finish(f, "");
}

void Relay::finish(Flow& f, std::string_view reason) {
  if (!reason.empty()) {
    count(reason);
    Record r = base(f, "allow");
    r.reason = reason;
    r.message = std::to_string(f.c.bytes_in) + " bytes from the client, " +
                std::to_string(f.s.bytes_in) + " from the server, " + std::to_string(f.pdus) +
                " PDUs relayed";
    log_.write(r);
  }
  if (f.timer) {
    auto [lo, hi] = timers_.equal_range(*f.timer);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == f.id) {
        timers_.erase(it);
        break;
      }
    }
  }
  queued_total_ -= f.accounted;
  finished_bytes_from_client_ += f.c.bytes_in;
  finished_bytes_from_server_ += f.s.bytes_in;
  if (auto it = per_client_.find(f.client); it != per_client_.end() && --it->second == 0)
    per_client_.erase(it);
  flows_.erase(f.id);  // closes both descriptors (epoll forgets them)
}

void Relay::schedule(Flow& f) {
  const auto next = f.epm ? f.epm->next_expiry() : f.pin->next_expiry();
  if (next == f.timer) return;
  if (f.timer) {
    auto [lo, hi] = timers_.equal_range(*f.timer);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == f.id) {
        timers_.erase(it);
        break;
      }
    }
  }
  f.timer = next;
  if (next) timers_.emplace(*next, f.id);
}

void Relay::on_timers(TimePoint now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const auto id = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = flows_.find(id);
    if (it == flows_.end()) continue;
    Flow& f = *it->second;
    f.timer.reset();
    auto actions = f.epm ? f.epm->on_expiry(now) : f.pin->on_expiry(now);
    apply(f, std::move(actions), now);
    if (flows_.find(id) == flows_.end()) continue;
    if (!flush(f, f.c) || !flush(f, f.s)) continue;
    update(f);
    if (flows_.find(id) != flows_.end()) schedule(f);
    account(id);
  }
  pinholes_expired_ += pinholes_.expire(now);
}

void Relay::on_signal() {
  signalfd_siginfo si{};
  while (::read(signal_.get(), &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      auto fresh = reload_ ? reload_() : std::expected<Options, std::string>(options_);
      if (!fresh) {
        log_.write(note("reload", "configuration refused, the running rules stay: " + fresh.error(),
                        "invalid"),
                   Priority::kError);
      } else {
        const auto old = options_;
        options_ = std::move(*fresh);
        // Listener ports cannot move under a running table: keep them.
        options_.config.epm_listen_port = old.config.epm_listen_port;
        options_.config.pinhole_listen_port = old.config.pinhole_listen_port;
        rules_ = std::make_shared<const firewall::RuleSet>(options_.config);
        if (auto ok = install_kernel(false); !ok) {
          options_ = old;
          rules_ = std::make_shared<const firewall::RuleSet>(options_.config);
          log_.write(note("reload", ok.error(), "kernel"), Priority::kError);
        } else {
          log_.write(note("reload",
                          "rules reloaded; existing connections keep the rules they "
                          "started with",
                          "applied"));
        }
      }
      sd_notify(0, "READY=1");
    } else {
      stop_ = true;
    }
  }
}

void Relay::on_control_accept() {
  for (;;) {
    Fd fd(::accept4(control_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;
    if (controls_.size() >= kMaxControlConnections) continue;  // closes it
    const auto id = next_id_++;
    ctl(EPOLL_CTL_ADD, fd.get(), key_of(Tag::kControl, id), EPOLLIN);
    controls_[id].fd = std::move(fd);
  }
}

void Relay::on_control(std::uint64_t id, std::uint32_t events) {
  auto it = controls_.find(id);
  if (it == controls_.end()) return;
  auto& c = it->second;
  if (c.out.empty()) {
    char buf[256];
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      controls_.erase(it);
      return;
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    if (c.in.size() > kMaxControlRequest) {
      controls_.erase(it);
      return;
    }
    const auto nl = c.in.find('\n');
    if (nl == std::string::npos) return;
    const auto command = c.in.substr(0, nl);
    if (command == "status") {
      c.out = status_json() + "\n";
    } else {
      c.out = nlohmann::json{{"error", "unknown command: " + command}}.dump() + "\n";
    }
    ctl(EPOLL_CTL_MOD, c.fd.get(), key_of(Tag::kControl, id), EPOLLOUT);
  }
  (void)events;
  while (c.sent < c.out.size()) {
    const ssize_t n =
        ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) return;
      break;
    }
    c.sent += static_cast<std::size_t>(n);
  }
  controls_.erase(it);
}

std::string Relay::status_json() {
  const auto now = Clock::now();
  nlohmann::ordered_json j;
  j["pid"] = ::getpid();
  j["mode"] = options_.config.mode == firewall::Mode::kRouter ? "router" : "host";
  j["uptime_s"] = duration_cast<std::chrono::seconds>(now - started_).count();
  auto& holes = j["pinholes"] = nlohmann::json::array();
  pinholes_expired_ += pinholes_.expire(now);
  for (const auto& [key, p] : pinholes_.all()) {
    nlohmann::ordered_json h;
    h["client"] = firewall::to_string(key.client);
    h["server"] = firewall::to_string(key.server);
    h["port"] = key.port;
    auto& ifs = h["interfaces"] = nlohmann::json::array();
    for (const auto& i : p.interfaces)
      ifs.push_back(syntax_text(i));
    h["remaining_ms"] = duration_cast<milliseconds>(p.expires - now).count();
    holes.push_back(std::move(h));
  }
  auto& conns = j["connections"] = nlohmann::json::array();
  for (const auto& [id, f] : flows_) {
    nlohmann::ordered_json c;
    c["kind"] = to_string(f->kind);
    c["client"] = firewall::to_string(f->client) + ":" + std::to_string(f->client_port);
    c["server"] = firewall::to_string(f->server) + ":" + std::to_string(f->server_port);
    c["age_ms"] = duration_cast<milliseconds>(now - f->started).count();
    c["bytes_from_client"] = f->c.bytes_in;
    c["bytes_from_server"] = f->s.bytes_in;
    c["pdus"] = f->pdus;
    for (const auto* side : {&f->c, &f->s}) {
      nlohmann::ordered_json d;
      d["events"] = side->events;
      d["queued"] = side->queued();
      d["have"] = side->have;
      d["whole_left"] = side->whole_left;
      d["body_left"] = side->body_left;
      d["in_pipe"] = side->in_pipe;
      d["read_eof"] = side->read_eof;
      c[side == &f->c ? "client_side" : "server_side"] = std::move(d);
    }
    conns.push_back(std::move(c));
  }
  j["relayed_total"] = relayed_total_;
  j["splice"] = splice_;
  j["spliced_bytes"] = spliced_bytes_;
  j["queued_bytes"] = queued_total_;
  j["counters"] = counters_;
  if (auto k = nft_->counters()) {
    auto& kc = j["kernel_counters"] = nlohmann::ordered_json::object();
    for (const auto& [name, value] : *k)
      kc[name] = value;
  }
  j["pinhole_install_us"] = install_us_.summary();
  return j.dump();
}

// A scrape asked (RelayMetrics::wakeup_fd): the counters status_json() prints, without the
// per-pinhole and per-connection lists.
void Relay::publish_metrics() {
  RelaySnapshot s;
  pinholes_expired_ += pinholes_.expire(Clock::now());
  s.counters = counters_;
  s.pinholes = pinholes_.size();
  s.pinholes_expired = pinholes_expired_;
  s.connections = flows_.size();
  s.relayed_total = relayed_total_;
  s.bytes_from_client = finished_bytes_from_client_;
  s.bytes_from_server = finished_bytes_from_server_;
  for (const auto& [id, f] : flows_) {
    s.bytes_from_client += f->c.bytes_in;
    s.bytes_from_server += f->s.bytes_in;
  }
  if (auto k = nft_->counters()) s.kernel_counters = std::move(*k);
  metrics_->publish(std::move(s));
}

int Relay::loop() {
  std::array<epoll_event, 64> events{};
  while (!stop_) {
    int timeout = -1;
    if (!timers_.empty()) {
      const auto d = duration_cast<milliseconds>(timers_.begin()->first - Clock::now()).count();
      timeout = static_cast<int>(std::clamp<std::int64_t>(d + 1, 0, 60'000));
    }
    log_.flush();  // this turn's records, in one write
    const int n =
        ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) {
      log_.write(note("error", std::string("epoll_wait: ") + std::strerror(errno)),
                 Priority::kError);
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const auto k = events[static_cast<std::size_t>(i)].data.u64;
      const auto ev = events[static_cast<std::size_t>(i)].events;
      switch (tag_of(k)) {
        case Tag::kListener:
          on_accept(id_of(k));
          break;
        case Tag::kClient:
          on_flow_event(id_of(k), true, ev);
          break;
        case Tag::kServer:
          on_flow_event(id_of(k), false, ev);
          break;
        case Tag::kControlListener:
          on_control_accept();
          break;
        case Tag::kControl:
          on_control(id_of(k), ev);
          break;
        case Tag::kSignal:
          on_signal();
          break;
        case Tag::kMetrics:
          publish_metrics();
          break;
      }
    }
    on_timers(Clock::now());
  }
  sd_notify(0, "STOPPING=1");
  log_.write(note("stop",
                  "stopped; table inet rpcgate_fwd stays in place (governed traffic is "
                  "dropped until rpcgate-fwd runs again or --uninstall)"));
  flows_.clear();
  if (!options_.config.control.empty()) ::unlink(options_.config.control.c_str());
  log_.flush();
  return 0;
}

}  // namespace

int run(Options options, DecisionLog& log, Reload reload, RelayMetrics* metrics) {
  Relay relay(std::move(options), log, std::move(reload), metrics);
  if (auto ok = relay.start(); !ok) {
    log.write(note("error", ok.error(), "start"), Priority::kError);
    return 1;
  }
  return relay.loop();
}

int uninstall(const Options& options) {
  auto nft = firewall::kernel::Nft::open();
  if (!nft) {
    std::fprintf(stderr, "rpcgate-fwd: libnftables: %s\n", nft.error().c_str());
    return 1;
  }
  int status = 0;
  if (auto ok = nft->uninstall(); !ok) {
    std::fprintf(stderr, "rpcgate-fwd: cannot remove table inet rpcgate_fwd: %s\n",
                 ok.error().c_str());
    status = 1;
  }
  if (auto ok = firewall::kernel::remove_routing(options.mark, options.route_table); !ok) {
    std::fprintf(stderr, "rpcgate-fwd: cannot remove the policy routing: %s\n", ok.error().c_str());
    status = 1;
  }
  return status;
}

std::string render_table(const Options& options) {
  auto nft = firewall::kernel::Nft::open();
  if (!nft) return "# libnftables: " + nft.error() + "\n";
  return nft->render(table_spec(options), {});
}

std::expected<std::string, std::string> query_status(const std::string& control_path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (control_path.size() >= sizeof sa.sun_path) return std::unexpected("control path too long");
  std::memcpy(sa.sun_path, control_path.data(), control_path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return std::unexpected("cannot connect to " + control_path + ": " + std::strerror(errno) +
                           " (is rpcgate-fwd running?)");
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "status\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return std::unexpected(std::string("send: ") + std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) return std::unexpected(std::string("recv: ") + std::strerror(errno));
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > (64u << 20)) return std::unexpected("status answer too large");
  }
  return out;
}

}  // namespace rpcgate::fwd
