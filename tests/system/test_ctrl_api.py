# test_ctrl_api.py: pv-ctrl against a real pv-engine and two LXC containers (one mgmt, one not):
# every endpoint from the host and from inside both, roles, limits, bad input, crash recovery.
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import concurrent.futures
import errno

import pytest

PV_BIN = os.environ.get("PV_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
ENGINE = os.path.join(PV_BIN, "pv-engine")
CTRL = os.path.join(PV_BIN, "pv-ctrl")
PVCURL = os.path.join(PV_BIN, "pvcurl")
PVCONTROL = os.path.join(PV_BIN, "pvcontrol")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

RUNNER = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile true; do sleep 1; done\n"
LXC_CONF = """lxc.init.cmd = /init
lxc.mount.auto = proc:mixed sys:ro
lxc.net.0.type = empty
lxc.tty.max = 0
lxc.pty.max = 2
lxc.apparmor.profile = unconfined
"""


def wait_for(pred, timeout=20.0, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def _libs(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
                break
    return libs


class CtrlEnv:
    def __init__(self, ctrl_env=None):
        self.tag = "c" + uuid.uuid4().hex[:7]
        self.root = tempfile.mkdtemp(prefix="pvtest-ctrl-")
        self.storage = os.path.join(self.root, "storage")
        self.rundir = os.path.join(self.root, "run", "pv")
        self.lxcpath = os.path.join(self.root, "lxc")
        self.sock = os.path.join(self.root, "run", "engine.sock")
        self.ctrl_sock = os.path.join(self.rundir, "pv-ctrl")
        for d in (self.storage, self.rundir, self.lxcpath,
                  os.path.join(self.storage, "objects")):
            os.makedirs(d, exist_ok=True)
        self.names = []
        self.engine = None
        self.ctrl = None
        self.ctrl_env = ctrl_env or {}
        self._image = None
        self.logs = []

    def add_object(self, path):
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        dst = os.path.join(self.storage, "objects", sha)
        if not os.path.exists(dst):
            shutil.copyfile(path, dst)
        return sha

    def image(self):
        """busybox + pvcurl (with its libraries) so requests can be made from inside."""
        if self._image:
            return self._image
        rootfs = os.path.join(self.root, "rootfs")
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "run", "pantavisor"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for a in ("sh", "sleep", "true", "cat"):
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
        shutil.copy(PVCURL, os.path.join(rootfs, "bin", "pvcurl"))
        shutil.copy(PVCONTROL, os.path.join(rootfs, "bin", "pvcontrol"))
        for lib in set(_libs(PVCURL) + _libs(PVCONTROL)):
            dst = os.path.join(rootfs, lib.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(lib, dst)
        with open(os.path.join(rootfs, "init"), "w") as f:
            f.write(RUNNER)
        os.chmod(os.path.join(rootfs, "init"), 0o755)
        sq = rootfs + ".squashfs"
        subprocess.run(["mksquashfs", rootfs, sq, "-noappend", "-quiet", "-all-root"],
                       check=True, stdout=subprocess.DEVNULL)
        self._image = sq
        return sq

    def container(self, suffix, **run):
        name = self.tag + suffix
        self.names.append(name)
        conf = os.path.join(self.root, "lxc.conf")
        with open(conf, "w") as f:
            f.write(LXC_CONF)
        rj = {"#spec": "service-manifest-run@1", "name": name, "type": "lxc",
              "config": "lxc.container.conf", "root-volume": "root.squashfs",
              "volumes": [], "storage": {"lxc-overlay": {"persistence": "boot"}}}
        rj.update(run)
        return name, {
            name + "/lxc.container.conf": self.add_object(conf),
            name + "/root.squashfs": self.add_object(self.image()),
            name + "/run.json": rj,
        }

    def write_rev(self, rev, *containers):
        state = {"#spec": "pantavisor-service-system@1"}
        for _, keys in containers:
            state.update(keys)
        trail = os.path.join(self.storage, "trails", rev)
        os.makedirs(os.path.join(trail, ".pvr"), exist_ok=True)
        with open(os.path.join(trail, ".pvr", "json"), "w") as f:
            json.dump(state, f, sort_keys=True)
        for k, v in state.items():
            if isinstance(v, str) and len(v) == 64 and not k.startswith("#"):
                dst = os.path.join(trail, k)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.link(os.path.join(self.storage, "objects", v), dst)

    def _env(self):
        env = dict(os.environ)
        env.update(PV_LXC_PATH=self.lxcpath, PV_DISK_VOLDIR=os.path.join(self.root, "volumes"),
                   PV_SYSTEM_CONFDIR=os.path.join(self.root, "configs"),
                   PV_ENGINE_SOCKET=self.sock)
        env.update(self.ctrl_env)
        return env

    def _log(self, what):
        f = open(os.path.join(self.root, "%s-%d.err" % (what, len(self.logs))), "w")
        self.logs.append(f.name)
        return f

    def start_engine(self):
        self.engine = subprocess.Popen(
            [ENGINE, "--mode", "appengine", "--rundir", self.rundir, "--storage", self.storage],
            env=self._env(), stdout=subprocess.DEVNULL, stderr=self._log("engine"))
        assert wait_for(lambda: os.path.exists(self.sock) or self.engine.poll() is not None, 10)
        assert self.engine.poll() is None, self.log_text()

    def start_ctrl(self):
        # what init does: spawn pv-ctrl with the run dir and storage; it binds its own socket
        if os.path.exists(self.ctrl_sock):
            os.unlink(self.ctrl_sock)
        self.ctrl = subprocess.Popen(
            [CTRL, "--mode", "appengine", "--rundir", self.rundir, "--storage", self.storage],
            env=self._env(), stdout=subprocess.DEVNULL, stderr=self._log("ctrl"))
        assert wait_for(lambda: os.path.exists(self.ctrl_sock) or self.ctrl.poll() is not None,
                        10)
        assert self.ctrl.poll() is None, self.log_text()

    def log_text(self):
        out = ""
        for p in self.logs:
            try:
                out += "== %s\n%s" % (p, open(p).read()[-3000:])
            except OSError:
                pass
        return out

    def lxc_state(self, name):
        r = subprocess.run(["lxc-info", "-n", name, "-P", self.lxcpath, "-s"],
                           capture_output=True, text=True)
        return r.stdout.split(":", 1)[-1].strip() if ":" in r.stdout else "MISSING"

    # ---- HTTP ----
    def curl(self, path, method="GET", data=None, upload=None, who=None, headers=()):
        """(status, body) of one request, from the host (who=None) or inside container who."""
        if who is None:
            cmd = ["curl", "-s", "--path-as-is", "--unix-socket", self.ctrl_sock]
        else:
            cmd = ["lxc-attach", "-n", who, "-P", self.lxcpath, "--clear-env", "--",
                   "/bin/pvcurl", "--unix-socket", "/pantavisor/pv-ctrl", "-s"]
        cmd += ["-w", "\n%{http_code}", "-X", method]
        for h in headers:
            cmd += ["-H", h]
        if data is not None:
            cmd += ["--data-binary" if who is None else "--data", data]
        if upload is not None:
            cmd += ["-T", upload]
        cmd.append("http://localhost" + path)
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def raw(self, data, timeout=5.0, read=True):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.ctrl_sock)
        s.sendall(data)
        if not read:
            return s
        buf = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        return buf

    def sanitizer_reports(self):
        bad = []
        for p in self.logs:
            if os.path.basename(p).startswith("ctrl-"):
                t = open(p, errors="replace").read()
                if "Sanitizer" in t or "runtime error:" in t:
                    bad.append(t[-4000:])
        return bad

    def cleanup(self):
        for p in (self.ctrl, self.engine):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        reports = self.sanitizer_reports()
        for n in self.names:
            subprocess.run(["lxc-stop", "-k", "-n", n, "-P", self.lxcpath], capture_output=True)
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split()[4] for l in f if l.split()[4].startswith(self.root)]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        # a pv-ctrl built with ASan/UBSan must have nothing to say
        assert not reports, reports


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not (os.path.exists(ENGINE) and os.path.exists(CTRL)),
                       reason="pv-engine or pv-ctrl not built"),
]

