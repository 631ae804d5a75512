#include "ndr/epm_types.h"

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "ndr/testing/test_util.h"
#include "ndr/tower.h"
#include "rpc/framer.h"
#include "rpc/pdu.h"

namespace rpcgate::ndr::epm {
namespace {

using testing::err;
using testing::hex;

// Goldens: docs/wire-vectors.md ept-map-request, ept-map-response, ept-lookup.
constexpr std::string_view kTowerReq =  // SAMR v1.0, ncacn_ip_tcp, port 0, 0.0.0.0
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 00 00 01 00 09 04 00 00 00 00 00";
constexpr std::string_view kTowerResp =  // port 49664, 127.0.0.1
    "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00 01 00 07 02 00 c2 00 01 00 09 04 00 7f 00 00 01";
const std::string kZero20(40, '0');

std::vector<std::uint8_t> map_request_golden() {  // 132 bytes, 0xab pad
  return hex("01000000" + std::string(32, '0') + "02000000 4b000000 4b000000" +
             std::string(kTowerReq) + "ab" + kZero20 + "01000000");
}
std::vector<std::uint8_t> map_response_golden() {  // 128 bytes
  return hex(kZero20 + "01000000 01000000 00000000 01000000 03000000 4b000000 4b000000" +
             std::string(kTowerResp) + "00 00000000");
}
std::vector<std::uint8_t> map_response_not_found() {  // not-found stub
  return hex(kZero20 + "00000000 01000000 00000000 00000000 d6a0c916");
}
std::vector<std::uint8_t> lookup_request_golden() {  // 40 bytes
  return hex("00000000 00000000 00000000 01000000" + kZero20 + "f4010000");
}
std::vector<std::uint8_t> lookup_response_golden() {  // 160 bytes
  return hex(kZero20 + "01000000 f4010000 00000000 01000000" + std::string(32, '0') +
             "00000200 00000000 05000000 73616d7200 000000 4b000000 4b000000" +
             std::string(kTowerResp) + "00 00000000");
}

std::string binding_of(const Octets& octets) {
  auto tower = decode_tower(octets);
  if (!tower) return "bad tower: " + tower.error().message();
  auto b = tower_to_binding(*tower);
  if (!b) return "no binding: " + b.error().message();
  return format_binding(*b);
}

// Decodes with pad positions recorded, so a re-encoding (zero pad) can be compared byte-exact
// everywhere else.
template <typename Fn>
auto decode_recording_pads(Fn fn, const std::vector<std::uint8_t>& bytes, Endian endian,
                           std::vector<std::size_t>& pads) {
  Decoder d(bytes, endian);
  d.record_padding(&pads);
  return fn(d);
}

void expect_same_except_pad(const std::vector<std::uint8_t>& original,
                            const std::vector<std::uint8_t>& encoded,
                            const std::vector<std::size_t>& pad_positions) {
  ASSERT_EQ(original.size(), encoded.size());
  const std::set<std::size_t> pads(pad_positions.begin(), pad_positions.end());
  for (std::size_t i = 0; i < original.size(); ++i) {
    if (pads.contains(i)) {
      EXPECT_EQ(encoded[i], 0) << "pad at " << i;
    } else {
      EXPECT_EQ(encoded[i], original[i]) << "byte " << i;
    }
  }
}

TEST(EpmStubs, EptMapRequestGolden) {
  const auto stub = map_request_golden();
  ASSERT_EQ(stub.size(), 132u);
  std::vector<std::size_t> pads;
  auto req = decode_recording_pads([](Decoder& d) { return decode_ept_map_request(d); }, stub,
                                   Endian::kLittle, pads);
  ASSERT_TRUE(req) << req.error().message();
  ASSERT_TRUE(req->object);
  EXPECT_TRUE(req->object->is_nil());  // non-NULL pointer to the nil UUID
  ASSERT_TRUE(req->map_tower);
  EXPECT_EQ(*req->map_tower, hex(kTowerReq));
  EXPECT_TRUE(req->entry_handle.is_null());
  EXPECT_EQ(req->max_towers, 1u);
  EXPECT_EQ(pads, (std::vector<std::size_t>{0x6b}));
  // Impacket's referent ids are 1 and 2; its 0xab pad becomes 0.
  const auto again = encode(*req, Endian::kLittle, {ReferentStyle::kSequential, 0});
  expect_same_except_pad(stub, again, pads);
  auto view = view_tower(decode_tower(*req->map_tower).value()).value();
  EXPECT_EQ(view.interface.uuid, *common::Uuid::parse("12345778-1234-abcd-ef00-0123456789ac"));
}

TEST(EpmStubs, EptMapResponseGolden) {
  const auto stub = map_response_golden();
  ASSERT_EQ(stub.size(), 128u);
  auto resp = decode_ept_map_response(stub, Endian::kLittle);
  ASSERT_TRUE(resp) << resp.error().message();
  EXPECT_TRUE(resp->entry_handle.is_null());
  EXPECT_EQ(resp->max_count, 1u);
  ASSERT_EQ(resp->towers.size(), 1u);
  EXPECT_EQ(binding_of(*resp->towers[0]), "ncacn_ip_tcp:127.0.0.1[49664]");
  EXPECT_EQ(resp->status, 0u);
  EXPECT_EQ(encode(*resp, Endian::kLittle, {ReferentStyle::kSequential, 3}), stub);

  const auto nf = map_response_not_found();
  auto none = decode_ept_map_response(nf, Endian::kLittle);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->towers.empty());
  EXPECT_EQ(none->status, kEptSNotRegistered);
  EXPECT_EQ(encode(*none, Endian::kLittle), nf);
}

TEST(EpmStubs, EptLookupGolden) {
  const auto rq = lookup_request_golden();
  auto req = decode_ept_lookup_request(rq, Endian::kLittle);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->inquiry_type, kRpcCEpAllElts);
  EXPECT_FALSE(req->object);
  EXPECT_FALSE(req->if_id);
  EXPECT_EQ(req->vers_option, kRpcCVersAll);
  EXPECT_EQ(req->max_ents, 500u);
  EXPECT_EQ(encode(*req, Endian::kLittle), rq);

