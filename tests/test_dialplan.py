"""The dialplan file: asterisklint passes (on it alone and inside the
end-to-end tests' PBX, whose own dialplan it checks too), and the safety
rules the toggle relies on are written into it. Its behaviour on a real
Asterisk is tested in tests/e2e/."""

import re

import pytest

from lint_dialplan import DIALPLAN, TEST_PBX, lint


@pytest.fixture(scope="module")
def dialplan():
    with open(DIALPLAN, encoding="utf-8") as handle:
        return handle.read()


def code_lines(text):
    return [line.split(";", 1)[0].strip() for line in text.splitlines()
            if line.split(";", 1)[0].strip()]


def test_asterisklint_finds_nothing():
    assert lint() == (0, "")
    assert lint(test_pbx=TEST_PBX) == (0, ""), "in the test PBX (tests/e2e/pbx/extensions.conf)"


def test_asterisklint_really_runs_on_it(tmp_path, dialplan):
    broken = tmp_path / "extensions_queue_mobile_toggle.conf"
    broken.write_text(dialplan.replace("?denied)", "?no_such_label)"), encoding="utf-8")
    status, output = lint(str(broken))
    assert status == 1 and "no_such_label" in output
    # and on the test PBX's dialplan
    with open(TEST_PBX, encoding="utf-8") as handle:
        test_pbx = handle.read()
    broken_pbx = tmp_path / "extensions.conf"
    broken_pbx.write_text(test_pbx.replace("?:rdnis)", "?:no_such_test_label)"), encoding="utf-8")
    status, output = lint(test_pbx=str(broken_pbx))
    assert status == 1 and "no_such_test_label" in output


def test_no_macro_only_gosub(dialplan):
    assert not any(re.search(r"\bMacro(Exit)?\(", line) for line in code_lines(dialplan))
    assert "Gosub(qmt-toggle,s,1(${EXTEN}))" in dialplan


def test_result_is_preset_to_error_before_the_agi_runs(dialplan):
    """Before either AGI: the FastAGI server's, tried first when it is on, and the script's."""
    lines = code_lines(dialplan)
    agi = next(i for i, line in enumerate(lines) if "AGI(" in line)
    assert "AGI(agi://" in lines[agi]
    presets = [i for i, line in enumerate(lines) if "Set(QUEUESTAT=ERROR)" in line]
    assert presets and presets[0] < agi
    assert any("Set(QMT_COUNT=0)" in line for line in lines[:agi])
    assert any("Set(QMT_INTERFACE=)" in line for line in lines[:agi])


def test_queue_apps_always_get_a_checked_interface(dialplan):
    """Add: the script's QMT_INTERFACE. Remove, Unpause and the break's
    Pause: QMT_IF, taken from the script's answer and refused when empty
    (Asterisk would use this very channel). Pause, in the ring path: the
    ring path's own interface of a number filtered to digits."""
    calls = re.findall(r"((?:Add|Remove|Unpause|Pause)QueueMember)\(([^,)]*),([^,)]*)", dialplan)
    used = {}
    for app, _queue, interface in calls:
        used.setdefault(app, set()).add(interface)
    assert used == {"AddQueueMember": {"${QMT_INTERFACE}"}, "RemoveQueueMember": {"${QMT_IF}"},
                    "UnpauseQueueMember": {"${QMT_IF}"},
                    "PauseQueueMember": {"Local/${ARG1}@qmt-ring/n", "${QMT_IF}"}}
    assert "same => n,GotoIf($[\"${QMT_INTERFACE}\" = \"\"]?done)" in context_lines(dialplan, "qmt-toggle-change")
    assert dialplan.count('"${QMT_Q}" = "" | "${QMT_IF}" = ""]?Set(') == 3
    assert "Set(QMT_N=${FILTER(0-9,${EXTEN})})" in dialplan and "Gosub(qmt-ring-missed,s,1(${QMT_N}))" in dialplan


