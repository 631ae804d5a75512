// `rpcgate register|unregister`: add or remove an endpoint-mapper entry over rpcgate-epmd's
// control socket (runtime/epmd_client.h), for a server that does not register itself.
//
//   rpcgate register INTERFACE BINDING [--annotation TEXT] [--object UUID] [--lease]
//                    [--control PATH] [--timeout S] [--json]
//       ept_insert (replace) of INTERFACE (UUID[:MAJOR.MINOR], version default 1.0) at BINDING
//       (a string binding: ncacn_ip_tcp:0.0.0.0[5000], ncalrpc:[/run/x.sock], ...; an object
//       given as uuid@ or with --object). Default: a persistent entry (epm_service.h "Leases"):
//       it stays after the command exits, until `rpcgate unregister` (the same uid, or root), or
//       until epmd's liveness sweep finds BINDING dead. --lease: ask for a lease first (HoldLease)
//       and stay running until SIGTERM / SIGINT, then unregister and exit 0; the entry goes when
//       the command ends in any way (kill -9 included) - for wrapping a server that cannot
//       register itself: `rpcgate register --lease IF BINDING & exec server`. Prints
//       "registered ..." (with --lease once the entry is in, so a wrapper may wait for it).
//   rpcgate unregister INTERFACE BINDING [--object UUID] [--control PATH] [--timeout S] [--json]
//       ept_delete of that entry (object + exact tower: the interface version must match).
//
// --control: the socket (default /run/rpcgate/epmd.sock); --timeout S (default 5) bounds the
// connect and each call. --json: one object {"action","interface","binding","object",
// "annotation","lease","status"} on stdout.
// Exit statuses: 0 success; 1 refused or failed (ept_s_cant_perform_op: this user is not a
// registrant, the entry is another user's or epmd's, or a cap is reached - explained on stderr;
// ept_s_not_registered; ept_s_invalid_entry); 2 usage; 3 epmd unreachable (no socket, refused,
// timed out, connection lost - with --lease also when epmd closes the lease while waiting).
#pragma once

#include <CLI/CLI.hpp>

namespace rpcgate::cli {

// Adds `register` and `unregister` to `app`; the chosen command stores its exit status in
// `*exit_status`.
void add_register_commands(CLI::App& app, int* exit_status);

}  // namespace rpcgate::cli
