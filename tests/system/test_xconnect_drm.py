"""pv-xconnect drm links: the provider's DRM node injected into the consumer's mount namespace
with a device-cgroup grant, driven by the protocol-level engine stand-in. This VM has no
/dev/dri: the provider's nodes are mknod'ed (major 226) in its own namespace."""
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xconnect_env import Env, link, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mknod)")

DEVCG = "/sys/fs/cgroup/devices"
CARD0 = os.makedev(226, 0)
RENDER = os.makedev(226, 128)


@pytest.fixture
def env():
    e = Env()
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def devcg():
    """A real cgroup v1 devices group for the test consumer; removed even when a test fails."""
    if not os.path.isdir(DEVCG):
        pytest.skip("no cgroup v1 devices controller on this host")
    path = os.path.join(DEVCG, "pvx-drm-test-" + uuid.uuid4().hex[:8])
    os.mkdir(path)
    try:
        yield path
    finally:
        # Move whatever is left back to the root group, then the group can go.
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                try:
                    with open(os.path.join(DEVCG, "cgroup.procs"), "w") as f:
                        f.write(pid)
                except OSError:
                    pass
        finally:
            wait_for(lambda: _rmdir(path), 5, 0.05)


def _rmdir(path):
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def consumer_in(env, cg):
    cons = env.ns("cons")
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(cons.pid))
    # Deny everything first, so a grant is visible (and needed), like a container's cgroup.
    with open(os.path.join(cg, "devices.deny"), "w") as f:
        f.write("a")
    with open(os.path.join(cg, "devices.list")) as f:
        assert f.read().strip() == ""
    return cons


def make_node(proc, path, dev, mode=0o660, kind=stat.S_IFCHR):
    host = proc.path(path)
    os.makedirs(os.path.dirname(host), exist_ok=True)
    os.mknod(host, kind | mode, dev)
    os.chmod(host, mode)  # mknod honours the umask; the test wants the exact mode


def drm_link(cons, prov, name, target, node):
    return link("cons", cons.pid, "prov", prov.pid, name, target, node, type_="drm")


def devices_list(cg):
    with open(os.path.join(cg, "devices.list")) as f:
        return f.read().split("\n")


def test_card_and_render_injected_granted_and_removed(env, devcg):
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    render = prov.root + "/dev/dri/renderD128"
    make_node(prov, card, CARD0, 0o660)
    make_node(prov, render, RENDER, 0o666)
    cons = consumer_in(env, devcg)
    t_card = cons.root + "/dev/dri/card0"
    t_render = cons.root + "/dev/dri/renderD128"
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-master", t_card, card),
                     drm_link(cons, prov, "drm-render", t_render, render)])
    assert env.engine.wait_state("cons", "drm-master", "up"), env.daemon_log()[-2000:]
    assert env.engine.wait_state("cons", "drm-render", "up")
    # only in the consumer's namespace, with the provider's type, major:minor and mode
    assert not os.path.exists(t_card)
    for target, dev, mode in ((t_card, CARD0, 0o660), (t_render, RENDER, 0o666)):
        st = os.lstat(cons.path(target))
        assert stat.S_ISCHR(st.st_mode)
        assert st.st_rdev == dev
        assert stat.S_IMODE(st.st_mode) == mode
    assert stat.S_IMODE(os.stat(cons.path(cons.root + "/dev/dri")).st_mode) == 0o755
    rules = devices_list(devcg)
    assert "c 226:0 rwm" in rules and "c 226:128 rwm" in rules, rules
    # teardown removes the nodes (and only them)
    env.engine.push([drm_link(cons, prov, "drm-render", t_render, render)])
    assert wait_for(lambda: not os.path.exists(cons.path(t_card)))
    assert os.path.exists(cons.path(t_render))
    env.engine.push([])
    assert wait_for(lambda: not os.path.exists(cons.path(t_render)))
    # the provider's own nodes are untouched
    assert os.lstat(prov.path(card)).st_rdev == CARD0


def test_pending_until_node_is_plugged(env, devcg):
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    cons = consumer_in(env, devcg)
    target = cons.root + "/dev/dri/card0"
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-master", target, card)])
    l = env.engine.wait_state("cons", "drm-master", "pending", 3)
    assert l, env.engine.status[-1:]
    assert card in l["error"]
    assert not os.path.exists(cons.path(target))
    assert "c 226:0 rwm" not in devices_list(devcg)
    # hot-plug: the node appears later and the retry completes the link
    make_node(prov, card, CARD0, 0o660)
    assert env.engine.wait_state("cons", "drm-master", "up", 15), env.engine.status[-1:]
    st = os.lstat(cons.path(target))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == CARD0
    assert "c 226:0 rwm" in devices_list(devcg)
    # and unplugged nodes don't survive the link's removal
    env.engine.push([])
    assert wait_for(lambda: not os.path.exists(cons.path(target)))


