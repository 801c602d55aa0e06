"""`qmt`: the admin's command for queue-mobile-toggle.

Every command reads /etc/asterisk/queue_mobile_toggle.conf (or --config),
prints text or, with --json, one JSON document, and exits with:
  0  done, nothing to report
  1  done, and it found a problem (a refusal, a member to sweep, a failed check)
  2  usage: a bad argument
  3  Asterisk's manager or the allowlist database cannot be reached or used,
     or root's qmt cannot safely become the asterisk user
A failure to reach Asterisk or the database is one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pwd
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, NoReturn, Optional, TypeVar

from . import allowlist as db
from . import queue_log, report, report_html
from .ami import Ami, AmiError, AmiView, Message, ami_from_settings, member_in_call
from .asterisk_cli import AsteriskCliError, astdb_delete, astdb_family, asterisk_cli, route_dials
from .config import CONFIG_PATH, SWEEP_CRON, SWEEP_UNITS, ConfigError, Settings, load_settings
from .decision import decide, utc_now
from .dialplan import (
    CONFIRM_CONTEXT,
    FASTAGI_FAMILY,
    FASTAGI_HOST,
    FASTAGI_PORT_KEY,
    RESUMED,
    RING_CONTEXT,
    RING_FAMILY,
)
from .log import LOG_TAG, write_log
from .pin import ASTDB_FAMILY, LockRecord, hash_pin, is_pin
from .privileges import PrivilegeError, leave_root
from .queues_conf import DEFAULT_TIMEOUT, QUEUES_CONF, persistent_members, queue_timeouts
from .rules import (
    ACTIVE,
    MAX_PENALTY,
    NOT_YET_VALID,
    OUTSIDE_SHIFT,
    UNREADABLE,
    Grant,
    after_route_check,
    break_over,
    is_valid_queue_name,
    normalise_number,
    printable,
    ring_fault,
    standing,
    sweep_verdict,
    typed_number,
    without_passwords,
)
from .shifts import parse_shift, shift_text

OK, PROBLEM, USAGE, UNREACHABLE = 0, 1, 2, 3
# The help's text is this docstring; `python -OO` strips docstrings, and qmt must still start.
HELP = __doc__ or "qmt: the admin's command for queue-mobile-toggle.\n"
EXIT_CODES = HELP.split("\n", 1)[1]
DSN_NAME = "[A-Za-z0-9_.-]{1,64}"
TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


T = TypeVar("T")
# What a command prints with --json, and the rows, members and checks inside it.
Document = dict[str, Any]
# A check of `qmt doctor`: (passed: True, failed: False, a warning: None; the detail).
Verdict = tuple[Optional[bool], str]


class Unreachable(Exception):
    """Asterisk or the database cannot be used: exit 3 with this line."""


class UsageError(Exception):
    """A bad argument found after parsing: exit 2 with this line."""


# -- the commands -------------------------------------------------------------

def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """What a call from NUMBER would do now; changes nothing."""
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    now = utc_now()
    read = db.AllowlistRead(settings, number, now)
    with manager(settings) as ami:
        decision = decide(AmiView(ami), settings, number, queue or "", read.deadline, read)
    grants, failure = read.lookup(time.monotonic())
    lock = lock_of(number)
    route = route_of(settings, number)
    if route["dials"] is not None:               # as the call would: no route, no login or resume
        decision = after_route_check(decision, "1" if route["dials"] else "0", settings.route, number)
    report: Document = {
        "pin_lockout": lock, "route": route,
        "number": number, "interface": settings.interface_for(number),
        "rows": [grant_dict(grant) for grant in grants or []],
        "allowlist_error": failure.reason if failure else None,
        "decision": {"state": decision.state, "action": decision.action, "reason": decision.reason,
                     "queues": decision.queues, "detail": without_passwords(decision.detail)},
    }
    lines = ["number:    %s" % number, "interface: %s" % report["interface"]]
    lines += ["row:       %s" % describe_grant(row) for row in report["rows"]] or \
        ["rows:      none" + (" (allowlist unreadable: %s)" % failure.reason if failure else "")]
    lines.append("pin:       %s" % describe_lock(lock))
    lines.append("route:     %s" % describe_route(route, number))
    lines.append("decision:  %s, action %s%s (reason=%s)" % (
        decision.state, decision.action, " " + ",".join(decision.queues) if decision.queues else "",
        decision.reason) + (" %s" % report["decision"]["detail"] if decision.detail else ""))
    emit(args, report, lines)
    if decision.action != "none" and lock and lock["locked"]:
        return PROBLEM                           # the PIN step would refuse it now
    if failure and decision.action == "none":
        return UNREACHABLE
    return OK if decision.action != "none" else PROBLEM


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """The mobile members now in each queue, judged against the table."""
    members, table_error = mobile_members(settings, args.queue)
    emit(args, {"members": members, "allowlist_error": table_error},
         [member_line(m) for m in members] or ["no mobile member in any queue"],
         table_error and "allowlist unreadable: %s" % table_error)
    if table_error:
        return UNREACHABLE
    return PROBLEM if any(m["standing"] not in ("permitted",) for m in members) else OK


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """Remove the mobile members whose permission is gone (with --apply)."""
    members, table_error = mobile_members(settings, None)
    if table_error:
        # The table is what says who may stay: unread, it says nothing.
        raise Unreachable("allowlist unreadable (%s): sweep removes nobody" % table_error)
    due = [m for m in members if m["verdict"] in ("remove", "wait", "resume")]
    if args.apply:
        with manager(settings) as ami:
            for member in due:
                member["removed"] = member["verdict"] == "remove" and remove(ami, settings, member)
                member["resumed"] = member["verdict"] == "resume" and resume(ami, settings, member)
    lines = ["%s %s" % (sweep_word(m, args.apply), member_line(m)) for m in due] or ["nothing to sweep"]
    emit(args, {"applied": args.apply, "members": due}, lines)
    if args.apply:
        return PROBLEM if any(not m[done] for m in due for verdict, done in (("remove", "removed"),
                                                                               ("resume", "resumed"))
                              if m["verdict"] == verdict) else OK
    return PROBLEM if any(m["verdict"] == "remove" for m in due) else OK


def cmd_allow(args: argparse.Namespace, settings: Settings) -> int:
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    if not 0 <= args.penalty <= MAX_PENALTY:
        raise UsageError("--penalty must be from 0 to %d" % MAX_PENALTY)
    starts, ends = time_argument(args.valid_from, "--from"), time_argument(args.until, "--until")
    if starts and ends and ends <= starts:
        raise UsageError("--until must be after --from")
    name = (args.name or "").strip() or None
    shift = shift_argument(args.shift)
    pin_hash = hash_pin(read_pin(settings)) if args.pin else None
    confirm = {None: db.KEEP, "yes": 1, "no": 0, "default": None}[args.confirm]
    done = with_allowlist(settings, args.dsn, db.allow, number, queue, args.penalty, name, starts, ends, pin_hash,
                          confirm, shift)
    emit(args, {"number": number, "queue": queue, "result": done, "pin": bool(pin_hash),
                "confirm_answer": "kept" if confirm is db.KEEP else confirm,
                "shift": "kept" if shift is db.KEEP else shift},
         ["%s: %s may log in to queue %s%s%s" % (done, number, queue, " with a PIN" if pin_hash else "",
                                                  " during %s" % shift if isinstance(shift, str) else "")])
    return OK


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    count = with_allowlist(settings, args.dsn, db.revoke, number, queue)
    emit(args, {"number": number, "queue": queue, "rows_deleted": count},
         ["revoked: %d row(s) of %s deleted%s" % (count, number, " (queue %s)" % queue if queue else "")
          + ("; `qmt sweep --apply` removes him from the queues" if count else "")])
    return OK if count else PROBLEM


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = with_allowlist(settings, args.dsn, db.read_table, queue_argument(args.queue))
    table = db.grants_by_number(rows, utc_now(), settings)
    listed = [dict(grant_dict(grant), number=number) for number, grants in table.items() for grant in grants]
    emit(args, {"rows": listed}, ["%s %s" % (row["number"], describe_grant(row)) for row in listed]
         or ["the allowlist is empty"])
    return OK


def cmd_hash_pin(args: argparse.Namespace, settings: Settings) -> int:
    """The pin_hash column's value for a PIN read from the terminal (twice,
    not shown) or from stdin; never from the command line."""
    pin = read_pin(settings)
    emit(args, {"pin_hash": hash_pin(pin)}, [hash_pin(pin)])
    return OK


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    number = number_argument(args.number, settings)
    try:
        removed = astdb_delete(ASTDB_FAMILY, number)
    except AsteriskCliError as error:
        raise Unreachable(str(error)) from None
    emit(args, {"number": number, "unlocked": removed},
         ["%s: %s" % (number, "unlocked: its wrong PINs are forgotten" if removed else "had no lockout record")])
    return OK if removed else PROBLEM


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """What each mobile member did between --since and --until, from queue_log."""
    try:
        zone, zone_name = report.local_zone(args.tz)
        window = report.window_of(args.since, args.until, zone, zone_name, time.time())
    except (ValueError, KeyError) as problem:
        raise UsageError("%s" % problem) from None
    number = number_argument(args.number, settings) if args.number else None
    rows, table_error = [], None
    try:                       # the member names of the table; the report goes on without them
        rows = with_allowlist(settings, None, db.read_table)
    except Unreachable as problem:
        table_error = "%s: member names are not known, only numbers" % problem
    agents = report.Agents(settings.member_templates, [(row[0], row[1], row[3]) for row in rows])
    found = report.Report(window, agents, queue_argument(args.queue), number,
                          persistent=persistent_members() is not False)
    counter = queue_log.Counter()
    if args.odbc:
        if not queue_log.TABLE_NAME.match(args.table):
            raise UsageError("--table: a table name (letters, digits, _)")
        connection = "DSN=" + args.odbc if re.fullmatch(DSN_NAME, args.odbc) else args.odbc
        try:
            queue_log.read_table(connection, args.table, datetime.timezone.utc if args.table_utc else zone,
                                 counter, found.feed_all)
        except db.DatabaseError as error:
            raise Unreachable("queue_log table: %s: %s" % (error.reason, without_passwords(error.detail))) from None
    else:
        files = queue_log.rotated_files(args.queue_log)
        if not files:
            raise Unreachable("no queue_log at %s" % args.queue_log)
        try:
            found.feed_all(queue_log.file_entries(files, counter))
        except OSError as error:
            raise Unreachable("queue_log: %s" % error) from None
    document = report.document(found, counter.read, counter.skipped)
    if table_error:
        print("qmt: " + table_error, file=sys.stderr)
    write_report(args, document)
    return OK


def write_report(args: argparse.Namespace, document: Document) -> None:
    if args.html:
        page = report_html.page(document)
        if args.html == "-":
            sys.stdout.write(page)
            return
        try:
            with open(args.html, "w", encoding="utf-8") as out:
                out.write(page)
        except OSError as error:
            raise Unreachable("--html: %s (as root, qmt writes as the asterisk user: give a folder it may "
                              "write, or --html - > FILE)" % error) from None
    elif args.csv:
        import csv
        csv.writer(sys.stdout, lineterminator="\n").writerows(report.csv_rows(document))
    else:
        emit(args, document, report.text_lines(document))


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """The installation's health, step by step; exit 1 on any failure."""
    checks: list[tuple[str, bool | None, str]] = [("config", True, "%s is valid" % args.config)]
    rows: list[db.Row] = []
    try:
        rows = db.read_table(*settings.database())
        checks.append(("database", True, "table %s reachable as %s: %d row(s)" % (
            db.TABLE, pwd.getpwuid(os.geteuid()).pw_name, len(rows))))
    except db.DatabaseError as error:
        checks.append(("database", False, "%s: %s (connection = %s)" % (
            error.reason, without_passwords(error.detail), without_passwords(settings.connection))))
    queues: dict[str, list[Message]] = {}
    try:
        with manager(settings) as ami:
            queues = ami.queue_members()
        checks.append(("ami", True, "manager login %s ok, %d queue(s)" % (settings.ami_username, len(queues))))
    except Unreachable as problem:
        checks.append(("ami", False, "%s (is the manager enabled in manager.conf? install.sh --enable-ami)"
                       % problem))
    checks.append(("ring",) + ring_path_loaded(settings))
    table_read = any(check == "database" and ok for check, ok, _ in checks)
    permitted = permitted_grants(settings, rows)
    checks.append(("route",) + route_dials_permitted(settings, permitted, table_read))
    checks.append(("confirm",) + confirmation_off(settings, permitted, table_read))
    checks.append(("queues",) + queues_ring_long_enough(settings, mobile_queues(settings, rows, queues)))
    timer = sweep_timer()
    checks.append(("sweep", bool(timer), timer or "no sweep timer or cron file: run install.sh"))
    checks.append(("fastagi",) + fastagi_mode(settings))
    emit(args, {"checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks]},
         ["[%s]    %s: %s" % ({True: "PASS", False: "FAIL", None: "WARN"}[ok], c, d) for c, ok, d in checks])
    return OK if all(ok is not False for _, ok, _ in checks) else PROBLEM


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The FastAGI server in the foreground (qmt.fastagi), until SIGTERM."""
    from . import fastagi
    port = args.port or settings.fastagi_port
    try:
        server = fastagi.listen(settings, port)
    except OSError as exc:
        return fail(PROBLEM, "serve: cannot listen on %s:%d: %s" % (fastagi.FASTAGI_HOST, port,
                                                                    exc.strerror or exc))
    return fastagi.serve_until_stopped(server)


def port_argument(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("a port from 1 to 65535")
    return int(text)


def ring_path_loaded(settings: Settings) -> tuple[bool, str]:
    """(ok, detail): the ring path's contexts and the route it dials are in
    the running dialplan, or a queue call to a mobile could not ring."""
    contexts = (RING_CONTEXT, CONFIRM_CONTEXT, settings.route)
    try:
        missing = [context for context in contexts
                   if "[ Context '%s'" % context not in asterisk_cli("dialplan show %s" % context)]
    except AsteriskCliError as error:
        return False, str(error)
    if missing:
        return False, "not in the running dialplan: %s (is extensions_queue_mobile_toggle.conf included, " \
            "and [member] route your outbound route context?)" % ", ".join(missing)
    return True, "contexts %s, %s and the route %s are loaded" % (RING_CONTEXT, CONFIRM_CONTEXT, settings.route)


def fastagi_mode(settings: Settings) -> Verdict:
    """Which of the dialplan's modes is on (astdb qmt-fastagi/port: the
    classic script, or FastAGI first) and whether the server answers there.
    A switch naming no answering server fails: every call then falls back to
    the classic script, with a WARNING each."""
    from .fastagi import probe
    try:
        stored = astdb_family(FASTAGI_FAMILY).get(FASTAGI_PORT_KEY)
    except AsteriskCliError as error:
        return None, "the mode is unknown: %s" % error
    if stored is None:
        return True, "off: the classic script decides (install.sh --fastagi turns the server on)"
    switch = "astdb %s/%s" % (FASTAGI_FAMILY, FASTAGI_PORT_KEY)
    if not (stored.isascii() and stored.isdigit() and 1 <= len(stored) <= 5):
        return False, "%s is '%s', not a port: the dialplan ignores it and runs the classic script " \
            "(install.sh --fastagi or --no-fastagi)" % (switch, printable(stored, 20))
    where = "%s:%s" % (FASTAGI_HOST, stored)
    version = probe(int(stored))
    if version is None:
        return False, "on at %s, but no server answers there: every call falls back to the classic script, " \
            "a WARNING each (systemctl status qmt-fastagi)" % where
    if int(stored) != settings.fastagi_port:
        return False, "on at %s (qmt serve %s answers), but the config's [fastagi] port is %d: restart the " \
            "server and run install.sh --fastagi" % (where, version, settings.fastagi_port)
    return True, "on at %s: qmt serve %s answers" % (where, version)


def permitted_grants(settings: Settings, rows: Sequence[db.Row]) -> dict[str, list[Grant]]:
    """{number: its rows that permit now or later} of the table's rows, the
    numbers normalised as a call's: the numbers a login may ring."""
    permitted: dict[str, list[Grant]] = {}
    for raw, grants in db.grants_by_number(rows, utc_now(), settings).items():
        number = normalise_number(str(raw).strip(), **settings.number_rules)
        live = [grant for grant in grants if grant.status in (ACTIVE, NOT_YET_VALID, OUTSIDE_SHIFT)]
        if number and live:
            permitted.setdefault(number, []).extend(live)
    return permitted


