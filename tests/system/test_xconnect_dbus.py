"""pv-xconnect dbus links against a real dbus-daemon (the example server's system.conf policy) in
the provider's mount namespace: the bus sees the role's uid whatever the consumer claims, the
policy applies to that uid, calls to an interface the link does not name are refused by the proxy,
and fds cross the proxy with their own message."""
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xconnect_env import Env, connect, link, wait_for  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(not shutil.which("dbus-daemon") or not shutil.which("dbus-send"),
                       reason="dbus-daemon/dbus-send not installed"),
]

SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
CONF = os.path.join(SRC, "examples", "pv-example-dbus-server", "system.conf")
IFACE = "org.pantavisor.Example"
# the provider's own /etc/passwd (bind-mounted in its namespace): svcuser exists only there
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "svcuser:x:4242:4242::/:/bin/false\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")

PROVIDER = r'''
set -e
mount --bind "$ROOT/passwd" /etc/passwd
dbus-daemon --config-file="$CONF" --address="unix:path=$ROOT/bus.sock" --nofork --nopidfile &
i=0
while [ ! -S "$ROOT/bus.sock" ]; do i=$((i+1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$ROOT/bus.sock" exec "$SERVER"
'''


def bin_path(name):
    return os.path.join(os.environ["PV_BIN"], name)


class Bus:
    def __init__(self, env):
        self.env = env
        root = os.path.join(env.dir, "busprov")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root + "-passwd"), "w") as f:
            f.write(PASSWD)
        # the passwd lives outside the tmpfs NsProc mounts over root, so copy it in the script
        script = 'cp "$ROOT-passwd" "$ROOT/passwd" && ' + PROVIDER
        env_vars = dict(os.environ, ROOT=root, CONF=CONF,
                        SERVER=bin_path("pv-example-dbus-server"))
        self.prov = _ns_with_env(env, "busprov", ["sh", "-c", script], env_vars)
        self.sock = os.path.join(root, "bus.sock")
        assert wait_for(lambda: os.path.exists(self.prov.path(self.sock)), 10)
        # the example server owns its name shortly after the bus is up
        assert wait_for(lambda: self.server_ready(), 10), env.log_text()

    def server_ready(self):
        r = subprocess.run(["dbus-send", "--bus=unix:path=" + self.prov.path(self.sock), "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.NameHasOwner", "string:" + IFACE],
                           capture_output=True, text=True, timeout=10,
                           env=dict(os.environ))
        return "boolean true" in r.stdout


