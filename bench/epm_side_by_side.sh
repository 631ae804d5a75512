#!/usr/bin/env bash
# The endpoint mapper measured side by side: Samba's rpcd_epmapper, rpcgate-epmd and the floor
# server (rpc-floor-server: canned answers, what the machine allows), all three in one private
# network namespace, driven by the same client (rpcgate-bench) on the same interface; and a
# second rpcgate-epmd with --metrics (issue 15: serving Prometheus metrics must not slow the call
# path), reported as its ratio to the one without.
#
#   bench/epm_side_by_side.sh [--reps N] [--duration S] [--warmup S] [--out DIR] [--smoke]
#                             [--idle-connections N] [--max-load L]
#
# Root (unshare -n). What it does, in a new network namespace with only lo up:
#   1. starts Samba's EPM (bench/samba_epm.sh, 127.0.0.1:135), rpcgate-epmd (127.0.0.1:1135,
#      control socket in a scratch dir), rpc-floor-server (127.0.0.1:2135) and rpcgate-epmd with
#      --metrics 127.0.0.1:9135 (127.0.0.1:3135, "metrics" below; the same registrations);
#   2. mirrors Samba's registrations in rpcgate-epmd: for each port in Samba's
#      DIR/interfaces.txt one rpcgate-testsrv serving and registering every interface of that port
#      (--interface, --port 0: Samba holds its own ports), then checks with `rpcgate map` that
#      rpcgate-epmd answers ept_map for each with the port registered (and Samba and the floor
#      answer for winreg);
#   3. for REPS rounds, for 1, 16 and 256 connections, for each of the four in an order that rotates
#      (by one per connection count and per round): `rpcgate-bench epm-map --json` (ept_map of winreg 338cd001-...:1.0, which Samba
#      registers) for DURATION s after WARMUP s (before each Samba run one `rpcgate map` wakes
#      rpcd_epmapper, which exits after 10 s idle); then `rpcgate-bench connect` at 16 connections
#      the same way;
#   4. `rpcgate-bench idle` against rpcgate-epmd (when this build has it), and
#      build/bench/allocator_benchmark (Google Benchmark);
#   5. scrapes the metrics instance once (its counters must have counted the calls), prints the
#      table (medians over the rounds, ratios, the --metrics ratio, the issues' targets with
#      PASS/MISS, or NOT MEASURED when the machine was busy, below) and
#      writes OUT/latest.json (every raw number + machine info), OUT/latest.txt (the table) and
#      OUT/latest.png (gnuplot: calls/s and p99 against connections).
#
# A busy machine: other work compresses every ratio toward 1 (both servers then wait for the CPU
# alike). Before each run (one server at one connection count) the script measures the CPU that
# other work takes while everything here is idle - the machine's busy share over a quiet window
# of 1 s (0.2 s with --smoke) from /proc/stat, in CPUs - and records it with the 1-minute load
# average before and after the run. Not the load average itself as the judge: this benchmark's
# own previous runs keep it near the core count (a quiet run went from 0.72 to 1.80), so it
# cannot tell other work from ours. A run with more than --max-load CPUs of other work (default
# 0.5, env BENCH_MAX_LOAD; on a 2-core machine that is a quarter of it) marks the ratios it
# enters with "*" and a footnote, and the targets built on them say "NOT MEASURED (machine
# busy)" instead of PASS/MISS. --max-load 0 marks any other work at all; a large value (99)
# marks nothing.
#
# OUT is bench/results by default; with --smoke (reps 1, duration 0.3 s, warmup 0.2 s, 200 idle
# connections, a tiny allocator min time: the CI check that it all runs) a new temp dir unless
# --out is given. Every flag has an environment form: BENCH_REPS, BENCH_DURATION, BENCH_WARMUP,
# BENCH_OUT, BENCH_IDLE_CONNECTIONS, BENCH_MAX_LOAD; BENCH_TIMEOUT bounds the whole run (seconds; default from
# the parameters). Binaries: RPCGATE_BIN (default build/bin), RPCGATE_BENCH_BIN (default
# build/bench).
#
# Exit status: 0 when every run completed - whether the targets were met or not (it is a
# measurement, not a test); 1 when something could not start, a check failed or a run failed
# (the message names it; the scratch dir with every log is kept); 2 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
WINREG=338cd001-2244-31f1-aaaa-900038001003:1.0
SAMBA_PORT=135
EPMD_PORT=1135
FLOOR_PORT=2135
METRICS_PORT=3135
METRICS_HTTP=127.0.0.1:9135
# The canned ept_map answer of rpc-floor-server (floor_server.cc).
FLOOR_MAPPED_PORT=49664

