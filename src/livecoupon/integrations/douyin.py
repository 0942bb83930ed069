"""Douyin Open Platform's 「开发者接口发券」(send a coupon to a designated user) as the merchant's ledger.

A campaign whose ``ledger`` says ``platform: douyin`` creates each issued coupon in the
merchant's Douyin mini-app coupons instead of POSTing the SPEC's signed request (docs/douyin.md
has the set-up and the sources, read 2026-11-30):

- ``POST {base}/api/promotion/v1/coupon/send_coupon_to_designated_user/`` with the header
  ``access-token: <client token>`` and the JSON body ``{"app_id", "open_id", "activity_id",
  "merchant_coupon_id"}``: ``open_id`` is livecoupon's user (a Douyin room's viewers are their
  mini-app open_ids), ``activity_id`` the 接口发券活动 the merchant created for the coupon's
  template (``activities`` maps each template to one), and ``merchant_coupon_id`` the coupon id,
  Douyin's idempotency key: a coupon sent again after a timeout is not created twice.
- The answer confirms the coupon when its ``err_no`` is 0. Any other ``err_no``, a non-200
  status, a body that is not JSON or no answer in time leaves it unconfirmed: the sender tries
  again with backoff, as it does for every coupon system (SPEC §6), and counts the attempt by
  its reason (``err_no 2190004``) in ``/metrics``.
- The client token (``POST {base}/oauth/client_token/`` with ``client_key``, the secret and
  ``grant_type: client_credential``) lives 2 hours; it is renewed 5 minutes before it expires
  (Douyin keeps the previous one valid that long) and at once when a send says it is invalid.
  One renewal at a time, whatever the number of senders.
- Douyin allows 100 requests a second per app: the campaign's ledger ``rate`` defaults to it,
  and the sender paces its requests to that rate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the campaign file reads the defaults below without the HTTP client
    import httpx

    from livecoupon.domain.coupons import Coupon

BASE_URL = "https://open.douyin.com"
TOKEN_PATH = "/oauth/client_token/"
SEND_PATH = "/api/promotion/v1/coupon/send_coupon_to_designated_user/"
RATE = 100.0  # requests a second per app (the send API's documented limit)
TOKEN_LIFE_S = 7_200.0  # when an answer gives no expires_in
RENEW_EARLY_S = 300.0
TOKEN_INVALID = frozenset({28001003})  # "access_token无效": renew the token before the next attempt

log = logging.getLogger("livecoupon.ledger.douyin")


@dataclass(frozen=True, slots=True)
class DouyinApp:
    """The merchant's mini-app: its ids, secret, and the send activity of each coupon template."""

    app_id: str
    client_key: str
    client_secret: str
    activities: Mapping[str, str]  # template name -> activity_id
    base_url: str = BASE_URL


class DouyinLedger:
    """One attempt at one coupon through Douyin's send API (a :class:`~livecoupon.delivery.ledger.CouponSystem`)."""

    def __init__(self, app: DouyinApp, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self.tokens_fetched = 0
        self._token: str | None = None
        self._renew_at = 0.0
        self._renewing = asyncio.Lock()

    async def create(self, client: httpx.AsyncClient, coupon: Coupon) -> str | None:
        token = await self._access_token(client)
        if token is None:
            return "no client token"
        body = {"app_id": self.app.app_id, "open_id": coupon.user,
                "activity_id": self.app.activities[coupon.template], "merchant_coupon_id": coupon.coupon_id}
        answer = await client.post(self.app.base_url + SEND_PATH, json=body,
                                   headers={"access-token": token, "content-type": "application/json"})
        found = _json(answer)
        err_no = found.get("err_no") if answer.status_code == 200 else None
        if err_no == 0:
            return None
        if isinstance(err_no, int) and err_no in TOKEN_INVALID and self._token == token:
            self._token = None  # the next attempt fetches a new one
        log.warning("douyin: coupon %s not confirmed: HTTP %s, err_no %s %s (log_id %s); will retry",
                    coupon.coupon_id, answer.status_code, err_no, found.get("err_msg", ""), found.get("log_id"))
        return f"err_no {err_no}" if isinstance(err_no, int) else f"status {answer.status_code}"

    async def _access_token(self, client: httpx.AsyncClient) -> str | None:
        """The client token, fetched or renewed when due; None if Douyin would not give one now."""
        async with self._renewing:
            if self._token is not None and self.clock() < self._renew_at:
                return self._token
            answer = await client.post(self.app.base_url + TOKEN_PATH, json={
                "client_key": self.app.client_key, "client_secret": self.app.client_secret,
                "grant_type": "client_credential"})
            data = _json(answer).get("data")
            data = data if isinstance(data, dict) else {}
            token = data.get("access_token")
            if answer.status_code != 200 or not isinstance(token, str) or not token:
                log.warning("douyin: no client token: HTTP %s, %s", answer.status_code, answer.text[:200])
                return None
            self.tokens_fetched += 1
            life = _seconds(data.get("expires_in"))
            self._token, self._renew_at = token, self.clock() + max(life - RENEW_EARLY_S, life / 2)
            return token


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        found = answer.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _seconds(value: object) -> float:
    """``expires_in`` as Douyin sends it (a number, or a string of one); the default life otherwise."""
    if not isinstance(value, int | float | str):
        return TOKEN_LIFE_S
    try:
        seconds = float(value)
    except ValueError:
        return TOKEN_LIFE_S
    return seconds if seconds > 0 else TOKEN_LIFE_S
