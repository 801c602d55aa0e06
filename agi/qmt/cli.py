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

import argparse
import datetime
import json
import os
import pwd
import re
import sys
import time

from . import allowlist as db
from .config import CONFIG_PATH, ConfigError, load_settings
from .log import LOG_TAG, write_log
from .ami import (AmiError, AmiView, ami_from_settings, asterisk_cli, astdb_delete, astdb_family,
                  member_in_call)
from .pin import ASTDB_FAMILY, LockRecord, hash_pin, is_pin
from .privileges import PrivilegeError, leave_root
from .queues_conf import DEFAULT_TIMEOUT, QUEUES_CONF, queue_timeouts
from .rules import (MAX_PENALTY, UNREADABLE, is_valid_queue_name, printable, standing,
                    sweep_verdict, typed_number, without_passwords)
from .toggle import decide, utc_now

OK, PROBLEM, USAGE, UNREACHABLE = 0, 1, 2, 3
EXIT_CODES = __doc__.split("\n", 1)[1]
DSN_NAME = "[A-Za-z0-9_.-]{1,64}"
TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


class Unreachable(Exception):
    """Asterisk or the database cannot be used: exit 3 with this line."""


class UsageError(Exception):
    """A bad argument found after parsing: exit 2 with this line."""


# -- the commands -------------------------------------------------------------

