"""A ``POST /v1/events`` body read straight into events (SPEC §6), the way replay reads a recording.

msgspec splits the array in C without building its items; each item then goes down the
recordings' fast path (:func:`livecoupon.engine.recordings.plain_fields`), which reads the
common shapes (a viewer's join, leave, heartbeat, like, follow, comment or gift, with their device,
ip, risk and profile; a transcript, an online count) in C (engine/scan.pyx) or into a typed struct,
and checks them. Any
other item is decoded to plain JSON values and left to :func:`livecoupon.domain.events.parse_event`
in :func:`livecoupon.service_layer.service.admit`, which names the field of every error, so a
bad event is rejected with the same index and words as before. A body msgspec refuses as a
whole (NaN, a huge integer, a lone surrogate, not an array) is read by the standard parser as
it always was: what it holds is then judged event by event. Bytes that are not UTF-8 are no
bad batch either: the event whose field holds them is rejected, naming the field.
"""

from __future__ import annotations

from typing import Any

import msgspec

from livecoupon.api.schemas import MAX_EVENTS
from livecoupon.engine.recordings import json_value, read_items
from livecoupon.errors import Malformed

_items = msgspec.json.Decoder(list[msgspec.Raw]).decode  # each item's bytes, not yet decoded


def decode_json(body: bytes) -> Any:
    """A request body (or one of its items) as JSON: msgspec, or the standard parser for what msgspec
    refuses but the events can still name (a lone surrogate, or bytes that are not UTF-8, is one bad
    event, not a bad batch: see :func:`~livecoupon.engine.recordings.json_value`)."""
    try:
        return json_value(body)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise Malformed("invalid_json", f"body is not valid JSON: {exc}", "body") from None


def read_batch(body: bytes) -> list[Any]:
    """The body's items in order: an :class:`~livecoupon.domain.events.Event` for each one the fast
    path took, the decoded JSON value of every other (for ``admit`` to parse and judge)."""
    try:
        items = _items(body)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.DecodeError:
        return checked(decode_json(body))
    checked_length(len(items))
    return read_items(items, decode_json)


def checked(batch: Any) -> list[Any]:
    """A decoded body that must be an array of at most ``MAX_EVENTS`` items."""
    if not isinstance(batch, list):
        raise Malformed("not_an_array", "body must be a JSON array of events", "body")
    checked_length(len(batch))
    return batch


def checked_length(n: int) -> None:
    if n > MAX_EVENTS:
        raise Malformed("too_many_events", f"at most {MAX_EVENTS:,} events per request, got {n:,}", "body")


def _too_deep() -> Malformed:
    return Malformed("too_deep", "body: JSON nested too deeply", "body")
