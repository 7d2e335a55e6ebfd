# update_env.py: shared fixtures for the atomic-update system tests and the update benchmark: a
# pv-appengine device with an N-container factory revision, a builder of new revisions and a
# client of the local update flow (objects, steps, LOCAL_RUN, progress timeline) over pv-ctrl.
import hashlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import tarfile
import time

import pytest

import pvtest

FINAL = ("UPDATED", "DONE", "WONTGO", "ERROR")
FAILED = ("WONTGO", "ERROR")
PROGRESS_OF = {"NEW": 0, "INPROGRESS": 50, "TESTING": 75, "UPDATED": 100, "DONE": 100,
               "WONTGO": 100, "ERROR": 100}
MSG_HOT = "Transitioning to new revision without rebooting"
MSG_REBOOT = "Rebooting"
MSG_TRYING = "Trying new revision"
MSG_TEST_HOT = "Awaiting to see if update is stable"
MSG_TEST_REBOOT = "Awaiting to set rollback point if update is stable"
MSG_UPDATED = "Update finished, revision not set as rollback point"
MSG_DONE = "Update finished, revision set as rollback point"
MSG_READY = "Update ready to be run"

# the 12 crash points of the update sequence (docs/updates.md, brief u1 §6)
CRASH_POINTS = ["step-stored", "run-start", "install-objects", "install-done", "try-set",
                "inprogress", "hot-stopped", "hot-switched", "testing", "commit-env", "done",
                "rollback"]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def base_image():
    """The one busybox image every test container runs (cached by pvtest): its root.squashfs is
    shared, its lxc.container.conf is the base each container's conf is derived from."""
    return pvtest.build_image("pvupd")


def canon(v):
    # one serialization for the whole state and for each value: raw spans stay byte-identical
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


class Ctr:
    """What a container of a revision looks like: its marker (PVU_MARK in the init's
    environment, so a test can tell which revision's config runs) and its run.json knobs."""

    def __init__(self, name, mark="r0", policy="container", group=None, init=None,
                 status_goal=None, run_extra=None):
        self.name, self.mark, self.policy = name, mark, policy
        self.group = group or ("platform" if policy == "system" else "app")
        self.init, self.status_goal, self.run_extra = init, status_goal, run_extra or {}

    def copy(self, **kw):
        c = Ctr(self.name, self.mark, self.policy, self.group, self.init, self.status_goal,
                dict(self.run_extra))
        for k, v in kw.items():
            setattr(c, k, v)
        if "policy" in kw and "group" not in kw:
            c.group = "platform" if c.policy == "system" else "app"
        return c


class Revision:
    """A state (key -> value) plus the bytes of every object it names."""

    def __init__(self, ctrs, files=None, groups_timeout=8):
        self.ctrs = {c.name: c for c in ctrs}
        self.files = dict(files or {})  # root-level object files: key -> bytes
        self.groups_timeout = groups_timeout

    def copy(self):
        r = Revision([c.copy() for c in self.ctrs.values()], self.files, self.groups_timeout)
        return r

    def build(self):
        """(state dict, {sha: bytes}) of this revision."""
        img = base_image()
        with open(os.path.join(img, "lxc.container.conf")) as f:
            base_conf = f.read()
        root_sha, root_data = self._root(img)
        state = {"#spec": "pantavisor-service-system@1"}
        objects = {root_sha: root_data}
        # device.json with explicit groups: short goal timeouts and no auto-recovery (the
        # default app group's stable_timeout would hold every commit 30 s)
        state["device.json"] = {"groups": [
            {"name": "platform", "restart_policy": "system", "status_goal": "STARTED",
             "timeout": self.groups_timeout},
            {"name": "app", "restart_policy": "container", "status_goal": "STARTED",
             "timeout": self.groups_timeout}]}
        for c in self.ctrs.values():
            conf = base_conf
            if c.init:
                conf = re.sub(r"^lxc\.init\.cmd = .*$", "lxc.init.cmd = %s" % c.init, conf,
                              flags=re.M)
            conf += "lxc.environment = PVU_MARK=%s\n" % c.mark
            data = conf.encode()
            objects[sha256(data)] = data
            state["%s/lxc.container.conf" % c.name] = sha256(data)
            state["%s/root.squashfs" % c.name] = root_sha
            run = {"#spec": "service-manifest-run@1", "name": c.name, "type": "lxc",
                   "config": "lxc.container.conf", "root-volume": "root.squashfs",
                   "volumes": [], "storage": {"lxc-overlay": {"persistence": "boot"}},
                   "group": c.group, "restart_policy": c.policy,
                   "auto_recovery": {"policy": "no"}}
            if c.status_goal:
                run["status_goal"] = c.status_goal
            run.update(c.run_extra)
            state["%s/run.json" % c.name] = run
        for k, data in self.files.items():
            objects[sha256(data)] = data
            state[k] = sha256(data)
        return state, objects

    _root_cache = {}

    @classmethod
    def _root(cls, img):
        p = os.path.join(img, "root.squashfs")
        if p not in cls._root_cache:
            with open(p, "rb") as f:
                data = f.read()
            cls._root_cache[p] = (sha256(data), data)
        return cls._root_cache[p]

    def text(self):
        state, _ = self.build()
        return canon(state)


