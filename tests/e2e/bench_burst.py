#!/usr/bin/env python3
"""Benchmark on a real Asterisk 22 (the e2e chroot): a burst of --calls
logins through the product dialplan as installed (app-queue-toggle-mob,s,1
into qmt-toggle: the calls act, members are added, prompts are played),
fired as fast as the box can: one AMI write of all the Originates. Each
caller is a distinct mobile, permitted in one of --queues queues (SQLite
allowlist rows).

It runs once with the classic AGI script and, when the code has them, once
with the FastAGI server (`qmt serve` running, astdb qmt-fastagi/port set:
the product dialplan's switch), members removed in between. For each run:

  - every call's outcome (QMT_OUTCOME from the test dialplan's hangup
    handler) and the prompts played (error and denial prompts: want 0);
  - the members at the end (want one per call), the time from the first
    Originate until all of them are members (QUEUE_MEMBER(q,count) polled)
    and until every call has ended (its hangup handler's line);
  - the toggle's reasons, from its log (a script the watchdog killed
    writes none);
  - the peak total RSS of our processes, sampled every ~15 ms from /proc:
    classic, every queue_mobile_toggle.py process alive at the sample,
    summed; FastAGI, the qmt serve process (plus any classic script the
    dialplan fell back to). Asterisk's own peak RSS beside it, apart.

Targets: FastAGI peak RSS <= 100 MB; no failed call, every member in, in
both runs. Default: 500 calls into 5 queues of 100 (a queue's member list
stays under 4 KB, which the code before big-queue support needs).

    sudo python3 tests/e2e/bench_burst.py [--calls 500] [--queues 5] [--json out.json]

Not a test: it prints figures; exit 1 if a call failed or a member is
missing, 2 if it could not run (needs root, like the e2e tests).
"""

import argparse
import collections
import json
import os
import platform
import re
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.bench import (  # noqa: E402
    add_queues,
    bench_on_installed_pbx,
    dialplan_has_fastagi,
    has_fastagi_server,
)
from harness.fastagi import Server, switch_off, switch_on  # noqa: E402
from harness.logs import PLAYING, copy_logs  # noqa: E402
from harness.root import SQLITE_DB  # noqa: E402
from harness.rss import CLASSIC_AGI, FASTAGI_SERVER, PeakRss  # noqa: E402
from qmt.config import CONFIG_PATH  # noqa: E402

FIRST_QUEUE = 8101
TOGGLE_LOG = "/var/log/asterisk/queue_mobile_toggle.log"     # beside Asterisk's (harness.logs.KEPT_LOGS)
RSS_TARGET_MB = 100
ERROR_PROMPT, DENIAL_PROMPT = "sorry-youre-having-problems", "pbx-invalid"
DONE = re.compile(r"QMT_DONE slot=(\d+) (.*?) END")
REASON = re.compile(r" reason=(\w+)")
LOG_DROPPED = "Log queue threshold"
AGI_RUN = re.compile(r'\] AGI\("[^"]*", "(agi://|[^"]*queue_mobile_toggle\.py)')


def mobiles(calls, queues):
    """(number, queue) of each caller: distinct numbers, spread evenly."""
    return [(f"7915{i:07d}", queues[i % len(queues)]) for i in range(calls)]


def member_count(ast, queues):
    return sum(int(ast.getvar(f"QUEUE_MEMBER({q},count)") or 0) for q in queues)


class Progress:
    """Polls a burst until every call has ended and every member is in (or
    the calls have all ended without, or the time is up): seconds from
    `started` until all the members were in and until all the calls had
    ended; each call's hangup-handler fields."""

    def __init__(self, ast, slots, queues, since):
        self.ast, self.queues, self.since = ast, queues, since
        self.want = {str(s) for s in slots}
        self.done, self.all_in, self.all_ended = {}, None, None

    def follow(self, started, timeout):
        next_log = 0.0
        while time.monotonic() < started + timeout:
            now = time.monotonic()
            if self.all_in is None and member_count(self.ast, self.queues) >= len(self.want):
                self.all_in = now - started
            if now >= next_log:
                self.read_log()
                next_log = now + 0.5
                if self.all_ended is None and len(self.done) == len(self.want):
                    self.all_ended = now - started          # to the log poll's 0.5 s
                if len(self.done) == len(self.want) and (self.all_in is not None or next_log - started > 1):
                    return self
            time.sleep(0.02)
        return self

    def read_log(self):
        for m in DONE.finditer(self.ast.log_text(), self.since):
            if m.group(1) in self.want:
                self.done[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split(" ") if "=" in kv)


