"""Shift windows (issue 18), without I/O: the column's syntax, which local
times a window covers (weekdays, midnight, the DST days of the configured
zone), and what a row with a shift decides: a login outside it is refused,
a logout never is, the all-queues login joins only the open queues, and
the sweep removes a member whose window closed."""

import configparser
import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qmt.config import ConfigError, Settings
from qmt.rules import (
    ACTIVE,
    BAD_ROW,
    DENIED,
    LOGGEDIN,
    LOGGEDOUT,
    OUTSIDE_SHIFT,
    PERMITTED,
    Membership,
    decide_all_queues,
    decide_one_queue,
    judge_row,
    standing,
    sweep_verdict,
)
from qmt.shifts import DAYS, in_shift, parse_shift, shift_text

NUMBER = "79112223344"
UTC = datetime.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
# 2026-11-30 is a Monday.
MONDAY = datetime.date(2026, 11, 30)


def utc(day, hour, minute=0, zone=UTC):
    """A local wall-clock time in `zone` as the naive UTC time the rules take."""
    local = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=zone)
    return local.astimezone(UTC).replace(tzinfo=None)


def weekday(offset):
    return MONDAY + datetime.timedelta(days=offset)


def open_at(shift, moment, zone=UTC):
    return in_shift(parse_shift(shift), moment, zone)


# -- the syntax ---------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "mon-fri 09:00-18:00", "mon-fri 09:00-18:00, sat 10:00-14:00", "Mon-Fri 09:00-18:00",
    "mon,wed,fri 22:00-06:00", "sun 00:00-24:00", "fri-mon 08:00-20:00", "mon, wed 09:00-12:00,sat 10:00-11:00",
])
def test_a_shift_in_the_documented_syntax_parses(text):
    assert parse_shift(text)


@pytest.mark.parametrize("text", [
    "always", "mon-fri", "09:00-18:00", "mon-fri 9:00-18:00", "mon-fri 09:00-18", "mon-fri 09:00-24:01",
    "mon-fri 24:00-06:00", "mon-fri 09:00-09:00", "mon-fri 09:60-18:00", "monday 09:00-18:00",
    "mon-fri 09:00-18:00,", "mon-fri 09:00-18:00; sat 10:00-14:00", "mon-fri 09:00 - 18:00", "mon..fri 09:00-18:00",
    "mon-fri 09:00-18:00 sat 10:00-14:00", "mon-fri 09:00-18:00, ", "mon-fri 09:00-18:00 x", "x" * 300,
    "mon-fri ０9:00-18:00",
])
def test_anything_else_is_refused_not_read_as_always(text):
    with pytest.raises(ValueError):
        parse_shift(text)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_empty_or_null_shift_is_no_restriction(value):
    assert parse_shift(value) is None
    assert in_shift(parse_shift(value), utc(weekday(6), 3), UTC)


def test_a_value_that_is_not_text_is_refused():
    with pytest.raises(ValueError):
        parse_shift(42)


def test_the_written_form_is_the_parsed_one():
    assert shift_text(parse_shift("Fri-Mon 08:00-20:00, wed 22:00-06:00")) == \
        "mon,fri,sat,sun 08:00-20:00, wed 22:00-06:00"
    assert shift_text(parse_shift("sun 00:00-24:00")) == "sun 00:00-24:00"


@given(st.lists(st.tuples(st.sets(st.sampled_from(DAYS), min_size=1), st.integers(0, 1439),
                          st.integers(1, 1440)), min_size=1, max_size=4))
