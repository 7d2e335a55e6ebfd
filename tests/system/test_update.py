# test_update.py: the local update flow end to end on a pv-appengine device (real init, engine,
# pv-ctrl, LXC): hot update, update with reboot, rollback on a crashing container and on a goal
# timeout, bad input (checksum, state, names, missing objects, busy, truncated upload), pvcontrol.
import json
import os
import re
import signal
import socket
import time

import pytest

import pvtest
import update_env as U

pytestmark = U.requires("pantavisor", "pv-engine", "pv-ctrl", "pv-appengine", "pvcontrol")
no_sanitizer_reports = U.no_sanitizer_reports  # autouse


@pytest.fixture
def ud(device):
    return U.UpdateDevice(device, n=3)


def mounts_of(ud, name):
    return pvtest.mounts_under(os.path.join(ud.dev.root, "volumes", name))


def assert_order(seen, *want):
    """The statuses `want` appear in this order in `seen` (others may be between)."""
    i = 0
    for s in seen:
        if i < len(want) and s == want[i]:
            i += 1
    assert i == len(want), "want %s in order, saw %s" % (want, seen)


def assert_on_old_revision(ud, rev, pids0, keep):
    """The device is back on revision 0: its containers with the factory config, `keep` with
    their old pid, trails/current -> 0, pv_try cleared, the update's trail still verifies."""
    assert ud.wait_running(ud.rev0, 30), ud.diag()
    pids = ud.pids()
    for n in keep:
        assert pids[n] == pids0[n], "%s restarted during the rollback: %s -> %s" % (
            n, pids0[n], pids[n])
    assert ud.current() == "0", ud.diag()
    env = ud.bootenv()
    assert env.get("pv_rev", "0") == "0" and env.get("pv_try", "") == "", env
    assert U.trail_problems(ud, "0") == []


# ------------------------------------------------------------------------------------ good paths

def test_hot_update_restarts_only_the_changed_container(ud):
    ud.start()
    pids0 = ud.pids()
    a, b, c = ud.name(0), ud.name(1), ud.name(2)
    r1 = ud.rev0.copy()
    r1.ctrs[b].mark = "r1"
    t0 = time.monotonic()
    p, tl, reply = ud.update("hot", r1)
    elapsed = time.monotonic() - t0
    assert reply[0] == 200, reply
    rev = "locals/hot"
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert p["status-msg"] == U.MSG_UPDATED and p["progress"] == 100, p
    assert 'revision %s: INPROGRESS "%s"' % (rev, U.MSG_HOT) in ud.log(), ud.diag()
    assert ("TESTING", U.MSG_TEST_HOT) in [(s, m) for _, s, m in tl], tl
    assert_order(ud.logged_statuses(rev), "INPROGRESS", "TESTING", "UPDATED")
    # the commit timer ran: TESTING lasted the commit delay before UPDATED
    t_test = [t for t, s, _ in tl if s == "TESTING"][0]
    t_done = [t for t, s, _ in tl if s == "UPDATED"][0]
    # (less the poll's own lag: TESTING may be seen late on a loaded machine)
    assert t_done - t_test >= ud.commit_delay - 1.0, tl
    assert elapsed < ud.commit_delay + 20, tl
    # only the changed container restarted, with its new config
    assert ud.wait_running(r1, 10), ud.diag()
    pids = ud.pids()
    assert pids[a] == pids0[a] and pids[c] == pids0[c], (pids0, pids)
    assert pids[b] != pids0[b], (pids0, pids)
    # pv-ctrl reports the same pids as LXC
    assert {n: x["pid"] for n, x in ud.containers().items()} == pids
    assert all(x["status"] == "STARTED" for x in ud.containers().values()), ud.containers()
    # hot update: running the new revision, pv_try set (committed at the next boot), pv_rev kept
    assert ud.current() == rev
    env = ud.bootenv()
    assert env.get("pv_try") == rev and env.get("pv_rev") == "0", env
    assert U.trail_problems(ud, rev) == []
    assert not os.path.exists(ud.trail(rev, ".pv", "done"))
    assert U.temp_files(ud) == []
    # a clean stop after a hot switch leaves nothing behind
    assert ud.stop() == 0, ud.log()[-4000:]
    U.assert_clean(ud)


