# test_update_crash.py: crash injection: the engine is killed (SIGKILL, via PV_TEST_CRASH_AT) at
# each point of the update sequence, or init is killed mid-update; after the respawn the device
# must be on exactly one revision, with storage, progress and boot env consistent with it.
import os
import signal
import time

import pytest

import pvtest
import update_env as U

pytestmark = U.requires("pantavisor", "pv-engine", "pv-ctrl", "pv-appengine")
no_sanitizer_reports = U.no_sanitizer_reports  # autouse

# point -> the update that reaches it: hot (one changed container), reboot (a changed root file
# and one changed container), bad (a changed container plus a new one whose init exits at once)
CASES = [(p, "hot") for p in ("step-stored", "run-start", "install-objects", "install-done",
                              "try-set", "inprogress", "hot-stopped", "hot-switched", "testing",
                              "done")]
CASES += [("commit-env", "reboot"), ("rollback", "bad"), ("try-set", "reboot"),
          ("testing", "reboot"), ("rollback", "bad-reboot")]
assert {p for p, _ in CASES} == set(U.CRASH_POINTS)

# before LOCAL_RUN wrote anything, the revision may still be waiting to be run
NOT_RUN_YET = ("step-stored", "run-start")

# what the engine documents it recovers to (docs/updates.md, "Crash points"): the revision the
# device settles on and the update's final status (and message). The contract allows either
# revision where the switch had happened; these are the choices the engine made and documents.
UNEXPECTED = ("ERROR", "Unexpected rollback")
EXPECT = {
    ("step-stored", "hot"): ("old", ("NEW", "Update not yet installed")),
    ("run-start", "hot"): ("old", ("NEW", U.MSG_READY)),
    ("install-objects", "hot"): ("old", UNEXPECTED),
    ("install-done", "hot"): ("old", UNEXPECTED),
    ("try-set", "hot"): ("old", UNEXPECTED),
    ("inprogress", "hot"): ("old", UNEXPECTED),
    ("hot-stopped", "hot"): ("old", UNEXPECTED),
    ("hot-switched", "hot"): ("new", ("UPDATED", U.MSG_UPDATED)),
    ("testing", "hot"): ("new", ("UPDATED", U.MSG_UPDATED)),
    ("done", "hot"): ("new", ("UPDATED", U.MSG_UPDATED)),
    ("commit-env", "reboot"): ("new", ("DONE", U.MSG_DONE)),
    ("rollback", "bad"): ("old", ("ERROR", "A container could not be started")),
    ("try-set", "reboot"): ("old", UNEXPECTED),
    ("testing", "reboot"): ("new", ("DONE", U.MSG_DONE)),
    ("rollback", "bad-reboot"): ("old", ("ERROR", "A container could not be started")),
}
assert set(EXPECT) == set(CASES)


def new_revision(ud, kind):
    if kind == "reboot":
        return ud.revision(change=[ud.name(1)], root_files={"README.md": b"r1 needs a reboot\n"})
    if kind == "bad":
        return ud.revision(change=[ud.name(1)], crash=[ud.name(3)])
    if kind == "bad-reboot":  # fails in its try boot
        return ud.revision(change=[ud.name(1)], crash=[ud.name(3)],
                           root_files={"README.md": b"r1 needs a reboot\n"})
    return ud.revision(change=[ud.name(1)])


def engine_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return f.read().split(b"\0")


def settle(ud, rev, r1, allow_new, timeout=60):
    """Waits until the device stays 1.5 s on one revision (rev 0's or r1's containers, each with
    its config) with the update's progress final (or NEW when allowed). Returns 'old'/'new'."""
    end = time.monotonic() + timeout
    since, last = None, None
    while time.monotonic() < end:
        p = ud.progress(rev) or {}
        st = p.get("status")
        on = "old" if ud.matches(ud.rev0) else "new" if ud.matches(r1) else None
        ok = on and (st in U.FINAL or (allow_new and st == "NEW"))
        now = (on, st, tuple(ud.engine_pids()))
        if ok and now == last:
            if since and time.monotonic() - since >= 1.5:
                return on
        else:
            since = time.monotonic() if ok else None
        last = now
        time.sleep(0.1)
    return None


def assert_recovered(ud, rev, r1, point, kind):
    allow_new = point in NOT_RUN_YET
    on = settle(ud, rev, r1, allow_new)
    assert on, "no consistent revision after the crash at %s: progress %s\n%s" % (
        point, ud.progress(rev), ud.diag())
    p = ud.progress(rev) or {}
    env = ud.bootenv()
    ud.engine_pid()  # exactly one engine
    if on == "old":
        assert ud.current() == "0", ud.diag()
        assert env.get("pv_rev", "0") == "0" and env.get("pv_try", "") == "", env
        if not (allow_new and p.get("status") == "NEW"):
            assert p.get("status") in U.FAILED, p
            assert p.get("status-msg"), p
        assert U.trail_problems(ud, "0") == []
    else:
        assert not kind.startswith("bad"), "a revision with a crashing container runs: %s" % p
        assert ud.current() == rev, ud.diag()
        if p.get("status") == "UPDATED":  # hot, not committed: pv_try stays for the next boot
            assert p["status-msg"] == U.MSG_UPDATED, p
            assert env.get("pv_try") == rev and env.get("pv_rev") == "0", env
        else:
            assert p.get("status") == "DONE" and p["status-msg"] == U.MSG_DONE, p
            assert env.get("pv_rev") == rev and env.get("pv_try", "") == "", env
            assert os.path.exists(ud.trail(rev, ".pv", "done"))
        assert U.trail_problems(ud, rev) == []
    assert U.temp_files(ud) == [], U.temp_files(ud)
    # pv-ctrl and the engine agree with LXC about what runs
    cs = ud.containers()
    assert {n: c["pid"] for n, c in cs.items()} == ud.pids(), (cs, ud.running())
    # GET /steps shows the update with the same progress
    assert ud.steps()[rev]["progress"].get("status") == p.get("status")
    return on, p


