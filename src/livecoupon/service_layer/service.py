"""The live service: one engine and one store behind a single writer thread.

All engine and store work runs on one dedicated thread, so the engine's room state
needs no locks and the event loop stays free to serve sockets. A batch of posted
events is logged and applied in one transaction: it commits whole, with its
decisions, before the answer is sent and before anything is pushed to a viewer.

The log is the truth. It holds every applied event in the form livecoupon read it,
every operator command, and a mark wherever the service's clock fired timers, all in
the order applied and never going back in time, so a restart and a replay of an
export make the decisions the live service made, coupon ids included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from livecoupon.domain.campaign import Campaign, Limits
from livecoupon.domain.commands import (
    ClockReached,
    Command,
    IssueManually,
    IssueToPresent,
    PauseTrigger,
    StartCampaign,
)
from livecoupon.domain.coupons import Coupon, CouponState, CouponTemplate
from livecoupon.domain.decisions import MANUAL, Decision, DecisionRecord, IssueRequest
from livecoupon.domain.events import (
    CAMPAIGN_WIDE,
    CHECKOUT_ORDERS,
    MERCHANT_REPORTS,
    RESERVED_ROOM,
    Event,
    EventError,
    derived_id,
    parse_event,
    platform_events,
    told_by,
)
from livecoupon.domain.orders import Order
from livecoupon.engine import snapshots
from livecoupon.engine.campaigns import Deployment, DeploymentError, in_order
from livecoupon.engine.clock import ClockMode, ServiceClock
from livecoupon.engine.engine import NO_TIME, Engine
from livecoupon.engine.explaining import explain
from livecoupon.engine.manual_issues import ManualCommand
from livecoupon.errors import LivecouponError, Malformed, NotFound, Refused, key_reused
from livecoupon.logs import log_decisions
from livecoupon.service_layer import publishing
from livecoupon.service_layer.checkout import Checkout
from livecoupon.store.port import Snapshot, Store, collector_paused

log = logging.getLogger("livecoupon")
T = TypeVar("T")
DecisionListener = Callable[[list[Decision]], object]


class RecordedClaims:
    """The claims ledger as a rebuild sees it: every decision comes back as it was recorded, its
    template and propensity included, and none is made anew.

    The store already holds what was decided after the point being re-applied, so deciding again
    could differ (a lottery's eligible users, an offer's price) and, worse, issue coupons the live
    run never issued. What the live run decided is the truth; a request it never decided is no
    decision now either.
    """

    def __init__(self, store: Store, template: Callable[[IssueRequest, str], CouponTemplate | None]) -> None:
        self.store = store
        self.template = template  # (request, name): the template as the live decision had it (Engine.template_named)

    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        known = self.store.recorded([r.coupon_id for r in requests])
        made = []
        for r in requests:
            record = known.get(r.coupon_id)
            if record is None:
                continue
            template = self.template(r, record.template) if record.template is not None else None
            request = replace(r, template=template, propensity=record.propensity)
            made.append(Decision(request, record.reason, record.expires_at))
        return made

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        return self.store.passing_caps(requests, limits)

    def mark_visited(self, campaign: str, user: str) -> bool:
        return self.store.mark_visited(campaign, user)

    def spent(self, campaign: str, trigger: str | None = None) -> int:
        return self.store.spent(campaign, trigger)

    def stock_used(self, campaign: str) -> dict[str, int]:
        return self.store.stock_used(campaign)


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """When the engine's state is written down: after this many log entries, and no more
    often than every ``seconds`` (a snapshot of 100,000 viewers costs the writer tens of ms)."""

    entries: int = 20_000
    seconds: float = 30.0


@dataclass(slots=True)
class Submitted:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)  # with ``counts``, only the first of them
    counts: tuple[int, int] | None = None  # (issued, suppressed) where ``decisions`` is not all of them
    queued: bool = False  # the events are durably on the bus; their decisions follow (SPEC §7's 202)

    @property
    def issued(self) -> int:
        return self.counts[0] if self.counts is not None else sum(1 for d in self.decisions if d.issued)

    @property
    def suppressed(self) -> int:
        return self.counts[1] if self.counts is not None else sum(1 for d in self.decisions if not d.issued)


@dataclass(frozen=True, slots=True)
class GroupedCall:
    """A checkout call waiting for the writer thread, and the event loop's future for its answer."""

    act: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class Answered:
    value: Any


Outcome = tuple["asyncio.Future[Any]", "Answered | BaseException"]


def settle(outcomes: Sequence[Outcome]) -> None:
    """On the event loop: each grouped call's answer, or its exception (unless its caller went away)."""
    for future, outcome in outcomes:
        if future.cancelled():
            continue
        if isinstance(outcome, Answered):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)


class Fenced(RuntimeError):
    """This process no longer holds the partition it was writing (another worker took it over)."""


def admit(batch: Sequence[Any], clock: ServiceClock) -> tuple[list[Event], Submitted]:
    """A platform's events as the service reads them; each bad one rejected on its own, naming its index."""
    events, rejected = platform_events(batch, clock.admit)
    return events, Submitted(accepted=len(events), rejected=rejected)


