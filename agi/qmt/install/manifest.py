"""The install manifest: `key=value` lines, what --uninstall removes.

A key may repeat (agi_dir: every agi-bin an install has used, the current
one last); a reader wants all its values or the last.
"""

from __future__ import annotations

from collections.abc import Iterable

HEADER = "# queue-mobile-toggle install.sh manifest: what --uninstall removes"
# The keys, in the order written.
KEYS = ("agi_dir", "include_file", "dsn_added", "sqlite_db", "config_sha256", "backend", "ami_file", "sweep",
        "fastagi_unit")


class Manifest:
    """The values of a manifest's text."""

    def __init__(self, text: str = "") -> None:
        self.pairs = [tuple(line.split("=", 1)) for line in text.splitlines()
                      if "=" in line and not line.startswith("#")]

    def all(self, key: str) -> list[str]:
        """Every value of key, in the order written."""
        return [value for name, value in self.pairs if name == key]

    def get(self, key: str) -> str:
        """The last value of key, else ""."""
        values = self.all(key)
        return values[-1] if values else ""


def agi_dirs_used(recorded: Iterable[str], current: str) -> list[str]:
    """Every agi-bin an install has used, the current one last: --uninstall then
    leaves no script behind after a changed --agi-dir."""
    return [d for d in recorded if d != current] + [current]


def render(agi_dirs: Iterable[str], values: dict[str, str]) -> str:
    """The manifest's text: one agi_dir line each, then the other keys in order."""
    lines = [HEADER] + ["agi_dir=" + d for d in agi_dirs]
    lines += [f"{key}={values.get(key, '')}" for key in KEYS if key != "agi_dir"]
    return "\n".join(lines) + "\n"
