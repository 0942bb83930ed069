"""Webhooks to the merchant's backend: one signed POST per issued coupon, retried until it lands.

For shops whose coupons live in their own system. Each issued coupon becomes one
``coupon.issued`` payload (:func:`payload_for`), POSTed as JSON to the merchant's URL with::

    Content-Type: application/json
    X-Livecoupon-Event: coupon.issued
    X-Livecoupon-Timestamp: <unix seconds of this attempt>
    X-Livecoupon-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{body}" with the secret>
    Idempotency-Key: <coupon_id>

As with Stripe, the timestamp is part of the signed material, so a captured request cannot be
replayed later: :func:`verify` refuses a timestamp outside its tolerance. Every attempt is signed
afresh; the body and the ``Idempotency-Key`` never change, so the receiver dedupes on the key.

A 2xx answer is delivery. Anything else (another status, a transport error, a timeout) is retried
with exponential backoff and full jitter (:func:`backoff_s`) up to ``max_attempts``; then the coupon
becomes a dead letter, kept through the :class:`~livecoupon.store.webhooks.WebhookOutcomes` port (the
SQLite file, PostgreSQL, or memory) until an operator calls :meth:`WebhookSender.retry_dead_letters`.
Deliveries still pending at :meth:`WebhookSender.stop` become dead letters too, unless the sender hands
its decision log over: to the service's next start (``livecoupon serve`` stopping), or to another process
(a partition moving to another worker); after a crash or a hand-over, whoever sends for that log owes every
coupon neither delivered nor dead (:meth:`WebhookSender.owed`), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from livecoupon.delivery.messages import coupon_message, iso
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.coupons import Coupon
from livecoupon.domain.decisions import Decision, coupon_of
from livecoupon.store.webhooks import DeadLetter, MemoryWebhookOutcomes, SqliteWebhookOutcomes, WebhookOutcomes
from livecoupon.tasks import cancel_quietly

__all__ = ["DeadLetter", "WebhookConfig", "WebhookConfigError", "WebhookSender", "backoff_s", "encode",
           "issued_listener", "payload_for", "sign", "verify"]

EVENT = "coupon.issued"
EVENT_HEADER = "X-Livecoupon-Event"
SIGNATURE_HEADER = "X-Livecoupon-Signature"
TIMESTAMP_HEADER = "X-Livecoupon-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
STOPPED = "the sender stopped before delivery"
REFRESH_S = 5.0  # a resending sender's mirror of dead letters others make

log = logging.getLogger("livecoupon.webhooks")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookConfigError(ValueError):
    """A webhook setting is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"webhook.{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Where to POST, the signing secret, and how hard to try (seconds throughout)."""

    url: str
    secret: str
    max_attempts: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 60
    timeout_s: float = 5
    max_in_flight: int = 16

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise WebhookConfigError("url", f"must be an http(s) URL, got {self.url!r}")
        if not self.secret:
            raise WebhookConfigError("secret", "must not be empty")
        for name in ("max_attempts", "max_in_flight"):
            if getattr(self, name) < 1:
                raise WebhookConfigError(name, f"must be at least 1, got {getattr(self, name)!r}")
        for name in ("initial_backoff_s", "max_backoff_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise WebhookConfigError(name, f"must be positive, got {getattr(self, name)!r}")
        if self.max_backoff_s < self.initial_backoff_s:
            raise WebhookConfigError("max_backoff_s", "must not be less than initial_backoff_s")


# -- pure parts: payload, signature, backoff --------------------------------------------------
def payload_for(campaign: Campaign | str, issued: Decision | Coupon | Mapping[str, Any], *,
                user: str | None = None) -> dict[str, Any]:
    """The ``coupon.issued`` payload of one issued coupon.

    ``issued`` is an issuing :class:`Decision` or the :class:`Coupon` it issued (both need the
    :class:`Campaign`, whose triggers give the coupon message its reason words), or a message
    :func:`~livecoupon.delivery.messages.coupon_message` already built; the message does not name
    the user, so that form needs ``user=``.
    """
    name = campaign if isinstance(campaign, str) else campaign.campaign
    if isinstance(issued, Mapping):
        if not user:
            raise ValueError("a coupon message does not name its user: pass user=")
        message, issued_at = dict(issued), int(issued["issued_at_ms"])
    elif isinstance(campaign, str):
        raise TypeError("a Decision or Coupon needs the Campaign (for the reason words), not its name")
    else:
        coupon = _coupon_issued_by(issued) if isinstance(issued, Decision) else issued
        message, user, issued_at = coupon_message(campaign, coupon), coupon.user, coupon.issued_at
    return {"event": EVENT, "campaign": name, "coupon": message, "user": user, "issued_at": iso(issued_at)}


def _coupon_issued_by(decision: Decision) -> Coupon:
    if not decision.issued:
        raise ValueError(f"decision {decision.request.coupon_id} issued nothing ({decision.reason})")
    return coupon_of(decision)


def encode(payload: Mapping[str, Any]) -> bytes:
    """The request body: compact UTF-8 JSON (Chinese stays readable)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def sign(body: bytes, timestamp: str, secret: str) -> str:
    """The ``X-Livecoupon-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(body: bytes, timestamp: str, signature: str, secret: str, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """True when ``signature`` signs ``timestamp`` + ``body`` with ``secret`` and the timestamp is
    within ``tolerance_s`` of ``now`` (unix seconds; the wall clock by default), either way.

    ``body`` must be the raw request bytes, before any JSON parsing. Comparison is constant-time.
    """
    timestamp = timestamp.strip()
    if not secret or not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, timestamp, secret).encode(), signature.strip().lower().encode())


