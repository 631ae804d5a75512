#!/usr/bin/python3
"""End-to-end test of rpcgate-echo: the real rpcgate-epmd and rpcgate-echo binaries, an
independent client (Impacket's DCE/RPC transport and NDR classes, tests/rpcecho_impacket.py),
and Wireshark's dissector (tshark) over a capture of the whole session.

Everything runs in a private network namespace (re-executed under `unshare -n` as root), like
tests/epmd_test.py, so epmd can listen on 127.0.0.1:135. The helpers are local to this file on
purpose (tests/epmd_test.py has its own): they may later move to a shared tests library.

Every wait is bounded; every process started here is killed in tearDown / tearDownClass.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, HERE)
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import (BIN, INTERNET, INTRANET, POLICY, Daemon, hept_lookup,  # noqa: E402
                             hept_map, stop_process, wait_for)

rpcgate_testlib.enter_private_netns("50000-50199")

from impacket.dcerpc.v5 import epm, transport  # noqa: E402
from impacket.dcerpc.v5.rpcrt import DCERPCException  # noqa: E402

import rpcecho_impacket as echo  # noqa: E402

PI_ERROR = "8388608"  # Wireshark's expert severity "error" (0x00800000)


def connect(port):
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    t.set_connect_timeout(5)
    dce = t.get_dce_rpc()
    dce.connect()
    dce.bind(echo.MSRPC_UUID_RPCECHO)
    return dce


def call(dce, request):
    return dce.request(request, checkError=False)


def same_but_pad(ours, theirs):
    """Equal but where Impacket writes pad (0xaa-0xbf) and rpcgate zero."""
    return len(ours) == len(theirs) and all(
        a == b or (a == 0 and 0xaa <= b <= 0xbf) for a, b in zip(ours, theirs))


def rpcgate(*args):
    return subprocess.run([os.path.join(BIN, "rpcgate"), *args], capture_output=True, text=True,
                          timeout=30)


def rpcgate_lookup_ports():
    """rpcecho's ports as `rpcgate lookup --json` lists them."""
    r = rpcgate("lookup", "127.0.0.1", "--json")
    assert r.returncode == 0, r.stderr
    return {int(e["endpoint"]) for e in json.loads(r.stdout)["entries"]
            if e["interface"] == echo.UUID and e["protseq"] == "ncacn_ip_tcp"}


def lookup_ports():
    ports = set()
    for entry in hept_lookup():
        if entry["tower"]["Floors"][0]["InterfaceUUID"] != echo.MSRPC_UUID_RPCECHO[:16]:
            continue
        binding = epm.PrintStringBinding(entry["tower"]["Floors"])
        if binding.startswith("ncacn_ip_tcp:"):
            ports.add(int(binding.split("[")[1].rstrip("]")))
    return ports


