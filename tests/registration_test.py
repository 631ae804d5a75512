#!/usr/bin/python3
"""Issue 11 item 1 against the real rpcgate-epmd, written as the attacks and the clients that
broke:

- A DCE-style registrant (ept_insert over loopback TCP, then disconnect) is still listed by
  rpcdump.py afterwards and resolves with hept_map; while its server listens it stays over
  several sweeps; after the server stops listening the liveness sweep removes it within
  sweep interval x failures (+ slack) and logs it.
- Leases: a server that registers a static port through our registrant library (HoldLease)
  disappears within a second of kill -9, as a broker client does (epmd_test keeps that one).
- Static [[epmd.entry]] entries: served, nobody (root included) changes them over the wire, not
  swept, reloaded on SIGHUP (added / removed / changed), an invalid set refused on reload (old set
  stays, error logged) and at start (exit 2 naming the file and the entry).
- `rpcgate register` / `unregister` / `--lease` end to end; refused for a non-registrant
  (`nobody` through setpriv) with ept_s_cant_perform_op explained.

Private network namespace; every wait bounded; every process started here stopped in tearDown.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import (BIN, ENV, EPT_S_CANT_PERFORM_OP, EXAMPLES, POLICY, Daemon,  # noqa: E402
                             Server, epm_dce, ept_delete, ept_insert, mapped, stop_process,
                             tower_bytes, wait_for)

rpcgate_testlib.enter_private_netns("50000-50199")


DCE_IF = "11111111-2222-3333-4444-555555555511"
STATIC_A = "11111111-2222-3333-4444-555555555521"
STATIC_B = "11111111-2222-3333-4444-555555555522"
STATIC_C = "11111111-2222-3333-4444-555555555523"
CLI_IF = "11111111-2222-3333-4444-555555555531"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SWEEP_MS, FAILURES = 400, 2


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def rpcdump():
    return subprocess.run([sys.executable, f"{EXAMPLES}/rpcdump.py", "127.0.0.1"],
                          capture_output=True, text=True, timeout=30, env=ENV).stdout


def rpcgate(*args, user=None, timeout=15):
    return subprocess.run([*(user or []), os.path.join(BIN, "rpcgate"), *args],
                          capture_output=True, text=True, timeout=timeout)


class Base(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="rpcgate-reg-")
        self.cleanup = []

    def tearDown(self):
        for fn in reversed(self.cleanup):
            fn()
        shutil.rmtree(self.workdir)

    def daemon(self, name="d", text=POLICY, extra=()):
        d = Daemon(self.workdir, name, text, extra=extra)
        self.cleanup.append(d.stop)
        return d


class PersistentAndSwept(Base):
    def test_dce_style_insert_persists_while_alive_and_is_swept_when_dead(self):
        d = self.daemon(extra=("--sweep-interval-ms", str(SWEEP_MS),
                               "--sweep-failures", str(FAILURES)))
        srv = listener(50150)
        self.cleanup.append(srv.close)
        # rpc_ep_register as a DCE runtime does it: connect, insert, disconnect.
        dce = epm_dce(tcp=("127.0.0.1", 135))
        self.assertEqual(ept_insert(dce, [(tower_bytes(DCE_IF, 50150), "dce registrant")]), 0)
        dce.disconnect()
        time.sleep(0.2)
        self.assertEqual(mapped(DCE_IF), "ncacn_ip_tcp:127.0.0.1[50150]")
        self.assertIn(f"UUID    : {DCE_IF.upper()} v1.0 dce registrant", rpcdump())
        # Alive: several sweeps (each probes 127.0.0.1:50150 and gets a connect), still there.
        time.sleep(SWEEP_MS * (FAILURES + 3) / 1000)
        self.assertEqual(mapped(DCE_IF), "ncacn_ip_tcp:127.0.0.1[50150]")
        # The server stops listening: gone within interval x failures (+ one interval, a probe
        # timeout and slack), with a log line naming it.
        srv.close()
        start = time.monotonic()
        wait_for(lambda: mapped(DCE_IF) is None,
                 SWEEP_MS * (FAILURES + 1) / 1000 + 2.5, "the sweep to remove the dead entry")
        took = time.monotonic() - start
        self.assertGreaterEqual(took, SWEEP_MS * (FAILURES - 1) / 1000 - 0.05)
        log = d.read_log()
        self.assertRegex(log, rf"liveness sweep: removed {DCE_IF}:1\.0 at 127\.0\.0\.1:50150 "
                              rf"\(uid 0, annotation \"dce registrant\"\): {FAILURES} consecutive")
        self.assertNotIn(DCE_IF.upper(), rpcdump())

    def test_ncalrpc_socket_path_is_swept(self):
        d = self.daemon(extra=("--sweep-interval-ms", str(SWEEP_MS),
                               "--sweep-failures", str(FAILURES)))
        path = os.path.join(self.workdir, "srv.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(16)
        self.cleanup.append(srv.close)
        r = rpcgate("register", DCE_IF, f"ncalrpc:[{path}]", "--annotation", "lrpc",
                    "--control", d.control)
        self.assertEqual(r.returncode, 0, r.stderr)

        def listed():
            out = rpcgate("lookup", "127.0.0.1").stdout
            return f"ncalrpc:[{path}]" in out

        time.sleep(SWEEP_MS * (FAILURES + 2) / 1000)
        self.assertTrue(listed())  # the socket accepts: kept over several sweeps
        srv.close()
        os.unlink(path)
        wait_for(lambda: not listed(), SWEEP_MS * (FAILURES + 1) / 1000 + 2.5,
                 "the sweep to remove the dead ncalrpc entry")
        self.assertIn(f"liveness sweep: removed {DCE_IF}:1.0 at {path} (uid 0", d.read_log())

    def test_plain_insert_on_control_socket_outlives_connection_until_deleted(self):
        d = self.daemon()  # default sweep: 60 s, nothing swept during this test
        entry = [(tower_bytes(DCE_IF, 50151), "plain")]
        dce = epm_dce(unix=d.control)
        self.assertEqual(ept_insert(dce, entry), 0)
        dce.disconnect()
        time.sleep(0.3)
        self.assertEqual(mapped(DCE_IF), "ncacn_ip_tcp:127.0.0.1[50151]")
        # Another connection of the same uid deletes it (ept_delete: its owner).
        dce = epm_dce(unix=d.control)
        self.assertEqual(ept_delete(dce, entry), 0)
        dce.disconnect()
        self.assertIsNone(mapped(DCE_IF))


class Leases(Base):
    def test_static_port_server_of_ours_holds_a_lease(self):
        d = self.daemon()
        server = Server(d, DCE_IF, "leased static", static_port=50152)
        self.cleanup.append(lambda: server.stop(signal.SIGKILL))
        self.assertEqual(server.port, 50152)
        self.assertEqual(mapped(DCE_IF), "ncacn_ip_tcp:127.0.0.1[50152]")
        self.assertIn("holds a lease", d.read_log())
        server.proc.kill()
        wait_for(lambda: mapped(DCE_IF) is None, 1.0, "the killed server's entry to go")


def static_config(d_dir, entries):
    text = POLICY + "\n[epmd]\n"
    for e in entries:
        text += "[[epmd.entry]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items())
    return text


class StaticEntries(Base):
    def write(self, path, entries):
        with open(path, "w") as f:
            f.write(static_config(None, entries))

    def test_served_not_changeable_not_swept_and_reloaded(self):
        path = os.path.join(self.workdir, "d", "rpcgate.toml")
        first = [{"interface": STATIC_A, "version": "1.0", "binding": "ncacn_ip_tcp:0.0.0.0[50160]",
                  "annotation": "static a"},
                 {"interface": STATIC_B, "version": "1.0", "binding": "ncacn_ip_tcp:0.0.0.0[50161]"}]
        d = self.daemon(text=static_config(None, first),
                        extra=("--config", path, "--sweep-interval-ms", str(SWEEP_MS),
                               "--sweep-failures", "1"))
        self.assertEqual(mapped(STATIC_A), "ncacn_ip_tcp:127.0.0.1[50160]")
        self.assertEqual(mapped(STATIC_B), "ncacn_ip_tcp:127.0.0.1[50161]")
        # Nobody listens there, yet several sweeps leave them: static entries are not swept.
        time.sleep(SWEEP_MS * 4 / 1000)
        self.assertEqual(mapped(STATIC_A), "ncacn_ip_tcp:127.0.0.1[50160]")
        # Root cannot delete epmd's own entries over the wire.
        dce = epm_dce(unix=d.control)
        self.assertEqual(ept_delete(dce, [(tower_bytes(STATIC_A, 50160), "")]),
                         EPT_S_CANT_PERFORM_OP)
        dce.disconnect()
        # SIGHUP: A changed (new port), B removed, C added.
        self.write(path, [{"interface": STATIC_A, "version": "1.0",
                           "binding": "ncacn_ip_tcp:0.0.0.0[50170]"},
                          {"interface": STATIC_C, "version": "1.0",
                           "binding": "ncacn_ip_tcp:0.0.0.0[50171]"}])
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: mapped(STATIC_C) is not None, 5, "the reload")
        self.assertEqual(mapped(STATIC_A), "ncacn_ip_tcp:127.0.0.1[50170]")
        self.assertIsNone(mapped(STATIC_B))
        self.assertIn("SIGHUP: 2 static entries loaded", d.read_log())
        # An invalid set on reload: refused whole, the old set stays, an error names it.
        self.write(path, [{"interface": STATIC_B, "version": "1.0",
                           "binding": "ncacn_ip_tcp:0.0.0.0[50172]"},
                          {"interface": "not-a-uuid", "binding": "ncacn_ip_tcp:0.0.0.0[50173]"}])
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "static entries not reloaded" in d.read_log(), 5, "the refusal")
        self.assertRegex(d.read_log(), r"keeping the 2 loaded: .*rpcgate\.toml: \[\[epmd\.entry\]\] "
                                       r"#2: interface \"not-a-uuid\" is not a UUID")
        self.assertEqual(mapped(STATIC_A), "ncacn_ip_tcp:127.0.0.1[50170]")
        self.assertEqual(mapped(STATIC_C), "ncacn_ip_tcp:127.0.0.1[50171]")
        self.assertIsNone(mapped(STATIC_B))
        self.assertIsNone(d.proc.poll())

    def test_invalid_entry_at_start_exits_2_naming_it(self):
        path = os.path.join(self.workdir, "bad.toml")
        self.write(path, [{"interface": STATIC_A, "binding": "ncacn_ip_tcp:0.0.0.0[50160]"},
                          {"interface": STATIC_B, "version": "1.x",
                           "binding": "ncacn_ip_tcp:0.0.0.0[50161]"}])
        r = subprocess.run([os.path.join(BIN, "rpcgate-epmd"), "--config", path, "--listen",
                            "127.0.0.1:135", "--control", os.path.join(self.workdir, "s.sock")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{path}: [[epmd.entry]] #2: version \"1.x\"", r.stderr)


class RegisterCommand(Base):
    def test_register_unregister_and_lease(self):
        d = self.daemon()
        r = rpcgate("register", f"{CLI_IF}:1.0", "ncacn_ip_tcp:0.0.0.0[50180]", "--annotation",
                    "by cli", "--control", d.control, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["status"], "ok")
        time.sleep(0.2)
        # Persistent: the command has exited, the entry stays.
        self.assertEqual(mapped(CLI_IF), "ncacn_ip_tcp:127.0.0.1[50180]")
        self.assertIn(f"UUID    : {CLI_IF.upper()} v1.0 by cli", rpcdump())
        r = rpcgate("unregister", f"{CLI_IF}:1.0", "ncacn_ip_tcp:0.0.0.0[50180]",
                    "--control", d.control)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(mapped(CLI_IF))
        r = rpcgate("unregister", f"{CLI_IF}:1.0", "ncacn_ip_tcp:0.0.0.0[50180]",
                    "--control", d.control)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ept_s_not_registered", r.stderr)
        # --lease: the entry lives while the command runs; SIGTERM unregisters, kill -9 too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            p = subprocess.Popen([os.path.join(BIN, "rpcgate"), "register", "--lease", CLI_IF,
                                  "ncacn_ip_tcp:0.0.0.0[50181]", "--control", d.control],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.cleanup.append(lambda p=p: stop_process(p, signal.SIGKILL))
            self.assertIn("leased", p.stdout.readline())
            self.assertEqual(mapped(CLI_IF), "ncacn_ip_tcp:127.0.0.1[50181]")
            p.send_signal(sig)
            self.assertEqual(p.wait(5), 0 if sig == signal.SIGTERM else -signal.SIGKILL)
            wait_for(lambda: mapped(CLI_IF) is None, 1.0, f"the leased entry to go ({sig})")
        # epmd goes away under a --lease: the command says so and exits 3.
        p = subprocess.Popen([os.path.join(BIN, "rpcgate"), "register", "--lease", CLI_IF,
                              "ncacn_ip_tcp:0.0.0.0[50183]", "--control", d.control],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.cleanup.append(lambda p=p: stop_process(p, signal.SIGKILL))
        self.assertIn("leased", p.stdout.readline())
        stop_process(d.proc)
        self.assertEqual(p.wait(5), 3)
        self.assertIn("closed the connection", p.stderr.read())
        # Usage and unreachable epmd.
        self.assertEqual(rpcgate("register", "nonsense", "ncacn_ip_tcp:0.0.0.0[1]").returncode, 2)
        r = rpcgate("register", CLI_IF, "ncacn_ip_tcp:0.0.0.0[1]", "--control",
                    os.path.join(self.workdir, "none.sock"))
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_refused_for_a_non_registrant(self):
        # A listed registrant outside every group makes the socket 0666: nobody may connect,
        # but is not a registrant.
        d = self.daemon(extra=("--registrant", "daemon"))
        for p in (self.workdir, os.path.dirname(d.control)):
            os.chmod(p, 0o755)
        r = rpcgate("register", CLI_IF, "ncacn_ip_tcp:0.0.0.0[50182]", "--control", d.control,
                    user=NOBODY)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("ept_s_cant_perform_op (0x16c9a0cd)", r.stderr)
        self.assertIn("uid 65534", r.stderr)
        self.assertIn("registrants", r.stderr)
        self.assertIsNone(mapped(CLI_IF))
        r = rpcgate("register", "--lease", CLI_IF, "ncacn_ip_tcp:0.0.0.0[50182]", "--control",
                    d.control, user=NOBODY)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("access denied (5)", r.stderr)


if __name__ == "__main__":
    rpcgate_testlib.main()
