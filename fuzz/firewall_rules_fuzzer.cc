// parse_firewall_toml on arbitrary text, then the RuleSet's decisions over what it accepted:
// never crash, never let a toml++ exception out, every error names "fuzz.toml:LINE: ", and an
// accepted configuration holds what the parser promises (unique names, >= 1 interface per rule,
// opnum ranges in order, caps >= 1, listen ports 1..65535 and distinct, NAT entries IPv4 and
// one-to-one).
#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>

#include "firewall/rules.h"
#include "op_reader.h"

using namespace rpcgate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = firewall::parse_firewall_toml(text, "fuzz.toml");
  if (!config) {
    CHECK(config.error().starts_with("fuzz.toml:"));
    return 0;
  }
  std::set<std::string> names;
  for (const auto& rule : config->rules) {
    CHECK(names.insert(rule.name).second);
    CHECK(!rule.interfaces.empty());
    for (const auto& r : rule.opnums)
      CHECK(r.first <= r.last);
    for (const auto& c : rule.clients)
      CHECK(c.prefix <= 128 && firewall::parse_cidr(firewall::to_string(c)).has_value());
  }
  CHECK(config->max_towers >= 1 && config->max_pinholes >= 1 &&
        config->max_pinholes_per_client >= 1 && config->max_connections >= 1 &&
        config->max_connections_per_client >= 1);
  CHECK(config->epm_listen_port != 0 && config->pinhole_listen_port != 0 &&
        config->epm_listen_port != config->pinhole_listen_port);
  // Static NAT: one-to-one IPv4, no address on both sides (validate_nat says so too).
  CHECK(firewall::validate_nat(config->nat).empty());
  for (const auto& n : config->nat)
    CHECK(firewall::parse_cidr(firewall::to_string(n.public_address))->ipv4() &&
          n.public_address != n.private_address);
  const firewall::RuleSet rules(std::move(*config));
  for (const auto& n : rules.config().nat) {
    CHECK(rules.real_server(n.public_address) == n.private_address);
    CHECK(rules.real_server(n.private_address) == n.private_address);
  }
  const firewall::Address client = firewall::ipv4(10, 0, 0, 7);
  const firewall::Address server = firewall::ipv4(10, 0, 1, 5);
  for (const auto& rule : rules.config().rules) {
    for (const auto& spec : rule.interfaces) {
      const rpc::SyntaxId s{spec.uuid, spec.major.value_or(0), spec.min_minor};
      if (const auto* found = rules.find(client, server, s)) {
        CHECK(found->applies(client, server));
        CHECK(rules.timeout(*found).count() >= 1);
        CHECK(rules.lookup_timeout(*found).count() >= 1);
      }
    }
  }
  return 0;
}
