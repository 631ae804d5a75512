// Test helpers shared by the ndr tests (not part of the library).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "ndr/errc.h"

namespace rpcgate::ndr::testing {

inline std::vector<std::uint8_t> hex(std::string_view text) {
  auto bytes = common::from_hex(text);
  EXPECT_TRUE(bytes.has_value()) << text;
  return bytes.value_or(std::vector<std::uint8_t>{});
}

inline std::error_code err(Errc e) {
  return make_error_code(e);
}

}  // namespace rpcgate::ndr::testing
