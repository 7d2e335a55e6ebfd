# test_init.py: pantavisor init against fake children written by the test (PV_LIBEXEC_DIR):
# spawn arguments, initctl fd, respawn backoff, missing binaries, reaping, ordered shutdown.
import os
import signal
import socket
import struct
import time

import pytest

import pvtest

PANTAVISOR = pvtest.bin_path("pantavisor")
pytestmark = pytest.mark.skipif(not os.path.exists(PANTAVISOR), reason="pantavisor not built")

# A fake daemon: logs "<name> start <pid> <args>" and "<name> term <time>" to the shared event
# log; on SIGTERM it waits TERM_DELAY seconds (to make the shutdown order observable).
FAKE = r"""#!/bin/sh
n=${0##*/}
ev="$PVTEST_EVENTS"
trap 'echo "$n term $(date +%s.%N)" >>"$ev"; sleep ${TERM_DELAY:-0}; echo "$n exit $(date +%s.%N)" >>"$ev"; exit 0' TERM
echo "$n start $$ $(date +%s.%N) $*" >>"$ev"
[ -e /proc/$$/fd/3 ] && echo "$n fd3 $(readlink /proc/$$/fd/3)" >>"$ev"
if [ -n "$EXIT_NOW" ] && [ "$n" = "$EXIT_NOW" ]; then
	# exit once the others have their TERM trap (set before their start line), or a test that
	# looks for their "term" line races their start
	i=0; while [ -n "$EXIT_AFTER_ALL" ] && [ $i -lt 200 ] && [ "$(grep -c ' start ' "$ev")" -lt 3 ]; do sleep 0.05; i=$((i+1)); done
	exit "${EXIT_CODE:-1}"
fi
if [ -n "$ORPHANS" ] && [ "$n" = pv-ctrl ]; then
	i=0; while [ $i -lt 5 ]; do (sleep 0.2 &); i=$((i+1)); done
fi
while :; do sleep 0.05; done
"""

REQ = struct.Struct("<I32s")
REP = struct.Struct("<iI" + "32siI" * 8)

# A fake engine in Python that drives initctl from a script given in env INITCTL_SCRIPT.
FAKE_ENGINE_PY = r"""#!/usr/bin/env python3
import os, signal, socket, struct, sys, time
ev = os.environ["PVTEST_EVENTS"]
def log(s):
    with open(ev, "a") as f:
        f.write(s + "\n")
log("pv-engine start %d %f %s" % (os.getpid(), time.time(), " ".join(sys.argv[1:])))
signal.signal(signal.SIGTERM, lambda *a: (log("pv-engine term %f" % time.time()), sys.exit(0)))
s = socket.socket(fileno=3)
REQ = struct.Struct("<I32s"); REP = struct.Struct("<iI" + "32siI" * 8)
def ask(op, name="", quiet=False):
    s.send(REQ.pack(op, name.encode()))
    r = REP.unpack(s.recv(REP.size))
    d = {r[2 + 3*i].rstrip(b"\0").decode(): (r[3 + 3*i], r[4 + 3*i]) for i in range(r[1])}
    if not quiet:
        log("reply %d %d %s" % (op, r[0], " ".join("%s:%d:%d" % (k, v[0], v[1]) for k, v in d.items())))
    return d
for line in os.environ.get("INITCTL_SCRIPT", "").split(";"):
    if not line.strip():
        continue
    w = line.split()
    if w[0] == "sleep":
        time.sleep(float(w[1])); continue
    if w[0] == "gone":  # LIST until the daemon's pid is 0 (10 s at most), log the last reply
        end = time.time() + 10
        while ask(5, quiet=True)[w[1]][0] and time.time() < end:
            time.sleep(0.05)
        ask(5); continue
    ask(int(w[0]), w[1] if len(w) > 1 else "")
while True:
    time.sleep(0.05)
"""


def events(dev):
    try:
        with open(dev.path("events")) as f:
            return [line.split() for line in f.read().splitlines() if line.strip()]
    except OSError:
        return []


def starts(dev, name):
    return [e for e in events(dev) if e[0] == name and e[1] == "start"]


def setup_libexec(dev, names=("pv-engine", "pv-ctrl", "pv-xconnect"), engine_py=False):
    for n in names:
        p = os.path.join(dev.libexec, n)
        with open(p, "w") as f:
            f.write(FAKE_ENGINE_PY if (engine_py and n == "pv-engine") else FAKE)
        os.chmod(p, 0o755)


