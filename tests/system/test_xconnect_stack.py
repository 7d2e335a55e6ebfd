# test_xconnect_stack.py: pv-xconnect on the whole stack (pv-appengine: init, engine, pv-ctrl,
# pv-xconnect, real LXC containers): the revision's services.json and run.json make a unix link,
# GET /xconnect-graph shows its live state, fds cross it both ways, a provider restart through
# the API re-links it, and a hot update that drops the export tears the link down inside a
# consumer that keeps running. The provider's socket is served by this test, bound inside the
# provider container through /proc/<pid>/root (the base image is busybox only).
import json
import os
import socket
import stat

import pytest

import pvtest
import update_env as U

pytestmark = U.requires("pantavisor", "pv-engine", "pv-ctrl", "pv-appengine", "pv-xconnect")
no_sanitizer_reports = U.no_sanitizer_reports  # autouse

EXPORT = "/run/raw.sock"
TARGET = "/run/pv/services/raw-unix.sock"


class XRev(U.Revision):
    """A revision with state JSON values besides the containers' run.json (services.json)."""

    def __init__(self, ctrs, files=None, groups_timeout=8, values=None):
        super().__init__(ctrs, files, groups_timeout)
        self.values = dict(values or {})

    def copy(self):
        r = U.Revision.copy(self)
        return XRev(list(r.ctrs.values()), r.files, r.groups_timeout, self.values)

    def build(self):
        state, objects = super().build()
        state.update(self.values)
        return state, objects


def services(name="raw-unix"):
    return {"#spec": "service-manifest-xconnect@1",
            "services": [{"name": name, "type": "unix", "socket": EXPORT}]}


def make_device(device, need):
    """Container 0 exports raw-unix, container 1 needs it (need: "required" or "optional")."""
    d = U.UpdateDevice(device, n=2)
    prov, cons = d.name(0), d.name(1)
    r0 = d.rev0
    r0.ctrs[cons].run_extra = {"services": {need: [{"name": "raw-unix", "target": TARGET}]}}
    d.rev0 = XRev(list(r0.ctrs.values()), r0.files, r0.groups_timeout,
                  {"%s/services.json" % prov: services()})
    d.prov, d.cons = prov, cons
    return d


@pytest.fixture
def ud(device):
    return make_device(device, "required")


def graph(ud):
    st, g = ud.get_json("/xconnect-graph")
    return g if st == 200 and isinstance(g, list) else None


def link_state(ud):
    g = graph(ud) or []
    return [(x.get("consumer"), x.get("provider"), x.get("name"), x.get("state")) for x in g]


