#!/usr/bin/python3
"""rpcgate-fwd end to end (issue 14): three network namespaces, clients -- firewall -- servers
(fwd_topology.py), the real daemon in the firewall's with nothing but `--allow`,
`--pinhole-timeout` and where to put its control socket, real servers (rpcgate-epmd on 135,
rpcgate-echo and rpcgate-testsrv on dynamic ports 49152-65535) and real clients (Impacket,
smbtorture, and fwd_client.py's crafted PDUs for the cases of docs/evasions.md) in the clients'.

What the server executed is checked on the server's side of the firewall: a capture on its veth
(tshark) shows whether a blocked bind ever reached it.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import fwd_topology as topo  # noqa: E402
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import BIN  # noqa: E402

why = topo.available()
if why:
    rpcgate_testlib.skip(why)

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_PY = os.path.join(HERE, "fwd_client.py")
RPCECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
ALLOWED = "11111111-2222-3333-4444-5555555555a1"  # allowed, shares a port with BLOCKED
BLOCKED = "11111111-2222-3333-4444-5555555555b1"
ALONE = "11111111-2222-3333-4444-5555555555c1"  # blocked, on a port of its own
EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
TIMEOUT_S = 12  # long enough for a loaded machine between an ept_map and its use
SMBTORTURE = shutil.which("smbtorture", path="/usr/bin:/bin:/usr/sbin:/sbin")
TSHARK = shutil.which("tshark", path="/usr/bin:/bin:/usr/sbin:/sbin")


class Firewall(topo.Firewall):
    """The rpcgate-fwd of these tests: rpcecho and ALLOWED allowed, TIMEOUT_S pinholes."""

    def __init__(self, t, workdir, *extra, ns=None, mode=()):
        super().__init__(t, workdir, "--allow", RPCECHO, "--allow", ALLOWED, "--pinhole-timeout",
                         f"{TIMEOUT_S}s", *mode, *extra, ns=ns)


class Capture:
    """tshark on the server's veth: which DCE/RPC binds reached the server."""

    def __init__(self, t, workdir, iface="s0"):
        self.t = t
        self.path = os.path.join(workdir, f"cap-{time.monotonic_ns()}.pcap")
        self.proc = t.popen(t.s, [TSHARK, "-q", "-i", iface, "-f", "tcp", "-w", self.path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tshark says "Capturing on 's0'" once the capture runs.
        lines = []
        while not lines or "Capturing" not in lines[-1]:
            lines.append(self.proc.stderr.readline().decode())
            assert lines[-1], lines

    def bound_uuids(self):
        time.sleep(0.3)  # the last segments
        rpcgate_testlib.stop_process(self.proc, signal.SIGINT)
        r = subprocess.run([TSHARK, "-r", self.path, "-d", "tcp.port==49152-65535,dcerpc",
                            "-Y", "dcerpc.cn_bind_to_uuid", "-T", "fields", "-e",
                            "dcerpc.cn_bind_to_uuid"], capture_output=True, text=True)
        return {u for line in r.stdout.split() for u in line.split(",") if u}


class FirewallTest(unittest.TestCase):
    """Router mode: rpcgate-fwd in the firewall namespace between clients and servers."""
    MODE = ()
    CAPTURE_IF = "s0"  # where the traffic that reached the servers is seen

    @classmethod
    def fw_ns(cls):
        return cls.t.f

    @classmethod
    def start_firewall(cls, *extra):
        return Firewall(cls.t, cls.workdir, *extra, ns=cls.fw_ns(), mode=cls.MODE)

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-fwd-")
        t = cls.t = topo.Topology(tag=cls.__name__[0].lower())
        epmd_dir = os.path.join(cls.workdir, "epmd")
        os.makedirs(epmd_dir)
        cls.epmd_control = os.path.join(epmd_dir, "epmd.sock")
        cls.epmd_log = open(os.path.join(epmd_dir, "epmd.log"), "w")
        cls.epmd = t.popen(t.s, [os.path.join(BIN, "rpcgate-epmd"), "--listen", "0.0.0.0:135",
                                 "--listen", "[::]:135", "--control", cls.epmd_control],
                           stdout=cls.epmd_log, stderr=subprocess.STDOUT)
        topo.wait_for(lambda: os.path.exists(cls.epmd_control), 10, "rpcgate-epmd")
        cls.echo = t.popen(t.s, [os.path.join(BIN, "rpcgate-echo"), "--control",
                                 cls.epmd_control], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        line = cls.echo.stdout.readline()
        assert line.startswith("port="), line
        cls.echo_port = int(line.split("=")[1])
        cls.shared = t.popen(t.s, [os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                                   cls.epmd_control, "--interface", f"{ALLOWED}:1.0",
                                   "--interface", f"{BLOCKED}:1.0", "--class", "intranet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = cls.shared.stdout.readline()
        assert line.startswith("port="), line
        cls.shared_port = int(line.split("=")[1])
        cls.alone = t.popen(t.s, [os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                                  cls.epmd_control, "--uuid", ALONE, "--version", "1.0",
                                  "--class", "intranet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = cls.alone.stdout.readline()
        assert line.startswith("port="), line
        cls.alone_port = int(line.split("=")[1])
        cls.fw = cls.start_firewall()

    @classmethod
    def tearDownClass(cls):
        cls.fw.stop()
        subprocess.run(["ip", "netns", "exec", cls.fw_ns(), os.path.join(BIN, "rpcgate-fwd"),
                        "--uninstall"], capture_output=True)
        cls.t.close()
        cls.epmd_log.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    # ---- helpers
    def client(self, *args, source_ns=None, timeout=90):
        r = self.t.run(source_ns or self.t.c, ["/usr/bin/python3", CLIENT_PY, *args],
                       timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def map(self, uuid):
        return self.client("map", topo.SERVER, uuid)

    def attack(self, case, port, *extra):
        return self.client("attack", case, topo.SERVER, str(port), *extra)["answers"]

    def attack6(self, case, port, *extra):
        return self.client("attack", case, topo.SERVER6, str(port), *extra)["answers"]

    def open_shared_pinhole(self):
        m = self.map(ALLOWED)
        self.assertEqual(m.get("port"), self.shared_port, m)

    def assert_dropped(self, answers, reason, **match):
        self.assertTrue(answers == [] or answers[-1] in ("reset", "closed"), answers)
        topo.wait_for(lambda: self.fw.events("drop", reason=reason, **match), 5,
                      f"a drop record with reason {reason}: {self.fw.text()[-2000:]}")

    # ---- allowed traffic works end to end
    def test_a_impacket_echo_through_the_firewall(self):
        r = self.client("echo", topo.SERVER, "--bytes", "4000", "--calls", "5")
        self.assertEqual(r.get("echoed"), 5, r)
        self.assertIn(f"[{self.echo_port}]", r["binding"])
        opened = self.fw.events("pinhole", port=self.echo_port, client=topo.CLIENT)
        self.assertTrue(opened, self.fw.text())
        self.assertIn(RPCECHO, opened[-1]["interface"])
        self.assertEqual(opened[-1]["timeout_s"], TIMEOUT_S)
        st = self.fw.status()
        holes = [h for h in st["pinholes"] if h["port"] == self.echo_port]
        self.assertEqual(len(holes), 1, st)
        self.assertEqual(holes[0]["client"], topo.CLIENT)
        self.assertGreater(holes[0]["remaining_ms"], 0)
        self.assertLessEqual(holes[0]["remaining_ms"], TIMEOUT_S * 1000)

    def test_a_calls_split_at_every_byte_and_packed_together_pass_whole(self):
        m = self.map(RPCECHO)
        self.assertEqual(m.get("port"), self.echo_port, m)
        answers = self.attack("echo-split", self.echo_port, "--uuid", RPCECHO)
        self.assertEqual(answers, ["bind_ack", "response", "echoed", "response", "echoed",
                                   "response", "echoed", "response", "echoed"])

    def test_a_bulk_bodies_are_spliced_with_splice_and_copied_without(self):
        before = self.fw.status()["spliced_bytes"]
        r = self.client("echo", topo.SERVER, "--bytes", "65536", "--calls", "4")
        self.assertEqual(r.get("echoed"), 4, r)
        st = self.fw.status()
        self.assertEqual(st["splice"], "--splice" in self.MODE)
        if st["splice"]:
            # 64 KiB each way per call, in fragments of ~5.8 KB: all but the heads are spliced.
            self.assertGreater(st["spliced_bytes"] - before, 4 * 2 * 65536 * 0.95)
        else:
            self.assertEqual(st["spliced_bytes"], 0)

    @unittest.skipUnless(SMBTORTURE, "smbtorture not installed (samba-testsuite)")
    def test_b_smbtorture_rpc_echo_through_the_firewall(self):
        r = self.t.run(self.t.c, [SMBTORTURE, f"ncacn_ip_tcp:{topo.SERVER}", "-U%", "rpc.echo"],
                       timeout=120, env=dict(topo.ENV, HOME=self.workdir))
        out = r.stdout + r.stderr
        for subtest in ("addone", "sinkdata", "echodata", "sourcedata", "testcall", "testcall2",
                        "enum", "surrounding", "doublepointer", "sleep"):
            self.assertIn(f"success: echo.{subtest}\n", out, out[-3000:])
        self.assertNotIn("failure:", out, out[-3000:])
        # It went through the firewall: the endpoint mapper's answer opened rpcecho's port.
        self.assertTrue(self.fw.events("pinhole", port=self.echo_port, client=topo.CLIENT))

    def test_b_rpcgate_map_and_lookup_through_the_firewall(self):
        rpcgate = os.path.join(BIN, "rpcgate")
        r = self.t.run(self.t.c, [rpcgate, "map", topo.SERVER, f"{RPCECHO}:1.0", "--json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"[{self.echo_port}]", r.stdout)
        r = self.t.run(self.t.c, [rpcgate, "map", topo.SERVER, f"{ALONE}:1.0"])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # not registered, at once
        # ept_lookup passes (Impacket's rpcdump.py) and opens nothing.
        opened = len(self.fw.events("pinhole"))
        r = self.t.run(self.t.c, ["/usr/bin/python3",
                                  "/usr/share/doc/python3-impacket/examples/rpcdump.py",
                                  "-port", "135", topo.SERVER], timeout=60)
        self.assertIn(RPCECHO, r.stdout.lower(), r.stdout + r.stderr)
        self.assertIn(ALONE, r.stdout.lower())
        self.assertEqual(len(self.fw.events("pinhole")), opened)

    def test_b_ipv6_map_opens_an_ipv6_pinhole(self):
        r = self.t.run(self.t.c, [os.path.join(BIN, "rpcgate"), "map", topo.SERVER6,
                                  f"{RPCECHO}:1.0", "--json"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(self.fw.events("pinhole", client=topo.CLIENT6, server=topo.SERVER6,
                                       port=self.echo_port), self.fw.text()[-2000:])
        self.assertEqual(self.attack6("bind-allowed", self.echo_port), ["bind_ack"])
        self.assertEqual(self.attack6("bind-other", self.echo_port), ["reset"])

    # ---- the endpoint mapper
    def test_c_map_of_a_blocked_interface_opens_nothing(self):
        before = self.fw.status().get("kernel_counters", {}).get("no_pinhole", 0)
        # The firewall answers "not registered" itself (fail fast), as a server without it would.
        started = time.monotonic()
        m = self.map(ALONE)
        self.assertIn("ept_s_not_registered", m.get("error", "").lower(), m)
        self.assertLess(time.monotonic() - started, 5)
        self.assertTrue(self.fw.events("refuse", reason="map-not-allowed", client=topo.CLIENT),
                        self.fw.text())
        self.assertFalse(self.fw.events("pinhole", port=self.alone_port), self.fw.text())
        c = self.client("connect", topo.SERVER, str(self.alone_port))
        self.assertFalse(c["connected"], c)
        after = self.fw.status()["kernel_counters"]["no_pinhole"]
        self.assertGreater(after, before)

    def test_d_registration_from_the_network_is_dropped(self):
        self.assert_dropped(self.attack("epm-insert", 135), "epm-registration")

    def test_d_dcom_activation_on_135_is_dropped(self):
        self.assert_dropped(self.attack("epm-dcom", 135), "epm-other-interface")

    def test_d_malformed_pdu_on_135_is_dropped(self):
        self.assert_dropped(self.attack("frag-too-short", 135), "protocol")

    def test_d_pinhole_is_for_that_client_only(self):
        self.open_shared_pinhole()
        c = self.client("connect", topo.SERVER, str(self.shared_port), "--source", topo.CLIENT2)
        self.assertFalse(c["connected"], c)
        c = self.client("connect", topo.SERVER, str(self.shared_port), "--source", topo.CLIENT)
        self.assertTrue(c["connected"], c)

    def test_d_a_client_reset_is_passed_on_and_recorded(self):
        # On 135 (the whole-PDU path) and on a pinhole (the cut-through path; the splice path
        # with --splice): the relay sees the client's RST as a recv error, ends the flow (the
        # server side is reset) and records it as client-reset.
        self.open_shared_pinhole()
        for port, uuid, major in ((135, EPM_UUID, "3"), (self.shared_port, ALLOWED, "1")):
            self.assertEqual(self.attack("reset-after-bind", port, "--uuid", uuid, "--major", major),
                             ["bind_ack"])
            topo.wait_for(lambda: self.fw.events("allow", reason="client-reset", port=port), 5,
                          f"an allow record client-reset on {port}: {self.fw.text()[-2000:]}")

    # ---- the pinhole connection (docs/evasions.md E and C)
    def test_e_allowed_interface_binds(self):
        self.open_shared_pinhole()
        self.assertEqual(self.attack("bind-allowed", self.shared_port, "--uuid", ALLOWED),
                         ["bind_ack"])
        self.assertEqual(self.attack("bind-allowed-split", self.shared_port, "--uuid", ALLOWED),
                         ["bind_ack"])
        self.assertEqual(self.attack("bind-windows", self.shared_port, "--uuid", ALLOWED),
                         ["bind_ack"])

    @unittest.skipUnless(TSHARK, "tshark not installed")
    def test_e_other_interface_on_the_same_port_never_reaches_the_server(self):
        cap = Capture(self.t, self.workdir, self.CAPTURE_IF)
        cases = ["bind-other", "bind-other-split", "bind-mixed", "bind-two-transfer-syntaxes"]
        for case in cases:
            # A fresh pinhole each time: on a loaded machine tshark's start and each client's
            # can outlast a TIMEOUT_S one, and then the kernel, not the inspector, stops it.
            self.open_shared_pinhole()
            answers = self.attack(case, self.shared_port, "--uuid", ALLOWED, "--other", BLOCKED)
            self.assert_dropped(answers, "interface-not-allowed", port=self.shared_port)
        # Control: an allowed bind in the same capture shows the capture sees binds at all.
        # (A fresh pinhole: the cases above may outlive a TIMEOUT_S one on a loaded machine.)
        self.open_shared_pinhole()
        self.assertEqual(self.attack("bind-allowed", self.shared_port, "--uuid", ALLOWED),
                         ["bind_ack"])
        seen = cap.bound_uuids()
        self.assertIn(ALLOWED, seen)
        self.assertNotIn(BLOCKED, seen)

    def test_e_alter_context_to_a_blocked_interface_is_dropped(self):
        self.open_shared_pinhole()
        answers = self.attack("alter-to-other", self.shared_port, "--uuid", ALLOWED, "--other",
                              BLOCKED)
        self.assertEqual(answers[0], "bind_ack", answers)
        self.assert_dropped(answers, "interface-not-allowed")

    def test_e_not_rpc_or_no_bind_is_dropped(self):
        self.open_shared_pinhole()
        for case in ("request-without-bind", "garbage", "request-unbound-context", "second-bind"):
            answers = self.attack(case, self.shared_port, "--uuid", ALLOWED)
            self.assertIn(answers[-1] if answers else "reset", ("reset", "closed"), (case, answers))

    def test_f_queued_bytes_are_bounded_in_total_and_the_biggest_holder_goes(self):
        # Clients that send big calls and never read the answers: the relay queues towards them
        # (512 KiB per connection at most), and over --max-queued-bytes in all it drops the
        # connection that holds the most - the others, and new clients, are served.
        self.fw.stop()
        type(self).fw = self.start_firewall("--max-queued-bytes", str(1 << 20))
        try:
            self.assertEqual(self.map(RPCECHO).get("port"), self.echo_port)
            floods = [self.t.popen(self.t.c, ["/usr/bin/python3", CLIENT_PY, "attack",
                                              "echo-flood-no-read", topo.SERVER,
                                              str(self.echo_port), "--wait", "4"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for _ in range(4)]
            if "--splice" in self.MODE:
                # Spliced bodies wait in each connection's pipe (64 KiB), not in user space:
                # the total never comes near the budget.
                time.sleep(3)
                self.assertLess(self.fw.status()["queued_bytes"], 1 << 20)
            else:
                topo.wait_for(lambda: self.fw.events("drop", reason="relay-memory-budget"), 20,
                              "a relay-memory-budget drop: " + self.fw.text()[-1500:])
                self.assertLessEqual(self.fw.status()["queued_bytes"], 1 << 20)
            r = self.client("echo", topo.SERVER, "--bytes", "1000", "--calls", "2")
            self.assertEqual(r.get("echoed"), 2, r)
            for p in floods:
                p.communicate(timeout=30)
        finally:
            self.fw.stop()
            type(self).fw = self.start_firewall()

    # ---- lifetime, crash, restart, uninstall
    def test_f_pinhole_expires_but_an_established_connection_stays(self):
        # One call, a pause longer than the pinhole's life, a second call on the same connection.
        r = self.client("echo", topo.SERVER, "--calls", "2", "--hold", str(TIMEOUT_S + 1))
        self.assertEqual(r.get("echoed"), 2, r)
        # ... while a new connection through the expired pinhole is dropped.
        c = self.client("connect", topo.SERVER, str(self.echo_port))
        self.assertFalse(c["connected"], c)

    def test_z_kill_9_fails_closed_and_a_restart_recovers_pinholes(self):
        # A connection established through the firewall, that calls again after the kill.
        self.open_shared_pinhole()
        go = os.path.join(self.workdir, f"call-now-{time.monotonic_ns()}")
        held = self.t.popen(self.t.c, ["/usr/bin/python3", CLIENT_PY, "attack",
                                       "bind-then-call-later", topo.SERVER, str(self.shared_port),
                                       "--uuid", ALLOWED, "--wait-file", go],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        topo.wait_for(lambda: any(c["kind"] == "pinhole" and c["pdus"] >= 2
                                  for c in self.fw.status()["connections"]),
                      10, "the held connection's bind")
        self.open_shared_pinhole()  # a fresh one: it must outlive the checks below
        self.fw.stop(signal.SIGKILL)
        try:
            self.assertTrue(self.t.has_table(ns=self.fw_ns()))
            c = self.client("connect", topo.SERVER, "135")
            self.assertFalse(c["connected"], c)
            c = self.client("connect", topo.SERVER, str(self.shared_port))
            self.assertFalse(c["connected"], c)
        finally:
            open(go, "w").close()  # the held connection calls now, after the kill
            type(self).fw = self.start_firewall()
        # Existing governed connections stopped: the call after the kill got no answer.
        out, _ = held.communicate(timeout=90)
        answers = json.loads(out)["answers"]
        self.assertEqual(answers[0], "bind_ack", answers)
        self.assertIn(answers[-1], ("closed", "reset", "timeout"), answers)
        self.assertTrue(self.fw.events("recover"), self.fw.text())
        # The pinhole learned before the crash works again without a new ept_map.
        self.assertEqual(self.attack("bind-allowed", self.shared_port, "--uuid", ALLOWED),
                         ["bind_ack"])

    def test_g_invalid_rules_exit_2_naming_the_line_and_touch_nothing(self):
        chain = ["nft", "-j", "list", "chain", "inet", "rpcgate_fwd", "prerouting"]
        before = self.t.run(self.fw_ns(), chain).stdout
        bad = os.path.join(self.workdir, "bad.toml")
        with open(bad, "w") as f:
            f.write('[firewall]\npinhole_timeout = "30s"\n\n[[firewall.rule]]\nname = "x"\n'
                    'interfaces = ["no-such-interface"]\n')
        r = self.t.run(self.fw_ns(), [os.path.join(BIN, "rpcgate-fwd"), "--config", bad,
                                  "--control", "none", "--epm-listen-port", "25135",
                                  "--pinhole-listen-port", "25136"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"{bad}:6", r.stderr)
        self.assertIn("no-such-interface", r.stderr)
        self.assertEqual(self.t.run(self.fw_ns(), chain).stdout, before)
        self.assertIsNone(self.fw.proc.poll())

    def test_h_sighup_applies_a_valid_file_and_refuses_an_invalid_one(self):
        conf = os.path.join(self.workdir, "rpcgate.toml")
        with open(conf, "w") as f:
            f.write("[firewall]\n")
        self.fw.stop()
        type(self).fw = self.start_firewall("--config", conf)
        try:
            self.assertIn("ept_s_not_registered", self.map(ALONE).get("error", "").lower())
            with open(conf, "w") as f:
                f.write(f'[firewall]\n[[firewall.rule]]\nname = "alone"\n'
                        f'interfaces = ["{ALONE}:1.0"]\n')
            self.fw.proc.send_signal(signal.SIGHUP)
            topo.wait_for(lambda: self.fw.events("reload", reason="applied"), 5, "the reload")
            self.assertEqual(self.map(ALONE).get("port"), self.alone_port)
            with open(conf, "w") as f:
                f.write('[firewall]\n[[firewall.rule]]\nname = "alone"\ninterfaces = []\n')
            self.fw.proc.send_signal(signal.SIGHUP)
            topo.wait_for(lambda: self.fw.events("reload", reason="invalid"), 5, "the refusal")
            self.assertIn(f"{conf}:4", self.fw.events("reload", reason="invalid")[-1]["message"])
            # The running rules stay.
            self.assertEqual(self.map(ALONE).get("port"), self.alone_port)
        finally:
            self.fw.stop()
            type(self).fw = self.start_firewall()

    def test_zz_uninstall_leaves_nothing_behind(self):
        self.fw.stop()
        r = self.t.run(self.fw_ns(), [os.path.join(BIN, "rpcgate-fwd"), "--uninstall"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(self.t.has_table(ns=self.fw_ns()))
        rules = self.t.run(self.fw_ns(), ["ip", "rule", "show"]).stdout
        self.assertNotIn("lookup 135", rules)
        routes = self.t.run(self.fw_ns(), ["ip", "route", "show", "table", "135"])
        self.assertEqual(routes.stdout.strip(), "")
        # Without the firewall nothing governs: the router forwards 135 again.
        c = self.client("connect", topo.SERVER, "135")
        self.assertTrue(c["connected"], c)
        type(self).fw = self.start_firewall()


class HostModeTest(FirewallTest):
    """Host mode: rpcgate-fwd on the servers' own machine protects rpcgate-epmd and the servers
    there (the namespace in the middle only forwards). The same cases; what reached the servers
    is what the relay passed on over loopback."""
    MODE = ("--mode", "host")
    CAPTURE_IF = "lo"

    @classmethod
    def fw_ns(cls):
        return cls.t.s


class SpliceTest(FirewallTest):
    """Router mode with --splice: request and response bodies spliced, only heads judged. The
    same cases."""
    MODE = ("--splice",)


if __name__ == "__main__":
    rpcgate_testlib.main()
