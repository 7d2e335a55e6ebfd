"""pv-xconnect wayland links: a real Weston (headless backend, desktop-shell) in the provider's
mount namespace, the example client in the consumer's, talking through the socket pv-xconnect
injects; the client's shm buffers are memfds, so frames only arrive if fds cross the proxy."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xconnect_env import Env, link, wait_for  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)"),
    pytest.mark.skipif(not shutil.which("weston"), reason="weston not installed"),
]

SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.path.join(SRC, "examples", "pv-example-wayland-server")


def client_binary():
    b = os.path.join(os.environ.get("PV_BIN", ""), "pv-example-wayland-client")
    if not os.path.exists(b):
        raise RuntimeError("pv-example-wayland-client not built: %s (set PV_BIN)" % b)
    return b


@pytest.fixture
def env():
    e = Env()
    try:
        yield e
    finally:
        e.close()


def start_weston(env, name="prov"):
    """Weston in its own mount namespace; XDG_RUNTIME_DIR is on that namespace's tmpfs."""
    root = os.path.join(env.dir, name)
    runtime = os.path.join(root, "xdg")
    argv = ["env", "-u", "WAYLAND_DISPLAY", "-u", "DISPLAY", "XDG_RUNTIME_DIR=" + runtime,
            "PV_EXAMPLE_WESTON_INI=" + os.path.join(SERVER, "weston.ini"),
            os.path.join(SERVER, "start.sh")]
    prov = env.ns(name, argv)
    sock = os.path.join(runtime, "wayland-0")
    assert wait_for(lambda: os.path.exists(prov.path(sock)), 20), open(env.log.name).read()
    # invisible outside the compositor's namespace
    assert not os.path.exists(sock)
    return prov, sock


def run_client(cons, target, frames, timeout=60):
    return subprocess.run(
        ["nsenter", "-t", str(cons.pid), "-m", client_binary(), "-d", target, "-f",
         str(frames), "--once"], capture_output=True, text=True, timeout=timeout)


def link_weston(env, target_rel="/run/wayland-0", hide=None):
    prov, sock = start_weston(env)
    cons = env.ns("cons")
    target = cons.root + target_rel
    env.start_daemon()
    l = link("cons", cons.pid, "prov", prov.pid, "wayland-0", target, sock, type_="wayland")
    if hide:
        l["hide_globals"] = hide
    env.engine.push([l])
    assert env.engine.wait_state("cons", "wayland-0", "up", 10), env.daemon_log()[-2000:]
    return prov, cons, sock, target


def test_client_presents_frames_through_injected_socket(env):
    prov, cons, sock, target = link_weston(env)
    st = os.stat(cons.path(target))
    assert stat.S_ISSOCK(st.st_mode)
    r = run_client(cons, target, 30)
    assert r.returncode == 0, r.stdout + r.stderr + env.daemon_log()[-2000:]
    assert "pv-example-wayland-client: presented 30 frames" in r.stdout, r.stdout
    # a second client on the same link (each connection is its own proxy)
    r = run_client(cons, target, 5)
    assert "presented 5 frames" in r.stdout, r.stdout + r.stderr


