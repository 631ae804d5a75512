#include "rpc/connection.h"

#include <algorithm>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "rpc/status.h"
#include "rpc/testing/test_vectors.h"

// The engine on simulated time: every deadline below is crossed by moving `now`, in
// milliseconds, never by sleeping.
namespace rpcgate::rpc {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

const TimePoint kT0{std::chrono::seconds(1000)};

ConnectionOptions short_options() {
  ConnectionOptions o;
  o.idle_before_bind = 400ms;
  o.idle_after_bind = 3000ms;
  o.pdu = 250ms;
  o.write = 500ms;
  o.response = 700ms;
  o.max_outstanding_calls = 2;
  o.max_output_bytes = 64 * 1024;
  return o;
}

ServerConfig epm_server() {
  ServerConfig c;
  c.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
  c.secondary_address = "135";
  c.new_assoc_group_id = 0x4242;
  c.reassembly.call_timeout = 300ms;
  return c;
}

Bytes request(std::uint32_t call_id, std::uint16_t opnum, Bytes stub,
              std::uint8_t flags = pfc::kFirstFrag | pfc::kLastFrag) {
  Request q;
  q.opnum = opnum;
  q.stub = std::move(stub);
  return *encode_pdu(make_pdu(std::move(q), call_id, flags));
}

// Records what the engine reports; answers calls when told to.
struct Recorder : ConnectionHandler {
  Connection* engine = nullptr;
  bool answer_at_once = true;
  std::vector<CallRef> calls;
  std::vector<std::uint32_t> bound;
  std::vector<BindResult> bind_results;
  struct Answer {
    std::uint32_t call_id;
    Bytes stub;
    std::optional<std::uint32_t> fault;
  };
  std::vector<Answer> responses;
  struct Seen {
    Direction direction;
    bool allowed;
    std::uint8_t ptype;
    std::optional<RequestTarget> answers;
  };
  std::vector<Seen> verdicts;

  void on_call(ServerCall& call) override {
    calls.push_back(call_ref(call));
    if (answer_at_once) engine->respond(call_ref(call), call.call.stub, kT0);
  }
  void on_bound(std::uint32_t group) override { bound.push_back(group); }
  void on_bind_result(const BindResult& r) override { bind_results.push_back(r); }
  void on_response(const ResponseView& r) override {
    responses.push_back(Answer{r.call_id, Bytes(r.stub.begin(), r.stub.end()), r.fault});
  }
  void on_verdict(const VerdictView& v) override {
    verdicts.push_back(Seen{v.direction, v.verdict->allowed(),
                            v.header != nullptr ? v.header->ptype : std::uint8_t{0xff},
                            v.answers != nullptr ? std::optional(*v.answers) : std::nullopt});
  }
};

// All queued output, marked sent.
Bytes drain(Connection& c, TimePoint now) {
  Bytes all;
  for (auto out = c.next_output(); !out.bytes.empty(); out = c.next_output()) {
    all.insert(all.end(), out.bytes.begin(), out.bytes.end());
    c.output_sent(out.bytes.size(), now);
  }
  return all;
}

struct ServerFixture : ::testing::Test {
  Recorder rec;
  Connection server{ServerRole{epm_server()}, short_options(), rec, kT0};
  ServerFixture() { rec.engine = &server; }
  void bind(TimePoint at = kT0) {
    server.feed(Direction::kClientToServer, testing::impacket_bind(), at);
    ASSERT_EQ(rec.bound.size(), 1u);
    drain(server, at);
  }
};

TEST_F(ServerFixture, AnswersTheImpacketBindAsGoldenBytesAndJoinsTheGroup) {
  server.feed(Direction::kClientToServer, testing::impacket_bind(), kT0);
  const Bytes out = drain(server, kT0);
  auto ack = decode_pdu(out);
  ASSERT_TRUE(ack);
  const auto* body = std::get_if<BindAck>(&ack->body);
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->assoc_group_id, 0x4242u);
  EXPECT_EQ(rec.bound, std::vector<std::uint32_t>{0x4242});
  EXPECT_EQ(server.counters().pdus_in, 1u);
  EXPECT_EQ(server.counters().pdus_out, 1u);
}

