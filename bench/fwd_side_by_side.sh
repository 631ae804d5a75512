#!/usr/bin/env bash
# rpcgate-fwd measured side by side with a direct route (issue 14, "Performance"): the same client,
# the same server processes, the same forwarding namespace, in the same run - once through the
# firewall and once around it.
#
#   bench/fwd_side_by_side.sh [--reps N] [--duration S] [--warmup S] [--out DIR] [--smoke]
#                             [--idle-connections N] [--max-load L] [--pin-cpus]
#
# Root (ip netns, nftables). Three network namespaces of its own, like tests/fwd_topology.py:
#
#   clients   c0  10.135.1.2/24 (checks) and 10.135.1.10-17/24 (the load's 8 client addresses)
#      | veth
#   firewall  f0 10.135.1.1/24 | f1 10.135.2.1/24, ip_forward=1, rpcgate-fwd (router mode):
#             --allow rpcecho --servers 10.135.2.2/32 --pinhole-timeout 3600s
#      | veth
#   servers   s0  10.135.2.2/24 (governed) and 10.135.2.3/24 (not governed); rpcgate-epmd on
#             0.0.0.0:135, rpcgate-echo registered with it (a dynamic port, on every address)
#
# THROUGH = to 10.135.2.2: TCP 135 and the pinholes are diverted to rpcgate-fwd (tproxy), which
# relays them from the client's own address. DIRECT = to 10.135.2.3: the same packets through the
# same namespace, veths and forwarding, but rpcgate-fwd does not govern that address (--servers),
# so the kernel routes them (the table's rules are still evaluated and do not match). Why this is
# a fair floor: everything but rpcgate-fwd is shared - the client binary and its addresses, the
# very same epmd and echo processes (they answer on both addresses), the route and its hops - and
# both paths are measured alternately within one run, so the machine's state is the same too.
# What the ratio through/direct measures is therefore the firewall's relay (user-space copy,
# inspection, pinhole installs), nothing else; rpcgate-fwd's "allow only rpcecho" is all the
# policy the through runs need (the endpoint mapper's own interface is always allowed on 135).
#
# What it measures (REPS rounds; in each, for every row, both paths, the order alternating from
# one row to the next and from one round to the next):
#   epm-map 16     rpcgate-bench epm-map: ept_map of rpcecho, 16 connections from the 8 client
#                  addresses: calls/s and p99. Through, each answer opens or refreshes the
#                  client's pinhole (a kernel set update before the answer is released): the
#                  pinhole install time p50/p99 of the run comes from rpcgate-fwd's decision
#                  records of that run ("install_us"), and its `status --json` after the run
#                  ("pinhole_install_us", the daemon's last 4096) is kept beside it.
#   echodata 1/16  rpcgate-bench echo --op echodata --size 65536 at 1 and 16 connections: MB/s
#                  each way (64 KiB out and 64 KiB back per call), through the pinholes opened at
#                  set-up vs direct; issue target: through >= 0.8x direct. These rows have a third
#                  path, FLOOR: rpc-relay-floor (bench/relay_floor.cc) in the firewall namespace
#                  (and on its CPU with --pin-cpus), 10.135.1.1:40135 -> the direct address: a
#                  TCP relay that moves bytes as rpcgate-fwd's copy path does and does nothing
#                  else (no tproxy, no inspection). floor/direct is what terminating TCP twice
#                  costs any relay on this machine; through/floor is rpcgate-fwd's own share.
#   reconnect 16   rpcgate-bench echo --reconnect (connect, bind rpcecho, AddOne, close per call):
#                  new connections per second through a pinhole vs direct.
#   The through runs pass rpcgate-fwd's pid as --server-pid (its CPU per call); the direct runs
#   the server's (rpcgate-epmd or rpcgate-echo), for scale.
#   idle N         run first, while rpcgate-fwd is fresh (memory freed by earlier connections
#                  would stay in its heap): rpcgate-bench idle --bind rpcecho, N idle bound
#                  rpcecho connections through the pinholes from the 8 client addresses (default
#                  1000; rpcgate-fwd allows 256 per client); rpcgate-fwd's RSS growth and
#                  descriptors per relayed connection, and
#                  probes (connect, bind, AddOne) meanwhile.
#
# --pin-cpus (env FWD_BENCH_PIN=1): rpcgate-fwd runs alone on the last CPU, and the client and
# the servers on the others (taskset), on both paths. Without it, all of them share every CPU,
# so the relay's CPU is taken from the client and the server it relays for, which a firewall on
# its own machine (router mode) does not do; with it, the direct path gets the same CPUs for the
# client and the servers and leaves the last one to the kernel's forwarding. Both are real
# deployments' bounds: the firewall sharing the servers' machine (host mode) and a firewall with
# a CPU of its own. Results then go to OUT/fwd-pinned-latest.{json,txt}. The pinned pass judges
# the bulk target at 1 connection only (neither path CPU-bound): at 16 connections the direct
# path has one CPU where the through path also has the relay's, so its ratio is printed, N/A.
#
# A busy machine (see bench/README.md): before each run the CPUs other work takes are measured
# over a quiet window (1 s; 0.2 s with --smoke) with bench/quiet_machine.sh, as
# epm_side_by_side.sh does; above --max-load (default 0.5, env BENCH_MAX_LOAD) the run is busy:
# its ratios are marked "*" and the targets built on them say NOT MEASURED (machine busy).
#
# Output: the table on stdout and OUT/fwd-latest.txt, every raw number in OUT/fwd-latest.json
# (bench/fwd_side_by_side_report.py). OUT is bench/results; with --smoke (1 round, 0.3 s runs,
# 0.2 s warmup, 100 idle connections, no busy verdicts: --max-load 99) a new temp dir unless --out.
# Environment forms: FWD_BENCH_REPS, FWD_BENCH_DURATION, FWD_BENCH_WARMUP, FWD_BENCH_OUT,
# FWD_BENCH_IDLE_CONNECTIONS, BENCH_MAX_LOAD; FWD_BENCH_TIMEOUT bounds the whole run (seconds).
# Binaries: RPCGATE_BIN (default build/bin). FWD_BENCH_KEEP=1 keeps the scratch dir (every log).
#
# Exit status: 0 when every run completed, targets met or not (a measurement, not a test); 1 when
# something could not start, a check failed or a run failed twice (a run that fails is retried
# once; the report lists each retry and why) - the scratch dir with every log is then kept and
# named; 2 bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
RPCECHO=60a15ec5-4de8-11d7-a637-005056a20182:1.0
SERVER_THROUGH=10.135.2.2
SERVER_DIRECT=10.135.2.3
CHECK_CLIENT=10.135.1.2
LOAD_SOURCES=(10.135.1.10 10.135.1.11 10.135.1.12 10.135.1.13 10.135.1.14 10.135.1.15 10.135.1.16 10.135.1.17)
ECHO_SIZE=65536
RELAY_FLOOR_PORT=40135  # rpc-relay-floor's listener on the firewall's client-side address

