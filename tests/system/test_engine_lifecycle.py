# test_engine_lifecycle.py: pv-engine against real LXC: boot order, auto_recovery, system failure
# (reboot request), kill -9 re-adoption, SIGTERM cleanup, invalid revisions and fallback.
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

PV_BIN = os.environ.get("PV_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
ENGINE = os.path.join(PV_BIN, "pv-engine")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, LXC)"),
    pytest.mark.skipif(not os.path.exists(ENGINE), reason="pv-engine not built"),
]

RUNNER = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile true; do sleep 1; done\n"
CRASHER = "#!/bin/sh\nsleep 1\nexit 1\n"

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


class Env:
    """A private storage, run dir, lxcpath and volume dir; every name carries a unique tag."""

    def __init__(self):
        self.tag = "e" + uuid.uuid4().hex[:8]
        self.root = tempfile.mkdtemp(prefix="pvtest-engine-")
        self.storage = os.path.join(self.root, "storage")
        self.rundir = os.path.join(self.root, "run", "pv")
        self.lxcpath = os.path.join(self.root, "lxc")
        self.voldir = os.path.join(self.root, "volumes")
        self.confdir = os.path.join(self.root, "configs")
        self.sock = os.path.join(self.root, "run", "engine.sock")
        for d in (self.storage, self.rundir, self.lxcpath):
            os.makedirs(d)
        os.makedirs(os.path.join(self.storage, "objects"))
        self.procs = []
        self.names = []
        self._images = {}

    # ---- storage ----
    def add_object(self, path):
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        dst = os.path.join(self.storage, "objects", sha)
        if not os.path.exists(dst):
            shutil.copyfile(path, dst)
        return sha

    def image(self, init):
        if init in self._images:
            return self._images[init]
        rootfs = os.path.join(self.root, "rootfs-%d" % len(self._images))
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "run"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for a in ("sh", "sleep", "true"):
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
        with open(os.path.join(rootfs, "init"), "w") as f:
            f.write(init)
        os.chmod(os.path.join(rootfs, "init"), 0o755)
        sq = rootfs + ".squashfs"
        subprocess.run(["mksquashfs", rootfs, sq, "-noappend", "-quiet", "-all-root"],
                       check=True, stdout=subprocess.DEVNULL)
        self._images[init] = sq
        return sq

    def container(self, suffix, init=RUNNER, **run):
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
            name + "/root.squashfs": self.add_object(self.image(init)),
            name + "/run.json": rj,
        }

    def write_rev(self, rev, *containers, extra=None):
        state = {"#spec": "pantavisor-service-system@1"}
        for _, keys in containers:
            state.update(keys)
        if extra:
            state.update(extra)
        trail = os.path.join(self.storage, "trails", rev)
        os.makedirs(os.path.join(trail, ".pvr"), exist_ok=True)
        with open(os.path.join(trail, ".pvr", "json"), "w") as f:
            json.dump(state, f, sort_keys=True)
        for k, v in state.items():
            if isinstance(v, str) and len(v) == 64 and not k.startswith("#"):
                dst = os.path.join(trail, k)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                obj = os.path.join(self.storage, "objects", v)
                if os.path.exists(obj):
                    os.link(obj, dst)

    # ---- engine ----
    def start(self, cmdline=None, fd3=None, **extra_env):
        env = dict(os.environ)
        env.update(PV_LXC_PATH=self.lxcpath, PV_DISK_VOLDIR=self.voldir,
                   PV_SYSTEM_CONFDIR=self.confdir, PV_ENGINE_SOCKET=self.sock)
        env.update(extra_env)
        args = [ENGINE, "--mode", "appengine", "--rundir", self.rundir, "--storage",
                self.storage]
        if cmdline:
            args += ["--cmdline", cmdline]
        log = open(os.path.join(self.root, "engine-%d.err" % len(self.procs)), "w")
        pass_fds = ()
        if fd3 is not None:
            # the engine finds its initctl end at fd 3: a tiny wrapper moves it there, then execs
            mover = "import os,sys; os.dup2(int(sys.argv[1]), 3); os.execv(sys.argv[2], sys.argv[2:])"
            args = [sys.executable, "-c", mover, str(fd3)] + args
            pass_fds = (fd3,)
        p = subprocess.Popen(args, env=env, stdout=log, stderr=log, pass_fds=pass_fds)
        self.procs.append(p)
        assert wait_for(lambda: os.path.exists(self.sock) or p.poll() is not None, 10)
        return p

    def request(self, op, args=None, timeout=5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock)
        msg = {"op": op, "id": 7}
        if args is not None:
            msg["args"] = args
        s.sendall(frame(msg))
        rep = read_msg(s)
        s.close()
        return rep

    def containers(self):
        rep = self.request("containers-list")
        assert rep.get("status") == 200, rep
        return {c["name"]: c for c in rep["body"]}

    def lxc(self, name):
        r = subprocess.run(["lxc-info", "-n", name, "-P", self.lxcpath, "-s", "-p"],
                           capture_output=True, text=True)
        info = dict(l.split(":", 1) for l in r.stdout.splitlines() if ":" in l)
        state = info.get("State", "MISSING").strip()
        pid = info.get("PID", "0").strip()
        return state, int(pid) if pid.isdigit() else 0

    def log(self, rev="0"):
        p = os.path.join(self.storage, "logs", rev, "pantavisor", "pantavisor.log")
        return open(p).read() if os.path.exists(p) else ""

    def mounts(self):
        with open("/proc/self/mountinfo") as f:
            return [l.split()[4] for l in f if l.split()[4].startswith(self.root)]

    def loops(self):
        out = []
        for d in os.listdir("/sys/block"):
            bf = os.path.join("/sys/block", d, "loop", "backing_file")
            try:
                if open(bf).read().strip().startswith(self.root):
                    out.append(d)
            except OSError:
                pass
        return out

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in self.names:
            subprocess.run(["lxc-stop", "-k", "-n", n, "-P", self.lxcpath],
                           capture_output=True)
        for m in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def frame(obj):
    data = json.dumps(obj).encode()
    return struct.pack(">I", len(data)) + data


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("engine closed the socket")
        buf += chunk
    return buf


