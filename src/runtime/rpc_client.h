// The RPC client runtime for tools (`rpcgate lookup|map|ifids`) and tests: open a string binding
// `[obj@]ncacn_ip_tcp:host[port]`, resolving a missing port through the endpoint mapper (ept_map
// on host:135), bind one or several presentation contexts, call; plus the endpoint-mapper and
// management calls a client makes (ept_map, paged ept_lookup, inq_if_ids).
//
// Built on SyncClient (sync_client.h), which owns the socket, the framing, fragmentation both ways
// and the per-operation deadline. This layer adds name resolution, endpoint resolution and errors a
// person can read: every failure is a ClientError whose `message` is one sentence ("connect to
// 127.0.0.1:9: connection refused", "call to 127.0.0.1:135: no answer, timed out after 1 s",
// "bind rejected: abstract_syntax_not_supported", "fault nca_s_op_rng_error (0x1c010002)",
// "ept_s_not_registered (0x16c9a0d6)").
//
// Never hangs: connect is bounded by ClientOptions::connect_timeout (for all the addresses of a
// name together; the name look-up itself is getaddrinfo's, bounded by resolv.conf's timeout and
// attempts), each bind and call by call_timeout; a reply fragment may not exceed the negotiated
// max_recv_frag (5840) and a reassembled response max_response (16 MiB), so a server that is
// silent, sends a huge frag_length or garbage ends the operation with kTimeout / kProtocolError.
//
// Not thread-safe: one thread uses one RpcClient at a time. After any error other than a fault
// or a non-zero operation status the connection is unusable (SyncClient's rule).
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/uuid.h"
#include "ndr/binding.h"
#include "ndr/epm_types.h"
#include "rpc/pdu.h"
#include "runtime/errc.h"
#include "runtime/sync_client.h"

namespace rpcgate::runtime {

inline constexpr std::uint16_t kEpmPort = 135;
inline constexpr std::size_t kDefaultMaxResponse = 16u << 20;
inline constexpr std::uint32_t kLookupPageSize =
    500;  // max_ents per ept_lookup (Impacket, Windows)

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds call_timeout{5000};  // per bind and per call
  std::uint16_t epm_port = kEpmPort;             // where a missing port is resolved
  std::size_t max_response = kDefaultMaxResponse;
};

// One failure, for a person and for an exit status.
struct ClientError {
  std::error_code code;                 // runtime::Errc
  std::string message;                  // one sentence, no trailing newline
  std::optional<std::uint32_t> status;  // the fault status or the operation's status word
  // Network failures (exit status 3 in the CLI): the peer could not be reached, did not answer
  // in time, or closed the connection. Everything else (fault, rejected bind, "not registered",
  // a reply that is not DCE/RPC) is a failed call.
  bool network = false;
};

// ---- pure helpers (unit-tested) ----

// Where an ncacn_ip_tcp binding points. Errors (kInvalidParameter): another protseq.
struct ConnectTarget {
  std::string host;                    // the network address; empty in the binding = 127.0.0.1
  std::optional<std::uint16_t> port;   // nullopt: resolve through the endpoint mapper
  std::optional<common::Uuid> object;  // the binding's object UUID
  friend bool operator==(const ConnectTarget&, const ConnectTarget&) = default;
};
std::expected<ConnectTarget, ClientError> connect_target(const ndr::StringBinding& binding);

// The TCP port of an ncacn_ip_tcp tower's port floor (protocol id 0x07, big-endian; C706 App. L).
// Errors (kProtocolError, message says why): undecodable tower, not ncacn_ip_tcp.
std::expected<std::uint16_t, ClientError> tcp_port_of_tower(std::span<const std::uint8_t> octets);

// "UUID[:MAJOR.MINOR]" as people type an interface (version default 1.0; "UUID:3" is 3.0);
// nullopt when it is not that.
std::optional<rpc::SyntaxId> parse_interface(std::string_view text);

// "5 s", "1.5 s", "250 ms".
std::string format_duration(std::chrono::milliseconds d);
// "fault nca_s_op_rng_error (0x1c010002)".
std::string describe_fault(std::uint32_t status);
// "bind rejected: abstract_syntax_not_supported" (bind_ack: the provider reason, or the result
// when the reason is not_specified); "bind rejected (bind_nak): protocol_version_not_supported".
std::string describe_bind_rejection(const BindRejection& r);
// The ClientError for a SyncClient error during an operation with `peer` ("127.0.0.1:135");
// `what` is "bind" or "call". Uses the client's last fault / bind rejection.
ClientError describe_call_error(std::error_code ec, const SyncClient& client,
                                const std::string& peer, std::string_view what,
                                std::chrono::milliseconds timeout);

// ---- the client ----

class RpcClient {
 public:
  // Resolves `host` (IPv4/IPv6 literal or a name, getaddrinfo) and connects to its addresses in
  // order until one accepts, all within options.connect_timeout. Errors (network = true):
  // kServerUnavailable ("connection refused", "network is unreachable", "cannot resolve host
  // name"), kTimeout ("timed out after 5 s").
  static std::expected<RpcClient, ClientError> connect(const std::string& host, std::uint16_t port,
                                                       const ClientOptions& options);
  // Opens `binding` (ncacn_ip_tcp) and binds `interfaces` (non-empty) as contexts 0..n-1. A
  // binding without a port is first resolved with ept_map for interfaces[0] (resolve_endpoint).
  // Errors: connect_target's, resolve_endpoint's, connect's, bind's.
  static std::expected<RpcClient, ClientError> open(const ndr::StringBinding& binding,
                                                    const std::vector<rpc::SyntaxId>& interfaces,
                                                    const ClientOptions& options);

