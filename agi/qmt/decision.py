"""The decision one call would get, asked of Asterisk and the allowlist.

Shared by the AGI script (qmt.toggle, asking through the AGI channel) and
`qmt check` (qmt.cli, asking through a read-only AMI view), so that neither
entry point imports the other and both decide by the same steps.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .dialplan import BREAK_ACTION
from .rules import (
    ERROR,
    Decision,
    Membership,
    MembershipAnswer,
    candidate_queues,
    decide_all_queues,
    decide_break,
    decide_one_queue,
    is_valid_queue_name,
)

if TYPE_CHECKING:
    from .allowlist import AllowlistRead
    from .config import Settings


class Asterisk(Protocol):
    """What the decision asks Asterisk: pbx.Channel over AGI, ami.AmiView over AMI."""

    def queue_exists(self, queue: str) -> bool: ...

    def membership(self, queue: str, interfaces: Sequence[str]) -> MembershipAnswer: ...

    def persisted_queues(self) -> list[str]: ...

    @property
    def manager_problem(self) -> str | None:
        """Why the manager interface could not be asked, if it was not."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def decide(asterisk: Asterisk, settings: Settings, number: str, queue: str, deadline: float,
           allowlist: AllowlistRead, action: str = "") -> Decision:
    """Ask Asterisk (`asterisk`: the AGI Channel, or a read-only AmiView)
    and the allowlist (an AllowlistRead, already reading, so that it
    overlaps the questions to Asterisk); return the Decision. `action` is
    '' (the toggle) or BREAK_ACTION (a break, in all the member's queues)."""
    decision = decide_by_steps(asterisk, settings, number, queue, deadline, allowlist, action)
    if decision.reason == "member_list_too_long" and asterisk.manager_problem:
        # The admin's clue: the manager down, the account refused, a timeout.
        return Decision(decision.state, decision.reason, decision.grants,
                        detail="%s (%s)" % (decision.detail, asterisk.manager_problem),
                        interfaces=decision.interfaces)
    return decision


def decide_by_steps(asterisk: Asterisk, settings: Settings, number: str, queue: str, deadline: float,
                    allowlist: AllowlistRead, action: str = "") -> Decision:
    if queue and not is_valid_queue_name(queue):
        return Decision(ERROR, "bad_queue_argument")
    if action not in ("", BREAK_ACTION) or (action and queue):
        return Decision(ERROR, "bad_action_argument")
    interfaces = settings.interfaces_for(number)
    if queue:
        exists = asterisk.queue_exists(queue)
        membership = exists and asterisk.membership(queue, interfaces)
        return decide_one_queue(number, queue, exists, membership, lambda: allowlist.lookup(deadline))
    known = settings.managed_queues + asterisk.persisted_queues()
    grants, failure = allowlist.lookup(deadline)
    existing: set[str]
    memberships: dict[str, Membership]
    unsure: list[str]
    existing, memberships, unsure = set(), {}, []
    for candidate in candidate_queues(grants, known):
        if asterisk.queue_exists(candidate):
            existing.add(candidate)
            membership = asterisk.membership(candidate, interfaces)
            if membership:
                memberships[candidate] = membership
            elif membership is None:
                unsure.append(candidate)
    if action == BREAK_ACTION:
        return decide_break(number, memberships, unsure, lambda: (grants, failure))
    return decide_all_queues(number, grants, failure, existing, memberships, unsure)
