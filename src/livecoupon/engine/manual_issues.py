"""An operator's manual issues by idempotency key (SPEC §5: the same key always gets the same answer).

The first use of a key is remembered with whom it reached and in which broadcast, so a retry is answered
with the same coupons even when other viewers are present now, a new broadcast has begun or the service
restarted; another request under the key is refused before it is logged (``idempotency_key_reused``), and
where one reaches the log regardless (scaled out, or a log written before the rule) it decides nothing.
The engine remembers its campaign's keys (keys are per campaign) in its snapshots, and a replay of the log
remembers them alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from livecoupon.domain.commands import IssueManually, IssueToPresent

ManualCommand = IssueManually | IssueToPresent


@dataclass(frozen=True, slots=True)
class ManualIssue:
    """The first request made under an operator's key, and whom it reached."""

    action: str  # "issue" (a list of users) or "issue_present" (everyone present), as the log names them
    template: str
    room: str
    users: tuple[str, ...]  # whom it was decided for, in order: the users named, or those present then
    broadcast: int  # the room's broadcast then (0: none), which its coupon ids carry
    at: int  # ms: when it was decided

    @classmethod
    def first(cls, command: ManualCommand, users: tuple[str, ...], broadcast: int, at: int) -> ManualIssue:
        return cls(_asks(command)[0], command.template, command.room, users, broadcast, at)

    def answers(self, command: ManualCommand) -> bool:
        """Whether ``command`` asks what this first use asked (then it gets the same answer)."""
        named = self.users if self.action == _ISSUE else None  # those present then were not asked for
        return _asks(command) == (self.action, self.template, self.room, named)


def fingerprint(command: ManualCommand) -> str:
    """What ``command`` asks, as :meth:`ManualIssue.answers` compares it, hashed: where there is no engine to
    remember the keys (a gateway, scaled out), the store keeps this under the key."""
    return hashlib.sha256(json.dumps(_asks(command), ensure_ascii=False).encode()).hexdigest()


_ISSUE = "issue"


def _asks(command: ManualCommand) -> tuple[str, str, str, tuple[str, ...] | None]:
    """What a manual command asks: its action, template, room and, where it names them, its users (each once)."""
    if isinstance(command, IssueManually):
        return _ISSUE, command.template, command.room, tuple(dict.fromkeys(command.users))
    return "issue_present", command.template, command.room, None
