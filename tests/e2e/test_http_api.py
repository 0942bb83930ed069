"""Every HTTP endpoint end to end: the ASGI app over a real SQLite file."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from livecoupon.engine.clock import ClockMode
from support.apps import serving
from support.credentials import API_KEY, PLATFORM, viewer, viewer_token

T0 = 1_700_000_000
KEY = API_KEY


class FakeWall:
    def __init__(self) -> None:
        self.seconds = float(T0 + 1)  # the time of arrive()'s joins: an event ahead of it would be applied at it

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def wall() -> FakeWall:
    return FakeWall()


@pytest.fixture
def client(tmp_path: Path, wall: FakeWall) -> Iterator[TestClient]:
    with serving(tmp_path / "api.db", clock=ClockMode.WALL, wall=lambda: int(wall.seconds * 1000),
                 headers=PLATFORM) as test_client:
        yield test_client


def arrive(client: TestClient, *users: str, at: float = T0 + 1) -> dict[str, Any]:
    events = [{"type": "live_start", "room": "room-1", "ts": T0}]
    events += [{"type": "join", "room": "room-1", "ts": at, "user": u} for u in users]
    answer = client.post("/v1/events", json=events)
    assert answer.status_code == 200
    return answer.json()


def newcomer_coupon(client: TestClient, user: str) -> str:
    coupons = client.get(f"/v1/users/{user}/coupons").json()["coupons"]
    assert [c["template"] for c in coupons] == ["newcomer"]
    return str(coupons[0]["coupon_id"])


CART = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]


def order(client: TestClient, order_id: str, user: str, coupon_id: str | None, key: str,
          cart: list[dict[str, Any]] = CART) -> Any:
    return client.post("/v1/orders", json={"order_id": order_id, "user": user, "cart": cart,
                                           "coupon_id": coupon_id, "idempotency_key": key})


def test_health_and_openapi_describe_every_endpoint(client: TestClient) -> None:
    assert client.get("/health").json()["ok"] is True
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/events", "/v1/users/{user}/coupons", "/v1/checkout/quote", "/v1/orders",
                 "/v1/orders/{order_id}/pay", "/v1/orders/{order_id}/cancel", "/v1/orders/{order_id}/refund",
                 "/v1/admin/issue"):
        assert path in paths
    assert not [p for p in paths if ":" in p]  # a {user:path} converter is no part of the documented path


def test_events_are_applied_and_bad_ones_rejected_by_index(client: TestClient) -> None:
    answer = client.post("/v1/events", json=[
        {"type": "live_start", "room": "room-1", "ts": T0},
        {"type": "join", "room": "room-1", "ts": T0 + 1, "user": "alice"},
        {"type": "join", "room": "room-1", "ts": T0 + 1},
        {"type": "gift", "room": "room-1", "ts": T0 + 2, "user": "alice", "value": 1.999},
        {"type": "teleport", "room": "room-1", "ts": T0 + 3},
    ]).json()
    assert answer["accepted"] == 2
    assert [(r["index"], r["error"].split(":")[0]) for r in answer["rejected"]] == [(2, "user"), (3, "value"),
                                                                                    (4, "type")]
    assert [d["trigger"] for d in answer["decisions"]] == ["newcomer"]


@pytest.mark.parametrize("body", [b'{"type": "join"}', b"not json", b"[" + b"{}," * 10_000 + b"{}]"])
def test_events_body_must_be_an_array_of_at_most_10000(client: TestClient, body: bytes) -> None:
    answer = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "body"


def test_user_coupons_list_terms_and_iso_expiry(client: TestClient) -> None:
    arrive(client, "alice")
    [coupon] = client.get("/v1/users/alice/coupons").json()["coupons"]
    assert coupon["state"] == "issued" and coupon["title"] == "新人专享券" and coupon["kind"] == "threshold"
    assert coupon["threshold"] == 99 and coupon["amount"] == 20
    assert coupon["expires_at"] == "2023-11-14T22:43:21.000Z"  # T0 + 1 + 30 min
    assert client.get("/v1/users/nobody/coupons").json() == {"coupons": []}


def test_a_coupon_ending_past_the_year_9999_is_listed_at_the_last_ms_a_date_names(client: TestClient,
                                                                                     wall: FakeWall) -> None:
    """Issued in the calendar's last minutes (SPEC §2 takes a ts to 9999), its 30 minutes end in the year 10000: the
    user's coupons were a 500 (``year 10000 is out of range``) from then on."""
    end = 253_402_300_700  # 9999-12-31T23:58:20Z
    wall.seconds = end
    events = [{"type": "live_start", "room": "room-1", "ts": end}, {"type": "join", "room": "room-1", "ts": end,
                                                                    "user": "late"}]
    assert client.post("/v1/events", json=events).status_code == 200
    listed = client.get("/v1/users/late/coupons")
    assert listed.status_code == 200 and [c["expires_at"] for c in listed.json()["coupons"]] == [
        "9999-12-31T23:59:59.999Z"]
    assert [c["issued_at"] for c in listed.json()["coupons"]] == ["9999-12-31T23:58:20.000Z"]


