"""Asterisk's control socket (`asterisk -rx`): astdb and the dialplan.

The PIN lockout records and the ring path's state live in astdb, which AMI
reaches only with the 'system' right (restart and worse), and whether the
route dials a number needs the manager's config right, which qmt's account
lacks: qmt asks the CLI socket instead, as root or the asterisk user.
"""

from __future__ import annotations

import re
import subprocess


class AsteriskCliError(Exception):
    """Asterisk's control socket cannot be asked, or its answer is not understood."""


# Lines the remote console prints before any answer, whatever the command:
# on a box without an ethernet card with an IPv4 address (containers, some
# VPSes) Asterisk cannot derive its EID and says so on every `asterisk -rx`.
PREAMBLE = re.compile(r"No ethernet interface found for seeding global EID\b")


def without_preamble(text: str) -> str:
    """The answer without the console's warning lines ahead of it."""
    lines = text.splitlines(keepends=True)
    while lines and PREAMBLE.match(lines[0]):
        lines.pop(0)
    return "".join(lines)


def asterisk_cli(command: str, timeout: float = 10) -> str:
    """The answer of `asterisk -rx COMMAND`; AsteriskCliError when Asterisk cannot be asked."""
    try:
        done = subprocess.run(["asterisk", "-rx", command], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AsteriskCliError("cannot ask Asterisk (asterisk -rx): %s" % (getattr(exc, "strerror", "") or
                                                                          type(exc).__name__)) from None
    if done.returncode != 0 or "Unable to connect to remote asterisk" in done.stdout + done.stderr:
        raise AsteriskCliError("cannot ask Asterisk (asterisk -rx): is it running, and may this user use its "
                               "socket?")
    return without_preamble(done.stdout)


def astdb_family(family: str) -> dict[str, str]:
    """{key: value} of one astdb family ("database show")."""
    values: dict[str, str] = {}
    for line in asterisk_cli("database show %s" % family).splitlines():
        key, sep, value = line.partition(":")
        prefix = "/%s/" % family
        if sep and key.strip().startswith(prefix):
            values[key.strip()[len(prefix):]] = value.strip()
    return values


# `dialplan show <number>@<context>`: found, or either of pbx.c's "There is
# no existence of ..." (no such extension, no such context).
DIALPLAN_FOUND = re.compile(r"^-= \d+ extensions? \(", re.MULTILINE)
DIALPLAN_NOT_FOUND = re.compile(r"^There is no existence of ", re.MULTILINE)
CONTEXT_OR_NUMBER = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def route_dials(route: str, number: str) -> bool:
    """Whether the dialplan context `route` can dial `number`: Asterisk's
    own pattern match, `include =>` lines followed, as a Dial() of
    Local/<number>@<route> finds it. The CLI, not AMI's ShowDialPlan (the
    same search): that action needs the manager's config or reporting
    right, and qmt's account has only agent. False for a context that is
    not loaded. AsteriskCliError when Asterisk cannot be asked or its answer is not
    understood."""
    if not (CONTEXT_OR_NUMBER.match(route) and CONTEXT_OR_NUMBER.match(number)):
        raise ValueError("not a context and a number: %r, %r" % (route, number))
    text = asterisk_cli("dialplan show %s@%s" % (number, route))
    if DIALPLAN_FOUND.search(text):
        return True
    if DIALPLAN_NOT_FOUND.search(text):
        return False
    raise AsteriskCliError("Asterisk's answer to 'dialplan show %s@%s' was not understood" % (number, route))


def astdb_delete(family: str, key: str) -> bool:
    """True when the entry was there and is gone."""
    return "removed" in asterisk_cli("database del %s %s" % (family, key)).lower()
