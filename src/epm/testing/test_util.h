// Test helpers shared by the epm tests (not part of the library).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "common/uuid.h"
#include "epm/endpoint_db.h"
#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::epm::testing {

inline std::vector<std::uint8_t> hex(std::string_view text) {
  auto bytes = common::from_hex(text);
  EXPECT_TRUE(bytes.has_value()) << text;
  return bytes.value_or(std::vector<std::uint8_t>{});
}

inline common::Uuid uuid(std::string_view text) {
  auto u = common::Uuid::parse(text);
  EXPECT_TRUE(u.has_value()) << text;
  return u.value_or(common::Uuid{});
}

inline SyntaxId iface(std::string_view text, std::uint16_t major, std::uint16_t minor) {
  return SyntaxId{uuid(text), major, minor};
}

inline const SyntaxId kSamr10 = {uuid("12345778-1234-abcd-ef00-0123456789ac"), 1, 0};
inline const SyntaxId kLsa00 = {uuid("12345778-1234-abcd-ef00-0123456789ab"), 0, 0};
inline const common::Uuid kObj1 = uuid("6b29fc40-ca47-1067-b31d-00dd010662da");
inline const common::Uuid kObj2 = uuid("6b29fc40-ca47-1067-b31d-00dd010662db");

// Tower octets for a string binding ("ncacn_ip_tcp:0.0.0.0[49664]").
inline Octets tower(std::string_view binding, const SyntaxId& interface,
                    const SyntaxId& transfer = ndr::ndr20_syntax()) {
  auto b = ndr::parse_binding(binding);
  EXPECT_TRUE(b.has_value()) << binding;
  if (!b) return {};
  auto t = ndr::binding_to_tower(*b, interface, transfer);
  EXPECT_TRUE(t.has_value()) << binding;
  return t ? ndr::encode_tower(*t) : Octets{};
}

inline ndr::epm::EptEntry entry(const common::Uuid& object, std::string_view binding,
                                const SyntaxId& interface, std::string annotation = "",
                                const SyntaxId& transfer = ndr::ndr20_syntax()) {
  return {object, tower(binding, interface, transfer), std::move(annotation)};
}

// "ncacn_ip_tcp:127.0.0.1[49664]" for tower octets, or an error text.
inline std::string binding_of(const Octets& octets) {
  auto t = ndr::decode_tower(octets);
  if (!t) return "bad tower";
  auto b = ndr::tower_to_binding(*t);
  if (!b) return "no binding";
  return ndr::format_binding(*b);
}

inline SyntaxId interface_of(const Octets& octets) {
  auto t = ndr::decode_tower(octets);
  if (!t) return {};
  auto v = ndr::view_tower(*t);
  return v ? v->interface : SyntaxId {};
}

}  // namespace rpcgate::epm::testing
