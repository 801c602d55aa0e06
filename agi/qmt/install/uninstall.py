"""The --uninstall mode: what an install added goes, the admin's data stays.

The manifest says what was added (every agi-bin used, the DSN, the SQLite
file, the config as installed); without one, the usual places are looked
at. The allowlist and an edited config stay unless --purge.
"""

from __future__ import annotations

import os
import shutil

from . import asterisk, ini
from .facts import (
    AMI_INCLUDE_LINE,
    AMI_USER,
    ASTETC,
    CONFIG,
    CONTEXT,
    DEFAULT_DSN,
    DIALPLAN,
    DSN_DESCRIPTION,
    FASTAGI_FAMILY,
    INCLUDE_LINE,
    INCLUDE_RE,
    MANAGER_CONF,
    MANAGER_CUSTOM,
    MANIFEST,
    ODBC_INI,
    PREFIX,
    QMT_LINK,
    READ_FILES,
    SCRIPT,
    SQLITE_DB,
    SWEEP_CRON,
    SWEEP_TIMER,
    SWEEP_UNITS,
    VENV,
)
from .fastagi import FastAgi
from .install import quiet, sha256
from .manifest import agi_dirs_used
from .steps import Run

SQLITE_SIDE_FILES = ("", "-journal", "-wal", "-shm")
# astdb families of ours: the ring path's, the PIN lockouts, the FastAGI switch.
RING_FAMILIES = ("qmt-ring", "qmt-pin", FASTAGI_FAMILY)