TEST_F(ServerFixture, SameAnswersWhateverTheInputSplit) {
  Bytes input = testing::impacket_bind();
  const Bytes req = request(2, 1, Bytes(100, 7));
  input.insert(input.end(), req.begin(), req.end());
  Recorder whole_rec;
  Connection whole(ServerRole{epm_server()}, short_options(), whole_rec, kT0);
  whole_rec.engine = &whole;
  whole.feed(Direction::kClientToServer, input, kT0);
  const Bytes expected = drain(whole, kT0);
  ASSERT_EQ(whole_rec.calls.size(), 1u);
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    Recorder r;
    Connection c(ServerRole{epm_server()}, short_options(), r, kT0);
    r.engine = &c;
    const std::span<const std::uint8_t> all(input);
    c.feed(Direction::kClientToServer, all.first(cut), kT0);
    c.feed(Direction::kClientToServer, all.subspan(cut), kT0);
    EXPECT_EQ(drain(c, kT0), expected) << "cut at " << cut;
    EXPECT_EQ(r.calls.size(), 1u);
  }
}

TEST_F(ServerFixture, IdleBeforeBindClosesAtItsDeadlineNotBefore) {
  ASSERT_EQ(server.next_expiry(), kT0 + 400ms);
  server.on_expiry(kT0 + 399ms);
  EXPECT_EQ(server.state(), Connection::State::kOpen);
  server.on_expiry(kT0 + 400ms);
  EXPECT_EQ(server.state(), Connection::State::kClosed);
  EXPECT_EQ(server.close_info().reason, CloseReason::kIdleTimeout);
}

TEST_F(ServerFixture, IdleAfterBindIsTheLongerOneAndCountsFromTheLastInput) {
  bind(kT0 + 100ms);
  EXPECT_EQ(server.next_expiry(), kT0 + 100ms + 3000ms);
  server.on_expiry(kT0 + 3099ms);
  EXPECT_EQ(server.state(), Connection::State::kOpen);
  server.on_expiry(kT0 + 3100ms);
  EXPECT_EQ(server.close_info().reason, CloseReason::kIdleTimeout);
}

TEST_F(ServerFixture, HalfAPduIsClosedByThePduDeadline) {
  const Bytes bind_pdu = testing::impacket_bind();
  server.feed(Direction::kClientToServer, std::span(bind_pdu).first(10), kT0);
  EXPECT_EQ(server.next_expiry(), kT0 + 250ms);  // earlier than the idle deadline
  server.on_expiry(kT0 + 250ms);
  EXPECT_EQ(server.close_info().reason, CloseReason::kPduTimeout);
}

TEST_F(ServerFixture, OutputThatDoesNotDrainIsClosedByTheWriteDeadline) {
  server.feed(Direction::kClientToServer, testing::impacket_bind(), kT0);
  ASSERT_GT(server.output_bytes(), 0u);
  server.output_sent(1, kT0 + 400ms);  // progress moves the deadline
  server.on_expiry(kT0 + 899ms);
  EXPECT_EQ(server.state(), Connection::State::kOpen);
  server.on_expiry(kT0 + 900ms);
  EXPECT_EQ(server.close_info().reason, CloseReason::kWriteTimeout);
}

TEST_F(ServerFixture, AFragmentedCallMustCompleteWithinTheCallDeadline) {
  bind();
  server.feed(Direction::kClientToServer, request(2, 1, Bytes(64, 1), pfc::kFirstFrag), kT0 + 10ms);
  EXPECT_EQ(server.next_expiry(), kT0 + 310ms);
  server.feed(Direction::kClientToServer, request(2, 1, Bytes(64, 1), 0), kT0 + 200ms);
  server.on_expiry(kT0 + 310ms);
  EXPECT_EQ(server.close_info().reason, CloseReason::kCallTimeout);
  EXPECT_EQ(server.close_info().limit, 300u);
  EXPECT_GT(server.close_info().held, 0u);
  EXPECT_EQ(server.reassembly_held(), 0u);  // freed at the close
}

