"""Shift windows and the break from the phone (issue 18) through the real
script against the fake Asterisk and a real SQLite3 ODBC allowlist, and
`qmt allow --shift`, `list` and `sweep` against the fake manager."""

import datetime
import os
import subprocess
import sys
import time

import pytest

from qmt.shifts import DAYS
from support import REPO, write_config

N = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % N
ZONE = "[shifts]\nzone = UTC\n"


def today(offset=0):
    return DAYS[(datetime.datetime.now(datetime.timezone.utc).weekday() + offset) % 7]


OPEN, CLOSED = "%s 00:00-24:00" % today(), "%s 00:00-24:00" % today(3)


@pytest.fixture
def shifts(toggle):
    toggle.configure(extra=ZONE)
    return toggle


def set_shift(toggle, queue, shift):
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET shift_window = ? WHERE number = ? AND queue = ?",
                             shift, N, queue)


def permit(toggle, queue, shift=None):
    toggle.allowlist.add(N, queue)
    set_shift(toggle, queue, shift)


def call(toggle, queue=None, **kwargs):
    run = toggle.call(N, queue, **kwargs)
    assert not run.killed_by_peer and run.exit_code == 0 and "Traceback" not in run.stderr, run.stderr
    return run


def qmt(toggle, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    return subprocess.run([sys.executable, "-m", "qmt", "--config", toggle.config, *args],
                          capture_output=True, text=True, env=env, timeout=60)


# -- the AGI: logins outside the window ----------------------------------------

def test_a_login_outside_the_window_is_refused_with_outside_shift_and_logged(shifts):
    permit(shifts, "8008", CLOSED)
    run = call(shifts, "8008")
    assert (run.state, run.get("QMT_REASON"), run.get("QAGENT_UNAUTHORIZED")) == ("DENIED", "outside_shift", "1")
    assert "reason=outside_shift" in shifts.log_lines()[-1]
    assert not shifts.member("8008", N)


def test_a_login_inside_the_window_is_permitted(shifts):
    permit(shifts, "8008", OPEN)
    assert call(shifts, "8008").state == "LOGGEDOUT"


def test_a_member_outside_the_window_still_logs_out(shifts):
    permit(shifts, "8008", CLOSED)
    shifts.asterisk.queues["8008"].append(IFACE)
    run = call(shifts, "8008")
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])


def test_the_all_queues_login_joins_only_the_queues_whose_window_is_open(shifts):
    permit(shifts, "8008", OPEN)
    permit(shifts, "8010", CLOSED)
    run = call(shifts)
    assert (run.state, run.queues) == ("LOGGEDOUT", ["8008"])
    assert "detail=outside_shift=8010" in shifts.log_lines()[-1]


def test_a_bad_window_is_a_bad_row_never_always(shifts):
    permit(shifts, "8008", "weekdays 9-18")
    run = call(shifts, "8008")
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "bad_row")
    assert "bad_shift" in shifts.log_lines()[-1]


# -- the AGI: the break destination --------------------------------------------

def test_a_break_pauses_the_member_in_all_its_queues_and_the_next_call_resumes(shifts):
    permit(shifts, "8008")
    permit(shifts, "8010")
    shifts.asterisk.queues["8008"].append(IFACE)
    shifts.asterisk.queues["8010"].append(IFACE)
    run = call(shifts, action="break")
    assert (run.state, run.get("QMT_REASON"), sorted(run.queues)) == ("WORKING", "break", ["8008", "8010"])
    assert [run.get("QMT_IFACE_%d" % i) for i in (1, 2)] == [IFACE, IFACE]
    assert "action=pause reason=break" in shifts.log_lines()[-1]
    for queue in ("8008", "8010"):                  # as the dialplan's PauseQueueMember(...,qmt-break)
        shifts.asterisk.paused.add((queue, IFACE))
        shifts.asterisk.pause_reasons[(queue, IFACE)] = "qmt-break"
    run = call(shifts, action="break")
    assert (run.state, run.get("QMT_REASON"), sorted(run.queues)) == ("PAUSED", "break_over", ["8008", "8010"])


