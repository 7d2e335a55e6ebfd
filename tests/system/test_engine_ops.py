# test_engine_ops.py: the engine's private-protocol ops (docs/protocol.md) spoken directly on its
# socket, without pv-ctrl: whois, graph + link-status, objects, steps, meta, gc, commands, daemons.
import hashlib
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ctrl_api import ENGINE, CtrlEnv, wait_for  # noqa: E402
from pvtest import EngineClient as Client  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not os.path.exists(ENGINE), reason="pv-engine not built"),
]


@pytest.fixture(scope="module")
def env():
    e = CtrlEnv()
    try:
        pr = e.container("pr", roles=["mgmt"], restart_policy="container")
        pr[1][pr[0] + "/services.json"] = {
            "#spec": "service-manifest-xconnect@1",
            "services": [{"name": "ops-unix", "type": "unix", "socket": "/run/ops.sock"}]}
        co = e.container("co", restart_policy="container",
                         services={"required": [{"name": "ops-unix",
                                                 "target": "/run/ops-unix.sock"}]},
                         drivers={"manual": ["opsdrv", "opsnone"]})
        bsp = ("bsp", {"bsp/drivers.json": {"#spec": "driver-aliases@1",
                                            "all": {"opsdrv": ["pv_ops_no_such_module"]}}})
        e.write_rev("0", pr, co, bsp)
        e.pr, e.co = pr[0], co[0]
        # metadata kept in storage from an earlier boot: mirrored into the fresh run dir
        os.makedirs(os.path.join(e.storage, "cache", "usrmeta"))
        with open(os.path.join(e.storage, "cache", "usrmeta", "ops.pre"), "w") as f:
            f.write("from storage")
        e.start_engine()
        for n in (e.pr, e.co):
            assert wait_for(lambda n=n: e.lxc_state(n) == "RUNNING", 30), e.log_text()
        e.cl = Client(e.sock)
        for n in (e.pr, e.co):  # the engine knows their init pids once STARTED (after RUNNING)
            assert wait_for(lambda n=n: any(c["name"] == n and c["status"] == "STARTED"
                                            for c in ok(e.cl.call("containers-list"))), 30)
        yield e
        e.cl.close()
    finally:
        e.cleanup()


def ok(rep):
    assert rep["status"] == 200, rep
    return rep.get("body")


def init_pid(env, name):
    import subprocess
    r = subprocess.run(["lxc-info", "-n", name, "-P", env.lxcpath, "-p", "-H"],
                       capture_output=True, text=True)
    return int(r.stdout.strip())


def test_whois(env):
    assert ok(env.cl.call("whois", pid=os.getpid())) == {"container": None, "roles": []}
    assert ok(env.cl.call("whois", pid=init_pid(env, env.pr))) == {"container": env.pr,
                                                                   "roles": ["mgmt"]}
    assert ok(env.cl.call("whois", pid=init_pid(env, env.co))) == {"container": env.co,
                                                                   "roles": []}
    assert env.cl.call("whois", pid=0)["status"] == 400


def test_graph_merges_link_status(env):
    links = ok(env.cl.call("graph"))
    assert len(links) == 1 and links[0]["consumer"] == env.co, links
    assert "state" not in links[0]
    ok(env.cl.call("link-status", links=[{"consumer": env.co, "name": "ops-unix",
                                          "target": "/run/ops-unix.sock", "state": "error",
                                          "error": "provider socket missing"}]))
    links = ok(env.cl.call("graph"))
    assert links[0]["state"] == "error" and links[0]["error"] == "provider socket missing"
    ok(env.cl.call("link-status", links=[{"consumer": env.co, "name": "ops-unix",
                                          "target": "/run/ops-unix.sock", "state": "up"}]))
    links = ok(env.cl.call("graph"))
    assert links[0]["state"] == "up" and "error" not in links[0], links
    assert env.cl.call("link-status", links=[{"name": "x"}])["status"] == 400


def test_link_status_is_void_once_its_reporter_is_gone(env):
    """pv-xconnect stopped or killed: the links it reported up are no longer served, so the
    graph says pending and why, until a reporter speaks again."""
    up = [{"consumer": env.co, "name": "ops-unix", "target": "/run/ops-unix.sock",
           "state": "up"}]
    xc = Client(env.sock)
    ok(xc.call("link-status", links=up))
    assert ok(env.cl.call("graph"))[0]["state"] == "up"
    xc.close()
    assert wait_for(lambda: ok(env.cl.call("graph"))[0]["state"] == "pending", 5)
    assert "pv-xconnect" in ok(env.cl.call("graph"))[0]["error"]
    xc = Client(env.sock)
    ok(xc.call("link-status", links=up))
    assert ok(env.cl.call("graph"))[0]["state"] == "up"
    xc.close()


def put_object(env, data):
    sha = hashlib.sha256(data).hexdigest()
    path = os.path.join(env.storage, "objects", sha)
    with open(path, "wb") as f:
        f.write(data)
    return sha, path


