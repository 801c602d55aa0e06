"""The config's ODBC connection string: read, named DSN, shown masked."""

from __future__ import annotations

import configparser
import re

from ..rules import without_passwords
from .facts import DEFAULT_CONNECTION

PLAIN_DSN = re.compile(r"[Dd][Ss][Nn]=([A-Za-z0-9_.-]+);?\Z")
ANY_DSN = re.compile(r";\s*[Dd][Ss][Nn]\s*=\s*([^;]+)")


def config_connection(data: bytes) -> str | None:
    """The connection string of a config's bytes, as the package reads it (its
    default when unset); None when they do not parse."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(data.decode("utf-8"))
        return parser.get("database", "connection", fallback=DEFAULT_CONNECTION).strip()
    except (configparser.Error, UnicodeError):
        return None


def plain_dsn(connection: str) -> str:
    """The DSN of a connection string that is exactly DSN=NAME, else ""."""
    found = PLAIN_DSN.match(connection)
    return found.group(1) if found else ""


def any_dsn(connection: str) -> str:
    """The DSN named anywhere in a connection string, else ""."""
    found = ANY_DSN.search(";" + connection)
    return found.group(1).rstrip() if found else ""


def masked(connection: str) -> str:
    """The connection string as the installer may show it: the package's masker."""
    return without_passwords(connection)
