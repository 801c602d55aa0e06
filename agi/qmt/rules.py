"""Pure rules: numbers, names, allowlist rows and the toggle's decision.

No I/O, and no imports but the dialplan contract (qmt.dialplan), the
PIN format and the shift windows (qmt.shifts): what the AGI, `qmt check`, `status` and `sweep` decide, they
decide here, from values handed in.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Optional, Union

from .dialplan import (
    DENIED,
    ERROR,
    LOGGEDIN,
    LOGGEDOUT,
    PAUSE_BREAK,
    PAUSE_MISSED,
    PAUSED,
    QAGENT_UNAUTHORIZED,
    QMT_COUNT,
    QMT_IFACE,
    QMT_INTERFACE,
    QMT_NAME,
    QMT_PENALTY,
    QMT_QUEUE,
    QMT_REASON,
    QUEUESTAT,
    QUEUEUSER,
    WORKING,
)
from .pin import hashes_to_check, is_pin_hash
from .shifts import in_shift, parse_shift, shift_text

ASCII_DIGITS = frozenset("0123456789")
MIN_DIGITS, MAX_DIGITS = 6, 15
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
INTERFACE = re.compile(r"[A-Za-z0-9_./@-]{1,128}\Z")
NAME_EXTRA = frozenset(" ._-")
MAX_NAME = 64
MAX_PENALTY = 1_000_000
# What an admin may type around a number: "8 (911) 222-33-44". Spaces
# only: a newline or tab in a typed number is a mistake, not a separator.
TYPED_SEPARATORS = re.compile(r"[ ()\-.]")
# Passwords in connection strings or driver messages (PWD=, Password=,
# PASSWD=, any case). A value in braces may hold ";" and "}}"; an unclosed
# brace hides the rest.
PASSWORD_VALUE = re.compile(r"((?:pwd|passwd|password)\s*=\s*)(\{(?:[^}]|\}\})*\}(?=;|$)|\{.*|[^;]*)",
                            re.IGNORECASE)
# Pauses the ring path makes (missed calls; a break the agent takes): only
# these are undone by a call to the toggle code. A supervisor's pause stays.
RESUMABLE_PAUSES = (PAUSE_MISSED, PAUSE_BREAK)

# Why a row does or does not let its number in now. OUTSIDE_SHIFT: a
# live row whose shift window is closed now.
ACTIVE, DISABLED, EXPIRED, NOT_YET_VALID, BAD_ROW = "active", "disabled", "expired", "not_yet_valid", "bad_row"
OUTSIDE_SHIFT = "outside_shift"


# -- numbers and names --------------------------------------------------------

def normalise_number(raw: object, country_code: str = "7", trunk_prefix: str = "8",
                     national_length: int = 10) -> str | None:
    """Return the caller's number in international form (digits only), or
    None when it is not a plausible phone number. `raw` is hostile."""
    if not isinstance(raw, str):
        return None
    has_plus = raw.startswith("+")
    digits = raw[1:] if has_plus else raw
    # str.isdigit() accepts Arabic-Indic and full-width digits: test by set.
    if not digits or set(digits) - ASCII_DIGITS:
        return None
    if not has_plus:
        if len(digits) == national_length:
            digits = country_code + digits
        elif (trunk_prefix and len(digits) == len(trunk_prefix) + national_length
              and digits.startswith(trunk_prefix)):
            digits = country_code + digits[len(trunk_prefix):]
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        return None
    return digits


def typed_number(text: str | None, country_code: str = "7", trunk_prefix: str = "8",
                 national_length: int = 10) -> str | None:
    """A number as an admin types it ('8 (911) 222-33-44'): separators go,
    then it is normalised exactly as a caller ID; None if no call could match."""
    return normalise_number(TYPED_SEPARATORS.sub("", text or ""), country_code, trunk_prefix,
                            national_length)


def is_valid_queue_name(name: object) -> bool:
    return isinstance(name, str) and bool(QUEUE_NAME.match(name))


def same_queue(one: str, other: str) -> bool:
    """Queue names compared as Asterisk compares them: app_queue finds a
    queue by its name in any case, so the row 'Support' is queue 'support'."""
    return one.lower() == other.lower()


def safe_member_name(name: object, fallback: str) -> str:
    """The member name as AddQueueMember can take it: letters (any script),
    ASCII digits, space and ._- are kept, anything else (commas, quotes, |,
    parentheses would split or break its arguments) is dropped; runs of
    spaces fold. The fallback (the number) only when nothing is left."""
    if not isinstance(name, str):
        return fallback
    kept = "".join(" " if char.isspace() else char for char in name
                   if char.isalpha() or char.isspace() or char in ASCII_DIGITS or char in NAME_EXTRA)
    kept = " ".join(kept.split())[:MAX_NAME].strip()
    return kept or fallback


def interface_for(template: str, number: str) -> str:
    return template.replace("{number}", number)


def number_in_interfaces(templates: Iterable[str], interface: object) -> str | None:
    """The number of a member interface made from any of `templates`, or None."""
    for template in templates:
        number = number_in_interface(template, interface)
        if number is not None:
            return number
    return None


def number_in_interface(template: str, interface: object) -> str | None:
    """The number of a member interface made from `template`, or None when
    the interface is not one of ours (compared as Asterisk does: any case)."""
    head, _, tail = template.partition("{number}")
    if not isinstance(interface, str) or len(interface) <= len(head) + len(tail):
        return None
    if not (interface.lower().startswith(head.lower()) and interface.lower().endswith(tail.lower())):
        return None
    number = interface[len(head):len(interface) - len(tail)]
    return number if MIN_DIGITS <= len(number) <= MAX_DIGITS and not set(number) - ASCII_DIGITS else None


def printable(text: object, limit: int) -> str:
    """Text made safe for one log line and for a quoted AGI argument: printable
    ASCII except the quote and backslash (pyst2 escapes nothing); the rest '?'."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in str(text)[:limit])


