#!/usr/bin/python3
"""Who may register with rpcgate-epmd, attacked as a local user who is not root (issue 10, items
2, 3, 6 and 7): `nobody` over loopback TCP and over the control socket, a `nobody` process that
tries to take every control-socket slot, and control socket directories another user controls.

The daemon and rpcgate-testsrv are the real binaries, in a private network namespace; the
attacker is a separate process run with `setpriv --reuid=65534` (this very script in "client"
mode, speaking EPM with Impacket). Every wait is bounded; every process is stopped in tearDown.
"""
import grp
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

CANT_PERFORM_OP = 0x16C9A0CD  # ept_s_cant_perform_op
NOBODY = 65534
SETPRIV_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
ALPHA = "11111111-2222-3333-4444-5555555555a1"
BETA = "11111111-2222-3333-4444-5555555555a2"


def epm_calls(port_135, uuid, port):
    """ept_insert (replace), ept_delete and ept_mgmt_delete of `uuid` at `port` over one loopback
    TCP connection. Returns {call: status}."""
    from rpcgate_testlib import ept_delete, ept_insert, ept_mgmt_delete, epm_dce, tower_bytes
    tower = tower_bytes(uuid, port)
    dce = epm_dce(tcp=("127.0.0.1", port_135))
    try:
        return {"insert": ept_insert(dce, [(tower, "attack")], replace=True),
                "delete": ept_delete(dce, [(tower, "attack")]),
                "mgmt_delete": ept_mgmt_delete(dce, tower)}
    finally:
        dce.disconnect()


def hold_control_connections(path, count, seconds):
    """Opens `count` connections to the control socket, waits, then reports how many the daemon
    left open (refused ones are closed at once: recv sees EOF)."""
    conns, errors = [], []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            conns.append(s)
        except OSError as e:
            errors.append(e.errno)
            s.close()
    time.sleep(seconds)
    held = 0
    for s in conns:
        s.setblocking(False)
        try:
            held += s.recv(1) != b""
        except BlockingIOError:
            held += 1  # nothing to read: still open
        except OSError:
            pass
    print(json.dumps({"held": held, "connect_errors": errors}), flush=True)
    sys.stdin.read()  # keep them until the test is done


