# The pv-example-* programs as plain host processes: each server/client pair talks over sockets
# in a private temp dir (no containers, no xconnect), which proves the programs themselves.
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("PV_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "../.."))
EXAMPLES = os.path.join(SRC, "examples")


def exe(name):
    path = os.path.join(BIN, name)
    assert os.access(path, os.X_OK), f"{path} not built (PV_EXAMPLES=ON?)"
    return path


class Procs:
    """Processes started by one test. When the test ends they are stopped (TERM, then KILL) in
    reverse start order, and each example program must have exited 0 on TERM with no sanitizer
    report in its log (a leak or a crash at shutdown fails the test)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, argv, env=None, check=True, cwd=None):
        log = os.path.join(self.tmp, name + ".log")
        out = open(log, "w")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             start_new_session=True)
        out.close()
        p.log = log
        p.name = name
        p.check = check
        self.procs.append(p)
        return p

    def stop_all(self):
        problems = []
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                problems.append(f"{p.name} ignored SIGTERM")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            log = read(p.log)
            if p.check and p.returncode != 0:
                problems.append(f"{p.name} exited {p.returncode}:\n{log}")
            if "Sanitizer" in log or "runtime error:" in log:
                problems.append(f"{p.name} sanitizer report:\n{log}")
        assert not problems, "\n".join(problems)


def read(path):
    with open(path) as f:
        return f.read()


def wait_for(path, pattern, timeout=10.0):
    """Wait until the file holds a line matching pattern; returns the match."""
    rx = re.compile(pattern, re.M)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            m = rx.search(read(path))
            if m:
                return m
        time.sleep(0.05)
    text = read(path) if os.path.exists(path) else "(no file)"
    raise AssertionError(f"no line matching {pattern!r} in {path} after {timeout}s:\n{text}")


def wait_path(path, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def run(argv, timeout=30, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="pvex-local-")
    # Readable by uid 65534: the D-Bus "nobody" client must reach the bus socket in here.
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs(tmp):
    p = Procs(tmp)
    yield p
    p.stop_all()


# ---------------------------------------------------------------- manifests

EXAMPLE_DIRS = sorted(d for d in os.listdir(EXAMPLES)
                      if d.startswith("pv-example-") and os.path.isdir(os.path.join(EXAMPLES, d)))


def load(name, file):
    with open(os.path.join(EXAMPLES, name, file)) as f:
        return json.load(f)


def render_run_json(args):
    """What pvr renders into run.json from the args.json keys our examples use."""
    run = {"#spec": "service-manifest-run@1"}
    simple = {"PV_GROUP": "group", "PV_ROLES": "roles", "PV_RESTART_POLICY": "restart_policy",
              "PV_STATUS_GOAL": "status_goal"}
    for k, v in simple.items():
        if k in args:
            run[v] = args[k]
    services = {}
    if "PV_SERVICES_REQUIRED" in args:
        services["required"] = args["PV_SERVICES_REQUIRED"]
    if "PV_SERVICES_OPTIONAL" in args:
        services["optional"] = args["PV_SERVICES_OPTIONAL"]
    if services:
        run["services"] = services
    return run


def image_conf(name):
    conf = {}
    with open(os.path.join(EXAMPLES, name, "image.conf")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z_]+", key), f"{name}/image.conf: bad line {line!r}"
            conf[key] = shlex.split(value)[0] if value else ""
    return conf


def test_examples_are_all_there():
    expected = {"unix-server", "unix-client", "rest-server", "rest-client", "dbus-server",
                "dbus-client", "dbus-client-nobody", "drm-provider", "drm-master",
                "drm-render", "wayland-server", "wayland-client"}
    assert {d[len("pv-example-"):] for d in EXAMPLE_DIRS} == expected


@pytest.mark.parametrize("name", EXAMPLE_DIRS)
def test_run_json_is_args_json_rendered(name):
    args = load(name, "args.json")
    known = {"PV_GROUP", "PV_ROLES", "PV_RESTART_POLICY", "PV_STATUS_GOAL",
             "PV_SERVICES_REQUIRED", "PV_SERVICES_OPTIONAL"}
    assert set(args) <= known, f"{name}/args.json: keys this test cannot render: {set(args) - known}"
    assert load(name, "run.json") == render_run_json(args)
    run = load(name, "run.json")
    assert run["status_goal"] in ("MOUNTED", "STARTED", "READY")
    assert run["restart_policy"] in ("system", "container")
    assert run["roles"] == [], "examples are deliberately unprivileged (no mgmt role)"


def exports():
    out = {}
    for name in EXAMPLE_DIRS:
        if os.path.exists(os.path.join(EXAMPLES, name, "services.json")):
            sj = load(name, "services.json")
            assert sj["#spec"] == "service-manifest-xconnect@1"
            for svc in sj["services"]:
                assert set(svc) == {"name", "type", "socket"}, f"{name}: {svc}"
                assert svc["type"] in ("unix", "rest", "dbus", "drm", "wayland")
                assert svc["socket"].startswith("/")
                out[svc["name"]] = (name, svc["type"])
    return out


def test_every_requirement_has_an_exporter_of_its_type():
    exp = exports()
    assert set(exp) == {"raw-unix", "network-manager", "system-bus", "drm-master", "drm-render",
                        "wayland-0"}
    for name in EXAMPLE_DIRS:
        services = load(name, "run.json").get("services", {})
        for req in services.get("required", []) + services.get("optional", []):
            assert req["name"] in exp, f"{name} requires {req['name']}, nobody exports it"
            assert req["type"] == exp[req["name"]][1], f"{name}: type of {req['name']}"
            assert req["target"].startswith("/")
            assert set(req) <= {"name", "type", "role", "interface", "target"}


def test_dbus_roles_match_the_policy():
    assert load("pv-example-dbus-client", "run.json")["services"]["required"][0]["role"] == "root"
    nobody = load("pv-example-dbus-client-nobody", "run.json")["services"]["required"][0]
    assert nobody["role"] == "nobody"
    assert nobody["interface"] == "org.pantavisor.Example"


@pytest.mark.parametrize("name", EXAMPLE_DIRS)
def test_image_conf_names_what_exists(name):
    conf = image_conf(name)
    assert {"BINS", "INIT", "FILES", "PACKAGES_BINS"} <= set(conf)
    for b in conf["BINS"].split():
        exe(b)
    dests = {"/usr/bin/" + b for b in conf["BINS"].split()}
    for pair in conf["FILES"].split():
        src, _, dest = pair.partition(":")
        assert os.path.isfile(os.path.join(EXAMPLES, name, src)), f"{name}: FILES {src}"
        assert dest.startswith("/"), f"{name}: FILES {pair}"
        dests.add(dest)
    for f in conf["PACKAGES_BINS"].split() + conf.get("PACKAGES_FILES", "").split():
        assert os.path.exists(f), f"{name}/image.conf needs {f} on the build host"
    init = conf["INIT"].split()
    assert init and init[0] in dests, f"{name}: INIT {init} is not packed"


# ---------------------------------------------------------------- unix

def test_unix_echo_and_fd_passing(tmp, procs):
    sock = os.path.join(tmp, "example", "raw.sock")  # parent dir created by the server
    # The client starts first: it must wait for the socket, as it does before xconnect injects it.
    client = procs.start("client", [exe("pv-example-unix-client"), "-s", sock, "-i", "100ms",
                                    "-n", "3", "--ask-fd"])
    wait_for(client.log, r"waiting for .*raw\.sock")
    server = procs.start("server", [exe("pv-example-unix-server"), "-s", sock])
    assert client.wait(15) == 0, read(client.log)
    log = read(client.log)
    assert re.findall(r"^pv-example-unix-client: echo: (.*)$", log, re.M) == \
        ["ping 1", "ping 2", "ping 3"]
    assert 'fd: received "hello through a passed fd from pv-example-unix-server"' in log
    wait_for(server.log, r"client 1 disconnected")
    slog = read(server.log)
    assert re.search(r"client 1 connected \(pid \d+ uid 0 gid 0\)", slog)
    assert "client 1: sent a pipe fd" in slog
    assert 'client 1: echo "ping 3"' in slog


def test_unix_server_replaces_a_stale_socket_and_cleans_up(tmp, procs):
    sock = os.path.join(tmp, "raw.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)  # left behind by a "crashed" server: bind would say EADDRINUSE
    stale.close()
    server = procs.start("server", [exe("pv-example-unix-server"), "-s", sock])
    wait_for(server.log, r"listening on ")
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b"a\nb\n")
    got = b""
    while got.count(b"\n") < 2:
        got += c.recv(100)
    assert got == b"a\nb\n"
    c.close()
    server.send_signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert not os.path.exists(sock), "server left its socket behind"


def test_unix_client_reconnects_after_server_restart(tmp, procs):
    sock = os.path.join(tmp, "raw.sock")
    server = procs.start("server1", [exe("pv-example-unix-server"), "-s", sock], check=False)
    wait_for(server.log, r"listening on ")
    client = procs.start("client", [exe("pv-example-unix-client"), "-s", sock, "-i", "100ms"])
    wait_for(client.log, r"echo: ping 2$")
    server.send_signal(signal.SIGKILL)
    server.wait(5)
    wait_for(client.log, r"connection lost: ")
    procs.start("server2", [exe("pv-example-unix-server"), "-s", sock])
    # After the loss: a new connection and echoes on it.
    wait_for(client.log, r"connection lost: .*\n(?:.*\n)*?.*connected to .*\n(?:.*\n)*?.*echo: ping",
             10)
    assert client.poll() is None, "client must keep running across a server restart"


# ---------------------------------------------------------------- rest

def http_get(sock_path, path, headers):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock_path)
    req = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    req += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(req.encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_rest_identity_headers_over_keepalive(tmp, procs):
    sock = os.path.join(tmp, "nm", "api.sock")
    server = procs.start("server", [exe("pv-example-rest-server"), "-s", sock])
    wait_for(server.log, r"listening on ")
    client = run([exe("pv-example-rest-client"), "-s", sock, "-i", "100ms", "-n", "3"])
    assert client.returncode == 0, client.stdout + client.stderr
    bodies = re.findall(r"^pv-example-rest-client: response 200: (.*)$", client.stdout, re.M)
    assert [json.loads(b) for b in bodies] == [
        {"client": None, "role": None, "path": f"/ping/{i}"} for i in (1, 2, 3)]
    assert client.stdout.count("connected to") == 1
    wait_for(server.log, r"connection closed")
    # keep-alive: three requests on a single connection
    assert read(server.log).count("connection opened") == 1
    assert "GET /ping/3 client=(none) role=(none)" in read(server.log)

    status, body = http_get(sock, "/any/path", {"X-PV-Client": "pv-example-rest-client",
                                                "X-PV-Role": "any"})
    assert status == 200
    assert json.loads(body) == {"client": "pv-example-rest-client", "role": "any",
                                "path": "/any/path"}
    # Header values are quoted into JSON, never pasted: a hostile value stays a string.
    status, body = http_get(sock, "/x", {"X-PV-Client": 'a"b\\c', "X-PV-Role": "r"})
    assert status == 200 and json.loads(body)["client"] == 'a"b\\c'


def test_rest_client_close_mode_uses_a_connection_per_request(tmp, procs):
    sock = os.path.join(tmp, "api.sock")
    server = procs.start("server", [exe("pv-example-rest-server"), "-s", sock])
    wait_for(server.log, r"listening on ")
    r = run([exe("pv-example-rest-client"), "-s", sock, "-i", "0", "-n", "20", "--close"])
    assert r.returncode == 0, r.stdout
    assert r.stdout.count("response 200: ") == 20 and r.stdout.count("connected to") == 20
    # the server saw every one of them open and close
    deadline = time.time() + 10
    while read(server.log).count("connection closed") < 20 and time.time() < deadline:
        time.sleep(0.05)
    log = read(server.log)
    assert log.count("connection opened") == 20 and log.count("connection closed") == 20, log


def test_rest_client_reconnects_after_server_restart(tmp, procs):
    sock = os.path.join(tmp, "api.sock")
    s1 = procs.start("server-1", [exe("pv-example-rest-server"), "-s", sock], check=False)
    wait_for(s1.log, r"listening on ")
    client = procs.start("client", [exe("pv-example-rest-client"), "-s", sock, "-i", "100ms"])
    wait_for(client.log, r"response 200: .*/ping/2")
    s1.kill()
    s1.wait(5)
    wait_for(client.log, r"connection lost: ")
    procs.start("server-2", [exe("pv-example-rest-server"), "-s", sock])
    wait_for(client.log, r"connection lost: .*\n(?:.*\n)*?.*connected to .*\n(?:.*\n)*?"
             r".*response 200: ", 10)
    assert client.poll() is None


def test_rest_server_refuses_other_methods(tmp, procs):
    sock = os.path.join(tmp, "api.sock")
    server = procs.start("server", [exe("pv-example-rest-server"), "-s", sock])
    wait_for(server.log, r"listening on ")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nabc")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 405"), data


# ---------------------------------------------------------------- dbus

@pytest.fixture
def bus(tmp, procs):
    """A dbus-daemon with the example's own policy on a temp socket, and the example server."""
    sock = os.path.join(tmp, "system_bus_socket")
    conf = os.path.join(EXAMPLES, "pv-example-dbus-server", "system.conf")
    daemon = procs.start("dbus-daemon", [shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon",
                                         f"--config-file={conf}", f"--address=unix:path={sock}",
                                         "--nofork", "--nopidfile"], check=False)
    wait_path(sock)
    address = f"unix:path={sock}"
    server = procs.start("server", [exe("pv-example-dbus-server"), "-a", address])
    wait_for(server.log, r"owns org\.pantavisor\.Example")
    assert daemon.poll() is None
    return address, server


def as_user(uid, argv):
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] + argv


