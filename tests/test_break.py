"""A break from the phone (issue 18), without I/O: who may take one, what
the dialplan is told, when the sweep ends it, and the config's minutes."""

import configparser
import datetime

import pytest

from qmt.config import ConfigError, Settings
from qmt.decision import decide
from qmt.dialplan import BREAK_ACTION, PAUSE_BREAK, PAUSE_MISSED, QUEUESTAT, WORKING
from qmt.pin import hash_pin
from qmt.rules import (
    DENIED,
    ERROR,
    PAUSED,
    PERMITTED,
    REVOKED,
    Decision,
    LookupFailure,
    Membership,
    answer_variables,
    break_over,
    decide_break,
    judge_row,
    pin_needed,
    sweep_verdict,
)

NUMBER = "79112223344"
RING = "Local/79112223344@qmt-ring/n"
NOW = datetime.datetime(2026, 11, 30, 12, 0)


def grants(*queues, enabled=1, pin_hash=None):
    return [judge_row((queue, 0, "Ivan", enabled, None, None, pin_hash), NUMBER, NOW) for queue in queues]


def lookup(*queues, **row):
    return lambda: (grants(*queues, **row), None)


def on_duty():
    return Membership(RING)


def paused(reason):
    return Membership(RING, paused=True, reason=reason)


def test_a_member_on_duty_is_paused_in_every_queue_he_is_permitted_in():
    decision = decide_break(NUMBER, {"8008": on_duty(), "8010": on_duty()}, (), lookup("8008", "8010"))
    assert (decision.state, decision.reason, decision.action, decision.queues) == \
        (WORKING, "break", "pause", ["8008", "8010"])


def test_a_member_on_break_is_resumed_by_the_next_call():
    decision = decide_break(NUMBER, {"8008": paused(PAUSE_BREAK), "8010": paused(PAUSE_BREAK)}, (),
                            lookup("8008", "8010"))
    assert (decision.state, decision.reason, decision.action, decision.queues) == \
        (PAUSED, "break_over", "resume", ["8008", "8010"])


def test_a_pause_for_missed_calls_becomes_a_break():
    decision = decide_break(NUMBER, {"8008": paused(PAUSE_MISSED)}, (), lookup("8008"))
    assert (decision.state, decision.queues) == (WORKING, ["8008"])


def test_a_supervisors_pause_is_never_taken_over():
    decision = decide_break(NUMBER, {"8008": paused("lunch"), "8010": on_duty()}, (), lookup("8008", "8010"))
    assert (decision.state, decision.queues) == (WORKING, ["8010"])
    assert "paused_by_other=8008" in decision.detail
    decision = decide_break(NUMBER, {"8008": paused("lunch")}, (), lookup("8008"))
    assert (decision.state, decision.reason) == (DENIED, "paused_by_other")


def test_only_a_member_may_take_a_break():
    assert (decide_break(NUMBER, {}, (), lookup("8008")).state, decide_break(NUMBER, {}, (), lookup("8008")).reason) \
        == (DENIED, "not_member")


def test_only_a_permitted_number_may_take_or_end_a_break():
    decision = decide_break(NUMBER, {"8008": on_duty()}, (), lookup("8008", enabled=0))
    assert (decision.state, decision.reason) == (DENIED, "not_permitted")
    decision = decide_break(NUMBER, {"8008": on_duty(), "8010": on_duty()}, (), lookup("8010"))
    assert (decision.state, decision.queues, decision.detail) == (WORKING, ["8010"], "not_permitted=8008")
    decision = decide_break(NUMBER, {"8008": paused(PAUSE_BREAK)}, (), lookup())
    assert (decision.state, decision.reason) == (DENIED, "not_permitted")


def test_an_unreadable_allowlist_or_a_member_list_too_long_changes_nothing():
    failed = decide_break(NUMBER, {"8008": on_duty()}, (), lambda: (None, LookupFailure("db_timeout")))
    assert (failed.state, failed.reason) == (ERROR, "db_timeout")
    assert decide_break(NUMBER, {}, ["8008"], lookup("8008")).reason == "member_list_too_long"


def test_the_pin_rules_are_the_toggles_a_break_as_a_logout_its_end_as_a_login():
    hashed = grants("8008", pin_hash=hash_pin("4321"))
    assert hashed[0].active and hashed[0].pin_hash
    break_decision = Decision(WORKING, "break", hashed)
    assert pin_needed(break_decision, lambda: (hashed, None), required=False, for_logout=False) == (False, [], None)
    assert pin_needed(break_decision, lambda: (hashed, None), required=False, for_logout=True) == \
        (True, [hashed[0].pin_hash], None)
    end = Decision(PAUSED, "break_over", hashed)
    assert pin_needed(end, None, required=False, for_logout=False) == (True, [hashed[0].pin_hash], None)


def test_the_dialplan_is_told_the_queues_and_interfaces_of_a_break_and_queuestat_last():
    decision = Decision(WORKING, "break", grants("8008"), interfaces={"8008": RING})
    pairs = answer_variables(NUMBER, decision, RING)
    assert ("QMT_IFACE_1", RING) in pairs and ("QMT_COUNT", "1") in pairs
    assert pairs[-1] == (QUEUESTAT, WORKING)
    assert not any(name.startswith("QMT_RING_") for name, _ in pairs)


# -- the sweep ends a long break -----------------------------------------------

def test_a_break_is_over_after_its_minutes_and_never_with_zero():
    assert break_over(PAUSE_BREAK, "1000", 1000 + 300, 300)
    assert not break_over(PAUSE_BREAK, "1000", 1000 + 299, 300)
    assert not break_over(PAUSE_BREAK, "1000", 10 ** 9, 0)


@pytest.mark.parametrize("reason, last_pause", [(PAUSE_MISSED, "1000"), ("lunch", "1000"), (PAUSE_BREAK, ""),
                                                (PAUSE_BREAK, "0"), (PAUSE_BREAK, "x")])
def test_only_a_break_from_the_phone_with_a_known_start_ends_by_itself(reason, last_pause):
    assert not break_over(reason, last_pause, 10 ** 9, 60)


def test_the_sweep_resumes_a_permitted_member_and_removes_one_whose_permission_went():
    assert sweep_verdict(PERMITTED, in_call=False, break_over=True) == "resume"
    assert sweep_verdict(REVOKED, in_call=False, break_over=True) == "remove"
    assert sweep_verdict(PERMITTED, in_call=False, break_over=False) == "keep"


# -- the config and the argument ------------------------------------------------

def settings(**member):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict({"member": member})
    return Settings(parser)


def test_break_minutes_default_to_zero_and_take_fractions():
    assert settings().break_minutes == 0
    assert settings(break_minutes="0.5").break_minutes == 0.5


@pytest.mark.parametrize("value", ["-1", "x", "1441", "nan"])
def test_a_bad_break_minutes_is_a_config_error(value):
    with pytest.raises(ConfigError, match="break_minutes"):
        settings(break_minutes=value)


class NoAsterisk:
    def queue_exists(self, queue):
        raise AssertionError("asked Asterisk")


@pytest.mark.parametrize("queue, action", [("", "nap"), ("8008", BREAK_ACTION), ("", "break\n")])
def test_an_unknown_action_or_a_break_for_one_queue_is_refused_before_asking_anyone(queue, action):
    decision = decide(NoAsterisk(), settings(), NUMBER, queue, 0.0, None, action)
    assert (decision.state, decision.reason) == (ERROR, "bad_action_argument")