def burst(ast, root, mode, callers, queues, timeout):
    """One burst of logins; its figures."""
    since, toggle_since = len(ast.log_text()), toggle_log_size(root)
    slots = {ast.prepare(number): (number, queue) for number, queue in callers}
    with PeakRss(root.path, {CLASSIC_AGI, FASTAGI_SERVER}, ast.proc.pid) as rss:
        started = time.monotonic()
        ast.originate(list(slots))
        progress = Progress(ast, slots, queues, since).follow(started, timeout)
    all_in, done = progress.all_in, progress.done
    ended = progress.all_ended
    ast.wait_idle(120)
    text = ast.log_text()[since:]
    outcomes = collections.Counter(fields.get("QMT_OUTCOME", "?") for fields in done.values())
    prompts = collections.Counter(m.group(1) for m in PLAYING.finditer(text))
    agi_runs = collections.Counter("FastAGI" if m.group(1) == "agi://" else "classic"
                                   for m in AGI_RUN.finditer(text))
    missing = missing_members(ast, slots.values())
    return {"mode": mode, "calls": len(slots), "finished": len(done),
            "outcomes": dict(outcomes), "loggedin": outcomes.get("loggedin", 0),
            "error_prompts": prompts.get(ERROR_PROMPT, 0), "denial_prompts": prompts.get(DENIAL_PROMPT, 0),
            "agi_runs": dict(agi_runs), "reasons": reasons(root, toggle_since),
            "log_lost_lines": LOG_DROPPED in text,
            "members": len(slots) - len(missing), "missing": missing[:5],
            "all_members_s": None if all_in is None else round(all_in, 2),
            "all_ended_s": None if ended is None else round(ended, 1), **rss.figures(),
            "failed": [dict(fields, slot=s) for s, fields in done.items()
                       if fields.get("QMT_OUTCOME") != "loggedin"][:5]}


def missing_members(ast, callers):
    """The (number, queue) whose member is not in its queue (QueueStatus: no buffer limit)."""
    members = {q: {iface.lower() for iface in ast.members(q)} for q in {q for _n, q in callers}}
    return [(n, q) for n, q in callers if f"local/{n}@qmt-ring/n" not in members[q]]


def failed(run):
    return (run["loggedin"] != run["calls"] or run["members"] != run["calls"]
            or run["error_prompts"] or run["denial_prompts"])


