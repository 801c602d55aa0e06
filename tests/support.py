"""What the unit and AGI-level tests share, beside their fixtures (which
are in conftest.py): a private ODBC set-up with the real drivers, the
allowlist written through them, the toggle's config file, and Toggle, one
AGI-level test's allowlist, config and fake Asterisk."""

import datetime
import os
import re
import shutil

import pytest

from fake_ami import FakeAmi
from fake_asterisk import FakeAsterisk

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

SQLITE_DRIVER = "SQLite3"
SYSTEM_ODBCINST = "/etc/odbcinst.ini"
RING_INTERFACE = "Local/{number}@qmt-ring/n"
# The way Toggles made now run the toggle: None, the classic script over
# pipes; a FastAgiServers, `qmt serve` over FastAGI (conftest's agi_mode).
FASTAGI = [None]
# The server's own lines (not a call's): Toggle.log_lines() leaves them out,
# so that a test reads the same decision lines in both modes.
SERVER_LINE = re.compile(r"queue-mobile-toggle: fastagi (?:serving on|stopped)\b")
OLD_INTERFACE = "Local/{number}@outbound-allroutes/n"


def utc_text(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)  # noqa: UP017 (3.11+; we run on 3.9)


def split_sql(path):
    """The statements of a schema file (none of ours has ';' in a string)."""
    with open(path, encoding="utf-8") as handle:
        text = "\n".join(line for line in handle if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in text.split(";") if statement.strip()]


class OdbcHome:
    """A private ODBCSYSINI folder: odbcinst.ini copied from the system
    (the real drivers) and an odbc.ini of our own DSNs."""

    def __init__(self, folder):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        if not os.path.exists(SYSTEM_ODBCINST):
            pytest.fail(f"unixODBC is not installed ({SYSTEM_ODBCINST} missing): run .ci/run or apt-get install "
                        "unixodbc libsqliteodbc")
        shutil.copy(SYSTEM_ODBCINST, os.path.join(self.folder, "odbcinst.ini"))
        self.dsns = {}
        self._write()

    def add_dsn(self, name, **keys):
        self.dsns[name] = keys
        self._write()

    def _write(self):
        with open(os.path.join(self.folder, "odbc.ini"), "w", encoding="utf-8") as handle:
            for name, keys in self.dsns.items():
                handle.write(f"[{name}]\n")
                for key, value in keys.items():
                    handle.write(f"{key} = {value}\n")
                handle.write("\n")

    @property
    def env(self):
        return {"ODBCSYSINI": self.folder, "ODBCINI": os.path.join(self.folder, "odbc.ini")}


class Allowlist:
    """Rows of queue_mobile_agents, written through the real ODBC driver."""

    def __init__(self, connection_string, env):
        self.connection_string = connection_string
        self.env = env

    def connect(self):
        import pyodbc
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            return pyodbc.connect(self.connection_string, autocommit=True)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def execute(self, sql, *params):
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, *params)
            return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def add(self, number, queue, penalty=0, member_name=None, enabled=1,
            valid_from=None, valid_until=None):
        self.execute(
            "INSERT INTO queue_mobile_agents (number, queue, penalty, member_name, enabled,"
            " valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?)",
            number, queue, penalty, member_name, enabled,
            utc_text(valid_from) if isinstance(valid_from, datetime.datetime) else valid_from,
            utc_text(valid_until) if isinstance(valid_until, datetime.datetime) else valid_until)

    def clear(self):
        self.execute("DELETE FROM queue_mobile_agents")


def write_config(path, connection, log_file, timeout=3, managed="", extra="", member=""):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            f"[database]\nconnection = {connection}\ntimeout = {timeout}\n\n"
            f"[member]\nroute = outbound-allroutes\n{member}\n"
            "[numbers]\ncountry_code = 7\ntrunk_prefix = 8\nnational_length = 10\n\n"
            f"[queues]\nmanaged = {managed}\n\n"
            f"[log]\ntarget = {log_file}\n{extra}")
    return str(path)


class Toggle:
    """Everything one AGI-level test needs: allowlist, config, fake Asterisk."""

    def __init__(self, tmp_path, odbc, allowlist, connection, ami=None):
        self.tmp_path = tmp_path
        self.odbc = odbc
        self.allowlist = allowlist
        self.log_file = str(tmp_path / "toggle.log")
        self.asterisk = FakeAsterisk({"8008": [], "8010": []}, fastagi=FASTAGI[0])
        self.ami = ami or FakeAmi()
        self.ami.asterisk = self.asterisk
        self.config = write_config(tmp_path / "qmt.conf", connection, self.log_file, extra=self.ami.config())

    def configure(self, connection=None, timeout=3, managed="", extra=""):
        ami = "" if "[ami]" in extra else self.ami.config()      # a test's own [ami] wins
        write_config(self.config, connection or "DSN=qmt_test", self.log_file, timeout, managed, ami + extra)

    @property
    def env(self):
        env = dict(self.odbc.env)
        env["QMT_CONFIG"] = self.config
        return env

    def call(self, callerid, queue=None, **kwargs):
        return self.asterisk.run(callerid, arg=queue, env=self.env, **kwargs)

    def log_lines(self):
        if not os.path.exists(self.log_file):
            return []
        with open(self.log_file, encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle if not SERVER_LINE.search(line)]

    def member(self, queue, number):
        return RING_INTERFACE.format(number=number) in self.asterisk.queues.get(queue, [])

    def act_as_dialplan(self, run):
        """Apply a run's answer to the fake queues as our dialplan would."""
        interface = run.get("QMT_INTERFACE")
        for index, queue in enumerate(run.queues, 1):
            members = self.asterisk.queues[queue]
            if run.state == "LOGGEDOUT" and interface not in members:
                members.append(interface)
            elif run.state == "LOGGEDIN":
                leaving = run.get(f"QMT_IFACE_{index}")
                members[:] = [m for m in members if m.lower() != leaving.lower()]
            elif run.state == "PAUSED":
                self.asterisk.paused.discard((queue, run.get(f"QMT_IFACE_{index}")))


def make_sqlite_allowlist(odbc, db_path):
    odbc.add_dsn("qmt_test", Driver=SQLITE_DRIVER, Database=str(db_path), NoCreat=1, Timeout=1000)
    # The tests write through a DSN-less string: unixODBC caches odbc.ini per
    # process, so "DSN=qmt_test" could still mean an earlier test's file.
    builder = Allowlist(f"Driver={SQLITE_DRIVER};Database={db_path}", odbc.env)
    for statement in split_sql(os.path.join(REPO, "sql", "sqlite.sql")):
        builder.execute(statement)
    return builder
