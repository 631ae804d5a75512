#!/bin/bash
# The Impacket tower vectors (every protocol sequence) against their committed copy.
exec /bin/bash "${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}/tests/vectors/drift.sh" \
  impacket.dcerpc.v5.epm gen_impacket_towers.py src/ndr/testdata/impacket_tower_vectors.txt
