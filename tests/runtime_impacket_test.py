"""Impacket 0.10.0 against the rpcgate runtime (rpcgate-testsrv, the runtime test interface).

Checks what Impacket needs from the server (impacket/dcerpc/v5/rpcrt.py, transport.py): bind_ack
in one read, echo calls, a fragmented response, nca_s_op_rng_error for an unknown opnum, the
management interface every server exports (mgmt.hinq_if_ids lists the test interface), and 20
concurrent clients.
Bounded: every socket has a timeout and the server exits with stdin / after 60 s.
"""
import os
import struct
import subprocess
import sys
import threading

from impacket.dcerpc.v5 import mgmt, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.uuid import bin_to_uuidtup, uuidtup_to_bin

TEST_IF_TUP = ("6b1d9f8e-3c57-4a8e-9d0a-2f1c4e5b7a01", "1.0")
TEST_IF = uuidtup_to_bin(TEST_IF_TUP)
MGMT_TUP = ("afa8bd80-7d8a-11c9-bef4-08002b102989", "1.0")


def connect(port, interface=TEST_IF):
    t = transport.DCERPCTransportFactory("ncacn_ip_tcp:127.0.0.1[%d]" % port)
    t.set_connect_timeout(5)
    dce = t.get_dce_rpc()
    dce.connect()
    dce.get_rpc_transport().get_socket().settimeout(5)
    dce.bind(interface)
    return dce


def if_ids(dce):
    """mgmt inq_if_ids as (uuid, "major.minor") tuples, Impacket's uuidtup form."""
    resp = mgmt.hinq_if_ids(dce)
    return [bin_to_uuidtup(e["Uuid"] + struct.pack("<HH", e["VersMajor"], e["VersMinor"]))
            for e in resp["if_id_vector"]["if_id"]]


def echo(dce, payload):
    dce.call(0, payload)
    return dce.recv()


def main():
    binary = os.path.join(os.environ.get("RPCGATE_BIN", "build/bin"), "rpcgate-testsrv")
    server = subprocess.Popen([binary, "--max-seconds", "60"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    failures = []
    try:
        line = server.stdout.readline().decode().strip()
        if not line.startswith("port="):
            raise RuntimeError("rpcgate-testsrv printed %r, not port=N" % line)
        port = int(line[len("port="):])

        # Every server exports MGMT; inq_if_ids lists the served interfaces (MGMT last).
        dce = connect(port, mgmt.MSRPC_UUID_MGMT)
        ids = if_ids(dce)
        if [(u.lower(), v) for u, v in ids] != [TEST_IF_TUP, MGMT_TUP]:
            failures.append("mgmt inq_if_ids: %r" % ids)
        dce.disconnect()

        dce = connect(port)
        payload = b"hello rpcgate" * 3 + b"\0" * 5
        got = echo(dce, payload)
        if got != payload:
            failures.append("echo: %r != %r" % (got, payload))

        big = bytes(range(256)) * 64  # 16 KiB request: Impacket fragments it
        if echo(dce, big) != big:
            failures.append("fragmented echo mismatch")

        dce.call(2, (100 * 1024).to_bytes(4, "little"))
        blob = dce.recv()
        if blob != bytes(i & 0xFF for i in range(100 * 1024)):
            failures.append("100 KiB response mismatch (len %d)" % len(blob))

        try:
            dce.call(7, b"")
            dce.recv()
            failures.append("opnum 7 did not fault")
        except DCERPCException as e:
            if "nca_s_op_rng_error" not in str(e):
                failures.append("opnum 7: unexpected %s" % e)
        # The connection survives the fault.
        if echo(dce, b"again!!!") != b"again!!!":
            failures.append("echo after fault")
        dce.disconnect()

        results = []
        lock = threading.Lock()

        def worker(i):
            try:
                d = connect(port)
                ok = all(echo(d, b"client %02d call %d" % (i, k)) == b"client %02d call %d" % (i, k)
                         for k in range(5))
                d.disconnect()
            except Exception as e:  # noqa: BLE001 - reported below
                ok = "%s" % e
            with lock:
                results.append((i, ok))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        bad = [r for r in results if r[1] is not True]
        if len(results) != 20 or bad:
            failures.append("concurrent clients: %d done, failures %r" % (len(results), bad))
    finally:
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print("runtime_impacket_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
