#include "runtime/server.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <utility>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "epm/mgmt.h"
#include "rpc/association.h"
#include "rpc/fragments.h"
#include "rpc/framer.h"
#include "rpc/status.h"
#include "runtime/epm_host.h"
#include "runtime/heap.h"

namespace rpcgate::runtime {

using Clock = std::chrono::steady_clock;
using generic_stream = asio::generic::stream_protocol;

bool uid_in_group(uid_t uid, gid_t gid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  while (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == ERANGE && buf.size() < 65536)
    buf.resize(buf.size() * 2);
  if (found == nullptr) return false;
  if (pw.pw_gid == gid) return true;
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));  // count is now the number needed
    if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) return false;
  }
  groups.resize(static_cast<std::size_t>(count));
  return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

bool PeerPolicy::may_register(uid_t uid, std::optional<gid_t> gid) const {
  if (allow_root && uid == 0) return true;
  if (allow_same_uid && uid == ::geteuid()) return true;
  if (std::find(uids.begin(), uids.end(), uid) != uids.end()) return true;
  for (const gid_t g : gids)
    if ((gid && *gid == g) || uid_in_group(uid, g)) return true;
  return false;
}

namespace detail {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(Server& server, Fd fd, int family, Transport transport)
      : server_(server),
        acceptor_(server.io()),
        retry_(server.io()),
        transport_(transport),
        family_(family) {
    asio::error_code ec;
    acceptor_.assign(generic_stream(family, 0), fd.release(), ec);
    if (ec) error_ = ec;
    if (transport == Transport::kTcp) port_ = local_port(acceptor_.native_handle());
  }

  void start() {
    if (closed_) return;
    acceptor_.async_wait(asio::socket_base::wait_read,
                         [self = shared_from_this()](const asio::error_code& ec) {
                           if (ec || self->closed_) return;
                           self->on_ready();
                         });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
    if (owns_path_) ::unlink(unix_path_.c_str());
  }

  Server& server_;
  asio::basic_socket_acceptor<generic_stream> acceptor_;
  asio::steady_timer retry_;
  Transport transport_;
  int family_;
  std::uint16_t port_ = 0;
  PeerPolicy policy_;
  std::string unix_path_;
  bool owns_path_ = false;  // listen_unix bound it: unlink the file on close (adopted: never)
  asio::error_code error_;
  bool closed_ = false;

 private:
  std::chrono::steady_clock::time_point last_accept_warning_{};
  std::uint64_t accept_failures_ = 0;

  void on_ready() {
    // Bounded per wakeup so a connection flood cannot monopolise the loop.
    for (int i = 0; i < 64 && !closed_; ++i) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      int fd = ::accept4(acceptor_.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) break;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off instead of spinning on a ready listener, and
        // say so once per 10 s, not at every retry.
        ++accept_failures_;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_accept_warning_ >= std::chrono::seconds(10)) {
          spdlog::warn(
              "rpc listener: accept failed: {} ({} failure(s) since the last warning; "
              "new clients wait in the backlog)",
              std::strerror(e), accept_failures_);
          accept_failures_ = 0;
          last_accept_warning_ = now;
        }
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
          if (!ec && !self->closed_) self->start();
        });
        return;
      }
      server_.accepted(*this, fd);
    }
    start();
  }
};

// The socket shell of one accepted connection around its sans-I/O engine (rpc::Connection): epoll
// interest, recv/send with descriptor passing, the deadline timer, and the Handler dispatch.
// Everything the protocol decides - answers, reassembly, pausing, deadlines, closes - is the
// engine's.
class Connection : public std::enable_shared_from_this<Connection>, rpc::ConnectionHandler {
 public:
  struct Info {
    std::uint64_t id = 0;
    Transport transport = Transport::kTcp;
    std::string peer;
    std::string peer_key;  // per-peer limit key (TCP peer IP), empty for Unix
    std::string local;
    std::uint16_t local_port = 0;
    std::optional<std::array<std::uint8_t, 4>> local_ipv4;
    std::optional<ucred> cred;
    std::optional<std::uint32_t> uid;  // cred->uid, or the loopback TCP peer's socket owner
    bool may_register = false;
  };

  Connection(Server& server, Info info, int fd, rpc::ServerConfig config)
      : server_(server),
        info_(std::move(info)),
        fd_(fd),
        timer_(server.io()),
        engine_(rpc::ServerRole{std::move(config)}, server.connection_options(), *this,
                server.now()) {}

