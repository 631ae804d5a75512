#include "activation.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "runtime/net.h"

namespace rpcgate::epmd {
namespace {

// "fd 3 (rpcgate-epmd.socket)": the unit names each descriptor (FileDescriptorName=, default the
// socket unit's name); systemd-socket-activate passes none unless --fdname.
std::string describe(int fd, char** names, int index) {
  std::string s = "fd " + std::to_string(fd);
  if (names != nullptr && names[index] != nullptr && names[index][0] != '\0')
    s += std::string(" (") + names[index] + ")";
  return s;
}

void close_all(int first, int count) {
  for (int fd = first; fd < first + count; ++fd)
    ::close(fd);
}

std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return runtime::format_sockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
}

}  // namespace

std::expected<std::optional<InheritedSockets>, std::string> take_inherited_sockets() {
  char** names = nullptr;
  // unset_environment = 1: the variables describe this process only; the registrants and probes
  // epmd starts or talks to must never believe they were activated.
  const int n = sd_listen_fds_with_names(1, &names);
  struct FreeNames {
    char** names;
    ~FreeNames() {
      if (names == nullptr) return;
      for (char** p = names; *p != nullptr; ++p)
        std::free(*p);
      std::free(names);
    }
  } free_names{names};
  if (n < 0) return std::unexpected(std::string("socket activation: ") + std::strerror(-n));
  if (n == 0) return std::nullopt;

  InheritedSockets out;
  std::string error;
  int unix_count = 0;
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    out.descriptions.push_back(describe(fd, names, i));
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (!error.empty()) continue;
    // listening = 1: a socket systemd passed with Accept=yes (one connection) is refused.
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0) {
      out.tcp.push_back(fd);
    } else if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) > 0) {
      if (++unix_count > 1) {
        error = "inherited " + out.descriptions.back() + " " + local_address(fd) +
                ": a second Unix socket (the unit must pass exactly one control socket)";
      }
      out.control = fd;
    } else {
      error = "inherited " + out.descriptions.back() +
              ": not a listening TCP or Unix stream socket (" + local_address(fd) + ")";
    }
  }
  if (error.empty() && out.tcp.empty())
    error = "no listening TCP socket among the " + std::to_string(n) +
            " inherited (the socket unit needs ListenStream= for port 135)";
  if (error.empty() && out.control < 0)
    error = "no listening Unix socket among the " + std::to_string(n) +
            " inherited (the socket unit needs ListenStream= for the control socket)";
  if (!error.empty()) {
    close_all(SD_LISTEN_FDS_START, n);
    return std::unexpected("socket activation: " + error);
  }
  return out;
}

std::expected<AdoptedListeners, std::string> adopt_inherited(runtime::Server& server,
                                                             InheritedSockets sockets,
                                                             const runtime::PeerPolicy& peers) {
  AdoptedListeners adopted;
  std::string error;
  for (const int fd : sockets.tcp) {
    if (!error.empty()) {
      ::close(fd);
      continue;
    }
    const std::string address = local_address(fd);
    auto port = server.adopt_listener(fd);  // owns fd from here, on error too
    if (!port) {
      error = "inherited fd " + std::to_string(fd) + " " + address + ": " + port.error().message();
      continue;
    }
    adopted.addresses.push_back(address);
    if (std::find(adopted.ports.begin(), adopted.ports.end(), *port) == adopted.ports.end())
      adopted.ports.push_back(*port);
  }
  if (!error.empty()) {
    ::close(sockets.control);
    return std::unexpected(error);
  }
  std::string control = local_address(sockets.control);
  if (control.starts_with("unix:")) control.erase(0, 5);
  if (auto ok = server.adopt_listener(sockets.control, peers); !ok)
    return std::unexpected("inherited fd " + std::to_string(sockets.control) + " " + control +
                           ": " + ok.error().message());
  adopted.control = control;
  return adopted;
}

}  // namespace rpcgate::epmd
