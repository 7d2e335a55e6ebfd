# test_ctrl_relay.py: pv-ctrl's side of every endpoint against an engine stand-in that answers
# every op and records what it was asked: op names and args, status/body/content-type relay,
# 503 + Retry-After, whois-based roles for a process in an lxc payload cgroup, engine restarts.
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from test_ctrl_api import CTRL, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists(CTRL), reason="pv-ctrl not built")


class FakeEngine:
    """Answers each op from self.answers[op] = (status, body | None, error | None, ctype)."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.answers = {}
        self.roles = {}  # pid -> (container, roles)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        self.srv.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            while not self.stop:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    msg = json.loads(buf[4:4 + n])
                    buf = buf[4 + n:]
                    c.sendall(self.frame(self.answer(msg)))
        except OSError:
            pass
        finally:
            c.close()

    def answer(self, msg):
        op, args = msg["op"], msg.get("args")
        self.requests.append((op, args))
        if op == "whois":
            ctr, roles = self.roles.get(args["pid"], (None, []))
            return {"id": msg["id"], "status": 200, "body": {"container": ctr, "roles": roles}}
        st, body, err, ctype = self.answers.get(op, (200, {"op": op}, None, None))
        rep = {"id": msg["id"], "status": st}
        if body is not None:
            rep["body"] = body
        if err is not None:
            rep["error"] = err
        if ctype:
            rep["content_type"] = ctype
        return rep

    @staticmethod
    def frame(obj):
        d = json.dumps(obj).encode()
        return struct.pack(">I", len(d)) + d

    def close(self):
        self.stop = True
        self.srv.close()
        self.t.join(2)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def last(self, op):
        for o, a in reversed(self.requests):
            if o == op:
                return a
        return None


@pytest.fixture
def rig():
    root = tempfile.mkdtemp(prefix="pvtest-ctrlrelay-")
    rundir = os.path.join(root, "run", "pv")
    storage = os.path.join(root, "storage")
    os.makedirs(rundir)
    os.makedirs(storage)
    eng = FakeEngine(os.path.join(root, "run", "engine.sock"))
    log = open(os.path.join(root, "ctrl.err"), "w")
    p = subprocess.Popen([CTRL, "--mode", "embedded", "--rundir", rundir, "--storage", storage],
                         stderr=log, stdout=subprocess.DEVNULL)
    sock = os.path.join(rundir, "pv-ctrl")
    try:
        assert wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 10)
        assert p.poll() is None
        yield type("Rig", (), {"root": root, "eng": eng, "sock": sock, "storage": storage,
                               "proc": p})
    finally:
        p.terminate()
        p.wait(10)
        eng.close()
        log.close()
        text = open(os.path.join(root, "ctrl.err")).read()
        shutil.rmtree(root, ignore_errors=True)
        assert "Sanitizer" not in text and "runtime error:" not in text, text


def curl(rig, path, method="GET", data=None, upload=None, include=False, prefix=()):
    cmd = list(prefix) + ["curl", "-s", "--path-as-is", "--unix-socket", rig.sock, "-X", method,
                          "-w", "\n%{http_code}"]
    if include:
        cmd.append("-i")
    if data is not None:
        cmd += ["--data-binary", data]
    if upload:
        cmd += ["-T", upload]
    cmd.append("http://localhost" + path)
    out = subprocess.run(cmd, capture_output=True, timeout=30).stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


# (method, path, body, expected op, expected args)
CASES = [
    ("GET", "/containers", None, "containers-list", None),
    ("PUT", "/containers/web", '{"action":"stop"}', "container-action",
     {"name": "web", "action": "stop"}),
    ("GET", "/groups", None, "groups-list", None),
    ("POST", "/signal", '{"type":"ready","payload":"x"}', "signal",
     {"container": "", "type": "ready", "payload": "x"}),
    ("POST", "/commands", '{"op":"LOCAL_RUN","payload":"locals/a"}', "command",
     {"op": "LOCAL_RUN", "payload": "locals/a"}),
    ("GET", "/objects", None, "objects-list", None),
    ("GET", "/steps", None, "steps-list", None),
    ("GET", "/steps/3", None, "step-get", {"rev": "3"}),
    ("GET", "/steps/locals/dev", None, "step-get", {"rev": "locals/dev"}),
    ("PUT", "/steps/locals/dev", '{"#spec":"pantavisor-service-system@1"}', "step-put",
     {"rev": "locals/dev", "state": '{"#spec":"pantavisor-service-system@1"}'}),
    ("GET", "/steps/3/progress", None, "step-progress", {"rev": "3"}),
    ("GET", "/steps/locals/dev/progress", None, "step-progress", {"rev": "locals/dev"}),
    ("PUT", "/steps/3/commitmsg", "hello\n", "step-commitmsg", {"rev": "3", "msg": "hello"}),
    ("PUT", "/steps/locals/dev/commitmsg", "m", "step-commitmsg",
     {"rev": "locals/dev", "msg": "m"}),
    ("GET", "/user-meta", None, "meta-list", {"kind": "user"}),
    ("PUT", "/user-meta/k1", "v 1", "meta-put", {"kind": "user", "key": "k1", "value": "v 1"}),
    ("DELETE", "/user-meta/k1", None, "meta-delete", {"kind": "user", "key": "k1"}),
    ("GET", "/device-meta", None, "meta-list", {"kind": "device"}),
    ("PUT", "/device-meta/k2", "v2", "meta-put", {"kind": "device", "key": "k2", "value": "v2"}),
    ("DELETE", "/device-meta/k2", None, "meta-delete", {"kind": "device", "key": "k2"}),
    ("GET", "/buildinfo", None, "buildinfo", None),
    ("GET", "/config", None, "config", None),
    ("GET", "/config2", None, "config2", None),
    ("GET", "/daemons", None, "daemons-list", None),
    ("PUT", "/daemons/pv-xconnect", '{"action":"start"}', "daemon-action",
     {"name": "pv-xconnect", "action": "start"}),
    ("GET", "/xconnect-graph", None, "graph", None),
    ("POST", "/storage/gc", None, "gc", None),
]


@pytest.mark.parametrize("method,path,data,op,args", CASES,
                         ids=["%s %s" % (c[0], c[1]) for c in CASES])
def test_endpoint_becomes_one_engine_request(rig, method, path, data, op, args):
    st, body = curl(rig, path, method, data=data)
    assert st == 200, (st, body)
    assert json.loads(body) == {"op": op}  # the engine's body, relayed as is
    seen = [r for r in rig.eng.requests if r[0] != "whois"]
    assert seen == [(op, args)], seen


def test_engine_errors_and_text_relayed(rig):
    rig.eng.answers["step-put"] = (422, None, "state: container web: run.json missing", None)
    st, body = curl(rig, "/steps/locals/bad", "PUT", data="{}")
    assert st == 422 and json.loads(body) == {"Error": "state: container web: run.json missing"}
    rig.eng.answers["buildinfo"] = (200, "manifest line\n", None, "text/plain")
    st, body = curl(rig, "/buildinfo", include=True)
    assert st == 200 and "Content-Type: text/plain" in body and body.endswith("\r\n\r\nmanifest line\n")
    rig.eng.answers["command"] = (503, None, "another command is running", None)
    st, body = curl(rig, "/commands", "POST", data='{"op":"RUN_GC"}', include=True)
    assert st == 503 and "Retry-After: 120" in body and "another command" in body
    rig.eng.answers["container-action"] = (403, None, "restart_policy is system", None)
    st, body = curl(rig, "/containers/os", "PUT", data='{"action":"restart"}')
    assert st == 403 and "system" in json.loads(body)["Error"]


def test_object_installed_told_after_rename(rig):
    data = b"object body\n" * 1000
    sha = hashlib.sha256(data).hexdigest()
    f = os.path.join(rig.root, "o")
    with open(f, "wb") as fh:
        fh.write(data)
    st, body = curl(rig, "/objects/" + sha, "PUT", upload=f)
    assert st == 200, body
    final = os.path.join(rig.storage, "objects", sha)
    assert rig.eng.last("object-installed") == {"sha": sha, "path": final}
    assert open(final, "rb").read() == data
    st, body = curl(rig, "/objects/" + sha)
    assert st == 200 and body.encode() == data


def test_engine_gone_then_back(rig):
    path = rig.eng.path
    rig.eng.close()
    st, body = curl(rig, "/groups", include=True)
    assert st == 503 and "Retry-After:" in body
    rig.eng = FakeEngine(path)
    assert wait_for(lambda: curl(rig, "/groups")[0] == 200, 10)


def _fake_container(name):
    """A cgroup (v1 pids hierarchy) named like an LXC payload: its processes look contained."""
    base = "/sys/fs/cgroup/pids"
    if not os.path.isdir(base):
        pytest.skip("no cgroup v1 pids hierarchy to fake a container")
    cg = os.path.join(base, "lxc.payload." + name)
    os.mkdir(cg)
    return cg


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (cgroups)")
def test_roles_from_whois(rig):
    name = "relay" + uuid.uuid4().hex[:6]
    cg = _fake_container(name)
    try:
        # a shell that moves itself into the fake payload cgroup, then runs curl
        def in_ctr(path, method="GET", data=None):
            cmd = "echo $$ > %s/cgroup.procs && exec curl -s -X %s -w '\\n%%{http_code}' " \
                  "--unix-socket %s %s http://localhost%s" % (
                      cg, method, rig.sock, "--data-binary '%s'" % data if data else "", path)
            out = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30).stdout
            b, _, c = out.decode().rpartition("\n")
            return int(c or 0), b, 0

        def engine_says(ctr, roles):
            rig.eng.roles = type("AnyPid", (dict,), {"get": lambda s, k, d=None: (ctr, roles)})()

        # in a payload cgroup the engine does not know (a foreign LXC container on the host):
        # no container, never the name in the cgroup (it may be one of the engine's names)
        st, body, _ = in_ctr("/containers")
        assert st == 403 and "caller (unknown)" in json.loads(body)["Error"], body
        w = rig.eng.last("whois")
        assert w and isinstance(w["pid"], int)
        in_ctr("/signal", "POST", '{"type":"alive"}')
        assert rig.eng.last("signal")["container"] == ""
        # one of the engine's containers: named as the engine names it, not as the cgroup does
        # (liblxc may have suffixed that)
        engine_says("its-" + name, [])
        st, body, _ = in_ctr("/containers")
        assert st == 403 and "caller container its-%s " % name in json.loads(body)["Error"], body
        st, body, _ = in_ctr("/signal", "POST", '{"type":"alive"}')
        assert st == 200 and rig.eng.last("signal")["container"] == "its-" + name
        engine_says(name, ["mgmt"])
        st, body, _ = in_ctr("/containers")
        assert st == 200, body
    finally:
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)
