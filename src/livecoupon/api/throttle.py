"""Rate limits on what viewers can reach: per viewer, per IP, per socket (429 + Retry-After).

Server-to-server callers (the platform and operator keys) are not limited here: their
volume is the platform's business, and a body limit bounds each request. Nor are callers on
the machine itself limited by their address (:func:`is_loopback`): each viewer's own rate holds.

A sliding-window counter (the current and the previous window, the previous one weighted
by how much of it still overlaps), kept in plain dictionaries on the event loop. It is our
own because it sits on every viewer request: the ``limits`` library's in-memory storage
cost 70-120 µs a request here, most of it a thread it starts to expire keys (measured,
bench/auth.py --breakdown); this costs about 1 µs.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from livecoupon.errors import TooManyRequests

# one viewer's HTTP requests: a page needs a few a second; a client racing its own orders, a burst (at 20 a burst of a
# viewer's concurrent orders for one coupon was answered 429s where all but one were owed 409s)
VIEWER_RATE = "50/second"
IP_RATE = "300/second"  # all viewers behind one address (a campus or carrier NAT shares one)
SOCKET_RATE = "10/second"  # messages from one viewer's sockets (acks, mute)
# Wrong credentials from one address. Keys and signed tokens cannot be guessed at any rate, and a 401 costs
# microseconds: this only stops a flood. Lower, it answered a platform whose key was wrong with 429s that hid why
# (and a client backs off and retries a 429, where a 401 says: fix the key).
FAILED_AUTH_RATE = "600/minute"
_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_PRUNE_EVERY = 4096


@lru_cache(maxsize=4096)
def is_loopback(address: str) -> bool:
    """Whether a caller's address is the machine itself (127.0.0.0/8, ::1), which the limits by address leave alone:
    there it is a test suite, or a proxy that does not forward its clients' addresses (uvicorn takes them from a local
    proxy's X-Forwarded-For), and every viewer behind it would share one address's budget."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # no address ("-"), or a name (a test client's)
        return False


@dataclass(slots=True)
class Rate:
    """``amount`` hits per ``period`` seconds, counted per key."""

    amount: int
    period: float
    windows: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # key -> (window, count, previous count)
    _calls: int = 0

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``20/second``, ``30/minute``, ``5/10second``…"""
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour)s?\s*", text)
        if found is None:
            raise ValueError(f"{text!r}: a rate is N/second, N/minute or N/hour")
        return cls(int(found[1]), int(found[2] or 1) * _UNITS[found[3]])

    def hit(self, key: str, now: float) -> float:
        """Count a hit; 0 if allowed, else the seconds until one would be."""
        window = int(now // self.period)
        current, count, previous = self.windows.get(key, (window, 0, 0))
        if current != window:
            count, previous = 0, count if current == window - 1 else 0
        overlap = 1.0 - (now / self.period - window)
        if previous * overlap + count >= self.amount:
            self.windows[key] = (window, count, previous)
            return max(1.0, (window + 1) * self.period - now)
        self.windows[key] = (window, count + 1, previous)
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self.windows = {k: v for k, v in self.windows.items() if v[0] >= window - 1}
        return 0.0

    def __str__(self) -> str:
        return f"{self.amount} per {self.period:g} s"


class Throttle:
    def __init__(self, viewer: str = VIEWER_RATE, ip: str = IP_RATE, socket: str = SOCKET_RATE,
                 failed_auth: str = FAILED_AUTH_RATE, clock: Callable[[], float] = time.monotonic) -> None:
        self.viewer, self.ip, self.socket, self.failed_auth = (
            Rate.parse(viewer), Rate.parse(ip), Rate.parse(socket), Rate.parse(failed_auth))
        self._clock = clock

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Throttle:
        """Limits from ``LIVECOUPON_VIEWER_RATE``, ``LIVECOUPON_IP_RATE``, ``LIVECOUPON_SOCKET_RATE`` and
        ``LIVECOUPON_FAILED_AUTH_RATE`` (such as ``20/second``), each defaulting to the figure above."""
        return cls(env.get("LIVECOUPON_VIEWER_RATE", VIEWER_RATE), env.get("LIVECOUPON_IP_RATE", IP_RATE),
                   env.get("LIVECOUPON_SOCKET_RATE", SOCKET_RATE),
                   env.get("LIVECOUPON_FAILED_AUTH_RATE", FAILED_AUTH_RATE))

    def allows(self, rate: Rate, *key: str) -> bool:
        return rate.hit("\x1f".join(key), self._clock()) == 0

    def check(self, rate: Rate, *key: str) -> None:
        """Count one request; raise :class:`TooManyRequests` with Retry-After past the limit."""
        wait = rate.hit("\x1f".join(key), self._clock())
        if wait:
            raise TooManyRequests(f"too many requests: at most {rate} (请稍后再试)", math.ceil(wait))

    def check_address(self, rate: Rate, kind: str, address: str) -> None:
        """:meth:`check` for a limit by the caller's address, which the machine's own callers are not held to
        (:func:`is_loopback`)."""
        if not is_loopback(address):
            self.check(rate, kind, address)
