#!/bin/bash
# Regenerates the Impacket PDU vectors and diffs them against the committed copy that
# src/rpc/impacket_vectors_test.cc reads, so drift in the generator or in Impacket is caught.
set -euo pipefail
src="${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
/usr/bin/python3 "$src/tests/vectors/gen_impacket_pdus.py" > "$tmp"
if ! diff -u "$src/src/rpc/testdata/impacket_vectors.txt" "$tmp"; then
  echo "impacket_vectors_test: src/rpc/testdata/impacket_vectors.txt is stale;" \
       "regenerate with /usr/bin/python3 tests/vectors/gen_impacket_pdus.py" >&2
  exit 1
fi
echo "impacket_vectors_test: $(grep -vc '^#' "$src/src/rpc/testdata/impacket_vectors.txt") vectors match"
