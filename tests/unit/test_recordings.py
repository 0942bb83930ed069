"""The fast path for common lines and the checked path must agree on every line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from livecoupon.domain.events import Event, EventError, event_json, parse_event
from livecoupon.engine.recordings import (
    READ_BLOCK,
    Recording,
    UnreadableRecording,
    read_events,
    read_for_replay,
    read_lines,
)

FIELDS = ("type", "room", "ts", "id", "user", "text", "count", "value", "order_id", "amount", "coupon_id", "duration",
          "product", "device", "ip", "risk", "profile")

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=3), st.just(""),
                   st.sampled_from([1.99, 0.1, 9.999, 19.9, 1e300, 2**70, 10**400, -(10**400)]),
                   st.sampled_from(["\ud800", "扣1", "x" * 2_000, "y" * 2_001]))
lines = st.fixed_dictionaries(
    {"type": st.sampled_from(["join", "leave", "heartbeat", "like", "follow", "comment", "gift", "transcript",
                              "online_count", "order", "teleport"]),
     "room": st.one_of(st.just("room-1"), values),
     "ts": st.one_of(st.floats(0, 2e9), st.integers(0, 2 * 10**9), values)},
    optional={"user": st.one_of(st.just("u1"), values), "id": st.one_of(st.just("e1"), values),
              "count": st.one_of(st.integers(-3, 30), values), "text": values, "value": values,
              "device": st.one_of(st.just("d1"), st.just("d" * 129), values),
              "ip": st.one_of(st.just("10.0.0.1"), st.just("9" * 65), values),
              "risk": st.one_of(st.sampled_from([0, 1, 0.25, 1.5, -0.1, True]), values),
              "profile": st.one_of(st.just({"level": 3}), values, st.dictionaries(st.text(max_size=2), values,
                                                                                  max_size=3))})


def _reference(data: dict[str, Any]) -> tuple[Any, ...] | str:
    try:
        event = parse_event(json.loads(json.dumps(data)))
    except EventError as exc:
        return str(exc)
    return _fields(event)


def _fields(event: Event) -> tuple[Any, ...]:
    return tuple(getattr(event, name) for name in FIELDS)


VIEWER = {"type": "heartbeat", "room": "room-1", "ts": 5, "user": "u1"}


@pytest.mark.parametrize("facts", [
    {"device": "d1"}, {"device": "", "ip": "10.0.0.1"}, {"risk": 0}, {"risk": 1}, {"risk": 0.25, "device": None},
    {"device": "d" * 128, "ip": "9" * 64}, {"device": "d" * 129}, {"ip": "9" * 65}, {"risk": 1.5}, {"risk": -0.1},
    {"risk": True}, {"risk": "0.5"}, {"device": 7}, {"profile": {"level": 3}}, {"profile": None, "ip": "::1"},
    {"profile": {}}, {"profile": {"city": "杭州", "level": 2.5, "big": 2**70}}, {"profile": {"k" * 64: "v" * 256}},
    {"profile": {"k" * 65: 1}}, {"profile": {"city": "v" * 257}}, {"profile": {str(i): i for i in range(32)}},
    {"profile": {str(i): i for i in range(33)}}, {"profile": {"vip": True}}, {"profile": {"vip": None}},
    {"profile": ["vip"]}, {"profile": "vip"}, {"profile": {"level": 10**308}},
    {"profile": {"level": 10**400}}, {"profile": {"level": -(10**400)}},  # no float holds it: it crashed the service
])
@pytest.mark.parametrize("kind", ["heartbeat", "comment", "gift", "transcript"])
def test_a_viewer_s_facts_read_as_the_checked_parser_reads_them(kind: str, facts: dict[str, Any]) -> None:
    """What the platform knows of a viewer rides the fast path (every event of a platform that sends devices),
    checked as the checked path checks it; a room's event ignores them on both paths."""
    data = {**VIEWER, "type": kind, "text": "扣1", "value": 1.5, **facts}
    events, rejected = read_events([json.dumps(data)])
    assert ([_fields(e) for e in events] or [r.error for r in rejected]) == [_reference(data)]
    assert all(e.risk is None or type(e.risk) is float for e in events)  # logged as the checked path logs it


@given(st.lists(lines, max_size=8))
@example([{**VIEWER, "profile": {"level": 10**400}}])  # accepted once, it stopped the service from starting again
@settings(max_examples=300, deadline=None)  # a busy machine is not a wrong answer
def test_every_line_reads_as_the_checked_parser_reads_it(batch: list[dict[str, Any]]) -> None:
    """... and every event read is logged as text that reads back to it (the service reads its log at each start:
    an event it took and could not read back there stopped it from starting)."""
    text = [json.dumps(d) for d in batch]
    events, rejected = read_events(text)
    expected = [_reference(d) for d in batch]
    assert [_fields(e) for e in events] == [e for e in expected if not isinstance(e, str)]
    assert [(r.line, r.error) for r in rejected] == [(i + 1, e) for i, e in enumerate(expected) if isinstance(e, str)]
    assert [_fields(parse_event(json.loads(json.dumps(event_json(e))))) for e in events] == [_fields(e) for e in events]


