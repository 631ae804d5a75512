// rpcgate-testsrv: serves the runtime test interface (testing/test_interface.h) - under its own
// UUID or any others - for interop and end-to-end tests with real clients (Impacket) and the real
// rpcgate-epmd.
//
//   rpcgate-testsrv [--port N] [--listen ADDR]... [--uuid UUID] [--version MAJOR.MINOR]
//                   [--interface UUID:MAJOR.MINOR]...
//                   [--epmd PATH [--class default|internet|intranet] [--annotation TEXT]]
//                   [--max-seconds S]
//
// Interfaces: one, --uuid (default the test interface's own) at --version (default 1.0); or, with
// --interface (repeatable, not together with --uuid/--version), every interface given, all on the
// one port (the side-by-side benchmark mirrors a Samba rpcd_* that serves several). Each is
// served by the same test handler; two with the same UUID and major version are a usage error.
//
// Standalone (no --epmd): listens on --listen (default 127.0.0.1) port --port (default 0: the
// kernel chooses), prints `port=N`, serves until SIGTERM/SIGINT, until stdin closes, or for at
// most --max-seconds (default 120) so a crashed test leaves nothing behind.
//
// Registrant (--epmd PATH, the daemon's control socket): connects an EpmdClient (one connection
// for the whole life of the process: it is the lease), then
//   --class C   takes a dynamic port of class C from the broker and serves the listening sockets
//               it passes (IPv4 and, if the host has it, IPv6; --listen is not allowed), or
//   --port N    listens itself as in standalone mode (the default: --port 0),
// registers each interface with ept_insert (ncacn_ip_tcp:0.0.0.0[N], --annotation), prints
// `port=N`, and serves until SIGTERM/SIGINT (then ept_delete of each, exit 0), until epmd closes
// the connection (the registrations are gone: exit 1722), or for --max-seconds if given
// (default: no limit). stdin is not watched in this mode.
//
// stdout: exactly one line `port=N` (flushed) once every interface is served and registered.
// Errors: one line on stderr, `rpcgate-testsrv: <what failed>: error <code> (<message>)`, with
// the Windows code of the runtime error (87 invalid port policy, 1721 class exhausted, 5 refused,
// 1722 epmd unreachable, 1752 EPM refused the registration, ...). The exit status is that code
// modulo 256, as the OS truncates it (87 -> 87, 1721 -> 185, 1722 -> 186, 1752 -> 216); usage
// errors exit 2.
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <unistd.h>

#include "common/command_line.h"
#include "common/uuid.h"
#include "runtime/epmd_client.h"
#include "runtime/registrant.h"
#include "runtime/rpc_client.h"
#include "runtime/server.h"
#include "runtime/testing/test_interface.h"

namespace {

using rpcgate::runtime::EpmdClient;
using rpcgate::runtime::exit_status;
using rpcgate::runtime::Server;

using rpcgate::common::kExitUsage;

int fail(const std::string& what, std::error_code ec) {
  std::cerr << "rpcgate-testsrv: " << what << ": error " << ec.value() << " (" << ec.message()
            << ")\n";
  return exit_status(ec.value());
}

std::string describe(const rpcgate::rpc::SyntaxId& id) {
  return id.uuid.to_string() + " v" + std::to_string(id.major) + "." + std::to_string(id.minor);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rpcgate-testsrv: the runtime test interface, standalone or registered with "
      "rpcgate-epmd"};
  std::string epmd_path;
  std::string class_name;
  std::uint16_t port = 0;
  std::vector<std::string> listen{"127.0.0.1"};
  std::string uuid = rpcgate::runtime::testing::test_syntax().uuid.to_string();
  std::string version = "1.0";
  std::vector<std::string> interface_texts;
  std::string annotation = "rpcgate-testsrv";
  std::optional<int> max_seconds;
  auto* epmd_opt = app.add_option("--epmd", epmd_path, "rpcgate-epmd control socket");
  auto* class_opt = app.add_option("--class", class_name, "dynamic port class from the broker")
                        ->check(CLI::IsMember({"default", "internet", "intranet"}))
                        ->needs(epmd_opt);
  auto* port_opt = app.add_option("--port", port, "static port (0: the kernel chooses)");
  auto* listen_opt =
      app.add_option("--listen", listen, "address to listen on (static port; repeatable)");
  class_opt->excludes(port_opt)->excludes(listen_opt);
  auto* uuid_opt = app.add_option("--uuid", uuid, "interface UUID to serve and register");
  auto* version_opt = app.add_option("--version", version, "interface version MAJOR.MINOR");
  auto* interface_opt =
      app.add_option("--interface", interface_texts,
                     "UUID:MAJOR.MINOR to serve and register (repeatable; all on the one port; "
                     "instead of --uuid/--version)");
  interface_opt->excludes(uuid_opt)->excludes(version_opt);
  app.add_option("--annotation", annotation, "EPM annotation (at most 63 characters)")
      ->needs(epmd_opt);
  app.add_option("--max-seconds", max_seconds,
                 "exit after S seconds (0: never; default 120 standalone, 0 with --epmd)");
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;
  if (interface_texts.empty()) interface_texts.push_back(uuid + ":" + version);
  std::vector<rpcgate::rpc::SyntaxId> interfaces;
  for (const auto& text : interface_texts) {
    const auto id = rpcgate::runtime::parse_interface(text);
    if (!id) {
      std::cerr << "rpcgate-testsrv: bad interface \"" << text
                << "\" (--interface UUID:MAJOR.MINOR, or --uuid UUID --version MAJOR.MINOR)\n";
      return kExitUsage;
    }
    interfaces.push_back(*id);
  }
  const bool registrant = !epmd_path.empty();
  const int limit = max_seconds.value_or(registrant ? 0 : 120);