def context_lines(dialplan, name):
    lines = code_lines(dialplan)
    start = lines.index(f"[{name}]") + 1
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
    # A change sets its outcome only when nothing failed; only that outcome plays the success prompt.
    assert index("Gosub(qmt-add-members") < index('ExecIf($["${QMT_FAILED}" = "0"]?Set(QMT_OUTCOME=loggedin))')
    assert index('GotoIf($["${QMT_OUTCOME}" = "loggedin"]?loggedin)') < index("n(loggedin),Playback(agent-loginok)")
    assert index('Set(QMT_OUTCOME=error)') < index("Gosub(qmt-add-members")
    assert '"${AQMSTATUS}" != "ADDED" & "${AQMSTATUS}" != "MEMBERALREADY"' in dialplan
    assert '"${RQMSTATUS}" = "REMOVED" | "${RQMSTATUS}" = "NOTINQUEUE"]?logged)' in dialplan
    for prompt in ("agent-loginok", "agent-loggedoff", "pbx-invalid", "sorry-youre-having-problems"):
        assert f"Playback({prompt})" in dialplan


def test_the_caller_number_reaches_the_script_filtered(dialplan):
    """The script compares it with agi_callerid of the start block, which
    a caller can forge lines into."""
    assert "AGI(queue_mobile_toggle.py,${ARG1},${FILTER(0-9+,${CALLERID(num)})},${ARG2})" in dialplan


FASTAGI_URL = "AGI(agi://127.0.0.1:${QMT_FASTAGI}/queue_mobile_toggle,"
CLASSIC = "AGI(queue_mobile_toggle.py,"


def toggle_line(toggle, fragment):
    return next(i for i, line in enumerate(toggle) if fragment in line)


def test_fastagi_and_the_script_get_the_same_filtered_arguments(dialplan):
    toggle = context_lines(dialplan, "qmt-toggle")
    arguments = {line.split(",", 2)[2] for line in toggle if FASTAGI_URL in line or CLASSIC in line}
    assert arguments == {"${ARG1},${FILTER(0-9+,${CALLERID(num)})},${ARG2})"}


def test_fastagi_is_tried_only_with_a_port_of_1_to_5_digits_from_astdb(dialplan):
    """Anything else in astdb (or no key) means the classic script: the
    URL gets the FILTERed digits only, and only when FILTER removed nothing;
    the stored text itself is compared by length, never inside $[]."""
    toggle = context_lines(dialplan, "qmt-toggle")
    fastagi = toggle_line(toggle, FASTAGI_URL)
    assert toggle[fastagi - 4:fastagi] == [
        "same => n,GotoIf($[!${DB_EXISTS(qmt-fastagi/port)}]?classic)",
        "same => n,Set(LOCAL(QMT_FASTAGI_RAW)=${DB_RESULT})",
        "same => n,Set(LOCAL(QMT_FASTAGI)=${FILTER(0-9,${QMT_FASTAGI_RAW})})",
        "same => n,GotoIf($[${LEN(${QMT_FASTAGI})} != ${LEN(${QMT_FASTAGI_RAW})} | ${LEN(${QMT_FASTAGI})} < 1"
        " | ${LEN(${QMT_FASTAGI})} > 5]?classic)"]
    assert not any('"${QMT_FASTAGI' in line or "${DB(qmt-fastagi" in line for line in toggle)


