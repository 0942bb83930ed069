"""The one place that wires things together and opens connections."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI
from standardwebhooks import Webhook

from livecoupon.api.app import create_app
from livecoupon.api.auth import Credentials
from livecoupon.api.throttle import Throttle
from livecoupon.cluster.partitions import DEFAULT_PARTITIONS, Role
from livecoupon.delivery.ledger import LedgerConfig, LedgerSender
from livecoupon.delivery.webhooks import WebhookConfig, WebhookConfigError, WebhookSender
from livecoupon.domain.campaign import Campaign
from livecoupon.engine.clock import ClockMode
from livecoupon.integrations.douyin import DouyinApp, DouyinLedger
from livecoupon.service_layer.service import LiveService, check_roster
from livecoupon.store.port import Store
from livecoupon.store.relational import RelationalStore
from livecoupon.store.sqlite import SqliteStore


def open_store(db: str | Path, url: str | None = None, name: str = "livecoupon",
               claims: str | None = None) -> RelationalStore:
    """The embedded SQLite file, or with ``url`` (``postgresql://…``) the deployment ``name`` on PostgreSQL;
    ``claims`` (``redis://…``, recorded for the deployment) keeps the claims' counters in Redis."""
    if url is None:
        if claims is not None:
            raise ValueError("--claims needs --store postgresql://…")
        return SqliteStore(db)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"--store {url!r}: only postgresql:// stores are supported")
    from livecoupon.store.postgres import PostgresStore

    return PostgresStore(url, name, claims=claims)


def build_service(campaign: Campaign | Sequence[Campaign], store: Store, clock: ClockMode = ClockMode.WALL,
                  source: str | dict[str, str] | None = None) -> LiveService:
    return LiveService(campaign, store, clock, source=source)


N = TypeVar("N", int, float)


def webhook_config_from_env() -> WebhookConfig | None:
    """Merchant webhooks, when ``LIVECOUPON_WEBHOOK_URL`` and ``LIVECOUPON_WEBHOOK_SECRET`` are set.

    16 attempts, backing off up to 5 minutes apart: at most ~34 minutes of waiting before a dead letter
    (``LIVECOUPON_WEBHOOK_MAX_ATTEMPTS`` and ``LIVECOUPON_WEBHOOK_MAX_BACKOFF_S`` change both).
    """
    url, secret = os.environ.get("LIVECOUPON_WEBHOOK_URL"), os.environ.get("LIVECOUPON_WEBHOOK_SECRET")
    if not url:
        return None
    if not secret:
        raise WebhookConfigError("secret", "set LIVECOUPON_WEBHOOK_SECRET to sign webhooks to " + url)
    attempts = _number_from_env("LIVECOUPON_WEBHOOK_MAX_ATTEMPTS", "max_attempts", 16, int)
    ceiling = _number_from_env("LIVECOUPON_WEBHOOK_MAX_BACKOFF_S", "max_backoff_s", 300.0, float)
    return WebhookConfig(url, secret, max_attempts=attempts, max_backoff_s=ceiling,
                         initial_backoff_s=min(0.5, ceiling))


def _number_from_env(variable: str, field: str, default: N, parse: Callable[[str], N]) -> N:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        return parse(text)
    except ValueError:
        raise WebhookConfigError(field, f"{variable} must be a number, got {text!r}") from None


def webhooks_from_env(db: str | Path | None, store_url: str | None = None,
                      name: str = "livecoupon") -> WebhookSender | None:
    """The merchant-webhook sender of one process: what became of each coupon kept in the SQLite file
    (``db``), or with ``store_url`` on PostgreSQL under deployment ``name``, or (neither) in memory."""
    config = webhook_config_from_env()
    if config is None:
        return None
    if store_url is None:
        return WebhookSender(config, store_path=db)
    from livecoupon.store.postgres_webhooks import PostgresWebhookOutcomes

    return WebhookSender(config, outcomes=PostgresWebhookOutcomes(store_url, name, log=""))


class LedgerSecretMissing(ValueError):
    """The campaign's ledger names a secret the environment does not hold."""


def ledger_from_env(campaign: Campaign) -> LedgerSender | None:
    """The merchant-ledger sender of a campaign with a ``ledger``, its secret from the environment."""
    ledger = campaign.ledger
    if ledger is None:
        return None
    secret = os.environ.get(ledger.secret_env)
    config = LedgerConfig(ledger.url, secret or "", timeout_s=ledger.timeout_ms / 1000, rate=ledger.rate)
    if ledger.platform == "douyin":
        if not secret:
            raise LedgerSecretMissing(f"ledger.secret_env: set {ledger.secret_env} to the Douyin app's client_secret "
                                      "(AppSecret)")
        assert ledger.app_id is not None and ledger.client_key is not None  # the campaign file requires them
        app = DouyinApp(ledger.app_id, ledger.client_key, secret, dict(ledger.activities), ledger.url)
        return LedgerSender(config, campaign, system=DouyinLedger(app))
    if not secret:
        raise LedgerSecretMissing(f"ledger.secret_env: set {ledger.secret_env} to the merchant's signing "
                                  "secret (whsec_…)")
    try:
        Webhook(secret)
    except Exception:  # the library raises whatever base64 decoding raised
        raise LedgerSecretMissing(f"{ledger.secret_env}: not a Standard Webhooks secret "
                                  "(whsec_ followed by base64)") from None
    return LedgerSender(config, campaign)


CLOCK_SLACK_MS = 60_000  # how far a log may run ahead of the machine's clock at a wall-clock start (a clock set back)


class LogAheadOfClock(ValueError):
    """A store whose log runs ahead of the machine's clock, served with ``--clock wall``."""


def check_log_not_ahead(store: RelationalStore, now_ms: int) -> None:
    """Refuse a wall-clock start on a log that runs ahead of the machine's clock (it was served with ``--clock event``
    on a stream stamped ahead): the service's time never goes back, so every event would be applied at the log's
    future time — coupons valid that much too long, timers late (SPEC §2: the service's time is the machine's)."""
    # the service's own log's last entry, read backwards on its index (every log's names were a scan of the whole
    # table at each start)
    times = [round(entry["ts"] * 1000) for entry in store.last_entries([store.log])]
    ahead = max(times, default=now_ms) - now_ms
    if ahead > CLOCK_SLACK_MS:
        raise LogAheadOfClock(
            f"此数据库的日志时间比本机时钟晚 {ahead / 60_000:,.0f} 分钟（曾以 --clock event 运行）：请用 --clock event "
            f"启动，或换一个新数据库 / its log runs {ahead / 60_000:,.0f} min ahead of this machine's clock (it was "
            "served with --clock event): serve it with --clock event, or start a new store")


def build_app(campaign: Campaign | Sequence[Campaign], db: str | Path, credentials: Credentials,
              clock: ClockMode = ClockMode.WALL, store_url: str | None = None, name: str = "livecoupon",
              source: str | dict[str, str] | None = None, claims: str | None = None) -> FastAPI:
    """The service of one campaign or several (each campaign file's text in ``source``, by id) on SQLite
    (``db``) or PostgreSQL (``store_url``, its claims' counters in Redis with ``claims``); merchant webhooks'
    dead letters and deliveries are kept beside the store (store/webhooks.py, store/postgres_webhooks.py)."""
    store = open_store(db, store_url, name, claims)
    service = build_service(campaign, store, clock, source)
    service.check_roster()  # before serving: a campaign dropped from the configuration is refused
    if clock is ClockMode.WALL:
        check_log_not_ahead(store, round(time.time() * 1000))
    return create_app(service, credentials=credentials, agora_secret=os.environ.get("LIVECOUPON_AGORA_SECRET"),
                      webhooks=webhooks_from_env(db, store_url, name), throttle=Throttle.from_env(),
                      ledger=ledger_from_env(service.base))


@dataclass(frozen=True, slots=True)
class Scale:
    """How a scaled-out process takes part (SPEC §7)."""

    bus: str
    role: Role = Role.ALL
    partitions: int = DEFAULT_PARTITIONS


def build_cluster_app(campaign: Campaign | Sequence[Campaign], credentials: Credentials, store_url: str, name: str,
                      scale: Scale, clock: ClockMode = ClockMode.WALL, source: str | dict[str, str] | None = None,
                      claims: str | None = None) -> FastAPI:
    """A gateway, a worker, or both, over PostgreSQL (``store_url``) and NATS JetStream (``scale.bus``);
    ``claims`` (``redis://…``) moves the deployment's claims' counters to Redis, for every process of it."""
    from livecoupon.cluster.bus import Bus
    from livecoupon.cluster.gateway import GatewayService
    from livecoupon.cluster.leases import deployment_partitions
    from livecoupon.cluster.partitions import Subjects
    from livecoupon.cluster.worker import Worker, worker_app
    from livecoupon.store.postgres import PostgresStore

    if not store_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("--bus needs --store postgresql://…: workers share the ledger and the logs there")
    campaigns = [campaign] if isinstance(campaign, Campaign) else list(campaign)
    # ``claims`` recorded (the workers' partitions claim through it); and before serving, as on one machine, a
    # campaign the deployment ran and the configuration drops is refused. A gateway keeps this store as its own.
    deployment = PostgresStore(store_url, name, claims=claims)
    try:
        check_roster(deployment.roster(), [c.campaign for c in campaigns])
    except BaseException:
        deployment.close()
        raise
    bus = Bus(scale.bus, Subjects(name))
    # the workers create coupons in the merchant's system; a gateway takes the merchant's reports
    ledger = ledger_from_env(campaigns[0])  # (a campaign with a ledger runs in a deployment of its own)
    # the workers send each issued coupon's webhook; a gateway lists and retries the deployment's dead letters
    webhook_config = webhook_config_from_env()

    @contextlib.asynccontextmanager
    async def connected(runtime: Any) -> AsyncIterator[None]:
        await bus.connect()
        try:
            yield
        finally:
            await bus.close()

    around: list[Callable[[Any], contextlib.AbstractAsyncContextManager[object]]] = [connected]
    worker = None
    if scale.role is not Role.GATEWAY:
        worker = Worker(campaigns, store_url, name, bus, clock=clock, partitions=scale.partitions, ledger=ledger,
                        webhooks=webhook_config)
    if scale.role is Role.WORKER:
        assert worker is not None
        deployment.close()
        return worker_app(worker, credentials, around=[connected, lambda runtime: worker.running()])
    partitions = deployment_partitions(store_url, name, scale.partitions)
    gateway = GatewayService(campaigns, deployment, bus, clock, partitions=partitions, source=source)

    @contextlib.asynccontextmanager
    async def listening(runtime: Any) -> AsyncIterator[None]:
        gateway.confirmed_listeners.append(runtime.pop_up_confirmed)
        async with gateway.listening():
            yield

    around.append(listening)
    if worker is not None:
        around.append(lambda runtime: worker.running())
    resender = None
    if webhook_config is not None:
        from livecoupon.store.postgres_webhooks import PostgresWebhookOutcomes

        resender = WebhookSender(webhook_config, outcomes=PostgresWebhookOutcomes(store_url, name, log=None),
                                 resends_only=True)
    return create_app(gateway, credentials=credentials, agora_secret=os.environ.get("LIVECOUPON_AGORA_SECRET"),
                      throttle=Throttle.from_env(), around=around, webhooks=resender,
                      merchant_secret=ledger.report_secret if ledger is not None else None)
