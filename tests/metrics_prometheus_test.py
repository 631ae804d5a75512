#!/usr/bin/python3
"""Prometheus metrics of rpcgate-epmd and rpcgate-fwd (issue 15), read back through a real
Prometheus (Debian's `prometheus`) in private network namespaces.

Three namespaces (fwd_topology.py): clients -- firewall -- servers. In the servers' one,
rpcgate-epmd on 135 with a one-port Internet pool (so a second registration of that class fails
with 1721) and `--metrics 10.135.2.2:9135`; in the firewall's, rpcgate-fwd with `metrics =
"127.0.0.1:9136"` in its [firewall] table, and Prometheus on 127.0.0.1:9090 scraping both every
second. Load: rpcgate-testsrv servers registering through the broker, Impacket ept_map calls
from the clients' namespace through the firewall (allowed and refused). The series are read
back with Prometheus' HTTP API (/api/v1/query): pool use rises when a server registers and falls
when it is killed, a 1721 shows in the failure counter, calls are counted, and the firewall's
decisions by reason rise after an allowed and a refused ept_map.

Also: `promtool check metrics` on a scrape of each daemon, contrib/grafana/rpcgate.json against
the series the daemons expose, and the exit status and message of a bad --metrics address and
of a port in use. Skips (77) without root, nft, prometheus or promtool.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import fwd_topology as topo  # noqa: E402
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import BIN  # noqa: E402

why = topo.available()
if why:
    rpcgate_testlib.skip(why)
PROMETHEUS = shutil.which("prometheus", path=topo.ENV["PATH"])
PROMTOOL = shutil.which("promtool", path=topo.ENV["PATH"])
if not PROMETHEUS or not PROMTOOL:
    rpcgate_testlib.skip("prometheus / promtool not installed (Debian package prometheus)")

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("RPCGATE_SOURCE_DIR", os.path.join(HERE, ".."))
CLIENT_PY = os.path.join(HERE, "fwd_client.py")
ALLOWED = "11111111-2222-3333-4444-5555555555a1"
BLOCKED = "11111111-2222-3333-4444-5555555555b1"
EPMD_METRICS = f"{topo.SERVER}:9135"
FWD_METRICS = "127.0.0.1:9136"
PROM = "127.0.0.1:9090"
# One Internet port (50500), one intranet port (50501): the second Internet registration fails
# with 1721 (tests/epmd_test.py does the same without metrics).
POLICY = """[policy]
ports = ["50500"]
ports_internet_available = "Y"
use_internet_ports = "Y"
dynamic_range = "50500-50501"
"""
WAIT_S = 30  # Prometheus scrapes every second; every wait is bounded by this


def join_netns(name):
    """Moves this process into network namespace `name` (setns(2); Python 3.11 has no
    os.setns), so urllib reaches 127.0.0.1 there. Processes started later with `ip netns exec`
    go where they are told as before."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    with open(f"/run/netns/{name}") as ns:
        if libc.setns(ns.fileno(), clone_newnet) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def sample_names(exposition):
    """The sample names of an exposition text (histograms' _bucket/_sum/_count included)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="rpcgate-metrics-")
        cls.procs = []
        t = cls.t = topo.Topology(tag="m")
        # The epmd.
        policy = os.path.join(cls.workdir, "policy.toml")
        with open(policy, "w") as f:
            f.write(POLICY)
        cls.epmd_control = os.path.join(cls.workdir, "epmd.sock")
        cls.epmd_log_path = os.path.join(cls.workdir, "epmd.log")
        cls.epmd_log = open(cls.epmd_log_path, "w")
        cls.epmd = t.popen(t.s, [os.path.join(BIN, "rpcgate-epmd"), "--policy", policy,
                                 "--listen", "0.0.0.0:135", "--control", cls.epmd_control,
                                 "--metrics", EPMD_METRICS],
                           stdout=cls.epmd_log, stderr=subprocess.STDOUT)
        topo.wait_for(lambda: cls.epmd.poll() is not None or "metrics on" in cls.read(
            cls.epmd_log_path), 10, "rpcgate-epmd to start")
        assert cls.epmd.poll() is None, cls.read(cls.epmd_log_path)
        # The firewall, its metrics address from its configuration file.
        fw_toml = os.path.join(cls.workdir, "fwd.toml")
        with open(fw_toml, "w") as f:
            f.write(f'[firewall]\nmetrics = "{FWD_METRICS}"\npinhole_timeout = "30s"\n'
                    f'[[firewall.rule]]\nname = "allowed"\ninterfaces = ["{ALLOWED}"]\n')
        cls.fw = topo.Firewall(t, cls.workdir, "--config", fw_toml)
        # Prometheus, scraping both every second; this process joins the firewall's namespace
        # to ask it (and the daemons) over HTTP.
        prom_yml = os.path.join(cls.workdir, "prometheus.yml")
        with open(prom_yml, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n"
                    f"  - job_name: rpcgate-epmd\n    static_configs:\n"
                    f"      - targets: ['{EPMD_METRICS}']\n"
                    f"  - job_name: rpcgate-fwd\n    static_configs:\n"
                    f"      - targets: ['{FWD_METRICS}']\n")
        cls.prom_log = open(os.path.join(cls.workdir, "prometheus.log"), "w")
        cls.prom = t.popen(t.f, [PROMETHEUS, f"--config.file={prom_yml}",
                                 f"--storage.tsdb.path={os.path.join(cls.workdir, 'tsdb')}",
                                 f"--web.listen-address={PROM}", "--log.level=warn"],
                           stdout=cls.prom_log, stderr=subprocess.STDOUT)
        join_netns(t.f)

        def ready():
            try:
                return "Ready" in http_get(f"http://{PROM}/-/ready", timeout=1)
            except OSError:
                return cls.prom.poll() is not None
        topo.wait_for(ready, WAIT_S, "Prometheus to be ready")
        assert cls.prom.poll() is None, cls.read(os.path.join(cls.workdir, "prometheus.log"))

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            rpcgate_testlib.stop_process(p)
        rpcgate_testlib.stop_process(cls.prom)
        cls.fw.stop()
        subprocess.run(["ip", "netns", "exec", cls.t.f, os.path.join(BIN, "rpcgate-fwd"),
                        "--uninstall"], capture_output=True)
        rpcgate_testlib.stop_process(cls.epmd)
        cls.t.close()
        cls.epmd_log.close()
        cls.prom_log.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()

    # ---- helpers
    def query(self, expr):
        """The value of an instant query with one series (None when it has no series)."""
        body = json.loads(http_get(f"http://{PROM}/api/v1/query?" +
                                   urllib.parse.urlencode({"query": expr})))
        self.assertEqual(body["status"], "success", body)
        result = body["data"]["result"]
        self.assertLessEqual(len(result), 1, (expr, result))
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr, predicate, what):
        """Polls `expr` through Prometheus until predicate(value) (value may be None)."""
        seen = []

        def ok():
            v = self.query(expr)
            seen.append(v)
            return predicate(v)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if ok():
                return seen[-1]
            time.sleep(0.25)
        self.fail(f"{what}: {expr} was {seen[-5:]} for {WAIT_S} s")

    def start_testsrv(self, uuid, port_class):
        p = self.t.popen(self.t.s, [os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                                    self.epmd_control, "--uuid", uuid, "--version", "1.0",
                                    "--class", port_class],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        line = p.stdout.readline()  # "port=N", or EOF when it fails
        return p, (int(line.split("=")[1]) if line.startswith("port=") else None)

    def client_map(self, uuid):
        r = self.t.run(self.t.c, ["/usr/bin/python3", CLIENT_PY, "map", topo.SERVER, uuid],
                       timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    # ---- tests
    def test_a_series_rise_and_fall_in_prometheus(self):
        self.wait_value('sum(up{job=~"rpcgate-.*"})', lambda v: v == 2,
                        "both daemons scraped")
        held = 'rpcgate_epmd_pool_ports_held{class="internet"}'
        failures = 'rpcgate_epmd_port_allocation_failures_total{code="1721"}'
        self.assertEqual(self.query('rpcgate_epmd_pool_ports{class="internet"}'), 1)
        self.wait_value(held, lambda v: v == 0, "an empty Internet pool")
        self.assertEqual(self.query(failures), 0)

        # A server registers: pool use rises.
        first, port = self.start_testsrv(ALLOWED, "internet")
        self.assertEqual(port, 50500)
        self.wait_value(held, lambda v: v == 1, "the Internet pool's one port held")
        self.wait_value("rpcgate_epmd_leases", lambda v: v == 1, "one lease")
        # Another one of the same class: 1721, counted.
        second, port = self.start_testsrv(BLOCKED, "internet")
        self.assertIsNone(port)
        self.assertEqual(second.wait(10), 1721 % 256)
        self.wait_value(failures, lambda v: v == 1, "the 1721 in the failure counter")

        # ept_map through the firewall: allowed (a pinhole), then refused by the firewall.
        decisions = 'rpcgate_fwd_decisions_total{reason="%s"}'
        allow0 = self.query(decisions % "allow")
        refused0 = self.query(decisions % "map-not-allowed")
        maps0 = self.query('sum(rpcgate_epmd_calls_total{interface="epm",opnum="3"})') or 0
        self.assertEqual(refused0, 0)
        for _ in range(3):
            self.assertEqual(self.client_map(ALLOWED).get("port"), 50500)
        self.assertIn("error", self.client_map(BLOCKED))
        self.wait_value(decisions % "allow", lambda v: v >= allow0 + 4,
                        "the four ept_map connections allowed to their end")
        self.wait_value(decisions % "map-not-allowed", lambda v: v == refused0 + 1,
                        "the refused ept_map")
        self.wait_value("rpcgate_fwd_pinholes", lambda v: v == 1, "one live pinhole")
        self.wait_value("rpcgate_fwd_pinholes_installed_total", lambda v: v >= 1,
                        "the pinhole written to the kernel")
        self.wait_value("rpcgate_fwd_pinhole_install_duration_seconds_count", lambda v: v >= 1,
                        "the install timed")
        self.wait_value("rpcgate_fwd_inspection_duration_seconds_count", lambda v: v >= 8,
                        "inspection steps timed")
        self.wait_value('rpcgate_fwd_relayed_bytes_total{direction="server_to_client"}',
                        lambda v: v > 0, "bytes relayed")
        # The refused map never reached the server: three ept_map calls there, answered ok.
        self.wait_value('sum(rpcgate_epmd_calls_total{interface="epm",opnum="3",status="ok"})',
                        lambda v: v == maps0 + 3, "three ept_map calls counted by the epmd")
        self.wait_value("rpcgate_epmd_call_duration_seconds_count", lambda v: v >= 3,
                        "the calls timed")
        self.wait_value('sum(rpcgate_epmd_calls_total{interface="broker",opnum="0"})',
                        lambda v: v == 2, "two AllocatePort calls")
        self.wait_value('rpcgate_epmd_calls_total{interface="broker",opnum="0",status="1721"}',
                        lambda v: v == 1, "the failed AllocatePort by its status")

        # The server is killed: its port goes back, its registration and lease go.
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        self.wait_value(held, lambda v: v == 0, "the Internet pool empty again")
        self.wait_value("rpcgate_epmd_leases", lambda v: v == 0, "no lease")
        self.wait_value('rpcgate_epmd_registration_deletes_total{cause="lease_end"}',
                        lambda v: v >= 1, "the killed server's entry removed with its lease")

    def test_b_promtool_accepts_each_exposition(self):
        for url in (f"http://{EPMD_METRICS}/metrics", f"http://{FWD_METRICS}/metrics"):
            text = http_get(url)
            self.assertIn("# TYPE", text)
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 0, f"{url}:\n{r.stdout}{r.stderr}")
            self.assertEqual(r.stdout + r.stderr, "", url)

    def test_c_grafana_dashboard_uses_only_exposed_series(self):
        with open(os.path.join(SOURCE, "contrib", "grafana", "rpcgate.json")) as f:
            dash = json.load(f)  # valid JSON, or this raises
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        exposed = (sample_names(http_get(f"http://{EPMD_METRICS}/metrics")) |
                   sample_names(http_get(f"http://{FWD_METRICS}/metrics")))
        used = set()
        titles = []
        for p in dash["panels"]:
            if p["type"] == "row":
                continue
            titles.append(p["title"])
            self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
            for target in p["targets"]:
                self.assertEqual(target["datasource"]["uid"], "${datasource}", p["title"])
                used |= set(re.findall(r"\brpcgate_[a-z0-9_]+", target["expr"]))
        self.assertTrue(used)
        self.assertEqual(used - exposed, set(), f"series the daemons do not expose: {exposed}")
        for wanted in ("headroom", "87", "calls/s", "latency", "pinholes", "decisions"):
            self.assertTrue(any(wanted in t.lower() for t in titles), (wanted, titles))
        # Each panel query is one Prometheus parses.
        for p in dash["panels"]:
            for target in p.get("targets", ()):
                expr = target["expr"].replace("$__rate_interval", "1m").replace(
                    "$instance", ".*")
                body = json.loads(http_get(f"http://{PROM}/api/v1/query?" +
                                           urllib.parse.urlencode({"query": expr})))
                self.assertEqual(body["status"], "success", (p["title"], expr, body))

    def test_d_bad_address_and_port_in_use_are_exit_2(self):
        epmd = os.path.join(BIN, "rpcgate-epmd")
        fwd = os.path.join(BIN, "rpcgate-fwd")
        for prog, args in ((epmd, ["--metrics", "localhost:9135"]),
                           (fwd, ["--allow", ALLOWED, "--metrics", "127.0.0.1"])):
            r = self.t.run(self.t.f, [prog, *args], timeout=20)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("ADDR:PORT", r.stderr)
        # The firewall's metrics port, taken: both daemons refuse to start with exit 2.
        control = os.path.join(self.workdir, "other.sock")
        r = self.t.run(self.t.f, [epmd, "--listen", "127.0.0.1:1135", "--control", control,
                                  "--metrics", FWD_METRICS], timeout=20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"metrics {FWD_METRICS}: cannot listen", r.stdout + r.stderr)
        self.assertFalse(os.path.exists(control), "epmd started listening anyway")
        r = self.t.run(self.t.f, [fwd, "--allow", ALLOWED, "--control", "none",
                                  "--epm-listen-port", "25135", "--pinhole-listen-port", "25136",
                                  "--metrics", FWD_METRICS], timeout=20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"metrics {FWD_METRICS}: cannot listen", r.stderr)


if __name__ == "__main__":
    rpcgate_testlib.main()
