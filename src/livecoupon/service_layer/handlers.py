"""What follows committed decisions (on the event loop, after the commit): each a handler.

The writer thread commits decisions first; only then does the runtime hand them here, so
nothing below can undo a decision, and a failing handler costs only its own effect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from livecoupon.delivery.console import LiveStats, announcements, decision_line
from livecoupon.delivery.messages import coupon_message
from livecoupon.delivery.pacing import Pacer
from livecoupon.delivery.webhooks import payload_for
from livecoupon.delivery.websockets import ConsoleHub
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.coupons import Coupon
from livecoupon.domain.decisions import Decision, coupon_of

FEED_LINES_PER_BATCH = 200  # a 100,000-viewer firing is one announcement, not 100,000 feed lines


@dataclass(frozen=True, slots=True)
class DecisionsCommitted:
    """The event: decisions committed together, and the coupons they put into accounts."""

    decisions: Sequence[Decision]
    issued: Sequence[Coupon]

    @classmethod
    def of(cls, decisions: Sequence[Decision]) -> DecisionsCommitted:
        return cls(decisions, [coupon_of(d) for d in decisions if d.issued])


class Creator(Protocol):
    """The merchant-ledger sender, as the handlers use it."""

    def enqueue(self, coupons: list[Coupon]) -> None: ...


class Notifier(Protocol):
    """The merchant-webhook sender, as the handlers use it."""

    def enqueue(self, payloads: list[dict[str, Any]]) -> None: ...


Handler = Callable[[DecisionsCommitted], None]


Reading = Callable[[str], Campaign]  # a campaign of the deployment, by id, as reports read it now (with publishes)


def counting(stats: Mapping[str, LiveStats]) -> Handler:
    """The consoles' counters, each campaign's apart."""
    def count(event: DecisionsCommitted) -> None:
        for campaign, decisions in _by_campaign(event.decisions).items():
            counters = stats.get(campaign)
            if counters is not None:
                counters.add(d.record() for d in decisions)
    return count


def popping_up(campaign: Reading, pacer: Pacer) -> Handler:
    """Each coupon to its viewer's screens, through the pacer (which never drops one)."""
    def pop_up(event: DecisionsCommitted) -> None:
        for coupon in event.issued:
            pacer.offer(coupon.room, coupon.user, coupon_message(campaign(coupon.campaign), coupon))
    return pop_up


def feeding(campaign: Reading, consoles: ConsoleHub) -> Handler:
    """Decision lines and read-aloud announcements to the consoles watching."""
    def feed(event: DecisionsCommitted) -> None:
        if not len(consoles):
            return
        for d in event.decisions[:FEED_LINES_PER_BATCH]:
            consoles.broadcast(decision_line(d))
        for name, decisions in _by_campaign(event.decisions).items():
            for line in announcements(campaign(name), decisions):
                consoles.broadcast(line)
    return feed


def notifying(campaign: Reading, sender: Notifier) -> Handler:
    """Every issued coupon to the merchant's webhook."""
    def notify(event: DecisionsCommitted) -> None:
        if event.issued:
            sender.enqueue([payload_for(campaign(c.campaign), c) for c in event.issued])
    return notify


def _by_campaign(decisions: Iterable[Decision]) -> dict[str, list[Decision]]:
    """Decisions grouped by campaign, each group in the order given."""
    groups: dict[str, list[Decision]] = {}
    for d in decisions:
        groups.setdefault(d.request.campaign, []).append(d)
    return groups


def creating(ledger: Creator) -> Handler:
    """Every issued coupon to the merchant's coupon system; it pops up once confirmed there."""
    def create(event: DecisionsCommitted) -> None:
        if event.issued:
            ledger.enqueue(list(event.issued))
    return create
