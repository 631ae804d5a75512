#!/usr/bin/env bash
# `make run`: the whole flow of the article on this machine, in the foreground.
#   rpcgate-epmd  endpoint mapper on TCP 135 + port broker on the control socket
#   rpcgate-echo  a real RPC server: takes a dynamic port from the broker and registers rpcecho
# Ctrl-C stops both. Settings (environment):
#   CONTROL     control socket (default /run/rpcgate/epmd.sock)
#   LISTEN      endpoint mapper listeners, space-separated (default: epmd's 0.0.0.0:135 [::]:135)
#   EPMD_ARGS   more rpcgate-epmd options, e.g. "--policy my.reg"
#   ECHO_CLASS  port class for rpcgate-echo: default | internet | intranet (default: default)
set -euo pipefail
bin=${BIN:-build/bin}
control=${CONTROL:-/run/rpcgate/epmd.sock}
listen_args=()
epm_host=127.0.0.1
epm_port=135
for l in ${LISTEN:-}; do
  listen_args+=(--listen "$l")
  epm_port=${l##*:}
done

"$bin/rpcgate" policy show ${POLICY:-} || true
echo

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

rm -f "$control"
# shellcheck disable=SC2086
"$bin/rpcgate-epmd" --control "$control" "${listen_args[@]}" ${EPMD_ARGS:-} &
pids+=($!)
for _ in $(seq 100); do
  [ -S "$control" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "make run: rpcgate-epmd did not start (see above)"; exit 1; }
  sleep 0.05
done
[ -S "$control" ] || { echo "make run: no control socket at $control"; exit 1; }

"$bin/rpcgate-echo" --control "$control" --class "${ECHO_CLASS:-default}" &
pids+=($!)
sleep 0.3

port_opt=""
[ "$epm_port" != 135 ] && port_opt=" --port $epm_port"
cat <<TRY

rpcgate-epmd and rpcgate-echo are running (Ctrl-C stops both). In another shell try:
  $bin/rpcgate lookup $epm_host$port_opt
  $bin/rpcgate map $epm_host 60a15ec5-4de8-11d7-a637-005056a20182$port_opt
  $bin/rpcgate ifids ncacn_ip_tcp:$epm_host[PORT]      # PORT as printed by map
  /usr/bin/python3 /usr/share/doc/python3-impacket/examples/rpcdump.py $epm_host   # needs port 135

TRY
wait "${pids[0]}"
