"""The hubs' bounds: a viewer who stops reading costs a bounded queue, a user a bounded number of sockets."""

from __future__ import annotations

import pytest

from livecoupon.delivery.websockets import (
    MAX_CONNECTIONS_PER_USER,
    QUEUE_SIZE,
    BadMessage,
    ConsoleHub,
    Hub,
    mute_seconds,
)


def coupon(n: int) -> dict[str, object]:
    return {"type": "coupon", "coupon_id": f"cp_{n}", "title": "t"}


def test_a_socket_that_stops_reading_drops_pushes_past_its_queue() -> None:
    hub = Hub()
    sub = hub.subscribe("r", "u")
    assert sub is not None
    delivered = [hub.publish("r", "u", coupon(n)) for n in range(QUEUE_SIZE + 10)]
    assert delivered == [1] * QUEUE_SIZE + [0] * 10
    assert sub.queue.qsize() == QUEUE_SIZE and sub.dropped == 10


def test_a_user_holds_at_most_the_allowed_sockets_and_frees_them_on_close() -> None:
    hub = Hub()
    subs = [hub.subscribe(f"room-{n % 2}", "u") for n in range(MAX_CONNECTIONS_PER_USER)]
    assert all(s is not None for s in subs) and hub.subscribe("r", "u") is None
    assert hub.subscribe("r", "someone-else") is not None
    first = subs[0]
    assert first is not None
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # twice: still counted once
    assert hub.connections_of("u") == MAX_CONNECTIONS_PER_USER - 1
    assert hub.subscribe("r", "u") is not None and hub.subscribe("r", "u") is None


def test_a_host_console_hears_its_room_only() -> None:
    hub = ConsoleHub()
    operator, host = hub.subscribe(), hub.subscribe("room-1")
    for message in ({"type": "decision", "room": "room-1"}, {"type": "decision", "room": "room-2"},
                    {"type": "stats"}):
        hub.broadcast(message)
    assert operator.qsize() == 3 and host.qsize() == 1
    assert host.get_nowait()["room"] == "room-1"
    assert hub.has_operators and hub.host_rooms() == {"room-1"}


@pytest.mark.parametrize("minutes", [-5, 0, float("nan"), float("inf"), "abc", "10", True, None, [1]])
def test_a_mute_needs_a_positive_number_of_minutes(minutes: object) -> None:
    with pytest.raises(BadMessage, match="minutes"):
        mute_seconds({"type": "mute", "minutes": minutes}, 2 * 3_600_000)
    with pytest.raises(BadMessage):
        mute_seconds({"type": "mute"}, 2 * 3_600_000)  # no default: SPEC and docs name none


def test_a_mute_lasts_its_minutes_up_to_the_longest_allowed() -> None:
    assert mute_seconds({"type": "mute", "minutes": 10}, 2 * 3_600_000) == 600
    assert mute_seconds({"type": "mute", "minutes": 0.5}, 2 * 3_600_000) == 30
    assert mute_seconds({"type": "mute", "minutes": 1e308}, 2 * 3_600_000) == 7200


def test_a_subscription_says_whether_its_client_acknowledges_popups() -> None:
    hub = Hub()
    plain, acking = hub.subscribe("r", "u"), hub.subscribe("r", "u", acks=True)
    assert plain is not None and acking is not None
    assert (plain.acks, acking.acks) == (False, True)