def route_of(settings: Settings, number: str) -> Document:
    """`qmt check`'s route: {"route", "dials": True, False or None when
    Asterisk cannot be asked, "error"}."""
    try:
        return {"route": settings.route, "dials": route_dials(settings.route, number), "error": None}
    except AsteriskCliError as error:
        return {"route": settings.route, "dials": None, "error": str(error)}


def describe_route(route: Document, number: str) -> str:
    if route["dials"] is None:
        return "not checked: %s" % route["error"]
    if route["dials"]:
        return "%s can dial %s" % (route["route"], number)
    return "%s CANNOT dial %s: a login or resume is refused (no_route)" % (route["route"], number)


def route_dials_permitted(settings: Settings, permitted: dict[str, list[Grant]], table_read: bool) -> Verdict:
    """(ok, detail): the route ([member] route) can dial every permitted
    number, or the logins of those it cannot are refused (no_route) and a
    queue could never ring them. None (a warning) when the numbers or
    Asterisk cannot be read."""
    if not table_read:
        return None, "allowlist unreadable: the permitted numbers not checked against the route %s" % settings.route
    numbers = sorted(permitted)
    try:
        # One CLI question per number: a few ms each (seen on Asterisk 22).
        dials = [route_dials(settings.route, number) for number in numbers]
    except AsteriskCliError as error:
        return None, "the permitted numbers not checked against the route %s: %s" % (settings.route, error)
    cannot = [number for number, dialled in zip(numbers, dials) if not dialled]
    if cannot:
        return False, "the route %s cannot dial %s: their logins are refused (no_route); add a dial pattern " \
            "that matches them (FreePBX: an outbound route) or set [member] route" % (settings.route, listing(cannot))
    return True, "the route %s can dial all %d permitted number(s)" % (settings.route, len(numbers))


