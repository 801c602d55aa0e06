#!/usr/bin/env python3
"""queue-mobile-toggle: log a permitted mobile number in to / out of queues.

Asterisk runs it as ``AGI(queue_mobile_toggle.py,<queue or empty>,<number>)``
from the dialplan in extensions_queue_mobile_toggle.conf, where <number> is
``${FILTER(0-9+,${CALLERID(num)})}``. The script decides; the dialplan acts.
It only reads: the caller number, queue membership (from Asterisk) and the
allowlist table (through ODBC).

Asterisk writes the AGI start block without escaping newlines, so a caller
who puts "\nagi_callerid: ..." into his name, the dialled number or a
diversion header adds lines of his own. The block is therefore read
strictly: a repeated key, a line that is not "agi_key: value", or a control
character anywhere refuses the call (DENIED, bad_agi_env). The caller number
must be the same in agi_callerid (near the top, before any field a caller
controls) and in the last argument (written by the dialplan). Before it
answers, the script proves that Asterisk's replies are in step with its
commands (a random token echoed back), since a forged blank line would end
the block early and leave the rest to be read as replies; if not, it says
nothing (ERROR, agi_out_of_sync).

It answers with channel variables, set from validated characters only:

    QUEUEUSER            normalised number, digits only ('' if refused)
    QUEUESTAT            LOGGEDIN | LOGGEDOUT | DENIED | ERROR (state before)
    QAGENT_UNAUTHORIZED  1 when DENIED, else 0
    QMT_INTERFACE        queue member interface, e.g. Local/7911...@ctx/n
    QMT_COUNT            how many queues to act on
    QMT_QUEUE_<i>, QMT_PENALTY_<i>, QMT_NAME_<i>   for i = 1..QMT_COUNT
    QMT_REASON           short token naming why (also in the log line)

Any failure ends in QUEUESTAT=ERROR (or no answer at all, which the dialplan
also treats as ERROR): never in a login.
"""

import configparser
import datetime
import os
import re
import secrets
import signal
import sys
import threading
import time

CONFIG_PATH = "/etc/asterisk/queue_mobile_toggle.conf"
TABLE = "queue_mobile_agents"
LOG_TAG = "queue-mobile-toggle"

LOGGEDIN, LOGGEDOUT, DENIED, ERROR = "LOGGEDIN", "LOGGEDOUT", "DENIED", "ERROR"

ASCII_DIGITS = frozenset("0123456789")
MIN_DIGITS, MAX_DIGITS = 6, 15
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
INTERFACE = re.compile(r"[A-Za-z0-9_./@-]{1,128}\Z")
NAME_EXTRA = frozenset(" ._-")
MAX_NAME = 64
MAX_PENALTY = 1_000_000
# GET FULL VARIABLE reads a dialplan function into a 4096-byte buffer
# (VAR_BUF_SIZE): an answer this long may have been cut short.
FULL_VARIABLE_LIMIT = 4095
# With persistentmembers=yes (FreePBX's default) app_queue keeps every queue
# that has dynamic members as a key of this astdb family.
PERSISTED_QUEUES = "${DB_KEYS(Queue/PersistentMembers)}"
SYSLOG_FACILITIES = ("user", "daemon") + tuple("local%d" % n for n in range(8))
AGI_KEY = re.compile(r"agi_[a-z0-9_]{1,32}\Z")
# Asterisk's own lines are far shorter; a longer one is cut and then fails
# the "agi_key: value" test.
MAX_AGI_LINE = 16384
MAX_START_LINES = 100
# Passwords in connection strings or driver messages (PWD=, Password=, any case).
PASSWORD_VALUE = re.compile(r"((?:pwd|password)\s*=\s*)(\{[^}]*\}?|[^;]*)", re.IGNORECASE)

# One query, by the primary key's leading column; validity is judged in
# Python so that the three backends' date types need no SQL dialect.
SELECT_ROWS = (
    "SELECT queue, penalty, member_name, enabled, valid_from, valid_until "
    "FROM " + TABLE + " WHERE number = ?"
)


class ConfigError(Exception):
    """The configuration file is missing or holds a bad value."""