  const auto rs = lookup_response_golden();
  ASSERT_EQ(rs.size(), 160u);
  auto resp = decode_ept_lookup_response(rs, Endian::kLittle);
  ASSERT_TRUE(resp) << resp.error().message();
  EXPECT_EQ(resp->max_count, 500u);
  ASSERT_EQ(resp->entries.size(), 1u);
  EXPECT_TRUE(resp->entries[0].object.is_nil());
  EXPECT_EQ(resp->entries[0].annotation, "samr");
  EXPECT_EQ(binding_of(*resp->entries[0].tower), "ncacn_ip_tcp:127.0.0.1[49664]");
  EXPECT_EQ(encode(*resp, Endian::kLittle), rs);  // 0x00020000 referent: Microsoft style

  const auto hf = hex(kZero20);
  EXPECT_TRUE(
      decode_ept_lookup_handle_free_request(hf, Endian::kLittle).value().entry_handle.is_null());
  const auto hfr = hex(kZero20 + "d6a0c916");
  EXPECT_EQ(decode_ept_lookup_handle_free_response(hfr, Endian::kLittle).value().status,
            kEptSNotRegistered);
  EXPECT_EQ(encode(EptLookupHandleFreeResponse{{}, kEptSNotRegistered}, Endian::kLittle), hfr);
}

