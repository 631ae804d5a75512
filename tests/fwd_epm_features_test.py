#!/usr/bin/python3
"""rpcgate-fwd's endpoint-mapper features end to end (docs/firewall.md "ept_lookup pinholes",
"Referrals", "Static NAT"): the three namespaces of fwd_topology.py, the real daemon in the
firewall's, rpcgate-epmd and rpcgate-echo behind it, Impacket and `rpcgate` in front.

* --lookup-pinholes: off, an ept_lookup opens nothing and rpcecho's port stays dropped in the
  kernel (no_pinhole rises); on, Impacket's ept_lookup opens it and an echo call through the
  learned port works.
* Referrals: a tiny endpoint mapper in the servers' namespace (fwd_client.py fake-epm, on a
  second address) answers ept_map with a tower naming a third address of the servers' host;
  with --allow-referrals and --servers the client reaches it there; with "any servers" nothing
  opens and the decision log says why.
* Static NAT: the clients reach the server only as 203.0.113.10, through the firewall (a
  route); `rpcgate map` there returns a tower with that address and an Impacket echo call to it
  works, relayed to the private address.
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

why = topo.available()
if why:
    rpcgate_testlib.skip(why)

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_PY = os.path.join(HERE, "fwd_client.py")
RPCECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
ALONE = "11111111-2222-3333-4444-5555555555c1"  # registered, never allowed
FAKE_EPM = "10.135.2.4"  # the referring endpoint mapper (a second address of the servers')
REFERRED = "10.135.2.3"  # the host its tower names (a third address, same servers' host)
PUBLIC = "203.0.113.10"  # static NAT: what clients see of topo.SERVER
SERVERS_NET = "10.135.2.0/24"


class EpmFeaturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-fwd-epm-")
        t = cls.t = topo.Topology(tag="x")
        for address in (REFERRED, FAKE_EPM):
            t.ip(t.s, "addr", "add", address + "/24", "dev", "s0")
        # The public address exists nowhere; the clients reach it through the firewall only.
        t.ip(t.c, "route", "add", PUBLIC + "/32", "via", topo.FW_CLIENT_SIDE)
        epmd_dir = os.path.join(cls.workdir, "epmd")
        os.makedirs(epmd_dir)
        cls.epmd_control = os.path.join(epmd_dir, "epmd.sock")
        cls.epmd_log = open(os.path.join(epmd_dir, "epmd.log"), "w")
        # On the server's own address only: FAKE_EPM's 135 is the fake endpoint mapper's.
        cls.epmd = t.popen(t.s, [os.path.join(BIN, "rpcgate-epmd"), "--listen",
                                 topo.SERVER + ":135", "--control", cls.epmd_control],
                           stdout=cls.epmd_log, stderr=subprocess.STDOUT)
        topo.wait_for(lambda: os.path.exists(cls.epmd_control), 10, "rpcgate-epmd")
        cls.echo = t.popen(t.s, [os.path.join(BIN, "rpcgate-echo"), "--control",
                                 cls.epmd_control], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        line = cls.echo.stdout.readline()
        assert line.startswith("port="), line
        cls.echo_port = int(line.split("=")[1])
        cls.alone = t.popen(t.s, [os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                                  cls.epmd_control, "--uuid", ALONE, "--version", "1.0",
                                  "--class", "intranet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = cls.alone.stdout.readline()
        assert line.startswith("port="), line
        cls.alone_port = int(line.split("=")[1])
        cls.fake = t.popen(t.s, ["/usr/bin/python3", CLIENT_PY, "fake-epm", FAKE_EPM, REFERRED,
                                 str(cls.echo_port)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        line = cls.fake.stdout.readline()
        assert "listening" in line, line + cls.fake.stderr.read()
        cls.fw = None

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["ip", "netns", "exec", cls.t.f, os.path.join(BIN, "rpcgate-fwd"),
                        "--uninstall"], capture_output=True)
        cls.t.close()
        cls.epmd_log.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        if self.fw is not None:
            self.fw.stop()
            self.fw = None
        # The next test starts from nothing: a restarted rpcgate-fwd would recover this test's
        # pinholes from the kernel.
        self.uninstall()

    def uninstall(self):
        r = self.t.run(self.t.f, [os.path.join(BIN, "rpcgate-fwd"), "--uninstall"])
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- helpers
    def firewall(self, *args):
        self.fw = topo.Firewall(self.t, self.workdir, *args)
        return self.fw

    def client(self, *args, timeout=90):
        r = self.t.run(self.t.c, ["/usr/bin/python3", CLIENT_PY, *args], timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def rpcgate(self, *args):
        return self.t.run(self.t.c, [os.path.join(BIN, "rpcgate"), *args], timeout=60)

    def no_pinhole(self):
        return self.fw.status().get("kernel_counters", {}).get("no_pinhole", 0)

    def config(self, text):
        path = os.path.join(self.workdir, f"fw-{time.monotonic_ns()}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- --lookup-pinholes
    def test_lookup_without_the_option_opens_nothing(self):
        self.firewall("--allow", RPCECHO, "--pinhole-timeout", "30s")
        r = self.client("lookup", topo.SERVER)
        self.assertIn([RPCECHO, "1.0", self.echo_port], r["entries"], r)
        self.assertEqual(self.fw.events("pinhole"), [], self.fw.text())
        self.assertEqual(self.fw.status()["pinholes"], [])
        before = self.no_pinhole()
        e = self.client("echo", topo.SERVER, "--port", str(self.echo_port), "--calls", "1")
        self.assertNotIn("echoed", e, e)
        self.assertGreater(self.no_pinhole(), before)

    def test_lookup_pinholes_open_allowed_entries_with_their_own_timeout(self):
        self.firewall("--allow", RPCECHO, "--pinhole-timeout", "30s", "--lookup-pinholes",
                      "--lookup-pinhole-timeout", "45s")
        r = self.client("lookup", topo.SERVER)
        self.assertIn([RPCECHO, "1.0", self.echo_port], r["entries"], r)
        self.assertIn([ALONE, "1.0", self.alone_port], r["entries"], r)
        opened = self.fw.events("pinhole", reason="opened", port=self.echo_port,
                                client=topo.CLIENT)
        self.assertEqual(len(opened), 1, self.fw.text())
        self.assertIn(RPCECHO, opened[0]["interface"])
        self.assertEqual(opened[0]["timeout_s"], 45)
        self.assertIn("ept_lookup", opened[0]["message"])
        self.assertFalse(self.fw.events("pinhole", port=self.alone_port), self.fw.text())
        # The learned port works without any ept_map; the interface not allowed stays dropped.
        e = self.client("echo", topo.SERVER, "--port", str(self.echo_port), "--calls", "3")
        self.assertEqual(e.get("echoed"), 3, e)
        self.assertEqual(self.fw.events("pinhole", reason="opened"), opened)  # no ept_map
        c = self.client("connect", topo.SERVER, str(self.alone_port))
        self.assertFalse(c["connected"], c)
        # `rpcgate lookup` (rpcgate's own client, paging) passes through too.
        out = self.rpcgate("lookup", topo.SERVER)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"ncacn_ip_tcp:{topo.SERVER}[{self.echo_port}]", out.stdout)

    # ---- referrals
    def test_referral_opens_to_the_referred_host_inside_the_servers(self):
        self.firewall("--allow", RPCECHO, "--allow-referrals", "--servers", SERVERS_NET,
                      "--pinhole-timeout", "30s")
        m = self.client("map", FAKE_EPM, RPCECHO)
        self.assertEqual((m.get("tower_host"), m.get("port")), (REFERRED, self.echo_port), m)
        opened = self.fw.events("pinhole", reason="opened", server=FAKE_EPM, port=self.echo_port)
        self.assertEqual(len(opened), 1, self.fw.text())
        self.assertEqual(opened[0]["referral"], REFERRED)
        holes = [(h["server"], h["port"]) for h in self.fw.status()["pinholes"]]
        self.assertIn((REFERRED, self.echo_port), holes)
        self.assertNotIn((FAKE_EPM, self.echo_port), holes)
        e = self.client("echo", REFERRED, "--port", str(self.echo_port), "--calls", "2")
        self.assertEqual(e.get("echoed"), 2, e)

    def test_referral_with_any_servers_never_opens_and_says_so(self):
        self.firewall("--allow", RPCECHO, "--allow-referrals", "--pinhole-timeout", "30s")
        self.assertTrue(self.fw.events("warning", reason="referral-any-servers"),
                        self.fw.text())
        out = self.rpcgate("map", FAKE_EPM, f"{RPCECHO}:1.0")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)  # the answer passes
        topo.wait_for(lambda: self.fw.events("tower", reason="referral-any-servers",
                                             referral=REFERRED), 5, self.fw.text())
        self.assertFalse(self.fw.events("pinhole"), self.fw.text())
        before = self.no_pinhole()
        c = self.client("connect", REFERRED, str(self.echo_port))
        self.assertFalse(c["connected"], c)
        self.assertGreater(self.no_pinhole(), before)
        # Without --allow-referrals the tower is another host, as before: nothing, silently.
        self.fw.stop()
        self.uninstall()
        self.firewall("--allow", RPCECHO, "--servers", SERVERS_NET)
        out = self.rpcgate("map", FAKE_EPM, f"{RPCECHO}:1.0")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        time.sleep(0.3)
        self.assertFalse(self.fw.events("pinhole"), self.fw.text())
        self.assertFalse(self.fw.events("tower"), self.fw.text())

    def test_check_prints_the_new_settings_and_warns_about_any_servers(self):
        fwd = os.path.join(BIN, "rpcgate-fwd")
        r = self.t.run(self.t.f, [fwd, "--allow", RPCECHO, "--allow-referrals",
                                  "--lookup-pinholes", "--check"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(referrals)", r.stdout)
        self.assertIn("lookup pinholes: on, timeout the rule's", r.stdout)
        self.assertIn("warning: rule \"command-line\" allows referrals", r.stdout)
        path = self.config(f'[firewall]\nservers = ["{SERVERS_NET}"]\n'
                           'lookup_pinhole_timeout = "5m"\nlookup_pinholes = true\n'
                           '[[firewall.rule]]\nname = "echo"\ninterfaces = ["rpcecho"]\n'
                           f'[[firewall.nat]]\npublic = "{PUBLIC}"\nprivate = "{topo.SERVER}"\n')
        r = self.t.run(self.t.f, [fwd, "--config", path, "--check"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("lookup pinholes: on, timeout 300 s", r.stdout)
        self.assertIn(f"{PUBLIC} -> {topo.SERVER}", r.stdout)
        self.assertNotIn("warning", r.stdout)
        # A duplicate NAT entry: exit 2 naming the line.
        bad = self.config(f'[firewall]\n[[firewall.nat]]\npublic = "{PUBLIC}"\n'
                          'private = "10.135.2.2"\n'
                          f'[[firewall.nat]]\npublic = "{PUBLIC}"\nprivate = "10.135.2.3"\n')
        r = self.t.run(self.t.f, [fwd, "--config", bad, "--allow", RPCECHO])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"{bad}:5:", r.stderr)
        r = self.t.run(self.t.f, [fwd, "--help"])
        for option in ("--lookup-pinhole-timeout", "--allow-referrals", "--nat"):
            self.assertIn(option, r.stdout)

    # ---- static NAT
    def test_nat_rewrites_the_tower_and_relays_to_the_private_address(self):
        path = self.config(f'[firewall]\nservers = ["{SERVERS_NET}"]\npinhole_timeout = "30s"\n'
                           '[[firewall.rule]]\nname = "echo"\ninterfaces = ["rpcecho"]\n'
                           f'[[firewall.nat]]\npublic = "{PUBLIC}"\nprivate = "{topo.SERVER}"\n')
        self.firewall("--config", path)
        # The public address is governed like the servers (the kernel's servers4 set).
        listing = self.t.run(self.t.f, ["nft", "list", "set", "inet", "rpcgate_fwd",
                                        "servers4"]).stdout
        self.assertIn(PUBLIC, listing)
        # rpcgate map (its binding keeps the host asked), then Impacket's ept_map, whose answer's
        # tower names the public address: rewritten in place.
        out = self.rpcgate("map", PUBLIC, f"{RPCECHO}:1.0")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(f"ncacn_ip_tcp:{PUBLIC}[{self.echo_port}]", out.stdout)
        m = self.client("map", PUBLIC, RPCECHO)
        self.assertEqual(m.get("tower_host"), PUBLIC, m)
        self.assertEqual(m.get("port"), self.echo_port, m)
        self.assertTrue(self.fw.events("nat", reason="rewritten", server=PUBLIC),
                        self.fw.text())
        opened = self.fw.events("pinhole", reason="opened", server=PUBLIC, port=self.echo_port)
        self.assertEqual(len(opened), 1, self.fw.text())
        self.assertEqual(opened[0]["upstream"], topo.SERVER)
        # Impacket: ept_map and echo calls to the public address, relayed to the private one.
        e = self.client("echo", PUBLIC, "--calls", "3")
        self.assertEqual(e.get("echoed"), 3, e)
        self.assertIn(f"{PUBLIC}[{self.echo_port}]", e["binding"])
        topo.wait_for(lambda: self.fw.events("allow", kind="pinhole", server=PUBLIC,
                                             port=self.echo_port), 5, self.fw.text())
        # The private address itself has no pinhole: dropped in the kernel.
        c = self.client("connect", topo.SERVER, str(self.echo_port))
        self.assertFalse(c["connected"], c)


if __name__ == "__main__":
    rpcgate_testlib.main()