def test_quote_picks_the_best_usable_coupon(client: TestClient) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    quote = client.post("/v1/checkout/quote", json={"user": "alice", "cart": CART}).json()
    assert quote["best"]["coupon_id"] == cid and quote["best"]["discount"] == 20 and quote["best"]["payable"] == 100
    small = client.post("/v1/checkout/quote", json={"user": "alice", "cart": [
        {"product": "sku-1", "category": "dress", "price": 98.99, "qty": 1}]}).json()
    assert small["best"] is None and small["usable"] == []


@pytest.mark.parametrize("line", [{"product": "p", "price": 1.001, "qty": 1}, {"product": "p", "price": 1, "qty": 0},
                                  {"product": "p", "price": 1, "qty": 1.5}, {"product": "p", "price": -1, "qty": 1},
                                  {"product": "p", "price": "1", "qty": 1}, {"price": 1, "qty": 1}])
def test_quote_rejects_malformed_cart_lines(client: TestClient, line: dict[str, Any]) -> None:
    answer = client.post("/v1/checkout/quote", json={"user": "alice", "cart": [line]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"].startswith("cart[0]")


def test_order_create_pay_refund_moves_the_coupon(client: TestClient) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    created = order(client, "o1", "alice", cid, "k1")
    assert created.status_code == 201
    assert created.json() | {} == created.json() and created.json()["payable"] == 100
    assert client.get("/v1/users/alice/coupons").json()["coupons"][0]["state"] == "reserved"
    assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "k2"}).status_code == 200
    assert client.get("/v1/users/alice/coupons").json()["coupons"][0]["state"] == "redeemed"
    refund = client.post("/v1/orders/o1/refund", json={"idempotency_key": "k3"})
    assert refund.status_code == 200 and refund.json()["coupon_returned"] is True
    history = client.get(f"/v1/coupons/{cid}").json()["history"]
    assert [h["action"] for h in history] == ["issued", "reserved", "redeemed", "refunded"]


def test_double_payment_is_refused_but_a_repeated_key_gets_the_first_answer(client: TestClient) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    order(client, "o1", "alice", cid, "k1")
    first = client.post("/v1/orders/o1/pay", json={"idempotency_key": "pay-1"})
    repeat = client.post("/v1/orders/o1/pay", json={"idempotency_key": "pay-1"})
    second = client.post("/v1/orders/o1/pay", json={"idempotency_key": "pay-2"})
    assert first.status_code == repeat.status_code == 200 and first.json() == repeat.json()
    assert second.status_code == 409 and second.json()["error"]["code"] == "order_paid"


def test_another_users_coupon_is_refused(client: TestClient) -> None:
    arrive(client, "alice", "bob")
    cid = newcomer_coupon(client, "alice")
    answer = order(client, "o1", "bob", cid, "k1")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_your_coupon"


def test_an_expired_coupon_is_refused(client: TestClient, wall: FakeWall) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    wall.seconds += 31 * 60
    answer = order(client, "o1", "alice", cid, "k1")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "coupon_expired"
    assert client.get("/v1/users/alice/coupons").json()["coupons"][0]["state"] == "expired"


def test_a_coupon_that_does_not_fit_the_cart_is_refused(client: TestClient) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    cheap = [{"product": "sku-1", "category": "dress", "price": 50, "qty": 1}]
    answer = order(client, "o1", "alice", cid, "k1", cheap)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "coupon_not_applicable"


def test_cancel_puts_the_coupon_back_and_a_lapsed_reservation_too(client: TestClient, wall: FakeWall) -> None:
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    order(client, "o1", "alice", cid, "k1")
    assert order(client, "o2", "alice", cid, "k2").json()["error"]["code"] == "coupon_reserved"
    assert client.post("/v1/orders/o1/cancel", json={"idempotency_key": "c1"}).json()["state"] == "cancelled"
    assert order(client, "o2", "alice", cid, "k3").status_code == 201
    wall.seconds += 16 * 60  # the 15-minute reservation lapses
    for key in ("p2", "p3"):  # the same code once the lapse is written as when the payment found it
        lapsed = client.post("/v1/orders/o2/pay", json={"idempotency_key": key})
        assert lapsed.status_code == 409 and lapsed.json()["error"]["code"] == "reservation_lapsed"
    assert client.get("/v1/orders/o2").json()["state"] == "lapsed"
    assert client.get("/v1/users/alice/coupons").json()["coupons"][0]["state"] == "issued"