// Samples with everything non-trivial set, for the byte-order and truncation sweeps.
EptMapRequest sample_map_request() {
  return {common::Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da"),
          hex(kTowerReq),
          {1, *common::Uuid::parse("11223344-5566-7788-99aa-bbccddeeff00")},
          4};
}
EptMapResponse sample_map_response() {
  return {{0, *common::Uuid::parse("11223344-5566-7788-99aa-bbccddeeff00")},
          4,
          {hex(kTowerResp), std::nullopt, hex(kTowerReq)},
          0};
}
EptLookupRequest sample_lookup_request() {
  return {kRpcCEpMatchByBoth,
          common::Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da"),
          RpcIfId{*common::Uuid::parse("12345778-1234-abcd-ef00-0123456789ac"), 1, 0},
          kRpcCVersExact,
          {},
          2};
}
EptLookupResponse sample_lookup_response() {
  return {{},
          500,
          {EptEntry{{}, hex(kTowerResp), "samr"}, EptEntry{{}, std::nullopt, ""},
           EptEntry{*common::Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da"), hex(kTowerReq),
                    std::string(63, 'x')}},
          kEptSNotRegistered};
}

class EpmBothOrders : public ::testing::TestWithParam<Endian> {};
INSTANTIATE_TEST_SUITE_P(EpmStubs, EpmBothOrders, ::testing::Values(Endian::kLittle, Endian::kBig));

template <typename T, typename Decode>
void round_trip_and_truncate(const T& value, Decode decode, Endian endian) {
  const auto bytes = encode(value, endian);
  auto back = decode(bytes, endian, DecodeLimits{});
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, value);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<std::uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto r = decode(prefix, endian, DecodeLimits{});
    ASSERT_FALSE(r) << n;
    EXPECT_TRUE(r.error() == err(Errc::kTruncated) || r.error() == err(Errc::kCountOverLimit))
        << n << ": " << r.error().message();
  }
  // Bytes after the last parameter: a request ignores them and counts them (Samba's client
  // sends mgmt_inq_stats with an extra u32; Windows and Samba servers ignore such bytes); a
  // response (what our client reads) must be exact.
  auto longer = bytes;
  longer.insert(longer.end(), {0, 0xde, 0xad, 0xbe, 0xef});
  auto r = decode(longer, endian, DecodeLimits{});
  if constexpr (requires { value.trailing_bytes; }) {
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->trailing_bytes, 5u);
    auto same = *r;
    same.trailing_bytes = 0;
    EXPECT_EQ(same, value);
  } else {
    EXPECT_EQ(r.error(), err(Errc::kTrailingBytes));
  }
}

TEST_P(EpmBothOrders, AllStubsRoundTripAndTruncate) {
  using S = std::span<const std::uint8_t>;
  const Endian e = GetParam();
  round_trip_and_truncate(
      sample_map_request(),
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_map_request(s, en, l); }, e);
  round_trip_and_truncate(
      sample_map_response(),
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_map_response(s, en, l); }, e);
  round_trip_and_truncate(
      sample_lookup_request(),
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_lookup_request(s, en, l); }, e);
  round_trip_and_truncate(
      sample_lookup_response(),
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_lookup_response(s, en, l); },
      e);
  round_trip_and_truncate(
      EptLookupHandleFreeRequest{{7, *common::Uuid::parse("11223344-5566-7788-99aa-bbccddeeff00")}},
      [](S s, Endian en, const DecodeLimits& l) {
        return decode_ept_lookup_handle_free_request(s, en, l);
      },
      e);
  round_trip_and_truncate(
      EptLookupHandleFreeResponse{{}, 5},
      [](S s, Endian en, const DecodeLimits& l) {
        return decode_ept_lookup_handle_free_response(s, en, l);
      },
      e);
}

TEST(EpmStubs, BigEndianStubKeepsTowersLittleEndian) {
  const auto le = encode(sample_map_response(), Endian::kLittle);
  const auto be = encode(sample_map_response(), Endian::kBig);
  ASSERT_EQ(le.size(), be.size());
  EXPECT_NE(le, be);
  const auto tower = hex(kTowerResp);
  auto contains = [&](const std::vector<std::uint8_t>& v) {
    return std::search(v.begin(), v.end(), tower.begin(), tower.end()) != v.end();
  };
  EXPECT_TRUE(contains(le));
  EXPECT_TRUE(contains(be));
  // The drep byte order shows in the counts: num_towers = 3 at offset 20.
  EXPECT_EQ(be[23], 3);
  EXPECT_EQ(le[20], 3);
}

