"""The allowlist through the AGI, the same tests on every backend: SQLite3
(embedded), MariaDB and PostgreSQL, each through a DSN and its real ODBC
driver; on the servers the AGI connects as the SELECT-only account that
sql/grant_<backend>.sql creates."""

import datetime
import os

import pytest

from support import REPO, split_sql, utc_now

pytest.register_assert_rewrite("dbservers")
from dbservers import BACKENDS, MariaDB, PostgreSQL, make_toggle  # noqa: E402

pytest_plugins = ["dbservers"]

NUMBER = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % NUMBER
NEAR = datetime.timedelta(seconds=90)
# POSIX zones far from UTC on both sides (no tzdata needed): the script
# must judge validity in UTC whatever the PBX's local zone.
EAST_TZ, WEST_TZ = "XXX-10", "YYY+5"


def one_new_line(toggle, count):
    lines = toggle.log_lines()
    assert len(lines) == count, lines
    return lines[-1]


def call(toggle, callerid=NUMBER, queue=None, tz=None):
    env = {"TZ": tz} if tz else {}
    run = toggle.asterisk.run(callerid, arg=queue, env=dict(toggle.env, **env))
    assert run.exit_code == 0 and not run.killed_by_peer, run.stderr
    assert "Traceback" not in run.stderr
    return run


# ---------------------------------------------------------------- toggles

def test_login_one_queue_with_penalty_and_name(backend_toggle):
    backend_toggle.allowlist.add(NUMBER, "8008", penalty=3, member_name="Ivan Petrov")
    backend_toggle.allowlist.add(NUMBER, "8010", penalty=7)
    run = call(backend_toggle, queue="8008")
    assert run.state == "LOGGEDOUT"
    assert run.get("QMT_REASON") == "permitted"
    assert run.get("QUEUEUSER") == NUMBER
    assert run.get("QAGENT_UNAUTHORIZED") == "0"
    assert run.get("QMT_INTERFACE") == IFACE
    assert run.queues == ["8008"]
    assert (run.get("QMT_PENALTY_1"), run.get("QMT_NAME_1")) == ("3", "Ivan Petrov")
    assert "reason=permitted" in one_new_line(backend_toggle, 1)


def test_logout_one_queue(backend_toggle):
    backend_toggle.allowlist.add(NUMBER, "8008")
    backend_toggle.asterisk.queues["8008"].append(IFACE)
    run = call(backend_toggle, queue="8008")
    assert (run.state, run.get("QMT_REASON"), run.queues) == ("LOGGEDIN", "member", ["8008"])
    assert "action=logout" in one_new_line(backend_toggle, 1)


def test_login_then_logout_all_queues(backend_toggle):
    toggle = backend_toggle
    toggle.asterisk.queues["8012"] = []
    toggle.allowlist.add(NUMBER, "8008", penalty=1, member_name="Иван Петров")
    toggle.allowlist.add(NUMBER, "8010", penalty=5, member_name='Bob"; Hangup')
    toggle.allowlist.add(NUMBER, "8012", penalty=250000)
    toggle.allowlist.add("79990001122", "8008")
    run = call(toggle, callerid="+" + NUMBER)
    assert (run.state, run.get("QMT_REASON")) == ("LOGGEDOUT", "permitted")
    got = {run.get("QMT_QUEUE_%d" % i): (run.get("QMT_PENALTY_%d" % i), run.get("QMT_NAME_%d" % i))
           for i in range(1, int(run.get("QMT_COUNT")) + 1)}
    # Unicode survives each driver; a name keeps only its safe characters,
    # and a NULL one is the number.
    assert got == {"8008": ("1", "Иван Петров"), "8010": ("5", "Bob Hangup"), "8012": ("250000", NUMBER)}
    toggle.act_as_dialplan(run)
    assert all(toggle.member(queue, NUMBER) for queue in ("8008", "8010", "8012"))
    again = call(toggle, callerid="8" + NUMBER[1:])
    assert again.state == "LOGGEDIN" and sorted(again.queues) == ["8008", "8010", "8012"]
    toggle.act_as_dialplan(again)
    assert not any(toggle.member(queue, NUMBER) for queue in ("8008", "8010", "8012"))
    assert len(toggle.log_lines()) == 2


# ---------------------------------------------------------------- refusals

