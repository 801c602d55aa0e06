"""The real script and real pyst2 against the fake Asterisk, over pipes,
with a real SQLite3 ODBC allowlist built from sql/sqlite.sql."""

import datetime
import os

import pytest

from support import utc_now

N = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % N


def assert_clean_exit(run):
    assert not run.killed_by_peer, "the script had to be killed"
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr


def decision_lines(toggle):
    return [line for line in toggle.log_lines() if "queue-mobile-toggle:" in line]


# -- permitted numbers -------------------------------------------------------

@pytest.mark.parametrize("spelling", ["+79112223344", "79112223344", "89112223344", "9112223344"])
def test_permitted_number_logs_in_then_out_of_one_queue(toggle, spelling):
    toggle.allowlist.add(N, "8008", penalty=3, member_name="Ivan Petrov")
    run = toggle.call(spelling, "8008")
    assert_clean_exit(run)
    assert run.state == "LOGGEDOUT"
    assert (run.get("QUEUEUSER"), run.get("QMT_INTERFACE"), run.queues) == (N, IFACE, ["8008"])
    assert (run.get("QMT_PENALTY_1"), run.get("QMT_NAME_1")) == ("3", "Ivan Petrov")
    toggle.act_as_dialplan(run)
    assert toggle.member("8008", N)

    run = toggle.call(spelling, "8008")
    assert_clean_exit(run)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])
    toggle.act_as_dialplan(run)
    assert not toggle.member("8008", N)


def test_permitted_number_logs_in_to_all_its_queues_and_out_of_all(toggle):
    toggle.allowlist.add(N, "8008", penalty=1)
    toggle.allowlist.add(N, "8010", penalty=5, member_name="Анна")
    run = toggle.call(N)
    assert run.state == "LOGGEDOUT"
    assert [(run.get("QMT_QUEUE_%d" % i), run.get("QMT_PENALTY_%d" % i), run.get("QMT_NAME_%d" % i))
            for i in (1, 2)] == [("8008", "1", N), ("8010", "5", "Анна")]
    toggle.act_as_dialplan(run)
    assert toggle.member("8008", N) and toggle.member("8010", N)

    run = toggle.call(N)
    assert (run.state, sorted(run.queues)) == ("LOGGEDIN", ["8008", "8010"])
    toggle.act_as_dialplan(run)
    assert not toggle.member("8008", N) and not toggle.member("8010", N)


