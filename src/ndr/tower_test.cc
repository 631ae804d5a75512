#include "ndr/tower.h"

#include <string>

#include <gtest/gtest.h>

#include "common/testing/testdata.h"
#include "ndr/testing/test_util.h"

namespace rpcgate::ndr {
namespace {

using testing::err;
using testing::hex;

// docs/wire-vectors.md ept-map-request (map_tower of Impacket's ept_map: SAMR v1.0,
// ncacn_ip_tcp, port 0, 0.0.0.0) and ept-map-response (port 49664, 127.0.0.1).
constexpr std::string_view kSamrRequestTower =
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 00 00 01 00 09 04 00 00 00 00 00";
constexpr std::string_view kSamrResponseTower =
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 c2 00 01 00 09 04 00 7f 00 00 01";
// docs/wire-vectors.md tower-wine-tcp (Wine dlls/rpcrt4/tests/rpc.c tower_data_tcp_ip1).
constexpr std::string_view kMicrosoftTower =
    "05 00 13 00 0d 00 db f1 a4 47 ca 67 10 b3 1f 00 dd 01 06 62 da 00 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 00 87 01 00 09 04 00 0a 00 00 01";

SyntaxId samr() {
  return {*Uuid::parse("12345778-1234-abcd-ef00-0123456789ac"), 1, 0};
}

TEST(Tower, GoldenRequestTowerDecodesAndReencodes) {
  const auto bytes = hex(kSamrRequestTower);
  ASSERT_EQ(bytes.size(), 75u);
  auto tower = decode_tower(bytes);
  ASSERT_TRUE(tower) << tower.error().message();
  ASSERT_EQ(tower->floors.size(), 5u);
  EXPECT_EQ(encode_tower(*tower), bytes);
  auto view = view_tower(*tower);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->interface, samr());
  EXPECT_EQ(view->transfer_syntax, ndr20_syntax());
  EXPECT_EQ(view->rpc_protocol, protocol_id::kNcacn);
  EXPECT_EQ(view->rpc_protocol_minor, 0);
  EXPECT_FALSE(view->has_unknown_protocol);
  EXPECT_EQ(format_binding(tower_to_binding(*tower).value()), "ncacn_ip_tcp:0.0.0.0[0]");
}

TEST(Tower, GoldenResponseAndMicrosoftTowers) {
  const auto response = hex(kSamrResponseTower);
  auto t = decode_tower(response);
  ASSERT_TRUE(t);
  EXPECT_EQ(format_binding(tower_to_binding(*t).value()), "ncacn_ip_tcp:127.0.0.1[49664]");
  EXPECT_EQ(encode_tower(make_tower(view_tower(*t).value())), response);

  const auto ms = hex(kMicrosoftTower);
  auto m = decode_tower(ms);
  ASSERT_TRUE(m);
  auto view = view_tower(*m).value();
  EXPECT_EQ(view.interface.uuid, *Uuid::parse("a4f1db00-ca47-1067-b31f-00dd010662da"));
  EXPECT_EQ(view.interface.major, 0);
  EXPECT_EQ(view.interface.minor, 0);
  EXPECT_EQ(format_binding(tower_to_binding(*m).value()), "ncacn_ip_tcp:10.0.0.1[135]");
  // Building the same tower from its binding reproduces Microsoft's bytes.
  auto built =
      binding_to_tower(parse_binding("ncacn_ip_tcp:10.0.0.1[135]").value(), view.interface);
  ASSERT_TRUE(built);
  EXPECT_EQ(encode_tower(*built), ms);
}

TEST(Tower, EveryTruncationIsCleanError) {
  const auto bytes = hex(kMicrosoftTower);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto t = decode_tower(std::span<const std::uint8_t>(bytes).first(n));
    ASSERT_FALSE(t) << n;
    EXPECT_EQ(t.error(), err(Errc::kTruncated)) << n;
  }
}

