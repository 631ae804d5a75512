"""Helpers shared by the integration tests that run the real daemons (epmd_test.py,
client_cli_test.py): a private network namespace, bounded waits, rpcgate-epmd and
rpcgate-testsrv processes.

Import this first and call enter_private_netns() before anything else: it re-executes the test
under `unshare -n` as root (so the endpoint mapper can listen on 127.0.0.1:135, which Impacket's
rpcdump.py insists on, without touching the host), or exits 0 with SKIP when that is impossible.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

BIN = os.environ.get("RPCGATE_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
EXAMPLES = "/usr/share/doc/python3-impacket/examples"
# Impacket lives in Debian's python3 (/usr/bin), not in a pyenv one that may come first in PATH.
ENV = dict(os.environ, PATH="/usr/bin:/bin:/usr/sbin:/sbin")


def enter_private_netns(reserved_ports):
    """Re-executes the running script in a new network namespace (once), brings lo up and
    reserves `reserved_ports` (ip_local_reserved_ports syntax) so the kernel does not give the
    test pools to our own outgoing connections (the namespace's ephemeral range 32768-60999
    covers them): what `rpcgate policy export --format sysctl` is for."""
    if os.environ.get("RPCGATE_IN_NETNS") != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            print("SKIP: needs root and unshare for a private network namespace")
            sys.exit(0)
        os.execvpe("unshare", ["unshare", "-n", sys.executable, *sys.argv],
                   dict(os.environ, RPCGATE_IN_NETNS="1"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_reserved_ports", "w") as f:
        f.write(reserved_ports)


# The pools most tests use: Internet 50000-50099, intranet 50100-50199 (the rest of the dynamic
# range), default class intranet. Reserve them with enter_private_netns("50000-50199").
POLICY = """[policy]
ports = ["50000-50099"]
ports_internet_available = "Y"
use_internet_ports = "N"
dynamic_range = "50000-50199"
"""
INTERNET = range(50000, 50100)
INTRANET = range(50100, 50200)


def hept_map(uuid, port=135, version="1.0"):
    """Impacket's ept_map for ncacn_ip_tcp on 127.0.0.1:port (the binding keeps the dialled host)."""
    from impacket.dcerpc.v5 import epm, transport
    from impacket.uuid import uuidtup_to_bin
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    t.set_connect_timeout(5)
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        return epm.hept_map("127.0.0.1", uuidtup_to_bin((uuid, version)), protocol="ncacn_ip_tcp",
                            dce=dce)
    finally:
        dce.disconnect()


def hept_lookup(port=135):
    """Every entry, paged by Impacket's ept_lookup."""
    from impacket.dcerpc.v5 import epm, transport
    t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:127.0.0.1[{port}]")
    dce = t.get_dce_rpc()
    dce.connect()
    try:
        return epm.hept_lookup(None, dce=dce)
    finally:
        dce.disconnect()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc, sig=signal.SIGTERM, timeout=5):
    """Sends `sig` if `proc` still runs and waits for it; kills it after `timeout` s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

class Daemon:
    """One rpcgate-epmd with its own policy, listener and control socket."""

    def __init__(self, workdir, name, policy_text, port=135, extra=(), preexec_fn=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.policy = os.path.join(self.dir, "rpcgate.toml")
        with open(self.policy, "w") as f:
            f.write(policy_text)
        self.control = os.path.join(self.dir, "epmd.sock")
        self.log_path = os.path.join(self.dir, "epmd.log")
        self.port = port
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "rpcgate-epmd"), "--policy", self.policy, "--listen",
             f"127.0.0.1:{port}", "--control", self.control, "--seed", "1", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
        wait_for(lambda: "listening on" in self.read_log() or self.proc.poll() is not None, 10,
                 "rpcgate-epmd to listen")
        assert self.proc.poll() is None, self.read_log()

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)
        self.log.close()


class Server:
    """rpcgate-testsrv registered with a daemon: a dynamic port of a class, or a static port.
    `uuid` v1.0, or with `interfaces` ["UUID:M.m", ...] every one of them on the one port."""

    def __init__(self, daemon, uuid, annotation, port_class=None, static_port=None,
                 interfaces=None):
        args = [os.path.join(BIN, "rpcgate-testsrv"), "--epmd", daemon.control]
        if interfaces:
            for spec in interfaces:
                args += ["--interface", spec]
        else:
            args += ["--uuid", uuid, "--version", "1.0"]
        args += ["--annotation", annotation]
        if port_class is not None:
            args += ["--class", port_class]
        else:
            args += ["--port", str(static_port or 0), "--listen", "127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()  # "port=N", or EOF when it fails
        self.port = int(line.split("=", 1)[1]) if line.startswith("port=") else None

    def exit_status(self, timeout=5):
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.proc.stdout.close()
        self.proc.stderr.close()