die() { echo "fwd_side_by_side: $*" >&2; exit 1; }
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}
bad_usage() { echo "fwd_side_by_side: $*" >&2; echo "(--help for usage)" >&2; exit 2; }

REPS=${FWD_BENCH_REPS:-}
DURATION=${FWD_BENCH_DURATION:-}
WARMUP=${FWD_BENCH_WARMUP:-}
OUT=${FWD_BENCH_OUT:-}
IDLE_CONNECTIONS=${FWD_BENCH_IDLE_CONNECTIONS:-}
MAX_LOAD=${BENCH_MAX_LOAD:-}
SMOKE=${FWD_SBS_SMOKE:-0}
PIN=${FWD_BENCH_PIN:-0}
IN_NETNS=${FWD_SBS_INNER:-0}  # re-executed under timeout (below); never set this yourself

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
    --pin-cpus) PIN=1; shift ;;
    -h | --help) usage 0 ;;
    *) bad_usage "unknown argument: $1" ;;
  esac
done

if [ "$SMOKE" = 1 ]; then
  REPS=${REPS:-1}; DURATION=${DURATION:-0.3}; WARMUP=${WARMUP:-0.2}
  IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-100}; MAX_LOAD=${MAX_LOAD:-99}; QUIET_WINDOW=0.2
