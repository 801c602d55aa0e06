"""The optional FastAGI server (`qmt serve`): its systemd unit, and the
dialplan's switch, astdb qmt-fastagi/port (qmt.dialplan).

The switch is astdb, not a dialplan file: it survives restarts, flips
without a dialplan reload, shows in `database show qmt-fastagi`. The
dialplan tries the server only while the key holds a port, and falls back
to the classic script when no command of the server reached the call.

    install.sh --fastagi      the unit written, enabled and started; the key set
                              only once the server answers (a probe), so that a
                              server that cannot start leaves the dialplan classic
    install.sh --no-fastagi   the key deleted first, then the unit stopped and removed
    install.sh                the mode as it is: an existing unit is brought up to
                              date (and restarted when it or the package changed)
    --check                   the unit (enabled, active); qmt doctor says the mode
                              and whether the server answers
    --uninstall               key, unit and file go

Without systemd (a container, the e2e chroot) the unit is written but not
started: the run says so and how to start the server by hand, and turns the
dialplan's mode on only if a server already answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable

from ..asterisk_cli import AsteriskCliError, astdb_family
from . import asterisk, ini
from .facts import (
    AST_USER,
    CONFIG,
    DEFAULT_FASTAGI_PORT,
    FASTAGI_FAMILY,
    FASTAGI_HOST,
    FASTAGI_PORT_KEY,
    FASTAGI_UNIT,
    FASTAGI_UNIT_FILE,
    QMT_SERVE,
    VENV,
)
from .report import InstallError
from .steps import Run, quiet, systemd_running

PORT = re.compile(r"[0-9]{1,5}\Z")
ANSWER_WAIT = 10.0          # seconds a freshly started server has to answer the probe
PROBE = ("import sys; from qmt.fastagi import probe; version = probe(int(sys.argv[1]), float(sys.argv[2]));"
         " print(version or ''); sys.exit(0 if version else 1)")
# A file writer: (data, path, mode, "owner:group", label), as Install.install_file.
Writer = Callable[[bytes, str, int, str, str], None]


def unit_text() -> str:
    """The systemd unit. Hardening that cannot break a lookup: no new
    privileges, /usr, /boot and /etc read-only (ProtectSystem=full, not
    strict: /var stays writable, where a SQLite allowlist may need its
    journal and the config may name a log file), a private /tmp (psqlODBC's
    CommLog), no /home, kernel and cgroups untouchable, the address families
    of a database, syslog, FastAGI and glibc's address lookup (netlink). Not
    PrivateDevices: the default log target is syslog, through /dev/log."""
    return "\n".join((
        "# queue-mobile-toggle (install.sh --fastagi): the toggle's decisions over FastAGI on 127.0.0.1",
        "[Unit]",
        "Description=queue-mobile-toggle FastAGI server (qmt serve)",
        "After=network.target asterisk.service",
        "",
        "[Service]",
        "Type=simple",
        f"User={AST_USER}",
        f"Group={AST_USER}",
        f"ExecStart={QMT_SERVE}",
        "Restart=on-failure",
        "RestartSec=2",
        "UMask=0027",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "")).rstrip("\n") + "\n"


def probe(port: str, timeout: float = 2.0) -> str:
    """The version the server on 127.0.0.1:port answers (qmt.fastagi.probe,
    run by the venv's Python, which has the installed package), "" if none."""
    try:
        done = subprocess.run([VENV + "/bin/python3", "-I", "-c", PROBE, port, str(timeout)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=timeout + 20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else ""


def answer_within(port: str, seconds: float) -> str:
    """probe() until it answers or seconds pass: a unit just started needs a moment."""
    deadline = time.monotonic() + seconds
    while True:
        version = probe(port, 1.0)
        if version or time.monotonic() >= deadline:
            return version
        time.sleep(0.3)


def dialplan_port() -> str:
    """The port astdb qmt-fastagi/port holds ("" when off); AsteriskCliError when Asterisk cannot be asked."""
    return astdb_family(FASTAGI_FAMILY).get(FASTAGI_PORT_KEY, "")


def describe_unit_state() -> str:
    enabled = "enabled" if quiet(["systemctl", "is-enabled", "--quiet", FASTAGI_UNIT]) else "not enabled"
    active = "active" if quiet(["systemctl", "is-active", "--quiet", FASTAGI_UNIT]) else "not active"
    return f"{enabled}, {active}"


class FastAgi:
    """The FastAGI steps of one run (install, --check or --uninstall)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.report = run.report

    def config_port(self) -> str:
        """[fastagi] port of the config (qmt serve listens there), else the default."""
        return ini.value(self.run.text(CONFIG), "fastagi", "port") or DEFAULT_FASTAGI_PORT

    def port(self) -> str:
        """The config's port, checked: it goes into the dialplan's AGI URL."""
        port = self.config_port()
        if not PORT.match(port) or not 0 < int(port) < 65536:
            raise InstallError(f"fastagi: [fastagi] port in {CONFIG} is '{port}', not a port (1-65535)")
        return port

    # -- install ---------------------------------------------------------------
    def install(self, want: str, package_changed: bool, write: Writer) -> str:
        """want: "on" (--fastagi), "off" (--no-fastagi), "" (keep the mode). The
        unit file's path when it is in place (the manifest records it), else ""."""
        if want == "off":
            self.turn_off()
            return ""
        running = asterisk.running()
        current = self.dialplan_port_or_none() if running else None
        if want == "" and not current and not self.run.exists(FASTAGI_UNIT_FILE):
            self.report.ok("fastagi: off, the dialplan runs the classic script (install.sh --fastagi turns the"
                           " server on)")
            return ""
        port = self.port()
        before = self.report.changes
        self.run.files.mkdir(os.path.dirname(FASTAGI_UNIT_FILE))
        write(unit_text().encode(), FASTAGI_UNIT_FILE, 0o644, "root:root", "fastagi")
        restart = package_changed or self.report.changes > before
        started = self.start_unit(restart, port) if systemd_running() else self.say_no_systemd()
        if want == "on" or current:
            self.set_dialplan_mode(port, running, keep=want == "", started=started)
        return FASTAGI_UNIT_FILE

    def dialplan_port_or_none(self) -> str | None:
        try:
            return dialplan_port()
        except AsteriskCliError:
            return None

    def start_unit(self, restart: bool, port: str) -> bool:
        """Enabled and running, restarted when the unit or the package changed (a
        running server would go on with the old code) or when it does not answer
        on the config's port (it reads the config once, at start)."""
        if not quiet(["systemctl", "daemon-reload"]):
            raise InstallError("fastagi: systemctl daemon-reload failed")
        was_active = quiet(["systemctl", "is-active", "--quiet", FASTAGI_UNIT])
        if not quiet(["systemctl", "enable", "--now", FASTAGI_UNIT]):
            raise InstallError(f"fastagi: systemctl enable --now {FASTAGI_UNIT} failed"
                               f" (systemctl status {FASTAGI_UNIT})")
        why = "a new version or unit" if restart else f"no answer at {FASTAGI_HOST}:{port}"
        if was_active and (restart or not probe(port, 1.0)):
            if not quiet(["systemctl", "restart", FASTAGI_UNIT]):
                raise InstallError(f"fastagi: systemctl restart {FASTAGI_UNIT} failed")
            self.report.changed(f"fastagi: {FASTAGI_UNIT} restarted ({why})")
        elif was_active:
            self.report.ok(f"fastagi: {FASTAGI_UNIT} enabled and running")
        else:
            self.report.changed(f"fastagi: {FASTAGI_UNIT} enabled and started")
        return True

    def say_no_systemd(self) -> bool:
        self.report.note(f"fastagi: systemd is not running here, so {FASTAGI_UNIT} cannot be started; start the"
                         f" server yourself as the {AST_USER} user (runuser -u {AST_USER} -- {QMT_SERVE}) and run"
                         f" {self.run.options.prog} --fastagi again to turn it on for the dialplan")
        return False

    def set_dialplan_mode(self, port: str, running: bool, keep: bool, started: bool) -> None:
        """The key set once the server answers; else the dialplan stays (or, with
        --fastagi, is put back) on the classic script. keep: an install without
        --fastagi, which never turns the mode off."""
        if not running:
            self.report.note(f"fastagi: Asterisk is not running: its dialplan's mode (astdb {FASTAGI_FAMILY}/"
                             f"{FASTAGI_PORT_KEY}) is set by {self.run.options.prog} --fastagi once it runs")
            return
        version = answer_within(port, ANSWER_WAIT if started else 1.0)
        current = self.dialplan_port_or_none()
        if version:
            self.put_port(port, current, version)
        elif keep:
            self.report.note(f"fastagi: no answer from qmt serve at {FASTAGI_HOST}:{port}: calls fall back to the"
                             f" classic script, a WARNING each (systemctl status {FASTAGI_UNIT})")
        else:
            self.delete_key(current, f"no server answers at {FASTAGI_HOST}:{port}")
            self.report.note(f"fastagi: not turned on: no answer from qmt serve at {FASTAGI_HOST}:{port}, so the"
                             " dialplan runs the classic script")

    def put_port(self, port: str, current: str | None, version: str) -> None:
        if current == port:
            self.report.ok(f"fastagi: on, the dialplan asks qmt serve {version} at {FASTAGI_HOST}:{port}")
            return
        asterisk.cli(f"database put {FASTAGI_FAMILY} {FASTAGI_PORT_KEY} {port}")
        if self.dialplan_port_or_none() != port:
            raise InstallError(f"fastagi: could not write astdb {FASTAGI_FAMILY}/{FASTAGI_PORT_KEY}")
        self.report.changed(f"fastagi: on, the dialplan asks qmt serve {version} at {FASTAGI_HOST}:{port}"
                            f" (astdb {FASTAGI_FAMILY}/{FASTAGI_PORT_KEY})")

    def delete_key(self, current: str | None, why: str) -> None:
        if current:
            asterisk.cli(f"database del {FASTAGI_FAMILY} {FASTAGI_PORT_KEY}")
            self.report.changed(f"fastagi: off, the dialplan runs the classic script ({why})")

    def turn_off(self) -> None:
        """The key first, so that no call tries a server being stopped; then the unit."""
        if asterisk.running():
            current = self.dialplan_port_or_none()
            self.delete_key(current, f"astdb {FASTAGI_FAMILY}/{FASTAGI_PORT_KEY} deleted")
            if not current:
                self.report.ok("fastagi: off, the dialplan runs the classic script")
        else:
            self.report.note(f"fastagi: Asterisk is not running; once it runs: asterisk -rx 'database del"
                             f" {FASTAGI_FAMILY} {FASTAGI_PORT_KEY}'")
        self.remove_unit()

    def remove_unit(self) -> None:
        if not self.run.exists(FASTAGI_UNIT_FILE):
            return
        if systemd_running():
            quiet(["systemctl", "disable", "--now", FASTAGI_UNIT])
        self.run.files.remove(FASTAGI_UNIT_FILE)
        if systemd_running():
            quiet(["systemctl", "daemon-reload"])
        self.report.changed(f"fastagi: stopped and removed {FASTAGI_UNIT_FILE}")

    # -- --check ------------------------------------------------------------------
    def check(self) -> None:
        """The unit, where there is one; the mode and the server's answer are qmt doctor's lines."""
        if not self.run.exists(FASTAGI_UNIT_FILE):
            return
        if self.run.files.read(FASTAGI_UNIT_FILE) != unit_text().encode():
            self.report.failed(f"fastagi: {FASTAGI_UNIT_FILE} differs from this version's (run"
                               f" {self.run.options.prog} again)")
        elif not systemd_running():
            self.report.note(f"fastagi: {FASTAGI_UNIT_FILE} is in place, but systemd is not running here")
        elif describe_unit_state() != "enabled, active":
            self.report.failed(f"fastagi: {FASTAGI_UNIT} is {describe_unit_state()} (systemctl status"
                               f" {FASTAGI_UNIT})")
        else:
            self.report.passed(f"fastagi: {FASTAGI_UNIT} enabled, active")
