// rpcgate-testsrv: the runtime test interface (internal/test_interface.h) on 127.0.0.1, for
// interop tests with real clients. Prints the port on stdout, then serves until SIGTERM/SIGINT,
// until stdin closes, or for at most --max-seconds (default 120) so a crashed test leaves nothing.
//   rpcgate-testsrv [--port N] [--max-seconds S]
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <unistd.h>

#include "runtime/internal/test_interface.h"
#include "runtime/server.h"

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  int max_seconds = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port")
      port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--max-seconds")
      max_seconds = std::atoi(argv[i + 1]);
  }
  asio::io_context io;
  rpcgate::runtime::Server server(io);
  rpcgate::runtime::testing::add_test_interface(server);
  auto p = server.listen_tcp({asio::ip::make_address("127.0.0.1")}, port);
  if (!p) {
    std::cerr << "rpcgate-testsrv: " << p.error().message() << "\n";
    return 1;
  }
  std::cout << *p << std::endl;

  auto quit = [&] {
    server.stop();
    io.stop();
  };
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code&, int) { quit(); });
  asio::steady_timer limit(io, std::chrono::seconds(max_seconds));
  limit.async_wait([&](const asio::error_code& ec) {
    if (!ec) quit();
  });
  asio::posix::stream_descriptor in(io, ::dup(STDIN_FILENO));
  char byte;
  std::function<void()> watch_stdin = [&] {
    in.async_read_some(asio::buffer(&byte, 1), [&](const asio::error_code& ec, std::size_t) {
      if (ec) return quit();
      watch_stdin();
    });
  };
  watch_stdin();
  io.run();
  return 0;
}
