#!/usr/bin/env python3
"""bench/xconnect/compare.py: mediated unix link, several pv-xconnect builds side by side.

  PV_BIN=build/bin python3 bench/xconnect/compare.py DAEMON [DAEMON...]
      [--mib 256] [--rtt 2000] [--rounds 9]

Each DAEMON (a pv-xconnect binary, or a script that execs one with other settings) gets its own
provider, consumer and engine stand-in; every round measures the provider socket directly and
then each daemon's mediated link back to back, so the ratios (per round, medians) compare the
variants under the same load. Besides throughput and the 64-byte round trip it prints the
daemon's own CPU time per MiB and per round trip (from /proc/<pid>/task/*/schedstat), which is
far less sensitive than wall time to what else runs on a shared machine.
"""
import argparse
import os
import statistics
import subprocess
import sys

SRC = os.environ.get("PV_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "system"))
import xconnect_env  # noqa: E402
from xconnect_env import Env, link, wait_for  # noqa: E402


def tool():
    return os.path.join(os.environ.get("PV_BIN", ""), "pvx-bench")


def cpu_us(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1000.0


def measure(kind, path, arg):
    out = subprocess.run([tool(), kind, path, str(arg)], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError("%s %s: %s" % (kind, path, out.stderr))
    return float(out.stdout.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("daemons", nargs="+")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rtt", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    envs, paths = [], []
    try:
        for d in a.daemons:
            d = os.path.abspath(d)
            xconnect_env.daemon_binary = lambda d=d: d
            env = Env()
            envs.append(env)
            sock = os.path.join(env.dir, "prov", "bench.sock")
            prov = env.ns("prov", [tool(), "server", sock])
            assert wait_for(lambda: os.path.exists(prov.path(sock)))
            cons = env.ns("cons")
            env.start_daemon()
            tm = cons.root + "/run/mediated.sock"
            env.engine.push([link("cons", cons.pid, "prov", prov.pid, "mediated", tm, sock)])
            assert env.engine.wait_state("cons", "mediated", "up")
            if not paths:
                paths.append(("direct socket", prov.path(sock), None))
            paths.append((os.path.basename(d), cons.path(tm), env.daemon.pid))
        res = {name: [] for name, _, _ in paths}
        for _ in range(a.rounds):
            for name, p, pid in paths:
                c0 = cpu_us(pid) if pid else 0
                tput = measure("tput", p, a.mib)
                c1 = cpu_us(pid) if pid else 0
                rtt = measure("rtt", p, a.rtt)
                c2 = cpu_us(pid) if pid else 0
                # rtt runs 1000 warm-up round trips before the measured ones
                res[name].append((tput, rtt, (c1 - c0) / a.mib, (c2 - c1) / (a.rtt + 1000)))
        base = res["direct socket"]
        print("%d rounds, %d MiB bulk, %d x 64 B round trips; medians, ratios per round" % (
            a.rounds, a.mib, a.rtt))
        print("%-24s %9s %7s %9s %7s %11s %11s" % ("path", "MiB/s", "ratio", "rtt us", "ratio",
                                                   "cpu us/MiB", "cpu us/rtt"))
        for name, _, _ in paths:
            v = res[name]
            med = [statistics.median(x[k] for x in v) for k in range(4)]
            rt = statistics.median(x[0] / y[0] for x, y in zip(v, base))
            rr = statistics.median(x[1] / y[1] for x, y in zip(v, base))
            print("%-24s %9.0f %6.2fx %9.2f %6.2fx %11.1f %11.1f" % (
                name, med[0], rt, med[1], rr, med[2], med[3]))
    finally:
        for e in envs:
            e.close()


if __name__ == "__main__":
    main()
