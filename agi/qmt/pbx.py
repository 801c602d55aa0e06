"""The AGI channel: Asterisk as one call's script talks to it (over pyst2,
with the start block read strictly: see qmt.toggle for why), on the classic
script's pipes or on a FastAGI connection (qmt.fastagi). The `qmt` command
talks to Asterisk through qmt.ami instead.

Over FastAGI, Asterisk tells a hangup by writing the line `HANGUP` on the
socket (res_agi.c, run_agi: `agi->fast`) where a classic script gets SIGHUP;
socket_agi() reads that line as pyst2 reads the signal: the call ends, as
channel_gone, before its next command is sent.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Protocol, TextIO, cast

from .dialplan import LOCK_PREFIX, SERVED
from .rules import Decision, Membership, MembershipAnswer, answer_variables, is_valid_queue_name, member_by, printable

if TYPE_CHECKING:
    import socket

    from asterisk.agi import AGI

AGI_KEY = re.compile(r"agi_[a-z0-9_]{1,32}\Z")
# The longest line Asterisk sends a script: a GET FULL VARIABLE answer of
# 4095 bytes and its "200 result=1 (...)". A longer one is no Asterisk's
# (and pyst2's reply regex costs time quadratic in its length).
MAX_AGI_LINE = 4200
MAX_START_LINES = 100
# GET FULL VARIABLE reads a dialplan function into a 4096-byte buffer
# (VAR_BUF_SIZE): an answer this long may have been cut short.
FULL_VARIABLE_LIMIT = 4095
# app_queue's QUEUE_MEMBER_LIST() stops adding members once its text
# reaches the buffer's size less 2 ("Truncating list"): a list this long
# may lack members, and its last entry may be cut in the middle.
MEMBER_LIST_LIMIT = FULL_VARIABLE_LIMIT - 1
# With persistentmembers=yes (FreePBX's default) app_queue keeps every queue
# that has dynamic members as a key of this astdb family.
PERSISTED_QUEUES = "${DB_KEYS(Queue/PersistentMembers)}"


def complete_members(listed: str) -> tuple[list[str], bool]:
    """(the member interfaces QUEUE_MEMBER_LIST() surely holds, whether it
    was cut). A cut list's last entry may be a member's name cut short."""
    members = listed.split(",")
    cut = len(listed.encode("utf-8")) >= MEMBER_LIST_LIMIT
    return (members[:-1] if cut else members), cut


# The line res_agi writes on a FastAGI socket when the channel hangs up.
FASTAGI_HANGUP = "HANGUP\n"


def toggle_lock_name(number: str) -> str:
    """The dialplan unlocks the same name: qmt-toggle-${QUEUEUSER}."""
    return LOCK_PREFIX + number


# -- AGI ----------------------------------------------------------------------

class _Sink:
    """Swallows pyst2's stderr chatter (it echoes every line, caller ID included)."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class AgiClosed(EOFError):
    """Asterisk closed its end of the AGI pipe."""


class AgiLineTooLong(ValueError):
    """A line longer than MAX_AGI_LINE came from Asterisk's side."""


class AgiInput:
    """Asterisk's side of the pipe, a line at a time, for pyst2. At EOF it
    raises instead of returning '' (pyst2's 520 loop would read '' forever
    at 100% CPU), and bytes that are not UTF-8 are replaced, not fatal."""

    def __init__(self, binary: IO[bytes]) -> None:
        self._binary = binary

    def readline(self) -> str:
        raw = self._binary.readline(MAX_AGI_LINE)
        if not raw:
            raise AgiClosed("Asterisk closed the AGI pipe")
        if len(raw) >= MAX_AGI_LINE and not raw.endswith(b"\n"):
            raise AgiLineTooLong("a line longer than %d bytes" % MAX_AGI_LINE)
        return raw.decode("utf-8", "replace")


