#!/usr/bin/env python3
"""Benchmark on a real Asterisk 22 (the e2e chroot): wall time of the AGI
step, taken in the dialplan around AGI() with STRFTIME's microseconds:

    Set(T0=${STRFTIME(,,%s.%6q)}) ; AGI(queue_mobile_toggle.py) ; Set(T1=...)

Every call is a full login decision (allowlist lookup through ODBC plus
QUEUE_EXISTS / QUEUE_MEMBER_LIST for two queues); the bench context does
not act on it, so every call stays on that path. Scenarios: one caller at a
time; callers arriving steadily at --rate per second for --duration seconds;
--bursts bursts of --burst calls sent in one AMI write. Beside them, the
floor: an AGI script that only reads the AGI environment, on the same venv
Python. Targets: p95 <= 100 ms one at a time, <= 150 ms at 10/s; the burst
is reported as it is.

    sudo python3 tests/e2e/bench_asterisk.py [--json out.json]

Not a test: it prints figures; exit 1 only if a call failed, 2 if it could
not run (needs root, like the e2e tests).
"""

import argparse
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.bench import bench_on_installed_pbx  # noqa: E402
from harness.pbx_config import AGI_DIR, BENCH_FLOOR_SCRIPT  # noqa: E402
from harness.root import SQLITE_DB  # noqa: E402

DB = SQLITE_DB
FLOOR_SOURCE = """\
import sys
for line in sys.stdin:
    if not line.strip():
        break
"""
LINE = re.compile(r"QMT_BENCH slot=(\d+) T0=([\d.]+) T1=([\d.]+) AGISTATUS=(\w*) QUEUESTAT=(\w*)")


def pct(values, q):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))]


class Bench:
    def __init__(self, root, ast, numbers):
        self.root, self.ast, self.numbers = root, ast, numbers
        self.n = 0

    def next_number(self):
        self.n += 1
        return self.numbers[self.n % len(self.numbers)]

    def collect(self, slots, timeout=120):
        want, got = set(slots), {}
        t_end = time.monotonic() + timeout
        while want and time.monotonic() < t_end:
            for m in LINE.finditer(self.ast.log_text()):
                slot = int(m.group(1))
                if slot in want:
                    got[slot] = m
                    want.discard(slot)
            if want:
                time.sleep(0.25)
        rows = []
        for slot in slots:
            m = got.get(slot)
            if m is None:
                rows.append({"slot": slot, "ok": False, "ms": None, "why": "no result line"})
                continue
            ms = (float(m.group(3)) - float(m.group(2))) * 1000
            ok = m.group(4) == "SUCCESS"
            rows.append({"slot": slot, "ok": ok, "ms": ms, "queuestat": m.group(5),
                         "why": "" if ok else "AGISTATUS=" + m.group(4)})
        return rows

    def one_at_a_time(self, calls, context="qmt-bench"):
        rows = []
        for _ in range(calls):
            slot = self.ast.prepare(self.next_number())
            self.ast.originate([slot], context)
            rows += self.collect([slot])
            self.ast.wait_idle(30)
        return rows

    def steady(self, rate, duration):
        count = int(rate * duration)
        slots = [self.ast.prepare(self.next_number()) for _ in range(count)]
        start = time.monotonic() + 0.2
        late = 0.0
        for i, slot in enumerate(slots):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            self.ast.originate([slot], "qmt-bench")
        rows = self.collect(slots)
        self.ast.wait_idle(60)
        return rows, late

    def bursts(self, size, times, pause=3.0):
        rows = []
        for _ in range(times):
            slots = [self.ast.prepare(self.next_number()) for _ in range(size)]
            self.ast.originate(slots, "qmt-bench")
            rows += self.collect(slots)
            self.ast.wait_idle(60)
            time.sleep(pause)
        return rows


def summary(name, rows, target=None):
    ok = [r["ms"] for r in rows if r["ok"]]
    res = {"scenario": name, "calls": len(rows), "ok": len(ok),
           "failed": [r for r in rows if not r["ok"]][:5]}
    if ok:
        res.update(median_ms=round(statistics.median(ok), 1), p95_ms=round(pct(ok, 95), 1),
                   min_ms=round(min(ok), 1), max_ms=round(max(ok), 1))
    if target is not None:
        res["target_p95_ms"] = target
        res["met"] = bool(ok) and len(ok) == len(rows) and res["p95_ms"] <= target
    return res


