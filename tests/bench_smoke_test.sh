#!/bin/bash
# CI smoke test of bench/epm_side_by_side.sh: one short round (--smoke) against Samba's endpoint
# mapper, rpcgate-epmd and the floor server in a private network namespace. Asserts only that it
# runs: exit 0, every row label printed, latest.json valid JSON with each run's load, latest.txt =
# the printed table, latest.png a non-empty PNG. Never how fast anything is (the numbers of a 0.3 s run on a busy CI
# machine mean nothing). Skips (exit 77, ctest SKIP_RETURN_CODE) without root or Samba / gnuplot.
#
# Environment (set by ctest, tests/CMakeLists.txt): RPCGATE_BIN (build/bin), RPCGATE_SOURCE_DIR,
# RPCGATE_BENCH_BIN (build/bench: allocator_benchmark; absent in builds without benchmarks).
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export RPCGATE_BIN=${RPCGATE_BIN:-$src/build/bin}
export RPCGATE_BENCH_BIN=${RPCGATE_BENCH_BIN:-$RPCGATE_BIN/../bench}

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  echo "SKIP: needs root and unshare for a private network namespace"
  exit 77
fi
for need in /usr/libexec/samba/samba-dcerpcd /usr/bin/gnuplot; do
  if [ ! -x "$need" ]; then
    echo "SKIP: no $need (make deps installs samba and gnuplot-nox)"
    exit 77
  fi
done

tmp=$(mktemp -d /tmp/bench-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/results
fail() {
  echo "FAIL: $*"
  echo "---- stdout"
  cat "$tmp/stdout"
  echo "---- stderr (last 40 lines)"
  tail -n 40 "$tmp/stderr"
  exit 1
}

started=$(date +%s)
rc=0
timeout 240 "$src/bench/epm_side_by_side.sh" --smoke --out "$out" >"$tmp/stdout" 2>"$tmp/stderr" ||
  rc=$?
[ "$rc" = 0 ] || fail "bench/epm_side_by_side.sh --smoke exited $rc"

for label in "epm-map  1" "epm-map  16" "epm-map  256" "connect  16" "idle 200" "allocator"; do
  grep -q "^$label " "$tmp/stdout" || fail "no row starting with '$label'"
done
grep -q "^Targets" "$tmp/stdout" || fail "no Targets section"
/usr/bin/python3 -m json.tool "$out/latest.json" >/dev/null || fail "latest.json is not valid JSON"
cmp -s "$out/latest.txt" "$tmp/stdout" || fail "latest.txt differs from the printed table"
# Every run carries the load before and after it (a busy one marks its ratios).
/usr/bin/python3 - "$out/latest.json" <<'PY' || fail "a run in latest.json does not carry its load"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["runs"] and j["parameters"]["max_load"] == 0.5, j["parameters"]
for r in j["runs"]:
    load = r["load"]
    for key in ("loadavg_1min_before", "loadavg_1min_after", "other_cpus_before"):
        assert isinstance(load[key], float) and load[key] >= 0, (key, r)
    assert load["busy"] == (load["other_cpus_before"] > 0.5), r
PY
[ -s "$out/latest.png" ] || fail "latest.png missing or empty"
magic=$(head -c 8 "$out/latest.png" | od -An -tx1 | tr -d ' \n')
[ "$magic" = 89504e470d0a1a0a ] || fail "latest.png is not a PNG (starts with $magic)"

echo "OK: epm_side_by_side.sh --smoke in $(($(date +%s) - started)) s"
cat "$tmp/stdout"