def without_passwords(text: object) -> str:
    """Connection strings and driver messages with every password value hidden."""
    return PASSWORD_VALUE.sub(r"\1***", str(text))


# -- rows ---------------------------------------------------------------------

def as_utc_naive(value: object) -> datetime.datetime | None:
    """A table time as a naive UTC datetime; None for NULL. Raises
    ValueError for anything that is not a date or time."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else \
            value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return as_utc_naive(datetime.datetime.fromisoformat(value.strip()))
    raise ValueError("not a time: %r" % type(value).__name__)


class Grant:
    """One allowlist row, judged: may this number be a member of `queue`
    now? `status` says why (ACTIVE, DISABLED, EXPIRED, NOT_YET_VALID,
    BAD_ROW); `problem` names what is wrong with a bad row; `pin_hash` is
    the row's PIN hash (None: no PIN); `confirm` is the row's confirm_answer
    (None: the config's default); `shift` its shift windows as text (None:
    no restriction)."""

    __slots__ = ("queue", "penalty", "member_name", "status", "problem", "pin_hash", "confirm", "shift")

    def __init__(self, queue: str, penalty: int, member_name: str, status: str, problem: str | None = None,
                 pin_hash: str | None = None, confirm: bool | None = None, shift: str | None = None) -> None:
        self.queue = queue
        self.penalty = penalty
        self.member_name = member_name
        self.status = status
        self.problem = problem
        self.pin_hash = pin_hash
        self.confirm = confirm
        self.shift = shift

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def __repr__(self) -> str:
        return "Grant(%r, %r, %r, %s)" % (self.queue, self.penalty, self.member_name, self.status)


# A row as read from the table: the columns of allowlist.rows_by_name(), any type the driver gives.
Row = tuple[Any, ...]


def judge_row(row: Sequence[Any], number: str, now: datetime.datetime,
              zone: datetime.tzinfo = datetime.timezone.utc) -> Grant | None:
    """Turn a raw (queue, penalty, member_name, enabled, valid_from,
    valid_until[, pin_hash[, confirm_answer[, shift_window]]]) row into a Grant; a
    row that is malformed never grants. None for a row whose queue name
    could never be used. `now` is naive UTC; a shift window is read on the
    wall clock of `zone` (the callers pass Settings.shift_zone)."""
    queue, penalty, member_name, enabled, valid_from, valid_until = row[:6]
    pin_hash = (row[6] if len(row) > 6 else None) or None
    confirm = _as_confirm(row[7] if len(row) > 7 else None)
    shift = row[8] if len(row) > 8 else None
    queue = queue.strip() if isinstance(queue, str) else queue
    if not is_valid_queue_name(queue):
        return None
    try:
        starts, ends = as_utc_naive(valid_from), as_utc_naive(valid_until)
    except (TypeError, ValueError):
        return Grant(queue, 0, number, BAD_ROW, "bad_validity_time")
    penalty = _as_penalty(penalty)
    if penalty is None:
        return Grant(queue, 0, number, BAD_ROW, "bad_penalty")
    if pin_hash is not None and not is_pin_hash(pin_hash):
        return Grant(queue, 0, number, BAD_ROW, "bad_pin_hash")    # never a login without its PIN
    try:
        windows = parse_shift(shift)
    except ValueError:
        return Grant(queue, 0, number, BAD_ROW, "bad_shift")       # never "always"
    status = _row_status(enabled, starts, ends, now)
    if status == ACTIVE and not in_shift(windows, now, zone):
        status = OUTSIDE_SHIFT
    return Grant(queue, penalty, safe_member_name(member_name, number), status, pin_hash=pin_hash,
                 confirm=confirm, shift=shift_text(windows) if windows else None)


def _row_status(enabled: Any, starts: datetime.datetime | None, ends: datetime.datetime | None,
                now: datetime.datetime) -> str:
    if _as_flag(enabled) != 1:
        return DISABLED
    if starts is not None and now < starts:
        return NOT_YET_VALID
    if ends is not None and now >= ends:
        return EXPIRED
    return ACTIVE


def _as_penalty(value: Any) -> int | None:
    """An integer penalty in 0..MAX_PENALTY (NULL is 0), else None."""
    try:
        penalty = int(value if value is not None else 0)
    except (TypeError, ValueError):
        return None
    return penalty if 0 <= penalty <= MAX_PENALTY else None


def _as_confirm(value: object) -> bool | None:
    """confirm_answer: NULL is None (the config decides); only a plain 0
    turns confirmation off, so that a garbled value keeps the safe side."""
    if value is None:
        return None
    return str(value).strip() not in ("0", "0.0", "False", "false")


def _as_flag(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# -- the toggle ---------------------------------------------------------------

class LookupFailure:
    """The allowlist could not be read: `reason` is the log token."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail

    def __repr__(self) -> str:
        return "LookupFailure(%s, %r)" % (self.reason, self.detail)