def cmd_check(args, settings):
    """What a call from NUMBER would do now; changes nothing."""
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    now = utc_now()
    read = db.AllowlistRead(settings, number, now)
    with manager(settings) as ami:
        decision = decide(AmiView(ami), settings, number, queue or "", time.monotonic() + settings.timeout, read)
    grants, failure = read.lookup(time.monotonic())
    lock = lock_of(number)
    report = {
        "pin_lockout": lock,
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
    lines.append("decision:  %s, action %s%s (reason=%s)" % (
        decision.state, decision.action, " " + ",".join(decision.queues) if decision.queues else "",
        decision.reason) + (" %s" % report["decision"]["detail"] if decision.detail else ""))
    emit(args, report, lines)
    if decision.action != "none" and lock and lock["locked"]:
        return PROBLEM                           # the PIN step would refuse it now
    if failure and decision.action == "none":
        return UNREACHABLE
    return OK if decision.action != "none" else PROBLEM


def cmd_status(args, settings):
    """The mobile members now in each queue, judged against the table."""
    members, table_error = mobile_members(settings, args.queue)
    emit(args, {"members": members, "allowlist_error": table_error},
         [member_line(m) for m in members] or ["no mobile member in any queue"],
         table_error and "allowlist unreadable: %s" % table_error)
    if table_error:
        return UNREACHABLE
    return PROBLEM if any(m["standing"] not in ("permitted",) for m in members) else OK


def cmd_sweep(args, settings):
    """Remove the mobile members whose permission is gone (with --apply)."""
    members, table_error = mobile_members(settings, None)
    if table_error:
        # The table is what says who may stay: unread, it says nothing.
        raise Unreachable("allowlist unreadable (%s): sweep removes nobody" % table_error)
    due = [m for m in members if m["verdict"] in ("remove", "wait")]
    if args.apply:
        with manager(settings) as ami:
            for member in due:
                member["removed"] = member["verdict"] == "remove" and remove(ami, settings, member)
    lines = ["%s %s" % (sweep_word(m, args.apply), member_line(m)) for m in due] or ["nothing to sweep"]
    emit(args, {"applied": args.apply, "members": due}, lines)
    if args.apply:
        return PROBLEM if any(m["verdict"] == "remove" and not m["removed"] for m in due) else OK
    return PROBLEM if any(m["verdict"] == "remove" for m in due) else OK


def cmd_allow(args, settings):
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    if not 0 <= args.penalty <= MAX_PENALTY:
        raise UsageError("--penalty must be from 0 to %d" % MAX_PENALTY)
    starts, ends = time_argument(args.valid_from, "--from"), time_argument(args.until, "--until")
    if starts and ends and ends <= starts:
        raise UsageError("--until must be after --from")
    name = (args.name or "").strip() or None
    pin_hash = hash_pin(read_pin(settings)) if args.pin else None
    confirm = {None: db.KEEP, "yes": 1, "no": 0, "default": None}[args.confirm]
    done = with_allowlist(settings, args.dsn, db.allow, number, queue, args.penalty, name, starts, ends, pin_hash,
                          confirm)
    emit(args, {"number": number, "queue": queue, "result": done, "pin": bool(pin_hash),
                "confirm_answer": "kept" if confirm is db.KEEP else confirm},
         ["%s: %s may log in to queue %s%s" % (done, number, queue, " with a PIN" if pin_hash else "")])
    return OK


def cmd_revoke(args, settings):
    number = number_argument(args.number, settings)
    queue = queue_argument(args.queue)
    count = with_allowlist(settings, args.dsn, db.revoke, number, queue)
    emit(args, {"number": number, "queue": queue, "rows_deleted": count},
         ["revoked: %d row(s) of %s deleted%s" % (count, number, " (queue %s)" % queue if queue else "")
          + ("; `qmt sweep --apply` removes him from the queues" if count else "")])
    return OK if count else PROBLEM


def cmd_list(args, settings):
    rows = with_allowlist(settings, args.dsn, db.read_table, queue_argument(args.queue))
    table = db.grants_by_number(rows, utc_now())
    listed = [dict(grant_dict(grant), number=number) for number, grants in table.items() for grant in grants]
    emit(args, {"rows": listed}, ["%s %s" % (row["number"], describe_grant(row)) for row in listed]
         or ["the allowlist is empty"])
    return OK


def cmd_hash_pin(args, settings):
    """The pin_hash column's value for a PIN read from the terminal (twice,
    not shown) or from stdin; never from the command line."""
    pin = read_pin(settings)
    emit(args, {"pin_hash": hash_pin(pin)}, [hash_pin(pin)])
    return OK


def cmd_unlock(args, settings):
    number = number_argument(args.number, settings)
    try:
        removed = astdb_delete(ASTDB_FAMILY, number)
    except AmiError as error:
        raise Unreachable(str(error)) from None
    emit(args, {"number": number, "unlocked": removed},
         ["%s: %s" % (number, "unlocked: its wrong PINs are forgotten" if removed else "had no lockout record")])
    return OK if removed else PROBLEM


def cmd_doctor(args, settings):
    """The installation's health, step by step; exit 1 on any failure."""
    checks = [("config", True, "%s is valid" % args.config)]
    rows = []
    try:
        rows = db.read_table(settings.connection, settings.timeout)
        checks.append(("database", True, "table %s reachable as %s: %d row(s)" % (
            db.TABLE, pwd.getpwuid(os.geteuid()).pw_name, len(rows))))
    except db.DatabaseError as error:
        checks.append(("database", False, "%s: %s (connection = %s)" % (
            error.reason, without_passwords(error.detail), without_passwords(settings.connection))))
    queues = {}
    try:
        with manager(settings) as ami:
            queues = ami.queue_members()
        checks.append(("ami", True, "manager login %s ok, %d queue(s)" % (settings.ami_username, len(queues))))
    except Unreachable as problem:
        checks.append(("ami", False, "%s (is the manager enabled in manager.conf? install.sh --enable-ami)"
                       % problem))
    checks.append(("ring",) + ring_path_loaded(settings))
    checks.append(("queues",) + queues_ring_long_enough(settings, mobile_queues(settings, rows, queues)))
    timer = sweep_timer()
    checks.append(("sweep", bool(timer), timer or "no sweep timer or cron file: run install.sh"))
    emit(args, {"checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks]},
         ["[%s]    %s: %s" % ({True: "PASS", False: "FAIL", None: "WARN"}[ok], c, d) for c, ok, d in checks])
    return OK if all(ok is not False for _, ok, _ in checks) else PROBLEM


def ring_path_loaded(settings):
    """(ok, detail): the ring path's contexts and the route it dials are in
    the running dialplan, or a queue call to a mobile could not ring."""
    contexts = ("qmt-ring", "qmt-confirm", settings.route)
    try:
        missing = [context for context in contexts
                   if "[ Context '%s'" % context not in asterisk_cli("dialplan show %s" % context)]
    except AmiError as error:
        return False, str(error)
    if missing:
        return False, "not in the running dialplan: %s (is extensions_queue_mobile_toggle.conf included, " \
            "and [member] route your outbound route context?)" % ", ".join(missing)
    return True, "contexts qmt-ring, qmt-confirm and the route %s are loaded" % settings.route


# The ring path's prompts ("call from", a 4-digit queue number, "press 1...")
# take about 8 s; 2 s more for the mobile network and the Dial.
PROMPT_SECONDS = 10


def mobile_queues(settings, rows, queues):
    """Queues a mobile of ours may ring in: those the table names, and
    those with a member of ours now (from AMI's {queue: members})."""
    named = {row[1] for row in rows}
    present = {queue for queue, members in queues.items()
               if any(settings.number_of_member(m.get("Location", "")) for m in members)}
    return sorted(named | present)


def queues_ring_long_enough(settings, queues, path=QUEUES_CONF):
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

    def __init__(self, settings):
        self.settings = settings

    def __enter__(self):
        try:
            self.ami = ami_from_settings(self.settings)
        except AmiError as error:
            raise Unreachable(str(error)) from None
        return self.ami

    def __exit__(self, kind, error, _trace):
        self.ami.close()
        if isinstance(error, AmiError):
            raise Unreachable(str(error)) from None


def mobile_members(settings, queue):
    """The members made from the interface template, each with its number,
    standing in the table and the sweep's verdict; and the table's error."""
    queue = queue_argument(queue)
    with manager(settings) as ami:
        queues = ami.queue_members(queue)
    now = utc_now()
    try:
        table, table_error = db.grants_by_number(db.read_table(settings.connection, settings.timeout), now), None
    except db.DatabaseError as error:
        table, table_error = None, error.reason
    locks, misses = pin_locks(), missed_calls()
    members = []
    for queue_name, listed in sorted(queues.items()):
        for member in listed:
            number = settings.number_of_member(member.get("Location", ""))
            if number is None:
                continue  # not a mobile of ours: never touched
            judged = UNREADABLE if table is None else standing(table.get(number, []), queue_name)
            in_call = member_in_call(member)
            members.append({
                "queue": queue_name, "interface": member.get("Location", ""), "number": number,
                "name": member.get("Name", ""), "standing": judged, "in_call": in_call,
                "paused": member.get("Paused") == "1", "paused_reason": member.get("PausedReason", ""),
                "login_time": epoch_text(member.get("LoginTime")), "calls_taken": member.get("CallsTaken", ""),
                "verdict": sweep_verdict(judged, in_call),
                "pin_locked": number in locks and locks[number].locked(int(time.time())),
                "ring_path": member.get("Location", "").lower() == settings.interface_for(number).lower(),
                "missed_calls": misses.get(number, 0),
            })
    return members, table_error


def remove(ami, settings, member):
    """One removal through AMI (Asterisk writes REMOVEMEMBER to queue_log)
    and one log line."""
    removed, message = ami.remove_member(member["queue"], member["interface"])
    write_log(settings, "%s: sweep number=%s queue=%s interface=%s standing=%s %s" % (
        LOG_TAG, member["number"], member["queue"], member["interface"], member["standing"],
        "removed" if removed else "not_removed detail=%s" % printable(message, 120)), not removed)
    return removed


def sweep_word(member, applied):
    if member["verdict"] == "wait":
        return "on a call, next run:"
    if not applied:
        return "would remove:"
    return "removed:" if member["removed"] else "FAILED to remove:"


def with_allowlist(settings, dsn, action, *values):
    """action(connection, timeout, *values) on the config's connection, or
    on DSN=dsn; a database error becomes Unreachable with one line."""
    connection = "DSN=" + dsn if dsn else settings.connection
    try:
        return action(connection, settings.timeout, *values)
    except db.DatabaseError as error:
        if error.reason == "db_permission_denied" and action is not db.read_table:
            raise Unreachable("the account of %s may not write to the allowlist (it should only SELECT): "
                              "give a writer account with --dsn NAME" % ("DSN " + dsn if dsn else "the config"))
        raise Unreachable("allowlist: %s: %s" % (error.reason, without_passwords(error.detail))) from None


def read_pin(settings):
    """A PIN from the terminal, asked twice and not shown; from stdin (one
    line) when that is not a terminal. Only digits, of the configured length."""
    import getpass
    shortest, longest = (settings.pin_min_length, settings.pin_max_digits) if settings else (4, 8)
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN: ")
        if getpass.getpass("PIN again: ") != pin:
            raise UsageError("the two PINs differ")
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    if not is_pin(pin, shortest, longest):
        raise UsageError("a PIN is %d to %d digits 0-9, nothing else" % (shortest, longest))
    return pin


def astdb_or_nothing(family):
    """astdb_family(family), or {} when Asterisk's CLI cannot be asked: what
    it holds (lockouts, missed calls) is then simply not shown."""
    try:
        return astdb_family(family)
    except AmiError:
        return {}


def pin_locks():
    """{number: LockRecord} of astdb's PIN lockout records."""
    return {number: LockRecord.parse(text) for number, text in astdb_or_nothing(ASTDB_FAMILY).items()}


def missed_calls():
    """{number: queue calls missed in a row} as the ring path counts them in astdb."""
    return {key.split("/")[0]: int(value) for key, value in astdb_or_nothing("qmt-ring").items()
            if key.endswith("/missed") and value.isdigit()}


def lock_of(number):
    """The number's lockout record as `check` shows it, or None."""
    record = pin_locks().get(number)
    if record is None:
        return None
    return {"failures": record.failures, "locked": record.locked(int(time.time())),
            "locked_until": epoch_text(record.locked_until)}


def describe_lock(lock):
    if not lock:
        return "no wrong PINs on record"
    if lock["locked"]:
        return "LOCKED until %s (qmt unlock clears it)" % lock["locked_until"]
    return "%d wrong PIN(s) on record" % lock["failures"]


def sweep_timer():
    for path in ("/etc/systemd/system/qmt-sweep.timer", "/etc/cron.d/queue-mobile-toggle"):
        if os.path.isfile(path):
            return "runs from " + path
    return ""


def number_argument(text, settings):
    number = typed_number(text, **settings.number_rules)
    if number is None:
        raise UsageError("%r cannot be a caller's number (6 to 15 digits after the number rules)" % text)
    return number


def queue_argument(text):
    if text is not None and not is_valid_queue_name(text):
        raise UsageError("%r is not a queue name (letters, digits, _ and -)" % text)
    return text


def time_argument(text, option):
    if not text:
        return None
    for form in TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), form)
        except ValueError:
            continue
    raise UsageError("%s: give a UTC time as YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]'" % option)


