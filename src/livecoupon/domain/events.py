"""Room events as the live platform sends them (SPEC §2), validated field by field.

This is the replay hot path, so validation is plain code rather than a model library:
each check names the field it rejects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from livecoupon.domain.money import MoneyError, yuan_to_fen

VIEWER_TYPES = frozenset({"join", "leave", "heartbeat", "comment", "like", "follow", "gift", "order"})
VIEWING_TYPES = frozenset({"join", "heartbeat", "comment", "like", "follow", "gift"})
INTERACTION_TYPES = frozenset({"comment", "like", "follow", "gift"})  # count for flash sales
ROOM_TYPES = frozenset({"live_start", "live_end", "online_count", "transcript", "flash_sale"})
TYPES = VIEWER_TYPES | ROOM_TYPES


class EventError(ValueError):
    """An event livecoupon rejects; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Event:
    """One validated event. Times are integer milliseconds, money integer fen."""

    __slots__ = ("type", "room", "ts", "id", "user", "text", "count", "value", "order_id", "amount",
                 "coupon_id", "duration", "product")

    def __init__(self, type: str, room: str, ts: int, id: str | None = None, *, user: str | None = None,
                 text: str | None = None, count: int | None = None, value: int = 0, order_id: str | None = None,
                 amount: int = 0, coupon_id: str | None = None, duration: int = 0, product: str | None = None) -> None:
        self.type = type
        self.room = room
        self.ts = ts
        self.id = id
        self.user = user
        self.text = text
        self.count = count
        self.value = value
        self.order_id = order_id
        self.amount = amount
        self.coupon_id = coupon_id
        self.duration = duration
        self.product = product

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__[:11] if getattr(self, k) is not None)
        return f"Event({fields})"


# How far from a half millisecond ``ts * 1000`` may land through float error alone: a
# double carries ~16 significant digits, so an epoch time (~1.7e12 ms) is only good to
# ~1e-3 ms. Inside this band the decimal value the sender wrote decides.
_HALF_MS_BAND = 0.01
_MAX_SECONDS = 1e15  # beyond this an event time cannot be a time at all
_CLEAR_OF_HALF = 0.5 - _HALF_MS_BAND


def event_ms(ts: object) -> int | None:
    """An event time in integer ms, or None when ``ts`` is no usable number (the checked
    path then says why). Half a millisecond is settled by the decimal value sent."""
    if type(ts) is int and -_MAX_SECONDS < ts < _MAX_SECONDS:
        return ts * 1000
    if type(ts) is float and -_MAX_SECONDS < ts < _MAX_SECONDS:
        scaled = ts * 1000
        ms = int(scaled + 0.5) if scaled >= 0 else -int(0.5 - scaled)  # nearest; cheaper than round()
        return ms if -_CLEAR_OF_HALF < scaled - ms < _CLEAR_OF_HALF else ts_to_ms(ts)
    return None


def ts_to_ms(ts: float) -> int:
    """Event seconds to integer ms, rounding half to even on the decimal value."""
    if isinstance(ts, int):
        return ts * 1000
    scaled = ts * 1000
    if not math.isfinite(scaled):
        raise OverflowError("time out of range")
    if abs(scaled - math.floor(scaled) - 0.5) > _HALF_MS_BAND:
        return round(scaled)
    exact = Decimal(repr(ts)) * 1000
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _millis(data: dict[str, Any], key: str) -> int:
    try:
        return ts_to_ms(_number(data, key))
    except OverflowError:
        raise EventError(key, "out of range") from None


