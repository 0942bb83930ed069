"""Trust boundaries over HTTP and WebSocket: who may call what, the service's time, bounds on input."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from livecoupon.api.throttle import Throttle
from livecoupon.engine.clock import ClockMode
from support.apps import serving
from support.credentials import CREDENTIALS, OPERATOR, PLATFORM, viewer, viewer_token

T0 = 1_700_000_000
CART = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]


class Wall:
    """The machine's clock as the service sees it, set by the test (ms)."""

    def __init__(self) -> None:
        self.ms = T0 * 1000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def wall() -> Wall:
    return Wall()


@contextlib.contextmanager
def make_client(tmp_path: Path, wall: Wall, throttle: Throttle | None = None) -> Iterator[TestClient]:
    with serving(tmp_path / "t.db", clock=ClockMode.WALL, wall=wall, throttle=throttle) as client:
        yield client


@pytest.fixture
def client(tmp_path: Path, wall: Wall) -> Iterator[TestClient]:
    with make_client(tmp_path, wall) as test_client:
        yield test_client


def post_events(client: TestClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.post("/v1/events", json=events, headers=PLATFORM)
    assert answer.status_code == 200, answer.text
    return answer.json()


def start(client: TestClient, *users: str) -> None:
    post_events(client, [{"type": "live_start", "room": "room-1", "ts": T0}] +
                [{"type": "join", "room": "room-1", "ts": T0, "user": u} for u in users])


# -- who may call what -------------------------------------------------------------------------
EXPIRED = CREDENTIALS.viewer_token("alice", seconds=-10)
FORGED = CREDENTIALS.__class__("x", "y", "another-secret-of-at-least-32-bytes!").viewer_token("alice")
CALLERS: dict[str, dict[str, str]] = {
    "none": {}, "wrong": {"X-API-Key": "not-a-key"}, "expired": {"Authorization": f"Bearer {EXPIRED}"},
    "forged": {"Authorization": f"Bearer {FORGED}"}, "alice": viewer("alice"), "bob": viewer("bob"),
    "platform": PLATFORM, "operator": OPERATOR,
    "host": {"Authorization": f"Bearer {CREDENTIALS.host_token('room-1')}"},
}
ORDER = {"order_id": "o-alice", "user": "alice", "cart": CART, "idempotency_key": "k"}
# (method, path, body, who gets in); everyone else: 401 without a valid credential, 403 with one.
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/v1/events", [], {"platform", "operator"}),
    ("GET", "/v1/users/alice/coupons", None, {"alice", "platform", "operator"}),
    ("POST", "/v1/checkout/quote", {"user": "alice", "cart": CART}, {"alice", "platform", "operator"}),
    ("POST", "/v1/orders", ORDER, {"alice", "platform", "operator"}),
    ("POST", "/v1/rooms/room-1/comments", {"text": "hi"}, {"alice", "bob"}),
    ("GET", "/v1/admin/stats", None, {"operator"}),
    ("GET", "/v1/admin/decisions", None, {"operator"}),
    ("GET", "/v1/admin/metrics", None, {"operator"}),
    ("POST", "/v1/admin/triggers/newcomer", {"paused": False}, {"operator"}),
    ("POST", "/v1/admin/issue", {"template": "bonus", "users": ["a"], "room": "room-1", "idempotency_key": "m"},
     {"operator"}),
    ("POST", "/v1/admin/blocklist", {"users": ["x"], "blocked": False}, {"operator"}),
    ("POST", "/v1/admin/rooms/room-1/host-token", None, {"operator"}),
    ("POST", "/v1/session", None, {"operator", "host"}),
]
INVALID = {"none", "wrong", "expired", "forged"}


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_lets_in_exactly_its_callers(client: TestClient, method: str, path: str, body: Any,
                                                    allowed: set[str]) -> None:
    start(client)
    for who, headers in CALLERS.items():
        answer = client.request(method, path, json=body, headers=headers)
        client.cookies.clear()
        expected = "in" if who in allowed else ("401" if who in INVALID else "403")
        got = "in" if answer.status_code < 400 or answer.status_code in (404, 409) else str(answer.status_code)
        assert got == expected, f"{who}: {answer.status_code} {answer.text}"


