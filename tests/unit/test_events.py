"""Event validation (SPEC §2): each bad event is rejected naming its field."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain.events import (
    INTERACTION_TYPES,
    ROOM_TYPES,
    TYPES,
    VIEWER_TYPES,
    VIEWING_TYPES,
    EventError,
    event_ms,
    parse_event,
    ts_to_ms,
)

TS = 1_731_300_000.0
CHINESE = re.compile("[\u4e00-\u9fff]")

VALID: dict[str, dict[str, Any]] = {
    "live_start": {},
    "live_end": {},
    "join": {"user": "u1"},
    "leave": {"user": "u1"},
    "heartbeat": {"user": "u1"},
    "comment": {"user": "u1", "text": "扣1"},
    "like": {"user": "u1", "count": 3},
    "follow": {"user": "u1"},
    "gift": {"user": "u1", "value": 9.9},
    "order": {"user": "u1", "order_id": "o1", "amount": 199.0},
    "online_count": {"count": 10000},
    "transcript": {"text": "宝宝们发券啦"},
    "flash_sale": {"duration": 60},
    "operator": {"action": "pause", "trigger": "dwell"},
}


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "room": "room-1", "ts": TS, **VALID[kind], **fields}


def rejected(data: Any) -> EventError:
    """The error ``data`` is rejected with; its message says it Chinese first, then English (as every rejection)."""
    with pytest.raises(EventError) as info:
        parse_event(data)
    chinese, _, english = info.value.message.rpartition(" / ")
    assert CHINESE.search(chinese) and english and not CHINESE.search(english), info.value.message
    return info.value


def english(err: EventError) -> str:
    """``field: message``, the message as its English half says it."""
    return f"{err.field}: {err.message.rpartition(' / ')[2]}"


def test_type_sets_follow_the_spec_table() -> None:
    assert {"join", "leave", "heartbeat", "comment", "like", "follow", "gift", "order"} == VIEWER_TYPES
    assert {"join", "heartbeat", "comment", "like", "follow", "gift"} == VIEWING_TYPES
    assert {"comment", "like", "follow", "gift"} == INTERACTION_TYPES
    assert {"live_start", "live_end", "online_count", "transcript", "flash_sale"} == ROOM_TYPES
    assert set(VALID) == TYPES


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_type_parses_with_its_fields(kind: str) -> None:
    ev = parse_event(event(kind))
    assert (ev.type, ev.room, ev.ts) == (kind, "room-1", 1_731_300_000_000)
    assert ev.user == ("u1" if kind in VIEWER_TYPES else None)


def test_extra_fields_are_read_into_ms_and_fen() -> None:
    assert parse_event(event("gift")).value == 990
    order = parse_event(event("order", coupon_id="cp_x"))
    assert (order.order_id, order.amount, order.coupon_id) == ("o1", 19900, "cp_x")
    assert parse_event(event("order")).coupon_id is None
    assert parse_event(event("like")).count == 3
    assert parse_event(event("online_count")).count == 10000
    assert parse_event(event("comment")).text == "扣1"
    assert parse_event(event("transcript")).text == "宝宝们发券啦"
    sale = parse_event(event("flash_sale", duration=90.5, product="sku-1001"))
    assert (sale.duration, sale.product) == (90_500, "sku-1001")
    assert parse_event(event("flash_sale")).product is None


def test_like_count_defaults_to_one() -> None:
    data = event("like")
    del data["count"]
    assert parse_event(data).count == 1
    assert parse_event(event("like", count=None)).count == 1  # an optional field given as null takes its default


def test_id_is_kept_and_optional() -> None:
    assert parse_event(event("join", id="e-1")).id == "e-1"
    assert parse_event(event("join")).id is None
    assert rejected(event("join", id=7)).field == "id"


def test_unknown_extra_fields_are_ignored() -> None:
    ev = parse_event(event("join", colour="red", nested={"a": 1}, text=5))
    assert (ev.type, ev.user, ev.text) == ("join", "u1", None)


def test_unknown_type_is_rejected() -> None:
    err = rejected(event("join", type="wave"))
    assert err.field == "type"
    assert english(err) == "type: unknown event type 'wave'"


def test_an_event_must_be_an_object() -> None:
    assert rejected([1, 2]).field == "event"
    assert rejected("join").field == "event"
    assert rejected(None).field == "event"


@pytest.mark.parametrize(
    ("kind", "key"),
    [("join", "type"), ("join", "room"), ("join", "ts"), ("join", "user"), ("leave", "user"),
     ("heartbeat", "user"), ("comment", "user"), ("comment", "text"), ("like", "user"), ("follow", "user"),
     ("gift", "user"), ("gift", "value"), ("order", "user"), ("order", "order_id"), ("order", "amount"),
     ("online_count", "count"), ("transcript", "text"), ("flash_sale", "duration")],
)
def test_missing_required_field_is_named(kind: str, key: str) -> None:
    data = event(kind)
    del data[key]
    err = rejected(data)
    assert err.field == key
    assert english(err) == f"{key}: required"


@pytest.mark.parametrize(
    ("kind", "key"),
    [("join", "type"), ("join", "room"), ("join", "ts"), ("gift", "user"), ("comment", "text"), ("gift", "value"),
     ("order", "order_id"), ("order", "amount"), ("online_count", "count"), ("flash_sale", "duration")],
)
def test_null_required_field_is_named(kind: str, key: str) -> None:
    err = rejected(event(kind, **{key: None}))
    assert err.field == key
    assert english(err) == f"{key}: must not be null"


@pytest.mark.parametrize(
    ("kind", "key", "value", "expected"),
    [
        ("join", "type", 3, "type: must be a string, got a number"),
        ("join", "room", 1, "room: must be a string, got a number"),
        ("join", "user", ["u1"], "user: must be a string, got an array"),
        ("join", "ts", "1731300000", "ts: must be a number, got a string"),
        ("join", "ts", True, "ts: must be a number, got true"),
        ("gift", "value", "9.9", "value: must be a number, got a string"),
        ("gift", "value", False, "value: must be a number, got false"),
        ("order", "amount", {"yuan": 1}, "amount: must be a number, got an object"),
        ("order", "coupon_id", 5, "coupon_id: must be a string, got a number"),
        ("like", "count", True, "count: must be a number, got true"),
        ("online_count", "count", "10", "count: must be a number, got a string"),
        ("flash_sale", "duration", "60s", "duration: must be a number, got a string"),
        ("flash_sale", "product", 1001, "product: must be a string, got a number"),
        ("comment", "text", 1, "text: must be a string, got a number"),
    ],
)
def test_wrongly_typed_field_is_named(kind: str, key: str, value: Any, expected: str) -> None:
    err = rejected(event(kind, **{key: value}))
    assert (err.field, english(err)) == (key, expected)


@pytest.mark.parametrize(("line", "kind"), [(None, "null"), ([], "an array"), ("join", "a string"), (3.5, "a number"),
                                            (False, "false")])
def test_a_line_that_is_no_object_is_named_in_jsons_words(line: Any, kind: str) -> None:
    err = rejected(line)
    assert (err.field, english(err)) == ("event", f"event: must be a JSON object, got {kind}")


@pytest.mark.parametrize(("kind", "key"), [("join", "room"), ("join", "user"), ("order", "user"), ("gift", "room"),
                                           ("order", "order_id")])
def test_empty_room_or_user_is_rejected(kind: str, key: str) -> None:
    err = rejected(event(kind, **{key: ""}))
    assert (err.field, english(err)) == (key, f"{key}: must not be empty")


def test_room_event_needs_no_user() -> None:
    assert parse_event(event("online_count", user="")).user is None


@pytest.mark.parametrize(("yuan", "fen"), [(1.990, 199), (0, 0), (0.01, 1), (1999, 199900), (12.3, 1230)])
def test_money_with_at_most_two_decimals_by_value(yuan: float, fen: int) -> None:
    assert parse_event(event("gift", value=yuan)).value == fen
    assert parse_event(event("order", amount=yuan)).amount == fen


def test_money_judged_by_value_in_json_text() -> None:
    assert parse_event(json.loads('{"type":"gift","room":"r","ts":1,"user":"u","value":1.990}')).value == 199
    err = rejected(json.loads('{"type":"gift","room":"r","ts":1,"user":"u","value":1.999}'))
    assert english(err) == "value: at most 2 decimals allowed"


@pytest.mark.parametrize(("kind", "key"), [("gift", "value"), ("order", "amount")])
def test_money_with_three_decimals_or_negative_is_rejected(kind: str, key: str) -> None:
    assert english(rejected(event(kind, **{key: 1.999}))) == f"{key}: at most 2 decimals allowed"
    assert english(rejected(event(kind, **{key: 0.005}))) == f"{key}: at most 2 decimals allowed"
    assert english(rejected(event(kind, **{key: -0.01}))) == f"{key}: must not be negative"
    assert english(rejected(event(kind, **{key: -1}))) == f"{key}: must not be negative"


@pytest.mark.parametrize(("kind", "key"), [("gift", "value"), ("order", "amount")])
def test_money_beyond_a_billion_yuan_is_rejected_as_the_log_could_not_keep_it_exact(kind: str, key: str) -> None:
    """Above 2**53 fen two amounts share a double: the log (yuan, a JSON number) would read back one for both, and a
    replay of the export rank two gifts otherwise than the live run did."""
    assert parse_event(event(kind, **{key: 1_000_000_000})).value + parse_event(
        event(kind, **{key: 1_000_000_000})).amount == 100_000_000_000
    for too_much in (1_000_000_000.01, 1_000_000_001, 9_007_199_254_740_995, 1e30):
        assert english(rejected(event(kind, **{key: too_much}))) == f"{key}: must be at most 1,000,000,000 yuan"


@pytest.mark.parametrize("kind", ["like", "online_count"])
def test_count_must_be_a_non_negative_whole_number(kind: str) -> None:
    assert english(rejected(event(kind, count=-1))) == "count: must not be negative"
    assert english(rejected(event(kind, count=1.5))) == "count: must be a whole number"
    assert parse_event(event(kind, count=0)).count == 0
    assert parse_event(event(kind, count=7.0)).count == 7


@pytest.mark.parametrize("seconds", [0, -1, 0.0, -0.5])
def test_flash_sale_duration_must_be_positive(seconds: float) -> None:
    assert english(rejected(event("flash_sale", duration=seconds))) == "duration: must be > 0"


@pytest.mark.parametrize("seconds", [1e300, 253_402_300_800, 10**400])
def test_a_flash_sale_too_long_is_rejected_in_a_durations_words(seconds: float) -> None:
    """It was told "seconds since 1970, before the year 10000", a timestamp's words."""
    assert english(rejected(event("flash_sale", duration=seconds))) == (
        "duration: out of range: must be under 253,402,300,800 seconds")
    assert parse_event(event("flash_sale", duration=253_402_300_799)).duration == 253_402_300_799_000


