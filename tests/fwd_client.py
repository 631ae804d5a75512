#!/usr/bin/python3
"""The clients of the firewall tests (fwd_test.py), run inside the client namespace with
Debian's /usr/bin/python3. Each command prints one JSON object on stdout and exits 0 (the test
judges it). Two kinds of client:

* real ones: Impacket's ept_map (`map`), Impacket's transport and NDR for rpcecho (`echo`);
* a crafted-PDU client (`attack`) for the cases of docs/evasions.md (A-E): it writes the PDUs byte by byte as
  an attacker would (struct, not Impacket), and reports what came back: the answer's PDU type,
  "reset", "closed" or "timeout".

Usage:
  fwd_client.py map HOST UUID [VERSION]
  fwd_client.py echo HOST [--bytes N] [--calls N] [--hold S]   ept_map rpcecho, bind, EchoData
  fwd_client.py echo HOST --port P [...]                   the same on a port learned elsewhere
  fwd_client.py connect HOST PORT [--source IP]            does a SYN get through?
  fwd_client.py attack CASE HOST PORT [--uuid U] [--source IP]
  fwd_client.py conns HOST PORT N [--source IP]           N connections at once, an EPM bind on each
  fwd_client.py lookup HOST                                ept_lookup, every ncacn_ip_tcp entry
  fwd_client.py lsa|samr HOST [--user U --password P] [--level privacy] [--users]
  fwd_client.py fake-epm LISTEN TOWER_HOST TOWER_PORT   (server side) an endpoint mapper that
                                                        answers every ept_map with one tower
                                                        naming TOWER_HOST[TOWER_PORT] (a referral)
"""
import argparse
import json
import os
import socket
import struct
import sys
import time
import uuid as uuidlib

sys.path.insert(0, __file__.rsplit("/", 1)[0])

NDR20 = ("8a885d04-1ceb-11c9-9fe8-08002b104860", 2, 0)
NDR64 = ("71710533-beba-4937-8319-b5dbef9ccc36", 1, 0)
BTFN = ("6cb71c2c-9812-4540-0300-000000000000", 1, 0)
EPM = ("e1af8308-5d1f-11c9-91a4-08002b14a0fa", 3, 0)
RPCECHO = "60a15ec5-4de8-11d7-a637-005056a20182"
ISYSTEMACTIVATOR = ("000001a0-0000-0000-c000-000000000046", 0, 0)

PTYPES = {2: "response", 3: "fault", 12: "bind_ack", 13: "bind_nak", 15: "alter_context_resp"}


def out(obj):
    print(json.dumps(obj))
    sys.exit(0)


def syntax(u, major, minor):
    return uuidlib.UUID(u).bytes_le + struct.pack("<HH", major, minor)


def header(ptype, flags, frag_len, call_id, auth_len=0, drep=b"\x10\x00\x00\x00"):
    return struct.pack("<BBBB", 5, 0, ptype, flags) + drep + struct.pack("<HHI", frag_len,
                                                                          auth_len, call_id)


def bind_pdu(items, call_id=1, ptype=11, flags=3):
    """items: [(ctx_id, (uuid, major, minor), [transfer syntaxes])]."""
    body = struct.pack("<HHI", 5840, 5840, 0) + struct.pack("<B3x", len(items))
    for ctx, (u, ma, mi), tss in items:
        body += struct.pack("<HBx", ctx, len(tss)) + syntax(u, ma, mi)
        for t in tss:
            body += syntax(*t)
    return header(ptype, flags, 16 + len(body), call_id) + body


def request_pdu(ctx, opnum, stub, call_id=2, flags=3):
    body = struct.pack("<IHH", len(stub), ctx, opnum) + stub
    return header(0, flags, 16 + len(body), call_id) + body


def request_pdu_be(ctx, opnum, stub, call_id=2, flags=3):
    """A request whose packed_drep says big-endian, every integer written big-endian."""
    body = struct.pack(">IHH", len(stub), ctx, opnum) + stub
    return struct.pack(">BBBB", 5, 0, 0, flags) + b"\x00\x00\x00\x00" + struct.pack(
        ">HHI", 16 + len(body), 0, call_id) + body


