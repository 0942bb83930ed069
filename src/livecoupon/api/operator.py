"""Routes for operators and hosts: counters, decisions, manual issue, pause, the console feed."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect

from livecoupon.api.public import decision_summary
from livecoupon.api.runtime import Runtime, RuntimeDep, cancel_quietly, operator
from livecoupon.api.schemas import ManualIssueIn, PresentIssueIn, TriggerSwitchIn
from livecoupon.domain.decisions import Decision
from livecoupon.engine.replay import decision_json
from livecoupon.errors import LivecouponError, NotFound

router = APIRouter(prefix="/v1/admin", tags=["operator"], dependencies=[Depends(operator)])
console_router = APIRouter(prefix="/v1/console", tags=["operator"])


def _issue_answer(made: list[Decision]) -> dict[str, Any]:
    issued = sum(1 for d in made if d.issued)
    return {"issued": issued, "suppressed": len(made) - issued, "decisions": [decision_summary(d) for d in made]}


@router.post("/issue")
async def manual_issue(body: ManualIssueIn, rt: RuntimeDep) -> dict[str, Any]:
    """Issue a template to a list of users (caps, stock and budget still hold)."""
    service = rt.service
    made = await service.call(service.issue_manually, body.template, body.users, body.room, body.idempotency_key)
    return _issue_answer(made)


@router.post("/rooms/{room}/issue-present")
async def issue_to_present(room: str, body: PresentIssueIn, rt: RuntimeDep) -> dict[str, Any]:
    """Send a template to everyone present in ``room`` now."""
    service = rt.service
    return _issue_answer(await service.call(service.issue_to_present, body.template, room, body.idempotency_key))


@router.get("/stats")
async def stats(rt: RuntimeDep) -> dict[str, Any]:
    """Per-trigger counters, reasons for suppression, stock, budget, rooms and the issue rate."""
    return await rt.stats_message()


@router.get("/metrics")
async def metrics(rt: RuntimeDep) -> dict[str, Any]:
    """Redemption, order value and A/B statistics so far: ``metrics.json`` of SPEC §6, live."""
    return await rt.service.call(rt.service.metrics)


@router.get("/campaign")
async def campaign_status(rt: RuntimeDep) -> dict[str, Any]:
    return await rt.stats_message()


@router.get("/decisions")
async def decisions(rt: RuntimeDep) -> dict[str, Any]:
    """Every decision so far, in decision order, as ``livecoupon replay`` writes them."""
    service = rt.service
    records = await service.call(lambda: list(service.store.decisions(service.campaign.campaign)))
    return {"decisions": [decision_json(r) | {"issued": r.issued, "coupon_id": r.coupon_id, "broadcast": r.broadcast}
                          for r in records]}


@router.post("/triggers/{name}")
async def switch_trigger(name: str, body: TriggerSwitchIn, rt: RuntimeDep) -> dict[str, Any]:
    """Pause or resume a trigger: a paused trigger's firings are skipped."""
    service = rt.service
    if all(t.name != name for t in service.campaign.triggers):
        raise NotFound("unknown_trigger", f"no trigger {name!r}", "name")
    await service.call(service.engine.paused.add if body.paused else service.engine.paused.discard, name)
    return {"name": name, "paused": body.paused}


@router.get("/webhooks/dead-letters")
async def dead_letters(rt: RuntimeDep) -> dict[str, Any]:
    return {"dead_letters": rt.webhooks.dead_letters() if rt.webhooks is not None else []}


@router.post("/webhooks/dead-letters/retry")
async def retry_dead_letters(rt: RuntimeDep) -> dict[str, Any]:
    """Send every dead-lettered webhook again (after the merchant's backend recovered)."""
    return {"requeued": rt.webhooks.retry_dead_letters() if rt.webhooks is not None else 0}


@console_router.websocket("/live")
async def console(websocket: WebSocket, key: Annotated[str, Query()] = "") -> None:
    """The host's and operator's live feed: decision lines, read-aloud lines, stats each second."""
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()  # then close with 4401, which browsers can see (a refused handshake is 1006)
    try:
        rt.check_key(key)
    except LivecouponError:
        await websocket.close(code=4401, reason="a valid key query parameter is required")
        return
    queue = rt.consoles.subscribe()
    await websocket.send_json(await rt.stats_message())
    sender = asyncio.create_task(_forward(websocket, queue))
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        rt.consoles.unsubscribe(queue)
        await cancel_quietly(sender)


async def _forward(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await websocket.send_json(await queue.get())
