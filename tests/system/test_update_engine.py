# test_update_engine.py: the engine's local update flow spoken on its private socket (engine run
# directly, real LXC): hot update keeping untouched pids, hot rollback, busy, bad input, WONTGO.
import hashlib
import json
import os
import re
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402
from pvtest import EngineClient  # noqa: E402

ENGINE = pvtest.bin_path("pv-engine")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not os.path.exists(ENGINE), reason="pv-engine not built"),
]

MSG_HOT = "Transitioning to new revision without rebooting"
MSG_TEST_HOT = "Awaiting to see if update is stable"
MSG_TEST_REBOOT = "Awaiting to set rollback point if update is stable"
MSG_UPDATED = "Update finished, revision not set as rollback point"
MSG_DONE = "Update finished, revision set as rollback point"
FINAL = ("UPDATED", "DONE", "WONTGO", "ERROR")


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Dev:
    """A device tree with objects, trail 0 of n containers and the engine run by hand."""

    def __init__(self, names=("a", "b", "c")):
        self.d = pvtest.Device("u1")
        self.storage = self.d.storage
        self.sock = self.d.path("engine.sock")
        self.objdir = os.path.join(self.storage, "objects")
        os.makedirs(self.objdir)
        img = pvtest.build_image("u1upd")
        with open(os.path.join(img, "lxc.container.conf")) as f:
            self.base_conf = f.read()
        with open(os.path.join(img, "root.squashfs"), "rb") as f:
            self.root = f.read()
        self.roots = {}  # container name -> root.squashfs bytes other than the default
        self.tag = self.d.id[-6:]
        # container name -> (mark, restart_policy, init)
        self.ctrs = {self.tag + n: ("r0", "container", None) for n in names}
        self.engine = None
        self.cl = None

    def state(self, ctrs, missing=None):
        """(state dict, {sha: bytes}) for ctrs; missing: an object key left out of the store."""
        objs = {sha(self.root): self.root}
        st = {"#spec": "pantavisor-service-system@1",
              "device.json": {"groups": [
                  {"name": "platform", "restart_policy": "system", "status_goal": "STARTED",
                   "timeout": 8},
                  {"name": "app", "restart_policy": "container", "status_goal": "STARTED",
                   "timeout": 8}]}}
        for name, (mark, pol, init) in sorted(ctrs.items()):
            conf = self.base_conf
            if init:
                conf = re.sub(r"^lxc\.init\.cmd = .*$", "lxc.init.cmd = %s" % init, conf,
                              flags=re.M)
            conf = (conf + "lxc.environment = PVU_MARK=%s\n" % mark).encode()
            objs[sha(conf)] = conf
            st[name + "/lxc.container.conf"] = sha(conf)
            root = self.roots.get(name, self.root)
            objs[sha(root)] = root
            st[name + "/root.squashfs"] = sha(root)
            st[name + "/run.json"] = {
                "#spec": "service-manifest-run@1", "name": name, "type": "lxc",
                "config": "lxc.container.conf", "root-volume": "root.squashfs", "volumes": [],
                "storage": {"lxc-overlay": {"persistence": "boot"}},
                "group": "platform" if pol == "system" else "app", "restart_policy": pol,
                "auto_recovery": {"policy": "no"}}
        if missing:
            data = b"an object nobody uploaded " + missing.encode()
            st[missing] = sha(data)
        return st, objs

    def put_objects(self, objs):
        for s, data in objs.items():
            p = os.path.join(self.objdir, s)
            if not os.path.exists(p):
                with open(p, "wb") as f:
                    f.write(data)

    def write_factory(self):
        st, objs = self.state(self.ctrs)
        self.put_objects(objs)
        trail = os.path.join(self.storage, "trails", "0")
        os.makedirs(os.path.join(trail, ".pvr"))
        with open(os.path.join(trail, ".pvr", "json"), "w") as f:
            json.dump(st, f, sort_keys=True)
        for k, v in st.items():
            if isinstance(v, str) and len(v) == 64:
                os.makedirs(os.path.dirname(os.path.join(trail, k)), exist_ok=True)
                os.link(os.path.join(self.objdir, v), os.path.join(trail, k))

    def start(self, commit_delay=2, cmdline=None, **env):
        args = [ENGINE, "--mode", "appengine", "--rundir", self.d.rundir, "--storage",
                self.storage]
        if cmdline:
            args += ["--cmdline", cmdline]
        self.engine = self.d.start(args, env=self.d.env(PV_UPDATER_COMMIT_DELAY=commit_delay,
                                                        PV_LOG_DIR=self.d.path("logs"), **env))
        assert pvtest.wait_until(lambda: os.path.exists(self.sock) or
                                 self.engine.poll() is not None, 15), self.log()
        assert self.engine.poll() is None, self.log()
        self.cl = pvtest.wait_until(self._connect, 10)
        assert self.cl, self.log()

    def _connect(self):
        try:
            return EngineClient(self.sock)
        except OSError:
            return None

    def log(self):
        out = pvtest.read_log(self.engine)[-4000:] if self.engine else ""
        return out

    def containers(self):
        rep = self.cl.call("containers-list")
        assert rep["status"] == 200, rep
        return {c["name"]: c for c in rep["body"]}

    def all_started(self, names=None):
        cs = self.containers()
        names = names or self.ctrs
        return all(n in cs and cs[n]["status"] == "STARTED" and cs[n]["pid"] > 0
                   for n in names)

    def pids(self):
        return {n: c["pid"] for n, c in self.containers().items()}

    def progress(self, rev):
        rep = self.cl.call("step-progress", rev=rev)
        return rep.get("body") or {}

    def put_step(self, rev, st, objs=None):
        if objs:
            self.put_objects(objs)
        return self.cl.call("step-put", rev=rev, state=json.dumps(st, sort_keys=True))

    def run(self, rev, op="LOCAL_RUN"):
        return self.cl.call("command", op=op, payload=rev)

    def timeline(self, rev, timeout=60):
        """Every distinct (status, status-msg) seen until a final status."""
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            p = self.progress(rev)
            key = (p.get("status"), p.get("status-msg"))
            if not seen or seen[-1] != key:
                seen.append(key)
            if p.get("status") in FINAL:
                return seen, p
            time.sleep(0.02)
        raise AssertionError("no final status for %s: %s\n%s" % (rev, seen, self.log()))

    def current(self):
        return os.readlink(os.path.join(self.storage, "trails", "current"))

    def env_val(self, key):
        try:
            with open(os.path.join(self.storage, "boot", "uboot.txt"), "rb") as f:
                data = f.read()
        except OSError:
            return ""
        val = ""
        for rec in data.split(b"\0"):
            if rec.startswith(key.encode() + b"="):
                val = rec.split(b"=", 1)[1].decode()
        return val

    def engine_log(self):
        """Every pantavisor.log of the device (one per revision), concatenated."""
        out = ""
        for root, _, files in os.walk(self.d.path("logs")):
            if "pantavisor.log" in files:
                with open(os.path.join(root, "pantavisor.log"), errors="replace") as f:
                    out += f.read()
        return out

    def mark_of(self, pid):
        with open("/proc/%d/environ" % pid, "rb") as f:
            for kv in f.read().split(b"\0"):
                if kv.startswith(b"PVU_MARK="):
                    return kv.split(b"=", 1)[1].decode()
        return None

    def cleanup(self):
        if self.cl:
            self.cl.close()
        if self.engine and self.engine.poll() is None:
            pvtest.stop(self.engine, signal.SIGTERM, 20)
        self.d.cleanup()


