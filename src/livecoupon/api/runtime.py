"""What the routes share: the service and the delivery side around it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from livecoupon.analytics.metrics import campaign_metrics
from livecoupon.api.auth import SESSION_COOKIE, Caller, Credentials, Role, require
from livecoupon.api.throttle import Throttle
from livecoupon.delivery.console import LiveStats
from livecoupon.delivery.ledger import LedgerSender
from livecoupon.delivery.messages import coupon_message
from livecoupon.delivery.pacing import Pacer
from livecoupon.delivery.webhooks import payload_for
from livecoupon.delivery.websockets import ConsoleHub, Hub
from livecoupon.domain.coupons import Coupon
from livecoupon.domain.decisions import Decision
from livecoupon.service_layer import handlers as after_commit
from livecoupon.service_layer.port import Service
from livecoupon.service_layer.service import campaign_in
from livecoupon.store.port import collector_paused
from livecoupon.tasks import cancel_quietly

log = logging.getLogger("livecoupon")
TICK_SECONDS = 0.02
ACK_FLUSH_SECONDS = 0.025  # acks are written together: one transaction, not one per popup
STATS_SECONDS = 1.0
GC_THRESHOLDS = (20_000, 20, 20)  # with 10,000 sockets open, Python's default (700, 10, 10) stalls ~1 s (measured)


class WebhookPort(Protocol):
    """What the runtime needs of the merchant-webhook sender (delivery/webhooks.py)."""

    def enqueue(self, payloads: list[dict[str, Any]]) -> None: ...

    def dead_letters(self) -> list[dict[str, Any]]: ...

    def retry_dead_letters(self) -> int: ...

    async def refresh(self) -> None:
        """Read the dead letters afresh where other processes make them (a gateway's); else nothing."""

    def owed(self, issued: Iterable[tuple[int, str]]) -> list[str]: ...

    def start(self, log_position: int = 0) -> Any: ...

    async def stop(self, handing_over: bool = False) -> None: ...


@dataclass
class Runtime:
    service: Service
    credentials: Credentials
    webhooks: WebhookPort | None = None
    ledger: LedgerSender | None = None  # the merchant's coupon system, with a campaign ledger
    hub: Hub = field(default_factory=Hub)
    consoles: ConsoleHub = field(default_factory=ConsoleHub)
    throttle: Throttle = field(default_factory=Throttle)
    pacer: Pacer = field(init=False)
    campaign_stats: dict[str, LiveStats] = field(init=False)  # each campaign's console counters
    pending_acks: list[tuple[str, str]] = field(default_factory=list)
    handlers: list[after_commit.Handler] = field(init=False)
    _counted: asyncio.Future[None] | None = field(default=None, init=False)  # see read_back
    _notifying: bool = field(default=False, init=False)  # the merchant-webhook sender runs (see _start_webhooks)

    def __post_init__(self) -> None:
        service = self.service
        campaign = service.campaign  # delivery and ledger stay as started (a publish cannot change them)
        reading = service.campaign_named
        self.pacer = Pacer(campaign.delivery, self.hub.publish, usable=self._still_usable)
        self.campaign_stats = {name: LiveStats(partial(reading, name)) for name in service.campaign_names}
        self.handlers = [after_commit.counting(self.campaign_stats), after_commit.feeding(reading, self.consoles)]
        if campaign.ledger is None:
            self.handlers.append(after_commit.popping_up(reading, self.pacer))
        elif self.ledger is not None:  # a coupon pops up once the merchant's system has confirmed it
            self.handlers.append(after_commit.creating(self.ledger))
            self.ledger.confirmed = self._confirmed
        # (scaled out, the workers create coupons in the merchant's system and the gateways hear them confirmed;
        # merchant webhooks are sent once the sender starts, with a ledger once confirmed: see _start_webhooks)

    # -- on the event loop ---------------------------------------------------------------
    def on_decisions(self, decisions: list[Decision]) -> None:
        """Committed decisions, to every handler (service_layer/handlers.py); one failing stops no other."""
        event = after_commit.DecisionsCommitted.of(decisions)
        for handle in self.handlers:
            try:
                handle(event)
            except Exception:
                log.exception("a decision handler failed")

    async def stats_message(self, room: str | None = None, campaign: str | None = None,
                            summary: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The console's counters (of ``campaign``: the deployment's first by default); with ``room`` (a host's
        console), that room alone. ``summary``: the rooms' summary already read for this second's frames."""
        service = self.service
        name = self._named(campaign)
        await self.read_back()
        stats = self.campaign_stats[name]
        totals = await service.call(service.store.totals, name)
        rooms = summary if summary is not None else await service.call(service.room_summary)
        if len(service.campaign_names) > 1:  # the rooms this campaign decides for
            rooms = {r: info for r, info in rooms.items() if name in info.get("campaigns", ())}
        paused = set(await service.call(service.paused_of, name))
        dead = len(self.webhooks.dead_letters()) if self.webhooks is not None else 0
        if room is None:
            snapshot = stats.snapshot(totals, rooms, paused, service.now(), dead)
        else:
            own = {room: rooms.get(room, {"on_air": False, "present": 0})}
            snapshot = stats.of_room(room).snapshot(totals, own, paused, service.now(), dead)
            snapshot["room"] = room  # stock and budget stay the campaign's: every room draws on them
        if len(service.campaign_names) > 1:
            snapshot["campaigns"] = service.campaign_names
        return snapshot

    def _named(self, campaign: str | None) -> str:
        """The campaign a reading is about: ``campaign``, or the console's (the deployment's first)."""
        return campaign_in(self.service.campaign_names, campaign or self.service.campaign.campaign)

    async def metrics(self, campaign: str | None = None) -> dict[str, Any]:
        """SPEC §6's ``metrics.json`` so far (of ``campaign``: the deployment's first by default), computed off
        the writer thread from copies of its state."""
        service = self.service
        name = self._named(campaign)
        await self.read_back()
        (records, orders), prices, versions = await service.call(
            lambda: (service.metrics_inputs(name), service.offer_prices(name), service.campaign_versions(name)))
        metrics = await asyncio.to_thread(campaign_metrics, service.campaign_named(name), records, orders, versions)
        for name, price in prices.items():  # the live policy's own budget price λ, for the console
            if name in metrics.get("offers", {}):
                metrics["offers"][name]["price"] = price
        return metrics

    # -- background tasks -----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        service = self.service
        loop = asyncio.get_running_loop()
        service.listeners.append(lambda made: loop.call_soon_threadsafe(self.on_decisions, made))
        self._counted = loop.create_future()
        # Ready to decide once the engine is back (the decisions so far still reading back). What start-up builds
        # lives as long as the process: built with the collector paused (millions of objects from a snapshot,
        # none garbage) and frozen out of every collection, unscanned (0.3-0.5 s at 10 M log entries, measured).
        with collector_paused():
            await service.call(service.rebuild, True)
            gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        if self.ledger is not None:  # (a campaign with a ledger runs in a deployment of its own)
            self.ledger.start()
            self.ledger.enqueue(await service.call(service.store.unconfirmed, service.campaign.campaign))
        tasks = [asyncio.create_task(t) for t in (self._tick(), self.pacer.run(), self._flush_acks(),
                                                  self._once_read_back())]
        try:
            yield
        finally:
            await cancel_quietly(*tasks)
            if self.webhooks is not None:  # what is pending stays owed: the next start sends it, as after a crash
                await self.webhooks.stop(handing_over=True)
            if self.ledger is not None:
                await self.ledger.stop()

    async def pop_up_confirmed(self, coupon_ids: list[str]) -> None:
        """Coupons a worker saw confirmed by the merchant's system (scaled out): to their viewers here."""
        service = self.service
        coupons = await service.call(lambda: [service.store.coupon(cid) for cid in coupon_ids])
        for coupon in coupons:
            if coupon is not None:
                self._pop_up(coupon)

    async def _confirmed(self, coupon: Coupon) -> None:
        """The merchant's system has the coupon: record it, then pop it up and send its merchant webhook (once:
        only if new). Until then the merchant is not told of a coupon that may never be usable."""
        service = self.service

        def confirm() -> Coupon | None:  # the coupon as it is now: the merchant may have reported it used meanwhile
            confirmed = service.store.confirm([coupon.coupon_id], service.now())
            return service.store.coupon(coupon.coupon_id) if confirmed else None

        current = await service.call(confirm)
        if current is not None:
            self._pop_up(current)
            self._notify(current)

    def _notify(self, coupon: Coupon) -> None:
        """A confirmed coupon's ``coupon.issued`` webhook, once the sender runs: those confirmed before it starts
        are owed to it then."""
        if self.webhooks is not None and self._notifying:
            self.webhooks.enqueue([payload_for(self.service.campaign_named(coupon.campaign), coupon)])

    def _pop_up(self, coupon: Coupon) -> None:
        """A coupon's popup, if it can still be used: one confirmed late may be redeemed or expired by then (its
        viewer was shown a coupon their list said was gone)."""
        if coupon.is_usable(self.service.now()):
            self.pacer.offer(coupon.room, coupon.user,
                             coupon_message(self.service.campaign_named(coupon.campaign), coupon))

    async def _still_usable(self, coupon_ids: list[str]) -> set[str]:
        """Of ``coupon_ids``, those their viewers can still use now: a popup the pacer held back goes out only
        for these (one expired, reserved or redeemed meanwhile is left to the coupon list)."""
        service = self.service
        coupons = await service.call(lambda: [service.store.coupon(cid) for cid in coupon_ids])
        now = service.now()
        return {c.coupon_id for c in coupons if c is not None and c.is_usable(now)}

    async def _tick(self) -> None:
        service = self.service
        while True:
            await asyncio.sleep(TICK_SECONDS)
            due = service.next_due  # published by the writer thread; the heap itself is only touched there
            if due is not None and due <= service.now():
                await service.call(service.tick)

    async def read_back(self) -> None:
        """Wait until the service has every decision made before it started (a restart reads them behind) and
        the consoles' counters count them."""
        if self._counted is not None:
            await asyncio.shield(self._counted)

    async def _once_read_back(self) -> None:
        """Once the decisions made before the start are back: the consoles' counters start from them (those
        made since are counted already), the merchant webhooks owed are sent, and the consoles' feed runs."""
        assert self._counted is not None
        try:
            earlier = await asyncio.wrap_future(self.service.read_back)
        except Exception as exc:
            self._counted.set_exception(exc)
            raise
        for name, own in earlier.items():
            self.campaign_stats[name].add(own)
        self._counted.set_result(None)
        gc.freeze()  # (they live as long as the process too)
        if self.webhooks is not None:
            await self._start_webhooks(self.webhooks, sum(map(len, earlier.values())))
        await self._stats_feed()

    async def _start_webhooks(self, webhooks: WebhookPort, before: int) -> None:
        """Start the sender (``before``: how many decisions were made before the service started, the
        first coupons the sender could owe on its first start), send it every coupon issued from now on
        (with a ledger here, as the ledger confirms it), and owe it every coupon it never delivered — those
        of a crash or a stop, and since the start, too (with a ledger, those confirmed)."""
        service = self.service
        started = webhooks.start(before)
        if asyncio.iscoroutine(started):
            await started
        self._notifying = True
        if self.ledger is None:
            self.handlers.append(after_commit.notifying(service.campaign_named, webhooks))
        records = await service.call(lambda: list(service.records.values()))  # (those decided since included)
        owed = webhooks.owed((position, r.coupon_id) for position, r in enumerate(records) if r.issued)
        if owed:
            coupons = await service.call(lambda: [service.store.coupon(cid) for cid in owed])
            confirmed = [c for c in coupons if c is not None and service.checkout.counts(c)]  # others: once confirmed
            if confirmed:
                webhooks.enqueue([payload_for(service.campaign_named(c.campaign), c) for c in confirmed])
                log.info("re-sending %d merchant webhooks not delivered before the restart", len(confirmed))

    def acknowledge(self, coupon_id: str, user: str) -> None:
        self.pending_acks.append((coupon_id, user))

    async def flush_acks(self) -> None:
        """Write the acks received so far (before any backlog is read, so none is resent)."""
        if self.pending_acks:
            acks, self.pending_acks = self.pending_acks, []
            service = self.service
            await service.call(service.store.acknowledge, acks, service.now())

    async def _flush_acks(self) -> None:
        while True:
            await asyncio.sleep(ACK_FLUSH_SECONDS)
            await self.flush_acks()

    async def _stats_feed(self) -> None:
        """Each second, every campaign's counters to the operators' consoles (each frame names its campaign: a
        console shows the one picked), and to each host's console those of the campaigns listening to its room."""
        while True:
            await asyncio.sleep(STATS_SECONDS)
            hosts = self.consoles.host_rooms()
            if not (self.consoles.has_operators or hosts):
                continue
            summary = await self.service.call(self.service.room_summary)  # once a second, for every frame
            if self.consoles.has_operators:
                for frame in await self.stats_frames(summary=summary):
                    self.consoles.broadcast(frame)
            for room in hosts:
                for frame in await self.stats_frames(room, summary):
                    self.consoles.tell_hosts(room, frame)

    async def stats_frames(self, room: str | None = None,
                           summary: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The stats messages a console shows: an operator's, every campaign's; a host's, those of the campaigns
        listening to its room (the first campaign's, if none does). The rooms' summary is read once for all."""
        service = self.service
        names = service.campaign_names
        if room is not None:
            names = [n for n in names if service.campaign_named(n).listens_to(room)] or names[:1]
        if summary is None:
            summary = await service.call(service.room_summary)
        return [await self.stats_message(room, name, summary) for name in names]


BINARY_REFUSED = "只接受 JSON 文本帧 / binary frames are not accepted: send JSON text"


async def text_frame(websocket: WebSocket) -> str | None:
    """The client's next text frame, or None for a binary one, which our sockets do not take: the caller
    closes with 1003 (unsupported data, RFC 6455) and ``BINARY_REFUSED``. A disconnect raises, as
    ``receive_text`` does."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text: str | None = message.get("text")
    return text


async def runtime_of(request: Request) -> Runtime:
    """The app's runtime (async: a plain ``def`` dependency costs every request a thread-pool hop)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the operator or platform key")
_bearer = HTTPBearer(auto_error=False, description="a key, or a viewer token (JWT HS256, sub = user)")
_session = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="a console session (POST /v1/session)")


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client is not None else "-"


def identify(rt: Runtime, token: str | None, address: str) -> Caller | None:
    """The verified caller of a request or socket; viewers are rate-limited each, and, with wrong credentials, by
    address."""
    if not token:
        return None
    caller = rt.credentials.identify(token)
    if caller is None:
        rt.throttle.check_address(rt.throttle.failed_auth, "auth", address)
        return None
    if caller.role is Role.VIEWER:
        assert caller.user is not None
        rt.throttle.check(rt.throttle.viewer, "viewer", caller.user)
        rt.throttle.check_address(rt.throttle.ip, "ip", address)
    return caller


async def caller_of(request: Request, key: Annotated[str | None, Depends(_api_key)],
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                    session: Annotated[str | None, Depends(_session)]) -> Caller | None:
    """The request's caller, from X-API-Key, then Authorization: Bearer, then the session cookie. The dependencies
    are there for the document's security schemes: the headers they read are read by :func:`caller_from`."""
    return caller_from(request)


def caller_from(request: Request) -> Caller | None:
    """The request's caller, read straight from the headers: also for the hot routes that skip FastAPI's
    dependency machinery (about 100 µs a request here) and declare the same security in their document
    (``LEAN_SECURITY``)."""
    headers = request.headers
    token = credential(headers.get("x-api-key"), headers.get("authorization"), request.cookies.get(SESSION_COOKIE),
                       request.method, headers.get("content-type"))
    return identify(request.app.state.runtime, token, client_address(request))


def credential(key: str | None, authorization: str | None, session: str | None, method: str,
               content_type: str | None) -> str | None:
    """The token a request presents: X-API-Key, then ``Authorization: Bearer``, then the session cookie where it
    speaks for the request (:func:`session_may_act`)."""
    scheme, bearer = get_authorization_scheme_param(authorization)
    if session and not session_may_act(method, content_type):
        session = None
    return key or (bearer if scheme.lower() == "bearer" else None) or session or None


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_may_act(method: str, content_type: str | None) -> bool:
    """Whether the session cookie speaks for a request: a read, or a write whose body says it is JSON, which a page
    of another site cannot send without a preflight this service never answers (CSRF). SameSite=Strict still lets
    a page of a sibling subdomain send the cookie: with a ``text/plain`` body it posted events as the operator."""
    return method in _READS or is_json(content_type)


def is_json(content_type: str | None) -> bool:
    main, _, sub = (content_type or "").partition(";")[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


# The OpenAPI security of a route that reads its caller with ``caller_from``: the schemes above, as FastAPI
# documents them for a route that depends on ``caller_of``.
LEAN_SECURITY: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in (_api_key, _bearer, _session)]


CallerDep = Annotated[Caller | None, Depends(caller_of)]


async def operator(caller: CallerDep) -> Caller:
    """Dependency guarding the operator endpoints (async: no thread-pool hop for a dictionary look-up)."""
    return require(caller, Role.OPERATOR)


async def platform(caller: CallerDep) -> Caller:
    """Dependency guarding the server-to-server endpoints (the operator key opens them too)."""
    return require(caller, Role.OPERATOR, Role.PLATFORM)


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def attach(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
