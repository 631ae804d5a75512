#include "rpc/framer.h"

#include <gtest/gtest.h>

#include "rpc/testing/test_vectors.h"

namespace rpcgate::rpc {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<testing::NamedVector> all_vectors() {
  auto v = testing::golden_vectors();
  auto imp = testing::load_vectors(RPCGATE_SOURCE_DIR "/src/rpc/testdata/impacket_vectors.txt");
  v.insert(v.end(), imp.begin(), imp.end());
  return v;
}

// Feeds `chunks` in order; returns the frames, or the first error.
std::expected<std::vector<Bytes>, std::error_code> run(Framer& framer,
                                                       const std::vector<Bytes>& chunks) {
  std::vector<Bytes> frames;
  for (const auto& chunk : chunks) {
    std::span<const std::uint8_t> data(chunk);
    do {
      auto n = framer.feed(data);
      if (!n) return std::unexpected(n.error());
      data = data.subspan(*n);
      if (framer.ready()) {
        frames.emplace_back(framer.frame().begin(), framer.frame().end());
        framer.pop();
      }
    } while (!data.empty());
  }
  return frames;
}

std::vector<Bytes> split_every(const Bytes& stream, std::size_t chunk) {
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < stream.size(); i += chunk)
    out.emplace_back(stream.begin() + static_cast<long>(i),
                     stream.begin() + static_cast<long>(std::min(stream.size(), i + chunk)));
  return out;
}

TEST(Framer, SplitAtEveryByteAndSingleBytes) {
  for (const auto& v : all_vectors()) {
    SCOPED_TRACE(v.name);
    const auto expected = decode_pdu(v.bytes);
    ASSERT_TRUE(expected);
    for (std::size_t cut = 0; cut <= v.bytes.size(); ++cut) {
      Framer framer;
      auto frames = run(framer, {Bytes(v.bytes.begin(), v.bytes.begin() + static_cast<long>(cut)),
                                 Bytes(v.bytes.begin() + static_cast<long>(cut), v.bytes.end())});
      ASSERT_TRUE(frames) << cut;
      ASSERT_EQ(frames->size(), 1u) << cut;
      EXPECT_EQ(decode_pdu((*frames)[0]).value(), *expected);
      EXPECT_EQ(framer.buffered(), 0u);
    }
    Framer framer;
    auto frames = run(framer, split_every(v.bytes, 1));
    ASSERT_TRUE(frames);
    ASSERT_EQ(frames->size(), 1u);
    EXPECT_EQ((*frames)[0], v.bytes);
  }
}

TEST(Framer, ManyPdusAtOnceAndInOddChunks) {
  Bytes stream;
  std::vector<Bytes> expected;
  for (const auto& v : all_vectors()) {
    stream.insert(stream.end(), v.bytes.begin(), v.bytes.end());
    expected.push_back(v.bytes);
  }
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                            std::size_t{16}, std::size_t{17}, std::size_t{100}, stream.size()}) {
    Framer framer;
    auto frames = run(framer, split_every(stream, chunk));
    ASSERT_TRUE(frames) << chunk;
    EXPECT_EQ(*frames, expected) << chunk;
  }
}

TEST(Framer, FeedStopsAtPduEndUntilPop) {
  const auto bind = testing::impacket_bind();
  Bytes two = bind;
  two.insert(two.end(), bind.begin(), bind.end());
  Framer framer;
  EXPECT_EQ(framer.feed(two).value(), bind.size());
  ASSERT_TRUE(framer.ready());
  EXPECT_EQ(framer.header().ptype, static_cast<std::uint8_t>(PType::kBind));
  EXPECT_EQ(framer.feed(std::span(two).subspan(bind.size())).value(), 0u);  // still ready
  framer.pop();
  EXPECT_EQ(framer.feed(std::span(two).subspan(bind.size())).value(), bind.size());
  EXPECT_TRUE(framer.ready());
  EXPECT_EQ(framer.feed({}).value(), 0u);
}

TEST(Framer, NeedMoreIsNotAnError) {
  const auto bind = testing::impacket_bind();
  Framer framer;
  EXPECT_EQ(framer.feed(std::span(bind).first(10)).value(), 10u);
  EXPECT_FALSE(framer.ready());
  EXPECT_EQ(framer.buffered(), 10u);
  EXPECT_EQ(framer.feed(std::span(bind).subspan(10, 30)).value(), 30u);
  EXPECT_FALSE(framer.ready());
  EXPECT_EQ(framer.buffered(), 40u);
}

