#include "runtime/server.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "epm/mgmt.h"
#include "ndr/ndr.h"
#include "rpc/pdu.h"
#include "rpc/status.h"
#include "runtime/sync_client.h"
#include "runtime/testing/test_client.h"
#include "runtime/testing/test_fixture.h"
#include "runtime/testing/test_interface.h"

namespace rpcgate::runtime {
namespace {

using namespace std::chrono_literals;
using testing::RawConn;
using testing::ServerThread;
using Clock = std::chrono::steady_clock;

const asio::ip::address kLoopback = asio::ip::make_address("127.0.0.1");

// Every Server of these tests reads this clock: deadlines move only when a test advances it
// (simulated milliseconds, no waiting, no timer race under sanitizers).
common::ManualClock& test_clock() {
  static common::ManualClock clock;
  return clock;
}

// Moves the test clock and waits until `st`'s io thread has acted on every deadline that came
// (the Server posts its check when the clock moves; this post runs after it).
void advance(ServerThread& st, std::chrono::milliseconds d) {
  test_clock().advance(d);
  st.on_io([] {});
}

// Waits (real time, bounded) until `done()` holds on the io thread; false if it never did.
template <typename F>
bool wait_until(ServerThread& st, F done, std::chrono::milliseconds limit = 3s) {
  for (auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
    if (st.on_io(done)) return true;
    std::this_thread::yield();
  }
  return false;
}

// Waits until the server has read `n` more bytes than `from` (all connections together).
bool wait_for_bytes(ServerThread& st, std::uint64_t from, std::uint64_t n) {
  return wait_until(st, [&] { return st.server().stats().bytes_in >= from + n; });
}

// The server's connection count once it equals `n`, or whatever it is after `limit`.
std::size_t wait_for_connections(ServerThread& st, std::size_t n,
                                 std::chrono::milliseconds limit = 2s) {
  wait_until(
      st, [&] { return st.server().connection_count() == n; }, limit);
  return st.on_io([&] { return st.server().connection_count(); });
}

ServerOptions short_timeouts() {
  ServerOptions o;
  o.clock = &test_clock();
  o.idle_timeout_before_bind = 400ms;
  o.idle_timeout_after_bind = 3s;
  o.pdu_timeout = 250ms;
  o.write_timeout = 500ms;
  return o;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start(short_timeouts()); }

  void start(ServerOptions options) {
    st_ = std::make_unique<ServerThread>(options);
    testing::add_test_interface(st_->server());
    // EPM syntax so the golden Impacket bind is accepted (echo handler).
    st_->server().add_interface(rpc::kEpmSyntax,
                                [](IncomingCall& c, Responder r) { r.reply(c.stub); });
    st_->server().on_connection_closed([this](std::uint64_t) { ++closed_; });
    auto port = st_->server().listen_tcp({kLoopback}, 0);
    ASSERT_TRUE(port) << port.error().message();
    port_ = *port;
    st_->start();
  }

  SyncClient client() {
    auto c = SyncClient::connect_tcp(kLoopback, port_, 2s);
    EXPECT_TRUE(c);
    EXPECT_TRUE(c->bind({testing::test_syntax()}));
    return std::move(*c);
  }

  ServerStats stats() {
    return st_->on_io([this] { return st_->server().stats(); });
  }

  // An echo call on a fresh client, returning its latency.
  std::chrono::milliseconds good_call() {
    auto t0 = Clock::now();
    auto c = client();
    std::vector<std::uint8_t> payload{1, 2, 3, 4, 5};
    auto r = c.call(0, 0, payload);
    EXPECT_TRUE(r) << r.error().message();
    if (r) {
      EXPECT_EQ(r->stub, payload);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  }

  std::unique_ptr<ServerThread> st_;
  std::uint16_t port_ = 0;
  std::atomic<int> closed_{0};
};

TEST_F(ServerTest, ImpacketBindAckArrivesInOneRead) {
  auto c = RawConn::tcp(port_);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(testing::impacket_epm_bind()));
  auto bytes = c->recv_once();  // Impacket: one recv(8192)
  ASSERT_GE(bytes.size(), 16u);
  auto pdu = rpc::decode_pdu(bytes);
  ASSERT_TRUE(pdu) << pdu.error().message();
  const auto* ack = std::get_if<rpc::BindAck>(&pdu->body);
  ASSERT_NE(ack, nullptr);
  EXPECT_EQ(pdu->header.call_id, 1u);
  EXPECT_EQ(ack->max_recv_frag, 4280);
  EXPECT_EQ(ack->secondary_address(), std::to_string(port_));
  ASSERT_EQ(ack->results.size(), 1u);
  EXPECT_EQ(ack->results[0].result, rpc::status::kResultAcceptance);
  EXPECT_EQ(ack->results[0].transfer_syntax, rpc::kNdr20Syntax);
}

TEST_F(ServerTest, EchoFragmentedRequestAndLargeResponse) {
  auto c = client();
  std::vector<std::uint8_t> big(14000);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 7);
  ASSERT_GT(big.size(), 2 * (c.max_xmit_frag() - 24u));  // three request fragments
  auto r = c.call(0, 0, big);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stub, big);

  std::vector<std::uint8_t> want{0x00, 0x90, 0x01, 0x00};  // 100 KiB, little-endian u32
  auto blob = c.call(0, 2, want);
  ASSERT_TRUE(blob) << blob.error().message();
  ASSERT_EQ(blob->stub.size(), 100u * 1024);
  for (std::size_t i = 0; i < blob->stub.size(); ++i)
    ASSERT_EQ(blob->stub[i], static_cast<std::uint8_t>(i)) << i;
  EXPECT_GT(stats().pdus_out, 20u);
}

