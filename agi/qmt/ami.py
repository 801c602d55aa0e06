"""Asterisk's manager interface (AMI): for the `qmt` command, and for the
AGI where no dialplan function answers (a member's PausedReason; whether a
number is a member of a queue whose QUEUE_MEMBER_LIST() Asterisk cut at
its 4 KB buffer). AmiView answers the toggle's questions from AMI,
read-only, so that `qmt check` runs the very same decision as a call.

The classic script opens its own connection, at its first question (one
process per call: nothing to share). `qmt serve` asks on one connection
for all its calls (SharedAmi): a burst of calls into a big queue, each
with a login of its own, swamps Asterisk's manager (authlimit: 50 sessions
not yet logged in); one login does not.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .rules import INTERFACE, Membership, MembershipAnswer, is_valid_queue_name, member_by

if TYPE_CHECKING:
    from .config import Settings

# One AMI message (a response or an event): its fields, the first of a name kept.
Message = dict[str, str]
# The longest line read from the manager: its lines are short ("Key: value");
# a longer one is no Asterisk's, and is not held in memory.
MAX_LINE = 65536


class AmiError(Exception):
    """Asterisk's manager interface cannot be used (down, refused, login)."""


class AmiTurnedAway(AmiError):
    """The manager closed a new connection at once: it had `authlimit` (50)
    connections not yet logged in, as in a burst of calls. A moment later
    it takes one again."""


class QueueQuestions:
    """The queue questions, asked through `action` (Ami's own, or SharedAmi's)."""

    def action(self, name: str, **fields: str) -> list[Message]:
        raise NotImplementedError

    def queue_members(self, queue: str | None = None, member: str | None = None) -> dict[str, list[Message]]:
        """{queue: [member event, ...]} of every queue (or one; or one
        member's) from QueueStatus. A queue without members is present with
        an empty list."""
        fields = dict(([("Queue", queue)] if queue else []) + ([("Member", member)] if member else []))
        queues: dict[str, list[Message]] = {}
        for message in self.action("QueueStatus", **fields)[1:]:
            if message.get("Event") == "QueueParams":
                queues.setdefault(message.get("Queue", ""), [])
            elif message.get("Event") == "QueueMember":
                queues.setdefault(message.get("Queue", ""), []).append(message)
        return queues

    def remove_member(self, queue: str, interface: str) -> tuple[bool, str]:
        """QueueRemove; (True, "") or (False, Asterisk's message)."""
        reply = self.action("QueueRemove", Queue=queue, Interface=interface)[0]
        return reply.get("Response") == "Success", reply.get("Message", "")


def completes(messages: list[Message]) -> bool:
    """True when `messages` (one action's, in order) are its whole answer:
    the response alone, or a list's events up to the one that completes it."""
    listing = messages[0].get("EventList", "").lower() == "start"
    return not listing or messages[-1].get("EventList", "").lower() == "complete"


