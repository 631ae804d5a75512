#!/usr/bin/env bash
# Where rpcgate-epmd spends an ept_map, measured three ways in a private network namespace with
# rpcgate-bench as the load (one rpcgate-testsrv interface registered, winreg's UUID):
#   bench/profile_epmd.sh callgrind [CONNS]  instructions per call (valgrind --tool=callgrind,
#                                           only inside the event loop) and the top functions,
#                                           inclusive, then the per-part split of an ept_map
#                                           (bench/profile_split.py); deterministic, so good for
#                                           A/B of code
#   bench/profile_epmd.sh perf [CONNS]       perf record of the daemon: kernel vs user share and
#                                           the top symbols (needs perf_event access)
#   bench/profile_epmd.sh syscalls [CONNS]   strace -c: syscalls per call
# CONNS defaults to 16 (callgrind: 4). Binaries from RPCGATE_BIN (default build/bin). Root.
# PROFILE_KEEP=DIR keeps the raw output there (callgrind.out, strace.txt, perf.data) and the
# number of calls (calls-MODE.txt), for callgrind_annotate by hand.
# `make profile MODE=callgrind|perf|syscalls` installs valgrind, linux-perf and strace first.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${RPCGATE_BIN:-$HERE/../build/bin}
MODE=${1:-}
case "$MODE" in callgrind | perf | syscalls) ;; -h | --help | "")
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; [ -n "$MODE" ]; exit $? ;;
*) echo "profile_epmd: unknown mode '$MODE' (callgrind, perf, syscalls)" >&2; exit 2 ;;
esac
CONNS=${2:-$([ "$MODE" = callgrind ] && echo 4 || echo 16)}
[ "$(id -u)" = 0 ] || { echo "profile_epmd: needs root (unshare -n)" >&2; exit 1; }
for b in rpcgate-epmd rpcgate-testsrv rpcgate-bench; do
  [ -x "$BIN/$b" ] || { echo "profile_epmd: missing $BIN/$b (make build)" >&2; exit 1; }
done
tool=$(case "$MODE" in callgrind) echo valgrind ;; perf) echo perf ;; syscalls) echo strace ;; esac)
command -v "$tool" >/dev/null || { echo "profile_epmd: $tool not found (make profile installs it)" >&2; exit 1; }

export HERE BIN MODE CONNS PROFILE_KEEP=${PROFILE_KEEP:-}
exec timeout 300 unshare -n bash -c '
set -euo pipefail
ip link set lo up
D=$(mktemp -d /tmp/rpcgate-profile.XXXXXX)
trap "kill \$(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true" EXIT
U=338cd001-2244-31f1-aaaa-900038001003
start_epmd() { "$@" "$BIN/rpcgate-epmd" --listen 127.0.0.1:1135 --control "$D/epmd.sock" --log-level warn & EPMD=$!; }
register() {
  for _ in $(seq 100); do [ -S "$D/epmd.sock" ] && break; sleep 0.1; done
  "$BIN/rpcgate-testsrv" --epmd "$D/epmd.sock" --uuid $U --version 1.0 --port 0 >/dev/null 2>&1 &
  sleep 0.5
}
load() { "$BIN/rpcgate-bench" epm-map -t 127.0.0.1:1135 -i $U:1.0 -c "$CONNS" -d "$1" --warmup 0 --json; }
calls() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"calls\"])"; }
case "$MODE" in
callgrind)
  start_epmd valgrind --tool=callgrind --toggle-collect="asio::detail::scheduler::run*" \
    --callgrind-out-file="$D/callgrind.out" --log-file="$D/valgrind.log"
  sleep 2; register
  n=$(load 4 | calls)
  kill -INT $EPMD; wait $EPMD 2>/dev/null || true
  total=$(callgrind_annotate "$D/callgrind.out" 2>/dev/null | awk "/PROGRAM TOTALS/ {gsub(\",\",\"\",\$1); print \$1}")
  echo "== $n ept_map calls at $CONNS connections: $(( total / n )) instructions per call in the event loop"
  callgrind_annotate --inclusive=yes "$D/callgrind.out" 2>/dev/null | grep -E "^ *[0-9,]+ \(" | sed -n "1,40p" | cut -c1-160
  echo "$n" > "$D/calls-callgrind.txt"
  python3 "$HERE/profile_split.py" "$D"
  ;;
perf)
  start_epmd; register
  perf record -q -o "$D/perf.data" -p $EPMD -- sleep 3 >/dev/null 2>&1 & P=$!
  load 3 >/dev/null; wait $P || true
  echo "== rpcgate-epmd at $CONNS connections: share by object"
  perf report -i "$D/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep "%" | head -6
  echo "== top symbols"
  perf report -i "$D/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep "%" | head -30
  ;;
syscalls)
  start_epmd; register
  strace -q -c -p $EPMD -o "$D/strace.txt" & S=$!; sleep 0.5
  n=$(load 2 | calls)
  kill -INT $S; wait $S 2>/dev/null || true
  echo "== $n ept_map calls at $CONNS connections (strace slows the daemon: counts, not times)"
  awk -v n="$n" "/^ *[0-9]/ && \$4 ~ /^[0-9]+$/ {printf \"  %-14s %9d  %.3f per call\n\", \$NF, \$4, \$4/n}" "$D/strace.txt"
  ;;
esac
if [ -n "$PROFILE_KEEP" ]; then
  mkdir -p "$PROFILE_KEEP"
  cp "$D"/callgrind.out "$D"/strace.txt "$D"/perf.data "$PROFILE_KEEP"/ 2>/dev/null || true
  echo "${n:-}" > "$PROFILE_KEEP/calls-$MODE.txt"
fi
rm -rf "$D"
'
