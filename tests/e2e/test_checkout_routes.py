"""The checkout routes read their caller and body themselves (the hot path): they answer, check and
document exactly what FastAPI's dependencies and body parameters did on the routes around them."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from livecoupon.api.auth import SESSION_COOKIE
from livecoupon.engine.clock import ClockMode
from support.apps import serving
from support.credentials import CREDENTIALS, OPERATOR, PLATFORM, viewer

T0 = 1_700_000_000
CART = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]
MOVES = ["/v1/orders/o1/pay", "/v1/orders/o1/cancel", "/v1/orders/o1/refund"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "routes.db", clock=ClockMode.WALL, wall=lambda: (T0 + 5) * 1000) as test_client:
        yield test_client


def welcome(client: TestClient, user: str) -> str:
    events = [{"type": "live_start", "room": "room-1", "ts": T0}, {"type": "join", "room": "room-1", "ts": T0 + 1,
                                                                   "user": user}]
    assert client.post("/v1/events", json=events, headers=PLATFORM).status_code == 200
    [coupon] = client.get(f"/v1/users/{user}/coupons", headers=PLATFORM).json()["coupons"]
    return str(coupon["coupon_id"])


def new_order(user: str, coupon_id: str | None = None, order_id: str = "o1") -> dict[str, Any]:
    return {"order_id": order_id, "user": user, "cart": CART, "coupon_id": coupon_id, "idempotency_key": "k1"}


def test_the_document_gives_the_lean_routes_the_security_and_bodies_fastapi_would() -> None:
    from livecoupon.api.app import create_app
    from livecoupon.campaign_file import load_campaign
    from livecoupon.service_layer.service import LiveService
    from livecoupon.store.memory import MemoryStore

    example = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
    document = create_app(LiveService(load_campaign(example), MemoryStore()), credentials=CREDENTIALS).openapi()
    paths, schemas = document["paths"], document["components"]["schemas"]
    quote = paths["/v1/checkout/quote"]["post"]  # still FastAPI's own dependencies and body parameter
    for path, body in [("/v1/orders", "OrderIn"), ("/v1/orders/{order_id}/pay", "OrderActionIn"),
                       ("/v1/orders/{order_id}/cancel", "OrderActionIn"),
                       ("/v1/orders/{order_id}/refund", "OrderActionIn")]:
        operation = paths[path]["post"]
        assert operation["security"] == quote["security"]
        assert operation["requestBody"] == {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        assert body in schemas
    assert schemas["OrderIn"]["properties"]["cart"]["items"] == {"$ref": "#/components/schemas/CartLineIn"}
    assert [p["name"] for p in paths["/v1/orders/{order_id}/pay"]["post"]["parameters"]] == ["order_id"]


@pytest.mark.parametrize("path", ["/v1/orders", *MOVES])
def test_no_credential_is_401_whatever_the_body_holds(client: TestClient, path: str) -> None:
    for body in (b"not json", b"{}"):
        answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    wrong = client.post(path, content=b"{}", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401


def test_each_credential_opens_them_as_before(client: TestClient) -> None:
    coupon = welcome(client, "alice")
    other = client.post("/v1/orders", json=new_order("alice", coupon), headers=viewer("bob"))
    assert other.status_code == 403
    own = client.post("/v1/orders", json=new_order("alice", coupon), headers=viewer("alice"))
    assert own.status_code == 201 and own.json()["discount"] == 20
    assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "p"}, headers=viewer("bob")).status_code == 403
    assert client.post("/v1/session", headers=OPERATOR).cookies.get(SESSION_COOKIE)  # the client keeps it
    by_session = client.post("/v1/orders/o1/pay", json={"idempotency_key": "p"})
    assert by_session.status_code == 200 and by_session.json()["state"] == "paid"
    bearer_key = client.post("/v1/orders/o1/refund", json={"idempotency_key": "r"},
                             headers={"Authorization": f"Bearer {CREDENTIALS.platform_key}"})
    assert bearer_key.status_code == 200 and bearer_key.json()["coupon_returned"] is True


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"order_id": "o1", "user": "alice", "cart": [{"product": "p", "price": 1.001, "qty": 1}],
      "idempotency_key": "k"}, "malformed", "cart[0].price"),
    ({"order_id": "o1", "user": "alice", "cart": [], "idempotency_key": "k"}, "malformed", "cart"),
    ({"order_id": "o1", "user": "alice", "cart": CART}, "malformed", "idempotency_key"),
    ({"order_id": "", "user": "alice", "cart": CART, "idempotency_key": "k"}, "malformed", "order_id"),
    ([], "malformed", "body"),
])
def test_a_bad_order_body_is_422_naming_the_field(client: TestClient, body: Any, code: str, field: str) -> None:
    answer = client.post("/v1/orders", json=body, headers=PLATFORM)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)


def test_a_body_that_is_not_json_is_422_invalid_json(client: TestClient) -> None:
    for path in ("/v1/orders", *MOVES):
        answer = client.post(path, content=b'{"idempotency_key": ',
                             headers=PLATFORM | {"Content-Type": "application/json"})
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_sent_as_json_is_422_as_fastapi_answered(client: TestClient, content_type: str | None) -> None:
    headers = PLATFORM | ({"Content-Type": content_type} if content_type else {})
    body = (b'{"order_id": "o1", "user": "alice", "cart": [{"product": "p", "price": 1, "qty": 1}], '
            b'"idempotency_key": "k"}')
    answer = client.post("/v1/orders", content=body, headers=headers)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "body"
    assert client.post("/v1/orders", content=body, headers=PLATFORM | {"Content-Type": "application/vnd.x+json; "
                                                                         "charset=utf-8"}).status_code == 201


@pytest.mark.parametrize("path", ["/v1/orders", *MOVES])
def test_an_empty_body_is_422_missing(client: TestClient, path: str) -> None:
    answer = client.post(path, content=b"", headers=PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "body" and "required" in answer.json()["error"]["message"]


def test_the_answers_are_the_json_text_fastapi_wrote(client: TestClient) -> None:
    """The routes write their answers with msgspec: the same compact UTF-8 text as ``JSONResponse``, and the
    same headers, for a success, a repeat of it and a refusal."""
    coupon = welcome(client, "小明")
    created = client.post("/v1/orders", json=new_order("小明", coupon), headers=PLATFORM)
    again = client.post("/v1/orders", json=new_order("小明", coupon), headers=PLATFORM)
    taken = client.post("/v1/orders", json=new_order("小明", coupon, "o2") | {"idempotency_key": "k2"},
                        headers=PLATFORM)
    for answer, status in ((created, 201), (again, 201), (taken, 409)):
        assert answer.status_code == status and answer.headers["content-type"] == "application/json"
        written = json.dumps(answer.json(), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        assert answer.content == written and answer.headers["content-length"] == str(len(written))
    assert again.content == created.content and "小明" in created.text


# -- the checkout lane (api/lane.py) serves these routes ahead of FastAPI; what it passes on, FastAPI answers --
def test_a_repeat_through_fastapi_answers_what_the_lane_answered(client: TestClient) -> None:
    """A gzip body is left to the app (which inflates it): the same request, once by the lane and once by
    FastAPI's route, is one order, and the repeat gets the first answer byte for byte."""
    coupon = welcome(client, "alice")
    plain = client.post("/v1/orders", json=new_order("alice", coupon), headers=PLATFORM)
    zipped = client.post("/v1/orders", content=gzip.compress(json.dumps(new_order("alice", coupon)).encode()),
                         headers=PLATFORM | {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert plain.status_code == zipped.status_code == 201
    assert zipped.content == plain.content and zipped.headers["content-type"] == plain.headers["content-type"]
    paid = client.post("/v1/orders/o1/pay", content=gzip.compress(b'{"idempotency_key": "p"}'),
                       headers=PLATFORM | {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    again = client.post("/v1/orders/o1/pay", json={"idempotency_key": "p"}, headers=PLATFORM)
    assert paid.status_code == again.status_code == 200 and again.content == paid.content


def test_the_lane_times_each_route_under_its_template(client: TestClient) -> None:
    coupon = welcome(client, "alice")
    assert client.post("/v1/orders", json=new_order("alice", coupon), headers=PLATFORM).status_code == 201
    assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "p"}, headers=PLATFORM).status_code == 200
    assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "q"}, headers=PLATFORM).status_code == 409
    assert client.post("/v1/orders/o1/cancel", json={}, headers=PLATFORM).status_code == 422
    text = client.get("/metrics", headers=OPERATOR).text
    for route, status, count in [("/v1/orders", "2xx", 1), ("/v1/orders/{order_id}/pay", "2xx", 1),
                                 ("/v1/orders/{order_id}/pay", "4xx", 1), ("/v1/orders/{order_id}/cancel", "4xx", 1)]:
        line = (f'livecoupon_http_request_duration_seconds_count{{method="POST",route="{route}",'
                f'status="{status}"}} {count:.1f}')
        assert line in text, line