def test_objects_list_and_installed(env):
    sha, path = put_object(env, b"engine ops object\n")
    objs = {o["sha256"]: o["size"] for o in ok(env.cl.call("objects-list"))}
    assert objs[sha] == str(len(b"engine ops object\n"))
    ok(env.cl.call("object-installed", sha=sha, path=path))
    # content that does not match its name: 422 and the file is gone
    bad = hashlib.sha256(b"something else").hexdigest()
    bpath = os.path.join(env.storage, "objects", bad)
    with open(bpath, "wb") as f:
        f.write(b"not it")
    rep = env.cl.call("object-installed", sha=bad, path=bpath)
    assert rep["status"] == 422 and rep["error"] == "Object has bad checksum"
    assert not os.path.exists(bpath)
    # never talked into checking (and deleting) a file outside the object store
    victim = os.path.join(env.root, "victim")
    with open(victim, "w") as f:
        f.write("keep me")
    rep = env.cl.call("object-installed", sha=bad, path=victim)
    assert rep["status"] == 400 and os.path.exists(victim)


def test_steps(env):
    steps = {s["name"]: s for s in ok(env.cl.call("steps-list"))}
    assert "0" in steps and set(steps["0"]) == {"name", "date", "commitmsg", "progress"}
    state = ok(env.cl.call("step-get", rev="0"))
    assert state["#spec"] == "pantavisor-service-system@1"
    assert env.cl.call("step-get", rev="7")["status"] == 404
    for bad in ("../x", "locals/a/b", "/etc", "locals/..x", "locals/" + "x" * 65):
        assert env.cl.call("step-get", rev=bad)["status"] == 400, bad
    # invalid state: every message, nothing left behind
    bad_state = json.dumps({"#spec": "pantavisor-service-system@1",
                            "a/run.json": {"#spec": "service-manifest-run@1", "name": "a",
                                           "type": "lxc", "status_goal": "FOO"}})
    rep = env.cl.call("step-put", rev="locals/opsbad", state=bad_state)
    assert rep["status"] == 422 and "FOO" in rep["error"], rep
    assert not os.path.exists(os.path.join(env.storage, "trails", "locals", "opsbad"))
    good = json.dumps({"#spec": "pantavisor-service-system@1"})
    ok(env.cl.call("step-put", rev="locals/opsgood", state=good))
    prog = ok(env.cl.call("step-progress", rev="locals/opsgood"))
    assert prog["status"] == "NEW" and prog["status-msg"] == "Update ready to be run"
    assert env.cl.call("step-put", rev="5", state=good)["status"] == 400
    ok(env.cl.call("step-commitmsg", rev="locals/opsgood", msg="hello steps"))
    steps = {s["name"]: s for s in ok(env.cl.call("steps-list"))}
    assert steps["locals/opsgood"]["commitmsg"] == "hello steps"
    assert steps["locals/opsgood"]["progress"]["status"] == "NEW"
    assert "locals" not in steps and "current" not in steps
    assert env.cl.call("step-commitmsg", rev="locals/nosuch", msg="x")["status"] == 404
    assert isinstance(ok(env.cl.call("step-progress", rev="0")), dict)


def test_meta(env):
    assert open(os.path.join(env.rundir, "user-meta", "ops.pre")).read() == "from storage"
    assert ok(env.cl.call("meta-list", kind="user"))["ops.pre"] == "from storage"
    for kind, sdir, rdir in (("user", "usrmeta", "user-meta"),
                             ("device", "devmeta", "device-meta")):
        ok(env.cl.call("meta-put", kind=kind, key="ops.k", value="v1"))
        assert ok(env.cl.call("meta-list", kind=kind))["ops.k"] == "v1"
        assert open(os.path.join(env.storage, "cache", sdir, "ops.k")).read() == "v1"
        assert open(os.path.join(env.rundir, rdir, "ops.k")).read() == "v1"
        ok(env.cl.call("meta-delete", kind=kind, key="ops.k"))
        assert "ops.k" not in ok(env.cl.call("meta-list", kind=kind))
        assert not os.path.exists(os.path.join(env.rundir, rdir, "ops.k"))
        assert env.cl.call("meta-delete", kind=kind, key="ops.k")["status"] == 404
        for bad in ("a/b", "..", ".hidden", ""):
            assert env.cl.call("meta-put", kind=kind, key=bad, value="x")["status"] == 400, bad


