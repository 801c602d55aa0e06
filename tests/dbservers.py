"""Real MariaDB and PostgreSQL servers for the allowlist tests.

A test session gets, per server, one uniquely named database and one AGI
account built the way the DBA builds them: sql/<backend>.sql and
sql/grant_<backend>.sql applied through the real `mysql` / `psql` clients,
each twice (they must be idempotent); the grant file by the shell command
docs/dba.md gives, the password in a root-only file. The AGI connects
through a DSN over TCP 127.0.0.1 as that account, so the SELECT-only grant
is what it really has. Rows are written through an admin connection. All is dropped at the
end of the session.

Where the servers are (defaults match .ci/db-servers.sh):
  QMT_TEST_MYSQL_SOCKET  /run/mysqld/mysqld.sock   admin = root over the socket
  QMT_TEST_MYSQL_PORT    3306                      the AGI's TCP port
  QMT_TEST_PG_PORT       5432                      admin = postgres over TCP,
                                                   password from ~/.pgpass if needed
When a server is not reachable the tests skip loudly, or fail in CI (CI=true).

Test modules load this as a plugin: pytest_plugins = ["dbservers"].
"""

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

from support import REPO, SQLITE_DRIVER, Allowlist, OdbcHome, Toggle, make_sqlite_allowlist

MARIADB_DRIVER = "MariaDB Unicode"
POSTGRESQL_DRIVER = "PostgreSQL Unicode"
MYSQL_SOCKET = os.environ.get("QMT_TEST_MYSQL_SOCKET", "/run/mysqld/mysqld.sock")
MYSQL_PORT = int(os.environ.get("QMT_TEST_MYSQL_PORT", "3306"))
PG_PORT = int(os.environ.get("QMT_TEST_PG_PORT", "5432"))
# .ci/db-servers.sh makes members of this role log in by password over TCP.
PG_PASSWORD_GROUP = "qmt_test_password_auth"
DSN = "qmt_test"
CLIENT_TIMEOUT = 60
# Someone else's table in the session's database: the AGI must not read it.
OTHER_TABLE = "qmt_other"
# Each must fail for the AGI account (same SQL on both servers).
FORBIDDEN_SQL = (
    "INSERT INTO queue_mobile_agents (number, queue) VALUES ('79990001122', '8010')",
    "UPDATE queue_mobile_agents SET penalty = 9",
    "DELETE FROM queue_mobile_agents",
    "SELECT * FROM " + OTHER_TABLE,
    "CREATE TEMPORARY TABLE qmt_scratch (a INTEGER)",
    "CREATE TABLE qmt_intruder (a INTEGER)",
    "DROP TABLE queue_mobile_agents",
)


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(message):
    """Servers missing: a failure in CI, a loud skip elsewhere."""
    message += " (run `bash .ci/db-servers.sh` as root to install/start them)"
    if in_ci():
        pytest.fail("CI=true and " + message, pytrace=False)
    pytest.skip("SERVER TESTS NOT RUN: " + message)


def require_driver(name):
    import pyodbc
    if name not in pyodbc.drivers():
        unavailable("the ODBC driver %r is not installed" % name)


def sql_file(name):
    return os.path.join(REPO, "sql", name)


def server_utc_now_sql(backend):
    """The SQL a DBA uses for 'now, in UTC' on each backend (docs/dba.md)."""
    return {"sqlite": "datetime('now')",
            "mariadb": "UTC_TIMESTAMP()",
            "postgresql": "(now() AT TIME ZONE 'UTC')"}[backend]


class ClientError(Exception):
    pass