@given(st.one_of(st.floats(0, 2e9), st.integers(0, 2 * 10**11).map(lambda fen: fen / 100),
                 st.integers(0, 2 * 10**11).map(lambda fen: fen / 100 + 1e-9)))
@settings(max_examples=500, deadline=None)
def test_a_gift_of_float_yuan_reads_as_the_decimal_check_reads_it(value: float) -> None:
    data = {"type": "gift", "room": "room-1", "ts": 1.5, "user": "u1", "value": value}
    events, rejected = read_events([json.dumps(data)])
    assert ([_fields(e) for e in events] or [r.error for r in rejected]) == [_reference(data)]


def test_replay_order_drops_later_copies_of_an_id_and_sorts_by_time() -> None:
    text = [json.dumps(d) for d in (
        {"type": "join", "room": "r", "ts": 5, "user": "a", "id": "x"},
        {"type": "join", "room": "r", "ts": 3, "user": "b", "id": "x"},  # a later copy: dropped, though earlier in time
        {"type": "join", "room": "s", "ts": 4, "user": "c", "id": "x"},  # another room: kept
        {"type": "heartbeat", "room": "r", "ts": 4, "user": "a"},
    )] + ["", "{nope"]
    events, rejected = read_for_replay(text)
    assert [(e.room, e.user, e.ts) for e in events] == [("s", "c", 4000), ("r", "a", 4000), ("r", "a", 5000)]
    assert [r.line for r in rejected] == [6]


ENDINGS = st.sampled_from(["\n", "\r\n", "\r", ""])
BROKEN = st.sampled_from(['{"type": "join",', "", "  ", "{nope", "[1,", '"扣1'])
RAW_LINES = st.one_of(lines.map(json.dumps), BROKEN).map(
    lambda line: line.replace("\\u6263", "扣"))  # some text as UTF-8, not escaped (not a lone surrogate's)


@given(st.lists(st.tuples(RAW_LINES, ENDINGS), max_size=8))
@settings(max_examples=300, deadline=None)  # a busy machine is not a wrong answer
def test_lines_read_as_bytes_read_as_the_same_lines_read_as_text(tmp_path_factory: Any,
                                                                 batch: list[tuple[str, str]]) -> None:
    """Where the lines split (\\n, \\r\\n, \\r), blank lines, and the errors' positions, which count the line's end."""
    path = tmp_path_factory.mktemp("lines") / "events.jsonl"
    path.write_bytes("".join(line + end for line, end in batch).encode())
    with path.open(encoding="utf-8") as text:
        as_text = text.readlines()
    as_bytes = read_lines(path)
    assert len(as_bytes) == len(as_text)
    events, rejected = read_events(as_bytes)
    expected_events, expected_rejected = read_events(as_text)
    assert [_fields(e) for e in events] == [_fields(e) for e in expected_events]
    assert rejected == expected_rejected


@given(st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b"{}", b"x", b"\xe6\x89\xa3", b" "]), max_size=12))
@settings(max_examples=300, deadline=None)  # a busy machine is not a wrong answer
def test_lines_split_where_splitlines_splits_them(tmp_path_factory: Any, parts: list[bytes]) -> None:
    """With or without a carriage return in the file (two ways of splitting), ends kept, a last line unended."""
    data = b"".join(parts)
    path = tmp_path_factory.mktemp("split") / "events.jsonl"
    path.write_bytes(data)
    assert read_lines(path) == data.splitlines(keepends=True)


@given(st.lists(st.sampled_from([b"\n", b"\r", b"\r\n", b"{}", b"x", b"\xe6\x89\xa3", b" ", b"y" * 9]), max_size=16),
       st.integers(min_value=1, max_value=12))
@settings(max_examples=400, deadline=None)  # a busy machine is not a wrong answer
def test_a_recording_read_a_block_at_a_time_has_the_lines_of_the_whole_file(tmp_path_factory: Any, parts: list[bytes],
                                                                           block: int) -> None:
    """Whatever falls at a block's end: half of a \\r\\n, half of a character, a line longer than a block."""
    data = b"".join(parts)
    path = tmp_path_factory.mktemp("blocks") / "events.jsonl"
    path.write_bytes(data)
    recording = Recording(path, block)
    assert list(recording) == read_lines(path)
    assert list(recording) == data.splitlines(keepends=True)  # read again, the same
    assert all(lines for lines in recording.blocks())


