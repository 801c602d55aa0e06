"""The decision for every outcome, without I/O: rows, one queue, all queues,
settings and the variables handed to the dialplan."""

import configparser
import datetime

import pytest

from qmt.allowlist import odbc_reason
from qmt.config import ConfigError, Settings, load_settings
from qmt.log import decision_line
from qmt.rules import (
    ACTIVE,
    DENIED,
    ERROR,
    LOGGEDIN,
    LOGGEDOUT,
    PAUSED,
    Decision,
    Grant,
    LookupFailure,
    Membership,
    answer_variables,
    candidate_queues,
    confirms_answer,
    decide_all_queues,
    decide_one_queue,
    judge_row,
    safe_member_name,
    without_passwords,
)

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0)
NUMBER = "79112223344"
RING = "Local/79112223344@qmt-ring/n"
OLD = "Local/79112223344@outbound-allroutes/n"
MEMBER = Membership(RING)


def row(queue="8008", penalty=0, name=None, enabled=1, valid_from=None, valid_until=None):
    return (queue, penalty, name, enabled, valid_from, valid_until)


def grants(*rows):
    return [judge_row(r, NUMBER, NOW) for r in rows]


# -- one row -----------------------------------------------------------------

@pytest.mark.parametrize("valid_from, valid_until, active", [
    (None, None, True),
    ("2026-11-27 12:00:00", None, True),                 # starts exactly now
    ("2026-11-27 12:00:01", None, False),                # starts in a second
    (None, "2026-11-27 12:00:00", False),                # ended exactly now
    (None, "2026-11-27 12:00:01", True),                 # ends in a second
    (datetime.datetime(2026, 1, 1), datetime.datetime(2027, 1, 1), True),
    (datetime.date(2026, 11, 28), None, False),          # a DATE column
    ("2026-11-27T11:00:00Z", None, True),                # ISO with Z
    ("2026-11-27 14:30:00+03:00", None, True),           # = 11:30 UTC: started
    ("2026-11-27 15:30:00+03:00", None, False),          # = 12:30 UTC: not yet
])
def test_a_row_counts_only_within_its_validity_window(valid_from, valid_until, active):
    assert judge_row(row(valid_from=valid_from, valid_until=valid_until), NUMBER, NOW).active is active


@pytest.mark.parametrize("enabled, active", [(1, True), (0, False), (None, False), ("1", True),
                                             ("yes", False), (True, True), (2, False)])
def test_only_enabled_1_counts(enabled, active):
    assert judge_row(row(enabled=enabled), NUMBER, NOW).active is active


@pytest.mark.parametrize("bad_time", ["tomorrow", "2026-13-45", "", 42])
def test_a_malformed_time_never_grants_and_says_why(bad_time):
    grant = judge_row(row(valid_from=bad_time), NUMBER, NOW)
    assert not grant.active and grant.problem == "bad_validity_time"


@pytest.mark.parametrize("penalty, expected", [(0, 0), (5, 5), ("7", 7), (None, 0)])
def test_penalty_is_an_integer(penalty, expected):
    grant = judge_row(row(penalty=penalty), NUMBER, NOW)
    assert grant.active and grant.penalty == expected


@pytest.mark.parametrize("penalty", [-1, 10 ** 9, "high", 1.5e12])
def test_a_bad_penalty_never_grants(penalty):
    grant = judge_row(row(penalty=penalty), NUMBER, NOW)
    assert not grant.active and grant.problem == "bad_penalty"


@pytest.mark.parametrize("queue", ["", "80 08", "8008,8010", "q;x", "${X}", None, 8008, "q" * 65])
def test_a_row_with_a_bad_queue_name_is_dropped(queue):
    assert judge_row(row(queue=queue), NUMBER, NOW) is None


@pytest.mark.parametrize("name, expected", [
    ("Ivan Petrov", "Ivan Petrov"),
    ("Иван Петров", "Иван Петров"),          # Cyrillic letters are fine
    ("  Anna  ", "Anna"),
    ("O'Brien", "OBrien"),                   # quote: could break an argument
    ("Smith, John", "Smith John"),           # comma splits AddQueueMember's arguments
    ('Иванов, Пётр "Q"', "Иванов Пётр Q"),
    ("a)b", "ab"), ("${SHELL(id)}", "SHELLid"), ('x"y', "xy"), ("tab\there", "tab here"),
    ("x" * 65, "x" * 64),
    ("", NUMBER), (None, NUMBER), ("٣", NUMBER), (",;|()\"'", NUMBER),   # nothing left: the number
])
def test_member_names_keep_their_safe_characters(name, expected):
    assert safe_member_name(name, NUMBER) == expected