class Server:
    """One server: admin access, the session's database and AGI account."""

    backend = driver = client = None
    host_key = default_port = None   # the driver's odbc.ini name for the host; the server's port

    def __init__(self):
        token = secrets.token_hex(4)
        self.database = "qmt_t_" + token
        self.agi_user = "qmt_agi_" + token
        # A quote and a backslash: the grant files must quote, not paste.
        # The token alone is what a process listing would show, quoted or not.
        self.password_token = secrets.token_hex(8)
        self.agi_password = "Pw'\\" + self.password_token
        self.created = False

    # -- running the clients as the DBA would ---------------------------
    def run_client(self, args, stdin_path=None, check=True):
        if shutil.which(self.client) is None:
            unavailable("the %s client is not installed" % self.client)
        with open(stdin_path or os.devnull, "rb") as stdin:
            try:
                done = subprocess.run([self.client] + args, stdin=stdin, capture_output=True,
                                      timeout=CLIENT_TIMEOUT, text=True)
            except subprocess.TimeoutExpired:
                raise ClientError("%s %s: no answer in %ss" % (self.client, args, CLIENT_TIMEOUT))
        if check and done.returncode != 0:
            raise ClientError("%s %s failed (%d): %s" % (self.client, " ".join(args), done.returncode,
                                                         done.stderr.strip()))
        return done

    def apply_schema(self):
        raise NotImplementedError

    # -- the grant file, as docs/dba.md runs it ---------------------------
    def password_file_text(self, password):
        """What the DBA's root-only password file holds."""
        raise NotImplementedError

    def grant_recipe(self, password_file, user):
        """docs/dba.md's shell command, with the tests' admin connection."""
        raise NotImplementedError

    def start_grants(self, password_file, user=None):
        if shutil.which(self.client) is None:
            unavailable("the %s client is not installed" % self.client)
        script = "set -o pipefail; " + self.grant_recipe(password_file, user or self.agi_user)
        return subprocess.Popen(["bash", "-c", script], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish_grants(self, process, user=None, check=True):
        try:
            out, err = process.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise ClientError("the grant recipe: no answer in %ss" % CLIENT_TIMEOUT)
        if check and process.returncode != 0:
            raise ClientError("the grant recipe failed (%d): %s" % (process.returncode, err.strip()))
        if process.returncode == 0:
            self.granted(user or self.agi_user)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def granted(self, user):
        """What the test set-up adds to an account after the grant file."""

    def apply_grants(self, password=None, user=None):
        """Run the grant file; raise on failure unless an argument is given
        (a test that expects it to fail reads the result)."""
        check = password is None and user is None
        password = self.agi_password if password is None else password
        with tempfile.TemporaryDirectory() as folder:  # mode 0700: root's only
            path = os.path.join(folder, "qmt_agi_password")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                      encoding="utf-8") as handle:
                handle.write(self.password_file_text(password))
            return self.finish_grants(self.start_grants(path, user), user, check)

    # -- lifecycle -------------------------------------------------------
    def create(self):
        require_driver(self.driver)
        try:
            self.admin_sql(None, "SELECT 1")
            problem = None
        except ClientError as error:
            problem = error
        if problem is not None:
            unavailable("%s is not reachable: %s" % (self.backend, problem))
        self.admin_sql(None, self.create_database_sql())
        self.created = True
        self.admin_sql(self.database, "CREATE TABLE %s (secret VARCHAR(20)); INSERT INTO %s VALUES ('x')"
                       % (OTHER_TABLE, OTHER_TABLE))
        for _ in range(2):  # an empty server, then again: both must apply cleanly
            self.apply_schema()
            self.apply_grants()

    def restore_table(self):
        """After a test dropped the table: the sql/ files put it back."""
        self.apply_schema()
        self.apply_grants()

    # -- what the tests use ------------------------------------------------
    def dsn_keys(self, port=None, **extra):
        """odbc.ini keys of a DSN for the session's database over TCP."""
        keys = {"Driver": self.driver, self.host_key: "127.0.0.1", "Port": port or self.default_port,
                "Database": self.database}
        keys.update(extra)
        return keys

    def connection(self, password=None):
        return "DSN=%s;UID=%s;PWD=%s" % (DSN, self.agi_user,
                                          self.agi_password if password is None else password)

    def allowlist(self):
        return AdminAllowlist(self.admin_connection_string(self.database))

    def admin_connect(self, autocommit=True):
        import pyodbc
        return pyodbc.connect(self.admin_connection_string(self.database), autocommit=autocommit,
                              timeout=10)

    def agi_connect(self, password=None, database=None):
        """Connect as the AGI account, in this process. A Driver= string,
        not the DSN: unixODBC caches what it read of the ini files, so a
        test process cannot switch to another test's ODBCSYSINI/ODBCINI."""
        import pyodbc
        keys = self.dsn_keys(Database=database or self.database)
        keys.update(UID=self.agi_user, PWD=self.agi_password if password is None else password)
        keys["Driver"] = "{%s}" % keys["Driver"]
        return pyodbc.connect(";".join("%s=%s" % pair for pair in keys.items()), autocommit=True,
                              timeout=10)

    def agi_can_do(self, statements=FORBIDDEN_SQL):
        """Those of `statements` the AGI account got through with."""
        import pyodbc
        agi = self.agi_connect()
        try:
            done = []
            for statement in statements:
                try:
                    agi.execute(statement)
                    done.append(statement)
                except pyodbc.Error:
                    pass
            return done
        finally:
            agi.close()

    def assert_select_only(self):
        """The AGI account reads the allowlist and can do nothing else."""
        agi = self.agi_connect()
        try:
            agi.execute("SELECT COUNT(*) FROM queue_mobile_agents").fetchall()
        finally:
            agi.close()
        assert self.agi_can_do() == []


