#!/usr/bin/env python3
"""Benchmark of `qmt status` and `qmt sweep` with 1,000 mobile members in
one queue, against the fake manager interface (tests/fake_ami.py, its
QueueMember events padded to the 17 fields app_queue sends) and a real
SQLite3 ODBC allowlist where 750 of them are permitted. Wall time of the
whole command (process start to exit), beside `qmt --help` (Python start-up
and imports: the floor). Target: under 1 s.

    python3 tests/bench_qmt_big.py [--runs 10] [--members 1000] [--agi DIR]

--agi runs another checkout's package (its agi/ folder), for a before and
after. Not a test: it prints figures; exit 1 if a command failed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fake_ami import FakeAmi, message  # noqa: E402
from fake_asterisk import FakeAsterisk  # noqa: E402
from support import REPO, RING_INTERFACE, OdbcHome, make_sqlite_allowlist, write_config  # noqa: E402

QUEUE = "8008"


class RealSizedAmi(FakeAmi):
    """QueueStatus with every field app_queue writes of a member (17 lines)."""

    def _queue_status(self, fields, action_id):
        out = [message(("Response", "Success"), ("ActionID", action_id), ("EventList", "start"),
                       ("Message", "Queue status will follow"))]
        for queue, members in self.asterisk.queues.items():
            out.append(message(("Event", "QueueParams"), ("Queue", queue), ("ActionID", action_id)))
            for interface in members:
                if fields.get("Member") and interface != fields["Member"]:
                    continue
                out.append(message(
                    ("Event", "QueueMember"), ("Queue", queue), ("Name", interface), ("Location", interface),
                    ("StateInterface", interface), ("Membership", "dynamic"), ("Penalty", 0), ("CallsTaken", 3),
                    ("LastCall", 1764219000), ("LastPause", 0), ("LoginTime", 1764210000), ("InCall", 0),
                    ("Status", 1), ("Paused", 0), ("PausedReason", ""), ("Wrapuptime", 0),
                    ("ActionID", action_id)))
        out.append(message(("Event", "QueueStatusComplete"), ("ActionID", action_id), ("EventList", "Complete"),
                           ("ListItems", len(out) - 1)))
        return "".join(out)


def timed(command, env, runs):
    times = []
    for _ in range(runs):
        started = time.monotonic()
        p = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        times.append(time.monotonic() - started)
        if p.returncode not in (0, 1):
            raise SystemExit("`%s` exited %d: %s" % (" ".join(command), p.returncode, p.stderr))
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--agi", default=os.path.join(REPO, "agi"), help="the agi/ folder whose qmt runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        odbc = OdbcHome(os.path.join(tmp, "odbc"))
        allowlist = make_sqlite_allowlist(odbc, os.path.join(tmp, "allowlist.sqlite"))
        numbers = ["7913%07d" % i for i in range(args.members)]
        for index, number in enumerate(numbers):
            if index % 4:
                allowlist.add(number, QUEUE)
        asterisk = FakeAsterisk({QUEUE: [RING_INTERFACE.format(number=n) for n in numbers]})
        ami = RealSizedAmi(asterisk)
        config = write_config(os.path.join(tmp, "qmt.conf"), "DSN=qmt_test", os.path.join(tmp, "qmt.log"),
                              extra=ami.config())
        asterisk.write_cli(tmp)                               # `asterisk -rx database show` for astdb
        env = dict(os.environ, PYTHONPATH=args.agi, PATH=tmp + os.pathsep + os.environ["PATH"], **odbc.env)
        qmt = [sys.executable, "-m", "qmt", "--config", config]
        rows = [("floor: qmt --help", timed(qmt + ["--help"], env, args.runs)),
                ("qmt --json status", timed(qmt + ["--json", "status"], env, args.runs)),
                ("qmt --json sweep (list only)", timed(qmt + ["--json", "sweep"], env, args.runs))]
        ami.close()
    print("qmt %s against the fake manager: %d mobile members in one queue, %d permitted; %d runs each"
          % (args.agi, args.members, args.members - len(numbers[::4]), args.runs))
    print("%-32s %10s %10s %12s" % ("command", "median ms", "max ms", "target"))
    for name, times in rows:
        target = "" if name.startswith("floor") else ("< 1 s: MET" if statistics.median(times) < 1 else
                                                      "< 1 s: MISSED")
        print("%-32s %10.0f %10.0f %12s" % (name, 1000 * statistics.median(times), 1000 * max(times), target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
