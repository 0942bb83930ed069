"""Delivery end to end: missed coupons on reconnect exactly once, mute, consoles, send-to-present."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from livecoupon.campaign_file import load_campaign
from support.apps import EXAMPLE, serving
from support.credentials import API_KEY, PLATFORM, viewer_token

T0 = 1_700_000_000
KEY = API_KEY


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "d.db", headers=PLATFORM) as test_client:
        yield test_client


def post(client: TestClient, *events: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/events", json=list(events))
    assert answer.status_code == 200
    return answer.json()


def start(client: TestClient) -> None:
    post(client, {"type": "live_start", "room": "room-1", "ts": T0})


def join(user: str, at: float = T0 + 1) -> dict[str, Any]:
    return {"type": "join", "room": "room-1", "ts": at, "user": user}


def test_a_coupon_missed_while_away_arrives_on_reconnect_exactly_once(client: TestClient) -> None:
    start(client)
    post(client, join("alice"))  # newcomer coupon issued while alice has no socket open
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('alice')}") as ws:
        first = ws.receive_json()
        assert first["type"] == "coupon" and first["missed"] is True and first["title"] == "新人专享券"
        ws.send_json({"type": "ack", "coupon_id": first["coupon_id"]})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # the ack was handled before the socket closes
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('alice')}") as ws:
        post(client, {"type": "comment", "room": "room-1", "ts": T0 + 200, "user": "alice", "text": "扣1"})
        second = ws.receive_json()
    assert second["trigger"] == "kou1" and "missed" not in second


def test_a_coupon_written_to_the_socket_of_a_client_that_never_acks_does_not_come_again(client: TestClient) -> None:
    """A client built from SPEC §6 alone sends nothing: the coupon it was sent is delivered, and the next
    connection (a phone switching networks) does not pop it up again; a coupon issued meanwhile does come."""
    start(client)
    post(client, join("nina"))
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('nina')}") as ws:
        first = ws.receive_json()
    post(client, {"type": "comment", "room": "room-1", "ts": T0 + 200, "user": "nina", "text": "扣1"})
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('nina')}") as ws:
        second = ws.receive_json()
    assert (first["trigger"], first["missed"]) == ("newcomer", True)
    assert second["trigger"] == "kou1"  # the next message: the newcomer coupon did not come again


def test_an_unacknowledged_coupon_comes_again_on_the_next_connection_of_a_client_that_acks(
        client: TestClient) -> None:
    """``&ack=1`` (the bundled widget): a coupon counts as delivered only once the client says it showed it."""
    start(client)
    post(client, join("bob"))
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('bob')}&ack=1") as ws:
        cid = ws.receive_json()["coupon_id"]
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('bob')}&ack=1") as ws:
        assert ws.receive_json()["coupon_id"] == cid


def test_a_coupon_waiting_out_the_quiet_period_comes_live_once_not_as_missed(tmp_path: Path) -> None:
    """Its popup waits for the viewer's quiet period (after the newcomer coupon's), and they connect meanwhile:
    the backlog they get is what they missed, the newcomer coupon alone; kou1 comes when its turn does, once."""
    example = load_campaign(EXAMPLE)
    campaign = replace(example, delivery=replace(example.delivery, quiet_period_ms=1_000))
    with serving(tmp_path / "d.db", campaign=campaign, headers=PLATFORM) as client:
        start(client)
        post(client, join("ivan"))  # the newcomer coupon's popup (no screen open) starts ivan's quiet period
        post(client, {"type": "comment", "room": "room-1", "ts": T0 + 200, "user": "ivan", "text": "扣1"})
        with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('ivan')}") as ws:
            first = ws.receive_json()
            second = ws.receive_json()
            ws.send_json({"type": "unmute"})  # reads the backlog again: nothing in it was not sent already
            post(client, {"type": "like", "room": "room-1", "ts": T0 + 400, "user": "ivan"})
            issued = client.post("/v1/admin/issue", json={"template": "bonus", "users": ["ivan"], "room": "room-1",
                                                          "idempotency_key": "after-kou1"}, headers={"X-API-Key": KEY})
            assert issued.json()["issued"] == 1
            third = ws.receive_json()
    assert (first["trigger"], first["missed"]) == ("newcomer", True)
    assert second["trigger"] == "kou1" and "missed" not in second
    assert third["trigger"] == "manual" and "missed" not in third  # the next message: no copy came between


def quiet_client(tmp_path: Path) -> contextlib.AbstractContextManager[TestClient]:
    """The example campaign with a 1.5 s quiet period: a viewer's second popup waits that long."""
    example = load_campaign(EXAMPLE)
    campaign = replace(example, delivery=replace(example.delivery, quiet_period_ms=1_500))
    return serving(tmp_path / "d.db", campaign=campaign, headers=PLATFORM)


