#!/usr/bin/python3
"""`rpcgate status` against the real rpcgate-epmd (issue 15): who holds which port and what it
serves, asked over the control socket.

- Three registered servers taking ports from the broker (rpcgate-echo, and two rpcgate-testsrv
  with interfaces of their own), one killed with kill -9: `rpcgate status --json` lists the two
  others with their Popen pids, the ports they printed - the ports Impacket's hept_map and
  `rpcgate map` return for their interfaces - and those interfaces; the killed one is gone; each
  pool's held count equals the ports listed in that class; `--port N` answers for one port.
- Three rpcgate-echo instances: the same interface registered three times at 0.0.0.0 replaces
  itself (DCE's replace rule), and the status shows exactly that: three leases with their ports,
  the interface under the last one only, which is where hept_map sends clients.
- Refusals: `nobody` gets "permission denied" (exit 4), not data, both when the socket's mode
  keeps it out and when it may connect but is not a registrant; a daemon that is not running is
  exit 3.

Private network namespace; every wait bounded; every process started here stopped in tearDown.
"""
import json
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import (BIN, INTERNET, INTRANET, POLICY, Daemon, WorkdirCase,  # noqa: E402
                             mapped, stop_process, wait_for)

rpcgate_testlib.enter_private_netns("50000-50199")


ECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
ALPHA = "11111111-2222-3333-4444-5555555555c1"
BETA = "11111111-2222-3333-4444-5555555555c2"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def rpcgate(*args, user=None, timeout=15):
    return subprocess.run([*(user or []), os.path.join(BIN, "rpcgate"), *args],
                          capture_output=True, text=True, timeout=timeout)