@pytest.fixture
def dev():
    d = Dev()
    try:
        d.write_factory()
        d.start()
        assert pvtest.wait_until(d.all_started, 30), d.log()
        yield d
        # an orderly stop after the update: exit 0 (under ASan: no leak, no error at exit)
        if d.engine.poll() is None:
            d.cl.close()
            d.cl = None
            assert pvtest.stop(d.engine, signal.SIGTERM, 30) == 0, d.log()
    finally:
        d.cleanup()


def test_hot_update_restarts_only_the_changed_container(dev):
    a, b, c = sorted(dev.ctrs)
    before = dev.pids()
    assert dev.progress("0")["status"] == "DONE"  # factory auto-commit
    new = dict(dev.ctrs)
    new[b] = ("r1", "container", None)
    st, objs = dev.state(new)
    assert dev.put_step("locals/hot1", st, objs)["status"] == 200
    assert dev.progress("locals/hot1")["status-msg"] == "Update ready to be run"
    rep = dev.run("locals/hot1")
    assert rep["status"] == 200, rep
    # a second update while this one runs: 503, the first one unaffected
    busy = dev.run("locals/hot1")
    assert busy["status"] == 503 and "update in progress" in busy["error"], busy
    for op in ("MAKE_FACTORY", "REBOOT_DEVICE", "POWEROFF_DEVICE"):
        rep = dev.cl.call("command", op=op)
        assert rep["status"] == 503 and "update in progress" in rep["error"], (op, rep)
    seen, final = dev.timeline("locals/hot1")
    # INPROGRESS may last less than a poll: the engine logs every progress it writes
    assert 'locals/hot1: INPROGRESS "%s"' % MSG_HOT in dev.engine_log(), seen
    assert ("TESTING", MSG_TEST_HOT) in seen, seen
    assert final["status"] == "UPDATED" and final["status-msg"] == MSG_UPDATED, final
    assert final["progress"] == 100
    after = dev.pids()
    assert after[a] == before[a] and after[c] == before[c], (before, after)
    assert after[b] != before[b] and after[b] > 0
    assert dev.mark_of(after[b]) == "r1" and dev.mark_of(after[a]) == "r0"
    assert dev.current() == "locals/hot1"
    assert dev.env_val("pv_try") == "locals/hot1"  # committed by the next try boot
    trail = os.path.join(dev.storage, "trails", "locals", "hot1")
    for k, v in st.items():  # installed: objects hard-linked, json byte-identical
        p = os.path.join(trail, k)
        if isinstance(v, str) and len(v) == 64:
            assert os.stat(p).st_ino == os.stat(os.path.join(dev.objdir, v)).st_ino, k
        elif isinstance(v, dict):
            raw = json.dumps(st, sort_keys=True)
            with open(p) as f:
                assert f.read() in raw, k
    assert dev.engine.poll() is None
    # MAKE_FACTORY: trail 0 becomes a copy of the running revision, committed as factory
    assert dev.cl.call("command", op="MAKE_FACTORY")["status"] == 200
    zero = os.path.join(dev.storage, "trails", "0")
    with open(os.path.join(trail, ".pvr", "json"), "rb") as f1, \
            open(os.path.join(zero, ".pvr", "json"), "rb") as f2:
        assert f1.read() == f2.read()
    for k, v in st.items():
        if isinstance(v, str) and len(v) == 64:
            assert os.stat(os.path.join(zero, k)).st_ino == \
                os.stat(os.path.join(dev.objdir, v)).st_ino, k
    p = dev.progress("0")
    assert p["status"] == "DONE" and p["status-msg"] == "Factory revision", p
    assert os.path.exists(os.path.join(zero, ".pv", "done"))
    assert not [n for n in os.listdir(os.path.join(dev.storage, "trails")) if "factory" in n]
    assert dev.cl.call("command", op="MAKE_FACTORY", payload="locals/nosuch")["status"] == 404
    assert dev.cl.call("command", op="MAKE_FACTORY", payload="../x")["status"] == 400