else
  REPS=${REPS:-3}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}
  IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-1000}; MAX_LOAD=${MAX_LOAD:-0.5}; QUIET_WINDOW=1
fi
[[ $REPS =~ ^[1-9][0-9]?$ ]] || bad_usage "--reps must be 1-99, not '$REPS'"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad_usage "--duration must be seconds, not '$DURATION'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad_usage "--warmup must be seconds, not '$WARMUP'"
{ [[ $IDLE_CONNECTIONS =~ ^[1-9][0-9]{0,3}$ ]] && [ "$IDLE_CONNECTIONS" -le 2000 ]; } ||
  bad_usage "--idle-connections must be 1-2000 (rpcgate-fwd: 256 per client, 8 clients), not '$IDLE_CONNECTIONS'"
[[ $MAX_LOAD =~ ^[0-9]{1,3}(\.[0-9]+)?$ ]] ||
  bad_usage "--max-load must be a number of CPUs (e.g. 0.5), not '$MAX_LOAD'"

BIN=${RPCGATE_BIN:-$ROOT/build/bin}

# --pin-cpus: rpcgate-fwd on the last CPU (FW_CPU), everything else on the others.
TS_FWD=()
TS_REST=()
if [ "$PIN" = 1 ]; then
  ncpu=$(nproc)
  [ "$ncpu" -ge 2 ] || bad_usage "--pin-cpus needs 2 CPUs or more (this machine has $ncpu)"
  FW_CPU=$((ncpu - 1))
  TS_FWD=(taskset -c "$FW_CPU")
  TS_REST=(taskset -c "0-$((FW_CPU - 1))")
fi

# ---------------------------------------------------------------------------------------------
# Outside: check what is needed, then run this script again bounded by timeout (its TERM runs
# the EXIT trap, which stops every process and deletes the namespaces).
if [ "$IN_NETNS" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, nftables): run it as root or via 'make bench'"
  for b in rpcgate-bench rpcgate-epmd rpcgate-echo rpcgate-fwd rpcgate rpc-relay-floor; do
    [ -x "$BIN/$b" ] || die "missing $BIN/$b (build it: cmake --build build --target $b; or set RPCGATE_BIN)"
  done
  "$BIN/rpcgate-bench" echo --help 2>/dev/null | grep -q -- --reconnect ||
    die "$BIN/rpcgate-bench has no 'echo --reconnect' (rebuild it)"
  for t in ip nft timeout taskset "$PY"; do
    command -v "$t" >/dev/null || die "missing $t (make deps installs it)"
  done
  if [ -z "$OUT" ]; then
    if [ "$SMOKE" = 1 ]; then OUT=$(mktemp -d /tmp/fwd-sbs-smoke.XXXXXX); else OUT=$ROOT/bench/results; fi
  fi
  mkdir -p "$OUT" || die "cannot create the output directory $OUT"
  OUT=$(cd "$OUT" && pwd)
  runs=$((REPS * 10))
  budget=${FWD_BENCH_TIMEOUT:-$("$PY" -c "print(int(60 + $runs * ($WARMUP + $DURATION + $QUIET_WINDOW + 4) + 30 + $IDLE_CONNECTIONS / 50))")}
  echo "fwd_side_by_side: $runs runs of ${WARMUP}+${DURATION} s, $REPS round(s); at most ${budget} s; results in $OUT" >&2
  export FWD_SBS_INNER=1 RPCGATE_BIN="$BIN" FWD_SBS_SMOKE="$SMOKE"
  export FWD_BENCH_REPS="$REPS" FWD_BENCH_DURATION="$DURATION" FWD_BENCH_WARMUP="$WARMUP"
  export FWD_BENCH_OUT="$OUT" FWD_BENCH_IDLE_CONNECTIONS="$IDLE_CONNECTIONS" BENCH_MAX_LOAD="$MAX_LOAD"
  export FWD_BENCH_PIN="$PIN"
  rc=0
  timeout --kill-after=15 "$budget" /bin/bash "${BASH_SOURCE[0]}" || rc=$?
  [ "$rc" != 124 ] || die "did not finish within ${budget} s (FWD_BENCH_TIMEOUT); stopped"
  exit "$rc"
