"""pv-xconnect rest links: identity headers stamped on every request of a connection, spoofed
ones replaced, chunked bodies and pipelining, 400 from the proxy on malformed requests."""
import json
import os
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xconnect_env import Env, connect, link, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")


@pytest.fixture
def rest():
    e = Env()
    try:
        prov, sock = e.provider("nm", mode="http-server", sock="api.sock")
        assert wait_for(lambda: os.path.exists(prov.path(sock)))
        cons = e.ns("client")
        target = cons.root + "/run/pv/services/network-manager.sock"
        e.start_daemon()
        e.engine.push([link("client", cons.pid, "nm", prov.pid, "network-manager", target, sock,
                            type_="rest", role="mgmt")])
        assert e.engine.wait_state("client", "network-manager", "up")
        e.target = cons.path(target)
        yield e
    finally:
        e.close()


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) off one connection."""

    def __init__(self, s):
        self.s = s
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body


def test_identity_on_every_keepalive_request_and_spoof_replaced(rest):
    s = connect(rest.target)
    r = Reader(s)
    for i in range(3):
        spoof = b"X-PV-Client: root-container\r\nx-pv-role: mgmt-forged\r\n" if i else b""
        s.sendall(b"GET /status/%d HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (i, spoof))
        status, _, body = r.response()
        doc = json.loads(body)
        assert status == 200
        assert doc["path"] == "/status/%d" % i
        assert doc["client"] == ["client"], doc  # exactly one, the true one
        assert doc["role"] == ["mgmt"], doc
    s.close()


def test_chunked_body_and_content_length(rest):
    s = connect(rest.target)
    r = Reader(s)
    s.sendall(b"POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-PV-Client: trailer-spoof\r\n\r\n")
    status, _, body = r.response()
    doc = json.loads(body)
    assert status == 200 and doc["body"] == "hello, world" and doc["client"] == ["client"]
    s.sendall(b"PUT /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nabcd")
    status, _, body = r.response()
    assert json.loads(body)["body"] == "abcd"
    s.close()


def test_pipelined_requests_each_stamped(rest):
    s = connect(rest.target)
    r = Reader(s)
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: localhost\r\nX-PV-Role: forged\r\n\r\n" % i
                    for i in range(5))
    s.sendall(reqs)  # one write, five requests
    for i in range(5):
        status, _, body = r.response()
        doc = json.loads(body)
        assert doc["path"] == "/p%d" % i and doc["role"] == ["mgmt"] and doc["client"] == ["client"]
    s.close()


def test_pipelining_nonreading_consumer_bounded(rest):
    """Requests pipelined without reading a response: the proxy stops reading the consumer once
    responses back up (the stream core's backpressure); memory stays bounded and another
    connection of the link is served meanwhile. Reading later gets every response, in order."""
    base = rest.rss_kb()
    s = connect(rest.target)
    req = b"GET /flood HTTP/1.1\r\nHost: localhost\r\n\r\n"
    batch = req * 1000
    s.setblocking(False)
    sent, off = 0, 0
    end = time.monotonic() + 3
    while time.monotonic() < end and sent < (64 << 20):
        try:
            n = s.send(batch[off:])
        except BlockingIOError:
            time.sleep(0.01)
            continue
        sent += n
        off = (off + n) % len(batch)
    rss = rest.rss_kb()
    print("rest flood: sent %d KiB, RSS %d -> %d KiB" % (sent >> 10, base, rss))
    assert sent < (64 << 20)  # the sender was stopped
    assert rss - base < 8 * 1024
    other = connect(rest.target)
    r2 = Reader(other)
    other.sendall(b"GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, _, body = r2.response()
    assert status == 200 and json.loads(body)["path"] == "/other"
    other.close()
    # the backed-up connection resumes: every complete request is answered, in order (far
    # more than the proxy's and the sockets' buffers held)
    s.setblocking(True)
    s.settimeout(10)
    r = Reader(s)
    for _ in range(sent // len(req)):
        status, _, body = r.response()
        assert status == 200 and json.loads(body)["path"] == "/flood"
    s.close()


@pytest.mark.parametrize("garbage", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET / HTTP/1.1\nHost: bare-lf\n\n",
    b"GET / HTTP/2.0\r\n\r\n",
])
def test_malformed_gets_400(rest, garbage):
    s = connect(rest.target)
    s.sendall(garbage)
    status, hdrs, _ = Reader(s).response()
    assert status == 400
    assert hdrs.get("connection") == "close"
    assert s.recv(10) == b""
    s.close()


def test_400_after_good_request_keeps_order(rest):
    s = connect(rest.target)
    s.sendall(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
    r = Reader(s)
    status, _, body = r.response()
    assert status == 200 and json.loads(body)["path"] == "/first"
    status, _, _ = r.response()
    assert status == 400
    s.close()


# ---- owner and mode of the injected socket (the listener every mediated type shares) ----

def inside(cons, code, uid=None, userns=False):
    """Runs python code in the consumer's mount (and user) namespace, as uid if given."""
    argv = ["nsenter", "-t", str(cons.pid), "-m"] + (["-U"] if userns else [])
    if uid is not None:
        argv += ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
    r = subprocess.run(argv + [sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=20)
    return (r.stdout + r.stderr).strip()


def try_connect(cons, path, uid=None, userns=False):
    return inside(cons, "import socket, errno\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
                  " s.connect(%r); print('OK')\nexcept OSError as e:\n"
                  " print(errno.errorcode[e.errno])" % path, uid, userns)


def stat_inside(cons, path, userns=False):
    out = inside(cons, "import os; st = os.lstat(%r); print(st.st_uid, st.st_gid, "
                 "oct(st.st_mode & 0o7777))" % path, userns=userns)
    return tuple(out.split())


def owner_env(owner=None, socket_mode=None, userns=False):
    e = Env()
    try:
        os.chmod(e.dir, 0o755)  # a user namespace's root must reach its own root directory
        prov, sock = e.provider("nm", mode="http-server", sock="api.sock")
        assert wait_for(lambda: os.path.exists(prov.path(sock)))
        cons = e.userns("client") if userns else e.ns("client")
        target = cons.root + "/run/pvx/api.sock"
        l = link("client", cons.pid, "nm", prov.pid, "api", target, sock, type_="rest")
        if owner:
            l["owner"] = owner
        if socket_mode:
            l["socket_mode"] = socket_mode
        e.start_daemon()
        e.engine.push([l])
    except BaseException:
        e.close()  # nothing of a failed setup stays behind
        raise
    return e, cons, target


def test_default_owner_is_consumer_root_mode_0660():
    e, cons, target = owner_env()
    try:
        assert e.engine.wait_state("client", "api", "up"), e.daemon_log()[-2000:]
        assert stat_inside(cons, target) == ("0", "0", "0o660")
        assert stat_inside(cons, os.path.dirname(target)) == ("0", "0", "0o755")
        assert try_connect(cons, target) == "OK"
        # an unprivileged user of the consumer is not let in by default
        assert try_connect(cons, target, uid=1000) == "EACCES"
    finally:
        e.close()


def test_declared_owner_and_mode():
    e, cons, target = owner_env("1000:1001", "0600")
    try:
        assert e.engine.wait_state("client", "api", "up"), e.daemon_log()[-2000:]
        assert stat_inside(cons, target) == ("1000", "1001", "0o600")
        assert try_connect(cons, target, uid=1000) == "OK"
        assert try_connect(cons, target, uid=1001) == "EACCES"
        # a changed mode is a changed link: re-injected with the new bits
        l = dict(e.engine.links[0], socket_mode="0666")
        e.engine.push([l])
        assert wait_for(lambda: stat_inside(cons, target) == ("1000", "1001", "0o666"))
        assert try_connect(cons, target, uid=1001) == "OK"
    finally:
        e.close()


def test_user_namespace_root_owns_what_is_injected():
    e, cons, target = owner_env(userns=True)
    try:
        assert e.engine.wait_state("client", "api", "up"), e.daemon_log()[-2000:]
        # host view: the container's root is 200000; its own view: 0
        st = os.lstat(cons.path(target))
        assert (st.st_uid, st.st_gid) == (200000, 200000)
        assert os.lstat(cons.path(os.path.dirname(target))).st_uid == 200000
        assert stat_inside(cons, target, userns=True) == ("0", "0", "0o660")
        assert try_connect(cons, target, userns=True) == "OK"
        assert try_connect(cons, target, uid=1000, userns=True) == "EACCES"
    finally:
        e.close()


def test_owner_not_mapped_in_user_namespace_is_an_error():
    e, cons, target = owner_env(owner="70000", userns=True)
    try:
        l = e.engine.wait_state("client", "api", "error")
        assert l and "not mapped" in l["error"] and "70000" in l["error"], l
        assert not os.path.exists(cons.path(target))
    finally:
        e.close()
