"""The recordings' line reader in C (engine/scan.pyx) reads a line to the fields plain_fields' own reading does.

``scan.plain(line)`` answers None for a line it leaves to :func:`decoded_fields` (msgspec and the checks in
Python); for any other it must answer exactly what :func:`decoded_fields` answers, types included, and never
NOT_PLAIN. Random lines mix the shapes a platform sends with everything a line can get wrong.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from livecoupon import compiled
from livecoupon.engine.recordings import NOT_PLAIN, decoded_fields, plain_fields
from support.environment import IN_CI

reader = compiled.native_line_reader()
if reader is None:
    if IN_CI and not compiled.wants_pure():
        pytest.fail("the line reader in C is not built (make compile builds it)", pytrace=False)
    pytest.skip("the line reader in C is not built: the pure build reads every line itself", allow_module_level=True)


def same_fields(line: bytes) -> object:
    """What the reader in C answers, checked against decoded_fields' reading; the same for the line as text."""
    assert reader is not None
    found = reader(line)
    if found is not None:
        expected = decoded_fields(line)
        assert found != NOT_PLAIN
        assert found == expected
        assert [type(v) for v in found] == [type(v) for v in expected]  # type: ignore[attr-defined]
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return found
    as_text = reader(text)  # the same UTF-8 read
    assert as_text == found
    if as_text is not None:
        assert as_text == decoded_fields(text)
    return found


COMMON = [
    b'{"id":"m1","type":"heartbeat","room":"r1","ts":1731326411.273,"user":"u1"}\n',
    b'{"id":"m2","type":"like","room":"r1","ts":1731326412.298,"user":"u1","count":3}\n',
    b'{"id":"m3","type":"like","room":"r1","ts":1731326412,"user":"u1"}\r\n',
    '{"type":"comment","room":"直播间","ts":1731326411.11,"user":"小明","text":"主播今天好美"}'.encode(),
    b'{"type":"gift","room":"r1","ts":1731326425.386,"user":"u2","value":9.9}',
    b'{"type":"gift","room":"r1","ts":1731326425.38,"user":"u2","value":1, "text":"x"}',
    b'{ "type" : "online_count" , "room" : "r1" , "ts" : 1731326401.0 , "count" : 0 }\n',
    '{"type":"transcript","room":"r1","ts":1731326403,"text":"宝宝们发现啦","user":null}'.encode(),
    b'{"type":"join","room":"r1","ts":0,"user":"u3","source":"app","vip":true,"level":3,"x":null}',
    b'{"type":"follow","room":"r1","ts":1731326403.5,"user":"u3","id":null}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","device":"d1"}',
    '{"type":"heartbeat","room":"r1","ts":1,"user":"u1","device":"dev-1","ip":"10.0.0.1","profile":{"level":4,"city":"成都"}}'
    .encode(),
    b'{"type":"like","room":"r1","ts":1,"user":"u1","count":2,"risk":0.25,"device":"","ip":"","profile":{}}',
    b'{"type":"gift","room":"r1","ts":1,"user":"u1","value":1,"risk":1,"profile":{"score":0.1,"n":0,"tier":"a"}}',
    b'{"type":"comment","room":"r1","ts":1,"user":"u1","text":"hi","device":null,"ip":null,"risk":null,"profile":null}',
    b'{"type":"online_count","room":"r1","ts":1,"count":5,"device":"d1","profile":{"a":"b"}}',
]


@pytest.mark.parametrize("line", COMMON)
def test_the_common_shapes_are_read_in_c(line: bytes) -> None:
    assert same_fields(line) is not None


