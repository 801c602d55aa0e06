"""PINs on the real Asterisk (issue 9): the caller's side of the call keys
DTMF with SendDTMF, the installed script asks with GET DATA, the lockout
lives in Asterisk's astdb, `qmt unlock` clears it."""

import re
import time

import pytest

from harness.logs import prompts
from qmt.pin import hash_pin
from test_e2e_toggle import DIGITS, IFACE, NUM, assert_members, qlog

PIN = "2468"
CONF = "/etc/asterisk/queue_mobile_toggle.conf"
STRANGER = "79990001122"
# Keying: wait 2 s for the first prompt, then a PIN and '#'; a second entry
# waits 1 s more (auth-incorrect, the next try's prompt, listens for digits).
FIRST, NEXT = "wwww", "ww"
WRONG3 = ["agent-pass", "auth-incorrect", "auth-incorrect"]
RING_IFACE = IFACE


def keys(*pins):
    return FIRST + NEXT.join(pin + "#" for pin in pins)


@pytest.fixture
def pins(clean):
    """The clean PBX with NUM permitted in 8008 behind a PIN; any [pin]
    settings a test adds are taken out again."""
    conf = clean.root.p(CONF)
    before = conf.read_text()
    clean.sql("INSERT INTO queue_mobile_agents (number, queue, pin_hash) VALUES (?, '8008', ?)",
              (NUM, hash_pin(PIN)))
    clean.ast.cli("database deltree qmt-pin")
    yield clean
    conf.write_text(before)
    clean.ast.cli("database deltree qmt-pin")


def set_pin_option(pbx, key, value):
    """One key of the config's [pin] section (the example install.sh copies has them all)."""
    conf = pbx.root.p(CONF)
    text, changed = re.subn(rf"^{key} = .*$", f"{key} = {value}", conf.read_text(), count=1, flags=re.M)
    assert changed == 1, f"no '{key} =' line in {CONF}"
    conf.write_text(text)


def call(pbx, *pins, caller=NUM, target="8008"):
    return pbx.ast.result(pbx.ast.place(caller, target=target, keys=keys(*pins)), timeout=90)


def test_the_right_pin_logs_in(pins):
    r = call(pins, PIN)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r
    assert prompts(r["_log"]) == ["agent-pass", "agent-loginok"] + DIGITS
    assert_members(pins, {"8008": {IFACE: (0, NUM)}})
    assert qlog(pins, "ADDMEMBER") == ["8008"]
    assert not any(PIN in line for line in pins.qmt_log())


def test_wrong_wrong_right_logs_in(pins):
    r = call(pins, "1111", "2222", PIN)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r
    assert prompts(r["_log"]) == WRONG3 + ["agent-loginok"] + DIGITS


def test_three_wrong_pins_refuse_and_change_nothing(pins):
    r = call(pins, "1111", "2222", "3333")
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == ("DENIED", "wrong_pin", "")
    assert prompts(r["_log"]) == WRONG3 + ["pbx-invalid"]
    assert_members(pins, {})
    assert qlog(pins, "ADDMEMBER") == []


def test_wrong_pins_across_calls_lock_out_until_qmt_unlock(pins):
    assert call(pins, "1111", "2222", "3333")["QMT_REASON"] == "wrong_pin"
    assert call(pins, "1111", "2222", PIN)["QMT_REASON"] == "locked_out"          # the 5th wrong one locks
    r = call(pins, PIN)                                                           # even the right PIN now
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "locked_out")
    assert prompts(r["_log"])[-1] == "pbx-invalid"
    check = pins.root.sh(f"qmt check {NUM}")
    assert check.returncode == 1 and "pin:       LOCKED until" in check.stdout
    unlock = pins.root.sh(f"qmt unlock {NUM}")
    assert unlock.returncode == 0 and "unlocked" in unlock.stdout
    r = call(pins, PIN)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED")
    assert_members(pins, {"8008": {IFACE: (0, NUM)}})


def test_with_pins_required_a_stranger_hears_what_a_wrong_pin_hears(pins):
    set_pin_option(pins, "required", "yes")
    wrong = call(pins, "1111", "2222", "3333")
    stranger = call(pins, PIN, PIN, PIN, caller=STRANGER)
    assert (stranger["QUEUESTAT"], stranger["QMT_REASON"]) == ("DENIED", "not_permitted")
    assert prompts(stranger["_log"]) == prompts(wrong["_log"]) == WRONG3 + ["pbx-invalid"]
    assert "qmt-pin/" + STRANGER not in pins.ast.cli("database show qmt-pin")
    assert_members(pins, {})


def test_logout_needs_no_pin_by_default_but_does_with_for_logout(pins):
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"
    r = pins.ast.call(NUM, target="8008")                                   # no keys at all
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]

    set_pin_option(pins, "for_logout", "yes")
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"
    r = call(pins, "1111", "2222", "3333")
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "wrong_pin")
    assert_members(pins, {"8008": {IFACE: (0, NUM)}})                       # still a member
    r = call(pins, PIN)
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert prompts(r["_log"]) == ["agent-pass", "agent-loggedoff"]
    assert_members(pins, {})


