# shellcheck shell=bash
# Sourced by the side-by-side benchmarks (epm_side_by_side.sh, fwd_side_by_side.sh): how busy the
# machine is before a run. Not executable on its own.
#
#   loadavg_1min   /proc/loadavg's 1-minute figure
#   other_cpus     the CPUs other work takes (0 .. nproc, two decimals): the machine's busy share
#                  over QUIET_WINDOW seconds (caller's variable, default 1) while nothing of the
#                  benchmark runs (between runs every server is idle and no client runs)
#   is_busy OTHER MAX   exit 0 when OTHER > MAX
#
# Why not the load average as the judge: a benchmark's own previous runs keep it near the core
# count, so it cannot tell other work from ours (bench/README.md, "A busy machine"). /proc/stat is
# not namespaced: it sees the whole machine, also from inside a private network namespace.

loadavg_1min() { cut -d' ' -f1 /proc/loadavg; }

# "busy total" jiffies of all CPUs (busy: user nice system irq softirq steal; total adds idle and
# iowait).
cpu_jiffies() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat; }

other_cpus() {
  local before after
  before=$(cpu_jiffies)
  sleep "${QUIET_WINDOW:-1}"
  after=$(cpu_jiffies)
  awk -v a="$before" -v b="$after" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = y[2] - x[2]
    printf "%.2f\n", (t > 0 ? (y[1] - x[1]) / t * n : 0) }'
}

is_busy() { awk -v o="$1" -v m="$2" 'BEGIN { exit !(o > m) }'; }
