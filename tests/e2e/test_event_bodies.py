"""POST /v1/events bodies over HTTP: gzip in, bounded; a bad or oversized gzip body is a clear 4xx, never a 5xx."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from livecoupon.api.bodies import MAX_BODY
from livecoupon.engine.clock import ClockMode
from support.apps import serving
from support.credentials import PLATFORM

T0 = 1_700_000_000
GZIP = PLATFORM | {"Content-Encoding": "gzip", "Content-Type": "application/json"}
BATCH: list[dict[str, Any]] = [
    {"type": "live_start", "room": "room-1", "ts": T0},
    {"type": "join", "room": "room-1", "ts": T0 + 1, "user": "alice"},
    {"type": "join", "room": "room-1", "ts": T0 + 1},
    {"type": "comment", "room": "room-1", "ts": T0 + 2, "user": "bob", "text": "扣1"},
    {"type": "gift", "room": "room-1", "ts": T0 + 2, "user": "alice", "value": 1.999},
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "bodies.db", clock=ClockMode.EVENT) as test_client:
        yield test_client


def plain_body() -> bytes:
    return json.dumps(BATCH, ensure_ascii=False).encode()


def test_a_gzip_batch_is_judged_like_the_same_batch_sent_plain(client: TestClient, tmp_path: Path) -> None:
    zipped = client.post("/v1/events", content=gzip.compress(plain_body()), headers=GZIP)
    assert zipped.status_code == 200, zipped.text
    with serving(tmp_path / "plain.db", clock=ClockMode.EVENT) as other:
        plain = other.post("/v1/events", content=plain_body(), headers=PLATFORM | {"Content-Type": "application/json"})
    assert zipped.json() == plain.json()
    answer = zipped.json()
    assert answer["accepted"] == 3
    assert [(r["index"], r["error"].split(":")[0]) for r in answer["rejected"]] == [(2, "user"), (4, "value")]


def test_gzip_members_one_after_another_are_one_body(client: TestClient) -> None:
    text = plain_body()
    body = gzip.compress(text[:40]) + gzip.compress(text[40:])
    answer = client.post("/v1/events", content=body, headers=GZIP)
    assert answer.status_code == 200 and answer.json()["accepted"] == 3


@pytest.mark.parametrize(("body", "reason"), [
    (b"this is not gzip at all", "header"),
    (gzip.compress(b"[]")[:-6], "truncated"),
    (gzip.compress(b"[]")[:-8] + b"\x00\x00\x00\x00\x02\x00\x00\x00", "check"),  # a wrong CRC
    (b"", "truncated"),
])
def test_a_bad_gzip_body_is_400_naming_the_problem(client: TestClient, body: bytes, reason: str) -> None:
    answer = client.post("/v1/events", content=body, headers=GZIP)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "bad_encoding" and error["field"] == "body"
    assert "gzip" in error["message"] and reason in error["message"], error["message"]


def test_a_gzip_bomb_is_413_and_the_service_carries_on(client: TestClient) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(b"[") + packer.compress(b" " * (MAX_BODY + 1024)) + packer.compress(b"]") + packer.flush()
    assert len(bomb) < 64 * 1024  # a small request that would inflate past 16 MiB
    answer = client.post("/v1/events", content=bomb, headers=GZIP)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert client.post("/v1/events", content=gzip.compress(plain_body()), headers=GZIP).status_code == 200


def test_gzip_of_something_that_is_no_batch_is_422(client: TestClient) -> None:
    answer = client.post("/v1/events", content=gzip.compress(b'{"type": "join"}'), headers=GZIP)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "not_an_array"


def test_another_encoding_is_415(client: TestClient) -> None:
    answer = client.post("/v1/events", content=zlib.compress(plain_body()),
                         headers=PLATFORM | {"Content-Encoding": "deflate"})
    assert answer.status_code == 415


@pytest.mark.parametrize("zipped", [False, True])
def test_an_event_holding_bytes_that_are_not_utf8_is_rejected_alone_not_a_5xx(client: TestClient,
                                                                              zipped: bool) -> None:
    body = plain_body()[:-1] + b', {"type": "join", "room": "room-1", "ts": %d, "user": "\xc3"}]' % (T0 + 3)
    answer = client.post("/v1/events", content=gzip.compress(body) if zipped else body,
                         headers=GZIP if zipped else PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3
    assert [(r["index"], r["error"].split(":")[0]) for r in answer.json()["rejected"]] == [
        (2, "user"), (4, "value"), (5, "user")]
