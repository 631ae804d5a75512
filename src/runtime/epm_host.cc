#include "runtime/epm_host.h"

#include "rpc/pdu.h"

namespace rpcgate::runtime {

void send_outcome(Responder r, const epm::OutcomeView& outcome) {
  if (outcome)
    r.reply(*outcome);
  else
    r.fault(outcome.error().status);
}

void send_outcome(Responder r, const epm::Outcome& outcome) {
  if (outcome)
    r.reply(*outcome);
  else
    r.fault(outcome.error().status);
}

epm::CallerInfo caller_info(const IncomingCall& ctx) {
  epm::CallerInfo caller;
  caller.connection_id = ctx.connection_id;
  caller.may_register = ctx.may_register;
  caller.local_ipv4 = ctx.local_ipv4;
  caller.uid = ctx.peer_uid;
  caller.peer_key = ctx.peer_key;
  caller.peer = ctx.peer_address;
  return caller;
}

Handler epm_handler(epm::EpmService& service) {
  return [&service](IncomingCall& ctx, Responder r) {
    send_outcome(std::move(r), service.respond(ctx.opnum, ctx.stub, ctx.endian, caller_info(ctx)));
  };
}

bool attach_epm_service(Server& server, epm::EpmService& service,
                        UnregisteredHook on_unregistered) {
  if (!server.add_interface(rpc::kEpmSyntax, epm_handler(service), epm::kMaxRequestStub))
    return false;
  server.on_connection_closed(
      [&service, on_unregistered = std::move(on_unregistered)](std::uint64_t id) {
        const std::size_t removed = service.connection_closed(id);
        if (removed > 0 && on_unregistered) on_unregistered(id, removed);
      });
  return true;
}

}  // namespace rpcgate::runtime
