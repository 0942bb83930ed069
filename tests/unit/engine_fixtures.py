"""Shared builders for the engine tests: small campaigns, events and readable outcomes.

Every test goes through the real engine and the real in-memory store; these helpers
only make the scenarios short to write and the expected decisions short to read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from livecoupon.campaign_file import parse_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision
from livecoupon.domain.events import parse_event
from livecoupon.engine.campaigns import Deployment
from livecoupon.engine.engine import Engine
from livecoupon.engine.replay import replay
from livecoupon.store.memory import MemoryStore

CAMPAIGN = "test-camp"

COUPONS = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m}
  c20: {title: twenty, kind: no_threshold, amount: 20, valid_for: 15m}
  c30: {title: thirty, kind: threshold, threshold: 99, amount: 30, valid_for: 1h}
"""

# (time in seconds, user, trigger, coupon template issued or reason suppressed)
Outcome = tuple[float, str, str, str]


def campaign(triggers: str, *, rooms: str = '["r1"]', head: str = "", coupons: str = COUPONS,
             tail: str = "") -> Campaign:
    """A campaign file around ``triggers`` (YAML list items, one per line)."""
    text = f"campaign: {CAMPAIGN}\nrooms: {rooms}\n{head}\n{coupons}\ntriggers:\n{triggers}\n{tail}\n"
    return parse_campaign(text)


def ev(type: str, ts: float, user: str | None = None, room: str = "r1", **extra: Any) -> dict[str, Any]:
    """One event as the platform sends it (``ts`` in seconds)."""
    event: dict[str, Any] = {"type": type, "room": room, "ts": ts}
    if user is not None:
        event["user"] = user
    event.update(extra)
    return event


def watch(user: str, start: float, end: float, *, every: float = 30, room: str = "r1") -> list[dict[str, Any]]:
    """A join at ``start`` and heartbeats every ``every`` seconds up to ``end`` (inclusive)."""
    events = [ev("join", start, user, room)]
    t = start + every
    while t <= end:
        events.append(ev("heartbeat", t, user, room))
        t += every
    return events


def by_ts(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in ``ts`` order (ties keep their order), so scenarios can be written in pieces."""
    return sorted(events, key=lambda e: e["ts"])


def to_lines(events: Iterable[dict[str, Any] | str]) -> list[str]:
    return [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]


def run(camp: Campaign, events: Iterable[dict[str, Any] | str]) -> list[Decision]:
    """Replay ``events`` (in the given file order) and return every decision made."""
    return replay(camp, to_lines(events)).decisions


def outcome(decision: Decision) -> Outcome:
    r = decision.request
    if decision.issued:
        assert r.template is not None
        return (r.at / 1000, r.user, r.trigger, r.template.name)
    assert decision.reason is not None
    return (r.at / 1000, r.user, r.trigger, decision.reason.value)


def outcomes(camp: Campaign, events: Iterable[dict[str, Any] | str]) -> list[Outcome]:
    return [outcome(d) for d in run(camp, events)]


def room_outcomes(camp: Campaign, events: Iterable[dict[str, Any] | str]) -> list[tuple[str, Outcome]]:
    return [(d.request.room, outcome(d)) for d in run(camp, events)]


def record(decision: Decision) -> dict[str, Any]:
    """A decision as a line of ``issued.jsonl`` / ``suppressed.jsonl`` (SPEC §6), ts in ms."""
    r = decision.request
    line: dict[str, Any] = {"ts": r.at, "room": r.room, "user": r.user, "trigger": r.trigger}
    if decision.issued:
        assert r.template is not None
        line.update(coupon=r.template.name, coupon_id=r.coupon_id, expires_at=decision.expires_at)
    else:
        assert decision.reason is not None
        line["reason"] = decision.reason.value
    if r.experiment is not None:
        line.update(experiment=r.experiment, variant=r.variant)
    return line


def records(camp: Campaign, events: Iterable[dict[str, Any] | str]) -> list[dict[str, Any]]:
    return [record(d) for d in run(camp, events)]


def apply_live(camp: Campaign, events: Sequence[dict[str, Any]], store: MemoryStore | None = None,
               ) -> tuple[Engine, list[Decision]]:
    """Apply events one by one as the live service would (no sorting, no clock ticks); the campaign's engine."""
    deployment, made = deploy_live(camp, events, store)
    return deployment.engines[camp.campaign], made


def deploy_live(camp: Campaign, events: Sequence[dict[str, Any]], store: MemoryStore | None = None,
                ) -> tuple[Deployment, list[Decision]]:
    """:func:`apply_live`, answering the deployment (which drops repeated ids, as the service's does)."""
    deployment = Deployment([camp], store if store is not None else MemoryStore())
    made: list[Decision] = []
    for data in events:
        made.extend(deployment.apply(parse_event(data)))
    return deployment, made


def expected_variant(salt: str, user: str, variants: Sequence[tuple[str, float]]) -> str:
    """SPEC §4 step 1, computed here independently of the engine's own code."""
    bucket = int(hashlib.sha256(f"{salt}:{user}".encode()).hexdigest()[:8], 16) / 2**32
    total = sum(weight for _, weight in variants)
    running = 0.0
    for name, weight in variants:
        running += weight
        if bucket < running / total:
            return name
    raise AssertionError("a bucket is always below 1")
