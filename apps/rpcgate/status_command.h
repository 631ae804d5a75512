// `rpcgate status`: who holds which RPC port and what it serves, asked of the running
// rpcgate-epmd over its control socket (QueryStatus, runtime/status_protocol.h; issue 15).
//
//   rpcgate status [--control PATH] [--port N] [--json] [--timeout S]
//
// Needs what registering needs: a peer the control socket admits as a registrant (root, epmd's
// own user, `--registrant` users and groups). Anyone else gets "permission denied" (exit 4):
// either the socket's mode keeps them out, or epmd answers status 5.
//
// Table (the default): one row per port a lease holds (a lease without ports: one row, PORT -),
//   PID  UID  COMMAND  PORT  CLASS  SINCE  INTERFACES
// INTERFACES: the lease's registrations whose binding names that port (all of them on its first
// row when none does), as UUID vM.m and "annotation"; SINCE: when the port was allocated (the
// lease for a row without port), local time. Then the registrations that are not leased
// (persistent, static, epmd's own) with their owner uid and binding, then each pool:
// `internet  size 100  held 2  free 98`. A "(truncated: ...)" line when epmd left entries out.
//
// --port N: one line answering "which process holds port N, and what does it serve":
//   port 50123 (internet): pid 4242 uid 0 rpcgate-echo, since 2026-12-02 13:40:01, serves
//   60a15ec5-4de8-11d7-a637-005056a20182 v1.0 "rpcgate echo"
// or, for a port no lease holds, the non-leased registrations naming it; exit 1 when nothing
// holds or names it. With --json the object below restricted to what concerns the port.
//
// --json: one object, stable field names (times: seconds since 1970, UTC):
//   {"now": N, "truncated": false,
//    "leases": [{"connection": N, "pid": N, "uid": N, "gid": N, "command": "rpcgate-echo",
//                "since": N,
//                "ports": [{"port": 50123, "class": "internet", "since": N}],
//                "interfaces": [{"uuid": "...", "version": "1.0", "object": "...",
//                                "annotation": "...", "binding": "ncacn_ip_tcp:0.0.0.0[50123]"}]}],
//    "registrations": [{"kind": "persistent"|"static"|"epmd", "uid": N|null, "uuid": "...",
//                       "version": "M.m", "object": "...", "annotation": "...", "binding": "..."}],
//    "pools": [{"class": "internet", "size": N, "held": N, "free": N}]}
// ("uid" is null for epmd's own and static entries; "object" is the nil UUID when none.)
// Bytes a process put in its name that are not printable are shown \xNN in the table; JSON
// replaces invalid UTF-8 with U+FFFD.
//
// Exit statuses: 0 ok; 1 --port: nothing holds or registers that port; 2 usage; 3 rpcgate-epmd
// is not running (no socket at PATH, or nothing listening on it); 4 permission denied (the socket
// is closed to this user, or epmd refused: not a registrant); 5 any other failure talking to it
// (timeout, not rpcgate-epmd, an epmd without QueryStatus, an answer that does not decode).
#pragma once

#include <CLI/CLI.hpp>

namespace rpcgate::cli {

inline constexpr int kExitStatusNotRunning = 3;
inline constexpr int kExitStatusDenied = 4;
inline constexpr int kExitStatusFailed = 5;

// Adds `status` to `app`; the command stores its exit status in `*exit_status`.
void add_status_command(CLI::App& app, int* exit_status);

}  // namespace rpcgate::cli
