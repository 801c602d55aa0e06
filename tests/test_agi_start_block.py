"""The AGI start block is hostile: Asterisk writes it without escaping, so a
newline in any field a caller controls adds lines of the caller's own
(issue 7, finding 1). The real script and pyst2 against the fake Asterisk."""

import re

import pytest

from fake_asterisk import FakeAsterisk
from qmt.dialplan import SERVED
from test_agi import IFACE, N, assert_clean_exit, decision_lines

STRANGER = "79990001122"
FORGED = "\nagi_callerid: %s" % N
START_FIELDS = [key for key, _value in
                (line.split(": ", 1) for line in FakeAsterisk.start_block(STRANGER, "8008").splitlines() if line)]


@pytest.fixture
def allowed(toggle):
    """N may join both queues; the stranger may not."""
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    return toggle


def assert_nothing_granted(toggle, run):
    assert_clean_exit(run)
    assert run.get("QMT_INTERFACE") is None and run.get("QMT_COUNT") is None
    assert toggle.asterisk.queues == {"8008": [], "8010": []}
    assert not any("action=login" in line for line in decision_lines(toggle))


def only_decision(toggle):
    lines = decision_lines(toggle)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("field", START_FIELDS)
@pytest.mark.parametrize("queue", ["8008", None])
def test_a_forged_callerid_line_in_any_field_is_refused(allowed, field, queue):
    fields = {field: FakeAsterisk.start_block(STRANGER, queue).split(field + ": ", 1)[1].split("\n")[0]
              + FORGED}
    run = allowed.call(STRANGER, queue, fields=fields)
    assert_nothing_granted(allowed, run)
    assert (run.state, run.get("QMT_REASON"), run.get("QAGENT_UNAUTHORIZED")) == ("DENIED", "bad_agi_env", "1")
    line = only_decision(allowed)
    assert "reason=bad_agi_env detail=repeated key agi_callerid" in line
    assert "channel=PJSIP/trunk-00000001" in line or field == "agi_channel"


@pytest.mark.parametrize("value, problem", [
    ("E2E\nnot a key value line", "malformed start block line"),
    ("E2E\nAGI_CALLERID: %s" % N, "malformed start block line"),
    ("E2E\x01", "control character in agi_calleridname"),
    ("E2E\r", "control character in agi_calleridname"),
    ("E2E\nagi_arg_2: %s" % N, "repeated key agi_arg_2"),
])
def test_a_start_block_asterisk_never_writes_is_refused(allowed, value, problem):
    run = allowed.call(N, "8008", fields={"agi_calleridname": value})
    assert_nothing_granted(allowed, run)
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "bad_agi_env")
    assert "detail=%s" % problem in only_decision(allowed)


def test_the_refusal_logs_the_first_callerid_and_the_channel(allowed):
    allowed.call(STRANGER, "8008", fields={"agi_dnid": "4580" + FORGED})
    line = only_decision(allowed)
    assert "callerid=%s channel=PJSIP/trunk-00000001 " % STRANGER in line
    assert "number=%s" % N not in line


def test_a_dialplan_caller_number_that_differs_is_refused(allowed):
    run = allowed.call(STRANGER, "8008", fields={"agi_arg_2": N})
    assert_nothing_granted(allowed, run)
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "bad_agi_env")
    assert "is not the dialplan's caller number" in only_decision(allowed)


def test_a_dialplan_that_passes_no_caller_number_is_refused(allowed):
    """An old dialplan (no second argument) must not fall back to trusting
    agi_callerid alone."""
    run = allowed.call(N, "8008", fields={"agi_arg_2": None})
    assert (run.state, run.get("QMT_REASON")) == ("DENIED", "bad_agi_env")
    assert_nothing_granted(allowed, run)


def test_a_forged_blank_line_makes_the_script_say_nothing(allowed):
    """The caller ends the block early and forges the replies that follow:
    the real rest of the block would then be read as replies. The script
    sees its echo token missing and answers nothing (preset ERROR stands)."""
    forged_replies = "\n\n200 result=1 (1)\n200 result=1 ()\n200 result=1 ()"
    run = allowed.call(STRANGER, "8008", fields={"agi_dnid": "4580" + forged_replies})
    assert_nothing_granted(allowed, run)
    assert list(run.variables) == [SERVED], "only the served mark: no answer on an out-of-step pipe"
    assert "state=ERROR action=none reason=agi_out_of_sync" in only_decision(allowed)


def test_a_whole_forged_block_from_the_channel_name_is_caught_by_the_echo(allowed):
    """Only agi_channel comes before agi_callerid. A caller who could
    control it could forge a complete, well-formed block for N (no key
    repeated): the echo token is what catches it."""
    forged = FakeAsterisk.start_block(N, "8008").split("agi_channel: ", 1)[1].split("\n", 1)[1]
    run = allowed.call(STRANGER, "8008", fields={"agi_channel": "Local/x@ctx-1;2\n" + forged})
    assert_nothing_granted(allowed, run)
    assert list(run.variables) == [SERVED]
    assert "reason=agi_out_of_sync" in only_decision(allowed)


def test_a_genuine_call_answers_the_echo_then_logs_in(allowed):
    run = allowed.call(N, "8008")
    assert run.state == "LOGGEDOUT"
    assert run.commands[0].startswith('GET FULL VARIABLE "${SET(%s=qmt' % SERVED)


def test_the_first_command_marks_the_channel_served_with_the_echo_token(allowed):
    """The dialplan's fallback to the classic script after a FastAGI attempt
    hangs on this mark: set by the very first command, so an empty mark
    means that no command of ours reached Asterisk."""
    run = allowed.call(STRANGER, "8008")
    assert run.set_order[0] == SERVED
    assert run.commands[0] == 'GET FULL VARIABLE "${SET(%s=%s)}"' % (SERVED, run.get(SERVED))
    assert re.fullmatch(r"qmt[0-9a-f]{16}", run.get(SERVED))


def test_bytes_that_are_not_utf8_in_the_caller_name_do_not_break_a_genuine_call(allowed):
    block = FakeAsterisk.start_block(N, "8008").encode()
    block = block.replace(b"agi_calleridname: unknown", b"agi_calleridname: \xff\xfe Ivan")
    run = allowed.asterisk.run(N, env=allowed.env, raw_start=block)
    assert_clean_exit(run)
    assert run.state == "LOGGEDOUT"


def test_a_520_reply_cut_off_by_eof_ends_the_script_at_once(allowed):
    """pyst2 reads a 520 usage text until a '520 ' line: at EOF it used to
    spin at 100% CPU until the alarm killed it (exit -SIGALRM)."""
    allowed.configure(timeout=1)
    cut_520 = "520-Invalid command syntax.  Proper usage follows:"
    run = allowed.call(N, "8008", eof_after_reply=5,
                       reply_override=lambda command, args: cut_520 if command == "EXEC" else None)
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None
    assert "action=none reason=channel_gone detail=AgiClosed before the login: nothing changed" in \
        only_decision(allowed)
    assert IFACE not in allowed.asterisk.queues["8008"]