# -- one named queue -----------------------------------------------------------

def never_read():
    raise AssertionError("the allowlist must not be read")


def test_one_queue_member_logs_out_without_reading_the_allowlist():
    decision = decide_one_queue(NUMBER, "8008", True, MEMBER, never_read)
    assert (decision.state, decision.reason, decision.queues) == (LOGGEDIN, "member", ["8008"])


def test_one_queue_permitted_caller_logs_in_with_penalty_and_name():
    decision = decide_one_queue(NUMBER, "8008", True, False,
                                lambda: (grants(row("8010", 1), row("8008", 4, "Ivan")), None))
    assert decision.state == LOGGEDOUT and decision.reason == "permitted"
    assert [(g.queue, g.penalty, g.member_name) for g in decision.grants] == [("8008", 4, "Ivan")]


@pytest.mark.parametrize("rows", [[], [row("8010")], [row("8008", enabled=0)],
                                  [row("8008", valid_until="2026-01-01 00:00:00")]])
def test_one_queue_caller_without_a_live_row_is_denied(rows):
    decision = decide_one_queue(NUMBER, "8008", True, False, lambda: (grants(*rows), None))
    assert (decision.state, decision.reason) == (DENIED, "not_permitted")


def test_one_queue_that_does_not_exist_is_an_error():
    decision = decide_one_queue(NUMBER, "9999", False, False, never_read)
    assert (decision.state, decision.reason) == (ERROR, "no_such_queue")


def test_one_queue_lookup_failure_is_an_error_naming_the_cause():
    decision = decide_one_queue(NUMBER, "8008", True, False,
                                lambda: (None, LookupFailure("db_unreachable", "connection refused")))
    assert (decision.state, decision.reason) == (ERROR, "db_unreachable")


def test_one_queue_malformed_row_is_an_error_not_a_silent_refusal():
    decision = decide_one_queue(NUMBER, "8008", True, False, lambda: (grants(row(penalty=-3)), None))
    assert (decision.state, decision.reason) == (ERROR, "bad_row")


# -- all queues ------------------------------------------------------------------

def test_all_queues_joins_every_live_existing_queue():
    decision = decide_all_queues(NUMBER, grants(row("8008", 2), row("8010", 5), row("8020", enabled=0)),
                                 None, {"8008", "8010", "8020"}, [])
    assert decision.state == LOGGEDOUT
    assert [(g.queue, g.penalty) for g in decision.grants] == [("8008", 2), ("8010", 5)]


def test_all_queues_member_of_any_leaves_all_of_those():
    decision = decide_all_queues(NUMBER, grants(row("8008"), row("8010")), None,
                                 {"8008", "8010"}, {"8010": MEMBER})
    assert (decision.state, decision.queues) == (LOGGEDIN, ["8010"])


def test_all_queues_revoked_member_still_leaves():
    decision = decide_all_queues(NUMBER, grants(row("8008", enabled=0)), None, {"8008"}, {"8008": MEMBER})
    assert (decision.state, decision.queues) == (LOGGEDIN, ["8008"])


def test_all_queues_member_leaves_even_when_the_lookup_failed():
    failure = LookupFailure("db_timeout", "slow")
    decision = decide_all_queues(NUMBER, None, failure, {"8008"}, {"8008": MEMBER})
    assert (decision.state, decision.queues) == (LOGGEDIN, ["8008"])


def test_all_queues_lookup_failure_without_membership_is_an_error():
    decision = decide_all_queues(NUMBER, None, LookupFailure("db_auth_failed", "x"), {"8008"}, [])
    assert (decision.state, decision.reason) == (ERROR, "db_auth_failed")


def test_all_queues_no_live_row_is_denied():
    decision = decide_all_queues(NUMBER, grants(row(enabled=0)), None, {"8008"}, [])
    assert (decision.state, decision.reason) == (DENIED, "not_permitted")


def test_all_queues_reports_a_missing_queue_and_joins_the_rest():
    decision = decide_all_queues(NUMBER, grants(row("8008"), row("7777")), None, {"8008"}, [])
    assert decision.state == LOGGEDOUT and decision.queues == ["8008"]
    assert "missing_queues=7777" in decision.detail


