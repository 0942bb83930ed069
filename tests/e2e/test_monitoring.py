"""``GET /metrics``: Prometheus text a real parser reads, behind the operator key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from support.apps import EXAMPLE, serving
from support.credentials import OPERATOR, PLATFORM

T0 = 1_700_000_000


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "m.db") as test_client:
        yield test_client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_scrape_counts_events_decisions_and_request_latency(client: TestClient) -> None:
    events = [{"type": "live_start", "room": "room-1", "ts": T0}] + [
        {"type": "join", "room": "room-1", "ts": T0 + 1, "user": f"u{i}"} for i in range(3)]
    assert client.post("/v1/events", json=events, headers=PLATFORM).status_code == 200
    client.post("/v1/events", json={"not": "an array"}, headers=PLATFORM)
    scrape = client.get("/metrics", headers=OPERATOR)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    got = samples(scrape.text)
    assert got[("livecoupon_events_applied_total", ())] == 4
    issued = (("campaign", "double11-live"), ("outcome", "issued"), ("reason", ""), ("trigger", "newcomer"))
    assert got[("livecoupon_decisions_total", issued)] == 3
    posted = (("method", "POST"), ("route", "/v1/events"), ("status", "2xx"))
    assert got[("livecoupon_http_request_duration_seconds_count", posted)] == 1
    refused = (("method", "POST"), ("route", "/v1/events"), ("status", "4xx"))
    assert got[("livecoupon_http_request_duration_seconds_count", refused)] == 1
    assert ("livecoupon_viewer_sockets", ()) in got
    assert got[("livecoupon_campaign_version", (("campaign", "double11-live"),))] == 1
    text = EXAMPLE.read_text(encoding="utf-8").replace("budget: 300000", "budget: 290000")
    published = client.post("/v1/admin/campaign/publish", json={"yaml": text}, headers=OPERATOR)
    assert published.status_code == 200 and published.json()["version"] == 2, published.text
    version = ("livecoupon_campaign_version", (("campaign", "double11-live"),))
    assert samples(client.get("/metrics", headers=OPERATOR).text)[version] == 2


def test_metrics_need_the_operator_key(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=PLATFORM).status_code == 403


def test_unknown_paths_share_one_label(client: TestClient) -> None:
    for n in range(5):
        client.get(f"/scan/{n}")
    got = samples(client.get("/metrics", headers=OPERATOR).text)
    unmatched = [labels for name, labels in got if name.endswith("_count") and ("route", "unmatched") in labels]
    assert len(unmatched) == 1


def test_explain_answers_from_the_log_over_http(client: TestClient) -> None:
    events = [{"type": "live_start", "room": "room-1", "ts": T0}, {"type": "join", "room": "room-1", "ts": T0 + 1,
                                                                   "user": "ann"},
              {"type": "live_end", "room": "room-1", "ts": T0 + 2},
              {"type": "heartbeat", "room": "room-1", "ts": T0 + 3, "user": "ann"}]
    assert client.post("/v1/events", json=events, headers=PLATFORM).status_code == 200
    answer = client.get("/v1/admin/users/ann/explain", headers=OPERATOR)
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == "ann"
    assert [(e["ts"], e["trigger"], e["outcome"]) for e in body["entries"]] == [
        (T0 + 1, "newcomer", "issued"), (T0 + 3, None, "no_decision")]
    assert body["entries"][1]["reason"] == "off_air" and "off air" in body["entries"][1]["why"]
    assert client.get("/v1/admin/users/ann/explain", headers=PLATFORM).status_code == 403


def test_serve_writes_json_logs_with_each_decisions_ids(tmp_path: Path) -> None:
    import json

    import httpx

    from support.server import Server

    with Server(EXAMPLE, tmp_path / "logs.db", args=("--log", "json")) as server:
        answer = httpx.post(f"{server.url}/v1/events", headers=PLATFORM, timeout=30, json=[
            {"type": "live_start", "room": "room-1", "ts": T0}, {"type": "join", "room": "room-1", "ts": T0 + 1,
                                                                 "user": "zoe"}]).json()
    [coupon_id] = [d["coupon_id"] for d in answer["decisions"] if d["issued"]]
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    decision = next(x for x in lines if x.get("coupon_id") == coupon_id)
    assert (decision["user"], decision["outcome"], decision["logger"]) == ("zoe", "issued", "livecoupon.decisions")


def test_explain_takes_ids_with_slashes_and_refuses_overlong_ones(client: TestClient) -> None:
    events = [{"type": "live_start", "room": "room-1", "ts": T0},
              {"type": "join", "room": "room-1", "ts": T0 + 1, "user": "shop/ann"}]
    assert client.post("/v1/events", json=events, headers=PLATFORM).status_code == 200
    body = client.get("/v1/admin/users/shop/ann/explain", headers=OPERATOR).json()
    assert body["user"] == "shop/ann" and [e["outcome"] for e in body["entries"]] == ["issued"]
    entry = body["entries"][0]
    assert entry["why"] == f"{entry['why_zh']} / {entry['why_en']}"
    assert client.get(f"/v1/admin/users/{'x' * 129}/explain", headers=OPERATOR).status_code == 422
