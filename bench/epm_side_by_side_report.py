#!/usr/bin/python3
"""The report half of bench/epm_side_by_side.sh: reads the raw results the script collected
(rpcgate-bench --json of every run, rpcgate-bench idle, allocator_benchmark's Google Benchmark
JSON, machine info), prints the side-by-side table with the issue's targets, and writes
OUT/latest.json (every raw number), OUT/latest.txt (the table) and, for gnuplot, PLOT_DIR/plot.dat
and PLOT_DIR/plot.gp (which write OUT/latest.png).

    epm_side_by_side_report.py --meta META --runs RUNS [--idle JSON] [--allocator JSON]
                               --out OUT --plot-dir DIR [--max-load L]

META: key=value lines (mirror= repeated: "samba_port testsrv_port"). RUNS: one line per run,
"mode connections server round file [loadavg_before loadavg_after other_cpus_before]": the
1-minute load average before and after the run and the CPUs other work took just before it.
Medians are over the rounds; ratios are of the medians.

A run is busy when other work took more than max_load CPUs before it (--max-load, else META's
max_load, else 0.5): a ratio with a busy run among those it is computed from is printed with
"*" and a footnote, and a target judged on it is "NOT MEASURED (machine busy)" - other work
compresses every ratio toward 1, so such a ratio neither passes nor misses. Runs recorded
without their load (older RUNS files) are never busy.
"""
import argparse
import json
import os
import statistics
import sys

SERVERS = ("samba", "rpcgate", "floor", "metrics")
# The side-by-side columns; "metrics" (rpcgate-epmd with --metrics) has its own section.
TABLE_SERVERS = SERVERS[:3]
ROWS = (("epm-map", 1), ("epm-map", 16), ("epm-map", 256), ("connect", 16))

# The targets (issue 6).
TARGET_CALLS_VS_SAMBA = 5.0  # ept_map @16: rpcgate >= 5x Samba's calls/s
TARGET_CALLS_VS_FLOOR = 0.7  # ept_map @16: rpcgate >= 0.7x the floor's calls/s
TARGET_CALLS_VS_FLOOR_13 = 0.8  # issue 13: at 16 and at 256 connections
TARGET_P99_VS_SAMBA = 1 / 3  # p99 @16: rpcgate <= 1/3 of Samba's
TARGET_IDLE_BYTES = 16 * 1024  # an idle connection costs rpcgate-epmd < 16 KiB of RSS
# Issue 15: serving metrics must not slow the call path measurably: ept_map @16 with --metrics
# within run-to-run noise of the same daemon without.
TARGET_METRICS_VS_PLAIN = 0.95

# More CPUs than this taken by other work before a run makes the run busy (2 cores here: a
# quarter of the machine). epm_side_by_side.sh --max-load passes its value in META.
DEFAULT_MAX_LOAD = 0.5
NOT_MEASURED_BUSY = "NOT MEASURED (machine busy)"

# Each ratio and the two servers it is computed from.
RATIO_SERVERS = {
    "calls_rpcgate_over_samba": ("rpcgate", "samba"),
    "calls_rpcgate_over_floor": ("rpcgate", "floor"),
    "p99_rpcgate_over_samba": ("rpcgate", "samba"),
    "calls_metrics_over_rpcgate": ("metrics", "rpcgate"),
    "p99_metrics_over_rpcgate": ("metrics", "rpcgate"),
}