TEST(Framer, ErrorsAreStickyAndNeverResync) {
  auto bad = testing::impacket_bind();
  bad[8] = 15;  // frag_length 15
  Framer framer;
  Bytes stream = bad;
  const auto good = testing::impacket_bind();
  stream.insert(stream.end(), good.begin(), good.end());
  auto n = framer.feed(stream);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error(), Errc::kFragTooShort);
  EXPECT_TRUE(framer.failed());
  EXPECT_EQ(framer.feed(good).error(), Errc::kFramerFailed);
  EXPECT_EQ(framer.feed({}).error(), Errc::kFramerFailed);
}

TEST(Framer, HeaderErrorsBeforeBodyArrives) {
  struct Case {
    std::size_t offset;
    std::uint8_t value;
    Errc error;
  };
  for (const Case& c : {Case{0, 4, Errc::kBadVersion}, Case{1, 7, Errc::kBadVersion},
                        Case{2, 20, Errc::kUnsupportedPtype}, Case{2, 1, Errc::kUnsupportedPtype},
                        Case{4, 0x01, Errc::kBadDrep}, Case{8, 0, Errc::kFragTooShort},
                        Case{10, 0xff, Errc::kAuthLengthInconsistent}}) {
    auto b = testing::impacket_bind();
    b[c.offset] = c.value;
    Framer framer;
    auto n = framer.feed(std::span(b).first(16));  // header only
    ASSERT_FALSE(n) << c.offset;
    EXPECT_EQ(n.error(), c.error) << c.offset;
  }
}

TEST(Framer, FragTooLongAgainstConfiguredAndNegotiatedMaximum) {
  Bytes header = common::from_hex("05 00 00 03 10 00 00 00 89 13 00 00 01 00 00 00").value();
  Framer framer;  // default: 65535, so 5001 is fine
  EXPECT_EQ(framer.feed(header).value(), 16u);
  Framer negotiated(4280);
  auto n = negotiated.feed(header);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error(), Errc::kFragTooLong);
  Framer later;
  later.set_max_frag_length(4280);
  EXPECT_EQ(later.max_frag_length(), 4280u);
  EXPECT_EQ(later.feed(header).error(), Errc::kFragTooLong);
  // Exactly the maximum is accepted.
  Framer exact(5001);
  EXPECT_EQ(exact.feed(header).value(), 16u);
}

TEST(Framer, HeaderOnlyPdu) {
  const Bytes shutdown =
      common::from_hex("05 00 11 03 10 00 00 00 10 00 00 00 09 00 00 00").value();
  Framer framer;
  auto frames = run(framer, split_every(shutdown, 1));
  ASSERT_TRUE(frames);
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_TRUE(std::holds_alternative<Shutdown>(decode_pdu((*frames)[0]).value().body));
}

// whole_pdu() mixed with feed(), as a connection uses them: the same PDUs come out for every
// split of the input into two reads, and an over-long PDU is still refused (by feed()).
TEST(Framer, WholePduFastPathGivesTheSamePdusAsFeedForEverySplit) {
  Bytes input = testing::impacket_bind();
  for (const Bytes& more : {testing::ept_map_request(), testing::op_rng_fault()})
    input.insert(input.end(), more.begin(), more.end());
  auto frames_of = [](Framer& framer, std::span<const std::uint8_t> data, std::vector<Bytes>& out,
                      std::size_t& copied) {
    while (!data.empty()) {
      if (auto whole = framer.whole_pdu(data)) {
        EXPECT_EQ(whole->data(), data.data());  // in place
        EXPECT_EQ(framer.header().frag_length, whole->size());
        out.emplace_back(whole->begin(), whole->end());
        data = data.subspan(whole->size());
        continue;
      }
      auto n = framer.feed(data);
      ASSERT_TRUE(n);
      copied += *n;
      data = data.subspan(*n);
      if (framer.ready()) {
        out.emplace_back(framer.frame().begin(), framer.frame().end());
        framer.pop();
      }
    }
  };
  std::vector<Bytes> expected;
  {
    Framer framer;
    std::size_t copied = 0;
    frames_of(framer, input, expected, copied);
    EXPECT_EQ(copied, 0u);  // whole PDUs in one read are never copied
  }
  ASSERT_EQ(expected.size(), 3u);
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    Framer framer;
    std::vector<Bytes> got;
    std::size_t copied = 0;
    frames_of(framer, std::span<const std::uint8_t>(input).first(cut), got, copied);
    frames_of(framer, std::span<const std::uint8_t>(input).subspan(cut), got, copied);
    EXPECT_EQ(got, expected) << "cut at " << cut;
  }
  Framer small(64);
  EXPECT_FALSE(small.whole_pdu(input).has_value());  // the bind is 72 bytes: feed() refuses it
  EXPECT_EQ(small.feed(input).error(), Errc::kFragTooLong);
}

}  // namespace
}  // namespace rpcgate::rpc