class Decision:
    """What the dialplan is told to do. `interfaces` names, for a member's
    queues, the interface it is a member by (the ring path's, or an older one)."""

    __slots__ = ("state", "reason", "grants", "detail", "interfaces")

    def __init__(self, state: str, reason: str, grants: Iterable[Grant] = (), detail: str = "",
                 interfaces: dict[str, str] | None = None) -> None:
        self.state = state
        self.reason = reason
        self.grants = list(grants)
        self.detail = detail
        self.interfaces = dict(interfaces or {})

    @property
    def queues(self) -> list[str]:
        return [grant.queue for grant in self.grants]

    @property
    def action(self) -> str:
        return {LOGGEDIN: "logout", LOGGEDOUT: "login", PAUSED: "resume", WORKING: "pause"}.get(self.state, "none")

    def __repr__(self) -> str:
        return "Decision(%s, %s, %s)" % (self.state, self.reason, self.queues)


# What an allowlist lookup gives: (grants, None), or (None, the failure).
LookupResult = tuple[Optional[list[Grant]], Optional[LookupFailure]]
Lookup = Callable[[], LookupResult]


def leaving(number: str, queues: Iterable[str]) -> list[Grant]:
    """The grants of a member's logout: only the queue matters."""
    return [Grant(queue, 0, number, ACTIVE) for queue in queues]