CONFIRM_RISK = "without confirmation, anything that answers inside the PBX or at the carrier (a route's password " \
    "prompt, an \"all circuits busy\" message, a voicemail) is connected to the customer as if the agent answered"


def confirmation_off(settings: Settings, permitted: dict[str, list[Grant]], table_read: bool) -> Verdict:
    """(ok, detail): whether any permitted number is rung without "press 1"
    (confirm_answer = 0, or [member] confirm = no and no explicit 1); a
    warning, never a failure: it may be the admin's choice."""
    if settings.confirm:
        if not table_read:
            return None, "allowlist unreadable: confirm_answer not checked"
        off = sorted(number for number, grants in permitted.items() if any(g.confirm is False for g in grants))
        if not off:
            return True, "every permitted number accepts a queue call with 1"
        return None, "off (confirm_answer = 0) for %s: %s" % (listing(off), CONFIRM_RISK)
    off = sorted(number for number, grants in permitted.items() if not all(g.confirm is True for g in grants))
    return None, "off for every number without confirm_answer = 1 ([member] confirm = no)%s: %s" % (
        ", here %s" % listing(off) if off else "", CONFIRM_RISK)


def listing(numbers: Sequence[str], most: int = 20) -> str:
    """Numbers for one line: the first `most`, then how many more."""
    return ", ".join(numbers[:most]) + (" and %d more" % (len(numbers) - most) if len(numbers) > most else "")