class MariaDB(Server):
    backend, driver, client = "mariadb", MARIADB_DRIVER, "mysql"
    host_key, default_port = "Server", MYSQL_PORT

    def admin_args(self, database=None):
        args = ["--protocol=socket", "-S", MYSQL_SOCKET, "-uroot", "-N", "-B"]
        return args + ([database] if database else [])

    def admin_sql(self, database, sql):
        return self.run_client(self.admin_args(database) + ["-e", sql]).stdout

    def create_database_sql(self):
        return "CREATE DATABASE `%s` CHARACTER SET utf8mb4" % self.database

    def apply_schema(self):
        self.run_client(self.admin_args(self.database), sql_file("mariadb.sql"))

    def password_file_text(self, password):
        return "SET @qmt_agi_password = %s;\n" % mysql_literal(password)

    def grant_recipe(self, password_file, user):
        # The account name is no secret: it may show in ps.
        mysql = [self.client, "--init-command=SET @qmt_agi_user = %s" % mysql_literal(user)]
        return "cat %s sql/grant_mariadb.sql | %s" % (
            shlex.quote(password_file), shlex.join(mysql + self.admin_args(self.database)))

    def admin_connection_string(self, database):
        return "Driver={%s};Socket=%s;UID=root;Database=%s" % (self.driver, MYSQL_SOCKET, database)

    def drop(self):
        # Every host of the account (a test may add one) and PUBLIC's grants
        # in the database: DROP DATABASE leaves both behind.
        accounts = self.admin_sql(None, "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user"
                                        " WHERE User = '%s' AND is_role = 'N'" % self.agi_user).split()
        revokes = self.admin_sql(None, (
            "SELECT CONCAT('REVOKE ALL PRIVILEGES ON `', Db, '`.* FROM PUBLIC;') FROM mysql.db"
            f" WHERE User = 'PUBLIC' AND Db = '{self.database}' UNION ALL"
            " SELECT CONCAT('REVOKE ALL PRIVILEGES ON `', Db, '`.`', Table_name, '` FROM PUBLIC;')"
            f" FROM mysql.tables_priv WHERE User = 'PUBLIC' AND Db = '{self.database}'"))
        self.admin_sql(None, "DROP DATABASE IF EXISTS `%s`; %s DROP USER IF EXISTS %s" % (
            self.database, revokes, ", ".join(accounts) or "'%s'@'localhost'" % self.agi_user))

    def drop_table(self):
        self.admin_sql(self.database, "DROP TABLE queue_mobile_agents")

    def revoke_select(self):
        for host in ("localhost", "127.0.0.1"):
            self.admin_sql(self.database, "REVOKE SELECT ON queue_mobile_agents FROM '%s'@'%s'"
                           % (self.agi_user, host))

    def hold_table_lock(self):
        """Another session's write lock; closing the connection releases it."""
        connection = self.admin_connect()
        connection.execute("LOCK TABLES queue_mobile_agents WRITE")
        return connection

    def grants(self, host="127.0.0.1"):
        return self.admin_sql(None, "SHOW GRANTS FOR '%s'@'%s'" % (self.agi_user, host))


