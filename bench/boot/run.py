#!/usr/bin/env python3
# bench/boot/run.py: time from start to every container of an N-container busybox state RUNNING
# (N = 1, 10, 50), for pv-engine alone and under the `pantavisor` init (appengine mode), and the
# idle RSS of init, pv-engine, pv-ctrl and pv-xconnect. Prints numbers; asserts nothing.
# Usage (root): python3 bench/boot/run.py [--bin build/bin] [--n 1,10,50]
import argparse
import os
import signal
import subprocess
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pids_of(name, rundir):
    out = subprocess.run(["pgrep", "-f", "%s .*--rundir %s" % (name, rundir)],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(SRC, "build", "bin"))
    ap.add_argument("--n", default="1,10,50")
    a = ap.parse_args()
    os.environ["PV_BIN"] = os.path.abspath(a.bin)
    sys.path.insert(0, os.path.join(SRC, "tests", "system"))
    import test_engine_lifecycle as t  # the engine tests' storage builder
    from test_engine_appengine import InitEnv

    init_bin = os.path.join(a.bin, "pantavisor")
    for n in [int(x) for x in a.n.split(",")]:
        for mode in ("engine", "init") if os.path.exists(init_bin) else ("engine",):
            e = InitEnv()
            try:
                cs = [e.container("b%d" % i, group="app", restart_policy="container",
                                  auto_recovery={"policy": "no"}) for i in range(n)]
                e.write_rev("0", *cs)
                if mode == "init":
                    libexec = os.path.join(e.root, "libexec")
                    os.makedirs(libexec)
                    for d in ("pv-engine", "pv-ctrl", "pv-xconnect"):
                        if os.path.exists(os.path.join(a.bin, d)):
                            os.symlink(os.path.abspath(os.path.join(a.bin, d)),
                                       os.path.join(libexec, d))
                t0 = time.monotonic()
                p = e.start() if mode == "engine" else e.start_init()

                def all_up():
                    try:
                        lst = e.containers()
                    except OSError:
                        return False
                    return len(lst) == n and all(c["status"] == "STARTED" for c in lst.values())

                ok = t.wait_for(all_up, 300, 0.02)
                dt = time.monotonic() - t0
                time.sleep(2)  # idle
                rss = {"engine": [rss_kb(x) for x in pids_of("pv-engine", e.rundir)]}
                if mode == "init":
                    rss["init"] = [rss_kb(p.pid)]
                    for d in ("pv-ctrl", "pv-xconnect"):
                        rss[d] = [rss_kb(x) for x in pids_of(d, e.rundir)]
                t1 = time.monotonic()
                p.send_signal(signal.SIGINT if mode == "init" else signal.SIGTERM)
                p.wait(120)
                print("boot %-6s N=%-3d all RUNNING %6.2f s%s  stop %5.2f s  RSS kB %s" %
                      (mode, n, dt, "" if ok else " (TIMEOUT)", time.monotonic() - t1,
                       {k: v for k, v in rss.items() if v}))
            finally:
                e.cleanup()


if __name__ == "__main__":
    main()
