"""The installer's parsers and steps, in a temporary folder standing for "/":
Asterisk's answers (with the warning lines it prints first), the connection
string and its masking, the manifest, the steps' idempotence."""

import io
import os

import pytest

from qmt.install import asterisk
from qmt.install.connection import any_dsn, config_connection, masked, plain_dsn
from qmt.install.facts import CONFIG, MANIFEST, ODBC_INI
from qmt.install.files import SafeFiles
from qmt.install.install import Install
from qmt.install.manifest import KEYS, Manifest, agi_dirs_used, render
from qmt.install.report import Report
from qmt.install.steps import Options, astagidir
from qmt.install.uninstall import Uninstall

EID = "No ethernet interface found for seeding global EID. You will need to set it manually.\n"
VERSION = "Asterisk 22.5.2~dfsg+~cs6.15.60671435-1 built by pbuilder @ debian on a x86_64 running Linux\n"
SETTINGS = """
PBX Core settings
-----------------
  Version:                     22.5.2
  AGI Scripts directory:       /srv/agi-bin \r
  Data directory:              /usr/share/asterisk
"""
QUEUE_SHOW = """\
8008 has 0 calls (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), W:0, C:0, A:0, SL:0.0%
   Members:
      79001112233 (Local/79001112233@qmt-ring/n) (ringinuse disabled) (dynamic) (Not in use) has taken no calls yet
      Ext 100 (Local/100@from-queue/n) (ringinuse enabled) (Not in use) has taken no calls yet
   No Callers

8012 has 1 call (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), W:0, C:0, A:0, SL:0.0%
   Members:
      LOCAL/79004445566@QMT-RING/n (dynamic) (Not in use) has taken no calls yet
"""


# ------------------------------------------------------------ asterisk -rx
def test_a_running_asterisk_is_recognised_behind_the_eid_warning():
    assert asterisk.is_version_answer(EID + VERSION)
    assert asterisk.is_version_answer(VERSION)


def test_an_error_is_no_version_answer():
    assert not asterisk.is_version_answer("Unable to connect to remote asterisk (does /var/run/asterisk.ctl exist?)")
    assert not asterisk.is_version_answer(EID)


def test_the_agi_dir_is_read_behind_the_eid_warning_without_trailing_blanks():
    assert asterisk.agi_dir_of_settings(EID + SETTINGS) == "/srv/agi-bin"
    assert asterisk.agi_dir_of_settings(EID) == ""


def test_ring_members_are_found_per_queue_and_a_warning_names_no_queue():
    noisy = EID + "   Local/79009999999@qmt-ring/n before any queue\n" + QUEUE_SHOW
    assert asterisk.ring_members(noisy) == [("8008", "Local/79001112233@qmt-ring/n"),
                                            ("8012", "LOCAL/79004445566@QMT-RING/n")]


def test_deleted_keys_are_counted_behind_the_warning():
    assert asterisk.deleted_keys(EID + "2 database entries removed.\n") == 2
    assert asterisk.deleted_keys(EID + "Database unavailable\n") == 0


def test_a_context_is_loaded_when_dialplan_show_names_it():
    assert asterisk.has_context(EID + "[ Context 'app-queue-toggle-mob' created by 'pbx_config' ]\n",
                                "app-queue-toggle-mob")
    assert not asterisk.has_context(EID + "There is no existence of 'app-queue-toggle-mob' context\n",
                                    "app-queue-toggle-mob")


