"""A gateway: the service as the HTTP layer sees it, with the engine on the workers.

It checks events and publishes them, partitioned by room, then waits for the workers to
say each partition's batch is applied (SPEC §7: the answer as on one machine, or 202 after
5 s while a worker fails over). Coupons, quotes and orders it serves straight from the
shared store; a paid order goes on the bus as the room's ``order`` event. Decisions any
worker commits reach it on the push subject, for its viewers' popups and its consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.msg import Msg

from livecoupon.cluster import wire
from livecoupon.cluster.bus import Bus
from livecoupon.cluster.logs import merged_log
from livecoupon.cluster.partitions import DEFAULT_PARTITIONS, log_name, partition_of
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.commands import (
    Command,
    IssueManually,
    IssueToPresent,
    PauseTrigger,
    PublishCampaign,
    StartCampaign,
)
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.domain.events import CAMPAIGN_WIDE, Event, event_json, parse_event
from livecoupon.domain.orders import Order
from livecoupon.engine.campaigns import in_order
from livecoupon.engine.clock import ClockMode, ServiceClock, wall_ms
from livecoupon.engine.engine import Published
from livecoupon.engine.explaining import explain
from livecoupon.engine.manual_issues import ManualCommand, fingerprint
from livecoupon.errors import NotFound, Unavailable, key_reused
from livecoupon.service_layer import publishing
from livecoupon.service_layer.checkout import Checkout
from livecoupon.service_layer.service import (
    READ_BACK_THREAD,
    DecisionListener,
    Submitted,
    addressed,
    admit,
    by_campaign,
    campaign_in,
    chat_event,
    check_manual,
    check_trigger,
    check_unused_by_another,
    joined_late,
    merchant_answer,
    merchant_order_event,
    merge_read_back,
    net_of_refunds,
    not_in_room,
    own_decisions,
    paid_order_event,
    read_log,
    recorded,
    reported_coupon,
    rostered,
)
from livecoupon.store.port import StoredAnswer
from livecoupon.store.postgres import NOT_TOLD, PostgresStore, ToldFacts
from livecoupon.store.relational import RelationalStore

log = logging.getLogger("livecoupon.gateway")
T = TypeVar("T")
ANSWER_WITHIN_S = 5.0  # SPEC §7: then 202, the events durably on the bus
PUBLISH_TIMEOUT_S = 5.0
ROOMS_STALE_S = 5.0  # a worker's room summary is forgotten after this long unheard


def _manual_key(campaign: str, key: str) -> str:
    """Where the store keeps an operator key's claim (keys are each campaign's; checkout's keys start with
    their caller, ``role:user``, never this)."""
    return f"manual-issue\x1f{campaign}\x1f{key}"


@dataclass(slots=True)
class _Waiting:
    """A published batch waiting for its partitions' done notices."""

    parts: int
    done: list[wire.Done] = field(default_factory=list)
    all_done: asyncio.Event = field(default_factory=asyncio.Event)


def facts_told(events: Sequence[Event], listened: Callable[[str], bool], until: int | None) -> dict[str, ToldFacts]:
    """Each user's latest device and risk told in ``events`` of rooms a campaign listens to (SPEC §2; the engine
    learns nothing from the others), and when: at most ``until``, the machine's time on its clock, at which the
    workers apply every event (a platform's stamp may run up to 5 s ahead), for every partition's claims."""
    told: dict[str, ToldFacts] = {}
    for e in events:
        if e.user is None or (e.device is None and e.risk is None) or not listened(e.room):
            continue
        at = e.ts if until is None else min(e.ts, until)
        device, device_at, risk, risk_at = told.get(e.user, NOT_TOLD)
        if e.device is not None and (device_at is None or at >= device_at):
            device, device_at = e.device, at
        if e.risk is not None and (risk_at is None or at >= risk_at):
            risk, risk_at = e.risk, at
        told[e.user] = (device, device_at, risk, risk_at)
    return told


