# test_ctrl_client.py: pvcontrol's update commands (steps install [--run], cmd -w, Retry-After)
# and pv-ctrl's sharing of identical reads, against the engine stand-in of test_ctrl_relay.
import concurrent.futures
import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

import pvtest
from test_ctrl_api import PVCONTROL
from test_ctrl_relay import FakeEngine, curl, rig  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(PVCONTROL), reason="pvcontrol not built")


def pvcontrol(rig, *args, timeout=60):
    env = dict(os.environ, PVCONTROL_POLL_MS="50")
    return subprocess.run([PVCONTROL, "-s", rig.sock] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=env)


def export(root, blobs, name="export"):
    """A pvr export directory (json + objects/<sha>) and its tarball."""
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "objects"))
    state = {"#spec": "pantavisor-service-system@1"}
    shas = []
    for i, b in enumerate(blobs):
        sha = hashlib.sha256(b).hexdigest()
        with open(os.path.join(d, "objects", sha), "wb") as f:
            f.write(b)
        state["app/f%d" % i] = sha
        shas.append(sha)
    with open(os.path.join(d, "json"), "w") as f:
        json.dump(state, f)
    tgz = d + ".tgz"
    subprocess.run(["tar", "-czf", tgz, "-C", d, "json", "objects"], check=True)
    return d, tgz, shas, state


def test_install_uploads_only_missing_objects_and_prints_rev(rig):
    d, tgz, shas, state = export(rig.root, [b"first object\n", b"second object\n" * 100])
    # the device already has the first object: only the second may travel
    rig.eng.answers["objects-list"] = (200, [{"sha256": shas[0], "size": "13"}], None, None)
    r = pvcontrol(rig, "steps", "install", tgz)
    assert r.returncode == 0, r.stderr
    rev = r.stdout.strip()
    assert rev.startswith("locals/install-") and len(rev) > len("locals/install-"), r.stdout
    uploaded = [a["sha"] for o, a in rig.eng.requests if o == "object-installed"]
    assert uploaded == [shas[1]], rig.eng.requests
    assert not os.path.exists(os.path.join(rig.storage, "objects", shas[0]))
    put = rig.eng.last("step-put")
    assert put["rev"] == rev and json.loads(put["state"]) == state
    # objects go up before the state that names them
    ops = [o for o, _ in rig.eng.requests if o != "whois"]
    assert ops.index("object-installed") < ops.index("step-put")


def test_install_from_dir_with_rev_and_no_upload(rig):
    d, _, shas, _ = export(rig.root, [b"only object\n"])
    rig.eng.answers["objects-list"] = (200, [{"sha256": shas[0], "size": "12"}], None, None)
    r = pvcontrol(rig, "steps", "install", d, "myrev")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "locals/myrev"
    assert rig.eng.last("step-put")["rev"] == "locals/myrev"
    assert rig.eng.last("object-installed") is None
    assert "0 objects uploaded, 1 already" in r.stderr


def test_install_refused_state_fails(rig):
    _, tgz, _, _ = export(rig.root, [b"x\n"])
    rig.eng.answers["objects-list"] = (200, [], None, None)
    rig.eng.answers["step-put"] = (422, None, "state: app: run.json missing", None)
    r = pvcontrol(rig, "steps", "install", tgz, "bad")
    assert r.returncode == 1 and "422" in r.stderr and "run.json missing" in r.stderr
    assert r.stdout == ""


class ProgressEngine(FakeEngine):
    """Answers step-progress from a script: each poll takes the next entry (the last repeats)."""

    def __init__(self, path, script):
        super().__init__(path)
        self.script = list(script)

    def answer(self, msg):
        if msg["op"] == "step-progress":
            self.requests.append((msg["op"], msg.get("args")))
            body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            return {"id": msg["id"], "status": 200, "body": body}
        return super().answer(msg)


def swap_engine(rig, script):
    path = rig.eng.path
    rig.eng.close()
    rig.eng = ProgressEngine(path, script)


def prog(status, pct, msg):
    return {"status": status, "status-msg": msg, "progress": pct}


@pytest.mark.parametrize("final,code", [("DONE", 0), ("UPDATED", 0), ("ERROR", 1),
                                        ("WONTGO", 1)])
def test_install_run_follows_progress_to_final(rig, final, code):
    swap_engine(rig, [{}, prog("NEW", 0, "Update ready to be run"),
                      prog("INPROGRESS", 50, "Starting updated version"),
                      prog("INPROGRESS", 50, "Starting updated version"),
                      prog("TESTING", 90, "Awaiting to see if update is stable"),
                      prog(final, 100, "final message")])
    rig.eng.answers["objects-list"] = (200, [], None, None)
    _, tgz, _, _ = export(rig.root, [b"run me\n"])
    r = pvcontrol(rig, "steps", "install", "--run", tgz, "r1")
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stdout.strip().split("\n")
    assert lines == ["locals/r1", "NEW 0% Update ready to be run",
                     "INPROGRESS 50% Starting updated version",
                     "TESTING 90% Awaiting to see if update is stable",
                     "%s 100%% final message" % final], lines
    assert rig.eng.last("command") == {"op": "LOCAL_RUN", "payload": "locals/r1"}
    assert rig.eng.last("step-progress") == {"rev": "locals/r1"}