class PostgreSQL(Server):
    backend, driver, client = "postgresql", POSTGRESQL_DRIVER, "psql"
    host_key, default_port = "Servername", PG_PORT

    def admin_args(self, database=None):
        return ["-X", "-w", "-q", "-At", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
                "-v", "ON_ERROR_STOP=1", "-d", database or "postgres"]

    def admin_sql(self, database, sql):
        return self.run_client(self.admin_args(database) + ["-c", sql]).stdout

    def create_database_sql(self):
        return "CREATE DATABASE %s ENCODING 'UTF8' TEMPLATE template0" % self.database

    def create(self):
        super().create()
        # Far from UTC, so a time taken in the session's zone would show.
        self.admin_sql(None, "ALTER DATABASE %s SET timezone TO 'Asia/Vladivostok'" % self.database)

    def apply_schema(self):
        self.run_client(self.admin_args(self.database) + ["-f", sql_file("postgresql.sql")])

    def password_file_text(self, password):
        return password + "\n"

    def grant_recipe(self, password_file, user):
        psql = [self.client] + self.admin_args(self.database) + [
            "-v", "agi_user=" + user, "-f", "sql/grant_postgresql.sql"]
        return "%s < %s" % (shlex.join(psql), shlex.quote(password_file))

    def granted(self, user):
        """The grant file drops the role's memberships; the session's AGI
        role goes back into the group that .ci/db-servers.sh makes log in
        by password (pg_hba), so the wrong-password test means something."""
        if user != self.agi_user:
            return
        exists = self.admin_sql(None, "SELECT 1 FROM pg_roles WHERE rolname = '%s'" % PG_PASSWORD_GROUP)
        if exists.strip() == "1":
            self.admin_sql(None, "GRANT %s TO %s" % (PG_PASSWORD_GROUP, self.agi_user))

    def admin_connection_string(self, database):
        string = "Driver={%s};Servername=127.0.0.1;Port=%d;Database=%s;UID=postgres" % (
            self.driver, PG_PORT, database)
        return string + (";PWD=" + os.environ["PGPASSWORD"] if os.environ.get("PGPASSWORD") else "")

    def drop(self):
        self.admin_sql(None, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.database)
        self.admin_sql(None, "DROP ROLE IF EXISTS %s" % self.agi_user)

    def drop_table(self):
        self.admin_sql(self.database, "DROP TABLE queue_mobile_agents")

    def revoke_select(self):
        self.admin_sql(self.database, "REVOKE SELECT ON queue_mobile_agents FROM %s" % self.agi_user)

    def hold_table_lock(self):
        """A lock in an open transaction; closing the connection rolls it back."""
        connection = self.admin_connect(autocommit=False)
        connection.execute("LOCK TABLE queue_mobile_agents IN ACCESS EXCLUSIVE MODE")
        return connection

    def checks_passwords(self):
        """False where pg_hba says `trust` for the AGI role (a wrong
        password would get in)."""
        try:
            self.agi_connect(password="wrong").close()
        except Exception:
            return True
        return False


def mysql_literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class AdminAllowlist(Allowlist):
    """The allowlist as the DBA writes it: an admin connection, not the AGI's."""

    def __init__(self, connection_string):
        super().__init__(connection_string, {})

    def connect(self):
        import pyodbc
        return pyodbc.connect(self.connection_string, autocommit=True, timeout=10)


def _server(kind):
    server = kind()
    try:
        server.create()
        yield server
    finally:
        if server.created:
            server.drop()


