#!/bin/bash
# The Impacket EPM stub vectors against their committed copy.
exec /bin/bash "${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}/tests/vectors/drift.sh" \
  impacket.dcerpc.v5.epm gen_impacket_epm.py src/ndr/testdata/impacket_epm_vectors.txt