def test_the_script_decides_only_when_no_fastagi_command_reached_the_channel(dialplan):
    """Never a double decision: the served mark is cleared before the
    attempt, and once the server set it the classic script is skipped, even
    if the server was lost after that (the presets then stand: the error
    prompt). Unset, a WARNING says why and the script runs."""
    toggle = context_lines(dialplan, "qmt-toggle")
    fastagi, classic = toggle_line(toggle, FASTAGI_URL), toggle_line(toggle, CLASSIC)
    assert toggle_line(toggle, "Set(QMT_SERVED=)") < toggle_line(toggle, "DB_EXISTS(")
    assert toggle[fastagi + 1] == 'same => n,GotoIf($["${QMT_SERVED}" != ""]?decided)'
    assert toggle[fastagi + 2].startswith("same => n,Log(WARNING,queue-mobile-toggle: fastagi at 127.0.0.1:")
    assert "(AGISTATUS=${AGISTATUS}), classic script used)" in toggle[fastagi + 2]
    assert classic == fastagi + 3 and toggle[classic].startswith("same => n(classic),")
    assert toggle[classic + 1] == "same => n(decided),Gosub(qmt-toggle-change,s,1())"
    assert sum("AGI(" in line for line in toggle) == 2


def test_a_failed_login_undoes_only_what_this_call_added(dialplan):
    lines = code_lines(dialplan)
    for step in ('Set(LOCAL(QMT_ADDED_${QMT_I})=$["${AQMSTATUS}" = "ADDED"])',
                 "ExecIf($[${QMT_FAILED} > 0]?Gosub(qmt-undo-adds,s,1()))",
                 'ExecIf($["${QMT_ADDED_${QMT_I}}" = "1"]?Gosub(qmt-remove-one,s,1(undo)))'):
        assert any(line.endswith(step) for line in lines), step


def test_one_toggle_per_number_at_a_time_and_no_prompt_under_the_lock(dialplan):
    """Two calls from one number at once must not each see the other half
    done: the script takes the lock of the normalised number before it
    decides (pbx.toggle_lock_name); the dialplan makes the whole change and
    then releases that very lock, in one place, before any prompt."""
    from qmt.pbx import toggle_lock_name
    lines = code_lines(dialplan)
    agi = next(i for i, line in enumerate(lines) if "AGI(queue_mobile_toggle.py" in line)
    assert lines[agi + 1].endswith("Gosub(qmt-toggle-change,s,1())")
    assert lines[agi + 2].endswith("Set(QMT_UNLOCKED=${UNLOCK(%s)})" % toggle_lock_name("${QUEUEUSER}"))
    assert [line for line in lines if "UNLOCK(" in line] == [lines[agi + 2]], "one unlock, one place"
    assert not any("${LOCK(" in line for line in lines), "the raw caller ID must not key a lock"
    toggle = context_lines(dialplan, "qmt-toggle")
    first_prompt = next(i for i, line in enumerate(toggle) if "Playback(" in line)
    assert toggle.index(lines[agi + 2]) < first_prompt
    change = context_lines(dialplan, "qmt-toggle-change")
    assert not any(re.search(r"Playback|SayDigits|Read\(", line) for line in change)


def test_digits_keyed_right_after_answer_are_not_thrown_away(dialplan):
    """Wait() discards DTMF; the PIN prompt would miss a quick caller's digits."""
    lines = code_lines(dialplan)
    toggle = lines[next(i for i, line in enumerate(lines) if line == "[qmt-toggle]"):]
    agi = next(i for i, line in enumerate(toggle) if "AGI(queue_mobile_toggle.py" in line)
    assert not any("Wait(" in line for line in toggle[:agi])


def test_the_mobile_leg_is_born_refusing(dialplan):
    """app_dial connects a leg whose U() subroutine never ran a line (the
    leg was gone first) unless the leg's GOSUB_RESULT already refuses:
    Dial's b() sets it before the leg is even dialed."""
    ring = context_lines(dialplan, "qmt-ring")
    dial = next(line for line in ring if "Dial(" in line)
    assert "b(qmt-ring-leg^s^1)U(qmt-confirm^" in dial
    assert context_lines(dialplan, "qmt-ring-leg")[0] == "exten => s,1,Set(GOSUB_RESULT=CONGESTION)"


