# test_engine_appengine.py: pv-engine run by the real `pantavisor` init in appengine mode:
# kill -9 of the engine (init respawns it, containers re-adopted with the same pid), a system
# container failing (engine asks init to reboot: appengine init exits 0), SIGINT order.
import os
import signal
import subprocess
import time

import pytest

import pvtest
from test_engine_lifecycle import CRASHER, ENGINE, Env, PV_BIN, wait_for

INIT = os.path.join(PV_BIN, "pantavisor")
APPENGINE = os.path.join(PV_BIN, "pv-appengine")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, LXC)"),
    pytest.mark.skipif(not (os.path.exists(ENGINE) and os.path.exists(INIT)),
                       reason="pv-engine or pantavisor not built"),
]


class InitEnv(Env):
    def start_init(self):
        libexec = os.path.join(self.root, "libexec")
        os.makedirs(libexec, exist_ok=True)
        # only the engine: these tests are about it (init logs and skips the missing ones)
        if not os.path.exists(os.path.join(libexec, "pv-engine")):
            os.symlink(ENGINE, os.path.join(libexec, "pv-engine"))
        env = dict(os.environ)
        env.update(PV_LXC_PATH=self.lxcpath, PV_DISK_VOLDIR=self.voldir,
                   PV_SYSTEM_CONFDIR=self.confdir, PV_ENGINE_SOCKET=self.sock,
                   PV_LIBEXEC_DIR=libexec)
        log = open(os.path.join(self.root, "init-%d.log" % len(self.procs)), "w")
        p = subprocess.Popen([INIT, "--mode", "appengine", "--rundir", self.rundir,
                              "--storage", self.storage], env=env, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def start_appengine(self):
        """pv-appengine on an already deployed storage (.pvtx-done: no factory deploy)."""
        libexec = os.path.join(self.root, "libexec")
        os.makedirs(libexec, exist_ok=True)
        if not os.path.exists(os.path.join(libexec, "pv-engine")):
            os.symlink(ENGINE, os.path.join(libexec, "pv-engine"))
        open(os.path.join(self.storage, ".pvtx-done"), "w").close()
        env = dict(os.environ)
        env.update(PV_LXC_PATH=self.lxcpath, PV_DISK_VOLDIR=self.voldir,
                   PV_SYSTEM_CONFDIR=self.confdir, PV_ENGINE_SOCKET=self.sock,
                   PV_LIBEXEC_DIR=libexec)
        log = open(os.path.join(self.root, "init-%d.log" % len(self.procs)), "w")
        p = subprocess.Popen([APPENGINE, "-d", "1", "--storage", self.storage, "--rundir",
                              self.rundir, "--config", os.path.join(self.root, "none.config")],
                             env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def engine_pids(self):
        return pvtest.daemon_pids("pv-engine --mode appengine --rundir %s" % self.rundir)

    def engine_pid(self):
        return pvtest.one_daemon_pid("pv-engine --mode appengine --rundir %s" % self.rundir)

    def init_log(self):
        return open(os.path.join(self.root, "init-0.log")).read()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        for pid in self.engine_pids():
            os.kill(pid, signal.SIGKILL)
        super().cleanup()


@pytest.fixture
def ienv():
    e = InitEnv()
    yield e
    e.cleanup()


def test_kill9_engine_is_respawned_and_readopts(ienv):
    c = ienv.container("rk", group="app", restart_policy="container",
                       auto_recovery={"policy": "no"})
    ienv.write_rev("0", c)
    init = ienv.start_init()
    assert wait_for(lambda: ienv.lxc(c[0])[0] == "RUNNING"), ienv.log() + ienv.init_log()
    pid = ienv.lxc(c[0])[1]
    epid = ienv.engine_pid()
    os.kill(epid, signal.SIGKILL)
    new = wait_for(lambda: [p for p in ienv.engine_pids() if p != epid], 15)
    assert new, ienv.init_log()
    assert wait_for(lambda: "re-adopted" in ienv.log(), 10), ienv.log()

    def readopted():  # the new engine logs the adoption before it takes over the socket
        try:
            return ienv.containers()[c[0]]["pid"] == pid
        except OSError:
            return False
    assert wait_for(readopted, 10), ienv.log()
    assert ienv.lxc(c[0]) == ("RUNNING", pid)
    # SIGINT = poweroff for appengine init: ordered shutdown, exit 3, nothing left
    init.send_signal(signal.SIGINT)
    assert init.wait(60) == 3, ienv.init_log()
    assert ienv.lxc(c[0])[0] != "RUNNING"
    assert ienv.mounts() == []
    assert wait_for(lambda: ienv.loops() == [], 5)
    assert ienv.engine_pids() == []


def test_kill9_engine_keeps_stopped_containers_stopped(ienv):
    """Containers stopped on purpose (an API stop; a crash with no recovery left) stay stopped
    after the engine is killed and respawned in the same boot (liblxc only knows the running
    ones: they used to be started again), and a new boot starts them all."""
    up = ienv.container("ku", group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    us = ienv.container("ks", group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    cr = ienv.container("kc", init=CRASHER, group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    ienv.write_rev("0", up, us, cr)
    init = ienv.start_init()
    assert wait_for(lambda: ienv.lxc(up[0])[0] == "RUNNING" and
                    ienv.lxc(us[0])[0] == "RUNNING", 30), ienv.log() + ienv.init_log()
    st = ienv.request("container-action", {"name": us[0], "action": "stop"})
    assert st["status"] == 200, st

    def status(name):
        try:
            return ienv.containers()[name]["status"]
        except OSError:
            return None
    assert wait_for(lambda: status(us[0]) == "STOPPED" and status(cr[0]) == "STOPPED", 30), \
        ienv.log()
    pid = ienv.lxc(up[0])[1]
    epid = ienv.engine_pid()
    os.kill(epid, signal.SIGKILL)
    assert wait_for(lambda: [p for p in ienv.engine_pids() if p != epid], 15), ienv.init_log()
    assert wait_for(lambda: status(up[0]) == "STARTED" and ienv.containers()[up[0]]["pid"] == pid,
                    15), ienv.log()
    time.sleep(2)  # a container the new engine wrongly starts would be RUNNING by now
    cs = ienv.containers()
    assert cs[us[0]]["status"] == "STOPPED" and cs[us[0]]["user_stopped"] is True, cs[us[0]]
    assert cs[cr[0]]["status"] == "STOPPED", cs[cr[0]]
    assert ienv.lxc(us[0])[0] != "RUNNING" and ienv.lxc(cr[0])[0] != "RUNNING"
    assert "%s: stays STOPPED (user before the engine restarted)" % us[0] in ienv.log()
    # the API can still start it
    assert ienv.request("container-action", {"name": us[0], "action": "start"})["status"] == 200
    assert wait_for(lambda: status(us[0]) == "STARTED", 20), ienv.log()
    init.send_signal(signal.SIGINT)
    assert init.wait(60) == 3, ienv.init_log()
    assert ienv.mounts() == []


def test_system_failure_makes_appengine_init_exit_for_relaunch(ienv):
    c = ienv.container("sf", init=CRASHER, group="app", restart_policy="system",
                       auto_recovery={"policy": "no"})
    ienv.write_rev("0", c)
    init = ienv.start_init()
    # appengine: a reboot is exit 0 so pv-appengine relaunches
    assert init.wait(60) == 0, ienv.init_log() + ienv.log()
    assert "restart_policy system" in ienv.log()
    assert ienv.mounts() == []
    assert ienv.engine_pids() == []
    # the relaunch (what pv-appengine does): a new engine starts the containers again
    init2 = ienv.start_init()
    assert wait_for(lambda: ienv.log().count("%s: started" % c[0]) >= 2, 20), ienv.log()
    init2.send_signal(signal.SIGINT)
    init2.wait(60)


@pytest.mark.skipif(not os.path.exists(APPENGINE), reason="pv-appengine not built")
def test_pv_appengine_relaunches_after_a_system_failure(ienv):
    c = ienv.container("ra", init=CRASHER, group="app", restart_policy="system",
                       auto_recovery={"policy": "no"})
    ok = ienv.container("rb", group="app", restart_policy="container",
                        auto_recovery={"policy": "no"})
    ienv.write_rev("0", c, ok)
    wrapper = ienv.start_appengine()
    seen = set()

    def relaunched():
        seen.update(ienv.engine_pids())
        return ienv.log().count("%s: started" % c[0]) >= 3 and len(seen) >= 2

    # each failure: engine asks for a reboot, init exits 0, the wrapper relaunches a new engine
    assert wait_for(relaunched, 60, 0.05), ienv.log() + ienv.init_log()
    assert ienv.log().count("restart_policy system") >= 2
    wrapper.send_signal(signal.SIGTERM)
    wrapper.wait(60)
    assert wait_for(lambda: ienv.engine_pids() == [], 10)
    assert ienv.lxc(ok[0])[0] != "RUNNING"
    assert ienv.mounts() == []
