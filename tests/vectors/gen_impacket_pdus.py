#!/usr/bin/python3
"""Generate connection-oriented DCE/RPC PDUs with Impacket's own classes, for src/rpc tests.

Run with Debian's interpreter (python3-impacket 0.10.0 lives in /usr/lib/python3/dist-packages):

    /usr/bin/python3 tests/vectors/gen_impacket_pdus.py > src/rpc/testdata/impacket_vectors.txt

Output: one "name hex" line per PDU ('#' lines are comments). src/rpc/impacket_vectors_test.cc
reads the committed file; tests/impacket_vectors_test.sh regenerates it and diffs, so drift in
this script or in Impacket is caught.

Little-endian PDUs are built with impacket.dcerpc.v5.rpcrt (MSRPCHeader, MSRPCBind, CtxItem,
MSRPCRequestHeader, MSRPCRespHeader, MSRPCBindAck, CtxItemResult, SEC_TRAILER, MSRPCBindNak),
filled the way Impacket's DCERPC_v5 client fills them. Where Impacket has no class for a body
(fault, auth3) or its class cannot express a case (a context item with several transfer
syntaxes: CtxItem has one 20-byte TransferSyntax field) the body bytes are packed with `struct`
and wrapped in Impacket's MSRPCHeader, which still computes frag_len/auth_len.

Impacket only emits little-endian (drep 10 00 00 00). The "_be" variants are produced by
to_big_endian() below: an independent re-encoder that walks the little-endian PDU field by field
(C706 §12.6 layouts) and rewrites every multi-byte integer - including the UUID time fields and
p_syntax_id_t's u32 if_version - in big-endian, with drep 00 00 00 00. Stub bytes are opaque and
stay as they are. The C++ test checks that each _be PDU decodes to the same fields as its LE twin.
"""

import struct
import sys

from impacket.dcerpc.v5 import rpcrt
from impacket.dcerpc.v5.rpcrt import (CtxItem, CtxItemResult, MSRPCBind, MSRPCBindAck,
                                      MSRPCBindNak, MSRPCHeader, MSRPCRequestHeader,
                                      MSRPCRespHeader, SEC_TRAILER)
from impacket.uuid import string_to_bin, uuidtup_to_bin
from impacket.version import version as impacket_version

NDR = uuidtup_to_bin(('8a885d04-1ceb-11c9-9fe8-08002b104860', '2.0'))
NDR64 = uuidtup_to_bin(('71710533-beba-4937-8319-b5dbef9ccc36', '1.0'))
BTFN = string_to_bin('6cb71c2c-9812-4540-0300-000000000000') + struct.pack('<HH', 1, 0)
EPM = uuidtup_to_bin(('e1af8308-5d1f-11c9-91a4-08002b14a0fa', '3.0'))
MGMT = uuidtup_to_bin(('afa8bd80-7d8a-11c9-bef4-08002b102989', '1.0'))
SAMR = uuidtup_to_bin(('12345778-1234-abcd-ef00-0123456789ac', '1.0'))
OBJECT = string_to_bin('01234567-89ab-cdef-0123-456789abcdef')


class RawItem:
    """A context item with several transfer syntaxes (Impacket's CtxItem holds only one)."""

    def __init__(self, ctx_id, abstract, transfers):
        item = CtxItem()
        item['ContextID'] = ctx_id
        item['TransItems'] = len(transfers)
        item['AbstractSyntax'] = abstract
        item['TransferSyntax'] = transfers[0]
        self.data = item.getData() + b''.join(transfers[1:])

    def getData(self):
        return self.data


def ctx_item(ctx_id, abstract, transfer):
    item = CtxItem()
    item['ContextID'] = ctx_id
    item['TransItems'] = 1
    item['AbstractSyntax'] = abstract
    item['TransferSyntax'] = transfer
    return item


def bind_like(ptype, call_id, items, assoc_group=0):
    bind = MSRPCBind()
    bind['max_tfrag'] = 4280
    bind['max_rfrag'] = 4280
    bind['assoc_group'] = assoc_group
    for item in items:
        bind.addCtxItem(item)
    packet = MSRPCHeader()
    packet['type'] = ptype
    packet['call_id'] = call_id
    packet['pduData'] = bind.getData()
    return packet.get_packet()