SHA_HELLO = hashlib.sha256(b"hello pv-ctrl\n").hexdigest()


@pytest.fixture(scope="module")
def env():
    e = CtrlEnv(ctrl_env={"PV_CTRL_CONNECTION_TIMEOUT": "2", "PV_CTRL_CONNECTION_LIMIT": "64"})
    try:
        mg = e.container("mg", roles=["mgmt"], restart_policy="container")
        ap = e.container("ap", restart_policy="container")
        e.write_rev("0", mg, ap)
        e.mg, e.ap = mg[0], ap[0]
        # pv-ctrl first: the engine binds <rundir>/pv-ctrl into containers when they start
        e.start_ctrl()
        e.start_engine()
        for n in (e.mg, e.ap):
            assert wait_for(lambda n=n: e.lxc_state(n) == "RUNNING", 30), e.log_text()
            assert wait_for(lambda n=n: engine_started(e, n), 30), e.log_text()
        yield e
    finally:
        e.cleanup()


def engine_started(e, name):
    """The engine has the container STARTED (its init pid known: who-is-calling works), which
    comes after liblxc says RUNNING."""
    try:
        st, body = e.curl("/containers")
        return st == 200 and any(c["name"] == name and c["status"] == "STARTED"
                                 for c in json.loads(body))
    except (OSError, ValueError):
        return False


