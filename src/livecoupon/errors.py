"""Small typed errors carrying data; the API turns them into answers in one place."""

from __future__ import annotations


class LivecouponError(Exception):
    """Base: ``code`` is machine-readable, ``message`` is for people, ``field`` names the input."""

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class Malformed(LivecouponError):
    """The request itself is wrong (422)."""

    status = 422


def key_reused() -> Malformed:
    """The same idempotency key with another request (SPEC §5: the same key always gets the same answer)."""
    return Malformed("idempotency_key_reused", "idempotency_key was already used for a different request",
                     "idempotency_key")


class Refused(LivecouponError):
    """The request is well-formed but the rules refuse it (409)."""

    status = 409


class NotFound(LivecouponError):
    status = 404


class Unauthorized(LivecouponError):
    status = 401


class Forbidden(LivecouponError):
    """A valid credential, but for another user or an endpoint it does not open (403)."""

    status = 403


class TooManyRequests(LivecouponError):
    """A rate limit; ``retry_after`` seconds until the caller may try again (429)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__("rate_limited", message, None)
        self.retry_after = retry_after


class Unavailable(LivecouponError):
    """Something the service stands on is away for a moment — scaled out, the bus or the store (503,
    Retry-After): retry. (A batch the bus took before it failed to answer is applied once all the same.)"""

    status = 503

    def __init__(self, message: str, retry_after: int = 1, code: str = "bus_unavailable") -> None:
        super().__init__(code, message, None)
        self.retry_after = retry_after