@pytest.mark.parametrize("line", [
    b'{"type":"order","room":"r1","ts":1,"user":"u1","order_id":"o1","amount":5}',  # not a plain type
    b'{"type":"heartbeat","room":"r1","ts":1.2345,"user":"u1"}',  # a fourth decimal: event_ms decides
    b'{"type":"heartbeat","room":"r1","ts":1e9,"user":"u1"}',
    b'{"type":"heartbeat","room":"r1","ts":"1731326411","user":"u1"}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u\\u0031"}',  # an escape
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","user":"u2"}',  # a key twice
    b'{"type":"heartbeat","room":"r1","ts":1,"user":""}',
    b'{"type":"like","room":"r1","ts":1,"user":"u1","count":-1}',
    b'{"type":"like","room":"r1","ts":1,"user":"u1","count":1.0}',
    b'{"type":"gift","room":"r1","ts":1,"user":"u1","value":9.999}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","extra":{"a":1}}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","profile":{"a":1,"a":2}}',  # a key twice
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","profile":{"a":true}}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","risk":1.5}',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1"} x',
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"\xff"}',  # not UTF-8
    b'\xef\xbb\xbf{"type":"heartbeat","room":"r1","ts":1,"user":"u1"}',  # a byte order mark
    b'{"type":"heartbeat","room":"r\x1f","ts":1,"user":"u1"}',  # a control character in a string
    b'{"type":"heartbeat","room":"r1","ts":1,"user":"u1","note":"a\x7fb\x00"}',
])
def test_anything_unusual_is_left_to_the_reading_in_python(line: bytes) -> None:
    assert reader is not None
    assert reader(line) is None
    assert plain_fields(line) == decoded_fields(line)


TYPES = ["join", "leave", "heartbeat", "like", "follow", "comment", "gift", "transcript", "online_count",
         "order", "live_start", "Heartbeat", "", "like "]
NAMES = st.one_of(st.sampled_from(["r1", "u1", "房间", "用户甲", "", "a" * 128, "a" * 129, "é" * 129]),
                  st.text(max_size=12))
NUMBER_TEXTS = st.one_of(
    st.integers(-5, 10**13).map(str),
    st.decimals(min_value=0, max_value=10**12, places=3, allow_nan=False).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0", "-0", "01", "1.", ".5", "1.50", "1.0", "1.000", "1.2300", "1e3", "1E-2", "9.999",
                     "1731326411.273", "1731326411.2735", "253402300799.999", "253402300800", "1000000000",
                     "1000000000.01", "999999999.99", "0.1", "0.29", "123456789012345678901", "1.23456789012345678"]),
)
VALUES = st.one_of(
    NUMBER_TEXTS,
    NAMES.map(lambda s: json.dumps(s, ensure_ascii=False)),
    NAMES.map(json.dumps),  # escaped
    st.sampled_from(["null", "true", "false", "[]", "{}", '{"a":1}', '"\\ud800"', '"a\\"b"', '"\t"']),
)
PROFILES = st.dictionaries(
    st.one_of(st.sampled_from(["level", "city", "", "k" * 64, "k" * 65, "城市"]), st.text(max_size=4)),
    st.one_of(st.integers(-3, 10**16), st.floats(allow_nan=False, allow_infinity=False), NAMES, st.booleans(),
              st.none(), st.sampled_from(["x" * 256, "x" * 257])),
    max_size=34,
).map(lambda profile: json.dumps(profile, ensure_ascii=False))
KEYS = st.sampled_from(["type", "room", "ts", "id", "user", "count", "text", "value", "device", "ip", "risk",
                        "profile", "source", "Type", "ts ", "用户"])
SPACE = st.sampled_from(["", "", "", " ", "\t", "\r", "\n  "])


# Values as a platform sends them: most lines the reader in C should take, some out of range
GOOD_NAMES = st.one_of(st.sampled_from(["r1", "u1", "房间", "用户甲", "a" * 128, "é" * 128, "a" * 129, ""]),
                       st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True))
