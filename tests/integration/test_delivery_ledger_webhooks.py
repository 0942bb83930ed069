"""With a campaign ``ledger``, the merchant webhook ``coupon.issued`` follows the ledger's confirmation, as the
popup does (SPEC §6): the merchant is never told of a coupon its coupon system does not hold yet; it is told
once the system does, after a restart too."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from livecoupon.campaign_file import parse_campaign
from livecoupon.delivery.ledger import LedgerConfig, LedgerSender
from livecoupon.delivery.webhooks import WebhookConfig, WebhookSender
from support.apps import serving as serving_app
from support.credentials import PLATFORM
from support.receiver import Receiver
from support.shop import SHOP
from support.waiting import wait_until

SECRET = "whsec_" + base64.b64encode(b"merchant-signing-key-of-32-bytes").decode()
T0 = 1_700_000_000


@contextlib.contextmanager
def serving(db: Path, ledger_url: str, hooks_url: str) -> Iterator[TestClient]:
    """The shop with its ledger at ``ledger_url`` and its merchant webhook at ``hooks_url``, on ``db``."""
    campaign = parse_campaign(SHOP + f'ledger: {{url: "{ledger_url}", secret_env: SHOP_SECRET}}\n')
    ledger = LedgerSender(LedgerConfig(ledger_url, SECRET, max_backoff_s=0.2), campaign)
    webhooks = WebhookSender(WebhookConfig(hooks_url, "hook-secret"), store_path=db)
    with serving_app(db, campaign=campaign, ledger=ledger, webhooks=webhooks, headers=PLATFORM) as client:
        yield client


def join(client: TestClient, user: str) -> str:
    answer = client.post("/v1/events", json=[{"type": "live_start", "room": "room-1", "ts": T0},
                                             {"type": "join", "room": "room-1", "ts": T0 + 1, "user": user}]).json()
    [coupon_id] = [d["coupon_id"] for d in answer["decisions"] if d["issued"]]
    return str(coupon_id)


def test_the_issued_webhook_waits_for_the_ledger_to_confirm_the_coupon(tmp_path: Path) -> None:
    confirms = {"now": False}
    with (Receiver(lambda key, attempt: 201 if confirms["now"] else 503) as system,
          Receiver(lambda key, attempt: 200) as hooks, serving(tmp_path / "d.db", system.url, hooks.url) as client):
        coupon_id = join(client, "ann")
        wait_until(lambda: len(system.received) >= 4, "the ledger's attempts")
        told_before = list(hooks.received)
        confirms["now"] = True
        wait_until(lambda: hooks.accepted()[coupon_id] == 1, "the webhook, once confirmed")
    assert told_before == []
    assert [r.key for r in hooks.received] == [coupon_id]


def test_after_a_restart_an_unconfirmed_coupons_webhook_still_waits_for_its_confirmation(tmp_path: Path) -> None:
    confirms = {"now": False}
    with (Receiver(lambda key, attempt: 201 if confirms["now"] else 503) as system,
          Receiver(lambda key, attempt: 200) as hooks):
        with serving(tmp_path / "d.db", system.url, hooks.url) as client:
            coupon_id = join(client, "bob")
            wait_until(lambda: len(system.received) >= 2, "the ledger's attempts")
        tried = len(system.received)
        with serving(tmp_path / "d.db", system.url, hooks.url):  # owed: the coupon, not its webhook yet
            wait_until(lambda: len(system.received) >= tried + 2, "the ledger's attempts after the restart")
            told_before = list(hooks.received)
            confirms["now"] = True
            wait_until(lambda: hooks.accepted()[coupon_id] == 1, "the webhook, once confirmed")
    assert told_before == []
    assert [r.key for r in hooks.received] == [coupon_id]
