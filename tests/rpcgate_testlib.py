"""Helpers shared by the integration tests that run the real daemons (epmd_test.py,
client_cli_test.py): a private network namespace, bounded waits, rpcgate-epmd and
rpcgate-testsrv processes.

Import this first and call enter_private_netns() before anything else: it re-executes the test
under `unshare -n` as root (so the endpoint mapper can listen on 127.0.0.1:135, which Impacket's
rpcdump.py insists on, without touching the host), or skips (SKIP_EXIT) when that is impossible.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("RPCGATE_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
EXAMPLES = "/usr/share/doc/python3-impacket/examples"
# Impacket lives in Debian's python3 (/usr/bin), not in a pyenv one that may come first in PATH.
ENV = dict(os.environ, PATH="/usr/bin:/bin:/usr/sbin:/sbin")


# ctest's SKIP_RETURN_CODE for every integration test (tests/CMakeLists.txt): a test that cannot
# run exits with it and is reported as skipped, never as passed; .ci/run fails if any was.
SKIP_EXIT = 77


def skip(reason):
    """Ends a test that cannot run here: prints SKIP and the reason, exits SKIP_EXIT."""
    print(f"SKIP: {reason}")
    sys.exit(SKIP_EXIT)


def main():
    """unittest.main(verbosity=2), except that a run in which a test was skipped (and none
    failed) exits SKIP_EXIT, so a skipUnless never passes for a test that did not run."""
    import unittest
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        skip(f"{len(result.skipped)} test(s) skipped: " +
             "; ".join(f"{t.id()}: {why}" for t, why in result.skipped))
    sys.exit(0)


def enter_private_netns(reserved_ports):
    """Re-executes the running script in a new network namespace (once), brings lo up and
    reserves `reserved_ports` (ip_local_reserved_ports syntax) so the kernel does not give the
    test pools to our own outgoing connections (the namespace's ephemeral range 32768-60999
    covers them): what `rpcgate policy export --format sysctl` is for."""
    if os.environ.get("RPCGATE_IN_NETNS") != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            skip("needs root and unshare for a private network namespace")
        os.execvpe("unshare", ["unshare", "-n", sys.executable, *sys.argv],
                   dict(os.environ, RPCGATE_IN_NETNS="1"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_reserved_ports", "w") as f:
        f.write(reserved_ports)


# The pools most tests use: Internet 50000-50099, intranet 50100-50199 (the rest of the dynamic
# range), default class intranet. Reserve them with enter_private_netns("50000-50199").
POLICY = """[policy]
ports = ["50000-50099"]
ports_internet_available = "Y"
use_internet_ports = "N"
dynamic_range = "50000-50199"
"""
INTERNET = range(50000, 50100)
INTRANET = range(50100, 50200)


def hept_map(uuid, port=135, version="1.0"):
    """Impacket's ept_map for ncacn_ip_tcp on 127.0.0.1:port (the binding keeps the dialled host)."""
    from impacket.dcerpc.v5 import epm, transport
    from impacket.uuid import uuidtup_to_bin
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    t.set_connect_timeout(5)
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        return epm.hept_map("127.0.0.1", uuidtup_to_bin((uuid, version)), protocol="ncacn_ip_tcp",
                            dce=dce)
    finally:
        dce.disconnect()


def mapped(uuid, version="1.0", port=135):
    """hept_map's binding, or None when the endpoint mapper answers ept_s_not_registered."""
    from impacket.dcerpc.v5.rpcrt import DCERPCException
    try:
        return hept_map(uuid, port=port, version=version)
    except DCERPCException as e:
        if "ept_s_not_registered" in str(e):
            return None
        raise


