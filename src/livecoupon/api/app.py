"""The HTTP and WebSocket app (SPEC §6): routers over one runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from livecoupon.api import campaigns, errors, monitoring, operator, public
from livecoupon.api.auth import Credentials
from livecoupon.api.bodies import BodyLimit
from livecoupon.api.lane import CheckoutLane
from livecoupon.api.merchant import merchant_router
from livecoupon.api.runtime import Runtime, WebhookPort, attach
from livecoupon.api.runtime import operator as operator_dependency
from livecoupon.api.schemas import CALLER_ERRORS, AdminHealthOut, HealthOut, answer, with_lean_bodies
from livecoupon.api.throttle import Throttle
from livecoupon.delivery.ledger import LedgerSender
from livecoupon.service_layer.port import Service

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
# Swagger UI 5 (it renders OpenAPI 3.1), as fastapi-offline ships it: /docs loads nothing from elsewhere. No /redoc:
# ReDoc's bundle fetches its logo from Redocly's CDN whatever it is told.
DOCS_FILES = Path(fastapi_offline.__file__).resolve().parent / "static"
DESCRIPTION = """直播间自动发券 — coupons issued automatically inside live streams.

Two WebSocket endpoints are not operations here, as OpenAPI cannot describe one:
`/v1/rooms/{room}/live` (a viewer's coupons, live) and `/v1/console/live` (the consoles' feed).
docs/api.md describes them: credentials, messages, close codes.
The integration endpoints are listed only where they are configured: `/v1/integrations/agora/ncs`
with an Agora NCS secret, `/v1/integrations/ledger/events` with a merchant ledger's secret."""


class App(FastAPI):
    """FastAPI, with the checkout lane (api/lane.py) taking its requests before FastAPI's own path does."""

    lane: CheckoutLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if lane is not None and scope["type"] == "http":
            route = lane.route(scope)
            if route is not None:
                await lane(scope, receive, send, route)
                return
        await super().__call__(scope, receive, send)


def create_app(service: Service, *, credentials: Credentials, agora_secret: str | None = None,
               webhooks: WebhookPort | None = None, throttle: Throttle | None = None,
               ledger: LedgerSender | None = None, merchant_secret: str | None = None,
               around: Sequence[Callable[[Runtime], contextlib.AbstractAsyncContextManager[object]]] = ()) -> FastAPI:
    """Wire the routes to ``service``; ``credentials`` say who may call what; ``ledger`` is the
    merchant's coupon system, for a campaign with a ``ledger`` (``merchant_secret`` alone: its reports
    are taken here, the coupons created elsewhere). ``around`` are entered, in order,
    before the runtime starts and left after it stops (scaled out: the bus, the worker)."""
    runtime = Runtime(service, credentials, webhooks, throttle=throttle or Throttle(), ledger=ledger)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for enter in around:
                await stack.enter_async_context(enter(runtime))
            await stack.enter_async_context(runtime.running())
            yield

    app = App(title="livecoupon", version="0.1.0", lifespan=lifespan, description=DESCRIPTION,
              docs_url=None, redoc_url=None)
    attach(app, runtime)
    errors.install(app)
    app.add_middleware(BodyLimit)
    app.state.monitoring = watch = monitoring.Monitoring(runtime)
    app.add_middleware(monitoring.RequestTimer, monitoring=watch)
    app.lane = CheckoutLane(app, runtime, watch.latency)

    @app.get("/health", tags=["ops"], response_model=None, responses=answer(HealthOut))
    async def health() -> dict[str, Any]:
        """Liveness for load balancers: no credential, and nothing about the campaign."""
        return {"ok": True}

    @app.get("/v1/admin/health", tags=["operator"], dependencies=[Depends(operator_dependency)], response_model=None,
             responses=answer(AdminHealthOut) | CALLER_ERRORS)
    async def admin_health() -> dict[str, Any]:
        return {"ok": True, "campaign": service.campaign.campaign, "campaigns": service.campaign_names,
                "events": service.events_applied,
                "connections": runtime.hub.connections, "popups_waiting": runtime.pacer.waiting,
                "clock": service.clock.mode.value, "now": service.now()}

    app.include_router(public.checkout_router)
    app.include_router(public.router)
    app.include_router(monitoring.router)
    app.include_router(operator.router)
    app.include_router(campaigns.router)
    app.include_router(operator.console_router)
    app.router.routes.append(public.viewer_socket)
    secret = ledger.report_secret if ledger is not None else merchant_secret  # (a gateway has only the secret)
    if secret is not None:
        app.include_router(merchant_router(secret))
    if agora_secret:
        from livecoupon.api.agora import agora_router

        async def submit_agora(events: list[dict[str, Any]]) -> object:
            return await service.call(service.submit, events)

        app.include_router(agora_router(agora_secret, submit_agora))
    app.mount("/web", StaticFiles(directory=STATIC, html=True, check_dir=False), name="web")
    serve_reference(app)
    document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_lean_bodies(document())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def serve_reference(app: FastAPI) -> None:
    """``/docs``: Swagger UI over ``/openapi.json``, its files served from here."""
    app.mount("/docs-files", StaticFiles(directory=DOCS_FILES), name="docs-files")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that serves the app under a prefix
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — API",
                                   swagger_js_url=f"{root}/docs-files/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-files/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-files/favicon.png")
