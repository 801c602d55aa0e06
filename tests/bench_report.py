#!/usr/bin/env python3
"""Benchmark: `qmt report --json` (the whole command, process start to exit)
on a queue_log of 0, 100,000 and 1,000,000 lines: 60 mobiles and 20 desk
phones in 4 queues over 30 days, with the events app_queue and the ring path
write (logins, pauses, rings, misses, connects, completions, restarts).

Each run goes through GNU time (package `time`) for the wall time and the
peak RSS. Beside it, in the same run, a baseline process that only reads
the same lines (a Python `for line in file` loop, as the report's reader
does): the ratio says what the report costs on top of reading the file.
Targets: 1,000,000 lines under 10 s; peak RSS the same for 100,000 and
1,000,000 lines (memory bounded: it grows with members, not lines).

    python3 tests/bench_report.py [--runs 3]

It is not a test: it prints figures and exits 0 (1 only if a run fails).
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from support import REPO, write_config  # noqa: E402

GNU_TIME = "/usr/bin/time"
START = 1_793_000_000                               # 2026-10-25, a Sunday night UTC
MOBILES = ["7911%07d" % n for n in range(60)]
QUEUES = ["8008", "8010", "8012", "8020"]
BASELINE = "import sys\nn = 0\nfor line in open(sys.argv[1], encoding='utf-8', errors='replace', newline=''):\n" \
           "    n += 1\nprint(n)\n"


def write_queue_log(path, lines):
    """`lines` lines of a busy month, in time order."""
    rnd = random.Random(7)
    written, t, call = 0, START, 0
    with open(path, "w", encoding="utf-8") as out:
        def put(text):
            nonlocal written
            out.write("%d|%s\n" % (t, text))
            written += 1
        while written < lines:
            t += 30
            kind = rnd.random()
            number, queue = rnd.choice(MOBILES), rnd.choice(QUEUES)
            iface = "Local/%s@qmt-ring/n" % number
            call += 1
            cid = "%d.%d" % (t, call)
            if kind < 0.04:
                put("%s|%s|%s|ADDMEMBER|" % (cid, queue, iface))
            elif kind < 0.07:
                put("%s|%s|%s|REMOVEMEMBER|" % (cid, queue, iface))
            elif kind < 0.09:
                put("NONE|%s|%s|PAUSE|%s" % (queue, number, rnd.choice(("lunch", "qmt-missed", ""))))
            elif kind < 0.11:
                put("NONE|%s|%s|UNPAUSE|" % (queue, number))
            elif kind < 0.1102:
                put("NONE|NONE|NONE|QUEUESTART|")
            else:
                put("%s|%s|NONE|ENTERQUEUE||74951110000|1" % (cid, queue))
                put("%s|%s|PJSIP/%d|RINGNOANSWER|15000" % (cid, queue, rnd.randrange(100, 120)))
                if rnd.random() < 0.4:
                    put("%s|%s|%s|QMTNOCONFIRM|TIMEOUT" % (cid, queue, number))
                    put("%s|%s|%s|QMTMISSED|CONGESTION|1" % (cid, queue, number))
                    put("%s|%s|%s|RINGNOANSWER|9000" % (cid, queue, number))
                    number = rnd.choice(MOBILES)
                put("%s|%s|%s|CONNECT|5|%s.9|4" % (cid, queue, number, cid))
                put("%s|%s|%s|COMPLETECALLER|5|%d|1" % (cid, queue, number, rnd.randrange(20, 600)))
    return written


def timed(command, folder):
    """(wall seconds, peak RSS kB) of one run, by GNU time."""
    out = os.path.join(folder, "time")
    result = subprocess.run([GNU_TIME, "-f", "%e %M", "-o", out] + command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("run failed: %s\n%s" % (" ".join(command), result.stderr[-2000:]))
    with open(out, encoding="ascii") as handle:
        wall, rss = handle.read().split()[-2:]
    return float(wall), int(rss)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), TZ="UTC")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(os.path.join(folder, "qmt.conf"),
                              "Driver=SQLite3;Database=%s/none.sqlite;NoCreat=1" % folder,
                              os.path.join(folder, "qmt.log"))
        for lines in (0, 100_000, 1_000_000):             # 0: what starting the command costs
            path = os.path.join(folder, "queue_log")
            write_queue_log(path, lines)
            report = [sys.executable, "-m", "qmt", "--config", config, "report", "--json", "--queue-log", path,
                      "--since", "2026-10-01", "--until", "2026-12-01"]
            baseline = [sys.executable, "-c", BASELINE, path]
            os.environ.update(env)
            runs = [(timed(baseline, folder), timed(report, folder)) for _ in range(args.runs)]
            base_s = statistics.median(b[0] for b, _ in runs)
            report_s = statistics.median(r[0] for _, r in runs)
            rows.append((lines, base_s, report_s, report_s / max(base_s, 0.01), max(r[1] for _, r in runs) / 1024,
                         max(b[1] for b, _ in runs) / 1024))
    print("%10s %12s %12s %7s %14s %14s" % ("lines", "read loop s", "report s", "ratio", "report RSS MB",
                                            "loop RSS MB"))
    for row in rows:
        print("%10d %12.2f %12.2f %7.1f %14.1f %14.1f" % row)
    print("targets: 1,000,000 lines under 10 s: %s; RSS bounded (1M / 100k): %.2f"
          % ("met" if rows[-1][2] < 10 else "MISSED", rows[-1][4] / rows[1][4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