class Uninstall(Run):
    """The removal steps, in the order they print."""

    def uninstall(self) -> int:
        manifest = self.manifest()
        current = self.installed_agi_dir()
        dirs = agi_dirs_used(manifest.all("agi_dir"), current)
        db = manifest.get("sqlite_db") or SQLITE_DB
        self.refuse_unsafe(*READ_FILES)
        self.refuse_unsafe(ASTETC + "/" + DIALPLAN, manifest.get("ami_file"))
        self.refuse_unsafe(*(db + side for side in SQLITE_SIDE_FILES))
        self.refuse_unsafe(*(folder + "/" + SCRIPT for folder in dirs))
        if not self.exists(MANIFEST):
            self.report.note(f"no {MANIFEST}: removing what is found in the usual places")
        for folder in dirs:
            self.remove_agi_script(folder)
        self.remove_sweep_timer()
        FastAgi(self).remove_unit()
        self.remove_ami_account(manifest.get("ami_file"))
        self.remove_qmt_command()
        self.remove_include_lines()
        self.remove_dialplan_file()
        self.remove_sqlite_dsn(manifest.get("dsn_added"))
        self.remove_config(manifest.get("config_sha256"))
        self.remove_sqlite_allowlist(db)
        self.remove_venv()              # and the manifest with it
        self.unload_dialplan()
        self.remove_ring_leftovers()
        return self.report_uninstall()

    def rewrite(self, path: str, text: str) -> None:
        self.files.write(path, text.encode("utf-8", "surrogateescape"))

    def remove_agi_script(self, folder: str) -> None:
        script = folder + "/" + SCRIPT
        if not self.exists(script):
            self.report.ok("script: none in " + folder)
            return
        first = self.text(script).split("\n", 1)[0]
        if first in (f"#!{VENV}/bin/python3", f"#!{VENV}/bin/python3 -I"):   # an older one had no -I
            self.files.remove(script)
            self.report.changed("script: removed " + script)
        else:
            self.report.note(f"script: {script} was not installed by {self.options.prog} (other shebang): left")

    def remove_sweep_timer(self) -> None:
        if os.path.isfile(SWEEP_UNITS + ".timer"):
            quiet(["systemctl", "disable", "--now", SWEEP_TIMER])
            for unit in (SWEEP_UNITS + ".timer", SWEEP_UNITS + ".service"):
                remove_if_there(unit)
            quiet(["systemctl", "daemon-reload"])
            self.report.changed("sweep: removed " + SWEEP_TIMER)
        if os.path.isfile(SWEEP_CRON):
            remove_if_there(SWEEP_CRON)
            self.report.changed("sweep: removed " + SWEEP_CRON)

    def remove_ami_account(self, file: str) -> None:
        """Our section (FreePBX's shared file) or our file, and the #include line
        install.sh added for it."""
        removed = False
        if file and self.exists(file):
            if file == MANAGER_CUSTOM:
                self.rewrite(file, ini.without_section(self.text(file), AMI_USER))
            else:
                self.files.remove(file)
            self.report.changed(f"ami: removed the account {AMI_USER} ({file})")
            removed = True
        manager = self.text(MANAGER_CONF)
        if ini.has_line(manager, lambda line: line == AMI_INCLUDE_LINE):
            self.rewrite(MANAGER_CONF, ini.without_lines(manager, lambda line: line == AMI_INCLUDE_LINE))
            self.report.changed(f"ami: removed '{AMI_INCLUDE_LINE}' from {MANAGER_CONF}")
        if removed and asterisk.running():
            asterisk.cli("manager reload")
            self.report.changed(f"asterisk: manager reloaded (account {AMI_USER})")

    def remove_qmt_command(self) -> None:
        if link_target(QMT_LINK) == VENV + "/bin/qmt":
            remove_if_there(QMT_LINK)
            self.report.changed("command: removed " + QMT_LINK)

    def remove_include_lines(self) -> None:
        for path in self.files_with_include():
            self.rewrite(path, ini.without_lines(self.text(path), INCLUDE_RE.match))
            self.report.changed(f"include: removed '{INCLUDE_LINE}' from {path}")

    def remove_dialplan_file(self) -> None:
        dialplan = ASTETC + "/" + DIALPLAN
        if self.exists(dialplan):
            self.files.remove(dialplan)
            self.report.changed("dialplan: removed " + dialplan)
        else:
            self.report.ok("dialplan: no " + dialplan)

    def remove_sqlite_dsn(self, dsn: str) -> None:
        """The DSN install.sh added (from the manifest; without one, the default DSN
        if its description says we added it)."""
        if not dsn and self.dsn_defined(DEFAULT_DSN) and \
                self.dsn_value(DEFAULT_DSN, "Description") == DSN_DESCRIPTION:
            dsn = DEFAULT_DSN
        if dsn and self.dsn_defined(dsn):
            self.rewrite(ODBC_INI, ini.without_section(self.text(ODBC_INI), dsn))
            self.report.changed(f"dsn: removed {dsn} from {ODBC_INI}")
        else:
            self.report.ok("dsn: nothing of ours in " + ODBC_INI)

    def remove_config(self, installed_sha: str) -> None:
        """The config if --purge, or if it is as installed."""
        if not self.exists(CONFIG):
            self.report.ok("config: none")
        elif self.options.purge:
            self.files.remove(CONFIG)
            self.report.changed(f"config: removed {CONFIG} (--purge)")
        elif installed_sha and sha256(self.files.read(CONFIG)) == installed_sha:
            self.files.remove(CONFIG)
            self.report.changed(f"config: removed {CONFIG} (as installed, never edited)")
        else:
            self.report.note(f"config: {CONFIG} kept (edited by you or not ours); --purge removes it")

    def remove_sqlite_allowlist(self, db: str) -> None:
        """Only with --purge: it holds the admin's numbers."""
        if not self.exists(db):
            return
        if self.options.purge:
            for side in SQLITE_SIDE_FILES:
                self.files.remove(db + side)
            self.report.changed(f"allowlist: deleted {db} (--purge)")
        else:
            self.report.note(f"allowlist: {db} kept with its numbers; --purge deletes it")

    def remove_venv(self) -> None:
        if os.path.isdir(PREFIX):
            shutil.rmtree(PREFIX)
            self.report.changed("venv: removed " + PREFIX)
        else:
            self.report.ok("venv: no " + PREFIX)

    def unload_dialplan(self) -> None:
        """When Asterisk runs and still has our context: reload the dialplan without it."""
        if not asterisk.running():
            return
        if asterisk.context_loaded(CONTEXT):
            asterisk.cli("dialplan reload")
            self.report.changed("asterisk: dialplan reloaded")
        if asterisk.context_loaded(CONTEXT):
            self.report.note(f"asterisk: context {CONTEXT} is still loaded: it is defined elsewhere too")

    def remove_ring_leftovers(self) -> None:
        """A login adds the queue member Local/<number>@qmt-ring/n, in any queue; the
        ring path keeps its settings and missed calls in astdb family qmt-ring, the
        PIN lockouts in qmt-pin. They go when Asterisk runs; else a note."""
        if not asterisk.running():
            self.report.note(
                "asterisk: not running, so its queues may still have ring path members (Local/<number>@qmt-ring/n)"
                " and its astdb the families qmt-ring, qmt-pin and qmt-fastagi; once it runs, run"
                f" {self.options.prog} --uninstall again, or:"
                " asterisk -rx 'queue show' to find them, asterisk -rx 'queue remove member"
                " Local/<number>@qmt-ring/n from <queue>' for each, "
                + ", ".join(f"asterisk -rx 'database deltree {family}'" for family in RING_FAMILIES))
            return
        before = self.report.changes
        self.remove_ring_members()
        for family in RING_FAMILIES:
            self.remove_astdb_family(family)
        if self.report.changes == before:
            self.report.ok("asterisk: no ring path member and no astdb family " + ", ".join(RING_FAMILIES))

    def remove_ring_members(self) -> None:
        for queue, member in asterisk.ring_members(asterisk.cli("queue show")):
            answer = asterisk.cli(f"queue remove member {member} from {queue}")
            if "Removed interface" in answer:
                self.report.changed(f"asterisk: removed the ring path's member {member} from queue {queue}")
            else:
                last = answer.rstrip("\n").rsplit("\n", 1)[-1]
                self.report.note(f"asterisk: could not remove {member} from queue {queue}: {last}")

    def remove_astdb_family(self, family: str) -> None:
        keys = asterisk.deleted_keys(asterisk.cli("database deltree " + family))
        if keys:
            self.report.changed(f"asterisk: removed astdb family {family} ({keys} keys)")

    def report_uninstall(self) -> int:
        if self.report.changes == 0:
            self.report.final("nothing to remove, nothing changed.")
        else:
            self.report.final(f"uninstalled ({self.report.changes} changes).")
        return 0


def link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def remove_if_there(path: str) -> None:
    """A root-owned path in a root-only folder (systemd's, cron's, /usr/local/sbin)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