def _number(data: dict[str, Any], key: str) -> float | int:
    value = data.get(key)
    if value is None:
        raise EventError(key, "required" if key not in data else "must not be null")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventError(key, f"must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EventError(key, "must be a finite number")
    return value


def _string(data: dict[str, Any], key: str, *, non_empty: bool = False) -> str:
    value = data.get(key)
    if value is None:
        raise EventError(key, "required" if key not in data else "must not be null")
    if not isinstance(value, str):
        raise EventError(key, f"must be a string, got {type(value).__name__}")
    if non_empty and not value:
        raise EventError(key, "must not be empty")
    return value


def _optional_string(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise EventError(key, f"must be a string, got {type(value).__name__}")
    return value


def _count(data: dict[str, Any], key: str, default: int | None = None) -> int:
    if data.get(key) is None and default is not None:
        return default  # an optional field left out or null takes its default, like the other optional fields
    value = _number(data, key)
    if value != int(value):
        raise EventError(key, "must be a whole number")
    if value < 0:
        raise EventError(key, "must not be negative")
    return int(value)


def _money(data: dict[str, Any], key: str) -> int:
    value = _number(data, key)
    try:
        return yuan_to_fen(value)
    except MoneyError as exc:
        raise EventError(key, str(exc)) from None


def parse_event(data: Any) -> Event:
    """Validate one decoded JSON value as an event, or raise :class:`EventError`.

    The common, valid shape is checked inline (this is the replay hot path); anything
    unusual goes through :func:`_parse_checked`, which names the offending field.
    """
    if type(data) is not dict:
        return _parse_checked(data)
    try:
        kind, room, ts = data["type"], data["room"], data["ts"]
    except KeyError:
        return _parse_checked(data)
    event_id = data.get("id")
    shape = _SHAPES.get(kind) if type(kind) is str else None
    if shape is None or type(room) is not str or not room or (event_id is not None and type(event_id) is not str):
        return _parse_checked(data)
    ms = event_ms(ts)
    if ms is None:
        return _parse_checked(data)
    event = Event(kind, room, ms, event_id)
    has_user, extra = shape
    if has_user:
        user = data.get("user")
        if type(user) is not str or not user:
            return _parse_checked(data)
        event.user = user
    if extra is not None:
        extra(data, event)
    return event


def _parse_checked(data: Any) -> Event:
    if not isinstance(data, dict):
        raise EventError("event", f"must be a JSON object, got {type(data).__name__}")
    kind = _string(data, "type")
    if kind not in TYPES:
        raise EventError("type", f"unknown event type {kind!r}")
    room = _string(data, "room", non_empty=True)
    ts = _millis(data, "ts")
    event = Event(kind, room, ts, id=_optional_string(data, "id"))
    if kind in VIEWER_TYPES:
        event.user = _string(data, "user", non_empty=True)
    _PARSE_EXTRA[kind](data, event)
    return event


def _none(data: dict[str, Any], event: Event) -> None:
    return None


def _comment(data: dict[str, Any], event: Event) -> None:
    event.text = _string(data, "text")


def _like(data: dict[str, Any], event: Event) -> None:
    count = data.get("count")
    event.count = count if type(count) is int and count >= 0 else _count(data, "count", default=1)


def _gift(data: dict[str, Any], event: Event) -> None:
    event.value = _money(data, "value")


def _order(data: dict[str, Any], event: Event) -> None:
    event.order_id = _string(data, "order_id", non_empty=True)
    event.amount = _money(data, "amount")
    event.coupon_id = _optional_string(data, "coupon_id")


def _online_count(data: dict[str, Any], event: Event) -> None:
    event.count = _count(data, "count")


def _flash_sale(data: dict[str, Any], event: Event) -> None:
    if _number(data, "duration") <= 0:
        raise EventError("duration", "must be > 0")
    event.duration = _millis(data, "duration")
    event.product = _optional_string(data, "product")


_PARSE_EXTRA = {
    "live_start": _none, "live_end": _none, "join": _none, "leave": _none, "heartbeat": _none,
    "follow": _none, "comment": _comment, "like": _like, "gift": _gift, "order": _order,
    "online_count": _online_count, "transcript": _comment, "flash_sale": _flash_sale,
}

# type -> (carries a user, reads its extra fields): one lookup on the hot path.
_SHAPES: dict[str, tuple[bool, Callable[[dict[str, Any], Event], None] | None]] = {
    kind: (kind in VIEWER_TYPES, None if extra is _none else extra) for kind, extra in _PARSE_EXTRA.items()}