class Ami(QueueQuestions):
    """A small AMI client, every read bounded by `timeout`: one action at a
    time (action()), or several single-answer actions in one write
    (actions_at_once()). Only what `qmt` and the AGI need: QueueStatus,
    QueueRemove, QueuePause, Getvar; the tests also originate calls with it."""

    def __init__(self, host: str, port: int, username: str, secret: str, timeout: float = 5.0) -> None:
        # Imported here: the AGI imports this module on every call, and connects on few.
        import socket
        self.where = "%s:%d" % (host, port)
        self._sequence = 0
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout)
            # A buffered reader: reading a line costs its own length, however
            # big the answer (1,000 members' QueueStatus is some 20,000 lines).
            self._reader = self._socket.makefile("rb")
        except OSError as exc:
            raise AmiError("cannot reach Asterisk's manager at %s: %s" % (
                self.where, exc.strerror or type(exc).__name__)) from None
        try:
            self._login(username, secret)
        except BaseException:
            self._drop()
            raise

    def _login(self, username: str, secret: str) -> None:
        try:
            self._read_line()                                   # the banner
        except AmiError:
            raise AmiTurnedAway("Asterisk's manager at %s closed a new connection before its banner "
                                "(more new sessions at once than its authlimit)" % self.where) from None
        except OSError as exc:
            raise self._failure(exc) from None
        if not username:
            raise AmiError("no manager account in the config ([ami] username, secret): run install.sh")
        reply = self.action("Login", Username=username, Secret=secret, Events="off")[0]
        if reply.get("Response") != "Success":
            raise AmiError("Asterisk's manager at %s refused login %r: %s" % (
                self.where, username, reply.get("Message", "no reason given")))

    def _read_line(self) -> str:
        """One line without its CRLF. A bare LF inside a value is kept, as
        the manager means it; every read waits at most `timeout`."""
        line = b""
        while not line.endswith(b"\r\n"):
            part = self._reader.readline(MAX_LINE - len(line))
            if not part:
                raise AmiError("Asterisk's manager at %s closed the connection" % self.where)
            line += part
            if len(line) >= MAX_LINE and not line.endswith(b"\r\n"):
                raise AmiError("Asterisk's manager at %s sent a line longer than %d bytes" % (self.where, MAX_LINE))
        return line[:-2].decode("utf-8", "replace")

    def _read_message(self) -> Message:
        message: Message = {}
        while True:
            line = self._read_line()
            if not line:
                if message:
                    return message
                continue
            key, _, value = line.partition(":")
            message.setdefault(key.strip(), value.strip())

    def _frame(self, name: str, fields: dict[str, str]) -> tuple[str, bytes]:
        """(ActionID, the action's bytes). Values are the caller's to check:
        a CR or LF in one would start a header of its own."""
        self._sequence += 1
        action_id = "qmt-%d" % self._sequence
        lines = ["Action: " + name, "ActionID: " + action_id]
        lines += ["%s: %s" % (key, value) for key, value in fields.items()]
        return action_id, ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def action(self, name: str, **fields: str) -> list[Message]:
        """Send one action; its response and, for a list action, its events
        up to the one that completes the list."""
        action_id, data = self._frame(name, fields)
        try:
            self._socket.sendall(data)
            messages = []
            while True:
                message = self._read_message()
                if message.get("ActionID") != action_id:
                    continue
                messages.append(message)
                if completes(messages):
                    return messages
        except OSError as exc:
            raise self._failure(exc) from None

    def actions_at_once(self, actions: Sequence[tuple[str, dict[str, str]]]) -> list[Message]:
        """Several actions that each answer with one response (Originate,
        QueueAdd, ...) in one write, so that they reach Asterisk together;
        their responses, in the order of `actions`."""
        framed = [self._frame(name, fields) for name, fields in actions]
        wanted = {action_id for action_id, _data in framed}
        answers: dict[str, Message] = {}
        try:
            self._socket.sendall(b"".join(data for _id, data in framed))
            while len(answers) < len(wanted):
                message = self._read_message()
                if message.get("ActionID") in wanted:
                    answers.setdefault(message["ActionID"], message)
        except OSError as exc:
            raise self._failure(exc) from None
        return [answers[action_id] for action_id, _data in framed]

    def _failure(self, exc: OSError) -> AmiError:
        return AmiError("Asterisk's manager at %s: %s" % (self.where, exc.strerror or type(exc).__name__))

    def shared(self, send_timeout: float) -> None:
        """Made ready for SharedAmi: reads wait as long as it takes (its
        reader thread waits for whatever comes), a send at most
        `send_timeout` seconds (the kernel's own bound on a blocking socket)."""
        import socket
        import struct
        self._socket.settimeout(None)
        whole = int(send_timeout)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                struct.pack("ll", whole, int((send_timeout - whole) * 1e6)))

    def send(self, name: str, fields: dict[str, str]) -> str:
        """Write one action (the caller serialises writes); its ActionID."""
        action_id, data = self._frame(name, fields)
        try:
            self._socket.sendall(data)
        except OSError as exc:
            raise self._failure(exc) from None
        return action_id

    def next_message(self) -> Message:
        try:
            return self._read_message()
        except OSError as exc:
            raise self._failure(exc) from None

    def shutdown(self) -> None:
        """Logoff, and the socket shut down both ways: a reader blocked on
        it wakes with EOF (it closes the files itself)."""
        import socket
        try:
            self._socket.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def unpause_member(self, queue: str, interface: str, reason: str) -> tuple[bool, str]:
        """QueuePause with Paused false (Asterisk writes UNPAUSE to
        queue_log with `reason`); (True, "") or (False, Asterisk's message)."""
        reply = self.action("QueuePause", Queue=queue, Interface=interface, Paused="false", Reason=reason)[0]
        return reply.get("Response") == "Success", reply.get("Message", "")

    def close(self) -> None:
        try:
            self._socket.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self._drop()

    def _drop(self) -> None:
        self._reader.close()
        self._socket.close()


