"""`qmt report`: what each mobile member did in a time window, from queue_log.

Per (number, queue): sessions (ADDMEMBER .. REMOVEMEMBER), time logged in,
time paused by reason, customer calls that rang it, accepted (CONNECT),
missed by cause, rejected, unconfirmed (a mailbox), ring faults, talk time
and the median ring time of the accepted calls (CONNECT's ring seconds:
with confirmation, the ring path answers the queue only on the `1`). Time
is clipped to [since, until): a session open at `until` counts up to it.

Which lines are a member of ours: the agent field is a member interface of
ours (Local/<number>@qmt-ring/n, or an older template of the config), the
number itself (the ring path's QMT* lines, and the member name of a row
without one), or a member name the allowlist gives that number in that
queue (app_queue logs the member name in every event but ADDMEMBER and
REMOVEMEMBER). Anything else (desk phones, other tools) is left out.

Ugly logs: an event of a member never seen logging in means it logged in
before the log begins (its session starts at the first entry, `login_seen`
false); a second ADDMEMBER of an open session changes nothing; QUEUESTART
(Asterisk restarted) keeps sessions open where queues.conf has
persistentmembers = yes (FreePBX's), which brings the members back without
a line, and otherwise ends them at the last line before it; restarts are
counted. PAUSEALL is left to the PAUSE lines app_queue writes per queue.
"""

from __future__ import annotations

import bisect
import collections
import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from .queue_log import Entry
from .rules import MAX_DIGITS, MIN_DIGITS, number_in_interfaces, safe_member_name
from .zones import local_zone  # noqa: F401  (qmt.cli and the tests name it here)

Key = tuple[str, str]                      # (number, queue)
Document = dict[str, Any]
RECENT_CALLS = 32                          # call IDs remembered per member, to count a call once
RING_EVENTS = ("RINGNOANSWER", "RINGCANCELED", "CONNECT", "QMTNOCONFIRM", "QMTREJECT", "QMTMISSED")
TALK_EVENTS = ("COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER", "ATTENDEDTRANSFER")
OURS = ("QMTNOCONFIRM", "QMTREJECT", "QMTMISSED", "QMTRINGFAULT")
# CSV columns, in order (README "Reports"); the JSON members have the same keys.
CSV_COLUMNS = ("queue", "number", "names", "sessions", "first_login", "last_logout", "logged_in_s", "paused_s",
               "paused_by_reason", "rung", "accepted", "missed", "missed_by_cause", "rejected", "unconfirmed",
               "ring_faults", "talk_s", "median_ring_to_accept_s")
TOTAL = "TOTAL"


# -- time --------------------------------------------------------------------------

class Window:
    """[since, until) in epoch seconds, the zone they are shown in, and
    the local days between them (for the per-day figures)."""

    def __init__(self, since: float, until: float, zone: datetime.tzinfo, zone_name: str) -> None:
        self.since, self.until, self.zone, self.zone_name = since, until, zone, zone_name
        self.day_starts: list[float] = []
        self.day_names: list[str] = []
        day = datetime.datetime.fromtimestamp(since, zone).date()
        while True:
            start = datetime.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
            if start >= until:
                break
            self.day_starts.append(max(start, since))
            self.day_names.append(day.isoformat())
            day += datetime.timedelta(days=1)

    def day_of(self, moment: float) -> int:
        return max(0, bisect.bisect_right(self.day_starts, moment) - 1)

    def covers(self, moment: float) -> bool:
        return self.since <= moment < self.until

    def show(self, moment: float | None) -> str | None:
        if moment is None:
            return None
        return datetime.datetime.fromtimestamp(moment, self.zone).isoformat(sep=" ", timespec="seconds")


LOCAL_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
DEFAULT_DAYS = 7                           # without --since: today and the 6 days before


def local_time(text: str, zone: datetime.tzinfo, now: float) -> float:
    """An admin's time in the PBX's zone: a date, a date and time, `today`
    or `yesterday` (their midnight), or `now`."""
    word = text.strip().lower()
    today = datetime.datetime.fromtimestamp(now, zone).date()
    if word == "now":
        return now
    if word in ("today", "yesterday"):
        day = today - datetime.timedelta(days=1 if word == "yesterday" else 0)
        return datetime.datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
    for form in LOCAL_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), form).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    raise ValueError("%r: give YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', today, yesterday or now (the PBX's time)"
                     % text)


