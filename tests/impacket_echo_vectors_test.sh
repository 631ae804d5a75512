#!/bin/bash
# The Impacket rpcecho stub vectors (tests/rpcecho_impacket.py) against their committed copy.
exec /bin/bash "${RPCGATE_SOURCE_DIR:?RPCGATE_SOURCE_DIR not set}/tests/vectors/drift.sh" \
  impacket.dcerpc.v5.ndr gen_impacket_echo.py src/echo/testdata/impacket_echo_vectors.txt
