#include "runtime/epmd_client.h"

#include <bit>

#include "ndr/epm_types.h"
#include "ndr/tower.h"

namespace rpcgate::runtime {

namespace {
constexpr std::uint16_t kBrokerContext = 0;
constexpr std::uint16_t kEpmContext = 1;

std::error_code status_error(std::uint32_t status) {
  if (auto e = errc_from_status(status)) return make_error_code(*e);
  return make_error_code(Errc::kProtocolError);
}
}  // namespace

std::expected<EpmdClient, std::error_code> EpmdClient::connect(const std::string& path,
                                                               std::chrono::milliseconds timeout) {
  auto client = SyncClient::connect_unix(path, timeout);
  if (!client) return std::unexpected(client.error());
  client->set_timeout(timeout);
  if (auto b = client->bind({broker::broker_syntax(), rpc::kEpmSyntax}); !b)
    return std::unexpected(b.error());
  return EpmdClient(std::move(*client));
}

std::expected<AllocatedPort, std::error_code> EpmdClient::allocate_port(policy::PortClass cls,
                                                                        std::uint32_t families) {
  broker::AllocatePortRequest req{static_cast<std::uint32_t>(cls), families};
  last_status_.reset();
  auto reply = client_.call(kBrokerContext, broker::kOpAllocatePort,
                            broker::encode(req, common::Endian::kLittle));
  if (!reply) return std::unexpected(reply.error());
  auto resp = broker::decode_allocate_port_response(reply->stub, common::Endian::kLittle);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  last_status_ = resp->status;
  if (resp->status != broker::kStatusOk) return std::unexpected(status_error(resp->status));
  auto wanted = static_cast<std::size_t>(
      std::popcount(families & (broker::kFamilyIpv4 | broker::kFamilyIpv6)));
  if (reply->fds.empty() || resp->port == 0)
    return std::unexpected(make_error_code(Errc::kProtocolError));
  if (reply->fds.size() > wanted) reply->fds.resize(wanted);  // extras are closed by ~Fd
  for (const auto& fd : reply->fds)
    if (local_port(fd.get()) != resp->port)
      return std::unexpected(make_error_code(Errc::kProtocolError));
  lease_asked_ = true;  // AllocatePort holds the lease: no HoldLease round trip needed
  return AllocatedPort{resp->port, std::move(reply->fds)};
}

std::expected<void, std::error_code> EpmdClient::release_port(std::uint16_t port) {
  last_status_.reset();
  auto reply =
      client_.call(kBrokerContext, broker::kOpReleasePort,
                   broker::encode(broker::ReleasePortRequest{port}, common::Endian::kLittle));
  if (!reply) return std::unexpected(reply.error());
  auto resp = broker::decode_release_port_response(reply->stub, common::Endian::kLittle);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  last_status_ = resp->status;
  if (resp->status != broker::kStatusOk) return std::unexpected(status_error(resp->status));
  return {};
}

std::expected<void, std::error_code> EpmdClient::hold_lease() {
  last_status_.reset();
  auto reply = client_.call(kBrokerContext, broker::kOpHoldLease,
                            broker::encode(broker::HoldLeaseRequest{}, common::Endian::kLittle));
  if (!reply) {
    // An older epmd: no HoldLease, and every registration is leased anyway.
    if (reply.error() == Errc::kCallFailed && client_.last_fault() == 0x1c010002u) return {};
    return std::unexpected(reply.error());
  }
  auto resp = broker::decode_release_port_response(reply->stub, common::Endian::kLittle);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  last_status_ = resp->status;
  if (resp->status != broker::kStatusOk) return std::unexpected(status_error(resp->status));
  return {};
}

std::expected<void, std::error_code> EpmdClient::ept_change(
    bool insert, const rpc::SyntaxId& interface, const ndr::StringBinding& binding,
    std::string_view annotation, const std::optional<common::Uuid>& object) {
  namespace ept = ndr::epm;
  last_status_.reset();
  if (annotation.size() >= ept::kMaxAnnotationSize ||
      annotation.find('\0') != std::string_view::npos)
    return std::unexpected(make_error_code(Errc::kInvalidParameter));
  auto tower = ndr::binding_to_tower(binding, interface);
  if (!tower) return std::unexpected(make_error_code(Errc::kInvalidParameter));
  ept::EptEntry entry;
  entry.object = object.value_or(common::Uuid{});
  entry.tower = ndr::encode_tower(*tower);
  entry.annotation = std::string(annotation);
  constexpr auto kLe = common::Endian::kLittle;
  auto stub = insert ? ept::encode(ept::EptInsertRequest{{std::move(entry)}, true}, kLe)
                     : ept::encode(ept::EptDeleteRequest{{std::move(entry)}}, kLe);
  auto reply =
      client_.call(kEpmContext, insert ? ept::kOpnumEptInsert : ept::kOpnumEptDelete, stub);
  if (!reply) return std::unexpected(reply.error());
  auto resp = ept::decode_ept_status_response(reply->stub, kLe);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  last_status_ = resp->status;
  if (resp->status != 0)
    return std::unexpected(make_error_code(errc_from_ept_status(resp->status)));
  return {};
}

namespace {
ndr::StringBinding tcp_wildcard(std::uint16_t port) {
  ndr::StringBinding b;
  b.protseq = ndr::Protseq::kNcacnIpTcp;
  b.network_addr = "0.0.0.0";
  b.endpoint = std::to_string(port);
  return b;
}
}  // namespace

std::expected<void, std::error_code> EpmdClient::register_endpoint(
    const rpc::SyntaxId& interface, const ndr::StringBinding& binding, std::string_view annotation,
    std::optional<common::Uuid> object) {
  if (!persistent_ && !lease_asked_) {
    lease_asked_ = true;
    // A refusal (5: not a registrant) is left to the insert to report; a dead connection is not.
    if (auto l = hold_lease(); !l && !client_.usable()) return std::unexpected(l.error());
  }
  return ept_change(true, interface, binding, annotation, object);
}

std::expected<void, std::error_code> EpmdClient::register_endpoint(
    const rpc::SyntaxId& interface, std::uint16_t port, std::string_view annotation,
    std::optional<common::Uuid> object) {
  return register_endpoint(interface, tcp_wildcard(port), annotation, object);
}

std::expected<void, std::error_code> EpmdClient::unregister_endpoint(
    const rpc::SyntaxId& interface, const ndr::StringBinding& binding,
    std::optional<common::Uuid> object) {
  return ept_change(false, interface, binding, {}, object);
}

std::expected<void, std::error_code> EpmdClient::unregister_endpoint(
    const rpc::SyntaxId& interface, std::uint16_t port, std::optional<common::Uuid> object) {
  return ept_change(false, interface, tcp_wildcard(port), {}, object);
}

}  // namespace rpcgate::runtime
