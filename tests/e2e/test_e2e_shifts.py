"""Shift windows (issue 18) on a real Asterisk 22: a login outside the
row's window is refused with its own prompt, and `qmt sweep --apply` logs
a member out once its window has ended (REMOVEMEMBER in queue_log, one log
line reason=outside_shift). Windows are read in UTC here ([shifts] zone)."""

import datetime
import re

import pytest

from harness.logs import prompts
from qmt.shifts import DAYS
from test_e2e_qmt import qmt
from test_e2e_toggle import IFACE, NUM, assert_members, qlog

CONF = "/etc/asterisk/queue_mobile_toggle.conf"


@pytest.fixture(scope="module")
def utc_zone(pbx):
    """[shifts] zone = UTC in the installed config (an admin's edit), put back after."""
    conf = pbx.root.p(CONF)
    before = conf.read_text()
    text, found = re.subn(r"(?m)^zone *=.*$", "zone = UTC", before)
    assert found == 1, "no [shifts] zone line in the installed config"
    conf.write_text(text)
    yield
    conf.write_text(before)


@pytest.fixture
def shifts(clean, utc_zone):
    return clean


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def set_shift(pbx, shift):
    pbx.sql("UPDATE queue_mobile_agents SET shift_window = ? WHERE number = ?", (shift, NUM))


def test_a_login_outside_the_window_is_refused_with_its_own_prompt(shifts):
    pbx = shifts
    pbx.allow(NUM, "8008")
    set_shift(pbx, "%s 00:00-24:00" % DAYS[(now().weekday() + 3) % 7])
    r = pbx.ast.call(NUM)
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["QMT_REASON"], r["QAGENT_UNAUTHORIZED"]) == \
        ("SUCCESS", "DENIED", "outside_shift", "1")
    assert prompts(r["_log"]) == ["im-sorry", "please-try-call-later"]
    assert_members(pbx, {})
    assert any("reason=outside_shift" in line for line in pbx.qmt_log())


def test_the_sweep_logs_a_member_out_at_the_end_of_its_window(shifts):
    pbx = shifts
    start = now()
    if start.hour == 0 and start.minute < 2 or start.hour == 23 and start.minute > 57:
        pytest.skip("too near midnight for a window of today that has just ended")
    today = DAYS[start.weekday()]
    pbx.allow(NUM, "8008", name="Ivan")
    pbx.allow(NUM, "8010", name="Ivan")
    set_shift(pbx, "%s 00:00-24:00" % today)
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED")
    assert_members(pbx, {"8008": {IFACE: (0, "Ivan")}, "8010": {IFACE: (0, "Ivan")}})
    p = qmt(pbx, "sweep", "--apply")
    assert (p.returncode, p.stdout.strip()) == (0, "nothing to sweep"), p.stderr
    # 8008's window ends at this very minute; 8010's goes on until midnight.
    pbx.sql("UPDATE queue_mobile_agents SET shift_window = ? WHERE number = ? AND queue = '8008'",
            ("%s 00:00-%02d:%02d" % (today, start.hour, start.minute), NUM))
    p = qmt(pbx, "sweep", "--apply")
    assert p.returncode == 0, p.stderr
    assert "removed: queue 8008 %s (Ivan)" % NUM in p.stdout and "outside_shift" in p.stdout
    assert_members(pbx, {"8010": {IFACE: (0, "Ivan")}})
    assert qlog(pbx, "REMOVEMEMBER") == ["8008"]
    swept = [line for line in pbx.qmt_log() if "sweep number=%s" % NUM in line]
    assert swept and "queue=8008" in swept[-1] and swept[-1].endswith("removed reason=outside_shift")
    # A call now logs the member out of 8010, as always.
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
