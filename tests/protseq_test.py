#!/usr/bin/python3
"""Issue 11 items 2 and 3 against the real rpcgate-epmd, in a private network namespace:

* towers of every protocol sequence (ncacn_ip_tcp, ncadg_ip_udp, ncacn_http, ncacn_np,
  ncalrpc, and an unknown protocol id kept as opaque floors) - the golden towers Impacket builds
  (src/ndr/testdata/impacket_tower_vectors.txt) - go through ept_insert -> ept_lookup (Impacket's
  NDR) -> ept_map (Impacket's ept_map request, asking for that protseq) -> `rpcgate lookup` and
  `--json` (string bindings), and delete again;
* request stubs with bytes after the last parameter (Samba's client sends mgmt_inq_stats with an
  extra u32) are answered, not faulted, with a debug log line; a stub shorter than its
  parameters still faults.

Each test fails against main's daemon (6d2f5eb): the ncalrpc / np / unknown towers are stored
there too, but the trailing-bytes calls fault with rpc_x_bad_stub_data, and `rpcgate lookup`
printed "(tower of an unsupported protocol sequence)" for the unknown tower.
Every wait is bounded; every process started here is stopped in tearDown.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import rpcgate_testlib
from rpcgate_testlib import BIN, POLICY, Daemon, epm_dce, ept_delete, ept_insert, ept_lookup_all

rpcgate_testlib.enter_private_netns("50000-50199")

from impacket.dcerpc.v5 import epm, mgmt  # noqa: E402
from impacket.dcerpc.v5.rpcrt import DCERPCException  # noqa: E402

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
VECTORS = os.path.join(SRC, "src", "ndr", "testdata", "impacket_tower_vectors.txt")
IFACE = "11111111-2222-3333-4444-555555555511"


def golden():
    """[(name, tower octets, rpcgate binding)] from the committed Impacket vectors."""
    out = []
    with open(VECTORS) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, octets, binding, _ = line.rstrip("\n").split("\t")
            out.append((name, bytes.fromhex(octets), binding))
    return out


def as_served(name, octets):
    """The tower as epmd answers a client that reached it on 127.0.0.1: only a 0.0.0.0 IPv4
    host floor is rewritten (the last 4 octets of the tcp wildcard tower)."""
    if name == "ncacn_ip_tcp_wildcard":
        return octets[:-4] + bytes([127, 0, 0, 1])
    return octets


def ept_map(dce, map_tower, max_towers=10):
    """Impacket's ept_map request with `map_tower`; returns (status, [tower octets])."""
    req = epm.ept_map()
    req["obj"] = epm.NULL
    req["map_tower"]["tower_length"] = len(map_tower)
    req["map_tower"]["tower_octet_string"] = map_tower
    req["entry_handle"] = epm.ept_lookup_handle_t()
    req["max_towers"] = max_towers
    try:
        resp = dce.request(req)
    except DCERPCException as e:
        if "ept_s_not_registered" in str(e) or "0x16c9a0d6" in str(e).lower():
            return 0x16C9A0D6, []
        raise
    towers = [b"".join(resp["ITowers"][i]["tower_octet_string"])
              for i in range(resp["num_towers"])]
    return resp["status"], towers


def raw_call(dce, opnum, stub):
    """Sends `stub` as is; returns the response stub, or raises DCERPCException (fault)."""
    dce.call(opnum, stub)
    return dce.recv()


class ProtseqRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-protseq-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY, extra=("--log-level", "debug"))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def test_every_protseq_insert_lookup_map_delete(self):
        vectors = golden()
        self.assertEqual([v[0] for v in vectors],
                         ["ncacn_ip_tcp", "ncacn_ip_tcp_wildcard", "ncadg_ip_udp", "ncacn_http",
                          "ncacn_np", "ncalrpc", "unknown_id"])
        # The two tcp towers share DCE's replace key (same protseq and interface, different
        # address): insert without replace so both stay. Registered as root over the control
        # socket; the connection stays open (its lease) while the checks run.
        reg = epm_dce(unix=self.daemon.control)
        try:
            self.assertEqual(ept_insert(reg, [(t, n) for n, t, _ in vectors], replace=False), 0)
            # ept_lookup (Impacket's NDR) over TCP returns each one.
            client = epm_dce(tcp=("127.0.0.1", 135))
            try:
                listed = {a: t for _, t, a in ept_lookup_all(client)}
                for name, octets, _ in vectors:
                    self.assertIn(name, listed)
                    self.assertEqual(listed[name], as_served(name, octets), name)
                # ept_map asking for each protseq (the request's endpoint and host are ignored)
                # finds exactly the towers of that protseq.
                for name, octets, _ in vectors:
                    status, towers = ept_map(client, octets)
                    self.assertEqual(status, 0, name)
                    want = [as_served(n, t) for n, t, _ in vectors
                            if t[:2] == octets[:2] and self.protseq(t) == self.protseq(octets)]
                    self.assertEqual(sorted(towers), sorted(want), name)
            finally:
                client.disconnect()
            # rpcgate lookup prints each as a string binding, --json too.
            r = subprocess.run([os.path.join(BIN, "rpcgate"), "lookup", "127.0.0.1", "--json"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = {e["annotation"]: e["binding"] for e in json.loads(r.stdout)["entries"]}
            for name, _, binding in vectors:
                want = binding.replace("0.0.0.0", "127.0.0.1")
                self.assertEqual(got.get(name), want, name)
            r = subprocess.run([os.path.join(BIN, "rpcgate"), "lookup", "127.0.0.1"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            for name, _, binding in vectors:
                self.assertIn(binding.replace("0.0.0.0", "127.0.0.1"), r.stdout)
            # rpcgate map asking for each protseq resolves to that protseq's binding (an IP
            # binding keeps the host asked, as Windows and Impacket do).
            for protseq, want in [("ncacn_ip_tcp", "ncacn_ip_tcp:127.0.0.1[49664]"),
                                  ("ncadg_ip_udp", "ncadg_ip_udp:127.0.0.1[49665]"),
                                  ("ncacn_http", "ncacn_http:127.0.0.1[593]"),
                                  ("ncacn_np", "ncacn_np:\\\\DC01[\\PIPE\\lsass]"),
                                  ("ncalrpc", "ncalrpc:[LRPC-0123abcd]")]:
                r = subprocess.run([os.path.join(BIN, "rpcgate"), "map", "127.0.0.1",
                                    f"{IFACE}:1.2", "--protseq", protseq, "--json"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, protseq + r.stderr)
                self.assertEqual(json.loads(r.stdout)["binding"], want, protseq)
            # And all of them go again.
            self.assertEqual(ept_delete(reg, [(t, n) for n, t, _ in vectors]), 0)
        finally:
            reg.disconnect()

    @staticmethod
    def protseq(octets):
        """Protocol ids of floors 3..n (what ept_map matches on)."""
        count = struct.unpack_from("<H", octets, 0)[0]
        at, ids = 2, []
        for i in range(count):
            lhs_len = struct.unpack_from("<H", octets, at)[0]
            if i >= 2:
                ids.append(octets[at + 2])
            at += 2 + lhs_len
            rhs_len = struct.unpack_from("<H", octets, at)[0]
            at += 2 + rhs_len
        return ids


class TrailingBytes(unittest.TestCase):
    """Samba's and Windows' servers ignore bytes after the last [in] parameter; so does epmd."""

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-trailing-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY, extra=("--log-level", "debug"))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def test_mgmt_inq_stats_with_an_extra_u32(self):
        dce = epm_dce(tcp=("127.0.0.1", 135), bind=False)
        try:
            dce.bind(mgmt.MSRPC_UUID_MGMT)
            # What Samba's client sends (smbtorture rpc.mgmt): max_count 4, then an extra u32.
            answer = raw_call(dce, 1, struct.pack("<II", 4, 0))
            count, max_count = struct.unpack_from("<II", answer, 0)
            self.assertEqual((count, max_count), (4, 4))
            self.assertEqual(struct.unpack_from("<I", answer, len(answer) - 4)[0], 0)
            # No [in] parameter at all: is_server_listening with 8 stray bytes.
            answer = raw_call(dce, 2, b"\x00" * 8)
            self.assertEqual(struct.unpack("<II", answer), (0, 1))
            # Shorter than its parameters: still rpc_x_bad_stub_data.
            with self.assertRaisesRegex(DCERPCException, "(?i)bad_stub_data|0x6f7"):
                raw_call(dce, 4, b"\x09\x00")
        finally:
            dce.disconnect()
        rpcgate_testlib.wait_for(
            lambda: "mgmt opnum 1: ignored 4 byte(s) after the last parameter"
            in self.daemon.read_log(), 5, "the debug log line")

    def test_epm_lookup_and_map_with_trailing_bytes(self):
        dce = epm_dce(tcp=("127.0.0.1", 135))
        try:
            # ept_lookup of every element, max_ents 10, then 12 stray bytes.
            stub = struct.pack("<IIII", 0, 0, 0, 1) + b"\0" * 20 + struct.pack("<I", 10)
            answer = raw_call(dce, 2, stub + b"\xde\xad\xbe\xef" * 3)
            self.assertEqual(struct.unpack("<I", answer[-4:])[0], 0)
            self.assertGreaterEqual(struct.unpack_from("<I", answer, 20)[0], 1)  # epmd's own
            # ept_inq_object takes nothing: 4 stray bytes are ignored too.
            answer = raw_call(dce, 5, b"\0\0\0\0")
            self.assertEqual(len(answer), 20)
            # A stub cut inside its parameters is still a fault.
            with self.assertRaisesRegex(DCERPCException, "(?i)bad_stub_data|0x6f7"):
                raw_call(dce, 2, stub[:-2])
        finally:
            dce.disconnect()
        log = rpcgate_testlib.wait_for(
            lambda: ("endpoint map opnum 2 from" in self.daemon.read_log()
                     and self.daemon.read_log()), 5, "the debug log line")
        self.assertIn("ignored 12 byte(s) after the last parameter", log)


if __name__ == "__main__":
    rpcgate_testlib.main()
