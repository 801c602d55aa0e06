"""The allowlist table through ODBC, always within a time bound.

A driver blocked in C cannot be interrupted, so every database call runs in
a daemon thread that the caller waits for only until its deadline; past it
the thread is abandoned (the AGI and `qmt` then end the process with
os._exit). Errors become DatabaseError with a short, stable `reason`.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .rules import Grant, LookupFailure, LookupResult, Row, judge_row, printable

if TYPE_CHECKING:
    from .config import Settings

T = TypeVar("T")
# A pyodbc cursor (pyodbc's types are not checked: see pyproject.toml).
Cursor = Any

TABLE = "queue_mobile_agents"
REQUIRED_COLUMNS = ("queue", "penalty", "member_name", "enabled", "valid_from", "valid_until")
# Columns added by later versions (sql/upgrade_*.sql adds them): a table
# made before them still works, each reading as NULL.
OPTIONAL_COLUMNS = ("pin_hash", "confirm_answer", "shift_window")
# Where shift_window stands in a row of rows_by_name() (one more with `number` leading).
SHIFT_COLUMN = len(REQUIRED_COLUMNS) + OPTIONAL_COLUMNS.index("shift_window")
# One query, by the primary key's leading column; validity is judged in
# Python so that the three backends' date types need no SQL dialect. The
# columns are picked by name from `*`, so that a missing optional one is
# not an error.
SELECT_ROWS = "SELECT * FROM " + TABLE + " WHERE number = ?"
SELECT_TABLE = "SELECT * FROM " + TABLE

# (reason, SQLSTATE prefixes, words of the driver's text): the first match
# wins. The words are needed because psqlODBC reports every failed connect as
# 08001, MariaDB many as HY000 or 42000, and SQLite everything as HY000.
ODBC_FAULTS = (
    ("db_unknown_dsn", ("IM002",), ()),
    ("db_driver_missing", (), ("can't open lib",)),
    ("db_permission_denied", ("42501",), ("command denied", "to database '", "permission denied",
                                           "readonly database", "attempt to write a readonly")),
    ("db_auth_failed", ("28",), ("password authentication failed", "access denied for user",
                                 "no pg_hba.conf entry", 'fatal:  role "')),
    ("db_not_found", (), ("unknown database", 'fatal:  database "', "connect failed (14)")),
    ("db_timeout", ("HYT00", "HYT01", "57014"), ("timeout expired", "timed out",
                                                 "system error: 110", "database is locked")),
    ("db_unreachable", ("08",), ("can't connect to", "unknown server host",
                                 "could not translate host name")),
    ("db_table_missing", ("42S02", "42P01"), ("no such table",)),
)


class DatabaseError(Exception):
    """The allowlist could not be used; `reason` is the log token."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def as_failure(self) -> LookupFailure:
        return LookupFailure(self.reason, self.detail)


def odbc_reason(exc: BaseException) -> str:
    """A short, stable token for a pyodbc error: the SQLSTATE, then the text."""
    state = str(exc.args[0]) if getattr(exc, "args", None) else ""
    text = str(exc).lower()
    for reason, states, words in ODBC_FAULTS:
        if state.startswith(states) or any(word in text for word in words):
            return reason
    return "db_error"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(part) for part in getattr(exc, "args", ()) or (exc,))
    return printable(text.splitlines()[0] if text else type(exc).__name__, 200)


def _dsn_without_driver(pyodbc: Any, connection_string: str) -> bool:
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