TEST_F(ServerTest, UnknownOpnumAndThrowingHandlerFaultButKeepTheConnection) {
  auto c = client();
  auto r = c.call(0, 7, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::kCallFailed);
  EXPECT_EQ(c.last_fault(), rpc::status::kNcaSOpRngError);
  r = c.call(0, 3, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(c.last_fault(), kFaultUnspec);
  std::vector<std::uint8_t> p{9};
  r = c.call(0, 0, p);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->stub, p);
  EXPECT_EQ(stats().faults, 2u);
}

TEST_F(ServerTest, UnknownInterfaceIsProviderRejection) {
  auto c = RawConn::tcp(port_);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(testing::bind_pdu("01234567-89ab-cdef-0123-456789abcdef", 1, 0)));
  auto bytes = c->read_pdu();
  ASSERT_TRUE(bytes);
  auto pdu = rpc::decode_pdu(*bytes);
  ASSERT_TRUE(pdu);
  const auto* ack = std::get_if<rpc::BindAck>(&pdu->body);
  ASSERT_NE(ack, nullptr);
  ASSERT_EQ(ack->results.size(), 1u);
  EXPECT_EQ(ack->results[0].result, rpc::status::kResultProviderRejection);
  EXPECT_EQ(ack->results[0].reason, rpc::status::kReasonAbstractSyntaxNotSupported);
}

TEST_F(ServerTest, SecondBindIsNakedThenClosed) {
  auto c = RawConn::tcp(port_);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(testing::impacket_epm_bind()));
  ASSERT_TRUE(c->read_pdu());
  ASSERT_TRUE(c->send(testing::impacket_epm_bind()));
  auto nak = c->read_pdu();
  ASSERT_TRUE(nak);
  auto pdu = rpc::decode_pdu(*nak);
  ASSERT_TRUE(pdu);
  EXPECT_TRUE(std::holds_alternative<rpc::BindNak>(pdu->body));
  EXPECT_TRUE(c->wait_closed(2s));
}

TEST_F(ServerTest, PipelinedRequestsAnswerInOrderOfCompletion) {
  auto c = RawConn::tcp(port_);
  ASSERT_TRUE(c);
  auto input = testing::bind_pdu("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01", 1, 0);
  auto request = [](std::uint32_t call_id, std::uint16_t opnum, std::vector<std::uint8_t> stub) {
    rpc::Request q;
    q.opnum = opnum;
    q.stub = std::move(stub);
    return *rpc::encode_pdu(rpc::make_pdu(q, call_id));
  };
  auto slow = request(2, 1, {200, 0, 0, 0});  // replies after 200 ms
  auto fast = request(3, 0, {1, 2, 3, 4});
  input.insert(input.end(), slow.begin(), slow.end());
  input.insert(input.end(), fast.begin(), fast.end());
  ASSERT_TRUE(c->send(input));  // one write: bind + two requests
  ASSERT_TRUE(c->read_pdu());   // bind_ack
  auto first = c->read_pdu();
  auto second = c->read_pdu();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(rpc::decode_pdu(*first)->header.call_id, 3u);
  EXPECT_EQ(rpc::decode_pdu(*second)->header.call_id, 2u);
}

// ---- hostile clients ----------------------------------------------------------------------

TEST_F(ServerTest, GarbageIsClosedAndOthersUnaffected) {
  auto bad = RawConn::tcp(port_);
  ASSERT_TRUE(bad);
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(
      bad->send(std::span(reinterpret_cast<const std::uint8_t*>(http.data()), http.size())));
  EXPECT_TRUE(bad->wait_closed(2s));
  EXPECT_LT(good_call(), 1000ms);
  EXPECT_GE(stats().closes[static_cast<int>(CloseReason::kProtocol)], 1u);
}