def epoch_text(value):
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return ""
    if seconds <= 0:
        return ""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def grant_dict(grant):
    return {"queue": grant.queue, "penalty": grant.penalty, "name": grant.member_name,
            "status": grant.status, "problem": grant.problem,
            "confirm": {None: "default", True: "yes", False: "no"}[grant.confirm]}


def describe_grant(row):
    return "queue %s penalty %s name %r%s: %s%s" % (
        row["queue"], row["penalty"], row["name"], "" if row["confirm"] == "default" else " confirm " + row["confirm"],
        row["status"], " (%s)" % row["problem"] if row["problem"] else "")


def member_line(m):
    flags = [m["standing"]] + (["in call"] if m["in_call"] else []) + (["PIN locked"] if m["pin_locked"] else []) + \
        (["paused" + (" (%s)" % m["paused_reason"] if m["paused_reason"] else "")] if m["paused"] else []) + \
        (["missed %d in a row" % m["missed_calls"]] if m["missed_calls"] else []) + \
        ([] if m["ring_path"] else ["old interface %s: rung without confirmation until it logs in again"
                                    % m["interface"]])
    since = " since %s" % m["login_time"] if m["login_time"] else ""
    return "queue %s %s (%s)%s: %s" % (m["queue"], m["number"], m["name"] or "-", since, ", ".join(flags))


