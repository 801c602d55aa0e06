"""Database faults through the AGI, each backend where the fault applies.

Every fault must end the same way: QUEUESTAT=ERROR within the configured
bound (3 s here, the default) plus a margin for starting Python; one log
line naming the cause with one reason; exit code 0 and no traceback. And a
member of the named queue can still log out, because logout needs no
database."""

import os

import pytest

from support import SQLITE_DRIVER

pytest.register_assert_rewrite("dbservers")
from dbservers import (  # noqa: E402
    BACKENDS,
    DSN,
    POSTGRESQL_DRIVER,
    SERVER_BACKENDS,
    MariaDB,
    PostgreSQL,
    SilentServer,
    closed_port,
    make_toggle,
    require_driver,
    unavailable,
    without_driver,
)

pytest_plugins = ["dbservers"]

NUMBER = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % NUMBER
BOUND = 3
MARGIN = 1.5
SERVER_KINDS = {"mariadb": MariaDB, "postgresql": PostgreSQL}
DRIVERS = {"sqlite": SQLITE_DRIVER, "mariadb": MariaDB.driver, "postgresql": PostgreSQL.driver}


def expect_fault(toggle, reason, fault):
    """Call as a caller who is not a member; the fault must show as ERROR
    with `reason`, in time, on one log line. Then a member of 8008 logs
    out through the same broken database."""
    lines_before = len(toggle.log_lines())
    run = toggle.call(NUMBER, "8008")
    print("FAULT %-28s %-10s reason=%-18s elapsed=%.2fs" % (
        fault, getattr(toggle, "backend", "-"), run.get("QMT_REASON"), run.elapsed))
    assert not run.killed_by_peer, "the script hung: %s" % run.stderr
    assert run.exit_code == 0
    assert "Traceback" not in run.stderr, run.stderr
    assert run.elapsed < BOUND + MARGIN, run.elapsed
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", reason), run.variables
    assert run.get("QAGENT_UNAUTHORIZED") == "0"
    assert run.get("QMT_COUNT") is None
    lines = toggle.log_lines()[lines_before:]
    assert len(lines) == 1, lines
    assert "state=ERROR" in lines[0] and "reason=%s " % reason in lines[0], lines[0]

    toggle.asterisk.queues["8008"].append(IFACE)
    out = toggle.call(NUMBER, "8008")
    assert (out.state, out.get("QMT_REASON"), out.queues) == ("LOGGEDIN", "member", ["8008"])
    assert out.exit_code == 0 and out.elapsed < BOUND, out.elapsed
    assert len(toggle.log_lines()) == lines_before + 2
    toggle.asterisk.queues["8008"].remove(IFACE)
    return run


def point_at(toggle, backend, port, **dsn_extra):
    """Point the toggle's config at a DSN for `backend` on 127.0.0.1:port."""
    require_driver(DRIVERS[backend])
    kind = SERVER_KINDS[backend]()
    toggle.backend = backend
    toggle.odbc.add_dsn("qmt_fault", **kind.dsn_keys(port=port, **dsn_extra))
    toggle.configure("DSN=qmt_fault;UID=qmt_agi;PWD=secret", timeout=BOUND)


# ------------------------------------------------- no server needed at all

@pytest.mark.parametrize("backend", ["mariadb", "postgresql"])
def test_server_down_connection_refused(toggle, backend):
    point_at(toggle, backend, port=closed_port())
    expect_fault(toggle, "db_unreachable", "server down")


def test_server_down_all_queues_logout_through_managed_queues(toggle):
    point_at(toggle, "mariadb", port=closed_port())
    toggle.configure("DSN=qmt_fault;UID=qmt_agi;PWD=secret", timeout=BOUND, managed="8008,8010")
    toggle.asterisk.queues["8010"].append(IFACE)
    run = toggle.call(NUMBER)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8010"])
    assert run.elapsed < BOUND + MARGIN


@pytest.mark.parametrize("backend, dsn_extra", [
    pytest.param("mariadb", {}, id="mariadb"),
    pytest.param("mariadb", {"CONN_TIMEOUT": 2}, id="mariadb-conn_timeout-2"),
    pytest.param("postgresql", {}, id="postgresql"),
])
def test_silent_server_never_answers(toggle, backend, dsn_extra):
    silent = SilentServer()
    try:
        point_at(toggle, backend, port=silent.port, **dsn_extra)
        expect_fault(toggle, "db_timeout", "silent server" + (" CONN_TIMEOUT=2" if dsn_extra else ""))
        assert silent.accepted, "the driver never connected to the listener"
    finally:
        silent.close()


def test_unknown_dsn(toggle):
    toggle.configure("DSN=qmt_no_such_dsn", timeout=BOUND)
    expect_fault(toggle, "db_unknown_dsn", "unknown DSN")


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgresql"])
def test_driver_not_installed(toggle, tmp_path, backend):
    if backend == "sqlite":
        toggle.backend = backend
    else:
        point_at(toggle, backend, port=closed_port())
    toggle.odbc = without_driver(toggle.odbc, DRIVERS[backend], tmp_path / "odbc-without-driver")
    expect_fault(toggle, "db_driver_missing", "driver not installed")