def test_hot_update_adds_and_removes_containers(ud):
    ud.start()
    pids0 = ud.pids()
    a, b, c = ud.name(0), ud.name(1), ud.name(2)
    new = ud.name(3)
    r1 = ud.revision(add=[new], remove=[c])
    p, tl, reply = ud.update("addrm", r1)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.wait_running(r1, 10), ud.diag()
    pids = ud.pids()
    assert pids[a] == pids0[a] and pids[b] == pids0[b], (pids0, pids)
    assert c not in pids and new in pids
    # the removed container's volumes went with it; the new one's are mounted
    assert mounts_of(ud, c) == [], mounts_of(ud, c)
    assert mounts_of(ud, new), "no mount under volumes/%s" % new
    assert set(ud.containers()) == {a, b, new}
    assert U.trail_problems(ud, "locals/addrm") == []
    # GC now keeps both the running (try) revision and the committed one, with all objects
    st, _, body = ud.curl("/storage/gc", "POST")
    assert st == 200, body
    assert U.trail_problems(ud, "locals/addrm") == [] and U.trail_problems(ud, "0") == []
    assert ud.pids() == pids


@pytest.mark.parametrize("how", ["root-file", "system-container"])
def test_update_with_reboot_commits_done(device, how):
    policies = ["system", "container", "container"]
    ud = U.UpdateDevice(device, n=3, policies=policies)
    ud.start()
    init0 = ud.init_pids()
    r1 = ud.rev0.copy()
    if how == "root-file":
        r1.files["README.md"] = b"release notes of r1\n"
    else:
        r1.ctrs[ud.name(0)].mark = "r1"  # restart_policy system: only a reboot may apply it
    rev = "locals/" + how
    p, tl, reply = ud.update(how, r1, timeout=120)
    assert reply[0] == 200, reply
    assert p and p["status"] == "DONE", (p, tl, ud.diag())
    assert p["status-msg"] == U.MSG_DONE and p["progress"] == 100, p
    assert ("TESTING", U.MSG_TEST_REBOOT) in [(s, m) for _, s, m in tl], tl
    assert "UPDATED" not in U.statuses(tl), tl
    # pantavisor was relaunched by pv-appengine on the try revision
    log = ud.log()
    assert re.search(r"launching pantavisor \(pv_rev=0 pv_try=%s\)" % re.escape(rev), log), \
        log[-4000:]
    assert ud.init_pids() and ud.init_pids() != init0
    # committed: pv_rev = rev, pv_try cleared, .pv/done, current -> rev
    env = ud.bootenv()
    assert env.get("pv_rev") == rev and env.get("pv_try", "") == "", env
    assert os.path.exists(ud.trail(rev, ".pv", "done"))
    assert ud.current() == rev
    assert ud.wait_running(r1, 30), ud.diag()
    assert U.trail_problems(ud, rev) == []
    if how == "root-file":
        with open(ud.trail(rev, "README.md"), "rb") as f:
            assert f.read() == b"release notes of r1\n"
    # the factory revision is still a committed revision to come back to
    assert U.trail_problems(ud, "0") == []


def test_local_run_commit_reboots_even_a_hot_update(ud):
    """LOCAL_RUN_COMMIT: an update that could go hot takes the reboot path and is committed."""
    ud.start()
    r1 = ud.rev0.copy()
    r1.ctrs[ud.name(1)].mark = "r1"
    p, tl, reply = ud.update("commit", r1, op="LOCAL_RUN_COMMIT", timeout=120)
    assert reply[0] == 200, reply
    assert p["status"] == "DONE" and p["status-msg"] == U.MSG_DONE, (p, tl, ud.diag())
    assert "UPDATED" not in U.statuses(tl), tl
    assert "launching pantavisor (pv_rev=0 pv_try=locals/commit)" in ud.log()
    env = ud.bootenv()
    assert env.get("pv_rev") == "locals/commit" and env.get("pv_try", "") == "", env
    assert ud.wait_running(r1, 30), ud.diag()


# ------------------------------------------------------------------------------------- rollbacks