fi

# ---------------------------------------------------------------------------------------------
# Inside.
# shellcheck source=bench/quiet_machine.sh
. "$HERE/quiet_machine.sh"
# rpcgate-fwd holds two descriptors per relayed connection, the client one per connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

S=$(mktemp -d /tmp/fwd-sbs.XXXXXX)
NS_C=rfb$$c NS_F=rfb$$f NS_S=rfb$$s
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PIDS=()  # rpcgate-fwd, rpcgate-echo, rpcgate-epmd: stopped in this order
cleanup() {
  local rc=$? pid i left
  set +e
  trap - EXIT INT TERM HUP
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    left=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  # Anything else still running in the namespaces created here (a client the timeout cut short)
  # would keep them alive unnamed. Deleting the firewall's namespace removes its table and routes.
  for ns in "$NS_C" "$NS_F" "$NS_S"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$rc" = 0 ] && [ "${FWD_BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$S"
  elif [ "$rc" = 0 ]; then
    echo "fwd_side_by_side: logs kept in $S (FWD_BENCH_KEEP=1)" >&2
  else
    echo "fwd_side_by_side: failed (exit $rc); logs kept in $S" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# For commands run to completion. A daemon started in the background is `ip netns exec` itself
# (which execs the daemon: $! is then the daemon's pid, what --server-pid needs), never this
# function (its $! would be a subshell's).
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- topology ---
echo "== topology: clients $NS_C -- firewall $NS_F -- servers $NS_S" >&2
for ns in "$NS_C" "$NS_F" "$NS_S"; do
  ip netns add "$ns" || die "cannot create network namespace $ns"
  ip -n "$ns" link set lo up
done
ip link add c0 netns "$NS_C" type veth peer name f0 netns "$NS_F" || die "cannot create the veth pair c0/f0"
ip link add s0 netns "$NS_S" type veth peer name f1 netns "$NS_F" || die "cannot create the veth pair s0/f1"
ip -n "$NS_C" addr add "$CHECK_CLIENT/24" dev c0
for a in "${LOAD_SOURCES[@]}"; do ip -n "$NS_C" addr add "$a/24" dev c0; done
ip -n "$NS_F" addr add 10.135.1.1/24 dev f0
ip -n "$NS_F" addr add 10.135.2.1/24 dev f1
ip -n "$NS_S" addr add "$SERVER_THROUGH/24" dev s0
ip -n "$NS_S" addr add "$SERVER_DIRECT/24" dev s0
for pair in "$NS_C c0" "$NS_F f0" "$NS_F f1" "$NS_S s0"; do
  # shellcheck disable=SC2086 # "ns dev"
  set -- $pair
  ip -n "$1" link set "$2" up
done
ip -n "$NS_C" route add default via 10.135.1.1
ip -n "$NS_S" route add default via 10.135.2.1
in_ns "$NS_F" sysctl -qw net.ipv4.ip_forward=1
# The servers' dynamic ports must not be taken by their own outgoing connections.
in_ns "$NS_S" sysctl -qw net.ipv4.ip_local_port_range="32768 49151"

# --- servers and firewall ---
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

echo "== starting rpcgate-epmd (0.0.0.0:135) and rpcgate-echo in $NS_S, rpcgate-fwd in $NS_F" >&2
ip netns exec "$NS_S" "${TS_REST[@]}" "$BIN/rpcgate-epmd" --listen 0.0.0.0:135 --control "$S/epmd.sock" --log-level warn \
  >"$S/epmd.log" 2>&1 &
EPMD_PID=$!
PIDS=("$EPMD_PID")
for ((i = 0; i < 100; i++)); do
  [ -S "$S/epmd.sock" ] && break
  kill -0 "$EPMD_PID" 2>/dev/null || die "rpcgate-epmd exited at startup: $(tail -n 5 "$S/epmd.log")"
  sleep 0.1
done
[ -S "$S/epmd.sock" ] || die "rpcgate-epmd did not create its control socket within 10 s"
ip netns exec "$NS_S" "${TS_REST[@]}" "$BIN/rpcgate-echo" --control "$S/epmd.sock" >"$S/echo.out" 2>"$S/echo.out.err" &
ECHO_PID=$!
PIDS=("$ECHO_PID" "${PIDS[@]}")
ECHO_PORT=$(wait_port_line "$S/echo.out" "$ECHO_PID" rpcgate-echo)

# FWD_BENCH_FWD_ARGS: extra rpcgate-fwd options (e.g. --splice, --splice-min N) to compare.
# shellcheck disable=SC2086
ip netns exec "$NS_F" "${TS_FWD[@]}" "$BIN/rpcgate-fwd" --allow "$RPCECHO" --servers "$SERVER_THROUGH/32" \
  --pinhole-timeout 3600s --control "$S/fwd.sock" --json-log ${FWD_BENCH_FWD_ARGS:-} \
  >"$S/fwd.log" 2>&1 &
FWD_PID=$!
PIDS=("$FWD_PID" "${PIDS[@]}")
for ((i = 0; i < 100; i++)); do
  grep -q '"event":"start"' "$S/fwd.log" 2>/dev/null && break
  kill -0 "$FWD_PID" 2>/dev/null || die "rpcgate-fwd exited at startup: $(tail -n 5 "$S/fwd.log")"
  sleep 0.1
done
grep -q '"event":"start"' "$S/fwd.log" || die "rpcgate-fwd did not log its start within 10 s: $(tail -n 5 "$S/fwd.log")"

# The relay floor (bench/relay_floor.cc): a TCP relay that only moves bytes, as rpcgate-fwd's copy
# path does, with no inspection and no tproxy, in the firewall's namespace and on its CPUs, from
# 10.135.1.1:RELAY_FLOOR_PORT to the direct address. What every terminating relay pays.
ip netns exec "$NS_F" "${TS_FWD[@]}" "$BIN/rpc-relay-floor" --listen "10.135.1.1:$RELAY_FLOOR_PORT" \
  --to "$SERVER_DIRECT:$ECHO_PORT" >"$S/relay-floor.out" 2>"$S/relay-floor.out.err" &
FLOOR_PID=$!
PIDS=("$FLOOR_PID" "${PIDS[@]}")
wait_port_line "$S/relay-floor.out" "$FLOOR_PID" rpc-relay-floor >/dev/null

# --pin-cpus: each daemon runs where it was put (taskset exec'd it: the pid is the daemon's).
if [ "$PIN" = 1 ]; then
  for pid in "$FWD_PID" "$FLOOR_PID"; do
    [ "$(taskset -pc "$pid" | sed 's/.*: //')" = "$FW_CPU" ] ||
      die "pid $pid is not pinned to CPU $FW_CPU: $(taskset -pc "$pid")"
  done
  want="0-$((FW_CPU - 1))"
  [ "$FW_CPU" != 1 ] || want=0  # taskset prints a one-CPU range as that CPU
  for pid in "$EPMD_PID" "$ECHO_PID"; do
    [ "$(taskset -pc "$pid" | sed 's/.*: //')" = "$want" ] ||
      die "pid $pid is not pinned to CPUs $want: $(taskset -pc "$pid")"
  done
  echo "== pinned: rpcgate-fwd on CPU $FW_CPU, the servers and the client on 0-$((FW_CPU - 1)); affinity ok" >&2
fi

# --server-pid and idle's RSS / descriptor counts read /proc/PID: each pid must be the daemon.
for pair in "$EPMD_PID rpcgate-epmd" "$ECHO_PID rpcgate-echo" "$FWD_PID rpcgate-fwd" "$FLOOR_PID rpc-relay-floor"; do
  # shellcheck disable=SC2086 # "pid name"
  set -- $pair
  [ "$(basename "$(readlink "/proc/$1/exe")")" = "$2" ] || die "pid $1 is not $2 ($(readlink "/proc/$1/exe"))"
done

fwd_status() { in_ns "$NS_F" "$BIN/rpcgate-fwd" status --json --control "$S/fwd.sock"; }
# A field of the status document, e.g. relayed_total.
status_field() { fwd_status | "$PY" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# `rpcgate map` of rpcecho on $1:135 from the check client; prints the mapped port.
map_port() {
  local out
  out=$(in_ns "$NS_C" "$BIN/rpcgate" map "$1" "$RPCECHO" --timeout 5 2>"$S/map.err") ||
    die "rpcgate map rpcecho on $1:135 failed: $(cat "$S/map.err")"
  [[ $out =~ \[([0-9]+)\]$ ]] || die "rpcgate map rpcecho on $1 answered '$out', not a binding with a port"
  echo "${BASH_REMATCH[1]}"
}

# --- check before measuring: both paths answer, only THROUGH goes through rpcgate-fwd ---
relayed0=$(status_field '["relayed_total"]')
[ "$(map_port "$SERVER_DIRECT")" = "$ECHO_PORT" ] || die "ept_map(rpcecho) on $SERVER_DIRECT does not name rpcgate-echo's port $ECHO_PORT"
relayed1=$(status_field '["relayed_total"]')
[ "$relayed1" = "$relayed0" ] || die "the direct path went through rpcgate-fwd (relayed_total $relayed0 -> $relayed1): is $SERVER_DIRECT governed?"
[ "$(map_port "$SERVER_THROUGH")" = "$ECHO_PORT" ] || die "ept_map(rpcecho) on $SERVER_THROUGH through rpcgate-fwd does not name port $ECHO_PORT"
relayed2=$(status_field '["relayed_total"]')
[ "$relayed2" -gt "$relayed1" ] || die "the through path did not go through rpcgate-fwd (relayed_total stayed $relayed1)"
# Pinholes for every load address (kept by --pinhole-timeout 3600s and refreshed by each
# through epm-map run): a short epm-map from all of them.
SOURCE_ARGS=()
for a in "${LOAD_SOURCES[@]}"; do SOURCE_ARGS+=(--source "$a"); done
in_ns "$NS_C" "$BIN/rpcgate-bench" epm-map --target "$SERVER_THROUGH:135" --interface "$RPCECHO" \
  --connections "${#LOAD_SOURCES[@]}" "${SOURCE_ARGS[@]}" --duration 0.2 --warmup 0 --json \
  >"$S/open-pinholes.json" 2>"$S/open-pinholes.err" ||
  die "opening the load addresses' pinholes failed: $(tail -n 3 "$S/open-pinholes.err")"
holes=$(fwd_status | "$PY" -c "import json,sys; print(sum(1 for h in json.load(sys.stdin)['pinholes'] if h['port'] == $ECHO_PORT))")
[ "$holes" -ge "${#LOAD_SOURCES[@]}" ] ||
  die "rpcgate-fwd has $holes pinhole(s) to port $ECHO_PORT, expected one per load address (${#LOAD_SOURCES[@]}): $(tail -n 3 "$S/fwd.log")"
echo "== checked: ept_map(rpcecho) -> port $ECHO_PORT on both paths; only $SERVER_THROUGH is relayed; $holes pinholes open" >&2

# --- measure ---
mkdir -p "$S/runs"
: >"$S/runs.txt"
: >"$S/retries.txt"
run_timeout=$("$PY" -c "print(int($WARMUP + $DURATION + 30))")
total=$((REPS * 10))
n=0
# $1 row (epm-map | echodata | reconnect), $2 connections, $3 path (through | direct), $4 round
measure() {
  local row=$1 conns=$2 path=$3 round=$4 f other load_before load_after busy='' server pid
  local log_from log_to summary
  f="$S/runs/$row.$conns.$path.$round.json"
  n=$((n + 1))
  server=$([ "$path" = through ] && echo "$SERVER_THROUGH" || echo "$SERVER_DIRECT")
  local port=$ECHO_PORT
  if [ "$path" = floor ]; then server=10.135.1.1; port=$RELAY_FLOOR_PORT; fi
  local args=()
  case $row in
    epm-map) args=(epm-map --target "$server:135" --interface "$RPCECHO") ;;
    echodata) args=(echo --target "$server:$port" --op echodata --size "$ECHO_SIZE") ;;
    reconnect) args=(echo --reconnect --target "$server:$ECHO_PORT" --op addone) ;;
  esac
  if [ "$path" = through ]; then
    pid=$FWD_PID
  elif [ "$path" = floor ]; then
    pid=$FLOOR_PID
  elif [ "$row" = epm-map ]; then
    pid=$EPMD_PID
  else
    pid=$ECHO_PID
  fi
  other=$(other_cpus)
  load_before=$(loadavg_1min)
  local attempt rc
  for attempt in 1 2; do
    log_from=$(stat -c %s "$S/fwd.log")
    rc=0
    in_ns "$NS_C" "${TS_REST[@]}" timeout "$run_timeout" "$BIN/rpcgate-bench" "${args[@]}" --connections "$conns" \
      "${SOURCE_ARGS[@]}" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pid" --json \
      >"$f" 2>"$f.err" || rc=$?
    [ "$rc" != 0 ] || break
    # One retry, recorded: a connect lost at the start (exit 1) must not cost the whole run, but
    # it is a finding (the report names it).
    echo "  run $row $conns $path round $round failed (exit $rc): $(tail -n 1 "$f.err")" >&2
    echo "$row $conns $path $round attempt $attempt exit $rc: $(tail -n 1 "$f.err")" >>"$S/retries.txt"
  done
  [ "$rc" = 0 ] ||
    die "run $row $conns connections $path ($server), round $round failed twice (exit $rc): $(tail -n 3 "$f.err")"
  load_after=$(loadavg_1min)
  log_to=$(stat -c %s "$S/fwd.log")
  if [ "$path" = through ]; then
    # rpcgate-fwd's decision records written during this run (pinhole install times), and its
    # status right after it.
    "$PY" -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
sys.stdout.buffer.write(f.read(int(sys.argv[3])))' "$S/fwd.log" "$log_from" "$((log_to - log_from))" >"$f.fwdlog"
    fwd_status >"$f.status" || die "rpcgate-fwd status failed after $row $conns round $round"
  fi
  echo "$row $conns $path $round $f $load_before $load_after $other" >>"$S/runs.txt"
  summary=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); s=j.get("server_cpu_us_per_call"); print("%.0f calls/s, p99 %.0f us, %d errors, client %.2f CPUs, %s %s" % (j["calls_per_s"], j["p99_us"], j["errors"], j.get("client_cpu_busy", 0), sys.argv[2], "%.2f CPUs %.2f us/call" % (j["server_cpu_busy"], s) if s is not None else "-"))' "$f" "$(case $path in through) echo rpcgate-fwd ;; floor) echo rpc-relay-floor ;; *) echo server ;; esac)")
  is_busy "$other" "$MAX_LOAD" && busy=" - MACHINE BUSY"
  printf '  [%2d/%d] round %d  %-9s %2d conns  %-7s  %s; other work %s CPUs, load %s -> %s%s\n' \
    "$n" "$total" "$round" "$row" "$conns" "$path" "$summary" "$other" "$load_before" \
    "$load_after" "$busy" >&2
}

