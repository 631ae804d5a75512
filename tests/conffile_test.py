#!/usr/bin/python3
"""packaging/rpcgate.toml, installed as the conffile /etc/rpcgate/rpcgate.toml, against the
programs that read it.

The file's convention (its header says it): "# key = value" is a setting at its default value,
"#key = value" an example of a setting that is unset by default. The test checks that
  * every key each table accepts (asked of the programs: tests/config_keys.py) is in the file,
    under its table, and the file has no key the programs do not accept (but for PENDING);
  * the file as shipped is valid for `rpcgate policy check`, `rpcgate-fwd --check` and
    `rpcgate-epmd`, and means the defaults: the resolved policy (`policy show --json`), the
    firewall's nftables table (`rpcgate-fwd --dry-run`) and rpcgate-epmd's start-up line are
    those of no file at all;
  * with every "# key = value" line uncommented it is still valid and means the same;
  * with the examples uncommented too it is valid and means what they say (a restricted
    policy, one firewall rule).
rpcgate-epmd has no check mode: it is started for real in a private network namespace (so its
default listeners, 0.0.0.0:135 and [::]:135, are free), with only --control moved to a
temporary directory, and stopped after its start-up line.
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import unittest

import config_keys
import rpcgate_testlib

BIN = config_keys.BIN
CONFFILE = os.path.join(config_keys.SOURCE, "packaging", "rpcgate.toml")

DEFAULT = re.compile(r"^# ([a-z_]+) = (.+)$")
EXAMPLE = re.compile(r"^#([a-z_]+) = (.+)$")
TABLE = re.compile(r"^\[([a-z_]+)\]$")
SUBTABLE = re.compile(r"^#\[\[([a-z_.]+)\]\]$")
# Keys documented before the code that reads them lands (Prometheus metrics, issue 15): an
# example line of such a key stays commented while the program does not know it yet.
PENDING = {("epmd", "metrics"), ("firewall", "metrics")}


def scan(text):
    """[(line number, kind "default"|"example", table, key)] of the conffile; asserts that
    nothing but comments and the three table headers is active."""
    out, table = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if m := TABLE.match(line):
            table = m.group(1)
            assert table in ("policy", "epmd", "firewall"), f"line {n}: table [{table}]"
        elif m := SUBTABLE.match(line):
            table = m.group(1)
        elif m := DEFAULT.match(line):
            out.append((n, "default", table, m.group(1)))
        elif m := EXAMPLE.match(line):
            out.append((n, "example", table, m.group(1)))
        else:
            assert line == "" or line.startswith("#"), f"line {n} is active: {line}"
    return out


def uncomment(text, examples, known):
    """The conffile with its default lines (and with `examples` its example lines and
    #[[table]] headers) uncommented; a PENDING key the program does not know stays commented."""
    lines, table = [], None
    for line in text.splitlines():
        if m := TABLE.match(line):
            table = m.group(1)
        elif (m := SUBTABLE.match(line)) and examples:
            table = m.group(1)
            line = line[1:]
        elif (m := DEFAULT.match(line)) or (examples and (m := EXAMPLE.match(line))):
            if (table, m.group(1)) in PENDING and m.group(1) not in known[table]:
                print(f"note: [{table}] {m.group(1)} left commented: not accepted yet")
            else:
                line = line[2:] if line.startswith("# ") else line[1:]
        lines.append(line)
    return "\n".join(lines) + "\n"


def run(*args, **kwargs):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True,
                          text=True, timeout=30, **kwargs)