def test_what_the_lane_does_not_serve_fastapi_answers_as_before(client: TestClient) -> None:
    wrong_method = client.get("/v1/orders/o1/pay", headers=PLATFORM)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert client.post("/v1/orders/o1/ship", json={"idempotency_key": "s"}, headers=PLATFORM).status_code == 404
    assert client.post("/v1/orders/o1/pay/x", json={"idempotency_key": "s"}, headers=PLATFORM).status_code == 404
    unknown = client.post("/v1/orders/nope/pay", json={"idempotency_key": "s"}, headers=viewer("alice"))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_order"


def test_a_declared_body_over_the_limit_is_413_before_anything_reads_it(client: TestClient) -> None:
    answer = client.post("/v1/orders", content=b"{}", headers=PLATFORM | {"Content-Length": str(17 * 2**20)})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"


def test_a_refunded_order_leaves_the_metrics(client: TestClient) -> None:
    # the coupon's order refunded, its money back: it no longer counts as a redemption, an order or their value;
    # the coupon, back in the account, pays a second order, which does
    coupon_id = welcome(client, "ann")

    def newcomer() -> dict[str, Any]:
        metrics = client.get("/v1/admin/metrics", headers=OPERATOR).json()
        return {k: metrics["triggers"]["newcomer"][k] for k in ("redeemed", "orders", "gmv")}

    def paid(order_id: str) -> None:
        assert client.post("/v1/orders", json=new_order("ann", coupon_id, order_id) | {"idempotency_key": order_id},
                           headers=PLATFORM).status_code == 201
        assert client.post(f"/v1/orders/{order_id}/pay", json={"idempotency_key": f"pay-{order_id}"},
                           headers=PLATFORM).status_code == 200

    paid("o1")
    assert newcomer()["orders"] == 1
    assert client.post("/v1/orders/o1/refund", json={"idempotency_key": "r"}, headers=PLATFORM).status_code == 200
    assert newcomer() == {"redeemed": 0, "orders": 0, "gmv": 0.0}
    paid("o2")
    assert newcomer()["redeemed"] == 1 and newcomer()["orders"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ('{"order_id": "o1", "user": "\\ud800", "cart": CART, "idempotency_key": "k1"}', "user"),
    ('{"order_id": "o1", "user": "u", "cart": [{"product": "a\\udfff", "category": "c", "price": 1, "qty": 1}], '
     '"idempotency_key": "k1"}', "cart[0].product"),
])
def test_a_lone_surrogate_in_an_order_is_refused_naming_its_field(client: TestClient, body: str, field: str) -> None:
    """JSON's grammar allows "\\ud800", which no text holds: the 422 names the field (it said "invalid JSON:
    unexpected end of hex escape" about the body), as the quote's does."""
    answer = client.post("/v1/orders", content=body.replace("CART", json.dumps(CART)),
                         headers={**PLATFORM, "Content-Type": "application/json"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["field"] == field and "lone surrogate" in error["message"]
    pay = client.post("/v1/orders/o1/pay", content='{"idempotency_key": "\\ud800"}',
                      headers={**PLATFORM, "Content-Type": "application/json"})
    assert pay.status_code == 422 and pay.json()["error"]["field"] == "idempotency_key"
    broken = client.post("/v1/orders", content='{"order_id": ',
                         headers={**PLATFORM, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"]["field"] == "body"  # JSON that is not: as it was