def test_update_whose_container_exits_rolls_back_hot(dev):
    a, b, c = sorted(dev.ctrs)
    before = dev.pids()
    new = dict(dev.ctrs)
    new[b] = ("r1", "container", "/bin/false")
    st, objs = dev.state(new)
    assert dev.put_step("locals/bad1", st, objs)["status"] == 200
    assert dev.run("locals/bad1")["status"] == 200
    seen, final = dev.timeline("locals/bad1")
    assert final["status"] == "ERROR", (seen, final)
    assert final["status-msg"] == "A container could not be started", final
    assert b in final.get("logs", ""), final  # the why, for the user
    # ... with the exit status liblxc's monitor logged (/bin/false exits 1)
    assert pvtest.wait_until(
        lambda: "ended on error (1)" in dev.progress("locals/bad1").get("logs", ""), 10), \
        dev.progress("locals/bad1")
    assert dev.progress("locals/bad1")["status-msg"] == "A container could not be started"
    # the old revision with the old container back, the others never touched
    assert pvtest.wait_until(lambda: dev.current() == "0", 20), dev.log()
    assert pvtest.wait_until(dev.all_started, 30), dev.log()
    after = dev.pids()
    assert after[a] == before[a] and after[c] == before[c]
    assert dev.mark_of(after[b]) == "r0"
    assert dev.env_val("pv_try") == ""
    log = dev.engine_log()
    assert "rolled back to revision 0" in log and b in log
    # the device takes the next update normally
    assert dev.run("locals/bad1")["status"] == 409  # final: not runnable again