# The ring path's prompts ("call from", a 4-digit queue number, "press 1...")
# take about 8 s; 2 s more for the mobile network and the Dial.
PROMPT_SECONDS = 10


def mobile_queues(settings: Settings, rows: Iterable[db.Row], queues: dict[str, list[Message]]) -> list[str]:
    """Queues a mobile of ours may ring in: those the table names, and
    those with a member of ours now (from AMI's {queue: members})."""
    named = {row[1] for row in rows}
    present = {queue for queue, members in queues.items()
               if any(settings.number_of_member(m.get("Location", "")) for m in members)}
    return sorted(named | present)


def queues_ring_long_enough(settings: Settings, queues: Sequence[str], path: str = QUEUES_CONF) -> Verdict:
    """(ok, detail): each of `queues` rings a member for longer than the
    ring path needs (ring_seconds + answer_wait + the prompts), or a late
    answer is cut mid-prompt and not counted as a miss. None (a warning)
    when the queues' config cannot be read."""
    needed = settings.ring_seconds + settings.answer_wait + PROMPT_SECONDS
    timeouts = queue_timeouts(path)
    if timeouts is None:
        return None, "cannot read %s: queue timeouts not checked (need %d s or more)" % (path, needed)
    short = ["%s (%d s)" % (queue, timeouts.get(queue, DEFAULT_TIMEOUT)) for queue in queues
             if 0 < timeouts.get(queue, DEFAULT_TIMEOUT) < needed]
    if short:
        return False, "queue timeout shorter than the ring path's %d s (ring_seconds + answer_wait + %d): %s; " \
            "raise it (FreePBX: Agent Timeout) or lower [member] ring_seconds" % (needed, PROMPT_SECONDS,
                                                                                ", ".join(short))
    return True, "%d queue(s) for mobiles, each rings a member %d s or more" % (len(queues), needed)