def net_of_refunds(orders: Iterable[Event], store: Store) -> list[Event]:
    """The orders that stand: one refunded since (at this checkout, or by the merchant's system) leaves the metrics'
    order value, cost and conversions, as the money did (the log keeps the order, not its refund: a ``report`` of an
    export counts it)."""
    refunded = store.refunded_orders()
    return [o for o in orders if o.order_id not in refunded]


def not_in_room() -> Refused:
    """A viewer's chat while the platform does not have them in the room (one machine or scaled out alike)."""
    return Refused("not_in_room", "你还不在这个直播间（请先从直播平台进入） / "
                   "you are not in this room: join it on the live platform first", "room")


def chat_event(room: str, user: str, text: str, now: int) -> dict[str, Any]:
    """A viewer's chat message as an event: their token's user, the service's time, an id of its own."""
    return {"type": "comment", "room": room, "ts": now / 1000, "user": user, "text": text,
            "id": f"chat:{uuid.uuid4().hex}"}


def read_log(entries: Iterable[dict[str, Any]]) -> Iterator[Event]:
    """The log's entries as events. One the reader refuses (a version before this one logged it under looser checks)
    is skipped, with an error in the service's own log, as ``livecoupon replay`` of an export rejects its line and
    goes on: the service still starts, explain still answers, and both agree with the replay."""
    for raw in entries:
        try:
            yield parse_event(raw)
        except EventError as exc:
            log.error("a log entry that cannot be read back is skipped (%s): %.300s", exc, raw)


def check_trigger(campaign: Campaign, trigger: str) -> None:
    if all(t.name != trigger for t in campaign.triggers):
        raise NotFound("unknown_trigger", f"no trigger {trigger!r}", "name")


def check_manual(campaign: Campaign, template: str, room: str, key: str, clock: ServiceClock | None = None) -> None:
    """What an operator's manual issue must name: a template of the campaign, a room, an idempotency key; and, with
    the service's ``clock``, a time to issue at (on the event clock, none before the stream's first event: its
    coupons would be issued at the start of time, expired at once)."""
    if template not in campaign.coupons:
        raise NotFound("unknown_template", f"no coupon template {template!r}", "template")
    if not room:
        raise Malformed("missing_room", "room must not be empty", "room")
    if room == CAMPAIGN_WIDE:
        raise Malformed("reserved_room", RESERVED_ROOM, "room")
    if not campaign.listens_to(room):
        raise NotFound("unknown_room", f"campaign {campaign.campaign!r} does not list room {room!r}", "room")
    if not key:
        raise Malformed("missing_idempotency_key", "idempotency_key must not be empty", "idempotency_key")
    if clock is not None and not clock.started:
        raise Refused("no_time_yet", "the event clock has no time before the stream's first event: send its events "
                      "first (serve --clock event)")


def own_decisions(made: list[Decision]) -> list[Decision]:
    """An operator's issue's own decisions, as its answer gives them (SPEC §5: the same key, the same answer): not
    those of the timers its command fired on its way, which a repeat of the key does not fire again."""
    return [d for d in made if d.request.trigger == MANUAL]


def paid_order_event(order: Order, now: int) -> Event | None:
    """An order paid through checkout, as the ``order`` event of its room (None: no room to count it in;
    checkout gives an order placed outside a room its coupon's)."""
    if order.room is None:
        return None
    return Event("order", order.room, now, derived_id(CHECKOUT_ORDERS, order.order_id), user=order.user,
                 order_id=order.order_id, amount=order.payable, coupon_id=order.coupon_id)


def reported_coupon(store: Store, coupon_id: str) -> Coupon:
    """The coupon a merchant's report names (404 if there is none)."""
    coupon = store.coupon(coupon_id)
    if coupon is None:
        raise NotFound("unknown_coupon", f"no coupon {coupon_id!r}", "coupon_id")
    return coupon


def check_unused_by_another(store: Store, coupon: Coupon, order_id: str) -> None:
    """A merchant's ``coupon.redeemed`` for a coupon another order redeemed (and still holds) is a 409 naming that
    order: one coupon never pays two orders, and a report the ledger answered 200 and then ignored left the shop's
    system and this one apart (a refund of the first order later gave the coupon back, though the second held it).
    The same report again (a webhook redelivered) is answered as before."""
    if (coupon.state is CouponState.REDEEMED and coupon.order_id not in (None, order_id)
            and not any(h.order_id == order_id for h in store.history(coupon.coupon_id))):
        raise Refused("coupon_redeemed", f"优惠券已被订单 {coupon.order_id!r} 核销 / coupon {coupon.coupon_id!r} was "
                      f"redeemed by order {coupon.order_id!r}", "coupon_id")


def merchant_order_event(coupon: Coupon, order_id: str, amount: int, now: int) -> Event:
    """A redemption the merchant's system reports, as an ``order`` event of the coupon's room."""
    return Event("order", coupon.room, now, derived_id(MERCHANT_REPORTS, order_id), user=coupon.user, order_id=order_id,
                 amount=amount, coupon_id=coupon.coupon_id)


