#!/usr/bin/python3
"""End-to-end test of rpcgate-epmd with real, independent clients.

Everything runs inside a private network namespace (the script re-executes itself under
`unshare -n` as root), so the endpoint mapper can listen on 127.0.0.1:135, which Impacket's
rpcdump.py insists on, without touching the host. The daemon and the registering servers
(rpcgate-testsrv, built on rpcgate's runtime) are the real binaries; the clients are Impacket
0.10.0 (rpcdump.py, rpcmap.py, epm.hept_map / hept_lookup), run with /usr/bin/python3.

Every wait is bounded; every process started here is killed in tearDown.
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

import rpcgate_testlib
from rpcgate_testlib import (BIN, ENV, EXAMPLES, INTERNET, INTRANET, POLICY, Daemon, Server,
                             hept_lookup, hept_map, wait_for)

rpcgate_testlib.enter_private_netns("50000-50199,50500-50501")

from impacket.dcerpc.v5 import epm, transport  # noqa: E402
from impacket.dcerpc.v5.rpcrt import DCERPCException  # noqa: E402
from impacket.uuid import uuidtup_to_bin  # noqa: E402

ALPHA = "11111111-2222-3333-4444-555555555501"
BETA = "11111111-2222-3333-4444-555555555502"
GAMMA = "11111111-2222-3333-4444-555555555503"
EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"

# Internet 50000-50099, intranet 50100-50199 (the rest of the dynamic range), default intranet.

class EpmdEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-epmd-")
        cls.daemon = Daemon(cls.workdir, "main", POLICY)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        shutil.rmtree(cls.workdir)

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop(signal.SIGKILL)

    def start(self, *args, **kwargs):
        s = Server(self.daemon, *args, **kwargs)
        self.servers.append(s)
        return s

    def test_each_class_gets_a_port_of_its_set_and_clients_find_it(self):
        alpha = self.start(ALPHA, "alpha", port_class="internet")
        beta = self.start(BETA, "beta", port_class="intranet")
        gamma = self.start(GAMMA, "gamma", port_class="default")
        self.assertIn(alpha.port, INTERNET)
        self.assertIn(beta.port, INTRANET)
        self.assertIn(gamma.port, INTRANET)  # UseInternetPorts = N
        for uuid, server in ((ALPHA, alpha), (BETA, beta), (GAMMA, gamma)):
            self.assertEqual(hept_map(uuid), f"ncacn_ip_tcp:127.0.0.1[{server.port}]")

        # rpcdump.py walks ept_lookup and prints every entry.
        out = subprocess.run([sys.executable, f"{EXAMPLES}/rpcdump.py", "127.0.0.1"],
                             capture_output=True, text=True, timeout=60, env=ENV)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout
        for uuid, server, note in ((ALPHA, alpha, "alpha"), (BETA, beta, "beta"),
                                   (GAMMA, gamma, "gamma")):
            self.assertRegex(text, re.compile(
                rf"Protocol: .*\nProvider: .*\nUUID\s+: {uuid.upper()} v1.0 {note}\n"
                rf"Bindings: \n\s+ncacn_ip_tcp:127.0.0.1\[{server.port}\]", re.I))
        self.assertIn("ncacn_ip_tcp:127.0.0.1[135]", text)  # the endpoint mapper itself
        self.assertIn("Received 4 endpoints.", text)

    def test_one_server_registers_several_interfaces_at_its_one_port(self):
        # What bench/epm_side_by_side.sh does to mirror a Samba rpcd_* serving several interfaces.
        both = self.start(None, "both", static_port=0,
                          interfaces=[f"{ALPHA}:1.0", f"{BETA}:2.1"])
        self.assertIsNotNone(both.port, "rpcgate-testsrv did not print port=N")
        want = f"ncacn_ip_tcp:127.0.0.1[{both.port}]"
        self.assertEqual(hept_map(ALPHA), want)
        self.assertEqual(hept_map(BETA, version="2.1"), want)
        r = subprocess.run([os.path.join(BIN, "rpcgate"), "lookup", "127.0.0.1", "--json"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = {(e["interface"], e["version"], e["binding"], e["annotation"])
                   for e in json.loads(r.stdout)["entries"]}
        self.assertLessEqual({(ALPHA, "1.0", want, "both"), (BETA, "2.1", want, "both")},
                             entries)
        # Both served: a bind to either on the server's port is accepted (MGMT inq_if_ids).
        r = subprocess.run([os.path.join(BIN, "rpcgate"), "ifids", want],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{ALPHA} v1.0", r.stdout)
        self.assertIn(f"{BETA} v2.1", r.stdout)
        # SIGTERM: a clean exit that takes both entries away.
        both.stop()
        self.assertEqual(both.proc.returncode, 0)
        for uuid, version in ((ALPHA, "1.0"), (BETA, "2.1")):
            with self.assertRaisesRegex(DCERPCException, "ept_s_not_registered"):
                hept_map(uuid, version=version)

        # Usage errors (exit 2): the same uuid+major twice, --interface with --uuid, a bad spec.
        testsrv = os.path.join(BIN, "rpcgate-testsrv")
        for extra in (["--interface", f"{ALPHA}:1.0", "--interface", f"{ALPHA}:1.1"],
                      ["--interface", f"{ALPHA}:1.0", "--uuid", BETA],
                      ["--interface", "not-a-uuid:1.0"]):
            r = subprocess.run([testsrv, "--epmd", self.daemon.control, *extra],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, (extra, r.stdout, r.stderr))

    def test_rpcmap_enumerates_through_the_management_interface(self):
        alpha = self.start(ALPHA, "alpha", port_class="internet")
        out = subprocess.run([sys.executable, f"{EXAMPLES}/rpcmap.py", "-auth-level", "1",
                              f"ncacn_ip_tcp:127.0.0.1[{alpha.port}]"],
                             capture_output=True, text=True, timeout=60, env=ENV)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"UUID: {ALPHA} v1.0".upper(), out.stdout.upper())
        self.assertIn("AFA8BD80-7D8A-11C9-BEF4-08002B102989", out.stdout.upper())  # MGMT
        out = subprocess.run([sys.executable, f"{EXAMPLES}/rpcmap.py", "-auth-level", "1",
                              "ncacn_ip_tcp:127.0.0.1[135]"],
                             capture_output=True, text=True, timeout=60, env=ENV)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("E1AF8308-5D1F-11C9-91A4-08002B14A0FA", out.stdout.upper())  # EPM

    def test_killed_server_disappears_within_a_second(self):
        alpha = self.start(ALPHA, "alpha", port_class="internet")
        self.assertEqual(hept_map(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{alpha.port}]")
        alpha.proc.kill()  # SIGKILL: no chance to unregister
        alpha.proc.wait()
        started = time.monotonic()

        def gone():
            try:
                hept_map(ALPHA)
                return False
            except DCERPCException as e:
                return "ept_s_not_registered" in str(e)

        wait_for(gone, 1.0, "the killed server's entry to disappear")
        self.assertLess(time.monotonic() - started, 1.0)

    def test_hostile_clients_do_not_disturb_lookups(self):
        alpha = self.start(ALPHA, "alpha", port_class="internet")
        socks = []
        try:
            for _ in range(300):  # a flood of idle connections
                s = socket.create_connection(("127.0.0.1", 135), timeout=5)
                socks.append(s)
            for s in socks[:50]:  # garbage and half PDUs
                s.sendall(b"\x05\x00\x0b\x03\x10\x00\x00\x00\xff\xff\x00\x00garbage")
            # Context handles: one connection pages with max_ents 1 and never frees them.
            t = transport.DCERPCTransportFactory("ncacn_ip_tcp:127.0.0.1[135]")
            dce = t.get_dce_rpc()
            dce.connect()
            dce.bind(epm.MSRPC_UUID_PORTMAP)
            for _ in range(100):
                req = epm.ept_lookup()
                req["inquiry_type"] = epm.RPC_C_EP_ALL_ELTS
                req["object"] = epm.NULL
                req["Ifid"] = epm.NULL
                req["vers_option"] = epm.RPC_C_VERS_ALL
                req["max_ents"] = 1
                dce.request(req)
            self.assertEqual(hept_map(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{alpha.port}]")
            dce.disconnect()
        finally:
            for s in socks:
                s.close()
        # Every decoder case of the protocol core: the PDU and framer fuzz corpora (golden
        # vectors, truncations, over-limit headers, evasion sequences) sent on connections of
        # their own, each after a valid bind where it makes sense.
        src = os.environ.get("RPCGATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
        bind = bytes.fromhex(
            "05000b031000000048000000010000 00b810b81000000000010000000000 0100"
            "0883afe11f5dc91191a408002b14a0fa030000 00045d888aeb1cc9119fe808002b10486002000000"
            .replace(" ", ""))
        sent = 0
        for corpus in ("rpc_pdu_fuzzer", "rpc_framer_fuzzer"):
            folder = os.path.join(src, "fuzz", "corpus", corpus)
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
                for prefix in (b"", bind):
                    with socket.create_connection(("127.0.0.1", 135), timeout=5) as s:
                        s.sendall(prefix + data)
                        sent += 1
        self.assertGreater(sent, 100)
        self.assertEqual(self.daemon.proc.poll(), None)
        self.assertEqual(hept_map(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{alpha.port}]")


def ept_insert_over_tcp(uuid, port, annotation, port_135=135):
    """ept_insert (opnum 0) over TCP with Impacket's NDR types (Impacket 0.10.0 has the entry
    types but not the call). Returns (status, dce); the entry is persistent (no lease asked for)."""
    from impacket.dcerpc.v5.ndr import NDRCALL, NDRUniConformantArray
    from impacket.dcerpc.v5.dtypes import ULONG

    class EntryArray(NDRUniConformantArray):
        item = epm.ept_entry_t

    class EptInsert(NDRCALL):
        opnum = 0
        structure = (("num_ents", ULONG), ("entries", EntryArray), ("replace", ULONG))

    tower = epm.EPMTower()
    iface = epm.EPMRPCInterface()
    iface["InterfaceUUID"] = uuidtup_to_bin((uuid, "1.0"))[:16]
    iface["MajorVersion"] = 1
    iface["MinorVersion"] = 0
    rep = epm.EPMRPCDataRepresentation()
    rep["DataRepUuid"] = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))[:16]
    rep["MajorVersion"] = 2
    rep["MinorVersion"] = 0
    proto = epm.EPMProtocolIdentifier()
    proto["ProtIdentifier"] = 0x0b
    port_floor = epm.EPMPortAddr()
    port_floor["IpPort"] = port
    host = epm.EPMHostAddr()
    host["Ip4addr"] = socket.inet_aton("0.0.0.0")
    tower["NumberOfFloors"] = 5
    tower["Floors"] = (iface.getData() + rep.getData() + proto.getData() + port_floor.getData() +
                       host.getData())
    entry = epm.ept_entry_t()
    entry["object"] = b"\0" * 16
    entry["tower"]["tower_length"] = len(tower)
    entry["tower"]["tower_octet_string"] = tower.getData()
    entry["annotation"] = annotation.encode() + b"\0"
    req = EptInsert()
    req["num_ents"] = 1
    req["entries"].append(entry)
    req["replace"] = 1
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port_135}]")
    dce = t.get_dce_rpc()
    dce.connect()
    dce.bind(epm.MSRPC_UUID_PORTMAP)
    dce.call(req.opnum, req)
    answer = dce.recv()
    return int.from_bytes(answer[-4:], "little"), dce


class EpmdOptions(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="rpcgate-epmd-")
        self.cleanup = []

    def tearDown(self):
        for fn in reversed(self.cleanup):
            fn()
        shutil.rmtree(self.workdir)

    def test_config_file_advertise_user_and_readiness(self):
        control = os.path.join(self.workdir, "epmd.sock")
        config = os.path.join(self.workdir, "rpcgate.toml")
        with open(config, "w") as f:
            f.write(POLICY + f"""