def test_stable_timeout_holds_the_commit_until_the_container_proved_stable(ud):
    """auto_recovery.stable_timeout (spec 4.6): after the commit delay (2 s here) the update
    waits, reported, until the changed container has run 6 s at its goal, then commits."""
    ud.start()
    b = ud.name(1)
    r1 = ud.revision(change=[b], run_extra={"auto_recovery": {"policy": "no",
                                                                "stable_timeout": 6}})
    p, tl, reply = ud.update("stable", r1)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert_order(ud.logged_statuses("locals/stable"), "INPROGRESS", "TESTING", "UPDATED")
    assert ("TESTING", "Waiting for all containers to become stable") in \
        [(s, m) for _, s, m in tl], tl
    t_test = [t for t, s, _ in tl if s == "TESTING"][0]
    t_done = [t for t, s, _ in tl if s == "UPDATED"][0]
    # the goal was reached just before TESTING; less the poll's lag on a loaded machine
    assert t_done - t_test >= 6 - 1.0, tl
    c = ud.containers()[b]
    assert c["auto_recovery"]["stable_timeout"] == 6 and c["auto_recovery"]["is_stable"], c


def test_untouched_container_stays_stable_through_a_hot_update(ud):
    """A container the update does not touch keeps the time it has been at its goal: its
    stable_timeout, long over, does not hold the commit (it used to restart from nothing and
    held it forever)."""
    a, b = ud.name(0), ud.name(1)
    ud.rev0.ctrs[a].run_extra = {"auto_recovery": {"policy": "no", "stable_timeout": 3}}
    ud.start()
    assert pvtest.wait_until(lambda: ud.containers()[a]["auto_recovery"]["is_stable"], 20), \
        ud.containers()[a]
    pid_a = ud.pids()[a]
    p, tl, reply = ud.update("untouched", ud.revision(change=[b]), timeout=40)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.pids()[a] == pid_a
    assert ud.containers()[a]["auto_recovery"]["is_stable"], ud.containers()[a]


def test_new_container_crashing_rolls_back_to_old_revision(ud):
    ud.start()
    pids0 = ud.pids()
    a, b, c = ud.name(0), ud.name(1), ud.name(2)
    bad = ud.name(3)
    r1 = ud.revision(change=[b], crash=[bad])  # bad: a new container whose init exits at once
    p, tl, reply = ud.update("crash", r1, timeout=90)
    rev = "locals/crash"
    assert reply[0] == 200, reply
    assert p["status"] == "ERROR", (p, tl, ud.diag())
    assert p["status-msg"] == "A container could not be started", (p, tl)
    assert p["progress"] == 100
    assert_order(ud.logged_statuses(rev), "INPROGRESS", "ERROR")
    assert_on_old_revision(ud, rev, pids0, keep=(a, c))
    assert ud.pids()[b] != pids0[b]  # b ran r1 for a while, then r0 again
    assert bad not in pvtest.lxc_running(ud.dev.lxcpath)
    assert mounts_of(ud, bad) == []
    # GET /steps tells why
    step = ud.steps()[rev]
    assert step["progress"]["status"] == "ERROR", step
    assert step["progress"]["status-msg"] == p["status-msg"], step
    assert bad in step["progress"].get("logs", ""), step  # which container, in words
    # and, a moment later, how its init ended (/bin/false exits 1, as liblxc's monitor logs it)
    assert pvtest.wait_until(lambda: re.search(r"error \(1\)|status 1\b",
                                               ud.progress(rev).get("logs", "")), 10), \
        ud.progress(rev)
    # and the engine log names the container that failed
    lines = [ln for ln in ud.log().splitlines() if bad in ln and
             re.search(r"exit|fail|could not|error", ln, re.I)]
    assert lines, ud.log()[-6000:]


def test_failed_try_boot_reboots_back_to_committed_revision(device):
    """Reboot path: the try boot of a revision whose new container dies fails (ERROR), the
    device reboots into pv_rev, which keeps the ERROR and clears pv_try."""
    ud = U.UpdateDevice(device, n=2)
    ud.start()
    bad = ud.name(2)
    r1 = ud.revision(change=[ud.name(1)], crash=[bad],
                     root_files={"README.md": b"a reboot update\n"})
    rev = "locals/badtry"
    p, tl, reply = ud.update("badtry", r1, timeout=120)
    assert reply[0] == 200, reply
    assert p["status"] == "ERROR", (p, tl, ud.diag())
    assert p["status-msg"] == "A container could not be started", p
    assert bad in p.get("logs", ""), p
    # tried once, then back on the committed revision with its containers
    assert pvtest.wait_until(lambda: ud.log().count("launching pantavisor (pv_rev=0)") >= 2, 60), \
        ud.diag()
    log = ud.log()
    assert log.count("launching pantavisor (pv_rev=0 pv_try=%s)" % rev) == 1, log[-4000:]
    assert ud.wait_running(ud.rev0, 60), ud.diag()
    assert pvtest.wait_until(lambda: ud.bootenv().get("pv_try", "") == "", 20), ud.bootenv()
    assert ud.bootenv().get("pv_rev") == "0"
    assert ud.current() == "0"
    assert not os.path.exists(ud.trail(rev, ".pv", "done"))
    p = ud.progress(rev)
    assert p["status"] == "ERROR" and p["status-msg"] == "A container could not be started", p


