# test_demo.py: the README's command one (scripts/demo) as a user runs it: every stack with
# --once and each proof line checked against the containers' own logs; your own container added
# with --add (the three steps of docs/EXAMPLES.md); Ctrl-C; and nothing left behind each time.
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import pvtest

SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(SRC, "scripts", "demo")
MKEXAMPLE = os.path.join(SRC, "tools", "scripts", "pv-mkexample")
BIN = pvtest.BIN
STACKS = {
    "unix": ["pv-example-unix-server", "pv-example-unix-client"],
    "rest": ["pv-example-rest-server", "pv-example-rest-client"],
    "dbus": ["pv-example-dbus-server", "pv-example-dbus-client", "pv-example-dbus-client-nobody"],
    "drm": ["pv-example-drm-provider", "pv-example-drm-master", "pv-example-drm-render"],
    "wayland": ["pv-example-wayland-server", "pv-example-wayland-client"],
}
ALL = [n for names in STACKS.values() for n in names]
# programs that exist as binaries (the -nobody client and Weston's container reuse others)
PROGRAMS = [n for n in ALL if n not in ("pv-example-dbus-client-nobody",
                                        "pv-example-wayland-server")]
LINKS = [  # consumer, service, type, provider
    ("pv-example-unix-client", "raw-unix", "unix", "pv-example-unix-server"),
    ("pv-example-rest-client", "network-manager", "rest", "pv-example-rest-server"),
    ("pv-example-dbus-client", "system-bus", "dbus", "pv-example-dbus-server"),
    ("pv-example-dbus-client-nobody", "system-bus", "dbus", "pv-example-dbus-server"),
    ("pv-example-drm-master", "drm-master", "drm", "pv-example-drm-provider"),
    ("pv-example-drm-render", "drm-render", "drm", "pv-example-drm-provider"),
    ("pv-example-wayland-server", "drm-master", "drm", "pv-example-drm-provider"),
    ("pv-example-wayland-client", "wayland-0", "wayland", "pv-example-wayland-server"),
]
CLEAN = "clean: no processes, containers, mounts or loop devices left"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not all(os.path.exists(os.path.join(BIN, b)) for b in
                               ["pantavisor", "pv-engine", "pv-ctrl", "pv-xconnect", "pvcontrol",
                                "pventer"] + PROGRAMS),
                       reason="engine, daemons or examples not built"),
]


