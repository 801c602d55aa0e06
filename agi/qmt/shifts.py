"""Shift windows of an allowlist row (its `shift` column), pure.

    mon-fri 09:00-18:00, sat 10:00-14:00
    mon,wed,fri 22:00-06:00          (crosses midnight: belongs to its start day)
    sun 00:00-24:00

A window is days (mon..sun, a range such as mon-fri or fri-mon, or a list
of either joined by ',') and HH:MM-HH:MM; several windows are joined by
','. Day names take any case. The end may be 24:00; an end before the start
crosses midnight into the next day; an end equal to the start is refused
(empty, or a whole day? say 00:00-24:00). Anything else is a ValueError:
the row is a bad_row and grants nothing, never "always".

Windows are wall-clock times in the PBX's zone: a window is open whenever
the local clock reads a time inside it. On a spring-forward day a window
that starts in the skipped hour (02:30 when 02:00 jumps to 03:00) opens at
the first minute that exists after its start (one wholly inside the skipped
hour does not open that day); in the repeated autumn hour a window is open
both times the clock passes through it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SHIFT = 255                                      # the column's width
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_DAYS = r"%s(?:-%s)?(?:\s*,\s*%s(?:-%s)?)*" % (_DAY, _DAY, _DAY, _DAY)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
WINDOW = re.compile(r"\s*(%s)\s+(%s)-(%s|24:00)\s*(?:,|\Z)" % (_DAYS, _TIME, _TIME), re.IGNORECASE)


class Window:
    """One window: the weekdays it starts on (0 = Monday) and its minutes
    of the day [start, end); end <= start: it ends the next day at `end`."""

    __slots__ = ("days", "start", "end")

    def __init__(self, days: frozenset[int], start: int, end: int) -> None:
        self.days, self.start, self.end = days, start, end

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def open_at(self, weekday: int, minute: int) -> bool:
        """Open at `minute` of the local day `weekday`?"""
        if not self.crosses_midnight:
            return weekday in self.days and self.start <= minute < self.end
        if weekday in self.days and minute >= self.start:
            return True
        return (weekday - 1) % 7 in self.days and minute < self.end

    def __repr__(self) -> str:
        return "Window(%s, %s-%s)" % (",".join(DAYS[day] for day in sorted(self.days)),
                                      clock(self.start), clock(self.end))


def clock(minutes: int) -> str:
    """HH:MM of a minute of the day (1440: 24:00)."""
    return "%02d:%02d" % divmod(minutes, 60)


def parse_shift(text: object) -> list[Window] | None:
    """The windows of a `shift` value; None when it is NULL or blank (no
    restriction). ValueError for anything that is not exactly the syntax."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("a shift is text")
    if not text.strip():
        return None
    if len(text) > MAX_SHIFT:
        raise ValueError("a shift is at most %d characters" % MAX_SHIFT)
    windows, position = [], 0
    while position < len(text):
        found = WINDOW.match(text, position)
        if not found or found.end() == position:
            raise ValueError("not a shift window at %r (e.g. 'mon-fri 09:00-18:00, sat 10:00-14:00')"
                             % text[position:position + 20])
        windows.append(_window(found.group(1), found.group(2), found.group(3)))
        position = found.end()
        if text[position - 1] == "," and not text[position:].strip():
            raise ValueError("a shift ends with a window, not a comma")
    return windows


def _window(days: str, start: str, end: str) -> Window:
    first, last = _minutes(start), _minutes(end)
    if first == last:
        raise ValueError("%s-%s is empty: a whole day is 00:00-24:00" % (start, end))
    return Window(frozenset(_days(days)), first, last)


def _days(text: str) -> set[int]:
    days: set[int] = set()
    for part in (piece.strip().lower() for piece in text.split(",")):
        first, _, last = part.partition("-")
        start, stop = DAYS.index(first), DAYS.index(last or first)
        days.update((start + offset) % 7 for offset in range((stop - start) % 7 + 1))
    return days


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return 60 * int(hours) + int(minutes)


def in_shift(windows: Sequence[Window] | None, now: datetime.datetime, zone: datetime.tzinfo) -> bool:
    """Whether `now` (naive UTC) falls in any window, read on the wall
    clock of `zone`. No windows (None): always."""
    if windows is None:
        return True
    local = now.replace(tzinfo=datetime.timezone.utc).astimezone(zone)
    weekday, minute = local.weekday(), local.hour * 60 + local.minute
    return any(window.open_at(weekday, minute) for window in windows)


def shift_text(windows: Sequence[Window]) -> str:
    """The windows written back in the column's syntax (for `qmt list`)."""
    return ", ".join("%s %s-%s" % (",".join(DAYS[day] for day in sorted(w.days)), clock(w.start), clock(w.end))
                     for w in windows)