class Membership:
    """A number's membership of one queue: by which interface, whether that
    member is paused, and why (`reason`: Asterisk's PausedReason, None when
    it could not be read). Only the ring path's members are ever resumed,
    and only from a pause the ring path made."""

    __slots__ = ("interface", "paused", "reason")

    def __init__(self, interface: str, paused: bool = False, reason: str | None = None) -> None:
        self.interface = interface
        self.paused = paused
        self.reason = reason

    @property
    def resumable(self) -> bool:
        return self.paused and self.reason in RESUMABLE_PAUSES

    def __repr__(self) -> str:
        return "Membership(%r, paused=%r, reason=%r)" % (self.interface, self.paused, self.reason)


# Asterisk's answer on a number in one queue: its Membership, False (not a
# member), or None (the member list was too long to trust, and the manager
# interface, which could have told, could not be asked).
MembershipAnswer = Union[Membership, Literal[False], None]


def decide_one_queue(number: str, queue: str, queue_exists: bool, membership: MembershipAnswer,
                     lookup: Lookup) -> Decision:
    """Toggle in one named queue. `membership` is a Membership, False, or
    None when Asterisk's member list was too long to trust. `lookup()`
    gives (grants, LookupFailure or None); a plain logout never asks it, so
    it never waits for the database."""
    if not queue_exists:
        return Decision(ERROR, "no_such_queue", detail=queue)
    if membership is None:
        return Decision(ERROR, "member_list_too_long", detail=list_too_long([queue]))
    if membership:
        return decide_for_member(number, {queue: membership}, lookup)
    grants, failure = lookup()
    if failure is not None:
        return Decision(ERROR, failure.reason, detail=failure.detail)
    assert grants is not None                       # the lookup's contract: grants when no failure
    for grant in grants:
        if same_queue(grant.queue, queue) and grant.active:
            return Decision(LOGGEDOUT, "permitted", [grant])
        if same_queue(grant.queue, queue) and grant.status == OUTSIDE_SHIFT:
            return Decision(DENIED, OUTSIDE_SHIFT, detail="%s shift %s" % (queue, grant.shift))
        if same_queue(grant.queue, queue) and grant.problem:
            return Decision(ERROR, "bad_row", detail="%s %s" % (queue, grant.problem))
    return Decision(DENIED, "not_permitted", detail=queue)


def list_too_long(queues: Sequence[str]) -> str:
    """The detail of member_list_too_long: what went wrong, for the admin."""
    return "%s: member list cut at 4 KB and the manager could not be asked" % ",".join(queues)


def decide_for_member(number: str, memberships: dict[str, Membership], lookup: Lookup) -> Decision:
    """A member calls: paused by the ring path in a queue he is still
    permitted in, he is resumed there (PAUSED, the state before, with the
    rows' PINs: resuming follows the login's PIN rule); otherwise he leaves
    every queue of `memberships` ({queue: Membership}). Resuming puts a
    number back on duty, so it needs the table; unreadable, he leaves, as a
    member always may."""
    interfaces = {queue: member.interface for queue, member in memberships.items()}
    paused = [queue for queue, member in memberships.items() if member.resumable]
    detail = ""
    if paused:
        grants, failure = lookup()
        if failure is None:
            assert grants is not None               # the lookup's contract: grants when no failure
            resumable = resumable_grants(paused, grants)
            if resumable:
                return Decision(PAUSED, "paused", resumable, interfaces=interfaces)
        else:
            detail = "not resumed: allowlist unreadable (%s)" % failure.reason
    return Decision(LOGGEDIN, "member", leaving(number, list(memberships)), detail=detail, interfaces=interfaces)


def resumable_grants(paused_queues: Iterable[str], grants: Sequence[Grant]) -> list[Grant]:
    """A grant per paused queue that a live row still permits, named as
    Asterisk names the queue and carrying that row's PIN hash."""
    resumable = []
    for queue in paused_queues:
        row = next((grant for grant in grants if grant.active and same_queue(grant.queue, queue)), None)
        if row is not None:
            resumable.append(Grant(queue, row.penalty, row.member_name, ACTIVE, pin_hash=row.pin_hash,
                                   confirm=row.confirm))
    return resumable


