"""A break from the phone (issue 18) on a real Asterisk 22: a logged-in
mobile calls app-queue-toggle-mob,pause,1 and is paused in all its queues
with reason qmt-break; the next call there resumes it at once; with
[member] break_minutes set, `qmt sweep --apply` resumes it once the break
has lasted that long (AMI's LastPause). A fraction of a minute keeps the
test short: 0.1 is 6 s."""

import re
import time

import pytest

from harness.logs import prompts
from test_e2e_qmt import qmt
from test_e2e_toggle import IFACE, NUM, qlog

CONF = "/etc/asterisk/queue_mobile_toggle.conf"
BREAK_SECONDS = 6


@pytest.fixture
def on_duty(clean):
    pbx = clean
    pbx.allow(NUM, "8008", name="Ivan")
    pbx.allow(NUM, "8010", name="Ivan")
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED")
    return pbx


@pytest.fixture
def break_minutes(pbx):
    """[member] break_minutes = 0.1 in the installed config, put back after."""
    conf = pbx.root.p(CONF)
    before = conf.read_text()
    text, found = re.subn(r"(?m)^break_minutes *=.*$", "break_minutes = %g" % (BREAK_SECONDS / 60), before)
    assert found == 1, "no break_minutes line in the installed config"
    conf.write_text(text)
    yield
    conf.write_text(before)


def state(pbx, queue):
    for m in pbx.ast.ami.action("QueueStatus", Queue=queue):
        if m.get("Event") == "QueueMember" and m.get("Location") == IFACE:
            return m.get("Paused"), m.get("PausedReason")
    return None


def pause_reasons(pbx, event):
    """queue_log's PAUSE or UNPAUSE lines of the member: {queue: reason}."""
    return {line.split("|")[2]: line.split("|")[5] for line in pbx.ast.queue_log_lines()[pbx.queue_log_mark:]
            if line.split("|")[4:5] == [event] and line.split("|")[3] == "Ivan"}


def take_break(pbx):
    r = pbx.ast.call(NUM, target="pause")
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["QMT_REASON"], r["PQMSTATUS"], r["QMT_COUNT"]) == \
        ("SUCCESS", "WORKING", "break", "PAUSED", "2"), r
    assert prompts(r["_log"]) == ["dictate/paused"]
    assert [state(pbx, q) for q in ("8008", "8010")] == [("1", "qmt-break")] * 2
    return r


def test_a_member_pauses_from_the_phone_and_the_next_call_resumes_him(on_duty):
    pbx = on_duty
    take_break(pbx)
    assert pause_reasons(pbx, "PAUSE") == {"8008": "qmt-break", "8010": "qmt-break"}
    assert any("action=pause reason=break" in line for line in pbx.qmt_log())
    r = pbx.ast.call(NUM, target="pause")
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["UPQMSTATUS"]) == ("PAUSED", "break_over", "UNPAUSED"), r
    assert prompts(r["_log"]) == ["agent-loginok"]
    assert [state(pbx, q) for q in ("8008", "8010")] == [("0", "")] * 2
    assert sorted(pause_reasons(pbx, "UNPAUSE")) == ["8008", "8010"]
    assert qlog(pbx, "REMOVEMEMBER") == []                # still a member: a break is no logout


def test_a_number_that_is_not_a_member_cannot_take_a_break(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    r = pbx.ast.call(NUM, target="pause")
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "not_member")
    assert prompts(r["_log"]) == ["pbx-invalid"]


def test_the_sweep_ends_a_break_after_break_minutes(on_duty, break_minutes):
    pbx = on_duty
    take_break(pbx)
    p = qmt(pbx, "sweep", "--apply")
    assert (p.returncode, p.stdout.strip()) == (0, "nothing to sweep"), p.stdout + p.stderr
    assert state(pbx, "8008") == ("1", "qmt-break")
    time.sleep(BREAK_SECONDS + 1)
    p = qmt(pbx, "sweep", "--apply")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("resumed (break over):") == 2
    assert [state(pbx, q) for q in ("8008", "8010")] == [("0", "")] * 2
    assert pause_reasons(pbx, "UNPAUSE") == {"8008": "qmt-resumed", "8010": "qmt-resumed"}
    assert sum("reason=break_over resumed" in line for line in pbx.qmt_log()) == 2
