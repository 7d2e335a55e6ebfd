# test_gc.py: the garbage collector (spec core §3.3) through pv-ctrl against the real engine: which
# trails, logs, revision disks and objects go and which stay, `reclaimed` = bytes the storage got
# back, symlinks never followed, PV_STORAGE_GC_KEEP_FACTORY, a broken boot env removes nothing,
# and GC after two real hot updates keeps the committed and the latest, running containers untouched.
import hashlib
import http.client
import json
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pvtest  # noqa: E402

ENGINE = pvtest.bin_path("pv-engine")
CTRL = pvtest.bin_path("pv-ctrl")
PVCONTROL = pvtest.bin_path("pvcontrol")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (os.path.exists(ENGINE) and os.path.exists(CTRL)),
                       reason="pv-engine / pv-ctrl not built"),
]

SPEC = "pantavisor-service-system@1"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def request(sock, method, url):
    c = UnixHTTP(sock)
    try:
        c.request(method, url)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


class Store:
    """A hand-built storage: objects, trails (hard links), logs/<rev>, disks/rev/<rev>."""

    def __init__(self, dev):
        self.dev = dev
        self.root = dev.storage
        self.objects = {}  # label -> sha
        os.makedirs(self.p("objects"))

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    def obj(self, label, size=3000):
        data = (label.encode() + b"\n") * (size // (len(label) + 1))
        sha = hashlib.sha256(data).hexdigest()
        with open(self.p("objects", sha), "wb") as f:
            f.write(data)
        self.objects[label] = sha
        return sha

    def rev(self, rev, labels, unlinked=(), progress=None):
        """Trail of rev naming the objects in labels (hard-linked) and unlinked (named in the
        state only, as after step-put), plus its logs/<rev> and disks/rev/<rev> trees."""
        state = {"#spec": SPEC}
        for lb in list(labels) + list(unlinked):
            state["data/%s.bin" % lb] = self.objects[lb]
        trail = self.p("trails", rev)
        os.makedirs(os.path.join(trail, ".pvr"))
        with open(os.path.join(trail, ".pvr", "json"), "w") as f:
            json.dump(state, f, sort_keys=True)
        os.makedirs(os.path.join(trail, "data"))
        for lb in labels:
            os.link(self.p("objects", self.objects[lb]), os.path.join(trail, "data", lb + ".bin"))
        if progress:
            os.makedirs(os.path.join(trail, ".pv"))
            with open(os.path.join(trail, ".pv", "progress"), "w") as f:
                json.dump({"status": progress, "status-msg": "", "progress": 100}, f)
        logs = self.p("logs", rev, "pantavisor")
        os.makedirs(logs)
        with open(os.path.join(logs, "pantavisor.log"), "w") as f:
            f.write("log of %s\n" % rev * 50)
        disk = self.p("disks", "rev", rev, "app", "data")
        os.makedirs(disk)
        with open(os.path.join(disk, "file"), "w") as f:
            f.write("disk of %s\n" % rev * 80)

    def bootenv(self, raw):
        os.makedirs(self.p("boot"), exist_ok=True)
        with open(self.p("boot", "uboot.txt"), "wb") as f:
            f.write(raw)

    def files(self):
        """{inode: (size, path)} of every regular file under trails, objects, logs, disks."""
        out = {}
        for top in ("trails", "objects", "logs", "disks"):
            for d, _, names in os.walk(self.p(top)):
                for n in names:
                    st = os.lstat(os.path.join(d, n))
                    if (st.st_mode & 0o170000) == 0o100000:
                        out[st.st_ino] = (st.st_size, os.path.join(d, n))
        return out


def start(dev, cmdline, **env):
    e = dev.env(**env)
    engine = dev.start([ENGINE, "--mode", "appengine", "--rundir", dev.rundir, "--storage",
                        dev.storage, "--config", dev.path("none.config"), "--cmdline", cmdline],
                       env=e)
    sock = dev.path("engine.sock")
    assert pvtest.wait_until(lambda: os.path.exists(sock) or engine.poll() is not None, 15)
    assert engine.poll() is None, pvtest.read_log(engine)
    ctrl = dev.start([CTRL, "--mode", "appengine", "--rundir", dev.rundir, "--storage",
                      dev.storage], env=e)
    csock = os.path.join(dev.rundir, "pv-ctrl")
    assert pvtest.wait_until(lambda: os.path.exists(csock) or ctrl.poll() is not None, 15)
    assert ctrl.poll() is None, pvtest.read_log(ctrl)
    # the engine has loaded its revision once trails/current names it
    assert pvtest.wait_until(lambda: os.path.islink(dev.path("storage", "trails", "current")),
                             15), pvtest.read_log(engine)
    return engine, csock


def gone_and_kept(store, before):
    after = store.files()
    gone = {ino: v for ino, v in before.items() if ino not in after}
    return gone, after


@pytest.fixture
def store(device):
    s = Store(device)
    for lb in ("all", "f0", "f1", "fau", "fa", "fb", "fc", "fbc", "f1b", "orphan"):
        s.obj(lb)
    # an upload in progress is not named by a bare sha: never collected
    with open(s.p("objects", "upload-1234.tmp"), "wb") as f:
        f.write(b"partial upload")
    s.rev("0", ["all", "f0"], progress="DONE")
    s.rev("1", ["all", "f1", "f1b"], progress="DONE")
    # fau: named by locals/a's state, not linked (not checked out yet, as after step-put)
    s.rev("locals/a", ["all", "fa"], unlinked=["fau"], progress="NEW")
    s.rev("locals/b", ["all", "fb", "fbc", "f1b"], progress="ERROR")
    s.rev("locals/c", ["all", "fc", "fbc"], progress="DONE")
    # symlinks inside removed revisions lead outside storage: what they point to must survive
    outside = device.path("outside")
    os.makedirs(os.path.join(outside, "dir"))
    with open(os.path.join(outside, "dir", "precious"), "w") as f:
        f.write("do not delete\n")
    os.symlink(outside, s.p("trails", "locals", "c", "data", "escape"))
    os.symlink(os.path.join(outside, "dir", "precious"), s.p("logs", "locals", "b", "link"))
    os.symlink(outside, s.p("disks", "rev", "locals", "c", "app", "escape"))
    s.outside = outside
    return s


def test_gc_keeps_running_committed_trying_factory(device, store):
    store.bootenv(b"pv_rev=1\0\0")
    engine, csock = start(device, "pv_rev=1")
    # an update has been installed since: the bootloader will try locals/a next
    store.bootenv(b"pv_rev=1\0pv_try=locals/a\0\0")
    before = store.files()

    st, body = request(csock, "POST", "/storage/gc")
    assert st == 200, body
    reclaimed = json.loads(body)["reclaimed"]
    gone, after = gone_and_kept(store, before)

    trails = store.p("trails")
    assert sorted(os.listdir(trails)) == ["0", "1", "current", "locals"]
    assert sorted(os.listdir(os.path.join(trails, "locals"))) == ["a"]
    assert os.readlink(os.path.join(trails, "current")) == "1"
    for rev in ("0", "1", "locals/a"):
        assert os.path.isdir(store.p("logs", rev)), rev
        assert os.path.isdir(store.p("disks", "rev", rev)), rev
    for rev in ("locals/b", "locals/c"):
        assert not os.path.lexists(store.p("logs", rev)), rev
        assert not os.path.lexists(store.p("disks", "rev", rev)), rev
    objs = set(os.listdir(store.p("objects")))
    o = store.objects
    for lb in ("all", "f0", "f1", "fau", "fa", "f1b"):
        assert o[lb] in objs, lb  # fau: named by the trying state though not linked
    for lb in ("fb", "fc", "fbc", "orphan"):
        assert o[lb] not in objs, lb
    assert "upload-1234.tmp" in objs
    # symlinks were removed, never followed
    assert open(os.path.join(store.outside, "dir", "precious")).read() == "do not delete\n"

    # only files of removed revisions and collected objects vanished, and reclaimed counts
    # exactly the bytes of the inodes that are gone from the filesystem
    removed_tops = [store.p(t, r) for t in ("trails", "logs", "disks/rev")
                    for r in ("locals/b", "locals/c")] + [store.p("objects")]
    for size, path in gone.values():
        assert any(path.startswith(t + "/") for t in removed_tops), path
    assert reclaimed == sum(size for size, _ in gone.values())
    assert reclaimed >= 4 * 2900  # fb, fc, fbc, orphan at least

    # a second run has nothing left to do
    st, body = request(csock, "POST", "/storage/gc")
    assert st == 200 and json.loads(body)["reclaimed"] == 0, body
    # the engine said why it kept and what it removed
    log = pvtest.read_log(engine) + open_logs(store)
    assert "kept revision 0: factory" in log
    assert "kept revision locals/a: trying (pv_try)" in log
    assert "removed revision locals/b" in log
    pvtest.stop(engine)


def open_logs(store):
    out = ""
    for d, _, names in os.walk(store.p("logs")):
        for n in names:
            if n.startswith("pantavisor"):
                try:
                    out += open(os.path.join(d, n), errors="replace").read()
                except OSError:
                    pass
    return out


def test_gc_keep_factory_off_and_run_gc_command(device, store):
    store.bootenv(b"pv_rev=1\0\0")
    engine, csock = start(device, "pv_rev=1", PV_STORAGE_GC_KEEP_FACTORY="0")
    # trails/current re-pointed (as an interrupted RUN would leave it): that rev is kept
    cur = store.p("trails", "current")
    os.unlink(cur)
    os.symlink("locals/c", cur)
    before = store.files()
    r = pvtest.run([PVCONTROL, "-s", csock, "cmd", "run-gc"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    gone, _ = gone_and_kept(store, before)
    trails = store.p("trails")
    assert sorted(os.listdir(trails)) == ["1", "current", "locals"]
    assert sorted(os.listdir(os.path.join(trails, "locals"))) == ["c"]
    assert not os.path.lexists(store.p("logs", "0"))
    assert not os.path.lexists(store.p("disks", "rev", "0"))
    objs = set(os.listdir(store.p("objects")))
    o = store.objects
    for lb in ("all", "f1", "f1b", "fc", "fbc"):
        assert o[lb] in objs, lb
    for lb in ("f0", "fa", "fau", "fb", "orphan"):
        assert o[lb] not in objs, lb
    assert gone
    pvtest.stop(engine)


def test_gc_keep_factory_off_keeps_running_factory(device, store):
    # no pv_rev: the factory revision is both running and what the bootloader boots
    store.bootenv(b"\0\0")
    engine, csock = start(device, "", PV_STORAGE_GC_KEEP_FACTORY="0")
    st, body = request(csock, "POST", "/storage/gc")
    assert st == 200, body
    assert sorted(os.listdir(store.p("trails"))) == ["0", "current", "locals"]
    assert os.listdir(store.p("trails", "locals")) == []
    assert os.path.isdir(store.p("logs", "0"))
    objs = set(os.listdir(store.p("objects")))
    for lb in ("all", "f0"):
        assert store.objects[lb] in objs
    for lb in ("f1", "fau", "fa", "fb", "fc"):
        assert store.objects[lb] not in objs
    pvtest.stop(engine)


def test_gc_broken_boot_env_removes_nothing(device, store):
    store.bootenv(b"pv_rev=1\0\0")
    engine, csock = start(device, "pv_rev=1")
    store.bootenv(b"pv_rev=1\0pv_try=locals/a")  # truncated: no terminator
    before = store.files()
    st, body = request(csock, "POST", "/storage/gc")
    assert st == 500, body
    assert "uboot.txt" in body and "nothing removed" in body, body
    assert store.files().keys() == before.keys()
    assert os.path.isdir(store.p("trails", "locals", "b"))
    pvtest.stop(engine)


def test_gc_leaves_mount_points(device, store):
    """A filesystem mounted inside a removed revision (a revision volume still mounted) is not
    entered: its files survive, the rest of the revision goes."""
    mnt = store.p("disks", "rev", "locals", "b", "app", "mnt")
    os.makedirs(mnt)
    pvtest.run(["mount", "-t", "tmpfs", "-o", "size=1m", "gcmnt", mnt])
    with open(os.path.join(mnt, "inside"), "w") as f:
        f.write("on the mounted fs\n")
    store.bootenv(b"pv_rev=1\0\0")
    engine, csock = start(device, "pv_rev=1")
    st, body = request(csock, "POST", "/storage/gc")
    assert st == 200, body
    assert open(os.path.join(mnt, "inside")).read() == "on the mounted fs\n"
    assert not os.path.lexists(store.p("trails", "locals", "b"))
    assert not os.path.lexists(store.p("disks", "rev", "locals", "b", "app", "data"))
    assert not os.path.lexists(store.p("logs", "locals", "b"))
    log = pvtest.read_log(engine)
    assert "a mount point: left alone" in log, log[-3000:]
    pvtest.run(["umount", mnt])
    pvtest.stop(engine)


def test_gc_after_two_hot_updates(device):
    """Real local updates through pv-appengine: after 0 -> locals/g1 -> locals/g2 (both hot,
    UPDATED: pv_rev stays 0, pv_try names the latest), GC removes locals/g1 and its own objects,
    keeps 0 and locals/g2, and the running containers are not touched."""
    import update_env as ue
    ud = ue.UpdateDevice(device, n=2, commit_delay=1)
    ud.start()
    c0, c1 = ud.name(0), ud.name(1)
    r1 = ud.rev0.copy()
    r1.ctrs[c1].mark = "g1"
    p, tl, reply = ud.update("g1", r1)
    assert p["status"] == "UPDATED", (p, tl, reply, ud.diag())
    g1_state, g1_objs = r1.build()
    g1_conf = g1_state["%s/lxc.container.conf" % c1]
    r2 = r1.copy()
    r2.ctrs[c1].mark = "g2"
    p, tl, reply = ud.update("g2", r2)
    assert p["status"] == "UPDATED", (p, tl, reply, ud.diag())
    assert ud.wait_running(r2, 30), ud.diag()
    env = ud.bootenv()
    assert env.get("pv_try") == "locals/g2" and env.get("pv_rev", "0") in ("", "0"), env
    pids = ud.pids()

    st, body = request(ud.ctrl_sock, "POST", "/storage/gc")
    assert st == 200, body
    assert json.loads(body)["reclaimed"] > 0
    trails = os.path.join(ud.storage, "trails")
    assert sorted(os.listdir(os.path.join(trails, "locals"))) == ["g2"]
    assert os.path.isdir(os.path.join(trails, "0"))
    objs = set(os.listdir(os.path.join(ud.storage, "objects")))
    assert g1_conf not in objs
    for rev in (ud.rev0, r2):
        state, _ = rev.build()
        for k, v in state.items():
            if isinstance(v, str) and not k.startswith("#"):
                assert v in objs, k
    # nothing running was disturbed
    assert ud.pids() == pids and ud.matches(r2), ud.diag()
    ud.stop()


def device_meta(csock):
    st, body = request(csock, "GET", "/device-meta")
    assert st == 200, body
    return json.loads(body)


def test_storage_usage_is_device_meta(device, store):
    store.bootenv(b"pv_rev=1\0\0")
    engine, csock = start(device, "pv_rev=1", PV_STORAGE_GC_RESERVED="7")
    u = json.loads(device_meta(csock)["storage"])
    sv = os.statvfs(store.root)
    total = sv.f_blocks * sv.f_frsize
    assert u["total"] == total, u
    assert u["reserved"] == total * 7 // 100, u
    assert abs(u["free"] - sv.f_bfree * sv.f_frsize) < 256 << 20, u  # others write meanwhile
    assert u["real_free"] == max(u["free"] - u["reserved"], 0), u
    # and the run dir mirror containers read
    mirror = os.path.join(device.rundir, "device-meta", "storage")
    assert pvtest.wait_until(lambda: os.path.exists(mirror), 10)
    assert json.loads(open(mirror).read())["total"] == total
    pvtest.stop(engine)


def test_threshold_gc_runs_by_itself_and_waits_after_an_object_put(device, store):
    """PV_STORAGE_GC_THRESHOLD=100: real free space is always under 100 % of the disk, so the
    GC runs on its own (within its 5 s check); an object put through pv-ctrl defers it for
    PV_STORAGE_GC_THRESHOLD_DEFERTIME, then it is collected like any unreferenced object."""
    store.bootenv(b"pv_rev=1\0\0")
    o = store.objects
    engine, csock = start(device, "pv_rev=1", PV_STORAGE_GC_THRESHOLD="100",
                          PV_STORAGE_GC_THRESHOLD_DEFERTIME="8")
    objects = store.p("objects")
    assert pvtest.wait_until(lambda: o["orphan"] not in os.listdir(objects), 15), \
        pvtest.read_log(engine)
    assert not os.path.lexists(store.p("trails", "locals", "b"))
    for lb in ("all", "f0", "f1", "f1b"):
        assert o[lb] in os.listdir(objects), lb
    assert "under the 100% threshold" in pvtest.read_log(engine) + open_logs(store)
    # an upload: linked by no trail until a LOCAL_RUN, so only the deferral keeps it
    data = b"uploaded, not yet in a trail\n" * 100
    sha = hashlib.sha256(data).hexdigest()
    c = UnixHTTP(csock)
    c.request("PUT", "/objects/" + sha, body=data)
    r = c.getresponse()
    assert r.status == 200, r.read()
    c.close()
    t0 = time.monotonic()
    path = os.path.join(objects, sha)
    # without the deferral the next check (at most 5 s away, and at once after a GC that freed
    # something) would collect it
    assert pvtest.wait_until(lambda: time.monotonic() - t0 > 6.5, 10)
    assert os.path.exists(path), "collected during the deferral"
    assert pvtest.wait_until(lambda: not os.path.exists(path), 20), pvtest.read_log(engine)
    assert time.monotonic() - t0 >= 8 - 0.5
    pvtest.stop(engine)