def print_table(results, header):
    print(header)
    print(f"{'scenario':38} {'calls':>5} {'ok':>4} {'median':>8} {'p95':>8} {'min':>7} {'max':>8}  target")
    for r in results:
        tgt = ""
        if "target_p95_ms" in r:
            tgt = f"p95 <= {r['target_p95_ms']} ms: {'MET' if r['met'] else 'NOT MET'}"
        if "median_ms" in r:
            print(f"{r['scenario']:38} {r['calls']:5d} {r['ok']:4d} {r['median_ms']:6.1f}ms "
                  f"{r['p95_ms']:6.1f}ms {r['min_ms']:5.1f}ms {r['max_ms']:6.1f}ms  {tgt}")
        else:
            print(f"{r['scenario']:38} {r['calls']:5d} {r['ok']:4d}  (no successful call)  {tgt}")
        for f in r["failed"]:
            print(f"    failed: slot {f['slot']}: {f['why']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequential", type=int, default=50, help="calls one at a time (default 50)")
    ap.add_argument("--rate", type=float, default=10.0, help="steady arrivals per second (default 10)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of steady arrivals (default 30)")
    ap.add_argument("--burst", type=int, default=10, help="calls per burst (default 10)")
    ap.add_argument("--bursts", type=int, default=3, help="how many bursts (default 3)")
    ap.add_argument("--rows", type=int, default=1000, help="numbers in the allowlist, 2 queues each")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    return bench_on_installed_pbx("bench_asterisk", "bench",
                                  lambda root, ast, pyver: run_scenarios(args, root, ast, pyver))


def run_scenarios(args, root, ast, pyver):
    """The scenarios on an installed PBX; prints the table, returns the exit code."""
    numbers = [f"7912{i:07d}" for i in range(args.rows)]
    with sqlite3.connect(root.p(DB)) as c:
        c.executemany("INSERT INTO queue_mobile_agents (number, queue, penalty) VALUES (?, ?, ?)",
                      [(n, q, i % 5) for i, n in enumerate(numbers) for q in ("8008", "8010")])
    root.write(f"{AGI_DIR}/{BENCH_FLOOR_SCRIPT}",
               "#!/opt/queue-mobile-toggle/venv/bin/python3\n" + FLOOR_SOURCE, mode=0o755)

    bench = Bench(root, ast, numbers[: min(len(numbers), 200)])
    bench.one_at_a_time(5)                                       # warm-up, not counted
    results = []
    results.append(summary("floor: empty Python AGI, 1 at a time",
                           bench.one_at_a_time(min(args.sequential, 30), "qmt-bench-floor")))
    results.append(summary("one caller at a time", bench.one_at_a_time(args.sequential), 100))
    rows, late = bench.steady(args.rate, args.duration)
    results.append(summary(f"steady {args.rate:g}/s for {args.duration:g} s", rows,
                           150 if args.rate <= 10 else None))
    results.append(summary(f"burst of {args.burst} at once (x{args.bursts})",
                           bench.bursts(args.burst, args.bursts)))
    bad = [r for r in results if r["ok"] != r["calls"]]
    version = ast.cli("core show version").split()[1]
    wrong = [r for r in rows if r["ok"] and r["queuestat"] != "LOGGEDOUT"]
    header = (f"queue-mobile-toggle: AGI step wall time (dialplan STRFTIME around AGI()), "
              f"Asterisk {version}, Python {pyver} in a sid chroot, host {platform.node()} "
              f"with {os.cpu_count()} CPUs; allowlist {args.rows * 2} rows (SQLite3 ODBC)")
    print_table(results, header)
    if late > 0.05:
        print(f"note: the steady scenario's sender fell behind by up to {late * 1000:.0f} ms")
    if wrong:
        print(f"note: {len(wrong)} steady calls did not decide LOGGEDOUT: {wrong[:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results}, f, indent=2)
    return 1 if bad or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