GOOD_NUMBERS = st.one_of(
    st.integers(0, 10**12).map(str),
    st.decimals(min_value=0, max_value=10**12, places=3, allow_nan=False).map(str),
    st.decimals(min_value=0, max_value=2, places=2, allow_nan=False).map(str),
    st.sampled_from(["0", "1", "0.5", "1.0", "1.50", "9.9", "253402300799.999", "1000000000", "1000000000.01"]),
)
TIMES = st.one_of(st.integers(0, 253402300799), st.decimals(0, 253402300799, places=3)).map(str)
COUNTS = st.integers(0, 10**6).map(str)
MONEY = st.decimals(0, 10**9, places=2).map(str)
RISKS = st.one_of(st.decimals(0, 1, places=3).map(str), st.sampled_from(["0", "1", "1.0", "0.25"]))
FACT_TEXTS = st.sampled_from(['""', '"dev-1"', '"10.1.2.3"', '"' + "9" * 65 + '"', "null"])  # a device or an ip
GOOD_PROFILES = st.dictionaries(
    st.sampled_from(["level", "city", "tier", "城市", "k" * 64, "k" * 65]),
    st.one_of(st.integers(0, 10**6), GOOD_NUMBERS.map(float), GOOD_NAMES, st.sampled_from(["x" * 256, "x" * 257])),
    max_size=4,
).map(lambda profile: json.dumps(profile, ensure_ascii=False))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    wild = draw(st.integers(0, 3)) == 0  # a quarter of the lines: anything a line can get wrong
    names = NAMES if wild else GOOD_NAMES
    numbers = NUMBER_TEXTS if wild else GOOD_NUMBERS
    texts = VALUES if wild else names.map(lambda s: json.dumps(s, ensure_ascii=False))
    fields: list[tuple[str, str]] = [
        ("type", json.dumps(draw(st.sampled_from(TYPES if wild else TYPES[:9])))),
        ("room", json.dumps(draw(names), ensure_ascii=wild and draw(st.booleans()))),
        ("ts", draw(numbers if wild else st.one_of(TIMES, TIMES, numbers))),
    ]
    if draw(st.integers(0, 4)):
        fields.append(("user", json.dumps(draw(names), ensure_ascii=False)))
    if draw(st.booleans()):
        fields.append(("id", json.dumps(draw(names), ensure_ascii=False)))
    for key, good in (("count", COUNTS), ("value", MONEY), ("risk", RISKS)):
        if draw(st.booleans()):
            fields.append((key, draw(st.one_of(numbers, VALUES) if wild else st.one_of(good, good, numbers))))
    if draw(st.integers(0, 3)):
        fields.append(("text", draw(texts)))
    for key in ("device", "ip"):
        if draw(st.booleans()):
            fields.append((key, draw(texts if wild else FACT_TEXTS)))
    if draw(st.booleans()):
        fields.append(("profile", draw(st.one_of(PROFILES, VALUES) if wild else GOOD_PROFILES)))
    fields += draw(st.lists(st.tuples(KEYS if wild else st.sampled_from(["source", "vip", "用户"]), VALUES),
                            max_size=3 if wild else 1))
    fields = draw(st.permutations(fields))
    space = draw(SPACE) if wild else ""
    body = "{" + ",".join(f"{space}{json.dumps(k)}{draw(SPACE)}:{draw(SPACE)}{v}{space}" for k, v in fields) + "}"
    data = (draw(SPACE) + body + draw(st.sampled_from(["", "\n", "\r\n", " \n"]))).encode("utf-8", "surrogatepass")
    if wild and draw(st.booleans()):  # a byte changed anywhere
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


@settings(max_examples=3000, deadline=None)
@given(lines())
@example(b'{"type":"gift","room":"r","ts":1,"user":"u","value":1000000000}')
@example(b'{"type":"gift","room":"r","ts":1,"user":"u","value":1000000000.01}')
@example(b'{"type":"heartbeat","room":"r","ts":253402300799.999,"user":"u"}')
@example(b'{"type":"heartbeat","room":"r","ts":253402300800,"user":"u"}')
@example(b'{"type":"comment","room":"r","ts":1,"user":"u","text":"\xed\xa0\x80"}')  # a surrogate as UTF-8
@example(b'{"type":"comment","room":"r","ts":1,"user":"u","text":"a\x1fb"}')
@example(b'{"type":"like","room":"r","ts":1,"user":"u","count":2.0}')
@example(json.dumps({"type": "like", "room": "r", "ts": 1, "user": "u", "profile": {"k": "x" * 257}}).encode())
@example(json.dumps({"type": "like", "room": "r", "ts": 1, "user": "u",
                     "profile": {f"k{i}": i for i in range(33)}}).encode())
