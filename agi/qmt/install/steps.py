"""What the install, --check and --uninstall modes share: the run's options,
its safe files and report, and where things are (agi-bin, the #include
file, the manager account, the allowlist's backend and file)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass

from . import asterisk, ini
from .connection import any_dsn, config_connection, plain_dsn
from .facts import (
    AMI_OWN_FILE,
    AST_USER,
    ASTERISK_CONF,
    ASTETC,
    CONFIG,
    EXTENSIONS,
    EXTENSIONS_CUSTOM,
    INCLUDE_RE,
    MANAGER_CONF,
    MANAGER_CUSTOM,
    MANAGER_D_FILE,
    MANIFEST,
    ODBC_INI,
    ODBCINST_INI,
    PG_DRIVER,
    SQLITE_DB,
    STOCK_AGI_DIR,
)
from .files import SafeFiles
from .manifest import Manifest
from .report import InstallError, Report

INCLUDES_MANAGER_D = re.compile(r"^\s*#(try)?include\s+\"?manager\.d/\*\.conf\"?")
INCLUDES_MANAGER_CUSTOM = re.compile(r"^\s*#(try)?include\s+\"?manager_custom\.conf\"?")
ASTAGIDIR = re.compile(r"\s*astagidir\s*=>?")
COMPILED_AGI_DIR = re.compile(rb"/[A-Za-z0-9_./-]*/agi-bin")
YES = re.compile(r"([Yy]es|[Tt]rue|1|[Oo]n)\Z")
LEADING_NUMBER = re.compile(r"[0-9]+")


@dataclass
class Options:
    """install.sh's options, as it checked them, and what it knows already."""
    src: str = "."
    prog: str = "install.sh"
    db: str = ""
    dsn: str = ""
    agi_dir: str = ""
    enable_ami: bool = False
    purge: bool = False
    changes: int = 0          # what install.sh changed before (packages, venv...)
    venv_ok: bool = False     # --check: install.sh's verdict on the venv
    pins: str = ""            # the pinned packages, as install.sh names them
    fastagi: str = ""         # on (--fastagi), off (--no-fastagi), "" (the mode as it is)
    package_changed: bool = False   # install.sh reinstalled the qmt package in the venv


