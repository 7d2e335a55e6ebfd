"""pv-xconnect rest links: identity headers stamped on every request of a connection, spoofed
ones replaced, chunked bodies and pipelining, 400 from the proxy on malformed requests."""
import json
import os
import sys

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
