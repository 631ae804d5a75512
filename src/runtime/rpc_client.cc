#include "runtime/rpc_client.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>

#include "epm/mgmt.h"
#include "ndr/tower.h"
#include "rpc/status.h"
#include "runtime/net.h"

namespace rpcgate::runtime {
namespace {

namespace st = rpc::status;
using Clock = std::chrono::steady_clock;

ClientError error(Errc e, std::string message, bool network = false,
                  std::optional<std::uint32_t> status = {}) {
  return ClientError{make_error_code(e), std::move(message), status, network};
}

// strerror() text in lower case ("connection refused"), as people read it in a sentence.
std::string os_message(const std::error_code& ec) {
  std::string m = ec.message();
  if (!m.empty()) m[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(m[0])));
  return m;
}

bool is_not_registered(std::uint32_t status) {
  return status == st::kEptSNotRegistered || status == st::kEptSNotRegisteredWin32;
}

// Releases an ept_lookup / ept_map context handle; best effort (the EPM runs it down on close
// anyway), so errors are ignored.
void free_handle(RpcClient& epm, const ndr::ContextHandle& handle, std::uint16_t p_cont_id) {
  if (handle.is_null() || !epm.usable()) return;
  const auto stub =
      ndr::epm::encode(ndr::epm::EptLookupHandleFreeRequest{handle}, common::Endian::kLittle);
  (void)epm.call(p_cont_id, ndr::epm::kOpnumEptLookupHandleFree, stub);
}

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};

}  // namespace

