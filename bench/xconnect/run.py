#!/usr/bin/env python3
"""bench/xconnect: pv-xconnect link numbers, all measured in one run against the provider's
socket used directly.

  PV_BIN=build/bin python3 bench/xconnect/run.py [--mib 2048] [--rtt 20000] [--rounds 5]

Provider: pvx-bench server in its own mount namespace; consumer: a second namespace; the
pv-xconnect under test gets its graph from the test engine stand-in (tests/system/xconnect_env).
Prints, interleaved per round (ratios per round, medians):
 - unix: throughput (MiB/s), median 64-byte round trip (us), connections/s for the provider's
   socket used directly, a mediated link, a direct-mode link;
 - rest: keep-alive GET requests/s and p50 latency, directly and through a rest link;
 - dbus: sequential GetId method calls/s and p50 latency against a real dbus-daemon, directly
   and through a dbus link (unfiltered, and filtered on an interface); skipped without
   dbus-daemon;
then graph push -> socket present in the consumer and daemon RSS with 1 and N links.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

SRC = os.environ.get("PV_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "system"))
from xconnect_env import Env, link, wait_for  # noqa: E402


def tool():
    return os.path.join(os.environ.get("PV_BIN", ""), "pvx-bench")


def measure(kind, path, arg):
    out = subprocess.run([tool(), kind, path, str(arg)], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError("%s %s: %s" % (kind, path, out.stderr))
    v = [float(x) for x in out.stdout.split()]
    return v[0] if len(v) == 1 else tuple(v)


def pairs(runs, base):
    """Per-path medians of (rate, p50) and of the per-round ratios against runs[base]."""
    out = {}
    for name, v in runs.items():
        ratios = [(r[0] / d[0], r[1] / d[1]) for r, d in zip(v, runs[base])]
        out[name] = (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v),
                     statistics.median(r[0] for r in ratios),
                     statistics.median(r[1] for r in ratios))
    return out


def print_pairs(title, unit, res):
    print("%s" % title)
    print("  %-26s %10s %7s %10s %7s" % ("path", unit, "ratio", "p50 us", "ratio"))
    for name, (rate, p50, rr, rp) in res.items():
        print("  %-26s %10.0f %6.2fx %10.1f %6.2fx" % (name, rate, rr, p50, rp))


BUS = 'exec dbus-daemon --config-file="$1" --address="unix:path=$2" --nofork --nopidfile'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--rtt", type=int, default=20000)
    ap.add_argument("--conns-seconds", type=float, default=2.0)
    ap.add_argument("--links", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()

    env = Env()
    try:
        root = os.path.join(env.dir, "prov")
        sock = os.path.join(root, "bench.sock")
        prov = env.ns("prov", [tool(), "server", sock])
        assert wait_for(lambda: os.path.exists(prov.path(sock)))
        cons = env.ns("cons")
        env.start_daemon()
        tm, td = cons.root + "/run/mediated.sock", cons.root + "/run/direct.sock"
        base = [link("cons", cons.pid, "prov", prov.pid, "mediated", tm, sock),
                link("cons", cons.pid, "prov", prov.pid, "direct", td, sock, mode="direct")]
        t0 = env.engine.push(base[:1])
        assert env.engine.wait_state("cons", "mediated", "up", since=t0)
        rss1 = env.rss_kb()
        t0 = env.engine.push(base)
        assert env.engine.wait_state("cons", "mediated", "up", since=t0)
        assert env.engine.wait_state("cons", "direct", "up", since=t0)

        # the floor: a minimal epoll relay (relay.c) costs what any sleeping proxy must
        relay_sock = os.path.join(env.dir, "relay.sock")
        relay = subprocess.Popen([tool(), "relay", relay_sock, prov.path(sock)])
        assert wait_for(lambda: os.path.exists(relay_sock))
        paths = {"direct socket": prov.path(sock), "minimal relay (floor)": relay_sock,
                 "mediated link": cons.path(tm), "direct-mode link": cons.path(td)}
        # Interleaved rounds: the machine is shared, so every round measures all three paths
        # back to back and the ratio is taken per round; medians are reported.
        runs = {name: [] for name in paths}
        for _ in range(a.rounds):
            for name, p in paths.items():
                runs[name].append((measure("tput", p, a.mib), measure("rtt", p, a.rtt),
                                   measure("conns", p, a.conns_seconds)))
        relay.kill()
        relay.wait()
        floor = [[m[k] / f[k] for m, f in zip(runs["mediated link"],
                                              runs["minimal relay (floor)"])] for k in range(3)]
        res = {}
        for name in paths:
            cols = list(zip(*runs[name]))
            ratios = [[r[k] / d[k] for r, d in zip(runs[name], runs["direct socket"])]
                      for k in range(3)]
            res[name] = tuple(statistics.median(c) for c in cols) + tuple(
                statistics.median(r) for r in ratios)

        # REST: keep-alive requests/s through a rest link vs the provider's socket directly
        hroot = os.path.join(env.dir, "rest")
        hsock = os.path.join(hroot, "api.sock")
        hprov = env.ns("rest", [tool(), "http-server", hsock])
        assert wait_for(lambda: os.path.exists(hprov.path(hsock)))
        tr = cons.root + "/run/rest.sock"
        base.append(link("cons", cons.pid, "rest", hprov.pid, "rest", tr, hsock, type_="rest"))
        t0 = env.engine.push(base)
        assert env.engine.wait_state("cons", "rest", "up", since=t0)
        rest_paths = {"direct socket": hprov.path(hsock), "rest link": cons.path(tr)}
        rest_runs = {name: [] for name in rest_paths}
        for _ in range(a.rounds):
            for name, p in rest_paths.items():
                rest_runs[name].append(measure("reqs", p, a.conns_seconds))

        # D-Bus: GetId round trips to a real dbus-daemon, directly and through dbus links
        dbus_res = None
        if shutil.which("dbus-daemon"):
            conf = os.path.join(SRC, "examples", "pv-example-dbus-server", "system.conf")
            broot = os.path.join(env.dir, "bus")
            bsock = os.path.join(broot, "bus.sock")
            bprov = env.ns("bus", ["sh", "-c", BUS, "sh", conf, bsock])
            assert wait_for(lambda: os.path.exists(bprov.path(bsock)), 10)
            td, tf = cons.root + "/run/dbus.sock", cons.root + "/run/dbus-filtered.sock"
            base.append(link("cons", cons.pid, "bus", bprov.pid, "dbus", td, bsock,
                             type_="dbus", role="root"))
            fl = link("cons", cons.pid, "bus", bprov.pid, "dbusf", tf, bsock, type_="dbus",
                      role="root")
            fl["interface"] = "org.pantavisor.Example"
            base.append(fl)
            t0 = env.engine.push(base)
            assert env.engine.wait_state("cons", "dbus", "up", since=t0)
            assert env.engine.wait_state("cons", "dbusf", "up", since=t0)
            dbus_paths = {"direct to the bus": bprov.path(bsock), "dbus link": cons.path(td),
                          "dbus link, filtered": cons.path(tf)}
            dbus_runs = {name: [] for name in dbus_paths}
            for _ in range(a.rounds):
                for name, p in dbus_paths.items():
                    dbus_runs[name].append(measure("dbus", p, a.conns_seconds))
            dbus_res = pairs(dbus_runs, "direct to the bus")

        # graph change -> socket present in the consumer
        lat = []
        for i in range(20):
            t = cons.root + "/run/lat-%d.sock" % i
            t0 = env.engine.push(base + [link("cons", cons.pid, "prov", prov.pid, "lat%d" % i,
                                              t, sock)])
            assert wait_for(lambda: os.path.exists(cons.path(t)), 5, 0.0001)
            lat.append((time.monotonic() - t0) * 1000)
        env.engine.push(base)

        # RSS with many links
        many = [link("cons", cons.pid, "prov", prov.pid, "l%d" % i,
                     cons.root + "/run/many/l%d.sock" % i, sock) for i in range(a.links)]
        t0 = time.monotonic()
        env.engine.push(many)
        ok = wait_for(lambda: env.engine.status and len(env.engine.status[-1][1]) == a.links
                      and all(l["state"] == "up" for l in env.engine.status[-1][1]), 120, 0.05)
        t_many = time.monotonic() - t0
        rssn = env.rss_kb()

        print("pv-xconnect unix link benchmark (%d MiB bulk, %d x 64 B round trips, "
              "%d interleaved rounds, medians; ratios per round vs the direct socket)"
              % (a.mib, a.rtt, a.rounds))
        print("%-22s %10s %8s %10s %8s %10s %8s" % ("path", "MiB/s", "ratio", "rtt us", "ratio",
                                                     "conn/s", "ratio"))
        for name, (tput, rtt, conns, rt, rr, rc) in res.items():
            print("%-22s %10.0f %7.2fx %10.2f %7.2fx %10.0f %7.2fx" % (
                name, tput, rt, rtt, rr, conns, rc))
        print("mediated link vs the minimal relay (same rounds): throughput %.2fx, rtt %.2fx, "
              "conn/s %.2fx" % tuple(statistics.median(f) for f in floor))
        print_pairs("REST: keep-alive GET, one request at a time", "req/s",
                    pairs(rest_runs, "direct socket"))
        if dbus_res:
            print_pairs("D-Bus: sequential GetId calls to dbus-daemon", "calls/s", dbus_res)
        else:
            print("D-Bus: skipped (no dbus-daemon)")
        print("graph push -> socket in consumer: median %.2f ms, max %.2f ms (20 pushes)" % (
            statistics.median(lat), max(lat)))
        print("RSS: 1 link %d KiB; %d links %d KiB (all up: %s, in %.2f s)" % (
            rss1, a.links, rssn, ok, t_many))
    finally:
        env.close()


if __name__ == "__main__":
    main()
