"""Rate limits on what viewers can reach: per viewer, per IP, per socket (429 + Retry-After).

Server-to-server callers (the platform and operator keys) are not limited here: their
volume is the platform's business, and a body limit bounds each request.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from livecoupon.errors import TooManyRequests

VIEWER_RATE = "20/second"  # one viewer's HTTP requests
IP_RATE = "300/second"  # all viewers behind one address (a campus or carrier NAT shares one)
SOCKET_RATE = "10/second"  # messages from one viewer's sockets (acks, mute)
FAILED_AUTH_RATE = "30/minute"  # wrong credentials from one address


class Throttle:
    def __init__(self, viewer: str = VIEWER_RATE, ip: str = IP_RATE, socket: str = SOCKET_RATE,
                 failed_auth: str = FAILED_AUTH_RATE) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.viewer, self.ip, self.socket, self.failed_auth = (
            parse(viewer), parse(ip), parse(socket), parse(failed_auth))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Throttle:
        """Limits from ``LIVECOUPON_VIEWER_RATE``, ``LIVECOUPON_IP_RATE`` and ``LIVECOUPON_SOCKET_RATE``
        (such as ``20/second``), each defaulting to the figure above."""
        return cls(env.get("LIVECOUPON_VIEWER_RATE", VIEWER_RATE), env.get("LIVECOUPON_IP_RATE", IP_RATE),
                   env.get("LIVECOUPON_SOCKET_RATE", SOCKET_RATE))

    def allows(self, item: RateLimitItem, *key: str) -> bool:
        return self._limiter.hit(item, *key)

    def check(self, item: RateLimitItem, *key: str) -> None:
        """Count one request; raise :class:`TooManyRequests` with Retry-After past the limit."""
        if not self._limiter.hit(item, *key):
            reset = self._limiter.get_window_stats(item, *key).reset_time
            raise TooManyRequests(f"too many requests: at most {item} (请稍后再试)",
                                  max(1, math.ceil(reset - time.time())))

    def is_blocked(self, item: RateLimitItem, *key: str) -> bool:
        """Whether ``key`` is over ``item`` already, without counting a hit."""
        return not self._limiter.test(item, *key)