def test_driver_not_installed_named_in_the_connection_string(toggle, tmp_path):
    """No DSN: the connection string names the driver itself."""
    toggle.backend = "postgresql"
    toggle.configure("Driver={%s};Servername=127.0.0.1;Port=%d;Database=x;UID=qmt_agi;PWD=secret"
                     % (POSTGRESQL_DRIVER, closed_port()), timeout=BOUND)
    toggle.odbc = without_driver(toggle.odbc, POSTGRESQL_DRIVER, tmp_path / "odbc-without-driver")
    expect_fault(toggle, "db_driver_missing", "driver not installed (Driver=)")


# ------------------------------------------------- faults of a real database

@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_wrong_password(request, tmp_path, odbc, backend):
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.allowlist.add(NUMBER, "8008")
    if backend == "postgresql" and not toggle.server.checks_passwords():
        unavailable("PostgreSQL lets %s in without its password (pg_hba `trust`; the line for "
                    "+qmt_test_password_auth is missing)" % toggle.server.agi_user)
    toggle.configure(toggle.server.connection(password="not-the-password"), timeout=BOUND)
    expect_fault(toggle, "db_auth_failed", "wrong password")


@pytest.mark.parametrize("backend", BACKENDS)
def test_table_missing(request, tmp_path, odbc, backend):
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.configure(timeout=BOUND)
    if toggle.server is None:
        toggle.allowlist.execute("DROP TABLE queue_mobile_agents")
        expect_fault(toggle, "db_table_missing", "table missing")
        return
    toggle.server.drop_table()
    try:
        expect_fault(toggle, "db_table_missing", "table missing")
    finally:
        toggle.server.restore_table()
    toggle.allowlist.add(NUMBER, "8008")
    assert toggle.call(NUMBER, "8008").state == "LOGGEDOUT"


@pytest.mark.parametrize("backend", BACKENDS)
def test_database_missing(request, tmp_path, odbc, backend):
    """The SQLite file is gone (NoCreat=1 stops a silent empty one), or the
    DSN names a server database that does not exist. MariaDB does not tell
    an account without rights there whether a database exists: it answers
    "Access denied ... to database" (1044), so the reason says that."""
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.configure(timeout=BOUND)
    if toggle.server is None:
        os.remove(toggle.sqlite_path)
    else:
        toggle.odbc.add_dsn(DSN, **toggle.server.dsn_keys(Database=toggle.server.database + "_gone"))
    reason = "db_permission_denied" if backend == "mariadb" else "db_not_found"
    expect_fault(toggle, reason, "database missing")
    if toggle.server is None:
        assert not os.path.exists(toggle.sqlite_path), "the driver created an empty database"


@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_select_grant_missing(request, tmp_path, odbc, backend):
    """The AGI account exists and logs in, but may not read the table."""
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.configure(timeout=BOUND)
    toggle.allowlist.add(NUMBER, "8008")
    toggle.server.revoke_select()
    try:
        expect_fault(toggle, "db_permission_denied", "SELECT grant missing")
    finally:
        toggle.server.apply_grants()
    assert toggle.call(NUMBER, "8008").state == "LOGGEDOUT"


def hold_sqlite_write_lock(path):
    """Another connection holding SQLite's write lock; close() releases it."""
    import pyodbc
    connection = pyodbc.connect("Driver={%s};Database=%s" % (SQLITE_DRIVER, path), autocommit=True)
    connection.execute("BEGIN EXCLUSIVE")
    return connection


@pytest.mark.parametrize("backend, busy_ms", [
    pytest.param("sqlite", 10000, id="sqlite-busy-10s"),
    pytest.param("sqlite", 1000, id="sqlite-busy-1s"),
    pytest.param("mariadb", None, id="mariadb", marks=pytest.mark.servers),
    pytest.param("postgresql", None, id="postgresql", marks=pytest.mark.servers),
])
def test_query_runs_past_the_timeout(request, tmp_path, odbc, backend, busy_ms):
    """A SELECT blocked by a lock another connection holds: SQLite's write
    lock with the driver's busy Timeout longer (10 s) or shorter (1 s) than
    the bound; LOCK TABLES ... WRITE on MariaDB; LOCK TABLE ... ACCESS
    EXCLUSIVE on PostgreSQL."""
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.configure(timeout=BOUND)
    toggle.allowlist.add(NUMBER, "8008")
    if toggle.server is None:
        toggle.set_sqlite_busy_timeout(busy_ms)
        lock = hold_sqlite_write_lock(toggle.sqlite_path)
    else:
        lock = toggle.server.hold_table_lock()
    try:
        expect_fault(toggle, "db_timeout", "query past timeout" + (" busy=%dms" % busy_ms if busy_ms else ""))
    finally:
        lock.close()  # ends the holder's session, and with it the lock
    # The lock was the only trouble: without it the caller gets in.
    assert toggle.call(NUMBER, "8008").state == "LOGGEDOUT"