def read_msg(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return json.loads(recv_exact(s, n))


@pytest.fixture
def env():
    e = Env()
    yield e
    e.cleanup()


def stop_engine(env, p, timeout=30):
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout)


def test_boot_in_group_order_then_sigterm_leaves_nothing(env):
    a = env.container("pl", group="platform", restart_policy="container")
    b = env.container("ap", group="app", restart_policy="container")
    env.write_rev("0", a, b)
    p = env.start()
    for n in (a[0], b[0]):
        assert wait_for(lambda n=n: env.lxc(n)[0] == "RUNNING"), (n, env.log())
        # lxc says RUNNING a moment before the start helper reports to the engine
        assert wait_for(lambda n=n: env.containers()[n]["status"] == "STARTED", 5)
    lst = env.containers()
    assert lst[a[0]]["status"] == "STARTED" and lst[a[0]]["group"] == "platform"
    assert lst[b[0]]["status"] == "STARTED" and lst[b[0]]["pid"] == env.lxc(b[0])[1]
    log = env.log()
    assert log.index("%s: started" % a[0]) < log.index("%s: started" % b[0])
    # upstream line format
    assert "[pantavisor] " in log and "INFO\t -- [container]: " in log
    assert os.readlink(os.path.join(env.storage, "trails", "current")) == "0"
    assert os.path.exists(os.path.join(env.storage, "trails", "0", ".pv", "done"))
    assert os.path.exists(os.path.join(env.storage, "logs", "0", a[0], "lxc", "lxc.log"))
    assert env.mounts() and env.loops()
    assert oct(os.stat(env.sock).st_mode & 0o777) == "0o600"

    assert stop_engine(env, p) == 0
    for n in (a[0], b[0]):
        assert env.lxc(n)[0] != "RUNNING"
    assert env.mounts() == []
    assert wait_for(lambda: env.loops() == [], 5), env.loops()
    assert not os.path.exists(env.sock)


def test_auto_recovery_restarts_and_counts(env):
    c = env.container("cr", init=CRASHER, group="app", restart_policy="container",
                      auto_recovery={"policy": "always", "max_retries": 0,
                                     "retry_delay": 1})
    env.write_rev("0", c)
    p = env.start()
    first = wait_for(lambda: env.containers()[c[0]]["pid"])
    assert first
    assert wait_for(lambda: env.containers()[c[0]]["auto_recovery"]["current_retries"] >= 2,
                    20), env.log()
    assert "retry" in env.log()
    assert p.poll() is None  # recovery, not failure
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