def start_init(dev, mode="appengine", **env):
    e = dev.env(PV_LIBEXEC_DIR=dev.libexec, PVTEST_EVENTS=dev.path("events"), **env)
    args = [PANTAVISOR, "--mode", mode, "--rundir", dev.rundir, "--storage", dev.storage,
            "--config", dev.path("none.config"), "--cmdline", "pv_rev=0 pv_try=1"]
    return dev.start(args, env=e)


def all_started(dev, names=("pv-engine", "pv-ctrl", "pv-xconnect")):
    return all(starts(dev, n) for n in names)


def test_children_spawned_with_args_and_initctl_fd(device):
    setup_libexec(device)
    p = start_init(device)
    assert pvtest.wait_until(lambda: all_started(device), 5), pvtest.read_log(p)
    for n in ("pv-engine", "pv-ctrl", "pv-xconnect"):
        e = starts(device, n)[0]
        args = " ".join(e[4:])
        assert "--mode appengine" in args and "--rundir %s" % device.rundir in args
        assert "--storage %s" % device.storage in args and "--cmdline pv_rev=0 pv_try=1" in args
    pvtest.wait_until(lambda: len([e for e in events(device) if e[1] == "fd3"]), 2)
    time.sleep(0.2)  # the others would have written theirs by now, too
    fd3 = {e[0]: e[2] for e in events(device) if e[1] == "fd3"}
    assert fd3.get("pv-engine", "").startswith("socket:"), fd3
    assert "pv-ctrl" not in fd3 and "pv-xconnect" not in fd3, fd3  # only the engine gets it
    assert os.path.isdir(device.rundir)
    assert pvtest.stop(p) == 0
    device.assert_clean()


def test_kill9_respawns_and_missing_binary_not_respawned(device):
    setup_libexec(device, names=("pv-engine", "pv-ctrl"))  # no pv-xconnect
    p = start_init(device)
    assert pvtest.wait_until(lambda: all_started(device, ("pv-engine", "pv-ctrl")), 5)
    pid = int(starts(device, "pv-ctrl")[0][2])
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    assert pvtest.wait_until(lambda: len(starts(device, "pv-ctrl")) == 2, 5), pvtest.read_log(p)
    second = starts(device, "pv-ctrl")[1]
    assert int(second[2]) != pid
    assert float(second[3]) - t0 >= 0.09  # not before the first backoff step
    time.sleep(1.0)
    log = pvtest.read_log(p)
    assert log.count("pv-xconnect not found") == 1, log
    assert "[pantavisor] " in log and "\t -- [init]: " in log
    assert not starts(device, "pv-xconnect")
    assert pvtest.stop(p) == 0


def test_crash_loop_backoff_doubles(device):
    setup_libexec(device)
    p = start_init(device, EXIT_NOW="pv-xconnect", EXIT_CODE="1")
    assert pvtest.wait_until(lambda: len(starts(device, "pv-xconnect")) >= 6, 8), pvtest.read_log(p)
    t = [float(e[3]) for e in starts(device, "pv-xconnect")[:6]]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # 100, 200, 400, 800, 1600 ms (+ fork/exec of a shell each time)
    for i, g in enumerate(gaps):
        want = 0.1 * (2 ** i)
        assert want * 0.9 <= g <= want + 0.5, gaps
    assert "respawning pv-xconnect in 1600 ms" in pvtest.read_log(p)
    assert pvtest.stop(p) == 0


def test_orphans_are_reaped(device):
    setup_libexec(device)
    p = start_init(device, ORPHANS="1")
    assert pvtest.wait_until(lambda: all_started(device), 5)
    time.sleep(1.0)  # the orphaned sleeps (0.2 s) have exited and were re-parented to init

    def zombies():
        z = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/status" % d) as f:
                    st = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
            except OSError:
                continue
            if st.get("PPid", "").strip() == str(p.pid) and st.get("State", "").startswith("Z"):
                z.append(d)
        return z

    assert pvtest.wait_until(lambda: not zombies(), 3), zombies()
    assert pvtest.stop(p) == 0


# SIGHUP: the terminal that ran the appengine went away; stop as for SIGINT, not die mid-flight
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 3), (signal.SIGHUP, 3)])
def test_signal_ordered_shutdown(device, sig, code):
    setup_libexec(device)
    p = start_init(device, TERM_DELAY="0.5")
    assert pvtest.wait_until(lambda: all_started(device), 5)
    assert pvtest.stop(p, sig, timeout=20) == code, pvtest.read_log(p)
    ev = events(device)
    t = {(e[0], e[1]): float(e[2]) for e in ev if e[1] in ("term", "exit")}
    # the engine is told first and has exited before the others are told
    assert t[("pv-engine", "exit")] <= t[("pv-xconnect", "term")], ev
    assert t[("pv-engine", "exit")] <= t[("pv-ctrl", "term")], ev
    assert len(starts(device, "pv-engine")) == 1  # no respawn during shutdown
    device.assert_clean()