def test_missing_object_is_wontgo_and_nothing_changes(dev):
    before = dev.pids()
    new = dict(dev.ctrs)
    new[sorted(new)[0]] = ("r2", "container", None)
    st, objs = dev.state(new, missing="%s/extra.bin" % sorted(new)[0])
    assert dev.put_step("locals/miss", st, objs)["status"] == 200
    rep = dev.run("locals/miss")
    assert rep["status"] == 422, rep
    assert "Object validation went wrong" in rep["error"] and "extra.bin" in rep["error"]
    p = dev.progress("locals/miss")
    assert p["status"] == "WONTGO" and p["status-msg"] == "Object validation went wrong", p
    assert dev.current() == "0" and dev.env_val("pv_try") == ""
    assert dev.pids() == before
    # the device is free for the next command right away
    assert dev.run("locals/nosuch")["status"] == 404


def test_local_run_bad_input(dev):
    for bad in ("locals/../x", "locals/" + "x" * 65, "../0", "locals/a/b", "", "x y"):
        rep = dev.run(bad)
        assert rep["status"] == 400, (bad, rep)
    assert dev.cl.call("command", op="LOCAL_RUN")["status"] == 400
    assert dev.run("locals/nosuch")["status"] == 404
    assert dev.run("0")["status"] == 409  # the running revision
    assert dev.put_step("locals/" + "y" * 65, {})["status"] == 400
    assert dev.put_step("locals/..z", {})["status"] == 400
    # an invalid state: 422 and no trail left behind
    rep = dev.put_step("locals/inval", {"#spec": "pantavisor-service-system@1",
                                        "q/run.json": {"#spec": "service-manifest-run@1",
                                                       "name": "q", "type": "lxc",
                                                       "restart_policy": "sometimes"}})
    assert rep["status"] == 422, rep
    assert not os.path.exists(os.path.join(dev.storage, "trails", "locals", "inval"))


def test_reboot_update_tried_and_committed(dev):
    """A system container changes: INPROGRESS Rebooting, the engine exits for the reboot (no
    init: exit 10); the next start tries the revision (pv_try) and commits it: DONE."""
    a, b, c = sorted(dev.ctrs)
    new = dict(dev.ctrs)
    new[a] = ("r3", "system", None)
    st, objs = dev.state(new)
    assert dev.put_step("locals/rb1", st, objs)["status"] == 200
    assert dev.run("locals/rb1")["status"] == 200
    assert dev.engine.wait(30) == 10, dev.log()
    with open(os.path.join(dev.storage, "trails", "locals", "rb1", ".pv", "progress")) as f:
        p = json.load(f)
    assert p["status"] == "INPROGRESS" and p["status-msg"] == "Rebooting", p
    assert dev.env_val("pv_try") == "locals/rb1"
    dev.cl.close()
    dev.start()  # what the bootloader does next: try pv_try
    seen, final = dev.timeline("locals/rb1")
    assert ("TESTING", MSG_TEST_REBOOT) in seen, seen
    assert final["status"] == "DONE" and final["status-msg"] == MSG_DONE, final
    assert dev.env_val("pv_rev") == "locals/rb1" and dev.env_val("pv_try") == ""
    assert os.path.exists(os.path.join(dev.storage, "trails", "locals", "rb1", ".pv", "done"))
    assert pvtest.wait_until(dev.all_started, 30), dev.log()
    assert dev.mark_of(dev.pids()[a]) == "r3"


