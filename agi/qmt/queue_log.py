"""Asterisk's queue_log, read as a stream of entries, for `qmt report`.

The file (main/logger.c, ast_queue_log): one line per event,

    epoch|callid|queue|agent|event|data1|data2|...

`callid` is the customer's uniqueid (or NONE, MANAGER, CLI, REALTIME),
`agent` the member: its interface in ADDMEMBER/REMOVEMEMBER (unless
log_membername_as_agent = yes), its member name in every other event of
app_queue, and the number in the ring path's own events (QMTNOCONFIRM,
QMTREJECT, QMTMISSED, QMTRINGFAULT). Rotated copies are read oldest first:
queue_log.N ... queue_log.1 (logrotate's numbers, .gz read with gzip) and
queue_log-YYYYMMDD (dateext), then queue_log itself. Lines are streamed:
nothing holds the whole file. A line that is not an entry (a cut last line,
another tool's text, a bad epoch) is skipped and counted.

The table (extconfig.conf `queue_log => odbc,...`): columns time (local
time, 'YYYY-MM-DD HH:MM:SS.ffffff', or UTC with
queue_log_realtime_use_gmt), callid, queuename, agent, event, and data1 ..
data5 (queue_adaptive_realtime) or data ('|'-separated). Read through the
project's ODBC layer (qmt.allowlist), in pages, in time order.
"""

from __future__ import annotations

import datetime
import glob
import gzip
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NamedTuple

from . import allowlist

QUEUE_LOG = "/var/log/asterisk/queue_log"
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
DATA_COLUMNS = ("data1", "data2", "data3", "data4", "data5")
FETCH_ROWS = 2000                      # a page of the table: the memory of one read
# Sessions start before the window: the table is read from its start, and
# that may take long; the allowlist's few-second bound is for one row.
TABLE_SECONDS = 120.0
ROTATED_NUMBER = re.compile(r"\.(\d{1,4})(?:\.gz)?\Z")
ROTATED_DATE = re.compile(r"-(\d{8,10})(?:\.gz)?\Z")


class Entry(NamedTuple):
    time: float
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


class Counter:
    """Lines read and lines skipped (not entries), for the report's footer."""

    def __init__(self) -> None:
        self.read = self.skipped = 0


def parse_line(line: str) -> Entry | None:
    """One line as an Entry, or None when it is not one."""
    fields = line.rstrip("\r\n").split("|")
    if len(fields) < 5 or not fields[0].isdigit() or not fields[4]:
        return None
    return Entry(float(fields[0]), fields[1], fields[2], fields[3], fields[4], tuple(fields[5:]))


def rotated_files(path: str) -> list[str]:
    """`path` and its rotated copies, oldest first."""
    numbered: list[tuple[int, str]] = []
    dated: list[tuple[str, str]] = []
    for name in glob.glob(glob.escape(path) + "[.-]*"):
        tail = name[len(path):]
        number, date = ROTATED_NUMBER.fullmatch(tail), ROTATED_DATE.fullmatch(tail)
        if number:
            numbered.append((int(number.group(1)), name))
        elif date:
            dated.append((date.group(1), name))
    ordered = [name for _, name in sorted(dated)] + [name for _, name in sorted(numbered, reverse=True)]
    return ordered + ([path] if os.path.exists(path) else [])


def open_text(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def file_entries(paths: Iterable[str], counter: Counter) -> Iterator[Entry]:
    """The entries of these files, in order, one line in memory at a time.
    A gzip copy cut short ends its file, not the report."""
    for path in paths:
        with open_text(path) as lines:
            try:
                for line in lines:
                    counter.read += 1
                    entry = parse_line(line)
                    if entry is None:
                        counter.skipped += 1
                    else:
                        yield entry
            except (EOFError, OSError):
                counter.skipped += 1


# -- the table -------------------------------------------------------------------

def table_time(value: Any, zone: datetime.tzinfo) -> float | None:
    """The epoch of a `time` value: a datetime from a DATETIME/TIMESTAMP
    column or its text from a text column, in `zone`."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip().replace(" ", "T", 1)[:26])
        except ValueError:
            return None
    if not isinstance(value, datetime.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def text(value: Any) -> str:
    return "" if value is None else str(value)


def row_entry(row: Any, where: dict[str, int], zone: datetime.tzinfo) -> Entry | None:
    seconds = table_time(row[where["time"]], zone)
    event = text(row[where["event"]])
    if seconds is None or not event:
        return None
    if "data1" in where:
        data = tuple(text(row[where[name]]) for name in DATA_COLUMNS if name in where)
    else:
        data = tuple(text(row[where["data"]]).split("|")) if "data" in where else ()
    while data and data[-1] == "":
        data = data[:-1]
    return Entry(seconds, text(row[where["callid"]]), text(row[where["queuename"]]), text(row[where["agent"]]),
                 event, data)


def read_table(connection_string: str, table: str, zone: datetime.tzinfo, counter: Counter,
               consume: Callable[[Iterator[Entry]], None]) -> None:
    """consume(entries of the table, in time order), page by page, within
    TABLE_SECONDS; a database error is allowlist.DatabaseError. `table` must
    match TABLE_NAME (checked by the caller: it is part of the SQL)."""
    if not TABLE_NAME.match(table):
        raise ValueError("bad table name")

    def work(cursor: allowlist.Cursor) -> None:
        cursor.execute("SELECT * FROM " + table + " ORDER BY time")
        names = [column[0].lower() for column in cursor.description]
        missing = [name for name in ("time", "callid", "queuename", "agent", "event") if name not in names]
        if missing:
            raise allowlist.DatabaseError("db_table_bad", "table %s has no column %s" % (table, ",".join(missing)))
        where = {name: index for index, name in enumerate(names)}
        consume(table_entries(cursor, where, zone, counter))
    allowlist.bounded(connection_string, TABLE_SECONDS, work)


def table_entries(cursor: allowlist.Cursor, where: dict[str, int], zone: datetime.tzinfo,
                  counter: Counter) -> Iterator[Entry]:
    while True:
        rows = cursor.fetchmany(FETCH_ROWS)
        if not rows:
            return
        for row in rows:
            counter.read += 1
            entry = row_entry(row, where, zone)
            if entry is None:
                counter.skipped += 1
            else:
                yield entry
