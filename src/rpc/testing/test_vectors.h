// Test-only: golden CO PDUs (docs/wire-vectors.md) and the Impacket-generated vectors
// (src/rpc/testdata/impacket_vectors.txt). Linked into rpc_test and rpc_benchmark, not into the
// library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rpcgate::rpc::testing {

struct NamedVector {
  std::string name;
  std::vector<std::uint8_t> bytes;
};

// ept-map-request: impacket 0.10.0 ept_map request PDU (156 bytes, call_id 1, opnum 3).
std::vector<std::uint8_t> ept_map_request();
// ept-map-response: ept_map response PDU (152 bytes) resolving SAMR to
// ncacn_ip_tcp:127.0.0.1[49664].
std::vector<std::uint8_t> ept_map_response();
// bind-epm, bind-ack-epm, fault-op-rng: impacket bind (72 B), bind_ack accepted by impacket
// (60 B), fault nca_s_op_rng_error (32 B; call_id 1, and alloc_hint 24 as Samba sends and
// build_fault() does - Samba's raw_protocol, checked against Windows, wants it non-zero).
std::vector<std::uint8_t> impacket_bind();
std::vector<std::uint8_t> impacket_bind_ack();
std::vector<std::uint8_t> op_rng_fault();

// The five above, named golden_*.
std::vector<NamedVector> golden_vectors();
// Parses "name hex" lines ('#' comments, blank lines ignored) from `path`; empty on error.
std::vector<NamedVector> load_vectors(const std::string& path);

}  // namespace rpcgate::rpc::testing