TEST(EpmStubs, TruncationOfGoldens) {
  using S = std::span<const std::uint8_t>;
  using Check = std::function<bool(S)>;
  const std::vector<std::pair<std::vector<std::uint8_t>, Check>> cases = {
      {map_request_golden(),
       [](S s) { return decode_ept_map_request(s, Endian::kLittle).has_value(); }},
      {map_response_golden(),
       [](S s) { return decode_ept_map_response(s, Endian::kLittle).has_value(); }},
      {map_response_not_found(),
       [](S s) { return decode_ept_map_response(s, Endian::kLittle).has_value(); }},
      {lookup_request_golden(),
       [](S s) { return decode_ept_lookup_request(s, Endian::kLittle).has_value(); }},
      {lookup_response_golden(),
       [](S s) { return decode_ept_lookup_response(s, Endian::kLittle).has_value(); }},
  };
  for (const auto& [stub, decodes] : cases) {
    EXPECT_TRUE(decodes(stub));
    for (std::size_t n = 0; n < stub.size(); ++n)
      EXPECT_FALSE(decodes(S(stub.data(), n))) << n;
  }
}

// Response header with chosen counts: handle, num_towers, max_count, offset, actual_count.
std::vector<std::uint8_t> map_response_header(std::uint32_t num, std::uint32_t max,
                                              std::uint32_t offset, std::uint32_t actual) {
  Encoder e(Endian::kLittle);
  e.context_handle({});
  e.u32(num);
  e.u32(max);
  e.u32(offset);
  e.u32(actual);
  return e.take();
}

TEST(EpmStubs, HostileCounts) {
  auto expect = [](std::vector<std::uint8_t> stub, Errc e, const DecodeLimits& limits = {}) {
    auto r = decode_ept_map_response(stub, Endian::kLittle, limits);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), err(e)) << r.error().message();
  };
  auto with_tail = [](std::vector<std::uint8_t> v, std::size_t extra) {
    v.resize(v.size() + extra, 0x01);
    return v;
  };
  expect(with_tail(map_response_header(1, 0xffffffff, 0, 1), 200), Errc::kCountOverLimit);
  expect(with_tail(map_response_header(2, 1, 0, 2), 200), Errc::kCountInconsistent);  // actual>max
  expect(with_tail(map_response_header(1, 2, 2, 1), 200), Errc::kCountInconsistent);  // off+act>max
  expect(with_tail(map_response_header(1, 4, 1, 1), 200), Errc::kCountInconsistent);  // offset != 0
  expect(with_tail(map_response_header(2, 4, 0, 1), 200), Errc::kCountInconsistent);  // != num
  // 1000 towers claimed, a few bytes present.
  expect(with_tail(map_response_header(1000, 1000, 0, 1000), 100), Errc::kCountOverLimit);
  // 1000 real towers, but a deployment limit of 500.
  EptMapResponse many;
  many.towers.assign(1000, hex(kTowerResp));
  DecodeLimits limits;
  limits.max_array_elements = 500;
  expect(encode(many, Endian::kLittle), Errc::kCountOverLimit, limits);
  EXPECT_TRUE(decode_ept_map_response(encode(many, Endian::kLittle), Endian::kLittle));
  // A tower length beyond the end.
  auto stub = map_response_golden();
  stub[0x28] = 0xff;  // twr_t max_count 0x4b -> 0xff
  stub[0x2c] = 0xff;  // tower_length too
  expect(stub, Errc::kCountOverLimit);
  // twr_t max_count != tower_length.
  stub = map_response_golden();
  stub[0x28] = 0x4a;
  expect(stub, Errc::kCountInconsistent);

  // Annotation longer than 64 (NUL included).
  auto lookup = lookup_response_golden();
  lookup[0x3c] = 65;
  auto r = decode_ept_lookup_response(lookup, Endian::kLittle);
  EXPECT_EQ(r.error(), err(Errc::kCountInconsistent));
  lookup = lookup_response_golden();
  lookup[0x44] = 'x';  // annotation NUL replaced
  EXPECT_EQ(decode_ept_lookup_response(lookup, Endian::kLittle).error(),
            err(Errc::kStringNotTerminated));
}