def test_hangup_means_nothing_to_an_embedded_init(device):
    setup_libexec(device)
    p = start_init(device, mode="embedded")
    assert pvtest.wait_until(lambda: all_started(device), 5), pvtest.read_log(p)
    p.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert p.poll() is None, pvtest.read_log(p)
    assert "SIGHUP" not in pvtest.read_log(p)
    assert not [e for e in events(device) if e[1] == "term"], events(device)
    assert pvtest.stop(p, signal.SIGINT, timeout=20) == 3, pvtest.read_log(p)


@pytest.mark.parametrize("status,code", [(10, 0), (11, 3)])
def test_engine_exit_status_reboot_poweroff(device, status, code):
    setup_libexec(device)
    p = start_init(device, EXIT_NOW="pv-engine", EXIT_CODE=str(status), EXIT_AFTER_ALL="1")
    assert pvtest.stop(p, sig=0, timeout=15) == code, pvtest.read_log(p)
    assert len(starts(device, "pv-engine")) == 1
    assert [e for e in events(device) if e[0] == "pv-ctrl" and e[1] == "term"]


def test_initctl_daemons_and_reboot(device):
    setup_libexec(device, engine_py=True)
    script = "sleep 0.5; 5; 4 pv-ctrl; gone pv-ctrl; sleep 0.5; 5; 3 pv-ctrl; 5; 4 nosuch; 4 pv-engine; 1"
    p = start_init(device, INITCTL_SCRIPT=script)
    assert pvtest.stop(p, sig=0, timeout=20) == 0, pvtest.read_log(p)
    replies = [e for e in events(device) if e[0] == "reply"]
    assert [r[1:3] for r in replies[:8]] == [["5", "0"], ["4", "0"], ["5", "0"], ["5", "0"], ["3", "0"], ["5", "0"],
                                         ["4", str(-2)], ["4", str(-1)]], replies[:8]
    # the REBOOT reply races with the SIGTERM of the ordered shutdown that follows it: init's
    # exit status 0 (reboot) and the engine's "term" event prove the request was honoured
    assert [e for e in events(device) if e[:2] == ["pv-engine", "term"]]
    first = dict(x.split(":", 1) for x in replies[0][3:])
    assert set(first) == {"pv-engine", "pv-ctrl", "pv-xconnect"}
    assert first["pv-ctrl"].endswith(":1") and not first["pv-ctrl"].startswith("0:")
    after_stop = dict(x.split(":", 1) for x in replies[2][3:])
    assert after_stop["pv-ctrl"] == "0:0", after_stop  # stopped
    still = dict(x.split(":", 1) for x in replies[3][3:])
    assert still["pv-ctrl"] == "0:0", still  # and not respawned 0.5 s later
    # START replies once the daemon is spawned: the LIST right after shows its pid
    after_start = dict(x.split(":", 1) for x in replies[5][3:])
    assert after_start["pv-ctrl"].endswith(":1") and not after_start["pv-ctrl"].startswith("0:")
    assert len(starts(device, "pv-ctrl")) == 2


def test_real_engine_starts_and_stops(device):
    engine = pvtest.bin_path("pv-engine")
    if not os.path.exists(engine):
        pytest.skip("bin/pv-engine not built")
    e = device.env(PV_LIBEXEC_DIR=pvtest.BIN)
    p = device.start([PANTAVISOR, "--mode", "appengine", "--rundir", device.rundir, "--storage",
                      device.storage, "--config", device.path("none.config")], env=e)
    assert pvtest.wait_until(lambda: "started pv-engine" in pvtest.read_log(p), 5)
    time.sleep(1.0)
    assert pvtest.stop(p, timeout=60) in (0, 3), pvtest.read_log(p)
    assert "stopping pv-engine" in pvtest.read_log(p) or "pv-engine (pid" in pvtest.read_log(p)
    device.assert_clean()