def with_connection(connection_string: str, timeout: float, work: Callable[[Cursor], T]) -> T:
    """work(cursor) on a fresh connection, closed before returning; pyodbc
    errors become DatabaseError. Writes commit only when `work` returns."""
    import pyodbc  # imported here so a logout by queue never pays for it

    seconds = max(1, int(timeout))
    try:
        connection = pyodbc.connect(connection_string, timeout=seconds, autocommit=False)
    except pyodbc.Error as exc:
        reason = odbc_reason(exc)
        if reason == "db_unknown_dsn" and _dsn_without_driver(pyodbc, connection_string):
            reason = "db_driver_missing"
        raise DatabaseError(reason, _first_line(exc)) from None
    try:
        try:
            connection.timeout = seconds  # query timeout, where the driver honours it
        except pyodbc.Error:
            pass  # psqlODBC refuses it (HY000); the thread join still bounds the call
        result = work(connection.cursor())
        connection.commit()
        return result
    except pyodbc.Error as exc:
        raise DatabaseError(odbc_reason(exc), _first_line(exc)) from None
    finally:
        connection.close()


def rows_by_name(cursor: Cursor, leading: Sequence[str] = ()) -> list[Row]:
    """The fetched rows as tuples of `leading` + REQUIRED_COLUMNS +
    OPTIONAL_COLUMNS, picked by name; an optional column the table lacks
    reads as None, a required one missing is db_table_bad."""
    names = [column[0].lower() for column in cursor.description]
    wanted = tuple(leading) + REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    missing = [name for name in tuple(leading) + REQUIRED_COLUMNS if name not in names]
    if missing:
        raise DatabaseError("db_table_bad", "table %s has no column %s" % (TABLE, ",".join(missing)))
    where = [names.index(name) if name in names else None for name in wanted]
    return [tuple(None if index is None else row[index] for index in where) for row in cursor.fetchall()]


