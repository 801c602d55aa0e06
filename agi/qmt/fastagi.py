"""`qmt serve`: the toggle as a FastAGI server, one process for every call.

The classic script costs a Python process per call (about 22 MB each, 52 at
once in a burst of logins); this process answers the same calls with the
very same qmt.toggle.run(): the same decisions, variables, log line and time
bounds. Where the admin turned it on, the dialplan asks it first:

    AGI(agi://127.0.0.1:<port>/queue_mobile_toggle,<queue>,<number>)

Asterisk connects and writes `agi_network: yes`, `agi_network_script:
<script>`, then the classic start block (res_agi.c: launch_netscript,
setup_env). By the script name:

    queue_mobile_toggle   one call: qmt.toggle.run(), the wire contract of
                          qmt.toggle, QMT_SERVED (qmt.dialplan.SERVED) set by
                          its first command
    qmt-health            the one line `NOOP qmt-serve <version>`, then close
                          (probe(), for `qmt doctor`)
    anything else         one log line, closed, no command sent

A connection closed before any command leaves QMT_SERVED empty, and only
then does the dialplan run the classic script: never a second decision.

Why it is built so:
  * a thread per connection (socketserver.ThreadingTCPServer, daemon
    threads): one decision never waits on another. The allowlist read runs
    in a thread of its own bounded by the deadline (qmt.allowlist.Bounded),
    as in the classic script, so a hung database costs its call the bound
    and nothing else; the abandoned reader ends when its driver returns.
  * pyst2's FastAGI example is Python 2 (SocketServer) and forks a process
    per call, the very cost this removes: not used. pyst2's AGI class is,
    without its SIGHUP handler (only the main thread may set one): Asterisk
    writes the line HANGUP instead (qmt.pbx.socket_agi).
  * the watchdog is per connection (ConnectionWatchdog), a timer that shuts
    the socket down: every pending read ends in EOF (channel_gone, one log
    line), where the classic script's SIGALRM ends its process.
  * at most MAX_CALLS calls at once (fewer if the descriptor limit, raised
    as far as allowed, holds fewer): one more is closed at once, with no
    command, so the dialplan runs the classic script for it. The listen
    backlog (BACKLOG) holds a burst while threads start: Asterisk gives up
    a connect after 2 s (MAX_AGI_CONNECT).
  * the config is read once, at start: after a change, restart the service
    (calls meanwhile run the classic script). No reload on SIGHUP (it is
    logged and ignored): a restart costs no call anything, and one reading
    per process means no call sees half of two configs.
  * SIGTERM or SIGINT: the listening socket closes (new calls run the
    classic script), the calls in progress may finish for up to
    DRAIN_SECONDS (under systemd's 90 s stop timeout; a slow typist's PIN
    dialogue could take minutes), exit 0. A call cut then ends without an
    answer: the dialplan's preset ERROR, nothing changed.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import socketserver
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from . import __version__
from .dialplan import FASTAGI_HOST, FASTAGI_SCRIPT
from .log import LOG_TAG, write_log
from .pbx import socket_agi
from .rules import printable
from .toggle import internal_error_line, pin_dialogue_seconds, run

if TYPE_CHECKING:
    from .config import Settings

HEALTH_SCRIPT = "qmt-health"
HEALTH_REPLY = "NOOP qmt-serve "               # + the version
MAX_CALLS = 1000
# Descriptors a call may hold: its connection, the database's and the
# manager's; and those of the process itself. systemd's default soft limit
# (1024) would not hold MAX_CALLS calls: listen() raises it toward the hard one.
DESCRIPTORS_PER_CALL, DESCRIPTORS_OWN = 3, 64
BACKLOG = 1024
GRACE_SECONDS = 1.0
DRAIN_SECONDS = 60


class ConnectionWatchdog:
    """One connection's last-resort bound (qmt.toggle.Watchdog). When it
    fires, the socket's reading side is shut down: the call's pending read
    ends in EOF, the call logs channel_gone and closes the connection, as
    after any EOF. Should the call still hold it GRACE_SECONDS later (busy
    elsewhere than reading), the socket is shut down both ways, so that
    Asterisk's side sees the connection close all the same."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._stopped = False

    def arm(self, seconds: int) -> None:
        with self._lock:
            self._cancel()
            if not self._stopped:
                self._timer = threading.Timer(seconds, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self, how: int = socket.SHUT_RD) -> None:
        try:
            self._connection.shutdown(how)
        except OSError:
            return                                  # already closed: the call is over
        if how == socket.SHUT_RD:
            with self._lock:
                if not self._stopped:
                    self._timer = threading.Timer(GRACE_SECONDS, self._fire, (socket.SHUT_RDWR,))
                    self._timer.daemon = True
                    self._timer.start()


def answer_connection(connection: socket.socket, settings: Settings, watchdog: ConnectionWatchdog) -> None:
    """One connection from Asterisk, by its script name."""
    agi = socket_agi(connection)
    try:
        script = agi.env.get("agi_network_script", "")
        if script == FASTAGI_SCRIPT:
            run(agi, settings, watchdog=watchdog)
        elif script == HEALTH_SCRIPT:
            connection.sendall(("%s%s\n" % (HEALTH_REPLY, __version__)).encode())
        else:
            problem = getattr(agi, "env_problem", None)
            write_log(settings, "%s: fastagi refused script %s: not %s%s" % (
                LOG_TAG, printable(script, 64) or "(none)", FASTAGI_SCRIPT, " (%s)" % problem if problem else ""),
                True)
    finally:
        try:
            agi.stdout.close()
        except OSError:
            pass                                    # the socket is gone: nothing was left to say


