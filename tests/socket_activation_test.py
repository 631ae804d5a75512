#!/usr/bin/python3
"""rpcgate-epmd under socket activation (apps/rpcgate-epmd/activation.h), as systemd's
rpcgate-epmd.socket starts it, with systemd's own `systemd-socket-activate` doing the binding.

In a private network namespace: systemd-socket-activate binds 127.0.0.1:135, [::1]:135 and a
control socket and execs rpcgate-epmd, which is given --listen/--control values of its own that it
must NOT use. Checked with independent tools: Impacket's ept_map answers on the inherited
listeners, a server (rpcgate-echo) takes a port and registers over the inherited control socket,
`ss` shows no listener epmd bound itself, the sd_notify protocol (READY=1, RELOADING=1 around
SIGHUP, STOPPING=1) is read from a NOTIFY_SOCKET of the test's own, and the control socket file,
being systemd's, survives the daemon. A unit that passes what epmd cannot serve (a UDP socket, no
control socket) refuses the start with a message naming it.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

import rpcgate_testlib
from rpcgate_testlib import BIN, ENV, hept_map, stop_process, wait_for

if shutil.which("systemd-socket-activate") is None:
    rpcgate_testlib.skip("needs systemd-socket-activate (package systemd)")
rpcgate_testlib.enter_private_netns("50000-50199")

EPM_UUID = "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
RPCECHO_UUID = "60a15ec5-4de8-11d7-a637-005056a20182"
POLICY = rpcgate_testlib.POLICY


def listeners():
    """Every listening TCP socket in the namespace: {(address, port)}."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        found.add((host.strip("[]"), int(port)))
    return found


class SocketActivation(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rpcgate-activation-")
        self.control = os.path.join(self.dir, "epmd.sock")
        self.unused_control = os.path.join(self.dir, "not-used.sock")
        self.policy = os.path.join(self.dir, "policy.toml")
        with open(self.policy, "w") as f:
            f.write(POLICY)
        self.log_path = os.path.join(self.dir, "epmd.log")
        self.procs = []
        # sd_notify's socket: what systemd reads for Type=notify.
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(10)

    def tearDown(self):
        for p in reversed(self.procs):
            stop_process(p, signal.SIGKILL)
        self.notify.close()
        shutil.rmtree(self.dir)

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def activate(self, sockets, epmd_args=(), notify=True):
        """systemd-socket-activate binding `sockets` (its -l/-d arguments) and exec'ing epmd once
        the first of them sees a client, as systemd starts a service for its socket: this
        connects to it (or sends a datagram) and lets go."""
        # systemd-socket-activate passes the program only LISTEN_* and what -E names.
        setenv = ["-E", f"NOTIFY_SOCKET={self.notify_path}"] if notify else []
        log = open(self.log_path, "w")
        proc = subprocess.Popen(
            ["systemd-socket-activate", "--fdname=rpcgate-epmd.socket", *setenv, *sockets,
             os.path.join(BIN, "rpcgate-epmd"), "--policy", self.policy, "--seed", "1",
             *epmd_args],
            stdout=log, stderr=subprocess.STDOUT, env=ENV)
        log.close()
        self.procs.append(proc)
        # "Listening on ADDRESS as FD." once per socket, then it waits for a client.
        count = sockets.count("-l")
        wait_for(lambda: self.read_log().count("Listening on ") == count, 10,
                 "systemd-socket-activate to listen")
        first = sockets[sockets.index("-l") + 1]
        self.assertTrue(self.poke(first, datagram="-d" in sockets), self.read_log())
        return proc

    @staticmethod
    def poke(address, datagram):
        if address.startswith("/"):
            family, target = socket.AF_UNIX, address
        else:
            host, _, port = address.rpartition(":")
            family, target = socket.AF_INET, (host, int(port))
        with socket.socket(family, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM) as c:
            try:
                if datagram:
                    c.sendto(b"x", target)
                else:
                    c.connect(target)
            except OSError:
                return False
        return True

    def next_notification(self):
        try:
            return self.notify.recv(4096).decode()
        except TimeoutError:
            raise AssertionError("no sd_notify message within 10 s; log:\n" + self.read_log())

    def test_serves_inherited_sockets_and_binds_none_itself(self):
        epmd = self.activate(
            ["-l", "127.0.0.1:135", "-l", "[::1]:135", "-l", self.control],
            ["--listen", "127.0.0.1:1135", "--control", self.unused_control])
        # READY=1 comes once it serves (Type=notify): only then may systemd call it started.
        self.assertIn("READY=1", self.next_notification())
        log = self.read_log()
        self.assertIn("socket activation: serving the inherited fd 3 (rpcgate-epmd.socket), "
                      "fd 4 (rpcgate-epmd.socket), fd 5 (rpcgate-epmd.socket)", log)
        self.assertIn("listening on 127.0.0.1:135, [::1]:135; control " + self.control, log)

        # Impacket's ept_map over the inherited IPv4 listener: the endpoint mapper itself.
        self.assertEqual(hept_map(EPM_UUID, version="3.0"), "ncacn_ip_tcp:127.0.0.1[135]")

        # A server takes a port from the broker over the inherited control socket and registers.
        echo = subprocess.Popen([os.path.join(BIN, "rpcgate-echo"), "--control", self.control,
                                 "--class", "internet"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(echo)
        line = echo.stdout.readline()
        self.assertTrue(line.startswith("port="), f"rpcgate-echo said {line!r}")
        port = int(line.split("=")[1])
        self.assertIn(port, range(50000, 50100))
        self.assertEqual(hept_map(RPCECHO_UUID), f"ncacn_ip_tcp:127.0.0.1[{port}]")

        # What listens: the inherited sockets and the brokered port, nothing on --listen's
        # address, no file at --control's path.
        self.assertEqual(listeners(),
                         {("127.0.0.1", 135), ("::1", 135), ("0.0.0.0", port), ("::", port)})
        self.assertFalse(os.path.exists(self.unused_control))

        # Reload and stop, as systemctl reload / stop: the notifications systemd waits for.
        epmd.send_signal(signal.SIGHUP)
        self.assertEqual(self.next_notification(), "RELOADING=1")
        self.assertEqual(self.next_notification(), "READY=1")
        wait_for(lambda: "SIGHUP: policy" in self.read_log(), 10, "the reload to be logged")
        stop_process(echo)
        echo.stdout.close()
        epmd.send_signal(signal.SIGTERM)
        self.assertEqual(self.next_notification(), "STOPPING=1")
        self.assertEqual(epmd.wait(10), 0, self.read_log())
        # The control socket is systemd's: epmd closed it but left the file.
        self.assertTrue(os.path.exists(self.control))

    def refused(self, sockets, expected):
        epmd = self.activate(sockets, notify=False)
        self.assertEqual(epmd.wait(10), 1, self.read_log())
        self.assertIn(expected, self.read_log())

    def test_a_datagram_socket_is_refused(self):
        # (-d makes every socket systemd-socket-activate binds a datagram one.)
        self.refused(["-d", "-l", "127.0.0.1:135"],
                     "socket activation: inherited fd 3 (rpcgate-epmd.socket): not a listening "
                     "TCP or Unix stream socket")

    def test_no_control_socket_is_refused(self):
        self.refused(["-l", "127.0.0.1:135"],
                     "socket activation: no listening Unix socket among the 1 inherited")

    def test_no_tcp_listener_is_refused(self):
        self.refused(["-l", self.control],
                     "socket activation: no listening TCP socket among the 1 inherited")


if __name__ == "__main__":
    rpcgate_testlib.main()
