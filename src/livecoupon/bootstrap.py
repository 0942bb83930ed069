"""The one place that wires things together and opens connections."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from standardwebhooks import Webhook

from livecoupon.api.app import create_app
from livecoupon.api.auth import Credentials
from livecoupon.api.throttle import Throttle
from livecoupon.delivery.ledger import LedgerConfig, LedgerSender
from livecoupon.delivery.webhooks import WebhookConfig, WebhookConfigError, WebhookSender
from livecoupon.domain.campaign import Campaign
from livecoupon.engine.clock import ClockMode
from livecoupon.service_layer.service import LiveService
from livecoupon.store.port import Store
from livecoupon.store.relational import RelationalStore
from livecoupon.store.sqlite import SqliteStore


def open_store(db: str | Path, url: str | None = None, name: str = "livecoupon") -> RelationalStore:
    """The embedded SQLite file, or with ``url`` (``postgresql://…``) the deployment ``name`` on PostgreSQL."""
    if url is None:
        return SqliteStore(db)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"--store {url!r}: only postgresql:// stores are supported")
    from livecoupon.store.postgres import PostgresStore

    return PostgresStore(url, name)


def build_service(campaign: Campaign, store: Store, clock: ClockMode = ClockMode.WALL) -> LiveService:
    return LiveService(campaign, store, clock)


def webhooks_from_env(db: str | Path | None) -> WebhookSender | None:
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


class LedgerSecretMissing(ValueError):
    """The campaign's ledger names a secret the environment does not hold."""


def ledger_from_env(campaign: Campaign) -> LedgerSender | None:
    """The merchant-ledger sender of a campaign with a ``ledger``, its secret from the environment."""
    if campaign.ledger is None:
        return None
    secret = os.environ.get(campaign.ledger.secret_env)
    if not secret:
        raise LedgerSecretMissing(f"ledger.secret_env: set {campaign.ledger.secret_env} to the merchant's signing "
                                  "secret (whsec_…)")
    try:
        Webhook(secret)
    except Exception:  # the library raises whatever base64 decoding raised
        raise LedgerSecretMissing(f"{campaign.ledger.secret_env}: not a Standard Webhooks secret "
                                  "(whsec_ followed by base64)") from None
    config = LedgerConfig(campaign.ledger.url, secret, timeout_s=campaign.ledger.timeout_ms / 1000)
    return LedgerSender(config, campaign)


def build_app(campaign: Campaign, db: str | Path, credentials: Credentials, clock: ClockMode = ClockMode.WALL,
              store_url: str | None = None, name: str = "livecoupon") -> FastAPI:
    """The service on SQLite (``db``) or PostgreSQL (``store_url``). Webhook dead letters are kept in
    the SQLite file; on PostgreSQL they are kept in memory (re-sent on start like any owed coupon)."""
    store = open_store(db, store_url, name)
    service = build_service(campaign, store, clock)
    return create_app(service, credentials=credentials, agora_secret=os.environ.get("LIVECOUPON_AGORA_SECRET"),
                      webhooks=webhooks_from_env(db if store_url is None else None), throttle=Throttle.from_env(),
                      ledger=ledger_from_env(campaign))
