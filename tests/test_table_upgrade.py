"""The allowlist table across versions, on SQLite3, MariaDB and PostgreSQL
through their real ODBC drivers: a table made before the optional columns
pin_hash, confirm_answer and shift_window still lets the AGI work, and
sql/upgrade_<backend>.sql, run twice through the DBA's own client (sqlite3,
mysql, psql), adds them, keeps the rows, and leaves a table whose
confirm_answer the AGI follows and whose CHECK refuses anything but 0, 1
or NULL.

The old table is sql/<backend>.sql with the later columns' lines left out;
on the servers it replaces the session's table (tests/dbservers.py), which
the sql/ files put back after each test."""

import os
import re
import subprocess

import pytest

from support import REPO, split_sql, write_config

pytest.register_assert_rewrite("dbservers")
from dbservers import BACKENDS, make_toggle  # noqa: E402

pytest_plugins = ["dbservers"]

NUMBER = "79112223344"
OTHER = "79990001122"
TABLE = "queue_mobile_agents"
REQUIRED = ["number", "queue", "penalty", "member_name", "enabled", "valid_from", "valid_until"]
OPTIONAL = ["pin_hash", "confirm_answer", "shift_window"]
# What an existing installation may have: the table of before pin_hash, or
# of the last release (pin_hash, no confirm_answer).
OLD_TABLES = [
    pytest.param((), id="made-before-pin_hash"),
    pytest.param(("pin_hash",), id="made-before-confirm_answer"),
    pytest.param(("pin_hash", "confirm_answer"), id="made-before-shift_window"),
]
KEPT_PIN_HASH = "a hash the upgrade must keep"
CLIENT_TIMEOUT = 60


# ------------------------------------------------------------ the old table

def old_create_sql(backend, kept):
    """sql/<backend>.sql without the optional columns not in `kept`: their
    lines (and MariaDB's named CHECK on one) left out, as an earlier
    version shipped it."""
    statements = split_sql(os.path.join(REPO, "sql", backend + ".sql"))  # comment lines dropped
    assert len(statements) == 1, statements
    dropped = [column for column in OPTIONAL if column not in kept]
    lines = [line for line in statements[0].splitlines() if line.strip()
             and not any(re.search(r"\b%s\b" % column, line) for column in dropped)]
    closing = max(index for index, line in enumerate(lines) if line.startswith(")"))
    lines[closing - 1] = lines[closing - 1].rstrip().rstrip(",")   # the last item had none
    return "\n".join(lines)


def replace_table(toggle, create_sql):
    toggle.allowlist.execute("DROP TABLE IF EXISTS " + TABLE)
    toggle.allowlist.execute(create_sql)
    if toggle.server is not None:
        toggle.server.apply_grants()   # the AGI's SELECT went with the dropped table


@pytest.fixture
def old_table(request, tmp_path, odbc):
    """old_table(backend, kept): a Toggle whose allowlist is the table of an
    earlier version (the optional columns of `kept` only), with the AGI's
    grant as the DBA gave it then. A server's own table is restored after."""
    made = []

    def make(backend, kept):
        toggle = make_toggle(backend, request, tmp_path, odbc)
        made.append(toggle)
        replace_table(toggle, old_create_sql(backend, kept))
        assert columns(toggle) == REQUIRED + list(kept)
        return toggle

    yield make
    for toggle in made:
        if toggle.server is not None:
            toggle.allowlist.execute("DROP TABLE IF EXISTS " + TABLE)
            toggle.server.restore_table()


# ------------------------------------------------------------ what the table holds

def columns(toggle):
    """The table's columns, in order, as the AGI's SELECT * sees them."""
    connection = toggle.allowlist.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT * FROM %s WHERE 1 = 0" % TABLE)
        return [column[0].lower() for column in cursor.description]
    finally:
        connection.close()


