#!/usr/bin/python3
"""rpcgate-bench idle against rpcgate-epmd: many idle bound connections held from several
loopback source addresses, the server's RSS read before and after, probes while they are held.

Checks what happens - every connection held, probes answered, nothing dropped, the JSON shape,
connection limits enforced and reported, exit statuses - never how much memory or time anything
takes: that is measured by hand (bench/README.md), not asserted. Runs in a private network
namespace like the other daemon tests.
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import BIN, POLICY, Daemon, wait_for  # noqa: E402

rpcgate_testlib.enter_private_netns("50000-50199")

JSON_FIELDS = ("mode", "target", "connections_requested", "connections_held",
               "connections_failed", "failure_kinds", "sources", "probe_source", "server_pid",
               "rss_before_kib", "rss_after_kib", "bytes_per_connection", "probes",
               "probe_p50_us", "probe_max_us", "probe_errors", "probe_error",
               "held_after_probes", "open_seconds", "seconds")
FAILURE_KINDS = ("connect", "bind", "protocol", "timeout", "closed")
MANY = 2000


def server_connections(port):
    """TCP connections of the server on `port` not yet closed by it (ESTABLISHED or CLOSE-WAIT:
    the client closed, the server has not yet seen it)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "state", "close-wait",
                          f"( sport = :{port} )"], capture_output=True, text=True,
                         check=True).stdout
    return len(out.splitlines())


def bench(*args, timeout=120):
    return subprocess.run([os.path.join(BIN, "rpcgate-bench"), "idle", *args],
                          capture_output=True, text=True, timeout=timeout)


def bench_json(*args):
    r = bench(*args, "--json")
    if r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


class IdleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < MANY + 200:
            raise unittest.SkipTest(f"RLIMIT_NOFILE hard limit {hard} < {MANY + 200}")
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-idle-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY)
        # A second daemon with small limits: 100 per peer, 150 in all.
        cls.limited = Daemon(cls.workdir, "limited", POLICY, port=1135,
                             extra=("--max-connections-per-peer", "100",
                                    "--max-connections", "150"))

    @classmethod
    def tearDownClass(cls):
        cls.limited.stop()
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def test_holds_2000_idle_connections_and_answers_probes(self):
        j = bench_json("--connections", str(MANY), "--server-pid", str(self.daemon.proc.pid))
        for field in JSON_FIELDS:
            self.assertIn(field, j)
        for kind in FAILURE_KINDS:
            self.assertEqual(j["failure_kinds"][kind], 0, j["failure_kinds"])
        self.assertEqual(j["mode"], "idle")
        self.assertEqual(j["target"], "127.0.0.1:135")
        self.assertEqual(j["connections_requested"], MANY)
        self.assertEqual(j["connections_held"], MANY)
        self.assertEqual(j["connections_failed"], 0)
        self.assertGreaterEqual(j["sources"], 2)  # over the daemon's 1024 per peer otherwise
        self.assertEqual(j["probe_source"], f"127.0.0.{j['sources'] + 1}")
        self.assertEqual(j["server_pid"], self.daemon.proc.pid)
        for field in ("rss_before_kib", "rss_after_kib", "bytes_per_connection", "probe_p50_us",
                      "probe_max_us", "open_seconds", "seconds"):
            self.assertIsInstance(j[field], (int, float), field)
        self.assertGreater(j["bytes_per_connection"], 0)
        self.assertEqual(j["probes"], 20)
        self.assertEqual(j["probe_errors"], 0, j["probe_error"])
        self.assertIsNone(j["probe_error"])
        self.assertLessEqual(j["probe_p50_us"], j["probe_max_us"])
        self.assertEqual(j["held_after_probes"], MANY)
        # Everything was closed on exit; the daemon still serves.
        wait_for(lambda: bench_json("--connections", "1", "--probes", "1")["connections_held"] == 1,
                 10, "a new idle connection")

    def test_without_server_pid_memory_is_null(self):
        j = bench_json("--connections", "10", "--probes", "2", "--sources", "3")
        self.assertEqual(j["connections_held"], 10)
        self.assertEqual(j["sources"], 3)
        self.assertIsNone(j["server_pid"])
        self.assertIsNone(j["rss_before_kib"])
        self.assertIsNone(j["bytes_per_connection"])
        self.assertEqual(j["probe_errors"], 0, j["probe_error"])
        self.assertEqual(j["held_after_probes"], 10)

    def test_no_probes(self):
        j = bench_json("--connections", "5", "--probes", "0")
        self.assertEqual(j["connections_held"], 5)
        self.assertIsNone(j["probe_p50_us"])
        self.assertIsNone(j["probe_max_us"])

    def test_human_table(self):
        r = bench("--connections", "20", "--probes", "2", "--server-pid",
                  str(self.daemon.proc.pid))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        for column in ("held", "failed", "sources", "B/conn", "p50 us", "alive"):
            self.assertIn(column, lines[0])
        self.assertTrue(lines[1].startswith("idle"), lines[1])
        self.assertIn(f"server pid {self.daemon.proc.pid}: VmRSS", r.stdout)

    def test_per_peer_and_total_limits_refuse_the_rest_and_say_so_once(self):
        port = self.limited.port
        # One source: 100 held, the other 100 refused (accepted and closed at once).
        j = bench_json("--target", f"127.0.0.1:{port}", "--connections", "200", "--sources", "1",
                       "--probes", "3")
        self.assertEqual(j["connections_held"], 100)
        self.assertEqual(j["connections_failed"], 100)
        self.assertEqual(j["failure_kinds"]["closed"], 100, j["failure_kinds"])
        # The probes come from another address: answered.
        self.assertEqual(j["probe_errors"], 0, j["probe_error"])
        self.assertEqual(j["held_after_probes"], 100)
        wait_for(lambda: server_connections(port) == 0, 10, "the daemon to close the first 100")
        # Three sources: at most 150 in all.
        j = bench_json("--target", f"127.0.0.1:{port}", "--connections", "300", "--sources", "3",
                       "--probes", "0")
        self.assertEqual(j["connections_held"], 150)
        self.assertEqual(j["failure_kinds"]["closed"], 150, j["failure_kinds"])
        # Not one line per refused connection: one summary per interval (10 s); the two runs
        # may fall on either side of a summary.
        def refused_lines():
            return [line for line in self.limited.read_log().splitlines() if "refused" in line]

        def refused_total():
            return sum(int(line.split("refused ", 1)[1].split()[0]) for line in refused_lines())

        wait_for(lambda: refused_total() >= 250, 25, "the refused-connections summaries")
        refused = refused_lines()
        self.assertLessEqual(len(refused), 2, refused)
        self.assertEqual(refused_total(), 250, refused)
        # Each summary names the budgets that refused, with their values: 100 over the
        # per-peer one (first run), 150 over the total (second run).
        self.assertIn("100 over max_connections_per_peer 100", "\n".join(refused))
        self.assertIn("150 over max_connections 150", "\n".join(refused))

    def test_descriptor_limit_lowers_max_connections_so_extra_clients_are_refused(self):
        # A hard RLIMIT_NOFILE of 300: the daemon warns and holds 300 - 64 (headroom) - 128 (the
        # control socket's budget); the connections over that are closed at once (not left in
        # the listen backlog to time out).
        d = Daemon(self.workdir, "fd-limited", POLICY, port=1136,
                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 300)))
        try:
            self.assertIn("only 300 file descriptors", d.read_log())
            self.assertIn("holding at most 108 connections", d.read_log())
            j = bench_json("--target", "127.0.0.1:1136", "--connections", "300", "--probes", "2")
            self.assertEqual(j["connections_held"], 108)
            self.assertEqual(j["failure_kinds"]["closed"], 300 - 108, j["failure_kinds"])
            self.assertEqual(j["failure_kinds"]["timeout"], 0, j["failure_kinds"])
            self.assertEqual(j["probe_errors"], 2)  # refused too: the daemon is full
            self.assertIn("closed by the server", j["probe_error"])
            self.assertEqual(j["held_after_probes"], 108)
        finally:
            d.stop()

    def test_closed_port_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = bench("--target", f"127.0.0.1:{port}", "--connections", "5")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("connection refused", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_bad_usage_exits_2(self):
        with open("/proc/sys/kernel/pid_max") as f:
            no_such_pid = f.read().strip()  # pids are below pid_max
        for args in (["--target", "[::1]:135"],  # the sources are IPv4 loopback addresses
                     ["--target", "192.0.2.1:135"],
                     ["--target", "nohost"],
                     ["--connections", "0"],
                     ["--sources", "0"],
                     ["--sources", "254"],
                     ["--probes", "-1"],
                     ["--timeout", "0"],
                     ["--interface", "not-a-uuid"],
                     ["--server-pid", no_such_pid],
                     ["--duration", "1"]):  # load options are not idle's
            r = bench(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "", args)


if __name__ == "__main__":
    rpcgate_testlib.main()