// scan_tower (views, used per ept_map) and decode_tower (copies) accept and reject the same
// octets with the same errors, and view_tower_head agrees with view_tower: every single-byte
// change and every truncation of a real tower.
TEST(Tower, ScanAgreesWithDecodeOnEveryMutation) {
  const auto good = hex(kMicrosoftTower);
  auto check = [](std::span<const std::uint8_t> bytes, const std::string& what) {
    auto d = decode_tower(bytes);
    auto s = scan_tower(bytes);
    ASSERT_EQ(d.has_value(), s.has_value()) << what;
    if (!d) {
      EXPECT_EQ(d.error(), s.error()) << what;
      return;
    }
    ASSERT_EQ(d->floors.size(), s->count) << what;
    for (std::size_t i = 0; i < s->count; ++i) {
      const auto& f = s->floors[i];
      EXPECT_EQ(d->floors[i].lhs, std::vector<std::uint8_t>(f.lhs.begin(), f.lhs.end())) << what;
      EXPECT_EQ(d->floors[i].rhs, std::vector<std::uint8_t>(f.rhs.begin(), f.rhs.end())) << what;
    }
    auto v = view_tower(*d);
    auto h = view_tower_head(*s);
    ASSERT_EQ(v.has_value(), h.has_value()) << what;
    if (!v) {
      EXPECT_EQ(v.error(), h.error()) << what;
      return;
    }
    EXPECT_EQ(v->interface, h->interface) << what;
    EXPECT_EQ(v->transfer_syntax, h->transfer_syntax) << what;
    EXPECT_EQ(v->rpc_protocol, h->rpc_protocol) << what;
    EXPECT_EQ(v->rpc_protocol_minor, h->rpc_protocol_minor) << what;
    EXPECT_EQ(v->has_unknown_protocol, h->has_unknown_protocol) << what;
  };
  for (std::size_t n = 0; n <= good.size(); ++n)
    check(std::span<const std::uint8_t>(good).first(n), "truncated to " + std::to_string(n));
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t v : {0x00, 0x01, 0x02, 0x03, 0x07, 0x09, 0x0b, 0x0d, 0x13, 0x42, 0xff}) {
      auto b = good;
      b[i] = v;
      check(b, "byte " + std::to_string(i) + " = " + std::to_string(v));
    }
  }
}

TEST(Tower, FloorCountLimits) {
  auto with_count = [](std::uint16_t count) {
    auto b = hex(kMicrosoftTower);
    b[0] = static_cast<std::uint8_t>(count & 0xff);
    b[1] = static_cast<std::uint8_t>(count >> 8);
    return b;
  };
  EXPECT_EQ(decode_tower(with_count(1000)).error(), err(Errc::kTowerFloorCount));
  EXPECT_EQ(decode_tower(with_count(2)).error(), err(Errc::kTowerFloorCount));
  EXPECT_EQ(decode_tower(with_count(7)).error(), err(Errc::kTowerFloorCount));
  EXPECT_EQ(decode_tower(with_count(4)).error(), err(Errc::kTrailingBytes));
  EXPECT_EQ(decode_tower(with_count(6)).error(), err(Errc::kTruncated));
  TowerLimits limits;
  limits.max_floors = 4;
  EXPECT_EQ(decode_tower(hex(kMicrosoftTower), limits).error(), err(Errc::kTowerFloorCount));
}

TEST(Tower, LengthsInconsistentWithProtocolIds) {
  // Interface floor lhs_len 18 instead of 19 (the rest re-aligns to garbage: either error).
  auto b = hex(kMicrosoftTower);
  b[2] = 18;
  EXPECT_FALSE(decode_tower(b));
  // Port floor rhs_len 3 -> kTowerFloorLength.
  const auto port3 =
      hex("03 00 13 00 0d 00 db f1 a4 47 ca 67 10 b3 1f 00 dd 01 06 62 da 00 00 02 00 00 00"
          "01 00 0b 02 00 00 00 01 00 07 03 00 00 87 00");
  EXPECT_EQ(decode_tower(port3).error(), err(Errc::kTowerFloorLength));
  // IP floor rhs 2 bytes.
  const auto ip2 = hex("03 00 01 00 0b 02 00 00 00 01 00 07 02 00 00 87 01 00 09 02 00 0a 00");
  EXPECT_EQ(decode_tower(ip2).error(), err(Errc::kTowerFloorLength));
  // lhs_len 0.
  EXPECT_EQ(decode_tower(hex("03 00 00 00 00 00 01 00 0b 00 00 01 00 07 00 00")).error(),
            err(Errc::kTowerFloorLength));
  // lhs_len far beyond the end.
  EXPECT_EQ(decode_tower(hex("03 00 ff ff 0d 00")).error(), err(Errc::kTruncated));
}