def test_member_of_one_queue_leaves_only_that_one(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    toggle.asterisk.queues["8010"].append(IFACE)
    run = toggle.call(N)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8010"])


def test_membership_is_compared_case_insensitively(toggle):
    toggle.asterisk.queues["8008"].append("local/79112223344@OUTBOUND-allroutes/n")
    run = toggle.call(N, "8008")
    assert run.state == "LOGGEDIN"


def test_one_log_line_per_decision_on_console_and_in_the_log(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008")
    lines = decision_lines(toggle)
    assert len(lines) == 1 and len(run.verbose) == 1
    assert ("number=79112223344 channel=PJSIP/trunk-00000001 queues=8008 state=LOGGEDOUT action=login "
            "reason=permitted") in lines[0]
    assert lines[0].endswith(run.verbose[0])


def test_queuestat_is_the_last_variable_set(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008")
    assert run.set_order[-1] == "QUEUESTAT"


# -- refused ----------------------------------------------------------------------

def test_number_not_in_the_table_is_refused(toggle):
    toggle.allowlist.add("79990001122", "8008")
    run = toggle.call(N, "8008")
    assert_clean_exit(run)
    assert (run.state, run.get("QAGENT_UNAUTHORIZED"), run.get("QMT_REASON")) == \
        ("DENIED", "1", "not_permitted")
    assert run.get("QMT_INTERFACE") is None and run.get("QMT_COUNT") is None


def test_permitted_in_another_queue_only_is_refused_here(toggle):
    toggle.allowlist.add(N, "8010")
    assert toggle.call(N, "8008").state == "DENIED"


@pytest.mark.parametrize("row", [
    lambda now: dict(enabled=0),
    lambda now: dict(valid_until=now - datetime.timedelta(seconds=2)),
    lambda now: dict(valid_from=now + datetime.timedelta(minutes=5)),
], ids=["disabled", "expired", "future"])
def test_disabled_or_expired_or_future_rows_are_refused(toggle, row):
    # times from the moment the test runs, not when it was collected
    toggle.allowlist.add(N, "8008", **row(utc_now()))
    assert toggle.call(N, "8008").state == "DENIED"
    assert toggle.call(N).state == "DENIED"


def test_a_current_window_is_permitted(toggle):
    now = utc_now()
    toggle.allowlist.add(N, "8008", valid_from=now - datetime.timedelta(minutes=1),
                         valid_until=now + datetime.timedelta(minutes=5))
    assert toggle.call(N, "8008").state == "LOGGEDOUT"


HOSTILE_CALLER_IDS = [
    "", "anonymous", "unknown", "7911;rm -rf /", '"79112223344', "79112223344@evil/n",
    "${SHELL(id)}", "' OR '1'='1", "79112223344' OR '1'='1", "٧٩١١٢٢٢٣٣٤٤", "７９１１２２２３３４４",
    "7911 2223344", "Local/123@x/n,PJSIP/1", "12345", "1234567890123456", "7911\\2223344",
]


@pytest.mark.parametrize("callerid", HOSTILE_CALLER_IDS)
def test_hostile_caller_ids_are_refused_before_any_query_or_channel_name(toggle, callerid):
    # The allowlist points at a DSN that does not exist: had the script tried
    # SQL, the answer would be ERROR/db_unknown_dsn, not DENIED/invalid_number.
    toggle.configure(connection="DSN=no_such_dsn_at_all")
    run = toggle.call(callerid, "8008")
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON"), run.get("QUEUEUSER")) == ("DENIED", "invalid_number", "")
    assert run.get("QMT_INTERFACE") is None
    # Nothing the caller sent came back to Asterisk in a command, except
    # through the sanitised log text of VERBOSE.
    for command in run.commands:
        if not command.startswith("VERBOSE"):
            assert callerid == "" or callerid not in command
    assert all('"' not in message and "\\" not in message for message in run.verbose)
    assert toggle.asterisk.queues == {"8008": [], "8010": []}


def test_hostile_queue_argument_is_an_error_and_reaches_no_command(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, '8008,Local/1@x/n"')
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "bad_queue_argument")
    assert not any("Local/1@x" in command for command in run.commands)


def test_unsafe_member_name_in_the_table_keeps_only_its_safe_characters(toggle):
    toggle.allowlist.add(N, "8008", member_name='Evil", PJSIP/1)')
    run = toggle.call(N, "8008")
    assert (run.state, run.get("QMT_NAME_1")) == ("LOGGEDOUT", "Evil PJSIP1")


# -- revoked members may always leave -----------------------------------------------

def test_deleted_number_still_logs_out_of_the_named_queue(toggle):
    toggle.asterisk.queues["8008"].append(IFACE)
    run = toggle.call(N, "8008")
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])


def test_disabled_number_logs_out_of_all_its_queues(toggle):
    toggle.allowlist.add(N, "8008", enabled=0)
    toggle.allowlist.add(N, "8010", valid_until=utc_now() - datetime.timedelta(days=1))
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.queues["8010"].append(IFACE)
    run = toggle.call(N)
    assert (run.state, sorted(run.queues)) == ("LOGGEDIN", ["8008", "8010"])


def test_deleted_number_logs_out_of_all_queues_found_in_astdb(toggle):
    toggle.asterisk.queues["8008"] += ["PJSIP/101", IFACE]
    toggle.asterisk.queues["8010"].append(IFACE)
    run = toggle.call(N)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008", "8010"])
    assert "GET FULL VARIABLE \"${DB_KEYS(Queue/PersistentMembers)}\"" in run.commands


