"""install.sh, run inside the Debian sid chroot as an admin would run it."""

import configparser
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import uuid

import pytest

import harness as L
from qmt import __version__ as QMT_VERSION

CONF = "/etc/asterisk/queue_mobile_toggle.conf"
SCRIPT = "queue_mobile_toggle.py"
VENV_PY = "/opt/queue-mobile-toggle/venv/bin/python3"
DB = L.SQLITE_DB
INCLUDE = "#include extensions_queue_mobile_toggle.conf"
AMI_INCLUDE = "#include manager_queue_mobile_toggle.conf"
STEP = re.compile(r"^\[(ok|changed|note)\] +\S")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def lines(p):
    return p.stdout.splitlines()


def assert_one_line_steps(p):
    out = lines(p)
    assert out, "install.sh printed nothing"
    for line in out[:-1]:
        assert STEP.match(line), f"not a one-line step: {line!r}"
    assert out[-1].startswith("queue-mobile-toggle: ")


def stat(root, path):
    return root.sh(f"stat -c '%a %U:%G' {path}", check=True).stdout.strip()


def snapshot(root, paths):
    out = {}
    for p in paths:
        f = root.p(p)
        out[p] = (f.read_bytes(), f.stat().st_mtime_ns, f.stat().st_mode) if f.exists() else None
    return out


# ------------------------------------------------------- the session install
def test_first_install_did_every_step(pbx):
    p = pbx.first_install
    assert p.returncode == 0
    assert_one_line_steps(p)
    out = p.stdout
    for step in ("venv: created /opt/queue-mobile-toggle/venv with pyst2==0.5.1 pyodbc==5.5.0 (offline",
                 f"script: installed {L.AGI_DIR}/{SCRIPT}",
                 f"config: wrote {CONF}",
                 f"allowlist: created table queue_mobile_agents in {DB}",
                 "allowlist: added DSN queue_mobile_toggle (SQLite3",
                 "dialplan: installed /etc/asterisk/extensions_queue_mobile_toggle.conf",
                 f"include: added '{INCLUDE}' to /etc/asterisk/extensions.conf",
                 "asterisk: dialplan reloaded, context app-queue-toggle-mob loaded",
                 "package: installed qmt " + QMT_VERSION + " in /opt/queue-mobile-toggle/venv",
                 "command: /usr/local/sbin/qmt -> /opt/queue-mobile-toggle/venv/bin/qmt",
                 "ami: added [ami] (account qmt, port ",
                 "ami: installed /etc/asterisk/manager_queue_mobile_toggle.conf (mode 640, root:asterisk)",
                 "ami: added '#include manager_queue_mobile_toggle.conf' to /etc/asterisk/manager.conf",
                 "sweep: installed /etc/cron.d/queue-mobile-toggle (mode 644, root:root)",
                 "asterisk: manager reloaded (account qmt)"):
        assert f"[changed] {step}" in out, step
    # the OS packages were already in the chroot: apt had nothing to do
    assert "[ok]      packages: unixodbc python3 python3-venv libsqliteodbc sqlite3 already installed" in out