@pytest.mark.parametrize("seconds", [0.0004, 0.0005, 1e-9, 5e-324])
def test_a_flash_sale_shorter_than_the_ms_it_is_kept_in_is_rejected(seconds: float) -> None:
    """Kept in ms, it would be logged as ``"duration": 0``, which the log's reader refuses: the service could not
    start again on its own log, and a replay of its export would reject the line."""
    assert english(rejected(event("flash_sale", duration=seconds))) == "duration: must be at least 0.001 s"
    assert parse_event(event("flash_sale", duration=0.0006)).duration == 1  # rounds to a whole ms: kept as is


@pytest.mark.parametrize(
    ("kind", "key"),
    [("join", "ts"), ("gift", "value"), ("order", "amount"), ("like", "count"), ("online_count", "count"),
     ("flash_sale", "duration")],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected(kind: str, key: str, bad: float) -> None:
    err = rejected(event(kind, **{key: bad}))
    assert (err.field, english(err)) == (key, f"{key}: must be a finite number")


def test_non_finite_numbers_from_json_text_are_rejected() -> None:
    for text in ("NaN", "Infinity", "-Infinity"):
        data = json.loads('{"type":"join","room":"r","user":"u","ts":' + text + "}")
        assert rejected(data).field == "ts"


@pytest.mark.parametrize(("kind", "key", "value"), [("join", "ts", 1e308), ("join", "ts", 1e15), ("join", "ts", -1),
                                                    ("flash_sale", "duration", 1e308)])
def test_a_time_out_of_the_calendar_is_rejected_not_crashing(kind: str, key: str, value: float) -> None:
    err = rejected(event(kind, **{key: value}))
    assert (err.field, english(err).split(": ")[1]) == (key, "out of range")


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1, 1000),
        (0, 0),
        (1.5, 1500),
        (1.0004, 1000),
        (1.0005, 1000),  # 1000.5 ms: half to even -> 1000
        (1.0015, 1002),  # 1001.5 ms: half to even -> 1002
        (1.0025, 1002),  # 1002.5 ms -> 1002
        (1.0006, 1001),
        (2.0125, 2012),
        (1731300000.0005, 1731300000000),
        (1731300000.0015, 1731300000002),
        (1731300000.123, 1731300000123),
        # epoch times where ts * 1000 in floats lands off the half by more than 1e-6
        (1074203159.2775, 1074203159278),
        (1089070747.1865, 1089070747186),
        (1085794415.2515, 1085794415252),
        (1090956343.8435, 1090956343844),
        (-1.0005, -1000),
    ],
)
def test_ts_is_rounded_to_the_millisecond_half_to_even(ts: float, ms: int) -> None:
    assert ts_to_ms(ts) == ms


