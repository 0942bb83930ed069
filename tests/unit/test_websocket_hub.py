"""The hubs' bounds: a viewer who stops reading costs a bounded queue, a user a bounded number of sockets."""

from __future__ import annotations

from livecoupon.delivery.websockets import MAX_CONNECTIONS_PER_USER, QUEUE_SIZE, ConsoleHub, Hub


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
