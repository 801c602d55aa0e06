"""Peak resident memory of our processes inside a root, sampled from /proc
while a benchmark runs (harness for tests/e2e/bench_burst.py).

A sample sums the RSS of every process alive at that instant whose name
(/proc/<pid>/stat's comm: a script's file name, cut to 15 characters) is
one of ours and whose root is the benchmark's chroot (the host may run the
same script in its own tests). RSS counts shared pages (the interpreter,
libraries) in every process: the sum is what the kernel charges the
processes one by one, an upper bound of the memory they really take.

Each sample reads one /proc file per process it has not ruled out; a pid
seen under another name is ruled out until it disappears, except while it
is still named like its parent (Asterisk forks, then execs the script: a
sample may catch the child in between).
"""

import os
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
CLASSIC_AGI = "queue_mobile_to"      # comm of queue_mobile_toggle.py (15 characters)
FASTAGI_SERVER = "qmt"               # comm of `qmt serve` (the venv's console script)
FORKING_PARENT = "asterisk"


def stat_fields(pid):
    """(comm, rss in bytes) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    head, _, tail = raw.rpartition(b")")
    comm = head.partition(b"(")[2].decode("ascii", "replace")
    return comm, int(tail.split()[21]) * PAGE         # field 24, rss in pages


class PeakRss(threading.Thread):
    """Samples every `period` seconds until stop(): the peak of the summed
    RSS of the processes named in `names` inside `root_path`, and the peak
    RSS of the process `reference_pid` (Asterisk), kept apart."""

    def __init__(self, root_path, names, reference_pid, period=0.015):
        super().__init__(daemon=True)
        self.root_path = os.path.realpath(root_path)
        self.names, self.reference_pid, self.period = set(names), reference_pid, period
        self.peak_ours = self.peak_reference = 0
        self.peak_count = self.samples = 0
        self.seconds = 0.0
        self._ours, self._others = set(), set()
        self._halt = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._halt.set()
        self.join()

    def run(self):
        started = time.monotonic()
        while not self._halt.is_set():
            due = time.monotonic() + self.period
            self.sample()
            self._halt.wait(max(0.0, due - time.monotonic()))
        self.seconds = time.monotonic() - started

    def sample(self):
        pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        self._ours &= pids
        self._others &= pids
        total = count = 0
        for pid in pids - self._others:
            fields = stat_fields(pid)
            if fields is None:
                continue
            comm, rss = fields
            if pid == self.reference_pid:
                self.peak_reference = max(self.peak_reference, rss)
            elif pid in self._ours or self._is_ours(pid, comm):
                total += rss
                count += 1
        self.samples += 1
        if total > self.peak_ours:
            self.peak_ours, self.peak_count = total, count

    def _is_ours(self, pid, comm):
        if comm == FORKING_PARENT:
            return False                 # maybe a child before its exec: look again next time
        try:
            inside = os.path.realpath(f"/proc/{pid}/root") == self.root_path
        except OSError:
            inside = False
        (self._ours if inside and comm in self.names else self._others).add(pid)
        return pid in self._ours

    def figures(self):
        """The peaks in MB, how many of ours were alive at the peak, the mean sampling interval."""
        return {"peak_rss_mb": round(self.peak_ours / 2**20, 1), "processes_at_peak": self.peak_count,
                "asterisk_peak_rss_mb": round(self.peak_reference / 2**20, 1),
                "samples": self.samples,
                "mean_interval_ms": round(1000 * self.seconds / max(1, self.samples), 1)}
