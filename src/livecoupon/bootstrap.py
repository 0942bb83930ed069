"""The one place that wires things together and opens connections."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from livecoupon.api.app import create_app
from livecoupon.api.auth import Credentials
from livecoupon.api.throttle import Throttle
from livecoupon.delivery.webhooks import WebhookConfig, WebhookConfigError, WebhookSender
from livecoupon.domain.campaign import Campaign
from livecoupon.engine.clock import ClockMode
from livecoupon.service import LiveService
from livecoupon.store.sqlite import SqliteStore


def build_service(campaign: Campaign, db: str | Path, clock: ClockMode = ClockMode.WALL) -> LiveService:
    return LiveService(campaign, SqliteStore(db), clock)


def webhooks_from_env(db: str | Path) -> WebhookSender | None:
    """Merchant webhooks, when ``LIVECOUPON_WEBHOOK_URL`` and ``LIVECOUPON_WEBHOOK_SECRET`` are set.

    16 attempts, backing off up to 5 minutes apart: at most ~34 minutes of waiting before a dead letter.
    """
    url, secret = os.environ.get("LIVECOUPON_WEBHOOK_URL"), os.environ.get("LIVECOUPON_WEBHOOK_SECRET")
    if not url:
        return None
    if not secret:
        raise WebhookConfigError("secret", "set LIVECOUPON_WEBHOOK_SECRET to sign webhooks to " + url)
    config = WebhookConfig(url, secret, max_attempts=16, max_backoff_s=300)
    return WebhookSender(config, store_path=db)


def build_app(campaign: Campaign, db: str | Path, credentials: Credentials,
              clock: ClockMode = ClockMode.WALL) -> FastAPI:
    service = build_service(campaign, db, clock)
    return create_app(service, credentials=credentials, agora_secret=os.environ.get("LIVECOUPON_AGORA_SECRET"),
                      webhooks=webhooks_from_env(db), throttle=Throttle.from_env())
