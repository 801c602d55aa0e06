"""A line-preserving INI editor for Asterisk's and unixODBC's files.

Every line the edit does not concern comes back byte for byte: comments,
blank lines, order, `#include` lines, keys Asterisk repeats, lines of no
known shape. Section and key names compare case-insensitively (unixODBC
and Asterisk do). A section is every `[name]` header of that name; a line
before the first header is in no section. A key is what stands before the
line's first `=` (`key => value` too), without blanks; its value is what
follows the `=` and the blanks after it, without trailing blanks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

HEADER = re.compile(r"\s*\[")
KEY_END = re.compile(r"\s*=")
VALUE_START = re.compile(r"=\s*")


def split_lines(text: str) -> list[str]:
    """The lines of text, each with its own line end (the last may have none)."""
    return text.splitlines(keepends=True)


def body(line: str) -> str:
    """The line without its line end."""
    return line.rstrip("\r\n")


def line_end(line: str) -> str:
    return line[len(line.rstrip("\r\n")):]


def section_name(line: str) -> str | None:
    """The name of a `[name]` header line (what stands between `[` and a final `]`), else None."""
    if not HEADER.match(line):
        return None
    name = body(line).lstrip()[1:].rstrip()
    return name[:-1] if name.endswith("]") else name


def key_of(line: str) -> str:
    """The key of a line: before its first `=`, without blanks (the whole line when it has none)."""
    text = body(line)
    end = KEY_END.search(text)
    return (text[:end.start()] if end else text).lstrip()


def same_name(one: str, other: str) -> bool:
    return one.lower() == other.lower()


def sections(lines: list[str]) -> Iterator[tuple[str | None, str]]:
    """(the section it is in, the line) for every line; a header is in its own section."""
    current: str | None = None
    for line in lines:
        name = section_name(line)
        if name is not None:
            current = name
        yield current, line


def key_lines(lines: list[str], section: str, key: str) -> Iterator[int]:
    """The indexes of the lines that set key in section."""
    for index, (current, line) in enumerate(sections(lines)):
        if current is not None and same_name(current, section) and section_name(line) is None \
                and same_name(key_of(line), key):
            yield index


def has_section(text: str, section: str) -> bool:
    return any(same_name(name, section) for name in map(section_name, split_lines(text)) if name is not None)


def value(text: str, section: str, key: str) -> str:
    """The value of the first key of section, else ""."""
    lines = split_lines(text)
    for index in key_lines(lines, section, key):
        found = body(lines[index])
        start = VALUE_START.search(found)
        return found[start.end():].rstrip() if start else ""
    return ""


def without_section(text: str, section: str) -> str:
    """text without section: its headers and every line up to the next header."""
    return "".join(line for current, line in sections(split_lines(text))
                   if current is None or not same_name(current, section))


def with_value(text: str, section: str, key: str, new: str) -> str:
    """Every existing key of section set to new (what followed the value goes too)."""
    lines = split_lines(text)
    for index in key_lines(lines, section, key):
        line = lines[index]
        start = VALUE_START.search(body(line))
        if start:
            lines[index] = body(line)[:start.end()] + new + line_end(line)
    return "".join(lines)


def with_key(text: str, section: str, key: str, new: str) -> str:
    """key of section set to new: its first line becomes `key = new`; a missing key
    goes right under the first header of section, since an #include may follow the
    section's last key. A file without section is left as it is."""
    lines = split_lines(text)
    setting = f"{key} = {new}"
    found = next(key_lines(lines, section, key), None)
    if found is not None:
        lines[found] = setting + (line_end(lines[found]) or "\n")
        return "".join(lines)
    for index, line in enumerate(lines):
        name = section_name(line)
        if name is not None and same_name(name, section):
            lines[index] = line if line_end(line) else line + "\n"
            lines.insert(index + 1, setting + "\n")
            break
    return "".join(lines)


def ended(text: str) -> str:
    """text with its last line ended, so that what is added starts a line."""
    return text + "\n" if text and not text.endswith("\n") else text


def without_lines(text: str, unwanted: Callable[[str], object]) -> str:
    """text without the lines for which unwanted(line without its end) is true."""
    return "".join(line for line in split_lines(text) if not unwanted(body(line)))


def has_line(text: str, predicate: Callable[[str], object]) -> bool:
    return any(bool(predicate(body(line))) for line in split_lines(text))