  const Info& info() const { return info_; }
  // The association group this connection's bind joined (0: none yet).
  std::uint32_t assoc_group() const { return assoc_group_; }
  bool closed() const { return closed_; }
  // Bytes allocated for this connection's unfinished calls, as last reported to the server.
  std::size_t reassembly_held() const { return engine_.reassembly_held(); }
  const rpc::ConnectionCounters& counters() const { return engine_.counters(); }
  // Output waits for the socket to take more (EPOLLOUT).
  bool write_blocked() const { return writing_; }

  void start() { settle(); }

  // Readiness from the server's epoll set (Server::on_poller_ready).
  void on_events(std::uint32_t events) {
    if (events & EPOLLOUT) {
      writing_ = false;
      flush();
    }
    if (closed_) return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      if (engine_.wants_input()) {
        on_readable();
      } else if (events & (EPOLLHUP | EPOLLERR)) {
        // Level-triggered: a hang-up or error keeps being reported while input is paused, and
        // output cannot drain to a peer that is gone. Nothing more can be done for it.
        engine_.close((events & EPOLLERR) ? CloseReason::kReadError : CloseReason::kEof,
                      server_.now());
      }
    }
    settle();
  }

  // Closes now for a reason of the server's (a budget spanning connections, stop()).
  void close(CloseReason reason, std::error_code why = {}) {
    if (closed_) return;
    engine_.close(reason, server_.now(), why);
    settle();
  }

  // The deadline came (the timer, or a manual clock's advance).
  void expire() {
    if (closed_) return;
    engine_.on_expiry(server_.now());
    settle();
  }
  std::optional<rpc::TimePoint> next_expiry() const { return engine_.next_expiry(); }

  // Through Responder.
  void respond(const rpc::CallRef& call, std::span<const std::uint8_t> stub, std::vector<int> fds) {
    if (closed_) {
      close_all(fds);
      return;
    }
    if (!fds.empty() && info_.transport != Transport::kUnix) {
      spdlog::error("rpc connection {}: handler passed file descriptors over TCP", info_.id);
      close_all(fds);
      engine_.respond_fault(call, kFaultUnspec, server_.now());
    } else {
      engine_.respond(call, stub, server_.now(), std::move(fds));
    }
    settle();
  }
  void respond_fault(const rpc::CallRef& call, std::uint32_t status) {
    if (closed_) return;
    engine_.respond_fault(call, status, server_.now());
    settle();
  }

 private:
  // ---- rpc::ConnectionHandler ----
  void on_call(rpc::ServerCall& call) override;
  void on_bound(std::uint32_t assoc_group_id) override {
    assoc_group_ = assoc_group_id;
    server_.join_assoc_group(assoc_group_id);
  }
  void on_reassembly_change(std::size_t before, std::size_t after) override {
    server_.reassembly_changed(*this, before, after);
  }

  // After every step: hand back descriptors that will not be sent, write what can be written,
  // and either finish (the engine is done) or follow its wishes (epoll interest, timer).
  void settle() {
    if (closed_) return;
    auto unsent = engine_.take_unsent_fds();
    close_all(unsent);
    flush();
    if (closed_) return;
    if (engine_.done()) return finish();
    update_interest();
    update_timer();
  }

  // One recv() per readiness into the server's shared buffer: level-triggered epoll reports the
  // socket again if more is waiting, so no recv() ends in EAGAIN (an asio receive op costs one
  // such recv() per call: asio 1.22 retries speculatively after every completed read).
  void on_readable() {
    auto& buf = server_.read_buffer_;
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n == 0) return engine_.close(CloseReason::kEof, server_.now());
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        engine_.close(CloseReason::kReadError, server_.now(), {errno, std::system_category()});
      return;
    }
    engine_.feed(rpc::Direction::kClientToServer,
                 std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)),
                 server_.now());
  }

  void flush() {
    if (writing_ || in_flush_ || closed_) return;
    in_flush_ = true;
    while (engine_.state() != rpc::Connection::State::kClosed) {
      const auto out = engine_.next_output();
      if (out.bytes.empty()) break;
      auto n = send_with_fds(fd_.get(), out.bytes, out.fds);
      if (!n) {
        if (n.error() == std::errc::resource_unavailable_try_again ||
            n.error() == std::errc::operation_would_block) {
          writing_ = true;  // EPOLLOUT tells when to go on
          break;
        }
        engine_.close(CloseReason::kWriteError, server_.now(), n.error());
        break;
      }
      // The kernel holds its own references to passed descriptors now.
      std::vector<int> handed;
      if (*n > 0 && !out.fds.empty()) handed.assign(out.fds.begin(), out.fds.end());
      engine_.output_sent(*n, server_.now());  // may dispatch calls held back by the output
      close_all(handed);
    }
    in_flush_ = false;
  }

  void finish() {
    if (closed_) return;
    auto self = shared_from_this();
    closed_ = true;
    timer_.cancel();
    // Out of the epoll set explicitly: closing leaves it only when no other descriptor refers to
    // the same open file, and a stale level-triggered entry would be reported forever.
    if (registered_) server_.unwatch(fd_.get());
    fd_.reset();
    interest_ = 0;
    auto unsent = engine_.take_unsent_fds();
    close_all(unsent);
    server_.connection_closed(*this, engine_.close_info());
  }

  // The epoll interest follows the state: EPOLLIN unless input is paused, EPOLLOUT while output
  // waits for the socket. One epoll_ctl when it changes, none per call.
  void update_interest() {
    const std::uint32_t want =
        (engine_.wants_input() ? std::uint32_t{EPOLLIN} : 0u) | (writing_ ? EPOLLOUT : 0u);
    if (registered_ && want == interest_) return;
    if (!server_.watch(fd_.get(), info_.id, want, !registered_)) {
      engine_.close(CloseReason::kReadError, server_.now(), {errno, std::system_category()});
      return finish();
    }
    registered_ = true;
    interest_ = want;
  }

  void update_timer() {
    if (server_.manual_clock_ != nullptr) return;  // Server::expire_due() on every advance
    const auto d = engine_.next_expiry();
    if (!d) return;
    if (timer_armed_ && armed_at_ <= *d) return;  // fires earlier and re-checks
    armed_at_ = *d;
    timer_armed_ = true;
    timer_.expires_at(*d);
    timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_](const asio::error_code&) {
      if (gen != self->timer_gen_ || self->closed_) return;
      self->timer_armed_ = false;
      self->expire();
    });
  }

  Server& server_;
  Info info_;
  Fd fd_;
  asio::steady_timer timer_;
  rpc::Connection engine_;
  rpc::TimePoint armed_at_{};
  std::uint64_t timer_gen_ = 0;
  std::uint32_t assoc_group_ = 0;
  std::uint32_t interest_ = 0;  // its events in the server's epoll set
  bool timer_armed_ = false;
  bool registered_ = false;  // in the server's epoll set
  bool writing_ = false;     // waiting for EPOLLOUT
  bool in_flush_ = false;
  bool closed_ = false;
};

}  // namespace detail

