#!/usr/bin/env bash
# End-to-end demo of the Samba half of the side-by-side benchmark: in a fresh private network
# namespace, start Samba's endpoint mapper (bench/samba_epm.sh), check it with Impacket
# (bench/samba_epm_check.py), show its processes and memory, stop it. Exit status = the check's.
#   bench/samba_epm_demo.sh [DIR]      (DIR: scratch directory, a new mktemp -d by default)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
D=${1:-$(mktemp -d /tmp/samba-epm.XXXXXX)}
mkdir -p "$D"
[ "$(id -u)" = 0 ] || { echo "samba_epm_demo: needs root (unshare -n)" >&2; exit 1; }

export HERE D
timeout 120 unshare -n bash -c '
  set -u
  ip link set lo up
  # Whatever kills this shell (a closed pipe, ^C, the timeout), do not leave samba-dcerpcd behind.
  trap "\"\$HERE/samba_epm.sh\" stop \"\$D\" >/dev/null 2>&1" EXIT
  trap "exit 130" INT TERM HUP PIPE
  echo "== start (netns $(readlink /proc/self/ns/net), dir $D)"
  t0=$(date +%s%N)
  if ! "$HERE/samba_epm.sh" start "$D"; then echo "== start FAILED"; exit 1; fi
  echo "== start took $(( ($(date +%s%N) - t0) / 1000000 )) ms (incl. the Impacket readiness probe)"
  echo "== listening"
  ss -Hltn | awk "{print \"  \" \$4}" | sort -t: -k2 -n
  echo "== check"
  /usr/bin/python3 "$HERE/samba_epm_check.py" --interfaces "$D/interfaces.txt"; rc=$?
  echo "== processes (RSS KiB)"
  pg=$(cat "$D/samba-dcerpcd.pid")
  ps -o pid=,rss=,args= -g "$pg" | awk "{printf \"  %-7s %7s  %s\n\", \$1, \$2, \$3}"
  echo "== stop"
  "$HERE/samba_epm.sh" stop "$D" || rc=1
  left=$(pgrep -g "$pg" || true)
  [ -z "$left" ] && echo "  no process left in group $pg" || { echo "  LEFT: $left"; rc=1; }
  exit $rc
'
rc=$?
echo "== demo exit $rc"
exit $rc