def read_start_block(stream: AgiInput) -> tuple[dict[str, str], str | None]:
    """(env, problem) from the AGI start block. The first value of a key is
    kept; `problem` names the first thing a genuine block never has (None
    when there is none). Reads up to the blank line that ends the block."""
    env: dict[str, str]
    problem: str | None
    env, problem = {}, None
    for _ in range(MAX_START_LINES):
        try:
            line = stream.readline()
        except AgiClosed:
            return env, problem or "start block cut short by EOF"
        except AgiLineTooLong:
            return env, problem or "start block line longer than %d bytes" % MAX_AGI_LINE
        if line in ("\n", ""):
            return env, problem
        problem = problem or start_line_problem(line, env)
        key, _sep, value = line[:-1].partition(": ")
        env.setdefault(key, value)
    return env, problem or "start block longer than %d lines" % MAX_START_LINES


def start_line_problem(line: str, env: dict[str, str]) -> str | None:
    """Why this line cannot be Asterisk's own (None if it can be)."""
    if not line.endswith("\n"):
        return "start block line cut short"
    key, sep, value = line[:-1].partition(": ")
    if not sep or not AGI_KEY.match(key):
        return "malformed start block line"
    if key in env:
        return "repeated key %s" % key
    if any(char < " " or char == "\x7f" for char in value):
        return "control character in %s" % key
    return None


def strict_agi(stdin: IO[bytes], stdout: TextIO) -> AGI:
    """pyst2's AGI with the start block read by read_start_block()."""
    from asterisk.agi import AGI

    class StrictAGI(AGI):
        def _get_agi_env(self) -> None:
            self.env, self.env_problem = read_start_block(self.stdin)

    return StrictAGI(stdin=AgiInput(stdin), stdout=stdout, stderr=_Sink())


class SocketLines:
    """A FastAGI connection read as a file of lines (readline(limit)), with
    a look at what has already arrived that never waits."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection, self._buffer = connection, b""

    def readline(self, limit: int) -> bytes:
        while b"\n" not in self._buffer[:limit] and len(self._buffer) < limit:
            chunk = self._connection.recv(65536)
            if not chunk:
                break
            self._buffer += chunk
        end = self._buffer.find(b"\n", 0, limit)
        cut = limit if end < 0 else end + 1
        line, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return line

    def arrived(self) -> bytes:
        """What has arrived and is not read yet (a non-blocking recv)."""
        import select  # here: the classic script never needs it
        try:
            while select.select([self._connection], [], [], 0)[0]:
                chunk = self._connection.recv(65536)
                if not chunk:
                    break
                self._buffer += chunk
        except (OSError, ValueError):
            pass                                    # a closed socket: the next read says so
        return self._buffer


class SocketInput(AgiInput):
    """A FastAGI connection's side of Asterisk, a line at a time. Once the
    start block is read, the line HANGUP is the channel's hangup (raised as
    pyst2 raises its SIGHUP); inside the block it is a malformed line."""

    def __init__(self, connection: socket.socket) -> None:
        self._lines = SocketLines(connection)
        super().__init__(cast(IO[bytes], self._lines))
        self.after_start = False

    def readline(self) -> str:
        from asterisk.agi import AGISIGHUPHangup
        line = super().readline()
        if self.after_start and line == FASTAGI_HANGUP:
            raise AGISIGHUPHangup("Asterisk wrote HANGUP on the FastAGI socket")
        return line

    def hangup_waiting(self) -> bool:
        """True when the next line, already arrived, is HANGUP."""
        return self._lines.arrived().startswith(FASTAGI_HANGUP.encode())


def socket_agi(connection: socket.socket) -> AGI:
    """pyst2's AGI on a FastAGI connection, the start block read strictly."""
    return _socket_agi_class()(SocketInput(connection), connection.makefile("w", encoding="utf-8"))


