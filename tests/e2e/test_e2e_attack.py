"""Issue 7, finding 1, on a real Asterisk 22: a caller who is not on the
allowlist puts "\\nagi_callerid: <allowed number>" into a field Asterisk
writes after agi_callerid in the AGI start block (caller name, DNID, RDNIS,
the script's argument). Asterisk escapes nothing and pyst2 keeps the last
value of a repeated key, so without a strict reader the allowed number gets
logged in. Each attack must change no queue, end DENIED or ERROR, and leave
one log line that says why and names the channel the call came from.

The dialplan-made attacks set the fields with FILE() in qmt-caller; the SIP
ones come as they do in the wild: an INVITE over UDP to a PJSIP endpoint,
the stranger's number in From, reaching the toggle through an IVR context.
"""

import re

import pytest

from harness.logs import prompts
from harness.pbx_config import QUEUES, SIP_ENDPOINT
from harness.sip import SipCall

STRANGER = "79990001122"                  # a valid number, not on the allowlist
ALLOWED = "79112223344"                   # on the allowlist for both test queues
FORGED = "\nagi_callerid: " + ALLOWED
FORGED_URI = "%0Aagi_callerid%3A%20" + ALLOWED   # the same, percent-encoded in a SIP URI
PROMPT = {"DENIED": "pbx-invalid", "ERROR": "sorry-youre-having-problems"}
REFUSED_REASON = re.compile(r"\breason=(bad_agi_env|agi_out_of_sync)\b")
FORGED_LOGIN = re.compile(rf"\bnumber={ALLOWED}\b.*\baction=login\b")

# keyword arguments of Asterisk.prepare: which field of the stranger's call carries the forgery
DIALPLAN_ATTACKS = {
    "caller-name": {"name": "E2E" + FORGED},
    "dnid": {"dnid": "4580" + FORGED},
    "rdnis": {"rdnis": "4580" + FORGED},
    "one-queue-extension": {"target": "8008" + FORGED},          # becomes agi_arg_1
    # a blank line ends the start block early: the rest arrives as replies
    "caller-name-blank-line": {"name": "E2E\n" + FORGED},
    "one-queue-extension-blank-line": {"target": "8008\n" + FORGED},
}


@pytest.fixture
def attack(clean):
    """The allowed number may join both queues; the toggle's log is marked."""
    pbx = clean
    pbx.allow(ALLOWED, "8008")
    pbx.allow(ALLOWED, "8010")
    pbx.qmt_log_mark = len(pbx.qmt_log())
    return pbx


def new_qmt_log(pbx):
    return pbx.qmt_log()[pbx.qmt_log_mark:]


def lines_of_channel(pbx, channel):
    """The toggle's new log lines whose channel= field is this channel."""
    field = re.compile(rf"\bchannel={re.escape(channel)}(\s|$)")
    return [line for line in new_qmt_log(pbx) if field.search(line)]


def brief(r):
    """The call's channel variables, without its log lines."""
    return {k: v for k, v in r.items() if not k.startswith("_")}


def assert_nothing_changed(pbx, r):
    """The rules every attack must keep; r is the call's QMT_DONE fields."""
    assert r["QUEUESTAT"] in PROMPT, f"the attack got QUEUESTAT={r['QUEUESTAT']}: {brief(r)}"
    assert r["QUEUEUSER"] != ALLOWED and r["AQMSTATUS"] == "", brief(r)
    assert prompts(r["_log"]) == [PROMPT[r["QUEUESTAT"]]]
    for q in QUEUES:
        assert pbx.ast.member_list(q) == [], f"QUEUE_MEMBER_LIST({q}) after the attack"
    added = [line for line in pbx.ast.queue_log_lines()[pbx.queue_log_mark:] if "|ADDMEMBER|" in line]
    assert added == []
    assert not [line for line in new_qmt_log(pbx) if FORGED_LOGIN.search(line)]


def assert_logged_with_channel(pbx, r):
    """One decision line for this call, naming the channel it came from and
    saying the AGI environment was refused."""
    lines = lines_of_channel(pbx, r["CHANNEL"])
    assert len(lines) == 1, f"log lines with channel={r['CHANNEL']}: {lines}; new log: {new_qmt_log(pbx)}"
    assert REFUSED_REASON.search(lines[0]), lines[0]
    state = re.search(r"\bstate=(\w+)", lines[0]).group(1)
    expected = {"bad_agi_env": "DENIED", "agi_out_of_sync": "ERROR"}[REFUSED_REASON.search(lines[0]).group(1)]
    assert (state, r["QUEUESTAT"]) == (expected, expected), (lines[0], brief(r))


@pytest.mark.parametrize("fields", list(DIALPLAN_ATTACKS.values()), ids=list(DIALPLAN_ATTACKS))
def test_forged_callerid_after_a_newline_logs_no_one_in(attack, fields):
    pbx = attack
    r = pbx.ast.call(STRANGER, **fields)
    assert r["CHANNEL"].startswith(f"Local/{pbx.ast.slot}@qmt-caller-")
    assert_nothing_changed(pbx, r)
    assert_logged_with_channel(pbx, r)


def sip_call(pbx, ruri_user, caller, headers=()):
    """A call from the SIP trunk; returns its QMT_DONE fields."""
    with SipCall(pbx.ast.sip_port, ruri_user, caller, headers) as call:
        assert call.invite() == 200, "Asterisk did not answer the INVITE"
        assert call.wait_bye(60), "Asterisk did not hang up after the toggle"
    r = pbx.ast.result(call.call_id)
    assert r["CHANNEL"].startswith(f"PJSIP/{SIP_ENDPOINT}-"), brief(r)
    return r


def test_sip_call_from_an_allowed_number_reaches_the_toggle(attack):
    """The SIP path works, so a refused attack below is refused by the toggle,
    not lost on the way; every decision names its channel."""
    pbx = attack
    r = sip_call(pbx, "4580", ALLOWED)
    assert (r["QUEUESTAT"], r["QUEUEUSER"], r["AQMSTATUS"]) == ("LOGGEDOUT", ALLOWED, "ADDED")
    assert all(f"Local/{ALLOWED}@qmt-ring/n" in pbx.ast.member_list(q) for q in QUEUES)
    lines = lines_of_channel(pbx, r["CHANNEL"])
    assert len(lines) == 1 and f"number={ALLOWED} channel={r['CHANNEL']} " in lines[0], lines


def test_sip_request_uri_with_forged_callerid_logs_no_one_in(attack):
    """The attack as found: PJSIP decodes %0A in the Request-URI user, which
    becomes the DNID."""
    pbx = attack
    r = sip_call(pbx, "4580" + FORGED_URI, STRANGER)
    assert_nothing_changed(pbx, r)
    assert_logged_with_channel(pbx, r)


def test_sip_diversion_with_forged_callerid_logs_no_one_in(attack):
    """The same through a Diversion header, which becomes the RDNIS."""
    pbx = attack
    diversion = f"Diversion: <sip:4580{FORGED_URI}@127.0.0.1>;reason=unconditional"
    r = sip_call(pbx, "4580", STRANGER, [diversion])
    assert_nothing_changed(pbx, r)
    assert_logged_with_channel(pbx, r)