std::expected<ConnectTarget, ClientError> connect_target(const ndr::StringBinding& binding) {
  if (binding.protseq != ndr::Protseq::kNcacnIpTcp)
    return std::unexpected(error(Errc::kInvalidParameter,
                                 fmt::format("unsupported protocol sequence {} (only ncacn_ip_tcp)",
                                             ndr::to_string(binding.protseq))));
  ConnectTarget t;
  t.host = binding.network_addr.empty() ? std::string("127.0.0.1") : binding.network_addr;
  t.object = binding.object;
  if (!binding.endpoint.empty()) {
    // parse_binding validated a decimal 0-65535; check again for hand-built bindings.
    unsigned long v = 0;
    for (char c : binding.endpoint) {
      if (c < '0' || c > '9' || v > 65535)
        return std::unexpected(
            error(Errc::kInvalidParameter, fmt::format("bad port \"{}\"", binding.endpoint)));
      v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (v > 65535 || binding.endpoint.size() > 5)
      return std::unexpected(
          error(Errc::kInvalidParameter, fmt::format("bad port \"{}\"", binding.endpoint)));
    t.port = static_cast<std::uint16_t>(v);
  }
  return t;
}

std::expected<std::uint16_t, ClientError> tcp_port_of_tower(std::span<const std::uint8_t> octets) {
  auto tower = ndr::decode_tower(octets);
  if (!tower)
    return std::unexpected(
        error(Errc::kProtocolError, fmt::format("undecodable tower: {}", tower.error().message())));
  auto b = ndr::tower_to_binding(*tower);
  if (!b)
    return std::unexpected(
        error(Errc::kProtocolError, fmt::format("undecodable tower: {}", b.error().message())));
  if (b->protseq != ndr::Protseq::kNcacnIpTcp)
    return std::unexpected(error(
        Errc::kProtocolError, fmt::format("tower is {}, not ncacn_ip_tcp", to_string(b->protseq))));
  auto t = connect_target(*b);
  if (!t || !t->port) return std::unexpected(error(Errc::kProtocolError, "tower has no TCP port"));
  return *t->port;
}

std::optional<rpc::SyntaxId> parse_interface(std::string_view text) {
  const auto colon = text.find(':');
  auto uuid = common::Uuid::parse(text.substr(0, colon));
  if (!uuid) return std::nullopt;
  rpc::SyntaxId id{*uuid, 1, 0};
  if (colon == std::string::npos) return id;
  const std::string_view v = text.substr(colon + 1);
  const auto dot = v.find('.');
  const char* b = v.data();
  const char* e = b + v.size();
  std::uint16_t major = 0, minor = 0;
  if (dot == std::string::npos) {
    auto r = std::from_chars(b, e, major);
    if (r.ec != std::errc{} || r.ptr != e) return std::nullopt;
  } else {
    auto r1 = std::from_chars(b, b + dot, major);
    auto r2 = std::from_chars(b + dot + 1, e, minor);
    if (r1.ec != std::errc{} || r1.ptr != b + dot || r2.ec != std::errc{} || r2.ptr != e)
      return std::nullopt;
  }
  id.major = major;
  id.minor = minor;
  return id;
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return fmt::format("{} s", ms / 1000);
  if (ms < 1000) return fmt::format("{} ms", ms);
  return fmt::format("{:g} s", static_cast<double>(ms) / 1000.0);
}

std::string describe_fault(std::uint32_t status) {
  return "fault " + st::format_status(status);
}

std::string describe_bind_rejection(const BindRejection& r) {
  if (r.nak)
    return fmt::format("bind rejected (bind_nak): {}", st::reject_reason_name(r.reject_reason));
  if (r.reason != st::kReasonNotSpecified)
    return fmt::format("bind rejected: {}", st::provider_reason_name(r.reason));
  return fmt::format("bind rejected: {}", st::context_result_name(r.result));
}

ClientError describe_call_error(std::error_code ec, const SyncClient& client,
                                const std::string& peer, std::string_view what,
                                std::chrono::milliseconds timeout) {
  if (ec == Errc::kTimeout)
    return error(Errc::kTimeout,
                 fmt::format("{} to {}: no answer, timed out after {}", what, peer,
                             format_duration(timeout)),
                 true);
  if (ec == Errc::kUnknownInterface) {
    const auto r = client.last_bind_rejection();
    return error(Errc::kUnknownInterface,
                 r ? describe_bind_rejection(*r) : std::string("bind rejected"));
  }
  if (ec == Errc::kCallFailed && client.last_fault())
    return error(Errc::kCallFailed, describe_fault(*client.last_fault()), false,
                 *client.last_fault());
  if (ec == Errc::kCallFailed)
    return error(Errc::kCallFailed,
                 fmt::format("{} to {}: connection closed by the server", what, peer), true);
  if (ec == Errc::kProtocolError)
    return error(Errc::kProtocolError,
                 fmt::format("{} to {}: protocol error: the reply is not valid DCE/RPC (bad "
                             "header, oversized fragment or response, or unexpected PDU)",
                             what, peer));
  if (ec == Errc::kServerUnavailable)
    return error(Errc::kServerUnavailable, fmt::format("{} to {}: not connected", what, peer),
                 true);
  return ClientError{ec, fmt::format("{} to {}: {}", what, peer, ec.message()), std::nullopt,
                     false};
}

std::expected<RpcClient, ClientError> RpcClient::connect(const std::string& host,
                                                         std::uint16_t port,
                                                         const ClientOptions& options) {
  const auto deadline = Clock::now() + options.connect_timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* raw = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &raw);
  if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {  // AI_ADDRCONFIG hides ::1 without a v6 address
    hints.ai_flags = AI_NUMERICSERV;
    rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &raw);
  }
  if (rc != 0)
    return std::unexpected(
        error(Errc::kServerUnavailable,
              fmt::format("cannot resolve host name \"{}\": {}", host, ::gai_strerror(rc)), true));
  std::unique_ptr<addrinfo, AddrInfoDeleter> list(raw);
  std::optional<ClientError> last;
  for (const addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
    const std::string peer = format_sockaddr(a->ai_addr, a->ai_addrlen);
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    auto fd = connect_stream(a->ai_addr, a->ai_addrlen, left);
    if (fd) {
      SyncClient c = SyncClient::adopt(std::move(*fd));
      c.set_timeout(options.call_timeout);
      c.set_max_response(options.max_response);
      return RpcClient(std::move(c), host, port, peer, options.call_timeout);
    }
    if (fd.error() == std::errc::timed_out) break;
    last = error(Errc::kServerUnavailable,
                 fmt::format("connect to {}: {}", peer, os_message(fd.error())), true);
  }
  if (last && Clock::now() < deadline) return std::unexpected(*last);
  return std::unexpected(error(Errc::kTimeout,
                               fmt::format("connect to {} port {}: timed out after {}", host, port,
                                           format_duration(options.connect_timeout)),
                               true));
}