die() { echo "epm_side_by_side: $*" >&2; exit 1; }
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
bad_usage() { echo "epm_side_by_side: $*" >&2; echo "(--help for usage)" >&2; exit 2; }

REPS=${BENCH_REPS:-}
DURATION=${BENCH_DURATION:-}
WARMUP=${BENCH_WARMUP:-}
OUT=${BENCH_OUT:-}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-}
MAX_LOAD=${BENCH_MAX_LOAD:-0.5}
SMOKE=0
# Re-executed inside the namespace with the parsed values (see below); never set this yourself.
IN_NETNS=${EPM_SBS_IN_NETNS:-0}

while [ $# -gt 0 ]; do
  case $1 in
    --reps) [ $# -ge 2 ] || bad_usage "--reps needs a value"; REPS=$2; shift 2 ;;
    --duration) [ $# -ge 2 ] || bad_usage "--duration needs a value"; DURATION=$2; shift 2 ;;
    --warmup) [ $# -ge 2 ] || bad_usage "--warmup needs a value"; WARMUP=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || bad_usage "--out needs a value"; OUT=$2; shift 2 ;;
    --idle-connections)
      [ $# -ge 2 ] || bad_usage "--idle-connections needs a value"; IDLE_CONNECTIONS=$2; shift 2 ;;
    --max-load) [ $# -ge 2 ] || bad_usage "--max-load needs a value"; MAX_LOAD=$2; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    -h | --help) usage 0 ;;
    *) bad_usage "unknown argument: $1" ;;
  esac
done

if [ "$SMOKE" = 1 ]; then
  REPS=${REPS:-1}; DURATION=${DURATION:-0.3}; WARMUP=${WARMUP:-0.2}
  IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-200}; ALLOCATOR_MIN_TIME=0.001; QUIET_WINDOW=0.2
else
  REPS=${REPS:-3}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
  IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}; ALLOCATOR_MIN_TIME=0.2; QUIET_WINDOW=1
fi
[[ $REPS =~ ^[1-9][0-9]?$ ]] || bad_usage "--reps must be 1-99, not '$REPS'"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad_usage "--duration must be seconds, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad_usage "--warmup must be seconds, not '$WARMUP'"
[[ $IDLE_CONNECTIONS =~ ^[1-9][0-9]{0,5}$ ]] ||
  bad_usage "--idle-connections must be a count, not '$IDLE_CONNECTIONS'"
[[ $MAX_LOAD =~ ^[0-9]{1,3}(\.[0-9]+)?$ ]] ||
  bad_usage "--max-load must be a number of CPUs (e.g. 0.5), not '$MAX_LOAD'"

BIN=${RPCGATE_BIN:-$ROOT/build/bin}
BENCH_BIN=${RPCGATE_BENCH_BIN:-$ROOT/build/bench}