class CallHandler(socketserver.BaseRequestHandler):
    """One connection, within its watchdog; a bug of ours costs this call
    one log line (as the classic script's), never the server."""

    server: FastAgiServer

    def handle(self) -> None:
        settings = self.server.settings
        watchdog = ConnectionWatchdog(self.request)
        watchdog.arm(settings.watchdog_seconds())    # the start block's bound, as main()'s alarm
        try:
            answer_connection(self.request, settings, watchdog)
        except OSError:
            pass                                    # Asterisk reset the connection before a call began
        except Exception as exc:
            write_log(settings, internal_error_line(exc), True)
        finally:
            watchdog.stop()


class FastAgiServer(socketserver.ThreadingTCPServer):
    """The listening socket on 127.0.0.1 and a thread per call."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, settings: Settings, port: int, max_calls: int = MAX_CALLS) -> None:
        self.settings, self.max_calls = settings, max_calls
        self._active: set[socket.socket] = set()     # the calls in progress, by their connection
        self._idle = threading.Condition()
        super().__init__((FASTAGI_HOST, port), CallHandler)
        self.port: int = self.socket.getsockname()[1]

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._idle:
            full = len(self._active) >= self.max_calls
            if not full:
                self._active.add(request)
        if full:
            write_log(self.settings, "%s: fastagi busy: %d calls at once, one closed unanswered (the classic "
                      "script takes it)" % (LOG_TAG, self.max_calls), True)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)     # on failure socketserver shuts the request down

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        """Every end of a connection passes here (socketserver's): its call's
        place is free before the connection closes, so whoever sees it close
        may call again at once."""
        with self._idle:
            if request in self._active:
                self._active.discard(request)
                self._idle.notify_all()
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, Exception):
            write_log(self.settings, internal_error_line(exc), True)

    @property
    def calls(self) -> int:
        """Calls in progress now."""
        with self._idle:
            return len(self._active)

    def wait_idle(self, seconds: float) -> bool:
        """Wait until no call is in progress, at most `seconds`; True if none is."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._active, seconds)


def listen(settings: Settings, port: int) -> FastAgiServer:
    """The server, listening; OSError when the port cannot be had."""
    return FastAgiServer(settings, port, calls_the_descriptors_allow())


def calls_the_descriptors_allow() -> int:
    """MAX_CALLS, or fewer where the descriptor limit, raised as far as
    this process may, still holds fewer calls."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DESCRIPTORS_OWN + DESCRIPTORS_PER_CALL * MAX_CALLS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return MAX_CALLS
    return max(1, min(MAX_CALLS, (soft - DESCRIPTORS_OWN) // DESCRIPTORS_PER_CALL))


def serve_until_stopped(server: FastAgiServer) -> int:
    """Serve until SIGTERM or SIGINT; then let the calls in progress end
    (each within its own bound) and return 0."""
    settings = server.settings
    write_log(settings, "%s: fastagi serving on %s:%d" % (LOG_TAG, FASTAGI_HOST, server.port), False)
    try:
        accept_until_a_stop_signal(server)
    finally:
        server.server_close()
    # The longest a call can take: its start, lookup and PIN dialogue bounds.
    # The longest a call can take (its start, lookup and PIN dialogue), within DRAIN_SECONDS.
    if server.wait_idle(min(DRAIN_SECONDS, 2 * settings.watchdog_seconds() + pin_dialogue_seconds(settings))):
        write_log(settings, "%s: fastagi stopped" % LOG_TAG, False)
    else:
        write_log(settings, "%s: fastagi stopped, %d calls cut unanswered" % (LOG_TAG, server.calls), True)
    return 0


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def accept_until_a_stop_signal(server: FastAgiServer) -> None:
    """Accept calls until SIGTERM or SIGINT. socketserver's serve_forever()
    would see a stop only at its next poll; here every signal wakes the
    loop at once through a pipe (signal.set_wakeup_fd: whichever thread the
    kernel gave the signal to, the byte is written)."""
    wake, woken = os.pipe()
    os.set_blocking(woken, False)

    def no_reload(_signum: int, _frame: FrameType | None) -> None:
        write_log(server.settings, "%s: fastagi ignores SIGHUP: the config is read at start; restart the "
                  "service to apply a change" % LOG_TAG, True)

    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda _signum, _frame: None)    # the pipe's byte does the work
    signal.signal(signal.SIGHUP, no_reload)      # its default action would end the server
    signal.set_wakeup_fd(woken)
    server.timeout = 0                           # handle_request() after select(): never waits
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(server.socket, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                ready = [key.fileobj for key, _events in selector.select()]
                if wake in ready and set(os.read(wake, 64)) & set(STOP_SIGNALS):
                    return
                if server.socket in ready:
                    server.handle_request()
    finally:
        signal.set_wakeup_fd(-1)
        os.close(wake)
        os.close(woken)


def probe(port: int, timeout: float = 2.0) -> str | None:
    """The version of the `qmt serve` answering on 127.0.0.1:`port`, or
    None when nothing answers there as it does (for `qmt doctor`)."""
    try:
        with socket.create_connection((FASTAGI_HOST, port), timeout=timeout) as connection:
            connection.sendall(("agi_network: yes\nagi_network_script: %s\n\n" % HEALTH_SCRIPT).encode())
            reply = b""
            while b"\n" not in reply and len(reply) < 200:
                chunk = connection.recv(200)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    line = reply.decode("ascii", "replace")
    if not line.startswith(HEALTH_REPLY) or not line.endswith("\n") or line.count("\n") != 1:
        return None
    return printable(line[len(HEALTH_REPLY):-1], 40) or None
