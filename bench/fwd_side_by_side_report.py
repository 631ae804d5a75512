#!/usr/bin/python3
"""The report half of bench/fwd_side_by_side.sh: reads what the script collected (rpcgate-bench
--json of every run, rpcgate-fwd's decision records and status after each through run,
rpcgate-bench idle through the firewall, machine info), prints the through-vs-direct table with
the issue's target, and writes OUT/fwd-latest.json (every raw number) and OUT/fwd-latest.txt (the
table).

    fwd_side_by_side_report.py --meta META --runs RUNS [--idle JSON] [--status JSON]
                               [--retries FILE] --out OUT [--max-load L]

META: key=value lines. RUNS: one line per run, "row connections path round file loadavg_before
loadavg_after other_cpus_before" (row: epm-map | echodata | reconnect; path: through | direct |
floor, the last for echodata only: rpc-relay-floor, a relay that only moves bytes).
RETRIES: one line per failed attempt that was retried (listed under the table).
A through run's FILE.fwdlog holds rpcgate-fwd's JSON decision records written during it (the
"pinhole" records carry install_us) and FILE.status its `status --json` right after.

Medians are over the rounds; a ratio is through / direct of the medians (and, where the relay floor
was measured, floor / direct and through / floor). A run is busy when other
work took more than max_load CPUs before it (--max-load, else META's max_load, else 0.5): a ratio
computed from a busy run is printed with "*" and a footnote, and a target judged on it is
"NOT MEASURED (machine busy)" (other work compresses every ratio toward 1: such a ratio neither
passes nor misses).
"""
import argparse
import json
import os
import statistics
import sys

ROWS = (("epm-map", 16), ("echodata", 1), ("echodata", 16), ("reconnect", 16))
PATHS = ("through", "direct")
FLOOR = "floor"  # rpc-relay-floor (bench/relay_floor.cc), bulk rows only
DEFAULT_MAX_LOAD = 0.5
NOT_MEASURED_BUSY = "NOT MEASURED (machine busy)"
# Issue 14: bulk calls through a pinhole >= 0.8x the direct throughput.
TARGET_BULK_VS_DIRECT = 0.8
UNIT = {"epm-map": "calls/s", "echodata": "MB/s", "reconnect": "conn/s"}
LABEL = {"epm-map": "ept_map", "echodata": "echodata 64K", "reconnect": "reconnect"}


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key:
                meta[key] = value
    return meta


