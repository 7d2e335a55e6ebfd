"""Shared fixtures for the pv-xconnect system tests: a protocol-level stand-in for the engine
(serves subscribe-graph on a private socket with the real framing: 4-byte big-endian length +
JSON), processes in their own mount namespaces, and the daemon itself. Everything lives under a
unique temp dir and is killed/removed even when a test fails."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "xconnect_peer.py")


def daemon_binary():
    b = os.path.join(os.environ.get("PV_BIN", ""), "pv-xconnect")
    if not os.path.exists(b):
        raise RuntimeError("pv-xconnect not built: %s (set PV_BIN)" % b)
    return b


def wait_for(pred, timeout=5.0, step=0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def send_frame(sock, obj):
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def recv_frame(sock):
    hdr = b""
    while len(hdr) < 4:
        chunk = sock.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (n,) = struct.unpack(">I", hdr)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


class FakeEngine:
    """Serves subscribe-graph like the engine: a reply, then the current graph, then a push on
    every change. Records every link-status report."""

    def __init__(self, path):
        self.path = path
        self.links = []
        self.generation = 0
        self.subscribers = []
        self.status = []  # list of (time, [links])
        self.subscribed = threading.Event()
        self.lock = threading.Condition()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self._serve_conn(c)
        except OSError:
            pass  # the daemon went away mid-reply (kill -9 tests)
        with self.lock:
            if c in self.subscribers:
                self.subscribers.remove(c)

    def _serve_conn(self, c):
        while True:
            try:
                m = recv_frame(c)
            except OSError:
                m = None
            if m is None:
                with self.lock:
                    if c in self.subscribers:
                        self.subscribers.remove(c)
                return
            op = m.get("op")
            if op == "subscribe-graph":
                with self.lock:
                    send_frame(c, {"id": m["id"], "status": 200})
                    send_frame(c, self._event())
                    self.subscribers.append(c)
                    self.subscribed.set()
            elif op == "link-status":
                with self.lock:
                    self.status.append((time.monotonic(), m["args"]["links"]))
                    self.lock.notify_all()
                    send_frame(c, {"id": m["id"], "status": 200})
            else:
                send_frame(c, {"id": m.get("id", 0), "status": 404, "error": "unknown op"})

    def _event(self):
        return {"op": "graph", "generation": self.generation, "links": self.links}

    def push(self, links):
        """Sends a new graph; returns the monotonic time of the push."""
        with self.lock:
            self.generation += 1
            self.links = links
            t = time.monotonic()
            for c in list(self.subscribers):
                try:
                    send_frame(c, self._event())
                except OSError:
                    self.subscribers.remove(c)
            return t

    def link_state(self, consumer, name, since=0.0):
        """The link in the latest status report (received after `since`), or None."""
        with self.lock:
            if not self.status or self.status[-1][0] < since:
                return None
            for l in self.status[-1][1]:
                if l["consumer"] == consumer and l["name"] == name:
                    return l
        return None

    def wait_state(self, consumer, name, state, timeout=5.0, since=0.0):
        return wait_for(
            lambda: (self.link_state(consumer, name, since) or {}).get("state") == state
            and self.link_state(consumer, name, since),
            timeout,
        )

    def close(self):
        self.closed = True
        with self.lock:
            for c in self.subscribers:
                c.close()
            self.subscribers = []
        self.srv.close()


class NsProc:
    """A process in a new mount namespace with a private tmpfs over `root` (so what is injected
    there is visible only inside that namespace)."""

    def __init__(self, root, argv, log):
        os.makedirs(root, exist_ok=True)
        self.root = root
        pidfile = root + ".pid"
        script = 'mount -t tmpfs pvx-test "$1" && echo $$ > "$2" && shift 2 && exec "$@"'
        self.p = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", script,
             "sh", root, pidfile] + argv,
            stdout=log, stderr=log, start_new_session=True)
        if not wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip()):
            raise RuntimeError("namespace process did not start: %s" % argv)
        self.pid = int(open(pidfile).read())
        os.unlink(pidfile)

    def path(self, p):
        """Host path that reaches p inside this process's mount namespace."""
        return "/proc/%d/root%s" % (self.pid, p)

    def kill(self):
        # the whole group even when its leader is gone: what the script started in the
        # background (a dbus-daemon) outlives a script that failed
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()


USERNS_CHILD = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x20000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
    sys.exit("unshare: errno %d" % ctypes.get_errno())