TEST(Tower, UnknownProtocolIdsPreservedAndFlagged) {
  // Floors 4-5 replaced by an unknown id 0x42 with a 3-byte lhs.
  const auto bytes =
      hex("04 00 13 00 0d 00 db f1 a4 47 ca 67 10 b3 1f 00 dd 01 06 62 da 00 00 02 00 00 00"
          "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
          "01 00 0b 02 00 00 00 03 00 42 01 02 01 00 ff");
  auto t = decode_tower(bytes);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->floors[3].known());
  EXPECT_EQ(encode_tower(*t), bytes);
  auto view = view_tower(*t);
  ASSERT_TRUE(view);
  EXPECT_TRUE(view->has_unknown_protocol);
  EXPECT_EQ(tower_to_binding(*t).error(), err(Errc::kTowerUnsupported));
}

TEST(Tower, ViewRejectsWrongFloorOrder) {
  // RPC protocol floor first.
  const auto bytes =
      hex("03 00 01 00 0b 02 00 00 00"
          "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
          "01 00 07 02 00 00 87");
  auto t = decode_tower(bytes);
  ASSERT_TRUE(t);
  EXPECT_EQ(view_tower(*t).error(), err(Errc::kTowerBadFloor));
}

TEST(Tower, BindingConversionsForEveryProtseq) {
  for (std::string_view text : {"ncacn_ip_tcp:192.168.1.10[49664]", "ncadg_ip_udp:10.0.0.2[135]",
                                "ncacn_np:\\\\DC01[\\PIPE\\samr]", "ncacn_http:10.0.0.1[593]",
                                "ncalrpc:[epmapper]", "ncacn_unix_stream:[/run/rpcgate.sock]"}) {
    auto binding = parse_binding(text);
    ASSERT_TRUE(binding) << text;
    auto tower = binding_to_tower(*binding, samr());
    ASSERT_TRUE(tower) << text;
    auto bytes = encode_tower(*tower);
    auto back = decode_tower(bytes);
    ASSERT_TRUE(back) << text;
    auto b2 = tower_to_binding(*back);
    ASSERT_TRUE(b2) << text;
    EXPECT_EQ(format_binding(*b2), text);
  }
  // Protocol ids per protseq (C706 App. I, Samba binding.c transports[]; docs/wire-vectors.md).
  auto np = binding_to_tower(parse_binding("ncacn_np:\\\\H[\\pipe\\x]").value(), samr()).value();
  EXPECT_EQ(np.floors[2].protocol_id(), 0x0b);
  EXPECT_EQ(np.floors[3].protocol_id(), 0x0f);
  EXPECT_EQ(np.floors[4].protocol_id(), 0x11);
  auto lrpc = binding_to_tower(parse_binding("ncalrpc:[x]").value(), samr()).value();
  ASSERT_EQ(lrpc.floors.size(), 4u);
  EXPECT_EQ(lrpc.floors[2].protocol_id(), 0x0c);
  EXPECT_EQ(lrpc.floors[3].protocol_id(), 0x10);
  // Host names and IPv6 cannot go into a tower.
  EXPECT_EQ(binding_to_tower(parse_binding("ncacn_ip_tcp:host[1]").value(), samr()).error(),
            err(Errc::kTowerUnsupported));
  EXPECT_EQ(binding_to_tower(parse_binding("ncacn_ip_tcp:::1[1]").value(), samr()).error(),
            err(Errc::kTowerUnsupported));
}