def err_of(body):
    j = json.loads(body)
    assert isinstance(j, dict) and isinstance(j.get("Error"), str) and j["Error"], body
    return j["Error"]


# ---- the host may call everything ----

def test_host_containers_list(env):
    st, body = env.curl("/containers")
    assert st == 200, body
    names = {c["name"]: c for c in json.loads(body)}
    assert env.mg in names and env.ap in names
    assert names[env.mg]["roles"] == ["mgmt"] and names[env.ap]["roles"] == []
    for k in ("group", "status", "status_goal", "restart_policy", "user_stopped"):
        assert k in names[env.mg]


def test_host_groups_list(env):
    st, body = env.curl("/groups")
    assert st == 200, body
    assert all("name" in g and "status_goal" in g for g in json.loads(body))


# Endpoints whose engine side answers through the private protocol. Each must be 2xx with a
# JSON (or text) body of the documented shape; an engine without the op makes this fail.
RELAYED = [
    ("GET", "/objects", None, list),
    ("GET", "/steps", None, list),
    ("GET", "/steps/0", None, dict),
    ("GET", "/steps/0/progress", None, dict),
    ("GET", "/user-meta", None, dict),
    ("GET", "/device-meta", None, dict),
    ("PUT", "/user-meta/pvtest.key", "v1", None),
    ("DELETE", "/user-meta/pvtest.key", None, None),
    ("GET", "/buildinfo", None, str),
    ("GET", "/config", None, dict),
    ("GET", "/config2", None, list),
    ("GET", "/daemons", None, list),
    ("GET", "/xconnect-graph", None, list),
    ("POST", "/storage/gc", None, dict),
    ("PUT", "/steps/0/commitmsg", "a message", None),
]


@pytest.mark.parametrize("method,path,data,shape", RELAYED,
                         ids=["%s %s" % (m, p) for m, p, _, _ in RELAYED])
def test_host_endpoint(env, method, path, data, shape):
    st, body = env.curl(path, method=method, data=data)
    assert st == 200, (st, body)
    if shape is str:
        return
    if shape is not None:
        assert isinstance(json.loads(body), shape), body


def test_signal_alive_from_containers(env):
    for who in (env.ap, env.mg):
        st, body = env.curl("/signal", "POST", data='{"type":"alive","payload":""}', who=who)
        assert st == 200, (who, st, body)


def test_caller_named_by_its_cgroup_when_liblxc_suffixed_the_name():
    """Another instance on this host already runs a container of our container's name, so
    liblxc puts ours in the payload cgroup "<name>-1": pv-ctrl and the engine still name the
    caller after the container whose init shares that cgroup, not after the name in the path."""
    other, e = CtrlEnv(), CtrlEnv()
    e.tag = other.tag  # the same container names in both
    try:
        o_ap = other.container("ap")
        other.write_rev("0", o_ap)
        other.start_ctrl()
        other.start_engine()
        assert wait_for(lambda: other.lxc_state(o_ap[0]) == "RUNNING", 30), other.log_text()
        ap = e.container("ap", restart_policy="container")
        e.write_rev("0", ap)
        e.start_ctrl()
        e.start_engine()
        assert wait_for(lambda: e.lxc_state(ap[0]) == "RUNNING", 30), e.log_text()
        assert wait_for(lambda: engine_started(e, ap[0]), 30), e.log_text()
        r = subprocess.run(["lxc-info", "-n", ap[0], "-P", e.lxcpath, "-p", "-H"],
                           capture_output=True, text=True)
        with open("/proc/%d/cgroup" % int(r.stdout)) as f:
            cg = f.read()
        assert "/lxc.payload.%s-" % ap[0] in cg, cg  # the clash happened, else this proves nothing
        st, body = e.curl("/signal", "POST", data='{"type":"alive","payload":""}', who=ap[0])
        assert st == 200, (st, body)
        st, body = e.curl("/containers", who=ap[0])
        assert st == 403 and "caller container %s does" % ap[0] in err_of(body), (st, body)
    finally:
        e.cleanup()
        other.cleanup()


def test_signal_ready_needs_ready_goal(env):
    # neither container has status_goal READY: the engine refuses, pv-ctrl relays its error
    st, body = env.curl("/signal", "POST", data='{"type":"ready","payload":""}', who=env.ap)
    assert st == 400 and "READY" in err_of(body)