class Conffile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(CONFFILE) as f:
            cls.text = f.read()
        cls.lines = scan(cls.text)
        cls.known = {t: config_keys.known_keys(t) for t in
                     config_keys.TABLES}
        cls.dir = tempfile.mkdtemp(prefix="rpcgate-conffile-")
        cls.files = {}
        for name, text in [
                ("shipped", cls.text),
                ("defaults", uncomment(cls.text, False, cls.known)),
                ("examples", uncomment(cls.text, True, cls.known))]:
            path = os.path.join(cls.dir, name + ".toml")
            if name == "examples":  # [firewall] policy = this file (its [policy]), not /etc
                text = text.replace('"/etc/rpcgate/rpcgate.toml"', json.dumps(path))
            with open(path, "w") as f:
                f.write(text)
            cls.files[name] = path

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.dir])

    def test_every_key_is_there_once_and_known(self):
        documented = {}
        for n, kind, table, key in self.lines:
            self.assertIn(table, self.known, f"line {n}: {key} outside a known table")
            self.assertNotIn((table, key), documented, f"line {n}: [{table}] {key} twice")
            documented[(table, key)] = kind
            if (table, key) not in PENDING:
                self.assertIn(key, self.known[table], f"line {n}: [{table}] {key} is unknown")
        for table, keys in self.known.items():
            for key in keys:
                with self.subTest(table=table, key=key):
                    sub = config_keys.SUBTABLES.get(table, {}).get(key)
                    if sub:
                        self.assertIn(f"#[[{sub}]]", self.text.splitlines())
                    else:
                        self.assertIn((table, key), documented)
        # The "unset by default" keys are examples, everything else has its default written.
        self.assertEqual(
            {("policy", "ports"), ("policy", "ports_internet_available"),
             ("policy", "use_internet_ports"), ("epmd", "advertise"), ("epmd", "user"),
             ("epmd", "seed"), ("epmd", "metrics"), ("firewall", "clients"),
             ("firewall", "servers"), ("firewall", "policy"), ("firewall", "metrics"),
             ("firewall", "lookup_pinhole_timeout")},
            {k for k, kind in documented.items() if kind == "example" and "." not in k[0]})

    def test_defaults_uncommented_differ_only_in_those_lines(self):
        shipped = self.text.splitlines()
        with open(self.files["defaults"]) as f:
            defaults = f.read().splitlines()
        changed = [i + 1 for i, (a, b) in enumerate(zip(shipped, defaults)) if a != b]
        self.assertEqual(len(shipped), len(defaults))
        self.assertEqual([n for n, kind, _, _ in self.lines if kind == "default"], changed)
        self.assertGreater(len(changed), 30)

    def policy_json(self, *file):
        r = run("rpcgate", "policy", "show", *file, "--json")
        self.assertEqual(0, r.returncode, r.stderr)
        j = json.loads(r.stdout)
        del j["source"]
        return j

    def test_policy_is_the_default(self):
        default = self.policy_json()
        self.assertFalse(default["restricted"])
        for name in ["shipped", "defaults"]:
            with self.subTest(name=name):
                r = run("rpcgate", "policy", "check", self.files[name])
                self.assertEqual(0, r.returncode, r.stdout + r.stderr)
                self.assertIn("valid, unrestricted", r.stdout)
                self.assertEqual(default, self.policy_json(self.files[name]))

    def test_policy_examples(self):
        r = run("rpcgate", "policy", "check", self.files["examples"])
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)
        j = self.policy_json(self.files["examples"])
        self.assertTrue(j["restricted"] and j["valid"])
        self.assertEqual(["5000-5100"], j["internet"])
        self.assertEqual("intranet", j["default_class"])

    def test_firewall_is_the_default(self):
        default = run("rpcgate-fwd", "--dry-run")
        self.assertEqual(0, default.returncode, default.stderr)
        self.assertIn("table inet rpcgate_fwd", default.stdout)
        for name in ["shipped", "defaults"]:
            with self.subTest(name=name):
                r = run("rpcgate-fwd", "--check", "--config", self.files[name])
                self.assertEqual(0, r.returncode, r.stdout + r.stderr)
                self.assertEqual("configuration valid: 0 rule(s)\nlookup pinholes: off\n"
                                 "static NAT: none\n", r.stdout)
                r = run("rpcgate-fwd", "--dry-run", "--config", self.files[name])
                self.assertEqual(0, r.returncode, r.stderr)
                self.assertEqual(default.stdout, r.stdout)

    def test_firewall_examples(self):
        r = run("rpcgate-fwd", "--check", "--config", self.files["examples"])
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)
        self.assertEqual("configuration valid: 1 rule(s)\n  dc-replication: drsuapi "
                         "e3514235-4b06-11d1-ab04-00c04fc2dcd2:4.0\nlookup pinholes: off\n"
                         "static NAT:\n  203.0.113.10 -> 10.2.0.5\n", r.stdout)
        r = run("rpcgate-fwd", "--dry-run", "--config", self.files["examples"])
        self.assertEqual(0, r.returncode, r.stderr)
        # The governed ports are the example policy's (the file's own [policy]: the dynamic
        # range and the listed ports), the clients and servers the examples'.
        for text in ["5000-5100", "10.0.0.0/8", "192.0.2.0/24"]:
            self.assertIn(text, r.stdout)

    def epmd_start_line(self, *config):
        """rpcgate-epmd's start-up line with `config`, its policy source and the control path
        written as placeholders. The daemon is stopped with SIGTERM once it said READY=1 to
        systemd's notify socket (its signal handlers are in place then), and must exit 0."""
        control = os.path.join(self.dir, "epmd.sock")
        notify_path = os.path.join(self.dir, "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            notify.settimeout(10)
            env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}  # to stderr
            env["NOTIFY_SOCKET"] = notify_path
            p = subprocess.Popen([os.path.join(BIN, "rpcgate-epmd"), *config, "--control",
                                  control], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=env)
            try:
                ready = b""
                while b"READY=1" not in ready:
                    ready = notify.recv(4096)  # socket.timeout after 10 s: the test fails
            finally:
                p.send_signal(signal.SIGTERM)
                output, _ = p.communicate(timeout=10)
        os.unlink(notify_path)
        self.assertEqual(0, p.returncode, output)
        start = [l for l in output.splitlines() if "listening on" in l]
        self.assertEqual(1, len(start), output)
        line = start[0].split(" info ", 1)[1].strip()
        line = line.replace(control, "CONTROL")
        for path in self.files.values():
            line = line.replace(f"policy {path}:", "policy SOURCE:")
        return line.replace("policy embedded default:", "policy SOURCE:")

    def test_epmd_is_the_default(self):
        default = self.epmd_start_line()
        self.assertIn("listening on 0.0.0.0:135, [::]:135; control CONTROL; policy SOURCE:",
                      default)
        for name in ["shipped", "defaults"]:
            with self.subTest(name=name):
                self.assertEqual(default, self.epmd_start_line("--config", self.files[name]))


if __name__ == "__main__":
    rpcgate_testlib.enter_private_netns("")  # re-runs this script in a new network namespace
    rpcgate_testlib.main()