# crash point -> (the update's container fails, where the device must end up)
CRASHES = {
    "run-start": (False, "old"), "install-objects": (False, "old"),
    "install-done": (False, "old"), "try-set": (False, "old"), "inprogress": (False, "old"),
    "hot-stopped": (False, "old"), "hot-switched": (False, "new"), "testing": (False, "new"),
    "done": (False, "new"), "rollback": (True, "old"),
}


@pytest.mark.parametrize("point", sorted(CRASHES))
def test_engine_killed_during_hot_update_recovers(point):
    """kill -9 of the engine at a crash point, then a restart in the same boot (same parent):
    the device is on the old revision (update final, pv_try clear) or the new one, never a mix."""
    fails, end = CRASHES[point]
    d = Dev()
    try:
        d.write_factory()
        d.start()
        assert pvtest.wait_until(d.all_started, 30), d.log()
        a, b, c = sorted(d.ctrs)
        before = d.pids()
        new = dict(d.ctrs)
        new[b] = ("r1", "container", "/bin/false" if fails else None)
        st, objs = d.state(new)
        assert d.put_step("locals/cr", st, objs)["status"] == 200
        d.cl.close()
        pvtest.stop(d.engine, signal.SIGTERM, 20)  # restart it armed: PV_TEST_CRASH_AT
        d.start(PV_TEST_CRASH_AT=point)
        assert pvtest.wait_until(d.all_started, 30), d.log()
        before = d.pids()
        try:
            d.run("locals/cr")
        except (AssertionError, OSError):
            pass  # killed before the reply
        assert d.engine.wait(30) == -signal.SIGKILL, d.log()
        d.cl.close()
        d.start()  # init's respawn: same parent, same environment minus the crash point
        if end == "old":
            assert pvtest.wait_until(lambda: d.current() == "0", 30), d.log()
            p = d.progress("locals/cr")
            if point == "run-start":
                assert p["status"] == "NEW", p  # nothing was written: it can run again
            elif fails:
                assert pvtest.wait_until(
                    lambda: d.progress("locals/cr").get("status") == "ERROR", 30)
                assert d.progress("locals/cr")["status-msg"] == \
                    "A container could not be started"
            else:
                assert p["status"] == "ERROR" and p["status-msg"] == "Unexpected rollback", p
            assert pvtest.wait_until(lambda: d.current() == "0" and d.all_started(), 30), \
                d.log()
            assert pvtest.wait_until(lambda: d.env_val("pv_try") == "", 10)
            after = d.pids()
            assert after[a] == before[a] and after[c] == before[c], (before, after)
            assert d.mark_of(after[b]) == "r0"
        else:
            seen, final = d.timeline("locals/cr", 60)
            assert final["status"] == "UPDATED", (seen, final, d.log())
            assert d.current() == "locals/cr"
            assert pvtest.wait_until(d.all_started, 30), d.log()
            after = d.pids()
            assert after[a] == before[a] and after[c] == before[c], (before, after)
            assert d.mark_of(after[b]) == "r1"
            assert d.env_val("pv_try") == "locals/cr"
        assert d.engine.poll() is None
        d.cl.close()
        d.cl = None
        assert pvtest.stop(d.engine, signal.SIGTERM, 30) == 0, d.log()
    finally:
        d.cleanup()