def hept_lookup(port=135):
    """Every entry, paged by Impacket's ept_lookup."""
    from impacket.dcerpc.v5 import epm, transport
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        return epm.hept_lookup(None, dce=dce)
    finally:
        dce.disconnect()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc, sig=signal.SIGTERM, timeout=5):
    """Sends `sig` if `proc` still runs and waits for it; kills it after `timeout` s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

class WorkdirCase(unittest.TestCase):
    """A test case with a fresh work directory per test (mode 0755: a test acting as nobody must
    reach the control sockets inside it) and `cleanup`, callables run in reverse order at
    tearDown, before the directory goes."""
    WORKDIR_PREFIX = "rpcgate-"

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix=self.WORKDIR_PREFIX)
        os.chmod(self.workdir, 0o755)
        self.cleanup = []

    def tearDown(self):
        for fn in reversed(self.cleanup):
            fn()
        shutil.rmtree(self.workdir)


class Daemon:
    """One rpcgate-epmd with its own policy, listener and control socket."""

    def __init__(self, workdir, name, policy_text, port=135, extra=(), preexec_fn=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.policy = os.path.join(self.dir, "rpcgate.toml")
        with open(self.policy, "w") as f:
            f.write(policy_text)
        self.control = os.path.join(self.dir, "epmd.sock")
        self.log_path = os.path.join(self.dir, "epmd.log")
        self.port = port
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "rpcgate-epmd"), "--policy", self.policy, "--listen",
             f"127.0.0.1:{port}", "--control", self.control, "--seed", "1", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        wait_for(lambda: "listening on" in self.read_log() or self.proc.poll() is not None, 10,
                 "rpcgate-epmd to listen")
        assert self.proc.poll() is None, self.read_log()

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)
        self.log.close()


class Server:
    """rpcgate-testsrv registered with a daemon: a dynamic port of a class, or a static port.
    `uuid` v1.0, or with `interfaces` ["UUID:M.m", ...] every one of them on the one port."""

    def __init__(self, daemon, uuid, annotation, port_class=None, static_port=None,
                 interfaces=None):
        args = [os.path.join(BIN, "rpcgate-testsrv"), "--epmd", daemon.control]
        if interfaces:
            for spec in interfaces:
                args += ["--interface", spec]
        else:
            args += ["--uuid", uuid, "--version", "1.0"]
        args += ["--annotation", annotation]
        if port_class is not None:
            args += ["--class", port_class]
        else:
            args += ["--port", str(static_port or 0), "--listen", "127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()  # "port=N", or EOF when it fails
        self.port = int(line.split("=", 1)[1]) if line.startswith("port=") else None

    def exit_status(self, timeout=5):
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.proc.stdout.close()
        self.proc.stderr.close()


# ---- raw endpoint-mapper calls over any stream socket (control socket, TCP from a chosen
# source address), for the ownership and budget tests. Impacket does the PDUs and the bind; the
# stubs are NDR20 built here with struct (Impacket 0.10.0 has no ept_insert / ept_delete /
# ept_mgmt_delete calls, and its NDR is too slow for thousands of entries).

EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
NDR20 = "8a885d04-1ceb-11c9-9fe8-08002b104860"
EPT_S_CANT_PERFORM_OP = 0x16C9A0CD
EPT_S_NOT_REGISTERED = 0x16C9A0D6


def epm_dce(unix=None, tcp=None, source=None, timeout=5, bind=True):
    """A DCERPC_v5 connected to the endpoint mapper over the Unix socket `unix` or TCP
    (host, port) from source address `source`; bound to the EPM interface when `bind`."""
    import socket as _socket
    from impacket.dcerpc.v5 import epm
    from impacket.dcerpc.v5.rpcrt import DCERPCException
    from impacket.dcerpc.v5.transport import DCERPCTransport

    class StreamTransport(DCERPCTransport):
        def __init__(self):
            DCERPCTransport.__init__(self, "localhost", 135)
            self.sock = None

        def connect(self):
            if unix:
                self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(unix)
            else:
                self.sock = _socket.create_connection(
                    tcp, timeout, source_address=(source, 0) if source else None)
            return 1

        def disconnect(self):
            self.sock.close()
            return 1

        def send(self, data, forceWriteAndx=0, forceRecv=0):
            self.sock.sendall(data)

        def recv(self, forceRecv=0, count=0):
            if not count:
                return self.sock.recv(8192)
            buf = b""
            while len(buf) < count:
                chunk = self.sock.recv(count - len(buf))
                if not chunk:
                    raise DCERPCException("connection closed")
                buf += chunk
            return buf

        def get_socket(self):
            return self.sock

    dce = StreamTransport().get_dce_rpc()
    dce.connect()
    if bind:
        dce.bind(epm.MSRPC_UUID_PORTMAP)
    return dce


def tower_bytes(uuid, port, host="0.0.0.0", version=(1, 0)):
    """Tower octets for ncacn_ip_tcp:HOST[PORT] of interface UUID vMAJOR.MINOR, NDR20."""
    import socket as _socket
    import struct
    import uuid as _uuid

    def floor(lhs, rhs):
        return struct.pack("<H", len(lhs)) + lhs + struct.pack("<H", len(rhs)) + rhs

    floors = [
        floor(b"\x0d" + _uuid.UUID(uuid).bytes_le + struct.pack("<H", version[0]),
              struct.pack("<H", version[1])),
        floor(b"\x0d" + _uuid.UUID(NDR20).bytes_le + struct.pack("<H", 2), struct.pack("<H", 0)),
        floor(b"\x0b", struct.pack("<H", 0)),
        floor(b"\x07", struct.pack(">H", port)),
        floor(b"\x09", _socket.inet_aton(host)),
    ]
    return struct.pack("<H", len(floors)) + b"".join(floors)


def _pad4(b):
    return b + b"\0" * (-len(b) % 4)


def _ndr_entries(entries):
    """entries: [(tower octets, annotation)] with a nil object, or (object16, tower, annotation)."""
    import struct
    out = struct.pack("<II", len(entries), len(entries))
    norm = [e if len(e) == 3 else (b"\0" * 16, e[0], e[1]) for e in entries]
    for i, (obj, _, annotation) in enumerate(norm):
        a = annotation.encode() + b"\0"
        out = _pad4(out + obj + struct.pack("<III", 0x20000 + 4 * i, 0, len(a)) + a)
    for _, tower, _ in norm:  # deferred twr_t referents; no padding after the last
        out = _pad4(out) + struct.pack("<II", len(tower), len(tower)) + tower
    return out


def _status_call(dce, opnum, stub):
    import struct
    dce.call(opnum, stub)
    answer = dce.recv()
    return struct.unpack("<I", answer[-4:])[0]


def ept_insert(dce, entries, replace=True):
    """ept_insert (opnum 0) of [(tower, annotation)]; returns the status."""
    import struct
    return _status_call(dce, 0,
                        _pad4(_ndr_entries(entries)) + struct.pack("<I", 1 if replace else 0))


def ept_delete(dce, entries):
    """ept_delete (opnum 1) of [(tower, annotation)]; returns the status."""
    return _status_call(dce, 1, _ndr_entries(entries))


def ept_mgmt_delete(dce, tower, obj=None):
    """ept_mgmt_delete (opnum 6); object_speced when `obj` (16 bytes) is given."""
    import struct
    stub = struct.pack("<I", 1 if obj else 0)
    stub += struct.pack("<I", 0x20000) + obj if obj else struct.pack("<I", 0)
    stub += struct.pack("<III", 0x20004, len(tower), len(tower)) + tower
    return _status_call(dce, 6, stub)


def ept_lookup_all(dce):
    """Every entry as (object16, tower octets, annotation), paged by ept_lookup (Impacket's
    types), on a bound `dce`. Towers as the EPM returns them to this caller."""
    entries, handle = [], epm_lookup_handle()
    from impacket.dcerpc.v5 import epm
    for _ in range(1000):
        req = epm.ept_lookup()
        req["inquiry_type"] = epm.RPC_C_EP_ALL_ELTS
        req["object"] = epm.NULL
        req["Ifid"] = epm.NULL
        req["vers_option"] = epm.RPC_C_VERS_ALL
        req["entry_handle"] = handle
        req["max_ents"] = 500
        resp = dce.request(req)
        for i in range(resp["num_ents"]):
            e = resp["entries"][i]
            entries.append((e["object"], b"".join(e["tower"]["tower_octet_string"]),
                            b"".join(e["annotation"]).rstrip(b"\0").decode()))
        handle = resp["entry_handle"]
        if handle.isNull():
            return entries
    raise AssertionError("ept_lookup does not end")


def epm_lookup_handle():
    from impacket.dcerpc.v5 import epm
    return epm.ept_lookup_handle_t()


def ept_lookup_page(dce, handle=b"\0" * 20, max_ents=1):
    """One ept_lookup (opnum 2, every element): returns (status, next handle (20 bytes), count)."""
    import struct
    stub = struct.pack("<IIII", 0, 0, 0, 1) + handle + struct.pack("<I", max_ents)
    dce.call(2, stub)
    answer = dce.recv()
    return struct.unpack("<I", answer[-4:])[0], answer[:20], struct.unpack("<I", answer[20:24])[0]
