#!/usr/bin/python3
"""Writes the golden regedit exports under tests/data/policy/ exactly as regedit writes them.

regedit (Windows Registry Editor Version 5.00) writes UTF-16LE with a BOM and CRLF line ends,
a blank line after the header and after each key block, and wraps hex data the way Wine's
programs/regedit/export.c reproduces it: bytes as "xx," and, once the line reaches 77
characters, a "\\" + CRLF + two spaces. REGEDIT4 files are ANSI (cp1252; here Latin-1) with the
same layout and hex(7) data in ANSI bytes.

Run from anywhere: /usr/bin/python3 tests/data/policy/make_reg_files.py
Each NAME.reg has a NAME.toml beside it that must resolve to the same policy (policy_test).
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER5 = "Windows Registry Editor Version 5.00"
HEADER4 = "REGEDIT4"
KEY = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Rpc\Internet"
MAX_HEX_CHARS = 77  # Wine export.c: wrap once a line reaches this length


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sz(name, value):
    return f"{quote(name)}={quote(value)}"


def hex_value(name, type_tag, data):
    """'"Name"=hex(7):..' wrapped like regedit; type_tag is 'hex' or 'hex(7)' etc."""
    prefix = f"{quote(name)}="
    out = prefix + type_tag + ":"
    line_len = len(out)
    for i, b in enumerate(data):
        out += f"{b:02x}"
        if i == len(data) - 1:
            break
        out += ","
        line_len += 3
        if line_len >= MAX_HEX_CHARS:
            out += "\\\r\n  "
            line_len = 2
    return out


def multi_sz(name, strings, unicode=True):
    enc = "utf-16-le" if unicode else "latin-1"
    nul = b"\0\0" if unicode else b"\0"
    data = b"".join(s.encode(enc) + nul for s in strings) + nul
    return hex_value(name, "hex(7)", data)


def dword(name, v):
    return f"{quote(name)}=dword:{v:08x}"


def write(name, lines, unicode=True, header=None):
    header = header or (HEADER5 if unicode else HEADER4)
    text = "\r\n".join([header, ""] + lines) + "\r\n"
    data = (b"\xff\xfe" + text.encode("utf-16-le")) if unicode else text.encode("latin-1")
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def block(key, *values):
    return [f"[{key}]", *values, ""]


def main():
    # KB 154596's example: Ports 5000-6000, PortsInternetAvailable Y, UseInternetPorts Y.
    write("kb_example.reg", block(KEY,
        multi_sz("Ports", ["5000-6000"]),
        sz("PortsInternetAvailable", "Y"),
        sz("UseInternetPorts", "Y")))

    # REGEDIT4 (ANSI): hex(7) in single bytes; a Latin-1 byte in an unrelated key.
    write("regedit4_ansi.reg",
          block("HKEY_LOCAL_MACHINE\\SOFTWARE\\Caf\u00e9", sz("Name", "caf\u00e9")) +
          block(KEY,
                multi_sz("Ports", ["5000-5100", "5984", "6000-6099"], unicode=False),
                sz("PortsInternetAvailable", "Y"),
                sz("UseInternetPorts", "N")),
          unicode=False)

    # N/N: the listed ports are the intranet set and the default class.
    write("no_no.reg", block(KEY,
        multi_sz("Ports", ["50000-50099", "50200"]),
        sz("PortsInternetAvailable", "N"),
        sz("UseInternetPorts", "N")))

    # Entry 3 is out of range: the whole configuration is invalid.
    write("invalid_70000.reg", block(KEY,
        multi_sz("Ports", ["5000-5100", "5984", "70000"]),
        sz("PortsInternetAvailable", "Y"),
        sz("UseInternetPorts", "Y")))

    # Ports stored as REG_SZ, not REG_MULTI_SZ (seen in the field): an invalid value, so Windows
    # treats the whole configuration as invalid (Microsoft Learn, "Configuring the Registry for
    # Port Allocations and Selective Binding").
    write("ports_reg_sz.reg", block(KEY,
        sz("Ports", "5000-6000"),
        sz("PortsInternetAvailable", "Y"),
        sz("UseInternetPorts", "Y")))

    # Other keys and value types around the Internet key, a subkey of it, comments, a default
    # value, a "Ports"=- deletion and a second block of the same key that sets Ports again.
    write("other_keys.reg",
          ["; exported for rpcgate tests", ""] +
          block(r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Rpc",
                sz("Ports", "1-2"),
                dword("MaxRpcSize", 0x100000)) +
          block(KEY,
                "@=\"ignored default value\"",
                multi_sz("Ports", ["1000-2000"]),
                sz("PortsInternetAvailable", "Y"),
                hex_value("Unrelated", "hex(2)", "%SystemRoot%".encode("utf-16-le") + b"\0\0"),
                hex_value("Blob", "hex", bytes(range(40)))) +
          block(KEY + r"\Sub", multi_sz("Ports", ["1-65535"]), sz("UseInternetPorts", "N")) +
          block(r"HKEY_CURRENT_USER\Software\Microsoft\Rpc\Internet",
                multi_sz("Ports", ["7-8"])) +
          block(KEY, '"Ports"=-', sz("UseInternetPorts", "Y")) +
          block(KEY, multi_sz("Ports", ["5000-5199", "5984"])))

    # The key is deleted after its values were set: no restriction at all.
    write("key_deleted.reg",
          block(KEY,
                multi_sz("Ports", ["5000-6000"]),
                sz("PortsInternetAvailable", "Y"),
                sz("UseInternetPorts", "Y")) +
          ["[-" + KEY + "]", ""])

    # Key path and value names in lower case, y/n in lower case, HKLM alias.
    write("lowercase_key.reg", block(r"hklm\software\microsoft\rpc\internet",
        multi_sz("ports", ["5000-5099", "5200-5299"]),
        sz("portsinternetavailable", "y"),
        sz("useinternetports", "n")))

    # UseInternetPorts missing: some but not all values => invalid.
    write("missing_value.reg", block(KEY,
        multi_sz("Ports", ["5000-6000"]),
        sz("PortsInternetAvailable", "Y")))

    # Version 5 text saved as UTF-8 with a BOM and LF line ends (an editor's re-save).
    text = "\n".join([HEADER5, ""] + block(KEY,
        multi_sz("Ports", ["49152-49251"]).replace("\r\n", "\n"),
        sz("PortsInternetAvailable", "Y"),
        sz("UseInternetPorts", "Y"))) + "\n"
    with open(os.path.join(HERE, "utf8_v5.reg"), "wb") as f:
        f.write(b"\xef\xbb\xbf" + text.encode("utf-8"))


if __name__ == "__main__":
    main()