TEST(EpmStubs, FullPointerAliasInResponse) {
  // Two ITowers elements with the same referent id: the tower is on the wire once.
  Encoder e(Endian::kLittle);
  e.context_handle({});
  e.u32(2);
  e.conformance(2);
  e.variance(0, 2);
  e.u32(0x00020000);
  e.u32(0x00020000);
  encode_twr(e, hex(kTowerResp));
  e.u32(0);
  auto resp = decode_ept_map_response(e.buffer(), Endian::kLittle);
  ASSERT_TRUE(resp) << resp.error().message();
  ASSERT_EQ(resp->towers.size(), 2u);
  EXPECT_EQ(resp->towers[0], resp->towers[1]);
  EXPECT_EQ(binding_of(*resp->towers[1]), "ncacn_ip_tcp:127.0.0.1[49664]");
}

TEST(EpmStubs, NullVersusNonNullPointers) {
  EptMapRequest req;
  req.max_towers = 1;
  const auto bytes = encode(req, Endian::kLittle);
  EXPECT_EQ(bytes, hex("00000000 00000000" + kZero20 + "01000000"));
  auto back = decode_ept_map_request(bytes, Endian::kLittle).value();
  EXPECT_FALSE(back.object);
  EXPECT_FALSE(back.map_tower);
  req.object = common::Uuid{};  // non-NULL nil UUID differs from NULL
  EXPECT_NE(decode_ept_map_request(encode(req, Endian::kLittle), Endian::kLittle).value(), back);
}

// Impacket-generated vectors (tests/vectors/gen_impacket_epm.py).
struct Vector {
  std::string kind, name;
  std::vector<std::uint8_t> bytes;
  std::map<std::string, std::string> expect;
};