# -- shared steps -------------------------------------------------------------

class manager:
    """The AMI connection as a context manager; AmiError becomes Unreachable."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> Ami:
        try:
            self.ami = ami_from_settings(self.settings)
        except AmiError as error:
            raise Unreachable(str(error)) from None
        return self.ami

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _trace: TracebackType | None) -> None:
        self.ami.close()
        if isinstance(error, AmiError):
            raise Unreachable(str(error)) from None


def mobile_members(settings: Settings, queue: str | None) -> tuple[list[Document], str | None]:
    """The members made from the interface template, each with its number,
    standing in the table and the sweep's verdict; and the table's error."""
    queue = queue_argument(queue)
    with manager(settings) as ami:
        queues = ami.queue_members(queue)
    now = utc_now()
    table: dict[Any, list[Grant]] | None
    table_error: str | None
    try:
        table, table_error = db.grants_by_number(db.read_table(*settings.database()), now, settings), None
    except db.DatabaseError as error:
        table, table_error = None, error.reason
    locks, ring = pin_locks(), ring_records()
    members: list[Document] = []
    for queue_name, listed in sorted(queues.items()):
        for member in listed:
            number = settings.number_of_member(member.get("Location", ""))
            if number is None:
                continue  # not a mobile of ours: never touched
            judged = UNREADABLE if table is None else standing(table.get(number, []), queue_name)
            in_call = member_in_call(member)
            paused = member.get("Paused") == "1"
            on_break_long = paused and break_over(member.get("PausedReason", ""), member.get("LastPause", ""),
                                                  time.time(), 60 * settings.break_minutes)
            members.append({
                "queue": queue_name, "interface": member.get("Location", ""), "number": number,
                "name": member.get("Name", ""), "standing": judged, "in_call": in_call,
                "paused": paused, "paused_reason": member.get("PausedReason", ""),
                "login_time": epoch_text(member.get("LoginTime")), "calls_taken": member.get("CallsTaken", ""),
                "verdict": sweep_verdict(judged, in_call, on_break_long),
                "pin_locked": number in locks and locks[number].locked(int(time.time())),
                "ring_path": member.get("Location", "").lower() == settings.interface_for(number).lower(),
                "missed_calls": missed_calls(ring.get(number, {})),
                "last_ring_fault": last_ring_fault(ring.get(number, {})),
            })
    return members, table_error


def remove(ami: Ami, settings: Settings, member: Document) -> bool:
    """One removal through AMI (Asterisk writes REMOVEMEMBER to queue_log)
    and one log line; reason=outside_shift for a member whose shift window
    closed."""
    removed, message = ami.remove_member(member["queue"], member["interface"])
    write_log(settings, "%s: sweep number=%s queue=%s interface=%s standing=%s %s%s" % (
        LOG_TAG, member["number"], member["queue"], member["interface"], member["standing"],
        "removed" if removed else "not_removed detail=%s" % printable(message, 120),
        " reason=%s" % OUTSIDE_SHIFT if member["standing"] == OUTSIDE_SHIFT else ""), not removed)
    return removed


def resume(ami: Ami, settings: Settings, member: Document) -> bool:
    """The end of a break from the phone that lasted [member] break_minutes:
    one unpause through AMI (Asterisk writes UNPAUSE to queue_log, reason
    qmt-resumed, as a resume by call) and one log line."""
    resumed, message = ami.unpause_member(member["queue"], member["interface"], RESUMED)
    write_log(settings, "%s: sweep number=%s queue=%s interface=%s reason=break_over %s" % (
        LOG_TAG, member["number"], member["queue"], member["interface"],
        "resumed" if resumed else "not_resumed detail=%s" % printable(message, 120)), not resumed)
    return resumed


def sweep_word(member: Document, applied: bool) -> str:
    if member["verdict"] == "wait":
        return "on a call, next run:"
    if member["verdict"] == "resume":
        if not applied:
            return "would resume (break over):"
        return "resumed (break over):" if member["resumed"] else "FAILED to resume:"
    if not applied:
        return "would remove:"
    return "removed:" if member["removed"] else "FAILED to remove:"


def with_allowlist(settings: Settings, dsn: str | None, action: Callable[..., T], *values: Any) -> T:
    """action(connection, timeout, *values) on the config's connection, or
    on DSN=dsn; a database error becomes Unreachable with one line."""
    try:
        return action(*settings.database(dsn), *values)
    except db.DatabaseError as error:
        if error.reason == "db_permission_denied" and action is not db.read_table:
            raise Unreachable("the account of %s may not write to the allowlist (it should only SELECT): "
                              "give a writer account with --dsn NAME" % ("DSN " + dsn if dsn else "the config"))
        raise Unreachable("allowlist: %s: %s" % (error.reason, without_passwords(error.detail))) from None


def read_pin(settings: Settings) -> str:
    """A PIN from the terminal, asked twice and not shown; from stdin (one
    line) when that is not a terminal. Only digits, of the configured length."""
    import getpass
    shortest, longest = settings.pin_min_length, settings.pin_max_digits
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN: ")
        if getpass.getpass("PIN again: ") != pin:
            raise UsageError("the two PINs differ")
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    if not is_pin(pin, shortest, longest):
        raise UsageError("a PIN is %d to %d digits 0-9, nothing else" % (shortest, longest))
    return pin


def astdb_or_nothing(family: str) -> dict[str, str]:
    """astdb_family(family), or {} when Asterisk's CLI cannot be asked: what
    it holds (lockouts, missed calls) is then simply not shown."""
    try:
        return astdb_family(family)
    except AsteriskCliError:
        return {}


def pin_locks() -> dict[str, LockRecord]:
    """{number: LockRecord} of astdb's PIN lockout records."""
    return {number: LockRecord.parse(text) for number, text in astdb_or_nothing(ASTDB_FAMILY).items()}