def test_number_not_in_table_is_refused(backend_toggle):
    backend_toggle.allowlist.add("79990001122", "8008")
    for queue in ("8008", None):
        run = call(backend_toggle, queue=queue)
        assert (run.state, run.get("QMT_REASON")) == ("DENIED", "not_permitted")
        assert run.get("QAGENT_UNAUTHORIZED") == "1"
        assert run.get("QMT_COUNT") is None
    assert backend_toggle.asterisk.queues == {"8008": [], "8010": []}
    assert len(backend_toggle.log_lines()) == 2


def test_permitted_in_another_queue_only_is_refused(backend_toggle):
    backend_toggle.allowlist.add(NUMBER, "8010")
    run = call(backend_toggle, queue="8008")
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "not_permitted")


def test_disabled_row_is_refused(backend_toggle):
    backend_toggle.allowlist.add(NUMBER, "8008", enabled=0)
    for queue in ("8008", None):
        run = call(backend_toggle, queue=queue)
        assert (run.state, run.get("QAGENT_UNAUTHORIZED")) == ("DENIED", "1")


# ------------------------------------------------ validity times, in UTC

def validity_cases():
    """(valid_from, valid_until) as offsets from now, the expected state and
    the PBX's local zone; each case would flip if the script or a driver
    read the times in local time (10 h east or 5 h west of UTC)."""
    return [
        pytest.param("now", None, "LOGGEDOUT", EAST_TZ, id="from-now-inclusive"),
        pytest.param(-NEAR, None, "LOGGEDOUT", WEST_TZ, id="from-past"),
        pytest.param(NEAR, None, "DENIED", EAST_TZ, id="from-future"),
        pytest.param(None, NEAR, "LOGGEDOUT", EAST_TZ, id="until-future"),
        pytest.param(None, "now", "DENIED", WEST_TZ, id="until-now-exclusive"),
        pytest.param(None, -NEAR, "DENIED", WEST_TZ, id="until-past"),
        pytest.param(-NEAR, NEAR, "LOGGEDOUT", EAST_TZ, id="inside-window"),
    ]


@pytest.mark.parametrize("starts, ends, expected, tz", validity_cases())
def test_validity_edges_are_utc(backend_toggle, starts, ends, expected, tz):
    now = utc_now()

    def at(offset):
        if offset is None:
            return None
        return now if offset == "now" else now + offset

    backend_toggle.allowlist.add(NUMBER, "8008", valid_from=at(starts), valid_until=at(ends))
    run = call(backend_toggle, queue="8008", tz=tz)
    assert run.state == expected, (starts, ends, run.variables)
    assert run.get("QMT_REASON") == ("permitted" if expected == "LOGGEDOUT" else "not_permitted")


@pytest.mark.parametrize("starts, ends, expected", [
    pytest.param(-30, 60, "LOGGEDOUT", id="window-around-now"),
    pytest.param(60, None, "DENIED", id="starts-in-a-minute"),
    pytest.param(None, -30, "DENIED", id="ended-half-a-minute-ago"),
])
def test_times_written_with_the_servers_utc_clock(backend_toggle, starts, ends, expected):
    """The DBA writes times with the server's own UTC expression (docs/dba.md):
    UTC_TIMESTAMP(), now() AT TIME ZONE 'UTC', datetime('now'). The
    PostgreSQL test database runs in Asia/Vladivostok, to show that plain
    now() would be wrong there."""
    toggle = backend_toggle
    sql = "INSERT INTO queue_mobile_agents (number, queue, valid_from, valid_until) VALUES (?, ?, %s, %s)" % (
        toggle.utc_now_sql(starts) if starts is not None else "NULL",
        toggle.utc_now_sql(ends) if ends is not None else "NULL")
    toggle.allowlist.execute(sql, NUMBER, "8008")
    run = call(toggle, queue="8008", tz=EAST_TZ)
    assert run.state == expected, run.variables


# ------------------------------------------------ revoked members leave

