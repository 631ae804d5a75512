// What every server process that registers with rpcgate-epmd does at startup, shared by
// rpcgate-testsrv and rpcgate-echo: take a port of a class from the broker and serve it, watch
// the lease, and turn a runtime error into the process' exit status.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <system_error>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "policy/policy.h"
#include "runtime/epmd_client.h"
#include "runtime/server.h"

namespace rpcgate::runtime {

// The exit status for a Windows error code: code modulo 256 as the OS truncates it (87 -> 87,
// 1721 -> 185, 1722 -> 186), but never 0 for an error (a code that is a multiple of 256 -> 1).
int exit_status(int windows_code);

// allocate_port(cls) and Server::adopt_listener() of every socket epmd passed. Returns the port.
// Errors: those of EpmdClient::allocate_port (87, 1721, 5, ...) and of adopt_listener.
std::expected<std::uint16_t, std::error_code> serve_broker_port(Server& server, EpmdClient& epmd,
                                                                policy::PortClass cls);

// Calls `lost` once, on the io thread, when epmd closes the connection of an otherwise idle
// EpmdClient (the lease, and with it every registration, is gone). Keep the returned watcher
// alive as long as the watch should last; destroying it cancels the watch.
std::unique_ptr<asio::posix::stream_descriptor> watch_lease(asio::io_context& io,
                                                            const EpmdClient& epmd,
                                                            std::function<void()> lost);

// On a clean exit (SIGTERM/SIGINT): a best-effort ept_delete of `interface` at `port`, bounded
// by a 2 s deadline, warning on failure. Closing the connection removes the entry anyway (the
// lease); this only makes the removal explicit. Does nothing when `epmd` is null or unusable.
void unregister_on_exit(EpmdClient* epmd, const rpc::SyntaxId& interface, std::uint16_t port);

}  // namespace rpcgate::runtime