class LookupFailed(Exception):
    """The allowlist could not be read; `reason` is the log token."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

class Settings:
    """Validated settings; built once per run from the INI file."""

    def __init__(self, parser):
        get = parser.get
        self.connection = get("database", "connection", fallback="DSN=queue_mobile_toggle").strip()
        self.timeout = _positive_float(get("database", "timeout", fallback="3"), "database.timeout")
        self.interface_template = get(
            "member", "interface", fallback="Local/{number}@outbound-allroutes/n").strip()
        self.country_code = _digits(get("numbers", "country_code", fallback="7"), "numbers.country_code")
        self.trunk_prefix = _digits(get("numbers", "trunk_prefix", fallback="8"), "numbers.trunk_prefix",
                                    allow_empty=True)
        self.national_length = _positive_int(get("numbers", "national_length", fallback="10"),
                                             "numbers.national_length")
        self.managed_queues = _queue_list(get("queues", "managed", fallback=""))
        self.log_target = get("log", "target", fallback="syslog").strip() or "syslog"
        self.syslog_facility = get("log", "syslog_facility", fallback="local0").strip().lower()
        if not self.connection:
            raise ConfigError("database.connection is empty")
        if self.syslog_facility not in SYSLOG_FACILITIES:
            raise ConfigError("log.syslog_facility must be one of " + ", ".join(SYSLOG_FACILITIES))
        if self.interface_template.count("{number}") != 1:
            raise ConfigError("member.interface must contain {number} once")
        if not INTERFACE.match(self.interface_template.replace("{number}", "0")):
            raise ConfigError("member.interface has characters a channel name must not have")

    def interface_for(self, number):
        return self.interface_template.replace("{number}", number)


def _positive_float(text, key):
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("%s is not a number" % key) from None
    if not 0 < value <= 60:
        raise ConfigError("%s must be between 0 and 60 seconds" % key)
    return value


def _positive_int(text, key):
    text = text.strip()
    if not text or set(text) - ASCII_DIGITS or not 0 < int(text) <= MAX_DIGITS:
        raise ConfigError("%s must be a whole number from 1 to %d" % (key, MAX_DIGITS))
    return int(text)


def _digits(text, key, allow_empty=False):
    text = text.strip()
    if (not text and not allow_empty) or set(text) - ASCII_DIGITS or len(text) > 4:
        raise ConfigError("%s must be 1 to 4 digits" % key)
    return text


def _queue_list(text):
    queues = [q.strip() for q in text.split(",") if q.strip()]
    for queue in queues:
        if not QUEUE_NAME.match(queue):
            raise ConfigError("queues.managed holds a bad queue name")
    return queues


def load_settings(path):
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError("cannot parse %s: %s" % (path, type(exc).__name__)) from None
    return Settings(parser)


# --------------------------------------------------------------------------
# Pure decisions (no I/O): numbers, names, rows, the toggle itself
# --------------------------------------------------------------------------

def normalise_number(raw, country_code="7", trunk_prefix="8", national_length=10):
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


def is_valid_queue_name(name):
    return isinstance(name, str) and bool(QUEUE_NAME.match(name))


def safe_member_name(name, fallback):
    """The member name as AddQueueMember will get it: letters (any script),
    ASCII digits, space and ._- only, else the fallback (the number)."""
    if not isinstance(name, str):
        return fallback
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        return fallback
    for char in name:
        if not (char.isalpha() or char in ASCII_DIGITS or char in NAME_EXTRA):
            return fallback
    return name


def as_utc_naive(value):
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
    """One allowlist row, judged: may this number be a member of `queue`?"""

    __slots__ = ("queue", "penalty", "member_name", "active", "problem")

    def __init__(self, queue, penalty, member_name, active, problem=None):
        self.queue = queue
        self.penalty = penalty
        self.member_name = member_name
        self.active = active
        self.problem = problem

    def __repr__(self):
        return "Grant(%r, %r, %r, active=%r)" % (self.queue, self.penalty, self.member_name, self.active)


def judge_row(row, number, now):
    """Turn a raw (queue, penalty, member_name, enabled, valid_from,
    valid_until) row into a Grant; a row that is malformed never grants."""
    queue, penalty, member_name, enabled, valid_from, valid_until = row
    queue = queue.strip() if isinstance(queue, str) else queue
    if not is_valid_queue_name(queue):
        return None
    try:
        starts, ends = as_utc_naive(valid_from), as_utc_naive(valid_until)
    except (TypeError, ValueError):
        return Grant(queue, 0, number, False, "bad_validity_time")
    penalty = _as_penalty(penalty)
    if penalty is None:
        return Grant(queue, 0, number, False, "bad_penalty")
    active = (_as_flag(enabled) == 1
              and (starts is None or starts <= now)
              and (ends is None or now < ends))
    return Grant(queue, penalty, safe_member_name(member_name, number), active)


def _as_penalty(value):
    """An integer penalty in 0..MAX_PENALTY (NULL is 0), else None."""
    try:
        penalty = int(value if value is not None else 0)
    except (TypeError, ValueError):
        return None
    return penalty if 0 <= penalty <= MAX_PENALTY else None


def _as_flag(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class Decision:
    """What the dialplan is told to do."""

    __slots__ = ("state", "reason", "grants", "detail")

    def __init__(self, state, reason, grants=(), detail=""):
        self.state = state
        self.reason = reason
        self.grants = list(grants)
        self.detail = detail

    @property
    def queues(self):
        return [grant.queue for grant in self.grants]

    @property
    def action(self):
        return {LOGGEDIN: "logout", LOGGEDOUT: "login"}.get(self.state, "none")

    def __repr__(self):
        return "Decision(%s, %s, %s)" % (self.state, self.reason, self.queues)


def decide_one_queue(number, queue, queue_exists, is_member, read_grants):
    """Toggle in one named queue. `read_grants()` is waited for only when
    the caller is not already a member, so logout never needs the database.
    `is_member` is None when Asterisk's member list was too long to trust."""
    if not queue_exists:
        return Decision(ERROR, "no_such_queue", detail=queue)
    if is_member is None:
        return Decision(ERROR, "member_list_too_long", detail=queue)
    if is_member:
        return Decision(LOGGEDIN, "member", [Grant(queue, 0, number, False)])
    try:
        grants = read_grants()
    except LookupFailed as failure:
        return Decision(ERROR, failure.reason, detail=failure.detail)
    for grant in grants:
        if grant.queue == queue and grant.active:
            return Decision(LOGGEDOUT, "permitted", [grant])
        if grant.queue == queue and grant.problem:
            return Decision(ERROR, "bad_row", detail="%s %s" % (queue, grant.problem))
    return Decision(DENIED, "not_permitted", detail=queue)