class Proc:
    """A registered server: rpcgate-echo or rpcgate-testsrv, its pid and the port it printed."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()  # "port=N" once it serves and is registered
        assert line.startswith("port="), (line, self.proc.stderr.read())
        self.port = int(line.split("=", 1)[1])
        self.pid = self.proc.pid

    def stop(self, sig=signal.SIGKILL):
        stop_process(self.proc, sig)
        self.proc.stdout.close()
        self.proc.stderr.close()


class Base(WorkdirCase):
    WORKDIR_PREFIX = "rpcgate-status-"

    def daemon(self, name="d", extra=()):
        d = Daemon(self.workdir, name, POLICY, extra=extra)
        self.cleanup.append(d.stop)
        return d

    def echo(self, d, port_class, annotation):
        p = Proc([os.path.join(BIN, "rpcgate-echo"), "--control", d.control, "--class",
                  port_class, "--annotation", annotation])
        self.cleanup.append(p.stop)
        return p

    def start_testsrv(self, d, uuid, port_class, annotation):
        p = Proc([os.path.join(BIN, "rpcgate-testsrv"), "--epmd", d.control, "--uuid", uuid,
                  "--version", "1.0", "--annotation", annotation, "--class", port_class])
        self.cleanup.append(p.stop)
        return p

    def status(self, d, *args):
        r = rpcgate("status", "--control", d.control, "--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def assert_pools_match(self, s):
        """Each pool's held count is the number of listed ports of its class (the test policy's
        classes do not overlap)."""
        listed = {"internet": 0, "intranet": 0}
        for lease in s["leases"]:
            for p in lease["ports"]:
                listed[p["class"]] += 1
        pools = {p["class"]: p for p in s["pools"]}
        self.assertEqual(set(pools), {"internet", "intranet"})
        for cls, size in (("internet", len(INTERNET)), ("intranet", len(INTRANET))):
            self.assertEqual(pools[cls]["held"], listed[cls], (cls, s))
            self.assertEqual(pools[cls]["size"], size)
            self.assertEqual(pools[cls]["free"], size - listed[cls])


class Status(Base):
    def test_three_servers_one_killed(self):
        d = self.daemon()
        echo = self.echo(d, "internet", "status echo")
        alpha = self.start_testsrv(d, ALPHA, "intranet", "alpha")
        beta = self.start_testsrv(d, BETA, "default", "beta")  # default class: intranet here
        servers = {echo.pid: (echo, ECHO, "status echo", "internet"),
                   alpha.pid: (alpha, ALPHA, "alpha", "intranet"),
                   beta.pid: (beta, BETA, "beta", "intranet")}
        s = self.status(d)
        self.assertEqual(sorted(lease["pid"] for lease in s["leases"]), sorted(servers))
        self.assert_pools_match(s)

        alpha.proc.kill()  # kill -9: the lease ends with its connection
        alpha.proc.wait(5)
        wait_for(lambda: len(self.status(d)["leases"]) == 2, 2.0, "the killed server's lease to go")
        s = self.status(d)
        self.assertFalse(s["truncated"])
        self.assertEqual(sorted(lease["pid"] for lease in s["leases"]), sorted([echo.pid, beta.pid]))
        self.assertIsNone(mapped(ALPHA))
        for lease in s["leases"]:
            proc, uuid, annotation, cls = servers[lease["pid"]]
            self.assertEqual(lease["uid"], os.geteuid())
            self.assertEqual(lease["command"], os.path.basename(proc.proc.args[0])[:15])
            self.assertEqual([(p["port"], p["class"]) for p in lease["ports"]], [(proc.port, cls)])
            self.assertEqual([(i["uuid"], i["version"], i["annotation"], i["binding"])
                              for i in lease["interfaces"]],
                             [(uuid, "1.0", annotation, f"ncacn_ip_tcp:0.0.0.0[{proc.port}]")])
            # The port the status names is where the endpoint mapper sends clients: Impacket's
            # hept_map and `rpcgate map` agree.
            self.assertEqual(mapped(uuid), f"ncacn_ip_tcp:127.0.0.1[{proc.port}]")
            m = rpcgate("map", "127.0.0.1", uuid)
            self.assertEqual(m.stdout.strip(), f"ncacn_ip_tcp:127.0.0.1[{proc.port}]", m.stderr)
            self.assertLessEqual(lease["since"], s["now"])
            self.assertGreater(lease["since"], s["now"] - 60)
        self.assert_pools_match(s)
        # epmd's own entry is listed apart, as epmd's.
        self.assertIn(("epmd", None, "e1af8308-5d1f-11c9-91a4-08002b14a0fa"),
                      [(r["kind"], r["uid"], r["uuid"]) for r in s["registrations"]])

        # One port, one line: who holds it and what it serves.
        r = rpcgate("status", "--control", d.control, "--port", str(beta.port))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(),
                         rf"^port {beta.port} \(intranet\): pid {beta.pid} uid {os.geteuid()} "
                         rf"rpcgate-testsrv, since [0-9-]+ [0-9:]+, serves {BETA} v1\.0 \"beta\"$")
        self.assertEqual(len(r.stdout.splitlines()), 1)
        only = self.status(d, "--port", str(echo.port))
        self.assertEqual([lease["pid"] for lease in only["leases"]], [echo.pid])
        r = rpcgate("status", "--control", d.control, "--port", str(alpha.port))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("no server holds it", r.stdout)

        # The table names the same things.
        r = rpcgate("status", "--control", d.control)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"\n{echo.pid} +{os.geteuid()} +rpcgate-echo +{echo.port} "
                                   rf"+internet .*{ECHO} v1\.0 \"status echo\"")
        self.assertNotIn(str(alpha.pid), r.stdout)
        self.assertRegex(r.stdout, r"internet +size 100 +held 1 +free 99")

    def test_three_echo_instances_replace_each_others_registration(self):
        d = self.daemon()
        echoes = [self.echo(d, cls, f"echo {i}")
                  for i, cls in enumerate(("internet", "intranet", "internet"))]
        s = self.status(d)
        by_pid = {lease["pid"]: lease for lease in s["leases"]}
        self.assertEqual(sorted(by_pid), sorted(e.pid for e in echoes))
        for e in echoes:
            self.assertEqual([p["port"] for p in by_pid[e.pid]["ports"]], [e.port])
        # One interface at 0.0.0.0 three times: each insert replaced the previous one's entry, so
        # only the last server is registered - the status says so, and clients go there.
        self.assertEqual([len(by_pid[e.pid]["interfaces"]) for e in echoes], [0, 0, 1])
        self.assertEqual(mapped(ECHO), f"ncacn_ip_tcp:127.0.0.1[{echoes[2].port}]")
        self.assert_pools_match(s)
        echoes[1].proc.kill()
        echoes[1].proc.wait(5)
        wait_for(lambda: len(self.status(d)["leases"]) == 2, 2.0, "the killed echo's lease to go")
        s = self.status(d)
        self.assertEqual(sorted(lease["pid"] for lease in s["leases"]),
                         sorted([echoes[0].pid, echoes[2].pid]))
        self.assert_pools_match(s)
        self.assertEqual(mapped(ECHO), f"ncacn_ip_tcp:127.0.0.1[{echoes[2].port}]")


class Refusals(Base):
    def test_nobody_may_not_connect_to_a_closed_socket(self):
        d = self.daemon()
        self.assertEqual(os.stat(d.control).st_mode & 0o777, 0o600)
        self.echo(d, "internet", "secret")
        r = rpcgate("status", "--control", d.control, "--json", user=NOBODY)
        self.assertEqual(r.returncode, 4, (r.stdout, r.stderr))
        self.assertEqual(r.stdout, "")
        self.assertIn("permission denied", r.stderr)
        self.assertIn("uid 65534", r.stderr)

    def test_nobody_connects_to_an_open_socket_and_is_refused(self):
        # A listed registrant outside epmd's group makes the socket 0666 (README "Security"):
        # nobody may connect, and epmd answers it status 5, no data.
        d = self.daemon(extra=("--registrant", "daemon"))
        self.assertEqual(os.stat(d.control).st_mode & 0o777, 0o666)
        echo = self.echo(d, "internet", "secret")
        r = rpcgate("status", "--control", d.control, "--json", user=NOBODY)
        self.assertEqual(r.returncode, 4, (r.stdout, r.stderr))
        self.assertEqual(r.stdout, "")
        self.assertIn("refused QueryStatus", r.stderr)
        self.assertNotIn(str(echo.port), r.stderr)
        # Root, a registrant, still sees it.
        self.assertEqual([lease["pid"] for lease in self.status(d)["leases"]], [echo.pid])

    def test_not_running(self):
        missing = os.path.join(self.workdir, "none.sock")
        r = rpcgate("status", "--control", missing)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn(f"rpcgate-epmd is not running: no socket at {missing}", r.stderr)
        stale = os.path.join(self.workdir, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)  # a socket file nobody listens on, as a crashed daemon leaves
        self.cleanup.append(s.close)
        r = rpcgate("status", "--control", stale)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("nothing listens on", r.stderr)


if __name__ == "__main__":
    rpcgate_testlib.main()