class Echo:
    """One rpcgate-echo. Reads `port=N` and the human line from its stdout."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([os.path.join(BIN, "rpcgate-echo"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.split("=", 1)[1]) if line.startswith("port=") else None
        self.banner = self.proc.stdout.readline().strip() if self.port else ""

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.proc.stdout.close()
        self.proc.stderr.close()


class Capture:
    """tshark on the namespace's loopback for the whole session (None if tshark is missing)."""

    def __init__(self, path):
        self.path = path
        self.proc = subprocess.Popen(["tshark", "-i", "lo", "-w", path, "-f", "tcp", "-q"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.err = []
        # tshark says "Capturing on 'Loopback: lo'" on stderr once it is capturing.
        line = wait_for(lambda: self.proc.stderr.readline(), 15, "tshark to capture")
        while "Capturing on" not in line:
            self.err.append(line)
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError("tshark did not start: " + "".join(self.err))

    def stop(self):
        if self.proc.poll() is None:
            time.sleep(0.5)  # let the last packets reach the capture
        stop_process(self.proc, signal.SIGINT, timeout=10)
        self.proc.stderr.close()


class EchoEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-echo-")
        cls.capture = None
        if shutil.which("tshark"):
            cls.capture = Capture(os.path.join(cls.workdir, "session.pcapng"))
        cls.epmd = Daemon(cls.workdir, "epmd", POLICY)
        cls.echo_ports = set()
        cls.main = Echo("--control", cls.epmd.control, "--class", "default")
        assert cls.main.port, cls.main.proc.stderr.read()
        cls.echo_ports.add(cls.main.port)

    @classmethod
    def tearDownClass(cls):
        cls.main.stop()
        cls.epmd.stop()
        if cls.capture:
            cls.capture.stop()
        shutil.rmtree(cls.workdir)

    def setUp(self):
        self.started = []

    def tearDown(self):
        for s in self.started:
            s.stop(signal.SIGKILL)

    def start(self, *args):
        s = Echo("--control", self.epmd.control, *args)
        self.started.append(s)
        if s.port:
            type(self).echo_ports.add(s.port)
        return s

    def test_a_each_class_in_its_set_and_hept_map_finds_it(self):
        self.assertIn(self.main.port, INTRANET)  # UseInternetPorts = N: default is intranet
        self.assertEqual(
            self.main.banner,
            f"rpcgate-echo: serving rpcecho {echo.UUID} v1.0 on ncacn_ip_tcp port "
            f"{self.main.port} (class default)")
        self.assertEqual(hept_map(echo.UUID), f"ncacn_ip_tcp:127.0.0.1[{self.main.port}]")
        self.assertEqual(rpcgate("map", "127.0.0.1", echo.UUID).stdout.strip(),
                         f"ncacn_ip_tcp:127.0.0.1[{self.main.port}]")
        # ept_insert replaces (DCE epdb_delete_replaceable_entries): the latest registrant of
        # rpcecho on ncacn_ip_tcp is the one the map returns.
        internet = self.start("--class", "internet", "--annotation", "echo internet")
        self.assertIn(internet.port, INTERNET)
        self.assertIn("(class internet)", internet.banner)
        self.assertEqual(hept_map(echo.UUID), f"ncacn_ip_tcp:127.0.0.1[{internet.port}]")
        intranet = self.start("--class", "intranet")
        self.assertIn(intranet.port, INTRANET)
        self.assertEqual(hept_map(echo.UUID), f"ncacn_ip_tcp:127.0.0.1[{intranet.port}]")
        self.assertEqual(rpcgate("map", "127.0.0.1", echo.UUID).stdout.strip(),
                         f"ncacn_ip_tcp:127.0.0.1[{intranet.port}]")
        self.assertEqual(lookup_ports(), {intranet.port})
        # Each serves rpcecho whether or not it is the mapped one.
        for s in (self.main, internet, intranet):
            dce = connect(s.port)
            self.assertEqual(call(dce, echo.add_one(1))["out_data"], 2)
            dce.disconnect()

    def test_b_every_operation_from_impacket(self):
        dce = connect(self.main.port)
        try:
            self.assertEqual(call(dce, echo.add_one(41))["out_data"], 42)
            self.assertEqual(call(dce, echo.add_one(0xffffffff))["out_data"], 0)

            small = b"rpcgate"
            self.assertEqual(b"".join(call(dce, echo.echo_data(small))["out_data"]), small)
            big = bytes((i * 7 + 3) & 0xff for i in range(100 * 1024))  # fragments both ways
            self.assertEqual(b"".join(call(dce, echo.echo_data(big))["out_data"]), big)
            self.assertEqual(call(dce, echo.echo_data(b""))["out_data"], [])

            call(dce, echo.sink_data(big))  # an empty response stub

            data = b"".join(call(dce, echo.source_data(1000))["data"])
            self.assertEqual(data, bytes(i & 0xff for i in range(1000)))

            for text in ("hello", "", "gr\u00fc\u00dfe \u20ac"):
                self.assertEqual(call(dce, echo.test_call(text))["s2"], text + "\x00")

            expected = {1: {"v": 10}, 2: {"v": 20}, 3: {"v": 30}, 4: {"v": 40},
                        5: {"v1": 50, "v2": 60}, 6: {"v1": 70, "info1": 80},
                        7: {"v1": 80, "info4": 90}}
            for level, fields in expected.items():
                r = call(dce, echo.test_call2(level))
                self.assertEqual(r["ErrorCode"], 0)
                self.assertEqual(r["info"]["tag"], level)
                arm = r["info"][f"info{level}"]
                for name, value in fields.items():
                    got = arm[name]
                    if name in ("info1", "info4"):
                        got = got["v"]
                    self.assertEqual(got, value, (level, name))
            with self.assertRaises(DCERPCException) as cm:  # level 8: Samba's DCERPC_FAULT_NDR
                call(dce, echo.test_call2(8))
            self.assertIn("rpc_x_bad_stub_data", str(cm.exception))

            # Impacket's NDRUNION.fromString skips the arm when 4 bytes or fewer remain (the
            # ECHO_ENUM1 case), so compare the raw response stub with the one Impacket encodes.
            for foo1, e2, arm in ((echo.ECHO_ENUM1, 1, echo.ECHO_ENUM2),
                                  (echo.ECHO_ENUM2, 2, (echo.ECHO_ENUM2, 1))):
                dce.call(echo.echo_TestEnum.opnum, echo.test_enum(foo1, echo.ECHO_ENUM1, e2, arm))
                raw = dce.recv()
                want = echo.echo_TestEnumResponse()
                echo.fill_enum(want, foo1, echo.ECHO_ENUM2, e2, arm)  # Samba sets foo2->e1
                self.assertTrue(same_but_pad(raw, want.getData()), (raw.hex(), foo1))

            r = call(dce, echo.test_surrounding(3, [1, 2, 3]))
            self.assertEqual(r["data"]["x"], 6)
            self.assertEqual(r["data"]["surrounding"], [0] * 6)

            self.assertEqual(call(dce, echo.test_double_pointer(7))["ErrorCode"], 7)
            self.assertEqual(call(dce, echo.test_double_pointer(7, 1))["ErrorCode"], 0)
            self.assertEqual(call(dce, echo.test_double_pointer(7, 2))["ErrorCode"], 0)

            self.assertEqual(call(dce, echo.test_sleep(0))["ErrorCode"], 0)
        finally:
            dce.disconnect()

    def test_c_ten_sleeps_in_parallel_take_the_longest_not_the_sum(self):
        seconds = [1, 2, 1, 2, 1, 1, 2, 1, 1, 2]
        results = [None] * len(seconds)
        conns = [connect(self.main.port) for _ in seconds]

        def run(i):
            results[i] = call(conns[i], echo.test_sleep(seconds[i]))["ErrorCode"]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seconds))]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - start
        for c in conns:
            c.disconnect()
        self.assertEqual(results, seconds)
        self.assertGreaterEqual(elapsed, max(seconds) - 0.1)
        self.assertLess(elapsed, max(seconds) + 1.5, f"took {elapsed:.2f}s (sum {sum(seconds)})")

    def test_d_kill_9_leaves_the_endpoint_map_within_a_second(self):
        victim = self.start("--class", "intranet", "--annotation", "victim")
        self.assertIn(victim.port, lookup_ports())
        self.assertIn(victim.port, rpcgate_lookup_ports())
        victim.proc.kill()
        victim.proc.wait(5)
        killed = time.monotonic()
        wait_for(lambda: victim.port not in rpcgate_lookup_ports(), 1.0,
                 "the entry to leave `rpcgate lookup`")
        self.assertLess(time.monotonic() - killed, 1.0)
        self.assertNotIn(victim.port, lookup_ports())  # and Impacket agrees

    def test_e_errors_carry_windows_codes(self):
        missing = Echo("--control", os.path.join(self.workdir, "nope.sock"))
        status = missing.proc.wait(5)
        err = missing.proc.stderr.read()
        missing.stop()
        self.assertEqual(status, 1722 & 0xff, err)
        self.assertIn("error 1722", err)

    def test_z_tshark_dissects_the_session(self):
        if not self.capture:
            self.skipTest("tshark is not installed")
        self.capture.stop()
        decode = []
        for p in sorted(self.echo_ports):
            decode += ["-d", f"tcp.port=={p},dcerpc"]
        out = subprocess.run(
            ["tshark", "-r", self.capture.path, *decode, "-T", "json", "-e", "frame.number",
             "-e", "dcerpc.opnum", "-e", "dcerpc.cn_bind_to_uuid", "-e", "tcp.port",
             "-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "_ws.expert.message"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        packets = json.loads(out.stdout)
        self.assertGreater(len(packets), 50)
        opnums, binds, bad = set(), set(), []
        for p in packets:
            layers = p["_source"]["layers"]
            ports = {int(x) for x in layers.get("tcp.port", [])}
            if "_ws.malformed" in layers or PI_ERROR in layers.get("_ws.expert.severity", []):
                bad.append(layers)
            binds.update(u.lower() for u in layers.get("dcerpc.cn_bind_to_uuid", []))
            if ports & self.echo_ports:
                opnums.update(int(x) for x in layers.get("dcerpc.opnum", []))
        self.assertEqual(bad, [])
        self.assertIn(echo.UUID, binds)
        self.assertTrue(set(range(10)) <= opnums, sorted(opnums))
        summary = subprocess.run(["tshark", "-r", self.capture.path, *decode, "-q", "-z",
                                  "expert,error"], capture_output=True, text=True, timeout=120)
        self.assertNotIn("Errors (", summary.stdout)


if __name__ == "__main__":
    rpcgate_testlib.main()
