"""The live service: one engine and one store behind a single writer thread.

All engine and store work runs on one dedicated thread, so the engine's room state
needs no locks and the event loop stays free to serve sockets. A batch of posted
events is logged and applied in one transaction: it commits whole, with its
decisions, before the answer is sent and before anything is pushed to a viewer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from livecoupon.analytics.metrics import campaign_metrics
from livecoupon.checkout import Checkout
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, IssueRequest, coupon_id_for
from livecoupon.domain.events import EventError, parse_event
from livecoupon.engine.clock import EventClock
from livecoupon.engine.engine import Engine
from livecoupon.errors import Malformed, NotFound
from livecoupon.store.port import Store

log = logging.getLogger("livecoupon")
T = TypeVar("T")
DecisionListener = Callable[[list[Decision]], object]


@dataclass(slots=True)
class Submitted:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


class LiveService:
    """The core as the HTTP layer sees it. ``listeners`` hear every committed decision."""

    def __init__(self, campaign: Campaign, store: Store, clock: EventClock | None = None) -> None:
        self.campaign = campaign
        self.store = store
        self.clock = clock or EventClock()
        self.engine = Engine(campaign, store)
        self.checkout = Checkout(store, self.clock.now)
        self.listeners: list[DecisionListener] = []
        self.events_applied = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livecoupon-writer")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    # -- on the writer thread -------------------------------------------------------------
    def rebuild(self) -> int:
        """Re-apply the durable event log after a restart; decisions come back as recorded."""
        count = 0
        with self.store.unit_of_work():
            for raw in self.store.events():
                event = parse_event(raw)
                self.clock.observe(event.ts)
                self.engine.apply(event)
                count += 1
        self.events_applied = count
        return count

    def submit(self, batch: Sequence[Any]) -> Submitted:
        result = Submitted()
        events, raws = [], []
        for index, raw in enumerate(batch):
            try:
                events.append(parse_event(raw))
                raws.append(raw)
            except EventError as exc:
                result.rejected.append({"index": index, "error": str(exc)})
        with self.store.unit_of_work():
            self.store.append_events(raws)
            for event in events:
                self.clock.observe(event.ts)
                result.decisions.extend(self.engine.apply(event))
        result.accepted = len(events)
        self.events_applied += len(events)
        self._announce(result.decisions)
        return result

    def tick(self) -> list[Decision]:
        """Fire the timers the clock has reached."""
        due = self.engine.next_timer_due()
        now = self.clock.now()
        if due is None or due > now:
            return []
        with self.store.unit_of_work():
            decisions = self.engine.advance(now)
        self._announce(decisions)
        return decisions

    def issue_manually(self, template_name: str, users: Sequence[str], room: str, key: str) -> list[Decision]:
        """An operator issues ``template`` to ``users`` (caps, stock and budget still hold)."""
        template = self.campaign.coupons.get(template_name)
        if template is None:
            raise NotFound("unknown_template", f"no coupon template {template_name!r}", "template")
        if not key:
            raise Malformed("missing_idempotency_key", "idempotency_key must not be empty", "idempotency_key")
        room_state = self.engine.rooms.get(room)
        broadcast = room_state.broadcast if room_state is not None and room_state.broadcast is not None else 0
        now, name = self.clock.now(), self.campaign.campaign
        requests = [IssueRequest(coupon_id_for(name, room, broadcast, "manual", key, user), name, room, broadcast,
                                 "manual", user, template, now) for user in dict.fromkeys(users)]
        with self.store.unit_of_work():
            decisions = self.store.issue(requests, self.campaign.limits)
        self._announce(decisions)
        return decisions

    def issue_to_present(self, template_name: str, room: str, key: str) -> list[Decision]:
        """The operator's "send to everyone present" in ``room``."""
        state = self.engine.rooms.get(room)
        if state is None or not state.on_air:
            raise NotFound("room_off_air", f"room {room!r} is not on air", "room")
        return self.issue_manually(template_name, state.present_users(self.clock.now()), room, key)

    def metrics(self) -> dict[str, Any]:
        """SPEC §6's ``metrics.json`` for the campaign so far: the decision log and the logged orders."""
        orders = [parse_event(raw) for raw in self.store.events() if raw.get("type") == "order"]
        return campaign_metrics(self.campaign, list(self.store.decisions(self.campaign.campaign)), orders)

    def room_summary(self) -> dict[str, dict[str, Any]]:
        now = self.clock.now()
        return {name: {"on_air": r.on_air, "present": len(r.present_users(now)) if r.on_air else 0}
                for name, r in self.engine.rooms.items()}

    def _announce(self, decisions: list[Decision]) -> None:
        if not decisions:
            return
        for listener in self.listeners:
            try:
                listener(decisions)
            except Exception:  # a listener must never undo a committed decision
                log.exception("decision listener failed")

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.store.close()