def backoff_s(failures: int, config: WebhookConfig, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``failures``-th failed attempt in a row: full jitter, uniform in
    ``[0, min(max_backoff_s, initial_backoff_s * 2 ** (failures - 1)))``; ``rand`` gives [0, 1)."""
    ceiling = min(config.max_backoff_s, config.initial_backoff_s * 2.0 ** min(failures - 1, 64))
    return rand() * ceiling


def coupon_id_of(payload: Mapping[str, Any]) -> str:
    coupon = payload.get("coupon")
    coupon_id = coupon.get("coupon_id") if isinstance(coupon, Mapping) else None
    if not isinstance(coupon_id, str) or not coupon_id:
        raise ValueError("a webhook payload needs coupon.coupon_id (it is the Idempotency-Key)")
    return coupon_id


# -- the sender -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Delivery:
    coupon_id: str
    body: bytes
    earlier: int = 0  # attempts made before this run (an operator retry starts a new run)
    tries: int = 0  # attempts made in this run
    last_error: str = ""

    @property
    def attempts(self) -> int:
        return self.earlier + self.tries


class WebhookSender:
    """Delivers ``coupon.issued`` payloads to ``config.url``; lives on one asyncio loop.

    ``start()`` and ``await stop()`` belong in the app's lifespan. ``enqueue`` may be called
    from any thread; everything else on the event loop. Up to ``config.max_in_flight``
    requests run at once and a coupon waiting out its backoff holds no slot, so one slow or
    failing coupon never stalls the others. ``transport`` replaces the HTTP transport (tests);
    ``clock`` (unix seconds) and ``rand`` drive the timestamps and the jitter.

    What became of each coupon goes through ``outcomes`` (the SQLite file at ``store_path``, or
    memory, when not given), on one thread of the sender's own, in order: the event loop never
    waits on a database. The dead letters are mirrored in memory for the consoles.
    ``resends_only`` (a scaled-out gateway): issued coupons are the workers' to send; this sender
    lists the deployment's dead letters, read afresh from ``outcomes``, and retries them. ``slots``,
    shared by several senders (a worker's partitions), caps their requests in flight together.
    """

    def __init__(self, config: WebhookConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 store_path: str | Path | None = None, outcomes: WebhookOutcomes | None = None,
                 resends_only: bool = False, slots: asyncio.Semaphore | None = None,
                 clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self.resends_only = resends_only
        self._slots = slots
        self._transport = transport
        if outcomes is None:
            outcomes = MemoryWebhookOutcomes() if store_path is None else SqliteWebhookOutcomes(store_path)
        self.outcomes = outcomes
        self._dead: dict[str, DeadLetter] = {}  # a mirror of the outcomes' dead letters
        self._since = 0  # the position in the decision log from which coupons are owed
        self._books: ThreadPoolExecutor | None = None  # the one thread that calls the outcomes
        self._clock, self._rand = clock, rand
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._client: httpx.AsyncClient | None = None
        self._queue: asyncio.Queue[_Delivery | None] = asyncio.Queue()
        self._pending: dict[str, _Delivery] = {}  # queued, in flight, or waiting out a backoff
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._refreshing: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._delivered = self._retries = 0

    # -- lifespan ---------------------------------------------------------------------------
    def start(self, log_position: int = 0) -> None:
        """Open the outcomes, load the dead letters and start the workers (on the running loop; the
        outcomes are read before it returns). ``log_position``: how many decisions the store's log holds
        now; the first start of webhooks on that log records it, and only later coupons are ever owed."""
        self._begin(self._open_books().submit(self._load, log_position).result())

    async def started(self, log_position: int = 0) -> None:
        """:meth:`start`, the outcomes read without blocking the event loop (a partition taken over)."""
        self._begin(await asyncio.wrap_future(self._open_books().submit(self._load, log_position)))

    def _open_books(self) -> ThreadPoolExecutor:
        if self._loop is not None:
            raise RuntimeError("the webhook sender is already running")
        asyncio.get_running_loop()  # (only on a loop)
        if self._books is None:
            self._books = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livecoupon-webhook-outcomes")
        return self._books

    def _load(self, log_position: int) -> tuple[int, list[DeadLetter]]:
        since = self.outcomes.open(log_position)
        return since, self.outcomes.dead_letters()

    def _begin(self, loaded: tuple[int, list[DeadLetter]]) -> None:
        self._since, letters = loaded
        self._dead = {letter.coupon_id: letter for letter in letters}
        self._client = httpx.AsyncClient(transport=self._transport, timeout=self.config.timeout_s)
        self._queue, self._idle = asyncio.Queue(), asyncio.Event()
        self._idle.set()
        self._loop, self._closing = asyncio.get_running_loop(), False
        self._workers = [asyncio.create_task(self._work(), name=f"livecoupon-webhook-{n}")
                         for n in range(self.config.max_in_flight)]
        if self.resends_only:
            self._refreshing = asyncio.create_task(self._keep_refreshed(), name="livecoupon-webhook-refresh")

    async def stop(self, handing_over: bool = False) -> None:
        """Stop sending: requests in flight get up to ``timeout_s`` to finish; whatever is still
        pending then (queued, waiting out a backoff, cut off) becomes a dead letter, so nothing
        is lost quietly — unless ``handing_over``: the decision log's next sender (the service's next
        start, a partition's next worker) owes them, as neither delivered nor dead."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        if self._refreshing is not None:
            await cancel_quietly(self._refreshing)
            self._refreshing = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        while not self._queue.empty():
            self._queue.get_nowait()  # stays in _pending
        for _ in self._workers:
            self._queue.put_nowait(None)  # each worker ends after its request in flight
        await asyncio.wait(self._workers, timeout=self.config.timeout_s)
        await cancel_quietly(*self._workers)  # those cut off (the others ended: their exceptions retrieved)
        self._loop = None
        if handing_over:
            self._pending.clear()
        else:
            self._bury_all(list(self._pending.values()))
        if self._client is not None:
            await self._client.aclose()
        books, self._books = self._books, None
        if books is not None:
            books.submit(self.outcomes.close)
            await asyncio.to_thread(books.shutdown, True)  # the queued writes first

    # -- the public calls -------------------------------------------------------------------
    def enqueue(self, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Queue one delivery per payload (see :func:`payload_for`). Safe from any thread.

        A coupon already pending is not queued twice. With ``resends_only``, nothing is queued: the
        workers send the coupons they issue.
        """
        if not payloads or self.resends_only:
            return
        loop = self._loop
        if loop is None:
            raise RuntimeError("the webhook sender is not running")
        deliveries = [_Delivery(coupon_id_of(p), encode(p)) for p in payloads]
        if _running_loop() is loop:
            self._accept(deliveries)
        else:
            loop.call_soon_threadsafe(self._accept, deliveries)

    def retry_dead_letters(self) -> int:
        """Queue every dead letter again with a fresh ``max_attempts`` (operator action); how many.

        A letter stays stored until its coupon is delivered, so a crash meanwhile loses nothing.
        """
        if self._loop is None or self._closing:
            raise RuntimeError("the webhook sender is not running")
        letters = [letter for letter in self._dead.values() if letter.coupon_id not in self._pending]
        self._accept([_Delivery(letter.coupon_id, letter.body, earlier=letter.attempts) for letter in letters])
        return len(letters)

    async def refresh(self) -> None:
        """With ``resends_only``, read the dead letters afresh (other processes make them); else they are
        this sender's own, mirrored already."""
        if self.resends_only and self._books is not None:
            letters = await asyncio.wrap_future(self._books.submit(self.outcomes.dead_letters))
            self._dead = {letter.coupon_id: letter for letter in letters}

    async def _keep_refreshed(self) -> None:
        """The consoles' and ``/metrics``' count of dead letters, at most this stale."""
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception as exc:  # the database away: the routes say so when they read
                log.warning("could not read the webhook dead letters: %s", exc)

    def owed(self, issued: Iterable[tuple[int, str]]) -> list[str]:
        """Of ``(position in the decision log, coupon_id)``, the coupons whose webhook is still
        owed: issued since webhooks were first on, and neither delivered, dead nor pending.
        Reads the outcomes (blocking: at start-up, or from a thread of the caller's)."""
        if self.resends_only:
            return []
        candidates = [cid for position, cid in issued if position >= self._since and cid not in self._pending]
        if self._books is None or not candidates:
            return candidates
        settled = self._books.submit(self.outcomes.settled, candidates).result()
        return [cid for cid in candidates if cid not in settled]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Coupons that ran out of attempts and are not being retried now, oldest first."""
        letters = [letter for letter in self._dead.values() if letter.coupon_id not in self._pending]
        return [letter.to_json() for letter in letters]

    def stats(self) -> dict[str, int]:
        """Deliveries and retries since ``start()``; dead letters and pending deliveries now."""
        return {"delivered": self._delivered, "retries": self._retries, "dead": len(self.dead_letters()),
                "pending": len(self._pending)}

    async def wait_idle(self) -> None:
        """Return once nothing is pending: every queued coupon delivered or dead."""
        await self._idle.wait()

    # -- on the loop ------------------------------------------------------------------------
    def _accept(self, deliveries: list[_Delivery]) -> None:
        if self._closing:  # handed over from another thread while stopping
            self._bury_all([d for d in deliveries if d.coupon_id not in self._pending])
            return
        for delivery in deliveries:
            if delivery.coupon_id not in self._pending:
                self._pending[delivery.coupon_id] = delivery
                self._queue.put_nowait(delivery)
        if self._pending:
            self._idle.clear()

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            if delivery is None:
                return
            delivery.tries += 1
            async with self._slots or contextlib.nullcontext():
                error = await self._post(delivery)
            if error is None:
                self._done(delivery)
                continue
            delivery.last_error = error
            if delivery.tries >= self.config.max_attempts:
                self._bury(delivery)
            elif not self._closing:  # when closing, stop() buries what is left
                self._retry_later(delivery)

    async def _post(self, delivery: _Delivery) -> str | None:
        """One attempt: None when the merchant answered 2xx, else what went wrong."""
        assert self._client is not None
        timestamp = str(int(self._clock()))
        headers = {"Content-Type": "application/json", EVENT_HEADER: EVENT, TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(delivery.body, timestamp, self.config.secret),
                   IDEMPOTENCY_HEADER: delivery.coupon_id}
        try:
            async with asyncio.timeout(self.config.timeout_s):  # a hard cap: httpx's is per read
                response = await self._client.post(self.config.url, content=delivery.body, headers=headers)
        except (httpx.HTTPError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}".rstrip(": ")
        except Exception as exc:  # a worker must outlive any one delivery
            log.exception("webhook attempt for %s failed unexpectedly", delivery.coupon_id)
            return f"{type(exc).__name__}: {exc}".rstrip(": ")
        return None if response.is_success else f"HTTP {response.status_code}"

    def _retry_later(self, delivery: _Delivery) -> None:
        assert self._loop is not None
        self._retries += 1
        delay = backoff_s(delivery.tries, self.config, self._rand)
        self._timers[delivery.coupon_id] = self._loop.call_later(delay, self._requeue, delivery)

    def _requeue(self, delivery: _Delivery) -> None:
        self._timers.pop(delivery.coupon_id, None)
        self._queue.put_nowait(delivery)

    def _done(self, delivery: _Delivery) -> None:
        self._delivered += 1
        self._dead.pop(delivery.coupon_id, None)
        self._write(self.outcomes.delivered, delivery.coupon_id, iso(int(self._clock() * 1000)))
        self._settle(delivery)

    def _bury(self, delivery: _Delivery) -> None:
        log.warning("webhook for %s is a dead letter after %d attempts: %s", delivery.coupon_id,
                    delivery.attempts, delivery.last_error)
        letter = DeadLetter(delivery.coupon_id, self.config.url, delivery.attempts, delivery.last_error,
                            iso(int(self._clock() * 1000)), delivery.body)
        self._dead.pop(letter.coupon_id, None)  # a letter buried again moves to the end
        self._dead[letter.coupon_id] = letter
        self._write(self.outcomes.bury, letter)
        self._settle(delivery)

    def _bury_all(self, deliveries: list[_Delivery]) -> None:
        for delivery in deliveries:
            delivery.last_error = f"{STOPPED} ({delivery.last_error})" if delivery.last_error else STOPPED
            self._bury(delivery)

    def _write(self, write: Callable[..., None], *args: Any) -> None:
        """A write to the outcomes, in order on their thread; a failure is logged (the coupon stays owed:
        a delivery not recorded is sent again after a restart, which the Idempotency-Key dedupes)."""
        if self._books is None:
            log.error("webhook outcomes are closed; not recorded: %s %s", write.__name__, args[0])
            return
        self._books.submit(write, *args).add_done_callback(_log_failed_write)

    def _settle(self, delivery: _Delivery) -> None:
        self._pending.pop(delivery.coupon_id, None)
        if not self._pending:
            self._idle.set()


def _log_failed_write(future: Future[None]) -> None:
    if future.exception() is not None:
        log.error("recording a webhook outcome failed", exc_info=future.exception())


def issued_listener(campaign: Campaign, sender: WebhookSender) -> Callable[[list[Decision]], None]:
    """A :class:`~livecoupon.service_layer.service.LiveService` listener: every issued coupon to ``sender``."""
    def listen(decisions: list[Decision]) -> None:
        sender.enqueue([payload_for(campaign, d) for d in decisions if d.issued])
    return listen


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
