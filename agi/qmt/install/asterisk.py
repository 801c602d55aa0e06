"""`asterisk -rx` and the parsers of its answers.

On a box without an ethernet card holding an IPv4 address every `asterisk
-rx` first prints "No ethernet interface found for seeding global EID...":
each parser looks for its answer among the lines, never at the first line.
"""

from __future__ import annotations

import re
import shutil
import subprocess

QUEUE_HEADER = re.compile(r"^(\S+) has [0-9]+ calls? ")
RING_MEMBER = re.compile(r"local/[0-9]+@qmt-ring/n", re.IGNORECASE)
AGI_DIR_LINE = re.compile(r"^ *AGI Scripts directory: *(.*?)[ \r]*$")
DELETED = re.compile(r"([0-9]+) database entr")


def cli(command: str, timeout: float = 20) -> str:
    """What `asterisk -rx command` prints; "" when it cannot run."""
    return _run(command, timeout)[1]


def _run(command: str, timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(["asterisk", "-rx", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False, ""
    return done.returncode == 0, done.stdout.decode("utf-8", "replace")


def is_version_answer(output: str) -> bool:
    """`core show version` answered: a line of it starts with "Asterisk " (warnings may come first)."""
    return any(line.startswith("Asterisk ") for line in output.splitlines())


def running() -> bool:
    """Asterisk runs and its control socket answers."""
    if shutil.which("asterisk") is None:
        return False
    answered, output = _run("core show version", 10)
    return answered and is_version_answer(output)


def has_context(output: str, context: str) -> bool:
    """`dialplan show CONTEXT` found it."""
    return f"Context '{context}'" in output


def context_loaded(context: str) -> bool:
    return has_context(cli("dialplan show " + context), context)


def agi_dir_of_settings(output: str) -> str:
    """The AGI Scripts directory of `core show settings`, else ""."""
    for line in output.splitlines():
        found = AGI_DIR_LINE.match(line)
        if found:
            return found.group(1)
    return ""


def running_agi_dir() -> str:
    return agi_dir_of_settings(cli("core show settings"))


def ring_members(output: str) -> list[tuple[str, str]]:
    """(queue, interface) of every ring path member in `queue show`: each queue's
    first line is "<queue> has N calls ...", its members indented below; any other
    line, such as a warning before the answer, names no queue."""
    found: set[tuple[str, str]] = set()
    queue = ""
    for line in output.splitlines():
        header = QUEUE_HEADER.match(line)
        if header:
            queue = header.group(1)
        elif queue:
            found.update((queue, member) for member in RING_MEMBER.findall(line))
    return sorted(found)


def deleted_keys(output: str) -> int:
    """How many keys `database deltree` says it removed (0 when it says nothing)."""
    found = DELETED.search(output)
    return int(found.group(1)) if found else 0


def module_loaded(output: str, module: str) -> bool:
    return module in output