def read_meta(path):
    meta, mirrors = {}, {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key == "mirror":
                samba_port, testsrv_port = value.split()
                mirrors[samba_port] = int(testsrv_port)
            elif key:
                meta[key] = value
    return meta, mirrors


def read_interfaces(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out.append({"uuid": parts[0], "version": parts[1], "port": int(parts[2])})
    return out


def read_runs(path, max_load):
    runs = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            mode, conns, server, rnd, file = fields[:5]
            with open(file) as r:
                result = json.load(r)
            load = None
            if len(fields) >= 8:
                other = float(fields[7])
                load = {"loadavg_1min_before": float(fields[5]),
                        "loadavg_1min_after": float(fields[6]),
                        "other_cpus_before": other, "busy": other > max_load}
            runs.append({"mode": mode, "connections": int(conns), "server": server,
                         "round": int(rnd), "order": len(runs) + 1, "load": load,
                         "result": result})
    return runs


def busy_runs(runs, mode, conns, servers):
    """The busy runs among `servers`' at (mode, conns), in the order they ran."""
    return [r for r in runs if (r["mode"], r["connections"]) == (mode, conns)
            and r["server"] in servers and r["load"] and r["load"]["busy"]]


def summarize(runs):
    summary = {}
    for mode, conns in ROWS:
        row = {}
        for server in SERVERS:
            mine = [r for r in runs
                    if (r["mode"], r["connections"], r["server"]) == (mode, conns, server)]
            rs = [r["result"] for r in mine]
            if not rs:
                continue
            row[server] = {
                "rounds": len(rs),
                "calls_per_s": statistics.median(r["calls_per_s"] for r in rs),
                "p50_us": statistics.median(r["p50_us"] for r in rs),
                "p99_us": statistics.median(r["p99_us"] for r in rs),
                "p999_us": statistics.median(r["p999_us"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "calls_per_s_each_round": [r["calls_per_s"] for r in rs],
                "p99_us_each_round": [r["p99_us"] for r in rs],
                "load_each_round": [r["load"] for r in mine],
                # CPU in the measured window (rpcgate-bench --server-pid): the load generator's
                # busy share of a CPU, and the server's CPU per call (None if not measured).
                "client_cpu_busy": median_of(rs, "client_cpu_busy"),
                "server_cpu_us_per_call": median_of(rs, "server_cpu_us_per_call"),
                "server_cpu_busy": median_of(rs, "server_cpu_busy"),
            }
        row["ratios"] = {
            "calls_rpcgate_over_samba": ratio(row, "calls_per_s", "rpcgate", "samba"),
            "calls_rpcgate_over_floor": ratio(row, "calls_per_s", "rpcgate", "floor"),
            "p99_rpcgate_over_samba": ratio(row, "p99_us", "rpcgate", "samba"),
        }
        # Runs recorded before the --metrics instance existed have no "metrics" ratios at all.
        if "metrics" in row:
            row["ratios"]["calls_metrics_over_rpcgate"] = ratio(row, "calls_per_s", "metrics",
                                                                "rpcgate")
            row["ratios"]["p99_metrics_over_rpcgate"] = ratio(row, "p99_us", "metrics", "rpcgate")
        # Per ratio: the busy runs it is computed from (server, round, their load), or None.
        row["busy"] = {}
        for name, servers in RATIO_SERVERS.items():
            if name not in row["ratios"]:
                continue
            busy = busy_runs(runs, mode, conns, servers)
            row["busy"][name] = [{"server": r["server"], "round": r["round"], **r["load"]}
                                 for r in busy] or None
        summary.setdefault(mode, {})[str(conns)] = row
    return summary


def median_of(results, field):
    values = [r[field] for r in results if r.get(field) is not None]
    return statistics.median(values) if values else None


def ratio(row, field, a, b):
    if a not in row or b not in row or not row[b][field]:
        return None
    return row[a][field] / row[b][field]


def fmt_num(v, width, digits=0):
    return ("{:>%d.%df}" % (width, digits)).format(v) if v is not None else "-".rjust(width)


def fmt_ratio(v, width, busy=None):
    """"0.78x"; with `busy` given (the table's column), "0.78x*" when the machine was busy
    before a run the ratio comes from and "0.78x " otherwise, so the numbers stay aligned."""
    mark = "" if busy is None else ("*" if busy else " ")
    return (("%.2fx" % v if v is not None else "-") + mark).rjust(width)


def busy_note(busy):
    """Footnote text for a row's busy runs: the load before each."""
    return ", ".join("%s round %d: other work %.2f CPUs (1-min load average %.2f)"
                     % (b["server"], b["round"], b["other_cpus_before"],
                        b["loadavg_1min_before"]) for b in busy)


def allocator_summary(path):
    if not path:
        return None
    with open(path) as f:
        j = json.load(f)
    benches = [{"name": b["name"], "cpu_time_ns": to_ns(b["cpu_time"], b.get("time_unit", "ns")),
                "real_time_ns": to_ns(b["real_time"], b.get("time_unit", "ns")),
                "iterations": b.get("iterations"), "items_per_second": b.get("items_per_second"),
                "error": b.get("error_message") if b.get("error_occurred") else None}
               for b in j.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"]
    return {"context": j.get("context", {}), "benchmarks": benches}


def to_ns(value, unit):
    return value * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}.get(unit, 1)


def allocator_text(a):
    if a is None:
        return "not available in this build (no allocator_benchmark: RPCGATE_BUILD_BENCHMARKS=OFF?)"
    plain = [b for b in a["benchmarks"] if b["name"].startswith("BM_AllocateRelease/")]
    rejected = [b for b in a["benchmarks"]
                if b["name"].startswith("BM_AllocateReleaseWithRejections/")]
    errors = [b["name"] for b in a["benchmarks"] if b["error"]]

    def span(bs):
        ts = [b["cpu_time_ns"] for b in bs if not b["error"]]
        if not ts:
            return "-"
        return "%.0f ns" % min(ts) if round(min(ts)) == round(max(ts)) else \
            "%.0f-%.0f ns" % (min(ts), max(ts))

    text = "allocate+release one port %s CPU (%d pool/fullness cases); with 3 bind-probe " \
           "rejections %s (%d cases)" % (span(plain), len(plain), span(rejected), len(rejected))
    if errors:
        text += "; ERRORS in " + ", ".join(errors)
    return text


def idle_result(path, wanted):
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def idle_text(idle, wanted):
    if idle is None:
        return "not available in this build (rpcgate-bench has no idle mode)"
    held = idle.get("connections_held")
    before, after = idle.get("rss_before_kib"), idle.get("rss_after_kib")
    per = idle.get("bytes_per_connection")
    text = "rpcgate-epmd holds %s of %d idle bound connections: %s per connection" % (
        held, wanted, "%.1f KiB" % (per / 1024) if per is not None else "?")
    if before is not None and after is not None:
        text += " (RSS %.1f -> %.1f MiB)" % (before / 1024, after / 1024)
    text += "; probe p50 %s us, max %s us, %s errors" % (
        fmt_opt(idle.get("probe_p50_us")), fmt_opt(idle.get("probe_max_us")),
        idle.get("probe_errors", "?"))
    return text


def fmt_2(v):
    return "%.2f" % v if isinstance(v, (int, float)) else "-"


def fmt_opt(v):
    return "%.0f" % v if isinstance(v, (int, float)) else "?"


def targets(summary, idle, wanted_idle, max_load):
    row = summary["epm-map"]["16"]
    r = row["ratios"]
    rpcgate_errors = row.get("rpcgate", {}).get("errors", 0)
    out = []

    def add(name, value_text, met, note=""):
        out.append({"target": name, "value": value_text,
                    "result": "N/A" if met is None else ("PASS" if met else "MISS"),
                    "note": note})

    def add_ratio(name, key, met_by):
        """A target on ratio `key` of the row: judged unless a run it comes from was busy."""
        v, busy = r[key], row["busy"][key]
        notes = ["rpcgate had %d errors" % rpcgate_errors] if rpcgate_errors else []
        if v is not None and busy:
            notes.insert(0, "other work above --max-load %g CPUs before %d run(s)"
                         % (max_load, len(busy)))
            out.append({"target": name, "value": fmt_ratio(v, 0, True).strip(),
                        "result": NOT_MEASURED_BUSY, "note": "; ".join(notes)})
            return
        add(name, fmt_ratio(v, 0).strip(),
            None if v is None else (met_by(v) and not rpcgate_errors), "; ".join(notes))

    add_ratio("ept_map @16: rpcgate calls/s >= 5x Samba's", "calls_rpcgate_over_samba",
              lambda v: v >= TARGET_CALLS_VS_SAMBA)
    add_ratio("ept_map @16: rpcgate calls/s >= 0.7x the floor's", "calls_rpcgate_over_floor",
              lambda v: v >= TARGET_CALLS_VS_FLOOR)
    add_ratio("p99 @16: rpcgate <= 1/3 of Samba's", "p99_rpcgate_over_samba",
              lambda v: v <= TARGET_P99_VS_SAMBA)
    # Issue 13: the engine must not cost the hot path its margin, at 16 and 256 connections.
    for conns in (16, 256):
        row_n = summary["epm-map"][str(conns)]
        v, busy = row_n["ratios"]["calls_rpcgate_over_floor"], row_n["busy"]["calls_rpcgate_over_floor"]
        name = "ept_map @%d: rpcgate calls/s >= %gx the floor's" % (conns, TARGET_CALLS_VS_FLOOR_13)
        if v is not None and busy:
            out.append({"target": name, "value": fmt_ratio(v, 0, True).strip(),
                        "result": NOT_MEASURED_BUSY,
                        "note": "other work above --max-load %g CPUs before %d run(s)"
                                % (max_load, len(busy))})
        else:
            add(name, fmt_ratio(v, 0).strip(), None if v is None else v >= TARGET_CALLS_VS_FLOOR_13)
    # Issue 15: --metrics against the same daemon without it (runs recorded before the
    # --metrics instance existed have none: no target then).
    row16 = summary["epm-map"]["16"]
    v = row16["ratios"].get("calls_metrics_over_rpcgate")
    busy = row16["busy"].get("calls_metrics_over_rpcgate")
    name = "ept_map @16: --metrics >= %gx calls/s without" % TARGET_METRICS_VS_PLAIN
    if v is not None and busy:
        out.append({"target": name, "value": fmt_ratio(v, 0, True).strip(),
                    "result": NOT_MEASURED_BUSY,
                    "note": "other work above --max-load %g CPUs before %d run(s)"
                            % (max_load, len(busy))})
    elif v is not None:
        add(name, fmt_ratio(v, 0).strip(), v >= TARGET_METRICS_VS_PLAIN)
    if idle is None:
        add("idle: < 16 KiB per connection, probe answered", "not measured", None,
            "rpcgate-bench idle not available in this build")
    else:
        per = idle.get("bytes_per_connection")
        held = idle.get("connections_held")
        probe_ok = idle.get("probe_errors") == 0 and idle.get("probe_p50_us") is not None
        met = per is not None and per < TARGET_IDLE_BYTES and probe_ok and held == wanted_idle
        note = []
        if held != wanted_idle:
            note.append("held %s of %d" % (held, wanted_idle))
        if not probe_ok:
            note.append("probe not answered cleanly")
        add("idle: < 16 KiB per connection, probe answered",
            "%.1f KiB, probe %s" % (per / 1024 if per is not None else float("nan"),
                                    "ok" if probe_ok else "FAILED"), met, "; ".join(note))
    return out


def table(meta, summary, idle, allocator, target_list, wanted_idle, max_load):
    lines = []
    cores = meta.get("nproc", "?")
    lines.append("EPM side by side: ept_map of winreg %s, client rpcgate-bench (1 thread), all on "
                 "127.0.0.1 in one network namespace" % meta.get("interface", "?"))
    lines.append("  Samba = %s samba-dcerpcd + rpcd_epmapper (:135); rpcgate = rpcgate-epmd "
                 "(:1135); floor = rpc-floor-server (:2135, canned answers)"
                 % meta.get("samba_version", "?").replace("Version ", ""))
    lines.append("  median of %s round(s), %s s each after %s s warmup, server order rotating; "
                 "%s CPU(s) shared by client and servers: %s; Linux %s; commit %s%s; %s%s"
                 % (meta.get("reps"), meta.get("duration_s"), meta.get("warmup_s"), cores,
                    meta.get("cpu_model", "?"), meta.get("kernel", "?"),
                    meta.get("git_commit", "?")[:12],
                    " (dirty)" if meta.get("git_dirty") == "true" else "", meta.get("date", "?"),
                    "; SMOKE RUN (numbers meaningless)" if meta.get("smoke") == "1" else ""))
    lines.append("  load average (1/5/15 min) %s at the start, %s at the end; a ratio marked * "
                 "comes from a run with more than %g CPUs of other work before it (--max-load)"
                 % (meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?"), max_load))
    lines.append("")
    lines.append("%-13s %29s  %15s  %26s  %11s  %s" % (
        "", "calls/s".center(29), "rpcgate /".center(15), "p99 us".center(26), "p99 rpcgate",
        "errors"))
    lines.append("%-13s %9s %9s %9s  %7s %7s  %8s %8s %8s  %11s  %s" % (
        "row", "Samba", "rpcgate", "floor", "Samba", "floor", "Samba", "rpcgate", "floor",
        "/ Samba", "S/r/f"))
    footnotes = []
    for mode, conns in ROWS:
        row = summary[mode][str(conns)]
        calls = [row.get(s, {}).get("calls_per_s") for s in TABLE_SERVERS]
        p99 = [row.get(s, {}).get("p99_us") for s in TABLE_SERVERS]
        errors = "/".join(str(row.get(s, {}).get("errors", "-")) for s in TABLE_SERVERS)
        r = row["ratios"]
        busy = {k: v for k, v in row["busy"].items() if "metrics" not in k}
        label = "%s  %d" % (mode, conns)
        lines.append("%-13s %s %s %s  %s %s  %s %s %s  %s  %s" % (
            label, fmt_num(calls[0], 9), fmt_num(calls[1], 9), fmt_num(calls[2], 9),
            fmt_ratio(r["calls_rpcgate_over_samba"], 7, bool(busy["calls_rpcgate_over_samba"])),
            fmt_ratio(r["calls_rpcgate_over_floor"], 7, bool(busy["calls_rpcgate_over_floor"])),
            fmt_num(p99[0], 8), fmt_num(p99[1], 8), fmt_num(p99[2], 8),
            fmt_ratio(r["p99_rpcgate_over_samba"], 11, bool(busy["p99_rpcgate_over_samba"])),
            errors))
        all_busy = busy_runs_of(busy)
        if all_busy:
            footnotes.append("* %s: machine busy, load before the row: %s"
                             % (label, busy_note(all_busy)))
    lines.append("")
    lines.append("CPU in the measured window (medians): each server's CPU per ept_map, and how "
                 "busy the load generator (1 thread) was")
    lines.append("%-13s %9s %9s %9s  %13s  %s" % ("row", "Samba us", "rpcgate", "floor",
                                                  "rpcgate/floor", "client CPUs busy S/r/f"))
    for mode, conns in ROWS:
        if mode != "epm-map":
            continue
        row = summary[mode][str(conns)]
        cpu = [row.get(s, {}).get("server_cpu_us_per_call") for s in TABLE_SERVERS]
        busy_client = "/".join(fmt_2(row.get(s, {}).get("client_cpu_busy")) for s in TABLE_SERVERS)
        rel = (cpu[1] / cpu[2]) if cpu[1] and cpu[2] else None
        lines.append("%-13s %9s %9s %9s  %13s  %s" % (
            "%s  %d" % (mode, conns), fmt_2(cpu[0]), fmt_2(cpu[1]), fmt_2(cpu[2]),
            "%.2fx" % rel if rel else "-", busy_client))
    lines.append("")
    section = metrics_section(summary, footnotes)
    lines.extend(section + [""] if section else [])
    lines.append("%-13s %s" % ("idle %d" % wanted_idle, idle_text(idle, wanted_idle)))
    lines.append("%-13s %s" % ("allocator", allocator_text(allocator)))
    lines.append("")
    lines.append("connect = per call: connect, bind, one ept_map, close (connection setup rate). "
                 "errors = summed over the rounds.")
    lines.extend(footnotes)
    lines.append("")
    lines.append("Targets (issues 6, 13 and 15)                             this run")
    for t in target_list:
        lines.append("  %-54s %-22s %s%s" % (t["target"], t["value"], t["result"],
                                             "  (" + t["note"] + ")" if t["note"] else ""))
    return "\n".join(lines) + "\n"


def metrics_section(summary, footnotes):
    """rpcgate-epmd with --metrics against the same without: calls/s, p99 and CPU per call
    (nothing for runs recorded before the --metrics instance existed)."""
    if not any("metrics" in summary[mode][str(conns)] for mode, conns in ROWS):
        return []
    lines = ["--metrics: rpcgate-epmd serving Prometheus metrics (:3135, every call counted and "
             "timed) against rpcgate-epmd without (:1135)",
             "%-13s %9s %9s %7s  %8s %8s %7s  %17s  %s" % (
                 "row", "rpcgate", "+metrics", "ratio", "p99 us", "+metrics", "ratio",
                 "CPU us/call r/+m", "errors r/+m")]
    for mode, conns in ROWS:
        row = summary[mode][str(conns)]
        plain, metrics = row.get("rpcgate", {}), row.get("metrics", {})
        r = {k: row["ratios"].get(k) for k in ("calls_metrics_over_rpcgate",
                                                "p99_metrics_over_rpcgate")}
        busy = {k: row["busy"].get(k) for k in r}
        label = "%s  %d" % (mode, conns)
        cpu = "%s/%s" % (fmt_2(plain.get("server_cpu_us_per_call")),
                         fmt_2(metrics.get("server_cpu_us_per_call")))
        lines.append("%-13s %s %s %s  %s %s %s  %17s  %s/%s" % (
            label, fmt_num(plain.get("calls_per_s"), 9), fmt_num(metrics.get("calls_per_s"), 9),
            fmt_ratio(r["calls_metrics_over_rpcgate"], 7, bool(busy["calls_metrics_over_rpcgate"])),
            fmt_num(plain.get("p99_us"), 8), fmt_num(metrics.get("p99_us"), 8),
            fmt_ratio(r["p99_metrics_over_rpcgate"], 7, bool(busy["p99_metrics_over_rpcgate"])),
            cpu, plain.get("errors", "-"), metrics.get("errors", "-")))
        mine = busy_runs_of({k: v for k, v in busy.items() if "metrics" in k})
        if mine:
            footnotes.append("* --metrics %s: machine busy, load before the row: %s"
                             % (label, busy_note(mine)))
    return lines


def busy_runs_of(busy):
    """The distinct busy runs behind a row's ratios, in server order."""
    seen = {}
    for runs in busy.values():
        for b in runs or ():
            seen.setdefault((SERVERS.index(b["server"]), b["round"]), b)
    return [seen[k] for k in sorted(seen)]


def plot(summary, meta, out_dir, plot_dir):
    dat = os.path.join(plot_dir, "plot.dat")
    with open(dat, "w") as f:
        f.write("# connections  calls/s: samba rpcgate floor  p99 us: samba rpcgate floor\n")
        for conns in (1, 16, 256):
            row = summary["epm-map"][str(conns)]
            vals = [row.get(s, {}).get("calls_per_s", float("nan")) for s in SERVERS]
            vals += [row.get(s, {}).get("p99_us", float("nan")) for s in SERVERS]
            f.write("%d %s\n" % (conns, " ".join("%g" % v for v in vals)))
    png = os.path.join(out_dir, "latest.png")
    title = "ept_map (winreg) side by side, median of %s x %s s; %s CPU(s), %s" % (
        meta.get("reps"), meta.get("duration_s"), meta.get("nproc", "?"), meta.get("date", "?"))
    if meta.get("smoke") == "1":
        title += " (SMOKE RUN)"
    lines = [
        'set terminal pngcairo size 1400,600 noenhanced font "DejaVu Sans,11"',
        "set encoding utf8",
        'set output "%s"' % png,
        'set multiplot layout 1,2 title "%s"' % title,
        "set logscale x 2",
        'set xtics ("1" 1, "16" 16, "256" 256)',
        "set xrange [0.7:370]",
        'set xlabel "connections (one call outstanding each)"',
        "set grid",
        "set key below horizontal maxcols 3 samplen 2 Left reverse",
        'set ylabel "ept_map calls/s"',
        "set yrange [0:*]",
        'plot "%s" using 1:2 with linespoints lw 2 pt 7 title "Samba rpcd_epmapper", \\' % dat,
        '     "" using 1:3 with linespoints lw 2 pt 5 title "rpcgate-epmd", \\',
        '     "" using 1:4 with linespoints lw 2 pt 9 dt 2 title "floor (rpc-floor-server)"',
        "set logscale y 10",
        "set yrange [*:*]",
        'set ylabel "p99 latency (µs, log)"',
        'plot "%s" using 1:5 with linespoints lw 2 pt 7 title "Samba rpcd_epmapper", \\' % dat,
        '     "" using 1:6 with linespoints lw 2 pt 5 title "rpcgate-epmd", \\',
        '     "" using 1:7 with linespoints lw 2 pt 9 dt 2 title "floor (rpc-floor-server)"',
        "unset multiplot",
    ]
    with open(os.path.join(plot_dir, "plot.gp"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meta", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--idle", default="")
    p.add_argument("--allocator", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--plot-dir", required=True)
    p.add_argument("--max-load", type=float, default=None,
                   help="CPUs of other work before a run above which it is busy (default: "
                        "META's max_load, else %g)" % DEFAULT_MAX_LOAD)
    a = p.parse_args()

    meta, mirrors = read_meta(a.meta)
    max_load = a.max_load if a.max_load is not None else float(
        meta.get("max_load", DEFAULT_MAX_LOAD))
    wanted_idle = int(meta.get("idle_connections", "0"))
    interfaces = read_interfaces(meta["samba_interfaces"])
    runs = read_runs(a.runs, max_load)
    summary = summarize(runs)
    idle = idle_result(a.idle, wanted_idle)
    allocator = allocator_summary(a.allocator)
    target_list = targets(summary, idle, wanted_idle, max_load)
    text = table(meta, summary, idle, allocator, target_list, wanted_idle, max_load)

    machine = {k: meta.get(k) for k in ("nproc", "kernel", "cpu_model", "samba_version", "date",
                                         "git_commit", "rpcgate_version", "loadavg_start",
                                         "loadavg_end")}
    machine["nproc"] = int(machine["nproc"]) if machine["nproc"] else None
    machine["git_dirty"] = meta.get("git_dirty") == "true"
    result = {
        "schema": "rpcgate epm_side_by_side 1",
        "machine": machine,
        "parameters": {
            "reps": int(meta["reps"]), "duration_s": float(meta["duration_s"]),
            "warmup_s": float(meta["warmup_s"]), "smoke": meta.get("smoke") == "1",
            "interface": meta.get("interface"), "client_threads": 1,
            "idle_connections": wanted_idle,
            "allocator_min_time_s": float(meta.get("allocator_min_time_s", "0")),
            "max_load": max_load,
            "quiet_window_s": float(meta["quiet_window_s"]) if "quiet_window_s" in meta
            else None,
        },
        "servers": {
            "samba": {"target": "127.0.0.1:135",
                      "software": "samba-dcerpcd + rpcd_epmapper, " + meta.get("samba_version", ""),
                      "interfaces": interfaces},
            "rpcgate": {"target": "127.0.0.1:1135",
                        "software": "rpcgate-epmd " + meta.get("rpcgate_version", ""),
                        "mirrors": [{"samba_port": int(k), "rpcgate_testsrv_port": v}
                                    for k, v in sorted(mirrors.items())]},
            "floor": {"target": "127.0.0.1:2135", "software": "rpc-floor-server (canned answers)"},
            "metrics": {"target": "127.0.0.1:3135",
                        "software": "rpcgate-epmd --metrics %s, same registrations as rpcgate"
                                    % meta.get("metrics_http", "?")},
        },
        "summary": summary,
        "idle": {"available": idle is not None, "result": idle},
        "allocator": {"available": allocator is not None, **(allocator or {})},
        "targets": target_list,
        "runs": runs,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "latest.txt"), "w") as f:
        f.write(text)
    plot(summary, meta, a.out, a.plot_dir)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
