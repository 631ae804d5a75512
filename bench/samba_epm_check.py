#!/usr/bin/python3
"""Impacket checks against an endpoint mapper on HOST:135 (written for Samba's rpcd_epmapper).

Run as /usr/bin/python3 (Debian's python3-impacket 0.10.0), inside the network namespace where
bench/samba_epm.sh started samba-dcerpcd.

Modes:
  --list [--wait S] [--pid P] [--log FILE]
      Wait (at most S seconds; give up early if process P dies or FILE reports a failed socket
      bind: samba-dcerpcd keeps running without the port) until HOST:135 answers an
      epm.hept_map for winreg, then print every ncacn_ip_tcp entry of the endpoint database as
      "uuid major.minor port", one per line, sorted. The listing uses ept_lookup with its own
      paging loop that accepts Samba's last-batch status (see below). Exit 0, or 1 on timeout.
  (default) --interfaces FILE
      For each "uuid major.minor port" line of FILE: Impacket's epm.hept_map(...,
      protocol='ncacn_ip_tcp') must return that port. Then Impacket's own epm.hept_lookup is
      called and its outcome reported. Exit 0 when every hept_map matched, 1 otherwise.

Samba's ept_lookup quirk (Samba 4.17, source3/rpc_server/epmapper/srv_epmapper.c): the final
batch carries its entries together with status 0x16c9a0d6 (EPT_S_NOT_REGISTERED, "no more
entries") and a null handle; Windows returns status 0 there. Impacket 0.10.0's hept_lookup raises
on any non-zero status, so it throws ept_s_not_registered and the entries are lost (rpcdump.py
then says "No endpoints found"). This script reports that as a known Samba behaviour, not a
failure.
"""
import argparse
import os
import sys
import time

from impacket import uuid
from impacket.dcerpc.v5 import epm, transport
from impacket.dcerpc.v5.rpcrt import DCERPCException

WINREG = ("338cd001-2244-31f1-aaaa-900038001003", "1.0")
EPT_S_NOT_REGISTERED = 0x16C9A0D6
FLOOR_TCP = 0x07


def dce_to(host, port=135, timeout=3.0):
    t = transport.DCERPCTransportFactory(r"ncacn_ip_tcp:%s[%d]" % (host, port))
    t.set_connect_timeout(timeout)
    dce = t.get_dce_rpc()
    dce.connect()
    return dce


def map_port(host, ifuuid, version, timeout=3.0):
    """Impacket's hept_map on a fresh, unbound connection (a second BIND is refused by Samba)."""
    dce = dce_to(host, timeout=timeout)
    try:
        binding = epm.hept_map(host, uuid.uuidtup_to_bin((ifuuid, version)),
                               protocol="ncacn_ip_tcp", dce=dce)
    finally:
        dce.disconnect()
    # "ncacn_ip_tcp:127.0.0.1[50201]"
    return int(binding.rsplit("[", 1)[1].rstrip("]"))


def tolerant_lookup(host, timeout=3.0):
    """ept_lookup, all entries, paging until a null handle; a non-zero status ends the walk but
    keeps the entries of that batch (Samba's last batch). Returns (entries, pages, statuses)."""
    dce = dce_to(host, timeout=timeout)
    entries, statuses = [], []
    try:
        dce.bind(epm.MSRPC_UUID_PORTMAP)
        handle = epm.ept_lookup_handle_t()
        for _ in range(1000):  # bounded
            req = epm.ept_lookup()
            req["inquiry_type"] = epm.RPC_C_EP_ALL_ELTS
            req["object"] = epm.NULL
            req["Ifid"] = epm.NULL
            req["vers_option"] = epm.RPC_C_VERS_ALL
            req["entry_handle"] = handle
            req["max_ents"] = 500
            resp = dce.request(req, checkError=False)
            for i in range(resp["num_ents"]):
                e = resp["entries"][i]
                entries.append(epm.EPMTower(b"".join(e["tower"]["tower_octet_string"])))
            statuses.append(resp["status"])
            handle = resp["entry_handle"]
            if resp["status"] != 0 or handle.isNull():
                break
    finally:
        dce.disconnect()
    return entries, statuses


