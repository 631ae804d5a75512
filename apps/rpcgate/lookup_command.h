// `rpcgate lookup|map|ifids`: what an administrator asks a host's RPC services, with the client
// runtime (runtime/rpc_client.h).
//
//   rpcgate lookup HOST [--port 135] [--timeout S] [--json]
//       Every endpoint-mapper entry (ept_lookup, paged 500 at a time, handle freed on abort),
//       grouped by interface like Impacket's rpcdump.py: interface UUID and version, the
//       well-known name (EPM, MGMT, samr, ...) where known, annotation, bindings. No entries:
//       "no entries", exit 0. --json: {"host","port","entries":[{"object","interface",
//       "version","name","annotation","binding","protseq","endpoint"}]}.
//   rpcgate map HOST UUID[:MAJOR.MINOR] [--protseq ncacn_ip_tcp] [--object UUID] [--port 135]
//       ept_map for the interface (version default 1.0) over the protseq with NDR 2.0; prints
//       the binding (host as given). Not registered: exit 1, "ept_s_not_registered
//       (0x16c9a0d6)" on stderr.
//   rpcgate ifids BINDING [--interface UUID[:MAJOR.MINOR]] [--epm-port 135]
//       The interfaces the server at BINDING exports (MGMT inq_if_ids). BINDING needs a port
//       (ncacn_ip_tcp:HOST[PORT]): every server exports MGMT, so MGMT cannot be mapped to one
//       server; give --interface to find the port of the server exporting that interface
//       through the endpoint mapper instead.
//
// All three: --timeout S (default 5) bounds the connect and each call separately; --json prints
// one object on stdout.
//
// Exit statuses (stable, for scripts): 0 success; 1 not found or the call failed (fault, bind
// rejected, non-zero status, a reply that is not DCE/RPC); 2 bad usage; 3 network error
// (connection refused, host unreachable or unknown, timed out, connection closed).
#pragma once

#include <CLI/CLI.hpp>

namespace rpcgate::cli {

inline constexpr int kExitNetwork = 3;

// Adds `lookup`, `map` and `ifids` to `app`; the chosen command stores its exit status in
// `*exit_status`.
void add_lookup_commands(CLI::App& app, int* exit_status);

}  // namespace rpcgate::cli