if __name__ == "__main__" and sys.argv[1:2] == ["client"]:
    # The attacker's side, run as nobody inside the test's namespace.
    if sys.argv[2] == "epm":
        print(json.dumps(epm_calls(int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))))
    elif sys.argv[2] == "connect":
        try:
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(sys.argv[3])
            print(json.dumps({"connected": True}))
        except OSError as e:
            print(json.dumps({"connected": False, "errno": e.errno}))
    elif sys.argv[2] == "hold":
        hold_control_connections(sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    sys.exit(0)

import rpcgate_testlib  # noqa: E402
from rpcgate_testlib import (BIN, INTERNET, POLICY, Daemon, Server, WorkdirCase,  # noqa: E402
                             mapped, stop_process, wait_for)

rpcgate_testlib.enter_private_netns("50000-50199")


HERE = os.path.abspath(__file__)
GROUP = "rpcgate-regtest"
USER = "rpcgate-regtestu"


def as_nobody(*args, timeout=20):
    r = subprocess.run([*SETPRIV_NOBODY, "/usr/bin/python3", HERE, "client", *args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout.splitlines()[-1])


class Registrants(WorkdirCase):
    WORKDIR_PREFIX = "rpcgate-registrants-"

    def daemon(self, name, *extra):
        d = Daemon(self.workdir, name, POLICY, extra=extra)
        self.cleanup.append(d.stop)
        return d

    def server(self, daemon, uuid):
        s = Server(daemon, uuid, "srv", port_class="internet")
        self.cleanup.append(lambda: s.stop(signal.SIGKILL))
        return s

    # -- loopback TCP ---------------------------------------------------------------------------

    def test_nobody_over_loopback_tcp_may_not_register_or_delete_by_default(self):
        d = self.daemon("tcp-default")
        root_srv = self.server(d, ALPHA)
        self.assertIn(root_srv.port, INTERNET)
        # The attack: as nobody, replace root's registration with port 6666, then delete it.
        got = as_nobody("epm", "135", ALPHA, "6666")
        self.assertEqual(got, {"insert": CANT_PERFORM_OP, "delete": CANT_PERFORM_OP,
                               "mgmt_delete": CANT_PERFORM_OP})
        self.assertEqual(mapped(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{root_srv.port}]")
        # epmd's own entry stays.
        self.assertEqual(mapped("e1af8308-5d1f-11c9-91a4-08002b14a0fa", "3.0"),
                         "ncacn_ip_tcp:127.0.0.1[135]")
        # Root over loopback TCP still may (tcp_registration stays on by default).
        got = epm_calls(135, BETA, 50150)
        self.assertEqual(got, {"insert": 0, "delete": 0, "mgmt_delete": 0x16C9A0D6}, got)

    def test_a_listed_user_may_register_over_loopback_tcp(self):
        self.daemon("tcp-listed", "--registrant", "root", "--registrant", "nobody")
        got = as_nobody("epm", "135", BETA, "50151")
        # Inserted, then deleted (so ept_mgmt_delete finds nothing: ept_s_not_registered).
        self.assertEqual(got, {"insert": 0, "delete": 0, "mgmt_delete": 0x16C9A0D6}, got)

    def test_no_tcp_registration_refuses_even_root(self):
        self.daemon("tcp-off", "--no-tcp-registration")
        self.assertEqual(epm_calls(135, BETA, 50152)["insert"], CANT_PERFORM_OP)

    # -- control socket -------------------------------------------------------------------------

    def test_nobody_cannot_connect_to_the_control_socket_by_default(self):
        d = self.daemon("unix-default")
        st = os.stat(d.control)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual(st.st_uid, 0)  # epmd's user
        got = as_nobody("connect", d.control)
        self.assertEqual(got, {"connected": False, "errno": 13})  # EACCES
        # Nor through the broker: rpcgate-testsrv as nobody fails (its exit status is not 0).
        r = subprocess.run([*SETPRIV_NOBODY, os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                            d.control, "--uuid", ALPHA, "--version", "1.0", "--class",
                            "internet"], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIsNone(mapped(ALPHA))

    def test_a_listed_user_registers_over_the_control_socket(self):
        d = self.daemon("unix-listed", "--registrant", "nobody")
        self.assertIn("neither epmd's user nor in the control socket's group", d.read_log())
        self.assertEqual(os.stat(d.control).st_mode & 0o777, 0o666)
        port, why = self.nobody_server(d, ALPHA)
        self.assertIsNotNone(port, why)
        self.assertIn(port, INTERNET)
        self.assertEqual(mapped(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{port}]")

    def nobody_server(self, daemon, uuid):
        """rpcgate-testsrv as nobody taking an Internet port from the broker; its port, or None
        when it failed (and then its stderr)."""
        srv = subprocess.Popen([*SETPRIV_NOBODY, os.path.join(BIN, "rpcgate-testsrv"), "--epmd",
                                daemon.control, "--uuid", uuid, "--version", "1.0", "--class",
                                "internet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        self.cleanup.append(lambda: stop_process(srv, signal.SIGKILL))
        line = srv.stdout.readline()
        if line.startswith("port="):
            return int(line.split("=", 1)[1]), ""
        srv.wait(10)
        return None, srv.stderr.read()

    def test_one_uid_cannot_hold_more_broker_ports_than_its_budget(self):
        d = self.daemon("ports-per-uid", "--registrant", "nobody", "--max-ports-per-uid", "2")
        held = [self.nobody_server(d, f"11111111-2222-3333-4444-5555555555b{i}")
                for i in range(3)]
        self.assertIn(held[0][0], INTERNET, held[0])
        self.assertIn(held[1][0], INTERNET, held[1])
        # The third is refused with 1721 (RPC_S_OUT_OF_RESOURCES), the log names the budget.
        self.assertIsNone(held[2][0])
        self.assertIn("1721", held[2][1])
        wait_for(lambda: "max_ports_per_uid 2 (uid 65534 holds 2)" in d.read_log(), 5,
                 "the refusal naming the budget")
        self.assertIsNone(mapped("11111111-2222-3333-4444-5555555555b2"))
        # Root is not held to it, and the Internet pool is far from empty.
        root_srv = self.server(d, ALPHA)
        self.assertIn(root_srv.port, INTERNET)

    def test_a_listed_group_registers_and_owns_the_socket(self):
        for leftover in (["userdel", USER], ["groupdel", GROUP]):  # of an interrupted run
            subprocess.run(leftover, capture_output=True)
        subprocess.run(["groupadd", GROUP], check=True)
        self.cleanup.append(lambda: subprocess.run(["groupdel", GROUP]))
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--groups", GROUP, USER], check=True)
        self.cleanup.append(lambda: subprocess.run(["userdel", USER]))
        member = pwd.getpwnam(USER)
        group = grp.getgrnam(GROUP)
        d = self.daemon("unix-group", "--registrant", "@" + GROUP)
        st = os.stat(d.control)
        self.assertEqual((st.st_mode & 0o777, st.st_gid), (0o660, group.gr_gid))
        # nobody is not a member: cannot even connect.
        self.assertEqual(as_nobody("connect", d.control), {"connected": False, "errno": 13})
        # A member by supplementary group (its primary group is another one) registers.
        srv = subprocess.Popen(["setpriv", f"--reuid={member.pw_uid}",
                                f"--regid={member.pw_gid}", "--init-groups",
                                os.path.join(BIN, "rpcgate-testsrv"), "--epmd", d.control,
                                "--uuid", BETA, "--version", "1.0", "--class", "internet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.cleanup.append(lambda: stop_process(srv, signal.SIGKILL))
        line = srv.stdout.readline()
        self.assertTrue(line.startswith("port="), line)
        self.assertEqual(mapped(BETA), f"ncacn_ip_tcp:127.0.0.1[{line.split('=')[1].strip()}]")

    def test_one_uid_cannot_take_every_control_socket_slot(self):
        d = self.daemon("slots", "--registrant", "nobody")
        hog = subprocess.Popen([*SETPRIV_NOBODY, "/usr/bin/python3", HERE, "client", "hold",
                                d.control, "140", "1.0"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        self.cleanup.append(lambda: stop_process(hog, signal.SIGKILL))
        got = json.loads(hog.stdout.readline())
        self.assertEqual(got, {"held": 32, "connect_errors": []})
        # Root's server still registers while nobody holds its 32.
        srv = self.server(d, ALPHA)
        self.assertIn(srv.port, INTERNET)
        self.assertEqual(mapped(ALPHA), f"ncacn_ip_tcp:127.0.0.1[{srv.port}]")
        wait_for(lambda: "max_local_connections_per_uid" in d.read_log(), 15,
                 "the refusal summary")
        line = [l for l in d.read_log().splitlines() if "refused" in l][0]
        self.assertIn("refused 108 connection(s)", line)
        self.assertIn("108 over max_local_connections_per_uid 32", line)
        self.assertNotIn("over max_connections ", line)

    # -- the socket's directory, --user nobody ---------------------------------------------------

    def start_failing(self, control, *extra):
        """The daemon's exit status and its log (stdout and stderr together)."""
        return subprocess.run([os.path.join(BIN, "rpcgate-epmd"), "--listen", "127.0.0.1:135",
                               "--control", control, *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=20)

    def test_a_socket_directory_another_user_controls_is_refused(self):
        foreign = os.path.join(self.workdir, "foreign")
        os.mkdir(foreign)
        os.chown(foreign, NOBODY, NOBODY)
        r = self.start_failing(os.path.join(foreign, "epmd.sock"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"control socket directory {foreign}: owned by uid {NOBODY}", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(foreign, "epmd.sock")))
        # Even a directory it would create below the foreign one.
        r = self.start_failing(os.path.join(foreign, "sub", "epmd.sock"))
        self.assertEqual(r.returncode, 1, r.stdout)
        open_dir = os.path.join(self.workdir, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        r = self.start_failing(os.path.join(open_dir, "epmd.sock"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"control socket directory {open_dir}: owned by uid 0, mode 0777", r.stdout)
        # Sticky, as /tmp: others cannot rename or remove what is ours.
        os.chmod(open_dir, 0o1777)
        log = open(os.path.join(self.workdir, "sticky.log"), "w")
        p = subprocess.Popen([os.path.join(BIN, "rpcgate-epmd"), "--listen", "127.0.0.1:135",
                              "--control", os.path.join(open_dir, "epmd.sock")],
                             stdout=log, stderr=subprocess.STDOUT)
        self.cleanup.append(lambda: (stop_process(p), log.close()))

        def started():
            with open(log.name) as f:
                return "listening on" in f.read() or p.poll() is not None
        wait_for(started, 10, "rpcgate-epmd to listen")
        self.assertIsNone(p.poll())

    def test_user_nobody_is_warned_about(self):
        d = self.daemon("as-nobody", "--user", "nobody")
        self.assertIn("every process running as uid 65534", d.read_log())
        st = os.stat(d.control)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (NOBODY, 0o600))


if __name__ == "__main__":
    rpcgate_testlib.main()
