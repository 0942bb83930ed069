"""Routes for platforms, viewers and checkout: events, coupons, quotes, orders, the live socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Path, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from livecoupon.api.auth import Caller, Role, require, require_user
from livecoupon.api.batches import read_batch
from livecoupon.api.runtime import (
    BINARY_REFUSED,
    LEAN_SECURITY,
    CallerDep,
    Runtime,
    RuntimeDep,
    caller_from,
    client_address,
    identify,
    is_json,
    platform,
    text_frame,
)
from livecoupon.api.schemas import (
    BODY_ERRORS,
    CALLER_ERRORS,
    EVENTS_BODY,
    PARAM_ERRORS,
    CommentIn,
    CouponDetailOut,
    CouponsOut,
    EventsOut,
    OrderActionIn,
    OrderIn,
    OrderOut,
    QuoteIn,
    QuoteOut,
    answer,
    errors,
    lean_body,
)
from livecoupon.api.segments import SegmentRoute, SegmentWebSocketRoute
from livecoupon.delivery.messages import coupon_message, iso
from livecoupon.delivery.websockets import BadMessage, Subscription, held_notice, mute_seconds
from livecoupon.domain.coupons import Coupon, CouponKind, history_seen
from livecoupon.domain.decisions import Decision
from livecoupon.domain.events import CAMPAIGN_WIDE, MAX_NAME, is_clean_text
from livecoupon.domain.money import fen_to_yuan
from livecoupon.errors import Forbidden, Malformed, NotFound, TooManyRequests
from livecoupon.service_layer.checkout import Answer, order_json, quote_json
from livecoupon.service_layer.service import Submitted
from livecoupon.tasks import cancel_quietly

MAX_DECISIONS_LISTED = 1_000  # a 100,000-viewer firing is counted in the answer, not listed (see /v1/admin/decisions)
router = APIRouter(prefix="/v1", responses=CALLER_ERRORS, route_class=SegmentRoute)

RoomPath = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]
UserPath = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]  # no event names a longer user (SPEC §2)
encode_json = msgspec.json.Encoder().encode  # answers of the hot routes (and the checkout lane)
M = TypeVar("M", bound=BaseModel)


async def user_caller(caller: CallerDep) -> Caller:
    """A credential that acts for users (the operator's, the platform's, a viewer's), checked before the body
    is: a caller it does not admit gets its 401 or 403 whatever the body holds (SPEC §6). Whether a viewer
    may act for the user named is the route's to check."""
    return require(caller, Role.OPERATOR, Role.PLATFORM, Role.VIEWER)


async def viewer_caller(caller: CallerDep) -> Caller:
    """A viewer's own token, checked before the body is."""
    return require(caller, Role.VIEWER)


UserCaller = Annotated[Caller, Depends(user_caller)]
ViewerCaller = Annotated[Caller, Depends(viewer_caller)]


def coupon_json(c: Coupon, now: int) -> dict[str, Any]:
    t = c.terms
    body: dict[str, Any] = {
        "coupon_id": c.coupon_id, "state": c.effective_state(now).value, "template": c.template, "title": c.title,
        "kind": t.kind.value, "threshold": fen_to_yuan(t.threshold), "scope": t.scope.to_json(),
        "issued_at": iso(c.issued_at), "expires_at": iso(c.expires_at), "room": c.room, "trigger": c.trigger,
        "order_id": None if c.has_lapsed(now) else c.order_id,  # as the lapse, once written, leaves it
    }
    if t.kind is CouponKind.PERCENT:
        body.update(percent=t.percent, max_discount=None if t.max_discount is None else fen_to_yuan(t.max_discount))
    else:
        body["amount"] = fen_to_yuan(t.amount)
    return body


def decision_summary(d: Decision) -> dict[str, Any]:
    r = d.request
    return {"coupon_id": r.coupon_id, "user": r.user, "issued": d.issued,
            "reason": d.reason.value if d.reason else None, "trigger": r.trigger, "room": r.room,
            "campaign": r.campaign}


def _answer(result: Answer) -> Response:
    """A checkout answer as JSON (msgspec writes the compact UTF-8 text ``JSONResponse`` would, ~5× faster)."""
    status, body = result
    return Response(encode_json(body), status, media_type="application/json")


@router.post("/events", tags=["events"], response_model=None,
             responses=answer(EventsOut) | answer(EventsOut, 202) | BODY_ERRORS | errors(503),
             dependencies=[Depends(platform)], openapi_extra={"requestBody": EVENTS_BODY})
async def post_events(request: Request, rt: RuntimeDep) -> Response:
    """Apply a JSON array of room events (≤ 10,000); decisions commit before the answer.

    The platform key (or the operator's). Each bad event is rejected on its own, with
    its index and the field at fault; the others are applied.
    """
    batch = read_batch(await request.body())
    result = await rt.service.call(rt.service.submit, batch)
    # scaled out, while a worker fails over: on the bus, decisions to follow (SPEC §7)
    return Response(encode_json(submitted_json(result)), 202 if result.queued else 200, media_type="application/json")


def submitted_json(result: Submitted) -> dict[str, Any]:
    made = result.decisions[:MAX_DECISIONS_LISTED]
    answer = {"accepted": result.accepted, "rejected": result.rejected,
              "issued": result.issued, "suppressed": result.suppressed,
              "decisions": [decision_summary(d) for d in made], "decisions_listed": len(made)}
    if result.queued:
        answer["queued"] = True
    return answer


@router.post("/rooms/{room}/comments", tags=["viewers"], response_model=None,
             responses=answer(EventsOut) | BODY_ERRORS | errors(409))
async def post_comment(room: RoomPath, body: CommentIn, viewer: ViewerCaller, rt: RuntimeDep) -> dict[str, Any]:
    """A viewer's chat message, with their own token: the user comes from the token and the
    time from the service's clock, so a viewer can neither speak for another nor move time; and only
    while the platform has them in the room (409 ``not_in_room``): a token never makes its user present.
    The answer tells the viewer's own decisions alone: the message may fire timers due for others,
    whose coupons and reasons (``risk``, ``blocked``) are theirs."""
    service = rt.service
    result = await service.call(service.viewer_comment, room, viewer.user, body.text)
    if result.rejected:
        error: str = result.rejected[0]["error"]
        raise Malformed("invalid_comment", error, "room" if error.startswith("room:") else "text")
    return submitted_json(Submitted(result.accepted, decisions=[d for d in result.decisions
                                                                if d.request.user == viewer.user]))


@router.get("/users/{user}/coupons", tags=["coupons"], response_model=None,
            responses=answer(CouponsOut) | PARAM_ERRORS)
async def user_coupons(user: UserPath, caller: UserCaller, rt: RuntimeDep) -> dict[str, Any]:
    """A user's coupons: the platform for anyone, a viewer token for its own user."""
    require_user(caller, user)
    coupons = await rt.service.call(rt.service.checkout.coupons_of, user)
    now = rt.service.now()
    return {"coupons": [coupon_json(c, now) for c in coupons]}


@router.get("/coupons/{coupon_id}", tags=["coupons"], response_model=None,
            responses=answer(CouponDetailOut) | PARAM_ERRORS | errors(404))
async def coupon_detail(coupon_id: str, caller: UserCaller, rt: RuntimeDep) -> dict[str, Any]:
    """One coupon with its history (a viewer sees only their own)."""
    service = rt.service
    coupon = await service.call(service.store.coupon, coupon_id)
    if coupon is None:
        raise NotFound("unknown_coupon", f"no coupon {coupon_id!r}", "coupon_id")
    if caller.owner is not None and coupon.user != caller.owner:
        raise Forbidden("not_your_coupon", "this coupon belongs to another user", "coupon_id")
    history, now = await service.call(service.store.history, coupon_id), service.now()
    return coupon_json(coupon, now) | {"history": [
        {"at": iso(h.at), "state": h.state.value, "action": h.action, "order_id": h.order_id}
        for h in history_seen(coupon, history, now)], "confirmed": service.checkout.counts(coupon)}


@router.post("/checkout/quote", tags=["checkout"], response_model=None,
             responses=answer(QuoteOut) | BODY_ERRORS)
async def checkout_quote(body: QuoteIn, caller: UserCaller, rt: RuntimeDep) -> dict[str, Any]:
    require_user(caller, body.user)
    result = await rt.service.call(rt.service.checkout.quote, body.user, [line.to_line() for line in body.cart])
    best = None if result.best is None else quote_json(result.best)
    return {"best": best, "usable": [quote_json(q) for q in result.usable], "subtotal": fen_to_yuan(result.subtotal)}


def parsed(body: bytes, content_type: str | None, model: type[M]) -> M:
    """A request's JSON body as ``model``, validated by pydantic in one call; a bad one is the 422 that
    FastAPI's own reading would have given (the same handler words it): an empty body is missing, and one
    not sent as JSON (``application/json`` or ``application/*+json``) is not an object."""
    try:
        if not body:
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required",
                                           "input": None}])
        if not is_json(content_type):
            return model.model_validate(body)  # refused, as FastAPI refuses it
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid" and (where := _lone_surrogate(body)) is not None:
            errors = [{"type": "string_type", "loc": where, "input": None,
                       "msg": "不是有效的文本（含孤立代理项 \\ud800–\\udfff） / holds a lone surrogate, not text"}]
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _lone_surrogate(body: bytes) -> tuple[str | int, ...] | None:
    """Where a body that pydantic's parser refused holds a string with a lone surrogate (``"\\ud800"``), which
    JSON's grammar allows and no text holds: the path to it, so the 422 names the field (the parser's words,
    "unexpected end of hex escape", named none). None if it is not that."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_clean_text(item):
                return path
        elif isinstance(item, dict):
            stack.extend(((*path, key), inner) for key, inner in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, n), inner) for n, inner in reversed(list(enumerate(item))))
    return None


# The checkout routes are the hot ones (issue 10). Each is one function of what it needs (the runtime, the
# caller, the body, the path's order id), called two ways: by the checkout lane ahead of FastAPI
# (api/lane.py), which serves them from the raw ASGI request, and, where the lane passes a request on (a
# gzip body, a mounted root path), by the ``LeanRoute`` below, which FastAPI matches and documents.
async def order_created(rt: Runtime, caller: Caller | None, body: bytes, content_type: str | None) -> Answer:
    """Create an order, reserving its coupon; the idempotency key is scoped to the caller and user. The
    caller is checked before the body is (as ``user_caller``)."""
    who = await user_caller(caller)
    order = parsed(body, content_type, OrderIn)
    require_user(who, order.user)
    cart = [line.to_line() for line in order.cart]
    service = rt.service
    return await service.checkout_in_group(service.checkout.create_order, order.order_id, order.user, cart,
                                           order.coupon_id, order.idempotency_key, who.scope, order.room)


async def order_moved(rt: Runtime, caller: Caller | None, body: bytes, content_type: str | None, order_id: str,
                      act: str) -> Answer:
    """Pay, cancel or refund (``act``) an order; a viewer only their own."""
    who = await user_caller(caller)
    action = parsed(body, content_type, OrderActionIn)
    service = rt.service
    return await service.checkout_in_group(getattr(service.checkout, act), order_id, action.idempotency_key,
                                           who.scope, who.owner)


class LeanRoute(SegmentRoute):
    """A route whose endpoint takes the request alone and answers with a response: FastAPI matches and
    documents it (``openapi_extra`` says what its dependencies and parameters would have), and it runs
    its endpoint itself, without the wrappers FastAPI puts around a route's handler (exit stacks for
    dependencies it has none of, a second exception layer: the app's handlers answer what it raises)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # FastAPI's own answer (a 405 naming the methods)
            return
        response: Response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


