#!/usr/bin/python3
"""fwd_side_by_side_report.py on made-up runs (no server, no root), and fwd_side_by_side.sh's
argument checks.

What is asserted: medians over the rounds and the through/direct ratios (echodata as MB/s each
way), the pinhole install percentiles pooled from the through runs' decision records (other
records and a torn last line ignored), the bulk target's PASS / MISS, and that a run with more
than --max-load CPUs of other work before it marks exactly its row's ratios with "*" and turns
the target judged on them into NOT MEASURED (machine busy).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "fwd_side_by_side_report.py")
SCRIPT = os.path.join(HERE, "fwd_side_by_side.sh")

QUIET = (0.10, 0.40, 0.05)  # 1-min load average before, after; other work's CPUs before
BUSY = (1.92, 1.95, 1.30)
ROWS = (("epm-map", 16), ("echodata", 1), ("echodata", 16), ("reconnect", 16))


def bench_result(calls_per_s, p99, errors=0, server_cpu=None, stalled=0):
    return {"calls_per_s": calls_per_s, "p50_us": p99 / 2, "p99_us": p99, "errors": errors,
            "stalled_at_end": stalled,
            "client_cpu_busy": 0.9, "server_cpu_us_per_call": server_cpu,
            "server_cpu_busy": 0.5 if server_cpu else None}


class Report:
    """One report over made-up runs: rates[(row, conns, path)] = calls/s per round; `loads`
    maps (row, conns, path, round) to a load triple (QUIET otherwise); installs[round] = the
    install times in that round's through epm-map records."""

    def __init__(self, rates, installs=None, loads=None, errors=None, max_load=None, stalled=None,
                 idle=None, retries=None, pinned=None):
        self.dir = tempfile.TemporaryDirectory(prefix="fwd-sbs-report-test.")
        d = self.dir.name
        reps = len(next(iter(rates.values())))
        with open(os.path.join(d, "meta.txt"), "w") as f:
            f.write("nproc=2\nloadavg_start=0.1 0.2 0.3\nloadavg_end=1.0 0.5 0.4\nkernel=6.1\n"
                    "cpu_model=Test CPU\ndate=2025-01-01T00:00:00Z\ngit_commit=abc\n"
                    "git_dirty=false\nrpcgate_version=rpcgate 0\nreps=%d\nduration_s=3\n"
                    "warmup_s=1\nsmoke=0\nmax_load=0.5\nquiet_window_s=1\n"
                    "interface=60a15ec5-4de8-11d7-a637-005056a20182:1.0\necho_size=65536\n"
                    "echo_port=49152\nserver_through=10.135.2.2\nserver_direct=10.135.2.3\n"
                    "client_addresses=10.135.1.10 10.135.1.11\nidle_connections=1000\n"
                    "idle_other_cpus_before=0.05\nidle_loadavg_1min_before=0.3\n"
                    "fwd_args=--allow rpcecho\n" % reps)
            if pinned:
                f.write("pinned=%s\n" % pinned)
        with open(os.path.join(d, "idle.json"), "w") as f:
            json.dump({"connections_held": 1000, "bytes_per_connection": 4096,
                       "fds_per_connection": 2.0, "rss_before_kib": 4000, "rss_after_kib": 8000,
                       "fds_before": 12, "fds_after": 2012, "probe_p50_us": 300,
                       "probe_errors": 0, **(idle or {})}, f)
        with open(os.path.join(d, "status.json"), "w") as f:
            json.dump({"pinhole_install_us": {"count": 9, "p50": 41, "p99": 95, "max": 96}}, f)
        with open(os.path.join(d, "runs.txt"), "w") as runs:
            for (row, conns, path), per_round in rates.items():
                for rnd, rate in enumerate(per_round, start=1):
                    file = os.path.join(d, "%s.%d.%s.%d.json" % (row, conns, path, rnd))
                    err = (errors or {}).get((row, conns, path, rnd), 0)
                    stuck = (stalled or {}).get((row, conns, path, rnd), 0)
                    with open(file, "w") as f:
                        json.dump(bench_result(rate, 1000.0 / rate * 1000, err,
                                               12.5 if path == "through" else 3.0, stuck), f)
                    if path == "through" and row == "epm-map":
                        with open(file + ".fwdlog", "w") as f:
                            for i, us in enumerate((installs or {}).get(rnd, [])):
                                f.write(json.dumps({"event": "pinhole", "install_us": us,
                                                    "reason": "opened" if i == 0 else
                                                    "refreshed"}) + "\n")
                            f.write(json.dumps({"event": "allow", "reason": "bind"}) + "\n")
                            f.write('{"event":"pinhole","install_u')  # torn last line
                        with open(file + ".status", "w") as f:
                            json.dump({"pinhole_install_us": {"count": 1}}, f)
                    load = (loads or {}).get((row, conns, path, rnd), QUIET)
                    runs.write("%s %d %s %d %s %.2f %.2f %.2f\n" % (row, conns, path, rnd, file,
                                                                    *load))
        if retries is not None:
            with open(os.path.join(d, "retries.txt"), "w") as f:
                f.write("".join(line + "\n" for line in retries))
        args = [sys.executable, REPORT, "--meta", os.path.join(d, "meta.txt"), "--runs",
                os.path.join(d, "runs.txt"), "--idle", os.path.join(d, "idle.json"), "--status",
                os.path.join(d, "status.json"), "--out", os.path.join(d, "out")]
        if max_load is not None:
            args += ["--max-load", str(max_load)]
        if retries is not None:
            args += ["--retries", os.path.join(d, "retries.txt")]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("report failed: " + r.stderr)
        self.stdout = r.stdout
        with open(os.path.join(d, "out", "fwd-latest.json")) as f:
            self.json = json.load(f)
        with open(os.path.join(d, "out", "fwd-latest.txt")) as f:
            self.txt = f.read()
        self.dir.cleanup()

    def line(self, prefix):
        found = [ln for ln in self.stdout.splitlines() if ln.startswith(prefix)]
        assert len(found) == 1, (prefix, self.stdout)
        return found[0]

    def target(self, conns):
        return next(t for t in self.json["targets"] if t["target"].startswith("bulk 64 KiB @%d:"
                                                                             % conns))