@example(('{"type":"like","room":"' + "房" * 129 + '","ts":1,"user":"u"}').encode())
def test_the_reader_in_c_reads_as_python_does(line: bytes) -> None:
    same_fields(line)


def test_most_lines_of_a_broadcast_are_read_in_c() -> None:
    """The bench's kind of stream: nearly every line is taken (a reader that took none would pass the rest)."""
    stream = [json.dumps({"id": f"m{i}", "type": kind, "room": "bench-room-1", "ts": 1731326400 + i * 0.137,
                          "user": f"u{i % 50:04x}", **extra}, ensure_ascii=False).encode() + b"\n"
              for i, (kind, extra) in enumerate([("heartbeat", {}), ("like", {"count": 2}),
                                                 ("comment", {"text": "主播好"}), ("gift", {"value": 0.1})] * 250)]
    taken = [same_fields(line) for line in stream]
    assert sum(found is not None for found in taken) == len(stream)


@pytest.mark.parametrize("line", ["{\"type\":\"heartbeat\",\"room\":\"r\ud800\",\"ts\":1,\"user\":\"u1\"}", 7, None])
def test_a_text_it_cannot_encode_or_what_is_no_line_is_left_to_python(line: object) -> None:
    assert reader is not None
    assert reader(line) is None


def test_a_user_or_room_seen_before_is_the_same_string() -> None:
    """Names come back as the string made before, so the look-ups downstream compare pointers."""
    assert reader is not None
    first = reader(b'{"type":"heartbeat","room":"room-7","ts":1,"user":"user-42"}')
    again = reader(b'{"type":"like","room":"room-7","ts":2,"user":"user-42"}')
    assert first is not None and again is not None
    assert first[1] is again[1] and first[4] is again[4]  # type: ignore[index]


def test_the_reader_is_not_used_when_its_source_changed_or_the_pure_build_is_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tmp_path / "livecoupon" / "engine"
    engine.mkdir(parents=True)
    assert compiled.native_line_reader(tmp_path) is None  # never built
    built = compiled.extension_of(compiled.NATIVE)
    assert built is not None
    (engine / built.name).write_bytes(b"")
    source = engine / "scan.pyx"
    source.write_text("# edited")
    os.utime(engine / built.name, (1_000_000, 1_000_000))
    assert compiled.native_line_reader(tmp_path) is None  # edited since it was built
    monkeypatch.setenv(compiled.PURE_ENV, "1")
    assert compiled.native_line_reader() is None


def test_lines_of_a_broadcast_with_a_few_bytes_changed_are_read_alike() -> None:
    """Common lines with one to three bytes inserted, deleted or replaced, or a field put in front: whatever the
    reader in C takes of them it reads as decoded_fields does (seeded: the same 20,000 lines every run)."""
    rng = random.Random(20261202)
    alphabet = b'{}[]":,.-+eE0123456789 \t\r\n\\nultrfase\x00\x1f\x7f\xc3\xa9\xe4\xb8\xad\xed\xa0\x80\xffxyz'
    fields = [b'"device":"d1",', b'"ip":"",', b'"risk":1,', b'"risk":0.5,', b'"profile":{"a":1},', b'"profile":{},',
              b'"count":-1,', b'"count":1.0,', b'"value":9.999,', b'"ts":1e3,', b'"id":null,', b'"x":[1],',
              b'"type":"order",', b'"user":"",', b'"text":"\\u4e2d",']
    taken = 0
    for _ in range(20_000):
        line = bytearray(rng.choice(COMMON))
        for _ in range(rng.randint(1, 3)):
            at, edit = rng.randrange(len(line) + 1), rng.random()
            if edit < 0.3:
                del line[at:at + rng.randint(1, 3)]
            elif edit < 0.6:
                line[at:at] = bytes([rng.choice(alphabet)])
            elif edit < 0.8:
                line[min(at, len(line) - 1)] = rng.choice(alphabet)
            else:
                line[1:1] = rng.choice(fields)
        taken += same_fields(bytes(line)) is not None
    assert taken > 1_000  # the changes left many lines plain (1,883 with this seed): the comparison was made
