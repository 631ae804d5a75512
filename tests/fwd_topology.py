"""Three network namespaces for the firewall's tests: clients -- firewall -- servers, forwarding
on in the firewall's, as an administrator would put rpcgate-fwd between two networks.

    client ns  c0 10.135.1.2/24, 10.135.1.3/24 (a second client), fd35:1::2/64
       |  veth
    fw ns      f0 10.135.1.1/24 fd35:1::1/64 | f1 10.135.2.1/24 fd35:2::1/64   (ip_forward=1)
       |  veth
    server ns  s0 10.135.2.2/24, fd35:2::2/64

Names carry the test's pid, so tests run in parallel; Topology.close() (and an atexit hook)
deletes the namespaces, which also ends every process still running in them only if it was
started with run()/popen() here (they are killed by close()).
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import time

from rpcgate_testlib import BIN, stop_process, wait_for  # noqa: F401 (wait_for: for tests)

CLIENT = "10.135.1.2"
CLIENT2 = "10.135.1.3"
FW_CLIENT_SIDE = "10.135.1.1"
FW_SERVER_SIDE = "10.135.2.1"
SERVER = "10.135.2.2"
CLIENT6 = "fd35:1::2"
SERVER6 = "fd35:2::2"

ENV = dict(os.environ, PATH="/usr/bin:/bin:/usr/sbin:/sbin")


def available():
    """Why the topology cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool, path=ENV["PATH"]) is None:
            return f"{tool} not installed"
    return None


def _sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, env=ENV)


class Topology:
    def __init__(self, tag=""):
        base = f"rgf{os.getpid()}{tag}"
        self.c, self.f, self.s = base + "c", base + "f", base + "s"
        self.procs = []
        self._closed = False
        atexit.register(self.close)
        for ns in (self.c, self.f, self.s):
            _sh("ip", "netns", "add", ns)
            self.ip(ns, "link", "set", "lo", "up")
        _sh("ip", "link", "add", "c0", "netns", self.c, "type", "veth", "peer", "name", "f0",
            "netns", self.f)
        _sh("ip", "link", "add", "s0", "netns", self.s, "type", "veth", "peer", "name", "f1",
            "netns", self.f)
        self.ip(self.c, "addr", "add", CLIENT + "/24", "dev", "c0")
        self.ip(self.c, "addr", "add", CLIENT2 + "/24", "dev", "c0")
        self.ip(self.c, "-6", "addr", "add", CLIENT6 + "/64", "dev", "c0", "nodad")
        self.ip(self.f, "addr", "add", FW_CLIENT_SIDE + "/24", "dev", "f0")
        self.ip(self.f, "-6", "addr", "add", "fd35:1::1/64", "dev", "f0", "nodad")
        self.ip(self.f, "addr", "add", FW_SERVER_SIDE + "/24", "dev", "f1")
        self.ip(self.f, "-6", "addr", "add", "fd35:2::1/64", "dev", "f1", "nodad")
        self.ip(self.s, "addr", "add", SERVER + "/24", "dev", "s0")
        self.ip(self.s, "-6", "addr", "add", SERVER6 + "/64", "dev", "s0", "nodad")
        for ns, dev in ((self.c, "c0"), (self.f, "f0"), (self.f, "f1"), (self.s, "s0")):
            self.ip(ns, "link", "set", dev, "up")
        self.ip(self.c, "route", "add", "default", "via", FW_CLIENT_SIDE)
        self.ip(self.c, "-6", "route", "add", "default", "via", "fd35:1::1")
        self.ip(self.s, "route", "add", "default", "via", FW_SERVER_SIDE)
        self.ip(self.s, "-6", "route", "add", "default", "via", "fd35:2::1")
        self.sysctl(self.f, "net.ipv4.ip_forward", "1")
        self.sysctl(self.f, "net.ipv6.conf.all.forwarding", "1")
        # The servers' dynamic ports must not be taken by their own outgoing connections.
        self.sysctl(self.s, "net.ipv4.ip_local_port_range", "32768 49151")

    def ip(self, ns, *args):
        return _sh("ip", "-n", ns, *args)

    def sysctl(self, ns, key, value):
        _sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")

    def run(self, ns, args, timeout=60, check=False, **kw):
        """Runs `args` in namespace `ns` to completion: CompletedProcess (text)."""
        return subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True,
                              timeout=timeout, check=check, env=kw.pop("env", ENV), **kw)

    def popen(self, ns, args, **kw):
        """Starts `args` in namespace `ns`; close() kills it if it still runs."""
        kw.setdefault("env", ENV)
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], **kw)
        self.procs.append(p)
        return p

    def nft_json(self, ns=None):
        r = self.run(ns or self.f, ["nft", "-j", "list", "ruleset"])
        return json.loads(r.stdout or "{}")

    def has_table(self, name="rpcgate_fwd", ns=None):
        r = self.run(ns or self.f, ["nft", "list", "table", "inet", name])
        return r.returncode == 0

    def close(self):
        if self._closed:
            return
        self._closed = True
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in (self.c, self.f, self.s):
            _sh("ip", "netns", "del", ns, check=False)


class Firewall:
    """One rpcgate-fwd in namespace `ns` (default: the firewall's) with exactly `args` plus its own
    control socket and JSON decision records in a file under `workdir`."""

    def __init__(self, t, workdir, *args, ns=None):
        self.t = t
        self.ns = ns or t.f
        self.control = os.path.join(workdir, "fwd.sock")
        self.log_path = os.path.join(workdir, f"fwd-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.proc = t.popen(self.ns, [os.path.join(BIN, "rpcgate-fwd"), *args, "--control",
                                      self.control, "--json-log"],
                            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or self.events("start"), 10,
                 "rpcgate-fwd to start")
        assert self.proc.poll() is None, self.text()

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def records(self):
        out = []
        for line in self.text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a partial last line
        return out

    def events(self, event, **match):
        return [r for r in self.records()
                if r.get("event") == event and all(r.get(k) == v for k, v in match.items())]

    def status(self):
        r = self.t.run(self.ns, [os.path.join(BIN, "rpcgate-fwd"), "status", "--json",
                                 "--control", self.control])
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.log.close()
