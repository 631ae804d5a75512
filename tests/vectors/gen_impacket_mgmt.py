#!/usr/bin/python3
"""Generates MGMT (afa8bd80-7d8a-11c9-bef4-08002b102989 v1.0) response stubs with Impacket's own
NDR structures (impacket/dcerpc/v5/mgmt.py), the ones rpcmap.py parses.

Output (stdout), one vector per line, consumed by src/epm/mgmt_test.cc:

    <opnum> <name> <hex request stub> <hex response stub>

All NDR20 little-endian. Referent ids are set explicitly in Windows' style (0x00020000, +4) so
the output is deterministic and equals what rpcgate writes. Impacket's is_server_listening
response lists only `status`; C706 mgmt.idl returns boolean32 after it, so that vector uses a
local NDRCALL with both fields. Committed as src/epm/testdata/impacket_mgmt_vectors.txt;
tests/impacket_mgmt_vectors_test.sh regenerates and diffs. Run with /usr/bin/python3.
"""
from impacket.dcerpc.v5 import epm, mgmt
from impacket.dcerpc.v5.dtypes import ULONG
from impacket.dcerpc.v5.ndr import NDRCALL
from impacket.uuid import string_to_bin


class is_server_listeningResponseC706(NDRCALL):
    structure = (
        ('status', ULONG),
        ('result', ULONG),
    )


def emit(opnum, name, request, response):
    print('%d %s %s %s' % (opnum, name, request.hex() or '-', response.hex()))


def if_ids(name, ids):
    vec = mgmt.rpc_if_id_vector_t()
    vec['count'] = len(ids)
    for i, (u, major, minor) in enumerate(ids):
        p = epm.PRPC_IF_ID()
        p['Uuid'] = string_to_bin(u)
        p['VersMajor'] = major
        p['VersMinor'] = minor
        p.fields['ReferentID'] = 0x00020004 + 4 * i
        vec['if_id'].append(p)
    ptr = mgmt.rpc_if_id_vector_p_t()
    ptr['Data'] = vec
    ptr.fields['ReferentID'] = 0x00020000
    r = mgmt.inq_if_idsResponse()
    r['if_id_vector'] = ptr
    r['status'] = 0
    data = r.getData()
    back = mgmt.inq_if_idsResponse(data)  # what rpcmap.py does with the answer
    assert back['if_id_vector']['count'] == len(ids)
    emit(0, name, mgmt.inq_if_ids().getData(), data)


def stats(name, count, values):
    req = mgmt.inq_stats()
    req['count'] = count
    r = mgmt.inq_statsResponse()
    r['count'] = len(values)
    r['statistics'] = values
    r['status'] = 0
    emit(1, name, req.getData(), r.getData())


def princ_name(name, authn_proto, size, text, status):
    req = mgmt.inq_princ_name()
    req['authn_proto'] = authn_proto
    req['princ_name_size'] = size
    r = mgmt.inq_princ_nameResponse()
    r['princ_name'] = list(text.encode() + b'\0')
    r['status'] = status
    data = bytearray(r.getData())
    data[0:4] = size.to_bytes(4, 'little')  # conformance = princ_name_size, as MIDL writes it
    end = 12 + len(text) + 1
    data[end:len(data) - 4] = bytes(len(data) - 4 - end)  # Impacket pads with 0xbf; zero pad
    back = mgmt.inq_princ_nameResponse(bytes(data))
    assert back['status'] == status and b''.join(back['princ_name']) == text.encode() + b'\0'
    emit(4, name, req.getData(), bytes(data))


if_ids('epm_and_mgmt', [('e1af8308-5d1f-11c9-91a4-08002b14a0fa', 3, 0),
                        ('afa8bd80-7d8a-11c9-bef4-08002b102989', 1, 0)])
if_ids('one', [('12345778-1234-abcd-ef00-0123456789ac', 1, 0)])
stats('four', 4, [10, 20, 30, 40])
stats('two', 2, [10, 20])
r = is_server_listeningResponseC706()
r['status'] = 0
r['result'] = 1
emit(2, 'listening', mgmt.is_server_listening().getData(), r.getData())
r = mgmt.stop_server_listeningResponse()
r['status'] = 5
emit(3, 'refused', mgmt.stop_server_listening().getData(), r.getData())
princ_name('unauthenticated', 10, 1, '', 1747)
princ_name('named', 9, 64, 'host/epm.example', 0)