// ---- Responder -------------------------------------------------------------------------------

Responder::Responder(Responder&& other) noexcept
    : connection_(std::move(other.connection_)),
      call_(other.call_),
      pending_(std::exchange(other.pending_, false)) {}
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (pending_) fault(kFaultUnspec);
    connection_ = std::move(other.connection_);
    call_ = other.call_;
    pending_ = std::exchange(other.pending_, false);
  }
  return *this;
}
Responder::~Responder() {
  if (pending_) fault(kFaultUnspec);
}

void Responder::reply(std::span<const std::uint8_t> stub, std::vector<int> fds) {
  if (!std::exchange(pending_, false)) {
    close_all(fds);
    return;
  }
  if (auto c = connection_.lock()) {
    c->respond(call_, stub, std::move(fds));
  } else {
    close_all(fds);
  }
}

void Responder::fault(std::uint32_t status) {
  if (!std::exchange(pending_, false)) return;
  if (auto c = connection_.lock()) c->respond_fault(call_, status);
}

void detail::Connection::on_call(rpc::ServerCall& dc) {
  Responder responder(weak_from_this(), rpc::call_ref(dc));

  const auto* reg = server_.find_interface(dc.abstract_syntax);
  if (reg == nullptr) return responder.fault(rpc::status::kNcaSUnkIf);
  Handler handler = reg->handler;  // add_interface() from inside a handler must not bite

  IncomingCall ctx;
  ctx.connection_id = info_.id;
  ctx.call_id = dc.call.call_id;
  ctx.p_cont_id = dc.call.p_cont_id;
  ctx.opnum = dc.call.opnum;
  ctx.stub = dc.call.stub;
  ctx.drep = dc.call.drep;
  ctx.endian = dc.call.drep.endian();
  ctx.object = dc.call.object;
  ctx.interface = dc.abstract_syntax;
  ctx.transfer_syntax = dc.transfer_syntax;
  ctx.transport = info_.transport;
  ctx.peer_address = info_.peer;
  ctx.local_address = info_.local;
  ctx.local_port = info_.local_port;
  ctx.local_ipv4 = info_.local_ipv4;
  ctx.peer_cred = info_.cred;
  ctx.peer_uid = info_.uid;
  ctx.peer_key = info_.peer_key;
  ctx.may_register = info_.may_register;
  try {
    handler(ctx, std::move(responder));
  } catch (const std::exception& e) {
    // The Responder was destroyed during unwinding and sent nca_s_fault_unspec.
    spdlog::warn("rpc connection {}: handler threw: {}", info_.id, e.what());
  } catch (...) {
    spdlog::warn("rpc connection {}: handler threw", info_.id);
  }
}

