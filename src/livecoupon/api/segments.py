"""Path parameters that hold a ``/``: routes matched one raw segment at a time.

A user, order, coupon, room or trigger may be named by any string (SPEC §2), ``/`` included, which a
client sends escaped: ``GET /v1/users/wx%2F1/coupons`` (``encodeURIComponent`` writes it so). The
server decodes the path before routing, so Starlette sees ``/v1/users/wx/1/coupons``, which no
``{user}`` matches. A ``SegmentRoute`` matches such a request on its raw path instead, each segment
decoded on its own, so ``%2F`` stays inside its parameter and a real ``/`` still separates segments:
``GET /v1/orders/a%2Fpay`` reads order ``a/pay``, and ``POST`` to it is no payment of order ``a``.
Where the raw path holds no ``%2F``, or is not there (or does not decode to the path the server gave),
the route matches as any route does.

WebSocket routes cannot take a route class here (FastAPI makes its own when a router is included):
the viewer's socket names its room with ``{room:path}``, which is exact there since it ends in a fixed
``/live`` and no other socket shares its prefix.
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


def segmented(scope: Scope) -> str | None:
    """The request's path with each segment decoded on its own and a ``/`` or ``%`` inside one escaped
    again (``%2F``, ``%25``), or None where the raw path escapes no ``/`` (the decoded path is exact)."""
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
        path = segmented(scope)
        if path is None:
            return super().matches(scope)
        match, child = super().matches({**scope, "path": path})
        if match is not Match.NONE:
            params = child["path_params"]
            child["path_params"] = params | {name: unquote(params[name]) for name in self.param_convertors
                                            if isinstance(params.get(name), str)}
        return match, child