std::vector<Vector> load_vectors() {
  std::ifstream in(std::string(RPCGATE_SOURCE_DIR) + "/src/ndr/testdata/impacket_epm_vectors.txt");
  std::vector<Vector> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    Vector v;
    std::string h, pairs;
    fields >> v.kind >> v.name >> h >> pairs;
    v.bytes = hex(h);
    std::istringstream kv(pairs);
    std::string item;
    while (std::getline(kv, item, ';')) {
      const auto eq = item.find('=');
      if (eq != std::string::npos) v.expect[item.substr(0, eq)] = item.substr(eq + 1);
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::string join_bindings(const std::vector<std::optional<Octets>>& towers) {
  std::string s;
  for (const auto& t : towers)
    s += (s.empty() ? "" : "|") + binding_of(*t);
  return s.empty() ? "-" : s;
}

std::string hex_of(const ContextHandle& h) {
  Encoder e(Endian::kLittle);
  e.uuid(h.uuid);
  return common::to_hex(e.buffer(), '\0');
}

TEST(EpmStubs, ImpacketVectors) {
  const auto vectors = load_vectors();
  ASSERT_EQ(vectors.size(), 11u);
  const EncodeOptions impacket{ReferentStyle::kSequential, 0};
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.kind + " " + v.name);
    std::vector<std::size_t> pads;
    std::vector<std::uint8_t> again;
    if (v.kind == "map_req") {
      auto r = decode_recording_pads([](Decoder& d) { return decode_ept_map_request(d); }, v.bytes,
                                     Endian::kLittle, pads);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(std::to_string(r->max_towers), v.expect.at("max_towers"));
      EXPECT_EQ(std::to_string(r->map_tower->size()), v.expect.at("tower_len"));
      EXPECT_EQ(r->object ? "nil" : "null", v.expect.at("object"));
      ASSERT_TRUE(decode_tower(*r->map_tower));
      // Impacket numbers the obj / map_tower referents 1, 2 even when obj is NULL.
      again = encode(*r, Endian::kLittle, {ReferentStyle::kSequential, r->object ? 1u : 2u});
    } else if (v.kind == "map_resp") {
      auto r = decode_recording_pads([](Decoder& d) { return decode_ept_map_response(d); }, v.bytes,
                                     Endian::kLittle, pads);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(std::to_string(r->towers.size()), v.expect.at("num_towers"));
      EXPECT_EQ(std::to_string(r->max_count), v.expect.at("max_count"));
      EXPECT_EQ(join_bindings(r->towers), v.expect.at("bindings"));
      EXPECT_EQ(hex_of(r->entry_handle), v.expect.at("handle"));
      again = encode(*r, Endian::kLittle, impacket);
    } else if (v.kind == "lookup_req") {
      auto r = decode_recording_pads([](Decoder& d) { return decode_ept_lookup_request(d); },
                                     v.bytes, Endian::kLittle, pads);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(std::to_string(r->inquiry_type), v.expect.at("inquiry_type"));
      EXPECT_EQ(std::to_string(r->vers_option), v.expect.at("vers_option"));
      EXPECT_EQ(std::to_string(r->max_ents), v.expect.at("max_ents"));
      EXPECT_EQ(r->object ? r->object->to_string() : "null", v.expect.at("object"));
      EXPECT_EQ(r->if_id ? r->if_id->uuid.to_string() + "/" + std::to_string(r->if_id->vers_major) +
                               "." + std::to_string(r->if_id->vers_minor)
                         : "null",
                v.expect.at("ifid"));
      again = encode(*r, Endian::kLittle, impacket);
    } else if (v.kind == "lookup_resp") {
      auto r = decode_recording_pads([](Decoder& d) { return decode_ept_lookup_response(d); },
                                     v.bytes, Endian::kLittle, pads);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(std::to_string(r->entries.size()), v.expect.at("num_ents"));
      std::vector<std::optional<Octets>> towers;
      std::string annotations;
      for (const auto& entry : r->entries) {
        towers.push_back(entry.tower);
        std::string a = entry.annotation;
        std::replace(a.begin(), a.end(), ' ', '_');
        annotations += (&entry == &r->entries.front() ? "" : "|") + a;
      }
      EXPECT_EQ(join_bindings(towers), v.expect.at("bindings"));
      EXPECT_EQ(annotations.empty() && r->entries.empty() ? "-" : annotations,
                v.expect.at("annotations"));
      again = encode(*r, Endian::kLittle, impacket);
    } else {
      FAIL() << "unknown kind";
    }
    if (v.expect.contains("status")) {
      // All response kinds end in the status.
      const auto n = v.bytes.size();
      const std::uint32_t status = v.bytes[n - 4] | (v.bytes[n - 3] << 8) | (v.bytes[n - 2] << 16) |
                                   (std::uint32_t{v.bytes[n - 1]} << 24);
      std::ostringstream s;
      s << std::showbase << std::hex << status;
      EXPECT_EQ(status == 0 ? "0x0" : s.str(), v.expect.at("status"));
    }
    expect_same_except_pad(v.bytes, again, pads);
  }
}

// ---- ept_insert / ept_delete / ept_inq_object / ept_mgmt_delete ----

EptInsertRequest sample_insert_request() {
  return {{EptEntry{{}, hex(kTowerResp), "samr"},
           EptEntry{*common::Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da"), hex(kTowerReq),
                    std::string(63, 'y')}},
          true};
}

