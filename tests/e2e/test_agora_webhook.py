"""The Agora NCS webhook over HTTP: signature, validation, and the events handed to ``submit``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from livecoupon.api.agora import NCS_PATH, agora_router
from livecoupon.integrations.agora import SIGNATURE_HEADER, SIGNATURE_V2_HEADER, sign

SECRET = "ncs-secret-for-tests"


@pytest.fixture
def batches() -> list[list[dict[str, Any]]]:
    return []


@pytest.fixture
def client(batches: list[list[dict[str, Any]]]) -> TestClient:
    async def submit(events: list[dict[str, Any]]) -> None:
        batches.append(events)

    app = FastAPI()
    app.include_router(agora_router(SECRET, submit))
    return TestClient(app)


def audience_join(notice_id: str = "2003239619:606959:105", uid: int = 12121212) -> bytes:
    notice = {"noticeId": notice_id, "productId": 1, "eventType": 105, "notifyMs": 1611566412672,
              "sid": "C866467GVJJ54687",
              "payload": {"channelName": "room-1", "uid": uid, "platform": 1, "clientSeq": 1625051035346,
                          "ts": 1560396843}}
    return json.dumps(notice, separators=(",", ":")).encode()


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(NCS_PATH, content=body, headers={"Content-Type": "application/json", **headers})


def test_signed_notice_is_submitted(client: TestClient, batches: list[list[dict[str, Any]]]) -> None:
    body = audience_join()
    response = post(client, body, sign(body, SECRET))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "events": 1}
    assert batches == [[{"type": "join", "room": "room-1", "ts": 1560396843,
                         "id": "agora:2003239619:606959:105", "user": "12121212"}]]


def test_v1_signature_alone_is_accepted(client: TestClient, batches: list[list[dict[str, Any]]]) -> None:
    body = audience_join()
    response = post(client, body, {SIGNATURE_HEADER: sign(body, SECRET)[SIGNATURE_HEADER]})
    assert response.status_code == 200
    assert len(batches) == 1


def test_resent_notice_carries_the_same_event_id(client: TestClient, batches: list[list[dict[str, Any]]]) -> None:
    body = audience_join()
    for _ in range(2):
        assert post(client, body, sign(body, SECRET)).status_code == 200
    assert batches[0] == batches[1]


@pytest.mark.parametrize("headers", [
    {},
    {SIGNATURE_V2_HEADER: "0" * 64},
    {SIGNATURE_HEADER: "0" * 40},
    sign(audience_join(), "another-secret"),
])
def test_bad_signature_is_401(client: TestClient, batches: list[list[dict[str, Any]]], headers: dict[str, str]) -> None:
    response = post(client, audience_join(), headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("bad_signature", "Agora-Signature-V2")
    assert error["message"]
    assert batches == []


def test_tampered_body_is_401(client: TestClient, batches: list[list[dict[str, Any]]]) -> None:
    headers = sign(audience_join(uid=1), SECRET)
    response = post(client, audience_join(uid=2), headers)
    assert response.status_code == 401
    assert batches == []


@pytest.mark.parametrize(("body", "code", "field"), [
    (b"not json", "invalid_json", "body"),
    (b"[1, 2, 3]", "invalid_json", "body"),
    (b'{"productId": 1, "eventType": 105, "payload": {}}', "malformed_notice", "noticeId"),
    (b'{"noticeId": "n", "productId": 1, "eventType": 105, "payload": {"channelName": "room-1", "ts": 1}}',
     "malformed_notice", "payload.uid"),
])
def test_malformed_signed_body_is_422(client: TestClient, batches: list[list[dict[str, Any]]], body: bytes,
                                      code: str, field: str) -> None:
    response = post(client, body, sign(body, SECRET))
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert field in error["message"]
    assert batches == []


def test_unknown_event_type_is_acknowledged_with_no_events(client: TestClient,
                                                           batches: list[list[dict[str, Any]]]) -> None:
    body = json.dumps({"noticeId": "n", "productId": 1, "eventType": 110, "notifyMs": 1, "payload": {}}).encode()
    response = post(client, body, sign(body, SECRET))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "events": 0}
    assert batches == [[]]


def test_console_health_check_gets_200_and_issues_nothing(client: TestClient,
                                                          batches: list[list[dict[str, Any]]]) -> None:
    body = json.dumps({"noticeId": "2003239619:606959:105", "productId": 1, "eventType": 101,
                       "notifyMs": 1614335577167,
                       "payload": {"channelName": "test_webhook", "ts": 1560396834}}).encode()
    response = post(client, body, sign(body, SECRET))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "events": 0}


def test_a_broadcast_from_channel_create_to_destroy(client: TestClient, batches: list[list[dict[str, Any]]]) -> None:
    notices = [
        (101, {"channelName": "room-1", "ts": 100}),
        (103, {"channelName": "room-1", "uid": 1, "platform": 1, "clientSeq": 1, "ts": 101}),
        (105, {"channelName": "room-1", "uid": 2, "platform": 7, "clientSeq": 5, "ts": 110}),
        (106, {"channelName": "room-1", "uid": 2, "platform": 7, "clientSeq": 6, "reason": 1, "ts": 170}),
        (104, {"channelName": "room-1", "uid": 1, "platform": 1, "clientSeq": 2, "reason": 1, "ts": 200}),
        (102, {"channelName": "room-1", "ts": 200, "lastUid": 1}),
    ]
    for n, (event_type, payload) in enumerate(notices):
        body = json.dumps({"noticeId": f"n{n}", "productId": 1, "eventType": event_type, "notifyMs": 1,
                           "payload": payload}).encode()
        assert post(client, body, sign(body, SECRET)).status_code == 200
    events = [e for batch in batches for e in batch]
    assert [(e["type"], e.get("user"), e["ts"]) for e in events] == [
        ("live_start", None, 100), ("join", "2", 110), ("leave", "2", 170),
        ("leave", "1", 200), ("live_end", None, 200),
    ]


def test_an_empty_secret_is_refused_at_wiring_time() -> None:
    async def submit(events: list[dict[str, Any]]) -> None:
        return None

    with pytest.raises(ValueError, match="LIVECOUPON_AGORA_SECRET"):
        agora_router("", submit)