def candidate_queues(grants, known_queues):
    """Queues the all-queues toggle looks at: every row of this number, live
    or not, plus the queues known without the table (the managed list and
    those with persisted members), so that a revoked member can still leave."""
    seen = []
    for queue in [grant.queue for grant in grants or ()] + list(known_queues):
        if queue not in seen:
            seen.append(queue)
    return seen


def decide_all_queues(number, grants, lookup_failure, existing, members, unsure=()):
    """Toggle in all the caller's queues: a member of any leaves all of
    those; otherwise he joins every existing queue he is permitted in.
    `grants` is None when the lookup failed; `existing` (a set), `members`
    (a list) and `unsure` (queues whose member list was too long to trust)
    are what Asterisk reported of the candidate queues."""
    if members:
        return Decision(LOGGEDIN, "member", [Grant(q, 0, number, False) for q in members])
    if unsure:
        return Decision(ERROR, "member_list_too_long", detail=",".join(unsure))
    if lookup_failure is not None:
        return Decision(ERROR, lookup_failure.reason, detail=lookup_failure.detail)
    live = [grant for grant in grants if grant.active]
    joinable = [grant for grant in live if grant.queue in existing]
    missing = [grant.queue for grant in live if grant.queue not in existing]
    broken = ["%s:%s" % (grant.queue, grant.problem) for grant in grants if grant.problem]
    notes = " ".join(([("missing_queues=" + ",".join(missing))] if missing else [])
                     + ([("bad_rows=" + ",".join(broken))] if broken else []))
    if joinable:
        return Decision(LOGGEDOUT, "permitted", joinable, detail=notes)
    if missing:
        return Decision(ERROR, "no_such_queue", detail=notes)
    if broken:
        return Decision(ERROR, "bad_row", detail=notes)
    return Decision(DENIED, "not_permitted")