def test_goal_timeout_rolls_back(device):
    ud = U.UpdateDevice(device, n=3, goals_timeout=4)
    ud.start()
    pids0 = ud.pids()
    a, b, c = ud.name(0), ud.name(1), ud.name(2)
    r1 = ud.revision(change=[b], status_goal="READY")  # nobody signals ready
    t0 = time.monotonic()
    p, tl, reply = ud.update("goal", r1, timeout=90)
    assert reply[0] == 200, reply
    assert p["status"] == "ERROR", (p, tl, ud.diag())
    assert p["status-msg"] == "Status goal not reached", (p, tl)
    # not before the group's timeout ran out
    assert time.monotonic() - t0 >= 4 - 0.5, tl
    assert "TESTING" not in ud.logged_statuses("locals/goal"), ud.diag()
    assert b in p.get("logs", ""), p  # which container did not make it
    assert_on_old_revision(ud, "locals/goal", pids0, keep=(a, c))


# ------------------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def quiet():
    """One device for the bad-input tests: none of them may change what runs."""
    d = pvtest.Device("upbad")
    try:
        u = U.UpdateDevice(d, n=2)
        u.start()
        u.pids0 = u.pids()
        yield u
        bad = U.sanitizer_reports(d)
        assert not bad, "\n".join(bad)
    finally:
        d.cleanup()


def assert_untouched(ud):
    assert ud.pids() == ud.pids0, (ud.pids0, ud.pids())
    assert ud.matches(ud.rev0)
    assert ud.current() == "0"
    assert ud.bootenv().get("pv_try", "") == "", ud.bootenv()
    assert U.temp_files(ud) == []


def objects_dir(ud):
    return os.listdir(os.path.join(ud.storage, "objects"))


def test_bad_object_checksum_is_422_and_nothing_kept(quiet):
    data = b"some bytes that do not hash to the name\n"
    wrong = U.sha256(b"other bytes")
    st, _, body = quiet.put_object(wrong, data)
    assert st == 422, (st, body)
    assert "checksum" in json.loads(body)["Error"], body
    assert wrong not in objects_dir(quiet) and U.sha256(data) not in objects_dir(quiet)
    assert_untouched(quiet)


def test_invalid_state_is_422_and_no_trail_left(quiet):
    r = quiet.rev0.copy()
    state, objects = r.build()
    quiet.upload(objects)
    # run.json naming a config key that is not in the state
    state["%s/run.json" % quiet.name(0)]["config"] = "nosuch.conf"
    st, _, body = quiet.put_step("locals/invalid", U.canon(state))
    assert st == 422, (st, body)
    assert "nosuch.conf" in body, body
    assert not os.path.exists(quiet.trail("locals", "invalid"))
    # JSON, but not a state of ours
    st, _, body = quiet.put_step("locals/invalid2", '{"#spec": "pantavisor-multi-platform@1"}')
    assert st == 422, (st, body)
    assert "#spec" in body, body
    assert not os.path.exists(quiet.trail("locals", "invalid2"))
    # not JSON at all: refused as a bad request before it reaches storage
    st, _, body = quiet.put_step("locals/invalid3", '{"#spec": "pantavisor-service-system@1", ')
    assert st in (400, 422), (st, body)
    assert not os.path.exists(quiet.trail("locals", "invalid3"))
    assert not {"locals/invalid", "locals/invalid2", "locals/invalid3"} & set(quiet.steps())
    assert_untouched(quiet)


