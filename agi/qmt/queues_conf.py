"""Each queue's ring `timeout` as Asterisk's queues.conf sets it, for `qmt
doctor`: the ring path must end a ring (and the mobile's confirmation)
before the queue gives up on it, or a late answer is cut mid-prompt and the
miss is not counted. Asterisk tells a queue's timeout to no one (not AMI,
not the CLI), so the files are read as app_queue reads them: queues.conf
and what it #includes (FreePBX: queues_additional.conf and others), with
templates ([name](!) and [queue](name)).
"""

from __future__ import annotations

import os
import re
import stat

QUEUES_CONF = "/etc/asterisk/queues.conf"
DEFAULT_TIMEOUT = 15          # app_queue's, for a queue that sets none
MAX_INCLUDE_DEPTH = 10
SECTION = re.compile(r"\[([^\]]+)\]\s*(?:\(([^)]*)\))?")
INCLUDE = re.compile(r"#(?:try)?include\s+\"?([^\"]+?)\"?\s*$")
SETTING = re.compile(r"([A-Za-z0-9_-]+)\s*=>?\s*(.*)$")


class Section:
    __slots__ = ("template", "parents", "values")
    values: dict[str, str]

    def __init__(self, template: bool, parents: list[str]) -> None:
        self.template, self.parents, self.values = template, parents, {}


def read_regular_file(path: str) -> str:
    """A regular file's text; OSError for anything else. Opened without
    blocking: a FIFO planted where a config belongs must not stall `qmt
    doctor` (nor install.sh --check, which runs it)."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise OSError("not a regular file: %s" % path)
        with os.fdopen(handle, "rb", closefd=False) as stream:
            return stream.read().decode("utf-8", "replace")
    finally:
        os.close(handle)


def read_sections(path: str, sections: dict[str, Section] | None = None, depth: int = 0) -> dict[str, Section]:
    """{name: Section} of a config file and its #includes (relative to its
    folder); an include that cannot be read is skipped, as #tryinclude is."""
    sections = {} if sections is None else sections
    current: Section | None = None
    try:
        lines = read_regular_file(path).splitlines()
    except OSError:
        return sections
    for raw in lines:
        line = raw.split(";", 1)[0].strip()
        include = INCLUDE.match(line)
        if include and depth < MAX_INCLUDE_DEPTH:
            read_sections(os.path.join(os.path.dirname(path), include.group(1)), sections, depth + 1)
            continue
        header = SECTION.match(line)
        if header:
            options = [option.strip() for option in (header.group(2) or "").split(",") if option.strip()]
            name = header.group(1).strip()
            if "+" in options and name in sections:
                current = sections[name]          # [name](+): more lines for an existing section
            else:
                current = sections[name] = Section("!" in options, [o for o in options if o not in ("!", "+")])
            continue
        setting = SETTING.match(line)
        if setting and current is not None:
            current.values[setting.group(1).lower()] = setting.group(2).strip()
    return sections


def _value(sections: dict[str, Section], name: str, key: str, seen: tuple[str, ...] = ()) -> str | None:
    """The key's value in a section, else from its templates (the last one
    listed wins, as Asterisk applies them in order), else None."""
    section = sections.get(name)
    if section is None or name in seen:
        return None
    if key in section.values:
        return section.values[key]
    for parent in reversed(section.parents):
        value = _value(sections, parent, key, seen + (name,))
        if value is not None:
            return value
    return None


def queue_timeouts(path: str = QUEUES_CONF) -> dict[str, int] | None:
    """{queue: ring timeout in seconds, 0 for none} of every queue the
    files define; None when queues.conf itself cannot be read."""
    if not os.access(path, os.R_OK) or not os.path.isfile(path):
        return None
    sections = read_sections(path)
    timeouts: dict[str, int] = {}
    for name, section in sections.items():
        if section.template or name == "general":
            continue
        value = _value(sections, name, "timeout")
        timeouts[name] = int(value) if value is not None and value.isdigit() else DEFAULT_TIMEOUT
    return timeouts


def persistent_members(path: str = QUEUES_CONF) -> bool | None:
    """[general] persistentmembers as app_queue reads it (off unless set
    true): whether dynamic members come back after a restart. None when
    queues.conf cannot be read."""
    if not os.access(path, os.R_OK) or not os.path.isfile(path):
        return None
    value = _value(read_sections(path), "general", "persistentmembers") or ""
    return value.lower() in ("yes", "true", "y", "t", "1", "on")
