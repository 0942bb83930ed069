"""Agora Notification Center Service (NCS, 声网消息通知服务): RTC channel events to livecoupon events.

Agora POSTs one JSON *notice* per channel event::

    {"noticeId": "2000001428:4330:107", "productId": 1, "eventType": 105,
     "notifyMs": 1611566412672, "payload": {"channelName": "room-1", "uid": 42, "ts": 1560396843, ...}}

signed with the NCS secret: ``Agora-Signature`` is the hex HMAC/SHA1 and ``Agora-Signature-V2`` the hex
HMAC/SHA256 of the raw request body. See docs/agora.md for the sources and the mapping table.

Who becomes a viewer: only an audience member's own arrival (105) is a ``join``. The host's arrival (103)
and role switches (111, 112) create no presence, so a host is never counted or rewarded as a viewer. Every
real departure (104, 106) is a ``leave``: for a user who is not a present viewer (a host) SPEC §2 makes it a
no-op, and for an audience member who went on mic (111) and then left, it ends their presence. Leaves whose
``reason`` says the client is still in the channel (server rebalancing, reconnects, a newer device taking
over) are dropped, so a network blip does not reset anyone's dwell time.

Pure functions, standard library only, no clock: ``ts`` comes from the notice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

SIGNATURE_HEADER = "Agora-Signature"  # hex HMAC/SHA1 of the raw body
SIGNATURE_V2_HEADER = "Agora-Signature-V2"  # hex HMAC/SHA256 of the raw body

RTC_PRODUCT_ID = 1  # other products (cloud recording, media push, conversational AI) reuse event numbers
HEALTH_CHECK_CHANNEL = "test_webhook"  # Agora Console's health check sends test events for this channel

CHANNEL_CREATE = 101
CHANNEL_DESTROY = 102
BROADCASTER_JOIN = 103
BROADCASTER_LEAVE = 104
AUDIENCE_JOIN = 105
AUDIENCE_LEAVE = 106
COMMUNICATION_JOIN = 107
COMMUNICATION_LEAVE = 108
ROLE_TO_BROADCASTER = 111
ROLE_TO_AUDIENCE = 112

# Leave reasons after which the client is still (or at once again) in the channel: 4 server load
# balancing, 5 the same user on a newer device, 9 multiple IPs, 10 SDK-side reconnect.
STILL_CONNECTED_REASONS = frozenset({4, 5, 9, 10})

ROOM_EVENTS = {CHANNEL_CREATE: "live_start", CHANNEL_DESTROY: "live_end"}
VIEWER_EVENTS = {AUDIENCE_JOIN: "join", AUDIENCE_LEAVE: "leave", BROADCASTER_LEAVE: "leave"}


class NoticeError(ValueError):
    """A notice livecoupon cannot read; ``field`` names what was wrong (dotted, e.g. ``payload.uid``)."""

    code = "malformed_notice"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NoticeNotJson(NoticeError):
    """The request body is not a JSON object at all."""

    code = "invalid_json"


def verify_signature(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    """True when the notice was signed with ``secret``: V2 (SHA256) when sent, else V1 (SHA1).

    A present but wrong V2 fails even if V1 matches: the weaker signature is never a fallback for a
    stronger one that disagrees. Comparison is constant-time; hex case is ignored.
    """
    if not secret:
        return False
    received_v2 = _header(headers, SIGNATURE_V2_HEADER)
    if received_v2 is not None:
        return _matches(received_v2, _hex_hmac(secret, body, hashlib.sha256))
    received_v1 = _header(headers, SIGNATURE_HEADER)
    if received_v1 is not None:
        return _matches(received_v1, _hex_hmac(secret, body, hashlib.sha1))
    return False


def sign(body: bytes, secret: str) -> dict[str, str]:
    """The two signature headers Agora would send with ``body`` (for tests and local replays)."""
    return {
        SIGNATURE_HEADER: _hex_hmac(secret, body, hashlib.sha1),
        SIGNATURE_V2_HEADER: _hex_hmac(secret, body, hashlib.sha256),
    }


def _hex_hmac(secret: str, body: bytes, digest: Callable[..., Any]) -> str:
    return hmac.new(secret.encode("utf-8"), body, digest).hexdigest()


def _matches(received: str, expected: str) -> bool:
    candidate = received.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(candidate, expected.encode("ascii"))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def parse_notice(body: bytes) -> dict[str, Any]:
    """Decode a raw request body into a notice object, or raise :class:`NoticeNotJson`."""
    try:
        decoded = json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoticeNotJson("body", f"not valid JSON ({exc})") from None
    except ValueError as exc:
        raise NoticeNotJson("body", str(exc)) from None
    if not isinstance(decoded, dict):
        raise NoticeNotJson("body", f"must be a JSON object, got {type(decoded).__name__}")
    return decoded


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def to_events(notice: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Map one NCS notice to the livecoupon events it means (zero or one today).

    Unknown event types, other Agora products and Agora's health-check channel map to ``[]``;
    a notice missing a field this mapping needs raises :class:`NoticeError` naming it.
    """
    notice_id = _string(notice, "noticeId", "noticeId")
    if _integer(notice, "productId", "productId") != RTC_PRODUCT_ID:
        return []
    event_type = _integer(notice, "eventType", "eventType")
    kind = ROOM_EVENTS.get(event_type) or VIEWER_EVENTS.get(event_type)
    if kind is None:
        return []
    payload = _payload(notice)
    room = _string(payload, "channelName", "payload.channelName")
    if room == HEALTH_CHECK_CHANNEL:
        return []
    event: dict[str, Any] = {"type": kind, "room": room, "ts": _seconds(notice, payload), "id": f"agora:{notice_id}"}
    if event_type in VIEWER_EVENTS:
        event["user"] = _user(payload)
        if kind == "leave" and _reason(payload) in STILL_CONNECTED_REASONS:
            return []
    return [event]