def window_of(since: str | None, until: str | None, zone: datetime.tzinfo, zone_name: str,
              now: float) -> Window:
    """The report's window: --until (default now), --since (default the
    midnight DEFAULT_DAYS - 1 days before today)."""
    end = local_time(until, zone, now) if until else now
    if since:
        start = local_time(since, zone, now)
    else:
        first = datetime.datetime.fromtimestamp(end, zone).date() - datetime.timedelta(days=DEFAULT_DAYS - 1)
        start = datetime.datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()
    if end <= start:
        raise ValueError("--until must be after --since")
    return Window(start, end, zone, zone_name)


# -- who is who ----------------------------------------------------------------------

class Agents:
    """The number behind a queue_log agent field, or None for a member that
    is not ours."""

    def __init__(self, templates: Sequence[str], names: Iterable[tuple[str, str, Any]] = ()) -> None:
        """`names`: (number, queue, member_name) of the allowlist's rows."""
        self.templates = list(templates)
        self.numbers: set[str] = set()
        counted: dict[tuple[str, str], set[str]] = {}
        for number, queue, name in names:
            self.numbers.add(number)
            counted.setdefault((str(queue).lower(), safe_member_name(name, number)), set()).add(number)
        # A name two numbers share in a queue says nothing: left out.
        self.by_name = {key: next(iter(found)) for key, found in counted.items() if len(found) == 1}

    def number(self, agent: str, queue: str, event: str) -> str | None:
        found = number_in_interfaces(self.templates, agent)
        if found is not None:
            self.numbers.add(found)
            return found
        if agent.isdigit() and MIN_DIGITS <= len(agent) <= MAX_DIGITS and agent.isascii() and (
                event in OURS or agent in self.numbers):
            return agent
        return self.by_name.get((queue.lower(), agent))


# -- one member's figures ------------------------------------------------------------------

class Member:
    """The figures of one (number, queue) and the state of its session."""

    def __init__(self, days: int) -> None:
        self.sessions: list[tuple[float, float | None, bool]] = []     # (login, logout or None, login seen)
        self.logged = self.paused = self.talk = 0.0
        self.paused_by_reason: dict[str, float] = {}
        self.rung = self.accepted = self.rejected = self.unconfirmed = self.ring_faults = 0
        self.missed_by_cause: dict[str, int] = {}
        self.ring_seconds: dict[int, int] = {}             # ring seconds -> accepted calls: bounded
        self.names: set[str] = set()
        # per day: logged in, paused (seconds), accepted, missed
        self.days = [[0.0, 0.0, 0, 0] for _ in range(days)]
        self.login_at: float | None = None
        self.login_seen = True
        self.paused_at: float | None = None
        self.pause_reason = ""
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT_CALLS)
        self.refused: dict[str, str] = {}                  # call ID -> rejected | unconfirmed (recent ones)

    @property
    def missed(self) -> int:
        return sum(self.missed_by_cause.values())


