"""What the benchmark scripts (tests/e2e/bench_*.py) run on: a fresh
overlay root with Asterisk running and the project installed by install.sh,
wheels filled on the host, as an admin would set it up; and what several
of them share: percentiles, more queues, whether the code has FastAGI."""

import contextlib
import sys

from harness.asterisk import Asterisk
from harness.chroot import chroot_python_version, ensure_chroot, fill_wheelhouse
from harness.fastagi import QMT
from harness.host import SetupError, why_unavailable
from harness.root import WHEELS_IN_ROOT, Root
from qmt.dialplan import DIALPLAN_FILE, FASTAGI_FAMILY, FASTAGI_PORT_KEY
from qmt.install.facts import AST_USER, ASTETC


@contextlib.contextmanager
def installed_pbx(tag):
    """A fresh overlay root with Asterisk running and the project installed
    by install.sh (wheels filled on the host). Yields (root, asterisk,
    chroot Python version); SetupError names a failed step."""
    base = ensure_chroot()
    pyver = chroot_python_version(base)
    with Root(base, tag=tag) as root:
        ast = Asterisk(root)
        try:
            ast.start()
            root.copy_repo()
            fill_wheelhouse(root.p(WHEELS_IN_ROOT), pyver)
            p = root.install("--wheelhouse", WHEELS_IN_ROOT)
            if p.returncode != 0:
                raise SetupError("install.sh", p.stdout + p.stderr)
            yield root, ast, pyver
        finally:
            ast.stop()


def bench_on_installed_pbx(name, tag, body):
    """A benchmark's main: body(root, asterisk, python version) on an
    installed PBX, its exit code; 2, with one line, when it cannot run."""
    why = why_unavailable()
    if why:
        print(f"{name}: cannot run: {why}", file=sys.stderr)
        return 2
    try:
        with installed_pbx(tag) as (root, ast, pyver):
            return body(root, ast, pyver)
    except SetupError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2


def pct(values, q):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))]


def add_queues(root, ast, names, settings="strategy = ringall\ntimeout = 15\n"):
    """More queues in the test PBX's queues.conf, loaded at once."""
    queues_conf = root.p("/etc/asterisk/queues.conf")
    queues_conf.write_text(queues_conf.read_text() + "".join(f"\n[{q}]\n{settings}" for q in names))
    ast.cli("module reload app_queue.so")


def has_fastagi_server(root):
    """Whether the installed code has `qmt serve` (the FastAGI server)."""
    return root.sh(f"{QMT} serve --help", user=AST_USER).returncode == 0


def dialplan_has_fastagi(root):
    """Whether the installed product dialplan turns to FastAGI by the astdb key."""
    return f"{FASTAGI_FAMILY}/{FASTAGI_PORT_KEY}" in root.p(f"{ASTETC}/{DIALPLAN_FILE}").read_text()