@pytest.mark.parametrize("persistent", [True, False], ids=["persistentmembers", "no-persistentmembers"])
@pytest.mark.parametrize("revocation", ["disabled", "expired", "deleted"])
def test_revoked_member_still_logs_out(backend_toggle, revocation, persistent):
    toggle = backend_toggle
    toggle.asterisk.persistent_members = persistent
    toggle.configure(managed="8010")
    if revocation == "disabled":
        toggle.allowlist.add(NUMBER, "8008", enabled=0)
    elif revocation == "expired":
        toggle.allowlist.add(NUMBER, "8008", valid_until=utc_now() - NEAR)
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.queues["8010"].append(IFACE)
    named = call(toggle, queue="8008")
    assert (named.state, named.queues) == ("LOGGEDIN", ["8008"])
    everywhere = call(toggle)
    # A deleted row leaves no trace in the table: the all-queues toggle then
    # finds 8008 only through astdb (persistentmembers=yes, FreePBX's
    # default) and 8010 through [queues] managed.
    expected = ["8010"] if revocation == "deleted" and not persistent else ["8008", "8010"]
    assert everywhere.state == "LOGGEDIN" and sorted(everywhere.queues) == expected
    toggle.act_as_dialplan(everywhere)
    # Once out, the revoked number cannot come back in.
    toggle.asterisk.queues["8008"].clear()
    back = call(toggle, queue="8008")
    assert back.state == "DENIED"


# ------------------------------------------------ the sql/ files themselves

@pytest.mark.parametrize("backend", BACKENDS)
def test_sql_files_apply_again_and_grant_select_only(backend, request, tmp_path, odbc):
    """sql/<backend>.sql (and the grant file) were applied twice when the
    session's database was made; a third time must still succeed, keep
    the rows, and leave the AGI account able to SELECT and nothing else."""
    toggle = make_toggle(backend, request, tmp_path, odbc)
    toggle.allowlist.add(NUMBER, "8008")
    if backend == "sqlite":
        for statement in split_sql(os.path.join(REPO, "sql", "sqlite.sql")):
            toggle.allowlist.execute(statement)
        assert [tuple(row) for row in toggle.allowlist.execute("SELECT number FROM queue_mobile_agents")] \
            == [(NUMBER,)]
        return
    server = toggle.server
    server.restore_table()
    assert [tuple(row) for row in toggle.allowlist.execute("SELECT number, queue FROM queue_mobile_agents")] \
        == [(NUMBER, "8008")]
    server.assert_select_only()
    assert len(toggle.allowlist.execute("SELECT number FROM queue_mobile_agents")) == 1
    if isinstance(server, MariaDB):
        grants = server.grants()
        assert "GRANT USAGE ON *.*" in grants
        assert "GRANT SELECT ON `%s`.`queue_mobile_agents`" % server.database in grants
        assert grants.count("GRANT ") == 2, grants
    run = call(toggle, queue="8008")
    assert run.state == "LOGGEDOUT"


@pytest.mark.servers
@pytest.mark.parametrize("kind", [MariaDB, PostgreSQL], ids=["mariadb", "postgresql"])
def test_grant_file_refuses_to_run_without_a_password(kind, request):
    server = request.getfixturevalue(kind.backend + "_server")
    done = server.apply_grants(password="", user="qmt_agi_nopw_" + server.agi_user[-8:])
    assert done.returncode != 0
    assert "password" in done.stderr
    # Nothing was created.
    accounts = ("SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'qmt_agi_nopw_%'" if kind is MariaDB
                else "SELECT COUNT(*) FROM pg_roles WHERE rolname LIKE 'qmt_agi_nopw_%'")
    assert server.admin_sql(None, accounts).strip() == "0"


# ------------------------------------------------ qmt writes with the AGI account

def test_qmt_allow_needs_a_writer_where_the_agi_account_only_reads(backend_toggle):
    """SQLite: the config's connection writes. The servers' AGI account may
    only SELECT: qmt says so in one line, exit 3, and nothing is written."""
    import subprocess
    import sys
    toggle = backend_toggle
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    done = subprocess.run([sys.executable, "-m", "qmt", "--config", toggle.config, "allow", NUMBER,
                           "--queue", "8008"], capture_output=True, text=True, env=env, timeout=60)
    if toggle.backend == "sqlite":
        assert done.returncode == 0, done.stderr
        assert call(toggle, queue="8008").state == "LOGGEDOUT"
    else:
        assert done.returncode == 3 and "Traceback" not in done.stderr
        assert "may not write to the allowlist (it should only SELECT): give a writer account with --dsn NAME" \
            in done.stderr and done.stderr.count("\n") == 1
        assert call(toggle, queue="8008").state == "DENIED"