std::expected<RpcClient, ClientError> RpcClient::open(const ndr::StringBinding& binding,
                                                      const std::vector<rpc::SyntaxId>& interfaces,
                                                      const ClientOptions& options) {
  if (interfaces.empty())
    return std::unexpected(error(Errc::kInvalidParameter, "no interface to bind"));
  auto resolved = resolve_endpoint(binding, interfaces.front(), options);
  if (!resolved) return std::unexpected(resolved.error());
  auto target = connect_target(*resolved);
  if (!target) return std::unexpected(target.error());
  auto c = connect(target->host, *target->port, options);
  if (!c) return c;
  if (auto b = c->bind(interfaces); !b) return std::unexpected(b.error());
  return c;
}

std::expected<void, ClientError> RpcClient::bind(const std::vector<rpc::SyntaxId>& interfaces) {
  auto r = client_.bind(interfaces);
  if (!r)
    return std::unexpected(describe_call_error(r.error(), client_, peer_, "bind", call_timeout_));
  return {};
}

std::expected<Reply, ClientError> RpcClient::call(std::uint16_t p_cont_id, std::uint16_t opnum,
                                                  std::span<const std::uint8_t> stub) {
  auto r = client_.call(p_cont_id, opnum, stub);
  if (!r)
    return std::unexpected(describe_call_error(r.error(), client_, peer_, "call", call_timeout_));
  return std::move(*r);
}

std::expected<std::vector<std::uint8_t>, ClientError> ept_map_request_stub(
    const rpc::SyntaxId& interface, ndr::Protseq protseq, std::optional<common::Uuid> object,
    std::uint32_t max_towers) {
  ndr::StringBinding want;
  want.protseq = protseq;
  auto tower = ndr::binding_to_tower(want, interface);
  if (!tower)
    return std::unexpected(
        error(Errc::kInvalidParameter, fmt::format("cannot build a tower for {}: {}",
                                                   to_string(protseq), tower.error().message())));
  ndr::epm::EptMapRequest req;
  req.object = object.value_or(common::Uuid{});
  req.map_tower = ndr::encode_tower(*tower);
  req.max_towers = max_towers;
  return ndr::epm::encode(req, common::Endian::kLittle);
}

std::expected<ndr::StringBinding, ClientError> ept_map(RpcClient& epm,
                                                       const rpc::SyntaxId& interface,
                                                       ndr::Protseq protseq,
                                                       std::optional<common::Uuid> object,
                                                       std::uint16_t p_cont_id) {
  const auto stub = ept_map_request_stub(interface, protseq, object);
  if (!stub) return std::unexpected(stub.error());
  auto reply = epm.call(p_cont_id, ndr::epm::kOpnumEptMap, *stub);
  if (!reply) return std::unexpected(reply.error());
  auto resp = ndr::epm::decode_ept_map_response(reply->stub, reply->endian);
  if (!resp)
    return std::unexpected(
        error(Errc::kProtocolError, fmt::format("ept_map response from {} does not decode: {}",
                                                epm.peer(), resp.error().message())));
  free_handle(epm, resp->entry_handle, p_cont_id);
  const auto not_registered = [&](std::uint32_t status) {
    return error(Errc::kEptNotRegistered, st::format_status(status), false, status);
  };
  if (resp->status != 0) return std::unexpected(not_registered(resp->status));
  for (const auto& octets : resp->towers) {
    if (!octets) continue;
    auto t = ndr::decode_tower(*octets);
    if (!t) continue;
    auto b = ndr::tower_to_binding(*t);
    if (!b || b->protseq != protseq) continue;
    if (ndr::is_ip_protseq(protseq)) b->network_addr = epm.host();
    b->object = object;
    return *b;
  }
  return std::unexpected(not_registered(st::kEptSNotRegistered));
}

