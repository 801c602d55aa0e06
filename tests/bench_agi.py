#!/usr/bin/env python3
"""Benchmark: one whole AGI run (process start to exit) through the fake
Asterisk, against a real SQLite3 ODBC allowlist of 10 and of 1,000,000 rows,
for both destinations: the one-queue toggle (AGI(...,8008), the recipe's
own case) and the all-queues toggle.

Both go through GNU time (package `time`) for the peak RSS. Beside it, in
the same run and interleaved with it, a baseline process that only does
`import pyodbc, asterisk.agi`: the figures that matter are the ratios, since
this machine is shared and noisy. The package is byte-compiled first
(compileall), so it is imported from .pyc files as from the venv that pip
fills: PYTHONDONTWRITEBYTECODE would otherwise have every run compile it.
Prints median, p95 and peak RSS; targets: median <= 1.15 x baseline in
every cell, peak RSS <= 30 MB.

    python3 tests/bench_agi.py [--runs 40]

It is not a test: it prints figures and exits 0 (1 only if a run fails).
"""

import argparse
import compileall
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agi"))

from fake_asterisk import FakeAsterisk  # noqa: E402
from support import REPO, OdbcHome, split_sql, write_config  # noqa: E402

NUMBER = "79112223344"
TARGET_RATIO, TARGET_RSS_MB = 1.15, 30
GNU_TIME = "/usr/bin/time"


class PeakRss:
    """Peak RSS of a child, as GNU time reports it. A parent's own wait4()
    is no use: Linux carries the parent's high-water mark into the forked
    child, so a big benchmark process would inflate every figure."""

    def __init__(self, folder):
        self.path = os.path.join(folder, "maxrss")

    @property
    def wrapper(self):
        return [GNU_TIME, "-f", "%M", "-o", self.path]

    def read_kb(self):
        with open(self.path, encoding="ascii") as handle:
            return int(handle.read().split()[-1])


def build_allowlist(path, rows):
    """An SQLite allowlist of `rows` rows (built with the sqlite3 module for
    speed; the script reads it through the ODBC driver)."""
    with sqlite3.connect(path) as db:
        for statement in split_sql(os.path.join(REPO, "sql", "sqlite.sql")):
            db.execute(statement)
        db.execute("INSERT INTO queue_mobile_agents (number, queue, penalty) VALUES (?, '8008', 1)",
                   (NUMBER,))
        db.execute("INSERT INTO queue_mobile_agents (number, queue, penalty) VALUES (?, '8010', 2)",
                   (NUMBER,))
        filler = ((str(70000000000 + i), "8008" if i % 2 else "8010") for i in range(rows - 2))
        db.executemany("INSERT INTO queue_mobile_agents (number, queue) VALUES (?, ?)", filler)


def baseline_run(env, rss):
    started = time.monotonic()
    # A blocking wait(): a timeout would make Popen poll with sleeps and
    # inflate the baseline. Same cwd as the fake peer gives the script.
    code = subprocess.Popen(rss.wrapper + [sys.executable, "-c", "import pyodbc, asterisk.agi"],
                            env=env, cwd="/").wait()
    elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit("baseline failed with exit %s" % code)
    return elapsed, rss.read_kb()


def toggle_run(env, asterisk, rss, queue):
    run = asterisk.run(NUMBER, arg=queue, env=env, wrapper=rss.wrapper)
    if run.exit_code != 0 or run.state != "LOGGEDOUT" or run.queues != ([queue] if queue else ["8008", "8010"]):
        raise SystemExit("toggle run failed: exit %s state %s %s" % (run.exit_code, run.state, run.stderr))
    return run.elapsed, rss.read_kb()


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def measure(rows, runs, folder, queue):
    db_path = os.path.join(folder, "allowlist-%d.sqlite" % rows)
    if not os.path.exists(db_path):
        build_allowlist(db_path, rows)
    odbc = OdbcHome(os.path.join(folder, "odbc-%d" % rows))
    odbc.add_dsn("qmt_bench", Driver="SQLite3", Database=db_path, NoCreat=1, Timeout=1000)
    config = write_config(os.path.join(folder, "qmt-%d.conf" % rows), "DSN=qmt_bench",
                          os.path.join(folder, "toggle.log"))
    env = dict(os.environ, QMT_CONFIG=config, **odbc.env)
    asterisk = FakeAsterisk({"8008": [], "8010": []})
    rss = PeakRss(folder)
    toggle_run(env, asterisk, rss, queue), baseline_run(env, rss)  # warm the page cache
    base, script = [], []
    for _ in range(runs):  # interleaved, so that noise hits both alike
        base.append(baseline_run(env, rss))
        script.append(toggle_run(env, asterisk, rss, queue))
    return base, script


def report(rows, destination, base, script):
    base_t, script_t = [t for t, _ in base], [t for t, _ in script]
    ratio = statistics.median(script_t) / statistics.median(base_t)
    rss_mb = max(rss for _, rss in script) / 1024.0
    print("%-9s %-11s %-22s %9s %9s %12s" % ("rows", "destination", "process", "median ms", "p95 ms",
                                             "peak RSS MB"))
    print("%-9d %-11s %-22s %9.1f %9.1f %12.1f" % (
        rows, destination, "baseline (imports)", 1000 * statistics.median(base_t), 1000 * p95(base_t),
        max(r for _, r in base) / 1024.0))
    print("%-9d %-11s %-22s %9.1f %9.1f %12.1f" % (
        rows, destination, "toggle (whole AGI run)", 1000 * statistics.median(script_t),
        1000 * p95(script_t), rss_mb))
    verdict = "within" if ratio <= TARGET_RATIO and rss_mb <= TARGET_RSS_MB else "OUTSIDE"
    print("ratio median toggle/baseline = %.2f (target <= %.2f); peak RSS %.1f MB (target <= %d): %s target"
          % (ratio, TARGET_RATIO, rss_mb, TARGET_RSS_MB, verdict))
    print()


def report_pin_check(runs):
    """The PIN step's own cost: one verify_pin() at the stored parameters
    (target: under 100 ms). A login without a PIN never runs it."""
    from qmt.pin import ITERATIONS, hash_pin, verify_pin
    stored = hash_pin("246813")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        assert verify_pin("246813", stored)
        times.append(time.perf_counter() - started)
    median = 1000 * statistics.median(times)
    print("PIN check: PBKDF2-HMAC-SHA256, %d iterations, 16-byte salt: median %.1f ms, max %.1f ms "
          "(target < 100 ms: %s)" % (ITERATIONS, median, 1000 * max(times), "MET" if median < 100 else "MISSED"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--sizes", default="10,1000000")
    args = parser.parse_args()
    if not shutil.which(GNU_TIME):
        raise SystemExit("%s is missing: apt-get install time" % GNU_TIME)
    print("python %s, %d runs per size, interleaved with the baseline" % (sys.version.split()[0], args.runs))
    compileall.compile_dir(os.path.join(REPO, "agi", "qmt"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="qmt-bench-") as folder:
        for rows in (int(size) for size in args.sizes.split(",")):
            for destination, queue in (("one queue", "8008"), ("all queues", None)):
                base, script = measure(rows, args.runs, folder, queue)
                report(rows, destination, base, script)
    report_pin_check(args.runs)


if __name__ == "__main__":
    main()