@pytest.fixture
def tmp():
    """A private TMPDIR for the demo (its run dir, storage): whatever happens, the finalizer
    kills what carries this test's tag, stops containers and unmounts before removing it."""
    tag = pvtest.unique_id("demo")
    d = tempfile.mkdtemp(prefix="pvtest-%s-" % tag)
    yield tag, d
    for pid in pvtest.procs_with_env("PVTEST_ID", tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for root, dirs, _ in os.walk(d):
        if os.path.basename(root) == "lxc":
            for n in pvtest.lxc_running(root):
                pvtest.run(["lxc-stop", "-k", "-P", root, "-n", n], check=False)
            dirs[:] = []
    for mp in pvtest.mounts_under(d):
        if pvtest.run(["umount", mp], check=False).returncode != 0:
            pvtest.run(["umount", "-l", mp], check=False)
    for dev in pvtest.loops_under(d):
        pvtest.run(["losetup", "-d", dev], check=False)
    shutil.rmtree(d, ignore_errors=True)


def run_demo(tag, d, *args, timeout=300):
    env = dict(os.environ, TMPDIR=d, PVTEST_ID=tag)
    p = subprocess.Popen([DEMO, "--bin", BIN] + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)  # the demo's own shutdown path
        out, _ = p.communicate(timeout=120)
        pytest.fail("demo did not finish in %ds:\n%s" % (timeout, out))
    return p.returncode, out


def run_demo_until(tag, d, done, *args, timeout=240, sigint_ignored=False, stop=signal.SIGINT):
    """The demo without --once: once it is running (its hints printed), calls done(output so
    far) until it returns true (it may assert), then Ctrl-C: SIGINT to the demo's process
    group, as a terminal sends it (or another signal: stop). sigint_ignored: started with SIGINT
    ignored, as a background job of a script is. Returns (rc, output, whether done held while
    the demo ran)."""
    env = dict(os.environ, TMPDIR=d, PVTEST_ID=tag)
    p = subprocess.Popen([DEMO, "--bin", BIN] + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True,
                         preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
                         if sigint_ignored else None)
    out, held = b"", False
    try:
        deadline = time.time() + timeout
        while b"explains what to look for)" not in out and time.time() < deadline \
                and p.poll() is None:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                out += os.read(p.stdout.fileno(), 65536)
        held = p.poll() is None and pvtest.wait_until(
            lambda: done(out.decode(errors="replace")), max(deadline - time.time(), 1), 0.2)
        held = held and p.poll() is None
        if p.poll() is None:
            os.killpg(p.pid, stop)
        rest, _ = p.communicate(timeout=120)
        out += rest
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode, out.decode(errors="replace"), held


def assert_nothing_left(tag, d, out, said=True):
    """said: the demo printed its shutdown (not when its terminal hung up)."""
    assert CLEAN in out or not said, out
    assert pvtest.mounts_under(d) == [], out
    assert pvtest.loops_under(d) == [], out
    assert pvtest.procs_with_env("PVTEST_ID", tag) == [], out
    assert [e for e in os.listdir(d) if e.startswith("pvdemo-")] == [], "run dir kept"


def section(out, title):
    """The lines of the demo's '== <title>' section."""
    m = re.search(r"^== %s.*\n((?:(?!== ).*\n)*)" % re.escape(title), out, re.M)
    assert m, "no section %r in:\n%s" % (title, out)
    return m.group(1)


def console(storage, name):
    with open(os.path.join(storage, "logs", "0", name, "lxc", "console.log"),
              errors="replace") as f:
        return f.read()


def console_now(storage, name):
    """console() while the container may not have written its log yet: "" then."""
    try:
        return console(storage, name)
    except OSError:
        return ""


def test_demo_once_every_stack_proved_and_nothing_left(tmp):
    tag, d = tmp
    storage = os.path.join(d, "storage")
    # cold images under ASan take a few minutes before the 150 s of waiting start
    rc, out = run_demo(tag, d, "--once", "--storage", storage, "--timeout", "150", timeout=600)
    assert rc == 0, out

    # every container listed by pv-ctrl as STARTED or READY, nothing else
    table = section(out, "containers (pvcontrol ls)")
    for n in ALL:
        assert re.search(r"^\s+%s\s+(STARTED|READY)\s" % re.escape(n), table, re.M), out
    assert len(table.strip().splitlines()) == 1 + len(ALL), table

    # the graph, as the engine serves it (pvcontrol graph ls), every link up
    graph = section(out, "xconnect graph (pvcontrol graph ls")
    for c, name, typ, prov in LINKS:
        assert re.search(r"^\s+%s --%s \(%s\)--> %s\s+\[up\]$" % (
            re.escape(c), re.escape(name), typ, re.escape(prov)), graph, re.M), graph
    assert len(graph.strip().splitlines()) == len(LINKS), graph

    proof = section(out, "proof,")
    assert "FAILED" not in out, out
    # unix: the echo, and it is in the client's own log
    m = re.search(r'^\s+unix:\s+raw-unix -> pv-example-unix-client: "(ping \d+)" echoed by '
                  r'pv-example-unix-server \(fd (received "[^"]+"|none received[^)]*)\)$',
                  proof, re.M)
    assert m, proof
    assert "echo: %s\n" % m.group(1) in console(storage, "pv-example-unix-client")
    # rest: the identity headers the server saw, both right, and the server logged the same
    assert re.search(r"^\s+rest:\s+network-manager -> pv-example-rest-client: HTTP 200; the "
                     r"server saw X-PV-Client: pv-example-rest-client, X-PV-Role: any$",
                     proof, re.M), proof
    assert re.search(r"GET /ping/\d+ client=pv-example-rest-client role=any",
                     console(storage, "pv-example-rest-server"))
    # dbus: root's reply (uid 0), and the nobody client denied owning the name but answered
    assert re.search(r'^\s+dbus:\s+system-bus -> pv-example-dbus-client \(role root\): GetInfo '
                     r'answered "org\.pantavisor\.Example: hello :[0-9.]+, your uid is 0"$',
                     proof, re.M), proof
    assert re.search(r"^\s+dbus:\s+system-bus -> pv-example-dbus-client-nobody \(role nobody\): "
                     r"owning org\.pantavisor\.Example org\.freedesktop\.DBus\.Error\.AccessDenied"
                     r" .* -> denied; GetInfo answered \"[^\"]*your uid is 65534\"$",
                     proof, re.M), proof
    assert "attack succeeded" not in console(storage, "pv-example-dbus-client-nobody")
    # drm: each consumer's node carries the provider's major:minor; then what open answered
    provider = console(storage, "pv-example-drm-provider")
    for c, link, node, minor in [("pv-example-drm-master", "drm-master", "/dev/dri/card0", 0),
                                 ("pv-example-drm-render", "drm-render", "/dev/dri/renderD128",
                                  128)]:
        m = re.search(r"^\s+drm:\s+%s -> %s: %s is char 226:%d, as the provider exports it; "
                      r"(open %s: (\w+) .*|%s: driver .*)$" % (
                          link, c, re.escape(node), minor, re.escape(node), re.escape(node)),
                      proof, re.M)
        assert m, proof
        assert re.search(r"node %s: char 226:%d " % (re.escape(node), minor), provider), provider
        log = console(storage, c)
        assert re.search(r"^%s: node %s: char 226:%d mode" % (c, re.escape(node), minor), log,
                         re.M), log
        if m.group(2):  # no driver here: the errno is the kernel's, not made up
            assert m.group(2) in ("ENXIO", "ENODEV"), proof
            assert not os.path.exists("/sys/dev/char/226:%d" % minor)
        # the consumer waited for the node instead of failing before it was injected
        assert "open %s: ENOENT" % node not in log, log
    # wayland: a frame count > 0
    m = re.search(r"^\s+wayland:\s+wayland-0 -> pv-example-wayland-client: presented (\d+) "
                  r"frames to Weston in pv-example-wayland-server$", proof, re.M)
    assert m and int(m.group(1)) > 0, proof
    assert len(proof.strip().splitlines()) == 7, proof

    # the demo says it shut down cleanly, and it did; the logs are kept in the storage
    assert_nothing_left(tag, d, out)
    assert os.path.exists(os.path.join(storage, "trails", "0", ".pvr", "json"))
    assert "[xconnect]" in open(os.path.join(storage, "pv-appengine.log")).read()


def test_demo_add_your_own_container(tmp):
    """docs/EXAMPLES.md's three steps: a manifest of your own (here a second echo client that
    reuses the unix client's binary), pv-mkexample, scripts/demo --add."""
    tag, d = tmp
    ex = os.path.join(d, "my-echo-client")
    os.makedirs(ex)
    run_json = {"#spec": "service-manifest-run@1", "group": "app", "roles": [],
                "restart_policy": "container", "status_goal": "STARTED",
                "services": {"required": [{"name": "raw-unix", "type": "unix",
                                           "target": "/run/pv/services/raw-unix.sock"}]}}
    with open(os.path.join(ex, "run.json"), "w") as f:
        json.dump(run_json, f)
    with open(os.path.join(ex, "image.conf"), "w") as f:
        f.write('BINS="pv-example-unix-client"\n'
                'INIT="/usr/bin/pv-example-unix-client --interval 1"\n')
    images = os.path.join(d, "images")
    r = pvtest.run([MKEXAMPLE, ex, BIN, images])
    tgz = os.path.join(images, "my-echo-client.pvrexport.tgz")
    assert os.path.exists(tgz), r.stderr

    storage = os.path.join(d, "storage")
    # running (not --once: the demo proves its own stacks, not what you added), until your
    # container has logged an echo through its link
    rc, out, echoed = run_demo_until(
        tag, d, lambda _: re.search(r"echo: ping \d+", console_now(storage, "my-echo-client")),
        "--stack", "unix", "--add", tgz, "--storage", storage, "--timeout", "120")
    assert echoed, (out, console_now(storage, "my-echo-client"))
    assert rc == 130, out
    assert re.search(r"^\s+my-echo-client\s+(STARTED|READY)\s", out, re.M), out
    assert re.search(r"^\s+my-echo-client --raw-unix \(unix\)--> pv-example-unix-server\s+\[up\]",
                     out, re.M), out
    assert_nothing_left(tag, d, out)

    # a second run reuses the storage it made and leaves out what was not asked for
    rc, out2 = run_demo(tag, d, "--once", "--stack", "rest", "--storage", storage,
                        "--timeout", "120")
    assert rc == 0, out2
    assert re.search(r"^\s+rest:\s+network-manager -> ", out2, re.M), out2
    assert not re.search(r"^\s+(my-echo-client|pv-example-unix-client)\s", out2, re.M), out2
    assert not os.path.exists(os.path.join(storage, "logs", "0", "my-echo-client"))
    assert_nothing_left(tag, d, out2)


def test_demo_refuses_bad_input_and_foreign_storage(tmp):
    tag, d = tmp
    foreign = os.path.join(d, "foreign")
    os.makedirs(foreign)
    keep = os.path.join(foreign, "precious")
    open(keep, "w").close()
    rc, out = run_demo(tag, d, "--once", "--stack", "unix", "--storage", foreign)
    assert rc != 0 and "refusing to wipe" in out, out
    assert os.path.exists(keep)
    # a storage another demo holds (its lock on .pv-demo) is left alone
    busy = os.path.join(d, "busy")
    os.makedirs(busy)
    with open(os.path.join(busy, ".pv-demo"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        open(os.path.join(busy, "rev"), "w").close()
        rc, out = run_demo(tag, d, "--once", "--stack", "unix", "--storage", busy)
    assert rc != 0 and "another demo is using" in out, out
    assert os.path.exists(os.path.join(busy, "rev"))
    rc, out = run_demo(tag, d, "--once", "--stack", "unix,nosuch")
    assert rc == 2 and "unknown stack 'nosuch'" in out, out
    rc, out = run_demo(tag, d, "--once", "--add", os.path.join(d, "none.pvrexport.tgz"))
    assert rc == 2 and "no such file" in out, out
    rc, out = run_demo(tag, d, "--once", "--add", keep)
    assert rc == 2 and "not a <name>.pvrexport.tgz" in out, out
    rc, out = run_demo(tag, d, "--once", "--timeout", "soon")
    assert rc == 2 and "seconds, please" in out, out
    r = subprocess.run([DEMO, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("usage: scripts/demo"), r
    r = subprocess.run([DEMO, "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr and not r.stdout, r


def test_mkexample_cache_and_lxc_conf(tmp):
    _, d = tmp
    out = os.path.join(d, "img")
    ex = os.path.join(SRC, "examples", "pv-example-drm-provider")
    r = pvtest.run([MKEXAMPLE, ex, BIN, out])
    assert "building image" in r.stderr, r.stderr
    tgz = os.path.join(out, "pv-example-drm-provider.pvrexport.tgz")
    st = os.stat(tgz)
    r = pvtest.run([MKEXAMPLE, ex, BIN, out])
    assert "up to date" in r.stderr and os.stat(tgz).st_mtime_ns == st.st_mtime_ns, r.stderr
    # the export holds the image.conf's LXC_CONF line in the container's lxc.container.conf
    x = os.path.join(d, "x")
    os.makedirs(x)
    pvtest.run(["tar", "xzf", tgz, "-C", x])
    j = json.load(open(os.path.join(x, "json")))
    conf = open(os.path.join(x, "objects", j["pv-example-drm-provider/lxc.container.conf"])).read()
    assert "lxc.mount.entry = /dev/dri dev/dri none bind,optional,create=dir" in conf
    assert j["pv-example-drm-provider/services.json"]["services"][0]["name"] == "drm-master"
    assert j["pv-example-drm-provider/run.json"]["group"] == "app"
    # a changed input (the build's binary) makes a new image
    os.utime(tgz, ns=(0, 0))
    bindir = os.path.join(d, "bin")
    os.makedirs(bindir)
    with open(os.path.join(BIN, "pv-example-drm-provider"), "rb") as f:
        data = f.read()
    p = os.path.join(bindir, "pv-example-drm-provider")
    with open(p, "wb") as f:
        f.write(data + b"\0")
    os.chmod(p, 0o755)
    r = pvtest.run([MKEXAMPLE, ex, bindir, out])
    assert "building image" in r.stderr, r.stderr


def test_demo_keeps_running_and_its_hints_work_until_ctrl_c(tmp):
    """Without --once the demo stays up and prints commands to look around: each of them works
    on the running stack. Ctrl-C (SIGINT to the whole foreground process group, as a terminal
    sends it) then shuts everything down cleanly, even when the demo was started with SIGINT
    ignored (as a background job of a script is)."""
    tag, d = tmp
    storage = os.path.join(d, "storage")

    def look_around(text):
        assert "Ctrl-C here stops everything" in text, text
        hints = [line.strip() for line in
                 text.split("Ctrl-C here stops everything")[1].splitlines()
                 if line.startswith("  /") or line.startswith("  tail ")
                 or line.startswith("  less ")]
        assert len(hints) == 5, text
        ls_cmd, graph_cmd, enter_cmd, tail_cmd, less_cmd = hints
        r = subprocess.run(ls_cmd.split(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert sorted(c["name"] for c in json.loads(r.stdout)) == sorted(STACKS["unix"]), r.stdout
        r = subprocess.run(graph_cmd.split(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)[0].get("state") == "up", r.stdout
        assert enter_cmd.endswith("-c pv-example-unix-client"), enter_cmd
        r = subprocess.run(enter_cmd.split() + ["ls", "/run/pv/services"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and "raw-unix.sock" in r.stdout, (r.stdout, r.stderr)
        assert "echo: ping" in open(tail_cmd.split()[-1]).read()
        assert os.path.exists(less_cmd.split()[-1])
        lxc = [os.path.join(d, e, "lxc") for e in os.listdir(d) if e.startswith("pvdemo-")]
        assert len(lxc) == 1 and sorted(pvtest.lxc_running(lxc[0])) == sorted(STACKS["unix"]), text
        return True

    rc, text, held = run_demo_until(tag, d, look_around, "--stack", "unix", "--storage", storage,
                                    sigint_ignored=True)
    assert held, text
    assert rc == 130, text
    assert "exited by itself" not in text, text
    assert_nothing_left(tag, d, text)


def test_demo_cleans_up_after_a_killed_run(tmp):
    """A demo killed by SIGKILL (no shutdown) leaves its containers running and their volumes
    mounted; the next demo on that storage stops and unmounts them before it starts its own."""
    tag, d = tmp
    storage = os.path.join(d, "storage")
    rc, out, held = run_demo_until(tag, d, lambda _: True, "--stack", "unix", "--storage",
                                   storage, stop=signal.SIGKILL)
    assert held and rc == -signal.SIGKILL, out
    (old,) = [os.path.join(d, e) for e in os.listdir(d) if e.startswith("pvdemo-")]
    # what a killed demo leaves behind (else this test proves nothing)
    assert pvtest.lxc_running(os.path.join(old, "lxc")), out
    assert pvtest.mounts_under(old), out
    rc, out = run_demo(tag, d, "--once", "--stack", "unix", "--storage", storage)
    assert rc == 0, out
    s = section(out, "an earlier demo on this storage was killed before its shutdown")
    assert "its run dir: %s" % old in s, s
    assert "LEFT: running containers" in s and "LEFT: mounts" in s, s
    assert not os.path.exists(old), out
    assert_nothing_left(tag, d, out)


def test_demo_stops_everything_when_its_terminal_hangs_up(tmp):
    """SIGHUP to the demo's process group (the terminal closed): pantavisor powers off in order
    and the demo's shutdown finds nothing to clean up, though nobody reads its output."""
    tag, d = tmp
    storage = os.path.join(d, "storage")
    rc, out, held = run_demo_until(tag, d, lambda _: True, "--stack", "unix", "--storage",
                                   storage, stop=signal.SIGHUP)
    assert held and rc == 129, out
    # the demo moves pantavisor's log to the storage only when its shutdown found it clean
    with open(os.path.join(storage, "pv-appengine.log")) as f:
        log = f.read()
    assert "SIGHUP: poweroff" in log, log
    assert_nothing_left(tag, d, out, said=False)


def test_demo_with_spaces_in_its_paths(tmp):
    """Storage and run dir below paths with spaces: the containers' mounts (lxc.mount.entry is
    an fstab line), the proofs, and the demo's own check for leftovers (mountinfo escapes)."""
    tag, d = tmp
    sp = os.path.join(d, "a dir")
    os.mkdir(sp)
    storage = os.path.join(sp, "my storage")
    rc, out = run_demo(tag, sp, "--once", "--stack", "unix", "--storage", storage)
    assert rc == 0, out
    assert "echoed by pv-example-unix-server" in section(out, "proof"), out
    assert_nothing_left(tag, sp, out)


def test_demo_hot_update_of_one_container(tmp):
    """docs/EXAMPLES.md "Update a running container", step by step on the running demo: a new
    image of the unix client merged into the running revision with pvtx, installed with
    pvcontrol: only the client restarts, the link comes back up to it, the update commits."""
    tag, d = tmp
    storage = os.path.join(d, "storage")
    w = os.path.join(d, "upd")
    seen = {}

    def update(out):
        m = re.search(r"(\S+/pvcontrol) -s (\S+) ls", out)
        assert m, out
        pvc = [m.group(1), "-s", m.group(2)]

        def pids():
            r = subprocess.run(pvc + ["ls"], capture_output=True, text=True, timeout=30)
            return {c["name"]: c.get("pid") for c in json.loads(r.stdout)}

        before = pids()
        src = os.path.join(w, "src", "pv-example-unix-client")
        shutil.copytree(os.path.join(SRC, "examples", "pv-example-unix-client"), src)
        with open(os.path.join(src, "image.conf")) as f:
            conf = re.sub(r"^INIT=.*$",
                          'INIT="/usr/bin/pv-example-unix-client --ask-fd --interval 500ms"',
                          f.read(), flags=re.M)
        with open(os.path.join(src, "image.conf"), "w") as f:
            f.write(conf)
        img = os.path.join(w, "img")
        pvtest.run([MKEXAMPLE, "-q", src, BIN, img])
        export = os.path.join(w, "export")
        os.makedirs(os.path.join(export, "objects"))
        base = subprocess.run(pvc + ["steps", "get", "0"], capture_output=True, timeout=30)
        assert base.returncode == 0, base.stderr
        with open(os.path.join(w, "base.json"), "wb") as f:
            f.write(base.stdout)
        env = dict(os.environ, PVTXDIR=os.path.join(w, "pvtx"))
        pvtx = os.path.join(BIN, "pvtx")
        pvtest.run([pvtx, "begin", os.path.join(w, "base.json"), os.path.join(export, "objects")],
                   env=env)
        pvtest.run([pvtx, "add", os.path.join(img, "pv-example-unix-client.pvrexport.tgz")],
                   env=env)
        with open(os.path.join(export, "json"), "wb") as f:
            f.write(subprocess.run([pvtx, "show"], env=env, capture_output=True,
                                   check=True).stdout)
        r = subprocess.run(pvc + ["steps", "install", "--run", export], capture_output=True,
                           text=True, timeout=180)
        assert r.returncode == 0, (r.stdout, r.stderr)
        lines = r.stdout.splitlines()
        assert lines[0].startswith("locals/install-") and lines[-1].startswith("UPDATED 100%"), \
            r.stdout
        seen.update(rev=lines[0], before=before, after=pids())
        graph = subprocess.run(pvc + ["graph", "ls"], capture_output=True, text=True, timeout=30)
        seen["graph"] = json.loads(graph.stdout)
        return True

    rc, out, held = run_demo_until(tag, d, update, "--stack", "unix", "--storage", storage,
                                   timeout=300)
    assert held and rc == 130, out
    before, after = seen["before"], seen["after"]
    assert after["pv-example-unix-server"] == before["pv-example-unix-server"], seen
    assert after["pv-example-unix-client"] not in (None, before["pv-example-unix-client"]), seen
    (link,) = seen["graph"]
    assert link["consumer_pid"] == after["pv-example-unix-client"] and link["state"] == "up", seen
    log = os.path.join(storage, "logs", seen["rev"], "pv-example-unix-client", "lxc",
                       "console.log")
    assert pvtest.wait_until(lambda: "echo: ping" in open(log).read(), 10), log
    assert_nothing_left(tag, d, out)