def ami_from_settings(settings: Settings, timeout: float | None = None) -> Ami:
    return Ami(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret,
               timeout=timeout or settings.ami_timeout)


def connect_within(settings: Settings, deadline: float) -> Ami:
    """A logged-in connection, tried again while the manager turns new
    ones away (a burst of calls), until `deadline` (time.monotonic())."""
    while True:
        try:
            return ami_from_settings(settings, max(0.1, deadline - time.monotonic()))
        except AmiTurnedAway:
            pause = 0.02 + os.getpid() % 64 / 1000      # the burst's calls spread out
            if time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)


def membership_in(members: dict[str, list[Message]], queue: str, interface: str) -> MembershipAnswer:
    """`interface`'s Membership in `queue` from queue_members()'s answer,
    or False when it is not listed. Names in any case, as Asterisk
    compares them; by Location, since the Member filter also matches a
    member NAME (a static member named like our interface is not ours)."""
    for name, listed in members.items():
        for member in listed:
            if name.lower() == queue.lower() and member.get("Location", "").lower() == interface.lower():
                paused = member.get("Paused") == "1"
                return Membership(interface, paused, member.get("PausedReason", "") if paused else None)
    return False


class AmiMembers:
    """The AGI's manager questions, for one call, on one connection opened
    only when a question comes (rare: a paused member, or a queue whose
    member list Asterisk cut), each read bounded by `timeout` seconds (the
    database's, 2 s at least: the watchdog leaves 3 s more for the rest).
    member() asks for one interface in one queue (QueueStatus filtered by
    Queue and Member: a few lines, whatever the queue's size). When the
    manager cannot be asked (down, refused, slow), the answer is None and
    every later question of the call gets None at once: unknown, never
    "not a member". In `qmt serve` the calls share one connection
    (`shared`, a SharedAmi): the same questions, one login for all."""

    ami: QueueQuestions | None

    def __init__(self, settings: Settings, timeout: float | None = None, shared: SharedAmi | None = None) -> None:
        self.settings, self.timeout, self.ami = settings, timeout or settings.ami_timeout, None
        self.shared = shared
        self.problem: str | None = None          # why the manager could not be asked

    def member(self, queue: str, interface: str) -> MembershipAnswer:
        """Membership (with Paused and PausedReason), False, or None."""
        if not is_valid_queue_name(queue) or not INTERFACE.match(interface):
            return None             # only checked text goes on a manager line (a CR/LF would add one)
        if self.problem is not None:
            return None
        try:
            self.ami = self.ami or self.shared or self._connect()
            return membership_in(self.ami.queue_members(queue, interface), queue, interface)
        except (AmiError, OSError) as exc:
            self.problem = str(exc) or type(exc).__name__
            return None

    def _connect(self) -> Ami:
        return connect_within(self.settings, time.monotonic() + self.timeout)

    def paused_reason(self, queue: str, interface: str) -> str | None:
        """A paused member's PausedReason; None when unknown (he is then
        not resumed, and may still leave)."""
        answer = self.member(queue, interface)
        return answer.reason if answer else None

    def close(self) -> None:
        """Closes the call's own connection; a shared one stays open."""
        if isinstance(self.ami, Ami):
            self.ami.close()


