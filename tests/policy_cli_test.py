#!/usr/bin/python3
"""Integration test of `rpcgate policy check|show|export` on the real binary.

Writes regedit exports the way regedit does (UTF-16LE with BOM, CRLF, hex(7) wrapped over lines)
and rpcgate.toml files, runs the built binary, and checks exit statuses, messages and JSON. The
exported artefacts are checked by their real consumers where this machine has them: `nft -c` in a
private network namespace, sysctl in a private namespace, an XML parser, and rpcgate's own .reg
reader (round trip).
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import rpcgate_testlib
import xml.etree.ElementTree as ET

BIN = os.path.join(os.environ.get("RPCGATE_BIN", "build/bin"), "rpcgate")


def reg_multi_sz(name, entries):
    data = b"".join(e.encode("utf-16-le") + b"\0\0" for e in entries) + b"\0\0"
    hexes = [f"{b:02x}" for b in data]
    line = f'"{name}"=hex(7):'
    lines = []
    for i, h in enumerate(hexes):
        item = h + ("," if i + 1 < len(hexes) else "")
        if len(line) + len(item) > 77 and i + 1 < len(hexes):
            lines.append(line + "\\")
            line = "  "
        line += item
    lines.append(line)
    return "\n".join(lines)


def reg_file(values, key=r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Rpc\Internet"):
    text = "Windows Registry Editor Version 5.00\n\n[" + key + "]\n" + "\n".join(values) + "\n\n"
    return b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le")


class PolicyCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rpcgate-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, content):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        return path

    def run_cli(self, *args):
        return subprocess.run([BIN, *args], capture_output=True, timeout=30)

    def show_json(self, *args):
        r = self.run_cli("policy", "show", *args, "--json")
        out = json.loads(r.stdout)
        return r.returncode, out

    # -- embedded default -------------------------------------------------------------------
    def test_embedded_default(self):
        code, j = self.show_json()
        self.assertEqual(code, 0)
        self.assertFalse(j["restricted"])
        self.assertTrue(j["valid"])
        self.assertIsNone(j["error"])
        self.assertEqual(j["internet"], ["49152-65535"])
        self.assertEqual(j["intranet"], ["49152-65535"])
        self.assertEqual(j["internet_count"], 16384)
        self.assertIn(j["default_class"], ("internet", "intranet"))
        r = self.run_cli("policy", "show")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"49152-65535 (16384 ports)", r.stdout)

    # -- check ------------------------------------------------------------------------------
    def test_check_valid_kb_example_reg(self):
        path = self.write("kb.reg", reg_file([reg_multi_sz("Ports", ["5000-6000"]),
                                              '"PortsInternetAvailable"="Y"',
                                              '"UseInternetPorts"="Y"']))
        r = self.run_cli("policy", "check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.decode().strip().splitlines()), 1)
        self.assertIn("valid, restricted", r.stdout.decode())
        self.assertIn("5000-6000 (1001 ports)", r.stdout.decode())

    def test_check_invalid_entry_exits_87_and_names_it(self):
        path = self.write("bad.reg", reg_file([reg_multi_sz("Ports", ["5000-5100", "5984", "70000"]),
                                               '"PortsInternetAvailable"="Y"',
                                               '"UseInternetPorts"="Y"']))
        r = self.run_cli("policy", "check", path)
        self.assertEqual(r.returncode, 87)
        self.assertIn('Ports entry 3 "70000": port outside 0-65535', r.stderr.decode())
        code, j = self.show_json(path)
        self.assertEqual(code, 87)
        self.assertFalse(j["valid"])
        self.assertEqual(j["error"]["code"], 87)
        self.assertEqual(j["internet"], [])

    def test_check_ports_as_reg_sz_is_invalid(self):
        path = self.write("sz.reg", reg_file(['"Ports"="5000-6000"', '"PortsInternetAvailable"="Y"',
                                              '"UseInternetPorts"="Y"']))
        r = self.run_cli("policy", "check", path)
        self.assertEqual(r.returncode, 87)
        self.assertIn("Ports", r.stderr.decode())

    def test_unreadable_and_bad_usage_exit_2(self):
        self.assertEqual(self.run_cli("policy", "check", "/nonexistent/x.reg").returncode, 2)
        garbage = self.write("garbage.toml", "[policy\nports = ")
        r = self.run_cli("policy", "check", garbage)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"garbage.toml", r.stderr)
        self.assertEqual(self.run_cli("policy", "check").returncode, 2)
        self.assertEqual(self.run_cli("policy", "frobnicate").returncode, 2)
        self.assertEqual(self.run_cli("policy", "export", "--format", "pdf").returncode, 2)
        self.assertEqual(self.run_cli("--help").returncode, 0)

    def test_warnings_keep_exit_zero(self):
        path = self.write("small.toml", '[policy]\nports = ["1000-1050", "135"]\n'
                                        'ports_internet_available = "Y"\nuse_internet_ports = "Y"\n'
                                        'dynamic_range = "50000-50999"\n')
        r = self.run_cli("policy", "check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        code, j = self.show_json(path)
        codes = {w["code"] for w in j["warnings"]}
        self.assertTrue({"small-class", "low-ports", "well-known-port"} <= codes, codes)

    # -- reg and toml agree -----------------------------------------------------------------
    def test_reg_and_toml_resolve_identically(self):
        reg = self.write("n.reg", reg_file([reg_multi_sz("Ports", ["50000-50099", "50500"]),
                                            '"PortsInternetAvailable"="n"',
                                            '"UseInternetPorts"="N"']))
        toml = self.write("n.toml", '[policy]\nports = ["50000-50099", "50500"]\n'
                                    'ports_internet_available = "n"\nuse_internet_ports = "N"\n')
        _, a = self.show_json(reg)
        _, b = self.show_json(toml)
        for k in ("restricted", "valid", "default_class", "internet", "intranet"):
            self.assertEqual(a[k], b[k], k)
        self.assertEqual(a["intranet"], ["50000-50099", "50500"])
        self.assertEqual(a["default_class"], "intranet")

    # -- export -----------------------------------------------------------------------------
    def policy_files(self):
        return {
            "y": self.write("y.toml", '[policy]\nports = ["50000-50199", "51000-51099"]\n'
                                      'ports_internet_available = "Y"\nuse_internet_ports = "Y"\n'),
            "n": self.write("n2.toml", '[policy]\nports = ["5000-5099"]\n'
                                       'ports_internet_available = "N"\nuse_internet_ports = "N"\n'),
            "default": "",
        }

    def test_export_reg_round_trips(self):
        for name, src in self.policy_files().items():
            with self.subTest(policy=name):
                args = ["policy", "export"] + ([src] if src else []) + ["--format", "reg"]
                r = self.run_cli(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(b"\xff\xfe"))
                self.assertIn("Windows Registry Editor Version 5.00\r\n",
                              r.stdout[2:].decode("utf-16-le"))
                back = self.write(f"{name}-back.reg", r.stdout)
                _, a = self.show_json(*([src] if src else []))
                _, b = self.show_json(back)
                for k in ("restricted", "valid", "default_class", "internet", "intranet"):
                    self.assertEqual(a[k], b[k], (name, k))

    def test_export_refuses_invalid_policy(self):
        bad = self.write("bad.toml", '[policy]\nports = ["x"]\nports_internet_available = "Y"\n'
                                     'use_internet_ports = "Y"\n')
        r = self.run_cli("policy", "export", bad, "--format", "nftables")
        self.assertEqual(r.returncode, 87)
        self.assertEqual(r.stdout, b"")

    def test_export_samba(self):
        files = self.policy_files()
        r = self.run_cli("policy", "export", "--format", "samba")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"rpc server dynamic port range = 49152-65535", r.stdout)
        r = self.run_cli("policy", "export", files["y"], "--format", "samba")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"exactly one range", r.stderr)
        self.assertIn(b"50000-50199, 51000-51099", r.stderr)

    def test_export_firewalld_is_valid_xml(self):
        r = self.run_cli("policy", "export", self.policy_files()["y"], "--format", "firewalld",
                         "--udp")
        self.assertEqual(r.returncode, 0, r.stderr)
        root = ET.fromstring(r.stdout)
        ports = {(p.get("protocol"), p.get("port")) for p in root.findall("port")}
        self.assertEqual(ports, {("tcp", "135"), ("tcp", "50000-50199"), ("tcp", "51000-51099"),
                                 ("udp", "50000-50199"), ("udp", "51000-51099")})

    @unittest.skipUnless(shutil.which("nft") and shutil.which("unshare") and os.geteuid() == 0,
                         "needs root, nft and unshare")
    def test_export_nftables_loads_in_a_private_namespace(self):
        for name, src in self.policy_files().items():
            with self.subTest(policy=name):
                out = os.path.join(self.dir, f"{name}.nft")
                args = ["policy", "export"] + ([src] if src else []) + ["--format", "nftables",
                                                                        "-o", out]
                self.assertEqual(self.run_cli(*args).returncode, 0)
                # Load it for real in a throwaway namespace and read the set back from the kernel.
                r = subprocess.run(["unshare", "-n", "sh", "-c",
                                    f"nft -f {out} && nft -j list set inet rpcgate rpc_internet"],
                                   capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(b'"rpc_internet"', r.stdout)

    @unittest.skipUnless(shutil.which("unshare") and os.geteuid() == 0, "needs root and unshare")
    def test_export_sysctl_is_accepted_by_the_kernel(self):
        src = self.policy_files()["n"]
        r = self.run_cli("policy", "export", src, "--format", "sysctl")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = [l for l in r.stdout.decode().splitlines() if l.startswith("net.ipv4")][0]
        value = line.split("=", 1)[1].strip()
        # Both classes: intranet 5000-5099 and internet 49152-65535.
        self.assertEqual(value, "5000-5099,49152-65535")
        r = subprocess.run(["unshare", "-n", "sh", "-c",
                            f"echo {value} > /proc/sys/net/ipv4/ip_local_reserved_ports && "
                            "cat /proc/sys/net/ipv4/ip_local_reserved_ports"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().strip(), value)


if __name__ == "__main__":
    rpcgate_testlib.main()
