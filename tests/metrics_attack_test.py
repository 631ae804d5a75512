#!/usr/bin/python3
"""A hostile client of rpcgate-epmd's metrics endpoint (issue 15; README "Metrics").

In a private network namespace: rpcgate-epmd on 127.0.0.1:135 with `--metrics 127.0.0.1:9135`.
An attacker opens many connections to the metrics port and sends nothing, or half a request,
and holds them. Checked:
  * the RPC path does not notice: a bind and ept_map on 135 are answered meanwhile, promptly;
  * the endpoint's budget is fixed: rpcgate-epmd's thread count does not grow with the
    attacker's connections;
  * civetweb closes a connection that has not sent a whole request within the request timeout
    (metrics::kRequestTimeout, 5 s; civetweb's own default is 30 s), and scrapes get through
    again at once after the attacker lets go. While it holds N connections a scrape waits up to
    N / metrics::kServeThreads * the timeout (civetweb has no per-peer limit: README, "Metrics").
Skips (77) without root or unshare.
"""
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import Daemon, wait_for  # noqa: E402

rpcgate_testlib.enter_private_netns("50000-50199")

METRICS_PORT = 9135
REQUEST_TIMEOUT_S = 5  # metrics::kRequestTimeout
ATTACKERS = 64  # far more than the endpoint's threads (metrics::kServeThreads)


def scrape(timeout):
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=timeout) as r:
        return r.read().decode()


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def ept_map_seconds():
    """A fresh connection, bind, and Impacket's ept_map of the endpoint mapper's own interface
    (always registered): how long it took."""
    started = time.monotonic()
    binding = rpcgate_testlib.hept_map("e1af8308-5d1f-11c9-91a4-08002b14a0fa", version="3.0")
    assert "[135]" in binding, binding
    return time.monotonic() - started


class MetricsAttackTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-metrics-attack.")
        cls.epmd = Daemon(cls.workdir, "epmd", rpcgate_testlib.POLICY,
                          extra=["--metrics", f"127.0.0.1:{METRICS_PORT}"])

    @classmethod
    def tearDownClass(cls):
        cls.epmd.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def hold(self):
        held = []
        for i in range(ATTACKERS):
            s = socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=5)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never ends the header
            held.append(s)
        return held

    def test_held_connections_do_not_touch_the_rpc_path_and_time_out(self):
        self.assertIn("rpcgate_epmd_policy_valid", scrape(5))
        ept_map_seconds()  # warm: the first Impacket import and connection
        before = threads(self.epmd.proc.pid)
        held = self.hold()
        try:
            # The RPC path: answered promptly while every metrics thread is held.
            took = max(ept_map_seconds() for _ in range(5))
            self.assertLess(took, 2.0, "ept_map slowed by the metrics attacker")
            self.assertEqual(threads(self.epmd.proc.pid), before,
                             "the metrics endpoint grew threads with the attacker's connections")
            # civetweb closes a connection that sent no whole request within the timeout: the
            # first ones served read EOF (or a reset) after about REQUEST_TIMEOUT_S, not after
            # civetweb's default 30 s. (The others wait in its queue behind them: while an
            # attacker holds N connections, a scrape waits up to N / threads * the timeout.)
            started = time.monotonic()
            first = held[0]
            first.settimeout(REQUEST_TIMEOUT_S * 3)
            try:
                first.recv(4096)  # b"" or a 4xx answer: the server gave up on it
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail(f"a held metrics connection still open after {REQUEST_TIMEOUT_S * 3} s")
            self.assertGreater(time.monotonic() - started, REQUEST_TIMEOUT_S * 0.5)
            self.assertEqual(threads(self.epmd.proc.pid), before)
        finally:
            for s in held:
                s.close()
        self.assertIn("rpcgate_epmd_policy_valid", wait_for(lambda: self.try_scrape(), 5,
                                                            "a scrape after the attacker left"))
        self.assertIn("listening on", self.epmd.read_log())
        self.assertIsNone(self.epmd.proc.poll())

    @staticmethod
    def try_scrape():
        try:
            return scrape(2)
        except OSError:
            return None


if __name__ == "__main__":
    rpcgate_testlib.main()
