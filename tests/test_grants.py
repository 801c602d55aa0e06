"""The AGI account on the real servers: what it can NOT do, that the
grant files (run as docs/dba.md says) take back whatever someone added to
it, and that the password never shows in a process's command line."""

import errno
import os
import time

import pyodbc
import pytest

pytest.register_assert_rewrite("dbservers")
from dbservers import CLIENT_TIMEOUT, OTHER_TABLE, PostgreSQL  # noqa: E402

pytest_plugins = ["dbservers"]
pytestmark = pytest.mark.servers


@pytest.fixture(params=["mariadb", "postgresql"])
def server(request):
    return request.getfixturevalue(request.param + "_server")


# Proof that an addition took effect; unlike FORBIDDEN_SQL it changes nothing.
READ_OTHER = ["SELECT * FROM " + OTHER_TABLE]


# ------------------------------------------------ what the account can't do

def test_account_can_only_select_the_allowlist(server):
    """Not write the allowlist, read another table, create a TEMP or any
    other table (PostgreSQL's PUBLIC has TEMP on a new database)."""
    server.assert_select_only()


def test_account_cannot_connect_to_another_allowlist_database(postgresql_server):
    """A second PBX's database made with the same files: PUBLIC's default
    CONNECT would let the first PBX's account in."""
    other = PostgreSQL()
    try:
        other.create()
        with pytest.raises(pyodbc.Error, match="permission denied for database"):
            postgresql_server.agi_connect(database=other.database).close()
        # Its own account still gets in there, and ours into ours.
        other.assert_select_only()
        postgresql_server.assert_select_only()
    finally:
        if other.created:
            other.drop()


# ------------------------------------------------ a re-run takes back extras

def test_rerun_takes_back_what_someone_added_postgresql(postgresql_server):
    server, role = postgresql_server, postgresql_server.agi_user
    server.admin_sql(server.database, "; ".join([
        "ALTER ROLE %s BYPASSRLS CREATEDB INHERIT" % role,
        "GRANT pg_read_all_data, pg_write_all_data TO %s" % role,
        "GRANT TEMPORARY ON DATABASE %s TO %s" % (server.database, role),
        "GRANT INSERT, DELETE ON queue_mobile_agents TO PUBLIC",
        "GRANT SELECT ON %s TO %s" % (OTHER_TABLE, role),
        "GRANT CREATE ON SCHEMA public TO %s" % role,
    ]))
    assert server.agi_can_do(READ_OTHER)
    # A search_path without the table's schema breaks the AGI's query.
    server.admin_sql(None, "ALTER ROLE %s IN DATABASE %s SET search_path = pg_catalog"
                     % (role, server.database))
    server.apply_grants()
    attributes = server.admin_sql(None, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit,"
                                        " rolreplication, rolbypassrls, rolcanlogin FROM pg_roles"
                                        " WHERE rolname = '%s'" % role)
    assert attributes.strip() == "f|f|f|f|f|f|t"
    memberships = server.admin_sql(None, "SELECT roleid::regrole FROM pg_auth_members"
                                         " WHERE member = '%s'::regrole" % role).split()
    assert "pg_read_all_data" not in memberships and "pg_write_all_data" not in memberships
    assert server.admin_sql(None, "SELECT count(*) FROM pg_db_role_setting"
                                  " WHERE setrole = '%s'::regrole" % role).strip() == "0"
    server.assert_select_only()


def test_rerun_keeps_a_table_the_account_was_made_owner_of(postgresql_server):
    """The file hands what the role owns to the admin before it revokes
    everything (DROP OWNED): nothing of the DBA's is dropped."""
    server = postgresql_server
    server.admin_sql(server.database, "ALTER TABLE %s OWNER TO %s" % (OTHER_TABLE, server.agi_user))
    assert server.agi_can_do(READ_OTHER)
    server.apply_grants()
    assert server.admin_sql(server.database, "SELECT tableowner FROM pg_tables WHERE tablename = '%s'"
                            % OTHER_TABLE).strip() == "postgres"
    assert server.admin_sql(server.database, "SELECT secret FROM %s" % OTHER_TABLE).strip() == "x"
    server.assert_select_only()


def test_rerun_names_the_other_databases_where_the_role_still_holds_something(postgresql_server):
    """REASSIGN OWNED and DROP OWNED work in one database: a table the role
    owns and a grant it holds in another database survive a re-run. The
    file names that database and the DBA's commands; run there, they leave
    the role nothing, and the next re-run is silent."""
    server, role = postgresql_server, postgresql_server.agi_user
    other = server.database + "_other"
    server.admin_sql(None, "CREATE DATABASE %s" % other)
    try:
        server.admin_sql(other, "CREATE TABLE granted (a INTEGER); GRANT SELECT ON granted TO %s;"
                                " CREATE TABLE owned (a INTEGER); ALTER TABLE owned OWNER TO %s" % (role, role))
        notes = [line for line in server.apply_grants().stdout.splitlines() if "other databases" in line]
        assert len(notes) == 1 and ": %s." % other in notes[0], notes
        commands = "REASSIGN OWNED BY %s TO CURRENT_USER; DROP OWNED BY %s" % (role, role)
        assert commands in notes[0]
        server.admin_sql(other, commands)               # what the note tells the DBA to run there
        assert server.admin_sql(other, "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'").strip() \
            == "postgres"
        assert server.admin_sql(other, "SELECT count(*) FROM pg_shdepend WHERE refobjid = '%s'::regrole AND dbid ="
                                       " (SELECT oid FROM pg_database WHERE datname = current_database())"
                                % role).strip() == "0"
        assert "other databases" not in server.apply_grants().stdout
        server.assert_select_only()
    finally:
        server.admin_sql(None, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % other)