TEST_F(ServerTest, HalfPduStallIsClosedByPduTimeout) {
  auto stall = RawConn::tcp(port_);
  ASSERT_TRUE(stall);
  const auto before = stats().bytes_in;
  auto bind = testing::impacket_epm_bind();
  ASSERT_TRUE(stall->send(std::span(bind).first(30)));
  ASSERT_TRUE(wait_for_bytes(*st_, before, 30));
  EXPECT_LT(good_call(), 1000ms);
  advance(*st_, 249ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kPduTimeout)], 0u);
  advance(*st_, 1ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kPduTimeout)], 1u);
  EXPECT_TRUE(stall->wait_closed(1s));
}

TEST_F(ServerTest, HugeFragLengthIsRefusedBeforeAndAfterBind) {
  // Before bind: frag_length 65535 exceeds the 8 KiB pre-bind cap -> closed without a reply.
  auto a = RawConn::tcp(port_);
  ASSERT_TRUE(a);
  std::vector<std::uint8_t> hdr{0x05, 0x00, 0x0b, 0x03, 0x10, 0x00, 0x00, 0x00,
                                0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
  ASSERT_TRUE(a->send(hdr));
  EXPECT_TRUE(a->wait_closed(2s));
  // After bind: a request of 65535 > the server's 5840 -> the framer refuses the header before
  // buffering any body byte; fault nca_s_proto_error on p_cont_id 0 (Windows' answer,
  // association.h) and the connection closes.
  auto b = RawConn::tcp(port_);
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->send(testing::impacket_epm_bind()));
  ASSERT_TRUE(b->read_pdu());
  std::vector<std::uint8_t> req{0x05, 0x00, 0x00, 0x03, 0x10, 0x00, 0x00, 0x00,
                                0xff, 0xff, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
  ASSERT_TRUE(b->send(req));
  auto fault = b->read_pdu();
  ASSERT_TRUE(fault);
  auto f = rpc::decode_pdu(*fault);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header.call_id, 2u);
  ASSERT_TRUE(std::holds_alternative<rpc::Fault>(f->body));
  EXPECT_EQ(std::get<rpc::Fault>(f->body).status, rpc::status::kNcaSProtoError);
  EXPECT_TRUE(b->wait_closed(2s));
  EXPECT_LT(good_call(), 1000ms);
}

TEST_F(ServerTest, ThousandIdleConnectionsDoNotBlockOthersAndTimeOut) {
  std::vector<RawConn> idle;
  for (int i = 0; i < 1000; ++i) {
    auto c = RawConn::tcp(port_);
    ASSERT_TRUE(c) << i;
    idle.push_back(std::move(*c));
  }
  ASSERT_EQ(wait_for_connections(*st_, 1000), 1000u);
  EXPECT_LT(good_call(), 1000ms);
  // Idle before bind: closed 400 ms (simulated) after they were accepted, not before.
  advance(*st_, 399ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kIdleTimeout)], 0u);
  advance(*st_, 1ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kIdleTimeout)], 1000u);
  EXPECT_TRUE(idle.front().wait_closed(1s));
  EXPECT_TRUE(idle.back().wait_closed(1s));
}

TEST_F(ServerTest, ClientThatNeverReadsIsClosedByWriteTimeout) {
  auto c = RawConn::tcp(port_);
  ASSERT_TRUE(c);
  int small = 4096;
  ::setsockopt(c->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  auto input = testing::bind_pdu("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01", 1, 0);
  for (std::uint32_t id = 2; id < 18; ++id) {
    rpc::Request q;
    q.opnum = 2;
    q.stub = {0x00, 0x00, 0x40, 0x00};  // 4 MiB each
    auto b = *rpc::encode_pdu(rpc::make_pdu(q, id));
    input.insert(input.end(), b.begin(), b.end());
  }
  ASSERT_TRUE(c->send(input));
  // The server writes until the socket buffers are full, then waits for the socket.
  ASSERT_TRUE(wait_until(*st_, [&] { return st_->server().stats().write_blocked == 1; }));
  EXPECT_LT(good_call(), 1000ms);
  advance(*st_, 499ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kWriteTimeout)], 0u);
  advance(*st_, 1ms);
  EXPECT_EQ(stats().closes[static_cast<int>(CloseReason::kWriteTimeout)], 1u);
  EXPECT_EQ(stats().write_blocked, 0u);
  EXPECT_LT(good_call(), 1000ms);
}