def member_by(listed: Iterable[str], interfaces: Iterable[str]) -> str | None:
    """Which of `interfaces` (the ring path's first) is among the member
    interfaces `listed`, compared as Asterisk does (any case); None if none."""
    present = {member.strip().lower() for member in listed}
    return next((interface for interface in interfaces if interface.lower() in present), None)


def candidate_queues(grants: Iterable[Grant] | None, known_queues: Iterable[str]) -> list[str]:
    """Queues the all-queues toggle looks at: every row of this number, live
    or not, plus the queues known without the table (the managed list and
    those with persisted members), so that a revoked member can still leave."""
    seen: dict[str, str] = {}
    for queue in [grant.queue for grant in grants or ()] + list(known_queues):
        seen.setdefault(queue.lower(), queue)
    return list(seen.values())


def decide_all_queues(number: str, grants: list[Grant] | None, lookup_failure: LookupFailure | None,
                      existing: Iterable[str], memberships: dict[str, Membership],
                      unsure: Sequence[str] = ()) -> Decision:
    """Toggle in all the caller's queues: a member of any is resumed where
    paused (decide_for_member) or leaves all of those; otherwise he joins
    every existing queue he is permitted in. `grants` is None when the
    lookup failed; `existing` (a set), `memberships` ({queue: Membership})
    and `unsure` (queues whose member list was too long to trust) are what
    Asterisk reported of the candidate queues."""
    if memberships:
        return decide_for_member(number, memberships, lambda: (grants, lookup_failure))
    if unsure:
        return Decision(ERROR, "member_list_too_long", detail=list_too_long(unsure))
    if lookup_failure is not None:
        return Decision(ERROR, lookup_failure.reason, detail=lookup_failure.detail)
    assert grants is not None                       # the lookup's contract: grants when no failure
    live = [grant for grant in grants if grant.active]
    existing = {queue.lower() for queue in existing}
    joinable = [grant for grant in live if grant.queue.lower() in existing]
    missing = [grant.queue for grant in live if grant.queue.lower() not in existing]
    broken = ["%s:%s" % (grant.queue, grant.problem) for grant in grants if grant.problem]
    # Queues whose window is closed now: a login joins only the open ones.
    closed = [grant.queue for grant in grants if grant.status == OUTSIDE_SHIFT and grant.queue.lower() in existing]
    notes = " ".join(([("missing_queues=" + ",".join(missing))] if missing else [])
                     + ([("bad_rows=" + ",".join(broken))] if broken else [])
                     + ([("outside_shift=" + ",".join(closed))] if closed else []))
    if joinable:
        return Decision(LOGGEDOUT, "permitted", joinable, detail=notes)
    if closed:
        return Decision(DENIED, OUTSIDE_SHIFT, detail=notes)
    if missing:
        return Decision(ERROR, "no_such_queue", detail=notes)
    if broken:
        return Decision(ERROR, "bad_row", detail=notes)
    return Decision(DENIED, "not_permitted")


def decide_break(number: str, memberships: dict[str, Membership], unsure: Sequence[str], lookup: Lookup) -> Decision:
    """The break destination: a member paused for a break (qmt-break) is
    resumed where a live row still permits him (PAUSED, as a resume of the
    toggle: the login's PIN rule and the route); a member on duty is paused
    in every queue he is a member of and permitted in (WORKING). A pause
    someone else made (a supervisor) is never taken over, a pause for missed
    calls becomes a break. Only a member may, only a permitted number."""
    if unsure:
        return Decision(ERROR, "member_list_too_long", detail=",".join(unsure))
    if not memberships:
        return Decision(DENIED, "not_member")
    interfaces = {queue: member.interface for queue, member in memberships.items()}
    grants, failure = lookup()
    if failure is not None:
        return Decision(ERROR, failure.reason, detail=failure.detail)
    assert grants is not None                       # the lookup's contract: grants when no failure
    on_break = [queue for queue, member in memberships.items() if member.paused and member.reason == PAUSE_BREAK]
    if on_break:
        resumable = resumable_grants(on_break, grants)
        if not resumable:
            return Decision(DENIED, "not_permitted", detail="on break in %s: no live row" % ",".join(on_break))
        return Decision(PAUSED, "break_over", resumable, interfaces=interfaces)
    free = [queue for queue, member in memberships.items() if not member.paused or member.resumable]
    held = [queue for queue in memberships if queue not in free]
    permitted = resumable_grants(free, grants)
    detail = " ".join((["paused_by_other=" + ",".join(held)] if held else [])
                      + (["not_permitted=" + ",".join(sorted(set(free) - {g.queue for g in permitted}))]
                         if len(permitted) < len(free) else []))
    if not permitted:
        return Decision(DENIED, "paused_by_other" if held and not free else "not_permitted", detail=detail)
    return Decision(WORKING, "break", permitted, detail=detail, interfaces=interfaces)