class Run:
    """One run of a mode: its options, files and report, and the lookups every mode makes."""

    def __init__(self, options: Options, files: SafeFiles | None = None, report: Report | None = None) -> None:
        self.options = options
        self.files = files or SafeFiles(asterisk_uid(), AST_USER)
        self.report = report or Report(options.changes)

    # -- files -------------------------------------------------------------
    def text(self, path: str) -> str:
        return self.files.read_text(path)

    def exists(self, path: str) -> bool:
        """path is a regular file root may touch (an unsafe one stops the run)."""
        return self.files.status(path) is not None

    def refuse_unsafe(self, *paths: str) -> None:
        for path in paths:
            if path:
                self.files.check(path)

    def manifest(self) -> Manifest:
        return Manifest(self.text(MANIFEST))

    def ini_value(self, path: str, section: str, key: str) -> str:
        return ini.value(self.text(path), section, key)

    def source(self, relative: str) -> bytes:
        """A file of the project (root's own source tree)."""
        with open(os.path.join(self.options.src, relative), "rb") as handle:
            return handle.read()

    # -- the config and the allowlist ----------------------------------------
    def config_connection(self) -> str | None:
        """The config's connection string (the default when unset); None if it does not parse."""
        return config_connection(self.files.read(CONFIG))

    def config_dsn(self) -> str:
        """The DSN of a config whose connection is exactly DSN=NAME, else ""."""
        return plain_dsn(self.config_connection() or "")

    def dsn_defined(self, dsn: str) -> bool:
        return ini.has_section(self.text(ODBC_INI), dsn)

    def dsn_value(self, dsn: str, key: str) -> str:
        return self.ini_value(ODBC_INI, dsn, key)

    def sqlite_db_of(self, dsn: str) -> str:
        """The file a DSN's Database names, else the default."""
        return self.dsn_value(dsn, "Database") or SQLITE_DB

    def backend(self) -> str:
        """--db, else what an earlier install recorded, else the one the driver of
        the config's DSN names; sqlite by default."""
        chosen = self.options.db or self.manifest().get("backend")
        if not chosen and self.exists(CONFIG):
            driver = self.dsn_value(any_dsn(self.config_connection() or ""), "Driver").lower()
            if "maria" in driver or "mysql" in driver:
                chosen = "mariadb"
            elif "postgre" in driver:
                chosen = "postgresql"
        return chosen or "sqlite"

    def psqlodbc_commlog(self) -> str:
        """psqlODBC's CommLog in /etc/odbcinst.ini: when on, it writes a
        /tmp/psqlodbc_*.log for every connection, whatever the DSN says."""
        return self.ini_value(ODBCINST_INI, PG_DRIVER, "CommLog")

    def psqlodbc_commlog_on(self) -> bool:
        """The driver reads the value with atoi(): on when > 0."""
        found = LEADING_NUMBER.match(self.psqlodbc_commlog())
        return found is not None and int(found.group(0)) > 0

    def has_pg_driver(self) -> bool:
        return ini.has_section(self.text(ODBCINST_INI), PG_DRIVER)

    # -- agi-bin ---------------------------------------------------------------
    def resolve_agi_dir(self) -> tuple[str, str]:
        """Where Asterisk looks for AGI scripts, and who says so, the way Asterisk
        resolves it: the running Asterisk; else asterisk.conf's astagidir if its
        [directories] section is not a template "(!)"; else the binary's
        compiled-in default."""
        if self.options.agi_dir:
            return self.options.agi_dir, "--agi-dir"
        if asterisk.running():
            found = asterisk.running_agi_dir()
            if found:
                return found, "the running Asterisk"
        found = astagidir(self.text(ASTERISK_CONF))
        if found:
            return found, ASTERISK_CONF + " [directories]"
        binary = shutil.which("asterisk")
        if binary:
            found = compiled_agi_dir(binary)
            if found:
                return found, "the default compiled into " + binary
        return STOCK_AGI_DIR, "Asterisk's stock default"

    def installed_agi_dir(self) -> str:
        """The agi-bin the manifest recorded last, else where Asterisk would look."""
        return self.manifest().get("agi_dir") or self.resolve_agi_dir()[0]

    # -- the dialplan's #include -------------------------------------------------
    def files_with_include(self) -> list[str]:
        """The files that have our #include line."""
        return [path for path in (EXTENSIONS, EXTENSIONS_CUSTOM)
                if ini.has_line(self.text(path), INCLUDE_RE.match)]

    def include_target(self) -> str:
        """The file that has our #include line, else the one it belongs in."""
        have = self.files_with_include()
        return have[0] if have else include_file()

    # -- the manager account ------------------------------------------------------
    def ami_account_file(self) -> str:
        """Where the account goes: Debian's manager.conf reads manager.d/*.conf,
        FreePBX's reads manager_custom.conf; anywhere else manager.conf gets one
        #include line for a file of ours."""
        text = self.text(MANAGER_CONF)
        if ini.has_line(text, INCLUDES_MANAGER_D.match):
            return MANAGER_D_FILE
        if ini.has_line(text, INCLUDES_MANAGER_CUSTOM.match):
            return MANAGER_CUSTOM
        return ASTETC + "/" + AMI_OWN_FILE

    def manager_enabled(self) -> bool:
        return bool(YES.match(self.ini_value(MANAGER_CONF, "general", "enabled")))

    # -- the asterisk user ----------------------------------------------------------
    def as_asterisk(self, *command: str, stdin: bytes = b"", env: dict[str, str] | None = None,
                    timeout: float | None = None, merged: bool = False) -> subprocess.CompletedProcess[bytes]:
        """command run as the asterisk user (util-linux runuser, always on Debian);
        merged: its stderr goes with its stdout."""
        wrapped = ["runuser", "-u", AST_USER, "--"]
        if timeout is not None:
            wrapped += ["timeout", str(int(timeout))]
        return subprocess.run(wrapped + list(command), input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merged else subprocess.PIPE, env=env)

    def as_asterisk_ok(self, *command: str) -> bool:
        return self.as_asterisk(*command).returncode == 0


def quiet(command: list[str]) -> bool:
    """command succeeded; its output is not ours to show."""
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def systemd_running() -> bool:
    """systemd is PID 1 and systemctl is there (not in a container or chroot)."""
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def asterisk_uid() -> int:
    try:
        return pwd.getpwnam(AST_USER).pw_uid
    except KeyError:
        raise InstallError(f"no '{AST_USER}' user: install Asterisk first") from None


def include_file() -> str:
    """FreePBX keeps admin dialplan in extensions_custom.conf (it rewrites the rest)."""
    if any(os.path.isfile(p) for p in ("/etc/freepbx.conf", "/etc/amportal.conf", EXTENSIONS_CUSTOM)):
        return EXTENSIONS_CUSTOM
    return EXTENSIONS


def astagidir(text: str) -> str:
    """astagidir of asterisk.conf's [directories], unless that section is a template "(!)"."""
    in_directories = False
    for line in ini.split_lines(text):
        if ini.HEADER.match(line):
            head = ini.body(line).lstrip()
            rest = head[len("[directories]"):].split(";")[0] if head.startswith("[directories]") else None
            in_directories = rest is not None and not ("(" in rest and "!" in rest)
            continue
        if in_directories and ASTAGIDIR.match(line):
            found = re.sub(r"^[^=]*=>?\s*", "", ini.body(line), count=1)
            return re.sub(r"\s*;.*$", "", found).rstrip()
    return ""


def compiled_agi_dir(binary: str) -> str:
    """The first */agi-bin path in the asterisk binary."""
    try:
        with open(binary, "rb") as handle:
            found = COMPILED_AGI_DIR.search(handle.read())
    except OSError:
        return ""
    return found.group(0).decode("ascii") if found else ""