# ---------------------------------------------------------------------------------------------
# Outside the namespace: check what is needed, then run this script again under unshare -n,
# bounded by timeout (which signals the whole process group; the EXIT trap stops Samba, which
# runs in its own session).
if [ "$IN_NETNS" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "needs root (unshare -n, Samba on port 135): run it as root or via 'make bench'"
  for b in rpcgate-bench rpcgate-epmd rpcgate-testsrv rpc-floor-server rpcgate; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b (build it: cmake --build build --target $b; or set RPCGATE_BIN)"
  done
  for t in unshare ip ss timeout gnuplot "$PY"; do
    command -v "$t" >/dev/null || die "missing $t (make deps installs it)"
  done
  [ -x /usr/libexec/samba/samba-dcerpcd ] || die "missing Samba (apt-get install samba; make deps)"
  if [ -z "$OUT" ]; then
    if [ "$SMOKE" = 1 ]; then OUT=$(mktemp -d /tmp/epm-sbs-smoke.XXXXXX); else OUT=$ROOT/bench/results; fi
  fi
  mkdir -p "$OUT" || die "cannot create the output directory $OUT"
  OUT=$(cd "$OUT" && pwd)
  # Runs: REPS x (3 connection counts + connect) x 4 servers, each warmup + duration + slack.
  runs=$((REPS * 16))
  budget=${BENCH_TIMEOUT:-$("$PY" -c "print(int(90 + $runs * ($WARMUP + $DURATION + $QUIET_WINDOW + 6) + 30 + $IDLE_CONNECTIONS / 100 + (30 if $SMOKE else 90)))")}
  echo "epm_side_by_side: $runs runs of ${WARMUP}+${DURATION} s, $REPS round(s); at most ${budget} s; results in $OUT" >&2
  export EPM_SBS_IN_NETNS=1 RPCGATE_BIN="$BIN" RPCGATE_BENCH_BIN="$BENCH_BIN"
  export BENCH_REPS="$REPS" BENCH_DURATION="$DURATION" BENCH_WARMUP="$WARMUP" BENCH_OUT="$OUT"
  export BENCH_IDLE_CONNECTIONS="$IDLE_CONNECTIONS" EPM_SBS_SMOKE="$SMOKE"
  export EPM_SBS_ALLOCATOR_MIN_TIME="$ALLOCATOR_MIN_TIME"
  export BENCH_MAX_LOAD="$MAX_LOAD" EPM_SBS_QUIET_WINDOW="$QUIET_WINDOW"
  rc=0
  timeout --kill-after=15 "$budget" unshare -n /bin/bash "${BASH_SOURCE[0]}" || rc=$?
  [ "$rc" != 124 ] || die "did not finish within ${budget} s (BENCH_TIMEOUT); stopped"
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside the namespace.
SMOKE=${EPM_SBS_SMOKE:-0}
ALLOCATOR_MIN_TIME=${EPM_SBS_ALLOCATOR_MIN_TIME:-0.2}
QUIET_WINDOW=${EPM_SBS_QUIET_WINDOW:-1}
ip link set lo up || die "cannot bring lo up in the new namespace"
# 10000 idle connections need as many descriptors in rpcgate-epmd and in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

S=$(mktemp -d /tmp/epm-sbs.XXXXXX)
# Other work on the machine skews every number: record the load around the measurement.
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PIDS=()      # rpcgate-testsrv ..., rpcgate-epmd (x2), rpc-floor-server: stopped in this order
TESTSRV_PIDS=()
cleanup() {
  local rc=$? pid i left
  set +e
  trap - EXIT INT TERM HUP
  for pid in "${TESTSRV_PIDS[@]}" "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    left=0
    for pid in "${TESTSRV_PIDS[@]}" "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${TESTSRV_PIDS[@]}" "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  "$HERE/samba_epm.sh" stop "$S/samba" >/dev/null 2>&1 ||
    echo "epm_side_by_side: could not stop Samba (see $S/samba/log)" >&2
  if [ "$rc" = 0 ]; then
    rm -rf "$S"
  else
    echo "epm_side_by_side: failed (exit $rc); logs kept in $S" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# $1 = file a started server writes `port=N` to, $2 = its pid, $3 = what it is. Prints N.
wait_port_line() {
  local f=$1 pid=$2 what=$3 i
  for ((i = 0; i < 100; i++)); do
    if grep -q '^port=' "$f" 2>/dev/null; then
      sed -n 's/^port=//p' "$f" | head -n 1
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || die "$what exited before it printed port=N: $(tail -n 3 "$f.err" 2>/dev/null)"
    sleep 0.1
  done
  die "$what did not print port=N within 10 s"
}

# `rpcgate map` of $2 on 127.0.0.1:$1; prints the mapped port.
map_port() {
  local out
  out=$("$BIN/rpcgate" map 127.0.0.1 "$2" --port "$1" --timeout 5 2>"$S/map.err") ||
    die "rpcgate map $2 on 127.0.0.1:$1 failed: $(cat "$S/map.err")"
  [[ $out =~ \[([0-9]+)\]$ ]] || die "rpcgate map $2 on 127.0.0.1:$1 answered '$out', not a binding with a port"
  echo "${BASH_REMATCH[1]}"
}

# --- start the three servers ---
echo "== starting Samba's EPM (127.0.0.1:$SAMBA_PORT), rpcgate-epmd (127.0.0.1:$EPMD_PORT), rpc-floor-server (127.0.0.1:$FLOOR_PORT), rpcgate-epmd --metrics $METRICS_HTTP (127.0.0.1:$METRICS_PORT)" >&2
mkdir -p "$S/samba"
"$HERE/samba_epm.sh" start "$S/samba" >"$S/samba.out" || die "Samba's endpoint mapper did not start (bench/samba_epm.sh start)"
grep -q "^${WINREG%:*} ${WINREG#*:} [0-9]*$" "$S/samba/interfaces.txt" ||
  die "Samba did not register winreg ${WINREG} over TCP (see $S/samba/interfaces.txt)"

"$BIN/rpc-floor-server" --listen "127.0.0.1:$FLOOR_PORT" >"$S/floor.out" 2>"$S/floor.out.err" &
FLOOR_PID=$!
PIDS+=($!)
[ "$(wait_port_line "$S/floor.out" "${PIDS[-1]}" rpc-floor-server)" = "$FLOOR_PORT" ] ||
  die "rpc-floor-server is not on port $FLOOR_PORT"

# $1 = name (control socket $S/$1.sock, log $S/$1.log), $2 = port, then extra options. Sets
# STARTED_PID.
start_epmd() {
  local name=$1 port=$2 i
  shift 2
  "$BIN/rpcgate-epmd" --listen "127.0.0.1:$port" --control "$S/$name.sock" --log-level warn "$@" \
    >"$S/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS=("$STARTED_PID" "${PIDS[@]}")
  for ((i = 0; i < 100; i++)); do
    [ -S "$S/$name.sock" ] && [ -n "$(ss -Hltn "sport = :$port")" ] && break
    kill -0 "$STARTED_PID" 2>/dev/null || die "rpcgate-epmd ($name) exited at startup: $(tail -n 5 "$S/$name.log")"
    sleep 0.1
  done
  [ -S "$S/$name.sock" ] || die "rpcgate-epmd ($name) did not create its control socket within 10 s: $(tail -n 5 "$S/$name.log")"
}
start_epmd epmd "$EPMD_PORT"
EPMD_PID=$STARTED_PID
start_epmd epmd-metrics "$METRICS_PORT" --metrics "$METRICS_HTTP"
EPMD_METRICS_PID=$STARTED_PID

# Mirror Samba's registrations: one rpcgate-testsrv per Samba port (the EPM's own 135 entry is
# rpcgate-epmd's own), each serving and registering every interface of that port.
declare -A GROUP=()     # samba port -> "--interface U:M.m ..."
declare -A MIRROR=()    # samba port -> rpcgate-testsrv port
declare -A MIRROR_M=()  # the same for the --metrics instance
while read -r uuid version port; do
  [ -n "$port" ] || continue
  [ "$port" != "$SAMBA_PORT" ] || continue
  GROUP[$port]+=" --interface $uuid:$version"
done <"$S/samba/interfaces.txt"
[ "${#GROUP[@]}" -gt 0 ] || die "no Samba interface outside port $SAMBA_PORT in $S/samba/interfaces.txt"
for port in "${!GROUP[@]}"; do
  # shellcheck disable=SC2086 # word splitting of the --interface list is intended
  "$BIN/rpcgate-testsrv" --epmd "$S/epmd.sock" --port 0 --listen 127.0.0.1 \
    --annotation "mirror of Samba port $port" ${GROUP[$port]} \
    >"$S/testsrv.$port.out" 2>"$S/testsrv.$port.out.err" &
  TESTSRV_PIDS+=($!)
  MIRROR[$port]=$(wait_port_line "$S/testsrv.$port.out" "${TESTSRV_PIDS[-1]}" "rpcgate-testsrv (mirror of Samba port $port)")
  # shellcheck disable=SC2086 # word splitting of the --interface list is intended
  "$BIN/rpcgate-testsrv" --epmd "$S/epmd-metrics.sock" --port 0 --listen 127.0.0.1 \
    --annotation "mirror of Samba port $port" ${GROUP[$port]} \
    >"$S/testsrv-m.$port.out" 2>"$S/testsrv-m.$port.out.err" &
  TESTSRV_PIDS+=($!)
  MIRROR_M[$port]=$(wait_port_line "$S/testsrv-m.$port.out" "${TESTSRV_PIDS[-1]}" "rpcgate-testsrv (mirror of Samba port $port, --metrics epmd)")
done

# --- check before measuring ---
while read -r uuid version port; do
  if [ -z "$port" ] || [ "$port" = "$SAMBA_PORT" ]; then continue; fi
  got=$(map_port "$EPMD_PORT" "$uuid:$version")
  [ "$got" = "${MIRROR[$port]}" ] ||
    die "rpcgate-epmd maps $uuid v$version to port $got, registered at ${MIRROR[$port]}"
  got=$(map_port "$METRICS_PORT" "$uuid:$version")
  [ "$got" = "${MIRROR_M[$port]}" ] ||
    die "rpcgate-epmd --metrics maps $uuid v$version to port $got, registered at ${MIRROR_M[$port]}"
done <"$S/samba/interfaces.txt"
samba_winreg=$(awk -v u="${WINREG%:*}" -v v="${WINREG#*:}" '$1 == u && $2 == v {print $3; exit}' "$S/samba/interfaces.txt")
got=$(map_port "$SAMBA_PORT" "$WINREG")
[ "$got" = "$samba_winreg" ] || die "Samba maps winreg to port $got, it registered $samba_winreg"
got=$(map_port "$FLOOR_PORT" "$WINREG")
[ "$got" = "$FLOOR_MAPPED_PORT" ] || die "rpc-floor-server maps winreg to $got, not its canned $FLOOR_MAPPED_PORT"
{
  echo "== checked: ept_map(winreg) answers on all three; rpcgate-epmd mirrors $(grep -vc " $SAMBA_PORT$" "$S/samba/interfaces.txt") Samba interface(s) on ${#GROUP[@]} port(s):"
  for port in "${!GROUP[@]}"; do echo "   Samba port $port -> rpcgate-testsrv port ${MIRROR[$port]}:${GROUP[$port]//--interface /}"; done
} >&2

# --- measure ---
NAMES=(samba rpcgate floor metrics)
declare -A TARGET=([samba]=127.0.0.1:$SAMBA_PORT [rpcgate]=127.0.0.1:$EPMD_PORT [floor]=127.0.0.1:$FLOOR_PORT [metrics]=127.0.0.1:$METRICS_PORT)
mkdir -p "$S/runs"
: >"$S/runs.txt"
run_timeout=$("$PY" -c "print(int($WARMUP + $DURATION + 30))")
total=$((REPS * 16))
n=0
# loadavg_1min, other_cpus (the CPUs other work takes over QUIET_WINDOW s), is_busy: shared with
# fwd_side_by_side.sh.
# shellcheck source=bench/quiet_machine.sh
. "$HERE/quiet_machine.sh"

# $1 mode, $2 connections, $3 server name, $4 round
measure() {
  local mode=$1 conns=$2 name=$3 round=$4 f summary other load_before load_after busy=
  f="$S/runs/$mode.$conns.$name.$round.json"
  n=$((n + 1))
  # Before the Samba wake-up below: rpcd_epmapper's start would count as other work.
  other=$(other_cpus)
  if [ "$name" = samba ]; then
    # rpcd_epmapper exits after 10 s idle: start it now, not inside the measurement.
    map_port "$SAMBA_PORT" "$WINREG" >/dev/null
  fi
  # The server's CPU per call in the measured window (rpcgate-bench --server-pid): what each
  # server costs, whether or not the load generator is the bottleneck. Samba's is the
  # rpcd_epmapper process answering.
  local pid=
  case $name in
    rpcgate) pid=$EPMD_PID ;;
    metrics) pid=$EPMD_METRICS_PID ;;
    floor) pid=$FLOOR_PID ;;
    samba) pid=$(pgrep -n -x rpcd_epmapper || true) ;;
  esac
  load_before=$(loadavg_1min)
  timeout "$run_timeout" "$BIN/rpcgate-bench" "$mode" --target "${TARGET[$name]}" --interface "$WINREG" \
    --connections "$conns" --duration "$DURATION" --warmup "$WARMUP" ${pid:+--server-pid "$pid"} \
    --json >"$f" 2>"$f.err" ||
    die "run $mode $conns connections against $name (${TARGET[$name]}), round $round failed (exit $?): $(tail -n 3 "$f.err")"
  load_after=$(loadavg_1min)
  echo "$mode $conns $name $round $f $load_before $load_after $other" >>"$S/runs.txt"
  summary=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); s=j.get("server_cpu_us_per_call"); print("%.0f calls/s, p99 %.0f us, %d errors, client %.2f CPUs, server %s" % (j["calls_per_s"], j["p99_us"], j["errors"], j.get("client_cpu_busy", 0), "%.2f CPUs %.2f us/call" % (j["server_cpu_busy"], s) if s is not None else "-"))' "$f")
  is_busy "$other" "$MAX_LOAD" && busy=" - MACHINE BUSY"
  printf '  [%2d/%d] round %d  %-7s %3d conns  %-7s  %s; other work %s CPUs, load %s -> %s%s\n' \
    "$n" "$total" "$round" "$mode" "$conns" "$name" "$summary" "$other" "$load_before" \
    "$load_after" "$busy" >&2
}

