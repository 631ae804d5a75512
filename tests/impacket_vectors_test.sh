#!/bin/bash
# The Impacket PDU vectors (read by src/rpc/impacket_vectors_test.cc) against their committed copy.
exec /bin/bash "${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}/tests/vectors/drift.sh" \
  impacket.dcerpc.v5.rpcrt gen_impacket_pdus.py src/rpc/testdata/impacket_vectors.txt