def test_without_persistentmembers_the_managed_list_finds_the_queue(toggle):
    toggle.asterisk.persistent_members = False
    toggle.asterisk.queues["8010"].append(IFACE)
    assert toggle.call(N).state == "DENIED"  # nothing tells the script of 8010
    toggle.configure(managed="8010")
    run = toggle.call(N)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8010"])


MANAGER_DOWN = "\n[ami]\nhost = 127.0.0.1\nport = 1\nusername = qmt\nsecret = s3cret\n"


@pytest.mark.parametrize("manager", ["down", "refusing the login"])
def test_a_member_list_too_long_to_trust_is_an_error_not_a_guess(toggle, manager):
    """Asterisk cuts QUEUE_MEMBER_LIST() at its 4 KB buffer: past that, 'not
    in the list' may be wrong. The manager could tell; when it cannot be
    asked, the script says so instead of logging in or out."""
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"] += ["Local/%011d@qmt-ring/n" % i for i in range(160)]
    toggle.asterisk.queues["8008"].append(IFACE)  # cut off by the buffer
    if manager == "down":
        toggle.configure(extra=MANAGER_DOWN)      # nothing listens on port 1
    else:
        toggle.ami.refuse_login = True
    for queue in ("8008", None):
        run = toggle.call(N, queue)
        assert (run.state, run.get("QMT_REASON"), run.queues) == ("ERROR", "member_list_too_long", [])
    why = "cannot reach Asterisk's manager" if manager == "down" else "refused login"
    assert all("detail=8008: member list cut at 4 KB and the manager could not be asked (" in line and why in line
               for line in decision_lines(toggle))


def test_a_long_member_list_still_finds_a_member_before_the_cut(toggle):
    toggle.asterisk.queues["8008"] += [IFACE] + ["Local/%011d@qmt-ring/n" % i for i in range(160)]
    assert toggle.call(N, "8008").state == "LOGGEDIN"


# -- queues that do not exist --------------------------------------------------------

def test_named_queue_that_does_not_exist_is_reported(toggle):
    toggle.allowlist.add(N, "7777")
    run = toggle.call(N, "7777")
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "no_such_queue")
    assert "detail=7777" in decision_lines(toggle)[0]


def test_all_queues_joins_existing_and_reports_missing(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "7777")
    run = toggle.call(N)
    assert (run.state, run.queues) == ("LOGGEDOUT", ["8008"])
    assert "missing_queues=7777" in decision_lines(toggle)[0]


# -- a broken allowlist fails closed; logout still works ---------------------------------

def test_missing_database_file_is_an_error_with_one_line(toggle, tmp_path):
    os.remove(str(tmp_path / "allowlist.sqlite"))
    run = toggle.call(N, "8008")
    assert_clean_exit(run)
    assert run.state == "ERROR" and run.get("QMT_INTERFACE") is None
    lines = decision_lines(toggle)
    assert len(lines) == 1 and "state=ERROR" in lines[0] and "reason=db_not_found" in lines[0]
    assert not (tmp_path / "allowlist.sqlite").exists(), "NoCreat=1 must stop a silent new DB"


def test_missing_database_still_lets_a_member_log_out(toggle, tmp_path):
    os.remove(str(tmp_path / "allowlist.sqlite"))
    toggle.asterisk.queues["8008"].append(IFACE)
    assert toggle.call(N, "8008").state == "LOGGEDIN"
    assert toggle.call(N).state == "LOGGEDIN"


def test_missing_config_is_an_error(toggle):
    os.remove(toggle.config)
    run = toggle.call(N, "8008")
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "config_error")