// ---- Server ----------------------------------------------------------------------------------

Server::Server(asio::io_context& io, ServerOptions options)
    : io_(io), options_(options), read_buffer_(64 * 1024) {
  if (options_.tune_heap) tune_heap();
  clock_ = options_.clock != nullptr ? options_.clock : &common::SteadyClock::instance();
  manual_clock_ = dynamic_cast<common::ManualClock*>(clock_);
  if (manual_clock_ != nullptr) {
    // advance() runs on the test's thread: the check runs on the io thread.
    clock_subscription_ = manual_clock_->subscribe([this, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired()) return;
      asio::post(io_, [this, alive] {
        if (!alive.expired()) expire_due();
      });
    });
  }
  auto& co = connection_options_;
  co.idle_before_bind = options_.idle_timeout_before_bind;
  co.idle_after_bind = options_.idle_timeout_after_bind;
  co.pdu = options_.pdu_timeout;
  co.write = options_.write_timeout;
  co.max_outstanding_calls = options_.max_outstanding_calls;
  co.max_output_bytes = options_.max_output_bytes;
  co.max_frag_before_bind = options_.max_frag_before_bind;
  // Connection sockets live in this epoll set (level-triggered); the io_context watches the set
  // itself (arm_poller). A failure here (EMFILE at startup) shows at the first connection.
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep >= 0) {
    epoll_fd_ = ep;
    poller_ = std::make_unique<asio::posix::stream_descriptor>(io_, ep);
  }
  if (!options_.export_mgmt) return;
  mgmt_ = std::make_unique<epm::MgmtService>([this] {
    epm::MgmtInfo info;
    for (const auto& r : interfaces_)
      if (r.interface != rpc::kMgmtSyntax) info.if_ids.push_back(r.interface);
    info.if_ids.push_back(rpc::kMgmtSyntax);
    // The wire counters are u32: they wrap, as DCE's do.
    const ServerStats st = stats();
    info.stats = {static_cast<std::uint32_t>(st.calls), 0, static_cast<std::uint32_t>(st.pdus_in),
                  static_cast<std::uint32_t>(st.pdus_out)};
    info.listening = true;
    return info;
  });
  mgmt_->on_trailing_bytes([](std::uint16_t opnum, std::size_t bytes) {
    spdlog::debug("mgmt opnum {}: ignored {} byte(s) after the last parameter", opnum, bytes);
  });
  add_interface(
      rpc::kMgmtSyntax,
      [this](IncomingCall& ctx, Responder r) {
        send_outcome(std::move(r), mgmt_->call(ctx.opnum, ctx.stub, ctx.endian));
      },
      epm::kMgmtMaxRequestStub);
}

Server::~Server() {
  if (manual_clock_ != nullptr) manual_clock_->unsubscribe(clock_subscription_);
  alive_.reset();
  stop();
}

void Server::expire_due() {
  const auto now = this->now();
  std::vector<std::shared_ptr<detail::Connection>> due;
  for (const auto& [id, c] : connections_) {
    const auto e = c->next_expiry();
    if (e && *e <= now) due.push_back(c);
  }
  for (auto& c : due)
    c->expire();
}