def ring_records() -> dict[str, dict[str, str]]:
    """{number: {key: value}} of the ring path's astdb family
    (qmt-ring/<number>/<key>: its settings, `missed`, `fault`)."""
    records: dict[str, dict[str, str]] = {}
    for path, value in astdb_or_nothing(RING_FAMILY).items():
        number, _, key = path.partition("/")
        records.setdefault(number, {})[key] = value
    return records


def missed_calls(record: dict[str, str]) -> int:
    """Queue calls missed in a row, as the ring path counts them."""
    value = record.get("missed", "")
    return int(value) if value.isascii() and value.isdigit() else 0


def last_ring_fault(record: dict[str, str]) -> Document | None:
    """The last ring that failed inside the PBX or at the carrier (not a
    miss of the agent's): {"time", "status", "cause"}, {"unreadable": the
    text} for a record the ring path does not write, or None."""
    try:
        fault = ring_fault(record.get("fault"))
    except ValueError:
        return {"unreadable": printable(record["fault"], 60)}
    if fault is None:
        return None
    return {"time": epoch_text(fault[0]), "status": fault[1], "cause": fault[2]}


def describe_fault(fault: Document) -> str:
    if "unreadable" in fault:
        return "last ring fault unreadable ('%s')" % fault["unreadable"]
    return "last ring fault %s: %s%s, not counted as a miss" % (
        fault["time"], fault["status"], " (cause %s)" % fault["cause"] if fault["cause"] else "")


def lock_of(number: str) -> Document | None:
    """The number's lockout record as `check` shows it, or None."""
    record = pin_locks().get(number)
    if record is None:
        return None
    return {"failures": record.failures, "locked": record.locked(int(time.time())),
            "locked_until": epoch_text(record.locked_until)}