def confirms_answer(grants: Sequence[Grant], default: bool) -> bool:
    """Whether the ring path asks this number to press 1: it is one member
    interface for all its queues, so confirmation is off only when every
    row joined turns it off (a NULL row follows the config's default)."""
    return any(default if grant.confirm is None else grant.confirm for grant in grants) or not grants


def pin_needed(decision: Decision, lookup: Lookup | None, required: bool,
               for_logout: bool) -> tuple[bool, list[str], str | None]:
    """Whether a call must enter a PIN: (ask, the hashes it must match, the
    reason it is refused whatever is keyed, or None). `lookup()` gives the
    allowlist answer (grants, failure). With `required`, a stranger and a
    row without a PIN are asked too, and refused like a wrong PIN, so that
    probing tells nothing. A resume puts a number back on duty: it asks as
    a login does. A logout asks only with `for_logout`, and only while the
    table can be read: a member may always leave."""
    if decision.state in (LOGGEDOUT, PAUSED):
        hashes = hashes_to_check(decision.grants)
        if hashes or required:
            return True, hashes, None if hashes else "pin_not_set"
    elif decision.state == DENIED and decision.reason == "not_permitted" and required:
        return True, [], "not_permitted"
    elif decision.state in (LOGGEDIN, WORKING) and for_logout and lookup is not None:
        grants, failure = lookup()
        hashes = [] if failure or grants is None else hashes_to_check(
            [g for g in grants if any(same_queue(g.queue, queue) for queue in decision.queues)])
        if hashes:
            return True, hashes, None
    return False, [], None


# A login or resume that the outbound route cannot carry (issue 15): every
# queue call to the number would fail inside the PBX. ROUTE_UNKNOWN: Asterisk
# answered neither yes nor no, and a number is never put back to ringing on
# a guess.
NO_ROUTE, ROUTE_UNKNOWN = "no_route", "route_unknown"


def rings_again(decision: Decision) -> bool:
    """A login or a resume: the decisions that put a number back to ringing
    through the outbound route. A logout never asks the route: a member may
    always leave."""
    return decision.state in (LOGGEDOUT, PAUSED)


def after_route_check(decision: Decision, dialable: str, route: str, number: str) -> Decision:
    """The decision once Asterisk has said whether the context `route` can
    dial `number`: `dialable` is DIALPLAN_EXISTS()'s text, "1" or "0";
    anything else is no answer. A refusal's detail names the queues."""
    if not rings_again(decision) or dialable == "1":
        return decision
    refused = "%s to %s refused, nothing changed" % (decision.action, ",".join(decision.queues))
    if dialable == "0":
        return Decision(ERROR, NO_ROUTE, detail="route %s cannot dial %s (see qmt doctor): %s" % (
            route, number, refused))
    return Decision(ERROR, ROUTE_UNKNOWN, detail="DIALPLAN_EXISTS(%s,%s,1) gave '%s', not 1 or 0: %s" % (
        route, number, printable(dialable, 20), refused))