def test_second_run_changes_nothing(pbx):
    watched = [f"{L.AGI_DIR}/{SCRIPT}", CONF, DB, "/etc/odbc.ini", "/etc/asterisk/extensions.conf",
               "/etc/asterisk/extensions_queue_mobile_toggle.conf", VENV_PY,
               "/opt/queue-mobile-toggle/install.manifest"]
    before = snapshot(pbx.root, watched)
    p = pbx.root.install("--wheelhouse", L.WHEELS_IN_ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_one_line_steps(p)
    assert "[changed]" not in p.stdout
    assert lines(p)[-1] == "queue-mobile-toggle: already installed, nothing changed."
    assert snapshot(pbx.root, watched) == before


# The table as sql/sqlite.sql made it before pin_hash and confirm_answer.
OLD_SQLITE_TABLE = """
DROP TABLE queue_mobile_agents;
CREATE TABLE queue_mobile_agents (number TEXT NOT NULL, queue TEXT NOT NULL, penalty INTEGER NOT NULL DEFAULT 0,
    member_name TEXT, enabled INTEGER NOT NULL DEFAULT 1, valid_from TEXT, valid_until TEXT,
    PRIMARY KEY (number, queue));
INSERT INTO queue_mobile_agents (number, queue, member_name) VALUES ('79110000001', '8008', 'Kept');
"""


def test_a_rerun_adds_the_new_columns_to_an_old_sqlite_allowlist_and_keeps_its_rows(pbx):
    saved = pbx.db.read_bytes()
    try:
        with sqlite3.connect(pbx.db) as c:
            c.executescript(OLD_SQLITE_TABLE)
        before = stat(pbx.root, DB)
        p = pbx.root.install("--wheelhouse", L.WHEELS_IN_ROOT)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"[changed] allowlist: added column(s) pin_hash, confirm_answer, shift_window to table " \
               f"queue_mobile_agents in {DB} (sql/upgrade_sqlite.sql)" in p.stdout
        with sqlite3.connect(pbx.db) as c:
            columns = [row[1] for row in c.execute("PRAGMA table_info(queue_mobile_agents)")]
            kept = c.execute("SELECT number, member_name, pin_hash, confirm_answer, shift_window "
                             "FROM queue_mobile_agents").fetchall()
        assert columns[-3:] == ["pin_hash", "confirm_answer", "shift_window"]
        assert kept == [("79110000001", "Kept", None, None, None)]
        assert stat(pbx.root, DB) == before == "660 root:asterisk"
        again = pbx.root.install("--wheelhouse", L.WHEELS_IN_ROOT)
        assert again.returncode == 0 and "[changed]" not in again.stdout, again.stdout
    finally:
        pbx.db.write_bytes(saved)


def test_agi_script_placed_where_running_asterisk_looks(pbx):
    root = pbx.root
    # the test asterisk.conf moves agi-bin away from Debian's compiled-in default
    assert "AGI Scripts directory:" in pbx.ast.cli("core show settings")
    assert L.AGI_DIR in pbx.ast.cli("core show settings")
    script = f"{L.AGI_DIR}/{SCRIPT}"
    assert not root.p(f"/usr/share/asterisk/agi-bin/{SCRIPT}").exists()
    assert root.p(script).read_text().splitlines()[0] == f"#!{VENV_PY} -I"
    assert stat(root, script) == "750 root:asterisk"
    assert root.sh(f"test -x {script}", user="asterisk").returncode == 0
    assert root.sh(f"test -w {script}", user="asterisk").returncode != 0
    assert root.sh(f"echo x >> {script}", user="asterisk").returncode != 0
    # the body is the project's script, only the shebang differs
    src = (L.REPO / "agi" / SCRIPT).read_text().splitlines()
    assert root.p(script).read_text().splitlines()[1:] == src[1:]


def test_config_and_allowlist_permissions(pbx):
    root = pbx.root
    assert stat(root, CONF) == "640 root:asterisk"
    assert root.sh(f"cat {CONF}", user="asterisk").returncode == 0
    assert root.sh(f"cat {CONF}", user="nobody").returncode != 0
    assert stat(root, DB) == "660 root:asterisk"
    assert root.sh(f"sqlite3 -readonly {DB} 'SELECT COUNT(*) FROM queue_mobile_agents'",
                   user="asterisk").returncode == 0
    # root's qmt allow/revoke write it as the asterisk user (README, Security); no one else may read it
    assert root.sh(f"test -w {DB}", user="asterisk").returncode == 0
    assert root.sh(f"sqlite3 -readonly {DB} 'SELECT COUNT(*) FROM queue_mobile_agents'",
                   user="nobody").returncode != 0
    odbc = root.p("/etc/odbc.ini").read_text()
    assert odbc.count("[queue_mobile_toggle]") == 1
    assert f"Database = {DB}" in odbc and "Driver = SQLite3" in odbc


def test_exactly_one_include_line(pbx):
    pbx.root.install("--wheelhouse", L.WHEELS_IN_ROOT)
    text = pbx.root.p("/etc/asterisk/extensions.conf").read_text()
    assert [line for line in text.splitlines() if "extensions_queue_mobile_toggle" in line] == [INCLUDE]
    assert "Context 'app-queue-toggle-mob'" in pbx.ast.cli("dialplan show app-queue-toggle-mob")


def test_config_edits_survive_a_rerun(pbx):
    conf = pbx.root.p(CONF)
    conf.write_text(conf.read_text() + "\n; admin note: keep me\n")
    p = pbx.root.install("--wheelhouse", L.WHEELS_IN_ROOT)
    assert p.returncode == 0
    assert f"[ok]      config: {CONF} exists, kept as it is" in p.stdout
    text = conf.read_text()
    assert "; admin note: keep me" in text
    assert "target = /var/log/asterisk/queue_mobile_toggle.log" in text     # the session's edit


def test_check_passes_then_names_the_failure(pbx):
    p = pbx.root.install("--check")
    assert p.returncode == 0, p.stdout
    for what in ("script:", "venv:", "config:", "dsn: queue_mobile_toggle",
                 "database: table queue_mobile_agents reachable as asterisk", "include:",
                 "asterisk: context app-queue-toggle-mob loaded"):
        assert any(line.startswith("[PASS]") and what in line for line in lines(p)), what
    assert lines(p)[-1] == "queue-mobile-toggle: check passed."

    moved = pbx.root.p(DB + ".check")
    pbx.db.rename(moved)
    try:
        p = pbx.root.install("--check")
    finally:
        moved.rename(pbx.db)
    assert p.returncode == 1
    assert any(line.startswith("[FAIL]    database:") for line in lines(p)), p.stdout
    assert lines(p)[-1].startswith("queue-mobile-toggle: check FAILED")

    pbx.ast.cli("dialplan remove context app-queue-toggle-mob")
    try:
        p = pbx.root.install("--check")
    finally:
        pbx.ast.cli("dialplan reload")
    assert p.returncode == 1
    assert "[FAIL]    asterisk: context app-queue-toggle-mob is not loaded" in p.stdout
    p = pbx.root.install("--check")
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument: --bogus"),
    (["--db", "oracle"], "--db must be sqlite, mariadb or postgresql"),
    (["--db", "mariadb"], "--db mariadb needs --dsn NAME"),
    (["--purge"], "--purge goes with --uninstall"),
    (["--wheelhouse"], "--wheelhouse needs a value"),
    (["--wheelhouse", "/nonexistent"], "no such folder"),
    (["--check", "--db", "sqlite"], "go with an install"),
    (["--dsn", "x;DRIVER=evil"], "--dsn: letters, digits"),
    (["--agi-dir", "relative/dir"], "--agi-dir needs an absolute path"),
])
def test_bad_arguments_exit_2_with_usage(pbx, args, message):
    p = pbx.root.install(*args)
    assert p.returncode == 2
    assert message in p.stderr and "--help" in p.stderr
    assert p.stdout == ""


