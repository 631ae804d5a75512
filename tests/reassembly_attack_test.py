#!/usr/bin/python3
"""Issue 10 item 1 as the attack: after a bind, clients send FIRST and middle request fragments
of the largest size and never the LAST one, from one address and from several, against the real
rpcgate-epmd in a private network namespace.

Asserts (a) the daemon's RSS growth (VmRSS) stays under the budget that applies plus SLACK,
(b) another client's ept_map keeps being answered with latency comparable to a baseline taken
before the attack, (c) the attack connections are closed with the logged budget reason, (d) once
they are gone RSS falls back near the baseline (malloc_trim), and that a connection trickling
whole middle fragments is closed by the call deadline. Against a daemon without the budgets
(RPCGATE_BIN=/work/main/build/bin) (a) fails within a second: the attack is stopped as soon as
RSS passes the bound, so the old daemon never takes gigabytes of the machine.
"""
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import POLICY, Daemon, hept_map, wait_for  # noqa: E402

rpcgate_testlib.enter_private_netns("50000-50199")

MIB = 1 << 20
# rpcgate-epmd's defaults (apps/rpcgate-epmd/config.h).
PER_PEER = 4 * MIB
SERVER_WIDE = 32 * MIB
CALL_TIMEOUT = 5.0
# RSS the budgets do not cover: malloc's own overhead and fragmentation of the freed buffers, 40
# to 80 framer buffers and per-connection state, the Python-side nothing. Measured growth with
# the budgets is a few MiB over the budget; without them it passes this in well under a second.
SLACK = 24 * MIB
# Under ASan (the `make asan` build) RSS says nothing about what the daemon holds: freed blocks
# wait in ASan's quarantine (256 MiB), every allocation carries redzones and shadow memory, and
# malloc_trim does not apply to ASan's allocator. There the memory assertions (a) and (d) are not
# made - the run says so -, (b) only as "every call answered within 2 s" (the sanitized daemon is
# many times slower per byte than the attacker), and (c) as in the default build.
SANITIZED = os.environ.get("RPCGATE_SANITIZED") in ("1", "ON", "TRUE")
EPM = ("e1af8308-5d1f-11c9-91a4-08002b14a0fa", "3.0")

# Impacket's EPM bind (docs/wire-vectors.md bind-epm) offering 5840/5840, so fragments are the
# largest the daemon negotiates (5840).
BIND = bytes.fromhex(
    "05000b03100000004800000001000000" "d016d016" "00000000" "01000000" "00000100"
    "0883afe11f5dc91191a408002b14a0fa" "03000000"
    "045d888aeb1cc9119fe808002b104860" "02000000")
MAX_FRAG = 5840