# --------------------------------------------------------------------------
# The allowlist (ODBC), bounded in time
# --------------------------------------------------------------------------

# (reason, SQLSTATE prefixes, words of the driver's text): the first match
# wins. The words are needed because psqlODBC reports every failed connect as
# 08001, MariaDB many as HY000 or 42000, and SQLite everything as HY000.
ODBC_FAULTS = (
    ("db_unknown_dsn", ("IM002",), ()),
    ("db_driver_missing", (), ("can't open lib",)),
    ("db_permission_denied", ("42501",), ("command denied", "to database '")),
    ("db_auth_failed", ("28",), ("password authentication failed", "access denied for user",
                                 "no pg_hba.conf entry", 'fatal:  role "')),
    ("db_not_found", (), ("unknown database", 'fatal:  database "', "connect failed (14)")),
    ("db_timeout", ("HYT00", "HYT01", "57014"), ("timeout expired", "timed out",
                                                 "system error: 110", "database is locked")),
    ("db_unreachable", ("08",), ("can't connect to", "unknown server host",
                                 "could not translate host name")),
    ("db_table_missing", ("42S02", "42P01"), ("no such table",)),
)


def odbc_reason(exc):
    """A short, stable token for a pyodbc error: the SQLSTATE, then the text."""
    state = str(exc.args[0]) if getattr(exc, "args", None) else ""
    text = str(exc).lower()
    for reason, states, words in ODBC_FAULTS:
        if state.startswith(states) or any(word in text for word in words):
            return reason
    return "db_error"


def read_rows(connection_string, number, timeout):
    """Fetch this number's rows; the connection is closed before returning."""
    import pyodbc  # imported here so a logout by queue never pays for it

    seconds = max(1, int(timeout))
    try:
        connection = pyodbc.connect(connection_string, timeout=seconds, autocommit=True)
    except pyodbc.Error as exc:
        reason = odbc_reason(exc)
        if reason == "db_unknown_dsn" and _dsn_without_driver(pyodbc, connection_string):
            reason = "db_driver_missing"
        raise LookupFailed(reason, _first_line(exc)) from None
    try:
        try:
            connection.timeout = seconds  # query timeout, where the driver honours it
        except pyodbc.Error:
            pass  # psqlODBC refuses it (HY000); the thread join still bounds the read
        cursor = connection.cursor()
        cursor.execute(SELECT_ROWS, number)
        return [tuple(row) for row in cursor.fetchall()]
    except pyodbc.Error as exc:
        raise LookupFailed(odbc_reason(exc), _first_line(exc)) from None
    finally:
        connection.close()


def _dsn_without_driver(pyodbc, connection_string):
    """unixODBC answers IM002 'data source name not found' both for an
    unknown DSN and for a DSN whose driver is not installed (its section
    missing from odbcinst.ini): True for the second."""
    match = re.search(r"(?:^|;)\s*DSN\s*=\s*([^;]*)", connection_string, re.IGNORECASE)
    if not match:
        return False
    try:
        driver = pyodbc.dataSources().get(match.group(1).strip())
        return driver is not None and driver not in pyodbc.drivers()
    except pyodbc.Error:
        return False


def _first_line(exc):
    text = " ".join(str(part) for part in getattr(exc, "args", ()) or (exc,))
    return printable(text.splitlines()[0] if text else type(exc).__name__, 200)


class AllowlistRead:
    """The caller's rows, read in a daemon thread that starts at once (it may
    overlap questions to Asterisk). A driver blocked in C cannot be
    interrupted: past the deadline the thread is abandoned and main() ends
    the process without waiting for it."""

    def __init__(self, settings, number, now):
        self.settings, self.number, self.now = settings, number, now
        self._rows = self._failure = None
        self._worker = threading.Thread(target=self._read, name="allowlist", daemon=True)
        self._worker.start()

    def _read(self):
        try:
            self._rows = read_rows(self.settings.connection, self.number, self.settings.timeout)
        except LookupFailed as failure:
            self._failure = failure
        except Exception as exc:  # a driver bug must still fail closed
            self._failure = LookupFailed("db_error", type(exc).__name__)

    def grants(self, deadline):
        """The judged rows; raises LookupFailed, also when `deadline`
        (time.monotonic()) passes first."""
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            raise LookupFailed("db_timeout", "no answer within %gs" % self.settings.timeout)
        if self._failure is not None:
            raise self._failure
        judged = [judge_row(row, self.number, self.now) for row in self._rows]
        return [grant for grant in judged if grant is not None]


