#!/usr/bin/env python3
"""Benchmark of `qmt status` and `qmt sweep` on a real Asterisk 22 (the e2e
chroot, installed by install.sh): 200 mobile members in 5 queues (or
--per-queue N in each), three in four of them permitted in a SQLite
allowlist of 10,000 rows, the rest not. Wall time of the whole command
(process start to exit, run inside the chroot), beside `qmt --help`
(Python start-up and imports: the floor). Target: under 1 s.

    python3 tests/e2e/bench_qmt.py [--runs 15] [--per-queue 200]    (as root, like the e2e tests)

Not a test: it prints figures; exit 1 if a command failed, 2 if it could not run.
"""

import argparse
import sqlite3
import statistics
import sys
import time

from harness.bench import bench_on_installed_pbx
from harness.root import SQLITE_DB

QUEUES = ("8008", "8010", "8011", "8012", "8013")


def timed(root, command, runs):
    times = []
    for _ in range(runs):
        started = time.monotonic()
        p = root.sh(command, timeout=120)
        times.append(time.monotonic() - started)
        if p.returncode not in (0, 1):
            raise SystemExit(f"`{command}` exited {p.returncode}: {p.stderr}")
    return times


def setup_members(root, ast, per_queue):
    """Three more queues, `per_queue` mobile members in each, their rows (3 in 4 permitted)."""
    extra = "".join(f"\n[{q}]\nstrategy = ringall\ntimeout = 15\n" for q in QUEUES[2:])
    queues_conf = root.p("/etc/asterisk/queues.conf")
    queues_conf.write_text(queues_conf.read_text() + extra)
    ast.cli("module reload app_queue.so")
    numbers = [(f"7913{qi:02d}{i:05d}", queue) for qi, queue in enumerate(QUEUES) for i in range(per_queue)]
    ast.ami.actions_at_once([("QueueAdd", {"Queue": queue, "Interface": f"Local/{number}@outbound-allroutes/n"})
                             for number, queue in numbers])
    permitted = [row for index, row in enumerate(numbers) if index % 4]
    filler = [(f"7914{i:07d}", "8008") for i in range(10_000 - len(permitted))]
    with sqlite3.connect(root.p(SQLITE_DB)) as db:
        db.executemany("INSERT INTO queue_mobile_agents (number, queue) VALUES (?, ?)", permitted + filler)
    return len(numbers), len(numbers) - len(permitted)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--per-queue", type=int, default=40, help="mobile members in each of the 5 queues")
    args = ap.parse_args()
    return bench_on_installed_pbx("bench_qmt", "benchqmt", lambda root, ast, pyver: measure(args, root, ast, pyver))


def measure(args, root, ast, pyver):
    """The commands timed on the installed PBX; prints the table, returns the exit code."""
    members, gone = setup_members(root, ast, args.per_queue)
    rows = [("floor: qmt --help", timed(root, "qmt --help", args.runs)),
            ("qmt --json status", timed(root, "qmt --json status", args.runs)),
            ("qmt --json sweep (list only)", timed(root, "qmt --json sweep", args.runs))]
    apply_time = timed(root, "qmt sweep --apply", 1)[0]
    left = sum(len(ast.members(q)) for q in QUEUES)   # QueueStatus: no buffer limit
    print(f"qmt on Asterisk in a sid chroot, Python {pyver}: {members} mobile members in {len(QUEUES)} queues, "
          f"{gone} without permission; allowlist 10,000 rows (SQLite3 ODBC); {args.runs} runs each")
    print(f"{'command':<32} {'median ms':>10} {'max ms':>10} {'target':>10}")
    for name, times in rows:
        target = "" if name.startswith("floor") else ("< 1 s: MET" if statistics.median(times) < 1 else
                                                      "< 1 s: MISSED")
        print(f"{name:<32} {1000 * statistics.median(times):10.0f} {1000 * max(times):10.0f} {target:>10}")
    apply_target = "< 1 s: MET" if apply_time < 1 else "< 1 s: MISSED"
    print(f"{f'qmt sweep --apply (removes {gone})':<32} {1000 * apply_time:10.0f} {'':>10} {apply_target:>10}")
    print(f"members left after the sweep: {left} (want {members - gone})")
    return 0 if left == members - gone else 1


if __name__ == "__main__":
    sys.exit(main())
