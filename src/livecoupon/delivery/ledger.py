"""The merchant's own coupon system as the ledger (SPEC §3 ``ledger``, §6).

Every coupon a campaign with a ``ledger`` issues is created in the merchant's system by a
``POST`` signed as the Standard Webhooks specification says (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
keyed by the ``whsec_`` secret) with ``Idempotency-Key: <coupon_id>``. A 2xx answer, or a 409
for that coupon, confirms it; anything else, or no answer within the timeout, is tried again
with full-jitter backoff that starts under 1 s and never waits more than 30 s, until
confirmed. Only a confirmed coupon is pushed to its viewer (once) and can be redeemed.

What is owed survives a crash: confirmations are stored, and on start every issued coupon
of the campaign not yet confirmed is sent again (the merchant de-duplicates on the key).

The sending loop (retries, backoff, the breaker, an optional request rate) is the same for
every coupon system; what one request looks like is a :class:`CouponSystem`: the SPEC's
signed request here, a platform's own API in :mod:`livecoupon.integrations` (Douyin's).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from standardwebhooks import Webhook

from livecoupon.delivery.messages import iso
from livecoupon.delivery.pacing import CellRate
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.coupons import Coupon, CouponKind
from livecoupon.domain.money import fen_to_yuan
from livecoupon.tasks import cancel_quietly

log = logging.getLogger("livecoupon.ledger")


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    url: str
    secret: str  # whsec_ + base64 key
    timeout_s: float = 2.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    # attempts at once: each may take the whole timeout of a merchant that does not answer, and every coupon waiting
    # is due an attempt every 30 s (SPEC §6), so up to in_flight × 30 s / timeout coupons (960 at 2 s) keep to it; at
    # 16 an audit saw 300 coupons waiting tried 64 s apart
    in_flight: int = 64
    rate: float | None = None  # requests per second the coupon system takes (None: no limit)


CONFIRMED = None  # what :meth:`CouponSystem.create` answers when the system holds the coupon


class CouponSystem(Protocol):
    """Where a campaign's coupons are created: one attempt at one coupon."""

    async def create(self, client: httpx.AsyncClient, coupon: Coupon) -> str | None:
        """``CONFIRMED`` once the system holds the coupon (a repeat of a coupon it holds too); otherwise
        why not, in a few words for the metrics (``status 503``, ``err_no 2190004``)."""
        ...


def ledger_body(campaign: Campaign, coupon: Coupon) -> dict[str, Any]:
    """The JSON SPEC §6 sends to the merchant's system for one coupon (money in yuan)."""
    t = coupon.terms
    body: dict[str, Any] = {"coupon_id": coupon.coupon_id, "user": coupon.user, "campaign": campaign.campaign,
                            "template": coupon.template, "title": coupon.title, "kind": t.kind.value}
    if t.kind is CouponKind.PERCENT:
        body["percent"] = t.percent
    else:
        body["amount"] = fen_to_yuan(t.amount)
    body.update(threshold=fen_to_yuan(t.threshold),
                max_discount=None if t.max_discount is None else fen_to_yuan(t.max_discount),
                scope=t.scope.to_json(), issued_at=iso(coupon.issued_at), expires_at=iso(coupon.expires_at))
    return body


def signed_headers(signer: Webhook, coupon_id: str, body: str, now: float) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``, and the idempotency key."""
    stamp = dt.datetime.fromtimestamp(int(now), tz=dt.UTC)
    return {"content-type": "application/json", "idempotency-key": coupon_id, "webhook-id": coupon_id,
            "webhook-timestamp": str(int(now)), "webhook-signature": signer.sign(coupon_id, stamp, body)}


def backoff_s(config: LedgerConfig, failures: int, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(max, first × 2^(failures − 1)))."""
    return rand() * min(config.max_backoff_s, config.first_backoff_s * 2.0 ** min(failures - 1, 32))


Confirmed = Callable[[Coupon], Awaitable[None]]
RATE_BURST_S = 0.1  # with a request rate, at most this many seconds' worth of requests at once


# The breaker holds back only a coupon that has failed this many times: its backoff is past a second by then (SPEC §6:
# it starts under 1 s). Holding any, it held eight coupons each refused once for 5 s, and one issued while another kept
# failing for 20 s.
HELD_AFTER = 3


