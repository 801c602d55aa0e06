"""Reading what the test PBX logged: the full log (read as it grows), the
lines of one channel, the prompts a call heard, and polling for a condition;
and keeping the logs once the root goes."""

import re
import shutil
import time
from pathlib import Path

LOG_DIR = "/var/log/asterisk"
# Asterisk's logs (pbx/logger.conf) and the toggle's (the tests' config)
KEPT_LOGS = ("full", "queue_log", "messages.log", "queue_mobile_toggle.log")

# file.c's line, or res_agi's for STREAM FILE (escape digits and offset first)
PLAYING = re.compile(r"Playing '([^']+?)(?:\.\w+)?' (?:\(escape_digits=[^)]*\) \(sample_offset \d+\) )?\(language")


class FullLog:
    """Asterisk's full log, read incrementally: only whole lines, so a line
    being written is never seen cut in two."""

    def __init__(self, path):
        self.path = path
        self._text, self._pos = "", 0

    def text(self):
        """The whole log so far."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                new = f.read()
        except FileNotFoundError:
            return self._text
        end = new.rfind(b"\n") + 1
        if end:
            self._text += new[:end].decode("utf-8", "replace")
            self._pos += end
        return self._text


def channel_lines(text, channel):
    """The log lines naming this channel (e.g. PJSIP/e2e-trunk-00000003)."""
    return [line for line in text.splitlines() if channel and channel in line]


def prompts(lines):
    """Sound files played, in order, from a call's log lines."""
    out = []
    for line in lines:
        m = PLAYING.search(line)
        if m:
            out.append(m.group(1))
    return out


def route_leg_prompts(text, number):
    """Sound files played on the mobile `number`'s route leg (its
    Local/<number>@outbound-allroutes-...;1 channel, where the ring path's
    confirmation runs), from the log text."""
    leg = re.compile(rf"Local/{number}@outbound-allroutes-\w+;1>")
    return prompts([line for line in text.splitlines() if leg.search(line)])


def wait_for(predicate, timeout=30, what="the condition", step=0.2):
    """predicate()'s first true value, polled every `step` seconds;
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not seen in {timeout} s")


def copy_logs(root, dest):
    """Copy the logs out of the root into dest (made if missing), before the root goes."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    for name in KEPT_LOGS:
        src = root.p(f"{LOG_DIR}/{name}")
        if src.exists():
            shutil.copy(src, Path(dest) / name)
