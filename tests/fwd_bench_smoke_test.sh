#!/bin/bash
# CI smoke test of bench/fwd_side_by_side.sh: one short round (--smoke) of every row through
# rpcgate-fwd and direct, in the script's own three network namespaces, bounded to 60 s.
# Asserts that it runs and measures what it says: exit 0, every row label printed, fwd-latest.json
# valid with every run on both paths error-free, pinhole install times recorded by rpcgate-fwd,
# the idle connections held with their memory and descriptor figures, fwd-latest.txt = the printed
# table. Never how fast anything is (0.3 s runs on a shared CI machine mean nothing). Skips (exit
# 77, ctest SKIP_RETURN_CODE) without root, ip or nft.
#
# Environment (set by ctest, tests/CMakeLists.txt): RPCGATE_BIN (build/bin), RPCGATE_SOURCE_DIR.
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export RPCGATE_BIN=${RPCGATE_BIN:-$src/build/bin}

if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root for network namespaces and nftables"
  exit 77
fi
for tool in ip nft; do
  if ! PATH=/usr/sbin:/sbin:$PATH command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed"
    exit 77
  fi
done
export PATH=/usr/sbin:/sbin:$PATH

tmp=$(mktemp -d /tmp/fwd-bench-smoke.XXXXXX)
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
FWD_BENCH_TIMEOUT=55 timeout 60 "$src/bench/fwd_side_by_side.sh" --smoke --out "$out" \
  >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
[ "$rc" = 0 ] || fail "bench/fwd_side_by_side.sh --smoke exited $rc"

for label in "ept_map  16" "echodata 64K  1" "echodata 64K  16" "reconnect  16" \
  "pinhole install" "idle 100"; do
  grep -q "^$label " "$tmp/stdout" || fail "no row starting with '$label'"
done
grep -q "^Targets (issue 14)" "$tmp/stdout" || fail "no Targets section"
grep -q "^relay floor .*rpc-relay-floor" "$tmp/stdout" || fail "no relay floor table"
[ "$(grep -c "^echodata 64K  1 " "$tmp/stdout")" = 2 ] || fail "no relay floor row for echodata 1"
cmp -s "$out/fwd-latest.txt" "$tmp/stdout" || fail "fwd-latest.txt differs from the printed table"
/usr/bin/python3 - "$out/fwd-latest.json" <<'PY' || fail "fwd-latest.json does not hold what it should"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["parameters"]["smoke"] is True, j["parameters"]
seen = set()
for r in j["runs"]:
    seen.add((r["row"], r["connections"], r["path"]))
    res = r["result"]
    assert res["calls"] > 0 and res["errors"] == 0, (r["row"], r["path"], res)
    assert isinstance(res["stalled_at_end"], int), res
    # Through runs measure rpcgate-fwd's CPU (--server-pid), direct runs the server's.
    assert res["server_cpu_us_per_call"] is not None, r
    for key in ("loadavg_1min_before", "loadavg_1min_after", "other_cpus_before"):
        assert isinstance(r["load"][key], float), (key, r)
for row, conns in (("epm-map", 16), ("echodata", 1), ("echodata", 16), ("reconnect", 16)):
    for path in ("through", "direct"):
        assert (row, conns, path) in seen, (row, conns, path)
# The bulk rows also went through the relay floor (a relay that only moves bytes).
for conns in (1, 16):
    assert ("echodata", conns, "floor") in seen, conns
    assert j["summary"]["echodata %d" % conns]["floor_ratio"] > 0, j["summary"]
ins = j["pinhole_install"]
# Every ept_map answer is an install or, for a pinhole with 9/10 of its life left, "kept".
assert ins["count"] + ins["kept"] > 0, ins
assert ins["count"] == 0 or ins["p99_us"] >= ins["p50_us"], ins
# The daemon's own figure covers every install, the first opens included.
st = j["fwd_status_final"]["pinhole_install_us"]
assert st["count"] > 0 and st["count"] >= ins["count"] and st["p99"] >= st["p50"], st
idle = j["idle"]["result"]
# Every one: the upstream legs use the client's own port, so no 4-tuple clashes any more.
assert idle["connections_held"] == 100, idle
if idle["connections_held"] != 100 or idle["probe_errors"]:
    print("WARNING: idle held %d of 100, %d probe errors (%s)" % (
        idle["connections_held"], idle["probe_errors"], idle["probe_error"]))
# Two descriptors per relayed connection is what a relay needs; anything near that is sane.
assert 1.5 <= idle["fds_per_connection"] <= 4, idle
assert idle["bytes_per_connection"] is not None, idle
assert len(j["targets"]) == 2, j["targets"]
PY

echo "OK: fwd_side_by_side.sh --smoke in $(($(date +%s) - started)) s"
cat "$tmp/stdout"

# --pin-cpus: the same rows, rpcgate-fwd alone on the last CPU, written to fwd-pinned-latest.*
# (and fwd-latest.* left as it was). That the pin is real: the table's header names it, and
# the decision log's pid had that affinity (checked while it ran, by the script's own check
# below through /proc: the pinned line comes from meta the script writes only when it pinned).
if [ "$(nproc)" -ge 2 ]; then
  cp "$out/fwd-latest.txt" "$tmp/unpinned.txt"
  rc=0
  FWD_BENCH_TIMEOUT=55 timeout 60 "$src/bench/fwd_side_by_side.sh" --smoke --pin-cpus \
    --out "$out" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
  [ "$rc" = 0 ] || fail "bench/fwd_side_by_side.sh --smoke --pin-cpus exited $rc"
  last=$(($(nproc) - 1))
  grep -q "pinned: rpcgate-fwd on CPU $last; client, rpcgate-epmd and rpcgate-echo on CPUs 0-" \
    "$tmp/stdout" || fail "the pinned table does not say how it was pinned"
  grep -q "^echodata 64K  16 " "$tmp/stdout" || fail "no echodata 16 row in the pinned table"
  cmp -s "$out/fwd-pinned-latest.txt" "$tmp/stdout" || fail "fwd-pinned-latest.txt differs"
  cmp -s "$out/fwd-latest.txt" "$tmp/unpinned.txt" || fail "--pin-cpus overwrote fwd-latest.txt"
  grep -q "CPU(s) pinned" "$out/fwd-pinned-latest.txt" || fail "fwd-pinned-latest.txt: no pin"
  /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["parameters"]["pinned"], j["parameters"]' \
    "$out/fwd-pinned-latest.json" || fail "fwd-pinned-latest.json has no pinned parameter"
  grep -q "affinity ok" "$tmp/stderr" || fail "the script did not check rpcgate-fwd's CPU affinity"
  echo "OK: --pin-cpus"
else
  echo "SKIP (part): --pin-cpus needs 2 CPUs"
fi
