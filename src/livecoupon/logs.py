"""The service's logs: one JSON object a line for machines (``serve --log json``), or text for people.

Every committed decision is logged with its ids (``livecoupon.decisions``: coupon id, campaign,
room, trigger, user, outcome, reason), so a line in a log search leads straight to the decision
and to ``explain``. A 100,000-viewer firing writes 100,000 lines: that logger is at DEBUG for text
logs, INFO for JSON ones, where a log pipeline is expected to keep them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from livecoupon.domain.decisions import Decision

decisions_log = logging.getLogger("livecoupon.decisions")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        body.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure(fmt: str = "text") -> None:
    """Logs to stderr: ``json`` (every decision at INFO) or ``text`` (decisions at DEBUG)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("livecoupon")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    decisions_log.setLevel(logging.INFO if fmt == "json" else logging.WARNING)


def log_decisions(decisions: Iterable[Decision]) -> None:
    """One line per committed decision, with its ids."""
    if not decisions_log.isEnabledFor(logging.INFO):
        return
    for d in decisions:
        r = d.request
        decisions_log.info("decision", extra={
            "coupon_id": r.coupon_id, "campaign": r.campaign, "room": r.room, "trigger": r.trigger, "user": r.user,
            "outcome": "issued" if d.issued else "suppressed", "reason": d.reason.value if d.reason else None,
            "template": r.template.name if r.template is not None else None, "at_ms": r.at})