@pytest.mark.parametrize("point,kind", CASES, ids=["%s-%s" % c for c in CASES])
def test_engine_killed_at(device, point, kind):
    # PVU_CRASH_ONCE=0 runs the real engine directly (to check that the engine itself fires a
    # crash point once: init respawns it with the variable still set)
    once = os.environ.get("PVU_CRASH_ONCE", "1") == "1"
    ud = U.UpdateDevice(device, n=3, crash_once=once, goals_timeout=5,
                        env={"PV_TEST_CRASH_AT": point})
    ud.start()
    pids0 = ud.pids()
    epid = ud.engine_pid()
    # the variable set for pv-appengine reached the engine through init
    assert ("PV_TEST_CRASH_AT=%s" % point).encode() in engine_environ(epid)
    r1 = new_revision(ud, kind)
    rev = "locals/crash-" + point
    state, objects = r1.build()
    ud.upload(objects)
    st, _, body = ud.put_step(rev, U.canon(state))
    if point != "step-stored":
        assert st == 200, (st, body, ud.diag())
        st, _, body = ud.run_cmd(rev)
        if point != "run-start":  # the reply may be lost with the engine
            assert st == 200, (st, body, ud.diag())
    fired = pvtest.wait_until(lambda: ud.crashes(point) >= 1, 90, 0.1)
    assert fired, "crash point %s never reached\n%s" % (point, ud.diag())
    # init respawns the engine (pv-appengine relaunches pantavisor only after a reboot)
    assert pvtest.wait_until(lambda: [p for p in ud.engine_pids() if p != epid], 30), ud.diag()
    assert ud.ctrl_up(30), ud.diag()
    on, p = assert_recovered(ud, rev, r1, point, kind)
    assert ud.crashes(point) == 1
    assert (on, (p.get("status"), p.get("status-msg"))) == EXPECT[(point, kind)], (p, ud.diag())
    if point in NOT_RUN_YET:
        # nothing was run: the stored update (validated now if the crash came before that)
        # can be run, and succeeds
        st, _, body = ud.run_cmd(rev)
        assert st == 200, (st, body, ud.diag())
        p, tl = ud.poll(rev, 60)
        assert p["status"] == "UPDATED", (p, tl, ud.diag())
        assert ud.wait_running(r1, 10), ud.diag()
    if kind in ("hot", "bad"):
        # containers the update does not touch ran through the crash and the recovery: the
        # respawned engine re-adopted them, whichever revision it settled on
        pids = ud.pids()
        for n in (ud.name(0), ud.name(2)):
            assert pids[n] == pids0[n], "%s restarted: %s -> %s\n%s" % (n, pids0[n], pids[n],
                                                                        ud.diag())


def test_init_killed_mid_update(device):
    """SIGKILL of `pantavisor` while a hot update is TESTING: pv-appengine relaunches it (a
    crash is a reboot) and the device comes up on one revision, with no engine left over."""
    ud = U.UpdateDevice(device, n=3, commit_delay=8)
    ud.start()
    (init0,) = ud.init_pids()
    epid = ud.engine_pid()
    r1 = new_revision(ud, "hot")
    rev = ud.stage("initkill", r1)
    st, _, body = ud.run_cmd(rev)
    assert st == 200, body
    p, tl = ud.poll(rev, 60, until=("TESTING",) + U.FINAL)
    assert p["status"] == "TESTING", (p, tl, ud.diag())
    os.kill(init0, signal.SIGKILL)
    assert pvtest.wait_until(lambda: "pantavisor crashed" in ud.log(), 20), ud.diag()
    # the old engine must not survive its init: two engines on one storage is the worst case
    assert pvtest.wait_until(lambda: epid not in ud.engine_pids(), 20), ud.diag()
    assert pvtest.wait_until(lambda: ud.init_pids() and ud.init_pids() != [init0], 30)
    assert ud.ctrl_up(30), ud.diag()
    on, p = assert_recovered(ud, rev, r1, "init-kill", "hot")
    if on == "new":
        # the relaunch try-booted the update (pv_try was set) and committed it
        assert p["status"] == "DONE", p


def test_init_killed_leaves_no_daemon_behind(device):
    """After a SIGKILL of `pantavisor` and its relaunch, each daemon runs once: the old pv-ctrl
    and pv-xconnect must go with their init like the engine (the relaunch starts new ones)."""
    ud = U.UpdateDevice(device, n=1)
    ud.start()
    (init0,) = ud.init_pids()
    old = {d: pvtest.wait_until(lambda: (lambda l: l if len(l) == 1 else None)(ud.daemon_pids(d)))
           for d in ("pv-engine", "pv-ctrl", "pv-xconnect")}
    assert all(v and len(v) == 1 for v in old.values()), old
    os.kill(init0, signal.SIGKILL)
    assert pvtest.wait_until(lambda: ud.init_pids() and ud.init_pids() != [init0], 30)
    assert ud.ctrl_up(30), ud.diag()
    for d, (pid,) in old.items():
        assert pvtest.wait_until(lambda: pid not in ud.daemon_pids(d), 10), \
            "%s pid %d outlived its init: now %s" % (d, pid, ud.daemon_pids(d))
        assert pvtest.wait_until(lambda: len(ud.daemon_pids(d)) == 1, 10), (d, ud.daemon_pids(d))
    assert ud.wait_running(ud.rev0, 20), ud.diag()
