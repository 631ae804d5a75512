#!/usr/bin/python3
"""rpcgate-fwd in front of Samba (issue 14): Samba's samba-dcerpcd in the servers' namespace of
fwd_topology.py (its endpoint mapper on 135, lsarpc, samr, winreg, ... on dynamic ports inside
49152-65535, so rpcgate-fwd's default governs them), rpcgate-fwd in the firewall's with
`--allow lsarpc --allow samr --pinhole-timeout 30s`, Impacket (Debian's python3-impacket, via
fwd_client.py) in the clients'.

Samba here: a standalone server whose every path is under the test's temporary directory
(smb.conf written below), listening only on 10.135.2.2 (`interfaces`, `bind interfaces only`),
dynamic ports 49152-49407 (`rpc server dynamic port range`). Its rpcd_* workers still log to
Samba's compiled-in /var/log/samba/log.rpcd_* (as bench/samba_epm.sh's do). NTLM needs an
account in Samba's passdb: the test adds one with pdbedit to its own private tdbsam, for the
Unix user root (tdbsam accounts must map to an existing Unix user; root always exists), with a
password made up per run. Nothing outside the temporary directory is changed.

What Samba does with lsarpc over TCP: Samba's lsarpc server refuses every call that does not
come over a named pipe or ncalrpc (it answers fault nca_s_access_denied, 0x5 - "LSA over TCP
is for domain controllers"); so "works" for lsarpc means: the NTLM bind at packet privacy,
AUTH3 and the sealed request cross the firewall, and Samba's answer through the firewall is
the one it gives a client on its own network (the same fault). samr, which Samba does serve
over TCP, shows real data end to end (SamrConnect + SamrEnumerateDomainsInSamServer).

Skipped (exit 77) when samba-dcerpcd or Impacket is missing, never passed.
"""
import json
import os
import secrets
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
DCERPCD = "/usr/libexec/samba/samba-dcerpcd"
PDBEDIT = shutil.which("pdbedit", path=topo.ENV["PATH"])
if not os.access(DCERPCD, os.X_OK) or PDBEDIT is None:
    rpcgate_testlib.skip("Samba's samba-dcerpcd / pdbedit not installed (apt-get install samba)")
if subprocess.run(["/usr/bin/python3", "-c", "import impacket"]).returncode != 0:
    rpcgate_testlib.skip("/usr/bin/python3 cannot import impacket (python3-impacket)")

from fwd_test import CLIENT_PY, TSHARK, Capture  # noqa: E402

LSARPC = "12345778-1234-abcd-ef00-0123456789ab"
SAMR = "12345778-1234-abcd-ef00-0123456789ac"
WINREG = "338cd001-2244-31f1-aaaa-900038001003"
EPM = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
PORTS = "49152-49407"
USER = "root"
TIMEOUT_S = 30


Firewall = topo.Firewall  # exactly the arguments each test gives


def smb_conf(d):
    return f"""# Written by tests/fwd_samba_test.py: a standalone samba-dcerpcd, all state under {d}.
[global]
  server role = standalone server
  workgroup = RPCGATEFW
  netbios name = SAMBAFW
  interfaces = {topo.SERVER}/24
  bind interfaces only = yes
  rpc start on demand helpers = false
  rpc server dynamic port range = {PORTS}
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  private dir = {d}/private
  binddns dir = {d}/private
  ncalrpc dir = {d}/ncalrpc
  winbindd socket directory = {d}/ncalrpc/winbindd
  log file = {d}/log/samba.log
  log level = 0
  passdb backend = tdbsam
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
"""


class SambaFirewallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-fwd-samba-")
        t = cls.t = topo.Topology("s")
        d = cls.samba_dir = os.path.join(cls.workdir, "samba")
        for sub in ("lock", "state", "cache", "pid", "private", "ncalrpc", "log"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "private"), 0o700)
        cls.conf = os.path.join(d, "smb.conf")
        with open(cls.conf, "w") as f:
            f.write(smb_conf(d))
        cls.password = "Rg-" + secrets.token_hex(8)
        r = t.run(t.s, [PDBEDIT, f"--configfile={cls.conf}", "-a", "-u", USER, "-t"],
                  input=f"{cls.password}\n{cls.password}\n")
        assert r.returncode == 0, r.stdout + r.stderr
        cls.samba_log = open(os.path.join(d, "log", "stdout.log"), "w")
        # Its own session, so that teardown can end samba-dcerpcd and its rpcd_* workers as one
        # process group.
        cls.samba = t.popen(t.s, [DCERPCD, "-F", "--libexec-rpcds", f"--configfile={cls.conf}"],
                            stdin=subprocess.DEVNULL, stdout=cls.samba_log,
                            stderr=subprocess.STDOUT, start_new_session=True)
        # Ready when its endpoint mapper answers on the server's own network (no firewall on
        # that path): the registered ncacn_ip_tcp interfaces, as Samba states them.
        deadline = time.monotonic() + 30
        while True:
            assert cls.samba.poll() is None, "samba-dcerpcd exited: see " + d
            r = t.run(t.s, ["/usr/bin/python3", CLIENT_PY, "lookup", topo.SERVER], timeout=30)
            direct = json.loads(r.stdout) if r.returncode == 0 else {}
            names = {e[0] for e in direct.get("entries", [])}
            if {LSARPC, SAMR, WINREG} <= names:
                break
            assert time.monotonic() < deadline, f"Samba not ready: {r.stdout} {r.stderr}"
            time.sleep(0.3)
        cls.direct_entries = sorted(map(tuple, direct["entries"]))
        cls.port_of = {u: p for u, _, p in cls.direct_entries}
        for u in (LSARPC, SAMR, WINREG):
            assert 49152 <= cls.port_of[u] <= 49407, cls.direct_entries
        cls.fw = Firewall(t, cls.workdir, "--allow", "lsarpc", "--allow", "samr",
                          "--pinhole-timeout", f"{TIMEOUT_S}s")

    @classmethod
    def tearDownClass(cls):
        cls.fw.stop()
        cls.t.run(cls.t.f, [os.path.join(BIN, "rpcgate-fwd"), "--uninstall"])
        try:
            os.killpg(cls.samba.pid, signal.SIGTERM)
            cls.samba.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(cls.samba.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        cls.t.close()
        cls.samba_log.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    # ---- helpers
    def client(self, *args, ns=None, timeout=90):
        r = self.t.run(ns or self.t.c, ["/usr/bin/python3", CLIENT_PY, *args], timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def creds(self, level="privacy"):
        return ("--user", USER, "--password", self.password, "--level", level)

    def pinholes(self, **match):
        return self.fw.events("pinhole", **match)

    def assert_no_drop(self, port):
        drops = [r for r in self.fw.events("drop") if r.get("port") == port]
        self.assertEqual(drops, [], self.fw.text()[-3000:])

    def interfaces_on(self, port):
        return sorted(u for u, _, p in self.direct_entries if p == port)

    # ---- the endpoint mapper
    def test_a_ept_lookup_passes_and_opens_nothing(self):
        # rpcdump.py's walk of the endpoint database (paging through Samba's last batch).
        before = len(self.pinholes())
        r = self.client("lookup", topo.SERVER)
        self.assertNotIn("error", r)
        self.assertEqual(sorted(map(tuple, r["entries"])), self.direct_entries)
        time.sleep(0.2)
        self.assertEqual(len(self.pinholes()), before, self.fw.text()[-2000:])
        closes = [c for c in self.fw.events("allow", port=135, kind="epm")]
        self.assertTrue(closes, self.fw.text())
        # And no dynamic port opened by it: a SYN to lsarpc's port is dropped in the kernel
        # (unless an earlier test mapped it: this test runs first).
        c = self.client("connect", topo.SERVER, str(self.port_of[LSARPC]))
        self.assertFalse(c["connected"], c)

    # ---- allowed interfaces, NTLM at packet privacy
    def test_b_lsarpc_ntlm_privacy_through_the_pinhole(self):
        r = self.client("lsa", topo.SERVER, *self.creds())
        port = self.port_of[LSARPC]
        self.assertEqual(r.get("binding"), f"ncacn_ip_tcp:{topo.SERVER}[{port}]", r)
        self.assertTrue(r.get("bound"), r)
        opened = self.pinholes(port=port, client=topo.CLIENT)
        self.assertTrue(opened, self.fw.text())
        self.assertIn(LSARPC, opened[-1]["interface"])
        self.assertEqual(opened[-1]["timeout_s"], TIMEOUT_S)
        # Samba's answer through the firewall is its answer on its own network.
        direct = self.client("lsa", topo.SERVER, *self.creds(), ns=self.t.s)
        for key in ("bound", "policy", "fault_text"):
            self.assertEqual(r.get(key), direct.get(key), (r, direct))
        self.assertTrue("policy" in r or r.get("fault_text") == "rpc_s_access_denied", r)
        self.assert_no_drop(port)
        # The pinhole connection ended normally after the sealed exchange (bind, auth3, requests,
        # answers: more than the bind and its bind_ack).
        closes = topo.wait_for(lambda: self.fw.events("allow", port=port, kind="pinhole",
                                                      reason="closed"), 5, "the close record")
        pdus = int(closes[-1]["message"].split(", ")[-1].split()[0])
        self.assertGreaterEqual(pdus, 4, closes[-1])

    def test_c_samr_ntlm_privacy_works(self):
        r = self.client("samr", topo.SERVER, *self.creds(), "--users")
        self.assertNotIn("error", r)
        self.assertEqual(r["port"], self.port_of[SAMR])
        self.assertIn("Builtin", r["domains"])
        self.assertIn("SAMBAFW", r["domains"])
        self.assertIn(USER, r["users"])
        self.assertTrue(self.pinholes(port=r["port"], client=topo.CLIENT))
        self.assertIn(SAMR, self.pinholes(port=r["port"], client=topo.CLIENT)[-1]["interface"])
        self.assert_no_drop(r["port"])

    # ---- a blocked interface
    def test_d_winreg_opens_nothing_and_its_port_is_dropped_in_the_kernel(self):
        port = self.port_of[WINREG]
        self.assertNotIn(port, (self.port_of[LSARPC], self.port_of[SAMR]))
        before = self.fw.status().get("kernel_counters", {}).get("no_pinhole", 0)
        self.client("map", topo.SERVER, WINREG)  # answered or not, it must open nothing
        self.assertFalse(self.pinholes(port=port), self.fw.text())
        c = self.client("connect", topo.SERVER, str(port))
        self.assertFalse(c["connected"], c)
        self.assertGreater(self.fw.status()["kernel_counters"]["no_pinhole"], before)
        # No connection to it ever reached the relay: it was dropped in the kernel.
        self.assertFalse([r for r in self.fw.records() if r.get("port") == port])

    # ---- E2: another interface Samba serves on lsarpc's port
    @unittest.skipUnless(TSHARK, "tshark not installed")
    def test_e_other_interface_on_lsarpc_port_never_reaches_samba(self):
        port = self.port_of[LSARPC]
        shared = [u for u in self.interfaces_on(port) if u not in (LSARPC, SAMR)]
        self.assertTrue(shared, f"Samba serves nothing else on lsarpc's port: {self.direct_entries}")
        m = self.client("map", topo.SERVER, LSARPC, "0.0")
        self.assertEqual(m.get("port"), port, m)
        cap = Capture(self.t, self.workdir)
        versions = {u: v for u, v, p in self.direct_entries if p == port}
        for other in shared:
            major, minor = versions[other].split(".")
            before = len(self.fw.events("drop"))
            answers = self.client("attack", "bind-other", topo.SERVER, str(port), "--uuid", LSARPC,
                                  "--major", "0", "--other", other, "--other-major", major,
                                  "--other-minor", minor)["answers"]
            self.assertIn(answers[-1] if answers else "reset", ("reset", "closed"), answers)
            drops = topo.wait_for(
                lambda: [r for r in self.fw.events("drop")[before:]
                         if r.get("reason") == "interface-not-allowed" and r.get("port") == port],
                5, f"a drop record for {other}: {self.fw.text()[-2000:]}")
            self.assertIn(other, drops[-1]["interface"])
        # Control: lsarpc itself binds in the same capture.
        self.assertEqual(self.client("attack", "bind-allowed", topo.SERVER, str(port), "--uuid",
                                     LSARPC, "--major", "0")["answers"], ["bind_ack"])
        seen = cap.bound_uuids()
        self.assertIn(LSARPC, seen)
        for other in shared:
            self.assertNotIn(other, seen)

    # ---- E5 and min_auth with Samba: a rule file
    def test_z_rule_file_opnums_and_min_auth(self):
        rules = os.path.join(self.workdir, "rpcgate.toml")
        with open(rules, "w") as f:
            f.write(f"""[firewall]
pinhole_timeout = "{TIMEOUT_S}s"

[[firewall.rule]]
name = "lsa"
interfaces = ["lsarpc"]

# samr only sealed, and only SamrConnect .. SamrOpenDomain (0-7): no SamrEnumerateUsersInDomain (13)
[[firewall.rule]]
name = "samr-sealed"
interfaces = ["samr"]
min_auth = "privacy"
opnums = ["0-7"]
""")
        self.fw.stop()
        type(self).fw = Firewall(self.t, self.workdir, "--config", rules)
        port = self.port_of[SAMR]

        # min_auth: an unauthenticated bind, and one at packet integrity, are dropped ...
        for args in ((), self.creds("integrity")):
            before = len(self.fw.events("drop"))
            r = self.client("samr", topo.SERVER, *args)
            self.assertIn("error", r)
            drops = topo.wait_for(
                lambda: [d for d in self.fw.events("drop")[before:]
                         if d.get("reason") == "auth-level" and d.get("port") == port], 5,
                f"an auth-level drop ({args}): {self.fw.text()[-2000:]}")
            self.assertIn(SAMR, drops[-1]["interface"])
        # ... Impacket at packet privacy passes ...
        before = len(self.fw.events("drop"))
        r = self.client("samr", topo.SERVER, *self.creds())
        self.assertNotIn("error", r)
        self.assertIn("Builtin", r["domains"])
        self.assertEqual(self.fw.events("drop")[before:], [])
        # ... and E5: the same sealed connection calling opnum 13 is dropped, the opnum read
        # from the clear PDU header, and SamrEnumerateUsersInDomain never reaches Samba.
        cap = Capture(self.t, self.workdir) if TSHARK else None
        r = self.client("samr", topo.SERVER, *self.creds(), "--users")
        self.assertIn("error", r)
        self.assertIn("Builtin", r["domains"])  # the calls before it worked
        drops = topo.wait_for(
            lambda: [d for d in self.fw.events("drop")[before:]
                     if d.get("reason") == "opnum-not-allowed" and d.get("port") == port], 5,
            f"an opnum-not-allowed drop: {self.fw.text()[-2000:]}")
        self.assertEqual(drops[-1]["opnum"], 13)
        self.assertIn(SAMR, drops[-1]["interface"])
        if cap:
            time.sleep(0.3)
            rpcgate_testlib.stop_process(cap.proc, signal.SIGINT)
            out = subprocess.run([TSHARK, "-r", cap.path, "-d", f"tcp.port=={port},dcerpc", "-Y",
                                  f"tcp.dstport=={port} && dcerpc.pkt_type == 0", "-T", "fields",
                                  "-e", "dcerpc.opnum"], capture_output=True, text=True).stdout
            opnums = {o for line in out.split() for o in line.split(",") if o}
            self.assertIn("0", opnums)  # SamrConnect reached Samba
            self.assertNotIn("13", opnums)


if __name__ == "__main__":
    rpcgate_testlib.main()
