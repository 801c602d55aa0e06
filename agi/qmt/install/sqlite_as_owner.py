"""The SQLite allowlist's table, made or upgraded as the asterisk user.

The allowlist file is that user's to write, so root never opens it with
SQLite (a crafted file is crafted input to a C parser run as root): the
installer runs this file's text as `runuser -u asterisk -- python3 -I -c`
(standalone: it imports nothing of the package). Operations:

    has-table DB TABLE    exit 0 when DB (read-only) has TABLE, else 1
    create SQL            stdin: the old file (empty: a new one); SQL run on a
    upgrade SQL           private copy, or only its ALTER TABLE ... ADD COLUMN
                          lines whose column the table lacks; stdout: the
                          columns added on one line, then the new file
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import tempfile

ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


def has_table(db: str, table: str) -> bool:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
        return connection.execute(query, (table,)).fetchone() is not None
    finally:
        connection.close()


def statements(sql: str) -> list[str]:
    """The statements of a SQL text, its -- comment lines left out."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def add_columns(connection: sqlite3.Connection, sql: str) -> list[str]:
    """The ALTER TABLE ... ADD COLUMN statements whose column the table lacks, run."""
    added = []
    for statement in statements(sql):
        found = ADD_COLUMN.match(statement)
        if not found:
            sys.exit("not an ADD COLUMN: " + statement.split("\n")[0])
        table, column = found.groups()
        have = [row[1].lower() for row in connection.execute(f"PRAGMA table_info({table})")]
        if column.lower() not in have:
            connection.execute(statement)
            added.append(column)
    return added


def changed_copy(op: str, sql: str, old: bytes) -> tuple[list[str], bytes]:
    """The columns added and the new file, from a private copy of old."""
    with tempfile.TemporaryDirectory() as scratch:
        db = os.path.join(scratch, "allowlist.sqlite")
        with open(db, "wb") as handle:
            handle.write(old)
        connection = sqlite3.connect(db)
        added = add_columns(connection, sql) if op == "upgrade" else []
        if op == "create":
            connection.executescript(sql)
        connection.commit()
        connection.close()
        with open(db, "rb") as handle:
            return added, handle.read()


def main(argv: list[str]) -> int:
    if argv[0] == "has-table":
        return 0 if has_table(argv[1], argv[2]) else 1
    added, data = changed_copy(argv[0], argv[1], sys.stdin.buffer.read())
    sys.stdout.buffer.write((" ".join(added) + "\n").encode() + data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