@pytest.fixture(scope="session")
def mariadb_server():
    yield from _server(MariaDB)


@pytest.fixture(scope="session")
def postgresql_server():
    yield from _server(PostgreSQL)


class BackendToggle(Toggle):
    """support's Toggle bound to one backend; configure() keeps the
    backend's connection string (the DSN plus the AGI account)."""

    def __init__(self, backend, server, tmp_path, odbc, allowlist, connection):
        super().__init__(tmp_path, odbc, allowlist, connection)
        self.backend = backend
        self.server = server
        self.connection = connection
        self.sqlite_path = str(tmp_path / "allowlist.sqlite") if server is None else None

    def configure(self, connection=None, timeout=3, managed="", extra=""):
        super().configure(connection or self.connection, timeout, managed, extra)

    def set_sqlite_busy_timeout(self, milliseconds):
        """Rewrite the SQLite DSN with another lock wait (Timeout=, ms)."""
        self.odbc.add_dsn(DSN, Driver=SQLITE_DRIVER, Database=self.sqlite_path, NoCreat=1,
                          Timeout=milliseconds)

    def utc_now_sql(self, offset_seconds=0):
        base = server_utc_now_sql(self.backend)
        if not offset_seconds:
            return base
        if self.backend == "sqlite":
            return "datetime('now', '%+d seconds')" % offset_seconds
        if self.backend == "mariadb":
            return "%s + INTERVAL %d SECOND" % (base, offset_seconds)
        return "%s + INTERVAL '%d seconds'" % (base, offset_seconds)


def quiet_psqlodbc(odbc):
    """Debian's odbcinst.ini sets CommLog=1 for psqlODBC, which leaves a
    /tmp/psqlodbc_*.log per connection even with CommLog=0 in the DSN:
    turn it off in the test's copy, as docs/dba.md tells the DBA."""
    path = os.path.join(odbc.folder, "odbcinst.ini")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.replace("CommLog=1", "CommLog=0"))


def make_toggle(backend, request, tmp_path, odbc):
    """A Toggle on `backend` ('sqlite', 'mariadb', 'postgresql'): an empty
    allowlist, the DSN qmt_test, the config pointing at it."""
    quiet_psqlodbc(odbc)
    if backend == "sqlite":
        path = tmp_path / "allowlist.sqlite"
        make_sqlite_allowlist(odbc, path)  # the DSN and the schema
        # Rows go in by Driver= string: see Server.agi_connect.
        allowlist = Allowlist("Driver={%s};Database=%s" % (SQLITE_DRIVER, path), {})
        return BackendToggle(backend, None, tmp_path, odbc, allowlist, "DSN=" + DSN)
    server = request.getfixturevalue(backend + "_server")
    odbc.add_dsn(DSN, **server.dsn_keys())
    allowlist = server.allowlist()
    allowlist.clear()
    return BackendToggle(backend, server, tmp_path, odbc, allowlist, server.connection())


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.servers),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.servers),
]
SERVER_BACKENDS = BACKENDS[1:]


@pytest.fixture(params=BACKENDS)
def backend_toggle(request, tmp_path, odbc):
    return make_toggle(request.param, request, tmp_path, odbc)


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts and never sends a byte."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(peer)

    def close(self):
        for peer in self.accepted:
            peer.close()
        self.sock.close()


def closed_port():
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def without_driver(odbc, name, folder):
    """A new ODBC home with the same DSNs whose odbcinst.ini lacks the
    driver `name`, as if its package were not installed. A new folder: the
    test process may have read the old one, and unixODBC caches that."""
    home = OdbcHome(folder)
    for dsn, keys in odbc.dsns.items():
        home.add_dsn(dsn, **keys)
    path = os.path.join(home.folder, "odbcinst.ini")
    kept, skipping = [], False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip().startswith("["):
                skipping = line.strip() == "[%s]" % name
            if not skipping:
                kept.append(line)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(kept)
    return home
