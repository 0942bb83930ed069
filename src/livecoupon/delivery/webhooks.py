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
becomes a dead letter, kept in the SQLite file when a ``store_path`` is given, until an operator
calls :meth:`WebhookSender.retry_dead_letters`. Deliveries still pending at
:meth:`WebhookSender.stop` become dead letters too; after a crash, the service owes the sender
every coupon neither delivered nor dead (:meth:`WebhookSender.owed`), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import re
import sqlite3
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

EVENT = "coupon.issued"
EVENT_HEADER = "X-Livecoupon-Event"
SIGNATURE_HEADER = "X-Livecoupon-Signature"
TIMESTAMP_HEADER = "X-Livecoupon-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
STOPPED = "the sender stopped before delivery"

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


# -- dead letters -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A coupon the merchant never accepted, and the exact body that was sent."""

    coupon_id: str
    url: str
    attempts: int
    last_error: str
    at: str  # ISO
    body: bytes

    def to_json(self) -> dict[str, Any]:
        return {"coupon_id": self.coupon_id, "url": self.url, "attempts": self.attempts,
                "last_error": self.last_error, "at": self.at}


_SCHEMA = """CREATE TABLE IF NOT EXISTS webhook_dead_letters (
    coupon_id TEXT PRIMARY KEY, url TEXT NOT NULL, attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL, at TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_delivered (coupon_id TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_since (one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL);"""