def percentile(sorted_values, q):
    """The value at rank floor(q * n) (what rpcgate-fwd's status computes), None when empty."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def read_installs(path):
    """rpcgate-fwd's pinhole records in a run's log slice: install times (us), opened and
    refreshed counts, and kept ones (a pinhole with 9/10 of its life left is not rewritten in the
    kernel, so it has no install time). Lines that are not JSON (a partial last line) are
    skipped."""
    out = {"install_us": [], "opened": 0, "refreshed": 0, "kept": 0}
    if not os.path.exists(path):
        return None
    with open(path, errors="replace") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("event") != "pinhole":
                continue
            if r.get("reason") == "kept":
                out["kept"] += 1
                continue
            if "install_us" not in r:
                continue
            out["install_us"].append(r["install_us"])
            if r.get("reason") == "opened":
                out["opened"] += 1
            elif r.get("reason") == "refreshed":
                out["refreshed"] += 1
    v = sorted(out["install_us"])
    out.update(count=len(v), p50=percentile(v, 0.5), p99=percentile(v, 0.99),
               max=v[-1] if v else None)
    return out


def read_json(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_runs(path, max_load, echo_size):
    runs = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            row, conns, run_path, rnd, file = fields[:5]
            result = read_json(file)
            other = float(fields[7])
            run = {"row": row, "connections": int(conns), "path": run_path, "round": int(rnd),
                   "order": len(runs) + 1,
                   "load": {"loadavg_1min_before": float(fields[5]),
                            "loadavg_1min_after": float(fields[6]),
                            "other_cpus_before": other, "busy": other > max_load},
                   "result": result}
            # The row's figure: calls/s, or for echodata MB/s each way (size bytes out and back
            # per call).
            run["rate"] = result["calls_per_s"] * echo_size / 1e6 if row == "echodata" \
                else result["calls_per_s"]
            if run_path == "through":
                run["installs"] = read_installs(file + ".fwdlog")
                status = read_json(file + ".status")
                run["fwd_status_install_us"] = status.get("pinhole_install_us") if status else None
            runs.append(run)
    return runs


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    summary = {}
    for row, conns in ROWS:
        mine = [r for r in runs if (r["row"], r["connections"]) == (row, conns)]
        entry = {}
        for p in PATHS + (FLOOR,):
            rs = [r for r in mine if r["path"] == p]
            if not rs:
                continue
            res = [r["result"] for r in rs]
            entry[p] = {
                "rounds": len(rs),
                "rate": median_of(r["rate"] for r in rs),
                "unit": UNIT[row],
                "calls_per_s": median_of(x["calls_per_s"] for x in res),
                "p50_us": median_of(x["p50_us"] for x in res),
                "p99_us": median_of(x["p99_us"] for x in res),
                "errors": sum(x["errors"] for x in res),
                # Connects or calls still waiting for 1 s or more when a run ended (lost on the
                # way: they show as a lower rate, not as errors, within a short run).
                "stalled_at_end": sum(x.get("stalled_at_end", 0) for x in res),
                "rate_each_round": [r["rate"] for r in rs],
                "load_each_round": [r["load"] for r in rs],
                "client_cpu_busy": median_of(x.get("client_cpu_busy") for x in res),
                # Through: rpcgate-fwd's CPU; direct: the server's (rpcgate-epmd / -echo).
                "cpu_pid_of": {"through": "rpcgate-fwd", FLOOR: "rpc-relay-floor"}.get(
                    p, "rpcgate-epmd" if row == "epm-map" else "rpcgate-echo"),
                "server_cpu_us_per_call": median_of(x.get("server_cpu_us_per_call") for x in res),
                "server_cpu_busy": median_of(x.get("server_cpu_busy") for x in res),
            }
        t, d = entry.get("through"), entry.get("direct")
        entry["ratio"] = t["rate"] / d["rate"] if t and d and d["rate"] else None
        entry["p99_ratio"] = t["p99_us"] / d["p99_us"] if t and d and d["p99_us"] else None
        f = entry.get(FLOOR)
        entry["floor_ratio"] = f["rate"] / d["rate"] if f and d and d["rate"] else None
        entry["through_over_floor"] = t["rate"] / f["rate"] if t and f and f["rate"] else None
        entry["busy"] = [{"path": r["path"], "round": r["round"], **r["load"]}
                         for r in mine if r["load"]["busy"]] or None
        summary["%s %d" % (row, conns)] = entry
    return summary


def install_summary(runs):
    """Pinhole install times over every through epm-map run: pooled percentiles and per run."""
    per_run = [r for r in runs if r["path"] == "through" and r["row"] == "epm-map"]
    pooled = sorted(v for r in per_run if r.get("installs") for v in r["installs"]["install_us"])
    return {
        "count": len(pooled),
        "p50_us": percentile(pooled, 0.5),
        "p99_us": percentile(pooled, 0.99),
        "max_us": pooled[-1] if pooled else None,
        "opened": sum(r["installs"]["opened"] for r in per_run if r.get("installs")),
        "refreshed": sum(r["installs"]["refreshed"] for r in per_run if r.get("installs")),
        "kept": sum(r["installs"].get("kept", 0) for r in per_run if r.get("installs")),
        "each_round": [{"round": r["round"],
                        **{k: (r["installs"] or {}).get(k) for k in ("count", "p50", "p99", "max")},
                        "fwd_status": r.get("fwd_status_install_us")} for r in per_run],
        "busy": [{"round": r["round"], **r["load"]} for r in per_run if r["load"]["busy"]] or None,
    }


def fmt_num(v, width, digits=0):
    return ("{:>%d.%df}" % (width, digits)).format(v) if v is not None else "-".rjust(width)


def fmt_ratio(v, width, busy=False):
    return (("%.2fx" % v if v is not None else "-") + ("*" if busy else " ")).rjust(width)


def fmt_2(v):
    return "%.2f" % v if isinstance(v, (int, float)) else "-"


# The pinned pass (--pin-cpus) judges the 1-connection target only: there neither path is
# CPU-bound, but at 16 connections the direct path has one CPU for client and servers while the
# through path also has rpcgate-fwd's, so a ratio there compares unequal machines.
PINNED_UNEQUAL = ("pinned pass: through also has rpcgate-fwd's CPU, direct does not (unequal "
                  "when CPU-bound); judged in the shared pass")


def targets(summary, max_load, pinned=False):
    out = []
    for conns in (1, 16):
        e = summary["echodata %d" % conns]
        name = "bulk 64 KiB @%d: through >= %gx direct" % (conns, TARGET_BULK_VS_DIRECT)
        v = e["ratio"]
        errors = sum(e.get(p, {}).get("errors", 0) for p in PATHS)
        stalled = sum(e.get(p, {}).get("stalled_at_end", 0) for p in PATHS)
        notes = ["%d errors" % errors] if errors else []
        if stalled:
            notes.append("%d calls stalled" % stalled)
            errors += stalled
        if v is None:
            out.append({"target": name, "value": "-", "result": "N/A", "note": "not measured"})
        elif pinned and conns > 1:
            out.append({"target": name, "value": fmt_ratio(v, 0).strip(), "result": "N/A",
                        "note": "; ".join([PINNED_UNEQUAL] + notes)})
        elif e["busy"]:
            notes.insert(0, "other work above --max-load %g CPUs before %d run(s)"
                         % (max_load, len(e["busy"])))
            out.append({"target": name, "value": fmt_ratio(v, 0, True).strip(),
                        "result": NOT_MEASURED_BUSY, "note": "; ".join(notes)})
        else:
            met = v >= TARGET_BULK_VS_DIRECT and not errors
            out.append({"target": name, "value": fmt_ratio(v, 0).strip(),
                        "result": "PASS" if met else "MISS", "note": "; ".join(notes)})
    return out


def idle_text(idle, wanted, busy):
    if idle is None:
        return "not measured"
    per = idle.get("bytes_per_connection")
    fds = idle.get("fds_per_connection")
    text = "rpcgate-fwd relays %s of %d idle bound rpcecho connections: %s and %s descriptors " \
           "per connection" % (idle.get("connections_held"), wanted,
                               "%.1f KiB" % (per / 1024) if per is not None else "? KiB",
                               "%.2f" % fds if fds is not None else "?")
    before, after = idle.get("rss_before_kib"), idle.get("rss_after_kib")
    if before is not None and after is not None:
        text += " (RSS %.1f -> %.1f MiB, fds %s -> %s)" % (before / 1024, after / 1024,
                                                           idle.get("fds_before"),
                                                           idle.get("fds_after"))
    text += "; probes (connect, bind, AddOne) p50 %s us, %s errors" % (
        fmt_num(idle.get("probe_p50_us"), 0), idle.get("probe_errors", "?"))
    if idle.get("connections_failed"):
        kinds = idle.get("failure_kinds") or {}
        text += "; NOT HELD %d: %s" % (idle["connections_failed"], ", ".join(
            "%s %d" % (k, v) for k, v in kinds.items() if v))
    if idle.get("probe_error"):
        text += "; first probe error: %s" % idle["probe_error"]
    if busy:
        text += "  * machine busy before it"
    return text


def table(meta, summary, installs, idle, status, target_list, max_load, retries=()):
    lines = []
    lines.append("rpcgate-fwd side by side with a direct route: client rpcgate-bench (1 thread, "
                 "%d client addresses) -> forwarding namespace -> rpcgate-epmd + rpcgate-echo"
                 % len(meta.get("client_addresses", "").split()))
    lines.append("  through = %s (rpcgate-fwd %s), direct = %s (same namespace, not governed: "
                 "kernel forwarding only)" % (meta.get("server_through", "?"),
                                              meta.get("fwd_args", ""),
                                              meta.get("server_direct", "?")))
    lines.append("  median of %s round(s), %s s each after %s s warmup, path order alternating; "
                 "%s CPU(s) %s: %s; Linux %s; commit %s%s; "
                 "%s%s" % (meta.get("reps"), meta.get("duration_s"), meta.get("warmup_s"),
                           meta.get("nproc", "?"),
                           ("pinned: " + meta["pinned"]) if meta.get("pinned") else
                           "shared by client, firewall and servers",
                           meta.get("cpu_model", "?"),
                           meta.get("kernel", "?"), meta.get("git_commit", "?")[:12],
                           " (dirty)" if meta.get("git_dirty") == "true" else "",
                           meta.get("date", "?"),
                           "; SMOKE RUN (numbers meaningless)" if meta.get("smoke") == "1" else ""))
    lines.append("  load average (1/5/15 min) %s at the start, %s at the end; a ratio marked * "
                 "comes from a run with more than %g CPUs of other work before it (--max-load)"
                 % (meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?"), max_load))
    lines.append("")
    lines.append("%-16s %-8s %10s %10s  %8s  %9s %9s  %8s  %12s %12s  %s" % (
        "row", "unit", "through", "direct", "thr/dir", "p99 thr", "p99 dir", "p99 t/d",
        "fwd us/call", "server us", "errors t/d"))
    footnotes = []
    for row, conns in ROWS:
        key = "%s %d" % (row, conns)
        e = summary[key]
        t, d = e.get("through", {}), e.get("direct", {})
        busy = bool(e["busy"])
        label = "%s  %d" % (LABEL[row], conns)
        digits = 1 if row == "echodata" else 0
        stalled = [e.get(p, {}).get("stalled_at_end", 0) for p in PATHS]
        lines.append("%-16s %-8s %s %s  %s  %s %s  %s  %12s %12s  %s/%s%s" % (
            label, UNIT[row], fmt_num(t.get("rate"), 10, digits),
            fmt_num(d.get("rate"), 10, digits),
            fmt_ratio(e["ratio"], 8, busy), fmt_num(t.get("p99_us"), 9),
            fmt_num(d.get("p99_us"), 9), fmt_ratio(e["p99_ratio"], 8, busy),
            fmt_2(t.get("server_cpu_us_per_call")), fmt_2(d.get("server_cpu_us_per_call")),
            t.get("errors", "-"), d.get("errors", "-"),
            "  stalled %d/%d" % tuple(stalled) if any(stalled) else ""))
        if busy:
            footnotes.append("* %s: machine busy before %s" % (label, ", ".join(
                "%s round %d (other work %.2f CPUs, 1-min load average %.2f)"
                % (b["path"], b["round"], b["other_cpus_before"], b["loadavg_1min_before"])
                for b in e["busy"])))
    lines.append("")
    lines.append("  MB/s = each way (64 KiB out and 64 KiB back per call). stalled = connects or calls "
                 "still waiting after 1 s or more when a run ended (through/direct). fwd us/call = "
                 "rpcgate-fwd's CPU per call in the through runs (--server-pid); server us = the "
                 "server's (rpcgate-epmd / rpcgate-echo) in the direct runs. client CPUs busy "
                 "(through/direct): %s" % ", ".join(
                     "%s %d %s/%s" % (LABEL[r], c, fmt_2(summary["%s %d" % (r, c)].get(
                         "through", {}).get("client_cpu_busy")), fmt_2(summary["%s %d" % (
                             r, c)].get("direct", {}).get("client_cpu_busy"))) for r, c in ROWS))
    floor_rows = [(r, c) for r, c in ROWS if summary["%s %d" % (r, c)].get(FLOOR)]
    if floor_rows:
        lines.append("")
        lines.append("%-16s %-8s %10s  %9s  %9s  %13s  (%s)" % (
            "relay floor", "unit", "floor", "floor/dir", "thr/floor", "floor us/call",
            "rpc-relay-floor " + meta.get("relay_floor", "") + ": moves bytes as rpcgate-fwd "
            "does, no tproxy, no inspection"))
        for row, conns in floor_rows:
            e = summary["%s %d" % (row, conns)]
            busy = bool(e["busy"])
            lines.append("%-16s %-8s %s  %s  %s  %13s" % (
                "%s  %d" % (LABEL[row], conns), UNIT[row], fmt_num(e[FLOOR]["rate"], 10, 1),
                fmt_ratio(e["floor_ratio"], 9, busy), fmt_ratio(e["through_over_floor"], 9, busy),
                fmt_2(e[FLOOR].get("server_cpu_us_per_call"))))
    lines.append("")
    ins = installs
    lines.append("%-16s p50 %s us, p99 %s us, max %s us over %d installs (%d opened, %d refreshed; "
                 "%d kept, not rewritten) in the through ept_map runs (rpcgate-fwd's records: "
                 "answer in -> released)%s" % (
                     "pinhole install", fmt_num(ins["p50_us"], 0), fmt_num(ins["p99_us"], 0),
                     fmt_num(ins["max_us"], 0), ins["count"], ins["opened"], ins["refreshed"],
                     ins.get("kept", 0),
                     "  * machine busy before %d run(s)" % len(ins["busy"]) if ins["busy"] else ""))
    st = (status or {}).get("pinhole_install_us") or {}
    if st:
        lines.append("%-16s rpcgate-fwd status at the end: p50 %s us, p99 %s us, max %s us (its "
                     "last 4096 of %s)" % ("", st.get("p50", "-"), st.get("p99", "-"),
                                           st.get("max", "-"), st.get("count", "-")))
    idle_busy = float(meta.get("idle_other_cpus_before", "0")) > max_load
    lines.append("%-16s %s" % ("idle %s" % meta.get("idle_connections", "?"),
                               idle_text(idle, int(meta.get("idle_connections", "0")), idle_busy)))
    lines.extend(footnotes)
    for r in retries:
        lines.append("RETRIED (failed once, measured again): " + r)
    lines.append("")
    lines.append("Targets (issue 14)                                       this run")
    for t in target_list:
        lines.append("  %-54s %-10s %s%s" % (t["target"], t["value"], t["result"],
                                             "  (" + t["note"] + ")" if t["note"] else ""))
    floors = [(c, summary["echodata %d" % c].get("floor_ratio")) for c in (1, 16)]
    if any(v is not None for _, v in floors):
        lines.append("  for scale, a relay that only moves bytes (relay floor) reaches " + ", ".join(
            "%s @%d" % (fmt_ratio(v, 0).strip(), c) for c, v in floors if v is not None) +
            " of direct on this machine")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--idle", default="")
    p.add_argument("--status", default="")
    p.add_argument("--retries", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="fwd",
                   help="output files NAME-latest.json and NAME-latest.txt (default fwd)")
    p.add_argument("--max-load", type=float, default=None)
    a = p.parse_args()

    meta = read_meta(a.meta)
    max_load = a.max_load if a.max_load is not None else float(
        meta.get("max_load", DEFAULT_MAX_LOAD))
    echo_size = int(meta.get("echo_size", "65536"))
    runs = read_runs(a.runs, max_load, echo_size)
    summary = summarize(runs)
    installs = install_summary(runs)
    idle = read_json(a.idle)
    status = read_json(a.status)
    target_list = targets(summary, max_load, pinned=bool(meta.get("pinned")))
    retries = []
    if a.retries and os.path.exists(a.retries):
        with open(a.retries) as f:
            retries = [line.rstrip("\n") for line in f if line.strip()]
    text = table(meta, summary, installs, idle, status, target_list, max_load, retries)

    machine = {k: meta.get(k) for k in ("nproc", "kernel", "cpu_model", "date", "git_commit",
                                         "rpcgate_version", "loadavg_start", "loadavg_end")}
    machine["nproc"] = int(machine["nproc"]) if machine["nproc"] else None
    machine["git_dirty"] = meta.get("git_dirty") == "true"
    result = {
        "schema": "rpcgate fwd_side_by_side 1",
        "machine": machine,
        "parameters": {
            "reps": int(meta["reps"]), "duration_s": float(meta["duration_s"]),
            "warmup_s": float(meta["warmup_s"]), "smoke": meta.get("smoke") == "1",
            "max_load": max_load, "quiet_window_s": float(meta.get("quiet_window_s", "1")),
            "interface": meta.get("interface"), "echo_size": echo_size,
            "echo_port": int(meta["echo_port"]) if meta.get("echo_port") else None,
            "server_through": meta.get("server_through"),
            "server_direct": meta.get("server_direct"),
            "client_addresses": meta.get("client_addresses", "").split(),
            "idle_connections": int(meta.get("idle_connections", "0")),
            "fwd_args": meta.get("fwd_args"),
            "pinned": meta.get("pinned"),
        },
        "summary": summary,
        "pinhole_install": installs,
        "idle": {"result": idle,
                 "load": {"other_cpus_before": float(meta.get("idle_other_cpus_before", "0")),
                          "loadavg_1min_before": float(meta.get("idle_loadavg_1min_before",
                                                                "0"))}},
        "fwd_status_final": status,
        "targets": target_list,
        "retries": retries,
        "runs": runs,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, a.name + "-latest.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, a.name + "-latest.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