def read_pdu(sock, timeout=3.0):
    """The next PDU's type name, or "reset" / "closed" / "timeout"."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < 16:
            chunk = sock.recv(16 - len(buf))
            if not chunk:
                return "closed", b""
            buf += chunk
        frag_len = struct.unpack("<H", buf[8:10])[0]
        while len(buf) < frag_len:
            chunk = sock.recv(frag_len - len(buf))
            if not chunk:
                return "closed", buf
            buf += chunk
    except ConnectionResetError:
        return "reset", buf
    except socket.timeout:
        return "timeout", buf
    return PTYPES.get(buf[2], f"ptype{buf[2]}"), buf


def dial(host, port, source=None, timeout=3.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def send_all(s, data, split=False):
    if not split:
        s.sendall(data)
        return
    for i in range(len(data)):  # one byte per segment (TCP_NODELAY, a pause between)
        s.send(data[i:i + 1])
        time.sleep(0.002)


def cmd_map(a):
    from impacket.dcerpc.v5 import epm, transport
    from impacket.uuid import uuidtup_to_bin
    try:
        t = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:{a.host}[135]")
        t.set_connect_timeout(5)
        dce = t.get_dce_rpc()
        dce.connect()
        # hept_map's binding keeps the host asked; the tower's own address (NAT, referrals) is
        # read from the answer it got.
        answers = []
        request = dce.request
        dce.request = lambda *args, **kw: answers.append(request(*args, **kw)) or answers[-1]
        binding = epm.hept_map(a.host, uuidtup_to_bin((a.uuid, a.version)),
                               protocol="ncacn_ip_tcp", dce=dce)
        dce.disconnect()
        port = int(binding.split("[")[1].rstrip("]"))
        tower = epm.EPMTower(b"".join(answers[-1]["ITowers"][0]["Data"]["tower_octet_string"]))
        host = socket.inet_ntoa(epm.EPMHostAddr(tower["Floors"][4].getData())["Ip4addr"])
        out({"binding": binding, "port": port, "tower_host": host})
    except Exception as e:  # the test asserts on the error
        out({"error": f"{type(e).__name__}: {e}"})


def cmd_echo(a):
    from impacket.dcerpc.v5 import epm, transport
    import rpcecho_impacket as echo
    result = {}
    try:
        if a.port:
            binding = f"ncacn_ip_tcp:{a.host}[{a.port}]"
        else:
            binding = epm.hept_map(a.host, echo.MSRPC_UUID_RPCECHO, protocol="ncacn_ip_tcp")
        result["binding"] = binding
        t = transport.DCERPCTransportFactory(binding)
        t.set_connect_timeout(5)
        dce = t.get_dce_rpc()
        dce.connect()
        # Every answer within 10 s: a connection the firewall stopped must end the client.
        t.get_socket().settimeout(10)
        dce.bind(echo.MSRPC_UUID_RPCECHO)
        data = bytes(i % 251 for i in range(a.bytes))
        ok = 0
        for i in range(a.calls):
            if i and a.hold:
                time.sleep(a.hold)
            # No NTSTATUS in rpcecho's answers: checkError=False (as echo_test.py).
            r = dce.request(echo.echo_data(data), checkError=False)
            ok += b"".join(r["out_data"]) == data
        dce.disconnect()
        result["echoed"] = ok
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    out(result)


def ncacn_ip_tcp_tower(uuid, major, minor, host, port):
    """A twr_t octet string (C706 App. L): interface, NDR20, ncacn, tcp port, IPv4 host."""
    floors = [(b"\x0d" + uuidlib.UUID(uuid).bytes_le + struct.pack("<H", major),
               struct.pack("<H", minor)),
              (b"\x0d" + uuidlib.UUID(NDR20[0]).bytes_le + struct.pack("<H", 2),
               struct.pack("<H", 0)),
              (b"\x0b", b"\x00\x00"),
              (b"\x07", struct.pack(">H", port)),
              (b"\x09", socket.inet_aton(host))]
    out = struct.pack("<H", len(floors))
    for lhs, rhs in floors:
        out += struct.pack("<H", len(lhs)) + lhs + struct.pack("<H", len(rhs)) + rhs
    return out


def cmd_fake_epm(a):
    """An endpoint mapper as small as a test needs: binds of the EPM accepted (NDR20), every
    ept_map answered with one tower naming TOWER_HOST[TOWER_PORT], whatever was asked. At most
    64 connections, then it exits; each connection is served until the client closes it."""
    def pad4(b):
        return b + b"\x00" * (-len(b) % 4)
    tower = ncacn_ip_tcp_tower(RPCECHO, 1, 0, a.tower_host, a.tower_port)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((a.listen, 135))
    lsock.listen(8)
    print(json.dumps({"listening": True}), flush=True)
    for _ in range(64):
        conn, _peer = lsock.accept()
        while True:
            kind, pdu = read_pdu(conn, timeout=30)
            if kind not in ("ptype11", "ptype0"):
                break
            call_id = struct.unpack("<I", pdu[12:16])[0]
            if pdu[2] == 11:  # bind: accept the first item with NDR20
                sec = b"135\x00"
                body = struct.pack("<HHI", 5840, 5840, 0x1234) + struct.pack("<H", len(sec)) + sec
                body = pad4(body) + struct.pack("<B3x", 1) + struct.pack("<HH", 0, 0) + \
                    syntax(*NDR20)
                conn.sendall(header(12, 3, 16 + len(body), call_id) + body)
                continue
            max_towers = struct.unpack("<I", pdu[-4:])[0]
            stub = b"\x00" * 20 + struct.pack("<I", 1) + struct.pack("<III", max(max_towers, 1),
                                                                     0, 1)
            stub += struct.pack("<I", 1) + struct.pack("<II", len(tower), len(tower)) + tower
            stub = pad4(stub) + struct.pack("<I", 0)
            body = struct.pack("<IHBB", len(stub), 0, 0, 0) + stub
            conn.sendall(header(2, 3, 16 + len(body), call_id) + body)
        conn.close()


def cmd_connect(a):
    try:
        s = dial(a.host, a.port, a.source, timeout=a.timeout)
        s.close()
        out({"connected": True})
    except OSError as e:
        out({"connected": False, "error": f"{type(e).__name__}: {e}"})


# ---- crafted cases (docs/evasions.md names) -------------------------------------------------
def attack(a):
    allowed = (a.uuid, a.major, a.minor)
    other = (a.other, a.other_major, a.other_minor)
    s = dial(a.host, a.port, a.source)
    case = a.case
    answers = []

    def exchange(pdu, split=False):
        send_all(s, pdu, split)
        kind, raw = read_pdu(s)
        answers.append(kind)
        return kind, raw

    if case == "bind-allowed":  # E1 (and D1's pinhole works)
        exchange(bind_pdu([(0, allowed, [NDR20])]))
    elif case == "bind-then-call-later":  # an established connection, used again after a.wait s
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            if a.wait_file:  # the test says when (a fixed wait races a loaded machine)
                deadline = time.monotonic() + 60
                while not os.path.exists(a.wait_file) and time.monotonic() < deadline:
                    time.sleep(0.05)
            else:
                time.sleep(a.wait)
            try:
                exchange(request_pdu(0, 0, b"\0" * 8))
            except OSError as err:  # the send itself may fail on a closed connection
                answers.append("reset" if isinstance(err, ConnectionResetError) else "closed")
    elif case == "echo-flood-no-read":  # many 64 KiB EchoData calls, answers never read
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            data = b"\x5a" * 65536
            stub = struct.pack("<II", len(data), len(data)) + data
            s.settimeout(10)
            try:
                for call in range(a.calls):
                    for off in range(0, len(stub), 5816):  # fragments of at most 5840 bytes
                        part = stub[off:off + 5816]
                        flags = (1 if off == 0 else 0) | (2 if off + 5816 >= len(stub) else 0)
                        body = struct.pack("<IHH", len(stub) - off, 0, 1) + part
                        s.sendall(header(0, flags, 16 + len(body), 10 + call) + body)
                time.sleep(a.wait)
                answers.append("held")
            except OSError as err:
                answers.append("reset" if isinstance(err, ConnectionResetError) else "closed")
    elif case == "echo-split":  # A1 on the data path: rpcecho EchoData at every split point
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]), split=True)
        if kind == "bind_ack":
            data = bytes(range(256)) * 3
            stub = struct.pack("<II", len(data), len(data)) + data

            def call(call_id):
                return request_pdu(0, 1, stub, call_id=call_id)

            def echoed(kind, raw):
                # response: 16-byte header, alloc_hint, p_cont_id, cancel_count, reserved, then
                # the [out] array: max_count and the bytes.
                return kind == "response" and raw[28:] == data
            # One call a byte at a time (every head/body boundary is a segment boundary).
            kind, raw = exchange(call(2), split=True)
            answers.append("echoed" if echoed(kind, raw) else "wrong")
            # Two calls in one segment, then one cut in the middle of its header.
            s.sendall(call(3) + call(4) + call(5)[:9])
            for _ in range(2):
                kind, raw = read_pdu(s)
                answers.append(kind)
                answers.append("echoed" if echoed(kind, raw) else "wrong")
            time.sleep(0.05)
            kind, raw = exchange(call(5)[9:])
            answers.append("echoed" if echoed(kind, raw) else "wrong")
    elif case == "bind-allowed-split":  # A1: same decision as unsplit
        exchange(bind_pdu([(0, allowed, [NDR20])]), split=True)
    elif case == "bind-other":  # E2: another interface on the same port
        exchange(bind_pdu([(0, other, [NDR20])]))
    elif case == "bind-other-split":  # A1 + E2
        exchange(bind_pdu([(0, other, [NDR20])]), split=True)
    elif case == "bind-mixed":  # C1: allowed + blocked items in one bind
        exchange(bind_pdu([(0, allowed, [NDR20]), (1, other, [NDR20])]))
    elif case == "bind-two-transfer-syntaxes":  # C2: n_transfer_syn = 2 then a blocked item
        exchange(bind_pdu([(0, allowed, [NDR20, NDR64]), (1, other, [NDR20])]))
    elif case == "bind-windows":  # C14: NDR + NDR64 + BTFN for the same allowed interface
        exchange(bind_pdu([(0, allowed, [NDR20]), (1, allowed, [NDR64]), (2, allowed, [BTFN])]))
    elif case == "alter-to-other":  # E4 / C6: allowed bind, then alter_context to a blocked one
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(bind_pdu([(1, other, [NDR20])], call_id=2, ptype=14))
    elif case == "request-without-bind":  # E3
        exchange(request_pdu(0, 0, b"\0" * 8))
    elif case == "garbage":  # E3: not DCE/RPC at all
        exchange(b"GET / HTTP/1.0\r\n\r\n")
    elif case == "request-unbound-context":  # C10
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu(7, 0, b"\0" * 8))
    elif case == "epm-insert":  # D10: ept_insert from the network
        kind, _ = exchange(bind_pdu([(0, EPM, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu(0, 0, b"\0" * 16))
    elif case == "epm-dcom":  # D11: ISystemActivator on 135
        exchange(bind_pdu([(0, ISYSTEMACTIVATOR, [NDR20])]))
    elif case == "frag-too-short":  # B1
        exchange(header(11, 3, 10, 1))
    elif case == "second-bind":  # C9
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(bind_pdu([(1, allowed, [NDR20])], call_id=2))
    elif case == "bind-request-coalesced":  # A2: bind and request in one segment
        exchange(bind_pdu([(0, allowed, [NDR20])]) + request_pdu(0, 0, b"\0" * 8))
    elif case == "request-pipelined":  # A2: request sent before the bind_ack came back
        send_all(s, bind_pdu([(0, allowed, [NDR20])]))
        send_all(s, request_pdu(0, 0, b"\0" * 8))
        for _ in range(2):
            kind, _ = read_pdu(s)
            answers.append(kind)
            if kind in ("reset", "closed", "timeout"):
                break
    elif case == "truncated":  # A4: half a bind, then FIN
        pdu = bind_pdu([(0, allowed, [NDR20])])
        send_all(s, pdu[:len(pdu) // 2])
        s.shutdown(socket.SHUT_WR)
        kind, _ = read_pdu(s, timeout=5)
        answers.append(kind)
    elif case == "slow-drip":  # A5: one byte a second until the relay gives up
        pdu = bind_pdu([(0, allowed, [NDR20])])
        try:
            for i in range(len(pdu)):
                s.send(pdu[i:i + 1])
                time.sleep(a.drip)
            kind, _ = read_pdu(s)
            answers.append(kind)
        except ConnectionResetError:
            answers.append("reset")
        except BrokenPipeError:
            answers.append("closed")
    elif case == "frag-too-long":  # B2: a request fragment above every frame limit
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu(0, 0, b"\0" * (8192 - 24)))
    elif case in ("bad-version", "bad-minor"):  # B4
        pdu = bytearray(bind_pdu([(0, allowed, [NDR20])]))
        if case == "bad-version":
            pdu[0] = 4
        else:
            pdu[1] = 2
        exchange(bytes(pdu))
    elif case in ("cl-ptype", "unknown-ptype"):  # B5: a UDP-only type / no such type, once bound
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            ptype = 1 if case == "cl-ptype" else 0x20  # ping (connectionless) / unassigned
            exchange(header(ptype, 3, 16, 2))
    elif case == "byte-order-change":  # B7: bind little-endian, request big-endian
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu_be(0, 0, b"\0" * 8))
    elif case == "bind-first-only":  # B10: FIRST without LAST is a whole bind (as Windows)
        exchange(bind_pdu([(0, allowed, [NDR20])], flags=1))
    elif case == "bind-first-only-other":  # B10 + E2: and its interfaces are enforced
        exchange(bind_pdu([(0, other, [NDR20])], flags=1))
    elif case == "fragments-mismatch":  # B11: LAST fragment with another opnum
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            send_all(s, request_pdu(0, 0, b"\0" * 8, call_id=2, flags=1))
            exchange(request_pdu(0, 1, b"\0" * 8, call_id=2, flags=2))
    elif case == "fragment-orphan":  # B12: a middle fragment of a call never started
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu(0, 0, b"\0" * 8, call_id=9, flags=0))
    elif case == "fragment-second-first":  # B12: a second FIRST for a call in progress
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            send_all(s, request_pdu(0, 0, b"\0" * 8, call_id=2, flags=1))
            exchange(request_pdu(0, 0, b"\0" * 8, call_id=2, flags=1))
    elif case == "no-context-items":  # C3: n_context_elem = 0
        exchange(bind_pdu([]))
    elif case == "no-transfer-syntaxes":  # C3: an item with n_transfer_syn = 0
        exchange(bind_pdu([(0, allowed, [])]))
    elif case == "many-items":  # C4: --items items (100: 4428 bytes, 200: 8828)
        exchange(bind_pdu([(i, allowed, [NDR20]) for i in range(a.items)]))
    elif case == "duplicate-context-id":  # C5: one p_cont_id, two different syntaxes
        exchange(bind_pdu([(0, allowed, [NDR20]), (0, allowed, [NDR64])]))
    elif case == "alter-redefine":  # C7: alter_context gives an accepted p_cont_id another
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))  # (allowed) interface
        if kind == "bind_ack":
            exchange(bind_pdu([(0, (a.redefine, 1, 0), [NDR20])], call_id=2, ptype=14))
    elif case == "alter-first":  # C8: a connection that starts with alter_context
        exchange(bind_pdu([(0, allowed, [NDR20])], ptype=14))
    elif case == "request-on-negotiate-ack":  # C12: a request on the BTFN item's p_cont_id
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20]), (1, allowed, [BTFN])]))
        if kind == "bind_ack":
            exchange(request_pdu(1, 0, b"\0" * 8))
    elif case == "reset-after-bind":  # the client resets (RST) a bound connection
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif case == "call":  # a bind then one request: what a well-behaved client does
        kind, _ = exchange(bind_pdu([(0, allowed, [NDR20])]))
        if kind == "bind_ack":
            exchange(request_pdu(0, a.opnum, b"\0" * 8))
    else:
        out({"error": f"unknown case {case}"})
    s.close()
    out({"answers": answers})


def cmd_conns(a):
    """Opens N connections at once, then binds the endpoint mapper on each: what each answered
    (a relay over its per-client budget resets the excess)."""
    socks, answers = [], []
    for _ in range(a.n):
        try:
            socks.append(dial(a.host, a.port, a.source))
        except ConnectionResetError:  # the refusal came before connect() returned
            socks.append(None)
            answers.append("reset")
        except OSError as e:
            socks.append(None)
            answers.append(f"connect: {type(e).__name__}")
    for s in socks:
        if s is None:
            continue
        try:
            send_all(s, bind_pdu([(0, EPM, [NDR20])]))
            answers.append(read_pdu(s)[0])
        except ConnectionResetError:
            answers.append("reset")
        except BrokenPipeError:
            answers.append("closed")
    for s in socks:
        if s is not None:
            s.close()
    out({"answers": answers})


# ---- Samba (fwd_samba_test.py): Impacket as a Windows administrator's tools use it ---------
def samba_transport(a, binding):
    from impacket.dcerpc.v5 import transport
    from impacket.dcerpc.v5 import rpcrt
    t = transport.DCERPCTransportFactory(binding)
    t.set_connect_timeout(5)
    if a.user:
        t.set_credentials(a.user, a.password, "")
    dce = t.get_dce_rpc()
    if a.user:
        dce.set_auth_level({"connect": rpcrt.RPC_C_AUTHN_LEVEL_CONNECT,
                            "integrity": rpcrt.RPC_C_AUTHN_LEVEL_PKT_INTEGRITY,
                            "privacy": rpcrt.RPC_C_AUTHN_LEVEL_PKT_PRIVACY}[a.level])
    return dce


def cmd_lookup(a):
    """ept_lookup of every entry as rpcdump.py does it, paging until Samba's last batch (whose
    status is ept_s_not_registered with the entries still in it: rpcdump.py then loses them):
    "uuid major.minor port" for each ncacn_ip_tcp tower."""
    from impacket import uuid as iuuid
    from impacket.dcerpc.v5 import epm
    entries = []
    try:
        dce = samba_transport(argparse.Namespace(user=None), f"ncacn_ip_tcp:{a.host}[135]")
        dce.connect()
        dce.bind(epm.MSRPC_UUID_PORTMAP)
        handle = epm.ept_lookup_handle_t()
        for _ in range(100):
            req = epm.ept_lookup()
            req["inquiry_type"] = epm.RPC_C_EP_ALL_ELTS
            req["object"] = epm.NULL
            req["Ifid"] = epm.NULL
            req["vers_option"] = epm.RPC_C_VERS_ALL
            req["entry_handle"] = handle
            req["max_ents"] = 500
            resp = dce.request(req, checkError=False)
            for i in range(resp["num_ents"]):
                tower = epm.EPMTower(b"".join(resp["entries"][i]["tower"]["tower_octet_string"]))
                floors = tower["Floors"]
                if len(floors) < 4 or floors[3]["ProtocolData"][:1] != b"\x07":
                    continue
                entries.append([iuuid.bin_to_string(floors[0]["InterfaceUUID"]).lower(),
                                f"{floors[0]['MajorVersion']}.{floors[0]['MinorVersion']}",
                                int.from_bytes(floors[3]["RelatedData"], "big")])
            handle = resp["entry_handle"]
            if resp["status"] != 0 or handle.isNull():
                break
        dce.disconnect()
        out({"entries": entries})
    except Exception as e:
        out({"entries": entries, "error": f"{type(e).__name__}: {e}"})


def cmd_lsa(a):
    """hept_map lsarpc, bind (NTLM at --level), LsarOpenPolicy2 + LsarQueryInformationPolicy2.
    The outcome as the test judges it: "policy" (the account domain's name) or "fault"."""
    from impacket.dcerpc.v5 import epm, lsad
    from impacket.dcerpc.v5.rpcrt import DCERPCException
    result = {}
    try:
        binding = epm.hept_map(a.host, lsad.MSRPC_UUID_LSAD, protocol="ncacn_ip_tcp")
        result["binding"] = binding
        dce = samba_transport(a, binding)
        dce.connect()
        dce.bind(lsad.MSRPC_UUID_LSAD)
        result["bound"] = True
        try:
            r = lsad.hLsarOpenPolicy2(dce, lsad.MAXIMUM_ALLOWED)
            q = lsad.hLsarQueryInformationPolicy2(
                dce, r["PolicyHandle"],
                lsad.POLICY_INFORMATION_CLASS.PolicyAccountDomainInformation)
            result["policy"] = q["PolicyInformation"]["PolicyAccountDomainInfo"]["DomainName"]
        except DCERPCException as e:
            result["fault_text"] = str(e)
        dce.disconnect()
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    out(result)


def cmd_samr(a):
    """hept_map samr, bind (NTLM at --level, or none), SamrConnect +
    SamrEnumerateDomainsInSamServer, and with --users SamrLookupDomainInSamServer +
    SamrOpenDomain + SamrEnumerateUsersInDomain (opnum 13)."""
    from impacket.dcerpc.v5 import epm, samr
    result = {}
    try:
        binding = epm.hept_map(a.host, samr.MSRPC_UUID_SAMR, protocol="ncacn_ip_tcp")
        result["binding"] = binding
        result["port"] = int(binding.split("[")[1].rstrip("]"))
        dce = samba_transport(a, binding)
        dce.connect()
        dce.bind(samr.MSRPC_UUID_SAMR)
        result["bound"] = True
        server = samr.hSamrConnect(dce)["ServerHandle"]
        e = samr.hSamrEnumerateDomainsInSamServer(dce, server)
        result["domains"] = [d["Name"] for d in e["Buffer"]["Buffer"]]
        if a.users:
            sid = samr.hSamrLookupDomainInSamServer(dce, server, result["domains"][0])["DomainId"]
            dom = samr.hSamrOpenDomain(dce, server, domainId=sid)["DomainHandle"]
            u = samr.hSamrEnumerateUsersInDomain(dce, dom)
            result["users"] = [x["Name"] for x in u["Buffer"]["Buffer"]]
        dce.disconnect()
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
    out(result)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("map")
    m.add_argument("host")
    m.add_argument("uuid")
    m.add_argument("version", nargs="?", default="1.0")
    e = sub.add_parser("echo")
    e.add_argument("host")
    e.add_argument("--bytes", type=int, default=1000)
    e.add_argument("--calls", type=int, default=3)
    e.add_argument("--hold", type=float, default=0, help="seconds between calls")
    e.add_argument("--port", type=int, default=0, help="skip ept_map: rpcecho is on this port")
    fe = sub.add_parser("fake-epm")
    fe.add_argument("listen")
    fe.add_argument("tower_host")
    fe.add_argument("tower_port", type=int)
    c = sub.add_parser("connect")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--source")
    c.add_argument("--timeout", type=float, default=2.0)
    n = sub.add_parser("conns")
    n.add_argument("host")
    n.add_argument("port", type=int)
    n.add_argument("n", type=int)
    n.add_argument("--source")
    lk = sub.add_parser("lookup")
    lk.add_argument("host")
    for name in ("lsa", "samr"):
        x = sub.add_parser(name)
        x.add_argument("host")
        x.add_argument("--user")
        x.add_argument("--password", default="")
        x.add_argument("--level", choices=("connect", "integrity", "privacy"), default="privacy")
        x.add_argument("--users", action="store_true")
    t = sub.add_parser("attack")
    t.add_argument("case")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--uuid", default=RPCECHO)
    t.add_argument("--major", type=int, default=1)
    t.add_argument("--minor", type=int, default=0)
    t.add_argument("--other", default="11111111-2222-3333-4444-5555555555b1")
    t.add_argument("--other-major", type=int, default=1)
    t.add_argument("--other-minor", type=int, default=0)
    t.add_argument("--redefine", default=RPCECHO, help="alter-redefine's second interface")
    t.add_argument("--opnum", type=int, default=0)
    t.add_argument("--items", type=int, default=100, help="many-items: context items")
    t.add_argument("--drip", type=float, default=1.0, help="slow-drip: seconds per byte")
    t.add_argument("--source")
    t.add_argument("--wait", type=float, default=0, help="bind-then-call-later: seconds")
    t.add_argument("--wait-file", help="bind-then-call-later: call once this file exists (60 s)")
    t.add_argument("--calls", type=int, default=20, help="echo-flood-no-read: calls sent")
    a = p.parse_args()
    if a.cmd == "map":
        cmd_map(a)
    elif a.cmd == "echo":
        cmd_echo(a)
    elif a.cmd == "connect":
        cmd_connect(a)
    elif a.cmd in ("conns", "lookup", "lsa", "samr"):
        globals()["cmd_" + a.cmd](a)
    elif a.cmd == "fake-epm":
        cmd_fake_epm(a)
    else:
        try:
            attack(a)
        except OSError as err:
            out({"answers": [], "error": f"{type(err).__name__}: {err}"})


if __name__ == "__main__":
    main()