def merchant_answer(store: Store, coupon_id: str) -> dict[str, Any]:
    stored = store.coupon(coupon_id)
    return {"coupon_id": coupon_id, "state": stored.state.value if stored else None}


def campaign_in(campaigns: Sequence[str], name: str | None, field: str = "campaign") -> str:
    """The campaign an operator's call is about: ``name``, or the deployment's only one."""
    if name is None or name == "":
        if len(campaigns) == 1:
            return campaigns[0]
        raise NotFound("campaign_required", "this deployment runs several campaigns: name one of "
                       f"{', '.join(campaigns)} in campaign", field)
    if name not in campaigns:
        raise NotFound("unknown_campaign", f"no campaign {name!r} in this deployment ({', '.join(campaigns)})", field)
    return name


def rostered(store: Store, campaigns: Sequence[str]) -> dict[str, int]:
    """The campaigns the deployment's log has been applied to (see :meth:`Roster.roster`); a new deployment's (or
    one logged before campaigns were rostered: one campaign) are the campaigns configured, from the log's first
    entry. A configuration that drops one the deployment ran is refused."""
    with store.unit_of_work():
        roster = store.roster()
        if not roster:
            for name in campaigns:
                store.enrol(name, 0)
            roster = dict.fromkeys(campaigns, 0)
    check_roster(roster, campaigns)
    return roster


def joined_late(roster: dict[str, int]) -> list[str]:
    """The campaigns of a roster started part-way through the log (a ``start`` entry each)."""
    return [name for name, position in roster.items() if position > 0]


def check_roster(roster: Iterable[str], campaigns: Sequence[str]) -> None:
    """:class:`DeploymentError` if the deployment ran a campaign ``campaigns`` leaves out."""
    gone = sorted(set(roster) - set(campaigns))
    if gone:
        raise DeploymentError(f"campaign {', '.join(gone)} ran in this deployment and is missing from --config "
                              "(活动不在配置中): keep its file; a campaign over is one whose schedule has ended")


def addressed(campaigns: Sequence[str], campaign: str | None) -> str | None:
    """The campaign an operator command names in the log: none in a deployment of one campaign (its log reads
    as it always has), else the one asked for (404 where that is missing or unknown)."""
    name = campaign_in(campaigns, campaign)
    return None if len(campaigns) == 1 else name


def recorded(store: Store, campaigns: Sequence[str]) -> tuple[dict[str, DecisionRecord], dict[str, str]]:
    """Every decision of the campaigns by coupon id, and, with several campaigns, each one's campaign. The
    collector stays paused meanwhile: its passes over the records as they pile up cost a third of reading
    490,000 decisions back (1.3 of 3.7 s, measured)."""
    records: dict[str, DecisionRecord] = {}
    owners: dict[str, str] = {}
    with collector_paused():
        for name in campaigns:
            for r in store.decisions(name):
                records[r.coupon_id] = r
                if len(campaigns) > 1:
                    owners[r.coupon_id] = name
    return records, owners


READ_BACK_THREAD = "livecoupon-read-back"  # where a restarting service (or gateway) reads its decisions behind


def merge_read_back(found: dict[str, DecisionRecord], owners: dict[str, str], known: dict[str, DecisionRecord],
                    known_owners: dict[str, str]) -> dict[str, DecisionRecord]:
    """The decisions read back behind a restart (``found``, ``owners``) with those the service learnt meanwhile
    (``known``: made since, or read as well), into ``found`` and ``owners``: those read first, then the others.
    Answers the earlier ones, read back and not known already (``found`` itself when nothing was: no copy)."""
    owners.update(known_owners)
    if not known:
        return found
    earlier = {cid: r for cid, r in found.items() if cid not in known}
    for cid, r in known.items():
        found.setdefault(cid, r)
    return earlier


def by_campaign(records: dict[str, DecisionRecord], owners: dict[str, str],
                campaigns: Sequence[str]) -> dict[str, list[DecisionRecord]]:
    """The decisions so far, each campaign's apart (``owners``: each one's campaign, with several)."""
    if len(campaigns) == 1:
        return {campaigns[0]: list(records.values())}
    grouped: dict[str, list[DecisionRecord]] = {name: [] for name in campaigns}
    for r in records.values():
        grouped[owners[r.coupon_id]].append(r)
    return grouped