def test_a_reservation_that_ran_out_shows_as_lapsed_at_its_end_before_anyone_acts(client: TestClient,
                                                                                     wall: FakeWall) -> None:
    """SPEC §5: every change is an append to the coupon's history; the lapse was written only when someone next tried
    to pay (and stamped then), and the order still read "created" meanwhile. Expiry shows the same way."""
    arrive(client, "alice")
    cid = newcomer_coupon(client, "alice")
    reserved_until = order(client, "o1", "alice", cid, "k1").json()["reserved_until"]
    wall.seconds += 16 * 60
    for _ in range(2):  # as seen, then as written by the attempt to pay
        assert client.get("/v1/orders/o1").json()["state"] == "lapsed"
        seen = client.get(f"/v1/coupons/{cid}").json()
        assert (seen["state"], seen["order_id"]) == ("issued", None)  # it held the lapsed order's id until written
        assert [c["order_id"] for c in client.get("/v1/users/alice/coupons").json()["coupons"]] == [None]
        history = seen["history"]
        assert [(h["state"], h["action"]) for h in history][-1] == ("issued", "lapsed")
        assert history[-1]["at"] == reserved_until and history[-1]["order_id"] == "o1"
        assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "p1"}).status_code == 409
    assert [h["action"] for h in client.get(f"/v1/coupons/{cid}").json()["history"]] == ["issued", "reserved", "lapsed"]
    order(client, "o2", "alice", cid, "k2")
    wall.seconds += 16 * 60
    cancelled = client.post("/v1/orders/o2/cancel", json={"idempotency_key": "c2"})  # it reads lapsed: it stays so
    assert cancelled.status_code == 409 and cancelled.json()["error"]["code"] == "order_lapsed"
    assert client.get("/v1/orders/o2").json()["state"] == "lapsed"
    history = client.get(f"/v1/coupons/{cid}").json()["history"]
    assert ("lapsed", "o2") in [(h["action"], h["order_id"]) for h in history]
    wall.seconds += 30 * 60  # past the newcomer coupon's 30 minutes
    seen = client.get(f"/v1/coupons/{cid}").json()
    assert seen["state"] == "expired" and [(h["state"], h["action"]) for h in seen["history"]][-1] == (
        "expired", "expired")