def test_a_break_is_refused_to_a_number_that_is_not_a_member(shifts):
    permit(shifts, "8008")
    run = call(shifts, action="break")
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "not_member")


def test_a_break_is_refused_to_a_member_whose_row_is_gone(shifts):
    shifts.asterisk.queues["8008"].append(IFACE)
    shifts.configure(managed="8008", extra=ZONE)
    run = call(shifts, action="break")
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "not_permitted")


def test_an_action_the_dialplan_never_sends_is_an_error(shifts):
    permit(shifts, "8008")
    run = call(shifts, action="nap")
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "bad_action_argument")


# -- qmt allow --shift, list, sweep -------------------------------------------

def shift_column(toggle):
    return [row[0] for row in toggle.allowlist.execute("SELECT shift_window FROM queue_mobile_agents")]


def test_allow_stores_a_checked_shift_list_shows_it_and_an_empty_one_clears_it(shifts):
    result = qmt(shifts, "allow", N, "--queue", "8008", "--shift", "Mon-Fri 09:00-18:00")
    assert result.returncode == 0, result.stderr
    assert shift_column(shifts) == ["mon,tue,wed,thu,fri 09:00-18:00"]
    assert "shift 'mon,tue,wed,thu,fri 09:00-18:00'" in qmt(shifts, "list").stdout
    qmt(shifts, "allow", N, "--queue", "8008", "--penalty", "2")
    assert shift_column(shifts) == ["mon,tue,wed,thu,fri 09:00-18:00"]          # an update keeps it
    assert qmt(shifts, "allow", N, "--queue", "8008", "--shift", "").returncode == 0
    assert shift_column(shifts) == [None]


def test_allow_refuses_a_bad_shift_and_writes_nothing(shifts):
    result = qmt(shifts, "allow", N, "--queue", "8008", "--shift", "mon-fri 9-18")
    assert result.returncode == 2 and "--shift" in result.stderr
    assert shift_column(shifts) == []


def test_the_sweep_removes_a_member_whose_window_closed_with_one_log_line(shifts):
    permit(shifts, "8008", CLOSED)
    permit(shifts, "8010", OPEN)
    shifts.asterisk.queues["8008"].append(IFACE)
    shifts.asterisk.queues["8010"].append(IFACE)
    result = qmt(shifts, "sweep", "--apply")
    assert result.returncode == 0, result.stderr + result.stdout
    assert (shifts.member("8008", N), shifts.member("8010", N)) == (False, True)
    swept = [line for line in shifts.log_lines() if "sweep" in line]
    assert len(swept) == 1 and "queue=8008" in swept[0] and "removed reason=outside_shift" in swept[0]


@pytest.mark.parametrize("minutes, paused_for, resumed", [("1", 61, True), ("1", 50, False), ("0", 10 ** 6, False)])
def test_the_sweep_ends_a_break_after_break_minutes(shifts, minutes, paused_for, resumed):
    write_config(shifts.config, "DSN=qmt_test", shifts.log_file, member="break_minutes = %s\n" % minutes,
                 extra=shifts.ami.config() + ZONE)
    permit(shifts, "8008")
    shifts.asterisk.queues["8008"].append(IFACE)
    shifts.asterisk.paused.add(("8008", IFACE))
    shifts.asterisk.pause_reasons[("8008", IFACE)] = "qmt-break"
    shifts.asterisk.last_pauses[("8008", IFACE)] = int(time.time()) - paused_for
    result = qmt(shifts, "sweep", "--apply")
    assert result.returncode == 0, result.stderr
    assert (("8008", IFACE) not in shifts.asterisk.paused) == resumed
    assert ("reason=break_over resumed" in "\n".join(shifts.log_lines())) == resumed