[epmd]
listen = ["127.0.0.1:1135"]
control = "{control}"
advertise = "192.0.2.10"
""")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = os.path.join(self.workdir, "notify.sock")
        notify.bind(notify_path)
        # As systemd's own notify socket: reachable by the unprivileged user epmd becomes.
        os.chmod(self.workdir, 0o755)
        os.chmod(notify_path, 0o777)
        notify.settimeout(10)
        self.cleanup.append(notify.close)
        log = open(os.path.join(self.workdir, "log"), "w")
        proc = subprocess.Popen([os.path.join(BIN, "rpcgate-epmd"), "--config", config,
                                 "--user", "nobody"],
                                stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, NOTIFY_SOCKET=notify_path))

        def stop():
            proc.terminate()
            proc.wait(5)
            log.close()

        self.cleanup.append(stop)
        # sd_notify: READY=1 once the listeners are open and privileges dropped.
        self.assertIn(b"READY=1", notify.recv(4096))
        with open(f"/proc/{proc.pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        self.assertEqual(set(uids), {str(65534)})  # nobody, real/effective/saved/fs
        d = type("D", (), {"control": control})()
        server = Server(d, ALPHA, "alpha", port_class="internet")
        self.cleanup.append(lambda: server.stop(signal.SIGKILL))
        self.assertIn(server.port, INTERNET)
        # NAT: the host floor of returned towers is the advertised address, not the one the
        # client used (hept_map keeps the host it dialled, so read the towers of a lookup).
        bindings = {epm.PrintStringBinding(e["tower"]["Floors"]) for e in hept_lookup(port=1135)}
        self.assertIn(f"ncacn_ip_tcp:192.0.2.10[{server.port}]", bindings)
        self.assertIn("ncacn_ip_tcp:192.0.2.10[1135]", bindings)

    def test_registration_over_tcp_is_loopback_only_and_configurable(self):
        d = Daemon(self.workdir, "tcpreg", POLICY, port=135)
        self.cleanup.append(d.stop)
        status, dce = ept_insert_over_tcp(GAMMA, 50150, "registered over tcp")
        self.assertEqual(status, 0)
        self.assertEqual(hept_map(GAMMA), "ncacn_ip_tcp:127.0.0.1[50150]")
        dce.disconnect()
        # Issue 11: a plain ept_insert holds no lease (DCE's rpcd keeps it until ept_delete or
        # its server stops answering; registration_test.py has the sweep): it outlives the
        # connection.
        time.sleep(0.3)
        self.assertEqual(hept_map(GAMMA), "ncacn_ip_tcp:127.0.0.1[50150]")
        d.stop()
        self.cleanup.remove(d.stop)
        refusing = Daemon(self.workdir, "notcpreg", POLICY, port=135,
                          extra=("--no-tcp-registration",))
        self.cleanup.append(refusing.stop)
        status, dce = ept_insert_over_tcp(GAMMA, 50150, "refused")
        dce.disconnect()
        self.assertEqual(status, 0x16C9A0CD)  # ept_s_cant_perform_op

    def test_bad_usage_and_unreadable_policy_exit_2(self):
        epmd = os.path.join(BIN, "rpcgate-epmd")
        r = subprocess.run([epmd, "--listen", "localhost:135"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a numeric IPv4 address", r.stderr)
        r = subprocess.run([epmd, "--policy", "/nonexistent.reg"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.reg", r.stderr)

    def test_listener_conflict_names_the_address(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 1136))
            s.listen()
            r = subprocess.run([os.path.join(BIN, "rpcgate-epmd"), "--listen", "127.0.0.1:1136",
                                "--control", os.path.join(self.workdir, "x.sock")],
                               capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("127.0.0.1:1136", r.stdout + r.stderr)


class EpmdPolicyFailures(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="rpcgate-epmd-")
        self.daemons = []
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop(signal.SIGKILL)
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.workdir)

    def test_invalid_policy_fails_registration_with_87_and_lookups_still_work(self):
        d = Daemon(self.workdir, "invalid", """[policy]