bool Server::add_interface(const rpc::SyntaxId& interface, Handler handler,
                           std::optional<std::size_t> max_stub_size) {
  for (const auto& r : interfaces_)
    if (r.interface.uuid == interface.uuid && r.interface.major == interface.major) return false;
  interfaces_.push_back(Registered{interface, std::move(handler), max_stub_size});
  return true;
}

std::vector<rpc::SyntaxId> Server::interfaces() const {
  std::vector<rpc::SyntaxId> out;
  for (const auto& r : interfaces_)
    out.push_back(r.interface);
  return out;
}

const Server::Registered* Server::find_interface(const rpc::SyntaxId& requested) const {
  for (const auto& r : interfaces_)
    if (rpc::interface_matches(r.interface, requested)) return &r;
  return nullptr;
}

std::expected<std::uint16_t, ListenError> Server::listen_tcp(
    const std::vector<asio::ip::address>& addresses, std::uint16_t port) {
  auto listeners =
      listen_tcp_same_port(addresses, port, options_.listen_backlog, options_.listen_tries);
  if (!listeners) return std::unexpected(listeners.error());
  for (std::size_t i = 0; i < listeners->fds.size(); ++i) {
    int family = addresses[i].is_v4() ? AF_INET : AF_INET6;
    auto l = std::make_shared<detail::Listener>(*this, std::move(listeners->fds[i]), family,
                                                Transport::kTcp);
    if (l->error_) {
      return std::unexpected(
          ListenError{l->error_, format_endpoint(addresses[i], listeners->port)});
    }
    start_listener(std::move(l));
  }
  return listeners->port;
}

std::expected<std::uint16_t, std::error_code> Server::adopt_listener(int raw_fd,
                                                                     PeerPolicy policy) {
  Fd fd(raw_fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int type = 0, listening = 0;
  socklen_t tlen = sizeof type, llen = sizeof listening;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      ::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 ||
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &llen) != 0)
    return std::unexpected(std::error_code(errno, std::system_category()));
  if (type != SOCK_STREAM || !listening ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 && ss.ss_family != AF_UNIX))
    return std::unexpected(std::make_error_code(std::errc::invalid_argument));
  auto transport = ss.ss_family == AF_UNIX ? Transport::kUnix : Transport::kTcp;
  auto l = std::make_shared<detail::Listener>(*this, std::move(fd), ss.ss_family, transport);
  if (l->error_) return std::unexpected(l->error_);
  if (transport == Transport::kUnix) {
    l->policy_ = std::move(policy);
    // The bound path, for Info::local and the bind_ack's secondary address; "" when abstract or
    // unnamed.
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    if (len > offsetof(sockaddr_un, sun_path) && un->sun_path[0] != '\0')
      l->unix_path_.assign(un->sun_path,
                           strnlen(un->sun_path, len - offsetof(sockaddr_un, sun_path)));
  }
  std::uint16_t port = l->port_;
  start_listener(std::move(l));
  return port;
}

std::expected<void, ListenError> Server::listen_unix(const std::string& path, PeerPolicy policy) {
  auto fd = runtime::listen_unix(path, policy.socket, options_.listen_backlog);
  if (!fd) return std::unexpected(fd.error());
  auto l = std::make_shared<detail::Listener>(*this, std::move(*fd), AF_UNIX, Transport::kUnix);
  if (l->error_) {
    ::unlink(path.c_str());
    return std::unexpected(ListenError{l->error_, path});
  }
  l->policy_ = policy;
  l->unix_path_ = path;
  l->owns_path_ = true;
  start_listener(std::move(l));
  return {};
}

void Server::start_listener(std::shared_ptr<detail::Listener> listener) {
  if (stopped_) {
    listener->close();
    return;
  }
  listener->start();
  listeners_.push_back(std::move(listener));
}

void Server::on_connection_closed(std::function<void(std::uint64_t)> hook) {
  close_hooks_.push_back(std::move(hook));
}

std::uint32_t Server::next_assoc_group_id() {
  // Skip ids still in use after a wrap, so a new group is never one a bind could join.
  do {
    if (++next_assoc_group_ == 0) ++next_assoc_group_;
  } while (assoc_groups_.contains(next_assoc_group_));
  return next_assoc_group_;
}

void Server::join_assoc_group(std::uint32_t id) {
  if (id != 0) ++assoc_groups_[id];
}

void Server::leave_assoc_group(std::uint32_t id) {
  auto it = assoc_groups_.find(id);
  if (it != assoc_groups_.end() && --it->second == 0) assoc_groups_.erase(it);
}