std::expected<std::vector<ndr::epm::EptEntry>, ClientError> ept_lookup_all(
    RpcClient& epm, std::uint32_t page_size, std::size_t max_entries, std::uint16_t p_cont_id) {
  namespace e = ndr::epm;
  std::vector<e::EptEntry> out;
  e::EptLookupRequest req;
  req.inquiry_type = e::kRpcCEpAllElts;
  req.vers_option = e::kRpcCVersAll;
  req.max_ents = std::clamp<std::uint32_t>(page_size, 1, kLookupPageSize);
  // On every early exit while the server holds a context for us: give it back.
  const auto abort = [&](ClientError err) {
    free_handle(epm, req.entry_handle, p_cont_id);
    return std::unexpected(std::move(err));
  };
  for (;;) {
    auto reply = epm.call(p_cont_id, e::kOpnumEptLookup, e::encode(req, common::Endian::kLittle));
    if (!reply) return abort(reply.error());
    auto resp = e::decode_ept_lookup_response(reply->stub, reply->endian);
    if (!resp)
      return abort(
          error(Errc::kProtocolError, fmt::format("ept_lookup response from {} does not decode: {}",
                                                  epm.peer(), resp.error().message())));
    req.entry_handle = resp->entry_handle;
    if (resp->entries.size() > req.max_ents)
      return abort(
          error(Errc::kProtocolError, fmt::format("ept_lookup from {}: {} entries for max_ents {}",
                                                  epm.peer(), resp->entries.size(), req.max_ents)));
    if (resp->status != 0 && !is_not_registered(resp->status))
      return abort(error(Errc::kCallFailed, st::format_status(resp->status), false, resp->status));
    if (out.size() + resp->entries.size() > max_entries)
      return abort(
          error(Errc::kProtocolError,
                fmt::format("ept_lookup from {}: more than {} entries", epm.peer(), max_entries)));
    const bool empty_page = resp->entries.empty();
    for (auto& entry : resp->entries)
      out.push_back(std::move(entry));
    if (is_not_registered(resp->status)) {
      // The end (Samba / AD DC style); the handle, if the server kept one, is released.
      free_handle(epm, resp->entry_handle, p_cont_id);
      return out;
    }
    if (resp->entry_handle.is_null()) return out;
    if (empty_page)
      return abort(
          error(Errc::kProtocolError,
                fmt::format("ept_lookup from {}: an empty page that is not the last", epm.peer())));
  }
}

std::expected<ndr::StringBinding, ClientError> resolve_endpoint(const ndr::StringBinding& binding,
                                                                const rpc::SyntaxId& interface,
                                                                const ClientOptions& options) {
  auto target = connect_target(binding);
  if (!target) return std::unexpected(target.error());
  if (target->port) return binding;
  auto epm = RpcClient::connect(target->host, options.epm_port, options);
  if (!epm) return std::unexpected(epm.error());
  if (auto b = epm->bind({rpc::kEpmSyntax}); !b) return std::unexpected(b.error());
  auto mapped = ept_map(*epm, interface, binding.protseq, binding.object);
  if (!mapped) return std::unexpected(mapped.error());
  ndr::StringBinding out = binding;
  out.endpoint = mapped->endpoint;
  return out;
}

std::expected<std::vector<rpc::SyntaxId>, ClientError> mgmt_inq_if_ids(RpcClient& client,
                                                                       std::uint16_t p_cont_id) {
  auto reply = client.call(p_cont_id, epm::kOpnumMgmtInqIfIds, {});
  if (!reply) return std::unexpected(reply.error());
  auto resp = epm::decode_inq_if_ids_response(reply->stub, reply->endian);
  if (!resp)
    return std::unexpected(
        error(Errc::kProtocolError, fmt::format("inq_if_ids response from {} does not decode: {}",
                                                client.peer(), resp.error().message())));
  if (resp->status != 0)
    return std::unexpected(
        error(Errc::kCallFailed, st::format_status(resp->status), false, resp->status));
  return resp->if_ids.value_or(std::vector<rpc::SyntaxId>{});
}

}  // namespace rpcgate::runtime
