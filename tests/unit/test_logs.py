"""Structured logs: every committed decision as one JSON line with its ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from engine_fixtures import campaign, ev, run

from livecoupon.logs import JsonFormatter, decisions_log, log_decisions


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    level = decisions_log.level
    decisions_log.addHandler(handler)
    decisions_log.setLevel(logging.INFO)
    yield out
    decisions_log.removeHandler(handler)
    decisions_log.setLevel(level)


def test_each_decision_is_a_json_line_with_its_ids(captured: io.StringIO) -> None:
    camp = campaign("  - {name: newcomer, when: first_visit, coupon: c10}\n", tail="limits: {budget: 10}")
    made = run(camp, [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b")])
    log_decisions(made)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(x["user"], x["outcome"], x["reason"]) for x in lines] == [("a", "issued", None),
                                                                       ("b", "suppressed", "over_budget")]
    first = lines[0]
    assert first["coupon_id"] == made[0].request.coupon_id and first["trigger"] == "newcomer"
    assert first["logger"] == "livecoupon.decisions" and first["level"] == "info" and first["time"].endswith("+00:00")


def test_nothing_is_formatted_when_the_decision_logger_is_quiet(captured: io.StringIO) -> None:
    decisions_log.setLevel(logging.WARNING)
    camp = campaign("  - {name: newcomer, when: first_visit, coupon: c10}\n")
    log_decisions(run(camp, [ev("live_start", 0), ev("join", 1, "a")]))
    assert captured.getvalue() == ""
