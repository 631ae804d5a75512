// Test-only loopback server for tests/assoc_impacket_test.py: real Impacket against
// rpc::ServerAssociation. Single-threaded, one connection at a time, 127.0.0.1 only.
//
//   rpc_assoc_echo_server [port=0] [connections=16]
//
// Prints "PORT <n>" on stdout once listening, serves `connections` connections one after the
// other, then exits. Offers EPM v3.0 and MGMT v1.0; answers binds/alter_contexts through
// ServerAssociation and every complete call with fault nca_s_op_rng_error (build_fault).
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/association.h"
#include "rpc/framer.h"
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

// The association's answer to the framer's latest outcome (a complete PDU or an error).
Decision next_decision(ServerAssociation& assoc, Framer& framer,
                       const std::expected<std::size_t, std::error_code>& fed,
                       std::span<const std::uint8_t> rest) {
  if (!fed) return assoc.handle_malformed(fed.error(), rest);
  auto pdu = decode_pdu(framer.frame());
  Decision d =
      pdu ? assoc.handle(std::move(*pdu)) : assoc.handle_malformed(pdu.error(), framer.frame());
  framer.pop();
  return d;
}

// Serves one connection until the peer closes or the association decides to close.
void serve(int fd, const std::string& port) {
  ServerConfig config;
  config.interfaces = make_interface_lookup({kEpmSyntax, kMgmtSyntax});
  config.secondary_address = port;
  config.new_assoc_group_id = 0x12345;
  ServerAssociation assoc(config);
  Framer framer(config.max_frag);
  std::vector<std::uint8_t> buf(8192);
  for (;;) {
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
    if (got <= 0) return;
    std::span<const std::uint8_t> data(buf.data(), static_cast<std::size_t>(got));
    while (!data.empty()) {
      auto n = framer.feed(data);
      if (n) data = data.subspan(*n);
      if (n && !framer.ready()) continue;
      const Decision d = next_decision(assoc, framer, n, data);
      if (assoc.state() == ServerAssociation::State::kBound) {
        framer.set_max_frag_length(assoc.max_recv_frag());
      }
      switch (d.action) {
        case Decision::Action::kSend:
          if (!write_all(fd, d.pdu)) return;
          break;
        case Decision::Action::kDispatch: {
          const Call& call = d.call->call;
          const auto fault =
              build_fault(call.call_id, call.p_cont_id, status::kNcaSOpRngError, call.drep);
          if (!write_all(fd, fault)) return;
          break;
        }
        case Decision::Action::kCloseConnection:
          std::fprintf(stderr, "close: %s\n", d.reason.message().c_str());
          if (!d.pdu.empty()) write_all(fd, d.pdu);
          return;
        case Decision::Action::kIgnore:
          break;
      }
    }
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