def tcp_interfaces(towers):
    """{(uuid, "maj.min", port)} for every tower whose transport floor is TCP."""
    out = set()
    for t in towers:
        floors = t["Floors"]
        if len(floors) < 4:
            continue
        f3 = floors[3]
        if f3["ProtocolData"][:1] != bytes([FLOOR_TCP]) or len(f3["RelatedData"]) != 2:
            continue
        port = int.from_bytes(f3["RelatedData"], "big")
        u = uuid.bin_to_string(floors[0]["InterfaceUUID"]).lower()
        out.add((u, "%d.%d" % (floors[0]["MajorVersion"], floors[0]["MinorVersion"]), port))
    return sorted(out)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cmd_list(a):
    deadline = time.monotonic() + a.wait
    last = None
    while True:
        try:
            map_port(a.host, *WINREG, timeout=2.0)
            break
        except Exception as e:  # connection refused / reset while starting, not registered yet
            last = e
        if a.pid and not alive(a.pid):
            print("samba_epm_check: process %d exited before %s:135 answered (last: %r)"
                  % (a.pid, a.host, last), file=sys.stderr)
            return 1
        if a.log and os.path.exists(a.log):
            with open(a.log, errors="replace") as f:
                if "Failed to create socket" in f.read():
                    print("samba_epm_check: samba-dcerpcd could not bind a port (see %s)" % a.log,
                          file=sys.stderr)
                    return 1
        if time.monotonic() >= deadline:
            print("samba_epm_check: %s:135 did not answer hept_map(winreg) within %.0f s (last: %r)"
                  % (a.host, a.wait, last), file=sys.stderr)
            return 1
        time.sleep(0.2)
    towers, statuses = tolerant_lookup(a.host)
    for u, v, port in tcp_interfaces(towers):
        print(u, v, port)
    return 0


def cmd_check(a):
    wanted = []
    with open(a.interfaces) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                wanted.append((parts[0], parts[1], int(parts[2])))
    if not wanted:
        print("FAIL: no interfaces in %s" % a.interfaces)
        return 1
    ok = True
    matched = 0
    for u, v, port in wanted:
        t0 = time.monotonic()
        try:
            got = map_port(a.host, u, v)
        except Exception as e:
            print("FAIL hept_map %s v%s: %s" % (u, v, e))
            ok = False
            continue
        ms = (time.monotonic() - t0) * 1000
        verdict = "ok  " if got == port else "FAIL"
        ok &= got == port
        matched += got == port
        print("%s hept_map %s v%s -> %d (expected %d, %.1f ms)" % (verdict, u, v, got, port, ms))

    # Impacket's own hept_lookup, as rpcdump.py uses it.
    try:
        entries = epm.hept_lookup(a.host)
        print("info hept_lookup: %d entries, no error (not Samba 4.17's behaviour?)" % len(entries))
    except DCERPCException as e:
        if e.get_error_code() == EPT_S_NOT_REGISTERED:
            print("info hept_lookup raised %s: known Samba behaviour (last batch = entries + "
                  "status 0x16c9a0d6), Impacket 0.10.0 drops the entries" % e)
        else:
            print("FAIL hept_lookup: unexpected %s" % e)
            ok = False
    towers, statuses = tolerant_lookup(a.host)
    tcp = tcp_interfaces(towers)
    print("info tolerant ept_lookup: %d towers in %d batch(es), statuses %s; %d ncacn_ip_tcp"
          % (len(towers), len(statuses), ",".join("0x%x" % s for s in statuses), len(tcp)))
    missing = [w for w in wanted if w not in tcp]
    if missing:
        print("FAIL tolerant ept_lookup lacks %s" % missing)
        ok = False
    print("%s: %d/%d hept_map answered with the registered port"
          % ("PASS" if ok else "FAIL", matched, len(wanted)))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--list", action="store_true")
    p.add_argument("--wait", type=float, default=20.0)
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--log", help="with --list: give up as soon as this log says a bind failed")
    p.add_argument("--interfaces", help="file of 'uuid version port' lines (samba_epm.sh start output)")
    a = p.parse_args()
    if a.list:
        return cmd_list(a)
    if not a.interfaces:
        p.error("--interfaces FILE is required without --list")
    return cmd_check(a)


if __name__ == "__main__":
    sys.exit(main())
