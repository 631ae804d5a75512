#!/usr/bin/python3
"""Generates ept_map / ept_lookup stub vectors with Impacket's own NDR structures.

Output (stdout), one vector per line, consumed by src/ndr/epm_types_test.cc:

    <kind> <name> <hex stub> <expectations>

kind: map_req | map_resp | lookup_req | lookup_resp (all NDR20, little-endian, as Impacket
sends). expectations: ';'-joined key=value pairs (bindings are '|'-separated string bindings
of the towers in order, as rpcgate formats them). Impacket pads with 0xaa / 0xab and picks
random referent ids unless told otherwise, so every referent id is set explicitly here
(1, 2, 3, ...) to keep the output deterministic. Committed as
src/ndr/testdata/impacket_epm_vectors.txt; tests/impacket_epm_vectors_test.sh regenerates and diffs.
Run with /usr/bin/python3 (the system interpreter has python3-impacket).
"""
import socket
import sys

from impacket.dcerpc.v5 import epm
from impacket.dcerpc.v5.ndr import NULL
from impacket.uuid import uuidtup_to_bin, string_to_bin

NDR20 = uuidtup_to_bin(('8a885d04-1ceb-11c9-9fe8-08002b104860', '2.0'))
SAMR = uuidtup_to_bin(('12345778-1234-abcd-ef00-0123456789ac', '1.0'))
LSARPC = uuidtup_to_bin(('12345778-1234-abcd-ef00-0123456789ab', '0.0'))
EPMV3 = uuidtup_to_bin(('e1af8308-5d1f-11c9-91a4-08002b14a0fa', '3.0'))


def tower(iface, protocol, port=0, ip='0.0.0.0', pipe=b'', host=b''):
    interface = epm.EPMRPCInterface()
    interface['InterfaceUUID'] = iface[:16]
    interface['MajorVersion'] = int.from_bytes(iface[16:18], 'little')
    interface['MinorVersion'] = int.from_bytes(iface[18:20], 'little')
    data_rep = epm.EPMRPCDataRepresentation()
    data_rep['DataRepUuid'] = NDR20[:16]
    data_rep['MajorVersion'] = 2
    data_rep['MinorVersion'] = 0
    prot = epm.EPMProtocolIdentifier()
    prot['ProtIdentifier'] = 0x0a if protocol == 'ncadg_ip_udp' else 0x0b
    if protocol == 'ncacn_np':
        pipe_floor = epm.EPMPipeName()
        pipe_floor['PipeName'] = pipe + b'\x00'
        host_floor = epm.EPMHostName()
        host_floor['HostName'] = host + b'\x00'
        transport = pipe_floor.getData() + host_floor.getData()
    else:
        port_floor = epm.EPMPortAddr()
        port_floor['PortIdentifier'] = {'ncacn_ip_tcp': 0x07, 'ncadg_ip_udp': 0x08,
                                        'ncacn_http': 0x1f}[protocol]
        port_floor['IpPort'] = port
        host_floor = epm.EPMHostAddr()
        host_floor['Ip4addr'] = socket.inet_aton(ip)
        transport = port_floor.getData() + host_floor.getData()
    t = epm.EPMTower()
    t['NumberOfFloors'] = 5
    t['Floors'] = interface.getData() + data_rep.getData() + prot.getData() + transport
    return t.getData()


def handle(attributes=0, uuid='00000000-0000-0000-0000-000000000000'):
    h = epm.ept_lookup_handle_t()
    h['context_handle_attributes'] = attributes
    h['context_handle_uuid'] = string_to_bin(uuid)
    return h


def twr_p(octets, referent):
    p = epm.twr_p_t()
    p['tower_length'] = len(octets)
    p['tower_octet_string'] = octets
    p.fields['ReferentID'] = referent
    return p


def emit(kind, name, data, **expect):
    pairs = ';'.join('%s=%s' % (k, v) for k, v in expect.items())
    print('%s %s %s %s' % (kind, name, data.hex(), pairs or '-'))


def map_requests():
    for name, tw, obj_ref, max_towers in [
        ('samr_tcp', tower(SAMR, 'ncacn_ip_tcp'), 1, 1),
        ('lsarpc_np', tower(LSARPC, 'ncacn_np', pipe=b'', host=b'\\\\HOST'), 1, 4),
        ('epm_http', tower(EPMV3, 'ncacn_http', port=593, ip='10.1.2.3'), 0, 500),
    ]:
        req = epm.ept_map()
        if obj_ref:
            req['obj'] = string_to_bin('00000000-0000-0000-0000-000000000000')
            req.fields['obj'].fields['ReferentID'] = obj_ref
        else:
            req['obj'] = NULL
        req['map_tower']['tower_length'] = len(tw)
        req['map_tower']['tower_octet_string'] = tw
        req.fields['map_tower'].fields['ReferentID'] = 2
        req['entry_handle'] = handle()
        req['max_towers'] = max_towers
        emit('map_req', name, req.getData(), object='nil' if obj_ref else 'null',
             max_towers=max_towers, tower_len=len(tw))


