"""One log line per decision, for the admin: syslog or a file."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .rules import Decision, printable, without_passwords

if TYPE_CHECKING:
    from .config import Settings
    from .pbx import Channel

LOG_TAG = "queue-mobile-toggle"


def decision_line(number: str | None, channel: Channel, decision: Decision) -> str:
    """One log line; `channel` names where the call came from (e.g. the trunk)."""
    who = "number=%s" % number if number else \
        "callerid=%s" % (printable(channel.caller_number, 32) or "(empty)")
    line = "%s: %s channel=%s queues=%s state=%s action=%s reason=%s" % (
        LOG_TAG, who, channel.name or "-", ",".join(decision.queues) or "-", decision.state,
        decision.action, decision.reason)
    if decision.detail:
        line += " detail=%s" % printable(without_passwords(decision.detail), 200)
    return line + " uniqueid=%s" % (channel.uniqueid or "-")


def write_log(settings: Settings, line: str, warning: bool) -> None:
    """Append the line to the configured file, or send it to syslog."""
    target = settings.log_target
    try:
        if target == "syslog":
            import syslog
            facility = settings.syslog_facility
            syslog.openlog(LOG_TAG, syslog.LOG_PID, getattr(syslog, "LOG_" + facility.upper()))
            syslog.syslog(syslog.LOG_WARNING if warning else syslog.LOG_INFO, line)
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            with open(target, "a", encoding="utf-8") as handle:
                handle.write("%s [%d] %s\n" % (stamp, os.getpid(), line))
    except OSError:
        pass  # logging must never turn a decision into a crash
