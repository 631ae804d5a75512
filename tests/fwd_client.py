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
  fwd_client.py connect HOST PORT [--source IP]            does a SYN get through?
  fwd_client.py attack CASE HOST PORT [--uuid U] [--source IP]
"""
import argparse
import json
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
        binding = epm.hept_map(a.host, uuidtup_to_bin((a.uuid, a.version)),
                               protocol="ncacn_ip_tcp", dce=dce)
        dce.disconnect()
        port = int(binding.split("[")[1].rstrip("]"))
        out({"binding": binding, "port": port})
    except Exception as e:  # the test asserts on the error
        out({"error": f"{type(e).__name__}: {e}"})


def cmd_echo(a):
    from impacket.dcerpc.v5 import epm, transport
    import rpcecho_impacket as echo
    result = {}
    try:
        binding = epm.hept_map(a.host, echo.MSRPC_UUID_RPCECHO, protocol="ncacn_ip_tcp")
        result["binding"] = binding
        t = transport.DCERPCTransportFactory(binding)
        t.set_connect_timeout(5)
        dce = t.get_dce_rpc()
        dce.connect()
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
    other = (a.other, 1, 0)
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
    else:
        out({"error": f"unknown case {case}"})
    s.close()
    out({"answers": answers})


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
    c = sub.add_parser("connect")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--source")
    c.add_argument("--timeout", type=float, default=2.0)
    t = sub.add_parser("attack")
    t.add_argument("case")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--uuid", default=RPCECHO)
    t.add_argument("--major", type=int, default=1)
    t.add_argument("--minor", type=int, default=0)
    t.add_argument("--other", default="11111111-2222-3333-4444-5555555555b1")
    t.add_argument("--source")
    a = p.parse_args()
    if a.cmd == "map":
        cmd_map(a)
    elif a.cmd == "echo":
        cmd_echo(a)
    elif a.cmd == "connect":
        cmd_connect(a)
    else:
        try:
            attack(a)
        except OSError as err:
            out({"answers": [], "error": f"{type(err).__name__}: {err}"})


if __name__ == "__main__":
    main()