def _boot_with(tag, try_state, progress, cmdline=None, **env):
    """A device whose boot env names a try revision locals/<tag> (state try_state, stored
    progress), started once; returns the Dev (running) for the caller to check and clean."""
    d = Dev(names=("a",))
    d.write_factory()
    trail = os.path.join(d.storage, "trails", "locals", tag)
    os.makedirs(os.path.join(trail, ".pvr"))
    os.makedirs(os.path.join(trail, ".pv"))
    if try_state is None:  # the factory's own state, installed (trail files are hard links)
        with open(os.path.join(d.storage, "trails", "0", ".pvr", "json")) as f:
            try_state = f.read()
        for k, v in json.loads(try_state).items():
            if isinstance(v, str) and len(v) == 64:
                os.makedirs(os.path.dirname(os.path.join(trail, k)), exist_ok=True)
                os.link(os.path.join(d.objdir, v), os.path.join(trail, k))
    with open(os.path.join(trail, ".pvr", "json"), "w") as f:
        f.write(try_state)
    with open(os.path.join(trail, ".pv", "progress"), "w") as f:
        json.dump(progress, f)
    os.makedirs(os.path.join(d.storage, "boot"))
    with open(os.path.join(d.storage, "boot", "uboot.txt"), "wb") as f:
        f.write(b"pv_rev=0\0pv_try=locals/" + tag.encode() + b"\0\0")
    d.start(cmdline=cmdline, **env)
    return d


def test_invalid_try_revision_falls_back_marks_error_clears_try():
    d = _boot_with("brk", '{"#spec": "pantavisor-service-system@1", "x/run.json": 3',
                   {"status": "INPROGRESS", "status-msg": "Rebooting", "progress": 50})
    try:
        assert pvtest.wait_until(d.all_started, 30), d.log()
        assert d.current() == "0"
        p = d.progress("locals/brk")
        assert p["status"] == "ERROR" and p["status-msg"] == "State JSON has bad format", p
        assert d.env_val("pv_try") == "" and d.env_val("pv_rev") == "0"
    finally:
        d.cleanup()


def test_back_on_committed_revision_mid_try_is_unexpected_rollback():
    """The bootloader already tried pv_try (pv-appengine passes only pv_rev now) and the try
    never finished: ERROR "Unexpected rollback", pv_try cleared, the committed revision runs."""
    d = _boot_with("unf", _valid_state(), {"status": "INPROGRESS",
                                           "status-msg": "Trying new revision", "progress": 50},
                   cmdline="pv_rev=0")
    try:
        assert pvtest.wait_until(d.all_started, 30), d.log()
        assert d.current() == "0"
        p = d.progress("locals/unf")
        assert p["status"] == "ERROR" and p["status-msg"] == "Unexpected rollback", p
        assert d.env_val("pv_try") == ""
    finally:
        d.cleanup()


def _valid_state():
    d = Dev(names=("a",))
    st, _ = d.state(d.ctrs)
    d.cleanup()
    return json.dumps(st)


def test_uboot_fallback_boot_runs_the_booted_committed_revision():
    """U-Boot's script passes pv_rev=<booted> with pv_try still set on the boot after a failed
    try: the committed revision it booted runs (not pv_try again), the try is an Unexpected
    rollback and pv_try is cleared."""
    d = _boot_with("ubf", _valid_state(), {"status": "INPROGRESS",
                                           "status-msg": "Trying new revision", "progress": 50},
                   cmdline="pv_rev=0 pv_try=locals/ubf", PV_BOOTLOADER_TYPE="uboot")
    try:
        assert pvtest.wait_until(d.all_started, 30), d.log()
        assert d.current() == "0"
        p = d.progress("locals/ubf")
        assert p["status"] == "ERROR" and p["status-msg"] == "Unexpected rollback", p
        assert d.env_val("pv_try") == "" and d.env_val("pv_rev") == "0"
    finally:
        d.cleanup()