def rows(toggle):
    """Every row as {column: value}, by number and queue."""
    connection = toggle.allowlist.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT * FROM %s ORDER BY number, queue" % TABLE)
        names = [column[0].lower() for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        connection.close()


# The table's definition as each backend tells it: columns with their
# types and every constraint (a CHECK added twice would show).
DEFINITION_SQL = {
    "sqlite": "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '%s'" % TABLE,
    "mariadb": "SHOW CREATE TABLE " + TABLE,
    "postgresql": ("SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute"
                   f" WHERE attrelid = '{TABLE}'::regclass AND attnum > 0 AND NOT attisdropped"
                   " UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
                   f" WHERE conrelid = '{TABLE}'::regclass ORDER BY 1"),
}


def table_state(toggle):
    """(definition, rows): what a second upgrade run must leave as it is."""
    definition = [tuple(row) for row in toggle.allowlist.execute(DEFINITION_SQL[toggle.backend])]
    assert definition, "no definition of %s read" % TABLE
    return definition, rows(toggle)


def add_rows(toggle, kept):
    toggle.allowlist.add(NUMBER, "8008", penalty=3, member_name="Ivan Petrov")
    toggle.allowlist.add(OTHER, "8010", enabled=0)
    if "pin_hash" in kept:   # a PIN set before the upgrade stays
        toggle.allowlist.execute("UPDATE %s SET pin_hash = ? WHERE number = ?" % TABLE, KEPT_PIN_HASH, OTHER)


# ------------------------------------------------------------ the upgrade file

def upgrade(toggle):
    """sql/upgrade_<backend>.sql through the backend's client, as the
    file's header tells the DBA; the CompletedProcess."""
    path = os.path.join(REPO, "sql", "upgrade_%s.sql" % toggle.backend)
    server = toggle.server
    if server is None:
        with open(path, "rb") as stdin:
            return subprocess.run(["sqlite3", toggle.sqlite_path], stdin=stdin, capture_output=True,
                                  text=True, timeout=CLIENT_TIMEOUT)
    if toggle.backend == "mariadb":
        return server.run_client(server.admin_args(server.database), path)
    # admin_args: psql -X -v ON_ERROR_STOP=1 ... -d <database>
    return server.run_client(server.admin_args(server.database) + ["-f", path])


def upgrade_twice(toggle):
    """Both runs; the second must change nothing. SQLite has no ADD COLUMN
    IF NOT EXISTS: its second run fails on each line, naming the column."""
    first = upgrade(toggle)
    if toggle.backend != "sqlite":
        assert first.returncode == 0, first.stderr
    after_first = table_state(toggle)
    second = upgrade(toggle)
    if toggle.backend == "sqlite":
        assert second.returncode != 0
        assert second.stderr.count("duplicate column name") == len(OPTIONAL), second.stderr
        for column in OPTIONAL:
            assert "duplicate column name: %s" % column in second.stderr
    else:
        assert second.returncode == 0, second.stderr
    assert table_state(toggle) == after_first
    return first


def call(toggle, queue="8008"):
    run = toggle.call(NUMBER, queue)
    assert run.exit_code == 0 and not run.killed_by_peer, run.stderr
    assert "Traceback" not in run.stderr
    return run


# ------------------------------------------------------------ tests

def each_old_table(test):
    """A test of this file runs on every backend and every older table."""
    return pytest.mark.parametrize("kept", OLD_TABLES)(pytest.mark.parametrize("backend", BACKENDS)(test))


@each_old_table
def test_table_without_the_new_columns_still_logs_in_with_the_configured_confirm(backend, kept, old_table):
    toggle = old_table(backend, kept)
    add_rows(toggle, kept)
    run = call(toggle)
    assert (run.state, run.get("QMT_REASON"), run.queues) == ("LOGGEDOUT", "permitted", ["8008"])
    assert (run.get("QMT_PENALTY_1"), run.get("QMT_NAME_1")) == ("3", "Ivan Petrov")
    assert run.get("QMT_RING_CONFIRM") == "1"          # [member] confirm defaults to yes
    # The answer follows the config, not a constant: confirm = no turns it off.
    write_config(toggle.config, toggle.connection, toggle.log_file, member="confirm = no\n")
    run = call(toggle)
    assert (run.state, run.get("QMT_RING_CONFIRM")) == ("LOGGEDOUT", "0")


@each_old_table
def test_upgrade_file_run_twice_adds_the_new_columns_and_keeps_the_rows(backend, kept, old_table):
    toggle = old_table(backend, kept)
    add_rows(toggle, kept)
    before = rows(toggle)
    first = upgrade_twice(toggle)
    if backend == "sqlite":
        # A column already there fails its own line only; the others still run.
        assert ("duplicate column name: pin_hash" in first.stderr) == ("pin_hash" in kept), first.stderr
        assert (first.returncode == 0) == ("pin_hash" not in kept), first.stderr
    assert columns(toggle) == REQUIRED + OPTIONAL
    after = rows(toggle)
    assert [{name: row[name] for name in before[0]} for row in after] == before
    assert [row["confirm_answer"] for row in after] == [None, None]
    assert [row["shift_window"] for row in after] == [None, None]
    assert [row["pin_hash"] for row in after] == [None, KEPT_PIN_HASH if kept else None]


@each_old_table
def test_upgraded_table_answers_confirm_by_row_without_new_grants(backend, kept, old_table):
    """confirm_answer 0: connected on answer; NULL: the config's default
    (yes). The AGI's SELECT grant, given before the upgrade, covers the
    new columns."""
    toggle = old_table(backend, kept)
    add_rows(toggle, kept)
    upgrade_twice(toggle)
    toggle.allowlist.execute("UPDATE %s SET confirm_answer = 0 WHERE number = ?" % TABLE, NUMBER)
    run = call(toggle)
    assert (run.state, run.get("QMT_RING_CONFIRM")) == ("LOGGEDOUT", "0")
    toggle.allowlist.execute("UPDATE %s SET confirm_answer = NULL WHERE number = ?" % TABLE, NUMBER)
    run = call(toggle)
    assert (run.state, run.get("QMT_RING_CONFIRM")) == ("LOGGEDOUT", "1")
    if toggle.server is not None:
        toggle.server.assert_select_only()


@each_old_table
def test_upgraded_table_refuses_confirm_answer_2(backend, kept, old_table):
    import pyodbc
    toggle = old_table(backend, kept)
    add_rows(toggle, kept)
    upgrade_twice(toggle)
    for sql, params in (("UPDATE %s SET confirm_answer = 2 WHERE number = ?" % TABLE, (NUMBER,)),
                        ("INSERT INTO %s (number, queue, confirm_answer) VALUES (?, ?, 2)" % TABLE,
                         ("79001112233", "8008"))):
        with pytest.raises(pyodbc.Error) as refused:
            toggle.allowlist.execute(sql, *params)
        assert "constraint" in str(refused.value).lower(), refused.value
    assert [(row["number"], row["confirm_answer"]) for row in rows(toggle)] == [(NUMBER, None), (OTHER, None)]
    for allowed in (1, 0, None):
        toggle.allowlist.execute("UPDATE %s SET confirm_answer = ? WHERE number = ?" % TABLE, allowed, NUMBER)
        assert rows(toggle)[0]["confirm_answer"] == allowed


@each_old_table
def test_upgraded_table_follows_the_shift_window_of_each_row(backend, kept, old_table):
    """shift_window after the upgrade: closed now is outside_shift, a bad
    value is a bad_row (never "always"), NULL and an open window log in."""
    import datetime

    from qmt.shifts import DAYS
    toggle = old_table(backend, kept)
    add_rows(toggle, kept)
    upgrade_twice(toggle)
    write_config(toggle.config, toggle.connection, toggle.log_file, extra="[shifts]\nzone = UTC\n")
    today = datetime.datetime.now(datetime.timezone.utc).weekday()
    for shift, state, reason in (("%s 00:00-24:00" % DAYS[(today + 3) % 7], "DENIED", "outside_shift"),
                                 ("mon-fri 9:00-18:00", "ERROR", "bad_row"),
                                 ("%s 00:00-24:00" % DAYS[today], "LOGGEDOUT", "permitted"),
                                 (None, "LOGGEDOUT", "permitted")):
        toggle.allowlist.execute("UPDATE %s SET shift_window = ? WHERE number = ?" % TABLE, shift, NUMBER)
        run = call(toggle)
        assert (run.state, run.get("QMT_REASON")) == (state, reason), shift