def test_signal_bad_type_and_json(env):
    st, body = env.curl("/signal", "POST", data='{"type":"dance"}', who=env.ap)
    assert st == 400 and "dance" in err_of(body)
    st, body = env.curl("/signal", "POST", data='{"type":', who=env.ap)
    assert st == 400 and "JSON" in err_of(body)


def test_container_actions_from_host(env):
    st, body = env.curl("/containers/nosuch" + env.tag, "PUT", data='{"action":"stop"}')
    assert st == 404, (st, body)
    err_of(body)
    st, body = env.curl("/containers/" + env.ap, "PUT", data='{"action":"stop"}')
    assert st == 200, (st, body)
    assert wait_for(lambda: env.lxc_state(env.ap) in ("STOPPED", "MISSING"), 30), env.lxc_state(env.ap)

    def ap_status():
        return {c["name"]: c for c in json.loads(env.curl("/containers")[1])}[env.ap]
    # user_stopped is set when the engine has seen the init's exit, after liblxc's STOPPED
    assert wait_for(lambda: ap_status()["status"] == "STOPPED" and ap_status()["user_stopped"],
                    10), ap_status()
    st, body = env.curl("/containers/" + env.ap, "PUT", data='{"action":"start"}')
    assert st == 200, (st, body)
    assert wait_for(lambda: env.lxc_state(env.ap) == "RUNNING", 30)
    # the container is served again once it is back (socket bound at its start)
    assert wait_for(lambda: env.curl("/signal", "POST", data='{"type":"alive"}',
                                     who=env.ap)[0] == 200, 20)


# ---- roles ----

@pytest.mark.parametrize("method,path", [("GET", "/containers"), ("GET", "/groups"),
                                         ("POST", "/commands"), ("GET", "/objects"),
                                         ("GET", "/steps"), ("GET", "/config"),
                                         ("PUT", "/containers/x"), ("GET", "/xconnect-graph")])
def test_non_mgmt_container_gets_403(env, method, path):
    st, body = env.curl(path, method, data="{}" if method != "GET" else None, who=env.ap)
    assert st == 403, (st, body)
    assert "mgmt" in err_of(body) and env.ap in err_of(body)


def test_mgmt_container_may_list(env):
    # needs the engine's `whois` op (the container's roles come from the engine)
    st, body = env.curl("/containers", who=env.mg)
    assert st == 200, (st, body)
    assert env.ap in {c["name"] for c in json.loads(body)}


def test_non_root_host_user_is_not_the_device(env):
    # let an unprivileged user reach the socket (the temp dirs are 0700)
    for d in (env.root, os.path.dirname(env.rundir), env.rundir):
        os.chmod(d, 0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl",
                        "-s", "-w", "\n%{http_code}", "--unix-socket", env.ctrl_sock,
                        "http://localhost/containers"], capture_output=True, text=True)
    assert r.stdout.rpartition("\n")[2] == "403", r


# ---- metadata views ----

@pytest.mark.parametrize("kind", ["user-meta", "device-meta"])
def test_meta_container_view(env, kind):
    # "<container>.<key>" belongs to that container's view (upstream's <kind>.<container>/)
    keys = {env.ap + ".color": "blue", env.mg + ".x": "1", "pvtest.global": "g"}
    for k, v in keys.items():
        st, body = env.curl("/%s/%s" % (kind, k), "PUT", data=v)
        assert st == 200, (k, st, body)
    try:
        st, body = env.curl("/" + kind, who=env.ap)  # non-mgmt: its own view only
        assert st == 200 and json.loads(body) == {"color": "blue"}, (st, body)
        for who in (None, env.mg):  # host and mgmt: every key, as upstream
            st, body = env.curl("/" + kind, who=who)
            assert st == 200 and all(json.loads(body).get(k) == v for k, v in keys.items())
        view = os.path.join(env.rundir, "%s.%s" % (kind, env.ap))
        assert open(os.path.join(view, "color")).read() == "blue"
        # and inside the container, read-only at /pantavisor/<kind> (spec §5.3)
        def inside(cmd):
            return subprocess.run(["lxc-attach", "-n", env.ap, "-P", env.lxcpath, "--clear-env",
                                   "--", "/bin/sh", "-c", cmd], capture_output=True, text=True)
        r = inside("cat /pantavisor/%s/color" % kind)
        assert r.returncode == 0 and r.stdout == "blue", r
        r = inside("ls /pantavisor/%s" % kind)
        assert r.stdout.split() == ["color"], r  # not the other containers' keys
        r = inside("echo x > /pantavisor/%s/color" % kind)
        assert r.returncode != 0, r
        # writing stays mgmt-only
        st, _ = env.curl("/%s/%s.color" % (kind, env.ap), "PUT", data="red", who=env.ap)
        assert st == 403
    finally:
        for k in keys:
            env.curl("/%s/%s" % (kind, k), "DELETE")
    assert not os.path.exists(os.path.join(env.rundir, "%s.%s" % (kind, env.ap), "color"))
    st, body = env.curl("/" + kind, who=env.ap)
    assert st == 200 and json.loads(body) == {}, body