def test_reset_window_gives_a_long_run_its_retries_back(env):
    """A container that ran longer than reset_window before it exited starts its count over:
    with max_retries 1 it is retried after each such exit, never exhausted; one that exits
    sooner uses its retry up."""
    longer = env.container("rl", init="#!/bin/sh\nsleep 3\nexit 1\n", group="app",
                           restart_policy="container",
                           auto_recovery={"policy": "always", "max_retries": 1,
                                          "retry_delay": 0, "reset_window": 2})
    shorter = env.container("rs", init=CRASHER, group="app", restart_policy="container",
                            auto_recovery={"policy": "always", "max_retries": 1,
                                           "retry_delay": 0, "reset_window": 2,
                                           "backoff_policy": "never"})
    env.write_rev("0", longer, shorter)
    p = env.start()
    assert wait_for(lambda: env.log().count("%s: ran " % longer[0]) >= 2, 30), env.log()
    log = env.log()
    assert "%s: exited; max_retries" % longer[0] not in log, log
    assert "%s: exited; max_retries 1 exhausted" % shorter[0] in log, log
    assert env.containers()[shorter[0]]["status"] == "STOPPED"
    assert stop_engine(env, p) == 0


def test_backoff_policy_never_and_a_duration(env):
    """After max_retries: `never` leaves the container STOPPED for good; a duration shows it
    RECOVERING for that long, then starts it again with a fresh retry count."""
    nv = env.container("bn", init=CRASHER, group="app", restart_policy="container",
                       auto_recovery={"policy": "on-failure", "max_retries": 1,
                                      "retry_delay": 0, "backoff_policy": "never"})
    du = env.container("bd", init=CRASHER, group="app", restart_policy="container",
                       auto_recovery={"policy": "on-failure", "max_retries": 1,
                                      "retry_delay": 0, "backoff_policy": "3s"})
    env.write_rev("0", nv, du)
    p = env.start()
    assert wait_for(lambda: "%s: exited; max_retries 1 exhausted (backoff never)" % nv[0]
                    in env.log(), 30), env.log()
    assert wait_for(lambda: "%s: exited; max_retries 1 exhausted (backoff 3s)" % du[0]
                    in env.log(), 30), env.log()
    assert env.containers()[du[0]]["status"] == "RECOVERING", env.containers()[du[0]]
    assert wait_for(lambda: "%s: backoff of 3 s over" % du[0] in env.log(), 10), env.log()
    # started over: it crashes and exhausts its retries again, and waits again
    assert wait_for(lambda: env.log().count("%s: exited; max_retries 1 exhausted" % du[0]) >= 2,
                    30), env.log()
    st = env.containers()[nv[0]]
    assert st["status"] == "STOPPED" and env.lxc(nv[0])[0] != "RUNNING", st
    assert env.log().count("%s: exited; max_retries" % nv[0]) == 1, env.log()
    assert p.poll() is None  # never a reboot for restart_policy container
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


def test_system_container_failing_without_recovery_asks_for_reboot(env):
    c = env.container("sy", init=CRASHER, group="app", restart_policy="system",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c)
    # without init (no fd 3) the engine exits with PV_ENGINE_EXIT_REBOOT (10)
    p = env.start()
    assert p.wait(30) == 10, env.log()
    assert "restart_policy system" in env.log()
    assert env.mounts() == []


def test_system_failure_uses_initctl_when_present(env):
    c = env.container("ic", init=CRASHER, group="app", restart_policy="system",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    p = env.start(fd3=theirs.fileno())
    theirs.close()
    ours.settimeout(30)
    req = ours.recv(64)
    assert len(req) == 36, (req, open(os.path.join(env.root, "engine-0.err")).read())
    op, name = struct.unpack("<I32s", req[:36])
    assert op == 1  # PV_INITCTL_REBOOT
    ours.send(struct.pack("<iI", 0, 0) + b"\0" * (8 * 40))
    # init then stops the engine with SIGTERM as part of the ordered shutdown
    time.sleep(0.5)
    assert p.poll() is None
    assert stop_engine(env, p) == 0
    ours.close()


def test_kill9_engine_readopts_running_containers(env):
    c = env.container("ka", group="app", restart_policy="container",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c)
    p = env.start()
    assert wait_for(lambda: env.lxc(c[0])[0] == "RUNNING")
    pid = env.lxc(c[0])[1]
    p.kill()
    p.wait()
    assert env.lxc(c[0]) == ("RUNNING", pid)
    os.unlink(env.sock)
    p2 = env.start()
    assert wait_for(lambda: env.containers()[c[0]]["pid"] == pid)
    assert env.lxc(c[0]) == ("RUNNING", pid)
    assert "re-adopted" in env.log()
    # the re-adopted container is still watched: its exit is seen at once
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: env.containers()[c[0]]["status"] == "STOPPED", 10)
    assert stop_engine(env, p2) == 0
    assert env.mounts() == []