def test_gc_keeps_linked_objects(env):
    sha, path = put_object(env, b"unreferenced object for gc\n")
    size = os.path.getsize(path)
    used = [n for n in os.listdir(os.path.join(env.storage, "objects"))
            if os.stat(os.path.join(env.storage, "objects", n)).st_nlink > 1]
    assert used
    # a stored local revision never run (not running, committed, tried or in flight): spec
    # §3.3 removes its trail and then its object; the running revision's objects stay
    gone, gpath = put_object(env, b"object of a stored local revision\n")
    ok(env.cl.call("step-put", rev="locals/opsgc",
                   state=json.dumps({"#spec": "pantavisor-service-system@1", "app/f": gone})))
    assert os.path.isdir(os.path.join(env.storage, "trails", "locals", "opsgc"))
    gsize = os.path.getsize(gpath)
    body = ok(env.cl.call("gc"))
    assert body["reclaimed"] >= size + gsize
    assert not os.path.exists(path)
    assert not os.path.exists(gpath)
    assert not os.path.exists(os.path.join(env.storage, "trails", "locals", "opsgc"))
    for n in used:
        assert os.path.exists(os.path.join(env.storage, "objects", n))


def test_drivers_list_and_actions(env):
    """The engine serves drivers-list / driver-action from the running state's run.json
    drivers and bsp/drivers.json (GET/PUT /drivers through pv-ctrl)."""
    got = {d["name"]: d for d in ok(env.cl.call("drivers-list"))}
    assert got["opsdrv"] == {"name": "opsdrv", "type": "MANUAL", "status": "UNLOADED"}, got
    assert got["opsnone"]["status"] == "UNKNOWN", got
    assert ok(env.cl.call("drivers-list", container=env.pr)) == []  # pr declares none
    rep = env.cl.call("driver-action", action="load", name="opsdrv")
    assert rep["status"] == 400 and "pv_ops_no_such_module" in rep["error"], rep
    rep = env.cl.call("driver-action", action="load", name="opsnone")
    assert rep["status"] == 400 and "not defined in bsp/drivers.json" in rep["error"], rep
    rep = env.cl.call("driver-action", action="unload", name="nope")
    assert rep["status"] == 404 and "not a manual driver" in rep["error"], rep
    assert env.cl.call("driver-action", action="reload")["status"] == 400


def test_info_daemons_commands(env):
    rep = env.cl.call("buildinfo")
    assert rep["status"] == 200 and rep.get("content_type") == "text/plain"
    assert "pantavisor-c" in rep["body"]
    # the commit it was built from, taken at build time (not at the last cmake configure)
    head = subprocess.run(["git", "-C", os.environ.get("PV_SRC", "."), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    desc = [l for l in rep["body"].splitlines() if l.startswith("git: ")][0][5:]
    if head.returncode == 0:
        short = desc.replace("-dirty", "").rsplit("-g", 1)[-1]
        assert head.stdout.strip().startswith(short), (desc, head.stdout)
    else:  # built outside a checkout
        assert desc == "unknown", desc
    assert isinstance(ok(env.cl.call("config")), dict)
    assert isinstance(ok(env.cl.call("config2")), list)
    assert ok(env.cl.call("daemons-list")) == []  # run by hand: no init, no daemons
    assert env.cl.call("daemon-action", name="pv-xconnect", action="start")["status"] == 404
    assert env.cl.call("command", op="FORMAT_DISK")["status"] == 400
    assert env.cl.call("command", op="LOCAL_RUN")["status"] == 400  # no payload
    ok(env.cl.call("command", op="RUN_GC"))


def test_daemons_and_reboot_through_init():
    """Under the real init: daemons-list comes from initctl, REBOOT_DEVICE reaches init
    (appengine init exits 0 for a reboot)."""
    import test_engine_appengine as tea
    if not os.path.exists(tea.INIT):
        pytest.skip("pantavisor init not built")
    ienv = tea.InitEnv()
    try:
        c = ienv.container("dl", group="app", restart_policy="container",
                           auto_recovery={"policy": "no"})
        ienv.write_rev("0", c)
        init = ienv.start_init()
        assert wait_for(lambda: os.path.exists(ienv.sock) and ienv.engine_pids(), 20), \
            ienv.init_log()
        cl = wait_for(lambda: _connect(ienv.sock), 10)
        assert cl, ienv.init_log()
        daemons = {d["name"]: d for d in ok(cl.call("daemons-list"))}
        assert daemons["pv-engine"]["pid"] in ienv.engine_pids(), daemons
        assert daemons["pv-engine"]["respawn"] is True
        assert "pv-ctrl" in daemons and "pv-xconnect" in daemons
        assert cl.call("daemon-action", name="nosuch", action="stop")["status"] == 404
        assert cl.call("daemon-action", name="pv-engine", action="dance")["status"] == 400
        assert cl.call("daemon-action", name="pv-engine", action="stop")["status"] == 403
        ok(cl.call("command", op="REBOOT_DEVICE"))
        assert cl.call("command", op="RUN_GC")["status"] == 503  # the device is going down
        cl.close()
        assert init.wait(60) == 0, ienv.init_log()
        assert ienv.engine_pids() == []
    finally:
        ienv.cleanup()


def _connect(path):
    try:
        return Client(path)
    except OSError:
        return None