TEST(Tower, StringFloorMustBeTerminated) {
  auto t = binding_to_tower(parse_binding("ncalrpc:[abc]").value(), samr()).value();
  t.floors[3].rhs.pop_back();  // drop the NUL
  EXPECT_EQ(tower_to_binding(t).error(), err(Errc::kTowerFloorLength));
}

class TwrBothOrders : public ::testing::TestWithParam<Endian> {};
INSTANTIATE_TEST_SUITE_P(Tower, TwrBothOrders, ::testing::Values(Endian::kLittle, Endian::kBig));

TEST_P(TwrBothOrders, TwrTWrapperKeepsTowerLittleEndian) {
  const auto tower = hex(kMicrosoftTower);
  Encoder e(GetParam());
  encode_twr(e, tower);
  const auto& out = e.buffer();
  ASSERT_EQ(out.size(), 8 + tower.size());
  EXPECT_TRUE(std::equal(tower.begin(), tower.end(), out.begin() + 8));  // octets untouched
  Decoder d(out, GetParam());
  EXPECT_EQ(decode_twr(d).value(), tower);
}

TEST(Tower, TwrTChecks) {
  const auto mismatch = hex("02000000 01000000 aabb");
  Decoder d1(mismatch, Endian::kLittle);
  EXPECT_EQ(decode_twr(d1).error(), err(Errc::kCountInconsistent));
  const auto huge = hex("ffffffff ffffffff 00");
  Decoder d2(huge, Endian::kLittle);
  EXPECT_EQ(decode_twr(d2).error(), err(Errc::kCountOverLimit));
}

// Issue 11: towers of every protocol sequence, built with Impacket's floor structures
// (tests/vectors/gen_impacket_towers.py): each decodes, re-encodes byte-exact, and reads as the
// string binding rpcgate prints (an unknown protocol id: describe_floors, floors kept).
TEST(TowerVectors, EveryProtseqFromImpacket) {
  const auto records = common::testing::read_tab_records(
      std::string(RPCGATE_SOURCE_DIR) + "/src/ndr/testdata/impacket_tower_vectors.txt");
  ASSERT_TRUE(records) << "missing testdata";
  EXPECT_EQ(records->size(), 7u);
  for (const auto& record : *records) {
    ASSERT_GE(record.size(), 3u);  // name, tower octets, string binding[, Impacket's binding]
    const std::string& name = record[0];
    const std::string& binding = record[2];
    const auto octets = hex(record[1]);
    auto tower = decode_tower(octets);
    ASSERT_TRUE(tower) << name << ": " << tower.error().message();
    EXPECT_EQ(encode_tower(*tower), octets) << name;
    auto view = view_tower(*tower);
    ASSERT_TRUE(view) << name;
    EXPECT_EQ(view->interface.uuid.to_string(), "11111111-2222-3333-4444-555555555511") << name;
    EXPECT_EQ(view->has_unknown_protocol, name == "unknown_id") << name;
    auto b = tower_to_binding(*tower);
    if (name == "unknown_id") {
      EXPECT_FALSE(b) << name;
      EXPECT_EQ(describe_floors(*tower), binding) << name;
    } else {
      ASSERT_TRUE(b) << name << ": " << b.error().message();
      EXPECT_EQ(format_binding(*b), binding) << name;
      // And back: the binding builds the same tower (the interface and NDR20 given).
      auto again = binding_to_tower(*b, view->interface);
      ASSERT_TRUE(again) << name;
      EXPECT_EQ(encode_tower(*again), octets) << name;
    }
  }
}

TEST(TowerVectors, DescribeFloorsShowsBytesOnly) {
  Tower t = *decode_tower(hex(kSamrResponseTower));
  EXPECT_EQ(describe_floors(t), "floors(0x0b; 0x07:c200; 0x09:7f000001)");
  t.floors.resize(2);
  EXPECT_EQ(describe_floors(t), "floors()");
}

}  // namespace
}  // namespace rpcgate::ndr