def test_client_waits_until_link_is_back(env):
    prov, cons, sock, target = link_weston(env)
    the_link = env.engine.links
    env.engine.push([])
    assert wait_for(lambda: not os.path.exists(cons.path(target)))
    # without the link the consumer has no display: the client waits for one
    c = subprocess.Popen(
        ["nsenter", "-t", str(cons.pid), "-m", client_binary(), "-d", target, "-f", "3",
         "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            c.wait(1.5)
        # the link comes back: the same client connects and presents its frames
        env.engine.push(the_link)
        out, _ = c.communicate(timeout=30)
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()
    assert "waiting for the compositor" in out, out
    assert "presented 3 frames" in out, out + env.daemon_log()[-2000:]
    assert c.returncode == 0


def test_teardown_cuts_live_clients_off(env):
    prov, cons, sock, target = link_weston(env)
    c = subprocess.Popen(
        ["nsenter", "-t", str(cons.pid), "-m", client_binary(), "-d", target, "-f", "1000000",
         "--once"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "first frame presented" not in line:
            line = c.stdout.readline()
            assert line, "client ended before its first frame"
        env.engine.push([])
        # the client's display goes away with the link: --once makes it exit, non-zero
        assert c.wait(10) != 0
        out = c.stdout.read()
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()
    assert "presented 1000000" not in out
    assert not os.path.exists(cons.path(target))
    assert prov.p.poll() is None  # the compositor itself is unaffected


def test_upstream_client_sees_compositor_globals(env):
    if not shutil.which("weston-info"):
        pytest.skip("weston-info not installed")
    prov, cons, sock, target = link_weston(env)
    # a client that is not ours: it binds every global the compositor advertises
    r = subprocess.run(["nsenter", "-t", str(cons.pid), "-m", "env", "WAYLAND_DISPLAY=" + target,
                        "weston-info"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    for iface in ("'wl_compositor'", "'wl_shm'", "'xdg_wm_base'", "'wl_output'"):
        assert iface in r.stdout, r.stdout


def weston_info(cons, target):
    r = subprocess.run(["nsenter", "-t", str(cons.pid), "-m", "env", "WAYLAND_DISPLAY=" + target,
                        "weston-info"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_hidden_globals_are_not_seen_and_clients_still_draw(env):
    """hide_globals on the link: an upstream client listing every global does not see
    wl_output or weston_screenshooter (a screen-grabbing global), sees the rest; our client still presents frames through the filter
    (every message is parsed, fds still cross)."""
    if not shutil.which("weston-info"):
        pytest.skip("weston-info not installed")
    prov, cons, sock, target = link_weston(env, hide=["wl_output", "weston_screenshooter"])
    out = weston_info(cons, target)
    for iface in ("'wl_compositor'", "'wl_shm'", "'xdg_wm_base'"):
        assert iface in out, out
    for iface in ("'wl_output'", "'weston_screenshooter'"):
        assert iface not in out, out
    r = run_client(cons, target, 30)
    assert r.returncode == 0 and "presented 30" in r.stdout, r.stdout + r.stderr
    # and straight at the compositor they are there: the filter hid them, not weston
    direct = subprocess.run(["nsenter", "-t", str(prov.pid), "-m", "env",
                             "WAYLAND_DISPLAY=" + sock, "weston-info"],
                            capture_output=True, text=True, timeout=30).stdout
    assert "'wl_output'" in direct and "'weston_screenshooter'" in direct, direct


def test_compositor_restart_relinks_and_client_redraws(env):
    prov, cons, sock, target = link_weston(env)
    out = os.path.join(env.dir, "client.out")
    with open(out, "w") as f:
        # without --once the client keeps its window and reconnects when the display goes away
        c = subprocess.Popen(["nsenter", "-t", str(cons.pid), "-m", client_binary(), "-d",
                              target, "-f", "3"], stdout=f, stderr=subprocess.STDOUT)
    log = lambda: open(out).read()  # noqa: E731
    try:
        assert wait_for(lambda: "presented 3 frames" in log(), 30), log()
        # the compositor's container restarts: a new process in a new namespace, and the
        # engine pushes the link again with the new provider pid
        prov.kill()
        assert wait_for(lambda: "connection lost" in log(), 10), log()
        prov2, sock2 = start_weston(env, "prov2")
        env.engine.push([link("cons", cons.pid, "prov2", prov2.pid, "wayland-0", target, sock2,
                              type_="wayland")])
        assert env.engine.wait_state("cons", "wayland-0", "up", 10)
        assert wait_for(lambda: log().count("presented 3 frames") >= 2, 30), log()
        assert c.poll() is None
    finally:
        if c.poll() is None:
            c.kill()
        c.wait()


def test_pending_until_compositor_socket_exists(env):
    prov, sock = start_weston(env)
    cons = env.ns("cons")
    env.start_daemon()
    target = cons.root + "/run/wayland-0"
    # the export names a display the compositor has not created yet
    later = os.path.join(os.path.dirname(sock), "wayland-9")
    env.engine.push([link("cons", cons.pid, "prov", prov.pid, "wayland-0", target, later,
                          type_="wayland")])
    l = env.engine.wait_state("cons", "wayland-0", "pending", 3)
    assert l and "wayland-9" in l["error"], env.engine.status[-1:]
    assert not os.path.exists(cons.path(target))
    # it appears (a symlink to the live socket, resolved inside the provider's root)
    os.symlink("wayland-0", prov.path(later))
    assert env.engine.wait_state("cons", "wayland-0", "up", 15)
    r = run_client(cons, target, 3)
    assert "presented 3 frames" in r.stdout, r.stdout + r.stderr
