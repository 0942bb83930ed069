"""Durations in the campaign file: ``300``, ``30s``, ``5m``, ``2h``, ``1h30m``."""

from __future__ import annotations

import math
import re

_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


MAX_DURATION_MS = 100 * 365 * 86_400_000  # a century: beyond any campaign's time, and a coupon's end stays a date
_SECONDS_OR_DURATION = "必须是秒数或时长 / must be seconds or a duration like 30s, 5m, 1h30m"


class DurationError(ValueError):
    """A duration livecoupon cannot read; its words Chinese first, then English."""


def parse_duration_ms(value: object) -> int:
    """Milliseconds for a duration given as seconds or as a ``1h30m``-style string, at most a century."""
    ms = _duration_ms(value)
    if ms > MAX_DURATION_MS:
        raise DurationError(f"最长 100 年 / at most 100 years ({MAX_DURATION_MS // 3_600_000:,}h)")
    return ms


def _duration_ms(value: object) -> int:
    if isinstance(value, bool):
        raise DurationError(_SECONDS_OR_DURATION)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise DurationError("必须是有限的非负秒数 / must be a finite, non-negative number of seconds")
        return round(value * 1000)
    if not isinstance(value, str):
        raise DurationError(_SECONDS_OR_DURATION)
    text = value.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return round(float(text) * 1000)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise DurationError(f"不是时长 / not a duration: {value!r} (use 300, 30s, 5m, 2h or 1h30m)")
    parts = zip(match.groups(), ("h", "m", "s"), strict=True)
    return round(sum(float(n) * _UNIT_MS[unit] for n, unit in parts if n is not None))


def format_duration(ms: int) -> str:
    """A short human form: ``5m``, ``1h30m``, ``45s``, ``1.5s``."""
    if ms % 1000:
        return f"{ms / 1000:g}s"
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")