def _ns_with_env(env, name, argv, env_vars):
    saved = dict(os.environ)
    os.environ.update(env_vars)
    try:
        return env.ns(name, argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _log_text(self):
    self.log.flush()
    with open(self.log.name) as f:
        return f.read()[-3000:]


Env.log_text = _log_text


@pytest.fixture
def bus():
    e = Env()
    try:
        e.bus = Bus(e)
        e.cons = e.ns("cons")
        e.start_daemon()
        yield e
    finally:
        e.close()


def push(env, links):
    env.engine.push([link("cons", env.cons.pid, "busprov", env.bus.prov.pid, name,
                          env.cons.root + "/run/%s.sock" % name, env.bus.sock, type_="dbus",
                          role=role) for name, role in links])
    for name, _role in links:
        assert env.engine.wait_state("cons", name, "up"), env.daemon_log()[-2000:]


def set_iface(env, name, role, iface):
    l = link("cons", env.cons.pid, "busprov", env.bus.prov.pid, name,
             env.cons.root + "/run/%s.sock" % name, env.bus.sock, type_="dbus", role=role)
    l["interface"] = iface
    env.engine.push([l])
    assert env.engine.wait_state("cons", name, "up"), env.daemon_log()[-2000:]
    return env.cons.path(l["target"]), l["target"]


def in_cons(env, argv, timeout=20):
    return subprocess.run(["nsenter", "-t", str(env.cons.pid), "-m"] + argv,
                          capture_output=True, text=True, timeout=timeout)


def example_client(env, target):
    r = in_cons(env, [bin_path("pv-example-dbus-client"), "-a", "unix:path=" + target,
                      "-n", "1", "-i", "0"])
    return r.stdout + r.stderr


# ---- a minimal D-Bus wire codec for the raw-stream tests (little endian) ----

def _pad(b, n):
    return b + b"\0" * ((-len(b)) % n)


def marshal(mtype, serial, path=None, iface=None, member=None, dest=None, sig=None, body=b"",
            nfds=0, flags=0):
    fields = b""

    def field(code, t, val):
        nonlocal fields
        fields = _pad(fields, 8) + bytes([code, 1, ord(t), 0])
        if t in "so":
            fields = _pad(fields, 4) + struct.pack("<I", len(val)) + val.encode() + b"\0"
        elif t == "g":
            fields += bytes([len(val)]) + val.encode() + b"\0"
        else:
            fields = _pad(fields, 4) + struct.pack("<I", val)
    if path:
        field(1, "o", path)
    if iface:
        field(2, "s", iface)
    if member:
        field(3, "s", member)
    if dest:
        field(6, "s", dest)
    if sig:
        field(8, "g", sig)
    if nfds:
        field(9, "u", nfds)
    head = b"l" + bytes([mtype, flags, 1]) + struct.pack("<III", len(body), serial, len(fields))
    return _pad(head + fields, 8) + body


def sbody(s):
    return struct.pack("<I", len(s)) + s.encode() + b"\0"


def call(serial, dest, path, iface, member, sig=None, body=b"", nfds=0):
    return marshal(1, serial, path, iface, member, dest, sig, body, nfds)


class Wire:
    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.fds = []

    def _fill(self):
        data, fds, _, _ = socket.recv_fds(self.s, 65536, 16)
        if not data:
            raise EOFError
        self.buf += data
        self.fds += fds

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode()

    def message(self):
        while len(self.buf) < 16:
            self._fill()
        blen, serial, alen = struct.unpack("<III", self.buf[4:16])
        hend = 16 + alen + ((-alen) % 8)
        while len(self.buf) < hend + blen:
            self._fill()
        raw, self.buf = self.buf[:hend + blen], self.buf[hend + blen:]
        fields, p = {}, 16
        while p < 16 + alen:
            p += (-p) % 8
            code, t = raw[p], chr(raw[p + 2])
            p += 4
            if t in "so":
                p += (-p) % 4
                (n,) = struct.unpack("<I", raw[p:p + 4])
                fields[code] = raw[p + 4:p + 4 + n].decode()
                p += 4 + n + 1
            elif t == "g":
                n = raw[p]
                fields[code] = raw[p + 1:p + 1 + n].decode()
                p += n + 2
            else:
                p += (-p) % 4
                (fields[code],) = struct.unpack("<I", raw[p:p + 4])
                p += 4
        return {"type": raw[1], "serial": serial, "fields": fields, "body": raw[hend:]}

    def reply_to(self, serial):
        while True:
            m = self.message()
            if m["fields"].get(5) == serial:
                return m


def hello(s, auth=b"AUTH EXTERNAL 30\r\n"):
    """sd-bus style: NUL, AUTH, NEGOTIATE_UNIX_FD, BEGIN and Hello in one write. The claimed
    identity is root's ("0")."""
    s.sendall(b"\0" + auth + b"NEGOTIATE_UNIX_FD\r\nBEGIN\r\n" +
              call(1, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                   "Hello"))
    w = Wire(s)
    ok = w.line()
    assert ok.startswith("OK "), ok
    assert w.line() == "AGREE_UNIX_FD"
    r = w.reply_to(1)
    assert r["type"] == 2
    (n,) = struct.unpack("<I", r["body"][:4])
    name = r["body"][4:4 + n].decode()
    assert name.startswith(":") and r["fields"].get(6) == name
    return w, name


def bus_uid(s, w, name, serial=2):
    s.sendall(call(serial, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                   "GetConnectionUnixUser", "s", sbody(name)))
    r = w.reply_to(serial)
    assert r["type"] == 2, r
    return struct.unpack("<I", r["body"][:4])[0]


# ---- tests ----

def test_roles_map_to_bus_uids_and_policy(bus):
    push(bus, [("as-root", "root"), ("as-nobody", "nobody"), ("as-svc", "svcuser"),
               ("as-num", "4242"), ("as-unknown", "no-such-user")])
    t = bus.cons.root + "/run/%s.sock"
    # root may call (libdbus claims uid 0 itself; the bus sees the role's)
    out = example_client(bus, t % "as-root")
    assert "your uid is 0" in out, out
    out = example_client(bus, t % "as-nobody")
    assert "your uid is 65534" in out, out
    # svcuser is only in the provider's passwd: looked up there; the policy denies it
    out = example_client(bus, t % "as-svc")
    assert "denied: org.freedesktop.DBus.Error.AccessDenied" in out, out
    for name, uid in (("as-root", 0), ("as-nobody", 65534), ("as-svc", 4242),
                      ("as-num", 4242), ("as-unknown", 65534)):
        s = connect(bus.cons.path(t % name))
        w, me = hello(s)
        assert bus_uid(s, w, me) == uid, name
        s.close()
    # (a numeric role is used as is; dbus-daemon itself refuses uids its passwd lacks, so the
    # number used here is svcuser's)
    # the denial of svcuser came from the bus (no interface filter on these links)
    assert "denied" not in bus.daemon_log()


def test_spoofed_auth_ignored_on_one_write_stream(bus):
    push(bus, [("spoof", "nobody")])
    target = bus.cons.path(bus.cons.root + "/run/spoof.sock")
    # "30" = uid 0 claimed; a non-EXTERNAL mechanism is turned away by the proxy itself
    s = connect(target)
    s.sendall(b"\0AUTH DBUS_COOKIE_SHA1 30\r\n")
    assert Wire(s).line() == "REJECTED EXTERNAL"
    s.close()
    s = connect(target)
    w, me = hello(s)
    assert bus_uid(s, w, me) == 65534
    s.close()
    # AUTH without initial response (client waits for DATA), and sd-bus's pipelined
    # "AUTH EXTERNAL" + empty "DATA": answered OK, and nothing extra comes back before
    # AGREE_UNIX_FD (hello() checks the order)
    for auth in (b"AUTH EXTERNAL\r\n", b"AUTH EXTERNAL\r\nDATA\r\n",
                 b"AUTH EXTERNAL\r\nDATA 30\r\n"):
        s = connect(target)
        w, me = hello(s, auth=auth)
        assert bus_uid(s, w, me) == 65534
        s.close()


def test_interface_filter(bus):
    host_t, target = set_iface(bus, "filtered", "nobody", IFACE)
    addr = "--bus=unix:path=" + target
    # the declared interface passes (and the bus's policy for nobody allows it)
    out = example_client(bus, target)
    assert "your uid is 65534" in out, out
    # Introspectable is a basic: passes to the server
    r = in_cons(bus, ["dbus-send", addr, "--print-reply", "--dest=" + IFACE,
                      "/org/pantavisor/Example", "org.freedesktop.DBus.Introspectable.Introspect"])
    assert r.returncode == 0 and "GetInfo" in r.stdout, r.stderr
    # another interface: refused by the proxy with AccessDenied
    r = in_cons(bus, ["dbus-send", addr, "--print-reply", "--dest=" + IFACE,
                      "/org/pantavisor/Example", "org.other.Secret.Steal"])
    assert r.returncode != 0
    assert "org.freedesktop.DBus.Error.AccessDenied" in r.stderr, r.stderr
    assert "pv-xconnect" in r.stderr, r.stderr
    assert wait_for(lambda: "denied call org.other.Secret.Steal" in bus.daemon_log(), 3), \
        bus.daemon_log()[-2000:]
    # raw: the error answers the right serial, is addressed to our unique name, nothing
    # reaches the bus (the connection goes on normally after it)
    s = connect(host_t)
    w, me = hello(s)
    s.sendall(call(7, IFACE, "/org/pantavisor/Example", "org.other.Secret", "Steal") +
              call(8, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                   "GetConnectionUnixUser", "s", sbody(me)))
    e = w.reply_to(7)
    assert e["type"] == 3 and e["fields"][5] == 7
    assert e["fields"][4] == "org.freedesktop.DBus.Error.AccessDenied"
    assert e["fields"][6] == me
    r = w.reply_to(8)
    assert struct.unpack("<I", r["body"][:4])[0] == 65534
    # a call with no INTERFACE header could be dispatched by member name to any interface of
    # the service: refused too (only the bus driver may be called that way)
    s.sendall(call(9, IFACE, "/org/pantavisor/Example", None, "Steal") +
              call(10, "org.freedesktop.DBus", "/org/freedesktop/DBus", None, "GetId"))
    e = w.reply_to(9)
    assert e["type"] == 3 and e["fields"][4] == "org.freedesktop.DBus.Error.AccessDenied", e
    r = w.reply_to(10)
    # the proxy let it through: whatever the bus's own policy answers, it is not our denial
    assert r["fields"].get(7) == "org.freedesktop.DBus" and b"allows interface" not in r["body"], r
    s.close()


def test_fds_carried_per_message(bus):
    host_t, _ = set_iface(bus, "fds", "root", IFACE)
    s = connect(host_t)
    w, me = hello(s)
    # a unicast signal to ourselves carrying a memfd comes back through the bus with it; one
    # to a refused interface before it has its fd closed, not handed to the next message
    bad, good = os.memfd_create("bad"), os.memfd_create("good")
    os.write(bad, b"refused")
    os.write(good, b"carried")
    denied = marshal(4, 10, "/x", "org.other.Secret", "Leak", me, "h", struct.pack("<I", 0), 1)
    sig = marshal(4, 11, "/x", IFACE, "Fd", me, "h", struct.pack("<I", 0), 1)
    socket.send_fds(s, [denied], [bad])
    socket.send_fds(s, [sig], [good])
    os.close(bad)
    os.close(good)
    while True:
        m = w.message()
        if m["fields"].get(3) == "Fd":
            break
        assert m["fields"].get(3) != "Leak"
    assert m["fields"].get(9) == 1
    assert len(w.fds) == 1, w.fds
    os.lseek(w.fds[0], 0, os.SEEK_SET)
    assert os.read(w.fds[0], 100) == b"carried"
    os.close(w.fds[0])
    s.close()


def test_teardown_and_no_leak(bus):
    push(bus, [("td", "nobody")])
    target = bus.cons.path(bus.cons.root + "/run/td.sock")
    fds_before = len(os.listdir("/proc/%d/fd" % bus.daemon.pid))
    for _ in range(30):
        s = connect(target)
        w, me = hello(s)
        s.close()
    assert wait_for(lambda: len(os.listdir("/proc/%d/fd" % bus.daemon.pid)) <= fds_before, 3)
    s = connect(target)
    hello(s)
    bus.engine.push([])
    assert wait_for(lambda: not os.path.exists(target))
    s.settimeout(5)
    # what the bus sent before the teardown (NameAcquired, ...) may still be queued: then EOF
    assert read_to_eof(s)
    s.close()


def closed_by_peer(s):
    try:
        return s.recv(100) == b""
    except ConnectionResetError:  # closed with our bytes unread
        return True


def read_to_eof(s):
    """Reads what is queued until the peer's close (socket.timeout if it never closes)."""
    while True:
        try:
            if s.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True


def test_garbage_closes_only_that_connection(bus):
    host_t, _ = set_iface(bus, "bad", "nobody", IFACE)
    good = connect(host_t)
    w, me = hello(good)
    # no credentials NUL first: not D-Bus
    s = connect(host_t)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert closed_by_peer(s)
    s.close()
    # an over-long SASL line
    s = connect(host_t)
    s.sendall(b"\0" + b"A" * (64 << 10))
    assert closed_by_peer(s)
    s.close()
    # a corrupt message after BEGIN
    s = connect(host_t)
    w2, _ = hello(s)
    s.sendall(b"x" * 64)
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            w2.message()
    s.close()
    # the other connection of the link is unaffected
    assert bus_uid(good, w, me, serial=5) == 65534
    good.close()


def test_hosted_bus_provider_pv():
    """The hosted bus: provider "_pv_" with no pid, socket in pv-xconnect's own root; roles
    resolve in our own passwd."""
    e = Env()
    bus_proc = None
    try:
        sock = os.path.join(e.dir, "hosted.sock")
        bus_proc = subprocess.Popen(["dbus-daemon", "--config-file=" + CONF,
                                     "--address=unix:path=" + sock, "--nofork", "--nopidfile"],
                                    stdout=e.log, stderr=e.log)
        assert wait_for(lambda: os.path.exists(sock), 10)
        cons = e.ns("cons")
        e.start_daemon()
        target = cons.root + "/run/dbus/system_bus_socket"
        l = link("cons", cons.pid, "_pv_", 0, "system-bus", target, sock, type_="dbus",
                 role="nobody")
        e.engine.push([l])
        assert e.engine.wait_state("cons", "system-bus", "up"), e.daemon_log()[-2000:]
        s = connect(cons.path(target))
        w, me = hello(s)
        assert bus_uid(s, w, me) == 65534
        s.close()
    finally:
        if bus_proc:
            bus_proc.kill()
            bus_proc.wait()
        e.close()


def test_flooding_nonreading_consumer_bounded(bus):
    push(bus, [("flood", "root")])
    target = bus.cons.path(bus.cons.root + "/run/flood.sock")
    base = bus.rss_kb()
    s = connect(target)
    w, me = hello(s)
    # calls that each earn a reply, never read: the proxy must stop reading (backpressure)
    batch = b"".join(call(1000 + i, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "GetId") for i in range(1000))
    s.setblocking(False)
    sent, off = 0, 0
    end = time.monotonic() + 3
    while time.monotonic() < end and sent < (64 << 20):
        try:
            n = s.send(batch[off:])  # whole messages only: a partial send resumes
        except BlockingIOError:
            time.sleep(0.01)
            continue
        sent += n
        off = (off + n) % len(batch)
    rss = bus.rss_kb()
    print("dbus flood: sent %d KiB, RSS %d -> %d KiB" % (sent >> 10, base, rss))
    assert sent < (64 << 20)
    assert rss - base < 8 * 1024
    # other connections of the link still served
    s2 = connect(target)
    w2, me2 = hello(s2)
    assert bus_uid(s2, w2, me2) == 0
    s2.close()
    # reading again lets the flood move on: a call sent after the flood is answered after all
    # its replies (so the backed-up connection was not wedged)
    s.setblocking(True)
    s.settimeout(10)
    got = []
    reader = threading.Thread(target=lambda: got.append(w.reply_to(99999)), daemon=True)
    reader.start()
    s.sendall(batch[off:])  # back to a message boundary (the reader makes room)
    s.sendall(call(99999, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                   "org.freedesktop.DBus", "GetId"))
    reader.join(20)
    assert got and got[0]["type"] == 2
    s.close()


def test_provider_restart_reestablishes(bus):
    push(bus, [("rs", "nobody")])
    target = bus.cons.path(bus.cons.root + "/run/rs.sock")
    s = connect(target)
    w, me = hello(s)
    bus.bus.prov.kill()
    bus.bus = Bus(bus)  # a new bus: new pid, new namespace, new socket
    t0 = bus.engine.push([link("cons", bus.cons.pid, "busprov", bus.bus.prov.pid, "rs",
                               bus.cons.root + "/run/rs.sock", bus.bus.sock, type_="dbus",
                               role="nobody")])
    assert bus.engine.wait_state("cons", "rs", "up", since=t0)
    s.settimeout(5)
    # the old connection went with the old bus; the bus's NameAcquired signal may still be
    # queued ahead of the close
    assert read_to_eof(s)
    s.close()
    s = connect(target)
    w, me = hello(s)
    assert bus_uid(s, w, me) == 65534
    s.close()
