"""The dialplan file: asterisklint passes, and the safety rules the toggle
relies on are written into it. Its behaviour on a real Asterisk is tested
in tests/e2e/."""

import re

import pytest

from lint_dialplan import DIALPLAN, lint


@pytest.fixture(scope="module")
def dialplan():
    with open(DIALPLAN, encoding="utf-8") as handle:
        return handle.read()


def code_lines(text):
    return [line.split(";", 1)[0].strip() for line in text.splitlines()
            if line.split(";", 1)[0].strip()]


def test_asterisklint_finds_nothing():
    status, output = lint()
    assert (status, output) == (0, "")


def test_asterisklint_really_runs_on_it(tmp_path, dialplan):
    broken = tmp_path / "extensions_queue_mobile_toggle.conf"
    broken.write_text(dialplan.replace("?denied)", "?no_such_label)"), encoding="utf-8")
    status, output = lint(str(broken))
    assert status == 1 and "no_such_label" in output


def test_no_macro_only_gosub(dialplan):
    assert not any(re.search(r"\bMacro(Exit)?\(", line) for line in code_lines(dialplan))
    assert "Gosub(qmt-toggle,s,1(${EXTEN}))" in dialplan


def test_result_is_preset_to_error_before_the_agi_runs(dialplan):
    lines = code_lines(dialplan)
    agi = next(i for i, line in enumerate(lines) if "AGI(queue_mobile_toggle.py" in line)
    presets = [i for i, line in enumerate(lines) if "Set(QUEUESTAT=ERROR)" in line]
    assert presets and presets[0] < agi
    assert any("Set(QMT_COUNT=0)" in line for line in lines[:agi])
    assert any("Set(QMT_INTERFACE=)" in line for line in lines[:agi])


def test_queue_apps_always_get_a_checked_interface(dialplan):
    """Add: the script's QMT_INTERFACE. Remove and Unpause: QMT_IF, taken
    from the script's answer and refused when empty (Asterisk would use
    this very channel). Pause, in the ring path: the ring path's own
    interface of a number filtered to digits."""
    calls = re.findall(r"((?:Add|Remove|Unpause|Pause)QueueMember)\(([^,)]*),([^,)]*)", dialplan)
    used = {}
    for app, _queue, interface in calls:
        used.setdefault(app, set()).add(interface)
    assert used == {"AddQueueMember": {"${QMT_INTERFACE}"}, "RemoveQueueMember": {"${QMT_IF}"},
                    "UnpauseQueueMember": {"${QMT_IF}"}, "PauseQueueMember": {"Local/${ARG1}@qmt-ring/n"}}
    assert 'GotoIf($["${QMT_INTERFACE}" = ""]?error)' in dialplan
    assert dialplan.count('"${QMT_Q}" = "" | "${QMT_IF}" = ""]?Set(') == 2
    assert "Set(QMT_N=${FILTER(0-9,${EXTEN})})" in dialplan and "Gosub(qmt-ring-missed,s,1(${QMT_N}))" in dialplan


def context_lines(dialplan, name):
    lines = code_lines(dialplan)
    start = lines.index("[%s]" % name) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    return lines[start:end]


def test_the_confirmation_connects_only_on_1_while_the_queue_still_rings(dialplan):
    """Dial's U() connects unless GOSUB_RESULT says otherwise: it says
    CONGESTION from the first step, and is cleared in one place only,
    reached by a 1 read while the queue's side still exists, or with
    confirmation turned off for the number."""
    confirm = context_lines(dialplan, "qmt-confirm")
    assert confirm[0] == "exten => s,1,Set(GOSUB_RESULT=CONGESTION)"
    assert [line for line in confirm if "GOSUB_RESULT=" in line][1:] == ["same => n,Set(GOSUB_RESULT=)"]
    accept = next(i for i, line in enumerate(confirm) if line.startswith("same => n(accept),"))
    assert confirm.index("same => n,Set(GOSUB_RESULT=)") > accept
    assert [line for line in confirm if "?accept)" in line] == [
        'same => n,GotoIf($["${DB(${QMT_DB}/confirm)}" = "0"]?accept)',
        'same => n,GotoIf($["${QMT_KEY}" = "1"]?accept)']
    gone = next(i for i, line in enumerate(confirm) if "${CHANNEL_EXISTS(${ARG2})}]?gone)" in line)
    assert gone < next(i for i, line in enumerate(confirm) if '"${QMT_KEY}" = "1"]?accept)' in line)