# --------------------------------------------------------------------------
# Talking to Asterisk
# --------------------------------------------------------------------------

class _Sink:
    """Swallows pyst2's stderr chatter (it echoes every line, caller ID included)."""

    def write(self, _text):
        return 0

    def flush(self):
        pass


class AgiClosed(EOFError):
    """Asterisk closed its end of the AGI pipe."""


class AgiInput:
    """Asterisk's side of the pipe, a line at a time, for pyst2. At EOF it
    raises instead of returning '' (pyst2's 520 loop would read '' forever
    at 100% CPU), and bytes that are not UTF-8 are replaced, not fatal."""

    def __init__(self, binary):
        self._binary = binary

    def readline(self):
        raw = self._binary.readline(MAX_AGI_LINE)
        if not raw:
            raise AgiClosed("Asterisk closed the AGI pipe")
        return raw.decode("utf-8", "replace")


def read_start_block(stream):
    """(env, problem) from the AGI start block. The first value of a key is
    kept; `problem` names the first thing a genuine block never has (None
    when there is none). Reads up to the blank line that ends the block."""
    env, problem = {}, None
    for _ in range(MAX_START_LINES):
        try:
            line = stream.readline()
        except AgiClosed:
            return env, problem or "start block cut short by EOF"
        if line in ("\n", ""):
            return env, problem
        problem = problem or start_line_problem(line, env)
        key, _sep, value = line[:-1].partition(": ")
        env.setdefault(key, value)
    return env, problem or "start block longer than %d lines" % MAX_START_LINES


def start_line_problem(line, env):
    """Why this line cannot be Asterisk's own (None if it can be)."""
    if not line.endswith("\n"):
        return "start block line cut short"
    key, sep, value = line[:-1].partition(": ")
    if not sep or not AGI_KEY.match(key):
        return "malformed start block line"
    if key in env:
        return "repeated key %s" % key
    if any(char < " " or char == "\x7f" for char in value):
        return "control character in %s" % key
    return None


def strict_agi(stdin, stdout):
    """pyst2's AGI with the start block read by read_start_block()."""
    from asterisk.agi import AGI

    class StrictAGI(AGI):
        def _get_agi_env(self):
            self.env, self.env_problem = read_start_block(self.stdin)

    return StrictAGI(stdin=AgiInput(stdin), stdout=stdout, stderr=_Sink())


class Channel:
    """The few AGI requests the toggle needs, over pyst2."""

    def __init__(self, agi):
        self.agi = agi
        self.env = agi.env

    @property
    def env_problem(self):
        return getattr(self.agi, "env_problem", None)

    @property
    def caller_number(self):
        return self.env.get("agi_callerid", "")

    @property
    def dialplan_number(self):
        """The caller number as the dialplan passed it (FILTERed), or None."""
        return self.env.get("agi_arg_2")

    @property
    def queue_argument(self):
        return self.env.get("agi_arg_1", "").strip()

    @property
    def uniqueid(self):
        return printable(self.env.get("agi_uniqueid", ""), 40)

    @property
    def name(self):
        return printable(self.env.get("agi_channel", ""), 80)

    def in_step(self):
        """True when Asterisk's reply to this command is the one we read:
        a random token must come back. A stale start-block line or a reply
        forged by the caller cannot carry it."""
        from asterisk.agi import AGIError, AGIHangup
        token = "qmt" + secrets.token_hex(8)
        try:
            return self.agi.get_full_variable(token) == token
        except AGIHangup:
            raise
        except (AGIError, ValueError):  # pyst2's verdicts on a line that is no reply
            return False

    def queue_exists(self, queue):
        return self.agi.get_variable("QUEUE_EXISTS(%s)" % queue).strip() == "1"

    def is_member(self, queue, interface):
        """True or False; None when the list filled Asterisk's buffer and
        so may have lost the very member we look for."""
        listed = self.agi.get_full_variable("${QUEUE_MEMBER_LIST(%s)}" % queue)
        wanted = interface.lower()
        if any(member.strip().lower() == wanted for member in listed.split(",")):
            return True
        return None if len(listed) >= FULL_VARIABLE_LIMIT else False

    def persisted_queues(self):
        """Queues with persisted dynamic members (empty where
        persistentmembers=no), names checked like any other."""
        listed = self.agi.get_full_variable(PERSISTED_QUEUES)
        return [queue for queue in (part.strip() for part in listed.split(","))
                if is_valid_queue_name(queue)]

    def publish(self, number, decision, settings):
        for name, value in answer_variables(number, decision, settings):
            self.agi.set_variable(name, value)

    def verbose(self, line):
        self.agi.verbose(line, 1)