class Bounded(Generic[T]):
    """A call running in a daemon thread from the moment it is made, so it
    may overlap other work; result(deadline) waits at most until `deadline`
    (time.monotonic()) and raises DatabaseError past it."""

    _value: T | None
    _error: DatabaseError | None

    def __init__(self, call: Callable[[], T], timeout: float) -> None:
        self._call, self._timeout = call, timeout
        self._value = self._error = None
        self._worker = threading.Thread(target=self._run, name="allowlist", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except DatabaseError as error:
            self._error = error
        except Exception as exc:  # a driver bug must still fail closed
            self._error = DatabaseError("db_error", type(exc).__name__)

    def result(self, deadline: float | None = None) -> T:
        if deadline is None:
            deadline = time.monotonic() + self._timeout
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            raise DatabaseError("db_timeout", "no answer within %gs" % self._timeout)
        if self._error is not None:
            raise self._error
        return cast(T, self._value)                 # set by _run: the call returned


def bounded(connection_string: str, timeout: float, work: Callable[[Cursor], T]) -> T:
    """with_connection() within `timeout` seconds, from now."""
    return Bounded(lambda: with_connection(connection_string, timeout, work), timeout).result()


class AllowlistRead:
    """The caller's rows, read from the moment it is made (the read may
    overlap questions to Asterisk)."""

    def __init__(self, settings: Settings, number: str, now: datetime.datetime) -> None:
        self.settings, self.number, self.now = settings, number, now
        connection, seconds = settings.database()
        self.deadline = time.monotonic() + seconds     # the read's own bound, from its start
        self._read = Bounded(lambda: with_connection(connection, seconds, self._select), seconds)

    def _select(self, cursor: Cursor) -> list[Row]:
        cursor.execute(SELECT_ROWS, self.number)
        return rows_by_name(cursor)

    def lookup(self, deadline: float | None = None) -> LookupResult:
        """(judged grants, None), or (None, LookupFailure) when the table
        could not be read by `deadline` (default: its own bound)."""
        try:
            rows = self._read.result(deadline or self.deadline)
        except DatabaseError as error:
            return None, error.as_failure()
        zone = shift_zone(self.settings, rows, SHIFT_COLUMN)
        judged = [judge_row(row, self.number, self.now, zone) for row in rows]
        return [grant for grant in judged if grant is not None], None


def shift_zone(settings: Settings, rows: Sequence[Row], column: int) -> datetime.tzinfo:
    """The zone of the rows' shift windows: the config's, looked up only
    when one of the rows has a shift (`column`: its index in a row)."""
    if any(len(row) > column and row[column] for row in rows):
        return settings.shift_zone
    return datetime.timezone.utc


# -- the whole table, for `qmt` -----------------------------------------------

def read_table(connection_string: str, timeout: float, queue: str | None = None,
               number: str | None = None) -> list[Row]:
    """Every row (number first), optionally of one queue or number."""
    where: list[str]
    params: list[str]
    where, params = [], []
    for column, value in (("queue", queue), ("number", number)):
        if value is not None:
            where.append(column + " = ?")
            params.append(value)
    sql = SELECT_TABLE + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY number, queue"

    def select(cursor: Cursor) -> list[Row]:
        cursor.execute(sql, *params)
        return rows_by_name(cursor, leading=("number",))
    return bounded(connection_string, timeout, select)


def grants_by_number(rows: Sequence[Row], now: datetime.datetime, settings: Settings | None = None
                     ) -> dict[Any, list[Grant]]:
    """{number: [Grant, ...]} of read_table() rows; shift windows read in
    the zone of `settings` (UTC without)."""
    zone = shift_zone(settings, rows, SHIFT_COLUMN + 1) if settings else datetime.timezone.utc
    table: dict[Any, list[Grant]] = {}
    for row in rows:
        grant = judge_row(row[1:], row[0], now, zone)
        if grant is not None:
            table.setdefault(row[0], []).append(grant)
    return table


KEEP = object()   # allow(confirm=KEEP, shift=KEEP): leave the row's column as it is


def allow(connection_string: str, timeout: float, number: str, queue: str, penalty: int, name: str | None,
          valid_from: datetime.datetime | None, valid_until: datetime.datetime | None, pin_hash: str | None = None,
          confirm: object = KEEP, shift: object = KEEP) -> str:
    """Insert or update the row of (number, queue), enabled; 'added' or
    'updated'. An update keeps the row's PIN unless a new hash is given, and
    its confirm_answer unless `confirm` is given (1, 0, or None for NULL:
    the config's default) and its shift_window unless `shift` is given
    (text, or None for NULL: no restriction). These optional columns are named only when set,
    so that a table made before them still takes rows."""
    values = (penalty, name, valid_from, valid_until)
    optional: dict[str, object] = {"pin_hash": pin_hash} if pin_hash else {}
    if confirm is not KEEP:
        optional["confirm_answer"] = confirm
    if shift is not KEEP:
        optional["shift_window"] = shift

    def upsert(cursor: Cursor) -> str:
        cursor.execute("UPDATE " + TABLE + " SET penalty = ?, member_name = ?, enabled = 1, valid_from = ?, "
                       "valid_until = ?" + "".join(", %s = ?" % column for column in optional)
                       + " WHERE number = ? AND queue = ?", *values, *optional.values(), number, queue)
        if cursor.rowcount > 0:
            return "updated"
        cursor.execute("INSERT INTO " + TABLE + " (number, queue, penalty, member_name, enabled, valid_from, "
                       "valid_until" + "".join(", " + column for column in optional) + ") VALUES "
                       "(?, ?, ?, ?, 1, ?, ?" + ", ?" * len(optional) + ")", number, queue, *values,
                       *optional.values())
        return "added"
    return bounded(connection_string, timeout, upsert)


def revoke(connection_string: str, timeout: float, number: str, queue: str | None = None) -> int:
    """Delete the number's rows (of one queue); how many went."""
    def delete(cursor: Cursor) -> int:
        if queue is None:
            cursor.execute("DELETE FROM " + TABLE + " WHERE number = ?", number)
        else:
            cursor.execute("DELETE FROM " + TABLE + " WHERE number = ? AND queue = ?", number, queue)
        return cursor.rowcount
    return bounded(connection_string, timeout, delete)
