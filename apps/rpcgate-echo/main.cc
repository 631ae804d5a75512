// rpcgate-echo: serves rpcecho (Samba's echo.idl test interface, echo/echo.h) over ncacn_ip_tcp,
// registered with rpcgate-epmd through the port broker.
//
//   rpcgate-echo [--control PATH] [--class default|internet|intranet | --port N [--listen ADDR]...]
//                [--no-register] [--annotation TEXT] [--log-level LEVEL]
//
// Registered (the default): connects to rpcgate-epmd's control socket (--control, default
// /run/rpcgate/epmd.sock; that one connection is the lease for the life of the process), takes a
// dynamic port of --class (default "default") from the broker and serves the sockets it passes,
// or with --port listens itself on --listen (default 0.0.0.0); then ept_insert of rpcecho v1.0
// at ncacn_ip_tcp:0.0.0.0[N] with --annotation. SIGTERM/SIGINT: ept_delete, exit 0. epmd closing
// the connection: exit 186 (1722). --no-register: no epmd, --port/--listen only.
//
// stdout, once serving: `port=N` (machine-readable, flushed), then
// `rpcgate-echo: serving rpcecho 60a15ec5-4de8-11d7-a637-005056a20182 v1.0 on ncacn_ip_tcp port N
// (class C)` (C = the class, "static" for --port). Errors: one line on stderr with the Windows
// code, `rpcgate-echo: <what failed>: error <code> (<message>)`, exit status = code modulo 256
// (87 -> 87, 1721 -> 185, 1722 -> 186); usage errors exit 2.
#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "common/command_line.h"
#include "echo/echo.h"
#include "runtime/epmd_client.h"
#include "runtime/registrant.h"
#include "runtime/server.h"

namespace {

using rpcgate::runtime::exit_status;

using rpcgate::common::kExitUsage;

int fail(const std::string& what, std::error_code ec) {
  std::cerr << "rpcgate-echo: " << what << ": error " << ec.value() << " (" << ec.message()
            << ")\n";
  return exit_status(ec.value());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rpcgate-echo: the rpcecho test interface, registered with rpcgate-epmd"};
  std::string control = rpcgate::runtime::kDefaultEpmdSocket;
  std::string class_name = "default";
  std::optional<std::uint16_t> port;
  std::vector<std::string> listen{"0.0.0.0"};
  bool no_register = false;
  std::string annotation = "rpcgate echo";
  std::string log_level = "info";
  app.add_option("--control", control, "rpcgate-epmd control socket");
  auto* class_opt = app.add_option("--class", class_name, "dynamic port class from the broker")
                        ->check(CLI::IsMember({"default", "internet", "intranet"}));
  auto* port_opt = app.add_option("--port", port, "static port instead of a broker port");
  auto* listen_opt =
      app.add_option("--listen", listen, "address for --port (repeatable)")->needs(port_opt);
  auto* no_reg_opt = app.add_flag("--no-register", no_register, "standalone: no rpcgate-epmd");
  class_opt->excludes(port_opt)->excludes(listen_opt)->excludes(no_reg_opt);
  no_reg_opt->needs(port_opt);
  app.add_option("--annotation", annotation, "EPM annotation (at most 63 characters)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.set_version_flag("--version", std::string("rpcgate-echo ") + RPCGATE_VERSION);
  if (auto status = rpcgate::common::parse_command_line(app, argc, argv)) return *status;
  spdlog::set_level(spdlog::level::from_str(log_level));

  const auto interface = rpcgate::echo::rpcecho_syntax();
  asio::io_context io;
  rpcgate::runtime::Server server(io);
  server.add_interface(interface, rpcgate::echo::make_echo_handler(io));

  std::optional<rpcgate::runtime::EpmdClient> epmd;
  if (!no_register) {
    auto c = rpcgate::runtime::EpmdClient::connect(control);
    if (!c) return fail("cannot connect to rpcgate-epmd at " + control, c.error());
    epmd.emplace(std::move(*c));
  }

  std::uint16_t served = 0;
  std::string served_class = "static";
  if (!port) {
    auto p = rpcgate::runtime::serve_broker_port(server, *epmd,
                                                 *rpcgate::policy::parse_port_class(class_name));
    if (!p) return fail("cannot allocate a port of class " + class_name, p.error());
    served = *p;
    served_class = class_name;
  } else {
    auto addresses = rpcgate::runtime::parse_addresses(listen);
    if (!addresses) {
      std::cerr << "rpcgate-echo: bad --listen address: " << addresses.error() << "\n";
      return kExitUsage;
    }
    auto p = server.listen_tcp(*addresses, *port);
    if (!p) {
      // ERROR_INVALID_PARAMETER for a port we cannot take, as the broker reports it.
      std::cerr << "rpcgate-echo: cannot listen on port " << *port << ": " << p.error().message()
                << ": error 87\n";
      return exit_status(87);
    }
    served = *p;
  }

  if (epmd) {
    if (auto r = epmd->register_endpoint(interface, served, annotation); !r)
      return fail("cannot register rpcecho at port " + std::to_string(served), r.error());
  }
  std::cout << "port=" << served << "\n"
            << "rpcgate-echo: serving rpcecho " << interface.uuid.to_string() << " v"
            << interface.major << "." << interface.minor << " on ncacn_ip_tcp port " << served
            << " (class " << served_class << ")" << std::endl;

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
    rpcgate::runtime::unregister_on_exit(epmd ? &*epmd : nullptr, interface, served);
    quit(0);
  });
  std::unique_ptr<asio::posix::stream_descriptor> lease;
  if (epmd) {
    lease = rpcgate::runtime::watch_lease(io, *epmd, [&] {
      std::cerr << "rpcgate-echo: rpcgate-epmd closed the connection: error 1722\n";
      quit(exit_status(1722));
    });
  }
  io.run();
  return status;
}
