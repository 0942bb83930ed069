"""Routes for platforms, viewers and checkout: events, coupons, quotes, orders, the live socket."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from livecoupon.api.runtime import Runtime, RuntimeDep, cancel_quietly
from livecoupon.api.schemas import OrderActionIn, OrderIn, QuoteIn
from livecoupon.checkout import Answer, order_json, quote_json
from livecoupon.delivery.messages import coupon_message, iso
from livecoupon.delivery.websockets import Subscription, held_notice
from livecoupon.domain.coupons import Coupon, CouponKind
from livecoupon.domain.decisions import Decision
from livecoupon.domain.money import fen_to_yuan
from livecoupon.errors import Malformed, NotFound

MAX_EVENTS = 10_000
MAX_DECISIONS_LISTED = 1_000  # a 100,000-viewer firing is counted in the answer, not listed (see /v1/admin/decisions)
router = APIRouter(prefix="/v1")


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


def decision_summary(d: Decision) -> dict[str, Any]:
    r = d.request
    return {"coupon_id": r.coupon_id, "user": r.user, "issued": d.issued,
            "reason": d.reason.value if d.reason else None, "trigger": r.trigger, "room": r.room}


def _answer(answer: Answer) -> JSONResponse:
    status, body = answer
    return JSONResponse(body, status_code=status)


@router.post("/events", tags=["events"])
async def post_events(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Apply a JSON array of room events (≤ 10,000); decisions commit before the answer."""
    try:
        batch = json.loads(await request.body())
    except ValueError as exc:
        raise Malformed("invalid_json", f"body is not valid JSON: {exc}", "body") from None
    if not isinstance(batch, list):
        raise Malformed("not_an_array", "body must be a JSON array of events", "body")
    if len(batch) > MAX_EVENTS:
        raise Malformed("too_many_events", f"at most {MAX_EVENTS:,} events per request, got {len(batch):,}", "body")
    result = await rt.service.call(rt.service.submit, batch)
    made = result.decisions
    return {"accepted": result.accepted, "rejected": result.rejected,
            "issued": sum(1 for d in made if d.issued), "suppressed": sum(1 for d in made if not d.issued),
            "decisions": [decision_summary(d) for d in made[:MAX_DECISIONS_LISTED]],
            "decisions_listed": min(len(made), MAX_DECISIONS_LISTED)}


@router.get("/users/{user}/coupons", tags=["coupons"])
async def user_coupons(user: str, rt: RuntimeDep) -> dict[str, Any]:
    coupons = await rt.service.call(rt.service.checkout.coupons_of, user)
    now = rt.service.clock.now()
    return {"coupons": [coupon_json(c, now) for c in coupons]}


@router.get("/coupons/{coupon_id}", tags=["coupons"])
async def coupon_detail(coupon_id: str, rt: RuntimeDep) -> dict[str, Any]:
    service = rt.service
    coupon = await service.call(service.store.coupon, coupon_id)
    if coupon is None:
        raise NotFound("unknown_coupon", f"no coupon {coupon_id!r}", "coupon_id")
    history = await service.call(service.store.history, coupon_id)
    return coupon_json(coupon, service.clock.now()) | {"history": [
        {"at": iso(h.at), "state": h.state.value, "action": h.action, "order_id": h.order_id} for h in history]}


@router.post("/checkout/quote", tags=["checkout"])
async def checkout_quote(body: QuoteIn, rt: RuntimeDep) -> dict[str, Any]:
    result = await rt.service.call(rt.service.checkout.quote, body.user, [line.to_line() for line in body.cart])
    best = None if result.best is None else quote_json(result.best)
    return {"best": best, "usable": [quote_json(q) for q in result.usable], "subtotal": fen_to_yuan(result.subtotal)}


@router.post("/orders", tags=["checkout"], status_code=201)
async def create_order(body: OrderIn, rt: RuntimeDep) -> JSONResponse:
    cart = [line.to_line() for line in body.cart]
    checkout = rt.service.checkout
    return _answer(await rt.service.call(checkout.create_order, body.order_id, body.user, cart, body.coupon_id,
                                         body.idempotency_key))


@router.get("/orders/{order_id}", tags=["checkout"])
async def get_order(order_id: str, rt: RuntimeDep) -> dict[str, Any]:
    return order_json(await rt.service.call(rt.service.checkout.order, order_id))


@router.post("/orders/{order_id}/pay", tags=["checkout"])
async def pay(order_id: str, body: OrderActionIn, rt: RuntimeDep) -> JSONResponse:
    return _answer(await rt.service.call(rt.service.checkout.pay, order_id, body.idempotency_key))


@router.post("/orders/{order_id}/cancel", tags=["checkout"])
async def cancel(order_id: str, body: OrderActionIn, rt: RuntimeDep) -> JSONResponse:
    return _answer(await rt.service.call(rt.service.checkout.cancel, order_id, body.idempotency_key))


@router.post("/orders/{order_id}/refund", tags=["checkout"])
async def refund(order_id: str, body: OrderActionIn, rt: RuntimeDep) -> JSONResponse:
    return _answer(await rt.service.call(rt.service.checkout.refund, order_id, body.idempotency_key))


@router.websocket("/rooms/{room}/live")
async def live(websocket: WebSocket, room: str, user: Annotated[str, Query(min_length=1)]) -> None:
    """Pushes ``{"type": "coupon", …}`` to viewer ``user`` the moment a coupon is issued.

    On connect (and on unmute), coupons issued while the viewer was away and never
    acknowledged come first. The client answers ``{"type": "ack", "coupon_id"}`` per
    popup shown, and may send ``{"type": "mute", "minutes": n}`` / ``{"type": "unmute"}``.
    """
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()
    sub = rt.hub.subscribe(room, user)  # before reading the backlog, so nothing falls in between
    await _send_backlog(rt, sub)
    sender = asyncio.create_task(_send_all(websocket, sub.queue))
    try:
        while True:
            await _on_viewer_message(rt, sub, await websocket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        rt.hub.unsubscribe(sub)
        await cancel_quietly(sender)


async def _send_backlog(rt: Runtime, sub: Subscription) -> None:
    service = rt.service
    muted = rt.hub.is_muted(sub.room, sub.user)
    await rt.flush_acks()
    missed = await service.call(service.store.unacknowledged, sub.user, sub.room)
    now = service.clock.now()
    for coupon in missed:
        if coupon.is_usable(now):
            message = coupon_message(service.campaign, coupon) | {"missed": True}
            sub.queue.put_nowait(held_notice(message) if muted else message)


async def _on_viewer_message(rt: Runtime, sub: Subscription, text: str) -> None:
    try:
        message = json.loads(text)
        kind = message.get("type")
    except (ValueError, AttributeError):
        return
    service = rt.service
    if kind == "ack" and isinstance(message.get("coupon_id"), str):
        rt.acknowledge(message["coupon_id"], sub.user)
    elif kind == "mute":
        minutes = message.get("minutes", 30)
        minutes = minutes if isinstance(minutes, (int, float)) and minutes > 0 else 30
        rt.hub.mute(sub.room, sub.user, min(minutes * 60, service.campaign.delivery.max_mute_ms / 1000))
    elif kind == "unmute":
        rt.hub.unmute(sub.room, sub.user)
        await _send_backlog(rt, sub)


async def _send_all(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    sent: set[str] = set()
    while True:
        message = await queue.get()
        if message["type"] == "coupon":
            if message["coupon_id"] in sent and message.get("missed"):
                continue  # published live while the backlog was being read
            sent.add(message["coupon_id"])
        await websocket.send_json(message)