def issue_bonus(client: TestClient, user: str) -> None:
    issued = client.post("/v1/admin/issue", json={"template": "bonus", "users": [user], "room": "room-1",
                                                  "idempotency_key": f"bonus-{user}"}, headers={"X-API-Key": KEY})
    assert issued.json()["issued"] == 1


@pytest.mark.parametrize("meanwhile", ["expired", "reserved"])
def test_a_popup_waiting_out_the_quiet_period_is_dropped_if_its_coupon_is_no_longer_usable(
        tmp_path: Path, meanwhile: str) -> None:
    """kou1's popup waits behind the newcomer's; before its turn its coupon expires (the event clock passes
    its 15 minutes) or is reserved by an order: it never pops up, and the next coupon's popup takes its turn."""
    with quiet_client(tmp_path) as client:
        start(client)
        with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('judy')}") as ws:
            post(client, join("judy"))
            first = ws.receive_json()
            kou1 = post(client, {"type": "comment", "room": "room-1", "ts": T0 + 200, "user": "judy", "text": "扣1"})
            [decision] = kou1["decisions"]
            if meanwhile == "reserved":
                order = {"order_id": "o-judy", "user": "judy", "cart": [{"product": "p", "price": 50, "qty": 1}],
                         "coupon_id": decision["coupon_id"], "idempotency_key": "o-judy"}
                assert client.post("/v1/orders", json=order).status_code == 201
            later = T0 + 200 + (16 * 60 if meanwhile == "expired" else 130)  # past min_interval, for the bonus
            post(client, {"type": "like", "room": "room-1", "ts": later, "user": "judy"})
            issue_bonus(client, "judy")
            second = ws.receive_json()
    assert first["trigger"] == "newcomer" and decision["trigger"] == "kou1"
    assert second["trigger"] == "manual" and second["title"] == "满万福利"


def test_popups_waiting_go_soonest_to_expire_first(tmp_path: Path) -> None:
    """Two popups wait behind the newcomer's: the bonus (valid 1 h) issued before kou1 (valid 15 min); kou1 goes
    first."""
    with quiet_client(tmp_path) as client:
        start(client)
        with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('kim')}") as ws:
            post(client, join("kim"))
            post(client, {"type": "like", "room": "room-1", "ts": T0 + 200, "user": "kim"})
            issue_bonus(client, "kim")
            post(client, {"type": "comment", "room": "room-1", "ts": T0 + 330, "user": "kim", "text": "扣1"})
            triggers = [ws.receive_json()["trigger"] for _ in range(3)]
    assert triggers == ["newcomer", "kou1", "manual"]


def test_mute_holds_popups_back_and_unmute_delivers_them(client: TestClient) -> None:
    start(client)
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('carol')}") as ws:
        ws.send_json({"type": "mute", "minutes": 10})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # muted before the coupon comes
        post(client, join("carol"))
        held = ws.receive_json()
        ws.send_json({"type": "unmute"})
        message = ws.receive_json()
    assert held == {"type": "held", "coupon_id": message["coupon_id"], "title": "新人专享券"}
    assert message["type"] == "coupon" and message["missed"] is True and message["trigger"] == "newcomer"