def serve(ud, pid):
    """Listens at the export path inside the provider container whose init is pid."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = "/proc/%d/root%s" % (pid, EXPORT)
    assert pvtest.wait_until(lambda: os.path.isdir(os.path.dirname(path)), 10, 0.05)
    s.bind(path)
    s.listen(8)
    s.settimeout(10)
    return s


def target(ud, pid):
    return "/proc/%d/root%s" % (pid, TARGET)


def connect(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(path)
    return c


def echo_once(srv, path, data):
    """One connection through the link: the consumer sends, the provider echoes."""
    c = connect(path)
    p, _ = srv.accept()
    p.settimeout(10)
    c.sendall(data)
    got = b""
    while len(got) < len(data):
        got += p.recv(65536)
    p.sendall(got)
    back = b""
    while len(back) < len(data):
        back += c.recv(65536)
    return c, p, back


def up(ud):
    return (ud.cons, ud.prov, "raw-unix", "up") in link_state(ud)


def test_link_from_the_revision_carries_bytes_and_fds_and_shows_up(ud):
    ud.start()
    ppid, cpid = ud.lxc_pid(ud.prov), ud.lxc_pid(ud.cons)
    srv = serve(ud, ppid)
    assert pvtest.wait_until(lambda: up(ud), 20, 0.05), (link_state(ud), ud.diag())
    t = target(ud, cpid)
    st = os.lstat(t)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    c, p, back = echo_once(srv, t, b"hello through the stack\n")
    assert back == b"hello through the stack\n"
    # fds both ways: each side gets an open file it can read what the other wrote into
    for a, b, msg in ((c, p, b"from the consumer"), (p, c, b"from the provider")):
        r, w = os.pipe()
        os.write(w, msg)
        os.close(w)
        socket.send_fds(a, [b"F"], [r])
        os.close(r)
        data, fds, _, _ = socket.recv_fds(b, 16, 4)
        assert data == b"F" and len(fds) == 1, (data, fds)
        assert os.read(fds[0], 100) == msg
        os.close(fds[0])
    c.close()
    p.close()
    # the graph entry names the link with upstream's fields plus its live state
    g = [x for x in graph(ud) if x.get("consumer") == ud.cons]
    assert len(g) == 1 and g[0]["type"] == "unix" and g[0]["socket"] == EXPORT, g
    assert g[0]["target"] == TARGET and g[0]["state"] == "up", g
    srv.close()


def test_provider_restart_through_the_api_relinks(ud):
    ud.start()
    ppid, cpid = ud.lxc_pid(ud.prov), ud.lxc_pid(ud.cons)
    srv = serve(ud, ppid)
    assert pvtest.wait_until(lambda: up(ud), 20, 0.05), (link_state(ud), ud.diag())
    c, p, back = echo_once(srv, target(ud, cpid), b"before\n")
    assert back == b"before\n"
    st, _, body = ud.curl("/containers/%s" % ud.prov, "PUT",
                          data=json.dumps({"action": "restart"}))
    assert st == 200, (st, body, ud.diag())
    assert pvtest.wait_until(lambda: ud.lxc_pid(ud.prov) not in (None, ppid), 30, 0.1)
    ppid2 = ud.lxc_pid(ud.prov)
    # the connection to the old provider is closed by the proxy, not left hanging
    assert pvtest.wait_until(lambda: c.recv(10) == b"", 15, 0.05)
    c.close()
    p.close()
    srv.close()
    # the new provider serves again (a fresh rootfs: the socket file is new): relinked
    srv = serve(ud, ppid2)
    assert pvtest.wait_until(lambda: up(ud), 20, 0.05), (link_state(ud), ud.diag())
    assert ud.lxc_pid(ud.cons) == cpid  # the consumer was not touched
    c, p, back = echo_once(srv, target(ud, cpid), b"after\n")
    assert back == b"after\n"
    c.close()
    p.close()
    srv.close()


def test_export_dropped_by_hot_update_tears_the_link_down_in_a_running_consumer(device):
    # optional: a state whose required service nobody exports is refused by the validator
    ud = make_device(device, "optional")
    ud.start()
    ppid, cpid = ud.lxc_pid(ud.prov), ud.lxc_pid(ud.cons)
    srv = serve(ud, ppid)
    assert pvtest.wait_until(lambda: up(ud), 20, 0.05), (link_state(ud), ud.diag())
    t = target(ud, cpid)
    c, p, back = echo_once(srv, t, b"live\n")
    assert back == b"live\n"
    # revision 1: the provider no longer exports (it restarts, it owns services.json); the
    # consumer's files are unchanged, so it keeps running while its link goes
    r1 = ud.rev0.copy()
    del r1.values["%s/services.json" % ud.prov]
    pr, tl, reply = ud.update("noexport", r1)
    assert reply[0] == 200 and pr["status"] in ("UPDATED", "DONE"), (pr, tl, ud.diag())
    assert ud.lxc_pid(ud.cons) == cpid, "the consumer restarted: the test proves nothing"
    # the injected socket is gone from the consumer, the live connection is closed
    assert pvtest.wait_until(lambda: not os.path.lexists(t), 15, 0.05), ud.diag()
    c.settimeout(10)
    assert c.recv(10) == b""
    assert [x for x in (graph(ud) or []) if x.get("consumer") == ud.cons
            and x.get("state") == "up"] == [], graph(ud)
    c.close()
    p.close()
    srv.close()