@functools.cache
def _socket_agi_class() -> type:
    """pyst2's AGI class as FastAGI needs it. Its constructor registers a
    SIGHUP handler, which only the main thread may do: this one sets the
    same fields itself, and test_hangup() looks for Asterisk's HANGUP line."""
    from asterisk.agi import AGI, AGISIGHUPHangup

    class SocketAGI(AGI):
        def __init__(self, stdin: SocketInput, stdout: TextIO) -> None:
            self.stdin, self.stdout, self.stderr = stdin, stdout, _Sink()
            self._got_sighup = False
            self.env, self.env_problem = read_start_block(stdin)
            stdin.after_start = True

        def test_hangup(self) -> None:
            if self.stdin.hangup_waiting():
                raise AGISIGHUPHangup("Asterisk wrote HANGUP on the FastAGI socket")

    return SocketAGI


class Manager(Protocol):
    """What the manager interface (AMI) tells a Channel that no dialplan
    function does: qmt.ami.AmiMembers, for one call (on a connection of
    its own, or on qmt serve's shared one)."""

    problem: str | None         # why it could not be asked (None: it could, or was not)

    def member(self, queue: str, interface: str) -> MembershipAnswer:
        """Membership (with Paused and PausedReason), False, or None when
        the manager could not be asked."""

    def paused_reason(self, queue: str, interface: str) -> str | None: ...

    def close(self) -> None:
        """The call is over (a connection of its own is closed)."""


class NoManager:
    """A Channel without a manager: nothing beyond the dialplan's answers
    is known (no pause is resumable, a cut member list stays unsure)."""

    problem = "no manager connection in this run"

    def member(self, queue: str, interface: str) -> MembershipAnswer:
        return None

    def paused_reason(self, queue: str, interface: str) -> str | None:
        return None

    def close(self) -> None:
        pass


