"""What travels between gateways and workers, as JSON (msgspec): nothing on the bus is executable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, DecisionRecord, IssueRequest

DONE_RECORDS = 1_000  # a done message lists this many decisions and counts the rest (as the answer does)
PRESENT_ONLY = "lc-present-only"  # the header of a batch applied only if its users are present (a viewer's chat)
PUSH_RECORDS = 2_000  # decisions per push message: a 100,000-viewer firing is 50 messages, under NATS' 1 MB


class Done(msgspec.Struct, omit_defaults=True):
    """A worker applied one published batch (or found it applied already: ``replayed``)."""

    batch: str
    partition: int
    issued: int = 0
    suppressed: int = 0
    records: list[DecisionRecord] = []
    campaigns: list[str] = []  # each record's campaign, in a deployment of several (else empty)
    replayed: bool = False
    not_in_room: bool = False  # a viewer's own chat whose user was not present: neither logged nor applied


class Push(msgspec.Struct, omit_defaults=True):
    """Committed decisions, and coupons the merchant's system confirmed (to pop up now)."""

    records: list[DecisionRecord] = []
    campaigns: list[str] = []  # each record's campaign, in a deployment of several (else empty)
    confirmed: list[str] = []


class Rooms(msgspec.Struct):
    """A worker's rooms (on air, viewers present) and the triggers paused, once a second."""

    worker: str
    rooms: dict[str, dict[str, Any]]
    paused: dict[str, list[str]]  # by campaign
    events_applied: int
    versions: dict[str, int] = {}  # each campaign's version in force on the worker (the highest of its partitions)


_encoder = msgspec.json.Encoder()
_done = msgspec.json.Decoder(Done)
_push = msgspec.json.Decoder(Push)
_rooms = msgspec.json.Decoder(Rooms)
_events = msgspec.json.Decoder(list[dict[str, Any]])


def encode(message: Any) -> bytes:
    return _encoder.encode(message)


def decode_done(data: bytes) -> Done:
    return _done.decode(data)


def decode_push(data: bytes) -> Push:
    return _push.decode(data)


def decode_rooms(data: bytes) -> Rooms:
    return _rooms.decode(data)


def decode_events(data: bytes) -> list[dict[str, Any]]:
    return _events.decode(data)


def done_of(batch: str, partition: int, made: list[Decision] | None, several: bool = False) -> Done:
    """A batch's done notice: its decisions (None: a viewer's chat not applied, its user not present)."""
    if made is None:
        return Done(batch, partition, not_in_room=True)
    issued = sum(1 for d in made if d.issued)
    shown = made[:DONE_RECORDS]
    return Done(batch, partition, issued, len(made) - issued, [d.record() for d in shown], campaigns_of(shown, several))


def campaigns_of(made: list[Decision], several: bool) -> list[str]:
    """What travels beside the records of ``made``: each one's campaign where the deployment runs several."""
    return [d.request.campaign for d in made] if several else []


def decisions_of(reading: Callable[[str], Campaign], only: str, records: list[DecisionRecord],
                 campaigns: list[str]) -> list[Decision]:
    """The decisions of a Done or Push message: each record with its campaign (``only``: where none is given)."""
    names = campaigns if len(campaigns) == len(records) else [only] * len(records)
    return [decision_of(reading(name), r) for name, r in zip(names, records, strict=True)]


def decision_of(campaign: Campaign, record: DecisionRecord) -> Decision:
    """A decision as a gateway hears of it: enough for the popup, the console line and the counters."""
    template = campaign.coupons.get(record.template) if record.template is not None else None
    request = IssueRequest(record.coupon_id, campaign.campaign, record.room, record.broadcast, record.trigger,
                           record.user, template, record.at, record.experiment, record.variant,
                           propensity=record.propensity)
    return Decision(request, record.reason, record.expires_at)
