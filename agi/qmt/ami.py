"""Asterisk's manager interface (AMI): for the `qmt` command, and for the
AGI where no dialplan function answers (a member's PausedReason; whether a
number is a member of a queue whose QUEUE_MEMBER_LIST() Asterisk cut at
its 4 KB buffer). AmiView answers the toggle's questions from AMI,
read-only, so that `qmt check` runs the very same decision as a call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
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


class Ami:
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
                listing = messages[0].get("EventList", "").lower() == "start"
                if not listing or message.get("EventList", "").lower() == "complete":
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
    "not a member"."""

    ami: Ami | None

    def __init__(self, settings: Settings, timeout: float | None = None) -> None:
        self.settings, self.timeout, self.ami = settings, timeout or settings.ami_timeout, None
        self.problem: str | None = None          # why the manager could not be asked

    def member(self, queue: str, interface: str) -> MembershipAnswer:
        """Membership (with Paused and PausedReason), False, or None."""
        if not is_valid_queue_name(queue) or not INTERFACE.match(interface):
            return None             # only checked text goes on a manager line (a CR/LF would add one)
        if self.problem is not None:
            return None
        try:
            self.ami = self.ami or self._connect()
            return membership_in(self.ami.queue_members(queue, interface), queue, interface)
        except (AmiError, OSError) as exc:
            self.problem = str(exc) or type(exc).__name__
            return None

    def _connect(self) -> Ami:
        """A logged-in connection, tried again while the manager turns new
        ones away (a burst of calls), for up to `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return ami_from_settings(self.settings, max(0.1, deadline - time.monotonic()))
            except AmiTurnedAway:
                pause = 0.02 + os.getpid() % 64 / 1000      # the burst's calls spread out
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)

    def paused_reason(self, queue: str, interface: str) -> str | None:
        """A paused member's PausedReason; None when unknown (he is then
        not resumed, and may still leave)."""
        answer = self.member(queue, interface)
        return answer.reason if answer else None

    def close(self) -> None:
        if self.ami is not None:
            self.ami.close()


# The name qmt.toggle knows it by (it began as the source of pause reasons only).
AmiPauseReasons = AmiMembers


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
