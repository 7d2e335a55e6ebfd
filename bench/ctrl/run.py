#!/usr/bin/env python3
"""bench/ctrl: pv-ctrl request rate and latency, all measured in one run.

  PV_BIN=build/bin python3 bench/ctrl/run.py [--seconds 5] [--rounds 3]

Starts a device the way tests/system/test_ctrl_api.py does (pv-engine in appengine mode with two
LXC containers, pv-ctrl in front of it), then drives pvctrl-bench (libuv, keep-alive, one request
in flight per connection) with 1 and 64 clients against GET /containers and GET /xconnect-graph.
The baseline in the same run is pvctrl-bench's own static MHD server (pv-ctrl's MHD options, a
body of the same size, nothing behind it): the ceiling of the HTTP layer on this machine.
Prints req/s, p50/p99 (best of --rounds by req/s), RSS of pv-ctrl under load, the CPU seconds
each process used, and ratios to the baseline.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

SRC = os.environ.get("PV_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "system"))
from test_ctrl_api import CtrlEnv, wait_for  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def tool():
    return os.path.join(os.environ.get("PV_BIN", ""), "pvctrl-bench")


def cpu_s(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / HZ
    except OSError:
        return 0.0


def rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load(sock, path, clients, seconds, pids):
    """One pvctrl-bench run; adds max RSS and CPU seconds of each pid in pids."""
    before = {n: cpu_s(p) for n, p in pids.items()}
    peak = {n: 0 for n in pids}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for n, p in pids.items():
                peak[n] = max(peak[n], rss_kb(p))
            time.sleep(0.1)

    t = threading.Thread(target=sample)
    t.start()
    gen = subprocess.Popen([tool(), "load", sock, path, str(clients), str(seconds), "0.5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=seconds + 60)
    done.set()
    t.join()
    if gen.returncode != 0:
        raise RuntimeError("pvctrl-bench %s %d: %s" % (path, clients, err))
    r = json.loads(out)
    r["rss_kb"] = peak
    r["cpu_s"] = {n: round(cpu_s(p) - before[n], 2) for n, p in pids.items()}
    return r


def best(sock, path, clients, seconds, rounds, pids):
    runs = [load(sock, path, clients, seconds, pids) for _ in range(rounds)]
    return max(runs, key=lambda r: r["rps"])


def body_len(env, path):
    st, body = env.curl(path)
    assert st == 200, (path, st, body)
    return len(body.encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="1,64")
    ap.add_argument("--perf", help="perf record pv-ctrl during the first 64-client run into FILE")
    a = ap.parse_args()
    clients = [int(c) for c in a.clients.split(",")]

    env = CtrlEnv()
    base = None
    try:
        mg = env.container("mg", roles=["mgmt"], restart_policy="container")
        ap_ = env.container("ap", restart_policy="container")
        env.write_rev("0", mg, ap_)
        env.start_ctrl()
        env.start_engine()
        for n in (mg[0], ap_[0]):
            assert wait_for(lambda n=n: env.lxc_state(n) == "RUNNING", 30), env.log_text()
        pids = {"pv-ctrl": env.ctrl.pid, "pv-engine": env.engine.pid}
        results = {}
        for path in ("/containers", "/xconnect-graph"):
            n = body_len(env, path)
            bsock = os.path.join(env.root, "baseline.sock")
            base = subprocess.Popen([tool(), "serve", bsock, str(max(n, 2))])
            assert wait_for(lambda: os.path.exists(bsock), 5)
            for c in clients:
                rec = None
                if a.perf and c > 1 and path == "/containers":
                    rec = subprocess.Popen(["perf", "record", "-g", "-o", a.perf, "-p",
                                            str(env.ctrl.pid)], stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                got = best(env.ctrl_sock, path, c, a.seconds, a.rounds, pids)
                if rec:
                    rec.send_signal(signal.SIGINT)
                    rec.wait(30)
                ref = best(bsock, path, c, a.seconds, a.rounds, {"baseline": base.pid})
                results[(path, c)] = (got, ref, n)
            base.send_signal(signal.SIGTERM)
            base.wait(10)
            base = None

        print("pv-ctrl on %d CPUs, %gs x best of %d, keep-alive, 1 request in flight per "
              "client" % (os.cpu_count(), a.seconds, a.rounds))
        print("load average at the end: %s (other work on the machine skews req/s; CPU us per "
              "request does not depend on it much)" % open("/proc/loadavg").read().split()[0])
        print("%-16s %4s %6s | %9s %7s %7s %8s | %9s %7s | %6s %6s | cpu s ctrl/engine | "
              "cpu us/req ctrl/engine/base" % (
                  "endpoint", "cl", "bytes", "req/s", "p50us", "p99us", "rssKiB", "base r/s",
                  "p99us", "ratio", "errors"))
        for (path, c), (got, ref, n) in results.items():
            print("%-16s %4d %6d | %9.0f %7d %7d %8d | %9.0f %7d | %6.2f %6d | %.1f/%.1f" % (
                path, c, n, got["rps"], got["p50_us"], got["p99_us"],
                got["rss_kb"]["pv-ctrl"], ref["rps"], ref["p99_us"],
                got["rps"] / ref["rps"] if ref["rps"] else 0, got["errors"],
                got["cpu_s"]["pv-ctrl"], got["cpu_s"]["pv-engine"]) + " | %.1f/%.1f/%.1f" % (
                1e6 * got["cpu_s"]["pv-ctrl"] / max(got["requests"], 1),
                1e6 * got["cpu_s"]["pv-engine"] / max(got["requests"], 1),
                1e6 * ref["cpu_s"]["baseline"] / max(ref["requests"], 1)))
        print(json.dumps({"%s@%d" % k: {"pv-ctrl": v[0], "baseline": v[1]}
                          for k, v in results.items()}))
    finally:
        if base and base.poll() is None:
            base.kill()
            base.wait()
        env.cleanup()


if __name__ == "__main__":
    main()