def test_unknown_orders_are_404_and_malformed_bodies_422(client: TestClient) -> None:
    missing = client.post("/v1/orders/nope/pay", json={"idempotency_key": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_order"
    assert client.get("/v1/orders/nope").status_code == 404
    assert client.post("/v1/orders", json={"order_id": "o1"}).status_code == 422
    assert client.post("/v1/orders/o1/pay", json={}).json()["error"]["field"] == "idempotency_key"
    too_long = client.get(f"/v1/users/{'x' * 129}/coupons")  # no event names such a user: it was a 200 of nothing
    assert (too_long.status_code, too_long.json()["error"]["field"]) == (422, "user")


def test_operator_issue_needs_the_api_key_and_respects_stock(client: TestClient) -> None:
    body = {"template": "flash20", "users": ["a", "b"], "room": "room-1", "idempotency_key": "manual-1"}
    assert client.post("/v1/admin/issue", json=body).status_code == 403  # the platform key: not an operator
    assert client.post("/v1/admin/issue", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    answer = client.post("/v1/admin/issue", json=body, headers={"X-API-Key": KEY})
    assert answer.status_code == 200 and answer.json()["issued"] == 2
    again = client.post("/v1/admin/issue", json=body, headers={"X-API-Key": KEY}).json()
    assert again["issued"] == 2 and len(client.get("/v1/users/a/coupons").json()["coupons"]) == 1
    unknown = client.post("/v1/admin/issue", json=body | {"template": "nope", "idempotency_key": "manual-2"},
                          headers={"X-API-Key": KEY})
    assert unknown.status_code == 404
    status = client.get("/v1/admin/campaign", headers={"X-API-Key": KEY}).json()
    assert status["stock"]["flash20"] == {"issued": 2, "stock": 500}


def test_no_coupon_is_issued_nor_order_placed_in_the_reserved_room_or_one_the_campaign_does_not_list(
        client: TestClient) -> None:
    """``*`` stands for every room (events and comments refuse it); a room the campaign does not list is none of
    its own: a manual issue there was counted against caps of a room that never was."""
    operator = {"X-API-Key": KEY}
    body = {"template": "flash20", "users": ["a"], "idempotency_key": "m"}
    for room, status, code in (("*", 422, "reserved_room"), ("room-zz", 404, "unknown_room")):
        for path, sent in (("/v1/admin/issue", body | {"room": room}),
                           (f"/v1/admin/rooms/{room}/issue-present", {"template": "flash20", "idempotency_key": "p"})):
            answer = client.post(path, json=sent, headers=operator)
            assert (answer.status_code, answer.json()["error"]["code"], answer.json()["error"]["field"]) == (
                status, code, "room")
    assert client.get("/v1/users/a/coupons").json()["coupons"] == []
    placed = client.post("/v1/orders", json={"order_id": "o-star", "user": "a", "cart": CART, "idempotency_key": "k",
                                             "room": "*"})
    assert placed.status_code == 422 and "room" in json.dumps(placed.json())
    del client.headers["X-API-Key"]  # the viewer's own app: their token alone
    said = client.post("/v1/rooms/*/comments", json={"text": "hi"}, headers=viewer("a"))
    assert (said.status_code, said.json()["error"]["field"]) == (422, "room")


def test_an_operator_key_repeated_gets_the_first_answer_and_reused_for_another_request_a_422(
        client: TestClient) -> None:
    admin = {"X-API-Key": KEY}
    arrive(client, "a")
    body = {"template": "bonus", "users": ["a", "b"], "room": "room-1", "idempotency_key": "vip-1"}
    first = client.post("/v1/admin/issue", json=body, headers=admin)
    assert first.status_code == 200 and first.json()["issued"] == 1 and first.json()["suppressed"] == 1
    assert client.post("/v1/admin/issue", json=body, headers=admin).json() == first.json()
    for change in ({"users": ["a"]}, {"users": ["a", "b", "c"]}, {"template": "flash20"}, {"room": "room-2"}):
        refused = client.post("/v1/admin/issue", json=body | change, headers=admin)
        assert refused.status_code == 422, change
        error = refused.json()["error"]
        assert (error["code"], error["field"]) == ("idempotency_key_reused", "idempotency_key")
    decisions = client.get("/v1/admin/decisions", headers=admin).json()["decisions"]
    assert [(d["user"], d["issued"]) for d in decisions if d["trigger"] == "manual"] == [("a", False), ("b", True)]
    assert [c["template"] for c in client.get("/v1/users/c/coupons").json()["coupons"]] == []


def test_send_to_everyone_present_retried_after_the_audience_changed_gets_the_first_answer(
        client: TestClient, wall: FakeWall) -> None:
    admin = {"X-API-Key": KEY}
    arrive(client, "a", "b")
    wall.seconds = T0 + 200  # past min_interval since their newcomer coupons
    client.post("/v1/events", json=[{"type": "heartbeat", "room": "room-1", "ts": T0 + 199, "user": u}
                                    for u in ("a", "b")])
    body = {"template": "bonus", "idempotency_key": "all-1"}
    first = client.post("/v1/admin/rooms/room-1/issue-present", json=body, headers=admin).json()
    assert [(d["user"], d["issued"]) for d in first["decisions"]] == [("a", True), ("b", True)]
    client.post("/v1/events", json=[{"type": "leave", "room": "room-1", "ts": T0 + 200, "user": "a"},
                                    {"type": "join", "room": "room-1", "ts": T0 + 200, "user": "c"}])
    assert client.post("/v1/admin/rooms/room-1/issue-present", json=body, headers=admin).json() == first
    refused = client.post("/v1/admin/rooms/room-1/issue-present", json=body | {"template": "pct15"}, headers=admin)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "idempotency_key_reused"
    assert [c["template"] for c in client.get("/v1/users/c/coupons").json()["coupons"]] == ["newcomer"]


def test_websocket_pushes_the_coupon_the_moment_it_is_issued(client: TestClient) -> None:
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('alice')}") as socket:
        arrive(client, "alice")
        message = socket.receive_json()
    assert message["type"] == "coupon" and message["title"] == "新人专享券"
    assert message["kind"] == "threshold" and message["amount"] == 20 and message["threshold"] == 99
    assert message["expires_at"] == "2023-11-14T22:43:21.000Z"
    assert message["reason"].startswith("欢迎第一次来直播间")


def test_a_socket_message_it_cannot_act_on_is_answered_with_an_error_and_the_socket_stays(client: TestClient) -> None:
    """Silence left a client's developer guessing why an ack did nothing."""
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('alice')}") as socket:
        for sent, code in (("{not json", "bad_message"), ("[]", "bad_message"), ('{"type": "ack"}', "bad_message"),
                           ('{"type": "wave"}', "unknown_type")):
            socket.send_text(sent)
            answer = socket.receive_json()
            assert (answer["type"], answer["code"]) == ("error", code) and answer["message"]
        socket.send_text('{"type": "mute", "minutes": 1}')
        socket.send_text('{"type": "unmute"}')
        socket.send_text('{"type": "ping"}')
        assert socket.receive_json() == {"type": "pong"}
        arrive(client, "alice")
        assert socket.receive_json()["type"] == "coupon"  # still open; mute and unmute answered nothing


def test_ids_holding_a_slash_are_served_when_sent_as_2f(client: TestClient) -> None:
    """A user or order id may be any string (SPEC §2): one with a "/" is sent escaped, as a browser's
    encodeURIComponent writes it, and routed one raw segment at a time (api/segments.py)."""
    arrive(client, "wx/1", "50%/off")
    assert len(client.get("/v1/users/50%25%2Foff/coupons").json()["coupons"]) == 1  # a "%" in it too
    [coupon] = client.get("/v1/users/wx%2F1/coupons").json()["coupons"]
    assert client.get(f"/v1/coupons/{coupon['coupon_id']}").json()["history"][0]["action"] == "issued"
    assert order(client, "o/1", "wx/1", coupon["coupon_id"], "k1").status_code == 201
    assert client.get("/v1/orders/o%2F1").json()["state"] == "created"
    assert client.post("/v1/orders/o%2F1/pay", json={"idempotency_key": "k2"}).json()["state"] == "paid"
    refund = json.dumps({"idempotency_key": "k3"}).encode()  # gzip: FastAPI's route, not the checkout lane
    answer = client.post("/v1/orders/o%2F1/refund", content=gzip.compress(refund),
                         headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["state"] == "refunded"


def test_an_escaped_slash_never_splits_a_path(client: TestClient) -> None:
    """%2F stays inside its segment: order "x/pay" is read, never a payment of order "x"."""
    missing = client.get("/v1/orders/x%2Fpay")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_order"
    assert client.get("/v1/orders/x/pay").status_code == 405
    assert client.post("/v1/orders/x%2Fpay", json={"idempotency_key": "k"}).status_code == 405
    unknown = client.get("/v1/coupons/cp%2F1")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_coupon"
    assert client.get("/v1/users/wx/1/coupons").json()["error"]["code"] == "not_found"
    trigger = client.post("/v1/admin/triggers/no%2Fsuch", json={"paused": True}, headers={"X-API-Key": KEY})
    assert trigger.status_code == 404 and trigger.json()["error"]["code"] == "unknown_trigger"


def test_a_manual_issue_answers_its_own_decisions_the_first_time_as_after(tmp_path: Path) -> None:
    """The same key gets the same answer (SPEC §5): the first answer counted a dwell coupon whose timer the command
    fired on its way (it was due by the command's time), which a repeat did not."""
    from livecoupon.campaign_file import parse_campaign

    camp = parse_campaign("""
campaign: c1
rooms: ["room-1"]
presence_timeout: 1h
coupons:
  d10: {title: 观望券, kind: no_threshold, amount: 10, valid_for: 15m}
  m20: {title: 手动券, kind: no_threshold, amount: 20, valid_for: 15m}
triggers:
  - {name: stay, when: dwell, after: 60s, coupon: d10}
""")
    wall = FakeWall()
    with serving(tmp_path / "m.db", campaign=camp, clock=ClockMode.WALL, wall=lambda: int(wall.seconds * 1000),
                 headers=PLATFORM) as client:
        arrive(client, "viewer")
        wall.seconds += 120  # the viewer's dwell timer is due; no event has come since to fire it
        body = {"template": "m20", "users": ["a", "b"], "room": "room-1", "idempotency_key": "k"}
        first = client.post("/v1/admin/issue", json=body, headers={"X-API-Key": KEY}).json()
        again = client.post("/v1/admin/issue", json=body, headers={"X-API-Key": KEY}).json()
        assert first == again and first["issued"] == 2
        assert [c["template"] for c in client.get("/v1/users/viewer/coupons").json()["coupons"]] == ["d10"]