def test_rerun_takes_back_what_someone_added_mariadb(mariadb_server):
    server = mariadb_server
    account = "'%s'@'127.0.0.1'" % server.agi_user
    anywhere = "'%s'@'%%'" % server.agi_user
    role = server.agi_user + "_role"
    database = "`%s`" % server.database
    try:
        server.admin_sql(server.database, "; ".join([
            "GRANT INSERT, DELETE ON queue_mobile_agents TO %s" % account,
            "GRANT SELECT ON %s TO %s" % (OTHER_TABLE, account),
            "GRANT CREATE TEMPORARY TABLES ON %s.* TO %s" % (database, account),
            "CREATE ROLE %s" % role,
            "GRANT ALL ON %s.* TO %s" % (database, role),
            "GRANT %s TO %s" % (role, account),
            "SET DEFAULT ROLE %s FOR %s" % (role, account),
            "GRANT PROXY ON 'root'@'localhost' TO %s" % account,
            "GRANT INSERT ON queue_mobile_agents TO PUBLIC",
            "GRANT CREATE ON %s.* TO PUBLIC" % database,
            # The same name from anywhere, with every right on the database.
            "CREATE USER %s IDENTIFIED BY 'other'" % anywhere,
            "GRANT ALL ON %s.* TO %s" % (database, anywhere),
        ]))
        assert server.agi_can_do(READ_OTHER)
        server.apply_grants()
        only_select = ["GRANT USAGE ON *.* TO `{0}`@`{1}`",
                       "GRANT SELECT ON `{2}`.`queue_mobile_agents` TO `{0}`@`{1}`"]
        for host in ("localhost", "127.0.0.1", "%"):
            lines = [line.split(" IDENTIFIED BY")[0] for line in server.grants(host).splitlines()]
            assert lines == [grant.format(server.agi_user, host, server.database) for grant in only_select]
        assert server.admin_sql(None, "SELECT COUNT(*) FROM mysql.db WHERE User = 'PUBLIC' AND Db = '%s'"
                                " UNION ALL SELECT COUNT(*) FROM mysql.tables_priv WHERE User = 'PUBLIC'"
                                " AND Db = '%s'" % (server.database, server.database)).split() == ["0", "0"]
        server.assert_select_only()
    finally:
        server.admin_sql(None, "DROP ROLE IF EXISTS %s" % role)


# ------------------------------------------------ the password is never argv

def processes_showing(text):
    """(pid, what) of every process whose command line or environment
    holds `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for what in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (pid, what), "rb") as handle:
                    data = handle.read()
            except OSError:  # gone, or a kernel thread
                continue
            if text.encode() in data:
                found.append((pid, what, data.replace(b"\0", b" ")[:300]))
    return found


def process_tree(root):
    """argv[0] of `root` and of every process below it."""
    parents, names = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid, "rb") as handle:
                parents[int(pid)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                names[int(pid)] = os.path.basename(handle.read().split(b"\0")[0].decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return {names.get(pid, "") for pid in tree}


def test_password_is_in_no_process_argv_while_the_grant_runs(server, tmp_path):
    """docs/dba.md's command, with its password file a FIFO: every process
    of it (shell, client, the server's own) is alive and waiting for the
    password while /proc is read; it is read again until the end."""
    fifo = str(tmp_path / "qmt_agi_password")
    os.mkfifo(fifo, 0o600)
    process = server.start_grants(fifo)
    writer, client_seen, fed, shown = None, False, False, []
    deadline = time.monotonic() + CLIENT_TIMEOUT
    try:
        while process.poll() is None and time.monotonic() < deadline:
            shown += processes_showing(server.password_token)
            client_seen = client_seen or server.client in process_tree(process.pid)
            if writer is None:
                try:
                    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError as error:  # nobody has opened it for reading yet
                    assert error.errno == errno.ENXIO
            if writer is not None and client_seen and not fed:
                shown += processes_showing(server.password_token)
                os.write(writer, server.password_file_text(server.agi_password).encode())
                os.close(writer)
                fed = True
            time.sleep(0.002)
    finally:
        if writer is not None and not fed:
            os.close(writer)
        done = server.finish_grants(process, check=False)
    assert shown == []
    assert client_seen and fed, "the recipe did not read its password from the file"
    assert done.returncode == 0, done.stderr
    server.assert_select_only()  # the password that went through the file works
