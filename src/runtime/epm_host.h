// Hosting the sans-I/O endpoint-mapper services (src/epm: EpmService, MgmtService) on a Server:
// the glue between an IncomingCall / Responder and an epm::Outcome. rpcgate-epmd hosts EPM on
// its TCP 135 listener and on its Unix listener (where registrations come from); every Server
// hosts MGMT itself (ServerOptions::export_mgmt).
//
// Thread model and lifetimes: the Server's (one io thread). The service must outlive the Server
// it is attached to (or that Server's stop()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "epm/call.h"
#include "epm/epm_service.h"
#include "runtime/server.h"

namespace rpcgate::runtime {

// Sends `outcome` on `r`: the stub as the response, or a fault PDU with its status. The stub is
// copied into the response PDU(s) before this returns, so a view (OutcomeView, valid until the
// service's next call) is enough.
void send_outcome(Responder r, const epm::OutcomeView& outcome);
void send_outcome(Responder r, const epm::Outcome& outcome);

// What the EPM needs to know about the caller, from the call's context: connection_id (the
// registration owner and context-handle scope), may_register (true only for a Unix peer the
// listener's PeerPolicy allows), local_ipv4 (host floor of returned towers), peer (a view of
// ctx.peer_address: valid while `ctx` is).
epm::CallerInfo caller_info(const IncomingCall& ctx);

// The Handler for EPM e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 over `service` (captures it).
Handler epm_handler(epm::EpmService& service);

// Called with a closed connection's id and how many registrations its close removed (> 0 only).
using UnregisteredHook = std::function<void(std::uint64_t connection_id, std::size_t removed)>;

// add_interface(rpc::kEpmSyntax, epm_handler(service)) and on_connection_closed ->
// service.connection_closed(id) (context handle rundown; the connection's registrations go:
// the connection is the lease), then `on_unregistered` when that removed any (rpcgate-epmd logs
// them). False (nothing changed) if EPM was already registered.
bool attach_epm_service(Server& server, epm::EpmService& service,
                        UnregisteredHook on_unregistered = {});

}  // namespace rpcgate::runtime