def test_a_locked_database_ends_within_the_bound(toggle, tmp_path):
    """A writer holds the SQLite lock longer than the configured bound."""
    import sqlite3
    toggle.odbc.add_dsn("qmt_test", Driver="SQLite3", Database=str(tmp_path / "allowlist.sqlite"),
                        NoCreat=1, Timeout=60000)
    toggle.configure(timeout=1)
    holder = sqlite3.connect(str(tmp_path / "allowlist.sqlite"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        run = toggle.call(N, "8008", timeout=10)
    finally:
        holder.rollback()
        holder.close()
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "db_timeout")
    assert run.elapsed < 1 + 1.5, "took %.2fs for a 1s bound" % run.elapsed


# -- the channel goes away: clean exit, no answer, no traceback ----------------------------

def assert_ended_early(toggle, run):
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None, "an answer was set after the channel went away"
    lines = decision_lines(toggle)
    assert len(lines) == 1 and "reason=channel_gone" in lines[0]


def test_caller_hangs_up_during_the_lookup(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008", hangup_after=1)  # SIGHUP after QUEUE_EXISTS
    assert_ended_early(toggle, run)


def test_eof_on_stdin_ends_the_script_quietly(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008", eof_after=2)
    assert_ended_early(toggle, run)


def test_eof_inside_the_start_block(toggle):
    run = toggle.asterisk.run(N, env=toggle.env, raw_start="agi_request: x\nagi_callerid: 79112",
                              close_after_start=True)
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None


def test_a_stalled_asterisk_cannot_hold_the_script_forever(toggle, agi_mode):
    """No reply at all to a command: the hard limit (bound + 3 s) ends the
    process by SIGALRM (FastAGI: the connection's watchdog closes it, and
    the call logs channel_gone); AGISTATUS=FAILURE keeps the dialplan's
    preset ERROR."""
    import signal
    toggle.configure(timeout=1)
    run = toggle.call(N, "8008", timeout=15,
                      reply_override=lambda command, args: "" if command == "GET VARIABLE" else None)
    assert not run.killed_by_peer
    assert run.elapsed < 1 + 3 + 1.5 and run.get("QUEUESTAT") is None
    if agi_mode == "pipe":
        assert run.exit_code == -signal.SIGALRM
    else:
        assert 1 + 3 - 0.5 < run.elapsed and run.exit_code == 0
        assert "reason=channel_gone detail=AgiClosed before the decision" in decision_lines(toggle)[-1]


@pytest.mark.parametrize("reply", [
    "510 Invalid or unknown command",
    "511 Command Not Permitted on a dead channel or intercept routine",
    "520-Invalid command syntax.  Proper usage follows:\n Usage: EXEC\n520 End of proper usage.",
])
def test_error_replies_end_the_script_cleanly_without_an_answer(toggle, reply):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008",
                      reply_override=lambda command, args: reply if command == "EXEC" else None)
    assert_ended_early(toggle, run)
    assert sum(1 for c in run.commands if c.startswith("EXEC")) == 1


def test_refused_verbose_keeps_the_answer(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008",
                      reply_override=lambda command, args: "510 Invalid" if command == "VERBOSE" else None)
    assert_clean_exit(run)
    assert run.state == "LOGGEDOUT"


def test_pyst2_chatter_stays_off_stderr(toggle):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008")
    assert run.stderr == ""


# -- the ring path: paused members, older interfaces, ring settings ---------------------

OLD_IFACE = "Local/%s@outbound-allroutes/n" % N


def test_a_paused_member_is_resumed_in_the_queues_it_is_paused_in_then_logged_out(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.queues["8010"].append(IFACE)
    toggle.asterisk.paused.add(("8010", IFACE))
    toggle.asterisk.pause_reasons[("8010", IFACE)] = "qmt-missed"
    run = toggle.call(N)
    assert_clean_exit(run)
    assert (run.state, run.queues, run.get("QMT_IFACE_1")) == ("PAUSED", ["8010"], IFACE)
    assert ("QueueStatus", {"Action": "QueueStatus", "ActionID": "qmt-2", "Queue": "8010", "Member": IFACE}) in \
        toggle.ami.actions                                     # the reason asked of the one member
    assert run.get("QMT_RING_CONFIRM") is None                 # a resume stores no settings
    toggle.act_as_dialplan(run)
    assert toggle.asterisk.paused == set()
    run = toggle.call(N)
    assert (run.state, sorted(run.queues)) == ("LOGGEDIN", ["8008", "8010"])


def test_a_supervisors_pause_is_not_undone_by_a_call(toggle):
    """Issue 14, MEDIUM 3: only the ring path's pauses are resumed; a
    member paused for another reason (or none) leaves instead."""
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "lunch"
    run = toggle.call(N, "8008")
    assert (run.state, run.queues, run.get("QMT_REASON")) == ("LOGGEDIN", ["8008"], "member")


def test_a_pause_whose_reason_cannot_be_read_is_not_undone(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "qmt-missed"
    toggle.ami.refuse_login = True                             # the manager says no
    run = toggle.call(N, "8008")
    assert_clean_exit(run)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])


def test_a_paused_member_leaves_while_the_database_is_down(toggle, tmp_path):
    """Issue 14, LOW 3: a member may always leave, paused or not."""
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "qmt-missed"
    (tmp_path / "allowlist.sqlite").rename(tmp_path / "gone.sqlite")
    for queue in ("8008", None):
        run = toggle.call(N, queue)
        assert (run.state, run.queues) == ("LOGGEDIN", ["8008"]), queue
    assert "not resumed: allowlist unreadable (db_not_found)" in toggle.log_lines()[-1]


def test_a_row_for_queue_support_logs_in_to_asterisks_support(toggle):
    """Issue 14, LOW 2: Asterisk finds a queue by its name in any case."""
    toggle.asterisk.queues["support"] = []
    toggle.allowlist.add(N, "Support")
    run = toggle.call(N, "support")
    assert (run.state, run.queues) == ("LOGGEDOUT", ["Support"])


def test_the_toggle_lock_is_the_normalised_numbers(toggle):
    """Issue 14, MEDIUM 1: +7..., 7..., 8... and the national form of one
    number take one lock, so their calls wait for each other."""
    toggle.allowlist.add(N, "8008")
    for spelling in ("+" + N, N, "8" + N[1:], N[1:]):
        toggle.call(spelling, "8008")
    assert toggle.asterisk.locks_taken == ["qmt-toggle-" + N] * 4


def test_a_call_while_another_of_the_same_number_holds_the_lock_changes_nothing(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.locks_elsewhere.add("qmt-toggle-" + N)
    run = toggle.call("8" + N[1:], "8008")
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON"), run.get("QUEUEUSER")) == ("ERROR", "toggle_busy", N)
    assert not any(c.startswith(("GET VARIABLE", "DATABASE")) for c in run.commands)   # nothing asked


def test_no_lock_is_taken_for_a_refused_number(toggle):
    toggle.call("12345", "8008")
    toggle.call(N, "8008", fields={"agi_arg_2": "79990001122"})
    assert toggle.asterisk.locks_taken == []


def test_a_paused_member_whose_rows_are_gone_is_logged_out_not_resumed(toggle):
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.paused.add(("8008", IFACE))
    run = toggle.call(N, "8008")
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])


def test_a_member_by_the_old_interface_is_removed_by_that_interface(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(OLD_IFACE)
    toggle.asterisk.paused.add(("8008", OLD_IFACE))            # never resumed: it has no ring path
    run = toggle.call(N)
    assert (run.state, run.queues, run.get("QMT_IFACE_1")) == ("LOGGEDIN", ["8008"], OLD_IFACE)
    toggle.act_as_dialplan(run)
    assert toggle.asterisk.queues["8008"] == []


@pytest.mark.parametrize("column, expected", [(None, "1"), (0, "0"), (1, "1")])
def test_a_login_hands_the_dialplan_the_ring_settings_with_the_rows_confirmation(toggle, column, expected):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET confirm_answer = ?", column)
    run = toggle.call(N)
    assert run.state == "LOGGEDOUT"
    assert [run.get(name) for name in ("QMT_RING_ROUTE", "QMT_RING_SECONDS", "QMT_RING_CONFIRM",
                                       "QMT_RING_ANSWER_WAIT", "QMT_RING_PAUSE_AFTER")] == \
        ["outbound-allroutes", "20", expected, "5", "3"]
