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


class Refused(LivecouponError):
    """The request is well-formed but the rules refuse it (409)."""

    status = 409


class NotFound(LivecouponError):
    status = 404


class Unauthorized(LivecouponError):
    status = 401
