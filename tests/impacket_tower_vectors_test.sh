#!/bin/bash
# Regenerates the Impacket tower vectors (every protocol sequence, issue 11) and diffs them with
# the committed copy, so a change in Impacket's floors (or in the generator) is caught. Skips
# (exit 0 with a note) when /usr/bin/python3 cannot import impacket.
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}
if ! /usr/bin/python3 -c 'import impacket.dcerpc.v5.epm' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no impacket (apt-get install python3-impacket)"
  exit 0
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$src/tests/vectors/gen_impacket_towers.py" > "$tmp"
if ! diff -u "$src/src/ndr/testdata/impacket_tower_vectors.txt" "$tmp"; then
  echo "FAIL: Impacket tower vectors drifted; regenerate with tests/vectors/gen_impacket_towers.py" >&2
  exit 1
fi
echo "OK: $(grep -vc '^#' "$tmp") vectors match"