def rates(echodata16_through=(900.0, 1000.0, 950.0)):
    return {
        ("epm-map", 16, "through"): [4000.0, 5000.0, 4500.0],
        ("epm-map", 16, "direct"): [9000.0, 10000.0, 11000.0],
        ("echodata", 1, "through"): [500.0, 520.0, 510.0],
        ("echodata", 1, "direct"): [600.0, 600.0, 600.0],
        ("echodata", 16, "through"): list(echodata16_through),
        ("echodata", 16, "direct"): [1000.0, 1000.0, 1000.0],
        ("reconnect", 16, "through"): [2000.0, 2100.0, 2200.0],
        ("reconnect", 16, "direct"): [8000.0, 8000.0, 8000.0],
    }


class ReportTest(unittest.TestCase):
    def test_medians_ratios_and_units(self):
        r = Report(rates())
        s = r.json["summary"]
        self.assertEqual(s["epm-map 16"]["through"]["rate"], 4500.0)
        self.assertEqual(s["epm-map 16"]["direct"]["rate"], 10000.0)
        self.assertAlmostEqual(s["epm-map 16"]["ratio"], 0.45)
        # echodata: MB/s each way = calls/s x 65536 / 1e6.
        self.assertAlmostEqual(s["echodata 1"]["through"]["rate"], 510 * 65536 / 1e6)
        self.assertAlmostEqual(s["echodata 1"]["ratio"], 510 / 600)
        self.assertEqual(s["echodata 1"]["through"]["unit"], "MB/s")
        self.assertAlmostEqual(s["reconnect 16"]["ratio"], 2100 / 8000)
        self.assertEqual(s["reconnect 16"]["through"]["server_cpu_us_per_call"], 12.5)
        self.assertEqual(s["reconnect 16"]["through"]["cpu_pid_of"], "rpcgate-fwd")
        self.assertEqual(s["reconnect 16"]["direct"]["cpu_pid_of"], "rpcgate-echo")
        self.assertIn(" 0.45x ", r.line("ept_map  16 "))
        self.assertIn(" 0.85x ", r.line("echodata 64K  1 "))
        self.assertIn(" 33.4 ", r.line("echodata 64K  1 "))  # 510 calls/s x 64 KiB
        self.assertEqual(r.txt, r.stdout)
        self.assertNotIn("*", r.stdout.split("Targets")[0].replace("marked *", ""))

    def test_pinhole_install_times_pooled_from_the_records(self):
        r = Report(rates(), installs={1: [10, 20, 30], 2: [40, 50], 3: [60, 70, 80, 1000]})
        ins = r.json["pinhole_install"]
        self.assertEqual(ins["count"], 9)
        self.assertEqual(ins["opened"], 3)
        self.assertEqual(ins["refreshed"], 6)
        self.assertEqual(ins["p50_us"], 50)  # rank floor(0.5 x 9) = 4 of 10..80, 1000
        self.assertEqual(ins["p99_us"], 1000)
        self.assertEqual(ins["max_us"], 1000)
        self.assertEqual([e["count"] for e in ins["each_round"]], [3, 2, 4])
        self.assertEqual(ins["each_round"][0]["fwd_status"], {"count": 1})
        self.assertIn("p50 50 us, p99 1000 us, max 1000 us over 9 installs", r.stdout)
        self.assertIn("rpcgate-fwd status at the end: p50 41 us, p99 95 us", r.stdout)

    def test_idle_line(self):
        line = Report(rates()).line("idle 1000 ")
        self.assertIn("1000 of 1000", line)
        self.assertIn("4.0 KiB and 2.00 descriptors per connection", line)
        self.assertIn("0 errors", line)

    def test_bulk_target_pass_and_miss(self):
        r = Report(rates(echodata16_through=(900.0, 700.0, 850.0)))  # median 850 / 1000
        self.assertEqual(r.target(16)["result"], "PASS")
        self.assertEqual(r.target(16)["value"], "0.85x")
        self.assertEqual(r.target(1)["result"], "PASS")  # 510 / 600
        r = Report(rates(echodata16_through=(700.0, 790.0, 750.0)))
        self.assertEqual(r.target(16)["result"], "MISS")
        self.assertIn("MISS", r.line("  bulk 64 KiB @16"))

    def test_pinned_pass_judges_only_one_connection(self):
        r = Report(rates(echodata16_through=(1900.0, 2000.0, 1950.0)),
                   pinned="rpcgate-fwd on CPU 1; client, rpcgate-epmd and rpcgate-echo on CPUs 0-0")
        self.assertEqual(r.target(16)["result"], "N/A")  # 1.95x, but unequal CPUs
        self.assertEqual(r.target(16)["value"], "1.95x")
        self.assertIn("unequal", r.target(16)["note"])
        self.assertEqual(r.target(1)["result"], "PASS")  # 510 / 600
        self.assertNotIn("PASS", r.line("  bulk 64 KiB @16"))
        r = Report(rates(echodata16_through=(1900.0, 2000.0, 1950.0)))
        self.assertEqual(r.target(16)["result"], "PASS")  # the shared pass judges it

    def test_errors_turn_a_met_target_into_a_miss(self):
        r = Report(rates(), errors={("echodata", 1, "through", 2): 3})
        self.assertEqual(r.target(1)["result"], "MISS")
        self.assertIn("3 errors", r.target(1)["note"])
        self.assertIn("3/0", r.line("echodata 64K  1 "))

    def test_stalled_calls_are_shown_and_miss_the_target(self):
        r = Report(rates(), stalled={("echodata", 1, "through", 1): 1,
                                     ("reconnect", 16, "through", 2): 2})
        self.assertEqual(r.json["summary"]["reconnect 16"]["through"]["stalled_at_end"], 2)
        self.assertIn("0/0  stalled 2/0", r.line("reconnect  16 "))
        self.assertNotIn("stalled", r.line("echodata 64K  16 "))
        self.assertEqual(r.target(1)["result"], "MISS")
        self.assertIn("1 calls stalled", r.target(1)["note"])
        self.assertEqual(r.target(16)["result"], "PASS")

    def test_idle_connections_not_held_are_named(self):
        line = Report(rates(), idle={
            "connections_held": 997, "connections_failed": 3,
            "failure_kinds": {"connect": 0, "timeout": 3},
            "probe_error": "connect to 10.135.2.2:49152: timed out after 5 s"}).line("idle 1000 ")
        self.assertIn("997 of 1000", line)
        self.assertIn("NOT HELD 3: timeout 3", line)
        self.assertIn("first probe error: connect to 10.135.2.2:49152: timed out", line)

    def test_retries_are_listed(self):
        r = Report(rates(), retries=["epm-map 16 through 2 attempt 1 exit 1: connect timed out"])
        self.assertIn("RETRIED (failed once, measured again): epm-map 16 through 2 attempt 1 exit "
                      "1: connect timed out", r.stdout)
        self.assertEqual(len(r.json["retries"]), 1)
        self.assertNotIn("RETRIED", Report(rates(), retries=[]).stdout)

    def test_a_busy_run_marks_its_row_only(self):
        r = Report(rates(), loads={("echodata", 16, "direct", 2): BUSY})
        s = r.json["summary"]
        self.assertEqual(len(s["echodata 16"]["busy"]), 1)
        self.assertEqual(s["echodata 16"]["busy"][0]["path"], "direct")
        self.assertEqual(s["echodata 16"]["busy"][0]["other_cpus_before"], 1.3)
        self.assertIsNone(s["echodata 1"]["busy"])
        self.assertIn("0.95x*", r.line("echodata 64K  16 "))
        self.assertNotIn("*", r.line("echodata 64K  1 "))
        self.assertEqual(r.target(16)["result"], "NOT MEASURED (machine busy)")
        self.assertEqual(r.target(1)["result"], "PASS")
        self.assertIn("* echodata 64K  16: machine busy before direct round 2 (other work 1.30 "
                      "CPUs, 1-min load average 1.92)", r.stdout)
        run = next(x for x in r.json["runs"] if (x["row"], x["connections"], x["path"],
                                                  x["round"]) == ("echodata", 16, "direct", 2))
        self.assertTrue(run["load"]["busy"])

    def test_relay_floor_rows(self):
        rs = rates()
        rs[("echodata", 1, "floor")] = [300.0, 330.0, 360.0]  # median 330; direct 600
        rs[("echodata", 16, "floor")] = [500.0, 500.0, 500.0]  # through 950, direct 1000
        r = Report(rs)
        s = r.json["summary"]
        self.assertAlmostEqual(s["echodata 1"]["floor_ratio"], 330 / 600)
        self.assertAlmostEqual(s["echodata 1"]["through_over_floor"], 510 / 330)
        self.assertAlmostEqual(s["echodata 16"]["floor_ratio"], 0.5)
        self.assertEqual(s["echodata 16"]["floor"]["cpu_pid_of"], "rpc-relay-floor")
        self.assertIsNone(s["epm-map 16"]["floor_ratio"])
        floor_line = [ln for ln in r.stdout.splitlines() if ln.startswith("echodata 64K  1 ")]
        self.assertEqual(len(floor_line), 2, r.stdout)  # the main row and the floor row
        self.assertIn(" 0.55x ", floor_line[1])
        self.assertIn(" 1.55x ", floor_line[1])
        self.assertIn("reaches 0.55x @1, 0.50x @16 of direct", r.stdout)
        # The targets stay through / direct.
        self.assertEqual(r.target(16)["value"], "0.95x")
        # Without floor runs there is no floor table.
        self.assertNotIn("relay floor", Report(rates()).stdout)

    def test_max_load_decides(self):
        loads = {("echodata", 16, "direct", 2): BUSY}
        r = Report(rates(), loads=loads, max_load=99)
        self.assertIsNone(r.json["summary"]["echodata 16"]["busy"])
        self.assertEqual(r.target(16)["result"], "PASS")
        self.assertEqual(r.json["parameters"]["max_load"], 99)


class ScriptUsageTest(unittest.TestCase):
    def run_script(self, *args):
        return subprocess.run(["/bin/bash", SCRIPT, *args], capture_output=True, text=True,
                              env=dict(os.environ, RPCGATE_BIN="/nonexistent"))

    def test_help(self):
        r = self.run_script("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("fair floor", r.stdout)

    def test_bad_usage_exits_2(self):
        for args in (("--reps", "0"), ("--duration", "x"), ("--max-load", "lots"),
                     ("--idle-connections", "5000"), ("--bogus",)):
            r = self.run_script(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))


if __name__ == "__main__":
    unittest.main()