def test_invalid_factory_revision_starts_nothing_and_still_answers(env):
    c = env.container("bad", group="app", status_goal="FOO")
    env.write_rev("0", c)
    p = env.start()
    # "is invalid" and its detail lines are separate writes: wait for the detail
    assert wait_for(lambda: "status_goal" in env.log() and "FOO" in env.log(), 10), env.log()
    assert p.poll() is None
    assert env.containers() == {}
    assert env.lxc(c[0])[0] != "RUNNING"
    assert stop_engine(env, p) == 0


def test_invalid_try_revision_falls_back_to_committed(env):
    good = env.container("gd", group="app", restart_policy="container")
    env.write_rev("0", good)
    bad = env.container("bd", group="app", status_goal="NOPE")
    env.write_rev("1", good, bad)
    p = env.start(cmdline="pv_rev=0 pv_try=1")
    assert wait_for(lambda: env.lxc(good[0])[0] == "RUNNING"), env.log("1") + env.log("0")
    assert "falling back to revision 0" in env.log("1")
    assert os.readlink(os.path.join(env.storage, "trails", "current")) == "0"
    assert stop_engine(env, p) == 0


def test_missing_object_is_named_and_nothing_starts(env):
    c = env.container("mo", group="app")
    env.write_rev("0", c)
    sha = c[1][c[0] + "/root.squashfs"]
    os.unlink(os.path.join(env.storage, "objects", sha))
    os.unlink(os.path.join(env.storage, "trails", "0", c[0], "root.squashfs"))
    p = env.start()
    assert wait_for(lambda: ("%s/root.squashfs" % c[0]) in env.log() and sha in env.log(), 10), \
        env.log()
    assert env.lxc(c[0])[0] != "RUNNING"
    assert stop_engine(env, p) == 0