def test_appengine_factory_deploy_and_real_container(device):
    """pv-appengine: pvtx.d -> revision 0 -> pantavisor -> pv-engine starts the container;
    pventer reaches into it; SIGTERM stops everything and leaves nothing behind."""
    if not os.path.exists(pvtest.bin_path("pv-engine")):
        pytest.skip("bin/pv-engine not built")
    pvtxd = device.path("pvtx.d")
    os.makedirs(pvtxd)
    tgz = pvtest.build_export("c1", group="platform")
    os.symlink(tgz, os.path.join(pvtxd, "10-c1.pvrexport.tgz"))
    p = device.start_appengine(pvtxd=pvtxd)
    trail = os.path.join(device.storage, "trails", "0")
    boot = os.path.join(device.storage, "boot", "uboot.txt")
    assert pvtest.wait_until(lambda: os.path.exists(boot) and os.path.getsize(boot), 20), \
        pvtest.read_log(p)
    assert os.path.exists(os.path.join(trail, ".pv", "done"))
    with open(os.path.join(device.storage, "boot", "uboot.txt"), "rb") as f:
        assert f.read() == b"pv_rev=0\0\0"
    with open(os.path.join(trail, ".pv", "progress")) as f:
        assert '"status":"DONE"' in f.read()
    ok = pvtest.wait_until(lambda: pvtest.lxc_state(device.lxcpath, "c1") == "RUNNING", 40)
    assert ok, pvtest.read_log(p)
    r = pvtest.run([pvtest.bin_path("pventer"), "-P", device.lxcpath, "-c", "c1", "/bin/hostname"])
    assert r.stdout.strip() == "c1"
    assert pvtest.stop(p, signal.SIGTERM, timeout=60) == 0, pvtest.read_log(p)
    log = pvtest.read_log(p)
    assert "stopped by signal" in log and "pv-engine (pid" in log
    assert pvtest.wait_until(lambda: not device.leftovers()["mounts"], 10), device.leftovers()
    device.assert_clean()


def test_appengine_relaunch_on_reboot_stop_on_poweroff(device):
    """A fake engine asks for reboot on the first boot and power-off on the second: pv-appengine
    relaunches pantavisor once, passes pv_rev from uboot.txt, then stops with status 0."""
    setup_libexec(device, names=("pv-engine",))
    eng = os.path.join(device.libexec, "pv-engine")
    with open(eng, "w") as f:
        f.write('#!/bin/sh\necho "pv-engine start $$ 0 $*" >>"$PVTEST_EVENTS"\n'
                'if [ -e "$PVTEST_EVENTS.rebooted" ]; then exit 11; fi\n'
                ': >"$PVTEST_EVENTS.rebooted"; exit 10\n')
    os.makedirs(device.path("empty.d"))
    env = device.env(PV_LIBEXEC_DIR=device.libexec, PVTEST_EVENTS=device.path("events"))
    p = device.start_appengine(pvtxd=device.path("empty.d"), env=env)
    assert pvtest.stop(p, sig=0, timeout=30) == 0, pvtest.read_log(p)
    st = starts(device, "pv-engine")
    assert len(st) == 2, st
    assert all("--cmdline pv_rev=0" in " ".join(e) for e in st), st
    log = pvtest.read_log(p)
    assert "reboot" in log and "poweroff" in log and "no package" in log
    with open(os.path.join(device.storage, "trails", "0", ".pvr", "json")) as f:
        assert f.read() == '{"#spec":"pantavisor-service-system@1"}'


def test_pventer_refuses_unknown_container(device):
    r = pvtest.run([pvtest.bin_path("pventer"), "-P", device.lxcpath, "-c", "nosuch", "true"],
                   check=False)
    assert r.returncode == 1 and "nosuch" in r.stderr


@pytest.mark.parametrize("sig,killed_by", [(signal.SIGTERM, signal.SIGHUP),
                                           (signal.SIGINT, signal.SIGINT)])
