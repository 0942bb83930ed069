"""Campaigns managed live from the console (operator key): checked, backtested, published.

``check`` validates a campaign file as ``livecoupon check`` does, every error by its path;
``backtest`` replays the service's own log with it, beside the campaign running now. A file
that cannot be used is an answer there, not a refused request: ``{"ok": false, "errors": [...]}``.
``publish`` makes it the campaign's next version, logged as an operator action (a file that
cannot be used is refused there: 409, every error named); ``GET versions`` answers the version in
force, its file and the history.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from livecoupon.analytics.backtest import compare
from livecoupon.api.runtime import RuntimeDep, operator
from livecoupon.api.schemas import (
    BODY_ERRORS,
    CALLER_ERRORS,
    PARAM_ERRORS,
    CampaignQuery,
    PublishOut,
    VersionsOut,
    answer,
    errors,
)
from livecoupon.campaign_file import CampaignError, parse_campaign
from livecoupon.domain.campaign import Campaign

router = APIRouter(prefix="/v1/admin/campaign", tags=["operator"], dependencies=[Depends(operator)],
                   responses=CALLER_ERRORS)


class CampaignIn(BaseModel):
    yaml: str = Field(min_length=1, max_length=1_048_576, description="a campaign file (SPEC §3)")


class PublishIn(CampaignIn):
    base_version: int | None = Field(default=None, ge=1, description="the version the edit started from: "
                                     "refused (409) if another was published since")
    note: str = Field(default="", max_length=500, description="the operator's words on the change, kept in the log")


class CheckOut(BaseModel):
    ok: bool
    errors: list[str] = Field(default=[], description="every problem, by its path in the file (ok: false)")
    campaign: str | None = None
    rooms: list[str] | str | None = None
    coupons: list[str] = []
    triggers: list[str] = []


def _parsed(body: CampaignIn) -> Campaign | dict[str, Any]:
    try:
        return parse_campaign(body.yaml)
    except CampaignError as exc:
        return {"ok": False, "errors": exc.errors}


@router.post("/check", response_model=None, responses=answer(CheckOut) | BODY_ERRORS)
async def check(body: CampaignIn) -> Any:
    """Validate a campaign file: a summary, or every error named by its path."""
    campaign = _parsed(body)
    if isinstance(campaign, dict):
        return campaign
    return {"ok": True, "campaign": campaign.campaign, "rooms": "*" if campaign.rooms is None else
            list(campaign.rooms), "coupons": list(campaign.coupons), "triggers": [t.name for t in campaign.triggers]}


@router.post("/backtest", response_model=None, responses=BODY_ERRORS)
async def backtest(body: CampaignIn, rt: RuntimeDep) -> Any:
    """What the candidate would have decided over this service's log, beside the campaign running now:
    per trigger, coupons, face value (yuan), users reached and suppression reasons; and the difference."""
    campaign = _parsed(body)
    if isinstance(campaign, dict):
        return campaign
    service = rt.service
    current = service.in_force_of(campaign.campaign if len(service.campaign_names) > 1 else None)

    def run() -> dict[str, Any]:
        # Each candidate is replayed over the whole log as if it had run throughout: versions published
        # on the way are left out, or the replay would switch to them.
        lines = [json.dumps(e, ensure_ascii=False) for e in service.logged() if e.get("action") != "publish"]
        return {"ok": True, "events": len(lines)} | compare(current, campaign, lines)

    return await asyncio.to_thread(run)


@router.get("/versions", response_model=None, responses=answer(VersionsOut) | PARAM_ERRORS | errors(404))
async def versions(rt: RuntimeDep, campaign: CampaignQuery = None) -> dict[str, Any]:
    """The version in force and its file (YAML: the editor's starting point, or an export), every version
    published with when and the operator's note, and which version each room on air runs (of ``campaign``,
    in a deployment of several)."""
    service = rt.service
    return await service.call(service.versions, campaign)


@router.post("/publish", response_model=None, responses=answer(PublishOut) | BODY_ERRORS | errors(409))
async def publish(body: PublishIn, rt: RuntimeDep) -> dict[str, Any]:
    """Publish the file as the campaign's next version, logged as an operator action: its limits and schedule
    hold at once, its triggers, coupons and experiments at each room's next broadcast (``effect`` says which
    rooms wait). An unchanged file publishes nothing (``published: false``). 409: the file cannot be used
    (``campaign_invalid``, every error by its path), changes what only a restart changes (``campaign_fixed``:
    campaign, ledger, delivery), or ``base_version`` is stale (``version_conflict``)."""
    service = rt.service
    return await service.call(service.publish, body.yaml, body.base_version, body.note)
