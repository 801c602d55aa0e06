"""The --check mode: one [PASS] or [FAIL] line a check, exit 1 on any failure.

It changes nothing. The files it reads, and those qmt doctor reads as the
asterisk user (a FIFO would stall it), are refused first as by an install,
so that --check never blocks.
"""

from __future__ import annotations

import os

from . import asterisk
from .connection import any_dsn
from .facts import (
    AST_USER,
    ASTETC,
    CONFIG,
    CONTEXT,
    DIALPLAN,
    INCLUDE_LINE,
    ODBC_INI,
    ODBCINST_INI,
    PG_DRIVER,
    READ_FILES,
    SCRIPT,
    SHEBANG,
    VENV,
)
from .fastagi import FastAgi
from .files import mode_and_owner
from .steps import Run

COMPILES_AND_IMPORTS = ('import sys; compile(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1], "exec");'
                        ' import asterisk.agi, pyodbc, qmt.toggle')


class Check(Run):
    """The checks, in the order they print."""

    def check(self) -> int:
        self.agi_dir = self.installed_agi_dir()
        self.refuse_unsafe(*READ_FILES)
        self.refuse_unsafe(self.agi_dir + "/" + SCRIPT, ASTETC + "/" + DIALPLAN, self.manifest().get("sqlite_db"))
        self.check_agi_script()
        self.check_venv()
        connection = self.check_config()
        if connection is not None:
            self.check_dsn(connection)
            self.check_with_doctor()
        self.check_psqlodbc_commlog()
        self.check_dialplan()
        self.check_asterisk()
        FastAgi(self).check()
        return self.report_check()

    def check_agi_script(self) -> None:
        """The script and its virtual environment, as the asterisk user sees them."""
        script = self.agi_dir + "/" + SCRIPT
        st = self.files.status(script)
        if st is None:
            self.report.failed(f"script: {script} is missing")
            return
        shebang = self.text(script).split("\n", 1)[0]
        python = VENV + "/bin/python3"
        if shebang != SHEBANG:
            self.report.failed(f"script: {script} starts with '{shebang}', not {SHEBANG}")
        elif not self.as_asterisk_ok("test", "-x", script):
            self.report.failed(f"script: {AST_USER} cannot run {script} ({mode_and_owner(st)})")
        elif self.as_asterisk_ok("test", "-w", script):
            self.report.failed(f"script: {AST_USER} can change {script} ({mode_and_owner(st)});"
                               f" want 750 root:{AST_USER}")
        elif self.as_asterisk(python, "-I", "-c", COMPILES_AND_IMPORTS, script, timeout=30).returncode != 0:
            self.report.failed(f"script: {python} cannot compile it or import asterisk.agi/pyodbc/qmt as {AST_USER}")
        else:
            self.report.passed(f"script: {script} runs under {python} ({mode_and_owner(st)})")

    def check_venv(self) -> None:
        if self.options.venv_ok:
            self.report.passed("venv: " + self.options.pins)
        else:
            self.report.failed(f"venv: {VENV} lacks {self.options.pins} (run {self.options.prog} again)")

    def check_config(self) -> str | None:
        """The config, readable by asterisk and nobody else: its connection string, None if unusable."""
        st = self.files.status(CONFIG)
        if st is None:
            self.report.failed(f"config: {CONFIG} is missing")
            return None
        if not self.as_asterisk_ok("test", "-r", CONFIG):
            self.report.failed(f"config: {AST_USER} cannot read {CONFIG} ({mode_and_owner(st)})")
            return None
        connection = self.config_connection()
        if connection is None:
            self.report.failed(f"config: {CONFIG} does not parse")
        elif st.st_mode & 0o007:
            mode = mode_and_owner(st).split()[0]
            self.report.failed(f"config: {CONFIG} is readable by others ({mode}); chmod o-rwx it")
        else:
            self.report.passed(f"config: {CONFIG} ({mode_and_owner(st)})")
        return connection

    def check_dsn(self, connection: str) -> None:
        """The DSN the config names, if it names one, in /etc/odbc.ini."""
        dsn = any_dsn(connection)
        if not dsn:
            return
        if not self.dsn_defined(dsn):
            self.report.failed(f"dsn: {dsn} is not defined in {ODBC_INI}")
            return
        db = self.dsn_value(dsn, "Database")
        database = ", database " + db if db else ""
        self.report.passed(f"dsn: {dsn} in {ODBC_INI}, driver {self.dsn_value(dsn, 'Driver')}{database}")

    def check_with_doctor(self) -> None:
        """qmt doctor, as the asterisk user: the config, the allowlist table read with
        the script's own code, the manager account, the ring path, the queues' ring
        timeouts, the sweep timer. Its lines are ours; a failure to run it at all is one more."""
        done = self.as_asterisk(VENV + "/bin/qmt", "doctor", env=dict(os.environ, QMT_CONFIG=CONFIG), timeout=30,
                                merged=True)
        output = done.stdout.decode("utf-8", "replace")     # its FAIL lines say why
        for line in output.splitlines():
            if line.startswith(("[PASS]", "[WARN]")):
                self.report.verbatim(line)
            elif line.startswith("[FAIL]"):
                self.report.verbatim(line)
                self.report.fails += 1
            elif line:
                self.report.failed("doctor: " + line)

    def check_psqlodbc_commlog(self) -> None:
        """PostgreSQL backend only: the driver must not log every call to /tmp."""
        if self.backend() != "postgresql" or not self.has_pg_driver():
            return
        where = f"[{PG_DRIVER}] of {ODBCINST_INI}"
        if self.psqlodbc_commlog_on():
            self.report.failed(f"odbcinst: CommLog={self.psqlodbc_commlog()} in {where}: a /tmp/psqlodbc_*.log file"
                               f" for every call (run {self.options.prog} again)")
        else:
            self.report.passed("odbcinst: CommLog is off in " + where)

    def check_dialplan(self) -> None:
        dialplan = ASTETC + "/" + DIALPLAN
        if self.exists(dialplan):
            self.report.passed("dialplan: " + dialplan)
        else:
            self.report.failed(f"dialplan: {dialplan} is missing")
        have = self.files_with_include()
        if have:
            self.report.passed(f"include: '{INCLUDE_LINE}' in {' '.join(have)}")
        else:
            self.report.failed(f"include: '{INCLUDE_LINE}' is in neither extensions.conf nor extensions_custom.conf")

    def check_asterisk(self) -> None:
        if not asterisk.running():
            self.report.failed("asterisk: not running (or its control socket is not reachable); dialplan not checked")
            return
        if asterisk.context_loaded(CONTEXT):
            self.report.passed(f"asterisk: context {CONTEXT} loaded")
        else:
            self.report.failed(f"asterisk: context {CONTEXT} is not loaded (dialplan reload?)")
        if asterisk.module_loaded(asterisk.cli("module show like res_agi.so"), "res_agi.so"):
            self.report.passed("asterisk: res_agi loaded")
        else:
            self.report.failed("asterisk: res_agi is not loaded")
        running_dir = asterisk.running_agi_dir()
        if running_dir == self.agi_dir:
            self.report.passed("asterisk: looks for AGI scripts in " + self.agi_dir)
        else:
            self.report.failed(f"asterisk: looks for AGI scripts in {running_dir or '?'},"
                               f" the script is in {self.agi_dir}")

    def report_check(self) -> int:
        if self.report.fails == 0:
            self.report.final("check passed.")
            return 0
        self.report.final(f"check FAILED ({self.report.fails} problems).")
        return 1
