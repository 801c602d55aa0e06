"""What the benchmark scripts (tests/e2e/bench_*.py) run on: a fresh
overlay root with Asterisk running and the project installed by install.sh,
wheels filled on the host, as an admin would set it up; and what several
of them share: percentiles, more queues, the FastAGI server `qmt serve`."""

import contextlib
import signal
import socket
import subprocess
import sys
import time

import harness.ami  # noqa: F401  (puts the package, agi/, on sys.path)
from harness.asterisk import Asterisk, free_port
from harness.chroot import chroot_python_version, ensure_chroot, fill_wheelhouse
from harness.host import SetupError, why_unavailable
from harness.root import CHROOT_PATH, WHEELS_IN_ROOT, Root
from qmt.dialplan import DIALPLAN_FILE
from qmt.install.facts import AST_USER, VENV

QMT = VENV + "/bin/qmt"
FASTAGI_KEY = ("qmt-fastagi", "port")       # astdb: the product dialplan's switch to FastAGI


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
    text = root.p(f"/etc/asterisk/{DIALPLAN_FILE}").read_text()
    return "/".join(FASTAGI_KEY) in text


def use_fastagi(ast, port):
    """Set (a port) or delete (None) the astdb key the product dialplan reads."""
    family, key = FASTAGI_KEY
    ast.cli(f"database put {family} {key} {port}" if port else f"database del {family} {key}")


class FastAgiServer:
    """`qmt serve --port N` inside the root, as the asterisk user from the
    installed venv, in the foreground; stop() sends SIGTERM and keeps the
    exit code (0 expected). The Popen's pid is the server's own: chroot and
    env exec, they do not fork."""

    def __init__(self, root, port=None):
        self.root, self.port = root, port or free_port()
        self.proc, self.returncode = None, None
        self.log = root.tmp / "qmt-serve.log"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=20):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["chroot", f"--userspec={AST_USER}:{AST_USER}", str(self.root.path), "/usr/bin/env", "-i",
                 f"PATH={CHROOT_PATH}", "LANG=C.UTF-8", "HOME=/var/lib/asterisk",
                 QMT, "serve", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise SetupError("qmt serve", f"exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return self
            time.sleep(0.1)
        self.stop()
        raise SetupError("qmt serve", f"not listening on {self.port} after {timeout} s: {self.log_tail()}")

    def stop(self, timeout=20):
        if self.proc is None or self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = f"killed: no exit {timeout} s after SIGTERM"
            self.proc.wait(10)
        return self.returncode

    def log_tail(self, chars=2000):
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
