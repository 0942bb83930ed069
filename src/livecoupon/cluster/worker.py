"""A worker: applies the partitions it holds a lease on, each through its own LiveService.

Per partition: the engine is rebuilt from the partition's latest snapshot and its log in
PostgreSQL, then follows the bus from the stream sequence the log holds. Each round takes
the batches waiting, applies them in one transaction sealed by the lease (see leases.py),
tells each batch's gateway it is done, and pushes the decisions to every gateway.

With merchant webhooks on, each partition's sender posts the coupons that partition issues: its
decisions are the outbox, and what became of each webhook is kept in PostgreSQL under the
partition's log, so the partition's next owner sends whatever is still owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import FastAPI, Header, Response
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from livecoupon.api import errors
from livecoupon.api.auth import Credentials, Role, require
from livecoupon.cluster import wire
from livecoupon.cluster.bus import Bus, header
from livecoupon.cluster.leases import LEASE_SECONDS, RENEW_SECONDS, Lease, LeaseBook, PartitionStore
from livecoupon.cluster.partitions import DEFAULT_PARTITIONS, log_name, partition_of
from livecoupon.delivery.ledger import LedgerSender
from livecoupon.delivery.webhooks import WebhookConfig, WebhookSender, payload_for
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.coupons import Coupon
from livecoupon.domain.decisions import Decision, coupon_of
from livecoupon.domain.events import Event, EventError, parse_event
from livecoupon.engine.clock import ClockMode
from livecoupon.service_layer.service import Fenced, LiveService, SnapshotPolicy
from livecoupon.store.postgres import PostgresStore
from livecoupon.store.postgres_webhooks import PostgresWebhookOutcomes
from livecoupon.tasks import cancel_quietly

log = logging.getLogger("livecoupon.worker")
T = TypeVar("T")
BATCHES_PER_ROUND = 256  # bus messages applied in one transaction
TICK_SECONDS = 0.02
ROOMS_SECONDS = 1.0


@dataclass(slots=True)
class Partition:
    """One partition this worker holds: its service, the bus subscription feeding it, how far it has applied."""

    lease: Lease
    service: LiveService
    position: int  # the last stream sequence in the partition's log (read and written on its writer thread)
    pending: int = 0  # batches on the bus not yet applied (the consumer's count, plus those in the inbox)
    catch_up_to: int = 0  # the partition's last stream sequence at takeover
    inbox: asyncio.Queue[Msg] = field(default_factory=asyncio.Queue)
    subscription: Subscription | None = None
    task: asyncio.Task[None] | None = None
    webhooks: WebhookSender | None = None  # the merchant webhooks of the coupons this partition issues

    @property
    def number(self) -> int:
        return self.lease.partition

    @property
    def ready(self) -> bool:
        """Caught up with the bus as it was at takeover: only then does the machine's clock fire timers."""
        return self.position >= self.catch_up_to