echo "== measuring: $REPS round(s), ${WARMUP} s warmup + ${DURATION} s per run, ept_map of winreg $WINREG" >&2
# Who goes first moves on by one from one connection count to the next and from one round to the
# next, so over 4 rounds each server goes first, second, third and fourth once at every count.
for ((round = 1; round <= REPS; round++)); do
  ci=0
  for conns in 1 16 256; do
    for k in 0 1 2 3; do
      measure epm-map "$conns" "${NAMES[$(((round - 1 + ci + k) % 4))]}" "$round"
    done
    ci=$((ci + 1))
  done
done
for ((round = 1; round <= REPS; round++)); do
  for k in 0 1 2 3; do
    measure connect 16 "${NAMES[$(((round - 1 + k) % 4))]}" "$round"
  done
done

# The --metrics instance really was instrumented: one scrape, its ept_map calls counted.
"$PY" - "http://$METRICS_HTTP/metrics" >"$S/metrics.txt" 2>"$S/metrics.err" <<'PY' ||
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
sys.stdout.write(text)
calls = sum(float(v) for v in re.findall(
    r'^rpcgate_epmd_calls_total\{[^}]*interface="epm"[^}]*opnum="3"[^}]*\} (\S+)$', text, re.M))
if calls < 1:
    sys.exit("no ept_map counted in rpcgate_epmd_calls_total")