print(os.getpid(), flush=True)
sys.stdin.readline()  # the parent wrote our id maps
# still holding every capability of the new namespace (no exec since unshare): become its root
os.setresgid(0, 0, 0)
os.setresuid(0, 0, 0)
if (libc.mount(b"none", b"/", None, 16384 | (1 << 18), None) != 0 or  # MS_REC | MS_PRIVATE
        libc.mount(b"pvx-test", sys.argv[1].encode(), b"tmpfs", 0, None) != 0):
    sys.exit("mount: errno %d" % ctypes.get_errno())
os.execvp("sleep", ["sleep", "3600"])
"""


class UserNsProc(NsProc):
    """Like NsProc, in its own user namespace too: ids 0-65535 inside are base.. outside (the
    maps are written from here: no newuidmap needed). The temp dir must be reachable (0755)."""

    def __init__(self, root, log, base):
        os.makedirs(root, exist_ok=True)
        self.root = root
        self.p = subprocess.Popen([sys.executable, "-c", USERNS_CHILD, root],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                  start_new_session=True)
        line = self.p.stdout.readline()
        if not line.strip():
            raise RuntimeError("user namespace process did not start")
        self.pid = int(line)
        for m in ("uid_map", "gid_map"):
            with open("/proc/%d/%s" % (self.pid, m), "w") as f:
                f.write("0 %d 65536\n" % base)
        self.p.stdin.write(b"\n")
        self.p.stdin.flush()
        if not wait_for(lambda: " %s " % root in open("/proc/%d/mountinfo" % self.pid).read()):
            raise RuntimeError("user namespace process did not mount its root")


class Env:
    def __init__(self):
        self.id = uuid.uuid4().hex[:8]
        self.dir = tempfile.mkdtemp(prefix="pvx-%s-" % self.id)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.engine = FakeEngine(os.path.join(self.dir, "engine.sock"))
        self.procs = []
        self.daemon = None

    def start_daemon(self, wait_subscribe=True):
        self.engine.subscribed.clear()
        with self.engine.lock:
            self.engine.status = []  # only reports of this daemon count
        self.dlog = open(os.path.join(self.dir, "pv-xconnect.log"), "a")
        self.daemon = subprocess.Popen(
            [daemon_binary(), "--engine-socket", self.engine.path, "-v",
             "--rundir", os.path.join(self.dir, "run", "pv")],
            stdout=self.dlog, stderr=self.dlog)
        if wait_subscribe and not self.engine.subscribed.wait(5):
            raise RuntimeError("pv-xconnect did not subscribe")
        return self.daemon

    def daemon_log(self):
        with open(os.path.join(self.dir, "pv-xconnect.log")) as f:
            return f.read()

    def ns(self, name, argv=None):
        p = NsProc(os.path.join(self.dir, name), argv or ["sleep", "3600"], self.log)
        self.procs.append(p)
        return p

    def userns(self, name, base=200000):
        p = UserNsProc(os.path.join(self.dir, name), self.log, base)
        self.procs.append(p)
        return p

    def provider(self, name, mode="echo-server", sock="svc.sock", extra=()):
        root = os.path.join(self.dir, name)
        p = self.ns(name, [sys.executable, PEER, mode, os.path.join(root, sock)] + list(extra))
        return p, os.path.join(root, sock)

    def rss_kb(self):
        with open("/proc/%d/status" % self.daemon.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop_daemon(self):
        """SIGTERM; returns the exit status (sanitizer reports make it non-zero)."""
        if not self.daemon or self.daemon.poll() is not None:
            return self.daemon.returncode if self.daemon else 0
        self.daemon.send_signal(signal.SIGTERM)
        try:
            return self.daemon.wait(10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            return "hung on SIGTERM"

    def close(self):
        problems = []
        if self.daemon:
            st = self.stop_daemon()
            if st not in (0, -signal.SIGKILL):
                problems.append("pv-xconnect exit status %s" % st)
            log = self.daemon_log()
            for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                if bad in log:
                    problems.append("pv-xconnect log has %s" % bad)
        for p in self.procs:
            p.kill()
        self.engine.close()
        self.log.close()
        if problems:
            print(self.daemon_log()[-4000:])
        if not os.environ.get("PV_KEEP_TMP") and not problems:
            shutil.rmtree(self.dir, ignore_errors=True)
        assert not problems, "; ".join(problems) + " (logs in %s)" % self.dir


def link(consumer, cpid, provider, ppid, name, target, sock, type_="unix", mode=None,
         role="any"):
    l = {"type": type_, "name": name, "consumer": consumer, "consumer_pid": cpid,
         "provider": provider, "provider_pid": ppid, "role": role, "interface": type_,
         "target": target, "socket": sock}
    if mode:
        l["mode"] = mode
    return l


def connect(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_until(s, end=b"\n", limit=1 << 20):
    out = b""
    while not out.endswith(end) and len(out) < limit:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out
