"""Path parameters that hold a ``/``: routes matched one raw segment at a time.

A user, order, coupon, room or trigger may be named by any string (SPEC §2), ``/`` included, which a
client sends escaped: ``GET /v1/users/wx%2F1/coupons`` (``encodeURIComponent`` writes it so). The
server decodes the path before routing, so Starlette sees ``/v1/users/wx/1/coupons``, which no
``{user}`` matches. A ``SegmentRoute`` matches such a request on its raw path instead, each segment
decoded on its own, so ``%2F`` stays inside its parameter and a real ``/`` still separates segments:
``GET /v1/orders/a%2Fpay`` reads order ``a/pay``, and ``POST`` to it is no payment of order ``a``.
Where the raw path holds no ``%2F``, or is not there (or does not decode to the path the server gave),
the route matches as any route does. ``SegmentWebSocketRoute`` does the same for a socket; it goes on
the app itself, since FastAPI rebuilds an included router's sockets as plain ``APIWebSocketRoute``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote

from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Match
from starlette.types import Scope

_SEGMENTED = "livecoupon.segmented"  # where a request's scope keeps its segmented path, worked out once


def segmented(scope: Scope) -> str | None:
    """The request's path with each segment decoded on its own and a ``/`` or ``%`` inside one escaped
    again (``%2F``, ``%25``), or None where the raw path escapes no ``/`` (the decoded path is exact). Worked
    out once a request (each route it is matched against asks), and kept in its scope."""
    if _SEGMENTED not in scope:
        scope[_SEGMENTED] = _segmented(scope)
    found: str | None = scope[_SEGMENTED]
    return found


def _segmented(scope: Scope) -> str | None:
    raw = scope.get("raw_path")
    if not raw or (b"%2F" not in raw and b"%2f" not in raw):
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    path = "/".join(unquote(s).replace("%", "%25").replace("/", "%2F") for s in text.split("/"))
    return path if unquote(path) == scope["path"] else None


class SegmentRoute(APIRoute):
    """An ``APIRoute`` whose path parameters may hold an escaped ``/`` (the module's docstring)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return _matched(scope, super().matches, self.param_convertors)


class SegmentWebSocketRoute(APIWebSocketRoute):
    """An ``APIWebSocketRoute`` whose path parameters may hold an escaped ``/`` (the module's docstring)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return _matched(scope, super().matches, self.param_convertors)


Matcher = Callable[[Scope], tuple[Match, Scope]]


def _matched(scope: Scope, matches: Matcher, params: Iterable[str]) -> tuple[Match, Scope]:
    """What ``matches`` says of the request's segmented path, its ``params`` decoded; of its path where it has none."""
    path = segmented(scope)
    if path is None:
        return matches(scope)
    match, child = matches({**scope, "path": path})
    if match is not Match.NONE:
        found = child["path_params"]
        child["path_params"] = found | {name: unquote(found[name]) for name in params
                                        if isinstance(found.get(name), str)}
    return match, child
