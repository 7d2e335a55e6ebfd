#!/usr/bin/env python3
# bench/update/run.py: a hot update of one container in an N-container (default 10) pv-appengine
# device: time from POST /commands LOCAL_RUN to INPROGRESS, TESTING and UPDATED, how many
# containers restarted (pid changes; must be 1), and a baseline in the same run: a plain restart
# of one container through PUT /containers/<name> {"action":"restart"}, and the ratio.
# Usage (root): python3 bench/update/run.py [--bin build/bin] [--n 10] [--rounds 5]
#               [--commit-delays 0,1]          or: cmake --build build --target bench-update
# One device per PV_UPDATER_COMMIT_DELAY value: with 0 the time to UPDATED is the update's own
# cost, but TESTING lasts too short to be seen by polling; with 1 s TESTING is seen and UPDATED
# comes the delay later. Progress is polled every 10 ms through pv-ctrl.
import argparse
import json
import os
import statistics
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def med(rows, k):
    v = [r[k] for r in rows if r.get(k) is not None]
    return statistics.median(v) if v else None


def fmt(x):
    return "%7.3f s" % x if x is not None else "    n/a  "


def run_device(pvtest, U, n, rounds, delay):
    dev = pvtest.Device("bupd")
    rows, base = [], []
    try:
        ud = U.UpdateDevice(dev, n=n, commit_delay=delay, goals_timeout=30)
        t0 = time.monotonic()
        ud.start(timeout=120)
        print("commit delay %d s: factory of %d containers RUNNING in %.2f s" %
              (delay, n, time.monotonic() - t0))
        cur = ud.rev0
        for i in range(rounds):
            target = ud.name(i % n)
            r = cur.copy()
            r.ctrs[target].mark = "b%d" % i
            rev = ud.stage("bench-%d" % i, r)
            pids0 = ud.pids()
            t0 = time.monotonic()
            st, _, body = ud.run_cmd(rev)
            t_reply = time.monotonic() - t0
            if st != 200:
                print("  round %d: LOCAL_RUN %d %s" % (i, st, body))
                break
            p, tl = ud.poll(rev, 120, step=0.01, t0=t0)
            t_final = time.monotonic() - t0
            if not p or p.get("status") != "UPDATED":
                print("  round %d: ended %s (timeline %s)\n%s" % (i, p, tl, ud.diag(3000)))
                break
            ud.wait_running(r, 30)
            pids = ud.pids()
            restarted = sorted(x for x in pids0 if pids.get(x) != pids0[x])
            at = {s: t for t, s, _ in reversed(tl)}  # first time each status was seen
            rows.append({"reply": t_reply, "inprogress": at.get("INPROGRESS"),
                         "testing": at.get("TESTING"), "updated": t_final,
                         "restarted": restarted, "target": target})
            cur = r
        # baseline: restart one container through the API until it runs again (new pid)
        for i in range(rounds):
            name = ud.name((i + 1) % n)
            pid0 = ud.pids()[name]
            t0 = time.monotonic()
            st, _, body = ud.curl("/containers/" + name, "PUT",
                                  data=json.dumps({"action": "restart"}))
            if st != 200:
                print("  restart %s: %d %s" % (name, st, body))
                break

            def back():
                c = ud.containers().get(name, {})
                return c.get("status") == "STARTED" and c.get("pid") not in (None, pid0)
            if not pvtest.wait_until(back, 60, 0.01):
                print("  restart %s: not back in 60 s" % name)
                break
            base.append(time.monotonic() - t0)
    finally:
        dev.cleanup()
    return rows, base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(SRC, "build", "bin"))
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--commit-delays", default="0,1")
    a = ap.parse_args()
    os.environ["PV_BIN"] = os.path.abspath(a.bin)
    os.environ.setdefault("PV_BUILD", os.path.dirname(os.path.abspath(a.bin)))
    sys.path.insert(0, os.path.join(SRC, "tests", "system"))
    import pvtest
    import update_env as U

    ok = True
    for delay in [int(x) for x in a.commit_delays.split(",")]:
        rows, base = run_device(pvtest, U, a.n, a.rounds, delay)
        print("hot update of 1 of %d containers, PV_UPDATER_COMMIT_DELAY=%d, %d rounds, median "
              "time from POST LOCAL_RUN:" % (a.n, delay, len(rows)))
        print("  LOCAL_RUN reply      %s" % fmt(med(rows, "reply")))
        print("  INPROGRESS seen      %s" % fmt(med(rows, "inprogress")))
        print("  TESTING seen         %s%s" % (fmt(med(rows, "testing")), "" if med(
            rows, "testing") is not None else "   (shorter than the 10 ms poll)"))
        print("  UPDATED seen         %s" % fmt(med(rows, "updated")))
        counts = [len(r["restarted"]) for r in rows]
        print("  containers restarted %s (must be 1 each)" % counts)
        wrong = [(r["target"], r["restarted"]) for r in rows if r["restarted"] != [r["target"]]]
        if wrong or not rows:
            ok = False
            print("  WRONG: (changed, restarted) %s" % wrong)
        if base and rows:
            b = statistics.median(base)
            own = med(rows, "updated") - delay
            print("  baseline: PUT /containers/<name> restart until STARTED with a new pid: "
                  "%.3f s (median of %d)" % (b, len(base)))
            print("  ratio: update without the commit delay (%.3f s) / plain restart = %.2f" %
                  (own, own / b))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
