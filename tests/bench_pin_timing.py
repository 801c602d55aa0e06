#!/usr/bin/env python3
"""Benchmark: with [pin] required = yes, does the time after '#' tell a
listed number from a stranger? (issue 14, LOW 1)

Runs the real script through the fake Asterisk against a real SQLite3 ODBC
allowlist whose row has a PIN hash at the stored iteration count, and
measures, for every wrong PIN keyed, the time from Asterisk's GET DATA
reply to what the caller hears next (the next prompt, or the answer). The
listed number's calls and the stranger's alternate, so that the machine's
drift hits both alike. Prints each side's median and range and their ratio.

    python3 tests/bench_pin_timing.py [--calls 10]

It is not a test: it prints figures and exits 0.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agi"))

from fake_asterisk import FakeAsterisk  # noqa: E402
from qmt.pin import hash_pin  # noqa: E402
from support import SQLITE_DRIVER, OdbcHome, make_sqlite_allowlist, write_config  # noqa: E402

LISTED, STRANGER, PIN = "79112223344", "79990001122", "246813"


def gaps_after_hash(env, callerid):
    """Seconds from each GET DATA (answered at once) to the next prompt or the answer."""
    arrivals = []

    def stamp(command, _args):
        arrivals.append((command, time.perf_counter()))
        return None
    asterisk = FakeAsterisk({"8008": []})
    asterisk.keyed = ["1111#", "2222#", "3333#"]
    asterisk.run(callerid, arg="8008", env=env, reply_override=stamp, timeout=60)
    heard = [(command, at) for command, at in arrivals if command in ("GET DATA", "EXEC")]   # a prompt, the answer
    return [after - at for (command, at), (_next, after) in zip(heard, heard[1:]) if command == "GET DATA"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qmt-pin-bench-") as folder:
        odbc = OdbcHome(os.path.join(folder, "odbc"))
        database = os.path.join(folder, "allowlist.sqlite")
        allowlist = make_sqlite_allowlist(odbc, database)
        allowlist.execute("INSERT INTO queue_mobile_agents (number, queue, pin_hash) VALUES (?, '8008', ?)",
                          LISTED, hash_pin(PIN))
        config = write_config(os.path.join(folder, "qmt.conf"), "Driver=%s;Database=%s" % (SQLITE_DRIVER, database),
                              os.path.join(folder, "toggle.log"), extra="\n[pin]\nrequired = yes\n")
        env = dict(odbc.env, QMT_CONFIG=config)
        listed, stranger = [], []
        for _ in range(args.calls):
            listed += gaps_after_hash(env, LISTED)
            stranger += gaps_after_hash(env, STRANGER)
    for name, gaps in (("listed number", listed), ("stranger", stranger)):
        print("%-14s %3d wrong PINs: after '#' median %.1f ms (min %.1f, max %.1f)" % (
            name, len(gaps), 1000 * statistics.median(gaps), 1000 * min(gaps), 1000 * max(gaps)))
    print("ratio of medians listed/stranger = %.2f (target: 1.0 within the noise)"
          % (statistics.median(listed) / statistics.median(stranger)))


if __name__ == "__main__":
    main()
