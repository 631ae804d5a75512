"""The keys each table of rpcgate.toml accepts, asked of the built programs themselves: each is
fed a table with one unknown key and must refuse it, naming the keys it knows ("valid keys: ..."
or "known: ..."). So the lists the tests compare the man page and the shipped conffile with are
the code's, not a copy that could drift (tests/man_pages_test.py, tests/conffile_test.py).
"""
import os
import re
import subprocess
import tempfile

BIN = os.environ.get("RPCGATE_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "bin"))
SOURCE = os.environ.get("RPCGATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))

PROBE_KEY = "zz_rpcgate_probe_key"

# table -> (TOML text holding one unknown key, the command that reads that table).
_PROBES = {
    "policy": (f"[policy]\n{PROBE_KEY} = 1\n", ["rpcgate", "policy", "check"]),
    "epmd": (f"[epmd]\n{PROBE_KEY} = 1\n", ["rpcgate-epmd", "--config"]),
    "epmd.entry": (f"[[epmd.entry]]\n{PROBE_KEY} = 1\n", ["rpcgate-epmd", "--config"]),
    "firewall": (f"[firewall]\n{PROBE_KEY} = 1\n", ["rpcgate-fwd", "--check", "--config"]),
    "firewall.rule": (f"[[firewall.rule]]\n{PROBE_KEY} = 1\n",
                      ["rpcgate-fwd", "--check", "--config"]),
    "firewall.nat": (f"[[firewall.nat]]\n{PROBE_KEY} = 1\n",
                     ["rpcgate-fwd", "--check", "--config"]),
}
# Every table of rpcgate.toml, in the man page's order.
TABLES = list(_PROBES)

# Tables whose keys include a sub-table: the key names the [[table.key]] array of tables.
SUBTABLES = {"epmd": {"entry": "epmd.entry"},
             "firewall": {"rule": "firewall.rule", "nat": "firewall.nat"}}


def known_keys(table):
    """The keys `table` ("policy", "epmd", "epmd.entry", "firewall", "firewall.rule") accepts,
    in the order the program lists them. Raises AssertionError when the program does not refuse
    the unknown key with exit status 2 and a list."""
    text, command = _PROBES[table]
    with tempfile.TemporaryDirectory(prefix="rpcgate-keys-") as d:
        path = os.path.join(d, "probe.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(BIN, command[0]), *command[1:], path],
                           capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    m = re.search(r"(?:valid keys|known): ([a-z_]+(?:, [a-z_]+)*)", out)
    assert r.returncode == 2 and PROBE_KEY in out and m, (
        f"{' '.join(command)} did not refuse an unknown key of [{table}] with its list of "
        f"keys (exit {r.returncode}): {out.strip()}")
    return m.group(1).split(", ")
