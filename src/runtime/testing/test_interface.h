// A made-up test interface served by runtime tests and rpcgate-testsrv:
//   rpcgate_test 6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01 v1.0
//   opnum 0  Echo(stub) -> the same stub
//   opnum 1  SleepEcho([in] u32 milliseconds, ...) -> the whole stub, after a timer
//   opnum 2  Blob([in] u32 size) -> `size` bytes (i & 0xff), at most 4 MiB
//   opnum 3  Throw -> the handler throws (the runtime answers nca_s_fault_unspec)
//   opnum 4  Peer -> u32 uid, u32 may_register (Unix; 0xffffffff when no credentials)
//   others   fault nca_s_op_rng_error
#pragma once

#include "rpc/pdu.h"
#include "runtime/server.h"

namespace rpcgate::runtime::testing {

const rpc::SyntaxId& test_syntax();
// Registers the handler for test_syntax() / for `interface` (same operations); false if that
// interface (uuid + major) is already registered.
bool add_test_interface(Server& server);
bool add_test_interface(Server& server, const rpc::SyntaxId& interface);

}  // namespace rpcgate::runtime::testing