checkout_router = APIRouter(prefix="/v1", responses=CALLER_ERRORS, route_class=LeanRoute)
CHECKOUT_DOC = {"security": LEAN_SECURITY}
ORDER_ID = [{"name": "order_id", "in": "path", "required": True, "schema": {"type": "string", "title": "Order Id"}}]
CHECKOUT_ACTS = ("pay", "cancel", "refund")  # POST /v1/orders/{order_id}/<act>


@checkout_router.post("/orders", tags=["checkout"], status_code=201, response_model=None,
                      responses=answer(OrderOut, 201) | BODY_ERRORS | errors(409),
                      openapi_extra=CHECKOUT_DOC | {"requestBody": lean_body(OrderIn)})
async def create_order(request: Request) -> Response:
    """Create an order, reserving its coupon; the idempotency key is scoped to the caller and user."""
    return _answer(await order_created(request.app.state.runtime, caller_from(request), await request.body(),
                                       request.headers.get("content-type")))


ORDER_MOVED = answer(OrderOut) | BODY_ERRORS | errors(404, 409)
ORDER_MOVED_DOC = CHECKOUT_DOC | {"requestBody": lean_body(OrderActionIn), "parameters": ORDER_ID}


@router.get("/orders/{order_id}", tags=["checkout"], response_model=None,
            responses=answer(OrderOut) | PARAM_ERRORS | errors(404))