TEST_F(ServerFixture, MaxOutstandingCallsPausesInputUntilAnAnswer) {
  rec.answer_at_once = false;
  bind();
  Bytes three;
  for (std::uint32_t id = 2; id <= 4; ++id) {
    const Bytes r = request(id, 1, Bytes(8, static_cast<std::uint8_t>(id)));
    three.insert(three.end(), r.begin(), r.end());
  }
  server.feed(Direction::kClientToServer, three, kT0);
  EXPECT_EQ(rec.calls.size(), 2u);
  EXPECT_FALSE(server.wants_input());
  EXPECT_EQ(server.next_expiry(), std::nullopt);  // owed an answer: no idle deadline
  server.respond(rec.calls[0], Bytes(8, 0), kT0);
  EXPECT_EQ(rec.calls.size(), 3u);  // the held request was processed
  EXPECT_FALSE(server.wants_input());
  server.respond(rec.calls[1], Bytes(8, 0), kT0);
  server.respond_fault(rec.calls[2], status::kNcaSOpRngError, kT0);
  EXPECT_TRUE(server.wants_input());
  // Answers leave in order of completion; the fault carries DID_NOT_EXECUTE.
  const Bytes out = drain(server, kT0);
  Framer f(kMaxFragLength);
  std::vector<Pdu> pdus;
  for (std::span<const std::uint8_t> in(out); !in.empty();) {
    auto n = f.feed(in);
    ASSERT_TRUE(n);
    in = in.subspan(*n);
    if (f.ready()) {
      pdus.push_back(*decode_pdu(f.frame()));
      f.pop();
    }
  }
  ASSERT_EQ(pdus.size(), 3u);
  EXPECT_EQ(pdus[0].header.call_id, 2u);
  EXPECT_EQ(pdus[2].header.ptype, static_cast<std::uint8_t>(PType::kFault));
  EXPECT_TRUE(pdus[2].header.pfc_flags & pfc::kDidNotExecute);
}

TEST_F(ServerFixture, DescriptorsTravelWithTheFirstByteOfTheirResponse) {
  rec.answer_at_once = false;
  bind();
  server.feed(Direction::kClientToServer, request(2, 1, Bytes(8, 1)), kT0);
  server.feed(Direction::kClientToServer, request(3, 1, Bytes(8, 1)), kT0);
  ASSERT_EQ(rec.calls.size(), 2u);
  server.respond(rec.calls[0], Bytes(16, 0), kT0);
  const std::size_t first = server.output_bytes();
  server.respond(rec.calls[1], Bytes(16, 0), kT0, {7, 8});
  auto out = server.next_output();
  EXPECT_EQ(out.bytes.size(), first);  // stops before the attachment
  EXPECT_TRUE(out.fds.empty());
  server.output_sent(out.bytes.size(), kT0);
  out = server.next_output();
  EXPECT_EQ(std::vector<int>(out.fds.begin(), out.fds.end()), (std::vector<int>{7, 8}));
  server.output_sent(1, kT0);
  EXPECT_TRUE(server.next_output().fds.empty());  // handed over with that byte
  // Attached to output that is never sent: given back to be closed.
  server.feed(Direction::kClientToServer, request(4, 1, Bytes(8, 1)), kT0);
  server.respond(rec.calls[2], Bytes(16, 0), kT0, {9});
  server.close(CloseReason::kEof, kT0);
  EXPECT_EQ(server.take_unsent_fds(), std::vector<int>{9});
}

TEST_F(ServerFixture, AProtocolCloseFlushesItsAnswerThenEnds) {
  bind();
  server.feed(Direction::kClientToServer, testing::impacket_bind(), kT0);  // second bind
  EXPECT_EQ(server.state(), Connection::State::kClosing);
  EXPECT_FALSE(server.done());
  EXPECT_FALSE(server.wants_input());
  const Bytes out = drain(server, kT0);
  EXPECT_EQ(out[2], static_cast<std::uint8_t>(PType::kBindNak));
  EXPECT_TRUE(server.done());
  EXPECT_EQ(server.close_info().reason, CloseReason::kProtocol);
  EXPECT_EQ(server.close_info().error, Errc::kBindAlreadyDone);
}

// ---- client and observer, against the server ----------------------------------------------

struct Trio : ::testing::Test {
  Recorder server_rec, client_rec, observer_rec;
  Connection server{ServerRole{epm_server()}, short_options(), server_rec, kT0};
  Connection client{ClientRole{}, short_options(), client_rec, kT0};
  Connection observer{ObserverRole{}, short_options(), observer_rec, kT0};
  Trio() { server_rec.engine = &server; }

