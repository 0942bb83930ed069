"""Reading recorded event streams: one JSON object a line (SPEC §2, §6).

Two paths produce the same events. Most lines of a live-room recording are joins,
leaves, heartbeats, likes, follows, comments, gifts, transcripts and online counts: the
compiled build reads those in one pass in C (engine/scan.pyx), else msgspec decodes them
into a typed shape in C and the checks it cannot express (non-empty names, milliseconds,
text, money) run in Python, to the same fields. Every other line,
and any line the fast path does not accept, goes through
:func:`livecoupon.domain.events.parse_event`, which also names the field of every error.
Measured on a 1,000,000-event broadcast: the fast path halves decoding and validation,
which were two thirds of a replay; on a mixed stream (a third of it comments, gifts and
transcripts) taking those too saves ~9 µs each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, cast

import msgspec
from msgspec.structs import astuple

from livecoupon.compiled import native_line_reader
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import (
    MAX_IP,
    MAX_NAME,
    MAX_TEXT,
    Event,
    EventError,
    Facts,
    event_ms,
    parse_event,
    plain_profile,
    seconds,
)
from livecoupon.domain.money import MAX_YUAN, MoneyError, yuan_to_fen
from livecoupon.engine.lines import PlainValues
from livecoupon.engine.lines import decode_plain as _decode_plain_line
from livecoupon.engine.rooms import RecentIds, is_new


@dataclass(slots=True)
class Rejected:
    line: int  # counted from 1, blank lines included
    error: str


# Final: the compiled build inlines them instead of looking each up in the module's dict
_QUIET_TYPES: Final = frozenset({"join", "leave", "heartbeat", "like", "follow"})  # no field but the user
_VIEWER_TYPES: Final = _QUIET_TYPES | {"comment", "gift"}
_ROOM_TYPES: Final = frozenset({"transcript", "online_count"})
_MAX_NAME: Final = MAX_NAME
_MAX_IP: Final = MAX_IP
_MAX_TEXT: Final = MAX_TEXT
_decode_any = msgspec.json.Decoder().decode
_decode_plain: Final = _decode_plain_line  # a C static when compiled, not a look-up in the module's dict
_values_of: Final = astuple
_EXACT_YUAN: Final = float(MAX_YUAN)  # below it a float with two decimals is the nearest double to its fen / 100
_CR: Final = b"\r"
_LF: Final = b"\n"
_BOM: Final = "\ufeff".encode()  # a byte order mark, which some editors put at the start of a UTF-8 file
_INT_DIGITS: Final = 4_300  # the longest integer text ``int`` reads by default (sys.int_info.default_max_str_digits)
READ_BLOCK: Final = 1 << 20  # bytes of a recording read at a time
_read_natively: Final = native_line_reader()  # engine/scan.pyx's ``plain``; None in the pure build

# type, room, ms, id, user (None for a room's event), count (like, online_count), text, value (fen), facts (None:
# none given)
PlainFields = tuple[str, str, int, "str | None", "str | None", "int | None", "str | None", int, "Facts | None"]
# What plain_fields answers for a line it does not take: its type is empty. Not None: compiled, a tuple that is
# never None is returned by value, its ms unboxed, where an optional one was a new tuple object a line (~1.5%)
NOT_PLAIN: Final[PlainFields] = ("", "", 0, None, None, None, None, 0, None)
Line = str | bytes  # a recorded line: as text, or as :func:`read_lines` reads it


def plain_fields(line: Line) -> PlainFields:
    """The fields of a common, valid line (a viewer's join, leave, heartbeat, like, follow,
    comment or gift; a transcript or online count), or :data:`NOT_PLAIN` (its type empty): anything
    else, or anything unusual, goes through :func:`checked_event`. Whatever it accepts, :func:`parse_event`
    would have read to the same event.

    The compiled build reads most lines in C (engine/scan.pyx: ~0.35 µs a line against ~0.9 µs, measured on
    the mixed stream), to the fields :func:`decoded_fields` reads; it leaves it any line it does not take.
    """
    if _read_natively is not None:
        fields = _read_natively(line)
        if fields is not None:
            return cast(PlainFields, fields)
    return decoded_fields(line)


def decoded_fields(line: Line) -> PlainFields:
    """:func:`plain_fields`, read by msgspec into :class:`~livecoupon.engine.lines.PlainLine` and checked here.

    Its strings need no check of their characters: msgspec decodes only valid Unicode (it
    rejects a lone surrogate, escaped or not, and bytes that are not UTF-8), so only their lengths
    are checked here. It skips the fields it does not know without looking at their bytes, as
    :func:`json_value` keeps bad bytes there without a complaint: no one reads them (SPEC §2).
    """
    try:
        values = _values_of(_decode_plain(line))
    except (msgspec.MsgspecError, UnicodeError, RecursionError):  # bytes that are not UTF-8 where it decodes, a lone
        # surrogate, nesting past msgspec's depth even in a field it skips: the checked path says what is wrong
        return NOT_PLAIN
    kind, room, ts, event_id, user, count, text, yuan, device, ip, risk, profile = cast(PlainValues, values)
    if not room or len(room) > _MAX_NAME or (event_id is not None and len(event_id) > _MAX_NAME):
        return NOT_PLAIN
    ms = event_ms(ts)
    if ms is None:
        return NOT_PLAIN
    value = 0
    if kind in _ROOM_TYPES:
        if kind == "online_count":
            if count is None or count < 0:
                return NOT_PLAIN
        elif text is None or len(text) > _MAX_TEXT:
            return NOT_PLAIN
        return kind, room, ms, event_id, None, count, text, 0, None
    if kind not in _VIEWER_TYPES or not user or len(user) > _MAX_NAME:
        return NOT_PLAIN
    facts: Facts | None = None
    device, ip = device or None, ip or None  # "": one the platform does not know, as the checked path reads it
    if device is not None or ip is not None or risk is not None or profile is not None:
        if ((device is not None and len(device) > _MAX_NAME) or (ip is not None and len(ip) > _MAX_IP)
                or (risk is not None and not 0 <= risk <= 1) or (profile is not None and not plain_profile(profile))):
            return NOT_PLAIN
        facts = (device, ip, None if risk is None else float(risk), profile)
    if kind == "like":
        if count is None:
            count = 1
        elif count < 0:
            return NOT_PLAIN
    elif kind == "comment":
        if text is None or len(text) > _MAX_TEXT:
            return NOT_PLAIN
    elif kind == "gift":
        fen = _fen(yuan)
        if fen is None:
            return NOT_PLAIN
        value = fen
    return kind, room, ms, event_id, user, count, text, value, facts


def _fen(value: int | float | None) -> int | None:
    """``yuan_to_fen``'s answer (None where it raises), without its decimal arithmetic for a
    plain float such as 0.1: a float below 1e9 yuan has at most two decimals exactly when it is
    the double nearest to ``fen / 100`` (no two such decimals share a double below 1e9)."""
    if value is None:
        return None
    if isinstance(value, float) and 0 <= value < _EXACT_YUAN:
        fen = round(value * 100)
        if fen / 100 == value:
            return fen
    try:
        return yuan_to_fen(value)
    except MoneyError:
        return None


def plain_event(fields: PlainFields) -> Event:
    kind, room, ms, event_id, user, count, text, value, facts = fields
    event = Event(kind, room, ms, event_id)
    if user is not None:
        event.user = user
    if facts is not None:
        event.device, event.ip, event.risk, event.profile = facts
    if kind == "like" or kind == "online_count":
        event.count = count
    elif kind == "comment" or kind == "transcript":
        event.text = text
    elif kind == "gift":
        event.value = value
    return event


def read_items(items: list[msgspec.Raw], other: Callable[[bytes], Any]) -> list[Any]:
    """The items of a posted batch (``POST /v1/events``), as msgspec split it, read as replay reads lines: an
    :class:`Event` for each the fast path takes, ``other``'s reading of any other (decoded JSON, judged later by
    ``parse_event``). Here to run compiled: 0.17 s per 100,000 events against 0.22–0.33 in the web layer."""
    batch: list[Any] = []
    for item in items:
        line = bytes(item)
        fields = plain_fields(line)
        batch.append(plain_event(fields) if fields[0] else other(line))
    return batch


def checked_event(number: int, line: Line, rejected: list[Rejected]) -> Event | None:
    """One line through full validation, or None (blank, or rejected with its reason)."""
    if isinstance(line, bytes):
        line = _as_text(line)
    try:
        data = json_value(line)
    except ValueError as exc:
        if not line.strip():
            return None
        rejected.append(Rejected(number, f"不是有效的 JSON / not valid JSON: {exc}"))
        return None
    except RecursionError:
        rejected.append(Rejected(number, "不是有效的 JSON：嵌套过深 / "
                                         "not valid JSON: nested deeper than the parser goes"))
        return None
    try:
        return parse_event(data)
    except EventError as exc:
        rejected.append(Rejected(number, str(exc)))
        return None


def json_value(data: Line) -> Any:
    """A line's (or a posted body's) JSON value, for validation to judge; raises ValueError if it is not JSON,
    RecursionError if it nests deeper than the parser goes.

    msgspec, else the standard parser, which also reads NaN and huge integers, so validation can name the
    field. Bytes that are not UTF-8 are read with each bad byte as a lone surrogate (``surrogateescape``):
    validation names the field they are in ("not valid Unicode"), and a field no one reads keeps them
    harmlessly, as msgspec's fast path does (SPEC §2: unknown fields are ignored).
    """
    try:
        return _decode_any(data)
    except (msgspec.DecodeError, UnicodeError):
        pass
    if isinstance(data, bytes):
        try:
            return json.loads(data, parse_int=_integer)  # UTF-8 with a byte order mark, UTF-16 and UTF-32 too
        except UnicodeDecodeError:
            data = data.decode("utf-8", "surrogateescape")
    return json.loads(data, parse_int=_integer)


def _integer(digits: str) -> int | float:
    """A JSON integer; one too long for Python's ``int`` (over 4,300 digits) as the infinite float it is beyond any
    range, which validation names as out of range where it was a bad batch or line as a whole."""
    return int(digits) if len(digits) <= _INT_DIGITS else float(digits)


def _as_text(line: bytes) -> str:
    """A line of :func:`read_lines` as reading the file as text gives it: decoded (any byte that is not UTF-8
    as a lone surrogate, see :func:`json_value`), its end ``\\n``."""
    text = line.decode("utf-8", "surrogateescape")
    if text.endswith("\r\n"):
        return text[:-2] + "\n"
    if text.endswith("\r"):
        return text[:-1] + "\n"
    return text


def read_lines(path: Path) -> list[bytes]:
    """A recording's lines, undecoded: msgspec reads UTF-8 bytes as they are, where a ``str``
    line is first encoded again (and reading as text decodes it once before that).

    Split where reading as text splits (``\\n``, ``\\r\\n``, ``\\r``), each with its end. A line
    that is not UTF-8 is kept as it is: its event is rejected if the bad bytes are in a field it needs
    (SPEC §2: a bad event never stops the others). A byte order mark that begins the file is dropped,
    as the ``utf-8-sig`` codec drops it.
    """
    return _split(path.read_bytes().removeprefix(_BOM))


def _split(data: bytes) -> list[bytes]:
    # Without a carriage return the lines end only at ``\n``, where BytesIO finds them with memchr:
    # ``bytes.splitlines`` tests every byte against each line end (~900 instructions a line, callgrind)
    return data.splitlines(keepends=True) if _CR in data else BytesIO(data).readlines()


class UnreadableRecording(Exception):
    """A recording that could not be read to its end (gone, a folder, not allowed…)."""


class Recording:
    """A recording file's lines as :func:`read_lines` splits them, read a block at a time each time it is
    iterated (a replay that must start again, a report that reads it twice, read it again).

    Held whole, a recording took 2.4 times its size in memory (the file, then a bytes object a line: 260 MB
    for 111 MB of a 1,000,000-line stream, the most of replay's peak), and faulting those pages in was ~5%
    of a replay (perf); a block's lines are freed once replayed, and the next block's take their memory.
    Reading errors surface as :class:`UnreadableRecording` where the block is read.
    """

    __slots__ = ("path", "block")

    def __init__(self, path: Path, block: int = READ_BLOCK) -> None:
        self.path = path
        self.block = block  # bytes read at a time

    def __iter__(self) -> Iterator[bytes]:
        for block in self.blocks():
            yield from block

    def blocks(self) -> Generator[list[bytes], None, None]:
        try:
            with self.path.open("rb") as file:
                pending: list[bytes] = []  # the line not ended yet, in pieces (a long one spans blocks)
                start = file.read(len(_BOM))
                if start and start != _BOM:  # a byte order mark that begins the file is dropped, as read_lines drops it
                    pending.append(start)
                while block := file.read(self.block):
                    pending.append(block)
                    if _LF not in block and _CR not in block:
                        continue
                    lines = _split(b"".join(pending))
                    # the last line goes on in the next block unless it has ended (a lone ``\r`` has ended
                    # only if no ``\n`` follows it: it waits for the next block too)
                    pending = [] if lines[-1].endswith(_LF) else [lines.pop()]
                    if lines:
                        yield lines
                if pending:
                    yield _split(b"".join(pending))
        except OSError as exc:
            raise UnreadableRecording(str(exc)) from exc


def read_events(lines: Iterable[Line]) -> tuple[list[Event], list[Rejected]]:
    """Every valid event in file order, and every rejected line."""
    events: list[Event] = []
    rejected: list[Rejected] = []
    for number, line in enumerate(lines, start=1):
        fields = plain_fields(line)
        event = plain_event(fields) if fields[0] else checked_event(number, line, rejected)
        if event is not None:
            events.append(event)
    return events, rejected


def read_for_replay(lines: Iterable[Line]) -> tuple[list[Event], list[Rejected]]:
    """The events in replay order (SPEC §2): later copies of an ``id`` in a room dropped
    (file order decides, as the room's memory of ids rules: engine/rooms.py ``RecentIds``), then sorted by
    ``ts``, ties in file order.

    One pass does all of it; a recording already in time order, the usual case, is never
    sorted (the room's memory is the live deployment's own rule, :func:`~livecoupon.engine.rooms.is_new`).
    """
    events: list[Event] = []
    rejected: list[Rejected] = []
    append = events.append
    seen: dict[str, RecentIds] = {}
    last_ts, in_order = -(2**63), True
    for number, line in enumerate(lines, start=1):
        fields = plain_fields(line)
        event = plain_event(fields) if fields[0] else checked_event(number, line, rejected)
        if event is None:
            continue
        if not is_new(seen, event):
            continue
        if event.ts < last_ts:
            in_order = False
        last_ts = event.ts
        append(event)
    if not in_order:
        events.sort(key=attrgetter("ts"))
    return events, rejected


def decision_json(d: DecisionRecord) -> dict[str, Any]:
    """One line of ``issued.jsonl`` or ``suppressed.jsonl`` (SPEC §6)."""
    # Keys set one by one (``update`` with keywords built a dict for each call); the reason as itself, a StrEnum,
    # which every JSON encoder writes as its text (``.value`` is a Python-level property: ~0.4 µs a line compiled)
    record: dict[str, Any] = {"ts": seconds(d.at), "room": d.room, "user": d.user, "trigger": d.trigger}
    if d.reason is None:
        assert d.expires_at is not None
        record["coupon"] = d.template
        record["coupon_id"] = d.coupon_id
        record["expires_at"] = seconds(d.expires_at)
    else:
        record["reason"] = d.reason
    if d.experiment is not None:
        record["experiment"] = d.experiment
        record["variant"] = d.variant
    if d.propensity is not None:
        record["arm"] = d.template
        record["propensity"] = d.propensity
    return record


_LINES_A_WRITE: Final = 10_000


def write_lines(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """One compact JSON object a line, encoded and written 10,000 lines at a time; how many lines."""
    encode_lines = msgspec.json.Encoder().encode_lines
    count = 0
    remaining = iter(records)
    with path.open("wb") as out:
        while chunk := list(islice(remaining, _LINES_A_WRITE)):
            out.write(encode_lines(chunk))
            count += len(chunk)
    return count


def write_decisions(records: Iterable[DecisionRecord], out_dir: Path) -> tuple[int, int]:
    """``issued.jsonl`` and ``suppressed.jsonl`` in decision order; how many of each."""
    records = list(records)
    issued = write_lines(out_dir / "issued.jsonl", (decision_json(r) for r in records if r.issued))
    suppressed = write_lines(out_dir / "suppressed.jsonl", (decision_json(r) for r in records if not r.issued))
    return issued, suppressed