# -- issue 14: the lock race, silence, quick keys, resuming ------------------------------

SPELLINGS = ["+" + NUM, NUM, "8" + NUM[1:], NUM[1:]]       # one number, four caller IDs


def failures_on_record(pbx):
    shown = pbx.ast.cli(f"database get qmt-pin {NUM}")
    value = re.search(r"Value: (\S+)", shown)
    return value.group(1) if value else None


def test_parallel_calls_in_all_four_spellings_are_counted_together(pins):
    """MEDIUM 1: one lock per normalised number. Four calls at once, one per
    spelling, each keying three wrong PINs: one dialogue runs, the other
    three wait 3 s for the lock and give up (toggle_busy, error prompt)."""
    slots = [pins.ast.prepare(cid, target="8008", keys=keys("1111", "2222", "3333")) for cid in SPELLINGS]
    pins.ast.originate(slots)
    results = [pins.ast.result(slot, timeout=90) for slot in slots]
    reasons = sorted(r["QMT_REASON"] for r in results)
    assert reasons == ["toggle_busy"] * 3 + ["wrong_pin"], results
    assert failures_on_record(pins).startswith("3,")          # 3 counted, not 12
    for busy in (r for r in results if r["QMT_REASON"] == "toggle_busy"):
        assert prompts(busy["_log"]) == ["sorry-youre-having-problems"]
    # The next round in all four spellings: the 5th wrong PIN locks, and the
    # right one keyed by the others' turns changes nothing.
    slots = [pins.ast.prepare(cid, target="8008", keys=keys("4444", "5555", PIN)) for cid in SPELLINGS]
    pins.ast.originate(slots)
    results = [pins.ast.result(slot, timeout=90) for slot in slots]
    assert "locked_out" in [r["QMT_REASON"] for r in results]
    assert not any(r["QUEUESTAT"] == "LOGGEDOUT" for r in results), results
    assert_members(pins, {})
    assert call(pins, PIN)["QMT_REASON"] == "locked_out"


def test_silent_calls_never_lock_the_number(pins):
    """LOW 5: two calls in which nothing is keyed are no wrong PINs."""
    for _ in range(2):
        r = pins.ast.call(NUM, target="8008", timeout=90)
        assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "no_pin_keyed"), r
        assert prompts(r["_log"]) == ["agent-pass"] * 3 + ["pbx-invalid"]
    assert failures_on_record(pins) is None
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"


def test_a_pin_keyed_a_second_after_answer_counts(pins):
    """LOW 6: the dialplan no longer throws away the first second's digits."""
    r = pins.ast.result(pins.ast.place(NUM, target="8008", keys="ww" + PIN + "#"), timeout=90)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r


def test_a_hang_up_mid_pin_is_logged_as_nothing_changed(pins):
    """LOW 6: the log line of a hang-up does not read like a login."""
    slot = pins.ast.place(NUM, target="8008", keys=FIRST + "12")
    deadline = time.monotonic() + 30
    while "agent-pass" not in prompts(pins.ast.call_log(slot)) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)                                       # two digits keyed, the PIN not finished
    pins.ast.cli("channel request hangup all")
    pins.ast.result(slot, timeout=30)
    line = next(x for x in reversed(pins.qmt_log()) if "reason=channel_gone" in x)
    assert "action=none" in line and "nothing changed" in line and "action=login" not in line
    assert_members(pins, {})


def pause(pbx, reason):
    pbx.ast.ami.action("QueuePause", Queue="8008", Interface=RING_IFACE, Paused="true", Reason=reason)


def paused_reason(pbx):
    for m in pbx.ast.ami.action("QueueStatus", Queue="8008"):
        if m.get("Event") == "QueueMember" and m.get("Location") == RING_IFACE:
            return m.get("PausedReason") if m.get("Paused") == "1" else None
    raise AssertionError("not a member of 8008")


def test_resuming_needs_the_pin_and_undoes_only_the_ring_paths_pause(pins):
    """MEDIUM 3: a forged caller ID with no keys resumes nobody; the right
    PIN resumes a pause the ring path made; a supervisor's pause is never
    undone by a call."""
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"
    pause(pins, "qmt-missed")
    r = pins.ast.call(NUM, target="8008", timeout=90)                      # no keys at all
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "no_pin_keyed"), r
    assert paused_reason(pins) == "qmt-missed"
    r = call(pins, PIN)
    assert r["QUEUESTAT"] == "PAUSED" and paused_reason(pins) is None, r
    assert qlog(pins, "UNPAUSE", iface=NUM) == ["8008"]              # queue_log names the member
    pause(pins, "supervisor")
    r = call(pins, PIN)
    assert r["QUEUESTAT"] == "LOGGEDIN", r                                   # he may leave, never resume
    assert qlog(pins, "UNPAUSE", iface=NUM) == ["8008"]                      # still the one from before
