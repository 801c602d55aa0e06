"""The install mode's file steps, in two parts around install.sh's venv steps.

preflight (before the venv): every file the run may read, write, chmod or
chown refused now if unsafe, then psqlODBC's CommLog. install (after it):
the script, config, allowlist, dialplan, manager account, sweep, manifest,
reloads and the final line. Each step prints its one line; a re-run on an
installed box changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from . import asterisk, ini
from .connection import any_dsn, masked, plain_dsn
from .facts import (
    AMI_DEFAULT_PORT,
    AMI_INCLUDE_LINE,
    AMI_OWN_FILE,
    AMI_USER,
    AST_USER,
    ASTETC,
    CONFIG,
    CONFIG_EXAMPLE,
    CONTEXT,
    DEFAULT_DSN,
    DIALPLAN,
    DSN_DESCRIPTION,
    INCLUDE_LINE,
    MANAGER_CONF,
    MANAGER_CUSTOM,
    MANIFEST,
    ODBC_INI,
    ODBCINST_INI,
    PG_DRIVER,
    READ_FILES,
    SCRIPT,
    SHEBANG,
    SQLITE_MODE,
    SWEEP_COMMAND,
    SWEEP_CRON,
    SWEEP_TIMER,
    SWEEP_UNITS,
    TABLE,
)
from .fastagi import FastAgi
from .files import Ownership, SafeFiles, mode_and_owner, ownership
from .manifest import agi_dirs_used, render
from .report import InstallError, Report
from .steps import Options, Run, quiet, systemd_running

# Run as the asterisk user, by its text: root's Python never imports sqlite3.
SQLITE_HELPER = os.path.join(os.path.dirname(__file__), "sqlite_as_owner.py")


@dataclass
class Installing:
    """What the install steps learn and what the manifest records."""
    backend: str = "sqlite"
    want_dsn: str = DEFAULT_DSN
    agi_dir: str = ""
    agi_dir_from: str = ""
    connection: str = ""
    include_file: str = ""
    dialplan_changed: bool = False
    ami_changed: bool = False
    recorded: dict[str, str] = field(default_factory=dict)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Install(Run):
    """The install mode; preflight() then, once the venv is there, install()."""

    def __init__(self, options: Options, files: SafeFiles | None = None, report: Report | None = None) -> None:
        super().__init__(options, files, report)
        self.state = Installing()

    def plan(self) -> None:
        self.state.backend = self.backend()
        self.state.want_dsn = self.options.dsn or DEFAULT_DSN
        self.state.agi_dir, self.state.agi_dir_from = self.resolve_agi_dir()
        self.state.recorded["fastagi_unit"] = self.manifest().get("fastagi_unit")

    # -- before the venv ---------------------------------------------------------
    def preflight(self) -> None:
        self.plan()
        self.refuse_unsafe_targets()
        self.quiet_psqlodbc_commlog()

    def refuse_unsafe_targets(self) -> None:
        """Before any change: every file this run may read, write, chmod or chown
        must be one SafeFiles accepts; else the run stops here with one line. The
        files read to name the others come first."""
        self.refuse_unsafe(*READ_FILES)
        self.refuse_unsafe(self.state.agi_dir + "/" + SCRIPT, ASTETC + "/" + DIALPLAN, self.ami_account_file(),
                           SWEEP_CRON, SWEEP_UNITS + ".service", SWEEP_UNITS + ".timer")
        if self.state.backend == "sqlite":
            self.refuse_unsafe(self.sqlite_db_of(self.state.want_dsn), self.sqlite_db_of(self.config_dsn()))

    def quiet_psqlodbc_commlog(self) -> None:
        """PostgreSQL backend only: CommLog=0 for the driver in /etc/odbcinst.ini."""
        if self.state.backend != "postgresql":
            return
        where = f"[{PG_DRIVER}] of {ODBCINST_INI}"
        if not self.has_pg_driver():
            self.report.note(f"odbcinst: no {where} (odbc-postgresql registers the driver there)")
        elif self.psqlodbc_commlog_on():
            was = self.psqlodbc_commlog()
            self.rewrite(ODBCINST_INI, lambda text: ini.with_value(text, PG_DRIVER, "CommLog", "0"))
            self.report.changed(f"odbcinst: CommLog=0 in {where} (was {was}: a /tmp/psqlodbc_*.log file"
                                " for every call)")
        else:
            self.report.ok(f"odbcinst: CommLog is off in {where}")

    # -- after the venv ------------------------------------------------------------
    def install(self) -> None:
        self.plan()
        self.install_agi_script()
        self.install_config()
        self.read_config_connection()
        self.install_allowlist()
        self.install_dialplan()
        self.install_ami_account()
        self.install_sweep_timer()
        self.write_manifest()
        self.reload_dialplan()
        self.install_fastagi()
        self.write_manifest()
        self.reload_manager()
        self.report_install()

    def rewrite(self, path: str, edit: Callable[[str], str]) -> None:
        """path becomes edit(its text), with the same owner and mode."""
        self.files.write(path, edit(self.text(path)).encode("utf-8", "surrogateescape"))

    def install_file(self, data: bytes, dest: str, mode: int, owner: str, label: str) -> None:
        """dest holds data with mode and owner ("root:asterisk"); written only when different."""
        st = self.files.status(dest)
        if st is not None and self.files.read(dest) == data and mode_and_owner(st) == f"{mode:o} {owner}":
            self.report.ok(f"{label}: {dest} unchanged")
            return
        user, group = owner.split(":")
        self.files.write(dest, data, ownership(mode, user, group))
        self.report.changed(f"{label}: installed {dest} (mode {mode:o}, {owner})")

    def install_agi_script(self) -> None:
        """The AGI script, in the agi-bin Asterisk uses, its shebang on the venv's Python."""
        agi_dir, source = self.state.agi_dir, self.state.agi_dir_from
        if os.path.isdir(agi_dir):
            self.report.ok(f"agi-bin: {agi_dir} (from {source})")
        else:
            self.files.mkdir(agi_dir)
            self.report.changed(f"agi-bin: created {agi_dir} (from {source})")
        lines = self.source("agi/" + SCRIPT).splitlines(keepends=True)
        if lines and lines[0].startswith(b"#!"):
            lines = lines[1:]
        script = SHEBANG.encode() + b"\n" + b"".join(lines)
        self.install_file(script, agi_dir + "/" + SCRIPT, 0o750, "root:" + AST_USER, "script")

    def install_config(self) -> None:
        """The config, written only when none exists; never readable by others."""
        self.state.recorded["config_sha256"] = self.manifest().get("config_sha256")
        st = self.files.status(CONFIG)
        if st is not None:
            self.report.ok(f"config: {CONFIG} exists, kept as it is")
            if st.st_mode & 0o007:
                mode = stat.S_IMODE(st.st_mode) & ~0o007
                self.files.chmod(CONFIG, Ownership(mode))
                self.report.changed(f"config: {CONFIG} was readable by others: now mode {mode:o}")
            return
        text = self.source(CONFIG_EXAMPLE)
        if not (self.state.backend == "sqlite" and self.state.want_dsn == DEFAULT_DSN):
            text = re.sub(rb"(?m)^connection *=.*$", b"connection = DSN=" + self.state.want_dsn.encode(), text)
        self.files.write(CONFIG, text, ownership(0o640, "root", AST_USER))
        self.state.recorded["config_sha256"] = sha256(text)
        self.report.changed(f"config: wrote {CONFIG} (mode 640, root:{AST_USER};"
                            f" connection = DSN={self.state.want_dsn})")

    def read_config_connection(self) -> None:
        """A note when --db/--dsn asked for a DSN the kept config does not name."""
        connection = self.config_connection()
        if connection is None:
            raise InstallError("config: cannot parse " + CONFIG)
        self.state.connection = connection
        if (self.options.dsn or self.options.db) and any_dsn(connection) != self.state.want_dsn:
            want = self.state.want_dsn
            self.report.note(f"config: {CONFIG} says 'connection = {masked(connection)}', not DSN={want};"
                             f" edit it if --dsn {want} is what you want")

    # -- the allowlist -----------------------------------------------------------------
    def install_allowlist(self) -> None:
        """A server's allowlist is the admin's to set up; the embedded default is a
        SQLite file and its DSN, made here unless the config points elsewhere."""
        recorded, manifest = self.state.recorded, self.manifest()
        recorded["dsn_added"], recorded["sqlite_db"] = manifest.get("dsn_added"), manifest.get("sqlite_db")
        connection, backend = self.state.connection, self.state.backend
        config_dsn = plain_dsn(connection)
        if backend != "sqlite":
            dsn = any_dsn(connection) or self.state.want_dsn
            self.report.ok(f"allowlist: {backend} through DSN={dsn} (no SQLite file; the DSN is yours to define, see"
                           " docs/install.md)")
            if not self.dsn_defined(dsn):
                self.report.note(f"allowlist: DSN {dsn} is not defined in {ODBC_INI} yet")
        elif not config_dsn or (self.options.dsn and config_dsn != self.options.dsn):
            self.report.ok(f"allowlist: the config points elsewhere ({masked(connection)}):"
                           " no SQLite allowlist created")
        elif self.dsn_defined(config_dsn) and config_dsn != recorded["dsn_added"]:
            driver = self.dsn_value(config_dsn, "Driver")
            self.report.ok(f"allowlist: DSN {config_dsn} is already defined in {ODBC_INI} (driver {driver}):"
                           " left as it is")
        else:
            if subprocess.run(["odbcinst", "-q", "-d", "-n", "SQLite3"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0:
                raise InstallError("allowlist: ODBC driver SQLite3 is not registered (apt-get install libsqliteodbc)")
            db = self.sqlite_db_of(config_dsn)
            self.install_sqlite_allowlist(db)
            self.install_sqlite_dsn(config_dsn, db)

    def install_sqlite_allowlist(self, db: str) -> None:
        """The SQLite file with its table, readable and writable by the asterisk group
        only: root's `qmt allow` and `revoke` run as the asterisk user (README,
        Security), which owns the folder and could replace the file anyway."""
        folder = os.path.dirname(db)
        owned = ownership(SQLITE_MODE, "root", AST_USER)
        if not os.path.isdir(folder):
            self.files.mkdir(folder, ownership(0o750, "root", AST_USER))
            self.report.changed(f"allowlist: created {folder} (mode 750, root:{AST_USER})")
        st = self.files.status(db)
        if st is not None and mode_and_owner(st) != f"{SQLITE_MODE:o} root:{AST_USER}":
            self.files.chmod(db, owned)
            self.report.changed(f"allowlist: {db} is mode {SQLITE_MODE:o}, root:{AST_USER}"
                                " (the asterisk group reads and writes it)")
        if st is not None and self.sqlite_has_table(db):
            self.report.ok(f"allowlist: {db} has table {TABLE}")
            self.upgrade_sqlite_table(db)
        else:
            _, copy = self.sqlite_as_asterisk("create", db, "sql/sqlite.sql",
                                              f"could not create table {TABLE} for {db}")
            self.files.write(db, copy, owned)
            self.report.changed(f"allowlist: created table {TABLE} in {db} from sql/sqlite.sql")
        self.state.recorded["sqlite_db"] = db

    def sqlite_has_table(self, db: str) -> bool:
        """Read as the asterisk user (as the script reads it): root opens no file by a
        name that user could redirect."""
        return self.as_asterisk("python3", "-I", "-c", helper_source(), "has-table", db, TABLE,
                                timeout=30).returncode == 0

    def sqlite_as_asterisk(self, op: str, db: str, sql_file: str, failure: str) -> tuple[list[str], bytes]:
        """sql_file applied, as the asterisk user, to a copy of db: the columns added
        and the new file."""
        sql = self.source(sql_file).decode("utf-8")
        done = self.as_asterisk("python3", "-I", "-c", helper_source(), op, sql, stdin=self.files.read(db),
                                timeout=60)
        if done.returncode != 0:
            raise InstallError("allowlist: " + failure)
        first, _, data = done.stdout.partition(b"\n")
        return first.decode().split(), data

    def upgrade_sqlite_table(self, db: str) -> None:
        """The columns of later versions added to an existing table (sql/upgrade_sqlite.sql,
        the DBA's by-hand upgrade too): SQLite has no ADD COLUMN IF NOT EXISTS. db is
        written back only when a column was added: a current table is left untouched."""
        added, copy = self.sqlite_as_asterisk(
            "upgrade", db, "sql/upgrade_sqlite.sql",
            f"could not add the new columns of {TABLE} to a copy of {db} (it is left as it was)")
        if not added:
            return
        self.files.write(db, copy, ownership(SQLITE_MODE, "root", AST_USER))
        self.report.changed(f"allowlist: added column(s) {', '.join(added)} to table {TABLE} in {db}"
                            " (sql/upgrade_sqlite.sql)")

    def install_sqlite_dsn(self, name: str, db: str) -> None:
        """The DSN in /etc/odbc.ini, added when missing."""
        if self.dsn_defined(name):
            self.report.ok(f"allowlist: DSN {name} in {ODBC_INI}")
            return
        section = (f"[{name}]\nDescription = {DSN_DESCRIPTION}\nDriver = SQLite3\nDatabase = {db}\n"
                   "NoCreat = 1\nTimeout = 2000\n")
        self.files.append(ODBC_INI, section.encode())
        self.state.recorded["dsn_added"] = name
        self.report.changed(f"allowlist: added DSN {name} (SQLite3, {db}) to {ODBC_INI}")

    # -- the dialplan --------------------------------------------------------------------
    def install_dialplan(self) -> None:
        """The dialplan file and exactly one #include line."""
        before = self.report.changes
        self.install_file(self.source("agi/" + DIALPLAN), ASTETC + "/" + DIALPLAN, 0o644, "root:root", "dialplan")
        self.install_include_line()
        self.state.dialplan_changed = self.report.changes > before

    def install_include_line(self) -> None:
        target = self.state.include_file = self.include_target()
        if self.files_with_include():
            self.report.ok(f"include: {target} has '{INCLUDE_LINE}'")
        else:
            self.files.append(target, INCLUDE_LINE.encode() + b"\n")
            self.report.changed(f"include: added '{INCLUDE_LINE}' to {target}")

    # -- the manager account ----------------------------------------------------------------
    def install_ami_account(self) -> None:
        """`qmt` reads queue members and removes them through AMI, as its own account
        with only the rights that needs (agent), from 127.0.0.1 only. Its secret
        lives in the config (mode 640)."""
        if not self.exists(MANAGER_CONF):
            self.report.note(f"ami: no {MANAGER_CONF}; qmt check/status/sweep need Asterisk's manager interface")
            return
        self.install_ami_secret_in_config()
        before, file = self.report.changes, self.ami_account_file()
        kept = ""
        if file == MANAGER_CUSTOM and self.exists(file):
            kept = ini.ended(ini.without_section(self.text(file), AMI_USER))
        account = kept + ami_section(self.ini_value(CONFIG, "ami", "secret"))
        self.files.mkdir(os.path.dirname(file))
        self.install_file(account.encode("utf-8", "surrogateescape"), file, 0o640, "root:" + AST_USER, "ami")
        self.state.recorded["ami_file"] = file
        if file == ASTETC + "/" + AMI_OWN_FILE and not ini.has_line(self.text(MANAGER_CONF),
                                                                    lambda line: line == AMI_INCLUDE_LINE):
            self.files.append(MANAGER_CONF, AMI_INCLUDE_LINE.encode() + b"\n")
            self.report.changed(f"ami: added '{AMI_INCLUDE_LINE}' to {MANAGER_CONF}")
        self.install_ami_enabled()
        self.state.ami_changed = self.report.changes > before

    def install_ami_secret_in_config(self) -> None:
        """The [ami] section of the config, added once with a new random secret."""
        port = self.ini_value(MANAGER_CONF, "general", "port") or AMI_DEFAULT_PORT
        if self.ini_value(CONFIG, "ami", "secret"):
            self.report.ok(f"ami: {CONFIG} has the manager account's secret")
            if self.ini_value(CONFIG, "ami", "port") != port:
                self.rewrite(CONFIG, lambda text: ini.with_key(text, "ami", "port", port))
                self.report.changed(f"ami: port {port} in {CONFIG}, as in {MANAGER_CONF}")
            return
        as_installed = sha256(self.files.read(CONFIG)) == self.state.recorded["config_sha256"]
        section = ("\n[ami]\n; the manager account install.sh made for the qmt command\nhost = 127.0.0.1\n"
                   f"port = {port}\nusername = {AMI_USER}\nsecret = {new_secret()}\n")
        self.files.append(CONFIG, section.encode())
        if as_installed:    # a config never edited by the admin stays one that --uninstall may remove
            self.state.recorded["config_sha256"] = sha256(self.files.read(CONFIG))
        self.report.changed(f"ami: added [ami] (account {AMI_USER}, port {port}) to {CONFIG}")

    def install_ami_enabled(self) -> None:
        if self.manager_enabled():
            self.report.ok(f"ami: the manager interface is on in {MANAGER_CONF}")
        elif self.options.enable_ami:
            self.rewrite(MANAGER_CONF, lambda text: ini.with_key(text, "general", "enabled", "yes"))
            if not self.ini_value(MANAGER_CONF, "general", "bindaddr"):
                self.rewrite(MANAGER_CONF, lambda text: ini.with_key(text, "general", "bindaddr", "127.0.0.1"))
            self.report.changed(f"ami: turned the manager interface on in {MANAGER_CONF} (--enable-ami)")
        else:
            self.report.note(f"ami: the manager interface is off in {MANAGER_CONF}: qmt check/status/sweep cannot"
                             f" work; run {self.options.prog}"
                             " --enable-ami to turn it on (127.0.0.1 only)")

    def reload_manager(self) -> None:
        """When Asterisk runs and the account changed: reload the manager."""
        if self.state.ami_changed and asterisk.running():
            asterisk.cli("manager reload")
            self.report.changed(f"asterisk: manager reloaded (account {AMI_USER})")

    # -- the sweep ---------------------------------------------------------------------------
    def install_sweep_timer(self) -> None:
        """qmt sweep --apply every 5 minutes as the asterisk user: a systemd timer
        where systemd runs, else a cron file."""
        if systemd_running():
            self.install_sweep_units()
            return
        cron = "\n".join(("# queue-mobile-toggle (install.sh): remove mobile queue members whose permission is gone",
                          "SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                          f"*/5 * * * * {AST_USER} {SWEEP_COMMAND} >/dev/null")) + "\n"
        self.files.mkdir(os.path.dirname(SWEEP_CRON))
        self.install_file(cron.encode(), SWEEP_CRON, 0o644, "root:root", "sweep")
        self.state.recorded["sweep"] = SWEEP_CRON
        if not (shutil.which("cron") or os.access("/usr/sbin/cron", os.X_OK)):
            self.report.note(f"sweep: cron is not installed, so {SWEEP_CRON} does not run (apt-get install cron)")

    def install_sweep_units(self) -> None:
        service = ("[Unit]\nDescription=queue-mobile-toggle: remove mobile queue members whose permission is gone\n"
                   f"After=asterisk.service\n\n[Service]\nType=oneshot\nUser={AST_USER}\nExecStart={SWEEP_COMMAND}\n")
        timer = ("[Unit]\nDescription=queue-mobile-toggle sweep every 5 minutes\n\n[Timer]\nOnBootSec=5min\n"
                 "OnUnitActiveSec=5min\n\n[Install]\nWantedBy=timers.target\n")
        self.install_file(service.encode(), SWEEP_UNITS + ".service", 0o644, "root:root", "sweep")
        self.install_file(timer.encode(), SWEEP_UNITS + ".timer", 0o644, "root:root", "sweep")
        self.state.recorded["sweep"] = SWEEP_UNITS + ".timer"
        if quiet(["systemctl", "is-enabled", "--quiet", SWEEP_TIMER]) and quiet(
                ["systemctl", "is-active", "--quiet", SWEEP_TIMER]):
            return
        if not (quiet(["systemctl", "daemon-reload"]) and quiet(["systemctl", "enable", "--now", SWEEP_TIMER])):
            raise InstallError(f"sweep: systemctl enable --now {SWEEP_TIMER} failed")
        self.report.changed(f"sweep: {SWEEP_TIMER} enabled")

    # -- the FastAGI server ---------------------------------------------------------------------
    def install_fastagi(self) -> None:
        """After the dialplan reload (the switch is read by the dialplan now loaded);
        the manifest is written again with the unit."""
        self.state.recorded["fastagi_unit"] = FastAgi(self).install(
            self.options.fastagi, self.options.package_changed, self.install_file)

    # -- the manifest, the reloads, the final line ------------------------------------------------
    def write_manifest(self) -> None:
        """What --uninstall removes; rewritten only when different."""
        values = dict(self.state.recorded, include_file=self.state.include_file, backend=self.state.backend)
        text = render(agi_dirs_used(self.manifest().all("agi_dir"), self.state.agi_dir), values).encode()
        if not self.exists(MANIFEST) or self.files.read(MANIFEST) != text:
            self.files.write(MANIFEST, text, Ownership(0o644, 0, 0))

    def reload_dialplan(self) -> None:
        """When Asterisk runs: reload the dialplan if it changed or our context is not loaded."""
        if not asterisk.running():
            self.report.note("asterisk: not running; the dialplan loads when it starts")
            return
        if self.state.dialplan_changed or not asterisk.context_loaded(CONTEXT):
            asterisk.cli("dialplan reload")
            if not asterisk.context_loaded(CONTEXT):
                raise InstallError(f"asterisk: dialplan reloaded but context {CONTEXT} is not loaded"
                                   " (check the Asterisk log)")
            self.report.changed(f"asterisk: dialplan reloaded, context {CONTEXT} loaded")
        else:
            self.report.ok(f"asterisk: context {CONTEXT} loaded")
        running_dir = asterisk.running_agi_dir()
        if running_dir and running_dir != self.state.agi_dir:
            self.report.note(f"asterisk: it looks for AGI scripts in {running_dir}, not {self.state.agi_dir}")

    def report_install(self) -> None:
        if self.report.changes == 0:
            self.report.final("already installed, nothing changed.")
        else:
            self.report.final(f"installed ({self.report.changes} changes). Add numbers to {TABLE};"
                              f" check with: ./{self.options.prog} --check")


def ami_section(secret: str) -> str:
    return (f"; queue-mobile-toggle: the account of the qmt command (install.sh)\n[{AMI_USER}]\nsecret = {secret}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = agent\nwrite = agent\n")


def new_secret() -> str:
    """24 random bytes, base64 without /, + and =."""
    return base64.b64encode(os.urandom(24)).decode().translate({ord(c): None for c in "/+="})


def helper_source() -> str:
    """The text of sqlite_as_owner, run by the asterisk user's python3 -I -c."""
    with open(SQLITE_HELPER, encoding="utf-8") as handle:
        return handle.read()
