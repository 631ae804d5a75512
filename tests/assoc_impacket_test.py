#!/usr/bin/python3
"""Interop: real Impacket 0.10.0 against rpc::ServerAssociation (tests/assoc_echo_server_main.cc).

The harness offers EPM v3.0 and MGMT v1.0 on 127.0.0.1 (port 0), answers binds through
ServerAssociation and every call with fault nca_s_op_rng_error. Checks, each on a fresh
connection where it matters:
  * dce.bind(EPM) succeeds (bind_ack parsed and accepted by Impacket);
  * a call gets DCERPCException nca_s_op_rng_error (dce.call + dce.recv, and dce.request);
  * binding an unknown UUID raises abstract_syntax_not_supported;
  * alter_ctx to MGMT works and calls on the new context get the same fault;
    alter_ctx to an unknown UUID raises abstract_syntax_not_supported; re-defining an
    accepted context id raises nca_s_proto_error;
  * a second bind on the same connection raises reason_not_specified (bind_nak, as Samba).
Run with Debian's interpreter (/usr/bin/python3 has python3-impacket).
"""

import os
import subprocess
import sys

from impacket.dcerpc.v5 import epm, mgmt, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.uuid import uuidtup_to_bin

UNKNOWN = uuidtup_to_bin(('01020304-0506-0708-090a-0b0c0d0e0f10', '1.0'))
CONNECTIONS = 5


def connect(port):
    dce = transport.DCERPCTransportFactory('ncacn_ip_tcp:127.0.0.1[%d]' % port).get_dce_rpc()
    dce.connect()
    return dce


def expect_raise(fn, text):
    try:
        fn()
    except DCERPCException as e:
        assert text in str(e), 'expected %r in %r' % (text, str(e))
        return str(e)
    raise AssertionError('no DCERPCException (expected %r)' % text)


def run(port):
    # 1. bind EPM, fault for unknown opnum via call/recv and via request.
    dce = connect(port)
    dce.bind(epm.MSRPC_UUID_PORTMAP)

    def call_recv():
        dce.call(99, b'')
        dce.recv()
    expect_raise(call_recv, 'nca_s_op_rng_error')
    request = epm.ept_lookup()
    request['inquiry_type'] = epm.RPC_C_EP_ALL_ELTS
    request['vers_option'] = epm.RPC_C_VERS_ALL
    request['max_ents'] = 500
    expect_raise(lambda: dce.request(request), 'nca_s_op_rng_error')

    # 2. alter_context: MGMT (offered) works; unknown UUID is rejected per item.
    dce2 = dce.alter_ctx(mgmt.MSRPC_UUID_MGMT)
    expect_raise(lambda: mgmt.hinq_if_ids(dce2), 'nca_s_op_rng_error')
    expect_raise(lambda: dce2.alter_ctx(UNKNOWN), 'abstract_syntax_not_supported')  # ctx 2
    # Impacket numbers alter_ctx contexts parent._ctx + 1, so a second alter_ctx from `dce`
    # re-defines ctx 1 with another UUID: our documented fail-closed answer (association.h,
    # docs/evasions.md C7) is fault nca_s_proto_error, then the connection is closed.
    expect_raise(lambda: dce.alter_ctx(UNKNOWN), 'nca_s_proto_error')
    dce.disconnect()

    # 3. unknown interface in the bind.
    dce = connect(port)
    expect_raise(lambda: dce.bind(UNKNOWN), 'abstract_syntax_not_supported')
    dce.disconnect()

    # 4. second bind on the same connection: bind_nak reason_not_specified.
    dce = connect(port)
    dce.bind(epm.MSRPC_UUID_PORTMAP)
    expect_raise(lambda: dce.bind(epm.MSRPC_UUID_PORTMAP), 'reason_not_specified')
    dce.disconnect()

    # 5. the real EPM client stack: hept_lookup binds itself (pass an un-bound dce, as with
    # Samba: a second bind is refused, docs/evasions.md C9), then gets the fault.
    dce = connect(port)
    expect_raise(lambda: epm.hept_lookup(None, dce=dce), 'nca_s_op_rng_error')
    dce.disconnect()


def main():
    binary = os.path.join(os.environ.get('RPCGATE_BIN', 'build/bin'), 'rpc_assoc_echo_server')
    server = subprocess.Popen([binary, '0', str(CONNECTIONS)], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()
        assert len(line) == 2 and line[0] == 'PORT', 'bad banner %r' % line
        run(int(line[1]))
    finally:
        server.kill()
        server.wait()
    print('assoc_impacket_test: ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