def test_freepbx_keeps_our_caller_id_and_never_adds_its_own_confirmation(dialplan):
    """FreePBX's routes replace the caller ID unless KEEPCID=TRUE, and add
    macro-confirm when FORCE_CONFIRM (queue option Call Confirm) is set."""
    ring = context_lines(dialplan, "qmt-ring")
    dial = next(i for i, line in enumerate(ring) if "Dial(" in line)
    assert ring.index("same => n,Gosub(qmt-ring-callerid,s,1())") < dial
    assert ring.index("same => n,Set(__FORCE_CONFIRM=)") < dial
    callerid = context_lines(dialplan, "qmt-ring-callerid")
    assert "same => n,Set(_KEEPCID=TRUE)" in callerid and "same => n,Set(_REALCALLERIDNUM=${QMT_SHOWN})" in callerid
    # a withheld number is never unmasked; the caller's own text never sits raw in $[]
    assert "same => n(withheld),Set(_KEEPCID=)" in callerid
    assert not any('"${CALLERID(num)}"' in line for line in callerid)


def test_a_ring_fault_is_logged_and_never_counted_as_a_miss(dialplan):
    missed = context_lines(dialplan, "qmt-ring-missed")
    fault = next(i for i, line in enumerate(missed) if line.startswith("same => n(fault),"))
    end = next(i for i in range(fault, len(missed)) if missed[i] == "same => n,Return()")
    assert not any("/missed)=" in line for line in missed[fault:end])
    assert any("QMTRINGFAULT" in line for line in missed[fault:end])
    # the agent's outcomes go to the count: a confirmation that ran, busy, no answer, a mobile that rang
    assert 'same => n,GotoIf($["${GOSUB_RETVAL}" != "" | "${DIALSTATUS}" = "BUSY" | ${QMT_FULL_RING} ' \
        '| "${RINGTIME}" != ""]?miss)' in missed
    # NOANSWER is the agent's only after the whole ring time (a FreePBX route that ends on a disabled trunk
    # also gives NOANSWER, at once)
    assert 'same => n,Set(LOCAL(QMT_FULL_RING)=$["${DIALSTATUS}" = "NOANSWER" & ' \
        '${QMT_DIAL_MS} >= 0${QMT_RING}000 - 1000])' in missed


def test_one_customer_call_counts_one_miss_per_mobile(dialplan):
    missed = context_lines(dialplan, "qmt-ring-missed")
    assert 'same => n,GotoIf($["${DB(${QMT_DB}/missed_call)}" = "${CHANNEL(linkedid)}"]?again)' in missed
    again = next(i for i, line in enumerate(missed) if line.startswith("same => n(again),"))
    assert missed[again + 1] == "same => n,Return()"


def test_the_prompt_of_a_ring_the_queue_gave_up_is_stopped_by_a_watcher(dialplan):
    """The confirmation's thread plays the prompt and watches only the
    mobile's leg; the watcher hangs the leg up once the queue's side is
    gone, and never after the confirmation ended (QMT_CONFIRMING=0)."""
    confirm = context_lines(dialplan, "qmt-confirm")
    start = next(i for i, line in enumerate(confirm) if "TryExec(Originate(Local/w@qmt-confirm-watch/n" in line)
    read = next(i for i, line in enumerate(confirm) if "Read(QMT_KEY,${QMT_PROMPT}" in line)
    assert confirm[start - 1] == "same => n,Set(QMT_CONFIRMING=1)" and start < read
    accept = next(i for i, line in enumerate(confirm) if line.startswith("same => n(accept),"))
    assert confirm[accept] == "same => n(accept),Set(QMT_CONFIRMING=0)"
    watch = context_lines(dialplan, "qmt-confirm-watch")
    assert any('"${IMPORT(${QMT_WATCH_LEG},QMT_CONFIRMING)}" = "1"' in line for line in watch)
    assert any("[!${CHANNEL_EXISTS(${QMT_WATCH_QUEUE})} & ${CHANNEL_EXISTS(${QMT_WATCH_LEG})}]?SoftHangup(" in line
               for line in watch)
