"""Root's `qmt` runs as the asterisk user (README, Security), checked on the
real Asterisk 22 of the session with the config install.sh wrote.

The asterisk user owns /etc/asterisk, so it can replace the config. A
config it planted, whose connection string makes ODBC load its library
(SQLite ODBC's LoadExt=, or Driver=) and whose [log] target names a file
only root may write, must never run that library as root nor make root
write that file, whatever command root types."""

import subprocess

import pytest

from harness.root import SQLITE_DB
from test_e2e_qmt import qmt
from test_e2e_toggle import NUM, OTHER

CONF = "/etc/asterisk/queue_mobile_toggle.conf"
LIBRARY = "/var/lib/asterisk/x.so"              # where the asterisk user may put a file
RAN = "/var/lib/asterisk/planted-ran"           # the library's constructor appends its uids here
ROOT_ONLY = "/etc/planted-by-asterisk"          # a file only root could create
# sqlite3_x_init: SQLite's entry point for x.so, so that LoadExt loads it
# without a word and qmt's output looks normal.
PLANTED_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "a");
    if (f) { fprintf(f, "uid=%%d euid=%%d\n", (int)getuid(), (int)geteuid()); fclose(f); }
}
int sqlite3_x_init(void *db, char **error, const void *api) { return 0; }
""" % RAN  # noqa: UP031 (a C template: printf's own % signs read best escaped as %%)
PLANTED_CONNECTIONS = {
    "LoadExt": "DSN=queue_mobile_toggle;LoadExt=" + LIBRARY,
    "Driver": f"Driver={LIBRARY};Database={SQLITE_DB}",
}
COMMANDS = (("list",), ("check", NUM), ("status",), ("allow", OTHER, "--queue", "8008"), ("sweep", "--apply"),
            ("doctor",))


def asterisk_uid(pbx):
    return int(pbx.root.sh("id -u asterisk", check=True).stdout)


@pytest.fixture(scope="module")
def planted_library(pbx, tmp_path_factory):
    """x.so, compiled on the host and copied into place by the asterisk user."""
    folder = tmp_path_factory.mktemp("planted")
    (folder / "x.c").write_text(PLANTED_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "x.so"), str(folder / "x.c")], check=True)
    built = pbx.root.p("/var/tmp/x.so")
    built.write_bytes((folder / "x.so").read_bytes())
    built.chmod(0o755)
    pbx.root.sh(f"cp /var/tmp/x.so {LIBRARY}", user="asterisk", check=True)
    yield LIBRARY
    pbx.root.p(LIBRARY).unlink()


@pytest.fixture
def plant_config(clean, planted_library):
    """plant_config(connection): the installed config, its connection and
    [log] target replaced by the asterisk user; restored afterwards, as
    install.sh wrote it (root:asterisk, 640)."""
    pbx = clean
    conf = pbx.root.p(CONF)
    original = conf.read_text()

    def plant(connection):
        text = "".join(f"connection = {connection}\n" if line.startswith("connection =") else
                       f"target = {ROOT_ONLY}\n" if line.startswith("target =") else line
                       for line in original.splitlines(keepends=True))
        assert connection in text and ROOT_ONLY in text
        pbx.root.write("/var/tmp/planted.conf", text)
        pbx.root.sh(f"cp /var/tmp/planted.conf /etc/asterisk/.planted && mv -f /etc/asterisk/.planted {CONF}",
                    user="asterisk", check=True)
        assert pbx.root.sh(f"stat -c %U {CONF}", check=True).stdout.strip() == "asterisk"
        return pbx

    try:
        yield plant
    finally:
        conf.unlink()
        pbx.root.write(CONF, original, mode=0o640, owner="root:asterisk")
        for leftover in (RAN, ROOT_ONLY):
            pbx.root.p(leftover).unlink(missing_ok=True)


@pytest.mark.parametrize("way", sorted(PLANTED_CONNECTIONS))
def test_a_config_planted_by_asterisk_never_runs_as_root(plant_config, way):
    pbx = plant_config(PLANTED_CONNECTIONS[way])
    pbx.ast.ami.action("QueueAdd", Queue="8008", Interface=f"Local/{NUM}@qmt-ring/n")   # one for the sweep
    results = {args[0]: qmt(pbx, *args) for args in COMMANDS}
    for command, p in results.items():
        assert "Traceback" not in p.stderr, (command, p.stderr)
        assert p.returncode in (0, 1, 3) and len(p.stderr.splitlines()) <= 1, (command, p.returncode, p.stderr)
    ran = pbx.root.p(RAN).read_text().splitlines() if pbx.root.p(RAN).exists() else []
    uid = asterisk_uid(pbx)
    assert ran, "the planted library never ran: this test planted nothing"
    assert set(ran) == {f"uid={uid} euid={uid}"}, ran                   # never uid 0
    assert not pbx.root.p(ROOT_ONLY).exists(), "root wrote the file the planted [log] target names"
    if way == "LoadExt":                  # the table was read: the sweep removed him and tried to log it
        assert results["sweep"].returncode == 0 and pbx.ast.member_list("8008") == []


def test_roots_qmt_runs_as_asterisk_and_still_works(clean):
    pbx = clean
    pbx.allow(NUM, "8008", name="Ivan")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    status = qmt(pbx, "status")
    assert (status.returncode, status.stderr) == (0, "") and status.stdout.startswith(f"queue 8008 {NUM} (Ivan)")
    check = qmt(pbx, "check", NUM)
    assert check.returncode == 0 and "decision:  LOGGEDIN, action logout 8008" in check.stdout, check.stdout
    listed = qmt(pbx, "list")
    assert (listed.returncode, listed.stdout) == (0, f"{NUM} queue 8008 penalty 0 name 'Ivan': active\n")
    doctor = qmt(pbx, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[PASS]    database: table queue_mobile_agents reachable as asterisk: 1 row(s)" in doctor.stdout
    assert "[PASS]    ring:" in doctor.stdout                          # asterisk -rx, as asterisk
    unlock = qmt(pbx, "unlock", NUM)                                # astdb through asterisk -rx
    assert unlock.returncode in (0, 1) and unlock.stderr == "" and unlock.stdout.startswith(f"{NUM}: "), unlock


def test_roots_qmt_writes_the_sqlite_allowlist_as_asterisk(clean):
    pbx = clean
    mode = pbx.root.sh(f"stat -c '%a %U:%G' {SQLITE_DB}", check=True).stdout.strip()
    assert mode == "660 root:asterisk"                                  # the asterisk group writes it
    allowed = qmt(pbx, "allow", NUM, "--queue", "8008")
    assert allowed.returncode == 0, allowed.stderr
    assert pbx.sql("SELECT number, queue FROM queue_mobile_agents") == [(NUM, "8008")]
    revoked = qmt(pbx, "revoke", NUM)
    assert revoked.returncode == 0 and pbx.sql("SELECT number FROM queue_mobile_agents") == [], revoked.stderr