def fragment(call_id, flags, stub_len=MAX_FRAG - 24, opnum=0):
    """A request PDU (ept_insert's opnum: registrations are the largest EPM calls) with
    `stub_len` bytes of stub; flags 0x01 FIRST, 0x00 middle, 0x02 LAST."""
    header = struct.pack("<BBBB4sHHIIHH", 5, 0, 0, 0x03 & flags, b"\x10\x00\x00\x00",
                         24 + stub_len, 0, call_id, stub_len, 0, opnum)
    return header + b"\xab" * stub_len


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def bound_socket(source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.bind((source, 0))
    s.connect(("127.0.0.1", 135))
    s.sendall(BIND)
    ack = s.recv(4096)
    assert len(ack) >= 16 and ack[2] == 0x0c, ack[:16]
    return s


def map_latencies(n, spacing=0.0):
    """Seconds of `n` Impacket ept_map calls (connect, bind, map, close) of the EPM itself."""
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        binding = hept_map(EPM[0], version=EPM[1])
        out.append(time.monotonic() - t0)
        assert binding == "ncacn_ip_tcp:127.0.0.1[135]", binding
        time.sleep(spacing)
    return out


class Attack(threading.Thread):
    """Holds `per_source` connections from each of `sources`, each sending one call's FIRST and
    then middle fragments, never LAST (the daemon reassembles one call per connection at a time,
    as Windows: a second call's fragment would only close the connection); a connection the
    daemon closes is replaced. Stops at stop() or when `rss_bound` is passed."""

    def __init__(self, pid, sources, per_source, rss_bound):
        super().__init__(daemon=True)
        self.pid, self.sources, self.per_source, self.rss_bound = pid, sources, per_source, rss_bound
        self.stopping = threading.Event()
        self.closed_by_daemon = 0
        self.bytes_sent = 0
        self.peak_rss = 0
        self.over_bound = False
        self.conns = []

    def _open(self, source):
        return {"sock": bound_socket(source), "source": source, "next": 0}

    def run(self):
        self.conns = [self._open(src) for src in self.sources for _ in range(self.per_source)]
        while not self.stopping.is_set():
            for i, c in enumerate(self.conns):
                n = c["next"]
                call_id = 2
                flags = 0x01 if n == 0 else 0x00
                try:
                    c["sock"].sendall(fragment(call_id, flags))
                    self.bytes_sent += MAX_FRAG
                    c["next"] = n + 1
                except OSError:
                    self.closed_by_daemon += 1
                    c["sock"].close()
                    if self.stopping.is_set():
                        break
                    try:
                        self.conns[i] = self._open(c["source"])
                    except (OSError, AssertionError):
                        pass
            now = rss(self.pid)
            self.peak_rss = max(self.peak_rss, now)
            if now > self.rss_bound:
                self.over_bound = True
                break

    def stop(self):
        self.stopping.set()
        self.join(10)
        for c in self.conns:
            c["sock"].close()


class ReassemblyAttackTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.daemon = Daemon(self.tmp.name, "epmd", POLICY)
        self.pid = self.daemon.proc.pid
        map_latencies(5)  # warm up (first Impacket import, first connections)
        time.sleep(0.5)
        self.baseline_rss = rss(self.pid)
        self.baseline_latency = statistics.median(map_latencies(20))

    def tearDown(self):
        self.daemon.stop()
        self.tmp.cleanup()

    def run_attack(self, sources, per_source, budget, reason, median_bound=None):
        bound = 1 << 62 if SANITIZED else self.baseline_rss + budget + SLACK
        attack = Attack(self.pid, sources, per_source, bound)
        attack.start()
        try:
            wait_for(lambda: attack.bytes_sent > 0 or not attack.is_alive(), 10, "the attack")
            # (b) another client, during the attack: every ept_map answered, latency comparable.
            during = map_latencies(20, spacing=0.1)
            time.sleep(max(0.0, 3.0 - 20 * 0.1))
        finally:
            attack.stop()
        peak = max(attack.peak_rss, rss(self.pid))
        sent = attack.bytes_sent
        print(f"sources={len(sources)}x{per_source}: sent {sent // MIB} MiB, daemon closed "
              f"{attack.closed_by_daemon} connections; RSS baseline "
              f"{self.baseline_rss // 1024} KiB, peak {peak // 1024} KiB (bound "
              f"{bound // 1024} KiB); ept_map p50 {self.baseline_latency * 1e3:.1f} ms before, "
              f"{statistics.median(during) * 1e3:.1f} ms / max {max(during) * 1e3:.1f} ms during",
              file=sys.stderr)
        # (a) RSS growth under the budget that applies plus SLACK.
        if SANITIZED:
            print("ASan build: RSS bound and return not asserted (quarantine, shadow memory)",
                  file=sys.stderr)
        else:
            self.assertFalse(attack.over_bound, f"RSS passed {bound // 1024} KiB")
            self.assertLess(peak - self.baseline_rss, budget + SLACK)
        # The attack really offered more than the budget (ASan's daemon reads ~20x slower).
        self.assertGreater(sent, (1 if SANITIZED else 4) * budget)
        # (b) The bound: the median under 5 x the baseline median + 20 ms and every call under
        # 1 s. Each probe is a whole Impacket connect/bind/ept_map/close (~5-10 ms here), on 2
        # cores shared with the attacking Python thread; without the budgets the daemon spends
        # its time growing buffers and the probes queue behind the whole backlog.
        # Under ASan the daemon does its per-byte work (copying, checking) many times slower
        # while the attacker and the probe's Impacket do not: there only "every call answered
        # within 2 s" is asserted, the latency figures are the default build's.
        if SANITIZED:
            self.assertLess(max(during), 2.0)
        else:
            self.assertLess(statistics.median(during),
                            median_bound or 5 * self.baseline_latency + 0.02)
            self.assertLess(max(during), 1.0)
        # (c) Closed by the daemon, with the budget named in its log.
        self.assertGreater(attack.closed_by_daemon, 0)
        log = self.daemon.read_log()
        self.assertIn(f"closed: {reason}", log)
        # (d) Once they are gone, RSS falls back near the baseline (malloc_trim).
        if not SANITIZED:
            near = self.baseline_rss + 4 * MIB
            wait_for(lambda: rss(self.pid) < near, 5, f"RSS back under {near // 1024} KiB "
                     f"(now {rss(self.pid) // 1024} KiB)")
        self.assertEqual(self.daemon.proc.poll(), None)
        return log

    def test_forty_connections_from_one_address(self):
        log = self.run_attack(["127.0.0.1"], 40, PER_PEER,
                              f"reassembly budget per peer {PER_PEER} bytes exceeded")
        self.assertNotIn("reassembly budget of the server", log)

    def test_connections_from_many_addresses_hit_the_server_budget(self):
        # 40 peers x 6 connections, each call growing toward EPM's 236 KiB stub cap: at most
        # 1.4 MiB per peer (under its 4 MiB), 55 MiB in all - over the server's 32 MiB once the
        # calls are 60 % full on average, so the server's budget trips before the calls' caps even
        # when the daemon reads the connections unevenly (the ASan build does).
        # The probe's median is bounded at 400 ms here, not 5 x idle + 20 ms: 240 connections
        # that the server's budget keeps closing (~500 reconnects/s), each bringing a 5840-byte
        # fragment per read, fill every loop turn. On an AMD EPYC host the median measured
        # 105-146 ms in 10 of 11 runs (4.2 ms in one), with the binaries of this commit and of
        # 7a39aba alike (3.3 ms on an earlier, faster host), 74-92 ms once the runtime no longer
        # let glibc trim its heap per free (runtime/heap.h); perf shows a third of the daemon's
        # CPU in memmove, the reassembler copying the attack's bytes. What the budgets prevent - probes queued behind buffers growing
        # without end - takes seconds, and every call stays under 1 s.
        sources = [f"127.0.0.{i}" for i in range(2, 42)]
        self.run_attack(sources, 6, SERVER_WIDE,
                        f"reassembly budget of the server {SERVER_WIDE} bytes exceeded",
                        median_bound=0.4)

    def test_trickle_of_whole_fragments_is_closed_by_the_call_deadline(self):
        s = bound_socket("127.0.0.1")
        t0 = time.monotonic()
        s.sendall(fragment(2, 0x01, 64))
        closed_after = None
        for _ in range(30):  # a middle fragment every 0.5 s, each a whole PDU, never LAST
            time.sleep(0.5)
            try:
                s.sendall(fragment(2, 0x00, 64))
                s.settimeout(0.01)
                if s.recv(64) == b"":
                    raise ConnectionResetError
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - t0
                break
        s.close()
        self.assertIsNotNone(closed_after, "the trickling connection was never closed")
        # Not the idle timeout (300 s after bind, and reset by every fragment), not pdu_timeout.
        self.assertGreaterEqual(closed_after, CALL_TIMEOUT - 0.1)
        self.assertLess(closed_after, CALL_TIMEOUT + 2)
        self.assertIn(f"closed: call deadline {int(CALL_TIMEOUT * 1000)} ms exceeded",
                      self.daemon.read_log())


if __name__ == "__main__":
    rpcgate_testlib.main()
