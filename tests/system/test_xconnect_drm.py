"""pv-xconnect drm links: the provider's DRM node injected into the consumer's mount namespace
with a device-cgroup grant, driven by the protocol-level engine stand-in. This VM has no
/dev/dri: the provider's nodes are mknod'ed (major 226) in its own namespace."""
import ctypes
import os
import stat
import struct
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
        _remove_cgroup(path, DEVCG)


def _remove_cgroup(path, parent):
    """Moves whatever is left back to the parent group, then the group can go."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            try:
                with open(os.path.join(parent, "cgroup.procs"), "w") as f:
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


def provider_with_nodes(env, card_mode=0o660):
    """A provider with a card (226:0) and a render node (226:128, 0666) in its /dev/dri."""
    prov = env.ns("prov")
    card = prov.root + "/dev/dri/card0"
    render = prov.root + "/dev/dri/renderD128"
    make_node(prov, card, CARD0, card_mode)
    make_node(prov, render, RENDER, 0o666)
    return prov, card, render


def test_card_and_render_injected_granted_and_removed(env, devcg):
    prov, card, render = provider_with_nodes(env)
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
    # seen at once (inotify), not by the next retry 1.5 s after the mknod
    assert dt < 0.75, dt
    assert env.engine.wait_state("cons", "drm-master", "up", 2)
    assert "c 226:0 rwm" in devices_list(devcg)
    assert "appeared after" in env.daemon_log()
    # and the node goes with the link
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


# ---- cgroup v2: the device access is a BPF program attached to the consumer's cgroup ----

CGROUP2_MAGIC = 0x63677270
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_QUERY = 5, 8, 16
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI = 15, 6, 2
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)


def cgroup2_mount():
    class Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]
    libc = ctypes.CDLL(None, use_errno=True)
    for p in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        st = Statfs()
        if libc.statfs(p.encode(), ctypes.byref(st)) == 0 and st.f_type == CGROUP2_MAGIC:
            return p
    return None


def bpf(cmd, attr):
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr.ljust(144, b"\0"), 144)
    r = libc.syscall(SYS_BPF, cmd, buf, 144)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r, buf.raw


def ins(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def lxc_like_program():
    """What LXC builds for `lxc.cgroup2.devices.allow = c 1:3 rwm` on top of a deny-all
    default: /dev/null and nothing else."""
    ldxw, and32, jne, mov, exit_ = 0x61, 0x54, 0x55, 0xb7, 0x95
    return b"".join([
        ins(ldxw, 2, 1, 0), ins(and32, 2, imm=0xffff), ins(jne, 2, off=6, imm=2),  # char
        ins(ldxw, 2, 1, 4), ins(jne, 2, off=4, imm=1),  # major 1
        ins(ldxw, 2, 1, 8), ins(jne, 2, off=2, imm=3),  # minor 3
        ins(mov, 0, imm=1), ins(exit_),
        ins(mov, 0, imm=0), ins(exit_),
    ])


def attach_device_program(cg):
    code = lxc_like_program()
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    fd, _ = bpf(BPF_PROG_LOAD, struct.pack(
        "<IIQQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, ctypes.addressof(insns),
        ctypes.addressof(lic)))
    cgfd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        bpf(BPF_PROG_ATTACH, struct.pack("<IIII", cgfd, fd, BPF_CGROUP_DEVICE,
                                         BPF_F_ALLOW_MULTI))
    finally:
        os.close(cgfd)
        os.close(fd)


def device_programs(cg):
    ids = ctypes.create_string_buffer(4 * 16)
    cgfd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, out = bpf(BPF_PROG_QUERY, struct.pack("<IIIIQI", cgfd, BPF_CGROUP_DEVICE, 0, 0,
                                                 ctypes.addressof(ids), 16))
    finally:
        os.close(cgfd)
    flags, = struct.unpack_from("<I", out, 12)
    cnt, = struct.unpack_from("<I", out, 24)
    return flags, list(struct.unpack_from("<%dI" % cnt, ids.raw))


@pytest.fixture
def v2cg():
    """A real cgroup v2 group with an LXC-like device program; removed even when a test
    fails (removing the group detaches its programs)."""
    mnt = cgroup2_mount()
    if not mnt or not SYS_BPF:
        pytest.skip("no cgroup v2 hierarchy (or unknown bpf syscall) on this host")
    path = os.path.join(mnt, "pvx-drm-v2-" + uuid.uuid4().hex[:8])
    os.mkdir(path)
    try:
        attach_device_program(path)
        yield path
    finally:
        _remove_cgroup(path, mnt)


def open_in_v2(cons, cg, node):
    """open(node, O_RDWR) by a process in the consumer's mount namespace and v2 cgroup."""
    code = ("import os, errno\ntry:\n os.close(os.open(%r, os.O_RDWR)); print('OK')\n"
            "except OSError as e:\n print(errno.errorcode[e.errno])" % node)
    script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
    r = subprocess.run(["sh", "-c", script, "sh", cg, "nsenter", "-t", str(cons.pid), "-m",
                        sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=20)
    return (r.stdout + r.stderr).strip()


def test_cgroup_v2_grant_extends_the_device_program(env, v2cg):
    # No DRM driver in this VM: an open the program allows reaches the (absent) driver and
    # fails with ENXIO; one it denies fails with EPERM before that.
    prov, card, render = provider_with_nodes(env, 0o666)
    cons = env.ns("cons")
    with open(os.path.join(v2cg, "cgroup.procs"), "w") as f:
        f.write(str(cons.pid))
    t_render = cons.root + "/dev/dri/renderD128"
    t_card = cons.root + "/dev/dri/card0"
    ungranted = cons.root + "/dev/dri/renderD129"
    make_node(cons, ungranted, os.makedev(226, 129), 0o666)
    _, before = device_programs(v2cg)
    assert len(before) == 1
    # the runtime's program alone: /dev/null yes, the DRM nodes no
    make_node(cons, t_render, RENDER, 0o666)
    assert open_in_v2(cons, v2cg, t_render) == "EPERM"
    os.unlink(cons.path(t_render))
    env.start_daemon()
    env.engine.push([drm_link(cons, prov, "drm-render", t_render, render),
                     drm_link(cons, prov, "drm-master", t_card, card)])
    assert env.engine.wait_state("cons", "drm-render", "up"), env.daemon_log()[-2000:]
    assert env.engine.wait_state("cons", "drm-master", "up"), env.daemon_log()[-2000:]
    assert open_in_v2(cons, v2cg, t_render) == "ENXIO"
    assert open_in_v2(cons, v2cg, t_card) == "ENXIO"
    assert open_in_v2(cons, v2cg, ungranted) == "EPERM"
    assert open_in_v2(cons, v2cg, "/dev/null") == "OK"  # the runtime's own rule still holds
    flags, after = device_programs(v2cg)
    # replaced in place (same place in the list), not one more program beside it
    assert flags == BPF_F_ALLOW_MULTI and len(after) == 1 and after != before
    # re-establishing the link (a new consumer pid would do the same) adds nothing twice
    env.engine.push([drm_link(cons, prov, "drm-render", t_render, render)])
    env.engine.push([drm_link(cons, prov, "drm-render", t_render, render),
                     drm_link(cons, prov, "drm-master", t_card, card)])
    assert env.engine.wait_state("cons", "drm-master", "up")
    _, again = device_programs(v2cg)
    assert again == after, "an existing grant must not be stacked again"