class _Session:
    """One logged-in connection of a SharedAmi and the actions waiting on
    it, by ActionID; its reader thread hands each waiter its messages."""

    def __init__(self, ami: Ami, on_end: Callable[[_Session, str], None]) -> None:
        self.ami, self._on_end = ami, on_end
        self.alive = True
        self._lock = threading.Lock()                    # the waiters and the writes
        self._waiting: dict[str, _Waiter] = {}
        threading.Thread(target=self._read, name="qmt-ami-reader", daemon=True).start()

    def ask(self, name: str, fields: dict[str, str], deadline: float) -> list[Message]:
        """The action's messages (as Ami.action), or AmiError once the
        connection fails or `deadline` (time.monotonic()) passes."""
        waiter = _Waiter()
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise AmiError("Asterisk's manager at %s: another action's write is stuck" % self.ami.where)
        try:
            if not self.alive:
                raise AmiError("Asterisk's manager at %s closed the connection" % self.ami.where)
            try:
                action_id = self.ami.send(name, fields)
            except AmiError as exc:
                self.end_locked(str(exc))
                raise
            self._waiting[action_id] = waiter
        finally:
            self._lock.release()
        if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                self._waiting.pop(action_id, None)      # its late answer is dropped
            raise AmiError("Asterisk's manager at %s did not answer %s in time" % (self.ami.where, name))
        if waiter.problem is not None:
            raise AmiError(waiter.problem)
        return waiter.messages

    def end(self, problem: str) -> None:
        with self._lock:
            self.end_locked(problem)

    def _read(self) -> None:
        problem = "Asterisk's manager at %s closed the connection" % self.ami.where
        try:
            while True:
                self._hand_over(self.ami.next_message())
        except (AmiError, OSError, ValueError) as exc:
            problem = str(exc) or problem
        finally:
            self.end(problem)
            self.ami.close()
            self._on_end(self, problem)

    def _hand_over(self, message: Message) -> None:
        """A message to the action that waits for it; others (a late answer
        to an action given up on) are dropped."""
        with self._lock:
            waiter = self._waiting.get(message.get("ActionID", ""))
            if waiter is None:
                return
            waiter.messages.append(message)
            if completes(waiter.messages):
                del self._waiting[message["ActionID"]]
                waiter.done.set()

    def end_locked(self, problem: str = "") -> None:
        """No more actions; every waiting one fails now (the lock held)."""
        if self.alive:
            self.alive = False
            self.ami.shutdown()                         # the reader wakes, and ends
        for waiter in self._waiting.values():
            waiter.problem = problem or "Asterisk's manager at %s: the connection failed" % self.ami.where
            waiter.done.set()
        self._waiting.clear()


class _Waiter:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.problem: str | None = None
        self.done = threading.Event()


