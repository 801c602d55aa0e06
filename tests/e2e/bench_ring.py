#!/usr/bin/env python3
"""Benchmark on a real Asterisk 22 (the e2e chroot): what the ring path adds
between the mobile's answer and the customer being connected.

One mobile at a time is logged in to queue 8008 with the toggle, and
customers call the queue. The simulated mobile answers and presses 1 (after
the prompt, about 2 s) with confirmation on; with it off (confirm_answer = 0)
it only answers. From the full log's millisecond timestamps, per call:

    answered   app_dial: the mobile's leg answered the ring path
    accepted   the confirmation's accept step ran (the 1 was read)
    connected  the customer's channel joined the bridge

Reported: accepted -> connected with confirmation (what the ring path adds
after the key: the target is under 100 ms), answered -> connected without
it (the same path with no prompt: the baseline), and answered -> accepted
(the prompt and the mobile's key).

    sudo python3 tests/e2e/bench_ring.py [--calls N]

Not a test: it prints figures; exit 1 if a call did not connect, 2 if it
could not run (needs root, like the e2e tests).
"""

import argparse
import datetime
import os
import re
import sqlite3
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.bench import bench_on_installed_pbx  # noqa: E402
from harness.host import SetupError  # noqa: E402
from harness.root import SQLITE_DB  # noqa: E402

CONFIRMING, DIRECT = "79116660001", "79116660002"
STAMP = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]"


def at(line):
    return datetime.datetime.strptime(re.match(STAMP, line).group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def first(lines, pattern):
    rx = re.compile(pattern)
    return next((at(line) for line in lines if rx.search(line)), None)


def one_call(ast, number):
    """(answered, accepted or None, connected) timestamps of one customer call."""
    mark = len(ast.log_text())
    customer = ast.customer("8008", wait=20)
    joined = rf"Local/{customer}@qmt-customer-stub-\w+;1 joined"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not re.search(joined, ast.log_text()[mark:]):
        time.sleep(0.1)
    lines = ast.log_text()[mark:].splitlines()
    ast.cli("channel request hangup all")
    ast.wait_idle(30)
    answered = first(lines, rf"app_dial\.c: Local/{number}@outbound-allroutes-\w+;1 answered")
    accepted = first(lines, r"Executing \[s@qmt-confirm:\d+\] Set\(.*\"GOSUB_RESULT=\"\)")
    connected = first(lines, joined)
    return answered, accepted, connected


def log_in(root, ast, number, confirm):
    with sqlite3.connect(root.p(SQLITE_DB)) as db:
        db.execute("DELETE FROM queue_mobile_agents")
        db.execute("INSERT INTO queue_mobile_agents (number, queue, confirm_answer) VALUES (?, '8008', ?)",
                   (number, None if confirm else 0))
    ast.reset_members()
    ast.mobile(number, "accept")
    done = ast.call(number)
    if done.get("QUEUESTAT") != "LOGGEDOUT":
        raise SetupError("log the mobile in", str(done))


def ms(values):
    return (f"median {statistics.median(values) * 1000:.1f} ms, min {min(values) * 1000:.1f}, "
            f"max {max(values) * 1000:.1f} (n={len(values)})")


def body(root, ast, pyver, calls):
    failed = 0
    figures = {}
    for number, confirm in ((DIRECT, False), (CONFIRMING, True)):
        log_in(root, ast, number, confirm)
        one_call(ast, number)                        # warm-up, not counted
        runs = [one_call(ast, number) for _ in range(calls)]
        good = [r for r in runs if r[0] and r[2] and (r[1] or not confirm)]
        failed += len(runs) - len(good)
        figures[confirm] = good
    with_confirm, without = figures[True], figures[False]
    print(f"ring path on Asterisk in a sid chroot (venv Python {pyver}), queue 8008 ringall, "
          f"{calls} customer calls each")
    if without:
        print("  no confirmation:   answered -> connected  " + ms([c - a for a, _, c in without]))
    if with_confirm:
        print("  with confirmation: accepted -> connected  " + ms([c - k for _, k, c in with_confirm]))
        print("                     answered -> accepted   " + ms([k - a for a, k, _ in with_confirm])
              + "  (the prompt and the mobile's key)")
    if with_confirm and without:
        ratio = statistics.median([c - k for _, k, c in with_confirm]) / \
            max(statistics.median([c - a for a, _, c in without]), 0.001)
        print(f"  after the key vs. no confirmation: {ratio:.2f}x")
    if failed:
        print(f"  {failed} call(s) did not connect", file=sys.stderr)
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    return bench_on_installed_pbx("bench_ring", "bench-ring",
                                  lambda root, ast, pyver: body(root, ast, pyver, args.calls))


if __name__ == "__main__":
    sys.exit(main())
