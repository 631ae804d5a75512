#!/bin/bash
# Regenerates one set of Impacket-made golden vectors and diffs it with the committed copy, so a
# change in Impacket's output (or in the generator) is caught. One script for every
# tests/impacket_*_vectors_test.sh:
#   drift.sh MODULE GENERATOR COMMITTED [HEADER]
# MODULE     the Impacket module the generator needs (the check is skipped when
#            /usr/bin/python3 cannot import it)
# GENERATOR  tests/vectors/<script>.py, run with /usr/bin/python3
# COMMITTED  the vectors file, relative to the source tree
# HEADER     a first line to put before the generator's output (for generators that print none)
# Exit 0 when the vectors match, 1 when they drifted, 77 (ctest SKIP_RETURN_CODE) without MODULE.
set -euo pipefail
src=${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}
module=$1 generator=$2 committed=$3 header=${4:-}
if ! /usr/bin/python3 -c "import $module" 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 has no $module (apt-get install python3-impacket)"
  exit 77
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  [ -z "$header" ] || echo "$header"
  /usr/bin/python3 "$src/tests/vectors/$generator"
} > "$tmp"
if ! diff -u "$src/$committed" "$tmp"; then
  echo "FAIL: $committed drifted from Impacket; regenerate with tests/vectors/$generator" >&2
  exit 1
fi
echo "OK: $(grep -vc '^#' "$tmp") vectors of $committed match"
