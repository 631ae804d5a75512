// Test-only loopback server for tests/assoc_impacket_test.py: real Impacket against
// rpc::ServerAssociation. Single-threaded, one connection at a time, 127.0.0.1 only.
//
//   rpc_assoc_echo_server [port=0] [connections=16]
//
// Prints "PORT <n>" on stdout once listening, serves `connections` connections one after the
// other, then exits. Offers EPM v3.0 and MGMT v1.0; answers binds/alter_contexts through the
// server role of rpc::Connection and every complete call with fault nca_s_op_rng_error.
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/connection.h"
#include "rpc/pdu.h"
#include "rpc/status.h"

namespace {
using namespace rpcgate::rpc;

bool write_all(int fd, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

// Answers every call with fault nca_s_op_rng_error.
struct Faulting : ConnectionHandler {
  Connection* engine = nullptr;
  void on_call(ServerCall& call) override {
    engine->respond_fault(call_ref(call), status::kNcaSOpRngError, {});
  }
};

// Serves one connection until the peer closes or the engine decides to close.
void serve(int fd, const std::string& port) {
  ServerConfig config;
  config.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
  config.secondary_address = port;
  config.new_assoc_group_id = 0x12345;
  Faulting handler;
  // No deadlines: the test drives every exchange itself (time is passed as the zero point).
  ConnectionOptions options{.idle_before_bind = {}, .idle_after_bind = {}, .pdu = {}, .write = {}};
  options.max_frag_before_bind = config.max_frag;
  Connection engine(ServerRole{config}, options, handler, {});
  handler.engine = &engine;
  std::vector<std::uint8_t> buf(8192);
  for (;;) {
    for (auto out = engine.next_output(); !out.bytes.empty(); out = engine.next_output()) {
      if (!write_all(fd, out.bytes)) return;
      engine.output_sent(out.bytes.size(), {});
    }
    if (engine.done()) {
      std::fprintf(stderr, "close: %s\n", engine.close_info().error.message().c_str());
      return;
    }
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
    if (got <= 0) return;
    engine.feed(Direction::kClientToServer,
                std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(got)), {});
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int want_port = argc > 1 ? std::atoi(argv[1]) : 0;
  const int connections = argc > 2 ? std::atoi(argv[2]) : 16;
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return std::perror("socket"), 1;
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(want_port));
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4) != 0) {
    return std::perror("bind/listen"), 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  std::printf("PORT %s\n", port.c_str());
  std::fflush(stdout);
  for (int i = 0; i < connections; ++i) {
    const int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) break;
    serve(fd, port);
    ::close(fd);
  }
  ::close(lfd);
  return 0;
}