def test_help_and_non_root(pbx):
    p = pbx.root.install("--help")
    assert p.returncode == 0 and p.stdout.startswith("Usage: ./install.sh")
    for opt in ("--check", "--uninstall", "--purge", "--wheelhouse", "--agi-dir", "--no-apt", "--db",
                "--dsn"):
        assert opt in p.stdout
    pbx.root.sh(f"rm -rf /tmp/qmt-src && cp -r {L.SRC_IN_ROOT} /tmp/qmt-src && chmod -R a+rX /tmp/qmt-src",
                check=True)
    p = pbx.root.sh("cd /tmp/qmt-src && ./install.sh", user="nobody")
    assert p.returncode == 1 and "must run as root" in p.stderr


# ------------------------------------------------------ fresh chroots
def test_agi_dir_from_debian_template_conf_when_asterisk_stopped(throwaway_root):
    root = throwaway_root
    # Debian's stock asterisk.conf: [directories](!) is a template, its
    # astagidir is NOT in force; Asterisk uses its compiled-in default.
    conf = root.p("/etc/asterisk/asterisk.conf").read_text()
    assert "[directories](!)" in conf
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT, "--no-apt")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[ok]      agi-bin: /usr/share/asterisk/agi-bin (from the default compiled into" in p.stdout
    assert root.p(f"/usr/share/asterisk/agi-bin/{SCRIPT}").exists()
    assert "[note]    asterisk: not running; the dialplan loads when it starts" in p.stdout
    # the same file with the template marker gone: its astagidir counts
    root.p("/etc/asterisk/asterisk.conf").write_text(
        conf.replace("[directories](!)", "[directories]").replace(
            "astagidir => /usr/share/asterisk/agi-bin", "astagidir => /srv/agi-here"))
    p = root.install("--no-apt")
    assert "agi-bin: created /srv/agi-here (from /etc/asterisk/asterisk.conf [directories])" in p.stdout
    assert root.p(f"/srv/agi-here/{SCRIPT}").exists()
    # --agi-dir wins over everything
    p = root.install("--no-apt", "--agi-dir", "/opt/agi-override")
    assert p.returncode == 0 and root.p(f"/opt/agi-override/{SCRIPT}").exists()
    # --check without a running Asterisk fails, saying so
    p = root.install("--check")
    assert p.returncode == 1
    assert "[FAIL]    asterisk: not running" in p.stdout


def test_freepbx_layout_includes_from_extensions_custom(throwaway_root):
    root = throwaway_root
    ast = L.Asterisk(root)          # asterisk.conf like FreePBX's: agi-bin under /var/lib
    root.write("/etc/freepbx.conf", "<?php // stand-in\n")
    root.write("/etc/asterisk/extensions_custom.conf", "; FreePBX custom dialplan\n[from-internal-custom]\n")
    base = root.p("/etc/asterisk/extensions.conf").read_text()
    root.p("/etc/asterisk/extensions.conf").write_text(base + "#include extensions_custom.conf\n")
    ast.start()
    try:
        p = root.install("--wheelhouse", L.WHEELS_IN_ROOT)
        assert p.returncode == 0, p.stdout + p.stderr
        custom = root.p("/etc/asterisk/extensions_custom.conf").read_text()
        assert custom.splitlines()[-1] == INCLUDE and custom.count(INCLUDE) == 1
        assert INCLUDE not in root.p("/etc/asterisk/extensions.conf").read_text()
        assert root.p(f"/var/lib/asterisk/agi-bin/{SCRIPT}").exists()
        assert root.install("--check").returncode == 0
    finally:
        ast.stop()


def test_uninstall_then_purge(throwaway_root):
    root = throwaway_root
    ast = L.Asterisk(root)
    ast.start()
    try:
        assert root.install("--wheelhouse", L.WHEELS_IN_ROOT).returncode == 0
        ext_before = root.p("/etc/asterisk/extensions.conf").read_text()
        assert INCLUDE in ext_before
        manager = "/etc/asterisk/manager.conf"
        assert AMI_INCLUDE in root.p(manager).read_text()
        assert "username: qmt" in ast.cli("manager show user qmt")

        p = root.install("--uninstall")
        assert p.returncode == 0, p.stdout + p.stderr
        assert_one_line_steps(p)
        assert not root.p(f"{L.AGI_DIR}/{SCRIPT}").exists()
        assert not root.p("/etc/asterisk/extensions_queue_mobile_toggle.conf").exists()
        assert INCLUDE not in root.p("/etc/asterisk/extensions.conf").read_text()
        assert ext_before.replace(INCLUDE + "\n", "") == root.p("/etc/asterisk/extensions.conf").read_text()
        assert "[queue_mobile_toggle]" not in root.p("/etc/odbc.ini").read_text()
        assert not root.p("/opt/queue-mobile-toggle").exists()
        assert not root.p(CONF).exists()                   # never edited: removed
        assert root.p(DB).exists()                         # the numbers stay without --purge
        assert "Context 'app-queue-toggle-mob'" not in ast.cli("dialplan show app-queue-toggle-mob")
        # the qmt command, its manager account and the sweep go too
        for gone in ("/usr/local/sbin/qmt", "/etc/cron.d/queue-mobile-toggle",
                     "/etc/asterisk/manager_queue_mobile_toggle.conf"):
            assert not root.p(gone).exists() and not root.p(gone).is_symlink(), gone
        assert AMI_INCLUDE not in root.p(manager).read_text()
        assert "username: qmt" not in ast.cli("manager show user qmt")

        p = root.install("--uninstall")
        assert p.returncode == 0 and "[changed]" not in p.stdout
        assert lines(p)[-1] == "queue-mobile-toggle: nothing to remove, nothing changed."

        # reinstall keeps the existing allowlist; an edited config survives --uninstall
        assert root.install("--wheelhouse", L.WHEELS_IN_ROOT).returncode == 0
        root.p(CONF).write_text(root.p(CONF).read_text() + "; edited\n")
        p = root.install("--uninstall")
        assert "[note]    config: /etc/asterisk/queue_mobile_toggle.conf kept" in p.stdout
        assert root.p(CONF).exists() and root.p(DB).exists()

        p = root.install("--uninstall", "--purge")
        assert p.returncode == 0
        assert not root.p(CONF).exists() and not root.p(DB).exists()
    finally:
        ast.stop()


# ------------------------------------------------- server backends (issue 3)
def _reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


class ServerDB:
    """A database, its table and a least-privilege account on the host's
    server, made with the project's own sql/ files; dropped afterwards."""

    def __init__(self, kind):
        self.kind = kind
        tag = uuid.uuid4().hex[:8]
        self.db, self.user, self.password = f"qmt_e2e_{tag}", f"qmt_e2e_{tag}", "pw-" + uuid.uuid4().hex
        self.sql = L.REPO / "sql"

    def _run(self, argv, **kw):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
        assert p.returncode == 0, f"{argv}: {p.stdout}{p.stderr}"
        return p

    def create(self):
        if self.kind == "postgresql":
            psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
            self._run(psql + ["-c", f"CREATE DATABASE {self.db}"])
            self._run(psql + ["-d", self.db, "-f", str(self.sql / "postgresql.sql")])
            self._run(psql + ["-d", self.db, "-v", f"agi_user={self.user}",
                              "-v", f"agi_password={self.password}",
                              "-f", str(self.sql / "grant_postgresql.sql")])
        else:
            mysql = ["mysql", "-u", "root"]
            self._run(mysql + ["-e", f"CREATE DATABASE {self.db}"])
            self._run(mysql + [self.db], stdin=open(self.sql / "mariadb.sql"))
            self._run(["mysql", "-u", "root", f"--init-command=SET @qmt_agi_password='{self.password}', "
                       f"@qmt_agi_user='{self.user}'", self.db], stdin=open(self.sql / "grant_mariadb.sql"))

    def insert(self, number, queue, penalty):
        stmt = (f"INSERT INTO queue_mobile_agents (number, queue, penalty, member_name) "
                f"VALUES ('{number}', '{queue}', {penalty}, 'Server Row')")
        if self.kind == "postgresql":
            self._run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", self.db, "-c", stmt])
        else:
            self._run(["mysql", "-u", "root", self.db, "-e", stmt])

    def drop(self):
        if self.kind == "postgresql":
            psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q"]
            subprocess.run(psql + ["-c", f"DROP DATABASE IF EXISTS {self.db}"], capture_output=True)
            subprocess.run(psql + ["-c", f"DROP ROLE IF EXISTS {self.user}"], capture_output=True)
        else:
            subprocess.run(["mysql", "-u", "root", "-e", f"DROP DATABASE IF EXISTS {self.db}; "
                            f"DROP USER IF EXISTS '{self.user}'@'localhost', '{self.user}'@'127.0.0.1'"],
                           capture_output=True)

    def dsn_section(self, name):
        if self.kind == "postgresql":
            return (f"[{name}]\nDriver = PostgreSQL Unicode\nServername = 127.0.0.1\nPort = 5432\n"
                    f"Database = {self.db}\n")
        return f"[{name}]\nDriver = MariaDB Unicode\nServer = 127.0.0.1\nPort = 3306\nDatabase = {self.db}\n"


@pytest.mark.servers
@pytest.mark.parametrize("kind, port, package", [("postgresql", 5432, "odbc-postgresql"),
                                                 ("mariadb", 3306, "odbc-mariadb")])
def test_server_backend(throwaway_root, kind, port, package):
    if not (_reachable(port) and shutil.which("psql" if kind == "postgresql" else "mysql")):
        msg = f"no {kind} server on 127.0.0.1:{port} (or no client) on this host"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    root = throwaway_root
    dsn = f"qmt_{kind}"
    odbcinst = root.p("/etc/odbcinst.ini")
    debian_odbcinst = odbcinst.read_text()
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT, "--db", kind, "--dsn", dsn)
    assert p.returncode == 0, p.stdout + p.stderr
    if kind == "postgresql":
        # Debian's CommLog=1 has psqlODBC write a /tmp/psqlodbc_*.log for every call:
        # install.sh turns it off in [PostgreSQL Unicode], that line only, once
        assert (f"[changed] {COMMLOG} (was 1: a /tmp/psqlodbc_*.log file for every call)"
                in p.stdout), p.stdout
        assert _commlog(odbcinst.read_text()) == "0"
        assert _diff_lines(debian_odbcinst, odbcinst.read_text()) == [("CommLog=1", "CommLog=0")]
        again = root.install("--wheelhouse", L.WHEELS_IN_ROOT)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "[ok]      odbcinst: CommLog is off in [PostgreSQL Unicode] of /etc/odbcinst.ini" in again.stdout
        assert "[changed]" not in again.stdout
        odbcinst.write_text(debian_odbcinst)           # back to Debian's, for --check to see
    else:
        assert "odbcinst:" not in p.stdout
    assert f"[ok]      packages: unixodbc python3 python3-venv {package} already installed" in p.stdout
    assert f"[note]    allowlist: DSN {dsn} is not defined in /etc/odbc.ini yet" in p.stdout
    conf = root.p(CONF).read_text()
    assert f"\nconnection = DSN={dsn}\n" in conf
    assert not root.p(DB).exists()                         # no SQLite allowlist
    odbc = root.p("/etc/odbc.ini")
    assert not odbc.exists() or f"[{dsn}]" not in odbc.read_text()

    p = root.install("--check")
    assert p.returncode == 1
    assert f"[FAIL]    dsn: {dsn} is not defined in /etc/odbc.ini" in p.stdout
    if kind == "postgresql":
        assert ("[FAIL]    odbcinst: CommLog=1 in [PostgreSQL Unicode] of /etc/odbcinst.ini: "
                "a /tmp/psqlodbc_*.log file for every call") in p.stdout, p.stdout

    server = ServerDB(kind)
    try:
        server.create()
        server.insert(L_NUM, "8008", 6)
        # what docs/install.md tells the admin to do: the DSN, and the account in the config
        root.write("/etc/odbc.ini", server.dsn_section(dsn))
        cfg = root.p(CONF)
        cfg.write_text(cfg.read_text().replace(
            f"\nconnection = DSN={dsn}\n",
            f"\nconnection = DSN={dsn};UID={server.user};PWD={server.password}"
            + (";CONN_TIMEOUT=2" if kind == "mariadb" else "") + "\n"))
        ast = L.Asterisk(root)
        ast.start()
        try:
            p = root.install("--wheelhouse", L.WHEELS_IN_ROOT)             # reload, context
            assert p.returncode == 0, p.stdout + p.stderr
            assert (f"[changed] {COMMLOG}" in p.stdout) == (kind == "postgresql"), p.stdout
            p = root.install("--check")
            assert p.returncode == 0, p.stdout
            if kind == "postgresql":
                assert "[PASS]    odbcinst: CommLog is off in [PostgreSQL Unicode]" in p.stdout
                assert _commlog(odbcinst.read_text()) == "0"
            else:
                assert "odbcinst:" not in p.stdout
            drv = "PostgreSQL Unicode" if kind == "postgresql" else "MariaDB Unicode"
            assert f"[PASS]    dsn: {dsn} in /etc/odbc.ini, driver {drv}" in p.stdout
            assert "[PASS]    database: table queue_mobile_agents reachable as asterisk: 1 row(s)" in p.stdout, \
                p.stdout
            assert server.password not in p.stdout
            r = ast.call(L_NUM)                            # a real login through that server
            assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r
            assert ast.members("8008")[f"Local/{L_NUM}@qmt-ring/n"]["penalty"] == 6
        finally:
            ast.stop()
    finally:
        server.drop()