def test_a_viewer_sees_and_acts_only_for_themself(client: TestClient) -> None:
    start(client, "alice", "bob")
    bob_coupon = client.get("/v1/users/bob/coupons", headers=PLATFORM).json()["coupons"][0]["coupon_id"]
    assert client.get(f"/v1/coupons/{bob_coupon}", headers=viewer("alice")).status_code == 403
    assert client.get(f"/v1/coupons/{bob_coupon}", headers=viewer("bob")).status_code == 200
    as_bob = {"order_id": "o1", "user": "bob", "cart": CART, "coupon_id": bob_coupon, "idempotency_key": "k"}
    assert client.post("/v1/orders", json=as_bob, headers=viewer("alice")).status_code == 403
    assert client.post("/v1/orders", json=as_bob, headers=viewer("bob")).status_code == 201
    for action in ("pay", "cancel", "refund"):
        answer = client.post(f"/v1/orders/o1/{action}", json={"idempotency_key": "a"}, headers=viewer("alice"))
        assert answer.status_code == 403, action
    assert client.get("/v1/orders/o1", headers=viewer("alice")).status_code == 403
    assert client.post("/v1/orders/o1/pay", json={"idempotency_key": "p"}, headers=viewer("bob")).status_code == 200


def test_a_viewer_reaches_its_own_user_alone_when_ids_hold_a_slash(client: TestClient) -> None:
    """wx/1's token, with its id escaped in the path (wx%2F1), opens wx/1's routes and no one else's."""
    start(client, "wx/1", "wx")
    coupons = client.get("/v1/users/wx%2F1/coupons", headers=viewer("wx/1"))
    assert coupons.status_code == 200 and len(coupons.json()["coupons"]) == 1
    assert client.get("/v1/users/wx%2F1/coupons", headers=viewer("wx")).status_code == 403
    assert client.get("/v1/users/wx/coupons", headers=viewer("wx/1")).status_code == 403
    coupon_id = coupons.json()["coupons"][0]["coupon_id"]
    assert client.get(f"/v1/coupons/{coupon_id}", headers=viewer("wx")).status_code == 403
    mine = {"order_id": "o/1", "user": "wx/1", "cart": CART, "coupon_id": coupon_id, "idempotency_key": "k"}
    assert client.post("/v1/orders", json=mine, headers=viewer("wx/1")).status_code == 201
    assert client.get("/v1/orders/o%2F1", headers=viewer("wx")).status_code == 403
    assert client.post("/v1/orders/o%2F1/pay", json={"idempotency_key": "p"}, headers=viewer("wx")).status_code == 403
    assert client.post("/v1/orders/o%2F1/pay", json={"idempotency_key": "p"}, headers=viewer("wx/1")).status_code == 200
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('wx')}&user=wx%2F1") as ws:
        ws.receive_json()
    assert closed.value.code == 4403


def test_idempotency_keys_are_scoped_to_caller_and_user(client: TestClient) -> None:
    start(client, "alice", "bob")
    for user in ("alice", "bob"):
        body = {"order_id": f"o-{user}", "user": user, "cart": CART, "idempotency_key": "same-key"}
        answer = client.post("/v1/orders", json=body, headers=viewer(user))
        assert answer.status_code == 201 and answer.json()["user"] == user


def test_the_viewer_socket_needs_the_viewers_own_token(client: TestClient) -> None:
    start(client)
    for url, code in [("/v1/rooms/room-1/live", 4401), ("/v1/rooms/room-1/live?token=nope", 4401),
                      (f"/v1/rooms/room-1/live?token={EXPIRED}", 4401),
                      (f"/v1/rooms/room-1/live?token={viewer_token('alice')}&user=bob", 4403),
                      (f"/v1/rooms/room-1/live?token={CREDENTIALS.api_key}", 4403)]:
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
            ws.receive_json()
        assert closed.value.code == code, url
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('alice')}&user=alice") as ws:
        post_events(client, [{"type": "join", "room": "room-1", "ts": T0 + 1, "user": "alice"}])
        message = ws.receive_json()
        assert message["type"] == "coupon" and message["title"]


