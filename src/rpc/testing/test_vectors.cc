#include "rpc/testing/test_vectors.h"

#include <fstream>
#include <sstream>

#include "common/bytes.h"

namespace rpcgate::rpc::testing {
namespace {

std::vector<std::uint8_t> hex(std::string_view text) {
  return common::from_hex(text).value();  // constant test data: must parse
}

constexpr std::string_view kEptMapRequestStub =
    "01 00 00 00  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "02 00 00 00  4b 00 00 00  4b 00 00 00  05 00"
    "13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
    "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
    "01 00 0b 02 00 00 00  01 00 07 02 00 00 00  01 00 09 04 00 00 00 00 00  ab"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  01 00 00 00";

}  // namespace

std::vector<std::uint8_t> ept_map_request() {
  auto out = hex("05 00 00 03 10 00 00 00 9c 00 00 00 01 00 00 00 84 00 00 00 00 00 03 00");
  const auto stub = hex(kEptMapRequestStub);
  out.insert(out.end(), stub.begin(), stub.end());
  return out;
}

std::vector<std::uint8_t> ept_map_response() {
  return hex(
      "05 00 02 03 10 00 00 00 98 00 00 00 01 00 00 00 80 00 00 00 00 00 00 00"
      "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
      "01 00 00 00  01 00 00 00 00 00 00 00 01 00 00 00  03 00 00 00"
      "4b 00 00 00 4b 00 00 00"
      "05 00 13 00 0d 78 57 34 12 34 12 cd ab ef 00 01 23 45 67 89 ac 01 00 02 00 00 00"
      "13 00 0d 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 02 00 00 00"
      "01 00 0b 02 00 00 00  01 00 07 02 00 c2 00  01 00 09 04 00 7f 00 00 01"
      "00"
      "00 00 00 00");
}

std::vector<std::uint8_t> impacket_bind() {
  return hex(
      "05 00 0b 03 10 00 00 00 48 00 00 00 01 00 00 00 b8 10 b8 10 00 00 00 00 01 00 00 00 00 00 "
      "01 00 08 83 af e1 1f 5d c9 11 91 a4 08 00 2b 14 a0 fa 03 00 00 00 04 5d 88 8a eb 1c c9 11 "
      "9f e8 08 00 2b 10 48 60 02 00 00 00");
}

std::vector<std::uint8_t> impacket_bind_ack() {
  return hex(
      "05 00 0c 03 10 00 00 00 3c 00 00 00 01 00 00 00 b8 10 b8 10 45 23 01 00 04 00 31 33 35 00 "
      "00 00 01 00 00 00 00 00 00 00 04 5d 88 8a eb 1c c9 11 9f e8 08 00 2b 10 48 60 02 00 00 00");
}

std::vector<std::uint8_t> op_rng_fault() {
  return hex(
      "05 00 03 03 10 00 00 00 20 00 00 00 01 00 00 00 18 00 00 00 00 00 00 00 02 00 01 1c "
      "00 00 00 00");
}

std::vector<NamedVector> golden_vectors() {
  return {{"golden_ept_map_request", ept_map_request()},
          {"golden_ept_map_response", ept_map_response()},
          {"golden_bind", impacket_bind()},
          {"golden_bind_ack", impacket_bind_ack()},
          {"golden_fault", op_rng_fault()}};
}

std::vector<NamedVector> load_vectors(const std::string& path) {
  std::vector<NamedVector> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    NamedVector v;
    std::string hex_text;
    fields >> v.name >> hex_text;
    auto bytes = common::from_hex(hex_text);
    if (v.name.empty() || !bytes) return {};
    v.bytes = std::move(*bytes);
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace rpcgate::rpc::testing