def describe_lock(lock: Document | None) -> str:
    if not lock:
        return "no wrong PINs on record"
    if lock["locked"]:
        return "LOCKED until %s (qmt unlock clears it)" % lock["locked_until"]
    return "%d wrong PIN(s) on record" % lock["failures"]


def sweep_timer() -> str:
    for path in (SWEEP_UNITS + ".timer", SWEEP_CRON):
        if os.path.isfile(path):
            return "runs from " + path
    return ""


def number_argument(text: str, settings: Settings) -> str:
    number = typed_number(text, **settings.number_rules)
    if number is None:
        raise UsageError("%r cannot be a caller's number (6 to 15 digits after the number rules)" % text)
    return number


def queue_argument(text: str | None) -> str | None:
    if text is not None and not is_valid_queue_name(text):
        raise UsageError("%r is not a queue name (letters, digits, _ and -)" % text)
    return text


def shift_argument(text: str | None) -> object:
    """--shift: db.KEEP when not given, None (no restriction) for '', else
    the windows as written back by the parser; a bad one is a usage error."""
    if text is None:
        return db.KEEP
    try:
        windows = parse_shift(text)
    except ValueError as problem:
        raise UsageError("--shift: %s" % problem) from None
    return shift_text(windows) if windows else None


def time_argument(text: str | None, option: str) -> datetime.datetime | None:
    if not text:
        return None
    for form in TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), form)
        except ValueError:
            continue
    raise UsageError("%s: give a UTC time as YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]'" % option)


def epoch_text(value: Any) -> str:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return ""
    if seconds <= 0:
        return ""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def grant_dict(grant: Grant) -> Document:
    return {"queue": grant.queue, "penalty": grant.penalty, "name": grant.member_name,
            "status": grant.status, "problem": grant.problem,
            "confirm": {None: "default", True: "yes", False: "no"}[grant.confirm], "shift": grant.shift}


def describe_grant(row: Document) -> str:
    return "queue %s penalty %s name %r%s%s: %s%s" % (
        row["queue"], row["penalty"], row["name"], "" if row["confirm"] == "default" else " confirm " + row["confirm"],
        " shift '%s'" % row["shift"] if row.get("shift") else "", row["status"],
        " (%s)" % row["problem"] if row["problem"] else "")


def member_line(m: Document) -> str:
    flags = [m["standing"]] + (["in call"] if m["in_call"] else []) + (["PIN locked"] if m["pin_locked"] else []) + \
        (["paused" + (" (%s)" % m["paused_reason"] if m["paused_reason"] else "")] if m["paused"] else []) + \
        (["missed %d in a row" % m["missed_calls"]] if m["missed_calls"] else []) + \
        ([describe_fault(m["last_ring_fault"])] if m["last_ring_fault"] else []) + \
        ([] if m["ring_path"] else ["old interface %s: rung without confirmation until it logs in again"
                                    % m["interface"]])
    since = " since %s" % m["login_time"] if m["login_time"] else ""
    return "queue %s %s (%s)%s: %s" % (m["queue"], m["number"], m["name"] or "-", since, ", ".join(flags))


def emit(args: argparse.Namespace, document: Document, lines: list[str], warning: str | None = None) -> None:
    if warning:
        print("qmt: " + warning, file=sys.stderr)
    if args.json:
        print(json.dumps(document, ensure_ascii=False, indent=1, default=str))
    else:
        print("\n".join(lines))


# -- parsing ------------------------------------------------------------------

# A command's function: (its arguments, the settings) -> the exit code.
Handler = Callable[[argparse.Namespace, Settings], int]