@pytest.mark.parametrize("minutes", [-5, 0, float("nan"), "abc", True, None, "missing"])
def test_a_mute_without_a_positive_number_of_minutes_is_refused_and_mutes_nothing(client: TestClient,
                                                                                  minutes: object) -> None:
    start(client)
    mute = {"type": "mute"} | ({} if minutes == "missing" else {"minutes": minutes})
    with client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('olga')}") as ws:
        ws.send_text(json.dumps(mute))  # (NaN as JavaScript and Python write it)
        ws.send_json({"type": "ping"})
        refused = ws.receive_json()
        assert (refused["type"], refused.get("code")) == ("error", "bad_message") and "minutes" in refused["message"]
        assert ws.receive_json() == {"type": "pong"}
        post(client, join("olga"))
        pushed = ws.receive_json()
    assert pushed["type"] == "coupon" and pushed["trigger"] == "newcomer"  # not muted: the popup itself


def test_console_feed_shows_decisions_announcements_and_stats(client: TestClient) -> None:
    start(client)
    with client.websocket_connect(f"/v1/console/live?token={KEY}") as console:
        assert console.receive_json()["type"] == "stats"
        post(client, join("dave"), join("erin"), {"type": "gift", "room": "room-1", "ts": T0 + 2, "user": "erin",
                                                  "value": 520})
        post(client, {"type": "transcript", "room": "room-1", "ts": T0 + 30, "text": "宝宝们发券啦"})
        post(client, {"type": "transcript", "room": "room-1", "ts": T0 + 200, "text": "恭喜榜一的宝宝"})
        seen: list[dict[str, Any]] = []
        while not any(m["type"] == "announcement" for m in seen):
            message = console.receive_json()
            if message["type"] != "stats":
                seen.append(message)
    lines = [m for m in seen if m["type"] == "decision"]
    assert [(m["user"], m["trigger"], m["issued"]) for m in lines[:2]] == [("dave", "newcomer", True),
                                                                          ("erin", "newcomer", True)]
    assert [(m["trigger"], m["reason"]) for m in lines[2:]] == [("passphrase", "min_interval")] * 2 + [
        ("thanks-top", None)]  # 榜一 need not be present, and two minutes have passed since her newcomer coupon
    assert seen[-1]["type"] == "announcement" and seen[-1]["trigger"] == "thanks-top"
    assert seen[-1]["text"].startswith("恭喜榜一 erin")