class Report:
    """Fed the entries in log order (feed), then finished at `until`."""

    def __init__(self, window: Window, agents: Agents, queue: str | None = None, number: str | None = None,
                 persistent: bool = True) -> None:
        """persistent: queues.conf persistentmembers; without it a restart
        ends every session (at the last line before it)."""
        self.window, self.agents, self.persistent = window, agents, persistent
        self.queue = queue.lower() if queue else None
        self.only_number = number
        self.members: dict[Key, Member] = {}
        self.first: float | None = None            # the first entry's time: where the log begins
        self.last = 0.0                            # the latest entry's time
        self.restarts = 0
        self.other_lines = 0
        self.finished = False

    # -- intake --------------------------------------------------------------------

    def feed_all(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.feed(entry)

    def feed(self, entry: Entry) -> None:
        if self.first is None:
            self.first = entry.time
        if entry.time >= self.window.until:
            return
        if entry.event == "QUEUESTART":
            self.restarted(entry.time)
            return
        self.last = max(self.last, entry.time)
        if entry.event in ("PAUSEALL", "UNPAUSEALL") or entry.agent in ("", "NONE"):
            return                                         # per-queue lines follow; a caller's line
        number = self.agents.number(entry.agent, entry.queue, entry.event)
        if number is None:
            self.other_lines += 1
            return
        queue = self.queue_of(number, entry)
        if queue is None or not self.wanted(number, queue):
            return
        member = self.member(number, queue, entry)
        if entry.agent != number and number_in_interfaces(self.agents.templates, entry.agent) is None:
            member.names.add(entry.agent)
        self.apply(member, entry)

    def restarted(self, t: float) -> None:
        """Asterisk started: members without persistence were dropped when
        it stopped, after the last line it wrote."""
        self.restarts += self.window.covers(t)
        if not self.persistent:
            for member in self.members.values():
                self.log_out(member, self.last or t)

    def queue_of(self, number: str, entry: Entry) -> str | None:
        """The entry's queue; the ring path's lines carry the queue's number
        (NODEST), NONE without it: then the one queue the number is in."""
        if entry.queue and entry.queue != "NONE":
            return entry.queue
        open_queues = [queue for (owner, queue), m in self.members.items()
                       if owner == number and m.login_at is not None]
        return open_queues[0] if len(open_queues) == 1 else None

    def wanted(self, number: str, queue: str) -> bool:
        return (self.queue is None or queue.lower() == self.queue) and \
            (self.only_number is None or number == self.only_number)

    def member(self, number: str, queue: str, entry: Entry) -> Member:
        """The member's figures; a member first seen by another line than a
        login was logged in before the log begins."""
        key = (number, queue)
        member = self.members.get(key)
        if member is None:
            member = self.members[key] = Member(len(self.window.day_names))
            if entry.event != "ADDMEMBER":
                member.login_at, member.login_seen = self.first, False
        return member

    def apply(self, member: Member, entry: Entry) -> None:
        event, t, counts = entry.event, entry.time, self.window.covers(entry.time)
        if event == "ADDMEMBER":
            if member.login_at is None:
                member.login_at, member.login_seen = t, True
                if entry.data[:1] == ("PAUSED",):
                    member.paused_at, member.pause_reason = t, ""
        elif event == "REMOVEMEMBER":
            self.log_out(member, t)
        elif event == "PAUSE":
            reason = entry.data[0] if entry.data else ""
            if member.paused_at is not None and reason != member.pause_reason:
                self.end_pause(member, t)
            if member.paused_at is None and member.login_at is not None:
                member.paused_at, member.pause_reason = t, reason
        elif event == "UNPAUSE":
            self.end_pause(member, t)
        elif counts:
            self.count_call(member, entry)

    def count_call(self, member: Member, entry: Entry) -> None:
        event, call, data = entry.event, entry.callid, entry.data
        day = member.days[self.window.day_of(entry.time)]
        if event in RING_EVENTS and call not in member.recent:
            member.recent.append(call)
            member.rung += 1
        if event == "CONNECT":
            member.accepted += 1
            day[2] += 1
            if len(data) > 2 and data[2].isdigit():
                ring = int(data[2])
                member.ring_seconds[ring] = member.ring_seconds.get(ring, 0) + 1
        elif event in TALK_EVENTS and len(data) >= 2 and data[-2].isdigit():
            member.talk += int(data[-2])
        elif event in ("QMTREJECT", "QMTNOCONFIRM"):
            kind = "rejected" if event == "QMTREJECT" else "unconfirmed"
            if member.refused.get(call) != kind:           # once per call, however often it rang again
                setattr(member, kind, getattr(member, kind) + 1)
            if len(member.refused) >= RECENT_CALLS:
                member.refused.pop(next(iter(member.refused)))
            member.refused[call] = kind
        elif event == "QMTMISSED" and data[2:3] != ("same_call",):
            cause = member.refused.get(call, "") or (data[0].lower() if data and data[0] else "unknown")
            member.missed_by_cause[cause] = member.missed_by_cause.get(cause, 0) + 1
            day[3] += 1
        elif event == "QMTRINGFAULT":
            member.ring_faults += 1

    # -- intervals -------------------------------------------------------------------

    def log_out(self, member: Member, t: float) -> None:
        if member.login_at is None:
            return                                         # not logged in: a repeated logout
        if not member.login_seen and t <= member.login_at:
            member.login_at = None                         # the log begins with the logout: no session
            return
        self.end_pause(member, t)
        self.add_time(member, member.login_at, t, 0)
        if member.login_at < self.window.until and t > self.window.since:
            member.sessions.append((member.login_at, t, member.login_seen))
        member.login_at = None

    def end_pause(self, member: Member, t: float) -> None:
        if member.paused_at is None:
            return
        seconds = self.add_time(member, member.paused_at, t, 1)
        if seconds:
            reason = member.pause_reason
            member.paused_by_reason[reason] = member.paused_by_reason.get(reason, 0.0) + seconds
        member.paused_at = None

    def add_time(self, member: Member, start: float, end: float, slot: int) -> float:
        """Add [start, end) within the window to logged (slot 0) or paused
        (1) time, split by local day; the seconds added."""
        start, end = max(start, self.window.since), min(end, self.window.until)
        if end <= start:
            return 0.0
        total = end - start
        if slot == 0:
            member.logged += total
        else:
            member.paused += total
        starts = self.window.day_starts
        index = self.window.day_of(start)
        while start < end:
            day_end = starts[index + 1] if index + 1 < len(starts) else self.window.until
            piece = min(end, day_end) - start
            member.days[index][slot] += piece
            start, index = start + piece, index + 1
        return total

    def finish(self) -> None:
        """Close what is still open at `until`."""
        if self.finished:
            return
        self.finished = True
        until = self.window.until
        for member in self.members.values():
            if member.login_at is not None:
                open_at = member.login_at
                self.end_pause(member, until)
                self.add_time(member, open_at, until, 0)
                if open_at < until:
                    member.sessions.append((open_at, None, member.login_seen))
                member.login_at = None


# -- the document (JSON; the CSV, text and HTML are views of it) --------------------------------

def median(counts: dict[int, int]) -> float | None:
    """The median of values given as {value: how often}."""
    total = sum(counts.values())
    if not total:
        return None
    return (nth(counts, (total - 1) // 2) + nth(counts, total // 2)) / 2


def nth(counts: dict[int, int], position: int) -> int:
    """The value at `position` (from 0) of the values in order."""
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen > position:
            return value
    raise IndexError(position)


def seconds(value: float) -> int:
    return int(round(value))


def figures(members: Sequence[Member]) -> Document:
    """The figures of one member, or the sums of a queue's."""
    paused: dict[str, float] = {}
    missed: dict[str, int] = {}
    ring_counts: dict[int, int] = {}
    for m in members:
        for ring, count in m.ring_seconds.items():
            ring_counts[ring] = ring_counts.get(ring, 0) + count
        for reason, value in m.paused_by_reason.items():
            paused[reason] = paused.get(reason, 0.0) + value
        for cause, count in m.missed_by_cause.items():
            missed[cause] = missed.get(cause, 0) + count
    return {
        "logged_in_s": seconds(sum(m.logged for m in members)),
        "paused_s": seconds(sum(m.paused for m in members)),
        "paused_by_reason": {reason: seconds(value) for reason, value in sorted(paused.items())},
        "rung": sum(m.rung for m in members),
        "accepted": sum(m.accepted for m in members),
        "missed": sum(missed.values()),
        "missed_by_cause": dict(sorted(missed.items())),
        "rejected": sum(m.rejected for m in members),
        "unconfirmed": sum(m.unconfirmed for m in members),
        "ring_faults": sum(m.ring_faults for m in members),
        "talk_s": seconds(sum(m.talk for m in members)),
        "median_ring_to_accept_s": median(ring_counts),
    }


def member_document(window: Window, key: Key, m: Member) -> Document:
    sessions = [{"login": window.show(login), "logout": window.show(logout), "open": logout is None,
                 "login_seen": seen} for login, logout, seen in sorted(m.sessions, key=lambda s: s[0])]
    logouts = [logout for _, logout, _ in m.sessions if logout is not None]
    document: Document = {"queue": key[1], "number": key[0], "names": sorted(m.names),
                          "sessions": len(sessions),
                          "first_login": sessions[0]["login"] if sessions else None,
                          "last_logout": None if not sessions or sessions[-1]["open"] else window.show(max(logouts))}
    document.update(figures([m]))
    document["session_list"] = sessions
    document["days"] = [{"date": name, "logged_in_s": seconds(day[0]), "paused_s": seconds(day[1]),
                         "accepted": day[2], "missed": day[3]} for name, day in zip(window.day_names, m.days)]
    return document


def active(m: Member) -> bool:
    return bool(m.sessions or m.rung or m.ring_faults or m.talk or m.accepted)


def document(report: Report, read: int = 0, skipped: int = 0) -> Document:
    """The whole report: members by queue and number, then each queue's totals."""
    report.finish()
    window = report.window
    keys = sorted((key for key, m in report.members.items() if active(m)), key=lambda k: (k[1].lower(), k[0]))
    queues: dict[str, list[Member]] = {}
    for key in keys:
        queues.setdefault(key[1], []).append(report.members[key])
    totals = []
    for queue, members in queues.items():
        total: Document = {"queue": queue, "number": TOTAL, "names": [], "sessions": sum(len(m.sessions)
                                                                                        for m in members),
                           "first_login": None, "last_logout": None}
        total.update(figures(members))
        totals.append(total)
    return {
        "time_zone": window.zone_name,
        "since": window.show(window.since),
        "until": window.show(window.until),
        "members": [member_document(window, key, report.members[key]) for key in keys],
        "queues": totals,
        "restarts": report.restarts,
        "persistent_members": report.persistent,
        "lines": {"read": read, "skipped": skipped, "other_members": report.other_lines},
    }


# -- text and CSV --------------------------------------------------------------------------

def duration(value: float) -> str:
    whole = seconds(value)
    return "%d:%02d:%02d" % (whole // 3600, whole // 60 % 60, whole % 60)


def reasons(values: dict[str, Any], show: Any = str) -> str:
    return ", ".join("%s %s" % (name or "(no reason)", show(value)) for name, value in values.items())


def figures_line(row: Document) -> str:
    paused = " (%s)" % reasons(row["paused_by_reason"], duration) if row["paused_by_reason"] else ""
    missed = " (%s)" % reasons(row["missed_by_cause"]) if row["missed_by_cause"] else ""
    ring = row["median_ring_to_accept_s"]
    return ("logged in %s in %d session(s), paused %s%s; rang %d: accepted %d, missed %d%s, rejected %d, "
            "unconfirmed %d; ring faults %d; talk %s; median ring to accept %s"
            % (duration(row["logged_in_s"]), row["sessions"], duration(row["paused_s"]), paused, row["rung"],
               row["accepted"], row["missed"], missed, row["rejected"], row["unconfirmed"], row["ring_faults"],
               duration(row["talk_s"]), "-" if ring is None else "%g s" % ring))


def shown(text: str) -> str:
    """A name from the log for a terminal: no control character (an escape
    sequence in a queue name must not drive the admin's terminal)."""
    return "".join(char if char.isprintable() else "?" for char in text)


def text_lines(doc: Document) -> list[str]:
    lines = ["queue-mobile-toggle report %s .. %s (%s)" % (doc["since"], doc["until"], doc["time_zone"])]
    for total in doc["queues"]:
        lines.append("")
        lines.append("queue %s" % shown(total["queue"]))
        for row in doc["members"]:
            if row["queue"] != total["queue"]:
                continue
            names = " (%s)" % shown(", ".join(row["names"])) if row["names"] else ""
            lines.append("  %s%s: %s" % (row["number"], names, figures_line(row)))
            for session in row["session_list"]:
                login = session["login"] if session["login_seen"] else "%s (the log begins)" % session["login"]
                logout = session["logout"] or "open, counted to %s" % doc["until"]
                lines.append("    session %s .. %s" % (login, logout))
        lines.append("  total: " + figures_line(total))
    if not doc["queues"]:
        lines.append("no mobile member in the queue_log for this time")
    if doc["restarts"]:
        lines.append("Asterisk restarted %d time(s) in this time (%s)" % (doc["restarts"], (
            "sessions kept: persistentmembers" if doc["persistent_members"] else
            "no persistentmembers: sessions ended at the last line before each restart")))
    return lines


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: a name from the log starting
    with = + - @ would be a formula."""
    if value is None:
        return ""
    if isinstance(value, dict):
        value = ";".join("%s=%s" % item for item in value.items())
    elif isinstance(value, list):
        value = ";".join(value)
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_rows(doc: Document) -> list[list[str]]:
    rows = [list(CSV_COLUMNS)]
    for total in doc["queues"]:
        for row in doc["members"] + [total]:
            if row["queue"] == total["queue"]:
                rows.append([csv_cell(row[column]) for column in CSV_COLUMNS])
    return rows