async def get_order(order_id: str, who: UserCaller, rt: RuntimeDep) -> dict[str, Any]:
    return order_json(await rt.service.call(rt.service.checkout.order, order_id, who.owner))


async def move_order(request: Request, act: str) -> Response:
    return _answer(await order_moved(request.app.state.runtime, caller_from(request), await request.body(),
                                     request.headers.get("content-type"), request.path_params["order_id"], act))


@checkout_router.post("/orders/{order_id}/pay", tags=["checkout"], response_model=None, responses=ORDER_MOVED,
                      openapi_extra=ORDER_MOVED_DOC)
async def pay(request: Request) -> Response:
    """The order is paid: its coupon is redeemed, and the order counts as a posted ``order`` event."""
    return await move_order(request, "pay")


@checkout_router.post("/orders/{order_id}/cancel", tags=["checkout"], response_model=None, responses=ORDER_MOVED,
                      openapi_extra=ORDER_MOVED_DOC)
async def cancel(request: Request) -> Response:
    return await move_order(request, "cancel")


@checkout_router.post("/orders/{order_id}/refund", tags=["checkout"], response_model=None, responses=ORDER_MOVED,
                      openapi_extra=ORDER_MOVED_DOC)
async def refund(request: Request) -> Response:
    return await move_order(request, "refund")