def map_responses():
    cases = [
        ('one_tcp', [tower(SAMR, 'ncacn_ip_tcp', 49664, '127.0.0.1')], 1, 0,
         ['ncacn_ip_tcp:127.0.0.1[49664]'], handle()),
        ('three_mixed', [tower(SAMR, 'ncacn_ip_tcp', 49664, '192.168.1.10'),
                         tower(SAMR, 'ncadg_ip_udp', 49665, '192.168.1.10'),
                         tower(SAMR, 'ncacn_np', pipe=b'\\PIPE\\samr', host=b'\\\\DC01')], 4, 0,
         ['ncacn_ip_tcp:192.168.1.10[49664]', 'ncadg_ip_udp:192.168.1.10[49665]',
          'ncacn_np:\\\\DC01[\\PIPE\\samr]'],
         handle(0, '6b29fc40-ca47-1067-b31d-00dd010662da')),
        ('not_found', [], 1, 0x16c9a0d6, [], handle()),
    ]
    for name, towers, max_towers, status, bindings, h in cases:
        resp = epm.ept_mapResponse()
        resp['entry_handle'] = h
        resp['num_towers'] = len(towers)
        resp.fields['ITowers'].fields['MaximumCount'] = max_towers
        for i, tw in enumerate(towers):
            resp['ITowers'].append(twr_p(tw, i + 1))
        resp['status'] = status
        emit('map_resp', name, resp.getData(), num_towers=len(towers), max_count=max_towers,
             status='%#x' % status, bindings='|'.join(bindings) or '-',
             handle=h['context_handle_uuid'].hex())


def lookup_requests():
    req = epm.ept_lookup()
    req['inquiry_type'] = epm.RPC_C_EP_ALL_ELTS
    req['object'] = NULL
    req['Ifid'] = NULL
    req['vers_option'] = epm.RPC_C_VERS_ALL
    req['entry_handle'] = handle()
    req['max_ents'] = 500
    emit('lookup_req', 'all_elts', req.getData(), inquiry_type=0, object='null', ifid='null',
         vers_option=1, max_ents=500)

    req = epm.ept_lookup()
    req['inquiry_type'] = 3
    req['object'] = string_to_bin('6b29fc40-ca47-1067-b31d-00dd010662da')
    req.fields['object'].fields['ReferentID'] = 1
    ifid = epm.RPC_IF_ID()
    ifid['Uuid'] = SAMR[:16]
    ifid['VersMajor'] = 1
    ifid['VersMinor'] = 0
    req['Ifid'] = ifid
    req.fields['Ifid'].fields['ReferentID'] = 2
    req['vers_option'] = epm.RPC_C_VERS_EXACT
    req['entry_handle'] = handle(0, '11223344-5566-7788-99aa-bbccddeeff00')
    req['max_ents'] = 2
    emit('lookup_req', 'by_both', req.getData(), inquiry_type=3,
         object='6b29fc40-ca47-1067-b31d-00dd010662da',
         ifid='12345778-1234-abcd-ef00-0123456789ac/1.0', vers_option=3, max_ents=2)


def lookup_responses():
    entries = [
        ('samr', tower(SAMR, 'ncacn_ip_tcp', 49664, '127.0.0.1'),
         'ncacn_ip_tcp:127.0.0.1[49664]'),
        ('lsarpc', tower(LSARPC, 'ncacn_np', pipe=b'\\PIPE\\lsass', host=b'\\\\DC01'),
         'ncacn_np:\\\\DC01[\\PIPE\\lsass]'),
        ('', tower(EPMV3, 'ncacn_http', 593, '10.0.0.1'), 'ncacn_http:10.0.0.1[593]'),
        ('Impl friendly name', tower(SAMR, 'ncadg_ip_udp', 135, '10.0.0.2'),
         'ncadg_ip_udp:10.0.0.2[135]'),
    ]
    for name, count, max_ents, status, h in [
        ('one_entry', 1, 500, 0, handle()),
        ('four_entries', 4, 500, 0, handle(0, '6b29fc40-ca47-1067-b31d-00dd010662da')),
        ('empty_not_registered', 0, 500, 0x16c9a0d6, handle()),
    ]:
        resp = epm.ept_lookupResponse()
        resp['entry_handle'] = h
        resp['num_ents'] = count
        resp.fields['entries'].fields['MaximumCount'] = max_ents
        for i, (annotation, tw, _) in enumerate(entries[:count]):
            e = epm.ept_entry_t()
            e['object'] = string_to_bin('00000000-0000-0000-0000-000000000000')
            e.fields['tower'] = twr_p(tw, i + 1)
            e['annotation'] = annotation.encode() + b'\x00'
            resp['entries'].append(e)
        resp['status'] = status
        emit('lookup_resp', name, resp.getData(), num_ents=count, max_count=max_ents,
             status='%#x' % status,
             bindings='|'.join(b for _, _, b in entries[:count]) or '-',
             annotations='|'.join(a for a, _, _ in entries[:count]).replace(' ', '_') or '-',
             handle=h['context_handle_uuid'].hex())


def main():
    print('# Generated by tests/vectors/gen_impacket_epm.py (Impacket NDR); do not edit.')
    map_requests()
    map_responses()
    lookup_requests()
    lookup_responses()


if __name__ == '__main__':
    sys.exit(main())