# ---- status codes and bad input ----

def test_unknown_path_404(env):
    st, body = env.curl("/nothing/here")
    assert st == 404 and "/nothing/here" in err_of(body)


def test_wrong_method_405(env):
    st, body = env.curl("/containers", "DELETE")
    assert st == 405 and "DELETE" in err_of(body)
    head = env.raw(b"POST /groups HTTP/1.0\r\nHost: localhost\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 405") or head.startswith(b"HTTP/1.1 405")
    assert b"Allow: GET" in head


@pytest.mark.parametrize("path", ["/objects/../../etc/passwd", "/steps/locals/../0",
                                  "/objects/" + "A" * 64, "/objects/abc",
                                  "/steps/locals/a/b", "/steps/locals/" + "x" * 65,
                                  "/steps/locals/..hidden", "/user-meta/.x",
                                  "/objects//" + SHA_HELLO, "/steps/1x"])
def test_traversal_and_bad_names_400(env, path):
    for method in ("GET", "PUT"):
        st, body = env.curl(path, method, data="{}" if method == "PUT" else None)
        assert st == 400, (method, path, st, body)
        err_of(body)


def test_bad_json_400(env):
    for path in ("/commands", "/signal"):
        st, body = env.curl(path, "POST", data="{not json")
        assert st == 400 and "JSON" in err_of(body), (path, body)
    st, body = env.curl("/containers/" + env.ap, "PUT", data="[1,2]")
    assert st == 400, body
    st, body = env.curl("/steps/locals/pvtest", "PUT", data='{"a":')
    assert st == 400 and "JSON" in err_of(body)


def test_body_limits_413(env):
    big = '{"op":"RUN_GC","payload":"' + "x" * 5000 + '"}'
    for path in ("/commands", "/signal"):
        st, body = env.curl(path, "POST", data=big)
        assert st == 413 and "4096" in err_of(body), (path, body)
    st, body = env.curl("/steps/0/commitmsg", "PUT", data="m" * 300)
    assert st == 413 and "256" in err_of(body)
    # chunked (no Content-Length): the limit holds while reading
    st, body = env.curl("/commands", "POST", data=big, headers=("Transfer-Encoding: chunked",))
    assert st == 413, body


def test_bad_command_and_action_400(env):
    st, body = env.curl("/commands", "POST", data='{"op":"FORMAT_DISK"}')
    assert st == 400 and "FORMAT_DISK" in err_of(body)
    st, body = env.curl("/containers/" + env.ap, "PUT", data='{"action":"explode"}')
    assert st == 400 and "explode" in err_of(body) and env.ap in err_of(body), body
    # upstream's order: an unknown container is 404 whatever the action
    st, body = env.curl("/containers/nosuch" + env.tag, "PUT", data='{"action":"explode"}')
    assert st == 404, (st, body)
    st, body = env.curl("/containers/" + env.ap, "PUT", data='{"verb":"stop"}')
    assert st == 400 and "action" in err_of(body), body
    st, body = env.curl("/steps/0/commitmsg", "PUT", data="")
    assert st == 400