def parser() -> argparse.ArgumentParser:
    def options(defaults: bool) -> argparse.ArgumentParser:
        """--config and --json, accepted before and after the command; the
        command's copy must not reset what was given before it."""
        shared = argparse.ArgumentParser(add_help=False)
        shared.add_argument("--config", help="the toggle's config file (default %s)" % CONFIG_PATH,
                            default=os.environ.get("QMT_CONFIG", CONFIG_PATH) if defaults else argparse.SUPPRESS)
        unset: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
        shared.add_argument("--json", action="store_true", help="print one JSON document", **unset)
        return shared

    common = options(defaults=False)
    top = argparse.ArgumentParser(prog="qmt", parents=[options(defaults=True)],
                                  description=HELP.split("\n\n")[0], epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text, epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("check", cmd_check, "what a call from NUMBER would do now (changes nothing)")
    sub.add_argument("number")
    sub.add_argument("--queue", help="as the one-queue destination (default: all the caller's queues)")
    sub = command("status", cmd_status, "the mobile members now in the queues, judged against the table")
    sub.add_argument("--queue")
    sub = command("sweep", cmd_sweep, "remove mobile members whose permission is gone (only lists them "
                  "without --apply)")
    sub.add_argument("--apply", action="store_true", help="really remove them")
    sub = command("allow", cmd_allow, "permit NUMBER in a queue (adds or updates its row)")
    sub.add_argument("number")
    sub.add_argument("--queue", required=True)
    sub.add_argument("--penalty", type=int, default=0)
    sub.add_argument("--name", help="member name shown in `queue show`")
    sub.add_argument("--from", dest="valid_from", metavar="TIME", help="valid from (UTC)")
    sub.add_argument("--until", metavar="TIME", help="valid until, not including (UTC)")
    sub.add_argument("--dsn", help="ODBC DSN of an account that may write (server backends)")
    sub.add_argument("--pin", action="store_true", help="ask for a PIN (twice, not shown) and store its hash")
    sub.add_argument("--shift", metavar="WINDOWS", help="when a login is allowed, in the PBX's local time, e.g. "
                     "'mon-fri 09:00-18:00, sat 10:00-14:00' ('' : always); unset: an update keeps it")
    sub.add_argument("--confirm", choices=("yes", "no", "default"),
                     help="queue calls: press 1 to accept (yes), connect on answer (no), or as [member] confirm "
                          "(default); unset: an update keeps it, a new row has the default")
    sub = command("revoke", cmd_revoke, "delete NUMBER's rows (of one queue)")
    sub.add_argument("number")
    sub.add_argument("--queue")
    sub.add_argument("--dsn", help="ODBC DSN of an account that may write (server backends)")
    sub = command("list", cmd_list, "the rows of the allowlist, judged now")
    sub.add_argument("--queue")
    sub.add_argument("--dsn", help="ODBC DSN to read instead of the config's connection")
    command("hash-pin", cmd_hash_pin, "print the pin_hash value of a PIN (read from the terminal, not argv)")
    sub = command("unlock", cmd_unlock, "forget NUMBER's wrong PINs, ending a lockout")
    sub.add_argument("number")
    sub = command("report", cmd_report, "what each mobile number did in the queues (sessions, pauses, calls), "
                  "from queue_log; times in the PBX's zone")
    sub.add_argument("--since", metavar="TIME", help="from (YYYY-MM-DD [HH:MM[:SS]], today, yesterday; "
                     "default: 6 days before today, midnight)")
    sub.add_argument("--until", metavar="TIME", help="up to, not including (default: now)")
    sub.add_argument("--queue")
    sub.add_argument("--number")
    sub.add_argument("--tz", metavar="ZONE", help="the PBX's time zone (default: $TZ, else /etc/localtime)")
    sub.add_argument("--queue-log", default=queue_log.QUEUE_LOG, metavar="FILE",
                     help="the file; its rotated copies (FILE.1, FILE.2.gz, FILE-DATE) are read too "
                          "(default %(default)s)")
    sub.add_argument("--odbc", metavar="DSN", help="read a queue_log table instead: a DSN or a connection string")
    sub.add_argument("--table", default="queue_log", help="the table's name (default %(default)s)")
    sub.add_argument("--table-utc", action="store_true", help="the table's times are UTC "
                     "(logger.conf queue_log_realtime_use_gmt = yes)")
    form = sub.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="print CSV: a row per number and queue, then the total")
    form.add_argument("--html", metavar="FILE", help="write a self-contained page with charts (- : stdout)")
    command("doctor", cmd_doctor, "check the installation (config, database, manager, ring path, the route to "
            "every permitted number, confirmation, queue timeouts, sweep timer, FastAGI mode)")
    sub = command("serve", cmd_serve, "answer the toggle's calls over FastAGI on 127.0.0.1 (the port in "
                  "[fastagi]) until stopped; run by systemd (install.sh --fastagi)")
    sub.add_argument("--port", type=port_argument, help="listen on this port instead")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)             # exits 2 on a usage error
    if getattr(args, "dsn", None) and not re.fullmatch(DSN_NAME, args.dsn):
        return fail(USAGE, "--dsn: letters, digits and ._- only")
    try:
        # Before anything is read: root must not run what the asterisk user wrote.
        args.config = leave_root(args.config, dsn=getattr(args, "dsn", None))
    except PrivilegeError as problem:
        return fail(UNREACHABLE, str(problem))
    try:
        settings = load_settings(args.config)
    except ConfigError as problem:
        if args.command == "hash-pin":         # a DBA may hash on a machine without the toggle
            settings = Settings.defaults()
        else:
            return fail(PROBLEM if args.command in ("doctor", "serve") else UNREACHABLE, "config: %s" % problem)
    try:
        return args.handler(args, settings)
    except UsageError as problem:
        return fail(USAGE, str(problem))
    except Unreachable as problem:
        return fail(UNREACHABLE, str(problem))
    except KeyboardInterrupt:
        return fail(USAGE, "interrupted")


def fail(code: int, line: str) -> int:
    print("qmt: " + line, file=sys.stderr)
    return code


def run() -> NoReturn:
    """The console script: exit without waiting for a database call that
    was abandoned past its time bound."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
