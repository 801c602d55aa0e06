"""The PBX's time zone: `qmt report` shows times in it, shift windows are
read in it. Its own module so that the AGI pays for zoneinfo only when a
row has a shift."""

from __future__ import annotations

import datetime
import os


def local_zone(name: str | None = None) -> tuple[datetime.tzinfo, str]:
    """The PBX's zone: `name` (an IANA name), else $TZ, else /etc/localtime;
    (zone, its name for the report)."""
    from zoneinfo import ZoneInfo
    name = name or os.environ.get("TZ", "").lstrip(":") or None
    if name:
        return ZoneInfo(name), name
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            key = target.split("/zoneinfo/", 1)[1]
            return ZoneInfo(key), key
        with open("/etc/localtime", "rb") as data:
            return ZoneInfo.from_file(data, key="localtime"), "localtime"
    except (OSError, ValueError):
        return datetime.timezone.utc, "UTC"
