"""Routes for operators and hosts: counters, decisions, operator commands, sessions, the console feed.

Every operator action (pause, resume, manual issue, send to everyone present, the
blocklist) is a command the service writes into its log in its place among the events.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi import Path as FastPath

from livecoupon.api.auth import SESSION_COOKIE, SESSION_SECONDS, Caller, Role, require
from livecoupon.api.public import decision_summary
from livecoupon.api.runtime import (
    BINARY_REFUSED,
    CallerDep,
    Runtime,
    RuntimeDep,
    client_address,
    identify,
    operator,
    text_frame,
)
from livecoupon.api.schemas import (
    BODY_ERRORS,
    CALLER_ERRORS,
    PARAM_ERRORS,
    BlocklistIn,
    BlocklistOut,
    CampaignQuery,
    DeadLettersOut,
    DecisionsOut,
    ExplainOut,
    HostTokenOut,
    IssueOut,
    ManualIssueIn,
    MetricsOut,
    PresentIssueIn,
    RequeuedOut,
    SessionOut,
    StatsOut,
    TriggerSwitchIn,
    TriggerSwitchOut,
    answer,
    errors,
)
from livecoupon.api.segments import SegmentRoute
from livecoupon.domain.commands import ChangeBlocklist
from livecoupon.domain.decisions import Decision
from livecoupon.engine.recordings import decision_json
from livecoupon.errors import LivecouponError, Malformed, Unauthorized
from livecoupon.service_layer.service import campaign_in
from livecoupon.tasks import cancel_quietly

router = APIRouter(prefix="/v1/admin", tags=["operator"], dependencies=[Depends(operator)], responses=CALLER_ERRORS,
                   route_class=SegmentRoute)
console_router = APIRouter(prefix="/v1", tags=["consoles"])


def _issue_answer(made: list[Decision]) -> dict[str, Any]:
    issued = sum(1 for d in made if d.issued)
    return {"issued": issued, "suppressed": len(made) - issued, "decisions": [decision_summary(d) for d in made]}


@router.post("/issue", response_model=None, responses=answer(IssueOut) | BODY_ERRORS | errors(404, 409))
async def manual_issue(body: ManualIssueIn, rt: RuntimeDep) -> dict[str, Any]:
    """Issue a template to a list of users (caps, stock and budget still hold)."""
    service = rt.service
    made = await service.call(service.issue_manually, body.template, body.users, body.room, body.idempotency_key,
                              body.campaign)
    return _issue_answer(made)


@router.post("/rooms/{room}/issue-present", response_model=None,
             responses=answer(IssueOut) | BODY_ERRORS | errors(404))
async def issue_to_present(room: str, body: PresentIssueIn, rt: RuntimeDep) -> dict[str, Any]:
    """Send a template to everyone present in ``room`` now."""
    service = rt.service
    return _issue_answer(await service.call(service.issue_to_present, body.template, room, body.idempotency_key,
                                            body.campaign))


@router.get("/stats", response_model=None, responses=answer(StatsOut) | PARAM_ERRORS | errors(404))
async def stats(rt: RuntimeDep, campaign: CampaignQuery = None) -> dict[str, Any]:
    """Per-trigger counters, reasons for suppression, stock, budget, rooms and the issue rate (``campaigns``
    lists the deployment's campaigns where it runs several)."""
    return await rt.stats_message(campaign=campaign)


@router.get("/metrics", response_model=None, responses=answer(MetricsOut) | PARAM_ERRORS | errors(404))
async def metrics(rt: RuntimeDep, campaign: CampaignQuery = None) -> dict[str, Any]:
    """Redemption, order value and A/B statistics so far: ``metrics.json`` of SPEC §6, live."""
    return await rt.metrics(campaign)


@router.get("/campaign", response_model=None, responses=answer(StatsOut) | PARAM_ERRORS | errors(404))
async def campaign_status(rt: RuntimeDep, campaign: CampaignQuery = None) -> dict[str, Any]:
    return await rt.stats_message(campaign=campaign)


@router.get("/decisions", response_model=None, responses=answer(DecisionsOut) | PARAM_ERRORS | errors(404))
async def decisions(rt: RuntimeDep, campaign: CampaignQuery = None) -> dict[str, Any]:
    """Every decision so far, in decision order, as ``livecoupon replay`` writes them; where the deployment runs
    several campaigns, each campaign's in turn (or ``campaign``'s alone), each naming its campaign."""
    service = rt.service
    names = service.campaign_names
    several = len(names) > 1
    listed: list[dict[str, Any]] = []
    await rt.read_back()
    for name in [campaign_in(names, campaign)] if campaign else names:  # an unknown one is a 404, as in /stats
        records = await service.call(service.decisions_of, name)
        extra = {"campaign": name} if several else {}
        listed.extend(decision_json(r) | {"issued": r.issued, "coupon_id": r.coupon_id, "broadcast": r.broadcast}
                      | extra for r in records)
    return {"decisions": listed}


@router.get("/users/{user:path}/explain", response_model=None,
            responses=answer(ExplainOut) | PARAM_ERRORS | errors(404))
async def explain(user: Annotated[str, FastPath(min_length=1, max_length=128)], rt: RuntimeDep) -> dict[str, Any]:
    """Why ``user`` got what they got: every decision for them and every firing that reached them
    without one (not present, cooldown, not drawn, paused, dwell interrupted, …), in time order, in words.

    Read from the log, off the writer thread: it replays the log once per call.
    """
    return {"user": user, "entries": await asyncio.to_thread(rt.service.explain, user)}


@router.post("/triggers/{name}", response_model=None,
             responses=answer(TriggerSwitchOut) | BODY_ERRORS | errors(404))
async def switch_trigger(name: str, body: TriggerSwitchIn, rt: RuntimeDep) -> dict[str, Any]:
    """Pause or resume a trigger: while paused it fires nothing and uses up nothing (logged)."""
    await rt.service.call(rt.service.pause, name, body.paused, body.campaign)
    return {"name": name, "paused": body.paused} | ({"campaign": body.campaign} if body.campaign else {})


@router.post("/blocklist", response_model=None, responses=answer(BlocklistOut) | BODY_ERRORS)
async def change_blocklist(body: BlocklistIn, rt: RuntimeDep) -> dict[str, Any]:
    """Block (or unblock) users and devices: a blocked viewer's decisions say ``blocked`` (logged)."""
    if not body.users and not body.devices:
        raise Malformed("empty_blocklist", "name at least one user or device", "users")
    service = rt.service
    await service.call(service.command, ChangeBlocklist(tuple(body.users), tuple(body.devices), body.blocked))
    return {"blocked": body.blocked, "users": len(body.users), "devices": len(body.devices)}


@router.post("/rooms/{room}/host-token", response_model=None,
             responses=answer(HostTokenOut) | BODY_ERRORS)
async def host_token(room: str, rt: RuntimeDep) -> dict[str, Any]:
    """A credential for the host's screen: it reads ``room``'s console feed and nothing else."""
    return {"room": room, "token": rt.credentials.host_token(room)}


@router.get("/webhooks/dead-letters", response_model=None, responses=answer(DeadLettersOut))
async def dead_letters(rt: RuntimeDep) -> dict[str, Any]:
    """Merchant webhooks that ran out of attempts (scaled out: every worker's, read from PostgreSQL)."""
    await _refreshed(rt)
    return {"dead_letters": rt.webhooks.dead_letters() if rt.webhooks is not None else []}


@router.post("/webhooks/dead-letters/retry", response_model=None,
             responses=answer(RequeuedOut) | BODY_ERRORS)
async def retry_dead_letters(rt: RuntimeDep) -> dict[str, Any]:
    """Send every dead-lettered webhook again (after the merchant's backend recovered); scaled out, the
    gateway called sends them itself (docs/webhooks.md)."""
    await _refreshed(rt)
    return {"requeued": rt.webhooks.retry_dead_letters() if rt.webhooks is not None else 0}


async def _refreshed(rt: Runtime) -> None:
    """A gateway's sender lists dead letters the workers make: read them afresh first."""
    if rt.webhooks is not None:
        await rt.webhooks.refresh()


@console_router.post("/session", response_model=None,
                     responses=answer(SessionOut) | CALLER_ERRORS | BODY_ERRORS)
async def open_session(caller: CallerDep, request: Request, response: Response, rt: RuntimeDep) -> dict[str, Any]:
    """Exchange the operator key or a host token (in a header) for an HttpOnly session cookie,
    so a console page never carries a credential in its URL. Only a credential opens one: a session
    renewing itself made every cookie (a copied one, a host's) good for ever, whatever its 12 hours."""
    if "x-api-key" not in request.headers and "authorization" not in request.headers:
        raise Unauthorized("credential_required", "请在请求头里带上运营密钥或主播令牌 / "
                           "a session opens with the operator key or a host token in a header, not a session",
                           "X-API-Key")
    who = require(caller, Role.OPERATOR, Role.HOST)
    response.set_cookie(SESSION_COOKIE, rt.credentials.session_token(who), max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", path="/")
    return {"role": who.role.value, "user": who.user, "room": who.room}


@console_router.get("/session", response_model=None, responses=answer(SessionOut) | CALLER_ERRORS)
async def current_session(caller: CallerDep) -> dict[str, Any]:
    """Who the session (or credential) is."""
    who = require(caller, Role.OPERATOR, Role.PLATFORM, Role.VIEWER, Role.HOST)
    return {"role": who.role.value, "user": who.user, "room": who.room}


@console_router.delete("/session", status_code=204)
async def close_session(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@console_router.websocket("/console/live")
async def console(websocket: WebSocket, token: Annotated[str, Query()] = "") -> None:
    """The operator's live feed (decision lines, read-aloud lines, stats each second), or a
    host's, which carries their room alone. The session cookie, or ``?token=``."""
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()  # then close with 4401, which browsers can see (a refused handshake is 1006)
    if not token and not _same_origin(websocket):
        # The session cookie speaks for the console's own page alone: a WebSocket has no CORS, and a page of a
        # sibling subdomain (SameSite lets its cookie through) could read the feed's users and coupon ids
        await websocket.close(code=4403, reason="不接受其他站点的连接 / a console socket from another origin")
        return
    who = await _console_caller(websocket, rt, token or websocket.cookies.get(SESSION_COOKIE, ""))
    if who is None:
        return
    queue = rt.consoles.subscribe(who.room)
    for frame in await rt.stats_frames(who.room):
        await websocket.send_json(frame)
    sender = asyncio.create_task(_forward(websocket, queue))
    try:
        while await text_frame(websocket) is not None:
            pass  # the feed reads nothing from its client
    except WebSocketDisconnect:
        return
    finally:
        rt.consoles.unsubscribe(queue)
        await cancel_quietly(sender)
    await websocket.close(code=1003, reason=BINARY_REFUSED)


def _same_origin(websocket: WebSocket) -> bool:
    """Whether a browser opened the socket from the service's own pages: its ``Origin`` names the host the request
    was sent to (a client that is no browser sends none)."""
    origin = websocket.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == websocket.headers.get("host", "")


async def _console_caller(websocket: WebSocket, rt: Runtime, token: str) -> Caller | None:
    try:
        caller = identify(rt, token, client_address(websocket))
    except LivecouponError:
        caller = None
    if caller is None:
        await websocket.close(code=4401, reason="需要运营密钥或主播令牌 / "
                                                "a valid operator or host credential is required")
        return None
    if caller.role not in (Role.OPERATOR, Role.HOST):
        await websocket.close(code=4403, reason="此凭证不能打开控制台 / this credential does not open the console")
        return None
    return caller


async def _forward(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await websocket.send_json(await queue.get())