async def live(websocket: WebSocket, room: str, token: Annotated[str, Query()] = "",
               user: Annotated[str, Query()] = "", ack: Annotated[str, Query()] = "") -> None:
    """Pushes ``{"type": "coupon", …}`` to the viewer the moment a coupon is issued to them.

    ``?token=`` is the viewer's token (``&user=``, if given, must be its ``sub``); the
    platform key may listen for any ``user``. Without a valid token the socket receives
    nothing and is closed with 4401; for another user, 4403; over the connection or
    rate limit, 4429. On connect (and on unmute), coupons issued while the viewer was
    away and never delivered come first. A coupon written to the socket counts as delivered;
    with ``&ack=1`` only once the client answers ``{"type": "ack", "coupon_id"}`` (per popup
    shown: one not acknowledged comes again on the next connection). The client may send
    ``{"type": "mute", "minutes": n}`` / ``{"type": "unmute"}``. Messages are JSON text: a
    binary frame closes the socket with 1003.
    """
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()  # then close with a 44xx code, which browsers can see (a refused handshake is 1006)
    if not room or len(room) > MAX_NAME or room == CAMPAIGN_WIDE:  # as the room's HTTP routes read it (422)
        await websocket.close(code=4422, reason=f"直播间名称无效 / not a room name (1–{MAX_NAME} characters, not *)")
        return
    who = await _viewer_of(websocket, rt, token, user)
    if who is None:
        return
    sub = rt.hub.subscribe(room, who, acks=ack == "1")  # before reading the backlog: nothing falls in between
    if sub is None:
        await websocket.close(code=4429, reason="连接过多 / too many connections for this user")
        return
    await _send_backlog(rt, sub)
    tasks = [asyncio.create_task(_send_all(websocket, rt, sub))]
    ends = rt.credentials.expires(token)
    if ends is not None:
        tasks.append(asyncio.create_task(_close_at(websocket, ends)))
    try:
        while (text := await text_frame(websocket)) is not None:
            if rt.throttle.allows(rt.throttle.socket, "socket", who):
                await _on_viewer_message(rt, sub, text)
            else:
                sub.offer(_refused("rate_limited", "消息太频繁，请稍后再试 / too many messages: try again shortly"))
    except WebSocketDisconnect:
        return
    finally:
        rt.hub.unsubscribe(sub)
        await cancel_quietly(*tasks)
    await websocket.close(code=1003, reason=BINARY_REFUSED)  # after the sender stopped: nothing follows the close


