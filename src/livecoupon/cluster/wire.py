"""What travels between gateways and workers, as JSON (msgspec): nothing on the bus is executable."""

from __future__ import annotations

from typing import Any

import msgspec

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, DecisionRecord, IssueRequest

DONE_RECORDS = 1_000  # a done message lists this many decisions and counts the rest (as the answer does)
PUSH_RECORDS = 2_000  # decisions per push message: a 100,000-viewer firing is 50 messages, under NATS' 1 MB


class Done(msgspec.Struct, omit_defaults=True):
    """A worker applied one published batch (or found it applied already: ``replayed``)."""

    batch: str
    partition: int
    issued: int = 0
    suppressed: int = 0
    records: list[DecisionRecord] = []
    replayed: bool = False


class Push(msgspec.Struct, omit_defaults=True):
    """Committed decisions, and coupons the merchant's system confirmed (to pop up now)."""

    records: list[DecisionRecord] = []
    confirmed: list[str] = []


class Rooms(msgspec.Struct):
    """A worker's rooms (on air, viewers present) and the triggers paused, once a second."""

    worker: str
    rooms: dict[str, dict[str, Any]]
    paused: list[str]
    events_applied: int
    version: int = 1  # the campaign version in force on the worker (the highest of its partitions)


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


def done_of(batch: str, partition: int, made: list[Decision]) -> Done:
    issued = sum(1 for d in made if d.issued)
    return Done(batch, partition, issued, len(made) - issued, [d.record() for d in made[:DONE_RECORDS]])


def decision_of(campaign: Campaign, record: DecisionRecord) -> Decision:
    """A decision as a gateway hears of it: enough for the popup, the console line and the counters."""
    template = campaign.coupons.get(record.template) if record.template is not None else None
    request = IssueRequest(record.coupon_id, campaign.campaign, record.room, record.broadcast, record.trigger,
                           record.user, template, record.at, record.experiment, record.variant,
                           propensity=record.propensity)
    return Decision(request, record.reason, record.expires_at)