@pytest.mark.parametrize("sub", ["\ud800", "", "x" * 129], ids=["lone surrogate", "empty", "129 characters"])
def test_a_signed_token_whose_sub_is_no_user_id_is_refused_like_a_bad_one(client: TestClient, sub: str) -> None:
    """Signed with the viewer secret, but its sub could not be a user (SPEC §2): 401, and 4401 on the socket."""
    start(client)
    token = viewer_token(sub)
    for path in ("/v1/session", "/v1/users/x/coupons"):
        answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", path
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/v1/rooms/room-1/live?token={token}") as ws:
        ws.receive_json()
    assert closed.value.code == 4401


def test_a_user_may_hold_five_sockets_not_six(client: TestClient) -> None:
    start(client)
    url = f"/v1/rooms/room-1/live?token={viewer_token('alice')}"
    with contextlib.ExitStack() as five:
        for _ in range(5):
            five.enter_context(client.websocket_connect(url))
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as sixth:
            sixth.receive_json()
        assert closed.value.code == 4429


def test_the_console_socket_opens_for_operators_and_hosts_only(client: TestClient) -> None:
    host = CREDENTIALS.host_token("room-1")
    with client.websocket_connect(f"/v1/console/live?token={host}") as ws:
        first = ws.receive_json()
        assert first["type"] == "stats" and set(first["rooms"]) == {"room-1"}
    for token, code in [("nope", 4401), (viewer_token("alice"), 4403), (CREDENTIALS.platform_key, 4403)]:
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(
                f"/v1/console/live?token={token}") as ws:
            ws.receive_json()
        assert closed.value.code == code