  // Binds presentation contexts 0..n-1 (NDR 2.0). Errors: kUnknownInterface ("bind rejected:
  // REASON"), kTimeout, kProtocolError, kCallFailed (closed; network).
  std::expected<void, ClientError> bind(const std::vector<rpc::SyntaxId>& interfaces);
  // One call. Errors: kCallFailed with status = the fault ("fault NAME (0x...)"), kTimeout,
  // kProtocolError (including a response over max_response), kCallFailed (closed; network).
  std::expected<Reply, ClientError> call(std::uint16_t p_cont_id, std::uint16_t opnum,
                                         std::span<const std::uint8_t> stub);

  const std::string& host() const { return host_; }  // as given to connect()
  std::uint16_t port() const { return port_; }
  const std::string& peer() const { return peer_; }  // the address connected to, "[::1]:135"
  bool usable() const { return client_.usable(); }

 private:
  RpcClient(SyncClient client, std::string host, std::uint16_t port, std::string peer,
            std::chrono::milliseconds call_timeout)
      : client_(std::move(client)),
        host_(std::move(host)),
        port_(port),
        peer_(std::move(peer)),
        call_timeout_(call_timeout) {}
  SyncClient client_;
  std::string host_;
  std::uint16_t port_ = 0;
  std::string peer_;
  std::chrono::milliseconds call_timeout_;
};

// ---- endpoint mapper (EPM v3.0 bound on context p_cont_id of the client) ----

// The ept_map (opnum 3) request stub, NDR20 little-endian, that ept_map() below sends: a map
// tower for `interface` over `protseq` (NDR 2.0 transfer syntax, no address), object `object`
// (nullopt = the nil UUID), a NULL entry_handle and `max_towers`. Load generators pre-encode it
// once (rpcgate-bench). Errors: kInvalidParameter when no tower can be built for `protseq`.
std::expected<std::vector<std::uint8_t>, ClientError> ept_map_request_stub(
    const rpc::SyntaxId& interface, ndr::Protseq protseq, std::optional<common::Uuid> object = {},
    std::uint32_t max_towers = 4);

// ept_map (opnum 3) of `interface` over `protseq` with NDR 2.0, object `object` (nullopt = the
// nil UUID, as Impacket and Windows send). Returns the first returned tower of that protseq as a
// binding; for IP protseqs the network address is `epm.host()` - the host the client asked, not
// the tower's (what Windows and Impacket do: the EPM answers with its own view of its address).
// A returned context handle is freed (ept_lookup_handle_free). Errors: kEptNotRegistered with
// status and message format_status(status) ("ept_s_not_registered (0x16c9a0d6)") for any
// non-zero status or no usable tower; kProtocolError for an undecodable stub; call()'s errors.
std::expected<ndr::StringBinding, ClientError> ept_map(RpcClient& epm,
                                                       const rpc::SyntaxId& interface,
                                                       ndr::Protseq protseq,
                                                       std::optional<common::Uuid> object = {},
                                                       std::uint16_t p_cont_id = 0);

// Every entry of the endpoint mapper (ept_lookup, opnum 2: RPC_C_EP_ALL_ELTS, RPC_C_VERS_ALL),
// `page_size` (1..500) per call, following the context handle until it comes back NULL. Status
// ept_s_not_registered ends the walk (with the entries of that page: Samba's last page; on the
// first call: no entries at all). An empty page with status 0 and a non-NULL handle, any other
// status, an undecodable page or more than `max_entries` entries abort; whenever the walk ends
// early while a handle is held, it is released with ept_lookup_handle_free (best effort).
// Errors: kCallFailed with status for an unexpected status word; kProtocolError; call()'s.
std::expected<std::vector<ndr::epm::EptEntry>, ClientError> ept_lookup_all(
    RpcClient& epm, std::uint32_t page_size = kLookupPageSize, std::size_t max_entries = 1u << 20,
    std::uint16_t p_cont_id = 0);

// Resolves a binding without a port: connects to host:options.epm_port, binds EPM, ept_map for
// `interface` over the binding's protseq; returns the binding with that endpoint (host and
// object kept). A binding that has a port is returned unchanged.
std::expected<ndr::StringBinding, ClientError> resolve_endpoint(const ndr::StringBinding& binding,
                                                                const rpc::SyntaxId& interface,
                                                                const ClientOptions& options);

// ---- management interface (MGMT v1.0 bound on context p_cont_id) ----

// inq_if_ids (opnum 0): the interfaces the server exports. Errors: kCallFailed with status for a
// non-zero status (e.g. rpc_s_no_interfaces); kProtocolError; call()'s.
std::expected<std::vector<rpc::SyntaxId>, ClientError> mgmt_inq_if_ids(RpcClient& client,
                                                                       std::uint16_t p_cont_id = 0);

}  // namespace rpcgate::runtime