class DeadLetterTable:
    """What became of each coupon's webhook: dead letters, coupons delivered, and from which
    position of the store's decision log webhooks are on. In memory, mirrored to the
    store's file when a path is given.

    The coupons issued from that position on, less those delivered or dead, are exactly
    the webhooks still owed — after a crash too: the decision log is the outbox.

    Reads come from memory; disk writes run in order on one thread of their own, so the
    event loop never waits on SQLite's lock while the service's writer holds it.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else str(path)
        self._rows: dict[str, DeadLetter] = {}
        self.delivered: set[str] = set()
        self.since = 0  # position in the decision log
        self._db: sqlite3.Connection | None = None
        self._disk: ThreadPoolExecutor | None = None

    def open(self, log_position: int) -> None:
        self.since = log_position
        if self.path is None:
            return
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA busy_timeout=30000")
        db.executescript(_SCHEMA)
        rows = db.execute("SELECT coupon_id, url, attempts, last_error, at, body FROM webhook_dead_letters "
                          "ORDER BY at, coupon_id")
        self._rows = {row[0]: DeadLetter(*row) for row in rows}
        self.delivered = {row[0] for row in db.execute("SELECT coupon_id FROM webhook_delivered")}
        db.execute("INSERT OR IGNORE INTO webhook_since VALUES (1, ?)", (log_position,))
        self.since = db.execute("SELECT position FROM webhook_since").fetchone()[0]
        self._db = db
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livecoupon-webhook-db")

    def mark_delivered(self, coupon_id: str, at: str) -> None:
        self.delivered.add(coupon_id)
        self._write("INSERT OR IGNORE INTO webhook_delivered VALUES (?, ?)", (coupon_id, at))

    def __contains__(self, coupon_id: str) -> bool:
        return coupon_id in self._rows

    def all(self) -> list[DeadLetter]:
        return list(self._rows.values())

    def put(self, letter: DeadLetter) -> None:
        self._rows.pop(letter.coupon_id, None)  # a letter buried again moves to the end
        self._rows[letter.coupon_id] = letter
        self._write("INSERT OR REPLACE INTO webhook_dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                    (letter.coupon_id, letter.url, letter.attempts, letter.last_error, letter.at, letter.body))

    def remove(self, coupon_id: str) -> None:
        if self._rows.pop(coupon_id, None) is not None:
            self._write("DELETE FROM webhook_dead_letters WHERE coupon_id = ?", (coupon_id,))

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._db is not None and self._disk is not None:
            self._disk.submit(self._db.execute, sql, params).add_done_callback(_log_failed_write)
        elif self.path is not None:
            log.error("webhook dead letters are closed; not written to %s: %s", self.path, params[0])

    async def close(self) -> None:
        """Finish the queued writes, then close the connection."""
        if self._db is not None and self._disk is not None:
            await asyncio.to_thread(self._disk.shutdown, True)
            self._db.close()
            self._db = self._disk = None


def _log_failed_write(future: Future[sqlite3.Cursor]) -> None:
    if future.exception() is not None:
        log.error("writing a webhook dead letter failed", exc_info=future.exception())


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
    """

    def __init__(self, config: WebhookConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 store_path: str | Path | None = None, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.config = config
        self._transport = transport
        self._dead = DeadLetterTable(store_path)
        self._clock, self._rand = clock, rand
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._client: httpx.AsyncClient | None = None
        self._queue: asyncio.Queue[_Delivery | None] = asyncio.Queue()
        self._pending: dict[str, _Delivery] = {}  # queued, in flight, or waiting out a backoff
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._delivered = self._retries = 0

    # -- lifespan ---------------------------------------------------------------------------
    def start(self, log_position: int = 0) -> None:
        """Load the dead letters and start the workers (on the running loop).
        ``log_position``: how many decisions the store holds now; the first start of webhooks
        on a store records it, and only later coupons are ever owed."""
        if self._loop is not None:
            raise RuntimeError("the webhook sender is already running")
        loop = asyncio.get_running_loop()
        self._dead.open(log_position)
        self._client = httpx.AsyncClient(transport=self._transport, timeout=self.config.timeout_s)
        self._queue, self._idle = asyncio.Queue(), asyncio.Event()
        self._idle.set()
        self._loop, self._closing = loop, False
        self._workers = [asyncio.create_task(self._work(), name=f"livecoupon-webhook-{n}")
                         for n in range(self.config.max_in_flight)]

    async def stop(self) -> None:
        """Stop sending: requests in flight get up to ``timeout_s`` to finish; whatever is still
        pending then (queued, waiting out a backoff, cut off) becomes a dead letter, so nothing
        is lost quietly."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        while not self._queue.empty():
            self._queue.get_nowait()  # stays in _pending
        for _ in self._workers:
            self._queue.put_nowait(None)  # each worker ends after its request in flight
        _, cut_off = await asyncio.wait(self._workers, timeout=self.config.timeout_s)
        for worker in cut_off:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._loop = None
        self._bury_all(list(self._pending.values()))
        if self._client is not None:
            await self._client.aclose()
        await self._dead.close()

    # -- the public calls -------------------------------------------------------------------
    def enqueue(self, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Queue one delivery per payload (see :func:`payload_for`). Safe from any thread.

        A coupon already pending is not queued twice.
        """
        if not payloads:
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

        A letter stays on disk until its coupon is delivered, so a crash meanwhile loses nothing.
        """
        if self._loop is None or self._closing:
            raise RuntimeError("the webhook sender is not running")
        letters = [letter for letter in self._dead.all() if letter.coupon_id not in self._pending]
        self._accept([_Delivery(letter.coupon_id, letter.body, earlier=letter.attempts) for letter in letters])
        return len(letters)

    def owed(self, issued: Iterable[tuple[int, str]]) -> list[str]:
        """Of ``(position in the decision log, coupon_id)``, the coupons whose webhook is still
        owed: issued since webhooks were first on, and neither delivered, dead nor pending."""
        dead, delivered, since = self._dead, self._dead.delivered, self._dead.since
        return [cid for position, cid in issued
                if position >= since and cid not in delivered and cid not in dead and cid not in self._pending]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Coupons that ran out of attempts and are not being retried now, oldest first."""
        return [letter.to_json() for letter in self._dead.all() if letter.coupon_id not in self._pending]

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
        self._dead.remove(delivery.coupon_id)
        self._dead.mark_delivered(delivery.coupon_id, iso(int(self._clock() * 1000)))
        self._settle(delivery)

    def _bury(self, delivery: _Delivery) -> None:
        log.warning("webhook for %s is a dead letter after %d attempts: %s", delivery.coupon_id,
                    delivery.attempts, delivery.last_error)
        self._dead.put(DeadLetter(delivery.coupon_id, self.config.url, delivery.attempts, delivery.last_error,
                                  iso(int(self._clock() * 1000)), delivery.body))
        self._settle(delivery)

    def _bury_all(self, deliveries: list[_Delivery]) -> None:
        for delivery in deliveries:
            delivery.last_error = f"{STOPPED} ({delivery.last_error})" if delivery.last_error else STOPPED
            self._bury(delivery)

    def _settle(self, delivery: _Delivery) -> None:
        self._pending.pop(delivery.coupon_id, None)
        if not self._pending:
            self._idle.set()


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