def test_uboot_try_boot_tries_and_commits():
    """U-Boot's try boot passes pv_rev=pv_try=<try>: that revision is tried and committed
    (DONE, pv_rev=<try>, pv_try cleared)."""
    d = _boot_with("ubt", None, {"status": "INPROGRESS", "status-msg": "Rebooting",
                                           "progress": 50},
                   cmdline="pv_rev=locals/ubt pv_try=locals/ubt", PV_BOOTLOADER_TYPE="uboot")
    try:
        assert pvtest.wait_until(d.all_started, 30), d.log()
        assert d.current() == "locals/ubt", d.log()
        assert pvtest.wait_until(lambda: d.progress("locals/ubt").get("status") == "DONE",
                                 30), (d.progress("locals/ubt"), d.log())
        assert d.env_val("pv_rev") == "locals/ubt" and d.env_val("pv_try") == ""
    finally:
        d.cleanup()


def _update_with_slow_stop(d, b, rev):
    """Factory where container b takes 2 s to stop, then an update changing b, returned while b
    is STOPPING (the update between its inprogress and hot-stopped points); the pids before."""
    slow = pvtest.build_image("u1slow", init="trap 'sleep 2; exit 0' TERM; "
                                             "while :; do sleep 1; done")
    with open(os.path.join(slow, "root.squashfs"), "rb") as f:
        d.roots[b] = f.read()
    d.write_factory()
    d.start()
    assert pvtest.wait_until(d.all_started, 30), d.log()
    before = d.pids()
    new = dict(d.ctrs)
    new[b] = ("r1", "container", None)
    st, objs = d.state(new)
    assert d.put_step(rev, st, objs)["status"] == 200
    assert d.run(rev)["status"] == 200
    assert pvtest.wait_until(lambda: d.containers()[b]["status"] == "STOPPING", 10), d.log()
    return before


def test_engine_killed_while_stopping_changed_container():
    """kill -9 while the switch waits for a changed container that takes 2 s to stop (between
    the inprogress and hot-stopped points): the restarted engine restarts it on purpose, so the
    old revision ends with it running instead of it exiting later and staying STOPPED."""
    d = Dev()
    try:
        a, b, c = sorted(d.ctrs)
        before = _update_with_slow_stop(d, b, "locals/slow")
        d.engine.kill()
        d.engine.wait(10)
        d.cl.close()
        d.start()
        p = d.progress("locals/slow")
        assert p["status"] == "ERROR" and p["status-msg"] == "Unexpected rollback", p
        assert d.current() == "0" and d.env_val("pv_try") == ""
        # b exits from the first halt signal within 2 s and is started again with r0
        assert pvtest.wait_until(lambda: d.all_started() and d.pids()[b] != before[b], 30), \
            d.log()
        time.sleep(3)  # nothing exits later and stays stopped
        assert d.all_started(), d.containers()
        after = d.pids()
        assert after[a] == before[a] and after[c] == before[c]
        assert d.mark_of(after[b]) == "r0"
        assert "was being stopped for locals/slow: restarted" in d.engine_log()
    finally:
        d.cleanup()


def test_container_failing_before_the_switch_abandons_update():
    """An untouched container dies while a changed one is still stopping: the update ends ERROR
    before the switch, the old revision stays and every container runs again."""
    d = Dev()
    try:
        a, b, c = sorted(d.ctrs)
        before = _update_with_slow_stop(d, b, "locals/ab")
        os.kill(before[a], signal.SIGKILL)
        seen, final = d.timeline("locals/ab")
        assert final["status"] == "ERROR", (seen, final)
        assert final["status-msg"] == "A container could not be started" and a in final["logs"]
        assert pvtest.wait_until(lambda: d.all_started() and d.pids()[a] != before[a] and
                                 d.pids()[b] != before[b], 30), d.log()
        after = d.pids()
        assert after[c] == before[c]
        assert d.mark_of(after[b]) == "r0" and d.current() == "0"
        assert d.env_val("pv_try") == ""
        assert "abandoned before the switch" in d.engine_log()
        assert d.run("locals/ab")["status"] == 409  # final
        d.cl.close()
        d.cl = None
        assert pvtest.stop(d.engine, signal.SIGTERM, 30) == 0, d.log()
    finally:
        d.cleanup()
