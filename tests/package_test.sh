#!/bin/bash
# The Debian package, end to end on this machine (cmake/Package.cmake, packaging/, README
# "Installing the package"): `make package` builds the .deb, lintian finds no error in it, `dpkg -i`
# installs it, the installed programs run, rpcgate-epmd started the way rpcgate-epmd.socket starts
# it (systemd-socket-activate, as the rpcgate user, no capability) answers Impacket's ept_map
# without binding anything itself, the units pass `systemd-analyze verify` and score an exposure
# of 2.0 or less, and `dpkg --purge` leaves nothing of the package behind but the rpcgate user
# (Debian policy keeps system users).
#
# It installs into /usr, /etc and /lib/systemd, so it needs root and dpkg (else exit 77: skipped),
# refuses to run over an rpcgate package someone installed (77), and puts the machine back as it
# found it, on failure too (trap): the package purged, and the rpcgate user removed if this test
# created it.
set -euo pipefail

SRC=${RPCGATE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root (dpkg -i)"
for tool in dpkg dpkg-deb lintian systemd-analyze systemd-socket-activate unshare setpriv ss \
            adduser deb-systemd-helper; do
  command -v "$tool" >/dev/null || skip "needs $tool (make deps installs it)"
done
/usr/bin/python3 -c 'import impacket' 2>/dev/null || skip "needs python3-impacket"
if dpkg-query -W -f='${Status}' rpcgate 2>/dev/null | grep -q 'installed'; then
  skip "an rpcgate package is already installed here; this test will not replace it"
fi

work=$(mktemp -d /tmp/rpcgate-package-test.XXXXXX)
user_existed=no
getent passwd rpcgate >/dev/null && user_existed=yes

# Every path of the package's (and its maintainer scripts') that could be left behind.
# (find's status is ignored: some of these directories exist only once a unit was enabled.)
snapshot() {
  { find /usr /etc /lib/systemd /var/lib/systemd /run -xdev -name '*rpcgate*' 2>/dev/null || true
    find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
         /var/lib/systemd/deb-systemd-helper-masked -xdev 2>/dev/null || true; } | sort
}

cleanup() {
  local status=$?
  if dpkg-query -W -f='${Status}' rpcgate 2>/dev/null | grep -q 'installed\|config-files'; then
    echo "cleanup: purging rpcgate"
    dpkg --purge rpcgate >/dev/null 2>&1 || true
  fi
  if [ "$user_existed" = no ] && getent passwd rpcgate >/dev/null; then
    # The package leaves its user (policy); the test removes the one it made.
    deluser --system --quiet rpcgate >/dev/null 2>&1 || userdel rpcgate || true
  fi
  if [ "$user_existed" = no ] && getent group rpcgate >/dev/null; then
    delgroup --system --quiet rpcgate >/dev/null 2>&1 || groupdel rpcgate || true
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

before=$work/before.txt
snapshot > "$before"

echo "== make package"
make --no-print-directory -C "$SRC" package > "$work/make.log" 2>&1 || { tail -50 "$work/make.log"; fail "make package"; }
deb=$(tail -1 "$work/make.log")
[ -f "$deb" ] || { tail -20 "$work/make.log"; fail "make package printed no .deb path: $deb"; }
echo "$deb"

echo "== the package's metadata"
dpkg-deb --info "$deb" > "$work/info.txt"
cat "$work/info.txt"
grep -q '^ Section: net$' "$work/info.txt" || fail "no Section: net"
grep -q '^ Priority: optional$' "$work/info.txt" || fail "no Priority: optional"
depends=$(sed -n 's/^ Depends: //p' "$work/info.txt")
# dpkg-shlibdeps computed the libraries' packages; the maintainer scripts' tools are listed too.
for dep in libc6 libstdc++6 libsystemd0 libnftables1 adduser init-system-helpers; do
  [[ "$depends" == *"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/rpcgate/rpcgate.toml ] ||
  fail "conffiles is not exactly /etc/rpcgate/rpcgate.toml"
dpkg-deb --contents "$deb" > "$work/contents.txt"
for path in ./usr/sbin/rpcgate-epmd ./usr/sbin/rpcgate-fwd ./usr/bin/rpcgate ./usr/bin/rpcgate-echo \
            ./usr/bin/rpcgate-bench ./lib/systemd/system/rpcgate-epmd.socket \
            ./lib/systemd/system/rpcgate-epmd.service ./lib/systemd/system/rpcgate-fwd.service \
            ./etc/rpcgate/rpcgate.toml ./usr/share/doc/rpcgate/copyright \
            ./usr/share/doc/rpcgate/changelog.gz; do
  grep -q " $path\$" "$work/contents.txt" || fail "the package lacks $path"
done
if grep -v ' root/root ' "$work/contents.txt"; then fail "files not owned by root/root"; fi

echo "== lintian"
# No error; the warnings that remain are listed and explained in README.md.
lintian --info --display-info "$deb" > "$work/lintian.txt" 2>&1 || true
cat "$work/lintian.txt"
if grep -q '^E: ' "$work/lintian.txt"; then fail "lintian reports errors"; fi

echo "== dpkg -i"
dpkg -i "$deb"
dpkg-query -W -f='${Status}\n' rpcgate | grep -q 'install ok installed' || fail "not installed"

echo "== the rpcgate system user"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd rpcgate) || fail "no rpcgate user"
[ "$uid" -lt 1000 ] || fail "rpcgate uid $uid is not a system uid"
[ "$home" = /nonexistent ] || fail "rpcgate's home is $home"
[ "$(getent group rpcgate | cut -d: -f3)" = "$gid" ] || fail "rpcgate's group is not rpcgate"
echo "rpcgate uid $uid gid $gid home $home shell $shell"

echo "== units enabled, not started"
for link in /etc/systemd/system/sockets.target.wants/rpcgate-epmd.socket \
            /etc/systemd/system/multi-user.target.wants/rpcgate-epmd.service \
            /etc/systemd/system/multi-user.target.wants/rpcgate-fwd.service; do
  [ -L "$link" ] || fail "$link is not there (units not enabled)"
done
if pgrep -f '^/usr/sbin/rpcgate-(epmd|fwd)' >/dev/null; then fail "the package started a daemon"; fi

echo "== each program's --version"
for prog in /usr/sbin/rpcgate-epmd /usr/sbin/rpcgate-fwd /usr/bin/rpcgate /usr/bin/rpcgate-echo \
            /usr/bin/rpcgate-bench; do
  out=$("$prog" --version)
  echo "$out"
  [[ "$out" =~ ^$(basename "$prog")\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "$prog --version: $out"
done

echo "== rpcgate policy check"
cat > "$work/policy.toml" <<'EOF'
[policy]
ports = ["50000-50099"]
ports_internet_available = "Y"
use_internet_ports = "Y"
EOF
/usr/bin/rpcgate policy check "$work/policy.toml" | tee "$work/check.txt"
grep -q '50000-50099' "$work/check.txt" || fail "policy check does not show 50000-50099"
printf '[policy]\nports = ["50000-49000"]\n' > "$work/bad.toml"
if /usr/bin/rpcgate policy check "$work/bad.toml" > "$work/bad.txt" 2>&1; then
  cat "$work/bad.txt"; fail "an invalid policy passed the check"
fi
# The shipped conffile is a valid configuration for both daemons.
/usr/bin/rpcgate policy check /etc/rpcgate/rpcgate.toml > /dev/null ||
  fail "rpcgate policy check /etc/rpcgate/rpcgate.toml"

echo "== rpcgate-epmd socket-activated, as the rpcgate user"
cat > "$work/activate.py" <<'EOF'
# Inside `unshare -n`: systemd-socket-activate binds 127.0.0.1:135 and a control socket as root,
# then (setpriv) rpcgate-epmd runs as rpcgate with no capability, as rpcgate-epmd.service does.
import os, signal, socket, subprocess, sys, time

work = sys.argv[1]
sys.path.insert(0, sys.argv[2])  # tests/: rpcgate_testlib.hept_map (Impacket)
from rpcgate_testlib import hept_map  # noqa: E402
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
control = os.path.join(work, "run", "epmd.sock")
os.makedirs(os.path.dirname(control))
log = open(os.path.join(work, "epmd.log"), "w")
epmd = subprocess.Popen(
    ["systemd-socket-activate", "-l", "127.0.0.1:135", "-l", control,
     "setpriv", "--reuid=rpcgate", "--regid=rpcgate", "--init-groups", "--inh-caps=-all",
     "--bounding-set=-all", "/usr/sbin/rpcgate-epmd", "--config", "/etc/rpcgate/rpcgate.toml",
     "--listen", "127.0.0.1:1135", "--control", os.path.join(work, "not-used.sock")],
    stdout=log, stderr=subprocess.STDOUT)

def epmd_log():
    with open(os.path.join(work, "epmd.log")) as f:
        return f.read()


echo = None
try:
    # systemd-socket-activate starts the program at the first client, as systemd does.
    deadline = time.monotonic() + 10
    while epmd_log().count("Listening on ") < 2:
        if epmd.poll() is not None or time.monotonic() > deadline:
            sys.exit("systemd-socket-activate did not listen:\n" + epmd_log())
        time.sleep(0.05)
    socket.create_connection(("127.0.0.1", 135), 5).close()
    while "listening on" not in epmd_log():
        if epmd.poll() is not None or time.monotonic() > deadline:
            sys.exit("rpcgate-epmd did not start:\n" + epmd_log())
        time.sleep(0.05)
    print(epmd_log(), end="")
    status = open(f"/proc/{epmd.pid}/status").read()
    assert f"\nUid:\t{os.popen('id -u rpcgate').read().strip()}\t" in status, status
    assert "\nCapEff:\t0000000000000000\n" in status, "rpcgate-epmd has capabilities"
    got = hept_map("e1af8308-5d1f-11c9-91a4-08002b14a0fa", version="3.0")
    assert got == "ncacn_ip_tcp:127.0.0.1[135]", got
    print("Impacket ept_map(EPM) ->", got)
    # A server (the installed rpcgate-echo, as root: a registrant) takes a port from epmd over
    # the inherited control socket and registers; Impacket finds it.
    echo = subprocess.Popen(["/usr/bin/rpcgate-echo", "--control", control],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = echo.stdout.readline()
    assert line.startswith("port="), "rpcgate-echo: " + line + epmd_log()
    port = int(line.split("=")[1])
    got = hept_map("60a15ec5-4de8-11d7-a637-005056a20182")
    assert got == f"ncacn_ip_tcp:127.0.0.1[{port}]", got
    print("Impacket ept_map(rpcecho) ->", got)
    # Listening: the inherited 135 and the brokered port; nothing epmd would have bound itself.
    ss = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    ports = sorted({line.split()[3].rpartition(":")[2] for line in ss.splitlines()})
    assert ports == sorted({"135", str(port)}), ss
    assert "1135" not in ss and not os.path.exists(os.path.join(work, "not-used.sock")), ss
    print("listening:", ports)
finally:
    for p in (echo, epmd):
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    log.close()
assert epmd.returncode == 0, epmd_log()
EOF
chmod 755 "$work"
unshare -n /usr/bin/python3 "$work/activate.py" "$work" "$SRC/tests" || {
  cat "$work/epmd.log" 2>/dev/null; fail "socket-activated rpcgate-epmd"; }

echo "== systemd-analyze"
units=(/lib/systemd/system/rpcgate-epmd.socket /lib/systemd/system/rpcgate-epmd.service
       /lib/systemd/system/rpcgate-fwd.service)
# Documentation=man:... is checked when the package carries its man pages (cmake/Man.cmake).
man=no
grep -q ' ./usr/share/man/man8/rpcgate-epmd.8.gz$' "$work/contents.txt" && man=yes
echo "systemd-analyze verify --man=$man"
verify=$(systemd-analyze verify --man=$man "${units[@]}" 2>&1) ||
  { echo "$verify"; fail "systemd-analyze verify"; }
# Warnings about other units on this machine are not ours; any line naming ours is.
if grep -i 'rpcgate' <<<"$verify"; then fail "systemd-analyze verify warns about our units"; fi
for unit in rpcgate-epmd.service rpcgate-fwd.service; do
  score=$(systemd-analyze security --offline=yes "/lib/systemd/system/$unit" 2>&1 |
          sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "$unit: exposure $score"
  [ -n "$score" ] || fail "no exposure level for $unit"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$unit: exposure $score > 2.0"
done

echo "== dpkg --purge"
dpkg --purge rpcgate
after=$work/after.txt
snapshot > "$after"
if ! diff -u "$before" "$after"; then fail "dpkg --purge left the files above behind"; fi
getent passwd rpcgate >/dev/null || fail "the purge removed the rpcgate user (policy keeps it)"
echo "purged: nothing left but the rpcgate user"
echo "PASS"
