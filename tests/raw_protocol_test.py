"""Samba's raw-PDU conformance suite (samba.tests.dcerpc.raw_protocol, Debian python3-samba)
against the real rpcgate-epmd on 127.0.0.1:135 in a private network namespace.

The suite's expectations were checked against Windows servers. tests/data/raw_protocol/
expected_pass.txt lists the tests that must pass (one test method name a line, '#' comments):
a listed test that does not pass fails this test (a regression); a test that passes but is not
listed is reported (an improvement: add it to the file).

Environment: RAW_PROTOCOL_TIMEOUT (seconds for the whole suite, default 120).
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpcgate_testlib as lib  # noqa: E402

lib.enter_private_netns("50000-50199")

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "data", "raw_protocol", "expected_pass.txt")
MODULE = "samba.tests.dcerpc.raw_protocol"
PY = "/usr/bin/python3"  # Debian's: python3-samba lives there
TIMEOUT = int(os.environ.get("RAW_PROTOCOL_TIMEOUT", "120"))


def read_expected():
    names = set()
    with open(EXPECTED) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.add(line)
    return names


def parse_subunit_v1(text):
    """{test method name: outcome} from subunit v1 text ('success: id', 'failure: id [' ...)."""
    outcomes = {}
    for m in re.finditer(r"^(success|successful|failure|error|skip|xfail|uxsuccess): (\S+)",
                         text, re.M):
        kind, test_id = m.group(1), m.group(2)
        name = test_id.rsplit(".", 1)[-1]
        outcomes[name] = "success" if kind in ("success", "successful") else kind
    return outcomes


def main():
    if subprocess.run([PY, "-c", "import " + MODULE], capture_output=True).returncode != 0:
        print(f"FAIL: {PY} cannot import {MODULE}: apt-get install python3-samba (make deps)")
        return 1
    expected = read_expected()
    with tempfile.TemporaryDirectory(prefix="raw_protocol.") as work:
        # A minimal smb.conf: the suite reads it for its loadparm context; every path in `work`.
        smb_conf = os.path.join(work, "smb.conf")
        for d in ("lock", "state", "cache", "private", "pid"):
            os.makedirs(os.path.join(work, d))
        with open(smb_conf, "w") as f:
            f.write("[global]\n  workgroup = D\n  realm = D.LOCAL\n"
                    "  server role = standalone server\n")
            for d in ("lock", "state", "cache", "pid"):
                f.write(f"  {d} directory = {work}/{d}\n")
            f.write(f"  private dir = {work}/private\n")
        daemon = lib.Daemon(work, "epmd", lib.POLICY)
        try:
            env = dict(lib.ENV, SERVER="127.0.0.1", USERNAME="u", PASSWORD="p", DOMAIN="D",
                       REALM="D.LOCAL", SMB_CONF_PATH=smb_conf)
            run = subprocess.run([PY, "-m", "samba.subunit.run", MODULE], env=env, cwd=work,
                                 capture_output=True, text=True, timeout=TIMEOUT)
            alive = daemon.proc.poll() is None
        finally:
            daemon.stop()
            log = daemon.read_log()
    outcomes = parse_subunit_v1(run.stdout)
    if len(outcomes) < 100:
        print(f"FAIL: the suite reported {len(outcomes)} outcomes (exit {run.returncode})")
        print(run.stdout[-2000:], run.stderr[-2000:])
        return 1
    passed = {n for n, o in outcomes.items() if o == "success"}
    missing = sorted(expected - passed)
    new = sorted(passed - expected)
    print(f"raw_protocol: {len(passed)} of {len(outcomes)} pass; {len(expected)} expected")
    ok = True
    if not alive:
        print("FAIL: rpcgate-epmd died during the suite\n" + log[-3000:])
        ok = False
    if missing:
        ok = False
        print(f"FAIL: {len(missing)} expected test(s) no longer pass:")
        for name in missing:
            print(f"  {name}: {outcomes.get(name, 'not run')}")
            m = re.search(r"^(?:failure|error): \S+\." + re.escape(name) + r" \[\n(.*?)^\]",
                          run.stdout, re.S | re.M)
            if m:
                print("    " + m.group(1).strip().splitlines()[-1])
    if new:
        print(f"NOTE: {len(new)} test(s) pass that {os.path.relpath(EXPECTED, HERE)} does not "
              "list (an improvement: add them):")
        for name in new:
            print(f"  {name}")
    if "ERROR" in log or "critical" in log:
        print("NOTE: the daemon logged errors:\n" + log[-2000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