class HTTPUnix(http.client.HTTPConnection):
    def __init__(self, path, timeout=15):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class UpdateDevice:
    """A pv-appengine device (pvtest.Device) whose factory revision 0 is `rev0`.

    config: extra lines of the pantavisor config file; env: extra environment of pv-appengine
    (reaches init and every daemon, e.g. PV_TEST_CRASH_AT)."""

    def __init__(self, device, n=3, commit_delay=2, goals_timeout=8, config=None, env=None,
                 policies=None, crash_once=False):
        self.dev = device
        self.crash_once = crash_once
        self.prefix = "u" + device.id[-6:]
        policies = policies or ["container"] * n
        self.rev0 = Revision([Ctr(self.name(i), "r0", policies[i]) for i in range(n)],
                             groups_timeout=goals_timeout)
        self.commit_delay = commit_delay
        self.goals_timeout = goals_timeout
        self.config = {"PV_UPDATER_COMMIT_DELAY": commit_delay,
                       "PV_UPDATER_GOALS_TIMEOUT": goals_timeout}
        self.config.update(config or {})
        self.extra_env = dict(env or {})
        self.proc = None
        self.ctrl_sock = os.path.join(device.rundir, "pv-ctrl")
        self.storage = device.storage

    def name(self, i):
        return "%sc%d" % (self.prefix, i)

    def revision(self, base=None, mark="r1", change=(), add=(), remove=(), crash=(),
                 root_files=None, **ctr_opts):
        """A new revision from base (default rev0): containers `change` get `mark` (a new
        lxc.container.conf), `add` are new containers, `remove` go, `crash` are new or changed
        containers whose init exits at once, root_files ({key: bytes}) are root-level objects
        (a reboot update); ctr_opts (policy, status_goal, ...) apply to changed/added ones."""
        r = (base or self.rev0).copy()
        for n in change:
            r.ctrs[n] = r.ctrs[n].copy(mark=mark, **ctr_opts)
        for n in add:
            r.ctrs[n] = Ctr(n, mark, **ctr_opts)
        for n in remove:
            del r.ctrs[n]
        for n in crash:
            r.ctrs[n] = (r.ctrs[n].copy(mark=mark, init="/bin/false") if n in r.ctrs else
                         Ctr(n, mark, init="/bin/false"))
        r.files.update(root_files or {})
        return r

    # ---------------------------------------------------------------- factory and start
    def store_objects(self, objects):
        od = os.path.join(self.storage, "objects")
        os.makedirs(od, exist_ok=True)
        for sha, data in objects.items():
            p = os.path.join(od, sha)
            if not os.path.exists(p):
                with open(p + ".w", "wb") as f:
                    f.write(data)
                os.rename(p + ".w", p)

    def write_trail(self, rev, revision, done=True):
        """A checked-out trail as pv-appengine's factory deploy makes it (objects hard-linked,
        json values written byte-identical), .pv/done and a DONE progress."""
        state, objects = revision.build()
        self.store_objects(objects)
        trail = os.path.join(self.storage, "trails", rev)
        os.makedirs(os.path.join(trail, ".pvr"), exist_ok=True)
        with open(os.path.join(trail, ".pvr", "json"), "w") as f:
            f.write(canon(state))
        for k, v in state.items():
            if k.startswith("#"):
                continue
            dst = os.path.join(trail, k)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if isinstance(v, str):
                os.link(os.path.join(self.storage, "objects", v), dst)
            else:
                with open(dst, "w") as f:
                    f.write(canon(v))
        if done:
            os.makedirs(os.path.join(trail, ".pv"), exist_ok=True)
            open(os.path.join(trail, ".pv", "done"), "w").close()
            with open(os.path.join(trail, ".pv", "progress"), "w") as f:
                f.write('{"status":"DONE","status-msg":"Factory revision","progress":100}')
        return trail

    def write_config(self):
        with open(self.dev.path("pantavisor.config"), "w") as f:
            for k, v in self.config.items():
                f.write("%s=%s\n" % (k, v))

    def start(self, wait=True, timeout=60):
        if not os.path.exists(os.path.join(self.storage, "trails", "0")):
            self.write_trail("0", self.rev0)
        # the factory is deployed: pv-appengine must not redeploy from a pvtx.d
        open(os.path.join(self.storage, ".pvtx-done"), "w").close()
        self.write_config()
        env = self.dev.env(**self.extra_env)
        os.makedirs(self.dev.path("pvtx.d"), exist_ok=True)
        log = os.path.join(self.dev.logdir, "pv-appengine-%d.log" % len(self.dev.procs))
        if self.crash_once:
            env.update(PV_LIBEXEC_DIR=self._crash_once_libexec(), PVU_LOG=log)
        args = [pvtest.bin_path("pv-appengine"), "-d", "0", "--storage", self.storage,
                "--rundir", self.dev.rundir, "--config", self.dev.path("pantavisor.config"),
                "--pvtx-dir", self.dev.path("pvtx.d")]
        self.proc = self.dev.start(args, env=env, log=log)
        if wait:
            ok = self.wait_running(self.rev0, timeout)
            assert ok, "factory revision not running: %s\n%s" % (self.running(), self.log()[-6000:])
        return self.proc

    def _crash_once_libexec(self):
        """init's daemons from a private libexec whose pv-engine runs the real one without
        PV_TEST_CRASH_AT once the crash point has fired (its log line is in pv-appengine's
        log): init respawns the engine with init's own environment, so a respawned engine would
        otherwise die again at the same point of its recovery."""
        d = self.dev.libexec
        for b in ("pv-ctrl", "pv-xconnect"):
            if not os.path.lexists(os.path.join(d, b)):
                os.symlink(pvtest.bin_path(b), os.path.join(d, b))
        w = os.path.join(d, "pv-engine")
        with open(w, "w") as f:
            f.write('#!/bin/sh\n'
                    'if [ -n "${PV_TEST_CRASH_AT:-}" ] && grep -qsF '
                    '"PV_TEST_CRASH_AT=$PV_TEST_CRASH_AT:" "$PVU_LOG"; then\n'
                    '\tunset PV_TEST_CRASH_AT\nfi\n'
                    'exec %s "$@"\n' % pvtest.bin_path("pv-engine"))
        os.chmod(w, 0o755)
        return d

    def crashes(self, point):
        """How many times the engine logged that crash point firing."""
        return self.log().count("PV_TEST_CRASH_AT=%s:" % point)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            return pvtest.stop(self.proc, signal.SIGTERM, timeout=60)
        return self.proc.returncode if self.proc else None

    # ---------------------------------------------------------------- observation
    def log(self):
        """pv-appengine's log: init's and every daemon's stderr (the engine log included)."""
        return pvtest.read_log(self.proc) if self.proc else ""

    def logged_statuses(self, rev):
        """The progress statuses the engine wrote for rev, in order, from its log (a poll can
        miss a short one: a hot update of one container may leave INPROGRESS within 50 ms)."""
        pat = re.compile(r"revision %s: ([A-Z]+) \"" % re.escape(rev))
        return [m.group(1) for m in pat.finditer(self.log())]

    def engine_log(self):
        out = ""
        base = os.path.join(self.storage, "logs")
        for root, _, files in os.walk(base):
            for f in files:
                if f.startswith("pantavisor.log"):
                    try:
                        with open(os.path.join(root, f), errors="replace") as fh:
                            out += "== %s\n%s" % (os.path.join(root, f), fh.read())
                    except OSError:
                        pass
        return out

    def diag(self, n=8000):
        return "---- pv-appengine log (tail)\n%s\n---- running %s\n---- env %r current %r" % (
            self.log()[-n:], self.running(), self.bootenv(), self.current())

    def lxc_pid(self, name):
        r = pvtest.run(["lxc-info", "-P", self.dev.lxcpath, "-n", name, "-p", "-H"], check=False)
        try:
            return int(r.stdout.strip())
        except ValueError:
            return None

    def mark_of(self, pid):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                for kv in f.read().split(b"\0"):
                    if kv.startswith(b"PVU_MARK="):
                        return kv[9:].decode()
        except OSError:
            return None
        return None

    def running(self):
        """{name: (pid, PVU_MARK)} of the containers LXC reports RUNNING."""
        res = {}
        for n in pvtest.lxc_running(self.dev.lxcpath):
            pid = self.lxc_pid(n)
            if pid:
                res[n] = (pid, self.mark_of(pid))
        return res

    def pids(self):
        return {n: v[0] for n, v in self.running().items()}

    def matches(self, revision):
        """True when exactly revision's containers run, each with its revision's config."""
        run = self.running()
        want = {c.name: c.mark for c in revision.ctrs.values()}
        return set(run) == set(want) and all(run[n][1] == want[n] for n in want)

    def wait_running(self, revision, timeout=60):
        return pvtest.wait_until(lambda: self.matches(revision), timeout, 0.1)

    def current(self):
        try:
            return os.readlink(os.path.join(self.storage, "trails", "current"))
        except OSError:
            return None

    def bootenv(self):
        try:
            with open(os.path.join(self.storage, "boot", "uboot.txt"), "rb") as f:
                data = f.read()
        except OSError:
            return {}
        env = {}
        for rec in data.split(b"\0"):
            if b"=" in rec:
                k, v = rec.split(b"=", 1)
                env[k.decode()] = v.decode()
        return env

    def trail(self, rev, *p):
        return os.path.join(self.storage, "trails", rev, *p)

    def progress_file(self, rev):
        try:
            with open(self.trail(rev, ".pv", "progress")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def daemon_pids(self, name):
        """Pids of init's daemon `name` (pv-engine, pv-ctrl, pv-xconnect) of this device."""
        return pvtest.daemon_pids("%s --mode appengine --rundir %s( |$)" % (name, self.dev.rundir))

    def engine_pids(self):
        return self.daemon_pids("pv-engine")

    def engine_pid(self):
        """The one engine (fails if there is not exactly one once its helpers are gone)."""
        return pvtest.one_daemon_pid("pv-engine --mode appengine --rundir %s( |$)" % self.dev.rundir)

    def init_pids(self):
        out = pvtest.run(["pgrep", "-f", "pantavisor --mode appengine --storage %s" %
                          self.storage], check=False).stdout
        return [int(x) for x in out.split()]

    # ---------------------------------------------------------------- HTTP over pv-ctrl
    def curl(self, path, method="GET", data=None, upload=None, headers=(), timeout=60):
        """(status, headers dict (lower-case names), body) of one request through pv-ctrl's
        socket with curl. data: bytes/str sent as the body; upload: a file sent with -T."""
        cmd = ["curl", "-s", "--path-as-is", "--unix-socket", self.ctrl_sock, "-D", "-",
               "-X", method, "-m", str(timeout)]
        for h in headers:
            cmd += ["-H", h]
        inp = None
        if data is not None:
            cmd += ["--data-binary", "@-"]
            inp = data.encode() if isinstance(data, str) else data
        if upload is not None:
            cmd += ["-T", upload]
        cmd.append("http://localhost" + path)
        r = subprocess.run(cmd, input=inp, capture_output=True, timeout=timeout + 10)
        out = r.stdout
        if r.returncode != 0 and not out:
            return 0, {}, r.stderr.decode(errors="replace")
        # -D - writes the header blocks (maybe a 100 Continue first) before the body
        hdrs, code = {}, 0
        while out.startswith(b"HTTP/"):
            head, _, out = out.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            code = int(lines[0].split()[1])
            hdrs = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
        return code, hdrs, out.decode(errors="replace")

    def get_json(self, path, timeout=5):
        """Fast GET for polling (no process spawn): (status, parsed JSON or None)."""
        c = HTTPUnix(self.ctrl_sock, timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            try:
                return r.status, json.loads(body)
            except ValueError:
                return r.status, None
        except (OSError, http.client.HTTPException):
            return 0, None
        finally:
            c.close()

    def ctrl_up(self, timeout=30):
        return pvtest.wait_until(lambda: self.get_json("/containers")[0] == 200, timeout, 0.1)

    def containers(self):
        st, j = self.get_json("/containers")
        return {c["name"]: c for c in j} if st == 200 and isinstance(j, list) else {}

    def steps(self):
        st, j = self.get_json("/steps")
        return {s["name"]: s for s in j} if st == 200 and isinstance(j, list) else {}

    def progress(self, rev):
        path = "/steps/%s/progress" % rev
        st, j = self.get_json(path)
        return j if st == 200 else None

    # ---------------------------------------------------------------- the update flow
    def missing_objects(self, objects):
        st, j = self.get_json("/objects")
        have = {o["sha256"] for o in j} if st == 200 and isinstance(j, list) else set()
        return {s: d for s, d in objects.items() if s not in have}

    def put_object(self, sha, data):
        p = self.dev.path("upload-%s" % sha[:16])
        with open(p, "wb") as f:
            f.write(data)
        try:
            return self.curl("/objects/%s" % sha, "PUT", upload=p)
        finally:
            os.unlink(p)

    def upload(self, objects):
        for sha, data in self.missing_objects(objects).items():
            st, _, body = self.put_object(sha, data)
            assert st == 200, "PUT /objects/%s: %d %s" % (sha, st, body)

    def put_step(self, rev, text):
        return self.curl("/steps/%s" % rev, "PUT", data=text)

    def run_cmd(self, rev, op="LOCAL_RUN"):
        return self.curl("/commands", "POST", data=json.dumps({"op": op, "payload": rev}))

    def stage(self, name, revision, upload=True):
        """Objects up, state PUT as locals/<name>; returns the rev."""
        rev = "locals/" + name
        state, objects = revision.build()
        if upload:
            self.upload(objects)
        st, _, body = self.put_step(rev, canon(state))
        assert st == 200, "PUT /steps/%s: %d %s\n%s" % (rev, st, body, self.diag())
        return rev

    def poll(self, rev, timeout=60, until=FINAL, step=0.05, timeline=None, t0=None):
        """Polls GET /steps/<rev>/progress until its status is in `until`; returns (progress,
        timeline) where timeline lists (seconds since t0 (default: the call), status,
        status-msg) each time the pair changed. Errors while pv-ctrl is down (reboot) are
        skipped."""
        t0 = time.monotonic() if t0 is None else t0
        timeline = [] if timeline is None else timeline
        last = None
        while True:
            p = self.progress(rev)
            if isinstance(p, dict) and p.get("status"):
                cur = (p.get("status"), p.get("status-msg"))
                if cur != last:
                    timeline.append((round(time.monotonic() - t0, 3),) + cur)
                    last = cur
                if p["status"] in until:
                    return p, timeline
            if time.monotonic() - t0 > timeout:
                return p, timeline
            time.sleep(step)

    def update(self, name, revision, timeout=90, op="LOCAL_RUN", until=FINAL):
        """The whole local flow: upload, PUT step, LOCAL_RUN, poll to a final status.
        Returns (progress, timeline, (status, headers, body) of the command)."""
        rev = self.stage(name, revision)
        reply = self.run_cmd(rev, op)
        if reply[0] != 200:
            return self.progress(rev), [], reply
        p, tl = self.poll(rev, timeout, until)
        return p, tl, reply


def mount_holders(prefix):
    """Processes whose mount namespace still has a mount under prefix: pid -> (comm, mounts).
    Tells a leak of ours from a copy of our mounts that another namespace took while they
    existed (a container started at that moment by a test running in parallel)."""
    res = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/mountinfo" % pid) as f:
                mps = [ln.split()[4] for ln in f if prefix in ln.split()[4] or
                       prefix in ln.split(" - ")[-1]]
            if mps:
                with open("/proc/%s/comm" % pid) as f:
                    res[int(pid)] = (f.read().strip(), mps[:4])
        except (OSError, IndexError):
            pass
    return res


def assert_clean(ud, settle=10.0):
    """pvtest's assert_clean, telling who still holds a mount when a loop device is left."""
    try:
        ud.dev.assert_clean(settle)
    except AssertionError as e:
        raise AssertionError("%s; holders: %s" % (e, mount_holders(ud.dev.root)))


def sanitizer_reports(device):
    """ASan/UBSan reports in a device's logs (init's and every daemon's stderr): under
    PV_SANITIZE a daemon that trips one dies and is respawned, so only its log tells."""
    bad = []
    for f in sorted(os.listdir(device.logdir)) if os.path.isdir(device.logdir) else []:
        with open(os.path.join(device.logdir, f), errors="replace") as fh:
            text = fh.read()
        for pat in ("Sanitizer", "runtime error:"):
            i = text.find(pat)
            if i >= 0:
                bad.append("%s: %s" % (f, text[max(0, i - 200):i + 3000]))
                break
    return bad


def statuses(timeline):
    return [s for _, s, _ in timeline]


def make_pvrexport(path, revision):
    """A pvr export tarball (json + objects/<sha>) of revision, as pvr/pv-mkexport write."""
    state, objects = revision.build()
    with tarfile.open(path, "w:gz") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
        # one key per line, as pvr writes it; each value in the factory's serialization, so
        # only what really changed differs from the running revision (jsons compare as text)
        text = "{\n%s\n}\n" % ",\n".join("  %s: %s" % (json.dumps(k), canon(state[k]))
                                           for k in sorted(state))
        add("json", text.encode())
        for sha, data in sorted(objects.items()):
            add("objects/" + sha, data)
    return path


def trail_problems(ud, rev):
    """What is wrong with trails/<rev>: object files not the same inode as objects/<sha>,
    json files not byte-identical to their value in .pvr/json, temp files."""
    bad = []
    trail = ud.trail(rev)
    try:
        with open(os.path.join(trail, ".pvr", "json")) as f:
            text = f.read()
        state = json.loads(text)
    except (OSError, ValueError) as e:
        return ["%s/.pvr/json: %s" % (rev, e)]
    for k, v in state.items():
        if k.startswith("#"):
            continue
        p = os.path.join(trail, k)
        if isinstance(v, str):
            o = os.path.join(ud.storage, "objects", v)
            try:
                if os.stat(p).st_ino != os.stat(o).st_ino:
                    bad.append("%s: not the inode of objects/%s" % (k, v[:12]))
            except OSError as e:
                bad.append("%s: %s" % (k, e))
        else:
            try:
                with open(p) as f:
                    have = f.read()
            except OSError as e:
                bad.append("%s: %s" % (k, e))
                continue
            # byte-identical: the file is a span of .pvr/json holding the same value
            if have not in text or json.loads(have) != v:
                bad.append("%s: not byte-identical to its value in .pvr/json" % k)
    return bad


TEMP_NAME = re.compile(r"\.tmp|^\.current\.|^\.factory\.")


def temp_files(ud):
    """Leftovers of crash-safe writes under objects/, trails/ and boot/: `<file>.tmp.<pid>...`
    (libpvstate fileio, pv-ctrl uploads), `trails/.current.<pid>`, `trails/.factory.<pid>/`.
    A write interrupted anywhere must leave none behind once the engine has recovered."""
    left = []
    for sub in ("objects", "trails", "boot"):
        for root, dirs, files in os.walk(os.path.join(ud.storage, sub)):
            for f in files + dirs:
                if TEMP_NAME.search(f):
                    left.append(os.path.relpath(os.path.join(root, f), ud.storage))
    return left


def requires(*bins):
    """pytestmark for an update test module: root, and the named programs built."""
    return [
        pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC, loop devices)"),
        pytest.mark.skipif(not all(os.path.exists(pvtest.bin_path(b)) for b in bins),
                           reason="not built: " + ", ".join(bins)),
    ]


@pytest.fixture(autouse=True)
def no_sanitizer_reports(device):
    """Every test's device (the `device` fixture, cleaned after this) logged no ASan/UBSan
    report. Autouse in every module that imports it."""
    yield
    bad = sanitizer_reports(device)
    assert not bad, "\n".join(bad)