TEST_P(EpmBothOrders, RegistrationStubsRoundTripAndTruncate) {
  using S = std::span<const std::uint8_t>;
  const Endian e = GetParam();
  round_trip_and_truncate(
      sample_insert_request(),
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_insert_request(s, en, l); }, e);
  round_trip_and_truncate(
      EptDeleteRequest{sample_insert_request().entries},
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_delete_request(s, en, l); }, e);
  round_trip_and_truncate(
      EptStatusResponse{kEptSCantPerformOp},
      [](S s, Endian en, const DecodeLimits& l) { return decode_ept_status_response(s, en, l); },
      e);
  round_trip_and_truncate(
      EptInqObjectResponse{*common::Uuid::parse("11223344-5566-7788-99aa-bbccddeeff00"), 0},
      [](S s, Endian en, const DecodeLimits& l) {
        return decode_ept_inq_object_response(s, en, l);
      },
      e);
  round_trip_and_truncate(
      EptMgmtDeleteRequest{true, common::Uuid::parse("6b29fc40-ca47-1067-b31d-00dd010662da"),
                           hex(kTowerReq)},
      [](S s, Endian en, const DecodeLimits& l) {
        return decode_ept_mgmt_delete_request(s, en, l);
      },
      e);
  round_trip_and_truncate(
      EptMgmtDeleteRequest{false, std::nullopt, std::nullopt},
      [](S s, Endian en, const DecodeLimits& l) {
        return decode_ept_mgmt_delete_request(s, en, l);
      },
      e);
}

TEST(EpmStubs, EptInsertLayout) {
  // One entry (nil object, ept-map-response tower, "samr"), replace = 1: num_ents, max_count, the
  // entry (object, tower referent 0x00020000, annotation offset/actual/chars, pad), then the
  // deferred twr_t, pad, replace.
  const auto expected = hex("01000000 01000000" + std::string(32, '0') +
                            "00000200 00000000 05000000 73616d7200 000000 4b000000 4b000000" +
                            std::string(kTowerResp) + "00 01000000");
  EptInsertRequest v{{EptEntry{{}, hex(kTowerResp), "samr"}}, true};
  EXPECT_EQ(encode(v, Endian::kLittle), expected);
  auto back = decode_ept_insert_request(expected, Endian::kLittle);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, v);
  // boolean32: any non-zero value is TRUE; re-encoding writes 1.
  auto seven = expected;
  seven.back() = 7;
  EXPECT_TRUE(decode_ept_insert_request(seven, Endian::kLittle).value().replace);
  // ept_inq_object takes no input.
  EXPECT_EQ(decode_ept_inq_object_request({}), 0u);
  const std::vector<std::uint8_t> four{0, 0, 0, 0};
  EXPECT_EQ(decode_ept_inq_object_request(four), 4u);  // all trailing, ignored
}

TEST(EpmStubs, RegistrationHostileCounts) {
  auto header = [](std::uint32_t num, std::uint32_t max, std::size_t tail) {
    Encoder e(Endian::kLittle);
    e.u32(num);
    e.u32(max);
    auto v = e.take();
    v.resize(v.size() + tail, 0x01);
    return v;
  };
  auto code = [](const std::vector<std::uint8_t>& s) {
    auto r = decode_ept_insert_request(s, Endian::kLittle);
    return r ? std::error_code{} : r.error();
  };
  EXPECT_EQ(code(header(2, 1, 200)), err(Errc::kCountInconsistent));  // num_ents != max_count
  EXPECT_EQ(code(header(0xffffffff, 0xffffffff, 200)), err(Errc::kCountOverLimit));
  EXPECT_EQ(code(header(1000, 1000, 64)), err(Errc::kCountOverLimit));  // more than remains
  DecodeLimits small;
  small.max_array_elements = 1;
  auto two = encode(sample_insert_request(), Endian::kLittle);
  EXPECT_EQ(decode_ept_insert_request(two, Endian::kLittle, small).error(),
            err(Errc::kCountOverLimit));
  EXPECT_EQ(decode_ept_delete_request(two, Endian::kLittle, small).error(),
            err(Errc::kCountOverLimit));
  // mgmt_delete: the tower pointer repeating the object's referent id cannot alias.
  Encoder e(Endian::kLittle);
  e.u32(1);
  e.u32(5);
  e.uuid({});
  e.u32(5);
  auto alias = e.take();
  EXPECT_EQ(decode_ept_mgmt_delete_request(alias, Endian::kLittle).error(),
            err(Errc::kBadFullPointer));
}

}  // namespace
}  // namespace rpcgate::ndr::epm