def test_dbus_root_gets_its_uid(bus):
    address, server = bus
    r = run([exe("pv-example-dbus-client"), "-a", address, "-i", "100ms", "-n", "2"])
    assert r.returncode == 0, r.stdout + r.stderr
    replies = re.findall(r"reply: (.*)$", r.stdout, re.M)
    assert len(replies) == 2 and all(x.endswith("your uid is 0") for x in replies), r.stdout
    wait_for(server.log, r"GetInfo from :\S+ \(uid 0\)")


def test_dbus_nobody_may_call_but_not_own(bus):
    address, server = bus
    r = run(as_user(65534, [exe("pv-example-dbus-client"), "-a", address, "-i", "100ms", "-n", "2",
                            "--expect-denied"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("denied: org.freedesktop.DBus.Error.AccessDenied "
                          "(RequestName org.pantavisor.Example)") == 2, r.stdout
    replies = re.findall(r"reply: (.*)$", r.stdout, re.M)
    assert len(replies) == 2 and all(x.endswith("your uid is 65534") for x in replies), r.stdout
    wait_for(server.log, r"GetInfo from :\S+ \(uid 65534\)")


def test_dbus_default_policy_denies_other_users(bus):
    address, _ = bus
    # Any existing account that is neither root nor nobody falls under the default context.
    other = next(p for p in pwd.getpwall() if p.pw_uid not in (0, 65534))
    r = run(as_user(other.pw_uid, [exe("pv-example-dbus-client"), "-a", address, "-i", "100ms",
                                   "-n", "1", "--expect-denied"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "denied: org.freedesktop.DBus.Error.AccessDenied (GetInfo)" in r.stdout, r.stdout
    assert "denied: org.freedesktop.DBus.Error.AccessDenied (RequestName" in r.stdout
    assert "reply:" not in r.stdout


def test_dbus_client_survives_a_bus_restart(tmp, procs):
    # The provider container restarting takes its bus down: the server exits non-zero (fatal for
    # it), the client keeps running and gets replies again from the next bus.
    sock = os.path.join(tmp, "bus")
    conf = os.path.join(EXAMPLES, "pv-example-dbus-server", "system.conf")
    daemon_argv = ["dbus-daemon", f"--config-file={conf}", f"--address=unix:path={sock}",
                   "--nofork", "--nopidfile"]
    address = f"unix:path={sock}"
    d1 = procs.start("dbus-daemon-1", daemon_argv, check=False)
    wait_path(sock)
    s1 = procs.start("server-1", [exe("pv-example-dbus-server"), "-a", address], check=False)
    wait_for(s1.log, r"owns ")
    client = procs.start("client", [exe("pv-example-dbus-client"), "-a", address, "-i", "100ms"])
    wait_for(client.log, r"reply: ")
    d1.terminate()
    d1.wait(5)
    assert s1.wait(5) == 1 and "disconnected from the bus" in read(s1.log)
    wait_for(client.log, r"disconnected from the bus; reconnecting")
    procs.start("dbus-daemon-2", daemon_argv, check=False)
    s2 = procs.start("server-2", [exe("pv-example-dbus-server"), "-a", address])
    wait_for(s2.log, r"owns ")
    wait_for(client.log, r"reconnecting\n(?:.*\n)*?.*connected to (?:.*\n)*?.*reply: ", 15)
    assert client.poll() is None


def test_dbus_client_fails_loudly_if_it_can_own_the_name(tmp, procs):
    # Without the example server the name is free and root may own it: --expect-denied must
    # report that as the failed attack it is (exit 3), not as success.
    sock = os.path.join(tmp, "bus")
    conf = os.path.join(EXAMPLES, "pv-example-dbus-server", "system.conf")
    procs.start("dbus-daemon", ["dbus-daemon", f"--config-file={conf}",
                                f"--address=unix:path={sock}", "--nofork", "--nopidfile"],
                check=False)
    wait_path(sock)
    r = run([exe("pv-example-dbus-client"), "-a", f"unix:path={sock}", "-n", "1",
             "--expect-denied"])
    assert r.returncode == 3, r.stdout
    assert "attack succeeded" in r.stdout


# ---------------------------------------------------------------- drm

def drm_minor_free(minor):
    """True if no DRM device with this minor exists here, so opening it cannot succeed."""
    return not os.path.exists(f"/sys/dev/char/226:{minor}")


@pytest.mark.parametrize("prog,node,minor", [("pv-example-drm-master", "card0", 0),
                                             ("pv-example-drm-render", "renderD128", 128)])
def test_drm_consumer_reports_errno_of_a_dead_node(tmp, prog, node, minor):
    if not drm_minor_free(minor):
        minor = 63  # a real GPU owns this minor: use one no driver hands out
    path = os.path.join(tmp, node)
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(226, minor))
    r = run([exe(prog), "-d", path, "-n", "2", "-i", "50ms"])
    # A clean failure: exit 1, never a signal.
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    fails = re.findall(rf"^{prog}: open {re.escape(path)}: (ENXIO|ENODEV) \(.+\)$", r.stdout, re.M)
    assert len(fails) == 2, r.stdout
    assert "stopped after 2 queries, last failed" in r.stdout


def test_drm_master_reports_which_call_failed(tmp):
    # /dev/null opens fine but is no DRM device: the failure is drmGetVersion's ENOTTY.
    r = run([exe("pv-example-drm-master"), "-d", "/dev/null", "-n", "1"])
    assert r.returncode == 1
    assert "drmGetVersion /dev/null: ENOTTY" in r.stdout, r.stdout
    # a node that never comes: the bounded wait ends, and the open reports ENOENT
    missing = os.path.join(tmp, "missing")
    t0 = time.monotonic()
    r = run([exe("pv-example-drm-master"), "-d", missing, "-n", "1", "-w", "300ms"])
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout
    assert f"waiting up to 300 ms for {missing}: ENOENT" in r.stdout, r.stdout
    assert re.search(rf"{re.escape(missing)} still missing after (\d+) ms", r.stdout), r.stdout
    assert f"open {missing}: ENOENT (" in r.stdout, r.stdout
    assert 0.3 <= took < 5, took
    # --wait 0: no wait at all
    r = run([exe("pv-example-drm-render"), "-d", missing, "-n", "1", "-w", "0"])
    assert r.returncode == 1 and "waiting" not in r.stdout, r.stdout
    assert f"open {missing}: ENOENT (" in r.stdout, r.stdout


@pytest.mark.parametrize("prog,minor", [("pv-example-drm-master", 0),
                                        ("pv-example-drm-render", 128)])
def test_drm_consumer_waits_for_the_injected_node(tmp, procs, prog, minor):
    """xconnect mknods the provider's node into the consumer after it started: the consumer
    must wait for it (directory included), then report the node's numbers and what the open or
    the driver answered, on its first query."""
    if not drm_minor_free(minor):
        minor = 63
    dri = os.path.join(tmp, "dev", "dri")  # not there yet either
    node = os.path.join(dri, "node")
    p = procs.start("consumer", [exe(prog), "-d", node, "-i", "10", "-w", "20"], check=False)
    wait_for(p.log, rf"waiting up to 20000 ms for {re.escape(node)}: ENOENT")
    time.sleep(0.3)
    os.makedirs(dri)
    time.sleep(0.2)
    os.mknod(node, 0o660 | stat.S_IFCHR, os.makedev(226, minor))
    t0 = time.monotonic()
    m = wait_for(p.log, rf"^{prog}: node {re.escape(node)}: char 226:{minor} mode \d+, "
                 rf"appeared after (\d+) ms$", 5)
    # inotify, not the 250 ms re-check alone, and not the 10 s interval
    assert time.monotonic() - t0 < 2 and int(m.group(1)) >= 400
    wait_for(p.log, rf"^{prog}: open {re.escape(node)}: (ENXIO|ENODEV) \(", 5)
    assert "still missing" not in read(p.log)


def test_cli_rejects_unknown_options_and_arguments():
    for prog in ["pv-example-unix-server", "pv-example-rest-client", "pv-example-drm-master",
                 "pv-example-wayland-client"]:
        r = run([exe(prog), "--no-such-option"])
        assert r.returncode == 2 and "usage: " + prog in r.stderr, (prog, r.stderr)
        r = run([exe(prog), "stray"])
        assert r.returncode == 2 and "unexpected argument 'stray'" in r.stderr, (prog, r.stderr)
        r = run([exe(prog), "--help"])
        assert r.returncode == 0 and r.stdout.startswith("usage: " + prog), (prog, r.stdout)
    r = run([exe("pv-example-wayland-client"), "--frames", "0"])
    assert r.returncode == 2 and "bad --frames '0'" in r.stderr, r.stderr
    r = run([exe("pv-example-drm-render"), "--wait", "later"])
    assert r.returncode == 2 and "bad --wait 'later'" in r.stderr, r.stderr


def test_drm_provider_lists_and_creates_nodes(tmp):
    dri = os.path.join(tmp, "dri")
    os.mkdir(dri)
    os.mknod(os.path.join(dri, "card0"), 0o660 | stat.S_IFCHR, os.makedev(226, 0))
    os.chmod(os.path.join(dri, "card0"), 0o660)  # mknod's mode is filtered by the umask
    r = run([exe("pv-example-drm-provider"), "-d", dri, "-n", "1"])
    assert r.returncode == 0, r.stdout
    assert "1 DRM node(s) in" in r.stdout
    assert re.search(r"node .*/dri/card0: char 226:0 mode 0660", r.stdout), r.stdout

    fresh = os.path.join(tmp, "fresh", "dri")
    r = run([exe("pv-example-drm-provider"), "-d", fresh, "-n", "1", "--mknod-missing"])
    assert r.returncode == 0, r.stdout
    st = os.stat(os.path.join(fresh, "renderD128"))
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 226
    assert os.minor(st.st_rdev) == 128 and stat.S_IMODE(st.st_mode) == 0o666
    assert "2 DRM node(s) in" in r.stdout


def test_drm_provider_logs_nodes_coming_and_going(tmp, procs):
    dri = os.path.join(tmp, "dri")
    os.mkdir(dri)
    p = procs.start("provider", [exe("pv-example-drm-provider"), "-d", dri, "-i", "100ms"])
    wait_for(p.log, r"0 DRM node\(s\)")
    os.mknod(os.path.join(dri, "renderD128"), 0o666 | stat.S_IFCHR, os.makedev(226, 128))
    wait_for(p.log, r"node appeared .*renderD128: char 226:128")
    os.unlink(os.path.join(dri, "renderD128"))
    wait_for(p.log, r"node gone .*renderD128")


# ---------------------------------------------------------------- wayland

@pytest.fixture
def weston(tmp, procs):
    runtime = os.path.join(tmp, "xdg")
    os.mkdir(runtime, 0o700)
    ex = os.path.join(EXAMPLES, "pv-example-wayland-server")
    # A relative ini path, as in docs/EXAMPLES.md: start.sh must resolve it against its cwd.
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime,
               PV_EXAMPLE_WESTON_INI="pv-example-wayland-server/weston.ini")
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    w = procs.start("weston", [os.path.join(ex, "start.sh")], env=env, check=False,
                    cwd=EXAMPLES)
    sock = os.path.join(runtime, "wayland-0")
    wait_path(sock, 20)
    assert w.poll() is None, read(w.log)
    return sock, runtime


def test_wayland_client_presents_frames(weston):
    sock, runtime = weston
    r = run([exe("pv-example-wayland-client"), "-d", sock, "--once"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pv-example-wayland-client: presented 60 frames" in r.stdout
    assert "first frame presented" in r.stdout


def test_wayland_client_uses_wayland_display(weston):
    sock, runtime = weston
    env = dict(os.environ, WAYLAND_DISPLAY=sock)  # absolute, as in the container
    r = run([exe("pv-example-wayland-client"), "-f", "5", "--once"], env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"connected to {sock}" in r.stdout
    assert "presented 5 frames" in r.stdout


def test_wayland_client_redraws_after_compositor_restart(tmp, procs):
    # Without --once the client keeps its window; when the compositor goes away it reconnects
    # and presents its frames again on the new one.
    runtime = os.path.join(tmp, "xdg")
    os.mkdir(runtime, 0o700)
    ex = os.path.join(EXAMPLES, "pv-example-wayland-server")
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime,
               PV_EXAMPLE_WESTON_INI=os.path.join(ex, "weston.ini"))
    sock = os.path.join(runtime, "wayland-0")
    w1 = procs.start("weston-1", [os.path.join(ex, "start.sh")], env=env, check=False)
    wait_path(sock, 20)
    client = procs.start("client", [exe("pv-example-wayland-client"), "-d", sock, "-f", "5"])
    wait_for(client.log, r"presented 5 frames", 20)
    w1.terminate()
    w1.wait(10)
    wait_for(client.log, r"compositor connection lost", 10)
    procs.start("weston-2", [os.path.join(ex, "start.sh")], env=env, check=False)
    wait_for(client.log, r"connection lost(?:.*\n)+.*connected to (?:.*\n)*?.*presented 5 frames",
             30)
    assert client.poll() is None


def test_wayland_client_fails_cleanly_without_frame_callbacks(tmp, procs):
    # A "compositor" that accepts and never answers: the client must give up with an error
    # after its timeout instead of hanging or crashing.
    sock = os.path.join(tmp, "wayland-dead")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(sock)
    srv.listen(1)
    try:
        r = run([exe("pv-example-wayland-client"), "-d", sock, "--once"], timeout=30)
    finally:
        srv.close()
    assert r.returncode == 1, r.stdout + r.stderr


# ---------------------------------------------------------------- image.conf in a chroot

def shared_libs(path):
    """The libraries the dynamic linker resolves for path (none for static binaries)."""
    r = run(["ldd", path])
    return re.findall(r"(/\S+) \(0x", r.stdout) if r.returncode == 0 else []


def copy_into(root, src, dest=None):
    dest = os.path.join(root, (dest or src).lstrip("/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest)  # follows symlinks: the file itself goes in


def pack(name, root):
    """A rootfs with exactly what <name>/image.conf lists (the image builder's contract), plus
    busybox for /bin/sh and a /dev/null, as the container runtime would provide."""
    conf = image_conf(name)
    for b in conf["BINS"].split():
        copy_into(root, exe(b), "/usr/bin/" + b)
        for lib in shared_libs(exe(b)):
            copy_into(root, lib)
    for pair in conf["FILES"].split():
        src, _, dest = pair.partition(":")
        copy_into(root, os.path.join(EXAMPLES, name, src), dest)
    for f in conf["PACKAGES_BINS"].split():
        copy_into(root, f)
        for lib in shared_libs(f):
            copy_into(root, lib)
    for f in conf.get("PACKAGES_FILES", "").split():
        copy_into(root, f)
    busybox = shutil.which("busybox")
    assert busybox and not shared_libs(busybox), "needs a static busybox (busybox-static)"
    copy_into(root, busybox, "/bin/busybox")
    for applet in ("sh", "mkdir", "chmod", "rm", "sleep", "dirname"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    for d in ("run", "tmp", "dev"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.mknod(os.path.join(root, "dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(os.path.join(root, "dev/null"), 0o666)
    os.chmod(root, 0o755)
    return shlex.split(conf["INIT"])


@pytest.fixture
def linked_roots(tmp):
    """Two rootfs dirs, each with its own /proc (as a container has; sanitizer runtimes need
    it); link(provider_socket, target) makes the provider's /run visible in the consumer
    (read-only bind mount) and points target at the socket, as an xconnect link would. Every
    mount is removed before anything is deleted, even when the test fails."""
    prov, cons = os.path.join(tmp, "provider-root"), os.path.join(tmp, "consumer-root")
    mounts = []

    def mount(args, where):
        os.makedirs(where, exist_ok=True)
        subprocess.run(["mount"] + args + [where], check=True)
        mounts.append(where)

    def proc(root):
        mount(["-t", "proc", "proc"], os.path.join(root, "proc"))

    def link(socket_path, target):
        mnt = os.path.join(cons, "provider-run")
        mount(["--bind", os.path.join(prov, "run")], mnt)
        # Read-only: even a cleanup that walked into it could not delete the provider's files.
        subprocess.run(["mount", "-o", "remount,bind,ro", mnt], check=True)
        t = os.path.join(cons, target.lstrip("/"))
        os.makedirs(os.path.dirname(t), exist_ok=True)
        os.symlink("/provider-run/" + os.path.relpath(socket_path, "/run"), t)

    os.mkdir(prov)
    os.mkdir(cons)
    yield prov, cons, proc, link
    for m in reversed(mounts):
        # os.path.ismount cannot see a bind mount within one filesystem: ask the kernel.
        if is_mounted(m):
            subprocess.run(["umount", "-l", m], check=False)
    left = [m for m in mounts if is_mounted(m)]
    assert not left, f"still mounted: {left}"


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


CHROOT_PAIRS = [
    # provider, its ready line (None: its socket is enough), consumer, extra consumer args for a
    # bounded run, proof in the consumer's output
    ("pv-example-unix-server", r"listening on", "pv-example-unix-client",
     ["-n", "2", "-i", "100ms"], r'fd: received "hello through a passed fd'),
    ("pv-example-rest-server", r"listening on", "pv-example-rest-client",
     ["-n", "2", "-i", "100ms"], r'response 200: \{"client": null, "role": null, "path": "/ping/2"\}'),
    ("pv-example-dbus-server", r"owns org\.pantavisor\.Example", "pv-example-dbus-client",
     ["-n", "1"], r"reply: org\.pantavisor\.Example: hello \S+, your uid is 0"),
    ("pv-example-wayland-server", None, "pv-example-wayland-client", ["-f", "10", "--once"],
     r"presented 10 frames"),
]


@pytest.mark.parametrize("provider,ready,consumer,extra,proof", CHROOT_PAIRS,
                         ids=[p[0][len("pv-example-"):] for p in CHROOT_PAIRS])
def test_image_conf_is_enough_to_run_in_a_chroot(linked_roots, procs, provider, ready, consumer,
                                                 extra, proof):
    prov, cons, proc, link = linked_roots
    export = load(provider, "services.json")["services"][0]
    req = load(consumer, "run.json")["services"]["required"][0]
    assert req["name"] == export["name"]
    p_init = pack(provider, prov)
    c_init = pack(consumer, cons)
    proc(prov)
    proc(cons)
    env = {"PATH": "/usr/bin:/bin"}  # the image's PATH, for the scripts inside it
    chroot = shutil.which("chroot")
    server = procs.start("chroot-" + provider, [chroot, prov] + p_init, env=env, check=False)
    wait_path(os.path.join(prov, export["socket"].lstrip("/")), 20)
    if ready:
        wait_for(server.log, ready, 20)
    link(export["socket"], req["target"])
    r = run([chroot, cons] + c_init + extra, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + read(server.log)
    assert re.search(proof, r.stdout), r.stdout
    assert server.poll() is None, read(server.log)


# ---------------------------------------------------------------- common

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGPWR])
def test_stop_signals_end_a_program_cleanly(tmp, sig):
    # SIGPWR is lxc's halt signal for a container's init: it must stop the program at once.
    sock = os.path.join(tmp, "raw.sock")
    p = subprocess.Popen([exe("pv-example-unix-server"), "-s", sock], stdout=subprocess.PIPE,
                         text=True)
    try:
        wait_path(sock)
        p.send_signal(sig)
        out, _ = p.communicate(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.rstrip().endswith("pv-example-unix-server: stopped")
    assert not os.path.exists(sock)


@pytest.mark.parametrize("prog", ["pv-example-unix-client", "pv-example-rest-client",
                                  "pv-example-dbus-client", "pv-example-drm-master",
                                  "pv-example-drm-provider"])
def test_bad_option_values_are_usage_errors(prog):
    r = run([exe(prog), "--count", "many"])
    assert r.returncode == 2 and "bad --count" in r.stderr
    r = run([exe(prog), "--interval", "soon"])
    assert r.returncode == 2 and "bad --interval" in r.stderr