@pytest.mark.parametrize("block", [1, 2, 64, READ_BLOCK])
def test_a_recording_that_is_gone_is_unreadable(tmp_path: Path, block: int) -> None:
    with pytest.raises(UnreadableRecording, match="No such file"):
        list(Recording(tmp_path / "gone.jsonl", block))


START = b'{"type": "live_start", "room": "r", "ts": 0}\n'
AFTER = b'{"type": "join", "room": "r", "ts": 2, "user": "v"}\n'


@pytest.mark.parametrize("block", [1, 2, 64, READ_BLOCK])
@pytest.mark.parametrize(("line", "error"), [
    (b'{"type": "join", "room": "r", "ts": 1, "user": "u\xe6\x89"}\n', "user: 不是有效的 Unicode"),
    (b'{"type": "comment", "room": "r", "ts": 1, "user": "u", "text": "\xff\xfe"}\n', "text: 不是有效的 Unicode"),
    (b'{"type": "order", "room": "r", "ts": 1, "user": "u", "order_id": "o\xe6\x89", "amount": 1}\n',
     "order_id: 不是有效的 Unicode"),
    (b'\xff\n', "不是有效的 JSON / not valid JSON"),
    (b'{"type": "join", "room": "r", "ts": 1, "user": "u", "x": "\xff"}\n', None),  # a field no one reads
])
def test_bytes_that_are_not_utf8_reject_the_event_whose_field_holds_them(tmp_path: Path, line: bytes,
                                                                         error: str | None, block: int) -> None:
    """The others are read (SPEC §2: a bad event never stops the others), on the fast path and the checked one."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(START + b"\n" + line + AFTER)
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")
    for lines in (read_lines(path), list(Recording(path, block))):
        events, rejected = read_events(lines)
        users = [("live_start", None)] + ([] if error else [("join", "u")]) + [("join", "v")]
        assert [(e.type, e.user) for e in events] == users
        assert [r.line for r in rejected] == ([3] if error else [])
        assert all(r.error.startswith(f"{error}") for r in rejected), rejected
        in_order, rejected_in_order = read_for_replay(lines)
        assert ([_fields(e) for e in in_order], rejected_in_order) == ([_fields(e) for e in events], rejected)


@pytest.mark.parametrize("block", [1, 2, 3, 4, 64, READ_BLOCK])
def test_a_byte_order_mark_that_begins_the_file_is_dropped(tmp_path: Path, block: int) -> None:
    """As reading the file with the ``utf-8-sig`` codec drops it; one anywhere else is a bad line's."""
    bom = "\ufeff".encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(bom + START + bom + AFTER)
    with path.open(encoding="utf-8-sig") as text:
        expected = [line.encode() for line in text.readlines()]
    assert read_lines(path) == list(Recording(path, block)) == expected
    events, rejected = read_events(read_lines(path))
    assert [e.type for e in events] == ["live_start"]
    assert [r.line for r in rejected] == [2]
    for data in (bom, bom + b"\n", b"{}", b""):  # shorter than a block's first read, or nothing after the mark
        path.write_bytes(data)
        assert read_lines(path) == list(Recording(path, block)) == data.removeprefix(bom).splitlines(keepends=True)


def test_text_lines_holding_a_lone_surrogate_are_judged_as_bytes_that_are_not_utf8() -> None:
    """Lines given as text (replay's API) may hold one outright, not escaped: the fast path passes it on."""
    lines = ['{"type": "join", "room": "r", "ts": 1, "user": "u\ud800"}',
             '{"type": "join", "room": "r", "ts": 2, "user": "v", "x": "\ud800"}']
    events, rejected = read_events(lines)
    assert [(e.user, e.ts) for e in events] == [("v", 2000)]
    assert [(r.line, r.error.split(":")[0]) for r in rejected] == [(1, "user")]


def test_a_line_nested_deeper_than_the_parser_goes_is_rejected_and_the_others_read() -> None:
    """It stopped replay with a RecursionError."""
    lines = [b'{"type": "live_start", "room": "r", "ts": 1}\n', b"[" * 100_000 + b"]" * 100_000 + b"\n",
             b'{"type": "join", "room": "r", "ts": 2, "user": "u", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
             b'{"type": "join", "room": "r", "ts": 3, "user": "v"}\n']
    events, rejected = read_events(lines)
    assert [e.type for e in events] == ["live_start", "join"]
    too_deep = "不是有效的 JSON：嵌套过深 / not valid JSON: nested deeper than the parser goes"
    assert [(r.line, r.error) for r in rejected] == [(2, too_deep), (3, too_deep)]