class Worker:
    def __init__(self, campaign: Campaign | Sequence[Campaign], url: str, name: str, bus: Bus, *,
                 clock: ClockMode = ClockMode.WALL,
                 wall: Callable[[], int] | None = None, partitions: int = DEFAULT_PARTITIONS,
                 snapshot_policy: SnapshotPolicy | None = None, worker_id: str | None = None,
                 lease_s: float = LEASE_SECONDS, ledger: LedgerSender | None = None,
                 webhooks: WebhookConfig | None = None) -> None:
        self.campaigns = [campaign] if isinstance(campaign, Campaign) else list(campaign)
        self.several = len(self.campaigns) > 1
        self.url, self.name, self.bus = url, name, bus
        self.clock, self.wall = clock, wall
        self.snapshot_policy = snapshot_policy or SnapshotPolicy()
        self.id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self.partition_count, self.lease_s = partitions, lease_s
        self.ledger = ledger
        self.webhooks = webhooks
        self._webhook_slots: asyncio.Semaphore | None = None  # the worker's requests in flight, every partition's
        self.held: dict[int, Partition] = {}
        self._starting: dict[int, tuple[Lease, asyncio.Task[None]]] = {}  # taken, being rebuilt
        self._book: LeaseBook | None = None
        self._lease_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livecoupon-leases")
        self._tasks: set[asyncio.Task[None]] = set()  # pushes in flight (a task needs a reference to live)

    @property
    def book(self) -> LeaseBook:
        if self._book is None:
            raise RuntimeError("the worker is not running")
        return self._book

    async def _leasing(self, fn: Callable[..., T], *args: Any) -> T:
        """The lease book's calls, one at a time on a thread of their own."""
        return await asyncio.get_running_loop().run_in_executor(self._lease_thread, fn, *args)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await asyncio.to_thread(lambda: PostgresStore(self.url, self.name).close())  # the deployment's tables
        self._book = await self._leasing(LeaseBook, self.url, self.name, self.partition_count, self.id, self.lease_s)
        self.partition_count = self.book.partitions
        if self.ledger is not None:
            self.ledger.confirmed = self._confirmed
            self.ledger.start()
        tasks = [asyncio.create_task(t) for t in (self._leases(), self._tick(), self._rooms())]
        log.info("worker %s up: %d partitions in deployment %s", self.id, self.partition_count, self.name)
        try:
            yield
        finally:
            await cancel_quietly(*tasks)
            await cancel_quietly(*(task for _, task in list(self._starting.values())))
            for number in list(self.held):
                await self._drop(number)
            if self.ledger is not None:
                await self.ledger.stop()
            # after any renewal still running on the lease thread: give up everything, then leave
            with contextlib.suppress(Exception):
                await self._leasing(self.book.release_all)
                await self._leasing(self.book.leave)
            await self._leasing(self.book.close)
            self._lease_thread.shutdown(wait=False)

    # -- leases ---------------------------------------------------------------------------
    async def _leases(self) -> None:
        while True:
            try:
                await self._rebalance()
            except Exception:  # PostgreSQL away: leases expire, and this worker stops applying (fenced)
                log.exception("lease renewal failed")
            await asyncio.sleep(RENEW_SECONDS)

    async def _rebalance(self) -> None:
        held = {n: p.lease.epoch for n, p in self.held.items()}
        held |= {n: lease.epoch for n, (lease, _) in self._starting.items()}  # renewed while they are rebuilt
        taken, lost, surplus = await self._leasing(self.book.rebalance, held)
        for number in lost:
            log.warning("worker %s lost partition %d", self.id, number)
            await self._drop(number)
        for lease in taken:
            if lease.partition not in self.held and lease.partition not in self._starting:
                task = asyncio.create_task(self._start(lease))
                self._starting[lease.partition] = (lease, task)
        for number in surplus:
            await self._drop(number, release=True)

    async def _start(self, lease: Lease) -> None:
        number = lease.partition
        store = PartitionStore(self.url, self.name, log_name(number), prepare=False)  # connects on first use
        service = LiveService(self.campaigns, store, self.clock, self.wall, self.snapshot_policy,
                              preload_records=False, starts=False)  # a campaign joining starts on the bus
        partition = Partition(lease, service, lease.applied)
        service.seal = lambda: store.seal(number, self.id, lease.epoch, partition.position)
        loop = asyncio.get_running_loop()
        service.listeners.append(lambda made: loop.call_soon_threadsafe(self._committed, partition, made))
        try:
            replayed = await service.call(service.rebuild)
            caught_up_at = await self.bus.last_sequence(number)
            if caught_up_at < lease.applied:  # the stream is not the one the log followed: recreated or purged
                log.error("partition %d: the bus's stream ends at %d but the log has applied up to %d (recreated "
                          "or purged?); following what it holds from its start", number, caught_up_at, lease.applied)
                partition.position = 0
            partition.catch_up_to = caught_up_at
            if self.webhooks is not None:  # before the bus: what the log owes, then what the partition issues
                partition.webhooks = await self._send_owed_webhooks(self.webhooks, partition, store)
            self.held[number] = partition
            partition.subscription = await self.bus.follow(number, partition.position, partition.inbox.put)
            partition.task = asyncio.create_task(self._apply_loop(partition))
            if self.ledger is not None:  # (a campaign with a ledger runs in a deployment of its own)
                owed = await service.call(store.unconfirmed, service.base.campaign)
                self.ledger.enqueue([c for c in owed if partition_of(c.room, self.partition_count) == number])
            log.info("worker %s took partition %d (epoch %d, bus at %d of %d, %d log entries re-applied)",
                     self.id, number, lease.epoch, lease.applied, caught_up_at, replayed)
        except asyncio.CancelledError:
            if number not in self.held:
                await self._stop_webhooks(partition)
                await asyncio.to_thread(service.close)
            raise
        except Exception:
            log.exception("could not start partition %d; giving its lease up", number)
            # this task is the one _drop would cancel as "starting": forget it first, so _drop stops what was
            # started (the subscription, the apply loop, the store) instead of cancelling the task doing it
            self._starting.pop(number, None)
            if number in self.held:
                await self._drop(number, release=True)
            else:
                await self._stop_webhooks(partition)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(service.close)
                with contextlib.suppress(Exception):
                    await self._leasing(self.book.release, number, lease.epoch)
        finally:
            self._starting.pop(number, None)

    async def _drop(self, number: int, release: bool = False) -> None:
        starting = self._starting.pop(number, None)
        if starting is not None:  # lost or surplus while being rebuilt
            lease, task = starting
            await cancel_quietly(task)
            if release:
                with contextlib.suppress(Exception):
                    await self._leasing(self.book.release, number, lease.epoch)
            return
        partition = self.held.pop(number, None)
        if partition is None:
            return
        if partition.subscription is not None:
            with contextlib.suppress(Exception):
                await partition.subscription.unsubscribe()
        if partition.task is not None and partition.task is not asyncio.current_task():
            await cancel_quietly(partition.task)
        await self._stop_webhooks(partition)
        service = partition.service
        with contextlib.suppress(Exception):
            await asyncio.to_thread(service.close)
        if release:
            with contextlib.suppress(Exception):
                await self._leasing(self.book.release, number, partition.lease.epoch)

    # -- applying ---------------------------------------------------------------------------
    async def _apply_loop(self, partition: Partition) -> None:
        inbox = partition.inbox
        while True:
            batch = [await inbox.get()]
            while not inbox.empty() and len(batch) < BATCHES_PER_ROUND:
                batch.append(inbox.get_nowait())
            partition.pending = batch[-1].metadata.num_pending + inbox.qsize() + len(batch)
            try:
                made, replayed = await partition.service.call(self._apply, partition, batch)
            except Fenced:
                log.warning("worker %s fenced off partition %d", self.id, partition.number)
                await self._drop(partition.number)
                return
            except Exception:  # PostgreSQL away, say: start the partition afresh from its snapshot, log and bus
                log.exception("applying partition %d failed; giving it up to be started again", partition.number)
                await self._drop(partition.number, release=True)
                return
            partition.pending -= len(batch)
            for msg, decisions in made:
                await self._done(msg, partition.number, decisions)
            for msg in replayed:
                await self._done(msg, partition.number, replayed=True)

    def _apply(self, partition: Partition,
               batch: list[Msg]) -> tuple[list[tuple[Msg, list[Decision] | None]], list[Msg]]:
        """On the partition's writer thread: the batches not yet in its log, applied in one sealed transaction
        (a viewer's chat whose user is not present: not applied, None)."""
        fresh: list[Msg] = []
        replayed: list[Msg] = []
        for msg in batch:
            (fresh if msg.metadata.sequence.stream > partition.position else replayed).append(msg)
        if not fresh:
            return [], replayed
        events = [self._events(msg) for msg in fresh]
        present_only = {index for index, msg in enumerate(fresh) if header(msg, wire.PRESENT_ONLY)}
        before, partition.position = partition.position, fresh[-1].metadata.sequence.stream
        try:
            made = partition.service.apply_batches(events, present_only)
        except BaseException:
            partition.position = before
            raise
        return list(zip(fresh, made, strict=True)), replayed

    def _events(self, msg: Msg) -> list[Event]:
        events = []
        try:
            raws = wire.decode_events(msg.data)
        except msgspec.DecodeError as exc:  # not a gateway's message: skipped (logged), never retried forever
            log.error("partition message %d is not a batch of events, skipped: %s", msg.metadata.sequence.stream, exc)
            return []
        for raw in raws:
            try:
                events.append(parse_event(raw))
            except EventError as exc:  # checked by the gateway: only a gateway of another version gets here
                log.error("partition message %d: dropped an event the gateway let through: %s",
                          msg.metadata.sequence.stream, exc)
        return events

    async def _done(self, msg: Msg, number: int, made: list[Decision] | None = None, replayed: bool = False) -> None:
        """Tell the batch's gateway it is applied, with its decisions (``replayed``: it was in the log already;
        None: a viewer's chat not applied, as its user was not present)."""
        gateway, batch = header(msg, "lc-gateway"), header(msg, "lc-batch")
        if gateway is None or batch is None:
            return
        done = wire.Done(batch, number, replayed=True) if replayed else wire.done_of(batch, number, made, self.several)
        await self.bus.tell(self.bus.subjects.done(gateway), wire.encode(done))

    def _committed(self, partition: Partition, made: list[Decision]) -> None:
        """On the event loop: decisions committed by one of this worker's partitions, to every gateway, and
        its coupons to the merchant's webhook."""
        records = [d.record() for d in made]
        campaigns = wire.campaigns_of(made, self.several)
        for start in range(0, len(records), wire.PUSH_RECORDS):
            end = start + wire.PUSH_RECORDS
            body = wire.encode(wire.Push(records=records[start:end], campaigns=campaigns[start:end]))
            task = asyncio.get_running_loop().create_task(self.bus.tell(self.bus.subjects.push, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        issued = [coupon_of(d) for d in made if d.issued]
        if self.ledger is not None and issued:
            self.ledger.enqueue(issued)
        if partition.webhooks is not None and issued:
            reading = partition.service.campaign_named  # with the versions published, for the reason words
            partition.webhooks.enqueue([payload_for(reading(c.campaign), c) for c in issued])

    # -- merchant webhooks -------------------------------------------------------------------
    async def _send_owed_webhooks(self, config: WebhookConfig, partition: Partition,
                                  store: PartitionStore) -> WebhookSender:
        """The partition's webhook sender, started, with every coupon of its rooms still owed a webhook
        queued: issued since webhooks were first on for the partition, neither delivered nor dead (a
        previous owner's too, crashed or fenced: the Idempotency-Key dedupes what it had sent)."""
        number, service = partition.number, partition.service
        if self._webhook_slots is None:
            self._webhook_slots = asyncio.Semaphore(config.max_in_flight)
        sender = WebhookSender(config, outcomes=PostgresWebhookOutcomes(self.url, self.name, log_name(number)),
                               slots=self._webhook_slots)

        def issued() -> tuple[int, list[tuple[int, str]]]:
            records = list(store.decisions(None if self.several else self.campaigns[0].campaign))  # decision order
            return len(records), [(position, r.coupon_id) for position, r in enumerate(records)
                                  if r.issued and partition_of(r.room, self.partition_count) == number]

        position, candidates = await service.call(issued)  # on the partition's thread: its store connection
        await sender.started(position)
        try:
            owed = await asyncio.to_thread(sender.owed, candidates)
            if owed:
                coupons = await service.call(lambda: [store.coupon(cid) for cid in owed])
                sender.enqueue([payload_for(service.campaign_named(c.campaign), c) for c in coupons if c is not None])
                log.info("partition %d: %d merchant webhooks still owed, re-sent", number, len(owed))
        except BaseException:
            await sender.stop(handing_over=True)
            raise
        return sender

    @staticmethod
    async def _stop_webhooks(partition: Partition) -> None:
        """The partition's sender stops; what it had not delivered stays owed, for the partition's next owner."""
        sender, partition.webhooks = partition.webhooks, None
        if sender is not None:
            with contextlib.suppress(Exception):
                await sender.stop(handing_over=True)

    async def _confirmed(self, coupon: Coupon) -> None:
        """The merchant's system has the coupon: record it, and have the gateways pop it up (once)."""
        partition = self.held.get(partition_of(coupon.room, self.partition_count))
        if partition is None:
            return  # moved to another worker, which re-sends what is unconfirmed
        service = partition.service
        if await service.call(service.store.confirm, [coupon.coupon_id], service.now()):
            await self.bus.tell(self.bus.subjects.push, wire.encode(wire.Push(confirmed=[coupon.coupon_id])))

    # -- the service's clock and the consoles -----------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for partition in list(self.held.values()):
                service = partition.service
                due = service.next_due
                if not partition.ready or due is None or due > service.now():
                    continue  # (a partition still catching up fires its timers as its events say)
                try:
                    await service.call(service.tick)
                except Fenced:
                    await self._drop(partition.number)
                except Exception:
                    log.exception("timers of partition %d failed; giving it up to be started again",
                                  partition.number)
                    await self._drop(partition.number, release=True)

    async def _rooms(self) -> None:
        while True:
            await asyncio.sleep(ROOMS_SECONDS)
            rooms: dict[str, dict[str, Any]] = {}
            paused: dict[str, set[str]] = {c.campaign: set() for c in self.campaigns}
            versions = dict.fromkeys(paused, 1)
            applied = 0
            for partition in list(self.held.values()):
                service = partition.service
                with contextlib.suppress(Exception):
                    rooms |= await service.call(service.room_summary)
                for name in paused:
                    paused[name] |= service.paused_of(name)
                    versions[name] = max(versions[name], service.version_of(name))
                applied += service.events_applied
            body = wire.encode(wire.Rooms(self.id, rooms, {n: sorted(p) for n, p in paused.items()}, applied,
                                          versions))
            await self.bus.tell(self.bus.subjects.rooms, body)


def worker_app(worker: Worker, credentials: Credentials,
               around: Sequence[Callable[[Any], contextlib.AbstractAsyncContextManager[object]]]) -> FastAPI:
    """A worker's own small HTTP face: liveness, and (operator key) the partitions it holds."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for enter in around:
                await stack.enter_async_context(enter(None))
            yield

    app = FastAPI(title="livecoupon worker", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/v1/admin/health")
    async def admin_health(x_api_key: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        caller = credentials.identify(x_api_key) if x_api_key else None
        require(caller, Role.OPERATOR)
        return {"ok": True, "role": "worker", "worker": worker.id, "partitions": sorted(worker.held),
                "events": sum(p.service.events_applied for p in worker.held.values())}

    registry = CollectorRegistry()
    registry.register(_WorkerCollector(worker))

    @app.get("/metrics")
    async def metrics(x_api_key: Annotated[str | None, Header()] = None) -> Response:
        """Prometheus text: the partitions held, how far each has applied, and the bus lag."""
        require(credentials.identify(x_api_key) if x_api_key else None, Role.OPERATOR)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    errors.install(app)
    return app


class _WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        held = dict(self.worker.held)
        yield GaugeMetricFamily("livecoupon_partitions_held", "Partitions this worker holds a lease on",
                                value=len(held))
        lag = GaugeMetricFamily("livecoupon_bus_pending_batches", "Batches on the bus not yet applied, per partition",
                                labels=["partition"])
        applied = GaugeMetricFamily("livecoupon_bus_applied_sequence", "The last stream sequence in each partition's "
                                    "log", labels=["partition"])
        events = CounterMetricFamily("livecoupon_events_applied", "Events and operator commands applied since the "
                                     "partition was taken (its log re-applied included)", labels=["partition"])
        for number, partition in sorted(held.items()):
            lag.add_metric([str(number)], partition.pending)
            applied.add_metric([str(number)], partition.position)
            events.add_metric([str(number)], partition.service.events_applied)
        yield from (lag, applied, events)