def test_host_header(env):
    out = env.raw(b"GET /groups HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert out.split(b" ")[1] == b"400", out
    out = env.raw(b"GET /groups HTTP/1.0\r\n\r\n")
    assert out.split(b" ")[1] == b"200", out


# ---- objects ----

def test_object_upload_bad_checksum_leaves_nothing(env):
    f = os.path.join(env.root, "obj-bad")
    with open(f, "wb") as fh:
        fh.write(b"not what the name says\n")
    st, body = env.curl("/objects/" + SHA_HELLO, "PUT", upload=f)
    assert st == 422 and err_of(body) == "Object has bad checksum"
    left = [n for n in os.listdir(os.path.join(env.storage, "objects")) if SHA_HELLO in n]
    assert left == []


def test_object_upload_get_and_present(env):
    f = os.path.join(env.root, "obj-good")
    with open(f, "wb") as fh:
        fh.write(b"hello pv-ctrl\n")
    st, body = env.curl("/objects/" + SHA_HELLO, "PUT", upload=f)
    # the file is in storage whatever the engine says; the status is the engine's (object-installed)
    assert os.path.exists(os.path.join(env.storage, "objects", SHA_HELLO))
    assert not [n for n in os.listdir(os.path.join(env.storage, "objects")) if ".tmp." in n]
    st2, body2 = env.curl("/objects/" + SHA_HELLO)
    assert st2 == 200 and body2 == "hello pv-ctrl\n"
    st3, _ = env.curl("/objects/" + SHA_HELLO, "PUT", upload=f)  # present: drained, 200
    assert st3 == 200
    assert st == 200, (st, body)


def test_object_get_missing_404(env):
    st, body = env.curl("/objects/" + "0" * 64)
    assert st == 404 and "0" * 64 in err_of(body)


def test_object_upload_large_streams_with_bounded_memory(env):
    data = os.urandom(1 << 20) * 64  # 64 MiB
    sha = hashlib.sha256(data).hexdigest()
    f = os.path.join(env.root, "obj-big")
    with open(f, "wb") as fh:
        fh.write(data)
    del data

    def rss():
        with open("/proc/%d/status" % env.ctrl.pid) as s:
            return int([l for l in s if l.startswith("VmRSS")][0].split()[1])
    before = rss()
    st, body = env.curl("/objects/" + sha, "PUT", upload=f)
    grew = rss() - before
    assert os.path.getsize(os.path.join(env.storage, "objects", sha)) == 64 << 20
    os.unlink(os.path.join(env.storage, "objects", sha))
    assert grew < 8 * 1024, "pv-ctrl RSS grew by %d KiB for a 64 MiB upload" % grew


def test_full_storage_upload_is_507_and_leaves_nothing():
    """An object bigger than the free space: 507 naming the object, no partial file, the
    space back, the device still answering, the next object that fits accepted."""
    e = CtrlEnv()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "pvtest-full", e.storage],
                       check=True)
        os.makedirs(os.path.join(e.storage, "objects"))
        ap = e.container("ap")
        e.write_rev("0", ap)
        e.start_ctrl()
        e.start_engine()
        assert wait_for(lambda: e.lxc_state(ap[0]) == "RUNNING", 30), e.log_text()
        assert wait_for(lambda: engine_started(e, ap[0]), 30), e.log_text()
        free0 = os.statvfs(e.storage).f_bavail
        data = os.urandom(1 << 20) * 32  # 32 MiB on a 24 MiB storage
        sha = hashlib.sha256(data).hexdigest()
        f = os.path.join(e.root, "obj-too-big")
        with open(f, "wb") as fh:
            fh.write(data)
        del data
        st, body = e.curl("/objects/" + sha, "PUT", upload=f)
        assert st == 507 and sha in err_of(body) and "space" in err_of(body), (st, body)
        objs = os.path.join(e.storage, "objects")
        assert not [n for n in os.listdir(objs) if sha in n], os.listdir(objs)
        # the space is back (logs on the same storage may have taken a few blocks since)
        blocks = os.statvfs(e.storage)
        assert blocks.f_bavail >= free0 - (256 << 10) // blocks.f_frsize, (blocks.f_bavail, free0)
        st, body = e.curl("/containers")
        assert st == 200, body
        with open(f, "wb") as fh:
            fh.write(b"hello pv-ctrl\n")
        st, body = e.curl("/objects/" + SHA_HELLO, "PUT", upload=f)
        assert st == 200 and os.path.exists(os.path.join(objs, SHA_HELLO)), (st, body)
        # a state when not one more byte fits: an error, and no half-written trail
        with open(os.path.join(e.storage, "trails", "0", ".pvr", "json")) as fh:
            state = fh.read()
        filler = os.path.join(e.storage, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:  # unbuffered: no write left pending for a close to fail on
                os.write(fd, b"\0" * 4096)
        except OSError as x:
            assert x.errno == errno.ENOSPC, x
        finally:
            os.close(fd)
        st, body = e.curl("/steps/locals/full", "PUT", data=state)
        assert st == 507 and "space" in err_of(body), (st, body)
        assert not os.path.exists(os.path.join(e.storage, "trails", "locals", "full"))
        os.unlink(filler)
        st, body = e.curl("/steps/locals/full", "PUT", data=state)
        assert st == 200, (st, body)
    finally:
        e.cleanup()


# ---- concurrency, limits, crash and restart ----

def test_64_concurrent_clients(env):
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        res = list(ex.map(lambda _: env.curl("/containers"), range(64)))
    assert all(st == 200 for st, _ in res), [st for st, _ in res]


def test_slowloris_dropped(env):
    s = env.raw(b"GET /containers HTTP/1.1\r\nHost: local", read=False)
    t0 = time.time()
    s.settimeout(10)
    got = s.recv(100)  # closed by the server after its connection timeout (2 s here)
    assert got == b"" or b"408" in got
    assert time.time() - t0 < 8
    s.close()
    assert env.curl("/groups")[0] == 200


def get_raw(env, path="/groups", timeout=10):
    """One GET on a new connection: (status, headers lower-cased, body) or None if the server
    closed the connection without an answer."""
    try:
        buf = env.raw(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                       % path).encode(), timeout)
    except BrokenPipeError:
        return None
    if not buf:
        return None
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:]))
    return int(lines[0].split()[1]), hdrs, body


