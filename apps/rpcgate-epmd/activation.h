// Socket activation (sd_listen_fds(3)): started by systemd through rpcgate-epmd.socket, or by
// `systemd-socket-activate`, rpcgate-epmd serves the listening sockets it inherited and binds
// none itself - the [epmd] listen/control settings and --listen/--control are then ignored
// (logged). Started by hand (LISTEN_FDS unset), nothing here applies and the daemon binds as
// configured.
//
// What is inherited is told apart by the socket itself (sd_is_socket_inet / sd_is_socket_unix),
// not by its FileDescriptorName= (the name is only logged), so the order of ListenStream= lines
// does not matter:
//   * listening TCP stream sockets, IPv4 or IPv6: endpoint-mapper listeners (ncacn_ip_tcp), at
//     least one;
//   * exactly one listening Unix stream socket: the control socket (registration and the port
//     broker). Who may connect is its file's mode and owner (the unit's SocketMode=/SocketUser=/
//     SocketGroup=); who may register is decided by epmd's registrant rule as for a socket it
//     bound itself (config.h). epmd never unlinks that file: it belongs to systemd.
// Anything else inherited (a datagram socket, a socket not listening, a pipe) refuses the start:
// a unit that passes what epmd cannot serve is a configuration error, not something to skip.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "runtime/server.h"

namespace rpcgate::epmd {

struct InheritedSockets {
  std::vector<int> tcp;  // listening TCP stream sockets (owned: adopt or close)
  int control = -1;      // the listening Unix stream socket
  // One "fd N (NAME)" per inherited descriptor, in order, for the start-up log.
  std::vector<std::string> descriptions;
};

// Takes the descriptors systemd passed (SD_LISTEN_FDS_START...): nullopt when this process was
// not socket-activated (LISTEN_FDS unset, or LISTEN_PID names another process). LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES are unset either way (the processes epmd starts never see them),
// and each inherited descriptor gets FD_CLOEXEC. Error (every inherited descriptor closed): a
// sentence naming the descriptor and its FileDescriptorName= - one that is not a listening TCP or
// Unix stream socket, no TCP listener, no or more than one Unix socket - or sd_listen_fds' own.
std::expected<std::optional<InheritedSockets>, std::string> take_inherited_sockets();

// What the adopted listeners are: "A:PORT" / "[A]:PORT" per TCP socket, the distinct ports (for
// the endpoint mapper's own entries) and the control socket's path ("" if unnamed).
struct AdoptedListeners {
  std::vector<std::string> addresses;
  std::vector<std::uint16_t> ports;
  std::string control;
};

// Hands every inherited socket to `server` (Server::adopt_listener): the TCP ones as endpoint-
// mapper listeners, the Unix one under `peers` (who may register). Consumes `sockets`. Error:
// "inherited fd N: why" (the rest are closed).
std::expected<AdoptedListeners, std::string> adopt_inherited(runtime::Server& server,
                                                             InheritedSockets sockets,
                                                             const runtime::PeerPolicy& peers);

}  // namespace rpcgate::epmd