def test_running_asks_asterisk_and_reads_past_the_warning(tmp_path, monkeypatch):
    fake = tmp_path / "asterisk"
    fake.write_text(f"#!/bin/sh\ncat <<'X'\n{EID}{VERSION}X\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    assert asterisk.running()
    fake.write_text("#!/bin/sh\necho 'Unable to connect'; exit 1\n")
    assert not asterisk.running()


# ------------------------------------------------------- asterisk.conf
def test_astagidir_counts_only_outside_a_template_section():
    conf = "[directories](!)\nastagidir => /usr/share/asterisk/agi-bin\n"
    assert astagidir(conf) == ""
    assert astagidir(conf.replace("(!)", "")) == "/usr/share/asterisk/agi-bin"
    assert astagidir("[directories] ; real\nastagidir=/srv/agi ; here\n") == "/srv/agi"


# ------------------------------------------------- the connection string
def test_the_shared_masker_hides_a_braced_password_whole():
    shown = masked("DSN=x;Password = {a;b}};c}")
    assert shown == "DSN=x;Password = ***"
    assert "b}" not in shown and "c}" not in shown


def test_every_password_key_is_masked():
    assert masked("PASSWD=s1;DSN=q;UID=agi;passwd =s2;DbPasswd=s3;Pwd=s4") == \
        "PASSWD=***;DSN=q;UID=agi;passwd =***;DbPasswd=***;Pwd=***"


def test_the_config_connection_defaults_to_the_dsn_and_a_broken_config_reads_as_none():
    assert config_connection(b"[log]\ntarget = syslog\n") == "DSN=queue_mobile_toggle"
    assert config_connection(b"[database]\nconnection = DSN=x ; note\n") == "DSN=x"
    assert config_connection(b"no section\n") is None
    assert config_connection(b"[database]\nconnection = \xff\n") is None


def test_plain_dsn_needs_exactly_dsn_equals_name():
    assert plain_dsn("DSN=queue_mobile_toggle") == "queue_mobile_toggle"
    assert plain_dsn("dsn=a.b-c;") == "a.b-c"
    assert plain_dsn("DSN=a;UID=b") == ""


def test_any_dsn_finds_the_dsn_anywhere():
    assert any_dsn("UID=agi; dsn = qmt_elsewhere  ;PWD=x") == "qmt_elsewhere"
    assert any_dsn("Driver=SQLite3;Database=/x") == ""


# -------------------------------------------------------------- the manifest
def test_the_manifest_gives_the_last_value_and_all_of_a_repeated_key():
    m = Manifest("# header\nagi_dir=/a\nagi_dir=/b\nbackend=sqlite\nsweep=\n")
    assert m.all("agi_dir") == ["/a", "/b"] and m.get("agi_dir") == "/b"
    assert m.get("sweep") == "" and m.get("missing") == ""


def test_agi_dirs_used_end_with_the_current_one():
    assert agi_dirs_used(["/a", "/b", "/c"], "/b") == ["/a", "/c", "/b"]
    assert agi_dirs_used([], "/b") == ["/b"]


def test_the_manifest_keeps_its_keys_and_their_order():
    text = render(["/a", "/b"], {"backend": "sqlite", "sqlite_db": "/db"})
    keys = [line.split("=", 1)[0] for line in text.splitlines()[1:]]
    assert keys == ["agi_dir", "agi_dir", "include_file", "dsn_added", "sqlite_db", "config_sha256", "backend",
                    "ami_file", "sweep", "fastagi_unit"]
    assert KEYS == ("agi_dir", "include_file", "dsn_added", "sqlite_db", "config_sha256", "backend", "ami_file",
                    "sweep", "fastagi_unit")
    assert Manifest(text).get("sqlite_db") == "/db" and Manifest(text).get("ami_file") == ""


# ----------------------------------------------------------------- the steps
@pytest.fixture
def box(tmp_path):
    """A folder standing for "/", with /etc/asterisk and /opt/queue-mobile-toggle."""
    tmp_path.chmod(0o755)
    for folder in ("etc/asterisk", "opt/queue-mobile-toggle"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def run_of(kind, box, **options):
    out = io.StringIO()
    run = kind(Options(**options), SafeFiles(os.getuid(), "asterisk", top=str(box)), Report(out=out))
    return run, out


def test_the_manifest_is_written_once_and_a_rerun_leaves_the_file_alone(box):
    run, _ = run_of(Install, box)
    run.state.agi_dir, run.state.include_file = "/srv/agi", "/etc/asterisk/extensions.conf"
    run.state.recorded.update(dsn_added="queue_mobile_toggle", sqlite_db="/var/lib/q.sqlite")
    run.write_manifest()
    manifest = box / MANIFEST.lstrip("/")
    first = manifest.stat().st_ino
    run.write_manifest()
    assert manifest.stat().st_ino == first                  # not rewritten
    assert Manifest(manifest.read_text()).get("dsn_added") == "queue_mobile_toggle"
    assert oct(manifest.stat().st_mode & 0o777) == "0o644"


def test_the_sqlite_dsn_is_added_once_and_recorded(box):
    run, out = run_of(Install, box)
    (box / ODBC_INI.lstrip("/")).write_text("[other]\nDriver = x")
    run.install_sqlite_dsn("queue_mobile_toggle", "/var/lib/q.sqlite")
    run.install_sqlite_dsn("queue_mobile_toggle", "/var/lib/q.sqlite")
    text = (box / ODBC_INI.lstrip("/")).read_text()
    assert text.startswith("[other]\nDriver = x\n[queue_mobile_toggle]\n") and text.count("[queue_mobile_toggle]") == 1
    assert run.state.recorded["dsn_added"] == "queue_mobile_toggle"
    assert out.getvalue().splitlines() == [
        "[changed] allowlist: added DSN queue_mobile_toggle (SQLite3, /var/lib/q.sqlite) to /etc/odbc.ini",
        "[ok]      allowlist: DSN queue_mobile_toggle in /etc/odbc.ini"]


def test_uninstall_removes_only_its_dsn_and_keeps_the_rest_byte_for_byte(box):
    odbc = box / ODBC_INI.lstrip("/")
    odbc.write_text("; mine\n[a]\nDriver = x\n\n[queue_mobile_toggle]\nDriver = SQLite3\n[b]\nDriver = y\n")
    run, out = run_of(Uninstall, box)
    run.remove_sqlite_dsn("queue_mobile_toggle")
    assert odbc.read_text() == "; mine\n[a]\nDriver = x\n\n[b]\nDriver = y\n"
    assert out.getvalue() == "[changed] dsn: removed queue_mobile_toggle from /etc/odbc.ini\n"


def test_the_note_about_another_dsn_never_shows_a_password(box):
    (box / CONFIG.lstrip("/")).write_text("[database]\nconnection = DSN=qmt_elsewhere;Password = {a;b}};c}\n")
    run, out = run_of(Install, box, dsn="queue_mobile_toggle")
    run.state.want_dsn = "queue_mobile_toggle"
    run.read_config_connection()
    assert "connection = DSN=qmt_elsewhere;Password = ***'" in out.getvalue()
    assert "b}" not in out.getvalue()


def test_the_port_of_an_existing_ami_section_follows_manager_conf(box):
    (box / "etc/asterisk/manager.conf").write_text("[general]\nenabled = yes\nport = 5039\n")
    config = box / CONFIG.lstrip("/")
    config.write_text("; mine\n[ami]\nport = 5038\nsecret = s\n")
    run, out = run_of(Install, box)
    run.install_ami_secret_in_config()
    run.install_ami_secret_in_config()
    assert config.read_text() == "; mine\n[ami]\nport = 5039\nsecret = s\n"
    assert out.getvalue().count("[changed]") == 1


def test_steps_print_one_line_each_with_the_tag_in_one_column():
    out = io.StringIO()
    report = Report(changes=2, out=out)
    report.ok("a")
    report.changed("b")
    report.note("c")
    report.failed("d")
    report.final("done.")
    assert out.getvalue() == "[ok]      a\n[changed] b\n[note]    c\n[FAIL]    d\nqueue-mobile-toggle: done.\n"
    assert (report.changes, report.fails) == (3, 1)
