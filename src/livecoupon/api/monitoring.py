"""``GET /metrics`` (SPEC §6): Prometheus text for operations, behind the operator key.

Counters are read at scrape time from what the service keeps anyway (events applied,
the per-trigger decision counts of the consoles), so a scrape never walks the log. HTTP
latency is one histogram per route template (never per raw path, so a scanner cannot
blow up the label set).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecoupon.api.runtime import operator
from livecoupon.api.schemas import CALLER_ERRORS

if TYPE_CHECKING:
    from livecoupon.api.runtime import Runtime

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Monitoring:
    """One registry per app: the runtime's counters and the HTTP latency histogram."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_RuntimeCollector(runtime))
        self.latency = Histogram("livecoupon_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        service = rt.service
        yield CounterMetricFamily("livecoupon_events_applied", "Events and operator commands applied since start "
                                  "(the log re-applied at start included)", value=service.events_applied)
        decisions = CounterMetricFamily("livecoupon_decisions", "Decisions by campaign, trigger and outcome",
                                        labels=["campaign", "trigger", "outcome", "reason"])
        for campaign, stats in rt.campaign_stats.items():
            for trigger, n in sorted(stats.issued.items()):
                decisions.add_metric([campaign, trigger, "issued", ""], n)
            for trigger, reasons in sorted(stats.suppressed.items()):
                for reason, n in sorted(reasons.items()):
                    decisions.add_metric([campaign, trigger, "suppressed", reason], n)
        yield decisions
        versions = GaugeMetricFamily("livecoupon_campaign_version", "The campaign version in force (1: the file at "
                                     "start; each publish adds one)", labels=["campaign"])
        for campaign in service.campaign_names:
            versions.add_metric([campaign], service.version_of(campaign))
        yield versions
        yield GaugeMetricFamily("livecoupon_viewer_sockets", "Viewer WebSocket connections", value=rt.hub.connections)
        yield GaugeMetricFamily("livecoupon_console_sockets", "Console WebSocket connections", value=len(rt.consoles))
        yield GaugeMetricFamily("livecoupon_popups_waiting", "Popups held by pacing", value=rt.pacer.waiting)
        due = service.next_due
        yield GaugeMetricFamily("livecoupon_timer_lag_seconds", "How far the service's clock is past the earliest "
                                "due timer (0 when none is due)",
                                value=max(0.0, (service.now() - due) / 1000) if due is not None else 0.0)
        if rt.webhooks is not None:
            yield GaugeMetricFamily("livecoupon_webhook_dead_letters", "Merchant webhooks that gave up",
                                    value=len(rt.webhooks.dead_letters()))
        if rt.ledger is not None:
            yield GaugeMetricFamily("livecoupon_ledger_unconfirmed", "Coupons the merchant's coupon system has not "
                                    "confirmed yet (queued, in flight or backing off)", value=rt.ledger.waiting)
            yield CounterMetricFamily("livecoupon_ledger_attempts", "Creation requests sent to the merchant's "
                                      "coupon system", value=rt.ledger.attempts)
            failed = CounterMetricFamily("livecoupon_ledger_failures", "Creation requests the merchant's coupon "
                                         "system did not confirm, by reason (status, err_no, timeout, transport)",
                                         labels=["reason"])
            for reason, n in sorted(rt.ledger.failures.items()):
                failed.add_metric([reason], n)
            yield failed
            yield GaugeMetricFamily("livecoupon_ledger_breaker_open", "1 while the circuit breaker in front of "
                                    "the merchant's coupon system is open", value=int(rt.ledger.breaker.is_open))


class RequestTimer:
    """ASGI middleware timing every HTTP request into ``Monitoring.latency``."""

    def __init__(self, app: ASGIApp, monitoring: Monitoring) -> None:
        self.app = app
        self.monitoring = monitoring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.monitoring.latency.labels(scope["method"], route, f"{status // 100}xx").observe(
                time.perf_counter() - started)


router = APIRouter(tags=["operator"])
_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text"}}


@router.get("/metrics", dependencies=[Depends(operator)], response_class=Response,
            responses=_TEXT | CALLER_ERRORS)
async def metrics(request: Request) -> Response:
    """Events applied, decisions by trigger and outcome, sockets, timer lag, HTTP latency histograms."""
    monitoring: Monitoring = request.app.state.monitoring
    return Response(monitoring.text(), media_type=CONTENT_TYPE_LATEST)