class GatewayService:
    """What the routes call (the same members as LiveService), over the bus and the shared store."""

    def __init__(self, campaign: Campaign | Sequence[Campaign], store: RelationalStore, bus: Bus,
                 clock: ClockMode = ClockMode.WALL, wall: Callable[[], int] = wall_ms,
                 partitions: int = DEFAULT_PARTITIONS, gateway_id: str | None = None, threads: int = 16,
                 source: str | dict[str, str] | None = None) -> None:
        ordered = in_order([campaign] if isinstance(campaign, Campaign) else campaign)
        self.bases = {c.campaign: c for c in ordered}  # each campaign's file as started: its version 1
        self.base = ordered[0]  # the console's campaign, where the deployment runs several
        self.sources = source if isinstance(source, dict) else {self.base.campaign: source} if source else {}
        self.store, self.bus = store, bus
        # each campaign's versions published after its file, read from the logs, and the version in force with
        # every earlier one's coupons and triggers (reports)
        self.histories: dict[str, list[Published]] = {name: [] for name in self.bases}
        self.reports: dict[str, Campaign] = dict(self.bases)
        self.paused_by: dict[str, frozenset[str]] = {}
        self.record_campaigns: dict[str, str] = {}  # with several campaigns: each record's
        self._publishing = threading.Lock()
        self._loading = False  # reading the versions published from the logs
        self.partitions = partitions
        self.id = gateway_id or f"g-{uuid.uuid4().hex[:12]}"
        self._latest_ts: int | None = None
        # an event a little ahead goes on to the bus as stamped, for the retry of a batch to be the same message:
        # the worker applies it at its machine's time (LiveService.apply_batches)
        self.clock = ServiceClock(clock, lambda: self._latest_ts, wall, ahead_now=False)
        self.checkout = Checkout(store, self.clock.now, on_paid=self._order_paid,
                                 needs_confirmation=self.base.ledger is not None)
        self.listeners: list[DecisionListener] = []
        self.confirmed_listeners: list[Callable[[list[str]], Awaitable[None]]] = []
        self.next_due: int | None = None  # the workers fire timers
        self.records: dict[str, DecisionRecord] = {}
        self.read_back: Future[dict[str, list[DecisionRecord]]] = Future()  # done by rebuild
        self._held: list[wire.Push] | None = None  # pushes heard while the decisions read back
        self._tasks: set[asyncio.Task[None]] = set()
        self._rooms: dict[str, tuple[float, wire.Rooms]] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._paid = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="livecoupon-gateway")
        self._reading: threading.Thread | None = None  # reading the decisions back (rebuild)
        self._waiting_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="livecoupon-gateway-bus")
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifetime ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Hear done notices, pushes and room summaries while the app runs."""
        self._loop = asyncio.get_running_loop()
        self._held = []  # until the decisions so far are back (rebuild, which follows)
        subjects = self.bus.subjects
        subscriptions = [await self.bus.listen(subjects.done(self.id), self._on_done),
                         await self.bus.listen(subjects.push, self._on_push),
                         await self.bus.listen(subjects.rooms, self._on_rooms)]
        await self.call(self._start_joining)
        try:
            yield
        finally:
            for sub in subscriptions:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on one of the gateway's threads: the store's (each with its connection), or, for what
        waits on the bus (up to 5 s while a worker fails over), threads of their own, so coupons and
        checkout are served meanwhile."""
        waits = getattr(fn, "__func__", None) in _WAITS_ON_THE_BUS
        return await asyncio.get_running_loop().run_in_executor(self._waiting_pool if waits else self._pool, fn, *args)

    def now(self) -> int:
        return self.clock.now()

    @property
    def events_applied(self) -> int:
        return sum(rooms.events_applied for _, rooms in self._rooms.values())

    def rebuild(self, behind: bool = False) -> int:
        """Nothing to re-apply here (the workers hold the engines): the campaign versions published, then every
        decision so far, for the consoles' counters and to tell the workers' pushes from repeats (a worker taking
        a partition over pushes again what it re-decides). ``behind`` (a gateway starting): the decisions are read
        on a thread of its own while the gateway already serves — 490,000 of them take ~2 s from PostgreSQL — and
        the pushes heard meanwhile wait for them (:attr:`read_back` says when they are back)."""
        self.load_published()
        if not self.clock.fires_timers:  # --clock event: the stream's time is where the partitions' logs end, not
            # this machine's clock (a restarted gateway showed coupons expired, and stamped a command a year ahead)
            last = self.store.last_entries(log_name(p) for p in range(self.partitions))
            self._saw(round(float(entry["ts"]) * 1000) for entry in last)
        self.read_back = Future()
        self._reading = threading.Thread(target=self._read_back, name=READ_BACK_THREAD, daemon=True)
        self._reading.start()
        if not behind:  # (off the event loop, as ``call`` runs it: the decisions are merged on the loop)
            wait([self.read_back])
        return 0

    def _read_back(self) -> None:
        failed: Exception | None = None
        try:
            found, owners = recorded(self.store, self.campaign_names)
        except Exception as exc:  # the store failed: the consoles' counters say so; pushes go on, unfiltered
            log.exception("reading the decisions back failed")
            found, owners, failed = {}, {}, exc
        if self._loop is None:  # not listening: no pushes to hold
            self._merge_read_back(found, owners, failed)
            return
        with contextlib.suppress(RuntimeError):  # the gateway stopped meanwhile
            self._loop.call_soon_threadsafe(self._merge_read_back, found, owners, failed)

    def _merge_read_back(self, found: dict[str, DecisionRecord], owners: dict[str, str],
                         failed: Exception | None) -> None:
        """The decisions read back, then the pushes heard meanwhile, in the order heard (on the event loop)."""
        earlier = merge_read_back(found, owners, self.records, self.record_campaigns)
        self.records, self.record_campaigns = found, owners
        if failed is not None:
            self.read_back.set_exception(failed)
        else:
            self.read_back.set_result(by_campaign(earlier, owners, self.campaign_names))
        if self._held:
            task = asyncio.get_running_loop().create_task(self._take_held())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._held = None

    async def _take_held(self) -> None:
        held = self._held
        while held:  # a push heard while these are taken waits its turn behind them
            try:
                await self._take(held.pop(0))
            except Exception:  # (as the bus logs a push's failure when it is taken at once)
                log.exception("a push heard while the decisions were read back failed")
        self._held = None

    def _start_joining(self) -> None:
        """The campaigns configured that the deployment has not run: a ``start`` command each, on the bus (every
        partition takes it at its place in the bus's order); a deployment's first start starts every one."""
        roster = rostered(self.store, self.campaign_names)
        for name in self.bases:
            if name not in roster:
                self.command(StartCampaign(name))
                self.store.enrol(name, 1)
                log.info("campaign %s joined the deployment", name)

    def load_published(self) -> None:
        """The versions published so far, from the logs (through any gateway, before this one started too)."""
        published: dict[str, dict[str, Published]] = {name: {} for name in self.bases}
        for raw in self.store.operator_events("publish"):
            event = parse_event(raw)
            command = event.command
            if isinstance(command, PublishCampaign) and command.campaign.campaign in published:
                published[command.campaign.campaign].setdefault(raw.get("id") or f"v{command.version}", Published(
                    command.version, event.ts, command.note, command.source, command.campaign))
        with self._publishing:
            for name, versions in published.items():
                history = sorted(versions.values(), key=lambda p: (p.version, p.at))
                if len(history) >= len(self.histories[name]):
                    self._adopt(name, history)

    def _adopt(self, name: str, history: list[Published]) -> None:
        self.histories[name], self.reports[name] = history, publishing.reported(self.bases[name], history)

    @property
    def campaign(self) -> Campaign:
        """The console's campaign as reports read it (see :meth:`campaign_named`)."""
        return self.reports[self.base.campaign]

    @property
    def campaign_names(self) -> list[str]:
        return list(self.bases)

    def campaign_named(self, name: str) -> Campaign:
        return self.reports[name]

    def in_force_of(self, campaign: str | None) -> Campaign:
        name = campaign_in(self.campaign_names, campaign)
        history = self.histories[name]
        return history[-1].campaign if history else self.bases[name]

    def version_of(self, campaign: str) -> int:
        history = self.histories[campaign]
        return history[-1].version if history else 1

    def paused_of(self, campaign: str) -> frozenset[str]:
        return self.paused_by.get(campaign, frozenset())

    def _decisions(self, records: list[DecisionRecord], campaigns: list[str]) -> list[Decision]:
        decisions = wire.decisions_of(self.campaign_named, self.base.campaign, records, campaigns)
        if len(self.bases) > 1:
            self.record_campaigns.update((d.request.coupon_id, d.request.campaign) for d in decisions)
        return decisions

    def tick(self) -> list[Decision]:
        return []

    def close(self) -> None:
        self._waiting_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        if self._reading is not None:  # (its store is closed once nothing reads it, as the service's)
            self._reading.join()
        self.store.close()

    # -- events and commands, over the bus (on a gateway thread) ---------------------------
    def submit(self, batch: Sequence[Any], present_only: bool = False) -> Submitted:
        events, result = admit(batch, self.clock)
        self._saw(e.ts for e in events)
        if isinstance(self.store, PostgresStore):  # before any worker claims for these users (docs/scaling.md)
            until = self.clock.now() if self.clock.fires_timers else None
            in_force = [self.in_force_of(name) for name in self.campaign_names]  # (once a batch, not an event)
            self.store.share_facts(facts_told(events, lambda room: any(c.listens_to(room) for c in in_force), until))
        outcome = self._publish(events, present_only)
        result.decisions, result.counts, result.queued = outcome.decisions, outcome.counts, outcome.queued
        return result

    def viewer_comment(self, room: str, user: str, text: str) -> Submitted:
        """A viewer's own chat message, applied only while the platform has them present in the room (409
        ``not_in_room`` otherwise), as on one machine: who is present is the worker's to know, so the worker applying
        it judges, and says so in its done notice."""
        return self.submit([chat_event(room, user, text, self.clock.stamp())], present_only=True)

    def command(self, command: Command, room: str = CAMPAIGN_WIDE) -> list[Decision]:
        """An operator command, on the bus like an event; its id makes its copies (one per partition, for a
        campaign-wide one, each logged at its partition's time) one command in the merged export."""
        event = Event("operator", room, self.clock.stamp(), f"op:{uuid.uuid4().hex}", command=command)
        return self._publish([event]).decisions

    def publish(self, source: str, base_version: int | None = None, note: str = "") -> dict[str, Any]:
        """As on one machine: the command reaches every partition (each worker's rooms take it at their next
        broadcast). Other gateways learn of it from the workers' room summaries, and read it from the logs."""
        name = publishing.addressed(source, self.campaign_names)
        with self._publishing:
            on_air = [room for room, summary in self.room_summary().items() if summary["on_air"]]
            history = self.histories[name]
            answer, command = publishing.prepare(source, base_version, note, self.version_of(name),
                                                 self.in_force_of(name), self._source_in_force(name), on_air)
            if command is not None:
                self.command(command)
                self._adopt(name, [*history, Published(command.version, self.clock.now(), note, source,
                                                       command.campaign)])
            return answer

    def _source_in_force(self, name: str) -> str | None:
        return publishing.source_in_force(self.sources.get(name), self.histories[name])

    def versions(self, campaign: str | None = None) -> dict[str, Any]:
        name = campaign_in(self.campaign_names, campaign)
        several = len(self.bases) > 1
        rooms = {room: summary["version"] for room, summary in self.room_summary().items()
                 if summary.get("on_air") and "version" in summary
                 and (not several or name in summary.get("campaigns", ()))}
        return publishing.history(self.version_of(name), self._source_in_force(name), self.histories[name], rooms)

    def pause(self, trigger: str, paused: bool, campaign: str | None = None) -> None:
        name = campaign_in(self.campaign_names, campaign)
        check_trigger(self.in_force_of(name), trigger)
        self.command(PauseTrigger(trigger, paused, addressed(self.campaign_names, name)))
        known = self.paused_of(name)
        self.paused_by[name] = known | {trigger} if paused else known - {trigger}

    def issue_manually(self, template: str, users: Sequence[str], room: str, key: str,
                       campaign: str | None = None) -> list[Decision]:
        name = campaign_in(self.campaign_names, campaign)
        command = IssueManually(template, tuple(dict.fromkeys(users)), room, key, addressed(self.campaign_names, name))
        if not self._used_before(name, command):
            check_manual(self.in_force_of(name), template, room, key, self.clock)
            self._claim(name, command)
        return own_decisions(self.command(command, room))

    def issue_to_present(self, template: str, room: str, key: str, campaign: str | None = None) -> list[Decision]:
        name = campaign_in(self.campaign_names, campaign)
        command = IssueToPresent(template, room, key, addressed(self.campaign_names, name))
        if not self._used_before(name, command):
            check_manual(self.in_force_of(name), template, room, key)
            summary = self.room_summary().get(room)
            if summary is None or not summary["on_air"]:
                raise NotFound("room_off_air", f"room {room!r} is not on air", "room")
            self._claim(name, command)
        return own_decisions(self.command(command, room))

    # An operator's key, scaled out: the engines that remember it are the workers', so the gateways claim each key
    # for its first request in the shared store, and refuse another request under it before it reaches the bus.
    # The same request goes on: the worker's engine answers it with the first use's decisions.
    def _used_before(self, campaign: str, command: ManualCommand) -> bool:
        """True if ``command``'s key was claimed for this very request; 422 if for another."""
        claimed = self.store.recall(_manual_key(campaign, command.key))
        if claimed is not None and claimed.fingerprint != fingerprint(command):
            raise key_reused()
        return claimed is not None

    def _claim(self, campaign: str, command: ManualCommand) -> None:
        """Claim the key for ``command`` (the first claim wins, whichever gateway makes it); 422 if another
        request claimed it meanwhile."""
        key, mine = _manual_key(campaign, command.key), fingerprint(command)
        with self.store.unit_of_work():
            self.store.remember(key, StoredAnswer(mine, 200, {}))
            claimed = self.store.recall(key)
        if claimed is not None and claimed.fingerprint != mine:
            raise key_reused()

    async def checkout_in_group(self, act: Callable[..., T], *args: Any) -> T:
        """Each call in its own transaction: the gateway's threads share the store, with no writer to group on."""
        return await self.call(self.checkout_call, act, *args)

    def checkout_call(self, act: Callable[..., T], *args: Any) -> T:
        """A checkout call on the shared store; an order it pays goes on the bus once committed."""
        self._paid.events = []
        with self.store.unit_of_work():
            answer = act(*args)
        paid, self._paid.events = self._paid.events, []
        if paid:
            try:
                self._publish(paid)
            except Unavailable:  # the payment stands; its order event follows once the bus is back
                assert self._loop is not None
                asyncio.run_coroutine_threadsafe(self._publish_eventually(paid), self._loop)
        return answer

    async def _publish_eventually(self, events: Sequence[Event]) -> None:
        for pause in (0.5, 1, 2, 4, 8, 15, 30, 30, 30, 30, 60, 60, 60, 60, 60):
            await asyncio.sleep(pause)
            with contextlib.suppress(Unavailable):
                await self._publish_and_wait(events)
                return
        log.error("gave up publishing %d paid-order events after 10 minutes", len(events))

    def _order_paid(self, order: Order) -> None:
        event = paid_order_event(order, self.clock.stamp())
        if event is not None:
            self._paid.events.append(event)

    def merchant_reported(self, kind: str, coupon_id: str, order_id: str, amount: int) -> dict[str, Any]:
        coupon = reported_coupon(self.store, coupon_id)
        if kind == "coupon.refunded":
            with self.store.unit_of_work():
                back = self.checkout.refunded_elsewhere(order_id, coupon_id, self.clock.now())
            return {"coupon_id": coupon_id, "returned": back}
        check_unused_by_another(self.store, coupon, order_id)
        self._publish([merchant_order_event(coupon, order_id, amount, self.clock.stamp())])
        return merchant_answer(self.store, coupon_id)

    def _saw(self, times: Iterable[int]) -> None:
        """The stream's time as this gateway has seen it (``--clock event``): never going back."""
        latest = max(times, default=None)
        if latest is not None and (self._latest_ts is None or latest > self._latest_ts):
            self._latest_ts = latest

    def _publish(self, events: Sequence[Event], present_only: bool = False) -> Submitted:
        """Each partition's events as one message; then wait (at most 5 s) until every one is applied.
        ``present_only``: the workers apply the events only if their users are present (a viewer's chat)."""
        if not events:
            return Submitted()
        loop = self._loop
        if loop is None:
            raise RuntimeError("the gateway is not listening to the bus")
        future = asyncio.run_coroutine_threadsafe(self._publish_and_wait(events, present_only), loop)
        return future.result()

    async def _publish_and_wait(self, events: Sequence[Event], present_only: bool = False) -> Submitted:
        groups: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            targets = range(self.partitions) if event.room == CAMPAIGN_WIDE else (
                partition_of(event.room, self.partitions),)
            for p in targets:
                groups.setdefault(p, []).append(event_json(event))
        batch = uuid.uuid4().hex
        waiting = self._waiting[batch] = _Waiting(len(groups))
        headers = {"lc-gateway": self.id, "lc-batch": batch} | ({wire.PRESENT_ONLY: "1"} if present_only else {})
        try:
            try:
                await asyncio.gather(*(self.bus.publish_events(batch, p, wire.encode(group), headers,
                                                               PUBLISH_TIMEOUT_S) for p, group in groups.items()))
            except Exception as exc:  # NATS away or JetStream not answering: the client retries (a part that did
                # get stored is stored again: the engine ignores an event whose id its room has seen, SPEC §2)
                log.warning("publishing a batch failed: %s", exc)
                raise Unavailable("事件总线暂不可用，请重试 / the event bus did not take the events; retry "
                                  "(an event with an id is never applied twice)") from None
            if len(waiting.done) < waiting.parts:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ANSWER_WITHIN_S):
                        await waiting.all_done.wait()
        finally:
            self._waiting.pop(batch, None)
        if any(d.not_in_room for d in waiting.done):
            raise not_in_room()
        result = Submitted(accepted=len(events))
        caught_up = len(waiting.done) >= waiting.parts
        if not caught_up or any(d.replayed for d in waiting.done):
            result.queued = True
            return result
        result.counts = (sum(d.issued for d in waiting.done), sum(d.suppressed for d in waiting.done))
        by_partition = sorted(waiting.done, key=lambda d: d.partition)
        result.decisions = [decision for d in by_partition for decision in self._decisions(d.records, d.campaigns)]
        return result

    # -- what the workers say (on the event loop) ------------------------------------------
    async def _on_done(self, msg: Msg) -> None:
        done = wire.decode_done(msg.data)
        waiting = self._waiting.get(done.batch)
        if waiting is None or any(d.partition == done.partition for d in waiting.done):
            return
        waiting.done.append(done)
        if len(waiting.done) >= waiting.parts:
            waiting.all_done.set()

    async def _on_push(self, msg: Msg) -> None:
        push = wire.decode_push(msg.data)
        if self._held is not None:  # the decisions so far are still reading back
            self._held.append(push)
        else:
            await self._take(push)

    async def _take(self, push: wire.Push) -> None:
        if push.records:
            known = self.records
            fresh = [i for i, r in enumerate(push.records) if r.coupon_id not in known]
            for i in fresh:
                known[push.records[i].coupon_id] = push.records[i]
            if fresh:
                records = [push.records[i] for i in fresh]
                self._saw(r.at for r in records)
                decisions = self._decisions(records, [push.campaigns[i] for i in fresh] if push.campaigns else [])
                for listener in self.listeners:
                    listener(decisions)
        if push.confirmed:
            for confirmed in self.confirmed_listeners:
                await confirmed(push.confirmed)

    async def _on_rooms(self, msg: Msg) -> None:
        rooms = wire.decode_rooms(msg.data)
        now = time.monotonic()
        self._rooms[rooms.worker] = (now, rooms)
        for worker, (heard, _) in list(self._rooms.items()):
            if now - heard > ROOMS_STALE_S:
                del self._rooms[worker]
        self.paused_by = {name: frozenset(p for _, r in self._rooms.values() for p in r.paused.get(name, ()))
                          for name in self.bases}
        newer = any(version > self.version_of(name) for name, version in rooms.versions.items() if name in self.bases)
        if newer and not self._loading:  # published through another gateway
            self._loading = True
            asyncio.get_running_loop().run_in_executor(self._pool, self._load_published_in_background)

    def _load_published_in_background(self) -> None:
        try:
            self.load_published()
        except Exception:  # the store away for a moment: the next room summary tries again
            log.exception("reading the campaign versions published from the logs failed")
        finally:
            self._loading = False

    # -- reading -----------------------------------------------------------------------------
    def room_summary(self) -> dict[str, dict[str, Any]]:
        summary: dict[str, dict[str, Any]] = {}
        for _, rooms in self._rooms.values():
            summary |= rooms.rooms
        return summary

    def logged(self) -> Iterator[dict[str, Any]]:
        """Every partition's log as one (cluster/logs.py)."""
        return merged_log(self.store)

    def explain(self, user: str) -> list[dict[str, Any]]:
        """Why ``user`` got what they got: the decisions as the workers made them (the store's), and the firings that
        reached them without one from a replay of the merged log (where rooms competed for shared limits, a replay
        decides otherwise than the partitions did: docs/scaling.md; it explained coupons the user never got)."""
        mine = [wire.decision_of(self.campaign_named(self.record_campaigns.get(r.coupon_id, self.base.campaign)), r)
                for r in self.store.decisions(user=user)]
        return explain(list(self.bases.values()), read_log(self.logged()), user, joined_late(self.store.roster()),
                       recorded=mine)

    def offer_prices(self, campaign: str | None = None) -> dict[str, float | None]:
        return {}  # the policies live in the workers' engines, one per partition

    def metrics_inputs(self, campaign: str | None = None) -> tuple[list[DecisionRecord], list[Event]]:
        orders = net_of_refunds((e for e in read_log(self.logged()) if e.type == "order"), self.store)
        return self.decisions_of(campaign), orders

    def campaign_versions(self, campaign: str) -> list[tuple[int | None, Campaign]]:
        return [(None, self.bases[campaign]), *((p.at, p.campaign) for p in self.histories[campaign])]

    def decisions_of(self, campaign: str | None = None) -> list[DecisionRecord]:
        return list(self.store.decisions(campaign_in(self.campaign_names, campaign or self.base.campaign)))


_WAITS_ON_THE_BUS = {GatewayService.submit, GatewayService.command, GatewayService.pause,
                     GatewayService.issue_manually, GatewayService.issue_to_present, GatewayService.publish,
                     GatewayService.merchant_reported}