TEST_F(ServerTest, HooksRunOnceOnEofAndOnStop) {
  {
    auto c = RawConn::tcp(port_);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send(testing::impacket_epm_bind()));
    ASSERT_TRUE(c->read_pdu());
  }  // closed: EOF
  EXPECT_TRUE(wait_until(*st_, [this] { return closed_ >= 1; }));
  EXPECT_EQ(closed_, 1);
  auto a = RawConn::tcp(port_);
  auto b = RawConn::tcp(port_);
  ASSERT_TRUE(a && b);
  wait_for_connections(*st_, 2);
  st_->stop();
  EXPECT_EQ(closed_, 3);
  EXPECT_TRUE(a->wait_closed(1s));
  EXPECT_EQ(st_->server().stats().closes[static_cast<int>(CloseReason::kStopped)], 2u);
}

// inq_if_ids response (epm/mgmt.h): referent, max_count, count, count referents, the ids, status.
std::vector<rpc::SyntaxId> decode_if_ids(std::span<const std::uint8_t> stub) {
  ndr::Decoder d(stub, common::Endian::kLittle);
  std::vector<rpc::SyntaxId> out;
  EXPECT_NE(d.u32().value_or(0), 0u);  // *if_id_vector
  const auto max_count = d.u32().value_or(0);
  const auto count = d.u32().value_or(0);
  EXPECT_EQ(max_count, count);
  if (count > 64) return {};
  for (std::uint32_t i = 0; i < count; ++i)
    EXPECT_NE(d.u32().value_or(0), 0u);
  for (std::uint32_t i = 0; i < count; ++i) {
    rpc::SyntaxId id;
    id.uuid = d.uuid().value_or(common::Uuid{});
    id.major = d.u16().value_or(0);
    id.minor = d.u16().value_or(0);
    out.push_back(id);
  }
  EXPECT_EQ(d.u32().value_or(1), 0u);  // status
  EXPECT_TRUE(d.expect_end());
  return out;
}

std::vector<std::uint32_t> decode_stats(std::span<const std::uint8_t> stub) {
  ndr::Decoder d(stub, common::Endian::kLittle);
  const auto n = d.u32().value_or(0);
  EXPECT_EQ(d.u32().value_or(0), n);  // conformance
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < n && i < 4; ++i)
    out.push_back(d.u32().value_or(0));
  EXPECT_EQ(d.u32().value_or(1), 0u);
  return out;
}

