#!/usr/bin/env python3
# bench/update/run.py: a hot update of one container in an N-container (default 10) pv-appengine
# device: time from POST /commands LOCAL_RUN to INPROGRESS, TESTING and UPDATED, how many
# containers restarted (pid changes; must be 1), and a baseline in the same run: a plain restart
# of one container through PUT /containers/<name> {"action":"restart"}, and the ratio.
# Usage (root): python3 bench/update/run.py [--bin build/bin] [--n 10] [--rounds 5]
#               [--commit-delay 0]      or: cmake --build build --target bench-update
# PV_UPDATER_COMMIT_DELAY is set to --commit-delay in the device's config; the TESTING -> UPDATED
# time is printed apart so the update's own cost can be read without it.
import argparse
import json
import os
import statistics
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(SRC, "build", "bin"))
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--commit-delay", type=int, default=0)
    a = ap.parse_args()
    os.environ["PV_BIN"] = os.path.abspath(a.bin)
    os.environ.setdefault("PV_BUILD", os.path.dirname(os.path.abspath(a.bin)))
    sys.path.insert(0, os.path.join(SRC, "tests", "system"))
    import pvtest
    import update_env as U

    dev = pvtest.Device("bupd")
    rows, base = [], []
    try:
        ud = U.UpdateDevice(dev, n=a.n, commit_delay=a.commit_delay, goals_timeout=30)
        t0 = time.monotonic()
        ud.start(timeout=120)
        print("factory: %d containers RUNNING in %.2f s" % (a.n, time.monotonic() - t0))
        cur = ud.rev0
        for i in range(a.rounds):
            target = ud.name(i % a.n)
            r = cur.copy()
            r.ctrs[target].mark = "b%d" % i
            rev = ud.stage("bench-%d" % i, r)
            pids0 = ud.pids()
            t0 = time.monotonic()
            st, _, body = ud.run_cmd(rev)
            t_reply = time.monotonic() - t0
            if st != 200:
                print("round %d: LOCAL_RUN %d %s" % (i, st, body))
                break
            p, tl = ud.poll(rev, 120, step=0.01)
            t_final = time.monotonic() - t0
            if p.get("status") != "UPDATED":
                print("round %d: ended %s (timeline %s)\n%s" % (i, p, tl, ud.diag(3000)))
                break
            ud.wait_running(r, 30)
            pids = ud.pids()
            restarted = sorted(n for n in pids0 if pids.get(n) != pids0[n])
            at = {s: t for t, s, _ in reversed(tl)}  # first time each status was seen
            rows.append({"reply": t_reply, "inprogress": at.get("INPROGRESS"),
                         "testing": at.get("TESTING"), "updated": t_final,
                         "commit": (t_final - at["TESTING"]) if "TESTING" in at else None,
                         "restarted": len(restarted), "which": restarted, "target": target})
            cur = r
        # baseline: restart one container through the API, until it runs again (new pid)
        for i in range(a.rounds):
            name = ud.name((i + 1) % a.n)
            pid0 = ud.pids()[name]
            t0 = time.monotonic()
            st, _, body = ud.curl("/containers/" + name, "PUT",
                                  data=json.dumps({"action": "restart"}))
            if st != 200:
                print("restart %s: %d %s" % (name, st, body))
                break

            def back():
                c = ud.containers().get(name, {})
                return c.get("status") == "STARTED" and c.get("pid") not in (None, pid0)
            if not pvtest.wait_until(back, 60, 0.01):
                print("restart %s: not back in 60 s" % name)
                break
            base.append(time.monotonic() - t0)
    finally:
        dev.cleanup()

    def med(k):
        v = [r[k] for r in rows if r[k] is not None]
        return statistics.median(v) if v else float("nan")

    print("hot update of 1 of %d containers, PV_UPDATER_COMMIT_DELAY=%d, %d rounds (median):" %
          (a.n, a.commit_delay, len(rows)))
    print("  LOCAL_RUN reply         %7.3f s" % med("reply"))
    print("  to INPROGRESS           %7.3f s" % med("inprogress"))
    print("  to TESTING              %7.3f s" % med("testing"))
    print("  to UPDATED              %7.3f s   (TESTING -> UPDATED %.3f s, commit delay %d s)" %
          (med("updated"), med("commit"), a.commit_delay))
    print("  containers restarted    %s   (must be 1 each)" % [r["restarted"] for r in rows])
    if any(r["restarted"] != 1 or r["which"] != [r["target"]] for r in rows):
        print("  WRONG: restarted %s" % [(r["target"], r["which"]) for r in rows])
    if base:
        b = statistics.median(base)
        print("baseline: PUT /containers/<name> restart until STARTED with a new pid: %.3f s "
              "(median of %d)" % (b, len(base)))
        upd = med("updated") - (med("commit") if a.commit_delay else 0)
        print("ratio: update (without the commit delay) / plain restart = %.2f" % (upd / b))
    return 0 if rows and all(r["restarted"] == 1 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