void Server::accepted(detail::Listener& listener, int fd) {
  ++stats_.connections_accepted;
  detail::Connection::Info info;
  info.transport = listener.transport_;

  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
  info.peer = format_sockaddr(reinterpret_cast<sockaddr*>(&peer), plen);
  info.local = format_sockaddr(reinterpret_cast<sockaddr*>(&local), llen);
  if (info.transport == Transport::kTcp) {
    info.peer_key = peer_key(reinterpret_cast<sockaddr*>(&peer), plen);
    info.local_port = local_port(fd);
    if (local.ss_family == AF_INET) {
      std::array<std::uint8_t, 4> a;
      std::memcpy(a.data(), &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, 4);
      info.local_ipv4 = a;
    }
  } else {
    info.local = "unix:" + listener.unix_path_;
  }

  const bool is_local = info.transport == Transport::kUnix;
  // A Unix peer without credentials (not expected on Linux) is counted as uid -1.
  if (is_local) info.cred = peer_credentials(fd);
  const uid_t local_uid = info.cred ? info.cred->uid : static_cast<uid_t>(-1);
  std::uint64_t* refused_by = nullptr;
  if (is_local) {
    if (local_connections_ >= options_.max_local_connections) {
      refused_by = &stats_.rejected_local_total;
    } else if (local_uid != 0) {
      auto it = per_uid_local_.find(local_uid);
      if (it != per_uid_local_.end() && it->second >= options_.max_local_connections_per_uid)
        refused_by = &stats_.rejected_local_per_uid;
    }
  } else if (tcp_connections_ >= options_.max_connections) {
    refused_by = &stats_.rejected_tcp_total;
  } else if (auto it = per_peer_.find(info.peer_key);
             it != per_peer_.end() && it->second >= options_.max_connections_per_peer) {
    refused_by = &stats_.rejected_tcp_per_peer;
  }
  if (refused_by != nullptr) {
    ++stats_.connections_rejected;
    ++*refused_by;
    ::close(fd);
    return;
  }
  if (info.transport == Transport::kUnix) {
    info.may_register = info.cred && listener.policy_.may_register(*info.cred);
    if (info.cred) info.uid = info.cred->uid;
    if (info.cred)
      info.peer =
          "unix:pid=" + std::to_string(info.cred->pid) + ",uid=" + std::to_string(info.cred->uid);
  } else if (options_.loopback_registrants &&
             is_loopback(reinterpret_cast<sockaddr*>(&peer), plen)) {
    // Looked up once here rather than at each call (ept_map must not pay a netlink round trip),
    // and while the peer's socket surely exists (its connect() completed before our accept).
    // The peer's socket has the peer address as its local one.
    auto owner = socket_owners_.tcp_owner(reinterpret_cast<sockaddr*>(&peer), plen,
                                          reinterpret_cast<sockaddr*>(&local), llen);
    if (owner) {
      info.uid = *owner;
      info.may_register = options_.loopback_registrants->may_register(*owner);
    } else {
      spdlog::debug("rpc connection from {}: owner of the peer socket unknown: {}", info.peer,
                    owner.error().message());
    }
  }
  info.id = next_connection_id_++;

  rpc::ServerConfig config;
  config.interfaces = [this](const rpc::SyntaxId& s) { return find_interface(s) != nullptr; };
  config.max_frag = options_.max_frag;
  config.new_assoc_group_id = next_assoc_group_id();
  // A bind naming a group no live connection is bound in is refused (Windows).
  config.assoc_group_exists = [this](std::uint32_t id) { return assoc_groups_.contains(id); };
  config.reassembly.max_stub_size = options_.max_stub_size;
  config.reassembly.max_held_bytes = options_.max_reassembly_bytes_per_connection;
  config.reassembly.call_timeout = options_.call_timeout;
  config.stub_limit = [this](const rpc::SyntaxId& s) -> std::optional<std::size_t> {
    const auto* r = find_interface(s);
    return r != nullptr ? r->max_stub_size : std::nullopt;
  };
  config.secondary_address = info.transport == Transport::kTcp
                                 ? std::to_string(info.local_port)
                                 : std::filesystem::path(listener.unix_path_).filename().string();

  if (!info.peer_key.empty()) ++per_peer_[info.peer_key];
  if (is_local) ++per_uid_local_[local_uid];
  ++(is_local ? local_connections_ : tcp_connections_);
  ++stats_.connections_active;
  auto id = info.id;
  auto c = std::make_shared<detail::Connection>(*this, std::move(info), fd, std::move(config));
  connections_.emplace(id, c);
  c->start();
}