  // Moves everything queued both ways, through the observer, until nothing moves.
  void pump(TimePoint now = kT0) {
    for (bool moved = true; moved;) {
      moved = false;
      for (auto [from, to, d] : {std::tuple{&client, &server, Direction::kClientToServer},
                                 std::tuple{&server, &client, Direction::kServerToClient}}) {
        const Bytes b = drain(*from, now);
        if (b.empty()) continue;
        moved = true;
        observer.feed(d, b, now);
        to->feed(d, b, now);
      }
    }
  }
};

TEST_F(Trio, ClientBindsTwoContextsCallsAndReassemblesALargeResponse) {
  const std::vector<SyntaxId> ifs{kEpmSyntax, kMgmtSyntax};
  ASSERT_TRUE(client.bind(ifs, kT0));
  pump();
  ASSERT_EQ(client_rec.bind_results.size(), 1u);
  EXPECT_TRUE(client_rec.bind_results[0].accepted);
  EXPECT_TRUE(client.bound());
  EXPECT_EQ(client.assoc_group_id(), 0x4242u);
  EXPECT_EQ(client.secondary_address(), "135");
  Bytes big(20000);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 31);
  const std::uint32_t id = client.call(1, 0, big, kT0);  // echoed by the server: 4+ fragments
  ASSERT_NE(id, 0u);
  pump();
  ASSERT_EQ(client_rec.responses.size(), 1u);
  EXPECT_EQ(client_rec.responses[0].call_id, id);
  EXPECT_EQ(client_rec.responses[0].stub, big);
  ASSERT_EQ(server_rec.calls.size(), 1u);
  // The observer let every PDU through and tied each response fragment to the request.
  std::size_t answered = 0;
  for (const auto& v : observer_rec.verdicts) {
    EXPECT_TRUE(v.allowed);
    if (v.ptype == static_cast<std::uint8_t>(PType::kResponse)) {
      ASSERT_TRUE(v.answers.has_value());
      EXPECT_EQ(v.answers->call_id, id);
      EXPECT_EQ(v.answers->abstract_syntax, kMgmtSyntax);
      EXPECT_EQ(v.answers->opnum, 0u);
      ++answered;
    }
  }
  EXPECT_GE(answered, 4u);
  EXPECT_EQ(observer.state(), Connection::State::kOpen);
}

TEST_F(Trio, ARejectedContextIsReportedAndNotBound) {
  const SyntaxId unknown{common::Uuid{}, 9, 0};
  ASSERT_TRUE(client.bind(std::vector<SyntaxId>{unknown}, kT0));
  pump();
  ASSERT_EQ(client_rec.bind_results.size(), 1u);
  EXPECT_FALSE(client_rec.bind_results[0].accepted);
  EXPECT_EQ(client_rec.bind_results[0].result, 2u);  // provider_rejection
  EXPECT_FALSE(client.bound());
}

TEST_F(Trio, AClientCallWithoutAnswerEndsAtTheResponseDeadline) {
  server_rec.answer_at_once = false;
  ASSERT_TRUE(client.bind(std::vector<SyntaxId>{kEpmSyntax}, kT0));
  pump();
  ASSERT_NE(client.call(0, 3, Bytes(8, 0), kT0 + 100ms), 0u);
  pump(kT0 + 100ms);
  EXPECT_EQ(client.next_expiry(), kT0 + 800ms);
  client.on_expiry(kT0 + 799ms);
  EXPECT_EQ(client.state(), Connection::State::kOpen);
  client.on_expiry(kT0 + 800ms);
  EXPECT_EQ(client.close_info().reason, CloseReason::kCallTimeout);
}

TEST_F(Trio, ClientRefusesAResponseToACallItNeverMade) {
  ASSERT_TRUE(client.bind(std::vector<SyntaxId>{kEpmSyntax}, kT0));
  pump();
  Response r;
  r.stub = Bytes(8, 0);
  client.feed(Direction::kServerToClient, *encode_pdu(make_pdu(std::move(r), 77)), kT0);
  EXPECT_EQ(client.state(), Connection::State::kClosed);
  EXPECT_EQ(client.close_info().error, Errc::kUnsolicitedResponse);
}

