"""Write ``metrics.json`` and ``report.html`` for a campaign's decisions and events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from livecoupon.analytics.metrics import campaign_metrics, orders_of
from livecoupon.analytics.report import render_report
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import Event


def write_report(campaign: Campaign, decisions: Sequence[DecisionRecord], events: Sequence[Event], out_dir: Path,
                 *, simulated: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    metrics = campaign_metrics(campaign, decisions, events)
    if simulated:
        metrics["simulated"] = True
    metrics.update(extra or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    html = render_report(campaign, metrics, decisions, orders_of(events, campaign), simulated=simulated)
    (out_dir / "report.html").write_text(html, encoding="utf-8")
    return metrics