def test_all_queues_only_missing_queues_is_an_error():
    decision = decide_all_queues(NUMBER, grants(row("7777")), None, set(), [])
    assert (decision.state, decision.reason, decision.detail) == (ERROR, "no_such_queue",
                                                                  "missing_queues=7777")


def test_one_queue_untrustworthy_member_list_is_an_error():
    decision = decide_one_queue(NUMBER, "8008", True, None, never_read)
    assert (decision.state, decision.reason) == (ERROR, "member_list_too_long")


def test_all_queues_untrustworthy_member_list_blocks_a_login_but_not_a_logout():
    live = grants(row("8008"), row("8010"))
    assert decide_all_queues(NUMBER, live, None, {"8008", "8010"}, [], ["8010"]).reason == \
        "member_list_too_long"
    assert decide_all_queues(NUMBER, live, None, {"8008", "8010"}, {"8008": MEMBER}, ["8010"]).state == LOGGEDIN


# -- members paused, and members by an older interface ----------------------------

PAUSED_MEMBER = Membership(RING, paused=True, reason="qmt-missed")


def test_a_paused_member_still_permitted_is_resumed_not_logged_out():
    decision = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER, lambda: (grants(row("8008")), None))
    assert (decision.state, decision.reason, decision.queues, decision.action) == \
        (PAUSED, "paused", ["8008"], "resume")


def test_a_paused_member_whose_row_is_gone_leaves_instead():
    decision = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER,
                                lambda: (grants(row("8008", enabled=0)), None))
    assert (decision.state, decision.queues) == (LOGGEDIN, ["8008"])


def test_a_paused_member_leaves_while_the_table_cannot_be_read():
    """Resuming needs the table; leaving never does (issue 14, LOW 3)."""
    decision = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER,
                                lambda: (None, LookupFailure("db_timeout", "slow")))
    assert (decision.state, decision.reason, decision.queues, decision.action) == \
        (LOGGEDIN, "member", ["8008"], "logout")
    assert "not resumed: allowlist unreadable (db_timeout)" in decision.detail


@pytest.mark.parametrize("reason", ["supervisor", "", None, "QMT-MISSED", "qmt-resumed"])
def test_only_a_pause_the_ring_path_made_is_undone_by_a_call(reason):
    """A supervisor's pause (any other reason, none, or one that could not
    be read) is never resumed: the caller leaves instead, as a member may."""
    paused = Membership(RING, paused=True, reason=reason)
    decision = decide_one_queue(NUMBER, "8008", True, paused, lambda: (grants(row("8008")), None))
    assert (decision.state, decision.action) == (LOGGEDIN, "logout")


@pytest.mark.parametrize("reason", ["qmt-missed", "qmt-break"])
def test_the_ring_paths_own_pauses_are_resumed(reason):
    paused = Membership(RING, paused=True, reason=reason)
    decision = decide_one_queue(NUMBER, "8008", True, paused, lambda: (grants(row("8008")), None))
    assert (decision.state, decision.action) == (PAUSED, "resume")


def test_a_resume_carries_the_rows_pin_so_it_asks_as_a_login_does():
    from qmt.pin import hash_pin
    from qmt.rules import pin_needed
    stored = hash_pin("2468", iterations=1000)
    rows = grants(row("8008") + (stored,))
    decision = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER, lambda: (rows, None))
    assert decision.state == PAUSED and decision.grants[0].pin_hash == stored
    assert pin_needed(decision, lambda: (rows, None), required=False, for_logout=False) == (True, [stored], None)
    unpinned = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER, lambda: (grants(row("8008")), None))
    assert pin_needed(unpinned, None, required=True, for_logout=False) == (True, [], "pin_not_set")
    assert pin_needed(unpinned, None, required=False, for_logout=False) == (False, [], None)


def test_queue_names_compare_as_asterisk_compares_them():
    """app_queue finds a queue by name in any case: the row 'Support' is
    Asterisk's queue 'support' for a login, a resume and the sweep."""
    from qmt.rules import PERMITTED, standing
    rows = grants(row("Support"))
    assert decide_one_queue(NUMBER, "support", True, False, lambda: (rows, None)).state == LOGGEDOUT
    resumed = decide_one_queue(NUMBER, "support", True, PAUSED_MEMBER, lambda: (rows, None))
    assert (resumed.state, resumed.queues) == (PAUSED, ["support"])        # Asterisk's spelling, for Unpause
    assert standing(rows, "support") == PERMITTED
    assert decide_all_queues(NUMBER, rows, None, {"support"}, {}).state == LOGGEDOUT
    assert candidate_queues(rows, ["support", "SUPPORT", "8010"]) == ["Support", "8010"]