TEST_F(Trio, ObserverDropsARequestOnAContextTheServerNeverAcceptedAndCloses) {
  ASSERT_TRUE(client.bind(std::vector<SyntaxId>{kEpmSyntax}, kT0));
  pump();
  observer.feed(Direction::kClientToServer, request(5, 3, Bytes(8, 0)), kT0);  // p_cont_id 0: ok
  Request q;
  q.p_cont_id = 3;
  q.stub = Bytes(8, 0);
  observer.feed(Direction::kClientToServer, *encode_pdu(make_pdu(std::move(q), 6)), kT0);
  ASSERT_GE(observer_rec.verdicts.size(), 2u);
  EXPECT_FALSE(observer_rec.verdicts.back().allowed);
  EXPECT_EQ(observer.state(), Connection::State::kClosed);
  EXPECT_EQ(observer.close_info().error, Errc::kContextNotAccepted);
}

// The splice path: an observer that sees only the heads of requests and responses (and every
// other PDU whole) decides exactly as one that sees everything.
TEST_F(Trio, HeadsAloneGiveTheSameVerdictsAsWholePdus) {
  Recorder heads_rec;
  Connection heads{ObserverRole{}, short_options(), heads_rec, kT0};
  auto feed_heads = [&](Direction d, const Bytes& bytes) {
    Framer f(kMaxFragLength);
    for (std::span<const std::uint8_t> in(bytes); !in.empty();) {
      auto n = f.feed(in);
      ASSERT_TRUE(n);
      in = in.subspan(*n);
      if (!f.ready()) continue;
      const auto frame = f.frame();
      const auto size = Connection::head_size(frame.first<kCommonHeaderSize>());
      if (size != 0) {
        heads.feed_head(d, frame.first(size), kT0);
      } else {
        heads.feed(d, frame, kT0);
      }
      f.pop();
    }
  };
  ASSERT_TRUE(client.bind(std::vector<SyntaxId>{kEpmSyntax, kMgmtSyntax}, kT0));
  const Bytes big(20000, 7);
  for (int round = 0; round < 3; ++round) {
    for (bool moved = true; moved;) {
      moved = false;
      for (auto [from, to, d] : {std::tuple{&client, &server, Direction::kClientToServer},
                                 std::tuple{&server, &client, Direction::kServerToClient}}) {
        const Bytes b = drain(*from, kT0);
        if (b.empty()) continue;
        moved = true;
        observer.feed(d, b, kT0);
        feed_heads(d, b);
        to->feed(d, b, kT0);
      }
    }
    if (round < 2) {
      ASSERT_NE(client.call(1, 0, big, kT0), 0u);  // fragments both ways
    }
  }
  ASSERT_EQ(heads_rec.verdicts.size(), observer_rec.verdicts.size());
  ASSERT_GT(heads_rec.verdicts.size(), 10u);
  for (std::size_t i = 0; i < heads_rec.verdicts.size(); ++i) {
    EXPECT_EQ(heads_rec.verdicts[i].allowed, observer_rec.verdicts[i].allowed) << i;
    EXPECT_EQ(heads_rec.verdicts[i].ptype, observer_rec.verdicts[i].ptype) << i;
    EXPECT_EQ(heads_rec.verdicts[i].answers.has_value(),
              observer_rec.verdicts[i].answers.has_value())
        << i;
  }
  // A request on a context never accepted is dropped from its head alone.
  Request q;
  q.p_cont_id = 5;
  q.stub = Bytes(100, 0);
  const Bytes bad = *encode_pdu(make_pdu(std::move(q), 9));
  heads.feed_head(Direction::kClientToServer, std::span(bad).first(24), kT0);
  EXPECT_FALSE(heads_rec.verdicts.back().allowed);
  EXPECT_EQ(heads.close_info().error, Errc::kContextNotAccepted);
}

TEST(ObserverHeads, OnlyRequestAndResponseHeadsOfTheRightSize) {
  Recorder rec;
  Connection o{ObserverRole{}, short_options(), rec, kT0};
  const Bytes b = testing::impacket_bind();
  EXPECT_EQ(Connection::head_size(std::span(b).first<kCommonHeaderSize>()), 0u);
  Request q;
  q.stub = Bytes(40, 1);
  const Bytes r = *encode_pdu(make_pdu(std::move(q), 2));
  EXPECT_EQ(Connection::head_size(std::span(r).first<kCommonHeaderSize>()), 24u);
  o.feed_head(Direction::kClientToServer, std::span(r).first(20), kT0);  // short
  EXPECT_EQ(o.state(), Connection::State::kClosed);
  EXPECT_EQ(o.close_info().reason, CloseReason::kProtocol);
}

}  // namespace
}  // namespace rpcgate::rpc