def answer_variables(number, decision, settings):
    """The (name, value) pairs the dialplan reads, in the order sent.
    QUEUESTAT goes last: until it is set the dialplan's preset ERROR holds,
    so an interrupted answer can never look like a complete login."""
    pairs = [
        ("QUEUEUSER", number or ""),
        ("QAGENT_UNAUTHORIZED", "1" if decision.state == DENIED else "0"),
        ("QMT_REASON", decision.reason),
    ]
    if decision.state in (LOGGEDIN, LOGGEDOUT):
        pairs.append(("QMT_INTERFACE", settings.interface_for(number)))
        for index, grant in enumerate(decision.grants, 1):
            pairs += [("QMT_QUEUE_%d" % index, grant.queue),
                      ("QMT_PENALTY_%d" % index, str(grant.penalty)),
                      ("QMT_NAME_%d" % index, grant.member_name)]
        pairs.append(("QMT_COUNT", str(len(decision.grants))))
    pairs.append(("QUEUESTAT", decision.state))
    return pairs


def printable(text, limit):
    """Text made safe for one log line and for a quoted AGI argument: printable
    ASCII except the quote and backslash (pyst2 escapes nothing); the rest '?'."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in str(text)[:limit])


def without_passwords(text):
    """Connection strings and driver messages with every password value hidden."""
    return PASSWORD_VALUE.sub(r"\1***", str(text))


def decision_line(number, channel, decision):
    """One log line; `channel` names where the call came from (e.g. the trunk)."""
    who = "number=%s" % number if number else \
        "callerid=%s" % (printable(channel.caller_number, 32) or "(empty)")
    line = "%s: %s channel=%s queues=%s state=%s action=%s reason=%s" % (
        LOG_TAG, who, channel.name or "-", ",".join(decision.queues) or "-", decision.state,
        decision.action, decision.reason)
    if decision.detail:
        line += " detail=%s" % printable(without_passwords(decision.detail), 200)
    return line + " uniqueid=%s" % (channel.uniqueid or "-")


# --------------------------------------------------------------------------
# Logging for the admin: one line per decision
# --------------------------------------------------------------------------

def write_log(settings, line, warning):
    """Append the line to the configured file, or send it to syslog."""
    target = settings.log_target if settings else "syslog"
    try:
        if target == "syslog":
            import syslog
            facility = settings.syslog_facility if settings else "local0"
            syslog.openlog(LOG_TAG, syslog.LOG_PID, getattr(syslog, "LOG_" + facility.upper()))
            syslog.syslog(syslog.LOG_WARNING if warning else syslog.LOG_INFO, line)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            with open(target, "a", encoding="utf-8") as handle:
                handle.write("%s [%d] %s\n" % (stamp, os.getpid(), line))
    except OSError:
        pass  # logging must never turn a decision into a crash


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

def decide(channel, settings, number, now, deadline):
    """Ask Asterisk and the allowlist; return the Decision."""
    queue = channel.queue_argument
    if queue and not is_valid_queue_name(queue):
        return Decision(ERROR, "bad_queue_argument")
    interface = settings.interface_for(number)
    if queue:
        exists = channel.queue_exists(queue)
        member = exists and channel.is_member(queue, interface)
        return decide_one_queue(number, queue, exists, member,
                                lambda: AllowlistRead(settings, number, now).grants(deadline))
    allowlist = AllowlistRead(settings, number, now)  # reads while we ask Asterisk
    known = settings.managed_queues + channel.persisted_queues()
    grants, failure = None, None
    try:
        grants = allowlist.grants(deadline)
    except LookupFailed as lookup_failure:
        failure = lookup_failure
    existing, members, unsure = set(), [], []
    for candidate in candidate_queues(grants, known):
        if channel.queue_exists(candidate):
            existing.add(candidate)
            membership = channel.is_member(candidate, interface)
            if membership:
                members.append(candidate)
            elif membership is None:
                unsure.append(candidate)
    return decide_all_queues(number, grants, failure, existing, members, unsure)


def decide_for_caller(channel, settings, config_problem, now, deadline):
    """(number, Decision) for this call; number is None when refused early."""
    if config_problem is not None:
        return None, Decision(ERROR, "config_error", detail=str(config_problem))
    if channel.env_problem:
        return None, Decision(DENIED, "bad_agi_env", detail=channel.env_problem)
    number = normalise_number(channel.caller_number, settings.country_code,
                              settings.trunk_prefix, settings.national_length)
    if number is None:
        return None, Decision(DENIED, "invalid_number")
    # agi_callerid holds only [+0-9] here, so the dialplan's FILTERed copy
    # of the same caller ID must be the very same text.
    if channel.dialplan_number != channel.caller_number:
        return None, Decision(DENIED, "bad_agi_env",
                              detail="agi_callerid is not the dialplan's caller number (agi_arg_2)")
    return number, decide(channel, settings, number, now, deadline)


def run(agi, settings, config_problem=None, now=None, deadline=None):
    """One call: decide, answer the dialplan, log one line. Returns the
    Decision, or None when nothing was answered (the channel went away, or
    Asterisk's replies could not be trusted)."""
    from asterisk.agi import AGIException
    channel = Channel(agi)
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    if deadline is None:
        deadline = time.monotonic() + (settings.timeout if settings else 0)
    number, decision = None, None
    try:
        if not channel.in_step():
            # The caller ended the start block early: what we would read
            # next is his text. Say nothing; the preset ERROR stands.
            silent = Decision(ERROR, "agi_out_of_sync", detail=channel.env_problem or "")
            write_log(settings, decision_line(None, channel, silent), True)
            return None
        number, decision = decide_for_caller(channel, settings, config_problem, now, deadline)
        channel.publish(number, decision, settings)
    except (AGIException, ValueError, EOFError, OSError) as exc:
        # SIGHUP, EOF, 510/511/520, a broken pipe: the dialplan will not read
        # an answer, and its preset QUEUESTAT=ERROR stands. Nothing changed.
        intended = decision or Decision(ERROR, "lookup_interrupted")
        gone = Decision(intended.state, "channel_gone", intended.grants,
                        detail="%s before %s" % (type(exc).__name__, intended.reason))
        write_log(settings, decision_line(number, channel, gone), True)
        return None
    line = decision_line(number, channel, decision)
    write_log(settings, line, decision.state in (DENIED, ERROR))
    try:
        channel.verbose(line)
    except (AGIException, ValueError, EOFError, OSError):
        pass  # the answer is already set; the console line is a courtesy
    return decision


def main():
    # The default SIGALRM action kills the process: the last resort if a
    # driver blocks in C past every timeout. The dialplan's preset
    # QUEUESTAT=ERROR then holds.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    settings, config_problem = None, None
    try:
        settings = load_settings(os.environ.get("QMT_CONFIG", CONFIG_PATH))
    except ConfigError as problem:
        config_problem = problem
    signal.alarm(int(settings.timeout if settings else 0) + 3)
    exit_code = 0
    try:
        run(strict_agi(sys.stdin.buffer, sys.stdout), settings, config_problem)
    except Exception as exc:  # a bug of ours: fail closed, one line, no traceback
        where = exc.__traceback__
        while where.tb_next:
            where = where.tb_next
        write_log(settings, "%s: internal error %s at line %d: %s" % (
            LOG_TAG, type(exc).__name__, where.tb_lineno, printable(exc, 160)), True)
        exit_code = 1
    try:
        sys.stdout.flush()
    except OSError:
        pass
    # A lookup thread abandoned in a blocked driver call must not hold the
    # process open at interpreter shutdown.
    os._exit(exit_code)


if __name__ == "__main__":
    main()
