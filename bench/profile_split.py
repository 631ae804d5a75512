#!/usr/bin/env python3
"""Where an ept_map's instructions go, per call, from a callgrind profile of rpcgate-epmd.

bench/profile_epmd.sh callgrind runs it on its own output; by hand:
    PROFILE_KEEP=DIR bench/profile_epmd.sh callgrind && bench/profile_split.py DIR
DIR holds callgrind.out and calls-callgrind.txt (the number of ept_map calls in the profile).

Prints inclusive instructions per call of the parts of the path (for a function that inlining
spreads over several files, the largest entry: the function's own), the allocator's exclusive
instructions and calls per ept_map, the top src/runtime and src/rpc functions and the top
exclusive ones. Parts overlap (a part includes the allocations it makes); a part that did not run
shows 0 (e.g. decode and encode when every answer comes from the EPM's answer cache)."""
import re
import subprocess
import sys


def table(path, inclusive):
    """function name -> instructions (inclusive: largest entry; exclusive: summed over files)."""
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
         "--auto=no", path], capture_output=True, text=True, check=True).stdout
    agg = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        cost = int(m.group(1).replace(",", ""))
        name = re.sub(r" \[[^\]]*\]$", "", m.group(2))  # the object file
        if not name.startswith("PROGRAM"):
            name = name.split(":", 1)[1] if ":" in name else name  # the source file
        if not name.startswith("std::_Function_handler"):
            name = re.sub(r"\((?!anonymous namespace\)).*", "", name)  # the parameters
        agg[name] = max(agg.get(name, 0), cost) if inclusive else agg.get(name, 0) + cost
    return agg


def allocator_calls(path):
    """callee name -> number of calls, from the cfn= / calls= lines of callgrind.out."""
    names, counts, callee = {}, {}, None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^cfn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2).strip()
                callee = names.get(m.group(1))
                continue
            m = re.match(r"^calls=(\d+)", line)
            if m and callee:
                counts[callee] = counts.get(callee, 0) + int(m.group(1))
                callee = None
    return counts


PARTS = [
    ("EPM handler (epm_host.cc: respond + send_outcome)", r"^std::_Function_handler.*epm_handler"),
    ("  EpmService::respond / call", r"^rpcgate::epm::EpmService::(call|respond)$"),
    ("    decode_ept_map_request", r"^rpcgate::ndr::epm::decode_ept_map_request$"),
    ("    parse_map_tower (tower scan)", r"^rpcgate::epm::parse_map_tower$"),
    ("    EndpointDb::map (match)", r"^rpcgate::epm::EndpointDb::map$"),
    ("    render_tower", r"^rpcgate::epm::render_tower$"),
    ("    encode(EptMapResponse)", r"^rpcgate::ndr::epm::encode$"),
    ("    EptMapCache::find", r"^rpcgate::epm::EptMapCache::find$"),
    ("  send_outcome -> Responder::reply (response framing, queue)",
     r"^rpcgate::runtime::(complete|send_outcome)$"),
    ("    rpc::split_response (response fragments)", r"^rpcgate::rpc::split_response$"),
    ("request in: rpc::Framer::feed", r"^rpcgate::rpc::Framer::feed$"),
    ("request in: rpc::decode_pdu", r"^rpcgate::rpc::decode_pdu$"),
    ("request in: ServerAssociation::handle_request", r"^rpcgate::rpc::ServerAssociation::handle_request$"),
]
ALLOCATOR = re.compile(r"^(malloc|free|_int_malloc|_int_free|malloc_consolidate|cfree|tcache\w*|"
                       r"unlink_chunk\w*|operator new.*|operator delete.*)$")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    n = int(open(f"{d}/calls-callgrind.txt").read())
    inc, exc = table(f"{d}/callgrind.out", True), table(f"{d}/callgrind.out", False)
    per = lambda v: v / n
    print(f"== {n} ept_map calls: {per(exc.get('PROGRAM TOTALS', 0)):.0f} instructions per call "
          "in the event loop; inclusive per call:")
    for label, pattern in PARTS:
        v = max((c for k, c in inc.items() if re.search(pattern, k)), default=0)
        print(f"  {per(v):7.0f}  {label}")
    alloc = sum(c for k, c in exc.items() if ALLOCATOR.match(k))
    calls = allocator_calls(f"{d}/callgrind.out")
    print(f"  {per(alloc):7.0f}  malloc/free/new/delete, exclusive ({calls.get('malloc', 0) / n:.2f} "
          f"malloc and {calls.get('free', 0) / n:.2f} free calls per ept_map)")
    print("== top src/runtime and src/rpc functions, inclusive per call:")
    ranked = sorted(((c, k) for k, c in inc.items() if re.match(r"^rpcgate::(runtime|rpc)::", k)),
                    reverse=True)
    for c, k in ranked[:20]:
        print(f"  {per(c):7.0f}  {k[:110]}")
    print("== top functions, exclusive per call:")
    for c, k in sorted(((c, k) for k, c in exc.items() if k != "PROGRAM TOTALS"), reverse=True)[:15]:
        print(f"  {per(c):7.0f}  {k[:110]}")


if __name__ == "__main__":
    main()
