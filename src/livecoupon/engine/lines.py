"""The typed shape msgspec decodes a common recorded line into (see :mod:`livecoupon.engine.recordings`).

Its own module, and never compiled: a ``msgspec.Struct`` defined in a mypyc-compiled
module decodes more than twice as slowly (measured: 1.15 s against 0.45 s for 1,000,000 lines).
"""

from __future__ import annotations

from typing import Literal

import msgspec

# The types the fast path takes. A Literal, not a str: msgspec checks it in C and hands back the one
# interned string, whose hash is kept, so the set look-ups and comparisons that follow are cheap
# (decoding alone ~20% faster, measured); any other type fails here and goes down the checked path.
PlainType = Literal["join", "leave", "heartbeat", "like", "follow", "comment", "gift", "transcript", "online_count"]


class PlainLine(msgspec.Struct, gc=False):
    """The fields of the common event types; unknown fields are ignored, as SPEC §2 asks.

    ``gc=False``: it holds only strings, numbers and raw bytes, so it can be in no cycle,
    and a million of them a replay need not be tracked by the collector."""

    type: PlainType
    room: str
    ts: int | float
    id: str | None = None
    user: str | None = None
    count: int | None = None
    text: str | None = None
    value: int | float | None = None
    device: str | None = None  # what the platform knows of the user (SPEC §2), checked in recordings.plain_fields
    ip: str | None = None
    risk: int | float | None = None
    profile: dict[str, str | int | float] | None = None


decode_plain = msgspec.json.Decoder(PlainLine).decode

# PlainLine's fields in their order, as ``msgspec.structs.astuple`` gives them in one call: read
# one by one, from compiled code, each is a generic attribute look-up (~10% of a replay, callgrind)
PlainValues = tuple[str, str, int | float, str | None, str | None, int | None, str | None, int | float | None,
                    str | None, str | None, int | float | None, dict[str, str | int | float] | None]
