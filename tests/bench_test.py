#!/usr/bin/python3
"""rpcgate-bench against real servers: rpcgate-epmd with a registered rpcgate-testsrv interface,
the floor server (bench/floor_server.cc), rpcgate-echo standalone, and a closed port.

Short runs (1 s, no warmup, 4 connections) that check what the tool reports - calls made, no
errors, the JSON shape, the exit status - never how fast anything is: speed is measured by hand
(see docs), not asserted. Runs in a private network namespace like the other daemon tests.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import BIN, POLICY, Daemon, Server  # noqa: E402

rpcgate_testlib.enter_private_netns("50000-50199")

ALPHA = "a1b2c3d4-0001-4000-8000-0000000000aa"
JSON_FIELDS = ("mode", "target", "connections", "threads", "duration_s", "warmup_s", "calls",
               "calls_per_s", "p50_us", "p99_us", "p999_us", "max_us", "mean_us", "errors",
               "error_kinds")
ERROR_KINDS = ("connect", "bind", "fault", "status", "protocol", "timeout", "closed")


def bench(*args, timeout=30):
    return subprocess.run([os.path.join(BIN, "rpcgate-bench"), *args], capture_output=True,
                          text=True, timeout=timeout)


def bench_json(*args):
    r = bench(*args, "--duration", "1", "--warmup", "0", "--connections", "4", "--json")
    if r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


class Started:
    """A server that prints `port=N` first (rpcgate-echo, rpc-floor-server)."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("port="), (line, self.proc.stderr.read())
        self.port = int(line.split("=", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


class BenchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-bench-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY)
        cls.server = Server(cls.daemon, ALPHA, "alpha", port_class="internet")
        assert cls.server.port is not None, cls.server.proc.stderr.read()
        cls.floor = Started(os.path.join(BIN, "rpc-floor-server"), "--listen", "127.0.0.1:0")
        cls.echo = Started(os.path.join(BIN, "rpcgate-echo"), "--no-register", "--port", "0",
                           "--listen", "127.0.0.1")

    @classmethod
    def tearDownClass(cls):
        cls.echo.stop()
        cls.floor.stop()
        cls.server.stop()
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def assert_clean(self, j, mode):
        self.assertEqual(j["mode"], mode)
        self.assertGreater(j["calls"], 0)
        self.assertEqual(j["errors"], 0, j["error_kinds"])
        self.assertEqual(j["connections"], 4)

    def test_epm_map_against_rpcgate_epmd(self):
        j = bench_json("epm-map", "--target", "127.0.0.1:135", "--interface", f"{ALPHA}:1.0")
        for field in JSON_FIELDS:
            self.assertIn(field, j)
        for kind in ERROR_KINDS:
            self.assertEqual(j["error_kinds"][kind], 0)
        for field in ("connections", "threads", "duration_s", "calls", "calls_per_s", "p50_us",
                      "p99_us", "p999_us", "errors"):
            self.assertIsInstance(j[field], (int, float), field)
        self.assert_clean(j, "epm-map")
        self.assertEqual(j["target"], "127.0.0.1:135")
        self.assertLessEqual(j["p50_us"], j["p99_us"])
        self.assertLessEqual(j["p99_us"], j["p999_us"])

    def test_epm_map_of_an_unregistered_interface_counts_status_errors(self):
        j = bench_json("epm-map", "--target", "127.0.0.1:135", "--interface",
                       "a1b2c3d4-0001-4000-8000-0000000000ff:1.0")
        self.assertEqual(j["calls"], 0)
        self.assertGreater(j["error_kinds"]["status"], 0)

    def test_epm_map_against_the_floor_server(self):
        j = bench_json("epm-map", "--target", f"127.0.0.1:{self.floor.port}")
        self.assert_clean(j, "epm-map")

    def test_echo_addone(self):
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "addone")
        self.assert_clean(j, "echo")
        self.assertEqual(j["op"], "addone")

    def test_echo_echodata_4096(self):
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "echodata",
                       "--size", "4096")
        self.assert_clean(j, "echo")
        self.assertEqual(j["size"], 4096)

    def test_echo_echodata_fragmented(self):
        # 20000 bytes: several request and response fragments of the negotiated 5840.
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "echodata",
                       "--size", "20000")
        self.assert_clean(j, "echo")

    def test_connect_mode(self):
        j = bench_json("connect", "--target", "127.0.0.1:135", "--interface", f"{ALPHA}:1.0")
        self.assert_clean(j, "connect")

    def time_wait_from(self, source):
        """Client-side TIME-WAIT sockets from `source` to rpcgate-echo: one per connection the
        client closed first."""
        r = subprocess.run(["ss", "-Htan", "state", "time-wait", "src", source, "dst",
                            f"127.0.0.1:{self.echo.port}"], capture_output=True, text=True)
        return len(r.stdout.splitlines())

    def test_echo_reconnect_makes_a_new_connection_per_call_from_the_sources(self):
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "addone",
                       "--reconnect", "--source", "127.0.0.21", "--source", "127.0.0.22")
        self.assert_clean(j, "echo")
        self.assertTrue(j["reconnect"])
        self.assertEqual(j["sources"], ["127.0.0.21", "127.0.0.22"])
        # Each call's connection was closed by the client (TIME-WAIT on its side), from both
        # addresses; warmup 0, so at least the measured calls.
        tw = self.time_wait_from("127.0.0.21") + self.time_wait_from("127.0.0.22")
        self.assertGreaterEqual(tw, min(j["calls"], 20000), j)
        self.assertGreater(self.time_wait_from("127.0.0.22"), 0)

    def test_echo_without_reconnect_keeps_its_connections(self):
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "addone",
                       "--source", "127.0.0.23")
        self.assert_clean(j, "echo")
        self.assertFalse(j["reconnect"])
        self.assertGreater(j["calls"], 8)
        self.assertLessEqual(self.time_wait_from("127.0.0.23"), 4)  # the 4 connections at most

    def test_calls_outstanding_at_the_end_are_counted_as_stalled(self):
        # A listener that never answers: the kernel completes each connect, the bind waits.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        try:
            r = bench("echo", "--target", f"127.0.0.1:{s.getsockname()[1]}", "--connections", "3",
                      "--duration", "1.2", "--warmup", "0", "--timeout", "30", "--json")
        finally:
            s.close()
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["calls"], 0)
        self.assertEqual(j["errors"], 0, j["error_kinds"])  # no timeout within 30 s
        self.assertEqual(j["stalled_at_end"], 3)
        j = bench_json("echo", "--target", f"127.0.0.1:{self.echo.port}", "--op", "addone")
        self.assertEqual(j["stalled_at_end"], 0)

    def test_source_not_assigned_here_exits_1_naming_it(self):
        r = bench("echo", "--target", f"127.0.0.1:{self.echo.port}", "--source", "192.0.2.1",
                  "--duration", "0.2", "--warmup", "0")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("192.0.2.1", r.stderr)
        r = bench("epm-map", "--target", "127.0.0.1:135", "--source", "::1", "--duration", "0.2",
                  "--warmup", "0")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("address family", r.stderr)

    def test_idle_bound_to_rpcecho_from_given_sources(self):
        r = bench("idle", "--target", f"127.0.0.1:{self.echo.port}", "--bind", "rpcecho",
                  "--source", "127.0.0.31", "--source", "127.0.0.32", "--connections", "40",
                  "--probes", "3", "--server-pid", str(self.echo.proc.pid), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["bind"], "rpcecho")
        self.assertEqual(j["connections_held"], 40)
        self.assertEqual(j["source_addresses"], ["127.0.0.31", "127.0.0.32"])
        self.assertEqual(j["sources"], 2)
        self.assertEqual(j["probe_source"], "127.0.0.31")
        self.assertEqual(j["probe_errors"], 0, j["probe_error"])  # AddOne answered in + 1
        self.assertEqual(j["held_after_probes"], 40)
        # rpcgate-echo holds one descriptor per connection.
        self.assertEqual(j["fds_after"] - j["fds_before"], 40, j)
        self.assertEqual(j["fds_per_connection"], 1.0)
        # Against the endpoint mapper's interface rpcgate-echo rejects the bind.
        r = bench("idle", "--target", f"127.0.0.1:{self.echo.port}", "--source", "127.0.0.31",
                  "--connections", "2")
        self.assertEqual(r.returncode, 1, r.stdout)

    def test_idle_source_options_usage(self):
        self.assertEqual(bench("idle", "--source", "127.0.0.2", "--sources", "2").returncode, 2)
        self.assertEqual(bench("idle", "--probe-source", "127.0.0.2").returncode, 2)
        self.assertEqual(bench("idle", "--source", "::1").returncode, 2)
        self.assertEqual(bench("idle", "--bind", "samr").returncode, 2)
        # A non-loopback target needs --source.
        self.assertEqual(bench("idle", "--target", "192.0.2.1:135").returncode, 2)

    def test_human_table(self):
        r = bench("epm-map", "--target", f"127.0.0.1:{self.floor.port}", "--duration", "0.2",
                  "--warmup", "0", "--connections", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        header, row = r.stdout.splitlines()[:2]
        for column in ("mode", "calls/s", "p50 us", "p99 us", "p99.9 us", "errors"):
            self.assertIn(column, header)
        self.assertTrue(row.startswith("epm-map"), row)

    def test_closed_port_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # bound, never listening: connect is refused
        for mode in ("epm-map", "connect"):
            r = bench(mode, "--target", f"127.0.0.1:{port}", "--duration", "1", "--warmup", "0")
            self.assertEqual(r.returncode, 1, (mode, r.stdout, r.stderr))
            self.assertIn("connection refused", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_wrong_interface_for_the_server_exits_1(self):
        # rpcgate-echo does not serve the endpoint mapper: the first bind is rejected.
        r = bench("epm-map", "--target", f"127.0.0.1:{self.echo.port}", "--duration", "1",
                  "--warmup", "0")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("bind", r.stderr)

    def test_bad_usage_exits_2(self):
        self.assertEqual(bench("epm-map", "--target", "nohost").returncode, 2)
        self.assertEqual(bench("epm-map", "--interface", "not-a-uuid").returncode, 2)
        self.assertEqual(bench("epm-map", "--duration", "1000").returncode, 2)
        self.assertEqual(bench("echo").returncode, 2)  # --target is required


if __name__ == "__main__":
    rpcgate_testlib.main()
