#include "runtime/epmd_client.h"

#include <bit>

namespace rpcgate::runtime {

namespace {
constexpr std::uint16_t kBrokerContext = 0;

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
  if (auto b = client->bind({broker::broker_syntax()}); !b) return std::unexpected(b.error());
  return EpmdClient(std::move(*client));
}

std::expected<AllocatedPort, std::error_code> EpmdClient::allocate_port(policy::PortClass cls,
                                                                        std::uint32_t families) {
  broker::AllocatePortRequest req{static_cast<std::uint32_t>(cls), families};
  auto reply = client_.call(kBrokerContext, broker::kOpAllocatePort,
                            broker::encode(req, common::Endian::kLittle));
  if (!reply) return std::unexpected(reply.error());
  auto resp = broker::decode_allocate_port_response(reply->stub, common::Endian::kLittle);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  if (resp->status != broker::kStatusOk) return std::unexpected(status_error(resp->status));
  auto wanted = static_cast<std::size_t>(
      std::popcount(families & (broker::kFamilyIpv4 | broker::kFamilyIpv6)));
  if (reply->fds.empty() || resp->port == 0)
    return std::unexpected(make_error_code(Errc::kProtocolError));
  if (reply->fds.size() > wanted) reply->fds.resize(wanted);  // extras are closed by ~Fd
  for (const auto& fd : reply->fds)
    if (local_port(fd.get()) != resp->port)
      return std::unexpected(make_error_code(Errc::kProtocolError));
  return AllocatedPort{resp->port, std::move(reply->fds)};
}

std::expected<void, std::error_code> EpmdClient::release_port(std::uint16_t port) {
  auto reply =
      client_.call(kBrokerContext, broker::kOpReleasePort,
                   broker::encode(broker::ReleasePortRequest{port}, common::Endian::kLittle));
  if (!reply) return std::unexpected(reply.error());
  auto resp = broker::decode_release_port_response(reply->stub, common::Endian::kLittle);
  if (!resp) return std::unexpected(make_error_code(Errc::kProtocolError));
  if (resp->status != broker::kStatusOk) return std::unexpected(status_error(resp->status));
  return {};
}

}  // namespace rpcgate::runtime
