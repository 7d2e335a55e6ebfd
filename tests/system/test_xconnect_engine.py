"""pv-xconnect with the real engine and real LXC containers: the engine computes the graph from
the revision (services.json export + run.json requirement) and the containers' pids, pushes it,
and pv-xconnect injects the socket into the consumer container. Uses the engine tests' storage
and container builder (test_engine_lifecycle.Env)."""
import os
import socket
import stat
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_engine_lifecycle as tel  # noqa: E402
from xconnect_env import recv_until, wait_for  # noqa: E402

XCONNECT = os.path.join(tel.PV_BIN, "pv-xconnect")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (LXC)"),
    pytest.mark.skipif(not os.path.exists(tel.ENGINE), reason="pv-engine not built"),
    pytest.mark.skipif(not os.path.exists(XCONNECT), reason="pv-xconnect not built"),
]


@pytest.fixture
def env():
    e = tel.Env()
    e.xc = None
    try:
        yield e
    finally:
        if e.xc and e.xc.poll() is None:
            e.xc.terminate()
            e.xc.wait(10)
        if os.environ.get("PV_KEEP_TMP") and e.xc:
            print(open(os.path.join(e.root, "pv-xconnect.log")).read())
        e.cleanup()


def echo_server(path):
    """A listening socket whose file lives inside the provider container (bound through
    /proc/<pid>/root), served by this test process."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s


def test_engine_graph_injects_into_lxc_consumer_and_tears_down(env):
    prov, pkeys = env.container("srv")
    pkeys[prov + "/services.json"] = {
        "#spec": "service-manifest-xconnect@1",
        "services": [{"name": "raw-unix", "type": "unix", "socket": "/run/raw.sock"}]}
    cons, ckeys = env.container("cli", services={
        "required": [{"name": "raw-unix", "target": "/run/pv/services/raw-unix.sock"}]})
    env.write_rev("0", (prov, pkeys), (cons, ckeys))
    engine = env.start(cmdline="pv_rev=0")
    assert wait_for(lambda: env.lxc(prov)[0] == "RUNNING" and env.lxc(cons)[0] == "RUNNING", 60)
    ppid, cpid = env.lxc(prov)[1], env.lxc(cons)[1]

    srv = echo_server("/proc/%d/root/run/raw.sock" % ppid)
    log = open(os.path.join(env.root, "pv-xconnect.log"), "w")
    env.xc = subprocess.Popen([XCONNECT, "--engine-socket", env.sock, "-v"], stdout=log,
                              stderr=log)
    target = "/proc/%d/root/run/pv/services/raw-unix.sock" % cpid
    assert wait_for(lambda: os.path.exists(target), 15, 0.01), open(log.name).read()
    # the default owner/mode: the container's root (no user namespace here: host ids), 0660
    st = os.lstat(target)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)

    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect(target)
    srv.settimeout(5)
    conn, _ = srv.accept()
    c.sendall(b"through lxc\n")
    got = conn.recv(100)
    conn.sendall(got)
    assert recv_until(c) == b"through lxc\n"

    # the consumer stops: its link leaves the graph and the proxied connection is closed
    subprocess.run(["lxc-stop", "-k", "-n", cons, "-P", env.lxcpath], capture_output=True)
    assert wait_for(lambda: c.recv(10) == b"", 15, 0.05)
    c.close()
    conn.close()
    srv.close()
    assert env.xc.poll() is None
    engine.terminate()
    engine.wait(30)