void Server::connection_closed(detail::Connection& c, const rpc::CloseInfo& close) {
  const auto& info = c.info();
  const CloseReason reason = close.reason;
  const std::error_code why = close.error;
  closed_counters_ += c.counters();
  if (reason == CloseReason::kCallTooLarge || reason == CloseReason::kConnectionBudget ||
      reason == CloseReason::kCallTimeout)
    log_budget_close(info.id, info.peer, reason, close.limit, close.held);
  ++stats_.closes[static_cast<std::size_t>(reason)];
  if (stats_.connections_active > 0) --stats_.connections_active;
  if (reason == CloseReason::kProtocol) {
    ++stats_.protocol_closes[why ? why.message() : std::string("closed by association")];
    spdlog::debug("rpc connection {} from {} closed: protocol: {}", info.id, info.peer,
                  why ? why.message() : std::string("-"));
  } else {
    spdlog::debug("rpc connection {} from {} closed: {}{}{}", info.id, info.peer, to_string(reason),
                  why ? ": " : "", why ? why.message() : std::string());
  }
  if (info.transport == Transport::kUnix) {
    if (local_connections_ > 0) --local_connections_;
    auto it = per_uid_local_.find(info.cred ? info.cred->uid : static_cast<uid_t>(-1));
    if (it != per_uid_local_.end() && --it->second == 0) per_uid_local_.erase(it);
  } else if (tcp_connections_ > 0) {
    --tcp_connections_;
  }
  if (!info.peer_key.empty()) {
    auto it = per_peer_.find(info.peer_key);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  }
  leave_assoc_group(c.assoc_group());
  auto id = info.id;
  auto keep = connections_.find(id);
  std::shared_ptr<detail::Connection> hold;
  if (keep != connections_.end()) {
    hold = std::move(keep->second);
    connections_.erase(keep);
  }
  for (auto& hook : close_hooks_)
    hook(id);
}

bool Server::watch(int fd, std::uint64_t id, std::uint32_t events, bool add) {
  if (!poller_) {
    errno = EBADF;
    return false;
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0) return false;
  if (!poller_armed_) arm_poller();
  return true;
}

void Server::unwatch(int fd) {
  if (poller_) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Server::arm_poller() {
  if (stopped_ || !poller_) return;
  poller_armed_ = true;
  // `this` is touched only on success: a Server destroyed with the wait pending gets
  // operation_aborted (the destructor closes the descriptor) and the handler returns at once.
  poller_->async_wait(asio::posix::descriptor_base::wait_read, [this](const asio::error_code& ec) {
    if (ec) return;
    poller_armed_ = false;
    on_poller_ready();
  });
}

void Server::on_poller_ready() {
  // Bounded per wakeup like accept: timers and listeners get their turn between batches; what
  // is left is reported again at once (level-triggered).
  std::array<epoll_event, 64> events;
  const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
  for (int i = 0; i < n; ++i) {
    const std::uint64_t id = events[i].data.u64;  // a copy: epoll_event is packed on x86-64
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;  // closed earlier in this batch
    auto c = it->second;                     // kept alive through its own close
    c->on_events(events[i].events);
  }
  arm_poller();
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& l : listeners_)
    l->close();
  listeners_.clear();
  std::vector<std::shared_ptr<detail::Connection>> all;
  all.reserve(connections_.size());
  for (auto& [id, c] : connections_)
    all.push_back(c);
  for (auto& c : all)
    c->close(CloseReason::kStopped);
  // No wait left behind: io_context::run() returns once the rest of its work is done.
  if (trim_timer_) trim_timer_->cancel();
  trim_pending_ = false;
  if (poller_) {
    asio::error_code ec;
    poller_->cancel(ec);
    poller_armed_ = false;
  }
}

ServerStats Server::stats() const {
  ServerStats st = stats_;
  rpc::ConnectionCounters sum = closed_counters_;
  for (const auto& [id, c] : connections_) {
    sum += c->counters();
    if (c->write_blocked()) ++st.write_blocked;
  }
  st.bytes_in = sum.bytes_in;
  st.pdus_in = sum.pdus_in;
  st.pdus_out = sum.pdus_out;
  st.calls = sum.calls;
  st.faults = sum.faults;
  return st;
}