def test_all_queues_resumes_only_where_paused_and_permitted():
    memberships = {"8008": PAUSED_MEMBER, "8010": MEMBER, "8020": PAUSED_MEMBER}
    decision = decide_all_queues(NUMBER, grants(row("8008"), row("8010"), row("8020", enabled=0)), None,
                                 {"8008", "8010", "8020"}, memberships)
    assert (decision.state, decision.queues) == (PAUSED, ["8008"])


def test_all_queues_member_by_an_older_interface_leaves_by_that_interface():
    decision = decide_all_queues(NUMBER, grants(row("8008"), row("8010")), None, {"8008", "8010"},
                                 {"8008": Membership(OLD), "8010": MEMBER})
    values = dict(answer_variables(NUMBER, decision, RING))
    assert decision.state == LOGGEDIN
    assert (values["QMT_QUEUE_1"], values["QMT_IFACE_1"], values["QMT_QUEUE_2"], values["QMT_IFACE_2"]) == \
        ("8008", OLD, "8010", RING)


def test_resume_answer_names_the_interface_to_unpause_and_carries_no_ring_settings():
    decision = decide_one_queue(NUMBER, "8008", True, PAUSED_MEMBER, lambda: (grants(row("8008")), None))
    values = dict(answer_variables(NUMBER, decision, RING, [("QMT_RING_ROUTE", "x")]))
    assert (values["QUEUESTAT"], values["QMT_COUNT"], values["QMT_IFACE_1"]) == (PAUSED, "1", RING)
    assert "QMT_RING_ROUTE" not in values


# -- answer confirmation per number --------------------------------------------------

def confirm_row(queue, confirm):
    return row(queue) + (None, confirm)


@pytest.mark.parametrize("values, default, expected", [
    ([None], True, True), ([None], False, False),
    ([0], True, False), (["0"], True, False), ([1], False, True),
    ([0, None], True, True),              # one row keeps the default on: the member asks
    ([0, 0], True, False), ([0, 1], False, True),
    (["x"], False, True), ([2], False, True),    # a garbled value keeps the safe side
])
def test_confirmation_is_off_only_when_every_row_joined_turns_it_off(values, default, expected):
    joined = grants(*[confirm_row("80%02d" % i, v) for i, v in enumerate(values)])
    assert confirms_answer(joined, default) is expected


def test_candidate_queues_cover_every_row_and_the_managed_list_once():
    assert candidate_queues(grants(row("8008", enabled=0), row("8010")), ["8010", "9000"]) == \
        ["8008", "8010", "9000"]
    assert candidate_queues(None, ["9000"]) == ["9000"]


# -- settings ----------------------------------------------------------------

def settings(**sections):
    parser = configparser.ConfigParser(interpolation=None)
    for section, values in sections.items():
        parser[section] = values
    return Settings(parser)


def test_defaults_match_the_documented_ones():
    s = settings()
    assert (s.connection, s.timeout, s.country_code, s.trunk_prefix, s.national_length) == \
        ("DSN=queue_mobile_toggle", 3.0, "7", "8", 10)
    assert s.interface_for(NUMBER) == RING
    assert s.interfaces_for(NUMBER) == [RING, OLD]
    assert dict(s.ring_variables(True)) == {
        "QMT_RING_ROUTE": "outbound-allroutes", "QMT_RING_SECONDS": "20", "QMT_RING_CONFIRM": "1",
        "QMT_RING_ANSWER_WAIT": "5", "QMT_RING_PAUSE_AFTER": "3", "QMT_RING_CALLERID": "",
        "QMT_RING_ANNOUNCE": ""}


def test_an_old_config_with_interface_keeps_its_route_and_its_members_can_leave():
    s = settings(member={"interface": "Local/{number}@from-mobiles/n"})
    assert (s.route, s.interface_for(NUMBER)) == ("from-mobiles", RING)
    assert s.interfaces_for(NUMBER) == [RING, "Local/79112223344@from-mobiles/n"]
    s = settings(member={"interface": "PJSIP/{number}", "route": "out"})
    assert s.interfaces_for(NUMBER) == [RING, "Local/79112223344@out/n", "PJSIP/79112223344"]