class LiveService:
    """The core as the HTTP layer sees it. ``listeners`` hear every committed decision."""

    def __init__(self, campaign: Campaign | Sequence[Campaign], store: Store, clock: ClockMode = ClockMode.WALL,
                 wall: Callable[[], int] | None = None, snapshot_policy: SnapshotPolicy = SnapshotPolicy(),
                 preload_records: bool = True, source: str | dict[str, str] | None = None,
                 starts: bool = True) -> None:
        """``campaign``: the deployment's campaign, or several (engine/campaigns.py); ``starts=False`` (a worker's
        partition): a campaign that joins is started by the ``start`` command a gateway puts on the bus.
        ``preload_records=False`` (a worker's partition): ``records`` holds only what this process decided,
        not every decision of the campaign (the gateways keep those, for the consoles and metrics).
        ``source``: the campaign file's text (each campaign's, by id), the first version an operator's editor
        starts from."""
        ordered = in_order([campaign] if isinstance(campaign, Campaign) else campaign)
        self.bases = {c.campaign: c for c in ordered}  # the files the service started with: each one's version 1
        self.base = ordered[0]  # the console's campaign, where the deployment has several
        self.sources = source if isinstance(source, dict) else {self.base.campaign: source} if source else {}
        self._reported: dict[str, tuple[int, Campaign]] = {}  # (versions published, with_history of them)
        self.store = store
        self.snapshot_policy = snapshot_policy
        self._fingerprint = snapshots.fingerprint(*ordered)
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self.deployment = Deployment(ordered, store)
        self._starts = starts
        self.joined_late: frozenset[str] = frozenset()  # campaigns with a ``start`` entry in the log
        self.clock = ServiceClock(clock, self._latest, *(() if wall is None else (wall,)))
        self.checkout = Checkout(store, self.clock.now, on_paid=self._order_paid,
                                 needs_confirmation=any(c.ledger is not None for c in ordered))
        self.listeners: list[DecisionListener] = []
        self.events_applied = 0
        self.next_due: int | None = None  # the earliest timer, published for the event loop
        self.records: dict[str, DecisionRecord] = {}  # every decision, for metrics (written on the writer)
        self.record_campaigns: dict[str, str] = {}  # with several campaigns: each record's (coupon id -> campaign)
        self._preload_records = preload_records
        # Done once every decision made before the restart is in ``records`` (see ``rebuild``): those, by campaign.
        self.read_back: Future[dict[str, list[DecisionRecord]]] = Future()
        self._repeatable: frozenset[str] = frozenset()  # manual decisions made before, while reading back
        self.orders: list[Event] = []
        self._unannounced: list[Decision] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livecoupon-writer")
        self._reading: threading.Thread | None = None  # reading the decisions back behind a restart
        self._grouped: list[GroupedCall] = []  # checkout calls waiting for the writer (see checkout_in_group)
        self._grouped_lock = threading.Lock()
        # Called last inside every write transaction: a worker proves there that it still holds the
        # partition (raising Fenced if not) and records how far into the bus it has applied.
        self.seal: Callable[[], None] = lambda: None

    def _latest(self) -> int | None:
        return None if self.deployment.time == NO_TIME else self.deployment.time

    @property
    def campaign_names(self) -> list[str]:
        return list(self.bases)

    @property
    def campaign(self) -> Campaign:
        """The version in force, with the coupons and triggers only earlier versions had (reports,
        consoles and popups read it: every decision finds its template). It decides nothing itself.
        Where the deployment runs several campaigns, the first one's (see :meth:`campaign_named`)."""
        return self.campaign_named(self.base.campaign)

    def campaign_named(self, name: str) -> Campaign:
        """:attr:`campaign` of the deployment's campaign ``name`` (its file as started, if it is not running)."""
        engine = self.deployment.engine(name)
        base = self.bases[name]
        published = engine.published if engine is not None else []
        known, reported = self._reported.get(name, (0, base))
        if known != len(published):
            reported = publishing.reported(base, published)
            self._reported[name] = (len(published), reported)
        return reported

    def engine(self, campaign: str | None = None) -> Engine:
        """The engine of ``campaign`` (None: the only one), 404 naming the campaigns where that is unclear."""
        name = campaign_in(self.campaign_names, campaign)
        engine = self.deployment.engine(name)
        if engine is None:
            raise NotFound("campaign_not_started", f"campaign {name!r} has not started yet", "campaign")
        return engine

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def now(self) -> int:
        return self.clock.now()

    # -- on the writer thread -------------------------------------------------------------
    def rebuild(self, behind: bool = False) -> int:
        """After a restart: the latest snapshot, then the log after it; decisions come back as recorded.
        Then every decision is read back into :attr:`records` (the consoles' counters, metrics, webhooks
        owed); ``behind=True`` (a server starting): on a thread of its own while the service already
        decides (:attr:`read_back` says when it is done).

        Returns how many log entries were re-applied (those after the snapshot).
        """
        roster = self._roster()
        after = self._restore(roster)
        count = 0
        deployment = self.deployment
        deployment.store = RecordedClaims(self.store, self._template_named)
        try:
            with self.store.unit_of_work():
                for event in read_log(self.store.events(after)):
                    self._reapply(event)
                    count += 1
        finally:
            deployment.store = self.store
        self._read_back(behind)
        self.events_applied += count
        self._since_snapshot = count
        self._publish()
        joining = [name for name in self.bases if name not in roster]
        if joining and self._starts:
            self._start(joining)
        return count

    def _read_back(self, behind: bool) -> None:
        """Every decision recorded into :attr:`records`, now or (``behind``) from a thread of its own: 10,000,000
        log entries hold ~460,000 decisions, 3 s of reading on SQLite where the engine is ready in ~1 s
        (docs/benchmarks.md). Meanwhile the manual decisions are known, the only ones that can repeat."""
        names, self.read_back = self.campaign_names, Future()
        if not self._preload_records:
            self.read_back.set_result({})
            return
        if not behind:
            self.records, self.record_campaigns = recorded(self.store, names)
            self.read_back.set_result(by_campaign(self.records, self.record_campaigns, names))
            return
        self._repeatable = frozenset(r.coupon_id for name in names for r in self.store.decisions(name, MANUAL))

        def read() -> None:
            done: Callable[[], None]
            try:
                done = partial(self._merge_read_back, *recorded(self.store, names))
            except Exception as exc:  # the store failed, or closed with the service meanwhile
                log.exception("reading the decisions back failed")
                done = partial(self.read_back.set_exception, exc)
            with contextlib.suppress(RuntimeError):  # the service closed meanwhile
                self._writer.submit(done)

        self._reading = threading.Thread(target=read, name=READ_BACK_THREAD, daemon=True)
        self._reading.start()

    def _merge_read_back(self, found: dict[str, DecisionRecord], owners: dict[str, str]) -> None:
        """On the writer: the decisions read back first, then those made since (some may have been read too)."""
        earlier = merge_read_back(found, owners, self.records, self.record_campaigns)
        self.records, self.record_campaigns, self._repeatable = found, owners, frozenset()
        self.read_back.set_result(by_campaign(earlier, owners, self.campaign_names))

    def _roster(self) -> dict[str, int]:
        roster = rostered(self.store, self.campaign_names)
        self.joined_late = frozenset(joined_late(roster))
        return roster

    def check_roster(self) -> None:
        """Refuse a configuration that drops a campaign the deployment ran (:class:`DeploymentError`)."""
        check_roster(self.store.roster(), self.campaign_names)

    def _start(self, names: list[str]) -> None:
        """Campaigns that join a deployment whose log has begun: a ``start`` entry each, from which they apply
        (before the log's first entry, nothing needs to be skipped: they run from it, as the others do)."""
        with self._transaction():
            for name in names:
                if self.store.log_position() == 0:
                    self.store.enrol(name, 0)
                    self.deployment.start(name)
                    continue
                self._apply_logged([Event("operator", CAMPAIGN_WIDE, self.clock.stamp(), command=StartCampaign(name))])
                self.store.enrol(name, self.store.log_position())
                self.joined_late |= {name}
        log.info("campaigns %s joined the deployment", ", ".join(names))

    def _template_named(self, request: IssueRequest, name: str) -> CouponTemplate | None:
        engine = self.deployment.engine(request.campaign)
        return engine.template_named(request, name) if engine is not None else None

    def _restore(self, roster: dict[str, int]) -> int:
        """A fresh deployment in the state of the latest usable snapshot; the log position it is at. A campaign
        started part-way (or not yet) waits for its ``start`` entry."""
        def fresh() -> Deployment:
            return Deployment(list(self.bases.values()), self.store,
                              joining=[name for name in self.bases if roster.get(name, 1) > 0])

        self.orders, self.events_applied = [], 0
        self.deployment = fresh()
        snapshot = self.store.latest_snapshot(self._fingerprint)
        if snapshot is None:
            return 0
        try:
            extra = snapshots.load_deployment(self.deployment, snapshot.body)
        except Exception:  # unreadable: the log from the start is the truth anyway
            log.exception("snapshot at %d unreadable; re-applying the whole log", snapshot.position)
            self.deployment = fresh()
            return 0
        self.orders, self.events_applied = extra["orders"], extra["events_applied"]
        return snapshot.position

    def snapshot(self) -> int:
        """Write the engine's state down at the current log position; returns the position. Sealed like
        any write: a worker that has lost the partition writes no snapshot (its position could be the
        new owner's)."""
        with self._transaction():
            position = self.store.log_position()
            body = snapshots.dump_deployment(self.deployment, {"orders": self.orders,
                                                               "events_applied": self.events_applied})
            self.store.save_snapshot(Snapshot(position, self._fingerprint, body))
        self._since_snapshot, self._snapshot_at = 0, time.monotonic()
        return position

    def _maybe_snapshot(self) -> None:
        policy = self.snapshot_policy
        if self._since_snapshot >= policy.entries and time.monotonic() - self._snapshot_at >= policy.seconds:
            try:
                self.snapshot()
            except Fenced:
                raise
            except Exception:  # a snapshot only shortens restarts: what was committed stands, answer as usual
                log.exception("writing a snapshot failed; the next one will be tried later")
                self._snapshot_at = time.monotonic()

    def submit(self, batch: Sequence[Any]) -> Submitted:
        """Check, log and apply a platform's events; each bad one is rejected on its own."""
        events, result = admit(batch, self.clock)
        result.decisions = self._log_and_apply(events)
        return result

    def viewer_comment(self, room: str, user: str, text: str) -> Submitted:
        """A viewer's own chat message, applied only while the platform has them present in the room (409
        ``not_in_room`` otherwise). SPEC §2 makes a comment from someone not present an implied join: from a viewer
        token, that let accounts the platform never reported (no device, no risk) enter any room of the campaign and
        collect its newcomer and keyword coupons past ``per_device`` and ``max_risk``. Presence is the platform's."""
        # a bad room or text is rejected (no event), as a platform's would be
        events, result = admit([chat_event(room, user, text, self.clock.stamp())], self.clock)
        if events and not self._present(events):
            raise not_in_room()
        result.decisions = self._log_and_apply(events)
        return result

    def _present(self, events: Sequence[Event]) -> bool:
        """Whether each event's user is present in its room, on air, at the time the event would apply at (in some
        campaign's): a gateway's stamp on the event clock may be behind the partition's time, where a viewer who
        left long ago still looked present."""
        now = self.deployment.time
        return all(any((seen := engine.rooms.get(e.room)) is not None and seen.on_air
                       and seen.present(e.user or "", max(e.ts, now))
                       for engine in self.deployment.engines.values()) for e in events)

    def apply_batches(self, batches: Sequence[Sequence[Event]],
                      present_only: Collection[int] = ()) -> list[list[Decision] | None]:
        """Apply batches already checked (by a gateway, SPEC §7) in one transaction; each batch's decisions. On the
        machine's clock every event applies at this machine's time, as :meth:`submit` applies one. A batch whose
        index is in ``present_only`` is a viewer's own chat: applied only if its user is present then, as
        :meth:`viewer_comment` on one machine, else neither logged nor applied (None)."""
        if self.clock.fires_timers:  # the machine's clock, read once
            now = self.clock.now()
            for events in batches:
                for event in events:
                    event.ts = now
        with self._transaction():
            made = [None if index in present_only and not self._present(events) else self._apply_logged(list(events))
                    for index, events in enumerate(batches)]
        self._announce([d for decisions in made if decisions for d in decisions])
        self._maybe_snapshot()
        return made

    def command(self, command: Command, room: str = CAMPAIGN_WIDE) -> list[Decision]:
        """Log and apply an operator command at the service's time."""
        return self._log_and_apply([Event("operator", room, self.clock.stamp(), command=command)])

    def tick(self) -> list[Decision]:
        """Fire the timers the machine's clock has reached, marking the point in the log."""
        due, now = self.deployment.next_timer_due(), self.clock.now()
        if due is None or due > now:
            return []
        return self.command(ClockReached())

    def publish(self, source: str, base_version: int | None = None, note: str = "") -> dict[str, Any]:
        """Publish ``source`` as its campaign's next version (logged as an operator action), unless it
        changes nothing; ``base_version``: the version the editor started from, refused if no longer in force."""
        engine = self.engine(publishing.addressed(source, self.campaign_names))
        plan = engine.plan
        on_air = [name for name, room in engine.rooms.items() if room.on_air]
        answer, command = publishing.prepare(source, base_version, note, plan.version, plan.campaign,
                                             self._source_in_force(engine), on_air)
        if command is not None:
            self.command(command)
        return answer

    def _source_in_force(self, engine: Engine) -> str | None:
        return publishing.source_in_force(self.sources.get(engine.campaign.campaign), engine.published)

    def versions(self, campaign: str | None = None) -> dict[str, Any]:
        """The version in force (its file), every version published, and which version each room on air runs."""
        engine = self.engine(campaign)
        rooms = {name: room.plan.version for name, room in engine.rooms.items() if room.on_air}
        return publishing.history(engine.plan.version, self._source_in_force(engine), engine.published, rooms)

    def in_force_of(self, campaign: str | None) -> Campaign:
        """The version deciding now (no history: what a backtest compares a candidate with)."""
        return self.engine(campaign).campaign

    def pause(self, trigger: str, paused: bool, campaign: str | None = None) -> None:
        name = addressed(self.campaign_names, campaign)
        check_trigger(self.in_force_of(name), trigger)
        self.command(PauseTrigger(trigger, paused, name))

    def issue_manually(self, template: str, users: Sequence[str], room: str, key: str,
                       campaign: str | None = None) -> list[Decision]:
        """An operator issues ``template`` to ``users`` (caps, stock and budget still hold); a key used before
        gets its first answer (see :meth:`_answered_before`)."""
        name = addressed(self.campaign_names, campaign)
        command = IssueManually(template, tuple(dict.fromkeys(users)), room, key, name)
        answered = self._answered_before(command)
        if answered is not None:
            return answered
        check_manual(self.in_force_of(name), template, room, key, self.clock)
        return own_decisions(self.command(command, room))

    def issue_to_present(self, template: str, room: str, key: str, campaign: str | None = None) -> list[Decision]:
        """The operator's "send to everyone present" in ``room``; a key used before gets its first answer, to
        those present then."""
        name = addressed(self.campaign_names, campaign)
        command = IssueToPresent(template, room, key, name)
        answered = self._answered_before(command)
        if answered is not None:
            return answered
        check_manual(self.in_force_of(name), template, room, key)
        state = self.engine(name).rooms.get(room)
        if state is None or not state.on_air:
            raise NotFound("room_off_air", f"room {room!r} is not on air", "room")
        return own_decisions(self.command(command, room))

    def _answered_before(self, command: ManualCommand) -> list[Decision] | None:
        """The decisions the first use of ``command``'s key made, as recorded (None: the key is new to its
        campaign). Nothing is logged or decided again; 422 where the key asked for something else."""
        engine = self.engine(command.campaign)
        first = engine.manual_issues.get(command.key)
        if first is None:
            return None
        if not first.answers(command):
            raise key_reused()
        requests = engine.manual_requests(first, command.key, None)
        return RecordedClaims(self.store, engine.template_named).issue(requests, engine.campaign.limits)

    @property
    def paused(self) -> frozenset[str]:
        """The first campaign's paused triggers (on the writer thread)."""
        return self.paused_of(self.base.campaign)

    def paused_of(self, campaign: str) -> frozenset[str]:
        """The triggers of ``campaign`` an operator has paused."""
        engine = self.deployment.engine(campaign)
        return frozenset(engine.paused) if engine is not None else frozenset()

    def version_of(self, campaign: str) -> int:
        """The version of ``campaign`` in force (read off the writer thread: a look-up, no change)."""
        engine = self.deployment.engine(campaign)
        return engine.plan.version if engine is not None else 1

    def checkout_call(self, act: Callable[..., T], *args: Any) -> T:
        """A checkout call that changes state; an order it pays is applied and logged in the same transaction."""
        with self._transaction():
            answer = act(*args)
        made, self._unannounced = self._unannounced, []
        self._announce(made)
        self._maybe_snapshot()
        return answer

    async def checkout_in_group(self, act: Callable[..., T], *args: Any) -> T:
        """``checkout_call`` from the event loop, with group commit: the calls that arrive while the writer
        is busy wait for it, then run one after the other in one transaction, each in a savepoint of its
        own (a call that raises undoes only its own writes). One commit and one thread hop serve them all;
        each caller still gets its answer only once the whole group has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._grouped_lock:
            self._grouped.append(GroupedCall(act, args, future))
            first = len(self._grouped) == 1
        if first:
            self._writer.submit(self._run_group, loop)
        answer: T = await future
        return answer

    def _run_group(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the writer thread: every checkout call waiting, in one transaction; if that fails as a whole
        (not a call's own refusal), it rolled back, and each call is run again in a transaction of its own."""
        with self._grouped_lock:
            calls, self._grouped = self._grouped, []
        try:
            with self._transaction():
                outcomes = [self._grouped_outcome(call) for call in calls]
            made, self._unannounced = self._unannounced, []
            self._announce(made)
            self._maybe_snapshot()
        except Fenced as exc:
            outcomes = [(call.future, exc) for call in calls]
        except Exception:
            self._unannounced = []
            log.exception("a group of %d checkout calls failed; running them one by one", len(calls))
            outcomes = [self._single_outcome(call) for call in calls]
        loop.call_soon_threadsafe(settle, outcomes)

    def _grouped_outcome(self, call: GroupedCall) -> Outcome:
        """A checkout call refuses by raising before it writes (a key reused, an unknown order): the rest of the
        group stands. One that raises having written spoils the group (:class:`Spoiled`, where the store
        cannot undo its writes alone): the group rolls back and its calls run again one by one."""
        try:
            with self.store.guarded():
                return call.future, Answered(call.act(*call.args))
        except LivecouponError as refusal:
            return call.future, refusal

    def _single_outcome(self, call: GroupedCall) -> Outcome:
        try:
            return call.future, Answered(self.checkout_call(call.act, *call.args))
        except Exception as exc:
            return call.future, exc

    def merchant_reported(self, kind: str, coupon_id: str, order_id: str, amount: int) -> dict[str, Any]:
        """The merchant's coupon system reports that an order redeemed a coupon (logged and applied as an
        ``order`` event of the coupon's room: the ledger and analytics see it), or was refunded."""
        coupon = reported_coupon(self.store, coupon_id)
        if kind == "coupon.refunded":
            with self._transaction():
                back = self.checkout.refunded_elsewhere(order_id, coupon_id, self.clock.now())
            return {"coupon_id": coupon_id, "returned": back}
        check_unused_by_another(self.store, coupon, order_id)
        self._log_and_apply([merchant_order_event(coupon, order_id, amount, self.clock.stamp())])
        return merchant_answer(self.store, coupon_id)

    def _order_paid(self, order: Order) -> None:
        """An order paid through checkout counts as a posted ``order`` event does: for ``dwell``
        and for analytics. Called inside the checkout's transaction."""
        event = paid_order_event(order, self.clock.stamp())
        if event is not None:
            self._unannounced.extend(self._apply_logged([event]))

    def _log_and_apply(self, events: list[Event]) -> list[Decision]:
        with self._transaction():
            decisions = self._apply_logged(events)
        self._announce(decisions)
        self._maybe_snapshot()
        return decisions

    def _apply_logged(self, events: list[Event]) -> list[Decision]:
        """Inside a transaction: apply the events in order, never in the engine's past, and log them as applied."""
        logged, decisions = self.deployment.apply_logged(events, self._heard_order)
        self.store.append_events(logged)
        self.events_applied += len(logged)
        self._since_snapshot += len(logged)
        self._publish()
        return decisions

    def _reapply(self, event: Event) -> None:
        """A logged event again, after a restart: its order kept for analytics, its coupon redeemed already (a
        repeat an earlier version logged is ignored again)."""
        deployment = self.deployment
        if deployment.repeated(event):
            return
        if event.type == "order":
            self.orders.append(event)
        deployment.apply_new(event)

    def _heard_order(self, event: Event) -> None:
        """An ``order`` event, before it applies: kept for analytics, its coupon redeemed at checkout."""
        self.orders.append(event)
        if event.coupon_id is not None and event.user is not None and event.order_id is not None:
            self.checkout.redeemed_elsewhere(event.order_id, event.user, event.coupon_id, event.ts,
                                             told_by(event, MERCHANT_REPORTS))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """The store's unit of work; if it fails, the engine is rebuilt from the log, which rolled back too."""
        try:
            with self.store.unit_of_work():
                yield
                self.seal()
        except Fenced:
            raise  # the partition is another worker's now: this engine is dropped, not rebuilt
        except BaseException:
            log.exception("a transaction failed; rebuilding the engine from the log")
            self.rebuild()
            raise

    def _publish(self) -> None:
        self.next_due = self.deployment.next_timer_due() if self.clock.fires_timers else None

    def logged(self) -> Iterator[dict[str, Any]]:
        """The log as applied, event by event (as ``export`` writes it)."""
        return self.store.events()

    def explain(self, user: str) -> list[dict[str, Any]]:
        """Why ``user`` got what they got, from the log (off the writer thread: it replays the log)."""
        return explain(list(self.bases.values()), read_log(self.logged()), user,
                       joining=self.joined_late)

    def offer_prices(self, campaign: str | None = None) -> dict[str, float | None]:
        """Each offer trigger's budget price λ as its policy last paced it (None: the budget is gone)."""
        engine = self.deployment.engine(campaign or self.base.campaign)
        policies = engine.offers.policies if engine is not None else {}
        return {name: (None if policy.price == float("inf") else round(policy.price, 4))
                for name, policy in policies.items()}

    def metrics_inputs(self, campaign: str | None = None) -> tuple[list[DecisionRecord], list[Event]]:
        """Copies of the decisions (``campaign``'s, where there are several) and orders so far, for metrics
        computed off the writer thread."""
        return self.decisions_of(campaign), net_of_refunds(self.orders, self.store)

    def campaign_versions(self, campaign: str) -> list[tuple[int | None, Campaign]]:
        engine = self.deployment.engine(campaign)
        return [(None, self.bases[campaign]), *((p.at, p.campaign) for p in (engine.published if engine else ()))]

    def decisions_of(self, campaign: str | None = None) -> list[DecisionRecord]:
        """A copy of the decisions so far (``campaign``'s, where there are several), in decision order."""
        if len(self.bases) == 1:
            return list(self.records.values())
        name = campaign_in(self.campaign_names, campaign or self.base.campaign)
        mine = self.record_campaigns
        return [r for r in self.records.values() if mine.get(r.coupon_id) == name]

    def room_summary(self) -> dict[str, dict[str, Any]]:
        now = self.clock.now()
        summary: dict[str, dict[str, Any]] = {}
        several = len(self.bases) > 1
        for campaign, engine in self.deployment.engines.items():
            for name, r in engine.rooms.items():
                known = summary.get(name)
                if known is None or (r.on_air and not known["on_air"]):
                    summary[name] = {"on_air": r.on_air, "present": len(r.present_users(now)) if r.on_air else 0,
                                     "version": r.plan.version}
                    if several:  # each campaign listening to the room (the version is the first's on air)
                        summary[name]["campaigns"] = [*(known["campaigns"] if known else []), campaign]
                elif several:
                    known["campaigns"].append(campaign)
        return summary

    def _announce(self, decisions: list[Decision]) -> None:
        """Tell the listeners of the decisions that are new (a repeated operator key repeats known ones)."""
        records, repeatable = self.records, self._repeatable
        fresh = [d for d in decisions if d.request.coupon_id not in records and d.request.coupon_id not in repeatable]
        for d in fresh:
            records[d.request.coupon_id] = d.record()
        if len(self.bases) > 1:
            self.record_campaigns.update((d.request.coupon_id, d.request.campaign) for d in fresh)
        if not fresh:
            return
        decisions = fresh
        log_decisions(decisions)
        for listener in self.listeners:
            try:
                listener(decisions)
            except Exception:  # a listener must never undo a committed decision
                log.exception("decision listener failed")

    def close(self) -> None:
        """The writer's queue done, then the store closed — once no thread reads it: closing a connection a
        thread is reading through can crash the process (SQLite)."""
        self._writer.shutdown(wait=True)
        if self._reading is not None:
            self._reading.join()
        self.store.close()