def test_event_ts_uses_the_same_rounding() -> None:
    assert parse_event(event("join", ts=1.0005)).ts == 1000
    assert parse_event(event("join", ts=1.0015)).ts == 1002
    assert parse_event(event("join", ts=1731300000)).ts == 1_731_300_000_000
    assert parse_event(event("flash_sale", duration=0.0125)).duration == 12


def test_a_rejection_names_the_first_bad_field_only() -> None:
    err = rejected({"type": "gift", "room": "", "ts": "x", "user": 1, "value": -1})
    assert err.field == "room"


@given(st.one_of(st.floats(min_value=0, max_value=2e9, allow_nan=False),
                 st.decimals(min_value=0, max_value=2_000_000_000, places=4).map(float),
                 st.integers(min_value=0, max_value=253_402_300_799)))
@settings(max_examples=300)
def test_event_ms_is_the_decimal_value_rounded_half_to_even(ts: float | int) -> None:
    exact = (Decimal(repr(ts)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    assert event_ms(ts) == int(exact)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"action": "wave"}, "action: unknown operator action 'wave'"),
    ({"action": "pause"}, "trigger: required: a non-empty string"),
    ({"action": "issue", "template": "t", "room": "r", "key": "k", "users": []},
     "users: required: a non-empty list of strings"),
    ({"action": "issue", "template": "t", "room": "r", "key": "k", "users": [""]}, "users[0]: must be a non-empty"),
    ({"action": "block"}, "users: name at least one user or device"),
    ({"action": "publish", "version": 1, "campaign": "x"}, "version: required: an integer of at least 2"),
])
def test_an_operator_entry_that_cannot_be_applied_names_its_field(fields: dict[str, Any], expected: str) -> None:
    """(A recording's operator entries come from a service's log: one edited by hand is read as any other line.)"""
    assert english(rejected({"type": "operator", "room": "*", "ts": TS, **fields})).startswith(expected)


@pytest.mark.parametrize(("facts", "expected"), [
    ({"risk": 1.5}, "risk: must be in [0, 1]"),
    ({"profile": [1]}, "profile: must be an object, got an array"),
    ({"profile": {f"k{i}": 1 for i in range(100)}}, "profile: at most"),
    ({"profile": {"tier": None}}, "profile.tier: must be a string or a finite number"),
])
def test_a_viewers_facts_that_cannot_be_read_are_named(facts: dict[str, Any], expected: str) -> None:
    assert english(rejected(event("join", **facts))).startswith(expected)