@pytest.mark.parametrize("dir_first", [False, True])
def test_hotplug_is_watched_not_polled(env, devcg, dir_first):
    """The node appears long after the link went pending, when a backoff retry would be
    seconds away: an inotify watch on the provider's /dev/dri (or on /dev, /, while those do
    not exist yet) completes the link within ~100 ms of the mknod."""
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    if dir_first:
        os.makedirs(prov.path(prov.root + "/dev/dri"))
    cons = consumer_in(env, devcg)
    target = cons.root + "/dev/dri/card0"
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-master", target, card)])
    l = env.engine.wait_state("cons", "drm-master", "pending", 3)
    assert l and card in l["error"], env.engine.status[-1:]
    # retries would now be at ~1.5 s and ~3.1 s after the push
    time.sleep(1.6)
    assert not os.path.exists(cons.path(target))
    t0 = time.monotonic()
    make_node(prov, card, CARD0, 0o660)
    assert wait_for(lambda: os.path.exists(cons.path(target)), 2, 0.0005)
    dt = time.monotonic() - t0
    print("hot-plug: node in the consumer %.1f ms after the mknod" % (dt * 1e3))
    assert dt < 0.25, dt
    assert env.engine.wait_state("cons", "drm-master", "up", 2)
    assert "c 226:0 rwm" in devices_list(devcg)
    assert "appeared after" in env.daemon_log()
    # removing the link while it waits leaves nothing behind either
    env.engine.push([])
    assert wait_for(lambda: not os.path.exists(cons.path(target)))


def test_waiting_link_removed_cleanly(env, devcg):
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    cons = consumer_in(env, devcg)
    target = cons.root + "/dev/dri/card0"
    env.start_daemon()
    fds0 = len(os.listdir("/proc/%d/fd" % env.daemon.pid))
    for _ in range(20):
        env.engine.push([drm_link(cons, prov, "drm-master", target, card)])
        assert env.engine.wait_state("cons", "drm-master", "pending", 3)
        env.engine.push([])
        assert wait_for(lambda: env.engine.link_state("cons", "drm-master") is None)
    # every inotify watch was closed with its link
    assert wait_for(lambda: len(os.listdir("/proc/%d/fd" % env.daemon.pid)) <= fds0, 3)
    make_node(prov, card, CARD0, 0o660)
    time.sleep(0.2)
    assert not os.path.exists(cons.path(target))


def test_symlink_planted_at_dev_dri_is_refused(env, devcg):
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    make_node(prov, card, CARD0)
    cons = consumer_in(env, devcg)
    escape = os.path.join(env.dir, "escape")
    os.mkdir(escape)
    os.makedirs(cons.path(cons.root + "/dev"))
    os.symlink(escape, cons.path(cons.root + "/dev/dri"))
    target = cons.root + "/dev/dri/card0"
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-master", target, card)])
    l = env.engine.wait_state("cons", "drm-master", "error", 3)
    assert l, env.engine.status[-1:]
    assert "symlink" in l["error"] and "dri" in l["error"], l["error"]
    assert os.listdir(escape) == []
    assert os.path.islink(cons.path(cons.root + "/dev/dri"))
    assert "c 226:0 rwm" not in devices_list(devcg)


@pytest.mark.parametrize("dev,kind", [(os.makedev(1, 3), stat.S_IFCHR),
                                      (os.makedev(7, 0), stat.S_IFBLK)])
def test_non_drm_node_is_refused(env, devcg, dev, kind):
    prov = env.ns("prov")
    node = prov.root + "/dev/dri/card0"
    make_node(prov, node, dev, 0o666, kind)
    cons = consumer_in(env, devcg)
    target = cons.root + "/dev/dri/card0"
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-master", target, node)])
    l = env.engine.wait_state("cons", "drm-master", "error", 3)
    assert l, env.engine.status[-1:]
    assert "not a DRM character device" in l["error"], l["error"]
    assert not os.path.exists(cons.path(target))
    assert devices_list(devcg) == [""]


def open_in_consumer(cons, cg, node):
    """pv-example-drm-render run as the consumer would be: in its device cgroup and mount ns."""
    b = os.path.join(os.environ.get("PV_BIN", ""), "pv-example-drm-render")
    if not os.path.exists(b):
        pytest.skip("pv-example-drm-render not built")
    script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
    r = subprocess.run(["sh", "-c", script, "sh", cg, "nsenter", "-t", str(cons.pid), "-m",
                        b, "-d", node, "-n", "1"], capture_output=True, text=True, timeout=20)
    return r.stdout + r.stderr


def test_grant_lets_the_consumer_open_the_node(env, devcg):
    # No DRM driver in this VM: an open the cgroup allows reaches the (absent) driver and
    # fails with ENXIO; one the cgroup denies fails with EPERM before that.
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/renderD128"
    make_node(prov, card, RENDER, 0o666)
    cons = consumer_in(env, devcg)
    target = cons.root + "/dev/dri/renderD128"
    ungranted = cons.root + "/dev/dri/renderD129"
    make_node(cons, ungranted, os.makedev(226, 129), 0o666)
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-render", target, card)])
    assert env.engine.wait_state("cons", "drm-render", "up")
    out = open_in_consumer(cons, devcg, target)
    assert "open %s: ENXIO" % target in out, out
    out = open_in_consumer(cons, devcg, ungranted)
    assert "open %s: EPERM" % ungranted in out, out
