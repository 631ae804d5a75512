#!/usr/bin/python3
"""End-to-end test of `rpcgate lookup|map|ifids` against the real rpcgate-epmd and
rpcgate-testsrv registrants, compared with what Impacket 0.10.0 (rpcdump.py, epm.hept_map,
mgmt.hinq_if_ids) reports for the same servers; plus refused, silent and hostile peers.

Runs in a private network namespace (rpcgate_testlib.enter_private_netns) so the endpoint
mapper can listen on 127.0.0.1:135. Every wait is bounded; every process is killed at the end.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import rpcgate_testlib
from rpcgate_testlib import BIN, ENV, EXAMPLES, Daemon, Server, hept_map

rpcgate_testlib.enter_private_netns("50000-50199")

from impacket.dcerpc.v5 import mgmt, transport  # noqa: E402
from impacket.uuid import bin_to_uuidtup  # noqa: E402

RPCGATE = os.path.join(BIN, "rpcgate")
EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
MGMT_UUID = "afa8bd80-7d8a-11c9-bef4-08002b102989"
RPCECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
REGISTRANTS = (("11111111-2222-3333-4444-555555555501", "alpha"),
               ("11111111-2222-3333-4444-555555555502", "beta with spaces"),
               ("11111111-2222-3333-4444-555555555503", ""),
               (RPCECHO, "echo"))
UNKNOWN = "99999999-2222-3333-4444-555555555501"
POLICY = """[policy]
ports = ["50000-50099"]
ports_internet_available = "Y"
use_internet_ports = "Y"
dynamic_range = "50000-50199"
"""


def rpcgate(*args, timeout=30):
    started = time.monotonic()
    r = subprocess.run([RPCGATE, *args], capture_output=True, text=True, timeout=timeout)
    r.elapsed = time.monotonic() - started
    return r


def parse_rpcgate_lookup(text):
    """{(uuid, "M.m", binding, annotation)} from `rpcgate lookup` human output."""
    out = set()
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("Interface : "):
            continue
        uuid, version = lines[0][len("Interface : "):].split()[:2]
        assert lines[1].startswith("Annotation: "), block
        annotation = lines[1][len("Annotation: "):]
        for line in lines[2:]:
            out.add((uuid.lower(), version.lstrip("v"), line[12:], annotation))
    return out


def parse_rpcdump(text):
    """The same set from rpcdump.py's output (UUID line: `UUID    : <UUID> vM.m <annotation>`)."""
    out = set()
    for m in re.finditer(r"^UUID    : (\S+) v(\S+) ?(.*)\nBindings: \n((?:          .*\n)+)", text,
                         re.M):
        for line in m.group(4).splitlines():
            out.add((m.group(1).lower(), m.group(2), line.strip(), m.group(3)))
    return out



def impacket_if_ids(port):
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    t.set_connect_timeout(5)
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        dce.bind(mgmt.MSRPC_UUID_MGMT)
        resp = mgmt.hinq_if_ids(dce)
        return {bin_to_uuidtup(e["Uuid"] + struct.pack("<HH", e["VersMajor"], e["VersMinor"]))
                for e in resp["if_id_vector"]["if_id"]}
    finally:
        dce.disconnect()