# Idle first, against an rpcgate-fwd that has relayed almost nothing yet: memory freed by earlier
# connections would stay in its heap and hide what a new connection costs (rpcgate-bench idle).
echo "== idle: $IDLE_CONNECTIONS rpcecho connections held through the pinholes (rpcgate-fwd pid $FWD_PID)" >&2
IDLE_JSON=$S/idle.json
idle_other=$(other_cpus)
idle_load=$(loadavg_1min)
in_ns "$NS_C" "${TS_REST[@]}" timeout $((60 + IDLE_CONNECTIONS / 20)) "$BIN/rpcgate-bench" idle \
  --target "$SERVER_THROUGH:$ECHO_PORT" --bind rpcecho "${SOURCE_ARGS[@]}" \
  --connections "$IDLE_CONNECTIONS" --server-pid "$FWD_PID" --json >"$IDLE_JSON" 2>"$IDLE_JSON.err" ||
  die "rpcgate-bench idle with $IDLE_CONNECTIONS connections through rpcgate-fwd failed (exit $?): $(tail -n 3 "$IDLE_JSON.err")"

echo "== measuring: $REPS round(s), ${WARMUP} s warmup + ${DURATION} s per run; through = $SERVER_THROUGH (rpcgate-fwd pid $FWD_PID), direct = $SERVER_DIRECT" >&2
ROWS=("epm-map 16" "echodata 1" "echodata 16" "reconnect 16")
for ((round = 1; round <= REPS; round++)); do
  ri=0
  for row in "${ROWS[@]}"; do
    # The bulk rows also go through the relay floor; the order rotates from row to row and round
    # to round.
    case $row in echodata*) PATHS=(through direct floor) ;; *) PATHS=(through direct) ;; esac
    for ((k = 0; k < ${#PATHS[@]}; k++)); do
      # shellcheck disable=SC2086 # "row conns"
      measure $row "${PATHS[$(((round - 1 + ri + k) % ${#PATHS[@]}))]}" "$round"
    done
    ri=$((ri + 1))
  done
done

fwd_status >"$S/status-final.json" || die "rpcgate-fwd status failed at the end"

# --- report ---
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[ "$commit" = unknown ] || git -C "$ROOT" diff --quiet HEAD 2>/dev/null || dirty=true
{
  echo "nproc=$(nproc)"
  echo "loadavg_start=$LOAD_START"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel=$(uname -r)"
  echo "cpu_model=${cpu:-unknown}"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git_commit=$commit"
  echo "git_dirty=$dirty"
  echo "rpcgate_version=$("$BIN/rpcgate" --version 2>/dev/null || echo unknown)"
  echo "reps=$REPS"
  echo "duration_s=$DURATION"
  echo "warmup_s=$WARMUP"
  echo "smoke=$SMOKE"
  echo "max_load=$MAX_LOAD"
  echo "quiet_window_s=$QUIET_WINDOW"
  echo "interface=$RPCECHO"
  echo "echo_size=$ECHO_SIZE"
  echo "echo_port=$ECHO_PORT"
  echo "server_through=$SERVER_THROUGH"
  echo "server_direct=$SERVER_DIRECT"
  echo "client_addresses=${LOAD_SOURCES[*]}"
  echo "idle_connections=$IDLE_CONNECTIONS"
  echo "idle_other_cpus_before=$idle_other"
  echo "idle_loadavg_1min_before=$idle_load"
  if [ "$PIN" = 1 ]; then
    echo "pinned=rpcgate-fwd on CPU $FW_CPU; client, rpcgate-epmd and rpcgate-echo on CPUs 0-$((FW_CPU - 1))"
  fi
  echo "fwd_args=--allow $RPCECHO --servers $SERVER_THROUGH/32 --pinhole-timeout 3600s"
  echo "relay_floor=10.135.1.1:$RELAY_FLOOR_PORT -> $SERVER_DIRECT:$ECHO_PORT"
} >"$S/meta.txt"

"$PY" "$HERE/fwd_side_by_side_report.py" --meta "$S/meta.txt" --runs "$S/runs.txt" \
  --idle "$IDLE_JSON" --status "$S/status-final.json" --retries "$S/retries.txt" \
  --out "$FWD_BENCH_OUT" --name "$([ "$PIN" = 1 ] && echo fwd-pinned || echo fwd)" ||
  die "the report could not be written (fwd_side_by_side_report.py)"
name=$([ "$PIN" = 1 ] && echo fwd-pinned || echo fwd)
echo "== wrote $FWD_BENCH_OUT/$name-latest.json, $name-latest.txt" >&2