void Server::reassembly_changed(detail::Connection& c, std::size_t before, std::size_t after) {
  const std::string& key = c.info().peer_key;
  stats_.reassembly_bytes = stats_.reassembly_bytes + after - before;
  stats_.reassembly_bytes_peak = std::max(stats_.reassembly_bytes_peak, stats_.reassembly_bytes);
  std::size_t peer_held = 0;
  if (!key.empty()) {
    auto& held = per_peer_held_[key];
    held = held + after - before;
    peer_held = held;
    if (held == 0) per_peer_held_.erase(key);
  }
  if (after < before) {
    released_since_trim_ += before - after;
    if (released_since_trim_ >= kTrimAfterReleasedBytes) schedule_trim();
    return;
  }
  // Grew: the peer's budget first (it singles out the peer), then the server's. Each close
  // releases the victim's bytes (re-entering here with after < before), so the loops end.
  const std::size_t peer_budget = options_.max_reassembly_bytes_per_peer;
  while (!key.empty() && peer_budget != 0 && peer_held > peer_budget) {
    close_biggest(key, CloseReason::kPeerBudget, peer_budget, peer_held);
    auto it = per_peer_held_.find(key);
    peer_held = it == per_peer_held_.end() ? 0 : it->second;
  }
  const std::size_t budget = options_.max_reassembly_bytes;
  while (budget != 0 && stats_.reassembly_bytes > budget)
    close_biggest({}, CloseReason::kServerBudget, budget, stats_.reassembly_bytes);
}

void Server::close_biggest(const std::string& peer_key, CloseReason reason, std::size_t budget,
                           std::size_t held) {
  // A scan, only when a budget is exceeded; the victim holds at least the average, so a scan
  // frees a large share of what is held.
  std::shared_ptr<detail::Connection> victim;
  for (const auto& [id, c] : connections_) {
    if (c->closed() || (!peer_key.empty() && c->info().peer_key != peer_key)) continue;
    if (!victim || c->reassembly_held() > victim->reassembly_held()) victim = c;
  }
  if (!victim || victim->reassembly_held() == 0) {
    // Cannot happen (the totals are sums over open connections); never loop on it.
    stats_.reassembly_bytes = 0;
    per_peer_held_.clear();
    return;
  }
  log_budget_close(victim->info().id, victim->info().peer, reason, budget, held);
  victim->close(reason);
}

void Server::log_budget_close(std::uint64_t id, const std::string& peer, CloseReason reason,
                              std::size_t budget, std::size_t held) {
  const auto now = this->now();
  auto& log = budget_log_[static_cast<std::size_t>(reason)];
  if (now - log.window >= kBudgetLogWindow) {
    log.window = now;
    log.lines = 0;
  }
  if (log.lines >= kBudgetLogBurst) {
    ++log.suppressed;
    return;
  }
  ++log.lines;
  std::string more;
  if (log.suppressed > 0) {
    more = " (" + std::to_string(log.suppressed) + " similar close(s) not logged before)";
    log.suppressed = 0;
  }
  if (reason == CloseReason::kCallTimeout) {
    spdlog::warn("rpc connection {} from {} closed: {} {} ms exceeded, {} bytes held{}", id, peer,
                 to_string(reason), budget, held, more);
  } else {
    spdlog::warn("rpc connection {} from {} closed: {} {} bytes exceeded, {} bytes held{}", id,
                 peer, to_string(reason), budget, held, more);
  }
}

void Server::schedule_trim() {
  if (trim_pending_ || stopped_) return;
  trim_pending_ = true;
  if (!trim_timer_) trim_timer_ = std::make_unique<asio::steady_timer>(io_);
  // Never inline: the buffers being released may still be in use up the stack (a call's stub
  // during its handler), and at most once per kTrimInterval whatever the release rate.
  trim_timer_->expires_at(std::max(Clock::now(), last_trim_ + kTrimInterval));
  trim_timer_->async_wait([this](const asio::error_code& ec) {
    if (ec) return;  // cancelled: the Server may be gone
    trim_pending_ = false;
    last_trim_ = Clock::now();
    released_since_trim_ = 0;
    ++stats_.malloc_trims;
    ::malloc_trim(0);
  });
}

}  // namespace rpcgate::runtime