def test_missing_objects_wontgo_running_revision_untouched(quiet):
    r = quiet.rev0.copy()
    r.ctrs[quiet.name(1)].mark = "never-uploaded"
    state, objects = r.build()
    missing = state["%s/lxc.container.conf" % quiet.name(1)]
    assert missing not in objects_dir(quiet)
    rev = "locals/missing"
    st, _, body = quiet.put_step(rev, U.canon(state))  # no object check at PUT (upstream)
    assert st == 200, body
    st, _, body = quiet.run_cmd(rev)
    assert st == 422, (st, body)
    assert missing in body, body
    p = quiet.progress(rev)
    assert p["status"] == "WONTGO" and p["status-msg"] == "Object validation went wrong", p
    assert p["progress"] == 100 and missing in p.get("logs", ""), p
    time.sleep(1)  # nothing may happen later either
    assert_untouched(quiet)
    assert quiet.progress("0")["status"] == "DONE"


@pytest.mark.parametrize("rev", ["locals/..", "locals/a..b/../x", "locals/" + "n" * 65,
                                 "locals/a/b", "../0"])
def test_bad_revision_names_are_400(quiet, rev):
    st, _, body = quiet.put_step(rev, quiet.rev0.text())
    assert st in (400, 404), (st, body)  # pv-ctrl may not route some of them at all
    if st == 400:
        assert json.loads(body)["Error"], body
    st, _, body = quiet.run_cmd(rev)
    assert st == 400, (st, body)
    assert_untouched(quiet)


def test_local_name_of_64_chars_is_accepted(quiet):
    rev = "locals/" + "n" * 64
    st, _, body = quiet.put_step(rev, quiet.rev0.text())
    assert st == 200, body
    assert quiet.progress(rev)["status"] == "NEW"


def test_run_of_unknown_revision_is_404(quiet):
    st, _, body = quiet.run_cmd("locals/nosuch")
    assert st == 404, (st, body)
    assert_untouched(quiet)


def test_truncated_upload_leaves_no_object(quiet):
    data = os.urandom(200000)
    sha = U.sha256(data)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(quiet.ctrl_sock)
    s.sendall(("PUT /objects/%s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
               "Content-Type: application/octet-stream\r\n\r\n" % (sha, len(data))).encode())
    s.sendall(data[:50000])
    time.sleep(0.3)
    s.close()  # the rest never comes
    time.sleep(1.0)
    assert sha not in objects_dir(quiet)
    assert pvtest.wait_until(lambda: U.temp_files(quiet) == [], 10), U.temp_files(quiet)
    # the whole object afterwards is fine
    st, _, body = quiet.put_object(sha, data)
    assert st == 200, body
    assert sha in objects_dir(quiet)
    assert_untouched(quiet)


def test_update_while_another_runs_is_503_with_retry_after(device):
    ud = U.UpdateDevice(device, n=2, commit_delay=6)
    ud.start()
    r1 = ud.rev0.copy()
    r1.ctrs[ud.name(1)].mark = "r1"
    r2 = ud.rev0.copy()
    r2.ctrs[ud.name(0)].mark = "r2"
    rev1 = ud.stage("first", r1)
    rev2 = ud.stage("second", r2)
    st, _, body = ud.run_cmd(rev1)
    assert st == 200, body
    st, hdrs, body = ud.run_cmd(rev2)
    assert st == 503, (st, body)
    assert "update in progress" in json.loads(body)["Error"], body
    assert int(hdrs.get("retry-after", "0")) > 0, hdrs
    # the second revision was not touched; the first one finishes
    p, tl = ud.poll(rev1, 60)
    assert p["status"] == "UPDATED", (p, tl)
    assert ud.progress(rev2)["status"] == "NEW" and ud.progress(rev2)["status-msg"] == U.MSG_READY
    assert ud.matches(r1)
    # a run of a final revision again is a conflict, not a new update
    st, _, body = ud.run_cmd(rev1)
    assert st == 409, (st, body)


# ------------------------------------------------------------------------------------ pvcontrol

