"""A POST /v1/events body read by msgspec straight into events judges every event exactly as the
standard parser followed by ``parse_event`` did: same events, same rejections, same indexes and fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.api.batches import read_batch
from livecoupon.domain.events import Event, event_json
from livecoupon.engine.clock import ClockMode, ServiceClock
from livecoupon.errors import Malformed
from livecoupon.service_layer.service import admit

TS = 1_731_300_000.5
CLOCK = ServiceClock(ClockMode.EVENT, lambda: None)

BASE: dict[str, dict[str, Any]] = {
    "live_start": {}, "live_end": {}, "join": {"user": "u1"}, "leave": {"user": "u1"},
    "heartbeat": {"user": "u1"}, "comment": {"user": "u1", "text": "扣1"}, "like": {"user": "u1", "count": 3},
    "follow": {"user": "u1"}, "gift": {"user": "u1", "value": 9.9},
    "order": {"user": "u1", "order_id": "o1", "amount": 199.0}, "online_count": {"count": 10000},
    "transcript": {"text": "宝宝们发券啦"}, "flash_sale": {"duration": 60},
    "operator": {"action": "pause", "trigger": "dwell"},
}
ODD_VALUES: list[Any] = [None, "", "x" * 129, "é", 0, -1, 1.5, 2.0, 10**30, True, [], {}, "a\u2028b", 1e300,
                         "u2", 7, 0.015]
FIELDS = ["type", "room", "ts", "id", "user", "count", "text", "value", "amount", "order_id", "duration",
          "device", "ip", "risk", "profile", "extra"]


def judged(batch: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events, result = admit(batch, CLOCK)
    return [event_json(e) for e in events], result.rejected


def body_of(events: list[Any]) -> bytes:
    return json.dumps(events, ensure_ascii=False).encode()


def assert_same_as_before(events: list[Any]) -> None:
    body = body_of(events)
    assert judged(read_batch(body)) == judged(json.loads(body))


@st.composite
def events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(sorted(BASE)))
    event: dict[str, Any] = {"type": kind, "room": "room-1", "ts": TS, **BASE[kind]}
    if draw(st.booleans()):
        event["id"] = draw(st.sampled_from(["e1", "", "é", "x" * 200]))
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(FIELDS))
        if draw(st.integers(0, 4)) == 0:
            event.pop(field, None)
        else:
            event[field] = draw(st.sampled_from(ODD_VALUES))
    return event if draw(st.integers(0, 20)) else draw(st.sampled_from([[], "join", 3, None]))


@settings(max_examples=300, deadline=None)
@given(st.lists(events(), max_size=12))
def test_the_fast_reader_judges_every_event_as_the_checked_path_does(batch: list[Any]) -> None:
    assert_same_as_before(batch)


def test_common_events_come_out_parsed_and_bad_ones_keep_their_index_and_field() -> None:
    batch = [
        {"type": "live_start", "room": "room-1", "ts": TS},
        {"type": "join", "room": "room-1", "ts": TS + 1, "user": "alice"},
        {"type": "join", "room": "room-1", "ts": TS + 1},
        {"type": "gift", "room": "room-1", "ts": TS + 2, "user": "alice", "value": 1.999},
        {"type": "teleport", "room": "room-1", "ts": TS + 3},
        {"type": "heartbeat", "room": "*", "ts": TS + 4, "user": "alice"},
        {"type": "like", "room": "room-1", "ts": TS + 5, "user": "alice", "count": -2},
    ]
    read = read_batch(body_of(batch))
    assert type(read[1]) is Event  # the fast path took the join: no dict, no second parse
    kept, rejected = judged(read)
    assert [e["type"] for e in kept] == ["live_start", "join"]
    assert [(r["index"], r["error"].split(":")[0]) for r in rejected] == [
        (2, "user"), (3, "value"), (4, "type"), (5, "room"), (6, "count")]
    assert_same_as_before(batch)


@pytest.mark.parametrize(("body", "rejected"), [
    ('[{"type": "join", "room": "r", "ts": NaN, "user": "u"}, {"type": "join", "room": "r", "ts": 1, "user": "u"}]',
     [0]),
    ('[{"type": "comment", "room": "r", "ts": 1, "user": "u", "text": "\\ud800"}]', [0]),
    ('[{"type": "like", "room": "r", "ts": 1, "user": "u", "count": 100000000000000000000000}]', []),
])
def test_what_msgspec_refuses_is_still_judged_event_by_event(body: str, rejected: list[int]) -> None:
    raw = body.encode()
    assert judged(read_batch(raw)) == judged(json.loads(raw))
    assert [r["index"] for r in judged(read_batch(raw))[1]] == rejected


def test_an_integer_too_long_for_python_rejects_its_event_alone() -> None:
    """Valid JSON that the standard parser cannot turn into an int (over 4,300 digits) is one event's number out of
    range, not a bad batch (it was a 422 of the whole body, its message a Python hint)."""
    huge = "1" + "0" * 5_000
    body = ('[{"type": "join", "room": "r", "ts": ' + huge + ', "user": "u"}, {"type": "gift", "room": "r", "ts": 1, '
            '"user": "u", "value": -' + huge + '}, {"type": "join", "room": "r", "ts": 2, "user": "v"}]').encode()
    kept, rejected = judged(read_batch(body))
    assert [e["user"] for e in kept] == ["v"]
    assert rejected == [{"index": 0, "error": "ts: 必须是有限的数值 / must be a finite number"},
                        {"index": 1, "error": "value: 必须是有限的数值 / must be a finite number"}]


def test_a_platforms_order_may_not_take_the_id_of_a_merchants_report() -> None:
    """The merchant's coupon.redeemed reports are logged as order events with ids ``merchant:<order>``, which redeem a
    coupon checkout would refuse (their system's word); a platform's order with such an id skipped those checks."""
    order = {"type": "order", "room": "room-1", "ts": TS, "user": "u", "order_id": "o1", "amount": 10}
    kept, rejected = judged(read_batch(body_of([order | {"id": "merchant:o1"}, order | {"id": "shop:merchant:o1"},
                                                BASE["join"] | {"type": "join", "room": "room-1", "ts": TS, "user": "v",
                                                                "id": "merchant:j1"}])))
    assert [r["index"] for r in rejected] == [0] and rejected[0]["error"].startswith("id: 以 merchant: 开头")
    assert len(kept) == 2


def test_an_operator_event_is_refused_for_its_type_whatever_its_other_fields() -> None:
    """The platform is told the type is the service's own, not asked to mend fields only the service's log names."""
    batch = [{"type": "operator", "room": "room-1", "ts": TS, "action": "pause"},
             {"type": "operator", "room": "room-1", "ts": TS},
             {"type": "operator", "room": "room-1", "ts": TS, **BASE["operator"]}]
    _, rejected = judged(read_batch(body_of(batch)))
    assert [(r["index"], r["error"].split(":")[0]) for r in rejected] == [(0, "type"), (1, "type"), (2, "type")]
    assert all("operator events come only from the service's own log" in r["error"] for r in rejected)


@pytest.mark.parametrize(("body", "code"), [
    (b'{"type": "join"}', "not_an_array"), (b"not json", "invalid_json"), (b"[1,", "invalid_json"),
    (b"[" + b"{}," * 10_000 + b"{}]", "too_many_events"), (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    (b'[{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"]", "too_deep"),
])
def test_a_body_that_is_no_batch_is_malformed_as_a_whole(body: bytes, code: str) -> None:
    with pytest.raises(Malformed) as info:
        read_batch(body)
    assert info.value.code == code and info.value.field == "body"


@pytest.mark.parametrize("more", [b"", b', {"type": "join", "room": "r", "ts": NaN, "user": "w"}'])
def test_bytes_that_are_not_utf8_reject_only_the_event_whose_field_holds_them(more: bytes) -> None:
    """They were a 500 that lost the batch; each good event still applies (SPEC §2). ``more``: a NaN makes msgspec
    refuse the body whole, so the standard parser reads it."""
    body = (b'[{"type": "join", "room": "r", "ts": 1, "user": "ok"},'
            b' {"type": "join", "room": "r", "ts": 1, "user": "\xc3"},'
            b' {"type": "order", "room": "r", "ts": 1, "user": "ok", "order_id": "o\xff", "amount": 1},'
            b' {"type": "join", "room": "r", "ts": 1, "user": "ok2", "note": "\xff"}' + more + b"]")
    events, rejected = judged(read_batch(body))
    assert [e["user"] for e in events] == ["ok", "ok2"]  # a field no one reads keeps its bytes harmlessly
    assert [(r["index"], r["error"].split(":")[0]) for r in rejected] == [(1, "user"), (2, "order_id")] + (
        [(4, "ts")] if more else [])
    assert all("not valid Unicode" in r["error"] for r in rejected[:2])


def test_a_gateway_sends_an_event_a_little_ahead_on_as_stamped_and_its_worker_applies_it_at_its_time(
        tmp_path: Any) -> None:
    """One process applies it at the machine's time at once; a gateway passes it on as sent, so a retried batch is
    the same message on the bus (it became another one, its events applied twice), and the worker brings it to
    the machine's time as it applies it."""
    from livecoupon.campaign_file import load_campaign
    from livecoupon.service_layer.service import LiveService
    from livecoupon.store.sqlite import SqliteStore
    from support.apps import EXAMPLE

    wall = [1_700_000_000_000]
    gateway = ServiceClock(ClockMode.WALL, lambda: None, lambda: wall[0], ahead_now=False)
    alone = ServiceClock(ClockMode.WALL, lambda: None, lambda: wall[0])
    sent = [{"type": "live_start", "room": "room-1", "ts": 1_700_000_002}]
    first, _ = admit(sent, gateway)
    wall[0] += 300
    again, _ = admit(sent, gateway)
    assert event_json(first[0]) == event_json(again[0]) and first[0].ts == 1_700_000_002_000
    assert admit(sent, alone)[0][0].ts == wall[0]
    worker = LiveService(load_campaign(EXAMPLE), SqliteStore(tmp_path / "w.db"), ClockMode.WALL, wall=lambda: wall[0])
    try:
        worker.rebuild()
        worker.apply_batches([first])
        assert [e["ts"] for e in worker.store.events()] == [wall[0] / 1000]
    finally:
        worker.close()
