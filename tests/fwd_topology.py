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


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