async def _close_at(websocket: WebSocket, ends: float) -> None:
    """A socket lasts as long as its token: at its ``exp`` it closes with 4401, as one opened with an expired token
    does (it went on pushing and taking acks for as long as it stayed open)."""
    await asyncio.sleep(max(0.0, ends - time.time()))
    await websocket.close(code=4401, reason="令牌已过期，请换新令牌重连 / the token expired: reconnect with a new one")


# The viewer's socket: on the app itself (app.py), as a route that takes a room holding "/" (api/segments.py).
viewer_socket = SegmentWebSocketRoute("/v1/rooms/{room}/live", live)


async def _viewer_of(websocket: WebSocket, rt: Runtime, token: str, user: str) -> str | None:
    """The user this socket may listen for, or None after closing it with the reason."""
    try:
        caller = identify(rt, token, client_address(websocket))
    except TooManyRequests:
        await websocket.close(code=4429, reason="请求过于频繁 / too many requests")
        return None
    if caller is None:
        await websocket.close(code=4401, reason="需要有效的观众令牌 / a valid viewer token is required (?token=)")
        return None
    if caller.role is Role.VIEWER:
        if user and user != caller.user:
            await websocket.close(code=4403, reason="令牌属于其他用户 / the token is for another user")
            return None
        return caller.user
    if caller.is_server and user:
        return user
    await websocket.close(code=4403, reason="此凭证不能打开观众连接 / this credential does not open a viewer's socket")
    return None


async def _send_backlog(rt: Runtime, sub: Subscription) -> None:
    service = rt.service
    muted = rt.hub.is_muted(sub.room, sub.user)
    await rt.flush_acks()
    missed = await service.call(service.store.unacknowledged, sub.user, sub.room)
    now = service.clock.now()
    coming = rt.pacer.held_for(sub.room, sub.user)  # after the backlog's read: what the pacer holds comes live
    for coupon in missed:
        if coupon.is_usable(now) and service.checkout.counts(coupon) and coupon.coupon_id not in coming:
            message = coupon_message(service.campaign_named(coupon.campaign), coupon) | {"missed": True}
            sub.offer(held_notice(message) if muted else message)


def _refused(code: str, message: str) -> dict[str, Any]:
    """What a viewer's socket answers a message it cannot act on (the socket stays open)."""
    return {"type": "error", "code": code, "message": message}


async def _on_viewer_message(rt: Runtime, sub: Subscription, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        sub.offer(_refused("bad_message", "消息须是 JSON 对象 / a message must be a JSON object"))
        return
    service, kind = rt.service, message.get("type")
    if kind == "ack":
        if isinstance(message.get("coupon_id"), str):
            rt.acknowledge(message["coupon_id"], sub.user)
        else:
            sub.offer(_refused("bad_message", "ack 须带 coupon_id 字符串 / an ack names its coupon_id, a string"))
    elif kind == "mute":
        try:
            rt.hub.mute(sub.room, sub.user, mute_seconds(message, service.campaign.delivery.max_mute_ms))
        except BadMessage as exc:
            sub.offer(_refused("bad_message", exc.words))
    elif kind == "unmute":
        rt.hub.unmute(sub.room, sub.user)
        await _send_backlog(rt, sub)
    elif kind == "ping":  # a client's keep-alive, or its mark that what it sent before was taken
        sub.offer({"type": "pong"})
    else:
        sub.offer(_refused("unknown_type", f"未知的消息类型 / unknown message type {kind!r} (ack, mute, unmute, "
                                           "ping)"))


async def _send_all(websocket: WebSocket, rt: Runtime, sub: Subscription) -> None:
    """Write what is queued for ``sub``; a coupon written is delivered, unless its client acknowledges popups."""
    sent: set[str] = set()
    while True:
        message = await sub.queue.get()
        if message["type"] == "coupon":
            if message["coupon_id"] in sent:
                continue  # published live while the backlog was being read, or the other way round: once
            sent.add(message["coupon_id"])
        await websocket.send_json(message)
        if message["type"] == "coupon" and not sub.acks:
            rt.acknowledge(message["coupon_id"], sub.user)