def test_ring_settings_reach_the_dialplan_as_configured():
    s = settings(member={"route": "from-trunks", "ring_seconds": "12", "answer_wait": "3",
                         "pause_after_missed": "0", "callerid": "+74951234567", "announce": "custom/queue-call"})
    assert dict(s.ring_variables(False)) == {
        "QMT_RING_ROUTE": "from-trunks", "QMT_RING_SECONDS": "12", "QMT_RING_CONFIRM": "0",
        "QMT_RING_ANSWER_WAIT": "3", "QMT_RING_PAUSE_AFTER": "0", "QMT_RING_CALLERID": "+74951234567",
        "QMT_RING_ANNOUNCE": "custom/queue-call"}


@pytest.mark.parametrize("section, key, value", [
    ("database", "timeout", "0"), ("database", "timeout", "soon"), ("database", "timeout", "600"),
    ("database", "connection", " "),
    ("member", "interface", "Local/79112223344@x/n"),           # no {number}
    ("member", "interface", "Local/{number}@x/n,{number}"),
    ("member", "interface", "Local/{number}@out bound/n"),       # space in a channel name
    ("member", "interface", "Local/{number}@x/n,PJSIP/1"),
    ("numbers", "country_code", "+7"), ("numbers", "national_length", "ten"),
    ("numbers", "national_length", "0"), ("queues", "managed", "8008, 80;10"),
    ("log", "syslog_facility", "kern"),
    ("member", "route", "from,internal"), ("member", "route", "${X}"), ("member", "ring_seconds", "0"),
    ("member", "answer_wait", "60"), ("member", "pause_after_missed", "-1"), ("member", "confirm", "maybe"),
    ("member", "callerid", "Ivan"), ("member", "callerid", "123,456"), ("member", "announce", "../etc/x"),
    ("member", "announce", "a b"),
])
def test_bad_settings_are_refused(section, key, value):
    with pytest.raises(ConfigError):
        settings(**{section: {key: value}})


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(str(tmp_path / "nope.conf"))


# -- the answer to the dialplan --------------------------------------------------

def test_login_answer_lists_each_queue_and_sets_queuestat_last():
    decision = Decision(LOGGEDOUT, "permitted", [Grant("8008", 2, "Ivan", ACTIVE),
                                                 Grant("8010", 0, NUMBER, ACTIVE)])
    pairs = answer_variables(NUMBER, decision, settings().interface_for(NUMBER))
    values = dict(pairs)
    assert pairs[-1] == ("QUEUESTAT", LOGGEDOUT)
    assert values["QMT_INTERFACE"] == RING
    assert (values["QMT_COUNT"], values["QMT_QUEUE_1"], values["QMT_PENALTY_1"], values["QMT_NAME_1"],
            values["QMT_QUEUE_2"]) == ("2", "8008", "2", "Ivan", "8010")
    assert values["QAGENT_UNAUTHORIZED"] == "0" and values["QUEUEUSER"] == NUMBER


@pytest.mark.parametrize("state", [DENIED, ERROR])
def test_refusals_and_errors_carry_no_interface_and_no_queue(state):
    values = dict(answer_variables(None, Decision(state, "x"), ""))
    assert "QMT_INTERFACE" not in values and "QMT_COUNT" not in values
    assert values["QUEUESTAT"] == state and values["QUEUEUSER"] == ""
    assert values["QAGENT_UNAUTHORIZED"] == ("1" if state == DENIED else "0")


@pytest.mark.parametrize("sqlstate, message, reason", [
    ("IM002", "[unixODBC][Driver Manager]Data source name not found", "db_unknown_dsn"),
    ("01000", "[unixODBC][Driver Manager]Can't open lib 'X' : file not found",
     "db_driver_missing"),
    ("28000", "Access denied for user", "db_auth_failed"),
    ("42S02", "Table 'x.queue_mobile_agents' doesn't exist", "db_table_missing"),
    ("HY000", "no such table: queue_mobile_agents (1)", "db_table_missing"),
    ("08001", "could not connect to server: Connection refused", "db_unreachable"),
    ("HYT00", "Timeout expired", "db_timeout"),
    ("HY000", "something else", "db_error"),
    ("42000", "[ma-3.1.15]Access denied for user 'a'@'h' to database 'd' (1044)",
     "db_permission_denied"),
    ("42501", "ERROR: permission denied for table queue_mobile_agents", "db_permission_denied"),
    ("28000", "[ma-3.1.15]Access denied for user 'a'@'h' (using password: YES) (1045)",
     "db_auth_failed"),
    ("08001", 'connection to server failed: FATAL:  password authentication failed for user',
     "db_auth_failed"),
    ("42000", "[ma-3.1.15]Unknown database 'nodb' (1049)", "db_not_found"),
    ("08001", 'connection to server failed: FATAL:  database "nodb" does not exist',
     "db_not_found"),
    ("HY000", "[SQLite]connect failed (14) (SQLDriverConnect)", "db_not_found"),
    ("HY000", "[SQLite]database is locked (5)", "db_timeout"),
    ("HY000", "[ma-3.1.15]Can't connect to server on '127.0.0.1' (111)", "db_unreachable"),
])
def test_odbc_errors_map_to_distinct_reasons(sqlstate, message, reason):
    assert odbc_reason(Exception(sqlstate, message)) == reason


