#!/usr/bin/env python3
"""bench/xconnect: unix link numbers, all measured in one run against a direct unix socket.

  PV_BIN=build/bin python3 bench/xconnect/run.py [--mib 2048] [--rtt 20000]

Provider: pvx-bench server in its own mount namespace; consumer: a second namespace; the
pv-xconnect under test gets its graph from the test engine stand-in (tests/system/xconnect_env).
Prints throughput (MiB/s), median 64-byte round trip (us), connections/s for: the provider's
socket used directly, a mediated link, a direct-mode link; ratios against the direct socket;
graph push -> socket present in the consumer; daemon RSS with 1 and 1000 links.
"""
import argparse
import os
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
    return float(out.stdout)


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
        env.engine.push(base)
        assert env.engine.wait_state("cons", "mediated", "up")
        assert env.engine.wait_state("cons", "direct", "up")
        rss1 = env.rss_kb()

        paths = {"direct socket": prov.path(sock), "mediated link": cons.path(tm),
                 "direct-mode link": cons.path(td)}
        # Interleaved rounds: the machine is shared, so every round measures all three paths
        # back to back and the ratio is taken per round; medians are reported.
        runs = {name: [] for name in paths}
        for _ in range(a.rounds):
            for name, p in paths.items():
                runs[name].append((measure("tput", p, a.mib), measure("rtt", p, a.rtt),
                                   measure("conns", p, a.conns_seconds)))
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
        rest_runs = [(measure("reqs", hprov.path(hsock), a.conns_seconds),
                      measure("reqs", cons.path(tr), a.conns_seconds)) for _ in range(a.rounds)]

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
        print("%-18s %12s %8s %12s %8s %12s %8s" % ("path", "MiB/s", "ratio", "rtt us", "ratio",
                                                     "conn/s", "ratio"))
        for name, (tput, rtt, conns, rt, rr, rc) in res.items():
            print("%-18s %12.0f %7.2fx %12.2f %7.2fx %12.0f %7.2fx" % (
                name, tput, rt, rtt, rr, conns, rc))
        rd = statistics.median(r[0] for r in rest_runs)
        rp = statistics.median(r[1] for r in rest_runs)
        print("REST keep-alive requests/s: direct %.0f, through the rest link %.0f (%.2fx)" % (
            rd, rp, statistics.median(r[1] / r[0] for r in rest_runs)))
        print("graph push -> socket in consumer: median %.2f ms, max %.2f ms (20 pushes)" % (
            statistics.median(lat), max(lat)))
        print("RSS: 2 links %d KiB; %d links %d KiB (all up: %s, in %.2f s)" % (
            rss1, a.links, rssn, ok, t_many))
    finally:
        env.close()


if __name__ == "__main__":
    main()