def test_any_written_shift_parses_back_to_itself(windows):
    text = ", ".join("%s %02d:%02d-%02d:%02d" % (",".join(sorted(days, key=DAYS.index)), start // 60, start % 60,
                                                 end // 60, end % 60) for days, start, end in windows
                     if start != end % 1440 or end == 1440)
    if not text:
        return
    once = shift_text(parse_shift(text))
    assert shift_text(parse_shift(once)) == once


# -- weekdays and midnight ----------------------------------------------------

def test_a_weekday_window_is_open_inside_and_closed_outside_and_at_its_end():
    shift = "mon-fri 09:00-18:00, sat 10:00-14:00"
    assert open_at(shift, utc(weekday(0), 9, 0))
    assert open_at(shift, utc(weekday(4), 17, 59))
    assert not open_at(shift, utc(weekday(4), 18, 0))            # the end is not included
    assert not open_at(shift, utc(weekday(0), 8, 59))
    assert open_at(shift, utc(weekday(5), 13, 0))
    assert not open_at(shift, utc(weekday(5), 15, 0))
    assert not open_at(shift, utc(weekday(6), 12, 0))


def test_a_window_crossing_midnight_belongs_to_its_start_day():
    shift = "fri 22:00-06:00"
    assert open_at(shift, utc(weekday(4), 23, 0))                # Friday night
    assert open_at(shift, utc(weekday(5), 5, 59))                # Saturday morning, Friday's shift
    assert not open_at(shift, utc(weekday(5), 6, 0))
    assert not open_at(shift, utc(weekday(5), 23, 0))            # Saturday night: no shift
    assert not open_at(shift, utc(weekday(4), 5, 0))             # Friday morning: Thursday had none


def test_sunday_night_crosses_into_monday():
    assert open_at("sun 22:00-06:00", utc(weekday(7), 3))


def test_a_range_may_wrap_around_the_week():
    assert [open_at("fri-mon 10:00-11:00", utc(weekday(day), 10, 30)) for day in range(7)] == \
        [True, False, False, False, True, True, True]


def test_24_00_ends_at_midnight():
    assert open_at("mon 00:00-24:00", utc(weekday(0), 23, 59))
    assert not open_at("mon 00:00-24:00", utc(weekday(1), 0, 0))


@given(st.integers(0, 6), st.integers(0, 1439), st.integers(1, 1439), st.integers(0, 7 * 1440 - 1))
def test_a_window_is_open_exactly_in_its_minutes_after_its_start_day(day, start, length, at):
    """Against a plain count: open when the minutes since the start of its
    start day's window are fewer than its length (a week wraps around)."""
    end = (start + length) % 1440
    text = "%s %02d:%02d-%s" % (DAYS[day], start // 60, start % 60,
                                "24:00" if start + length == 1440 else "%02d:%02d" % (end // 60, end % 60))
    moment = datetime.datetime.combine(MONDAY, datetime.time()) + datetime.timedelta(minutes=at)
    since_start = (at - (day * 1440 + start)) % (7 * 1440)
    assert open_at(text, moment) == (since_start < length)


# -- the zone, and its DST days (Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00)

def test_a_window_is_read_on_the_zones_wall_clock_not_in_utc():
    day = datetime.date(2026, 7, 6)                              # a Monday, UTC+2 in Berlin
    assert open_at("mon 09:00-10:00", utc(day, 9, 30, BERLIN), BERLIN)
    assert not open_at("mon 09:00-10:00", utc(day, 9, 30, BERLIN), UTC)   # 07:30 UTC


def test_on_the_spring_forward_day_a_window_in_the_skipped_hour_opens_at_its_first_real_minute():
    sunday = datetime.date(2026, 3, 29)
    jump = datetime.datetime(2026, 3, 29, 1, 0)                  # 03:00 CEST, the first minute after 01:59 CET
    assert open_at("sun 02:30-06:00", jump, BERLIN)
    assert not open_at("sun 02:30-06:00", jump - datetime.timedelta(minutes=1), BERLIN)   # 01:59 CET
    # A window wholly inside the skipped hour never opens that day.
    assert not any(open_at("sun 02:00-02:59", jump + datetime.timedelta(minutes=m), BERLIN) for m in range(-120, 120))
    assert open_at("sun 08:00-17:00", utc(sunday, 8, 0, BERLIN), BERLIN)


def test_in_the_repeated_autumn_hour_a_window_is_open_both_times():
    first = datetime.datetime(2026, 10, 25, 0, 30)               # 02:30 CEST
    second = datetime.datetime(2026, 10, 25, 1, 30)              # 02:30 CET, an hour later
    assert open_at("sun 02:00-03:00", first, BERLIN) and open_at("sun 02:00-03:00", second, BERLIN)
    assert not open_at("sun 03:00-04:00", first, BERLIN)


def test_a_window_crossing_midnight_into_a_dst_day_follows_the_wall_clock():
    assert open_at("sat 22:00-04:00", datetime.datetime(2026, 3, 29, 1, 30), BERLIN)       # 03:30 CEST
    assert not open_at("sat 22:00-03:00", datetime.datetime(2026, 3, 29, 1, 30), BERLIN)


# -- rows and decisions -------------------------------------------------------

def row(queue="8008", shift=None, enabled=1):
    return (queue, 0, "Ivan", enabled, None, None, None, None, shift)


def test_a_row_outside_its_window_is_outside_shift_and_inside_is_active():
    assert judge_row(row(shift="mon-fri 09:00-18:00"), NUMBER, utc(weekday(0), 12)).status == ACTIVE
    assert judge_row(row(shift="mon-fri 09:00-18:00"), NUMBER, utc(weekday(0), 19)).status == OUTSIDE_SHIFT


def test_a_bad_shift_is_a_bad_row_that_grants_nothing():
    grant = judge_row(row(shift="weekdays"), NUMBER, utc(weekday(0), 12))
    assert (grant.status, grant.problem, grant.active) == (BAD_ROW, "bad_shift", False)


def test_a_disabled_row_stays_disabled_whatever_its_window():
    assert judge_row(row(shift="mon-sun 00:00-24:00", enabled=0), NUMBER, utc(weekday(0), 12)).status == "disabled"


def test_a_table_without_the_column_reads_no_restriction():
    assert judge_row(row()[:8], NUMBER, utc(weekday(6), 3)).status == ACTIVE


def test_the_row_is_judged_in_the_zone_handed_in():
    moment = utc(datetime.date(2026, 7, 6), 9, 30, BERLIN)
    assert judge_row(row(shift="mon 09:00-10:00"), NUMBER, moment, BERLIN).status == ACTIVE
    assert judge_row(row(shift="mon 09:00-10:00"), NUMBER, moment).status == OUTSIDE_SHIFT


def grants(*rows, at=None):
    return [judge_row(r, NUMBER, at or utc(weekday(0), 19)) for r in rows]


def test_a_login_to_one_queue_outside_its_window_is_refused_with_its_own_reason():
    decision = decide_one_queue(NUMBER, "8008", True, False, lambda: (grants(row(shift="mon-fri 09:00-18:00")), None))
    assert (decision.state, decision.reason) == (DENIED, OUTSIDE_SHIFT)
    assert "mon,tue,wed,thu,fri 09:00-18:00" in decision.detail


def test_a_logout_is_allowed_outside_the_window():
    member = Membership("Local/79112223344@qmt-ring/n")
    decision = decide_one_queue(NUMBER, "8008", True, member, lambda: (grants(row(shift="mon-fri 09:00-18:00")), None))
    assert (decision.state, decision.action) == (LOGGEDIN, "logout")
    decision = decide_all_queues(NUMBER, grants(row(shift="mon-fri 09:00-18:00")), None, {"8008"}, {"8008": member})
    assert decision.action == "logout"


def test_the_all_queues_login_joins_only_the_open_queues_and_says_which_were_closed():
    rows = grants(row("8008", "mon-fri 09:00-18:00"), row("8010", "mon-fri 18:00-23:00"))
    decision = decide_all_queues(NUMBER, rows, None, {"8008", "8010"}, {})
    assert (decision.state, decision.queues) == (LOGGEDOUT, ["8010"])
    assert "outside_shift=8008" in decision.detail


def test_the_all_queues_login_with_every_window_closed_is_outside_shift():
    decision = decide_all_queues(NUMBER, grants(row("8008", "sat 10:00-14:00")), None, {"8008"}, {})
    assert (decision.state, decision.reason) == (DENIED, OUTSIDE_SHIFT)


def test_the_sweep_removes_a_member_whose_window_closed_but_not_during_a_call():
    closed = grants(row(shift="mon-fri 09:00-18:00"))
    assert standing(closed, "8008") == OUTSIDE_SHIFT
    assert sweep_verdict(OUTSIDE_SHIFT, in_call=False) == "remove"
    assert sweep_verdict(OUTSIDE_SHIFT, in_call=True) == "wait"
    assert standing(grants(row(shift="mon-fri 09:00-18:00"), at=utc(weekday(0), 12)), "8008") == PERMITTED


# -- the config's zone --------------------------------------------------------

def settings(**sections):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(sections)
    return Settings(parser)


def test_the_config_names_the_zone_or_the_pbx_zone_is_used():
    assert settings(shifts={"zone": "Europe/Berlin"}).shift_zone == BERLIN
    assert settings().shift_zone is not None


def test_a_zone_that_does_not_exist_is_a_config_error():
    with pytest.raises(ConfigError, match="shifts.zone"):
        settings(shifts={"zone": "Mars/Olympus"})
