# pvtest.py: shared helpers for system tests: unique ids, a private device tree, cached busybox
# images, pvtx deploys, launching pantavisor/pv-appengine, polling, and a cleanup that always runs.
import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid

SRC = os.environ.get("PV_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("PV_BUILD", os.path.join(SRC, "build"))
BIN = os.environ.get("PV_BIN", os.path.join(BUILD, "bin"))
CACHE = os.path.join(BUILD, "pvtest-cache")

_live = []  # every Device not yet cleaned, for the atexit safety net


class EngineClient:
    """The engine's private protocol (4-byte big-endian length + JSON), one request at a time;
    replies to other ids (pushed events) are skipped."""

    def __init__(self, path, timeout=20):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.id = 0

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            assert c, "engine closed the connection"
            buf += c
        return buf

    def call(self, op_name, **args):
        self.id += 1
        msg = {"op": op_name, "id": self.id}
        if args:
            msg["args"] = args
        data = json.dumps(msg).encode()
        self.s.sendall(struct.pack(">I", len(data)) + data)
        while True:
            (n,) = struct.unpack(">I", self._recv(4))
            rep = json.loads(self._recv(n))
            if rep.get("id") == self.id:
                return rep

    def close(self):
        self.s.close()


def unique_id(prefix="t"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(cond, timeout=10.0, step=0.05):
    """Poll cond() until it returns a truthy value (returned) or timeout (returns the last value)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def daemon_pids(pattern):
    """Pids whose command line matches pattern (pgrep -f), without their own forks: the engine
    forks helpers (container start, mounts) that carry its command line for a while."""
    out = run(["pgrep", "-f", pattern], check=False).stdout
    pids = [int(x) for x in out.split()]
    return [p for p in pids if ppid_of(p) not in pids]


def one_daemon_pid(pattern, timeout=10.0):
    """The one pid of a daemon matching pattern once its helper forks are gone (fails if not)."""
    pids = wait_until(lambda: (lambda l: l if len(l) == 1 else None)(daemon_pids(pattern)),
                      timeout)
    assert pids, "not exactly one process matches %r: %s" % (pattern, daemon_pids(pattern))
    return pids[0]


def bin_path(name):
    return os.path.join(BIN, name)


def run(args, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    r = subprocess.run(args, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (args, r.returncode, r.stdout, r.stderr))
    return r


def build_image(name, **opts):
    """Build (or reuse from the cache) a pv-mkimage container dir; returns its path.

    opts map to pv-mkimage options: init, copy (list of "SRC:DEST"), bin (list), services,
    run_json_extra (dict), group, roles, restart_policy, status_goal. The cache key is a hash of
    the options, the contents of every input file and the two scripts, so edits rebuild."""
    args = ["--name", name]
    h = hashlib.sha256()
    for script in ("pv-mkimage", "pv-mkexport"):
        with open(bin_path(script), "rb") as f:
            h.update(f.read())
    for key in sorted(opts):
        val = opts[key]
        if val is None:
            continue
        flag = "--" + key.replace("_", "-")
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            if isinstance(v, dict):
                v = json.dumps(v, sort_keys=True)
            args += [flag, str(v)]
            h.update(("%s=%s\0" % (flag, v)).encode())
            path = v.split(":", 1)[0] if key == "copy" else v
            if key in ("copy", "bin", "services") and os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    out = os.path.join(CACHE, "img-%s-%s" % (name, h.hexdigest()[:16]))
    if not os.path.exists(os.path.join(out, "done")):
        tmp = out + ".tmp-%d" % os.getpid()
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(CACHE, exist_ok=True)
        run([bin_path("pv-mkimage"), "--out", tmp] + args)
        shutil.rmtree(os.path.join(tmp, "rootfs"))  # keep only what goes into the export
        open(os.path.join(tmp, "done"), "w").close()
        try:
            os.rename(tmp, out)
        except OSError:  # a concurrent run won the race; its result is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_export(name, **opts):
    """A cached pvrexport tarball of a pv-mkimage container; returns its path."""
    img = build_image(name, **opts)
    tgz = os.path.join(img, "%s.pvrexport.tgz" % name)
    if not os.path.exists(tgz):
        src = tempfile.mkdtemp(prefix="pvtest-exp-")
        try:
            for f in os.listdir(img):
                if f not in ("done",) and not f.endswith(".tgz"):
                    os.link(os.path.join(img, f), os.path.join(src, f))
            run([bin_path("pv-mkexport"), name, src, tgz + ".tmp"])
            os.rename(tgz + ".tmp", tgz)
        finally:
            shutil.rmtree(src, ignore_errors=True)
    return tgz


def mounts_under(prefix):
    """Mount points at or below prefix, deepest first (from /proc/self/mountinfo)."""
    prefix = os.path.realpath(prefix)
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == prefix or mp.startswith(prefix + "/"):
                res.append(mp)
    return sorted(res, key=lambda m: m.count("/"), reverse=True)


def loops_under(prefix):
    """Loop devices whose backing file lies under prefix."""
    prefix = os.path.realpath(prefix)
    res = []
    base = "/sys/block"
    for d in os.listdir(base) if os.path.isdir(base) else []:
        if not d.startswith("loop"):
            continue
        try:
            with open(os.path.join(base, d, "loop", "backing_file")) as f:
                back = f.read().strip()
        except OSError:
            continue
        back = back.replace(" (deleted)", "")
        if back.startswith(prefix + "/"):
            res.append("/dev/" + d)
    return res


def lxc_list(lxcpath):
    """Names of containers LXC knows under lxcpath (running or defined)."""
    if not os.path.isdir(lxcpath):
        return []
    r = run(["lxc-ls", "-P", lxcpath, "-1"], check=False)
    return [n for n in r.stdout.split() if n]


def lxc_running(lxcpath):
    r = run(["lxc-ls", "-P", lxcpath, "-1", "--running"], check=False) if os.path.isdir(lxcpath) else None
    return [n for n in r.stdout.split()] if r else []


def lxc_state(lxcpath, name):
    r = run(["lxc-info", "-P", lxcpath, "-n", name, "-s", "-H"], check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def procs_with_env(key, value):
    """Pids of processes whose environment holds key=value (how a test tags what it starts)."""
    needle = ("%s=%s" % (key, value)).encode()
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(p))
        except OSError:
            pass
    return pids


class Device:
    """A private device tree under /tmp/pvtest-<id>: storage, rundir, lxcpath, logdir, libexec.

    Every process started through start() carries PVTEST_ID=<id> in its environment and its own
    process group, so cleanup() finds and kills it even when the test failed half-way."""

    def __init__(self, tag="t"):
        self.id = unique_id(tag)
        self.root = os.path.join(tempfile.gettempdir(), "pvtest-" + self.id)
        self.storage = os.path.join(self.root, "storage")
        self.rundir = os.path.join(self.root, "run")
        self.lxcpath = os.path.join(self.root, "lxc")
        self.logdir = os.path.join(self.root, "log")
        self.libexec = os.path.join(self.root, "libexec")
        for d in (self.storage, self.rundir, self.lxcpath, self.logdir, self.libexec):
            os.makedirs(d)
        self.procs = []
        self.cleaned = False
        _live.append(self)

    def path(self, *p):
        return os.path.join(self.root, *p)

    def env(self, **extra):
        e = dict(os.environ)
        # the engine reads these from its environment: keep every path inside the device tree
        e.update({"PVTEST_ID": self.id, "PV_LXC_PATH": self.lxcpath, "PVTXDIR": self.path("pvtx"),
                  "PV_DISK_VOLDIR": self.path("volumes"), "PV_SYSTEM_CONFDIR": self.path("configs"),
                  "PV_ENGINE_SOCKET": self.path("engine.sock"), "PV_LIBEXEC_DIR": BIN,
                  "PATH": BIN + ":" + e.get("PATH", "/usr/bin:/bin")})
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def start(self, args, env=None, log=None, **kw):
        """Start a process in its own group; stdout+stderr go to log (default logdir/<n>.log)."""
        log = log or os.path.join(self.logdir, "%s-%d.log" % (os.path.basename(args[0]), len(self.procs)))
        f = open(log, "ab")
        p = subprocess.Popen(args, env=env or self.env(), stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        f.close()
        p.logfile = log
        self.procs.append(p)
        return p

    def pvtx(self, *args, check=True):
        return run([bin_path("pvtx")] + list(args), check=check, env=self.env())

    def deploy(self, parts, rev="0"):
        """Deploy pvrexports / state json files as revision rev with pvtx (local object dir)."""
        objdir = os.path.join(self.storage, "objects")
        os.makedirs(objdir, exist_ok=True)
        self.pvtx("abort", check=False)
        self.pvtx("begin", "empty", objdir)
        for p in parts:
            self.pvtx("add", p)
        trail = os.path.join(self.storage, "trails", rev)
        os.makedirs(os.path.dirname(trail), exist_ok=True)
        self.pvtx("deploy", trail)
        return trail

    def start_appengine(self, *extra, pvtxd=None, env=None):
        args = [bin_path("pv-appengine"), "-d", "0", "--storage", self.storage, "--rundir",
                self.rundir, "--config", self.path("pantavisor.config")]
        if pvtxd:
            args += ["--pvtx-dir", pvtxd]
        return self.start(args + list(extra), env=env)

    def _kill_tagged(self, sig):
        pids = set(procs_with_env("PVTEST_ID", self.id))
        for p in self.procs:
            if p.poll() is None:
                pids.add(p.pid)
                try:
                    os.killpg(p.pid, sig)
                except OSError:
                    pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        return pids

    def cleanup(self):
        """Kill, stop, unmount, detach, remove. Safe to call twice; never raises."""
        if self.cleaned:
            return
        self.cleaned = True
        try:
            if self._kill_tagged(signal.SIGTERM):
                wait_until(lambda: not procs_with_env("PVTEST_ID", self.id), 3)
            self._kill_tagged(signal.SIGKILL)
            for p in self.procs:
                try:
                    p.wait(timeout=5)
                except Exception:
                    pass
            for name in lxc_list(self.lxcpath):
                run(["lxc-stop", "-k", "-P", self.lxcpath, "-n", name], check=False)
            for _ in range(3):
                mps = mounts_under(self.root)
                if not mps:
                    break
                for mp in mps:
                    if run(["umount", mp], check=False).returncode != 0:
                        run(["umount", "-l", mp], check=False)
            for dev in loops_under(self.root):
                run(["losetup", "-d", dev], check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self in _live:
                _live.remove(self)

    def leftovers(self):
        """What this device left behind: mounts, loop devices, running containers, processes."""
        return {
            "mounts": mounts_under(self.root),
            "loops": loops_under(self.root),
            "containers": lxc_running(self.lxcpath),
            "procs": procs_with_env("PVTEST_ID", self.id),
        }

    def assert_clean(self, settle=10.0):
        """Nothing of this device is left. Loop devices use LO_FLAGS_AUTOCLEAR, which the kernel
        honours asynchronously after the last unmount, so allow `settle` seconds for that; a
        real leak still fails."""
        deadline = time.monotonic() + settle
        while True:
            left = {k: v for k, v in self.leftovers().items() if v}
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not left, "left behind by %s: %s" % (self.id, left)


@atexit.register
def _cleanup_all():
    for d in list(_live):
        d.cleanup()


def read_log(proc):
    try:
        with open(proc.logfile, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def stop(proc, sig=signal.SIGTERM, timeout=20):
    """Signal a started process and return its exit status (None if it did not exit in time)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except OSError:
            pass
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