def answer_variables(number: str | None, decision: Decision, interface: str,
                     ring: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The (name, value) pairs the dialplan reads, in the order sent.
    `ring` holds the ring path's settings (QMT_RING_*), sent with a login
    only. QUEUESTAT goes last: until it is set the dialplan's preset ERROR
    holds, so an interrupted answer can never look like a complete login."""
    pairs = [
        (QUEUEUSER, number or ""),
        (QAGENT_UNAUTHORIZED, "1" if decision.state == DENIED else "0"),
        (QMT_REASON, decision.reason),
    ]
    if decision.state in (LOGGEDIN, LOGGEDOUT, PAUSED, WORKING):
        pairs.append((QMT_INTERFACE, interface))
        for index, grant in enumerate(decision.grants, 1):
            pairs += [(QMT_QUEUE % index, grant.queue),
                      (QMT_PENALTY % index, str(grant.penalty)),
                      (QMT_NAME % index, grant.member_name),
                      (QMT_IFACE % index, decision.interfaces.get(grant.queue, interface))]
        pairs.append((QMT_COUNT, str(len(decision.grants))))
    if decision.state == LOGGEDOUT:
        pairs += list(ring)
    pairs.append((QUEUESTAT, decision.state))
    return pairs


# -- members already in queues: `qmt status` and `qmt sweep` ------------------

PERMITTED, REVOKED, NOT_IN_TABLE, UNREADABLE = "permitted", "revoked", "not_in_table", "unreadable"


def standing(grants: Iterable[Grant], queue: str) -> str:
    """How the table stands on a member of `queue`: PERMITTED, REVOKED
    (disabled), EXPIRED (or not yet valid), OUTSIDE_SHIFT, NOT_IN_TABLE,
    or BAD_ROW."""
    mine = [grant for grant in grants if same_queue(grant.queue, queue)]
    if not mine:
        return NOT_IN_TABLE
    statuses = {grant.status for grant in mine}
    if ACTIVE in statuses:
        return PERMITTED
    if BAD_ROW in statuses:
        return BAD_ROW
    if OUTSIDE_SHIFT in statuses:
        return OUTSIDE_SHIFT
    if DISABLED in statuses:
        return REVOKED
    return EXPIRED


# The ring path's record of a member's last ring that failed inside the PBX
# or at the carrier (astdb qmt-ring/<number>/fault): "<epoch>|<DIALSTATUS or
# PBXANSWER>|<HANGUPCAUSE>" (the cause may be empty).
RING_FAULT = re.compile(r"([1-9][0-9]{0,9})\|([A-Z_]{1,20})\|([0-9]{0,3})\Z")


def ring_fault(text: str | None) -> tuple[int, str, str] | None:
    """The fault record as (epoch seconds, status, cause or ''); None when
    there is none, ValueError when it is not one the ring path writes."""
    if text is None or text == "":
        return None
    found = RING_FAULT.match(text.strip())
    if not found:
        raise ValueError("not a ring fault record")
    return int(found.group(1)), found.group(2), found.group(3)


def sweep_verdict(member_standing: str, in_call: bool, break_over: bool = False) -> str:
    """What `qmt sweep` does with one mobile member: 'remove' when its
    permission is gone or its shift window closed, 'wait' when so but the
    member is on a call (next run), 'resume' for a permitted member whose
    break (`break_over`) has lasted its time, 'keep' otherwise (a bad row
    is kept: it cannot be judged)."""
    if member_standing not in (REVOKED, EXPIRED, NOT_IN_TABLE, OUTSIDE_SHIFT):
        return "resume" if break_over and member_standing == PERMITTED else "keep"
    return "wait" if in_call else "remove"


def break_over(paused_reason: str, last_pause: object, now: float, break_seconds: float) -> bool:
    """A member paused for a break from the phone (PausedReason qmt-break)
    since `last_pause` (AMI's LastPause, epoch seconds) for `break_seconds`
    or more by `now`; never with break_seconds 0 (no automatic resume) or
    an unreadable LastPause."""
    try:
        since = int(str(last_pause))
    except ValueError:
        return False
    return paused_reason == PAUSE_BREAK and break_seconds > 0 and since > 0 and now - since >= break_seconds