def test_connection_cap_then_503_then_recovers(env):
    """Over the cap (64 here) a new client is told why: 503, Retry-After, a JSON error naming
    the limit, and the connection closed; idle connections over the cap are dropped after 1 s,
    the served ones after the connection timeout; then everything is served again."""
    idle = []
    try:
        for _ in range(80):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(env.ctrl_sock)
            idle.append(s)
        r = get_raw(env)
        assert r, "closed without an answer"
        st, hdrs, body = r
        assert st == 503 and hdrs.get("retry-after") == "1", r
        assert hdrs.get("connection", "").lower() == "close", r
        assert "64" in err_of(body) and "PV_CTRL_CONNECTION_LIMIT" in err_of(body), body
        t0 = time.time()
        for s in idle[64:]:  # over the cap and silent: dropped without waiting for the timeout
            s.settimeout(5)
            assert s.recv(1) == b""
        print("idle connections over the cap dropped after %.2f s" % (time.time() - t0))
    finally:
        for s in idle:
            s.close()
    assert wait_for(lambda: env.curl("/groups")[0] == 200, 10)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS")][0].split()[1])


def test_ten_thousand_idle_connections(env):
    """10 000 idle connections at once: pv-ctrl holds at most twice its cap (64 here; the rest
    wait in the kernel's backlog or are refused there), its fds and memory stay bounded, a
    newcomer still gets an answer while the flood is open, and all is served once it is gone."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10000 + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    pid = env.ctrl.pid
    rss0, fds0 = vm_rss_kib(pid), fd_count(pid)
    conns, refused = [], 0
    try:
        for _ in range(10000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(env.ctrl_sock)
                conns.append(s)
            except BlockingIOError:  # the listen backlog is full: the kernel refuses
                refused += 1
                s.close()
        time.sleep(0.5)
        rss, fds = vm_rss_kib(pid), fd_count(pid)
        print("10 000 connects: %d connected, %d refused by the backlog; pv-ctrl fds %d -> %d, "
              "RSS %d -> %d KiB" % (len(conns), refused, fds0, fds, rss0, rss))
        assert len(conns) + refused == 10000
        assert fds <= fds0 + 2 * 64, fds  # the cap and as many answered 503, nothing more
        assert rss - rss0 < 32 * 1024, (rss0, rss)
        # over-cap idlers are dropped after 1 s, served ones after the 2 s timeout: a newcomer
        # retrying on a full backlog gets in and is answered (503 while the cap is full)
        def newcomer():
            try:
                return get_raw(env, timeout=5)
            except (BlockingIOError, ConnectionRefusedError, ConnectionResetError,
                    socket.timeout):
                return None
        r = wait_for(newcomer, 20)
        assert r and (r[0] == 200 or (r[0] == 503 and "retry-after" in r[1])), r
    finally:
        for s in conns:
            s.close()
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert env.ctrl.poll() is None and env.ctrl.pid == pid
    assert wait_for(lambda: env.curl("/groups")[0] == 200, 10)
    assert wait_for(lambda: fd_count(pid) <= fds0 + 2, 10), fd_count(pid)


def test_header_flood(env):
    try:
        out = env.raw(b"GET /groups HTTP/1.1\r\nHost: localhost\r\n" +
                      b"".join(b"X-%d: %s\r\n" % (i, b"y" * 200) for i in range(2000)) +
                      b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        out = b""  # cut off while still sending: refused as well
    assert out == b"" or out.split(b" ")[1] in (b"413", b"431", b"400"), out[:200]
    assert env.curl("/groups")[0] == 200


def test_engine_restart_503_then_recovers(env):
    env.engine.kill()
    env.engine.wait()
    st, body = env.curl("/groups")
    assert st == 503 and "engine" in err_of(body)
    head = env.raw(b"GET /groups HTTP/1.0\r\n\r\n")
    assert b"Retry-After:" in head
    env.start_engine()
    assert wait_for(lambda: env.curl("/groups")[0] == 200, 20)


# ---- pvcontrol ----

def pvcontrol(env, *args, who=None):
    if who is None:
        cmd = [PVCONTROL, "-s", env.ctrl_sock] + list(args)
    else:
        cmd = ["lxc-attach", "-n", who, "-P", env.lxcpath, "--clear-env", "--",
               "/bin/pvcontrol"] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_pvcontrol_ls_and_errors(env):
    r = pvcontrol(env, "ls")
    assert r.returncode == 0, r.stderr
    assert env.ap in {c["name"] for c in json.loads(r.stdout)}
    r = pvcontrol(env, "containers", "ls", who=env.ap)  # finds /pantavisor/pv-ctrl, gets 403
    assert r.returncode != 0 and "403" in r.stderr
    r = pvcontrol(env, "signal", "alive", who=env.ap)
    assert r.returncode == 0, r.stderr
    r = pvcontrol(env, "objects", "get", "0" * 64)
    assert r.returncode != 0 and "404" in r.stderr


def test_pvcontrol_containers_restart_and_errors_from_mgmt(env):
    """A mgmt container drives another through pvcontrol: restart gives it a new init, an
    unknown name fails naming the 404."""
    pid = int(subprocess.run(["lxc-info", "-n", env.ap, "-P", env.lxcpath, "-p", "-H"],
                             capture_output=True, text=True).stdout)
    r = pvcontrol(env, "containers", "restart", env.ap, who=env.mg)
    assert r.returncode == 0, (r.stdout, r.stderr)

    def new_pid():
        out = subprocess.run(["lxc-info", "-n", env.ap, "-P", env.lxcpath, "-p", "-H"],
                             capture_output=True, text=True).stdout.strip()
        return out and int(out) != pid and engine_started(env, env.ap)
    assert wait_for(new_pid, 30), env.log_text()
    r = pvcontrol(env, "containers", "stop", "nosuch" + env.tag, who=env.mg)
    assert r.returncode != 0 and "404" in r.stderr, (r.stdout, r.stderr)
    r = pvcontrol(env, "containers", "ls", who=env.mg)
    assert r.returncode == 0 and env.ap in {c["name"] for c in json.loads(r.stdout)}, r.stderr


def test_pvcontrol_steps_install(env):
    # a pvr export: json + objects/<sha>; every object is uploaded, then the state
    d = os.path.join(env.root, "export")
    os.makedirs(os.path.join(d, "objects"))
    blob = b"pvcontrol install object\n"
    sha = hashlib.sha256(blob).hexdigest()
    with open(os.path.join(d, "objects", sha), "wb") as f:
        f.write(blob)
    with open(os.path.join(d, "json"), "w") as f:
        json.dump({"#spec": "pantavisor-service-system@1", "app/file": sha}, f)
    tgz = os.path.join(env.root, "pvtest-rev.tgz")
    subprocess.run(["tar", "-czf", tgz, "-C", d, "json", "objects"], check=True)
    r = pvcontrol(env, "steps", "install", tgz)
    assert os.path.exists(os.path.join(env.storage, "objects", sha)), r.stderr
    assert r.returncode == 0, r.stderr
    rev = r.stdout.strip()
    assert rev.startswith("locals/install-"), r.stdout
    st, body = env.curl("/steps/" + rev)
    assert st == 200 and json.loads(body)["app/file"] == sha, body
    # again under a name of our choosing: the object is on the device, nothing travels
    r = pvcontrol(env, "steps", "install", tgz, "pvtest-again")
    assert r.returncode == 0 and r.stdout.strip() == "locals/pvtest-again", r.stderr
    assert "0 objects uploaded, 1 already" in r.stderr


# ---- last: these restart pv-ctrl ----

def test_kill9_mid_request_then_respawn(env):
    s = env.raw(b"PUT /objects/" + ("1" * 64).encode() +
                b" HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n" +
                b"z" * 1000, read=False)
    tmp = wait_for(lambda: [n for n in os.listdir(os.path.join(env.storage, "objects"))
                            if ".tmp." in n], 10)
    assert tmp, "upload temp file expected while the body streams"
    env.ctrl.kill()
    env.ctrl.wait()
    s.close()
    env.start_ctrl()  # what init does on the child's death
    assert wait_for(lambda: env.curl("/groups")[0] == 200, 10)
    assert not [n for n in os.listdir(os.path.join(env.storage, "objects")) if ".tmp." in n]


def test_container_reaches_respawned_ctrl(env):
    # a respawned pv-ctrl binds a new socket inode: containers must still reach it (needs the
    # engine to bind the run directory, not the socket file, into containers)
    st, body = env.curl("/signal", "POST", data='{"type":"alive","payload":""}', who=env.ap)
    assert st == 200, (st, body)