PY
  die "the --metrics rpcgate-epmd did not count the calls at $METRICS_HTTP: $(tail -n 3 "$S/metrics.err")"
echo "== metrics: $(grep -c '^rpcgate_epmd_' "$S/metrics.txt") rpcgate_epmd_ samples scraped from $METRICS_HTTP" >&2

IDLE_JSON=
# (CLI11 answers --help with the top-level help, exit 0, for a subcommand it does not know: look
# for the idle mode's own option too.)
if "$BIN/rpcgate-bench" idle --help 2>/dev/null | grep -q -- --server-pid; then
  echo "== idle: $IDLE_CONNECTIONS connections held to rpcgate-epmd (pid $EPMD_PID)" >&2
  IDLE_JSON=$S/idle.json
  timeout $((60 + IDLE_CONNECTIONS / 50)) "$BIN/rpcgate-bench" idle --target "127.0.0.1:$EPMD_PORT" \
    --connections "$IDLE_CONNECTIONS" --server-pid "$EPMD_PID" --json >"$IDLE_JSON" 2>"$IDLE_JSON.err" ||
    die "rpcgate-bench idle with $IDLE_CONNECTIONS connections failed (exit $?): $(tail -n 3 "$IDLE_JSON.err")"
else
  echo "== idle: rpcgate-bench idle is not available in this build" >&2