L_NUM = "79112223355"
COMMLOG = "odbcinst: CommLog=0 in [PostgreSQL Unicode] of /etc/odbcinst.ini"


def _commlog(odbcinst_ini):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(odbcinst_ini)
    return ini.get("PostgreSQL Unicode", "CommLog", fallback=None)


def _diff_lines(a, b):
    a, b = a.splitlines(), b.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_missing_os_package_is_installed_with_apt(throwaway_root):
    root = throwaway_root
    # sqlite3 (the admin's CLI for the allowlist) is the one package nothing else needs
    assert root.sh("dpkg -r sqlite3").returncode == 0
    assert root.sh("command -v sqlite3").returncode != 0
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[changed] packages: installed sqlite3 with apt-get" in p.stdout
    assert root.sh("command -v sqlite3").returncode == 0
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT)
    assert "[ok]      packages: unixodbc python3 python3-venv libsqliteodbc sqlite3 already installed" in p.stdout
    # --no-apt never calls apt-get: it only says what is missing
    assert root.sh("dpkg -r sqlite3").returncode == 0
    p = root.install("--no-apt")
    assert p.returncode == 0 and "[note]    packages: --no-apt given; missing: sqlite3" in p.stdout
    assert root.sh("command -v sqlite3").returncode != 0


def test_manager_interface_off_is_reported_and_turned_on_only_when_asked(throwaway_root):
    root = throwaway_root
    root.write("/etc/asterisk/manager.conf", "[general]\nenabled = no\nport = 5038\n", mode=0o640,
               owner="root:asterisk")
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[note]    ami: the manager interface is off in /etc/asterisk/manager.conf" in p.stdout
    assert "enabled = no" in root.p("/etc/asterisk/manager.conf").read_text()
    p = root.install("--wheelhouse", L.WHEELS_IN_ROOT, "--enable-ami")
    assert "[changed] ami: turned the manager interface on in /etc/asterisk/manager.conf (--enable-ami)" in p.stdout
    general = configparser.ConfigParser(strict=False)
    general.read_string(root.p("/etc/asterisk/manager.conf").read_text().split("#include")[0])
    assert (general["general"]["enabled"], general["general"]["bindaddr"]) == ("yes", "127.0.0.1")
    assert root.install("--check").returncode == 1          # no Asterisk runs here: the manager is not reachable