# -- nothing secret in a log line ----------------------------------------------

@pytest.mark.parametrize("text, secret", [
    ("DSN=x;UID=qmt;PWD=hunter2;", "hunter2"),
    ("Driver=MariaDB Unicode;Password=hunter2;Server=db", "hunter2"),
    ("driver=x;pwd = hunter2", "hunter2"),
    ("DSN=x;PASSWORD={hun;ter2};UID=a", "hun;ter2"),
    ("DSN=x;Pwd={se}}cret};UID=a", "cret"),
    ("DSN=x;TLSKEYPWD=hunter2", "hunter2"),
    ("DSN=x;pwd={unclosed;UID=hunter2", "hunter2"),
    ("DSN=x;UID=qmt;PASSWD=hunter2;", "hunter2"),          # issue 14: PASSWD was printed in clear
    ("DSN=x;passwd = {hun;ter2}", "hun;ter2"),
])
def test_passwords_are_masked_in_any_spelling(text, secret):
    masked = without_passwords(text)
    assert secret not in masked and "***" in masked
    assert masked.split("***")[0].lower().rstrip(" =").endswith(("pwd", "passwd", "password"))


def test_the_decision_line_masks_a_password_in_its_detail():
    class Channel:
        caller_number, name, uniqueid = "79112223344", "PJSIP/trunk-1", "1.1"
    line = decision_line(NUMBER, Channel(), Decision(ERROR, "db_error", detail="cannot use PWD=hunter2"))
    assert "hunter2" not in line and "detail=cannot use PWD=***" in line


# -- members already in queues: qmt status and sweep ---------------------------------

TEMPLATE = "Local/{number}@outbound-allroutes/n"


@pytest.mark.parametrize("interface, number", [
    ("Local/79112223344@outbound-allroutes/n", NUMBER),
    ("local/79112223344@OUTBOUND-allroutes/n", NUMBER),       # Asterisk compares any case
    ("Local/79112223344@outbound-allroutes", None),            # another template
    ("PJSIP/101", None), ("Local/12@outbound-allroutes/n", None),
    ("Local/7911x223344@outbound-allroutes/n", None), ("", None), (None, None),
])
def test_only_interfaces_made_from_the_template_are_ours(interface, number):
    from qmt.rules import number_in_interface
    assert number_in_interface(TEMPLATE, interface) == number


@pytest.mark.parametrize("rows, expected", [
    ([row("8008")], "permitted"),
    ([row("8008", enabled=0)], "revoked"),
    ([row("8008", valid_until="2026-01-01 00:00:00")], "expired"),
    ([row("8008", valid_from="2027-01-01 00:00:00")], "expired"),
    ([row("8010")], "not_in_table"),
    ([], "not_in_table"),
    ([row("8008", penalty=-1)], "bad_row"),
])
def test_a_members_standing_comes_from_its_rows_for_that_queue(rows, expected):
    from qmt.rules import standing
    assert standing(grants(*rows), "8008") == expected


@pytest.mark.parametrize("standing_, in_call, verdict", [
    ("permitted", False, "keep"), ("bad_row", False, "keep"), ("unreadable", False, "keep"),
    ("revoked", False, "remove"), ("expired", False, "remove"), ("not_in_table", False, "remove"),
    ("revoked", True, "wait"), ("permitted", True, "keep"),
])
def test_sweep_removes_only_members_whose_permission_is_gone_and_not_on_a_call(standing_, in_call, verdict):
    from qmt.rules import sweep_verdict
    assert sweep_verdict(standing_, in_call) == verdict
