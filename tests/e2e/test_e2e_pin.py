"""PINs on the real Asterisk (issue 9): the caller's side of the call keys
DTMF with SendDTMF, the installed script asks with GET DATA, the lockout
lives in Asterisk's astdb, `qmt unlock` clears it."""

import re

import pytest

import e2elib as L
from qmt.pin import hash_pin
from test_e2e_toggle import DIGITS, IFACE, NUM, assert_members, qlog

PIN = "2468"
CONF = "/etc/asterisk/queue_mobile_toggle.conf"
STRANGER = "79990001122"
# Keying: wait 2 s for the first prompt, then a PIN and '#'; a second entry
# waits 1 s more, past agent-incorrect and the next agent-pass.
FIRST, NEXT = "wwww", "ww"
ASKED = ["agent-pass", "agent-incorrect"]


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
    assert L.prompts(r["_log"]) == ["agent-pass", "agent-loginok"] + DIGITS
    assert_members(pins, {"8008": {IFACE: (0, NUM)}})
    assert qlog(pins, "ADDMEMBER") == ["8008"]
    assert not any(PIN in line for line in pins.qmt_log())


def test_wrong_wrong_right_logs_in(pins):
    r = call(pins, "1111", "2222", PIN)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r
    assert L.prompts(r["_log"]) == ASKED * 2 + ["agent-pass", "agent-loginok"] + DIGITS


def test_three_wrong_pins_refuse_and_change_nothing(pins):
    r = call(pins, "1111", "2222", "3333")
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == ("DENIED", "wrong_pin", "")
    assert L.prompts(r["_log"]) == ASKED * 3 + ["pbx-invalid"]
    assert_members(pins, {})
    assert qlog(pins, "ADDMEMBER") == []


def test_wrong_pins_across_calls_lock_out_until_qmt_unlock(pins):
    assert call(pins, "1111", "2222", "3333")["QMT_REASON"] == "wrong_pin"
    assert call(pins, "1111", "2222", PIN)["QMT_REASON"] == "locked_out"          # the 5th wrong one locks
    r = call(pins, PIN)                                                           # even the right PIN now
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "locked_out")
    assert L.prompts(r["_log"])[-1] == "pbx-invalid"
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
    assert L.prompts(stranger["_log"]) == L.prompts(wrong["_log"]) == ASKED * 3 + ["pbx-invalid"]
    assert "qmt-pin/" + STRANGER not in pins.ast.cli("database show qmt-pin")
    assert_members(pins, {})


def test_logout_needs_no_pin_by_default_but_does_with_for_logout(pins):
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"
    r = pins.ast.call(NUM, target="8008")                                   # no keys at all
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert L.prompts(r["_log"]) == ["agent-loggedoff"]

    set_pin_option(pins, "for_logout", "yes")
    assert call(pins, PIN)["AQMSTATUS"] == "ADDED"
    r = call(pins, "1111", "2222", "3333")
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "wrong_pin")
    assert_members(pins, {"8008": {IFACE: (0, NUM)}})                       # still a member
    r = call(pins, PIN)
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert L.prompts(r["_log"]) == ["agent-pass", "agent-loggedoff"]
    assert_members(pins, {})
