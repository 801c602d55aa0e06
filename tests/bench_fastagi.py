#!/usr/bin/env python3
"""Benchmark: a burst of calls answered by `qmt serve` (FastAGI) against the
same burst of classic AGI processes, through the fake Asterisk, on a real
SQLite3 ODBC allowlist of 10 rows.

For the server: its RSS idle, after the burst, and its peak (VmHWM), from
/proc; its threads after the burst (1: only the main thread is left). For
the classic script: the peak RSS of one process (GNU time) and the sum of
the processes' peaks in a burst. Both bursts' wall times, and the ratios:
this machine is shared and noisy, the ratios are what matters.

    python3 tests/bench_fastagi.py [--calls 200] [--classic 50]

It is not a test: it prints figures and exits 0 (1 only if a call fails).
"""

import argparse
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "agi"))

from bench_agi import NUMBER, PeakRss, build_allowlist  # noqa: E402
from fake_asterisk import FakeAsterisk, FastAgiServers  # noqa: E402
from support import OdbcHome, write_config  # noqa: E402


def proc_status_kb(pid, field):
    with open("/proc/%d/status" % pid, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit("no %s in /proc/%d/status" % (field, pid))


def burst(env, count, servers=None, rss_folder=None):
    """`count` calls at once (a fake Asterisk each), truly at once: each
    holds its first reply until all have sent their first command. (wall
    seconds, the classic processes' peak RSS in kB, or [] for FastAGI)."""
    failures, peaks = [], [0] * count
    everyone_asked = threading.Barrier(count)

    def hold_the_echo(_command, args):
        if args and args[0].startswith("${SET(QMT_SERVED="):
            everyone_asked.wait(60)

    def call(index):
        kwargs = {"reply_override": hold_the_echo}
        if rss_folder is not None:
            rss = PeakRss(tempfile.mkdtemp(dir=rss_folder))
            kwargs["wrapper"] = rss.wrapper
        run = FakeAsterisk({"8008": [], "8010": []}, fastagi=servers).run(NUMBER, arg="8008", env=env, timeout=60,
                                                                            **kwargs)
        if run.state != "LOGGEDOUT" or run.exit_code != 0:
            failures.append("state %s %s exit %s %s" % (run.state, run.get("QMT_REASON"), run.exit_code,
                                                          run.stderr[-200:]))
        elif rss_folder is not None:
            peaks[index] = rss.read_kb()

    threads = [threading.Thread(target=call, args=(index,)) for index in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit("%d calls failed, e.g. %s" % (len(failures), failures[0]))
    return time.monotonic() - started, (peaks if rss_folder is not None else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls in the FastAGI burst")
    parser.add_argument("--classic", type=int, default=50, help="calls in the classic burst")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qmt-bench-") as folder:
        db_path = os.path.join(folder, "allowlist.sqlite")
        build_allowlist(db_path, 10)
        odbc = OdbcHome(os.path.join(folder, "odbc"))
        odbc.add_dsn("qmt_bench", Driver="SQLite3", Database=db_path, NoCreat=1, Timeout=1000)
        env = dict(QMT_CONFIG=write_config(os.path.join(folder, "qmt.conf"), "DSN=qmt_bench",
                                           os.path.join(folder, "toggle.log")), **odbc.env)
        servers = FastAgiServers()
        server = servers.server_for(env)
        pid = server.process.pid
        try:
            idle = proc_status_kb(pid, "VmRSS")
            burst(env, 1, servers)                                    # the first call's imports (pyodbc)
            warm = proc_status_kb(pid, "VmRSS")
            fast_seconds, _ = burst(env, args.calls, servers)
            time.sleep(0.5)                                           # the last threads close
            after, peak = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            threads = len(os.listdir("/proc/%d/task" % pid))
        finally:
            codes = servers.stop_all()
        classic_seconds, peaks = burst(env, args.classic, rss_folder=folder)
    one = max(peaks)
    print("qmt serve: RSS idle %.1f MB, after one call %.1f MB, after %d calls at once %.1f MB, peak %.1f MB; "
          "%d thread(s) left; exit %s on SIGTERM" % (idle / 1024, warm / 1024, args.calls, after / 1024,
                                                   peak / 1024, threads, codes))
    print("classic: peak RSS per process %.1f MB (median %.1f); %d at once: %.1f MB together"
          % (one / 1024, sorted(peaks)[len(peaks) // 2] / 1024, args.classic, sum(peaks) / 1024))
    print("memory for %d calls at once: classic %.0f MB (%d x the median) / qmt serve peak %.1f MB = %.0f x"
          % (args.calls, args.calls * sorted(peaks)[len(peaks) // 2] / 1024, args.calls,
             peak / 1024, args.calls * sorted(peaks)[len(peaks) // 2] / peak))
    print("burst wall time: %d FastAGI calls %.2f s (%.1f ms/call); %d classic calls %.2f s (%.1f ms/call); "
          "per-call ratio classic/FastAGI = %.1f" % (
              args.calls, fast_seconds, 1000 * fast_seconds / args.calls, args.classic, classic_seconds,
              1000 * classic_seconds / args.classic,
              (classic_seconds / args.classic) / (fast_seconds / args.calls)))


if __name__ == "__main__":
    main()