class Channel:
    """The few AGI requests the toggle needs, over pyst2. `manager` answers
    what no dialplan function tells: a paused member's reason, and whether
    a number is a member of a queue whose member list Asterisk cut."""

    def __init__(self, agi: AGI, manager: Manager | None = None) -> None:
        self.agi = agi
        self.env = agi.env
        self.manager = manager or NoManager()

    @property
    def env_problem(self) -> str | None:
        return getattr(self.agi, "env_problem", None)

    @property
    def manager_problem(self) -> str | None:
        return self.manager.problem

    @property
    def caller_number(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def dialplan_number(self) -> str | None:
        """The caller number as the dialplan passed it (FILTERed), or None."""
        return self.env.get("agi_arg_2")

    @property
    def queue_argument(self) -> str:
        return self.env.get("agi_arg_1", "").strip()

    @property
    def action_argument(self) -> str:
        """The dialplan's third argument: '' (the toggle) or the break action."""
        return self.env.get("agi_arg_3", "").strip()

    @property
    def uniqueid(self) -> str:
        return printable(self.env.get("agi_uniqueid", ""), 40)

    @property
    def name(self) -> str:
        return printable(self.env.get("agi_channel", ""), 80)

    def in_step(self) -> bool:
        """True when Asterisk's reply to this command is the one we read:
        a random token must come back. A stale start-block line or a reply
        forged by the caller cannot carry it. The reply is compared as raw
        text: pyst2's parser would wait forever on a forged '520-' line.
        The same round trip marks the channel served (SET() returns the
        value it assigns: func_logic.c): the dialplan runs the classic
        script after a FastAGI attempt only when the mark is empty, i.e.
        when no command of ours reached Asterisk."""
        token = "qmt" + os.urandom(8).hex()
        self.agi.test_hangup()                      # as pyst2's execute() does first
        self.agi.send_command("GET FULL VARIABLE", '"${SET(%s=%s)}"' % (SERVED, token))
        try:
            reply = self.agi.stdin.readline()
        except AgiLineTooLong:
            return False
        return reply.rstrip("\n") == "200 result=1 (%s)" % token

    def queue_exists(self, queue: str) -> bool:
        return self.agi.get_variable("QUEUE_EXISTS(%s)" % queue).strip() == "1"

    def membership(self, queue: str, interfaces: Sequence[str]) -> MembershipAnswer:
        """Membership by the first of `interfaces` that is a member (paused
        is asked of the ring path's interface, interfaces[0], only); False
        when none is; None when Asterisk's list was cut and the manager
        could not be asked. QUEUE_MEMBER_LIST() answers in one AGI round
        trip while the list fits its buffer; past that (some 140 mobiles)
        the manager is asked about each interface, in order."""
        listed, cut = complete_members(self.agi.get_full_variable("${QUEUE_MEMBER_LIST(%s)}" % queue))
        for interface in interfaces:
            ring_path = interface == interfaces[0]
            if member_by(listed, [interface]) is not None:
                paused = ring_path and \
                    self.agi.get_variable("QUEUE_MEMBER(%s,paused,%s)" % (queue, interface)).strip() == "1"
                return Membership(interface, paused, self.manager.paused_reason(queue, interface) if paused else None)
            answer = self.manager.member(queue, interface) if cut else False
            if answer is None or answer:
                return answer if answer is None or ring_path else Membership(interface)
        return False

    def lock_toggle(self, number: str) -> bool:
        """Take the lock of this number's toggle (func_lock's LOCK(), held by
        this channel until the dialplan's UNLOCK or the hangup; it waits up
        to 3 s). Keyed on the normalised number, so +7..., 7..., 8... and the
        national form of one number wait for each other. False: another
        call from the number holds it."""
        return self.agi.get_full_variable("${LOCK(%s)}" % toggle_lock_name(number)).strip() == "1"

    def route_answer(self, route: str, number: str) -> str:
        """Whether the context `route` can dial `number`, as Asterisk says:
        DIALPLAN_EXISTS() matches patterns and follows `include =>` lines,
        as the ring path's Dial(Local/<number>@<route>) will. "1" or "0";
        anything else is no answer. Only checked text reaches the command
        line: `route` comes from the validated config, `number` is the
        normalised digits."""
        return self.agi.get_full_variable("${DIALPLAN_EXISTS(%s,%s,1)}" % (route, number)).strip()

    def persisted_queues(self) -> list[str]:
        """Queues with persisted dynamic members (empty where
        persistentmembers=no), names checked like any other."""
        listed = self.agi.get_full_variable(PERSISTED_QUEUES)
        return [queue for queue in (part.strip() for part in listed.split(","))
                if is_valid_queue_name(queue)]

    # -- the PIN dialogue: every argument is built from checked characters --
    def keyed_digits(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """GET DATA: what the caller keyed after the prompt ('' for silence).
        DTMF is hostile: anything but ASCII digits counts as nothing."""
        digits = self.agi.execute("GET DATA", prompt, timeout_ms, max_digits)["result"][0]
        return digits if digits.isascii() and digits.isdigit() and len(digits) <= max_digits else ""

    def astdb_get(self, family: str, key: str) -> str:
        """The value, or '' when there is none."""
        result, value = self.agi.execute("DATABASE GET", family, key)["result"]
        return value if result == "1" else ""

    def astdb_put(self, family: str, key: str, value: str) -> None:
        self.agi.execute("DATABASE PUT", family, key, value)

    def publish(self, number: str | None, decision: Decision, interface: str,
                ring: Iterable[tuple[str, str]] = ()) -> None:
        """The whole answer in one command (MSet, in the order of
        answer_variables): one round trip instead of a dozen, and the
        dialplan sees all of it or none. Every value is built from checked
        characters, none of them a comma, quote or backslash."""
        pairs = ",".join("%s=%s" % pair for pair in answer_variables(number, decision, interface, ring))
        self.agi.execute("EXEC", "MSet", '"%s"' % pairs)

    def verbose(self, line: str) -> None:
        self.agi.verbose(line, 1)