def test_cmd_run_commit_wait_and_timeout(rig):
    swap_engine(rig, [prog("INPROGRESS", 10, "still going")])
    r = pvcontrol(rig, "-w", "-t", "1", "cmd", "run-commit", "locals/x")
    assert r.returncode == 1 and "no final status after 1 s" in r.stderr
    assert r.stdout.strip() == "INPROGRESS 10% still going"
    assert rig.eng.last("command") == {"op": "LOCAL_RUN_COMMIT", "payload": "locals/x"}
    rig.eng.script = [prog("DONE", 100, "Factory revision")]
    r = pvcontrol(rig, "-w", "cmd", "make-factory")
    assert r.returncode == 0 and r.stdout.strip() == "DONE 100% Factory revision", r.stderr
    assert rig.eng.last("step-progress") == {"rev": "0"}


@pytest.mark.parametrize("msg,after", [
    ("command LOCAL_RUN: an update is in progress", 600),
    ("command: another command is running", 120),
])
def test_busy_engine_retry_after(rig, msg, after):
    rig.eng.answers["command"] = (503, None, msg, None)
    st, body = curl(rig, "/commands", "POST", data='{"op":"REBOOT_DEVICE"}', include=True)
    assert st == 503 and ("Retry-After: %d\r\n" % after) in body, body
    r = pvcontrol(rig, "cmd", "reboot")
    assert r.returncode == 1 and ("retry after %d s" % after) in r.stderr, r.stderr


class SlowEngine(FakeEngine):
    """containers-list takes `delay` seconds: concurrent reads overlap it."""

    delay = 0.4
    arrived = 0  # containers-list requests received (recorded before the delay)

    def answer(self, msg):
        if msg["op"] == "containers-list":
            self.arrived += 1
            time.sleep(self.delay)
        return super().answer(msg)


def get_many(sock_path, path, n):
    """n keep-alive connections opened first, then n GETs sent at once: (status, body) list."""
    conns = []
    for _ in range(n):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(30)
        c.connect(sock_path)
        conns.append(c)
    req = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()
    for c in conns:
        c.sendall(req)
    out = []
    for c in conns:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        while len(body) < length:
            body += c.recv(65536)
        out.append((int(head.split()[1]), body.decode()))
        c.close()
    return out


def test_identical_reads_share_one_engine_request(rig):
    path = rig.eng.path
    rig.eng.close()
    rig.eng = SlowEngine(path)
    rig.eng.delay = 1.0
    res = get_many(rig.sock, "/containers", 16)
    assert all(st == 200 and json.loads(b) == {"op": "containers-list"} for st, b in res), res
    asked = sum(1 for o, _ in rig.eng.requests if o == "containers-list")
    # 16 readers at once, a 1 s round trip: parked connections all join the first engine
    # request (a straggler may start a second); without sharing the engine would see 16
    assert 1 <= asked <= 2, asked


def test_read_after_write_is_not_shared_with_an_older_read(rig):
    path = rig.eng.path
    rig.eng.close()
    rig.eng = SlowEngine(path)
    rig.eng.delay = 1.0
    first = threading.Thread(target=curl, args=(rig, "/containers"))
    first.start()
    assert pvtest.wait_until(lambda: rig.eng.arrived == 1, 10)  # the first read is with the engine
    st, _ = curl(rig, "/containers/web", "PUT", data='{"action":"stop"}')
    assert st == 200
    st, _ = curl(rig, "/containers")  # after the write: must not take the older answer
    first.join()
    assert st == 200
    asked = sum(1 for o, _ in rig.eng.requests if o == "containers-list")
    assert asked == 2, rig.eng.requests


# ---- drivers: pv-ctrl's side (the engine's drivers-list / driver-action) ----

DRIVER_CASES = [
    ("GET", "/drivers", "drivers-list", None),
    ("PUT", "/drivers/load", "driver-action", {"action": "load"}),
    ("PUT", "/drivers/unload", "driver-action", {"action": "unload"}),
    ("PUT", "/drivers/wifi/load", "driver-action", {"action": "load", "name": "wifi"}),
    ("PUT", "/drivers/wifi/unload", "driver-action", {"action": "unload", "name": "wifi"}),
]


@pytest.mark.parametrize("method,path,op,args", DRIVER_CASES,
                         ids=["%s %s" % (c[0], c[1]) for c in DRIVER_CASES])
def test_drivers_routes(rig, method, path, op, args):
    listing = [{"name": "wifi", "type": "MANUAL", "status": "UNLOADED"}]
    rig.eng.answers["drivers-list"] = (200, listing, None, None)
    st, body = curl(rig, path, method)
    assert st == 200, (st, body)
    if op == "drivers-list":
        assert json.loads(body) == listing
    seen = [r for r in rig.eng.requests if r[0] != "whois"]
    assert seen == [(op, args)], seen  # the host: no container, every container's drivers


def test_driver_errors_relayed(rig):
    rig.eng.answers["driver-action"] = (
        400, None, "driver wifi: modprobe brcmfmac: exit 1", None)
    st, body = curl(rig, "/drivers/wifi/load", "PUT")
    assert st == 400 and "modprobe brcmfmac: exit 1" in json.loads(body)["Error"]
    st, body = curl(rig, "/drivers/../load", "PUT")
    assert st in (400, 404), (st, body)
    st, body = curl(rig, "/drivers", "POST")
    assert st == 405


@pytest.mark.parametrize("arg", ["-h", "--help", "help"])
def test_pvcontrol_help_is_on_stdout_and_exit_0(arg):
    r = subprocess.run([PVCONTROL, arg], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("usage: pvcontrol"), (r.stdout, r.stderr)
    assert "steps install" in r.stdout


def test_pvcontrol_unknown_command_is_a_usage_error():
    r = subprocess.run([PVCONTROL, "-s", "/nonexistent", "dance"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "usage: pvcontrol" in r.stderr, (r.stdout, r.stderr)
