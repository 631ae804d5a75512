#!/usr/bin/python3
"""rpcgate-fwd's decision records under systemd: every record is one journal entry with its
fields (RPCGATE_EVENT, RPCGATE_REASON, RPCGATE_CLIENT, RPCGATE_SERVER, RPCGATE_PORT,
RPCGATE_INTERFACE, ...), as docs/firewall.md says - written to a real systemd-journald and read
back with journalctl.

systemd is not this machine's init, so the test makes the part of it that matters: in a private
mount namespace (unshare -m), tmpfs over /run/systemd and /run/log, and Debian's own
systemd-journald started there, which creates /run/systemd/journal/socket as it does under
systemd. rpcgate-fwd is started as a unit's service is, with JOURNAL_STREAM set (what makes it
choose the journal) and without --json-log, in the firewall namespace of the three-namespace
topology (fwd_topology.py), with real servers and the real Impacket-based client.
Skips without root, without systemd-journald / journalctl, or where namespaces are not available.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import fwd_topology as topo  # noqa: E402
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import BIN  # noqa: E402

JOURNALD = "/lib/systemd/systemd-journald"
JOURNALCTL = shutil.which("journalctl", path="/usr/bin:/bin")
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_PY = os.path.join(HERE, "fwd_client.py")
RPCECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
BLOCKED = "11111111-2222-3333-4444-5555555555c1"
INNER = "RPCGATE_FWD_JOURNALD_INNER"

why = topo.available()
if why:
    rpcgate_testlib.skip(why)
if not os.access(JOURNALD, os.X_OK) or not JOURNALCTL:
    rpcgate_testlib.skip("systemd-journald or journalctl not installed")
if os.environ.get(INNER) != "1":
    # Again, in a mount namespace of its own: the tmpfs mounts and journald's sockets vanish with
    # it, and the machine's /run is never touched.
    env = dict(os.environ, **{INNER: "1"})
    os.execvpe("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                           os.path.abspath(__file__), *sys.argv[1:]], env)


class JournaldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for d in ("/run/systemd", "/run/log"):
            os.makedirs(d, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
        os.makedirs("/run/systemd/journal")
        cls.journald = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        topo.wait_for(lambda: os.path.exists("/run/systemd/journal/socket"), 10,
                      "systemd-journald's socket")
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-fwd-journald-")
        t = cls.t = topo.Topology(tag="j")
        control = os.path.join(cls.workdir, "epmd.sock")
        cls.epmd = t.popen(t.s, [os.path.join(BIN, "rpcgate-epmd"), "--listen", "0.0.0.0:135",
                                 "--control", control], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        topo.wait_for(lambda: os.path.exists(control), 10, "rpcgate-epmd")
        cls.echo = t.popen(t.s, [os.path.join(BIN, "rpcgate-echo"), "--control", control],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.echo.stdout.readline()
        assert line.startswith("port="), line
        cls.echo_port = int(line.split("=")[1])
        cls.blocked = t.popen(t.s, [os.path.join(BIN, "rpcgate-testsrv"), "--epmd", control,
                                    "--uuid", BLOCKED, "--version", "1.0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.blocked.stdout.readline()
        assert line.startswith("port="), line
        # As systemd starts a service whose stderr goes to the journal: JOURNAL_STREAM set
        # (device:inode of that stream; rpcgate-fwd only asks whether it is there).
        env = dict(os.environ, JOURNAL_STREAM="0:0")
        cls.fwd = t.popen(t.f, [os.path.join(BIN, "rpcgate-fwd"), "--allow", RPCECHO,
                                "--pinhole-timeout", "30s", "--control",
                                os.path.join(cls.workdir, "fwd.sock")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        topo.wait_for(lambda: cls.fwd.poll() is not None or cls.entries(EVENT="start"), 10,
                      "rpcgate-fwd's start entry in the journal")
        assert cls.fwd.poll() is None, cls.fwd.communicate()

    @classmethod
    def tearDownClass(cls):
        cls.t.close()
        rpcgate_testlib.stop_process(cls.journald)
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def entries(cls, **match):
        r = subprocess.run([JOURNALCTL, "-D", "/run/log/journal", "--no-pager", "-o", "json",
                            "SYSLOG_IDENTIFIER=rpcgate-fwd"], capture_output=True, text=True)
        out = []
        for line in r.stdout.splitlines():
            e = json.loads(line)
            if all(e.get("RPCGATE_" + k) == v for k, v in match.items()):
                out.append(e)
        return out

    def client(self, *args):
        r = self.t.run(self.t.c, ["/usr/bin/python3", CLIENT_PY, *args], timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_decisions_are_journal_entries_with_fields(self):
        r = self.client("echo", topo.SERVER, "--bytes", "1000", "--calls", "2")
        self.assertEqual(r.get("echoed"), 2, r)
        m = self.client("map", topo.SERVER, BLOCKED)
        self.assertIn("ept_s_not_registered", m.get("error", "").lower(), m)

        def settled():
            return (self.entries(EVENT="pinhole", PORT=str(self.echo_port))
                    and self.entries(EVENT="refuse", REASON="map-not-allowed")
                    and self.entries(EVENT="allow", PORT=str(self.echo_port)))
        topo.wait_for(settled, 10, "the pinhole, refuse and allow entries")

        opened = self.entries(EVENT="pinhole", PORT=str(self.echo_port))[-1]
        self.assertEqual(opened["RPCGATE_CLIENT"], topo.CLIENT)
        self.assertEqual(opened["RPCGATE_SERVER"], topo.SERVER)
        self.assertIn(RPCECHO, opened["RPCGATE_INTERFACE"])
        self.assertEqual(opened["RPCGATE_REASON"], "opened")
        self.assertEqual(opened["RPCGATE_TIMEOUT_S"], "30")
        self.assertEqual(opened["SYSLOG_IDENTIFIER"], "rpcgate-fwd")

        refused = self.entries(EVENT="refuse", REASON="map-not-allowed")[-1]
        self.assertIn(BLOCKED, refused["RPCGATE_INTERFACE"])
        self.assertEqual(refused["RPCGATE_CLIENT"], topo.CLIENT)
        self.assertEqual(refused["RPCGATE_OPNUM"], "3")
        self.assertEqual(refused["PRIORITY"], "5")  # notice: a refusal is worth a look
        self.assertTrue(refused["MESSAGE"].startswith("An ept_map asked for an interface"),
                        refused)

        # Nothing went to stderr as JSON lines: the journal is the one place.
        self.fwd.terminate()
        _, err = self.fwd.communicate(timeout=10)
        self.assertNotIn(b'"event":', err)
        stopped = self.entries(EVENT="stop")
        self.assertTrue(stopped, "no stop entry")


if __name__ == "__main__":
    started = time.monotonic()
    unittest.main(verbosity=2)