ports = ["5000-5100", "5984", "70000"]
ports_internet_available = "Y"
use_internet_ports = "Y"
""", port=135)
        self.daemons.append(d)
        s = Server(d, ALPHA, "alpha", port_class="default")
        self.servers.append(s)
        self.assertIsNone(s.port)
        self.assertEqual(s.exit_status(), 87)
        self.assertIn("87", s.proc.stderr.read())
        log = wait_for(lambda: "RPCGATE-5820" in d.read_log() and d.read_log(), 2, "the event")
        self.assertIn('Ports entry 3 "70000": port outside 0-65535', log)
        # Lookups and static registrations keep working.
        static = Server(d, BETA, "beta", static_port=0)
        self.servers.append(static)
        self.assertIsNotNone(static.port)
        self.assertEqual(hept_map(BETA), f"ncacn_ip_tcp:127.0.0.1[{static.port}]")
        self.assertGreaterEqual(len(hept_lookup()), 2)

    def test_sighup_reloads_the_policy(self):
        d = Daemon(self.workdir, "reload", """[policy]
ports = ["70000"]
ports_internet_available = "Y"
use_internet_ports = "Y"
""", port=135)
        self.daemons.append(d)
        s = Server(d, ALPHA, "alpha", port_class="internet")
        self.servers.append(s)
        self.assertEqual(s.exit_status(), 87)
        with open(d.policy, "w") as f:
            f.write(POLICY)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.read_log(), 5, "the reload")
        s = Server(d, ALPHA, "alpha", port_class="internet")
        self.servers.append(s)
        self.assertIn(s.port, INTERNET)
        self.assertEqual(hept_map(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{s.port}]")

    def test_sighup_with_65536_overlapping_ports_entries_does_not_stall_lookups(self):
        """Issue 10 item 8: resolving 65536 x "0-65535" took 5.5 s and stalled a SIGHUP reload
        (and with it every client) for 4.2 s; entries are merged as intervals now."""
        d = Daemon(self.workdir, "bigreload", POLICY, port=135)
        self.daemons.append(d)
        with open(d.policy, "w") as f:
            f.write("[policy]\nports = [" + ", ".join(['"0-65535"'] * 65536) + "]\n"
                    'ports_internet_available = "Y"\nuse_internet_ports = "Y"\n')
        started = time.monotonic()
        d.proc.send_signal(signal.SIGHUP)
        # ept_map right behind the signal: answered while (or after) the policy is read.
        self.assertEqual(hept_map(EPM_UUID, version="3.0"), "ncacn_ip_tcp:127.0.0.1[135]")
        wait_for(lambda: "reloaded" in d.read_log(), 5, "the reload")
        took = time.monotonic() - started
        self.assertIn("internet 0-65535 (65536)", d.read_log())
        self.assertLess(took, 2.0, f"reload and one ept_map took {took:.2f} s")

    def test_per_peer_limit_counts_an_ipv6_slash_64_as_one_peer(self):
        """Issue 10 item 9: the per-peer connection limit is keyed on the IPv6 /64, so one host
        cannot multiply its budget by taking more addresses of its subnet."""
        for a in ("2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:3::a"):
            subprocess.run(["ip", "-6", "addr", "add", f"{a}/64", "dev", "lo", "nodad"],
                           check=True)
        d = Daemon(self.workdir, "v6peer", POLICY, port=1135,
                   extra=("--listen", "[::]:1135", "--max-connections-per-peer", "2"))
        self.daemons.append(d)

        def alive(source):
            c = socket.create_connection(("2001:db8:1:2::a", 1135), 5,
                                         source_address=(source, 0))
            c.settimeout(0.5)
            try:
                return c, c.recv(1) != b""  # a refused connection is closed at once: EOF
            except socket.timeout:
                return c, True

        held = [alive("2001:db8:1:2::a"), alive("2001:db8:1:2::b")]
        self.assertTrue(all(ok for _, ok in held), "the first two of the /64 are held")
        third = alive("2001:db8:1:2::b")
        other = alive("2001:db8:1:3::a")
        self.assertFalse(third[1], "a third connection from the same /64 is refused")
        self.assertTrue(other[1], "another /64 is another peer")
        for c, _ in held + [third, other]:
            c.close()
        wait_for(lambda: "over max_connections_per_peer 2" in d.read_log(), 15,
                 "the refusal summary naming the budget")

    def test_exhausted_class_fails_with_1721_and_a_killed_holder_returns_its_port(self):
        d = Daemon(self.workdir, "tiny", """[policy]
ports = ["50500"]
ports_internet_available = "Y"
use_internet_ports = "Y"
dynamic_range = "50500-50501"
""", port=135)
        self.daemons.append(d)
        first = Server(d, ALPHA, "alpha", port_class="internet")
        self.servers.append(first)
        self.assertEqual(first.port, 50500)
        second = Server(d, BETA, "beta", port_class="internet")
        self.servers.append(second)
        self.assertIsNone(second.port)
        # The process exit status is the Windows code modulo 256; stderr has the full code.
        self.assertEqual(second.exit_status(), 1721 % 256)
        self.assertIn("1721", second.proc.stderr.read())
        self.assertIn("RPCGATE-1721", wait_for(lambda: d.read_log(), 2, "the log"))
        first.proc.kill()
        first.proc.wait()

        def reallocated():
            third = Server(d, GAMMA, "gamma", port_class="internet")
            self.servers.append(third)
            return third.port == 50500

        wait_for(reallocated, 1.0, "the port to return to the pool")


if __name__ == "__main__":
    rpcgate_testlib.main()