def bind_ack_like(ptype, call_id, sec_addr, results):
    ack = MSRPCBindAck()
    ack['type'] = ptype
    ack['flags'] = rpcrt.PFC_FIRST_FRAG | rpcrt.PFC_LAST_FRAG
    ack['representation'] = 0x10
    ack['call_id'] = call_id
    ack['max_tfrag'] = 5840
    ack['max_rfrag'] = 5840
    ack['assoc_group'] = 0x53f0
    ack['SecondaryAddrLen'] = len(sec_addr)
    ack['SecondaryAddr'] = sec_addr.rstrip(b'\0')
    ack['Pad'] = b'\0' * ((4 - ((len(sec_addr) + MSRPCBindAck._SIZE) % 4)) % 4)
    items = b''
    for result, reason, syntax in results:
        r = CtxItemResult()
        r['Result'] = result
        r['Reason'] = reason
        r['TransferSyntax'] = syntax
        items += r.getData()
    ack['ctx_num'] = len(results)
    ack['ctx_items'] = items
    ack['frag_len'] = 0
    data = ack.getData()
    return data[:8] + struct.pack('<H', len(data)) + data[10:]


def with_auth(packet, stub_offset, pad_to=4):
    """Adds an NTLM (auth_type 10) packet-privacy (level 6) trailer with a dummy 16-byte verifier,
    padding the stub so the sec_trailer is 4-byte aligned, as DCERPC_v5.call() does."""
    pad = (pad_to - (stub_offset + len(packet['pduData'])) % pad_to) % pad_to
    trailer = SEC_TRAILER()
    trailer['auth_type'] = rpcrt.RPC_C_AUTHN_WINNT
    trailer['auth_level'] = rpcrt.RPC_C_AUTHN_LEVEL_PKT_PRIVACY
    trailer['auth_pad_len'] = pad
    trailer['auth_ctx_id'] = 79231
    packet['pad'] = b'\0' * pad
    packet['sec_trailer'] = trailer
    packet['auth_data'] = bytes(range(0x10, 0x20))
    return packet


def build_little_endian():
    out = []
    ndr_only = [ctx_item(0, EPM, NDR)]
    out.append(('impacket_bind_epm', bind_like(rpcrt.MSRPC_BIND, 1, ndr_only)))
    # Windows-style: one interface offered with NDR, NDR64 and feature negotiation as separate
    # items, plus an item carrying two transfer syntaxes, plus MGMT.
    items = [ctx_item(0, SAMR, NDR), ctx_item(1, SAMR, NDR64), ctx_item(2, SAMR, BTFN),
             RawItem(3, EPM, [NDR, NDR64]), RawItem(4, MGMT, [NDR64, NDR, BTFN])]
    out.append(('impacket_bind_multi', bind_like(rpcrt.MSRPC_BIND, 2, items, 0x1234)))
    out.append(('impacket_alter_context',
                bind_like(rpcrt.MSRPC_ALTERCTX, 3, [ctx_item(5, MGMT, NDR)], 0x53f0)))

    ack = bind_ack_like(rpcrt.MSRPC_BINDACK, 2, b'49664\0',
                        [(0, 0, NDR), (2, 2, b'\0' * 20), (3, 3, b'\0' * 20),
                         (0, 0, NDR), (2, 1, b'\0' * 20)])
    out.append(('impacket_bind_ack_multi', ack))
    out.append(('impacket_alter_context_resp',
                bind_ack_like(rpcrt.MSRPC_ALTERCTX_R, 3, b'1025\0', [(0, 0, NDR)])))
    # An empty secondary address (sec_addr_len 0, as Windows sends in alter_context_resp) cannot
    # be built with MSRPCBindAck: its 'z' field writes a stray NUL even for an empty string. Pack
    # the body by hand: max_xmit, max_recv, assoc_group, sec_addr_len 0, 2 pad, n_results 1, result.
    packet = MSRPCHeader()
    packet['type'] = rpcrt.MSRPC_ALTERCTX_R
    packet['call_id'] = 8
    packet['pduData'] = struct.pack('<HHLH2sB3sHH', 5840, 5840, 0x53f0, 0, b'', 1, b'', 0, 0) + NDR
    out.append(('impacket_alter_context_resp_empty', packet.get_packet()))

    nak = MSRPCBindNak()
    nak['RejectedReason'] = 4  # protocol_version_not_supported
    nak['SupportedVersions'] = b'\x01\x05\x00'
    packet = MSRPCHeader()
    packet['type'] = rpcrt.MSRPC_BINDNAK
    packet['call_id'] = 4
    packet['pduData'] = nak.getData()
    out.append(('impacket_bind_nak', packet.get_packet()))

    request = MSRPCRequestHeader()
    request['flags'] = rpcrt.PFC_FIRST_FRAG | rpcrt.PFC_LAST_FRAG | rpcrt.PFC_OBJECT_UUID
    request['call_id'] = 5
    request['ctx_id'] = 1
    request['op_num'] = 7
    request['uuid'] = OBJECT
    request['pduData'] = bytes(range(24))
    request['alloc_hint'] = len(request['pduData'])
    out.append(('impacket_request_object', request.get_packet()))

    request = MSRPCRequestHeader()
    request['call_id'] = 6
    request['ctx_id'] = 0
    request['op_num'] = 3
    request['pduData'] = bytes(range(0x40, 0x4d))  # 13 bytes -> 3 pad bytes
    request['alloc_hint'] = len(request['pduData'])
    out.append(('impacket_request_auth', with_auth(request, 24).get_packet()))

    response = MSRPCRespHeader()
    response['call_id'] = 6
    response['ctx_id'] = 0
    response['pduData'] = bytes(range(0x80, 0x98))
    response['alloc_hint'] = len(response['pduData'])
    out.append(('impacket_response', response.get_packet()))

    fault = MSRPCHeader()
    fault['type'] = rpcrt.MSRPC_FAULT
    fault['call_id'] = 7
    # alloc_hint, p_cont_id, cancel_count, flags, status nca_s_unk_if, reserved
    fault['pduData'] = struct.pack('<LHBBLL', 32, 1, 0, 0, 0x1c010003, 0)
    out.append(('impacket_fault', fault.get_packet()))

    auth3 = MSRPCHeader()
    auth3['type'] = rpcrt.MSRPC_AUTH3
    auth3['call_id'] = 1
    auth3['pduData'] = b'    '  # DCERPC_v5.bind() sends four spaces here
    out.append(('impacket_auth3', with_auth(auth3, 16).get_packet()))
    return out