class FakePeer:
    """A TCP listener on 127.0.0.1 that accepts and sends `answer` (b"" = silent), then keeps the
    connection open until stopped."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.conns = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.answer:
                c.sendall(self.answer)

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class ClientCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-client-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY)
        cls.servers = []
        for uuid, note in REGISTRANTS:
            s = Server(cls.daemon, uuid, note, port_class="internet")
            cls.servers.append(s)
            assert s.port is not None, s.proc.stderr.read()

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop(signal.SIGKILL)
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def expected_set(self):
        want = {(EPM_UUID, "3.0", "ncacn_ip_tcp:127.0.0.1[135]", "rpcgate endpoint mapper")}
        for (uuid, note), s in zip(REGISTRANTS, self.servers):
            want.add((uuid, "1.0", f"ncacn_ip_tcp:127.0.0.1[{s.port}]", note))
        return want

    def lookup_json(self, *extra):
        r = rpcgate("lookup", "127.0.0.1", "--json", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_lookup_lists_what_rpcdump_lists(self):
        dump = subprocess.run([sys.executable, f"{EXAMPLES}/rpcdump.py", "127.0.0.1"],
                              capture_output=True, text=True, timeout=60, env=ENV)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        impacket = parse_rpcdump(dump.stdout)
        r = rpcgate("lookup", "127.0.0.1")
        self.assertEqual(r.returncode, 0, r.stderr)
        ours = parse_rpcgate_lookup(r.stdout)
        self.assertEqual(ours, impacket)
        self.assertEqual(ours, self.expected_set())
        self.assertIn(f"Interface : {EPM_UUID} v3.0 EPM\n", r.stdout)
        self.assertIn(f"Interface : {RPCECHO} v1.0 rpcecho\n", r.stdout)
        self.assertIn("5 entries from 127.0.0.1:135", r.stdout)

        j = self.lookup_json()
        self.assertEqual((j["host"], j["port"]), ("127.0.0.1", 135))
        self.assertEqual({(e["interface"], e["version"], e["binding"], e["annotation"])
                          for e in j["entries"]}, impacket)
        for e in j["entries"]:
            self.assertEqual(e["object"], "00000000-0000-0000-0000-000000000000")
            self.assertEqual(e["protseq"], "ncacn_ip_tcp")
            self.assertEqual(e["binding"], f"ncacn_ip_tcp:127.0.0.1[{e['endpoint']}]")
            self.assertEqual(e["name"], {EPM_UUID: "EPM", RPCECHO: "rpcecho"}.get(e["interface"]))

    def test_lookup_pages_through_the_handle(self):
        whole = self.lookup_json()["entries"]
        self.assertEqual(len(whole), 5)
        for size in ("1", "2", "4"):
            self.assertEqual(self.lookup_json("--page-size", size)["entries"], whole, size)
        r = rpcgate("lookup", "127.0.0.1", "--page-size", "0")
        self.assertEqual(r.returncode, 2)

    def test_map_resolves_like_hept_map(self):
        for (uuid, _), s in zip(REGISTRANTS, self.servers):
            want = hept_map(uuid)
            self.assertEqual(want, f"ncacn_ip_tcp:127.0.0.1[{s.port}]")
            for spec in (uuid, uuid + ":1.0", uuid.upper() + ":1"):
                r = rpcgate("map", "127.0.0.1", spec)
                self.assertEqual((r.returncode, r.stdout.strip()), (0, want), r.stderr)
            r = rpcgate("map", "127.0.0.1", uuid, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            j = json.loads(r.stdout)
            self.assertEqual((j["binding"], j["endpoint"], j["version"]),
                             (want, str(s.port), "1.0"))
        # The mapped host is the one asked (a name here), not the tower's.
        r = rpcgate("map", "localhost", REGISTRANTS[0][0])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"ncacn_ip_tcp:localhost[{self.servers[0].port}]")

    def test_map_unknown_interface_exits_1_with_the_status_name(self):
        for spec in (UNKNOWN, REGISTRANTS[0][0] + ":2.0"):
            r = rpcgate("map", "127.0.0.1", spec)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("ept_s_not_registered (0x16c9a0d6)", r.stderr)
            self.assertEqual(r.stdout, "")
        r = rpcgate("map", "127.0.0.1", "not-a-uuid")
        self.assertEqual(r.returncode, 2)

    def test_ifids_lists_what_inq_if_ids_returns(self):
        alpha = self.servers[0]
        want = impacket_if_ids(alpha.port)
        self.assertIn((REGISTRANTS[0][0].upper(), "1.0"), {(u.upper(), v) for u, v in want})
        self.assertIn((MGMT_UUID.upper(), "1.0"), {(u.upper(), v) for u, v in want})
        for args in ((f"ncacn_ip_tcp:127.0.0.1[{alpha.port}]",),
                     ("ncacn_ip_tcp:127.0.0.1", "--interface", REGISTRANTS[0][0])):
            r = rpcgate("ifids", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            ours = {tuple(line.split()[:2]) for line in r.stdout.splitlines()}
            self.assertEqual({(u, "v" + v) for u, v in
                              {(u.lower(), v) for u, v in want}}, ours)
            self.assertIn(f"{MGMT_UUID} v1.0 MGMT", r.stdout)
            r = rpcgate("ifids", *args, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            j = json.loads(r.stdout)
            self.assertEqual({(i["interface"], i["version"]) for i in j["interfaces"]},
                             {(u.lower(), v) for u, v in want})
        # The endpoint mapper's own port exports EPM and MGMT.
        r = rpcgate("ifids", "ncacn_ip_tcp:127.0.0.1[135]")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{EPM_UUID} v3.0 EPM", r.stdout)
        # No port and no --interface: usage.
        r = rpcgate("ifids", "ncacn_ip_tcp:127.0.0.1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs a port", r.stderr)
        r = rpcgate("ifids", "ncacn_ip_tcp:127.0.0.1", "--interface", UNKNOWN)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ept_s_not_registered (0x16c9a0d6)", r.stderr)

    def test_refused_silent_and_hostile_peers(self):
        # Nothing listens on 9: refused, exit 3.
        for args in (("lookup", "127.0.0.1", "--port", "9"),
                     ("map", "127.0.0.1", UNKNOWN, "--port", "9"),
                     ("ifids", "ncacn_ip_tcp:127.0.0.1[9]")):
            r = rpcgate(*args)
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn("connection refused", r.stderr)
        silent = FakePeer(b"")
        try:
            for args in (("lookup", "127.0.0.1", "--port", str(silent.port)),
                         ("ifids", f"ncacn_ip_tcp:127.0.0.1[{silent.port}]")):
                r = rpcgate(*args, "--timeout", "1", timeout=10)
                self.assertEqual(r.returncode, 3, r.stderr)
                self.assertIn("timed out after 1 s", r.stderr)
                self.assertLess(r.elapsed, 3)
        finally:
            silent.stop()
        hostile_answers = (
            b"\x05\x00\x0c\x03\x10\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00" + b"A" * 4000,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            bytes(range(256)) * 64,
        )
        for answer in hostile_answers:
            peer = FakePeer(answer)
            try:
                r = rpcgate("lookup", "127.0.0.1", "--port", str(peer.port), "--timeout", "2",
                            timeout=10)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("protocol error", r.stderr)
                self.assertLess(r.elapsed, 1.5)
                self.assertNotIn("Traceback", r.stderr)
            finally:
                peer.stop()

    def test_help_documents_exit_statuses(self):
        for cmd in ("lookup", "map", "ifids"):
            r = rpcgate(cmd, "--help")
            self.assertEqual(r.returncode, 0)
            self.assertIn("3 network error", r.stdout)
        r = rpcgate("lookup")
        self.assertEqual(r.returncode, 2)


def read_pdu(conn):
    """One PDU (header + body) from a blocking socket."""
    data = b""
    while len(data) < 10 or len(data) < struct.unpack_from("<H", data, 8)[0]:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data


class EmptyMapper:
    """An endpoint mapper with no entries at all (what rpcgate-epmd, which lists itself, cannot
    be): accepts the bind (docs/wire-vectors.md bind-ack-epm) and answers every ept_lookup with
    no entries and ept_s_not_registered, as Windows and Samba do for an empty first page."""

    BIND_ACK = bytes.fromhex(
        "05000c0310000000 3c000000 01000000 b810b810 45230100 0400 31333500 0000 01000000"
        "0000 0000 045d888aeb1cc9119fe808002b104860 02000000".replace(" ", ""))

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.opnums = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            bind = read_pdu(conn)
            conn.sendall(self.BIND_ACK[:12] + bind[12:16] + self.BIND_ACK[16:])
            try:
                while True:
                    req = read_pdu(conn)
                    self.opnums.append(struct.unpack_from("<H", req, 22)[0])
                    stub = bytes(20) + struct.pack("<IIIII", 0, 500, 0, 0, 0x16c9a0d6)
                    hdr = struct.pack("<BBBB4sHHI", 5, 0, 2, 3, b"\x10\0\0\0", 24 + len(stub), 0,
                                      struct.unpack_from("<I", req, 12)[0])
                    conn.sendall(hdr + struct.pack("<IHBB", len(stub), 0, 0, 0) + stub)
            except (EOFError, OSError):
                pass

    def stop(self):
        self.thread.join(5)
        self.sock.close()


class NoEntries(unittest.TestCase):
    def test_empty_mapper_prints_no_entries_and_exits_0(self):
        for extra, want in (((), "no entries\n"), (("--json",), None)):
            m = EmptyMapper()
            try:
                r = rpcgate("lookup", "127.0.0.1", "--port", str(m.port), *extra)
            finally:
                m.stop()
            self.assertEqual(r.returncode, 0, r.stderr)
            if want:
                self.assertEqual(r.stdout, want)
            else:
                self.assertEqual(json.loads(r.stdout),
                                 {"host": "127.0.0.1", "port": m.port, "entries": []})
            self.assertEqual(m.opnums, [2])  # one ept_lookup; no handle, nothing to free


if __name__ == "__main__":
    rpcgate_testlib.main()