def emit(args, document, lines, warning=None):
    if warning:
        print("qmt: " + warning, file=sys.stderr)
    if args.json:
        print(json.dumps(document, ensure_ascii=False, indent=1, default=str))
    else:
        print("\n".join(lines))


# -- parsing ------------------------------------------------------------------

def parser():
    def options(defaults):
        """--config and --json, accepted before and after the command; the
        command's copy must not reset what was given before it."""
        shared = argparse.ArgumentParser(add_help=False)
        shared.add_argument("--config", help="the toggle's config file (default %s)" % CONFIG_PATH,
                            **({"default": os.environ.get("QMT_CONFIG", CONFIG_PATH)} if defaults
                               else {"default": argparse.SUPPRESS}))
        shared.add_argument("--json", action="store_true", help="print one JSON document",
                            **({} if defaults else {"default": argparse.SUPPRESS}))
        return shared

    common = options(defaults=False)
    top = argparse.ArgumentParser(prog="qmt", parents=[options(defaults=True)],
                                  description=__doc__.split("\n\n")[0], epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name, handler, text):
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
    command("doctor", cmd_doctor, "check the installation (config, database, manager, sweep timer)")
    return top


def main(argv=None):
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
            settings = None
        else:
            return fail(PROBLEM if args.command == "doctor" else UNREACHABLE, "config: %s" % problem)
    try:
        return args.handler(args, settings)
    except UsageError as problem:
        return fail(USAGE, str(problem))
    except Unreachable as problem:
        return fail(UNREACHABLE, str(problem))
    except KeyboardInterrupt:
        return fail(USAGE, "interrupted")


def fail(code, line):
    print("qmt: " + line, file=sys.stderr)
    return code


def run():
    """The console script: exit without waiting for a database call that
    was abandoned past its time bound."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