def test_console_needs_the_key(client: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/console/live?token=wrong") as ws:
        ws.receive_json()
    assert closed.value.code == 4401


@pytest.mark.parametrize("path", [f"/v1/rooms/room-1/live?token={viewer_token('dan')}",
                                  f"/v1/console/live?token={KEY}"])
def test_a_binary_frame_closes_the_socket_with_1003_and_a_reason(client: TestClient, path: str) -> None:
    """Our sockets speak JSON text: a binary frame is a client's mistake, told by RFC 6455's code for it."""
    from starlette.websockets import WebSocketDisconnect

    start(client)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with client.websocket_connect(path) as ws:
        ws.send_bytes(b'{"type": "ping"}')
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()  # the console's stats frames come first
    assert closed.value.code == 1003
    assert closed.value.reason == "只接受 JSON 文本帧 / binary frames are not accepted: send JSON text"
    assert runtime.hub.connections == 0


def test_stats_and_send_to_everyone_present(client: TestClient) -> None:
    start(client)
    post(client, join("f1"), join("f2", T0 + 2))
    headers = {"X-API-Key": KEY}
    sent = client.post("/v1/admin/rooms/room-1/issue-present", json={"template": "bonus", "idempotency_key": "m1"},
                       headers=headers).json()
    assert sent["issued"] == 0 and sent["suppressed"] == 2  # min_interval: both just got a newcomer coupon
    stats = client.get("/v1/admin/stats", headers=headers).json()
    assert stats["triggers"]["newcomer"]["issued"] == 2
    assert stats["triggers"]["manual"]["suppressed"] == {"min_interval": 2}
    assert stats["rooms"]["room-1"] == {"on_air": True, "present": 2, "version": 1}  # the campaign version it runs
    off_air = client.post("/v1/admin/rooms/nowhere/issue-present", json={"template": "bonus", "idempotency_key": "x"},
                          headers=headers)
    assert off_air.status_code == 404


def test_pausing_a_trigger_stops_its_firings(client: TestClient) -> None:
    headers = {"X-API-Key": KEY}
    assert client.post("/v1/admin/triggers/newcomer", json={"paused": True}, headers=headers).json()["paused"]
    start(client)
    assert post(client, join("gina"))["decisions"] == []
    assert client.post("/v1/admin/triggers/nope", json={"paused": True}, headers=headers).status_code == 404


def test_live_metrics_count_redemptions_from_orders_posted_as_events(client: TestClient) -> None:
    start(client)
    post(client, join("hana"))
    [coupon] = client.get("/v1/users/hana/coupons").json()["coupons"]
    post(client, {"type": "order", "room": "room-1", "ts": T0 + 60, "user": "hana", "order_id": "o-1",
                  "amount": 120, "coupon_id": coupon["coupon_id"]})
    metrics = client.get("/v1/admin/metrics", headers={"X-API-Key": KEY}).json()
    newcomer = metrics["triggers"]["newcomer"]
    assert (newcomer["issued"], newcomer["redeemed"], newcomer["orders"], newcomer["gmv"]) == (1, 1, 1, 120.0)
    assert newcomer["redemption_rate"] == 1.0 and newcomer["discount_cost"] == 20.0
    assert set(metrics["experiments"]["dwell-value"]["variants"]) == {"control", "ten", "twenty", "policy"}
    assert client.get("/v1/admin/metrics").status_code == 403  # the platform key does not open operator endpoints


def test_a_room_whose_name_holds_a_slash_is_served_when_sent_as_2f(tmp_path: Path) -> None:
    """Room names are any string: "shop/1" goes in a path as shop%2F1 (encodeURIComponent), on every route."""
    campaign = replace(load_campaign(EXAMPLE), rooms=("shop/1",))
    with serving(tmp_path / "d.db", campaign=campaign, headers=PLATFORM) as client:
        post(client, {"type": "live_start", "room": "shop/1", "ts": T0},
             {"type": "join", "room": "shop/1", "ts": T0 + 1, "user": "wx/1"})
        with client.websocket_connect(f"/v1/rooms/shop%2F1/live?token={viewer_token('wx/1')}") as ws:
            missed = ws.receive_json()
        assert (missed["trigger"], missed["room"], missed["missed"]) == ("newcomer", "shop/1", True)
        from starlette.websockets import WebSocketDisconnect

        with pytest.raises(WebSocketDisconnect), \
                client.websocket_connect(f"/v1/rooms/shop%2F1%2Flive?token={viewer_token('wx/1')}") as ws:
            ws.receive_json()  # room "shop/1/live", and no /live after it: no socket's path, not shop/1's socket
        said = client.post("/v1/rooms/shop%2F1/comments", json={"text": "好看"},
                           headers={"X-API-Key": viewer_token("wx/1")})  # the viewer's, in place of the platform's
        assert said.status_code == 200 and said.json()["accepted"] == 1
        operator = {"X-API-Key": KEY}
        sent = client.post("/v1/admin/rooms/shop%2F1/issue-present", json={"template": "bonus", "idempotency_key": "m"},
                           headers=operator).json()
        assert sent["issued"] + sent["suppressed"] == 1 and sent["decisions"][0]["room"] == "shop/1"
        host = client.post("/v1/admin/rooms/shop%2F1/host-token", headers=operator).json()
        assert host["room"] == "shop/1"
