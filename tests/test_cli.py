"""The `qmt` command against a real SQLite3 ODBC allowlist (its commands
that need Asterisk run in tests/e2e/test_e2e_qmt.py)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from support import REPO

N = "79112223344"


def qmt(toggle, *args, config=None):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    return subprocess.run([sys.executable, "-m", "qmt", "--config", config or toggle.config, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def rows(toggle):
    return [tuple(row) for row in toggle.allowlist.execute(
        "SELECT number, queue, penalty, member_name, enabled FROM queue_mobile_agents ORDER BY number, queue")]


def assert_one_line_error(result, code, words):
    assert result.returncode == code, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("qmt: "), result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["sweep", "--help"], ["allow", "--help"]])
def test_help_names_the_exit_codes(toggle, args):
    result = qmt(toggle, *args)
    assert result.returncode == 0
    for code in ("0  done", "1  done, and it found a problem", "2  usage", "3  Asterisk's manager"):
        assert code in result.stdout


def test_usage_errors_exit_2(toggle):
    for args in (["bogus"], ["allow", N], ["allow", N, "--queue", "80 08"], ["check"]):
        assert qmt(toggle, *args).returncode == 2, args


@pytest.mark.parametrize("typed", ["8 (911) 222-33-44", "+7 911 222 33 44", "9112223344", "7-911-222-33-44"])
def test_allow_stores_a_typed_number_as_the_agi_will_match_it(toggle, typed):
    result = qmt(toggle, "allow", typed, "--queue", "8008", "--name", "Ivan Petrov", "--penalty", "2")
    assert result.returncode == 0, result.stderr
    assert rows(toggle) == [(N, "8008", 2, "Ivan Petrov", 1)]
    assert toggle.call(N, "8008").state == "LOGGEDOUT"           # the AGI finds it


@pytest.mark.parametrize("typed", ["12345", "+7 911 abc", "7911;DROP TABLE x", "٧٩١١٢٢٢٣٣٤٤", ""])
def test_allow_refuses_a_number_no_call_could_match(toggle, typed):
    result = qmt(toggle, "allow", typed, "--queue", "8008")
    assert_one_line_error(result, 2, "cannot be a caller's number")
    assert rows(toggle) == []


def test_allow_again_updates_the_row_and_enables_it(toggle):
    toggle.allowlist.add(N, "8008", penalty=1, enabled=0)
    result = qmt(toggle, "allow", N, "--queue", "8008", "--penalty", "5")
    assert result.returncode == 0 and result.stdout.startswith("updated")
    assert rows(toggle) == [(N, "8008", 5, None, 1)]


def test_allow_with_a_window_is_judged_by_the_agi(toggle):
    assert qmt(toggle, "allow", N, "--queue", "8008", "--from", "2001-01-01", "--until", "2002-01-01 12:30") \
        .returncode == 0
    assert toggle.call(N, "8008").state == "DENIED"                # expired
    listed = json.loads(qmt(toggle, "--json", "list").stdout)["rows"]
    assert [(r["number"], r["queue"], r["status"]) for r in listed] == [(N, "8008", "expired")]
    assert qmt(toggle, "allow", N, "--queue", "8008", "--until", "2001-01-01", "--from", "2002-01-01") \
        .returncode == 2


def test_revoke_deletes_the_rows_then_finds_nothing(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    result = qmt(toggle, "revoke", N, "--queue", "8010")
    assert result.returncode == 0 and rows(toggle) == [(N, "8008", 0, None, 1)]
    assert qmt(toggle, "revoke", "8 911 222 33 44").returncode == 0 and rows(toggle) == []
    assert qmt(toggle, "revoke", N).returncode == 1


def test_list_shows_each_row_judged(toggle):
    toggle.allowlist.add(N, "8008", member_name="Ivan")
    toggle.allowlist.add("79990001122", "8010", enabled=0)
    result = qmt(toggle, "list")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "79112223344 queue 8008 penalty 0 name 'Ivan': active",
        "79990001122 queue 8010 penalty 0 name '79990001122': disabled"]


def test_a_database_that_cannot_be_reached_is_exit_3_and_one_line(toggle):
    toggle.configure(connection="DSN=no_such_dsn;PWD=hunter2")
    for args in (["list"], ["allow", N, "--queue", "8008"], ["revoke", N]):
        result = qmt(toggle, *args)
        assert_one_line_error(result, 3, "db_unknown_dsn")
        assert "hunter2" not in result.stderr


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_asterisk_that_cannot_be_reached_is_exit_3_and_one_line(toggle):
    toggle.configure(extra="\n[ami]\nport = %d\nusername = qmt\nsecret = s\n" % closed_port())
    for args in (["status"], ["sweep", "--apply"], ["check", N]):
        assert_one_line_error(qmt(toggle, *args), 3, "cannot reach Asterisk's manager at 127.0.0.1:")


def test_doctor_names_each_failure_and_exits_1(toggle):
    toggle.configure(extra="\n[ami]\nport = %d\nusername = qmt\nsecret = s\n" % closed_port())
    result = qmt(toggle, "doctor")
    assert result.returncode == 1
    assert "[PASS]    database: table queue_mobile_agents reachable as root: 0 row(s)" in result.stdout
    assert "[FAIL]    ami: cannot reach Asterisk's manager" in result.stdout


def test_a_bad_config_is_one_line(toggle, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[member]\ninterface = nothing\n")
    assert_one_line_error(qmt(toggle, "list", config=str(bad)), 3, "member.interface must contain {number}")


# -- PINs: hash-pin and allow --pin read the PIN from stdin, never argv --------

def qmt_with_stdin(toggle, text, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    return subprocess.run([sys.executable, "-m", "qmt", "--config", toggle.config, *args], input=text,
                          capture_output=True, text=True, env=env, timeout=60)


def test_hash_pin_prints_a_hash_of_the_pin_read_from_stdin(toggle):
    from qmt.pin import verify_pin
    result = qmt_with_stdin(toggle, "2468\n", "hash-pin")
    assert result.returncode == 0 and "2468" not in result.stdout
    assert verify_pin("2468", result.stdout.strip())


@pytest.mark.parametrize("pin", ["123", "12a4", "１２３４", "123456789", ""])
def test_hash_pin_refuses_what_is_not_a_pin(toggle, pin):
    assert_one_line_error(qmt_with_stdin(toggle, pin + "\n", "hash-pin"), 2, "a PIN is 4 to 8 digits")


def test_hash_pin_has_no_pin_argument(toggle):
    assert qmt_with_stdin(toggle, "", "hash-pin", "2468").returncode == 2


def test_allow_with_pin_stores_its_hash_and_the_agi_asks_for_it(toggle):
    from qmt.pin import verify_pin
    result = qmt_with_stdin(toggle, "2468\n", "allow", N, "--queue", "8008", "--pin")
    assert result.returncode == 0 and result.stdout.strip().endswith("with a PIN")
    stored = toggle.allowlist.execute("SELECT pin_hash FROM queue_mobile_agents")[0][0]
    assert verify_pin("2468", stored)
    toggle.asterisk.keyed = ["2468#"]
    run = toggle.call(N, "8008")
    assert (run.state, run.prompts) == ("LOGGEDOUT", ["agent-pass"])
    # allow again without --pin keeps the PIN
    assert qmt(toggle, "allow", N, "--queue", "8008", "--penalty", "3").returncode == 0
    assert toggle.allowlist.execute("SELECT pin_hash FROM queue_mobile_agents")[0][0] == stored


def confirm_column(toggle):
    return [row[0] for row in toggle.allowlist.execute("SELECT confirm_answer FROM queue_mobile_agents")]


def test_allow_sets_confirmation_per_number_and_an_update_keeps_it_unless_told(toggle):
    assert qmt(toggle, "allow", N, "--queue", "8008", "--confirm", "no").returncode == 0
    assert confirm_column(toggle) == [0]
    assert toggle.call(N, "8008").get("QMT_RING_CONFIRM") == "0"          # the AGI hands it on
    assert "confirm no: active" in qmt(toggle, "list").stdout
    assert qmt(toggle, "allow", N, "--queue", "8008", "--penalty", "4").returncode == 0
    assert confirm_column(toggle) == [0]
    assert qmt(toggle, "allow", N, "--queue", "8008", "--confirm", "default").returncode == 0
    assert confirm_column(toggle) == [None]
    assert toggle.call(N, "8008").get("QMT_RING_CONFIRM") == "1"
    assert qmt(toggle, "allow", N, "--queue", "8008", "--confirm", "maybe").returncode == 2


# -- qmt status: the ring path's last fault (astdb qmt-ring/<number>/fault) ----

def a_member(**fields):
    member = {"queue": "8008", "number": N, "name": "Ivan", "standing": "permitted", "in_call": False,
              "pin_locked": False, "paused": False, "paused_reason": "", "missed_calls": 0, "ring_path": True,
              "interface": "Local/%s@qmt-ring/n" % N, "login_time": "", "last_ring_fault": None}
    member.update(fields)
    return member


@pytest.mark.parametrize("stored, shown", [
    ("1733400000|CHANUNAVAIL|21", "CHANUNAVAIL (cause 21)"),
    ("1733400000|PBXANSWER|16", "PBXANSWER (cause 16)"),
    ("1733400000|CONGESTION|", "CONGESTION"),
])
def test_a_members_status_line_shows_its_last_ring_fault(stored, shown):
    from qmt.cli import last_ring_fault, member_line
    line = member_line(a_member(last_ring_fault=last_ring_fault({"fault": stored, "missed": "1"})))
    assert line == "queue 8008 %s (Ivan): permitted, last ring fault 2024-12-05 12:00:00Z: %s, not counted as a " \
        "miss" % (N, shown)


@pytest.mark.parametrize("stored", ["garbage", "1733400000|CHANUNAVAIL", "1733400000|CHANUNAVAIL|21|9", "x|BUSY|1",
                                    "1733400000|busy|1", "0|BUSY|1", "99999999999|BUSY|1", "1733400000|BUSY|cause",
                                    "\x1b[31m|BUSY|1", "1733400000|BUSY|1\n2", "١٧٣٣٤٠٠٠٠٠|BUSY|1"])
def test_a_malformed_ring_fault_is_shown_as_unreadable_never_a_crash(stored):
    from qmt.cli import last_ring_fault, member_line
    fault = last_ring_fault({"fault": stored})
    assert set(fault) == {"unreadable"} and all(" " <= c <= "~" for c in fault["unreadable"])
    assert member_line(a_member(last_ring_fault=fault)).endswith(
        ": permitted, last ring fault unreadable ('%s')" % fault["unreadable"])


def test_no_ring_fault_record_adds_nothing_to_the_status_line():
    from qmt.cli import last_ring_fault, member_line
    assert last_ring_fault({"missed": "2"}) is None and last_ring_fault({"fault": ""}) is None
    assert member_line(a_member(missed_calls=2)) == "queue 8008 %s (Ivan): permitted, missed 2 in a row" % N


def test_status_reads_the_fault_from_astdb_beside_the_missed_calls(toggle, tmp_path):
    from test_route import fake_cli
    from test_route import qmt as qmt_on_path
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append("Local/%s@qmt-ring/n" % N)
    toggle.asterisk.astdb.update({("qmt-ring/" + N, "missed"): "2", ("qmt-ring/" + N, "fault"): "1733400000|BUSY|17",
                                  ("qmt-ring/79990001122", "fault"): "garbage"})
    path = fake_cli(toggle, tmp_path)
    result = qmt_on_path(toggle, "status", path=path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.rstrip("\n").endswith(
        ": permitted, missed 2 in a row, last ring fault 2024-12-05 12:00:00Z: BUSY (cause 17), not counted as a miss")
    member = json.loads(qmt_on_path(toggle, "--json", "status", path=path).stdout)["members"][0]
    assert (member["missed_calls"], member["last_ring_fault"]) == \
        (2, {"time": "2024-12-05 12:00:00Z", "status": "BUSY", "cause": "17"})
    toggle.asterisk.astdb[("qmt-ring/" + N, "fault")] = "1733400000|BUSY"
    result = qmt_on_path(toggle, "status", path=fake_cli(toggle, tmp_path))
    assert result.returncode == 0 and "last ring fault unreadable ('1733400000|BUSY')" in result.stdout


# -- doctor: the FastAGI mode (astdb qmt-fastagi/port) and the server's answer --

@pytest.fixture
def switch(monkeypatch):
    """doctor's view of astdb: the qmt-fastagi family, or Asterisk not reachable (None)."""
    from qmt import cli
    from qmt.asterisk_cli import AsteriskCliError
    held = {"family": {}}

    def family(name):
        if held["family"] is None:
            raise AsteriskCliError("cannot ask Asterisk (asterisk -rx): is it running?")
        return held["family"] if name == "qmt-fastagi" else {}
    monkeypatch.setattr(cli, "astdb_family", family)
    return held