class Breaker:
    """A circuit breaker in front of the merchant's system: after ``threshold`` failures in a row it
    opens, and for ``cooldown_s`` nothing is sent of the coupons that failed :data:`HELD_AFTER` times; then
    one probe goes (half-open), and its answer closes it again or reopens it. A merchant that is down gets
    one request per cooldown instead of one per long-failing coupon's backoff; a coupon whose next attempt
    is due (30 s after its last, SPEC §6) is sent all the same, and a coupon's first attempt and first retries
    never wait for it (:meth:`LedgerSender._work`)."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def wait_s(self) -> float:
        """How long a sender must wait before it may send (0: now; it then holds the probe if half-open)."""
        if self.opened_at is None:
            return 0.0
        left = self.opened_at + self.cooldown_s - self.clock()
        if left > 0 or self.probing:
            return max(left, 0.05)
        self.probing = True
        return 0.0

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failed(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at, self.probing = self.clock(), False


class SignedLedger:
    """The SPEC's request (§6): the coupon as JSON, signed as Standard Webhooks say, keyed by its id."""

    def __init__(self, config: LedgerConfig, campaign: Campaign, clock: Callable[[], float] = time.time) -> None:
        self.url = config.url
        self.campaign = campaign
        self.clock = clock
        self._signer = Webhook(config.secret)

    async def create(self, client: httpx.AsyncClient, coupon: Coupon) -> str | None:
        """A 2xx answer, or a 409 for this coupon, confirms it."""
        body = json.dumps(ledger_body(self.campaign, coupon), ensure_ascii=False, separators=(",", ":"))
        answer = await client.post(self.url, content=body.encode(),
                                   headers=signed_headers(self._signer, coupon.coupon_id, body, self.clock()))
        held = 200 <= answer.status_code < 300 or answer.status_code == 409
        return CONFIRMED if held else f"status {answer.status_code}"


class LedgerSender:
    """Creates coupons in the merchant's system until each is confirmed; ``confirmed`` hears each, once."""

    def __init__(self, config: LedgerConfig, campaign: Campaign, clock: Callable[[], float] = time.time,
                 system: CouponSystem | None = None) -> None:
        self.config = config
        self.campaign = campaign
        self.system = system or SignedLedger(config, campaign, clock)
        self.confirmed: Confirmed | None = None
        self.attempts = 0
        self.failures: Counter[str] = Counter()  # why attempts were not confirmed: reason -> attempts
        # (coupon, failures so far, when its next attempt is due at the latest: SPEC §6's 30 s after the last one)
        self._queue: asyncio.Queue[tuple[Coupon, int, float]] = asyncio.Queue()
        self._pending: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.breaker = Breaker(clock=time.monotonic)
        self._rate = None if config.rate is None else CellRate(config.rate, burst_s=RATE_BURST_S)

    @property
    def report_secret(self) -> str | None:
        """The secret the merchant signs its redemption reports with: the signing secret of the SPEC's
        requests; None for a platform's API (Douyin's secret is the app's, not a webhook key)."""
        return self.config.secret if isinstance(self.system, SignedLedger) else None

    @property
    def waiting(self) -> int:
        """Coupons not yet confirmed (queued, in flight or backing off)."""
        return len(self._pending)

    def enqueue(self, coupons: list[Coupon]) -> None:
        for coupon in coupons:
            if coupon.coupon_id not in self._pending:
                self._pending.add(coupon.coupon_id)
                self._queue.put_nowait((coupon, 0, self._due()))

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.config.timeout_s)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.config.in_flight)]

    async def stop(self) -> None:
        await cancel_quietly(*self._tasks)
        if self._client is not None:
            await self._client.aclose()

    async def _work(self) -> None:
        while True:
            coupon, failures, due = await self._queue.get()
            while (failures >= HELD_AFTER and (wait := self.breaker.wait_s()) > 0
                   and (left := due - time.monotonic()) > 0):
                await asyncio.sleep(min(wait, left))  # the breaker holds a coupon back, never past its due time (it
                # held each for its probes' turn: 5 s × the coupons pending, 66 s seen)
            if self._rate is not None:  # the system's request rate: wait for this request's turn
                now = time.monotonic()
                await asyncio.sleep(self._rate.schedule("", now) - now)
            sent = await self._send(coupon)
            (self.breaker.succeeded if sent else self.breaker.failed)()
            if sent:
                self._pending.discard(coupon.coupon_id)
                if self.confirmed is not None:
                    with contextlib.suppress(Exception):
                        await self.confirmed(coupon)
                continue
            delay = backoff_s(self.config, failures + 1)
            asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, (coupon, failures + 1, self._due()))

    def _due(self) -> float:
        """When an attempt is due at the latest, from now (the last attempt, or the coupon's issue)."""
        return time.monotonic() + self.config.max_backoff_s

    async def _send(self, coupon: Coupon) -> bool:
        """One attempt: True when the system confirmed the coupon."""
        assert self._client is not None
        self.attempts += 1
        # The timeout bounds the whole attempt: httpx's bounds each read, and a merchant sending its answer a byte at
        # a time held one for 20 s (and a sender's slot, for as long as it kept sending). asyncio.timeout, not
        # wait_for: wait_for took an answer arriving as the sender was cancelled, and the sender never stopped.
        try:
            async with asyncio.timeout(self.config.timeout_s):
                why = await self.system.create(self._client, coupon)
        except (httpx.HTTPError, TimeoutError) as exc:
            log.info("ledger: %s for %s; will retry", type(exc).__name__, coupon.coupon_id)
            why = "timeout" if isinstance(exc, (httpx.TimeoutException, TimeoutError)) else "transport"
        except Exception:  # never lose the worker: the coupon is tried again
            log.exception("ledger: sending %s failed; will retry", coupon.coupon_id)
            why = "error"
        if why is not CONFIRMED:
            self.failures[why] += 1
        return why is CONFIRMED