def _payload(notice: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = _required(notice, "payload", "payload")
    if not isinstance(payload, dict):
        raise NoticeError("payload", f"must be a JSON object, got {type(payload).__name__}")
    return payload


def _seconds(notice: Mapping[str, Any], payload: Mapping[str, Any]) -> float:
    """The event's own time (``payload.ts``, seconds); failing that, when Agora sent the notice."""
    if payload.get("ts") is not None:
        return _number(payload, "ts", "payload.ts")
    if notice.get("notifyMs") is None:
        raise NoticeError("payload.ts", "required (and notifyMs, the fallback, is missing too)")
    return _number(notice, "notifyMs", "notifyMs") / 1000


def _user(payload: Mapping[str, Any]) -> str:
    uid = _required(payload, "uid", "payload.uid")
    if isinstance(uid, bool) or not isinstance(uid, (int, str)):
        raise NoticeError("payload.uid", f"must be a number, got {type(uid).__name__}")
    if uid == "":
        raise NoticeError("payload.uid", "must not be empty")
    return str(uid)


def _reason(payload: Mapping[str, Any]) -> int | None:
    if payload.get("reason") is None:
        return None
    return _integer(payload, "reason", "payload.reason")


def _required(data: Mapping[str, Any], key: str, field: str) -> Any:
    value = data.get(key)
    if value is None:
        raise NoticeError(field, "required" if key not in data else "must not be null")
    return value


def _string(data: Mapping[str, Any], key: str, field: str) -> str:
    value = _required(data, key, field)
    if not isinstance(value, str):
        raise NoticeError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise NoticeError(field, "must not be empty")
    return value


def _number(data: Mapping[str, Any], key: str, field: str) -> float:
    value = _required(data, key, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NoticeError(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise NoticeError(field, "must be a finite, non-negative number")
    return value


def _integer(data: Mapping[str, Any], key: str, field: str) -> int:
    value = _required(data, key, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise NoticeError(field, f"must be a whole number, got {value!r}")
    return value
