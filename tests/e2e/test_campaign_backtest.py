"""Checking and backtesting a changed campaign against the service's own log, from the console's API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from support.apps import EXAMPLE, serving
from support.credentials import OPERATOR, PLATFORM

T0 = 1_700_000_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "b.db", headers=OPERATOR) as test_client:
        yield test_client


def test_a_file_with_errors_is_answered_with_every_path(client: TestClient) -> None:
    bad = EXAMPLE.read_text(encoding="utf-8").replace("coupon: dwell10}", "coupon: dwel10}")
    answer = client.post("/v1/admin/campaign/check", json={"yaml": bad}).json()
    assert answer["ok"] is False and any("unknown coupon 'dwel10'" in e for e in answer["errors"])
    assert client.post("/v1/admin/campaign/backtest", json={"yaml": bad}).json()["ok"] is False
    good = client.post("/v1/admin/campaign/check", json={"yaml": EXAMPLE.read_text(encoding="utf-8")}).json()
    assert good["ok"] and "newcomer" in good["triggers"]


def test_a_backtest_shows_what_a_change_would_have_done_over_the_log(client: TestClient) -> None:
    events = [{"type": "live_start", "room": "room-1", "ts": T0}] + [
        {"type": "join", "room": "room-1", "ts": T0 + 1 + i, "user": f"u{i}"} for i in range(30)]
    assert client.post("/v1/events", json=events, headers=PLATFORM).status_code == 200
    text = EXAMPLE.read_text(encoding="utf-8")
    stingier = text.replace("stock: 10000", "stock: 10")
    assert stingier != text, "the example's newcomer stock changed; update this test"
    result = client.post("/v1/admin/campaign/backtest", json={"yaml": stingier}).json()
    assert result["events"] == 31
    current, candidate = result["current"]["triggers"]["newcomer"], result["candidate"]["triggers"]["newcomer"]
    assert (current["issued"], candidate["issued"]) == (30, 10)
    assert candidate["suppressed"] == {"out_of_stock": 20}
    assert result["difference"]["issued"] == -20 and result["difference"]["face_value"] < 0
    assert client.post("/v1/admin/campaign/backtest", json={"yaml": text}, headers=PLATFORM).status_code == 403