def print_table(header, runs):
    print(header)
    print(f"{'mode':8} {'calls':>5} {'logged in':>9} {'members':>7} {'errors':>6} {'denials':>7} "
          f"{'all in':>8} {'all ended':>9} {'peak RSS':>9} {'procs':>5} {'Asterisk':>9}  AGI runs / target")
    for r in runs:
        all_in = "-" if r["all_members_s"] is None else f"{r['all_members_s']:.2f} s"
        ended = "-" if r["all_ended_s"] is None else f"{r['all_ended_s']:.1f} s"
        target = ""
        if r["mode"] == "FastAGI":
            met = r["peak_rss_mb"] <= RSS_TARGET_MB
            target = f"; peak RSS <= {RSS_TARGET_MB} MB: {'MET' if met else 'NOT MET'}"
        runs_text = ", ".join(f"{k} {v}" for k, v in sorted(r["agi_runs"].items()))
        print(f"{r['mode']:8} {r['calls']:5d} {r['loggedin']:9d} {r['members']:7d} {r['error_prompts']:6d} "
              f"{r['denial_prompts']:7d} {all_in:>8} {ended:>9} {r['peak_rss_mb']:6.1f} MB {r['processes_at_peak']:5d} "
              f"{r['asterisk_peak_rss_mb']:6.1f} MB  {runs_text}{target}")
    for r in runs:
        print(f"{r['mode']}: outcomes {r['outcomes']}; the toggle's reasons {r['reasons']}; "
              f"{r['samples']} RSS samples, every {r['mean_interval_ms']} ms on average")
        if r["log_lost_lines"]:
            print(f"    note: Asterisk's logger dropped lines ({LOG_DROPPED}): prompt and AGI counts are low")
        for f in r["failed"]:
            print(f"    failed: {f}")
        for n, q in r["missing"]:
            print(f"    missing: {n} in {q}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500, help="logins in the burst (default 500)")
    ap.add_argument("--queues", type=int, default=5, help="queues they spread over (default 5)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds a burst may take (default 300)")
    ap.add_argument("--classic-only", action="store_true", help="leave the FastAGI run out")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy Asterisk's and the toggle's logs here at the end")
    args = ap.parse_args()
    return bench_on_installed_pbx("bench_burst", "burst", lambda root, ast, pyver: run(args, root, ast, pyver))


def run(args, root, ast, pyver):
    """Both bursts on an installed PBX; prints the table, returns the exit code."""
    queues = [str(FIRST_QUEUE + i) for i in range(args.queues)]
    add_queues(root, ast, queues, "strategy = ringall\nringinuse = no\n")
    log_toggle_to_file(root)
    callers = mobiles(args.calls, queues)
    with sqlite3.connect(root.p(SQLITE_DB)) as db:
        db.executemany("INSERT INTO queue_mobile_agents (number, queue) VALUES (?, ?)", callers)
    switch_off(ast)
    runs = [burst(ast, root, "classic", callers, queues, args.timeout)]
    ast.reset_members(queues)
    why_not = fastagi_missing(args, root)
    server, server_exit = None, 0
    if not why_not:
        server = Server(root).start()
        try:
            switch_on(ast, server.port)
            runs.append(burst(ast, root, "FastAGI", callers, queues, args.timeout))
            switch_off(ast)
        finally:
            server_exit = server.stop()
    version = ast.cli("core show version").split()[1]
    header = (f"queue-mobile-toggle: burst of {args.calls} logins in one AMI write through the product "
              f"dialplan, {args.queues} queue(s) of {args.calls // args.queues}; Asterisk {version}, "
              f"Python {pyver} in a sid chroot, host {platform.node()} with {os.cpu_count()} CPUs, "
              f"SQLite3 ODBC allowlist of {args.calls} rows")
    print_table(header, runs)
    if why_not:
        print(f"FastAGI left out: {why_not}")
    if server_exit != 0:
        print(f"qmt serve: exit {server_exit} on SIGTERM (want 0)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "runs": runs, "fastagi_left_out": why_not}, f, indent=2)
    if args.keep_logs:
        copy_logs(root, args.keep_logs)
        if server:
            shutil.copy(server.output, args.keep_logs)
    return 1 if any(failed(r) for r in runs) or server_exit != 0 else 0


def log_toggle_to_file(root):
    """The toggle's log lines into a file the run keeps (the chroot has no
    syslog): why a call failed."""
    conf = root.p(CONFIG_PATH)
    text = conf.read_text()
    assert "\ntarget = syslog\n" in text, "the installed config's [log] target is not syslog"
    conf.write_text(text.replace("\ntarget = syslog\n", f"\ntarget = {TOGGLE_LOG}\n"))


def toggle_log_size(root):
    path = root.p(TOGGLE_LOG)
    return path.stat().st_size if path.exists() else 0


def reasons(root, since):
    """{reason: how many decisions} in the toggle's log past `since` bytes."""
    with open(root.p(TOGGLE_LOG), "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return dict(collections.Counter(REASON.findall(text)))


def fastagi_missing(args, root):
    """Why the FastAGI run cannot happen on this code ('' when it can)."""
    if args.classic_only:
        return "--classic-only"
    if not has_fastagi_server(root):
        return "this code has no `qmt serve`"
    if not dialplan_has_fastagi(root):
        return "the installed dialplan has no switch to FastAGI (astdb qmt-fastagi/port)"
    return ""


if __name__ == "__main__":
    sys.exit(main())