# ---- big-endian re-encoder ---------------------------------------------------------------------

class Swapper:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.out = bytearray()

    def int(self, size):
        fmt = {2: 'H', 4: 'L'}[size] if size > 1 else 'B'
        (v,) = struct.unpack('<' + fmt, self.data[self.pos:self.pos + size])
        self.out += struct.pack('>' + fmt, v)
        self.pos += size
        return v

    def raw(self, n):
        self.out += self.data[self.pos:self.pos + n]
        self.pos += n

    def uuid(self):
        self.int(4)
        self.int(2)
        self.int(2)
        self.raw(8)

    def syntax(self):
        self.uuid()
        self.int(4)  # if_version = major | minor << 16


def to_big_endian(pdu):
    s = Swapper(pdu)
    s.raw(3)
    flags = s.int(1)
    s.pos += 4
    s.out += b'\x00\x00\x00\x00'
    frag_len = s.int(2)
    auth_len = s.int(2)
    s.int(4)
    ptype = pdu[2]
    body_end = frag_len - (auth_len + 8 if auth_len else 0)
    if ptype == rpcrt.MSRPC_REQUEST:
        s.int(4), s.int(2), s.int(2)
        if flags & rpcrt.PFC_OBJECT_UUID:
            s.uuid()
    elif ptype == rpcrt.MSRPC_RESPONSE:
        s.int(4), s.int(2), s.int(1), s.int(1)
    elif ptype == rpcrt.MSRPC_FAULT:
        s.int(4), s.int(2), s.int(1), s.int(1), s.int(4), s.int(4)
    elif ptype in (rpcrt.MSRPC_BIND, rpcrt.MSRPC_ALTERCTX):
        s.int(2), s.int(2), s.int(4)
        n = s.int(1)
        s.raw(3)
        for _ in range(n):
            s.int(2)
            k = s.int(1)
            s.raw(1)
            s.syntax()
            for _ in range(k):
                s.syntax()
    elif ptype in (rpcrt.MSRPC_BINDACK, rpcrt.MSRPC_ALTERCTX_R):
        s.int(2), s.int(2), s.int(4)
        s.raw(s.int(2))
        s.raw((4 - s.pos % 4) % 4)
        n = s.int(1)
        s.raw(3)
        for _ in range(n):
            s.int(2), s.int(2)
            s.syntax()
    elif ptype == rpcrt.MSRPC_BINDNAK:
        s.int(2)
    elif ptype == rpcrt.MSRPC_AUTH3:
        s.int(2), s.int(2)
    s.raw(body_end - s.pos)  # stub, bind_nak versions, auth padding: bytes, not integers
    if auth_len:
        s.raw(4)  # auth_type, auth_level, auth_pad_length, auth_reserved
        s.int(4)  # auth_context_id
        s.raw(auth_len)
    assert s.pos == len(pdu) == frag_len, (s.pos, len(pdu), frag_len)
    return bytes(s.out)


def main():
    vectors = build_little_endian()
    print('# Generated by tests/vectors/gen_impacket_pdus.py with Impacket %s; do not edit.'
          % impacket_version)
    for name, data in vectors:
        print(name, data.hex())
    for name, data in vectors:
        print(name + '_be', to_big_endian(data).hex())
    return 0


if __name__ == '__main__':
    sys.exit(main())