def test_a_ring_cancelled_by_the_queue_is_never_counted_as_missed(dialplan):
    """Only Dial's own outcomes are misses: the count is kept after Dial,
    where a ring the queue hung up never arrives, and ANSWER and CANCEL
    are left out."""
    missed = context_lines(dialplan, "qmt-ring-missed")
    assert missed[0] == 'exten => s,1,GotoIf($["${DIALSTATUS}" = "ANSWER" | "${DIALSTATUS}" = "CANCEL"]?done)'
    assert not any(line.startswith("exten => h") for line in code_lines(dialplan))


def test_success_prompts_only_after_the_status_check(dialplan):
    lines = code_lines(dialplan)

    def index(fragment):
        return next(i for i, line in enumerate(lines) if fragment in line)
    assert index("Gosub(qmt-add-members") < index('QMT_FAILED}" != "0"]?error') < index("agent-loginok")
    assert '"${AQMSTATUS}" != "ADDED" & "${AQMSTATUS}" != "MEMBERALREADY"' in dialplan
    assert '"${RQMSTATUS}" = "REMOVED" | "${RQMSTATUS}" = "NOTINQUEUE"]?logged)' in dialplan
    for prompt in ("agent-loginok", "agent-loggedoff", "pbx-invalid", "sorry-youre-having-problems"):
        assert "Playback(%s)" % prompt in dialplan


def test_the_caller_number_reaches_the_script_filtered(dialplan):
    """The script compares it with agi_callerid of the start block, which
    a caller can forge lines into."""
    assert "AGI(queue_mobile_toggle.py,${ARG1},${FILTER(0-9+,${CALLERID(num)})})" in dialplan


def test_a_failed_login_undoes_only_what_this_call_added(dialplan):
    lines = code_lines(dialplan)
    for step in ('Set(QMT_ADDED_${QMT_I}=$["${AQMSTATUS}" = "ADDED"])',
                 "ExecIf($[${QMT_FAILED} > 0]?Gosub(qmt-undo-adds,s,1()))",
                 'ExecIf($["${QMT_ADDED_${QMT_I}}" = "1"]?Gosub(qmt-remove-one,s,1(undo)))'):
        assert any(line.endswith(step) for line in lines), step


def test_one_toggle_per_number_at_a_time_and_no_prompt_under_the_lock(dialplan):
    """Two calls from one number at once must not each see the other half
    done: the script takes the lock of the normalised number before it
    decides (pbx.toggle_lock_name), the dialplan releases that very lock
    before any prompt, in every branch."""
    from qmt.pbx import toggle_lock_name
    lines = code_lines(dialplan)
    agi = next(i for i, line in enumerate(lines) if "AGI(queue_mobile_toggle.py" in line)
    assert lines[agi + 1].endswith("Set(QMT_LOCK=%s)" % toggle_lock_name("${QUEUEUSER}"))
    assert not any("${LOCK(" in line for line in lines), "the raw caller ID must not key a lock"
    toggle = lines[agi:next(i for i, line in enumerate(lines) if line == "[qmt-ring-settings]")]
    for i, line in enumerate(toggle):
        if "Playback(" in line:     # released in the same labelled branch, before the prompt
            branch = next(j for j in range(i, -1, -1) if re.search(r"same => n\(\w+\)", toggle[j]))
            assert any("UNLOCK(${QMT_LOCK})" in step for step in toggle[branch:i]), line


def test_digits_keyed_right_after_answer_are_not_thrown_away(dialplan):
    """Wait() discards DTMF; the PIN prompt would miss a quick caller's digits."""
    lines = code_lines(dialplan)
    toggle = lines[next(i for i, line in enumerate(lines) if line == "[qmt-toggle]"):]
    agi = next(i for i, line in enumerate(toggle) if "AGI(queue_mobile_toggle.py" in line)
    assert not any("Wait(" in line for line in toggle[:agi])
