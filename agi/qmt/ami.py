"""Asterisk's manager interface (AMI), for the `qmt` command. AmiView
answers the toggle's questions from AMI, read-only, so that `qmt check`
runs the very same decision as a call.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .rules import Membership, MembershipAnswer, is_valid_queue_name, member_by

if TYPE_CHECKING:
    from .config import Settings

# One AMI message (a response or an event): its fields, the first of a name kept.
Message = dict[str, str]


class AmiError(Exception):
    """Asterisk's manager interface cannot be used (down, refused, login)."""


class Ami:
    """A small AMI client: one action at a time, every read bounded by
    `timeout`. Only what `qmt` needs: QueueStatus, QueueRemove, QueuePause, Getvar."""

    def __init__(self, host: str, port: int, username: str, secret: str, timeout: float = 5.0) -> None:
        self.where = "%s:%d" % (host, port)
        self._buffer = b""
        self._sequence = 0
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout)
            self._read_line()                                   # the banner
        except OSError as exc:
            raise AmiError("cannot reach Asterisk's manager at %s: %s" % (
                self.where, exc.strerror or type(exc).__name__)) from None
        if not username:
            raise AmiError("no manager account in the config ([ami] username, secret): run install.sh")
        reply = self.action("Login", Username=username, Secret=secret, Events="off")[0]
        if reply.get("Response") != "Success":
            raise AmiError("Asterisk's manager at %s refused login %r: %s" % (
                self.where, username, reply.get("Message", "no reason given")))

    def _read_line(self) -> str:
        while b"\r\n" not in self._buffer:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise AmiError("Asterisk's manager at %s closed the connection" % self.where)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

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

    def action(self, name: str, **fields: str) -> list[Message]:
        """Send one action; its response and, for a list action, its events
        up to the one that completes the list."""
        self._sequence += 1
        action_id = "qmt-%d" % self._sequence
        lines = ["Action: " + name, "ActionID: " + action_id]
        lines += ["%s: %s" % (key, value) for key, value in fields.items()]
        try:
            self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
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
            raise AmiError("Asterisk's manager at %s: %s" % (self.where, exc.strerror or type(exc).__name__)) \
                from None

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
            self._socket.close()
        except OSError:
            pass


def ami_from_settings(settings: Settings, timeout: float | None = None) -> Ami:
    return Ami(settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret,
               timeout=timeout or settings.ami_timeout)


def paused_reason(members: dict[str, list[Message]], queue: str, interface: str) -> str | None:
    """PausedReason of `interface` in `queue` from queue_members()'s answer
    (names in any case, as Asterisk compares them); None if not listed."""
    for name, listed in members.items():
        for member in listed:
            if name.lower() == queue.lower() and member.get("Location", "").lower() == interface.lower():
                return member.get("PausedReason", "")
    return None


class AmiPauseReasons:
    """The AGI's source of pause reasons: one manager connection per call,
    opened only when a paused member is met (rare), within `timeout`
    seconds. Any failure gives None: the reason is unknown and the member
    is not resumed (he may still leave)."""

    ami: Ami | None

    def __init__(self, settings: Settings, timeout: float = 2.0) -> None:
        self.settings, self.timeout, self.ami = settings, timeout, None

    def __call__(self, queue: str, interface: str) -> str | None:
        try:
            self.ami = self.ami or ami_from_settings(self.settings, self.timeout)
            return paused_reason(self.ami.queue_members(queue, interface), queue, interface)
        except (AmiError, OSError):
            return None

    def close(self) -> None:
        if self.ami is not None:
            self.ami.close()


def member_in_call(member: Message) -> bool:
    """True while a QueueMember is on a call or being rung: InCall, or a
    device state of in use (2), busy (3), ringing (6), ring in use (7), on hold (8)."""
    return member.get("InCall") == "1" or member.get("Status") in ("2", "3", "6", "7", "8")


class AmiView:
    """The toggle's questions to Asterisk answered from one QueueStatus,
    read-only: `qmt check` decides with this where a call uses Channel."""

    env_problem = None

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
