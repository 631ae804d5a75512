#!/bin/bash
# Regenerates the Impacket rpcecho stub vectors (tests/rpcecho_impacket.py) and diffs them with the committed copy, so a change
# in Impacket's NDR output (or in the generator) is caught. Skips (exit 0 with a note) when
# /usr/bin/python3 cannot import impacket.
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}
if ! /usr/bin/python3 -c 'import impacket.dcerpc.v5.ndr' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no impacket (apt-get install python3-impacket)"
  exit 0
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$src/tests/vectors/gen_impacket_echo.py" > "$tmp"
if ! diff -u "$src/src/echo/testdata/impacket_echo_vectors.txt" "$tmp"; then
  echo "FAIL: Impacket vectors drifted; regenerate with tests/vectors/gen_impacket_echo.py" >&2
  exit 1
fi
echo "OK: $(grep -vc '^#' "$tmp") vectors match"