  asio::io_context io;
  Server server(io);
  for (const auto& id : interfaces) {
    if (!rpcgate::runtime::testing::add_test_interface(server, id)) {
      std::cerr << "rpcgate-testsrv: interface " << describe(id)
                << " is already served by the runtime (MGMT, or given twice)\n";
      return kExitUsage;
    }
  }

  std::optional<EpmdClient> epmd;
  if (registrant) {
    auto c = EpmdClient::connect(epmd_path);
    if (!c) return fail("cannot connect to rpcgate-epmd at " + epmd_path, c.error());
    epmd.emplace(std::move(*c));
  }

  std::uint16_t served = 0;
  if (!class_name.empty()) {
    const auto cls = rpcgate::policy::parse_port_class(class_name);
    auto p = rpcgate::runtime::serve_broker_port(server, *epmd, *cls);
    if (!p) return fail("cannot allocate a port of class " + class_name, p.error());
    served = *p;
  } else {
    auto addresses = rpcgate::runtime::parse_addresses(listen);
    if (!addresses) {
      std::cerr << "rpcgate-testsrv: bad --listen address: " << addresses.error() << "\n";
      return kExitUsage;
    }
    auto p = server.listen_tcp(*addresses, port);
    if (!p) {
      std::cerr << "rpcgate-testsrv: cannot listen: " << p.error().message() << "\n";
      return 1;
    }
    served = *p;
  }

  if (epmd) {
    for (const auto& id : interfaces) {
      if (auto r = epmd->register_endpoint(id, served, annotation); !r)
        return fail("cannot register " + describe(id) + " at port " + std::to_string(served),
                    r.error());
    }
  }
  std::cout << "port=" << served << std::endl;  // endl: flushed

  int status = 0;
  auto quit = [&](int s) {
    if (io.stopped()) return;
    status = s;
    server.stop();
    io.stop();
  };
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& ec, int) {
    if (ec) return;
    for (const auto& id : interfaces)
      rpcgate::runtime::unregister_on_exit(epmd ? &*epmd : nullptr, id, served);
    quit(0);
  });
  asio::steady_timer timer(io);
  if (limit > 0) {
    timer.expires_after(std::chrono::seconds(limit));
    timer.async_wait([&](const asio::error_code& ec) {
      if (!ec) quit(0);
    });
  }
  std::unique_ptr<asio::posix::stream_descriptor> lease;
  if (epmd) {
    lease = rpcgate::runtime::watch_lease(io, *epmd, [&] {
      std::cerr << "rpcgate-testsrv: rpcgate-epmd closed the connection: error 1722\n";
      quit(exit_status(1722));
    });
  }
  std::unique_ptr<asio::posix::stream_descriptor> in;
  char byte = 0;
  std::function<void()> watch_stdin = [&] {
    in->async_read_some(asio::buffer(&byte, 1), [&](const asio::error_code& ec, std::size_t) {
      if (ec) return quit(0);
      watch_stdin();
    });
  };
  if (!registrant) {
    in = std::make_unique<asio::posix::stream_descriptor>(io, ::dup(STDIN_FILENO));
    watch_stdin();
  }
  io.run();
  return status;
}