def test_a_console_session_is_a_cookie_and_never_a_url(client: TestClient) -> None:
    answer = client.post("/v1/session", headers=OPERATOR)
    assert answer.status_code == 200 and answer.json()["role"] == "operator"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/v1/admin/stats").status_code == 200  # the cookie alone
    with client.websocket_connect("/v1/console/live") as ws:
        assert ws.receive_json()["type"] == "stats"
    with client.websocket_connect("/v1/console/live", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "stats"  # the console's own page
    # a page of another origin (a sibling subdomain: SameSite lets the cookie through; a socket has no CORS)
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect("/v1/console/live", headers={"Origin": "http://evil.example"}) as ws:
        ws.receive_json()
    assert closed.value.code == 4403
    renewed = client.post("/v1/session")  # a session never opens another: a cookie copied lasts its 12 hours
    assert renewed.status_code == 401 and renewed.json()["error"]["code"] == "credential_required"
    assert "set-cookie" not in renewed.headers
    client.delete("/v1/session")
    client.cookies.clear()
    assert client.get("/v1/admin/stats").status_code == 401


def test_wrong_credentials_from_one_address_are_slowed_down(tmp_path: Path, wall: Wall) -> None:
    with make_client(tmp_path, wall, Throttle(failed_auth="3/minute")) as client:
        statuses = [client.get("/v1/admin/stats", headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.parametrize("local", ["127.0.0.1", "::1"])
def test_the_limits_by_address_leave_the_machine_itself_alone(tmp_path: Path, wall: Wall, local: str) -> None:
    """A test suite, a proxy that does not forward its clients' addresses: every caller is loopback, and they were
    all throttled together (a conformance run checking 1,000 viewers' coupons got 429s). Each viewer's own rate
    still holds; from any other address, the address's rates too."""
    limits = dict(viewer="2/minute", ip="3/minute", failed_auth="2/minute")
    with serving(tmp_path / "local.db", clock=ClockMode.WALL, wall=wall, throttle=Throttle(**limits),
                 peer=(local, 40000)) as client:
        assert {client.get(f"/v1/users/u{i}/coupons", headers=viewer(f"u{i}")).status_code for i in range(6)} == {200}
        assert {client.get("/v1/admin/stats", headers={"X-API-Key": f"guess-{i}"}).status_code
                for i in range(4)} == {401}
        assert [client.get("/v1/users/u0/coupons", headers=viewer("u0")).status_code for _ in range(2)] == [200, 429]
    with serving(tmp_path / "remote.db", clock=ClockMode.WALL, wall=wall, throttle=Throttle(**limits),
                 peer=("203.0.113.9", 40000)) as client:
        assert [client.get(f"/v1/users/u{i}/coupons", headers=viewer(f"u{i}")).status_code
                for i in range(4)] == [200, 200, 200, 429]
        assert [client.get("/v1/admin/stats", headers={"X-API-Key": f"guess-{i}"}).status_code
                for i in range(3)] == [401, 401, 429]


def test_a_viewer_over_the_rate_limit_gets_429_with_retry_after(tmp_path: Path, wall: Wall) -> None:
    with make_client(tmp_path, wall, Throttle(viewer="5/minute")) as client:
        statuses = [client.get("/v1/users/alice/coupons", headers=viewer("alice")).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429, 429]
        limited = client.get("/v1/users/alice/coupons", headers=viewer("alice"))
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["error"]["code"] == "rate_limited"
        assert client.get("/v1/users/bob/coupons", headers=viewer("bob")).status_code == 200


# -- the service's time -------------------------------------------------------------------------
def test_events_far_from_the_services_clock_are_rejected_by_name(client: TestClient, wall: Wall) -> None:
    events = [{"type": "live_start", "room": "room-1", "ts": T0},
              {"type": "join", "room": "room-1", "ts": T0 + 86_400, "user": "future"},
              {"type": "join", "room": "room-1", "ts": T0 - 10 * 86_400, "user": "past"},
              {"type": "join", "room": "room-1", "ts": T0 + 4.9, "user": "ahead"},
              {"type": "join", "room": "room-1", "ts": T0 - 599, "user": "late"}]
    answer = post_events(client, events)
    assert answer["accepted"] == 3
    errors = {r["index"]: r["error"] for r in answer["rejected"]}
    assert set(errors) == {1, 2}
    assert errors[1].startswith("ts: ts_in_future") and errors[2].startswith("ts: ts_too_old")
    assert client.get("/v1/users/past/coupons", headers=PLATFORM).json()["coupons"] == []


def test_an_event_stamped_ahead_cannot_move_the_clock_or_expire_coupons(client: TestClient) -> None:
    start(client, "alice")
    post_events(client, [{"type": "heartbeat", "room": "room-1", "ts": T0 + 86_400, "user": "alice"}])
    [coupon] = client.get("/v1/users/alice/coupons", headers=PLATFORM).json()["coupons"]
    assert coupon["state"] == "issued"
    stats = client.get("/v1/admin/health", headers=OPERATOR).json()
    assert (stats["clock"], stats["now"]) == ("wall", T0 * 1000)


def test_an_event_stamped_a_little_ahead_is_applied_at_the_machines_time(client: TestClient, wall: Wall) -> None:
    """Within the 5 s it is taken, but it moves nothing ahead of the machine's clock (SPEC §2): its coupon is not
    issued in the future, and the events after it are applied at their own times, not at its."""
    start(client)
    post_events(client, [{"type": "join", "room": "room-1", "ts": T0 + 4.5, "user": "ahead"}])
    [coupon] = client.get("/v1/users/ahead/coupons", headers=PLATFORM).json()["coupons"]
    assert coupon["issued_at"] == "2023-11-14T22:13:20.000Z"  # T0
    wall.ms += 1_000
    post_events(client, [{"type": "join", "room": "room-1", "ts": T0 + 1, "user": "next"}])
    [coupon] = client.get("/v1/users/next/coupons", headers=PLATFORM).json()["coupons"]
    assert coupon["issued_at"] == "2023-11-14T22:13:21.000Z"
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    assert [(e.get("user"), e["ts"]) for e in service.store.events()][-2:] == [("ahead", T0), ("next", T0 + 1)]


def test_a_late_event_is_applied_now_and_logged_as_applied(client: TestClient, wall: Wall) -> None:
    start(client, "alice")
    wall.ms += 5_000
    post_events(client, [{"type": "heartbeat", "room": "room-1", "ts": T0 + 3, "user": "alice"}])
    post_events(client, [{"type": "comment", "room": "room-1", "ts": T0 + 1, "user": "alice", "text": "hi"}])
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    logged = [e for e in service.store.events() if e["type"] == "comment"]
    assert logged == [{"type": "comment", "room": "room-1", "ts": T0 + 5, "user": "alice", "text": "hi"}]


def test_a_client_whose_clock_is_behind_cannot_date_coupons_or_watch_time_back(tmp_path: Path, wall: Wall) -> None:
    """A join stamped 9 minutes late (within the 10 minutes taken) was applied at its stamp when the room had been
    quiet: its newcomer coupon issued 9 minutes in the past (valid 9 minutes less), its 5-minute dwell timer already
    due. It is applied at the machine's time."""
    with serving(tmp_path / "late.db", clock=ClockMode.WALL, wall=wall) as client:
        post_events(client, [{"type": "live_start", "room": "room-1", "ts": T0}])
        wall.ms += 20 * 60_000
        late = (wall.ms - 9 * 60_000) / 1000
        post_events(client, [{"type": "join", "room": "room-1", "ts": late, "user": "slow-clock"}])
        [coupon] = client.get("/v1/users/slow-clock/coupons", headers=PLATFORM).json()["coupons"]
        issued = dt.datetime.fromisoformat(coupon["issued_at"].replace("Z", "+00:00")).timestamp() * 1000
        assert issued == wall.ms
        wall.ms += 60_000  # a minute on: no dwell coupon (it was due 4 minutes before the join arrived)
        client.app.state.runtime.service.tick()  # type: ignore[attr-defined]
        assert len(client.get("/v1/users/slow-clock/coupons", headers=PLATFORM).json()["coupons"]) == 1


# -- bounds on input ----------------------------------------------------------------------------
def test_a_body_over_16_mib_is_413(client: TestClient) -> None:
    body = b"[" + b" " * (16 * 2**20) + b"]"
    answer = client.post("/v1/events", content=body, headers=PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"


def test_a_gzip_body_is_read_and_a_gzip_bomb_is_413(client: TestClient) -> None:
    events = json.dumps([{"type": "live_start", "room": "room-1", "ts": T0}]).encode()
    answer = client.post("/v1/events", content=gzip.compress(events),
                         headers=PLATFORM | {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    bomb = gzip.compress(b"[" + b" " * (20 * 2**20) + b"]")
    answer = client.post("/v1/events", content=bomb, headers=PLATFORM | {"Content-Encoding": "gzip"})
    assert answer.status_code == 413


@pytest.mark.parametrize("path", ["/v1/events", "/v1/checkout/quote", "/v1/orders"])
def test_deeply_nested_json_is_422_not_500(client: TestClient, path: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    answer = client.post(path, content=body, headers=PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code == 422


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/admin/triggers/newcomer", {"paused": "yes"}, "paused"),
    ("/v1/admin/triggers/newcomer", {"paused": 1}, "paused"),
    ("/v1/admin/blocklist", {"users": ["p2"], "blocked": "no"}, "blocked"),
    ("/v1/admin/issue", {"template": "newcomer", "users": ["a"], "room": "room-1", "idempotency_key": 7},
     "idempotency_key"),
    ("/v1/checkout/quote", {"user": "alice", "cart": [{"product": "sku-1", "price": "120", "qty": 1}]}, "price"),
])
def test_a_value_of_another_json_type_is_422_not_read_as_one(client: TestClient, path: str, body: dict[str, Any],
                                                             field: str) -> None:
    """"yes" was a pause and "no" an unblock: an operator's typo acted on, where SPEC asks true or false."""
    answer = client.post(path, json=body, headers=OPERATOR)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]["field"]
    triggers = client.get("/v1/admin/stats", headers=OPERATOR).json()["triggers"]
    assert not any(trigger["paused"] for trigger in triggers.values())


def test_one_bad_event_never_fails_its_batch(client: TestClient) -> None:
    long_text = "x" * 2001
    body = (f'[{{"type":"live_start","room":"room-1","ts":{T0}}},'
            f'{{"type":"comment","room":"room-1","ts":{T0},"user":"a","text":"\\ud800"}},'
            f'{{"type":"join","room":"room-1","ts":{T0},"user":"b"}},'
            '{"type":"join","room":"room-1","ts":1e15,"user":"c"},'
            f'{{"type":"comment","room":"room-1","ts":{T0},"user":"d","text":"{long_text}"}},'
            f'{{"type":"operator","room":"*","ts":{T0},"action":"pause","trigger":"newcomer"}},'
            # a number no float holds: accepted, it made every later start of the service fail (and this batch a 500)
            f'{{"type":"join","room":"room-1","ts":{T0},"user":"e","profile":{{"level":1{"0" * 400}}}}}]')
    answer = client.post("/v1/events", content=body, headers=PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code == 200
    result = answer.json()
    errors = {r["index"]: r["error"] for r in result["rejected"]}
    assert result["accepted"] == 2 and set(errors) == {1, 3, 4, 5, 6}
    assert "text" in errors[1] and "ts" in errors[3] and "text" in errors[4] and "type" in errors[5]
    assert errors[6].startswith("profile.level: ")
    assert client.get("/v1/admin/stats", headers=OPERATOR).status_code == 200


def test_quantities_and_prices_out_of_range_are_422(client: TestClient) -> None:
    start(client, "alice")
    for line in ({"product": "p", "price": 1, "qty": 10**17}, {"product": "p", "price": 1e12, "qty": 1},
                 {"product": "p", "price": 1e308, "qty": 1}, {"product": "p", "price": 10_000_000.01, "qty": 1}):
        answer = client.post("/v1/checkout/quote", json={"user": "alice", "cart": [line]}, headers=PLATFORM)
        assert answer.status_code == 422, line
        if line["qty"] == 1:  # each price over the line's bound says the line's bound
            assert "must be at most 10,000,000 yuan" in answer.json()["error"]["message"], line
    # each line within its bounds, the total not: the order, paid, would log an event the log cannot read back
    big = [{"product": "p", "price": 10_000_000, "qty": 100}, {"product": "q", "price": 0.01, "qty": 1}]
    answer = client.post("/v1/orders", json={"order_id": "o-big", "user": "alice", "cart": big, "idempotency_key": "k"},
                         headers=PLATFORM)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "cart_too_large"
    exact = {"order_id": "o-max", "user": "alice", "cart": big[:1], "idempotency_key": "k2"}
    assert client.post("/v1/orders", json=exact, headers=PLATFORM).status_code == 201


def test_too_many_events_is_422_and_not_an_array_too(client: TestClient) -> None:
    many = [{"type": "heartbeat", "room": "room-1", "ts": T0, "user": "u"}] * 10_001
    assert client.post("/v1/events", json=many, headers=PLATFORM).status_code == 422
    assert client.post("/v1/events", json={"type": "join"}, headers=PLATFORM).status_code == 422


def test_a_viewers_chat_takes_the_user_from_the_token_and_the_time_from_the_service(client: TestClient,
                                                                                    wall: Wall) -> None:
    start(client, "alice")
    wall.ms += 2_000
    answer = client.post("/v1/rooms/room-1/comments", json={"text": "扣1", "user": "bob", "ts": 1},
                         headers=viewer("alice"))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    [comment] = [e for e in service.store.events() if e["type"] == "comment"]
    assert (comment["user"], comment["ts"]) == ("alice", T0 + 2)


def test_a_viewer_token_never_makes_its_user_present(client: TestClient, wall: Wall) -> None:
    # an account the platform never reported (a farm's second phone account: no device, no risk) chatting with its
    # own token: SPEC §2 would make the comment an implied join, newcomer and keyword coupons past per_device
    start(client, "alice")
    refused = client.post("/v1/rooms/room-1/comments", json={"text": "扣1"}, headers=viewer("mallory"))
    assert refused.status_code == 409 and refused.json()["error"] == {
        "code": "not_in_room", "field": "room",
        "message": "你还不在这个直播间（请先从直播平台进入） / "
                   "you are not in this room: join it on the live platform first"}
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    assert not [e for e in service.store.events() if e.get("user") == "mallory"]
    assert client.get("/v1/users/mallory/coupons", headers=viewer("mallory")).json()["coupons"] == []
    wall.ms += 61_000  # alice's presence lapsed too: a viewer's chat does not renew it
    assert client.post("/v1/rooms/room-1/comments", json={"text": "hi"}, headers=viewer("alice")).status_code == 409
    post_events(client, [{"type": "heartbeat", "room": "room-1", "ts": wall.ms / 1000, "user": "alice"}])
    said = client.post("/v1/rooms/room-1/comments", json={"text": "扣1"}, headers=viewer("alice"))
    assert said.status_code == 200  # present again: her keyword trigger decides
    assert [(d["user"], d["trigger"]) for d in said.json()["decisions"]] == [("alice", "kou1")]


def test_a_viewers_chat_answers_their_own_decisions_alone(client: TestClient, wall: Wall) -> None:
    # the chat arrives when bob's and alice's dwell timers are due: both fire before it, bob's decision is his
    start(client, "alice", "bob")
    for second in range(30, 300, 30):
        wall.ms = (T0 + second) * 1000
        post_events(client, [{"type": "heartbeat", "room": "room-1", "ts": T0 + second, "user": u}
                             for u in ("alice", "bob")])
    wall.ms = (T0 + 301) * 1000
    said = client.post("/v1/rooms/room-1/comments", json={"text": "扣1"}, headers=viewer("alice"))
    assert said.status_code == 200
    listed = said.json()["decisions"]
    assert listed and {d["user"] for d in listed} == {"alice"}
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    assert any(r.user == "bob" and r.trigger == "dwell" for r in service.records.values())


def test_a_session_cookie_speaks_only_for_reads_and_json_writes(client: TestClient) -> None:
    # a page of a sibling subdomain (SameSite=Strict lets the cookie through) posting a text/plain body, which needs
    # no preflight: it posted events as the operator, and the join it forged was issued a coupon
    assert client.post("/v1/session", headers=OPERATOR).status_code == 200
    forged = json.dumps([{"type": "live_start", "room": "room-1", "ts": T0},
                         {"type": "join", "room": "room-1", "ts": T0, "user": "mallory"}])
    for path, body in (("/v1/events", forged), ("/v1/orders", json.dumps({"order_id": "o", "user": "u", "cart": CART,
                                                                           "idempotency_key": "k"}))):
        answer = client.post(path, content=body, headers={"Content-Type": "text/plain"})
        assert answer.status_code == 401, path
    service = client.app.state.runtime.service  # type: ignore[attr-defined]
    assert not list(service.store.events())
    assert client.get("/v1/admin/stats").status_code == 200  # reads, as before
    assert client.post("/v1/events", content=forged, headers={"Content-Type": "application/json"}).status_code == 200


@pytest.mark.timeout(30)  # (a socket that outlives its token waits here for ever)
def test_a_viewers_socket_closes_when_its_token_expires(client: TestClient) -> None:
    start(client, "alice")
    short = CREDENTIALS.viewer_token("alice", seconds=4)
    received = []
    with (client.websocket_connect(f"/v1/rooms/room-1/live?token={short}") as ws,
          pytest.raises(WebSocketDisconnect) as closed):
        while True:
            received.append(ws.receive_json())  # the newcomer coupon, then the close at the token's end
    assert [m["type"] for m in received] == ["coupon"]  # it was open with its token
    assert closed.value.code == 4401 and "expired" in closed.value.reason


def test_refusals_read_chinese_first_then_english(client: TestClient) -> None:
    """Every answer people read says it in Chinese, then English: a refused credential, a socket closed on one,
    and a value a validator refused (without the name of the exception it raised)."""
    answer = client.get("/v1/users/x/coupons", headers={"X-API-Key": "wrong"})
    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith("需要有效的凭证 / a valid credential is required")
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/rooms/room-1/live") as ws:
        ws.receive_json()
    assert closed.value.reason.startswith("需要有效的观众令牌 / ")
    answer = client.post("/v1/checkout/quote", headers=PLATFORM,
                         json={"user": "u", "cart": [{**CART[0], "price": "120"}]})
    error = answer.json()["error"]
    assert answer.status_code == 422 and error["field"] == "cart[0].price"
    assert error["message"] == "cart[0].price: 必须是金额（元），不能是文本 / must be a number of yuan"


def test_a_body_the_service_cannot_read_says_why(client: TestClient) -> None:
    """Not UTF-8, cut short, not sent as JSON: each a 422 on the body saying which (it was "There was an error
    parsing the body", a character position taken for a field, or a hint to send JSON to one who had)."""
    json_headers = {**PLATFORM, "Content-Type": "application/json"}
    for body, said in [(b'\xff\xfe{"user": "u"}', "/ body: not "),  # "not valid JSON", or "not JSON … UTF-8"
                       (b'{"user": ', "body: not valid JSON (at character 9)")]:
        error = client.post("/v1/checkout/quote", content=body, headers=json_headers).json()["error"]
        assert (error["code"], error["field"]) == ("invalid_json", "body") and said in error["message"]
    as_text = client.post("/v1/checkout/quote", content=b'{"user": "u", "cart": []}',
                          headers={**PLATFORM, "Content-Type": "text/plain"}).json()["error"]
    assert "send a JSON object with Content-Type: application/json" in as_text["message"]
    a_list = client.post("/v1/checkout/quote", json=[], headers=PLATFORM).json()["error"]
    assert a_list["field"] == "body" and "Content-Type" not in a_list["message"]  # it was JSON: its shape is wrong


def test_a_path_that_is_not_utf8_text_is_refused_naming_the_path(client: TestClient) -> None:
    """Read with each bad byte as U+FFFD, it named a user no one is and was answered 200 with nothing."""
    for path in ("/v1/users/%ED%A0%80/coupons", "/v1/admin/users/%ff/explain", "/v1/coupons/cp_%C3"):
        answer = client.get(path, headers=OPERATOR)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "path", (path, answer.text)
    assert client.get("/v1/users/%E5%B0%8F%E6%98%8E/coupons", headers=OPERATOR).status_code == 200  # 小明
    for path in ("/v1/orders/%ff/pay", "/v1/orders/o%2F%C3/cancel"):  # the checkout lane's routes (api/lane.py)
        answer = client.post(path, json={"idempotency_key": path}, headers=OPERATOR)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "path", (path, answer.text)


@pytest.mark.parametrize("room", ["x" * 129, "*"], ids=["129 characters", "the reserved room"])
def test_a_viewers_socket_for_no_room_is_closed_saying_so(client: TestClient, room: str) -> None:
    """The room's HTTP routes refuse such a name (422); its socket took it and listened for nothing."""
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/v1/rooms/{room}/live?token={viewer_token('alice')}") as ws:
        ws.receive_json()
    assert closed.value.code == 4422 and closed.value.reason.startswith("直播间名称无效 / not a room name")