namespace rpcgate::ndr::epm {
namespace {

// The stub decoders take a whole stub; on the wire that stub arrives in a PDU cut from a byte
// stream. Split the stream at every byte and check the decoded stubs are what decoding the
// stubs directly gives (and that the Framer hands over exactly the PDUs that were sent).
TEST(EpmStubs, StubsInPdusSurviveSplitAtEveryByte) {
  const std::vector<std::vector<std::uint8_t>> requests = {map_request_golden(),
                                                           lookup_request_golden()};
  const std::vector<std::vector<std::uint8_t>> responses = {
      map_response_golden(), map_response_not_found(), lookup_response_golden()};
  std::vector<std::uint8_t> stream;
  std::uint32_t call_id = 1;
  for (const auto& stub : requests) {
    rpc::Request req;
    req.opnum = stub.size() == 132 ? kOpnumEptMap : kOpnumEptLookup;
    req.alloc_hint = static_cast<std::uint32_t>(stub.size());
    req.stub = stub;
    auto bytes = rpc::encode_pdu(rpc::make_pdu(req, call_id++));
    ASSERT_TRUE(bytes);
    stream.insert(stream.end(), bytes->begin(), bytes->end());
  }
  for (const auto& stub : responses) {
    rpc::Response resp;
    resp.alloc_hint = static_cast<std::uint32_t>(stub.size());
    resp.stub = stub;
    auto bytes = rpc::encode_pdu(rpc::make_pdu(resp, call_id++));
    ASSERT_TRUE(bytes);
    stream.insert(stream.end(), bytes->begin(), bytes->end());
  }

  auto decode_all = [&](std::size_t split) {
    rpc::Framer framer;
    std::vector<std::string> out;
    auto drain = [&](std::span<const std::uint8_t> part) {
      while (!part.empty()) {
        auto used = framer.feed(part);
        if (!used) {
          out.push_back("framer error");
          return;
        }
        part = part.subspan(*used);
        if (!framer.ready()) continue;
        auto pdu = rpc::decode_pdu(framer.frame());
        framer.pop();
        if (!pdu) {
          out.push_back("pdu error");
          continue;
        }
        if (auto* r = std::get_if<rpc::Request>(&pdu->body)) {
          if (r->opnum == kOpnumEptMap) {
            auto v = decode_ept_map_request(r->stub, Endian::kLittle);
            out.push_back(v ? "map_req " + std::to_string(v->max_towers) : "map_req error");
          } else {
            auto v = decode_ept_lookup_request(r->stub, Endian::kLittle);
            out.push_back(v ? "lookup_req " + std::to_string(v->max_ents) : "lookup_req error");
          }
        } else if (auto* s = std::get_if<rpc::Response>(&pdu->body)) {
          if (auto m = decode_ept_map_response(s->stub, Endian::kLittle)) {
            out.push_back("map_resp " + std::to_string(m->towers.size()) + " " +
                          std::to_string(m->status));
          } else if (auto l = decode_ept_lookup_response(s->stub, Endian::kLittle)) {
            out.push_back("lookup_resp " + std::to_string(l->entries.size()));
          } else {
            out.push_back("response error");
          }
        }
      }
    };
    drain(std::span(stream).first(split));
    drain(std::span(stream).subspan(split));
    return out;
  };

  const std::vector<std::string> expected = {"map_req 1", "lookup_req 500", "map_resp 1 0",
                                             "map_resp 0 382312662", "lookup_resp 1"};
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    ASSERT_EQ(decode_all(split), expected) << "split at byte " << split;
  }
}

}  // namespace
}  // namespace rpcgate::ndr::epm