TEST_F(ServerTest, MgmtIsExportedAndListsTheRegisteredInterfaces) {
  auto c = SyncClient::connect_tcp(kLoopback, port_, 2s);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->bind({rpc::kMgmtSyntax}));
  auto r = c->call(0, epm::kOpnumMgmtInqIfIds, {});
  ASSERT_TRUE(r) << r.error().message();
  const std::vector<rpc::SyntaxId> want{testing::test_syntax(), rpc::kEpmSyntax, rpc::kMgmtSyntax};
  EXPECT_EQ(decode_if_ids(r->stub), want);

  const std::vector<std::uint8_t> four{4, 0, 0, 0};
  auto s = c->call(0, epm::kOpnumMgmtInqStats, four);
  ASSERT_TRUE(s) << s.error().message();
  const auto counters = decode_stats(s->stub);
  ASSERT_EQ(counters.size(), 4u);
  EXPECT_EQ(counters[0], 2u);  // calls in: inq_if_ids and this one
  EXPECT_EQ(counters[1], 0u);  // calls out
  EXPECT_EQ(counters[2], 3u);  // bind, two requests
  EXPECT_EQ(counters[3], 2u);  // bind_ack, one response

  auto l = c->call(0, epm::kOpnumMgmtIsServerListening, {});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->stub, (std::vector<std::uint8_t>{0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(ServerMgmt, CanBeTurnedOff) {
  ServerOptions o = short_timeouts();
  o.export_mgmt = false;
  ServerThread st(o);
  EXPECT_TRUE(st.server().interfaces().empty());
  EXPECT_TRUE(st.server().add_interface(rpc::kMgmtSyntax,
                                        [](IncomingCall&, Responder r) { r.fault(kFaultUnspec); }));
  ServerThread on(short_timeouts());
  EXPECT_EQ(on.server().interfaces(), std::vector<rpc::SyntaxId>{rpc::kMgmtSyntax});
  EXPECT_FALSE(on.server().add_interface(rpc::kMgmtSyntax, [](IncomingCall&, Responder) {}));
}

TEST(ServerLimits, PerPeerLimitRejectsExtraConnections) {
  ServerOptions o = short_timeouts();
  o.max_connections_per_peer = 5;
  ServerThread st(o);
  testing::add_test_interface(st.server());
  auto port = st.server().listen_tcp({kLoopback}, 0);
  ASSERT_TRUE(port);
  st.start();
  std::vector<RawConn> conns;
  for (int i = 0; i < 5; ++i)
    conns.push_back(*RawConn::tcp(*port));
  wait_for_connections(st, 5);
  auto extra = RawConn::tcp(*port);
  ASSERT_TRUE(extra);
  EXPECT_TRUE(extra->wait_closed(2s));
  EXPECT_EQ(st.on_io([&] { return st.server().stats().connections_rejected; }), 1u);
}

// Input is paused while max_outstanding_calls are running. A client that resets meanwhile must
// be closed at once: the epoll set is level-triggered, so its hang-up would otherwise be
// reported on every wakeup (a busy loop) until the slow call ended.
TEST(ServerPause, PausedConnectionThatResetsIsClosedAtOnce) {
  ServerOptions o = short_timeouts();
  o.max_outstanding_calls = 1;
  ServerThread st(o);
  testing::add_test_interface(st.server());
  auto port = st.server().listen_tcp({kLoopback}, 0);
  ASSERT_TRUE(port);
  st.start();
  {
    auto c = RawConn::tcp(*port);
    ASSERT_TRUE(c);
    auto input = testing::bind_pdu("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01", 1, 0);
    for (std::uint32_t id : {2u, 3u}) {
      rpc::Request q;
      q.opnum = 1;                  // SleepEcho
      q.stub = {0xb8, 0x0b, 0, 0};  // 3000 ms
      auto b = *rpc::encode_pdu(rpc::make_pdu(q, id));
      input.insert(input.end(), b.begin(), b.end());
    }
    ASSERT_TRUE(c->send(input));
    ASSERT_TRUE(c->read_pdu());  // bind_ack; call 2 is sleeping, call 3 waits: input paused
    ASSERT_TRUE(wait_until(st, [&] {
      const auto stats = st.server().stats();
      return stats.calls == 1 && stats.bytes_in == input.size();
    }));
    ASSERT_EQ(wait_for_connections(st, 1), 1u);
    linger reset{1, 0};
    ASSERT_EQ(::setsockopt(c->fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  }  // closed with RST
  const auto start = Clock::now();
  EXPECT_EQ(wait_for_connections(st, 0), 0u);
  EXPECT_LT(Clock::now() - start, 1s);  // not when the 3 s call ends
}

// A TCP flood that fills max_connections must not lock out local (Unix socket) clients: they
// have their own budget, max_local_connections.
TEST(ServerLimits, LocalConnectionsHaveTheirOwnBudget) {
  ServerOptions o = short_timeouts();
  o.max_connections = 3;
  o.max_local_connections = 2;
  ServerThread st(o);
  testing::add_test_interface(st.server());
  auto port = st.server().listen_tcp({kLoopback}, 0);
  ASSERT_TRUE(port);
  const std::string path = "/tmp/rpcgate-server-test-" + std::to_string(::getpid()) + ".sock";
  ASSERT_TRUE(st.server().listen_unix(path));
  st.start();
  std::vector<RawConn> conns;
  for (int i = 0; i < 3; ++i)
    conns.push_back(*RawConn::tcp(*port));
  ASSERT_EQ(wait_for_connections(st, 3), 3u);
  auto tcp_extra = RawConn::tcp(*port);
  ASSERT_TRUE(tcp_extra);
  EXPECT_TRUE(tcp_extra->wait_closed(2s));  // TCP is full...
  for (int i = 0; i < 2; ++i)
    conns.push_back(*RawConn::unix_socket(path));
  EXPECT_EQ(wait_for_connections(st, 5), 5u);  // ...local clients still get in,
  auto local_extra = RawConn::unix_socket(path);
  ASSERT_TRUE(local_extra);
  EXPECT_TRUE(local_extra->wait_closed(2s));  // up to their own limit.
  EXPECT_EQ(st.on_io([&] { return st.server().stats().connections_rejected; }), 2u);
  EXPECT_EQ(st.on_io([&] { return st.server().stats().rejected_tcp_total; }), 1u);
  EXPECT_EQ(st.on_io([&] { return st.server().stats().rejected_local_total; }), 1u);
  ::unlink(path.c_str());
}

// One uid cannot take every local slot: a non-root uid holds at most
// max_local_connections_per_uid; root is exempt.
TEST(ServerLimits, LocalConnectionsPerUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "another uid needs root";
  ServerOptions o = short_timeouts();
  o.idle_timeout_before_bind = 10s;
  o.max_local_connections = 10;
  o.max_local_connections_per_uid = 2;
  ServerThread st(o);
  const std::string path = "/tmp/rpcgate-server-uid-test-" + std::to_string(::getpid()) + ".sock";
  ASSERT_TRUE(st.server().listen_unix(path));
  st.start();
  int done[2];
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  if (child == 0) {  // only system calls between fork and _exit (the parent has threads)
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(1);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.c_str(), path.size());
    for (int i = 0; i < 4; ++i) {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) ::_exit(2);
    }
    char b;
    (void)!::read(done[0], &b, 1);
    ::_exit(0);
  }
  EXPECT_EQ(wait_for_connections(st, 2), 2u);
  auto refused = [&] {
    return st.on_io([&] { return st.server().stats().rejected_local_per_uid; });
  };
  EXPECT_TRUE(wait_until(st, [&] { return st.server().stats().rejected_local_per_uid >= 2; }));
  EXPECT_EQ(refused(), 2u);
  std::vector<RawConn> root;
  for (int i = 0; i < 3; ++i)
    root.push_back(*RawConn::unix_socket(path));
  EXPECT_EQ(wait_for_connections(st, 5), 5u);  // root is not limited per uid
  (void)!::write(done[1], "x", 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(done[0]);
  ::close(done[1]);
  ::unlink(path.c_str());
}

// ---- reassembly budgets (issue 10 item 1) -----------------------------------------------------

// One request fragment on context 0 (EPM after impacket_epm_bind), `stub_size` bytes.
std::vector<std::uint8_t> fragment(std::uint32_t call_id, std::uint8_t flags,
                                   std::size_t stub_size) {
  rpc::Request q;
  q.opnum = 3;
  q.stub.assign(stub_size, 0x5a);
  return *rpc::encode_pdu(rpc::make_pdu(std::move(q), call_id, flags));
}
constexpr std::uint8_t kFirst = rpc::pfc::kFirstFrag;
constexpr std::uint8_t kLast = rpc::pfc::kLastFrag;

// A budget test server: EPM (an echo handler) with `epm_cap` as its stub cap.
struct BudgetServer {
  explicit BudgetServer(ServerOptions o, std::optional<std::size_t> epm_cap = std::nullopt)
      : st(o) {
    st.server().add_interface(
        rpc::kEpmSyntax, [](IncomingCall& c, Responder r) { r.reply(c.stub); }, epm_cap);
    auto p = st.server().listen_tcp({kLoopback}, 0);
    EXPECT_TRUE(p);
    port = p.value_or(0);
    st.start();
  }
  // A connection bound to EPM (bind_ack read).
  RawConn bound() {
    auto c = RawConn::tcp(port);
    EXPECT_TRUE(c);
    EXPECT_TRUE(c->send(testing::impacket_epm_bind()));
    EXPECT_TRUE(c->read_pdu());
    return std::move(*c);
  }
  ServerStats stats() {
    return st.on_io([this] { return st.server().stats(); });
  }
  std::uint64_t closes(CloseReason r) { return stats().closes[static_cast<std::size_t>(r)]; }
  ServerThread st;
  std::uint16_t port = 0;
};

// The fault a refused call gets: status 5 (access denied, as Samba), the call did not run.
void expect_access_denied_fault(RawConn& c, std::uint32_t call_id) {
  auto bytes = c.read_pdu();
  ASSERT_TRUE(bytes);
  auto pdu = rpc::decode_pdu(*bytes);
  ASSERT_TRUE(pdu);
  const auto* f = std::get_if<rpc::Fault>(&pdu->body);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->status, rpc::status::kRpcSAccessDenied);
  EXPECT_EQ(pdu->header.call_id, call_id);
  EXPECT_TRUE(pdu->header.pfc_flags & rpc::pfc::kDidNotExecute);
}

// Reads one call's response fragments; the stub bytes in all.
std::size_t read_response_stub(RawConn& c) {
  std::size_t total = 0;
  for (;;) {
    auto bytes = c.read_pdu();
    if (!bytes) return total;
    auto pdu = rpc::decode_pdu(*bytes);
    if (!pdu || !std::holds_alternative<rpc::Response>(pdu->body)) return total;
    total += std::get<rpc::Response>(pdu->body).stub.size();
    if (pdu->header.pfc_flags & kLast) return total;
  }
}

// The server reassembles one call per connection at a time (Windows' rule, rpc/association.h),
// so the budgets below are reached by calls growing fragment by fragment (the held buffer grows
// to max(needed, twice the old capacity), never past the call's cap), across connections.
TEST(ServerBudgets, CallOverItsInterfaceCapIsRefusedFromItsFirstFragment) {
  BudgetServer b(short_timeouts(), /*epm_cap=*/8000);
  {  // exactly the cap, in two fragments: served
    auto c = b.bound();
    auto in = fragment(2, kFirst, 5000);
    auto last = fragment(2, kLast, 3000);
    in.insert(in.end(), last.begin(), last.end());
    ASSERT_TRUE(c.send(in));
    EXPECT_EQ(read_response_stub(c), 8000u);
  }
  {  // one byte over, on the second fragment
    auto c = b.bound();
    auto in = fragment(3, kFirst, 5000);
    auto middle = fragment(3, 0, 3001);
    in.insert(in.end(), middle.begin(), middle.end());
    ASSERT_TRUE(c.send(in));
    expect_access_denied_fault(c, 3);
    EXPECT_TRUE(c.wait_closed(2s));
  }
  EXPECT_EQ(b.closes(CloseReason::kCallTooLarge), 1u);
  EXPECT_EQ(b.stats().reassembly_bytes, 0u);
}

TEST(ServerBudgets, ACapBelowOneFragmentIsRaisedToIt) {
  // MGMT's cap is 8 bytes; Windows answers any call that fits one fragment (5840 - 24 = 5816
  // bytes of stub; Samba's raw_protocol test_neg_xmit_* send that much to MGMT).
  BudgetServer b(short_timeouts(), /*epm_cap=*/100);
  auto c = b.bound();
  ASSERT_TRUE(c.send(fragment(2, kFirst | kLast, 5816)));
  EXPECT_EQ(read_response_stub(c), 5816u);
  auto in = fragment(3, kFirst, 5000);
  auto last = fragment(3, kLast, 817);
  in.insert(in.end(), last.begin(), last.end());
  ASSERT_TRUE(c.send(in));
  expect_access_denied_fault(c, 3);
  EXPECT_TRUE(c.wait_closed(2s));
  EXPECT_EQ(b.closes(CloseReason::kCallTooLarge), 1u);
}

TEST(ServerBudgets, OverThePerConnectionBudgetThatConnectionIsClosed) {
  ServerOptions o = short_timeouts();
  o.max_reassembly_bytes_per_connection = 10'000;
  BudgetServer b(o);
  auto c = b.bound();
  ASSERT_TRUE(c.send(fragment(2, kFirst, 5000)));
  ASSERT_TRUE(c.send(fragment(2, 0, 5000)));  // 10 000: at the budget, not over
  auto other = b.bound();                     // another connection has its own budget
  ASSERT_TRUE(other.send(fragment(2, kFirst, 4000)));
  wait_until(b.st, [&] { return b.st.server().stats().reassembly_bytes >= 14'000; });
  EXPECT_EQ(b.stats().reassembly_bytes, 14'000u);
  ASSERT_TRUE(c.send(fragment(2, 0, 1)));  // one byte over
  expect_access_denied_fault(c, 2);
  EXPECT_TRUE(c.wait_closed(2s));
  EXPECT_EQ(b.closes(CloseReason::kConnectionBudget), 1u);
  // The other connection is untouched and completes its call.
  ASSERT_TRUE(other.send(fragment(2, kLast, 8)));
  EXPECT_EQ(read_response_stub(other), 4008u);
}

TEST(ServerBudgets, OverThePerPeerBudgetThePeersBiggestHolderIsClosed) {
  ServerOptions o = short_timeouts();
  o.max_reassembly_bytes_per_connection = 16'000;
  o.max_reassembly_bytes_per_peer = 20'000;
  BudgetServer b(o);
  auto big = b.bound();
  auto small = b.bound();
  ASSERT_TRUE(big.send(fragment(2, kFirst, 4000)));
  ASSERT_TRUE(big.send(fragment(2, 0, 4000)));         // 8 000
  ASSERT_TRUE(big.send(fragment(2, 0, 4000)));         // 12 000 needed: grows to 16 000
  ASSERT_TRUE(big.send(fragment(2, 0, 4000)));         // 16 000
  ASSERT_TRUE(small.send(fragment(2, kFirst, 4000)));  // 4 000: 20 000, at the budget
  wait_until(b.st, [&] { return b.st.server().stats().reassembly_bytes >= 20'000; });
  EXPECT_EQ(b.stats().reassembly_bytes, 20'000u);
  EXPECT_EQ(b.closes(CloseReason::kPeerBudget), 0u);
  ASSERT_TRUE(small.send(fragment(2, 0, 4000)));  // 8 000: 24 000, the biggest (16 000) goes
  EXPECT_TRUE(big.wait_closed(2s));
  EXPECT_EQ(b.closes(CloseReason::kPeerBudget), 1u);
  ASSERT_TRUE(small.send(fragment(2, kLast, 8)));  // the newcomer that tipped it is served
  EXPECT_EQ(read_response_stub(small), 8008u);
  EXPECT_EQ(b.stats().reassembly_bytes, 0u);
}

TEST(ServerBudgets, OverTheServerBudgetTheBiggestHolderIsClosed) {
  ServerOptions o = short_timeouts();
  o.max_reassembly_bytes_per_peer = 0;  // none: only the server-wide budget applies
  o.max_reassembly_bytes = 10'000;
  BudgetServer b(o);
  auto big = b.bound();
  auto small = b.bound();
  ASSERT_TRUE(big.send(fragment(2, kFirst, 4000)));
  ASSERT_TRUE(big.send(fragment(2, 0, 4000)));  // 8 000
  wait_until(b.st, [&] { return b.st.server().stats().reassembly_bytes >= 8'000; });
  ASSERT_TRUE(small.send(fragment(2, kFirst, 2000)));  // 10 000: at the budget
  ASSERT_TRUE(small.send(fragment(2, 0, 100)));        // grows to 4 000: `big` goes, not small
  EXPECT_TRUE(big.wait_closed(2s));
  EXPECT_EQ(b.closes(CloseReason::kServerBudget), 1u);
  EXPECT_FALSE(small.wait_closed(100ms));
  EXPECT_EQ(b.stats().reassembly_bytes, 4'000u);
}

TEST(ServerBudgets, CallDeadlineClosesATrickleOfWholeFragments) {
  ServerOptions o = short_timeouts();
  o.call_timeout = 300ms;
  o.pdu_timeout = 5s;  // every fragment is a whole PDU anyway
  BudgetServer b(o);
  auto trickle = b.bound();
  auto quick = b.bound();
  auto send = [&](RawConn& c, const std::vector<std::uint8_t>& bytes) {
    const auto before = b.stats().bytes_in;
    ASSERT_TRUE(c.send(bytes));
    ASSERT_TRUE(wait_for_bytes(b.st, before, bytes.size()));
  };
  send(trickle, fragment(2, kFirst, 100));
  for (int i = 0; i < 2; ++i) {  // a middle fragment every 100 ms (simulated), never LAST
    advance(b.st, 100ms);
    send(trickle, fragment(2, 0, 100));
  }
  advance(b.st, 99ms);  // 299 ms after the FIRST fragment
  EXPECT_EQ(b.closes(CloseReason::kCallTimeout), 0u);
  advance(b.st, 1ms);
  EXPECT_EQ(b.closes(CloseReason::kCallTimeout), 1u);
  EXPECT_TRUE(trickle.wait_closed(1s));
  // A call completed within the deadline is served, and its connection stays.
  send(quick, fragment(2, kFirst, 100));
  advance(b.st, 299ms);
  send(quick, fragment(2, kLast, 100));
  ASSERT_TRUE(quick.read_pdu());
  advance(b.st, 400ms);
  EXPECT_FALSE(quick.wait_closed(50ms));
  EXPECT_EQ(b.closes(CloseReason::kCallTimeout), 1u);
}

TEST(ServerBudgets, ReleasedReassemblyMemoryIsTrimmed) {
  BudgetServer b(short_timeouts());
  {
    std::vector<RawConn> conns;
    for (int i = 0; i < 4; ++i) {
      conns.push_back(b.bound());
      for (int n = 0; n < 128; ++n)  // one call of 128 x 4000 bytes: ~500 KB each
        ASSERT_TRUE(conns.back().send(fragment(2, n == 0 ? kFirst : 0, 4000)));
    }
    wait_until(b.st, [&] { return b.st.server().stats().reassembly_bytes >= 2'000'000; });
    EXPECT_GE(b.stats().reassembly_bytes, 2'000'000u);
    EXPECT_EQ(b.stats().malloc_trims, 0u);
  }  // all closed
  // malloc_trim runs on a real timer (at most once per kTrimInterval, 1 s): waited for, bounded.
  wait_until(b.st, [&] {
    const auto s = b.st.server().stats();
    return s.malloc_trims > 0 && s.reassembly_bytes == 0;
  });
  EXPECT_EQ(b.stats().reassembly_bytes, 0u);
  EXPECT_GE(b.stats().malloc_trims, 1u);
  EXPECT_LE(b.stats().malloc_trims, 2u);  // rate-limited, not once per connection
  EXPECT_GE(b.stats().reassembly_bytes_peak, 2'000'000u);
}

}  // namespace
}  // namespace rpcgate::runtime
