"""The HTTP and WebSocket API (SPEC §6). Routes only translate requests into core calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from livecoupon.api import errors
from livecoupon.api.schemas import ManualIssueIn, OrderActionIn, OrderIn, QuoteIn, TriggerSwitchIn
from livecoupon.checkout import Answer, order_json, quote_json
from livecoupon.delivery.messages import coupon_message, iso
from livecoupon.delivery.websockets import Hub
from livecoupon.domain.coupons import Coupon, CouponKind
from livecoupon.domain.decisions import Decision, coupon_of
from livecoupon.domain.money import fen_to_yuan
from livecoupon.engine.replay import decision_json as record_json
from livecoupon.errors import Malformed, NotFound, Unauthorized
from livecoupon.service import LiveService

MAX_EVENTS = 10_000
TICK_SECONDS = 0.02


def coupon_json(c: Coupon, now: int) -> dict[str, Any]:
    t = c.terms
    body: dict[str, Any] = {
        "coupon_id": c.coupon_id, "state": c.effective_state(now).value, "template": c.template, "title": c.title,
        "kind": t.kind.value, "threshold": fen_to_yuan(t.threshold), "scope": t.scope.to_json(),
        "issued_at": iso(c.issued_at), "expires_at": iso(c.expires_at), "room": c.room, "trigger": c.trigger,
        "order_id": c.order_id,
    }
    if t.kind is CouponKind.PERCENT:
        body.update(percent=t.percent, max_discount=None if t.max_discount is None else fen_to_yuan(t.max_discount))
    else:
        body["amount"] = fen_to_yuan(t.amount)
    return body


def decision_json(d: Decision) -> dict[str, Any]:
    r = d.request
    return {"coupon_id": r.coupon_id, "user": r.user, "issued": d.issued,
            "reason": d.reason.value if d.reason else None, "trigger": r.trigger, "room": r.room}


def _answer(answer: Answer) -> JSONResponse:
    status, body = answer
    return JSONResponse(body, status_code=status)


def create_app(service: LiveService, *, api_key: str, agora_secret: str | None = None) -> FastAPI:
    """Wire the routes to ``service``; ``api_key`` guards the operator endpoints."""
    hub = Hub()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        service.listeners.append(lambda made: loop.call_soon_threadsafe(_push, made))
        await service.call(service.rebuild)
        ticker = asyncio.create_task(_tick_forever())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    def _push(decisions: list[Decision]) -> None:
        for d in decisions:
            if d.issued:
                hub.publish(d.request.room, d.request.user, coupon_message(service.campaign, coupon_of(d)))

    async def _tick_forever() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            due = service.engine.next_timer_due()
            if due is not None and due <= service.clock.now():
                await service.call(service.tick)

    def operator(x_api_key: Annotated[str | None, Header()] = None,
                 authorization: Annotated[str | None, Header()] = None) -> None:
        given = x_api_key or (authorization or "").removeprefix("Bearer ").strip()
        if not given or not secrets.compare_digest(given.encode(), api_key.encode()):
            raise Unauthorized("unauthorized", "a valid X-API-Key header is required", "X-API-Key")

    app = FastAPI(title="livecoupon", version="0.1.0", lifespan=lifespan,
                  description="直播间自动发券 — coupons issued automatically inside live streams.")
    errors.install(app)
    app.state.hub = hub
    app.state.service = service
    v1 = APIRouter(prefix="/v1")

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "campaign": service.campaign.campaign, "events": service.events_applied,
                "connections": hub.connections}

    @v1.post("/events", tags=["events"])
    async def post_events(request: Request) -> dict[str, Any]:
        """Apply a JSON array of room events (≤ 10,000); decisions commit before the answer."""
        try:
            batch = json.loads(await request.body())
        except ValueError as exc:
            raise Malformed("invalid_json", f"body is not valid JSON: {exc}", "body") from None
        if not isinstance(batch, list):
            raise Malformed("not_an_array", "body must be a JSON array of events", "body")
        if len(batch) > MAX_EVENTS:
            raise Malformed("too_many_events", f"at most {MAX_EVENTS:,} events per request, got {len(batch):,}",
                            "body")
        result = await service.call(service.submit, batch)
        return {"accepted": result.accepted, "rejected": result.rejected,
                "decisions": [decision_json(d) for d in result.decisions]}

    @v1.get("/users/{user}/coupons", tags=["coupons"])
    async def user_coupons(user: str) -> dict[str, Any]:
        coupons = await service.call(service.checkout.coupons_of, user)
        now = service.clock.now()
        return {"coupons": [coupon_json(c, now) for c in coupons]}

    @v1.get("/coupons/{coupon_id}", tags=["coupons"])
    async def coupon_detail(coupon_id: str) -> dict[str, Any]:
        coupon = await service.call(service.store.coupon, coupon_id)
        if coupon is None:
            raise NotFound("unknown_coupon", f"no coupon {coupon_id!r}", "coupon_id")
        history = await service.call(service.store.history, coupon_id)
        return coupon_json(coupon, service.clock.now()) | {"history": [
            {"at": iso(h.at), "state": h.state.value, "action": h.action, "order_id": h.order_id} for h in history]}

    @v1.post("/checkout/quote", tags=["checkout"])
    async def checkout_quote(body: QuoteIn) -> dict[str, Any]:
        result = await service.call(service.checkout.quote, body.user, [line.to_line() for line in body.cart])
        best = None if result.best is None else quote_json(result.best)
        return {"best": best, "usable": [quote_json(q) for q in result.usable],
                "subtotal": fen_to_yuan(result.subtotal)}

    @v1.post("/orders", tags=["checkout"], status_code=201)
    async def create_order(body: OrderIn) -> JSONResponse:
        cart = [line.to_line() for line in body.cart]
        return _answer(await service.call(service.checkout.create_order, body.order_id, body.user, cart,
                                          body.coupon_id, body.idempotency_key))

    @v1.get("/orders/{order_id}", tags=["checkout"])
    async def get_order(order_id: str) -> dict[str, Any]:
        return order_json(await service.call(service.checkout.order, order_id))

    @v1.post("/orders/{order_id}/pay", tags=["checkout"])
    async def pay(order_id: str, body: OrderActionIn) -> JSONResponse:
        return _answer(await service.call(service.checkout.pay, order_id, body.idempotency_key))

    @v1.post("/orders/{order_id}/cancel", tags=["checkout"])
    async def cancel(order_id: str, body: OrderActionIn) -> JSONResponse:
        return _answer(await service.call(service.checkout.cancel, order_id, body.idempotency_key))

    @v1.post("/orders/{order_id}/refund", tags=["checkout"])
    async def refund(order_id: str, body: OrderActionIn) -> JSONResponse:
        return _answer(await service.call(service.checkout.refund, order_id, body.idempotency_key))

    @v1.post("/admin/issue", tags=["operator"], dependencies=[Depends(operator)])
    async def manual_issue(body: ManualIssueIn) -> dict[str, Any]:
        """Issue a template to a list of users (operator; caps, stock and budget hold)."""
        made = await service.call(service.issue_manually, body.template, body.users, body.room,
                                  body.idempotency_key)
        issued = sum(1 for d in made if d.issued)
        return {"issued": issued, "suppressed": len(made) - issued, "decisions": [decision_json(d) for d in made]}

    @v1.get("/admin/campaign", tags=["operator"], dependencies=[Depends(operator)])
    async def campaign_status() -> dict[str, Any]:
        totals = await service.call(service.store.totals, service.campaign.campaign)
        c = service.campaign
        return {
            "campaign": c.campaign, "issued": totals.issued, "suppressed": totals.suppressed,
            "budget": {"spent": fen_to_yuan(totals.budget_spent),
                       "limit": None if c.limits.budget is None else fen_to_yuan(c.limits.budget)},
            "stock": {name: {"issued": totals.stock_used.get(name, 0), "stock": t.stock}
                      for name, t in c.coupons.items()},
            "triggers": [{"name": t.name, "when": t.when.value, "paused": t.name in service.engine.paused}
                         for t in c.triggers],
            "rooms": {name: {"on_air": r.on_air, "present": len(r.viewers)}
                      for name, r in service.engine.rooms.items()},
        }

    @v1.get("/admin/decisions", tags=["operator"], dependencies=[Depends(operator)])
    async def decisions() -> dict[str, Any]:
        """Every decision so far, in decision order, as ``livecoupon replay`` writes them."""
        records = await service.call(lambda: list(service.store.decisions(service.campaign.campaign)))
        return {"decisions": [record_json(r) | {"issued": r.issued, "coupon_id": r.coupon_id,
                                                  "broadcast": r.broadcast} for r in records]}

    @v1.post("/admin/triggers/{name}", tags=["operator"], dependencies=[Depends(operator)])
    async def switch_trigger(name: str, body: TriggerSwitchIn) -> dict[str, Any]:
        if all(t.name != name for t in service.campaign.triggers):
            raise NotFound("unknown_trigger", f"no trigger {name!r}", "name")
        await service.call(service.engine.paused.add if body.paused else service.engine.paused.discard, name)
        return {"name": name, "paused": body.paused}

    @v1.websocket("/rooms/{room}/live")
    async def live(websocket: WebSocket, room: str, user: Annotated[str, Query(min_length=1)]) -> None:
        """Pushes ``{"type": "coupon", …}`` to viewer ``user`` the moment a coupon is issued.

        On connect, coupons issued while the viewer was away and never acknowledged are
        sent first; the client answers ``{"type": "ack", "coupon_id"}`` for each shown.
        """
        await websocket.accept()
        sub = hub.subscribe(room, user)  # before reading the backlog, so nothing falls in between
        missed = await service.call(service.store.unacknowledged, user, room)
        now = service.clock.now()
        for coupon in missed:
            if coupon.is_usable(now):
                sub.queue.put_nowait(coupon_message(service.campaign, coupon) | {"missed": True})
        sender = asyncio.create_task(_send_all(websocket, sub.queue))
        try:
            while True:
                await _on_client_message(user, await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            hub.unsubscribe(sub)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _on_client_message(user: str, text: str) -> None:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            message = json.loads(text)
            if message.get("type") == "ack" and isinstance(message.get("coupon_id"), str):
                await service.call(service.store.acknowledge, message["coupon_id"], user, service.clock.now())

    app.include_router(v1)
    if agora_secret:
        from livecoupon.api.agora import agora_router

        async def submit_agora(events: list[dict[str, Any]]) -> object:
            return await service.call(service.submit, events)

        app.include_router(agora_router(agora_secret, submit_agora))
    return app


async def _send_all(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    sent: set[str] = set()
    while True:
        message = await queue.get()
        if message["coupon_id"] in sent:
            continue  # published live while the backlog was being read
        sent.add(message["coupon_id"])
        await websocket.send_json(message)
