#!/usr/bin/env python3
"""Benchmark on a real Asterisk 22 (the e2e chroot): wall time of the AGI
step, taken in the dialplan around AGI() with STRFTIME's microseconds, for
the classic script and the FastAGI server (`qmt serve`) side by side in one
run on one installed PBX:

    Set(T0=${STRFTIME(,,%s.%6q)}) ; AGI(<script or agi://...>,,<number>) ; Set(T1=...)

Every call is a full login decision (allowlist lookup through ODBC plus
QUEUE_EXISTS / QUEUE_MEMBER_LIST for two queues); the bench contexts do
not act on it, so every call stays on that path. The two modes take turns
in every scenario, so that the machine's noise hits both: one caller at a
time (classic, FastAGI, classic, ...); callers arriving steadily at --rate
per second, --duration seconds per mode, the mode changing every --block
seconds; --bursts bursts of --burst calls per mode sent in one AMI write
(the two modes' calls mixed). Beside them, the floor: an AGI script that only reads the AGI
environment, on the same venv Python. Targets: classic p95 <= 100 ms one at
a time, <= 150 ms at 10/s; FastAGI p95 <= 10 ms in both; the burst is
reported as it is. Without `qmt serve` in the code, the classic side runs
alone (and says so).

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

from harness.bench import bench_on_installed_pbx, has_fastagi_server, pct  # noqa: E402
from harness.fastagi import Server, switch_on  # noqa: E402
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
CLASSIC, FASTAGI, FLOOR = "classic", "FastAGI", "floor"
CONTEXTS = {CLASSIC: "qmt-bench", FASTAGI: "qmt-bench-fastagi", FLOOR: "qmt-bench-floor"}
TARGETS = {(CLASSIC, "one"): 100, (CLASSIC, "steady"): 150, (FASTAGI, "one"): 10, (FASTAGI, "steady"): 10}


class Bench:
    """Call slots of the allowlist's numbers through the bench contexts;
    each scenario takes a list of modes and gives call i to mode i mod n."""

    def __init__(self, root, ast, numbers):
        self.root, self.ast, self.numbers = root, ast, numbers
        self.n = 0

    def next_number(self):
        self.n += 1
        return self.numbers[self.n % len(self.numbers)]

    def collect(self, slots, timeout=120):
        """{slot: row} once every slot's QMT_BENCH line is in the log (or the time is up)."""
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
        return {slot: row_of(slot, got.get(slot)) for slot in slots}

    def one_at_a_time(self, calls, modes):
        rows = []
        for i in range(calls * len(modes)):
            mode = modes[i % len(modes)]
            slot = self.ast.prepare(self.next_number())
            self.ast.originate([slot], CONTEXTS[mode])
            rows += tagged(self.collect([slot]), {slot: mode})
            self.ast.wait_idle(30)
        return rows

    def steady(self, rate, duration, modes, block):
        """Calls arriving at `rate` per second, the modes taking turns every
        `block` seconds (each sees the load of `rate` alone), `duration` seconds per mode."""
        per_block = max(1, int(rate * block))
        count = int(rate * duration) * len(modes)
        modes_of = {self.ast.prepare(self.next_number()): modes[(i // per_block) % len(modes)]
                    for i in range(count)}
        start = time.monotonic() + 0.2
        late = 0.0
        for i, (slot, mode) in enumerate(modes_of.items()):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late = max(late, -delay)
            self.ast.originate([slot], CONTEXTS[mode])
        rows = tagged(self.collect(list(modes_of)), modes_of)
        self.ast.wait_idle(60)
        return rows, late

    def bursts(self, size, times, modes, pause=3.0):
        """`times` bursts of `size` calls per mode, all of a burst in one AMI write."""
        rows = []
        for _ in range(times):
            modes_of = {self.ast.prepare(self.next_number()): modes[i % len(modes)]
                        for i in range(size * len(modes))}
            self.ast.send_calls([(slot, CONTEXTS[mode]) for slot, mode in modes_of.items()])
            rows += tagged(self.collect(list(modes_of)), modes_of)
            self.ast.wait_idle(60)
            time.sleep(pause)
        return rows


def row_of(slot, m):
    """One call's figures from its QMT_BENCH line (None: no line)."""
    if m is None:
        return {"slot": slot, "ok": False, "ms": None, "why": "no result line"}
    ok = m.group(4) == "SUCCESS"
    return {"slot": slot, "ok": ok, "ms": (float(m.group(3)) - float(m.group(2))) * 1000,
            "queuestat": m.group(5), "why": "" if ok else "AGISTATUS=" + m.group(4)}


def tagged(rows_by_slot, modes_of):
    return [dict(row, mode=modes_of[slot]) for slot, row in rows_by_slot.items()]


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


def per_mode(name, rows, modes, kind=None):
    """One summary per mode of a scenario's rows, each with its target."""
    return [summary(f"{mode}: {name}", [r for r in rows if r["mode"] == mode], TARGETS.get((mode, kind)))
            for mode in modes]


def ratios(results):
    """FastAGI / classic, median and p95, for each scenario both ran."""
    by_name = {r["scenario"]: r for r in results}
    out = []
    for r in results:
        if not r["scenario"].startswith(CLASSIC + ": "):
            continue
        other = by_name.get(FASTAGI + r["scenario"][len(CLASSIC):])
        if other and "median_ms" in r and "median_ms" in other:
            out.append({"scenario": r["scenario"][len(CLASSIC) + 2:],
                        "median_ratio": round(other["median_ms"] / r["median_ms"], 3),
                        "p95_ratio": round(other["p95_ms"] / r["p95_ms"], 3)})
    return out


def print_table(results, header):
    print(header)
    print(f"{'scenario':46} {'calls':>5} {'ok':>4} {'median':>8} {'p95':>8} {'min':>7} {'max':>8}  target")
    for r in results:
        tgt = ""
        if "target_p95_ms" in r:
            tgt = f"p95 <= {r['target_p95_ms']} ms: {'MET' if r['met'] else 'NOT MET'}"
        if "median_ms" in r:
            print(f"{r['scenario']:46} {r['calls']:5d} {r['ok']:4d} {r['median_ms']:6.1f}ms "
                  f"{r['p95_ms']:6.1f}ms {r['min_ms']:5.1f}ms {r['max_ms']:6.1f}ms  {tgt}")
        else:
            print(f"{r['scenario']:46} {r['calls']:5d} {r['ok']:4d}  (no successful call)  {tgt}")
        for f in r["failed"]:
            print(f"    failed: slot {f['slot']}: {f['why']}")


def print_ratios(rows):
    if rows:
        print(f"{'FastAGI / classic':46} {'median':>8} {'p95':>8}")
    for r in rows:
        print(f"{r['scenario']:46} {r['median_ratio']:8.3f} {r['p95_ratio']:8.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequential", type=int, default=50, help="calls one at a time, per mode (default 50)")
    ap.add_argument("--rate", type=float, default=10.0, help="steady arrivals per second (default 10)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of steady arrivals per mode (default 30)")
    ap.add_argument("--block", type=float, default=5.0, help="seconds of one mode before the other's turn (default 5)")
    ap.add_argument("--burst", type=int, default=10, help="calls per burst, per mode (default 10)")
    ap.add_argument("--bursts", type=int, default=3, help="how many bursts (default 3)")
    ap.add_argument("--rows", type=int, default=1000, help="numbers in the allowlist, 2 queues each")
    ap.add_argument("--classic-only", action="store_true", help="leave the FastAGI server out")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    return bench_on_installed_pbx("bench_asterisk", "bench",
                                  lambda root, ast, pyver: run_with_modes(args, root, ast, pyver))


def run_with_modes(args, root, ast, pyver):
    """Classic and, when the code has it, FastAGI: the scenarios on this PBX."""
    if args.classic_only or not has_fastagi_server(root):
        note = "FastAGI left out: " + ("--classic-only" if args.classic_only else "this code has no `qmt serve`")
        return run_scenarios(args, root, ast, pyver, [CLASSIC], note)
    server = Server(root).start()
    try:
        switch_on(ast, server.port)
        code = run_scenarios(args, root, ast, pyver, [CLASSIC, FASTAGI], f"qmt serve on port {server.port}")
    finally:
        server_exit = server.stop()
    if server_exit != 0:
        print(f"qmt serve: exit {server_exit} on SIGTERM (want 0); its output:\n{server.log()[-2000:]}")
        return 1
    return code


def run_scenarios(args, root, ast, pyver, modes, note):
    """The scenarios on an installed PBX; prints the tables, returns the exit code."""
    numbers = [f"7912{i:07d}" for i in range(args.rows)]
    with sqlite3.connect(root.p(DB)) as c:
        c.executemany("INSERT INTO queue_mobile_agents (number, queue, penalty) VALUES (?, ?, ?)",
                      [(n, q, i % 5) for i, n in enumerate(numbers) for q in ("8008", "8010")])
    root.write(f"{AGI_DIR}/{BENCH_FLOOR_SCRIPT}",
               "#!/opt/queue-mobile-toggle/venv/bin/python3\n" + FLOOR_SOURCE, mode=0o755)

    bench = Bench(root, ast, numbers[: min(len(numbers), 200)])
    bench.one_at_a_time(5, modes)                                # warm-up, not counted
    results = [summary("floor: empty Python AGI, 1 at a time",
                       bench.one_at_a_time(min(args.sequential, 30), [FLOOR]))]
    one = bench.one_at_a_time(args.sequential, modes)
    results += per_mode("one caller at a time", one, modes, "one")
    steady, late = bench.steady(args.rate, args.duration, modes, args.block)
    results += per_mode(f"steady {args.rate:g}/s for {args.duration:g} s", steady, modes,
                        "steady" if args.rate <= 10 else None)
    burst = bench.bursts(args.burst, args.bursts, modes)
    results += per_mode(f"burst of {args.burst} at once (x{args.bursts})", burst, modes)
    bad = [r for r in results if r["ok"] != r["calls"]]
    version = ast.cli("core show version").split()[1]
    wrong = [r for r in one + steady + burst if r["ok"] and r["queuestat"] != "LOGGEDOUT"]
    header = (f"queue-mobile-toggle: AGI step wall time (dialplan STRFTIME around AGI()), "
              f"Asterisk {version}, Python {pyver} in a sid chroot, host {platform.node()} "
              f"with {os.cpu_count()} CPUs; allowlist {args.rows * 2} rows (SQLite3 ODBC); "
              f"the modes take turns ({note})")
    print_table(results, header)
    print_ratios(ratios(results))
    if late > 0.05:
        print(f"note: the steady scenario's sender fell behind by up to {late * 1000:.0f} ms")
    if wrong:
        print(f"note: {len(wrong)} calls did not decide LOGGEDOUT: {wrong[:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results, "ratios": ratios(results),
                       "calls": {"one": one, "steady": steady, "burst": burst}}, f, indent=2)
    return 1 if bad or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
