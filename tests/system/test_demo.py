# test_demo.py: the README's command one (scripts/demo --once) on the stacks whose xconnect
# plugins exist (unix, rest): every proof line, the summary, and nothing left behind.
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

import pvtest

SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(SRC, "scripts", "demo")
MKEXAMPLE = os.path.join(SRC, "tools", "scripts", "pv-mkexample")
BIN = pvtest.BIN
NAMES = ["pv-example-unix-server", "pv-example-unix-client", "pv-example-rest-server",
         "pv-example-rest-client"]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not all(os.path.exists(os.path.join(BIN, b)) for b in
                               ["pantavisor", "pv-engine", "pv-ctrl", "pv-xconnect", "pvcontrol"]
                               + NAMES), reason="engine, daemons or examples not built"),
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


def test_demo_once_unix_rest_proofs_and_clean_shutdown(tmp):
    tag, d = tmp
    storage = os.path.join(d, "storage")
    rc, out = run_demo(tag, d, "--once", "--stack", "unix,rest", "--storage", storage,
                       "--timeout", "120")
    assert rc == 0, out

    # every container listed by pv-ctrl as STARTED or READY
    for n in NAMES:
        assert re.search(r"^\s+%s\s+(STARTED|READY)\s" % re.escape(n), out, re.M), out
    assert "dbus" not in out.split("== containers")[1].split("== xconnect")[0], out

    # the graph with both links up (as pv-xconnect reported them)
    assert re.search(r"pv-example-unix-client --raw-unix \(unix\)--> pv-example-unix-server"
                     r"\s+\[up\]", out), out
    assert re.search(r"pv-example-rest-client --network-manager \(rest\)--> "
                     r"pv-example-rest-server\s+\[up\]", out), out

    # the proof lines, read from the consumers' console logs
    m = re.search(r'^\s+unix:\s+raw-unix -> pv-example-unix-client: "ping (\d+)" echoed by '
                  r'pv-example-unix-server \(fd (received|none received)[^)]*\)', out, re.M)
    assert m, out
    m = re.search(r'^\s+rest:\s+network-manager -> pv-example-rest-client: 200: (\{.*\})$',
                  out, re.M)
    assert m, out
    assert '"client": "pv-example-rest-client"' in m.group(1), out
    assert re.search(r'"role": "[^"]+"', m.group(1)), out  # the role header, not null
    # only the requested stacks are proved; nothing is reported as failed
    assert not re.search(r"^\s+(dbus|drm|wayland):", out, re.M), out
    assert "FAILED" not in out, out

    # the demo says it shut down cleanly, and it did
    assert "clean: no processes, containers, mounts or loop devices left" in out, out
    assert pvtest.mounts_under(d) == [], out
    assert pvtest.loops_under(d) == [], out
    assert pvtest.procs_with_env("PVTEST_ID", tag) == [], out
    assert [e for e in os.listdir(d) if e.startswith("pvdemo-")] == [], "run dir kept"
    # the storage holds what pv-appengine deployed, and the consumers' logs
    assert os.path.exists(os.path.join(storage, "trails", "0", ".pvr", "json"))
    log = os.path.join(storage, "logs", "0", "pv-example-unix-client", "lxc", "console.log")
    assert "echo: ping" in open(log, errors="replace").read()

    # a second run reuses the storage it made (rebuilt from pvtx.d) and the cached images
    rc, out2 = run_demo(tag, d, "--once", "--stack", "unix", "--storage", storage,
                        "--timeout", "120")
    assert rc == 0, out2
    assert re.search(r"^\s+unix:\s+raw-unix -> ", out2, re.M), out2
    assert not re.search(r"^\s+pv-example-rest-client\s", out2, re.M), out2
    assert "clean: no processes" in out2, out2


def test_demo_refuses_foreign_storage_and_bad_stack(tmp):
    tag, d = tmp
    foreign = os.path.join(d, "foreign")
    os.makedirs(foreign)
    keep = os.path.join(foreign, "precious")
    open(keep, "w").close()
    rc, out = run_demo(tag, d, "--once", "--stack", "unix", "--storage", foreign)
    assert rc != 0 and "refusing to wipe" in out, out
    assert os.path.exists(keep)
    # a storage another demo holds (its lock on .pv-demo) is left alone
    import fcntl
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
    import json
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


def test_demo_keeps_running_until_ctrl_c(tmp):
    """Without --once the demo stays up with its containers running; Ctrl-C (SIGINT to the whole
    foreground process group, as a terminal sends it) shuts everything down cleanly."""
    import select
    import time
    tag, d = tmp
    storage = os.path.join(d, "storage")
    env = dict(os.environ, TMPDIR=d, PVTEST_ID=tag)
    p = subprocess.Popen([DEMO, "--bin", BIN, "--stack", "unix", "--storage", storage],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    out = b""
    try:
        deadline = time.time() + 240
        while b"Ctrl-C stops it" not in out and time.time() < deadline and p.poll() is None:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                out += os.read(p.stdout.fileno(), 65536)
        assert b"Ctrl-C stops it" in out, out.decode(errors="replace")
        time.sleep(3)
        assert p.poll() is None, out.decode(errors="replace")
        lxc = [os.path.join(d, e, "lxc") for e in os.listdir(d) if e.startswith("pvdemo-")]
        assert len(lxc) == 1 and sorted(pvtest.lxc_running(lxc[0])) == [
            "pv-example-unix-client", "pv-example-unix-server"], out
        os.killpg(p.pid, signal.SIGINT)
        rest, _ = p.communicate(timeout=120)
        out += rest
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    text = out.decode(errors="replace")
    assert p.returncode == 130, text
    assert "clean: no processes, containers, mounts or loop devices left" in text, text
    assert pvtest.mounts_under(d) == [] and pvtest.loops_under(d) == [], text
    assert pvtest.procs_with_env("PVTEST_ID", tag) == [], text
