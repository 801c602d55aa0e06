"""The installer's output: one line a step, counted, and the final line.

Steps print `[ok]`, `[changed]` or `[note]` (--check: `[PASS]`, `[FAIL]`),
the label padded to one column; a run that must stop raises InstallError,
whose text main prints as the one `[ERROR]` line on stderr (exit 1).
"""

from __future__ import annotations

import sys
from typing import TextIO


class InstallError(Exception):
    """The run stops here; the text is its one line."""


class Report:
    """The step lines, and how many changed something or failed."""

    def __init__(self, changes: int = 0, out: TextIO | None = None) -> None:
        self.changes = changes
        self.fails = 0
        self.out = out or sys.stdout

    def line(self, tag: str, text: str) -> None:
        self.out.write(f"{'[' + tag + ']':<9} {text}\n")
        self.out.flush()

    def ok(self, text: str) -> None:
        self.line("ok", text)

    def changed(self, text: str) -> None:
        self.line("changed", text)
        self.changes += 1

    def note(self, text: str) -> None:
        self.line("note", text)

    def passed(self, text: str) -> None:
        self.line("PASS", text)

    def failed(self, text: str) -> None:
        self.line("FAIL", text)
        self.fails += 1

    def verbatim(self, line: str) -> None:
        """A line another program printed in this format (qmt doctor's)."""
        self.out.write(line + "\n")
        self.out.flush()

    def final(self, text: str) -> None:
        self.out.write(f"queue-mobile-toggle: {text}\n")
        self.out.flush()
