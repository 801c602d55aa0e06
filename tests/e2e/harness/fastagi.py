"""FastAGI on the test PBX: `qmt serve` run inside the root as the asterisk
user (as install.sh's systemd unit runs it; the chroot has no systemd), the
dialplan's switch (astdb qmt-fastagi/port), and a stand-in server that sends
one command and drops the call.

The root shares the host's network: the server listens on the same
127.0.0.1 the tests reach, and a stand-in on the host is reached by the
chroot's Asterisk.
"""

import re
import socket
import subprocess
import threading

from harness.asterisk import free_port
from harness.logs import wait_for
from harness.root import CHROOT_PATH
from qmt.dialplan import FASTAGI_FAMILY, FASTAGI_PORT_KEY, SERVED

QMT = "/opt/queue-mobile-toggle/venv/bin/qmt"       # install.sh's venv (qmt.install.facts)
CONF = "/etc/asterisk/queue_mobile_toggle.conf"


def switch_on(ast, port):
    """The dialplan asks the server at 127.0.0.1:port (what install.sh --fastagi writes)."""
    ast.cli(f"database put {FASTAGI_FAMILY} {FASTAGI_PORT_KEY} {port}")


def switch_off(ast):
    ast.cli(f"database del {FASTAGI_FAMILY} {FASTAGI_PORT_KEY}")


def switch_value(ast):
    """What astdb holds ('' when off)."""
    m = re.search(r"^Value: (.*)$", ast.cli(f"database get {FASTAGI_FAMILY} {FASTAGI_PORT_KEY}"), re.M)
    return m.group(1).strip() if m else ""


class Server:
    """`qmt serve --port N` inside the root, as the asterisk user, in the
    foreground of a process of ours: stop() sends it SIGTERM."""

    def __init__(self, root, port=None):
        self.root = root
        self.port = port or free_port()
        self.proc = None
        self.output = root.tmp / f"qmt-serve-{self.port}.out"

    def start(self, timeout=20):
        from qmt.fastagi import probe
        out = open(self.output, "ab")
        # chroot --userspec execs: the process we hold is qmt serve itself
        self.proc = subprocess.Popen(
            ["chroot", "--userspec=asterisk:asterisk", str(self.root.path), "/usr/bin/env", "-i",
             f"PATH={CHROOT_PATH}", "LANG=C.UTF-8", "HOME=/var/lib/asterisk", QMT, "serve", "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        wait_for(lambda: self.proc.poll() is not None or probe(self.port, 1.0), timeout,
                 f"qmt serve answering on 127.0.0.1:{self.port}")
        assert self.proc.poll() is None, f"qmt serve exited {self.proc.returncode}: {self.log()}"
        self.config = self.root.p(CONF).read_bytes()
        return self

    def stop(self):
        """SIGTERM; its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("qmt serve did not end within 30 s of SIGTERM") from None

    def restart_if_config_changed(self):
        """The server reads the config once, at start: after an edit an admin
        restarts the service (qmt.fastagi); so do the tests, before a call."""
        if self.root.p(CONF).read_bytes() != self.config:
            self.stop()
            self.start()

    def log(self):
        return self.output.read_text(errors="replace") if self.output.exists() else ""


class DropAfterFirstCommand:
    """A stand-in FastAGI server: it reads the start block, sets the served
    mark (the first command of every real call), reads Asterisk's reply and
    closes the connection: a server lost mid-call, after the mark."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.served = []              # Asterisk's reply to the mark, per connection
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection, connection.makefile("rwb") as stream:
                while stream.readline().strip():          # the start block, up to its blank line
                    pass
                stream.write(f"SET VARIABLE {SERVED} 1\n".encode())
                stream.flush()
                self.served.append(stream.readline().decode().strip())

    def close(self):
        self.listener.close()


def wait_until(predicate, timeout, what):
    """wait_for with a finer step, for ordering calls against each other."""
    return wait_for(predicate, timeout, what, step=0.05)
