#include "runtime/registrant.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace rpcgate::runtime {

int exit_status(int windows_code) {
  const int s = windows_code & 0xff;
  return s == 0 ? 1 : s;
}

std::expected<std::uint16_t, std::error_code> serve_broker_port(Server& server, EpmdClient& epmd,
                                                                policy::PortClass cls) {
  auto a = epmd.allocate_port(cls);
  if (!a) return std::unexpected(a.error());
  for (auto& fd : a->fds)
    if (auto p = server.adopt_listener(fd.release()); !p) return std::unexpected(p.error());
  return a->port;
}

std::unique_ptr<asio::posix::stream_descriptor> watch_lease(asio::io_context& io,
                                                            const EpmdClient& epmd,
                                                            std::function<void()> lost) {
  // The EpmdClient is idle after startup: readiness means epmd closed the connection (or sent
  // something it should not); either way the registration is gone. A dup, so the watcher never
  // closes the client's descriptor.
  auto w = std::make_unique<asio::posix::stream_descriptor>(io, ::dup(epmd.native_handle()));
  w->async_wait(asio::posix::stream_descriptor::wait_read,
                [lost = std::move(lost)](const asio::error_code& ec) {
                  if (!ec) lost();
                });
  return w;
}

void unregister_on_exit(EpmdClient* epmd, const rpc::SyntaxId& interface, std::uint16_t port) {
  if (epmd == nullptr || !epmd->usable()) return;
  epmd->set_timeout(std::chrono::seconds(2));
  if (auto r = epmd->unregister_endpoint(interface, port); !r) {
    spdlog::warn("ept_delete at exit failed: {}", r.error().message());
  }
}

}  // namespace rpcgate::runtime