fi

ALLOCATOR_JSON=
if [ -x "$BENCH_BIN/allocator_benchmark" ]; then
  echo "== allocator: $BENCH_BIN/allocator_benchmark (min time ${ALLOCATOR_MIN_TIME} s)" >&2
  ALLOCATOR_JSON=$S/allocator.json
  timeout 120 "$BENCH_BIN/allocator_benchmark" --benchmark_format=json \
    --benchmark_min_time="$ALLOCATOR_MIN_TIME" >"$ALLOCATOR_JSON" 2>"$ALLOCATOR_JSON.err" ||
    die "allocator_benchmark failed (exit $?): $(tail -n 3 "$ALLOCATOR_JSON.err")"
else
  echo "== allocator: no $BENCH_BIN/allocator_benchmark in this build" >&2
fi

# --- report ---
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
samba_version=$(/usr/sbin/smbd --version 2>/dev/null || dpkg-query -W -f='${Version}' samba 2>/dev/null || echo unknown)
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[ "$commit" = unknown ] || git -C "$ROOT" diff --quiet HEAD 2>/dev/null || dirty=true
{
  echo "nproc=$(nproc)"
  echo "loadavg_start=$LOAD_START"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel=$(uname -r)"
  echo "cpu_model=${cpu:-unknown}"
  echo "samba_version=$samba_version"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git_commit=$commit"
  echo "git_dirty=$dirty"
  echo "rpcgate_version=$("$BIN/rpcgate" --version 2>/dev/null || echo unknown)"
  echo "reps=$REPS"
  echo "duration_s=$DURATION"
  echo "warmup_s=$WARMUP"
  echo "smoke=$SMOKE"
  echo "interface=$WINREG"
  echo "idle_connections=$IDLE_CONNECTIONS"
  echo "allocator_min_time_s=$ALLOCATOR_MIN_TIME"
  echo "max_load=$MAX_LOAD"
  echo "quiet_window_s=$QUIET_WINDOW"
  echo "samba_interfaces=$S/samba/interfaces.txt"
  echo "metrics_http=$METRICS_HTTP"
  for port in "${!GROUP[@]}"; do echo "mirror=$port ${MIRROR[$port]}"; done
} >"$S/meta.txt"

"$PY" "$HERE/epm_side_by_side_report.py" --meta "$S/meta.txt" --runs "$S/runs.txt" \
  --idle "${IDLE_JSON:-}" --allocator "${ALLOCATOR_JSON:-}" --out "$BENCH_OUT" --plot-dir "$S" ||
  die "the report could not be written (epm_side_by_side_report.py)"
gnuplot "$S/plot.gp" 2>"$S/gnuplot.err" || die "gnuplot failed: $(tail -n 3 "$S/gnuplot.err")"
[ -s "$BENCH_OUT/latest.png" ] || die "gnuplot wrote no $BENCH_OUT/latest.png"
echo "== wrote $BENCH_OUT/latest.json, latest.txt, latest.png" >&2