def fastagi_verdict(port=4573):
    from qmt.cli import fastagi_mode
    from qmt.config import Settings
    settings = Settings.defaults()
    settings.fastagi_port = port
    return fastagi_mode(settings)


def test_doctor_names_the_classic_mode_when_the_switch_is_off(switch):
    assert fastagi_verdict() == (True, "off: the classic script decides (install.sh --fastagi turns the server on)")
    switch["family"] = None
    ok, detail = fastagi_verdict()
    assert ok is None and detail.startswith("the mode is unknown: cannot ask Asterisk")


def test_doctor_fails_a_switch_whose_server_does_not_answer_and_says_calls_fall_back(switch):
    port = closed_port()
    switch["family"] = {"port": str(port)}
    assert fastagi_verdict(port) == (False, "on at 127.0.0.1:%d, but no server answers there: every call falls back"
                                            " to the classic script, a WARNING each (systemctl status qmt-fastagi)"
                                     % port)


def test_doctor_passes_an_answering_server_on_the_configs_port_only(switch, monkeypatch):
    monkeypatch.setattr("qmt.fastagi.probe", lambda port, timeout=2.0: "0.3.0" if port == 4600 else None)
    switch["family"] = {"port": "4600"}
    assert fastagi_verdict(4600) == (True, "on at 127.0.0.1:4600: qmt serve 0.3.0 answers")
    ok, detail = fastagi_verdict(4573)
    assert ok is False and "but the config's [fastagi] port is 4573" in detail


@pytest.mark.parametrize("stored", ["4573;x", "", "123456", "٤٥٧٣"])
def test_doctor_fails_a_switch_that_is_not_a_port_which_the_dialplan_ignores(switch, stored):
    switch["family"] = {"port": stored}
    ok, detail = fastagi_verdict()
    assert ok is False and "not a port: the dialplan ignores it and runs the classic script" in detail