def test_pvcontrol_steps_install_then_cmd_run(ud):
    ud.start()
    pids0 = ud.pids()
    r1 = ud.rev0.copy()
    r1.ctrs[ud.name(2)].mark = "viapvcontrol"
    tgz = U.make_pvrexport(ud.dev.path("r1.pvrexport.tgz"), r1)
    pvc = [pvtest.bin_path("pvcontrol"), "-s", ud.ctrl_sock]
    r = pvtest.run(pvc + ["steps", "install", tgz, "viapvc"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    rev = "locals/viapvc"
    assert ud.progress(rev)["status"] == "NEW", ud.progress(rev)
    r = pvtest.run(pvc + ["cmd", "run", rev], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    p, tl = ud.poll(rev, 60)
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.wait_running(r1, 10), ud.diag()
    pids = ud.pids()
    assert [n for n in pids if pids[n] != pids0[n]] == [ud.name(2)], (pids0, pids)
    # the state pvcontrol stored is the export's json, byte for byte
    with open(ud.trail(rev, ".pvr", "json"), "rb") as f:
        stored = f.read()
    import tarfile
    with tarfile.open(tgz) as t:
        assert stored == t.extractfile("json").read()
    assert U.trail_problems(ud, rev) == []


def test_pvcontrol_steps_install_run_follows_progress(ud):
    """`steps install --run`: one command uploads, stores, runs and prints STATUS lines until
    the update is final; exit 0 on UPDATED, 1 on ERROR (and the device is back)."""
    ud.start()
    pvc = [pvtest.bin_path("pvcontrol"), "-s", ud.ctrl_sock]
    r1 = ud.revision(change=[ud.name(1)])
    tgz = U.make_pvrexport(ud.dev.path("good.tgz"), r1)
    r = pvtest.run(pvc + ["steps", "install", "--run", tgz, "good"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "locals/good", lines
    assert lines[-1] == "UPDATED 100% " + U.MSG_UPDATED, lines
    assert ud.wait_running(r1, 10), ud.diag()
    r2 = ud.revision(base=r1, change=[ud.name(0)], crash=[ud.name(2)], mark="r2")
    tgz = U.make_pvrexport(ud.dev.path("bad.tgz"), r2)
    r = pvtest.run(pvc + ["steps", "install", "--run", tgz, "bad"], check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "ERROR 100% A container could not be started", r.stdout
    assert ud.wait_running(r1, 30), ud.diag()  # back on the hot-updated revision
    assert ud.current() == "locals/good"
    # which still waits for its try boot: pv_try names it again, pv_rev is untouched
    env = ud.bootenv()
    assert env.get("pv_try") == "locals/good" and env.get("pv_rev") == "0", env


@pytest.mark.parametrize("left", ["stopped", "in-backoff"])
def test_container_that_failed_before_does_not_hold_a_hot_update(ud, left):
    """A container that failed for good before the update (no auto_recovery: left STOPPED;
    or its retries used up and waiting out a backoff_policy duration: RECOVERING) is kept as it
    is by a hot update of another one: not part of what the update tests, it holds neither the
    goals nor the commit (it used to hold the update INPROGRESS forever), and one in its
    backoff is not started early (it would crash again and fail the update)."""
    a, b = ud.name(0), ud.name(1)
    ud.rev0.ctrs[a].init = "/bin/sleep 2"
    if left == "stopped":
        ud.rev0.ctrs[a].run_extra = {"auto_recovery": {"policy": "no", "stable_timeout": 3}}
        want = "STOPPED"
    else:
        ud.rev0.ctrs[a].run_extra = {"auto_recovery": {
            "policy": "always", "max_retries": 1, "retry_delay": 0, "backoff_policy": "1h",
            "stable_timeout": 3}}
        want = "RECOVERING"
    ud.start(wait=False)
    assert pvtest.wait_until(lambda: ud.containers().get(a, {}).get("status") == want and
                             ud.containers()[b]["status"] == "STARTED" and
                             (left == "stopped" or "exhausted" in ud.log()), 60), ud.diag()
    p, tl, reply = ud.update("after-failure", ud.revision(change=[b]), timeout=60)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.containers()[a]["status"] == want
    assert ud.current() == "locals/after-failure"


def test_api_action_on_a_container_the_update_is_stopping_is_409(ud):
    """While an update waits for a changed container to stop (its init ignores SIGTERM: the
    5 s grace), an API start of that container is refused with 409, not queued: done, it would
    have restarted the old revision's container in the middle of the switch. The update then
    completes."""
    b = ud.name(1)
    ud.rev0.ctrs[b].init = "/bin/sleep 100000"  # a namespace's init without handlers
    ud.start()
    rev = ud.stage("stubborn", ud.revision(change=[b]))
    assert ud.run_cmd(rev)[0] == 200
    assert pvtest.wait_until(lambda: ud.containers()[b]["status"] == "STOPPING", 10), ud.diag()
    st, _, body = ud.curl("/containers/" + b, "PUT", data='{"action":"start"}')
    assert st == 409 and "update" in json.loads(body)["Error"], (st, body)
    p, tl = ud.poll(rev, 60)
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.running()[b][1] == "r1", ud.running()


SLEEPER = "/bin/sleep 100000"  # a namespace init without handlers: stops only by the 5 s kill


def test_update_overrides_a_pending_api_restart(ud):
    """An API restart still waiting for its container to go, then an update that changes that
    container: the update's stop wins (the restart used to start the old container again in
    the middle of the switch, and the update waited for it to stop forever)."""
    b = ud.name(1)
    ud.rev0.ctrs[b].init = SLEEPER
    ud.start()
    st, _, body = ud.curl("/containers/" + b, "PUT", data='{"action":"restart"}')
    assert st == 200, body
    assert ud.containers()[b]["status"] == "STOPPING"
    p, tl, reply = ud.update("over-restart", ud.revision(change=[b]), timeout=60)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.running()[b][1] == "r1", ud.running()


def test_api_stop_in_its_grace_across_the_switch_still_ends(ud):
    """A kept container the API began to stop shortly before the update's switch is still
    killed when its grace runs out (the swap used to drop its timer: STOPPING forever, and the
    update INPROGRESS forever)."""
    a, b = ud.name(0), ud.name(1)
    ud.rev0.ctrs[a].init = SLEEPER
    ud.rev0.ctrs[b].init = SLEEPER
    ud.start()
    rev = ud.stage("grace", ud.revision(change=[b]))
    assert ud.run_cmd(rev)[0] == 200
    assert pvtest.wait_until(lambda: ud.containers()[b]["status"] == "STOPPING", 10), ud.diag()
    time.sleep(2)  # b goes at 5 s; a's grace then still has ~2 s to run past the switch
    st, _, body = ud.curl("/containers/" + a, "PUT", data='{"action":"stop"}')
    assert st == 200, body
    p, tl = ud.poll(rev, 60)
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    c = ud.containers()[a]
    assert c["status"] == "STOPPED" and c["user_stopped"] is True, c
    assert a not in ud.running()


def test_new_container_crash_looping_with_unlimited_retries_rolls_back(ud):
    """A changed container that crashes at every start, with unlimited retries: its group
    timeout (8 s here) ends the update (ERROR, rollback) instead of recovering forever
    (each restart used to count the timeout again)."""
    ud.start()
    pids0 = ud.pids()
    b = ud.name(1)
    r1 = ud.revision(change=[b], init="/bin/false", run_extra={"auto_recovery": {
        "policy": "always", "max_retries": 0, "retry_delay": 1}})
    p, tl, reply = ud.update("crashloop", r1, timeout=60)
    assert reply[0] == 200, reply
    assert p["status"] == "ERROR", (p, tl, ud.diag())
    assert b in json.dumps(p), p  # which container, in words
    assert_on_old_revision(ud, "locals/crashloop", pids0, keep=(ud.name(0), ud.name(2)))


def test_readopted_container_does_not_hold_a_later_commit(ud):
    """After a kill -9 of the engine, the respawned engine re-adopts the running containers;
    one with a stable_timeout has been at its goal all along and must not hold the next hot
    update's commit (it used to count as never at its goal: TESTING forever)."""
    a, b = ud.name(0), ud.name(1)
    ud.rev0.ctrs[a].run_extra = {"auto_recovery": {"policy": "no", "stable_timeout": 2}}
    ud.start()
    pid_a = ud.pids()[a]
    epid = ud.engine_pid()
    os.kill(epid, signal.SIGKILL)
    assert pvtest.wait_until(lambda: "re-adopted" in ud.log(), 30), ud.diag()
    assert pvtest.wait_until(lambda: ud.ctrl_up(1) and ud.containers().get(a, {}).get("pid")
                             == pid_a, 30), ud.diag()
    p, tl, reply = ud.update("after-adopt", ud.revision(change=[b]), timeout=60)
    assert reply[0] == 200, reply
    assert p["status"] == "UPDATED", (p, tl, ud.diag())
    assert ud.pids()[a] == pid_a