class SharedAmi(QueueQuestions):
    """One logged-in manager connection for every call of `qmt serve`,
    opened at the first question. Many threads ask at once: each action
    carries its ActionID, a reader thread hands each response (and a
    list's events) to the thread that asked, every wait bounded by
    `timeout` (the call's manager bound). Events are off at login, so
    nothing comes unasked. A connection that died is reopened by the next
    question; one attempt at a time: the questions meanwhile wait for its
    outcome (within their bound), and after a failed one the questions of
    the next RETRY_SECONDS fail at once, so that a refused login costs
    Asterisk one attempt a second and the log one line, not one per call.
    A failure is an AmiError, as with Ami."""

    RETRY_SECONDS = 1.0

    def __init__(self, settings: Settings, report: Callable[[str], None] | None = None) -> None:
        self.settings, self.timeout = settings, settings.ami_timeout
        self._report = report or (lambda _problem: None)
        self._lock = threading.Condition()
        self._session: _Session | None = None
        self._connecting = self._closed = False
        self._failed: tuple[float, str] | None = None     # (when, why) of the last failed attempt

    def action(self, name: str, **fields: str) -> list[Message]:
        deadline = time.monotonic() + self.timeout
        return self._live_session(deadline).ask(name, fields, deadline)

    def _live_session(self, deadline: float) -> _Session:
        with self._lock:
            if not self._lock.wait_for(lambda: not self._connecting, max(0.0, deadline - time.monotonic())):
                raise AmiError("Asterisk's manager: still connecting after %.1f s" % self.timeout)
            if self._closed:
                raise AmiError("the shared manager connection is closed")
            if self._session is not None and self._session.alive:
                return self._session
            if self._failed is not None and time.monotonic() < self._failed[0] + self.RETRY_SECONDS:
                raise AmiError(self._failed[1])
            self._connecting = True
        session: _Session | None = None
        problem, closed_meanwhile = "", False
        try:
            session = _Session(self._login(deadline), self._ended)
        except AmiError as exc:
            problem = str(exc)
        finally:
            with self._lock:
                self._connecting, closed_meanwhile = False, self._closed
                self._session = None if closed_meanwhile else session
                self._failed = None if session else (time.monotonic(), problem or "no manager connection")
                self._lock.notify_all()
        if session is not None and closed_meanwhile:
            session.end("the shared manager connection is closed")      # closed while it logged in
            raise AmiError("the shared manager connection is closed")
        if session is None:
            self._report("cannot log in: %s" % problem)
            raise AmiError(problem)
        return session

    def _login(self, deadline: float) -> Ami:
        ami = connect_within(self.settings, deadline)
        ami.shared(self.timeout)
        return ami

    def _ended(self, session: _Session, problem: str) -> None:
        with self._lock:
            if self._session is not session or self._closed:
                return
            self._session = None
        self._report("the connection ended (the next question reopens it): %s" % problem)

    def close(self) -> None:
        """At the server's stop: Logoff; every question from now on fails."""
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.end("the shared manager connection is closed")



def member_in_call(member: Message) -> bool:
    """True while a QueueMember is on a call or being rung: InCall, or a
    device state of in use (2), busy (3), ringing (6), ring in use (7), on hold (8)."""
    return member.get("InCall") == "1" or member.get("Status") in ("2", "3", "6", "7", "8")


class AmiView:
    """The toggle's questions to Asterisk answered from one QueueStatus,
    read-only: `qmt check` decides with this where a call uses Channel."""

    env_problem = None
    manager_problem = None          # it IS the manager's answer

    def __init__(self, ami: Ami) -> None:
        # Keyed in lower case: Asterisk finds a queue by its name in any case.
        listed = ami.queue_members()
        self._names = list(listed)
        self._queues = {queue.lower(): members for queue, members in listed.items()}

    def queue_exists(self, queue: str) -> bool:
        return queue.lower() in self._queues

    def membership(self, queue: str, interfaces: Sequence[str]) -> MembershipAnswer:
        members = {member.get("Location", "").lower(): member for member in self._queues.get(queue.lower(), [])}
        interface = member_by(members, interfaces)
        if interface is None:
            return False
        member = members[interface.lower()]
        paused = interface == interfaces[0] and member.get("Paused") == "1"
        return Membership(interface, paused, member.get("PausedReason", "") if paused else None)

    def persisted_queues(self) -> list[str]:
        """Every queue: AMI sees all members, persisted or not."""
        return [queue for queue in self._names if is_valid_queue_name(queue)]
