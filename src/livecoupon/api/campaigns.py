"""Campaigns checked and backtested from the console before they are published (operator key).

``check`` validates a campaign file as ``livecoupon check`` does, every error by its path;
``backtest`` replays the service's own log with it, beside the campaign running now. A file
that cannot be used is an answer, not a refused request: ``{"ok": false, "errors": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from livecoupon.analytics.backtest import compare
from livecoupon.api.runtime import RuntimeDep, operator
from livecoupon.api.schemas import BODY_ERRORS, CALLER_ERRORS, answer
from livecoupon.campaign_file import CampaignError, parse_campaign
from livecoupon.domain.campaign import Campaign

router = APIRouter(prefix="/v1/admin/campaign", tags=["operator"], dependencies=[Depends(operator)],
                   responses=CALLER_ERRORS)


class CampaignIn(BaseModel):
    yaml: str = Field(min_length=1, max_length=1_048_576, description="a campaign file (SPEC §3)")


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

    def run() -> dict[str, Any]:
        lines = [json.dumps(e, ensure_ascii=False) for e in service.logged()]
        return {"ok": True, "events": len(lines)} | compare(service.campaign, campaign, lines)

    return await asyncio.to_thread(run)
