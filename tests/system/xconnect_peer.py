"""Provider/consumer programs for the pv-xconnect system tests (run inside a mount namespace).

  xconnect_peer.py echo-server SOCK [DELAY]  unix echo server; bytes that came with SCM_RIGHTS fds are
      echoed, then "got:<content of each fd>\\n" follows with a memfd of its own ("from-provider");
      the line "whoami\\n" is answered with the peer's SO_PEERCRED pid; "passcred\\n" turns on
      SO_PASSCRED (answer "ok\\n"), after which "whosent\\n" is answered with the SCM_CREDENTIALS
      that came with it ("cred:PID UID GID\\n", "cred:none\\n" without).
  xconnect_peer.py http-server SOCK           HTTP/1.1 keep-alive server answering JSON with the
      identity headers it saw and the (de-chunked) request body.
"""
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time


def memfd_with(data):
    fd = os.memfd_create("pvx-test")
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


CRED = struct.calcsize("3i")


def recv_creds(c):
    """(data, creds or None) of one read on a socket with SO_PASSCRED."""
    data, anc, _flags, _addr = c.recvmsg(65536, socket.CMSG_SPACE(CRED))
    creds = None
    for level, kind, v in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            creds = struct.unpack("3i", v[:CRED])
    return data, creds


def echo_conn(c):
    with c:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(c, 65536, 64)
            except OSError:
                return
            if not data:
                return
            if data == b"passcred\n":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
                c.sendall(b"ok\n")
                data, creds = recv_creds(c)
                if data == b"whosent\n":
                    c.sendall(b"cred:%d %d %d\n" % creds if creds else b"cred:none\n")
                c.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
                continue
            if fds:
                # fds arrive with the bytes of the sendmsg that carried them (and, as on any
                # unix socket, possibly glued to earlier bytes): echo the bytes, then report
                parts = []
                for fd in fds:
                    os.lseek(fd, 0, os.SEEK_SET)
                    parts.append(os.read(fd, 4096))
                    os.close(fd)
                mine = memfd_with(b"from-provider")
                c.sendall(data)
                socket.send_fds(c, [b"got:" + b"|".join(parts) + b"\n"], [mine])
                os.close(mine)
                continue
            if data == b"whoami\n":
                cred = c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid, _uid, _gid = struct.unpack("3i", cred)
                c.sendall(b"pid:%d\n" % pid)
                continue
            try:
                c.sendall(data)
            except OSError:
                return


def echo_server(path, delay):
    time.sleep(delay)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(128)
    print("listening", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo_conn, args=(c,), daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.read(2)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def _answer(self):
        body = self._body()
        doc = {
            "path": self.path,
            "client": self.headers.get_all("X-PV-Client") or [],
            "role": self.headers.get_all("X-PV-Role") or [],
            "body": body.decode("latin-1"),
        }
        out = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _answer


class UnixHTTP(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        req, _ = self.socket.accept()
        return req, ("uds", 0)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "echo-server":
        echo_server(path, float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    elif mode == "http-server":
        srv = UnixHTTP(path, Handler)
        print("listening", flush=True)
        srv.serve_forever()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