def test_pid1_mounts_and_reboot_in_pid_namespace(device, sig, killed_by):
    """As PID 1 of a new pid + mount namespace, init mounts /proc /sys /dev /dev/pts /run and ends
    with reboot(2), which the kernel turns into SIGHUP (restart) or SIGINT (power off) of the
    namespace's init: that is what unshare reports."""
    setup_libexec(device, names=("pv-engine",))
    env = device.env(PV_LIBEXEC_DIR=device.libexec, PVTEST_EVENTS=device.path("events"))
    u = device.start(["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
                      PANTAVISOR, "--rundir", device.rundir, "--storage", device.storage,
                      "--config", device.path("none.config")], env=env)

    def inner():
        try:
            with open("/proc/%d/task/%d/children" % (u.pid, u.pid)) as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None

    pid = pvtest.wait_until(inner, 5)
    assert pid and pvtest.wait_until(lambda: starts(device, "pv-engine"), 5), pvtest.read_log(u)
    with open("/proc/%d/mountinfo" % pid) as f:
        mps = {(line.split()[4], line.split(" - ")[1].split()[0]) for line in f}
    for mp in [("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "devtmpfs"), ("/dev/pts", "devpts"),
               ("/run", "tmpfs")]:
        assert mp in mps, (mp, sorted(mps))
    assert "PID 1" in pvtest.read_log(u)
    os.kill(pid, sig)
    assert pvtest.stop(u, sig=0, timeout=20) == -killed_by, pvtest.read_log(u)
    log = pvtest.read_log(u)
    assert "stopping pv-engine" in log and [e for e in events(device) if e[1] == "term"]


def test_appengine_engine_kill9_recovers(device):
    """kill -9 of the real engine under pv-appengine: init respawns it and the container is
    running again afterwards (re-adopted: same init pid; or restarted cleanly: new pid)."""
    if not os.path.exists(pvtest.bin_path("pv-engine")):
        pytest.skip("bin/pv-engine not built")
    pvtxd = device.path("pvtx.d")
    os.makedirs(pvtxd)
    os.symlink(pvtest.build_export("c1", group="platform"), os.path.join(pvtxd, "c1.tgz"))
    t0 = time.monotonic()
    p = device.start_appengine(pvtxd=pvtxd)
    assert pvtest.wait_until(lambda: pvtest.lxc_state(device.lxcpath, "c1") == "RUNNING", 40), \
        pvtest.read_log(p)
    print("appengine start -> c1 RUNNING: %.2f s" % (time.monotonic() - t0))
    pid_of = lambda: pvtest.run(["lxc-info", "-P", device.lxcpath, "-n", "c1", "-p", "-H"],
                                check=False).stdout.strip()
    before = pid_of()
    eng = pvtest.one_daemon_pid("^pv-engine --mode appengine --rundir %s" % device.rundir)
    os.kill(eng, signal.SIGKILL)
    assert pvtest.wait_until(lambda: pvtest.read_log(p).count("started pv-engine") >= 2, 5), \
        pvtest.read_log(p)
    time.sleep(2.0)
    assert pvtest.wait_until(lambda: pvtest.lxc_state(device.lxcpath, "c1") == "RUNNING", 30), \
        pvtest.read_log(p)
    after = pid_of()
    print("c1 init pid before %s after %s (%s)" % (before, after,
                                                  "re-adopted" if before == after else "restarted"))
    assert pvtest.stop(p, signal.SIGTERM, timeout=60) == 0, pvtest.read_log(p)
    assert pvtest.wait_until(lambda: not device.leftovers()["mounts"], 10), device.leftovers()
    device.assert_clean()


def test_config_rundir_mode_and_argv_words(device):
    """PV_SYSTEM_RUNDIR / PV_SYSTEM_INIT_MODE come from the config file; options win over the
    file and the argv word pv_embedded wins over both."""
    setup_libexec(device, names=("pv-engine",))
    cfg = device.path("pv.config")
    rd = device.path("cfg-run", "pv")
    with open(cfg, "w") as f:
        f.write("# comment\nPV_SYSTEM_RUNDIR=%s\nPV_SYSTEM_INIT_MODE=appengine\nPV_OTHER=x\n" % rd)
    env = device.env(PV_LIBEXEC_DIR=device.libexec, PVTEST_EVENTS=device.path("events"))
    p = device.start([PANTAVISOR, "--config", cfg], env=env)
    assert pvtest.wait_until(lambda: starts(device, "pv-engine"), 5), pvtest.read_log(p)
    args = " ".join(starts(device, "pv-engine")[0][4:])
    assert "--mode appengine --rundir %s " % rd in args and os.path.isdir(rd), args
    assert pvtest.stop(p) == 0
    p = device.start([PANTAVISOR, "--config", cfg, "--rundir", device.rundir, "pv_embedded"],
                     env=env)
    assert pvtest.wait_until(lambda: len(starts(device, "pv-engine")) == 2, 5), pvtest.read_log(p)
    args = " ".join(starts(device, "pv-engine")[1][4:])
    assert "--mode embedded --rundir %s " % device.rundir in args, args
    assert pvtest.stop(p) == 0
    r = pvtest.run([PANTAVISOR, "--mode", "bogus", "--rundir", device.rundir], check=False,
                   env=env)
    assert r.returncode == 2 and "unknown mode 'bogus'" in r.stderr