def test_corrupt_squashfs_names_container_and_file(env):
    bad = env.container("cs", group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    good = env.container("ok", group="app", restart_policy="container")
    junk = os.path.join(env.root, "junk.squashfs")
    with open(junk, "wb") as f:
        f.write(b"not a squashfs" * 100)
    bad[1][bad[0] + "/root.squashfs"] = env.add_object(junk)
    env.write_rev("0", bad, good)
    p = env.start()
    assert wait_for(lambda: env.lxc(good[0])[0] == "RUNNING"), env.log()
    assert wait_for(lambda: ("container %s: mount" % bad[0]) in env.log(), 10)
    assert "root.squashfs" in env.log()
    assert env.containers()[bad[0]]["status"] == "STOPPED"
    assert p.poll() is None
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


def test_ready_goal_blocks_next_group_until_signalled(env):
    r = env.container("rd", group="platform", status_goal="READY", restart_policy="container")
    s = env.container("nx", group="app", restart_policy="container")
    env.write_rev("0", r, s)
    p = env.start()
    assert wait_for(lambda: env.lxc(r[0])[0] == "RUNNING")
    assert wait_for(lambda: env.containers()[s[0]]["status"] == "BLOCKED", 5)
    time.sleep(1)
    assert env.lxc(s[0])[0] != "RUNNING"
    groups = lambda: {g["name"]: g for g in env.request("groups-list")["body"]}
    assert wait_for(lambda: groups()["platform"]["status"] == "STARTED", 10), groups()
    bad = env.request("signal", {"container": s[0], "type": "ready"})
    assert bad["status"] == 400  # its goal is STARTED, not READY
    ok = env.request("signal", {"container": r[0], "type": "ready"})
    assert ok["status"] == 200, ok
    assert wait_for(lambda: env.containers()[r[0]]["status"] == "READY", 5)
    assert wait_for(lambda: env.lxc(s[0])[0] == "RUNNING", 10), env.log()
    assert env.request("no-such-op")["status"] in (400, 404)
    assert env.request("objects-list")["status"] == 200
    assert stop_engine(env, p) == 0


def test_graph_pushed_on_subscribe_and_on_every_pid_change(env):
    prov = env.container("pv", group="app", restart_policy="container")
    prov[1][prov[0] + "/services.json"] = {
        "#spec": "service-manifest-xconnect@1",
        "services": [{"name": "echo", "type": "unix", "socket": "/run/echo.sock"}]}
    cons = env.container("cn", group="app", restart_policy="container",
                         services={"required": [{"name": "echo", "type": "unix"}]},
                         auto_recovery={"policy": "always", "retry_delay": 1})
    env.write_rev("0", prov, cons)
    p = env.start()
    assert wait_for(lambda: all(env.containers()[n]["status"] == "STARTED"
                                for n in (cons[0], prov[0])), 20), env.log()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(env.sock)
    s.sendall(frame({"op": "subscribe-graph", "id": 1}))
    msgs = [read_msg(s), read_msg(s)]
    rep = [m for m in msgs if m.get("id") == 1][0]
    ev = [m for m in msgs if m.get("op") == "graph"][0]
    assert rep["status"] == 200
    (link,) = ev["links"]
    pid = env.lxc(cons[0])[1]
    assert link["consumer"] == cons[0] and link["provider"] == prov[0]
    assert link["consumer_pid"] == pid and link["provider_pid"] == env.lxc(prov[0])[1]
    gen = ev["generation"]
    os.kill(pid, signal.SIGKILL)
    down = read_msg(s)
    assert down["op"] == "graph" and down["generation"] == gen + 1
    assert down["links"][0]["consumer_pid"] in (0, -1)
    up = read_msg(s)
    assert up["generation"] == gen + 2
    assert up["links"][0]["consumer_pid"] == env.lxc(cons[0])[1] != pid
    s.close()
    assert stop_engine(env, p) == 0


WRITER = """#!/bin/sh
trap 'exit 0' TERM
echo run >> /perm/count
echo run >> /rev/count
echo run >> /boot/count
while true; do sleep 1; done
"""


def test_storage_volumes_follow_their_persistence(env):
    name = env.tag + "vo"
    conf = LXC_CONF + "".join(
        "lxc.mount.entry = %s/%s/%s %s none bind,create=dir 0 0\n" % (env.voldir, name, v, v)
        for v in ("perm", "rev", "boot"))
    c = env.container("vo", init=WRITER, group="app", restart_policy="container",
                      storage={"lxc-overlay": {"persistence": "boot"},
                               "perm": {"persistence": "permanent"},
                               "rev": {"persistence": "revision"},
                               "boot": {"persistence": "boot"}})
    cpath = os.path.join(env.root, "vo.conf")
    with open(cpath, "w") as f:
        f.write(conf)
    c[1][name + "/lxc.container.conf"] = env.add_object(cpath)
    env.write_rev("0", c)
    perm = os.path.join(env.storage, "disks", "perm", name, "perm", "count")
    rev = os.path.join(env.storage, "disks", "rev", "0", name, "rev", "count")
    boot = os.path.join(env.voldir, name, "boot", "count")

    def count(path):
        try:
            with open(path) as f:
                return f.read().count("run")
        except FileNotFoundError:
            return 0

    for run in (1, 2):
        p = env.start()
        # the writer appends to perm, rev, then boot: wait for its last write, not its first
        assert wait_for(lambda: count(perm) == run and count(boot) == 1, 10), env.log()
        assert open(boot).read() == "run\n"  # a fresh tmpfs every boot
        assert open(rev).read().count("run") == run
        assert stop_engine(env, p) == 0
        assert env.mounts() == []


def test_boot_revision_from_uboot_txt(env):
    a = env.container("u0", group="app", restart_policy="container")
    b = env.container("u1", group="app", restart_policy="container")
    env.write_rev("0", a)
    env.write_rev("1", b)
    os.makedirs(os.path.join(env.storage, "boot"))
    with open(os.path.join(env.storage, "boot", "uboot.txt"), "wb") as f:
        f.write(b"pv_rev=1\0pv_try=\0")
    p = env.start()
    assert wait_for(lambda: env.lxc(b[0])[0] == "RUNNING"), env.log("1")
    assert env.lxc(a[0])[0] != "RUNNING"
    assert os.readlink(os.path.join(env.storage, "trails", "current")) == "1"
    assert os.readlink(os.path.join(env.storage, "logs", "current")) == "1"
    assert stop_engine(env, p) == 0


def test_pantavisor_log_rotates_by_size(env):
    c = env.container("lr", init=CRASHER, group="app", restart_policy="container",
                      auto_recovery={"policy": "always", "retry_delay": 0})
    env.write_rev("0", c)
    # budget 20 KiB => rotation at 20K/4/5 = 1 KiB
    p = env.start(PV_LOG_DIR_MAXSIZE="20K")
    base = os.path.join(env.storage, "logs", "0", "pantavisor", "pantavisor.log")
    assert wait_for(lambda: os.path.exists(base + ".2"), 60)
    assert stop_engine(env, p) == 0
    assert not os.path.exists(base + ".3")
    for f in (base, base + ".1", base + ".2"):
        assert os.path.getsize(f) < 1024 + 2400  # one line past the threshold at most


def test_init_that_cannot_exec_is_named_and_others_keep_running(env):
    name = env.tag + "nx"
    cpath = os.path.join(env.root, "nx.conf")
    with open(cpath, "w") as f:
        f.write(LXC_CONF.replace("lxc.init.cmd = /init", "lxc.init.cmd = /no/such/init"))
    bad = env.container("nx", group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    bad[1][name + "/lxc.container.conf"] = env.add_object(cpath)
    good = env.container("gk", group="app", restart_policy="container")
    env.write_rev("0", bad, good)
    p = env.start()
    assert wait_for(lambda: env.lxc(good[0])[0] == "RUNNING"), env.log()
    assert wait_for(lambda: env.containers()[name]["status"] == "STOPPED", 10), env.log()
    lines = [l for l in env.log().splitlines() if name in l and "ERROR" in l]
    assert any("/no/such/init" in l for l in lines), lines
    assert p.poll() is None and env.lxc(good[0])[0] == "RUNNING"
    assert stop_engine(env, p) == 0


def test_group_timeout_unblocks_the_next_group(env):
    groups = [{"name": "first", "status_goal": "READY", "restart_policy": "container",
               "timeout": 2},
              {"name": "second", "status_goal": "STARTED", "restart_policy": "container",
               "timeout": 30}]
    r = env.container("t1", group="first", auto_recovery={"policy": "no"})
    s = env.container("t2", group="second", auto_recovery={"policy": "no"})
    env.write_rev("0", r, s, extra={"groups.json": groups})
    t0 = time.time()  # before the engine: "first"'s timeout counts from a later start
    p = env.start()
    seen = set()

    def second_running():
        seen.add(env.containers()[s[0]]["status"])
        return env.lxc(s[0])[0] == "RUNNING"
    # never signalled READY: the 2 s timeout (counted from its start) unblocks "second"
    assert wait_for(second_running, 15, 0.05), env.log()
    assert "BLOCKED" in seen, seen
    assert 2.0 <= time.time() - t0 <= 15.0
    assert env.lxc(r[0])[0] == "RUNNING"
    assert env.containers()[r[0]]["status"] == "STARTED"
    assert stop_engine(env, p) == 0


def test_socket_answers_while_many_containers_start(env):
    cs = [env.container("m%d" % i, group="app", restart_policy="container",
                        auto_recovery={"policy": "no"}) for i in range(12)]
    env.write_rev("0", *cs)
    p = env.start()
    worst = 0.0
    seen_starting = False
    end = time.time() + 30
    while time.time() < end:
        t0 = time.time()
        lst = env.containers()
        worst = max(worst, time.time() - t0)
        states = [c["status"] for c in lst.values()]
        seen_starting |= "STARTING" in states
        if len(lst) == 12 and all(s == "STARTED" for s in states):
            break
    assert all(env.lxc(n)[0] == "RUNNING" for n, _ in cs)
    # the loop never waits for liblxc (a synchronous start of 12 took > 1.2 s here)
    assert worst < 1.0, worst
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


STUBBORN = "#!/bin/sh\ntrap '' TERM PWR INT\nwhile true; do sleep 1; done\n"


def test_stop_kills_after_grace_when_init_ignores_signals(env):
    c = env.container("sb", init=STUBBORN, group="app", restart_policy="container",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c)
    p = env.start()
    assert wait_for(lambda: env.lxc(c[0])[0] == "RUNNING")
    t0 = time.time()
    assert stop_engine(env, p) == 0
    took = time.time() - t0
    assert 4.5 <= took <= 12, took  # 5 s lenient grace, then SIGKILL
    assert "killing" in env.log()
    assert env.lxc(c[0])[0] != "RUNNING"
    assert env.mounts() == []


@pytest.mark.parametrize("damage", ["corrupt", "copy", "json"])
def test_damaged_storage_is_named_and_nothing_starts(env, damage):
    c = env.container("dm", group="app")
    env.write_rev("0", c)
    trail = os.path.join(env.storage, "trails", "0", c[0])
    if damage == "corrupt":  # same inode, other bytes: only the sha256 check sees it
        with open(os.path.join(trail, "lxc.container.conf"), "a") as f:
            f.write("# tampered\n")
        want = "bad checksum"
    elif damage == "copy":  # right bytes, but not the object's inode
        path = os.path.join(trail, "lxc.container.conf")
        data = open(path, "rb").read()
        os.unlink(path)
        with open(path, "wb") as f:
            f.write(data)
        want = "not a hard link"
    else:  # a json file that differs from its text in .pvr/json
        with open(os.path.join(trail, "run.json"), "w") as f:
            f.write('{"name": "other"}')
        want = "differs"
    p = env.start()
    assert wait_for(lambda: want in env.log(), 10), env.log()
    lines = [l for l in env.log().splitlines() if want in l]
    assert lines and c[0] in lines[0], env.log()
    assert env.containers() == {}
    assert env.lxc(c[0])[0] != "RUNNING"
    assert stop_engine(env, p) == 0


def test_checksum_off_skips_only_the_hash(env):
    c = env.container("ck", group="app", restart_policy="container",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c)
    with open(os.path.join(env.storage, "trails", "0", c[0], "lxc.container.conf"), "a") as f:
        f.write("# tampered\n")
    p = env.start(PV_SECUREBOOT_CHECKSUM="0")
    assert wait_for(lambda: env.lxc(c[0])[0] == "RUNNING"), env.log()
    assert stop_engine(env, p) == 0


def test_config_overlay_is_the_top_lower_layer(env):
    c = env.container("cf", group="app", restart_policy="container",
                      auto_recovery={"policy": "no"})
    motd = os.path.join(env.root, "motd")
    with open(motd, "w") as f:
        f.write("from _config\n")
    env.write_rev("0", c, extra={"_config/%s/etc/motd" % c[0]: env.add_object(motd)})
    p = env.start()
    assert wait_for(lambda: env.lxc(c[0])[0] == "RUNNING"), env.log()
    pid = env.lxc(c[0])[1]
    assert open("/proc/%d/root/etc/motd" % pid).read() == "from _config\n"
    assert os.path.exists(os.path.join(env.confdir, c[0], "etc", "motd"))
    assert stop_engine(env, p) == 0
    assert not os.path.exists(os.path.join(env.confdir, c[0]))


def test_pantavisor_binds_follow_the_role(env):
    m = env.container("mg", group="app", restart_policy="container", roles=["mgmt"],
                      auto_recovery={"policy": "no"})
    n = env.container("nb", group="platform", restart_policy="container",
                      auto_recovery={"policy": "no"})
    with open(os.path.join(env.rundir, "marker"), "w") as f:
        f.write("rundir\n")
    env.write_rev("0", m, n)
    p = env.start()
    for c in (m, n):
        assert wait_for(lambda c=c: env.lxc(c[0])[0] == "RUNNING"), env.log()
    mroot = "/proc/%d/root" % env.lxc(m[0])[1]
    nroot = "/proc/%d/root" % env.lxc(n[0])[1]
    assert open(mroot + "/pantavisor/marker").read() == "rundir\n"  # mgmt: the run dir, ro
    assert not os.path.exists(nroot + "/pantavisor/marker")
    assert os.path.isdir(nroot + "/pantavisor/logs")  # others: their own logs only
    assert env.containers()[m[0]]["roles"] == ["mgmt"]
    assert env.containers()[n[0]]["roles"] == []
    # container=pv-<group> is requested with lxc.environment, but stock liblxc 5.0.2 sets
    # container=lxc after applying it (upstream ships a patched liblxc): not asserted here.
    assert stop_engine(env, p) == 0


def test_container_action_stop_start_restart(env):
    c = env.container("ac", group="app", restart_policy="container",
                      auto_recovery={"policy": "always", "retry_delay": 0})
    s = env.container("as", group="app", restart_policy="system",
                      auto_recovery={"policy": "no"})
    env.write_rev("0", c, s)
    p = env.start()
    assert wait_for(lambda: env.lxc(c[0])[0] == "RUNNING" and env.lxc(s[0])[0] == "RUNNING")
    pid = env.lxc(c[0])[1]

    def act(name, action):
        return env.request("container-action", {"name": name, "action": action})["status"]

    assert act(s[0], "stop") == 403  # restart_policy system is not the API's
    assert act("nosuch", "stop") == 404
    assert act(c[0], "explode") == 400
    # upstream's order: unknown name (404), then the policy (403), then the action (400)
    assert act("nosuch", "explode") == 404
    assert act(s[0], "explode") == 403
    assert act(c[0], "stop") == 200
    # a stop is not a crash: no auto-recovery, user_stopped set, the engine keeps running
    assert wait_for(lambda: env.containers()[c[0]]["status"] == "STOPPED", 10)
    time.sleep(0.5)
    st = env.containers()[c[0]]
    assert st["user_stopped"] is True and st["auto_recovery"]["current_retries"] == 0
    assert env.lxc(c[0])[0] != "RUNNING" and p.poll() is None
    assert act(c[0], "start") == 200
    assert wait_for(lambda: env.containers()[c[0]]["status"] == "STARTED", 10)
    pid2 = env.lxc(c[0])[1]
    assert pid2 and pid2 != pid and env.containers()[c[0]]["user_stopped"] is False
    assert act(c[0], "restart") == 200
    assert wait_for(lambda: env.lxc(c[0])[1] not in (0, pid2) and
                    env.containers()[c[0]]["status"] == "STARTED", 15), env.log()
    assert env.lxc(s[0])[0] == "RUNNING"
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


def test_api_start_while_stopping_restarts_and_stop_before_start_holds(env):
    """A start sent while an API stop is still waiting for the container to go (its init
    ignores SIGTERM) starts it again once gone (it used to be dropped: left STOPPED); a stop
    of a container not started yet (BLOCKED by an earlier group) keeps it from starting, even
    after that group's timeout, until it is started; no volume stays mounted while stopped."""
    groups = [{"name": "first", "status_goal": "READY", "restart_policy": "container",
               "timeout": 2},
              {"name": "second", "status_goal": "STARTED", "restart_policy": "container",
               "timeout": 30}]
    sb = env.container("as", init=STUBBORN, group="first", restart_policy="container",
                       auto_recovery={"policy": "no"})
    bl = env.container("ab", group="second", restart_policy="container",
                       auto_recovery={"policy": "no"})
    env.write_rev("0", sb, bl, extra={"groups.json": groups})
    p = env.start()

    def act(name, action):
        return env.request("container-action", {"name": name, "action": action})["status"]

    def status(name):
        return env.containers()[name]["status"]
    assert wait_for(lambda: status(bl[0]) == "BLOCKED", 10), env.log()
    assert act(bl[0], "stop") == 200
    assert status(bl[0]) == "STOPPED" and env.containers()[bl[0]]["user_stopped"] is True
    assert wait_for(lambda: status(sb[0]) == "STARTED", 10), env.log()
    pid = env.lxc(sb[0])[1]
    time.sleep(3)  # past the first group's 2 s timeout: "second" would start now
    assert status(bl[0]) == "STOPPED" and env.lxc(bl[0])[0] != "RUNNING"
    assert not [m for m in env.mounts() if bl[0] in m], env.mounts()
    assert act(bl[0], "start") == 200
    assert wait_for(lambda: status(bl[0]) == "STARTED", 15), env.log()
    assert env.containers()[bl[0]]["user_stopped"] is False

    assert act(sb[0], "stop") == 200
    assert status(sb[0]) == "STOPPING"
    assert act(sb[0], "start") == 200  # the stop's 5 s grace is still running
    assert wait_for(lambda: env.lxc(sb[0])[1] not in (0, pid) and status(sb[0]) == "STARTED",
                    20), env.log()
    st = env.containers()[sb[0]]
    assert st["user_stopped"] is False and st["auto_recovery"]["current_retries"] == 0, st
    assert env.log().count("%s: still running after" % sb[0]) == 1, env.log()
    assert stop_engine(env, p) == 0
    assert env.mounts() == []


@pytest.mark.parametrize("key", ["PV_DISK_VOLDIR", "PV_SYSTEM_CONFDIR"])
def test_dir_that_liblxc_cannot_carry_is_named(env, key):
    # liblxc's rootfs "overlayfs:<lower>:<upper>" splits on ':'
    c = env.container("ok", group="app")
    env.write_rev("0", c)
    bad = os.path.join(env.root, "a:b")
    p = env.start(**{key: bad})
    assert p.wait(10) == 1
    with open(os.path.join(env.root, "engine-%d.err" % (len(env.procs) - 1))) as f:
        log = f.read()  # before any log file: the engine says it on stderr
    assert key in log and bad in log, log
    assert env.lxc(c[0])[0] != "RUNNING"


def test_usage_errors_exit_2():
    # under ASan+UBSan a leak on these paths would turn the status into LeakSanitizer's
    for args in (["--cmdline", "pv_rev=0"], ["--bogus"], ["--mode", "cloud", "--rundir", "/x",
                                                         "--storage", "/y"]):
        r = subprocess.run([ENGINE] + args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "usage" in r.stderr, (args, r.returncode, r.stderr)
