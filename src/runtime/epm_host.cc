#include "runtime/epm_host.h"

#include "rpc/pdu.h"

namespace rpcgate::runtime {

void complete(Responder r, const epm::CallResult& result) {
  if (result)
    r.reply(*result);
  else
    r.fault(result.error().status);
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
    complete(std::move(r), service.call(ctx.opnum, ctx.stub, ctx.endian, caller_info(ctx)));
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
