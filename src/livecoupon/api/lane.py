"""The checkout lane: the four checkout routes served straight from the ASGI request (issue 10).

Create + pay is the hottest pair of requests the service answers, and FastAPI's own path to a route
(its telemetry check, the middleware stack, the router matching each request twice) cost more of the
event loop than the routes themselves. The app hands these requests here before any of that
(``App.__call__``); the lane does what that path did for them, in the same order:

- the route, matched as ``SegmentRoute`` matches it (an order id may hold a ``/``, sent as ``%2F``);
- ``BodyLimit``: a body over the limit is a 413 (a ``Content-Encoding`` other than identity is left
  to the app: gzip bodies are rare here, and it inflates them; so is a path that is not UTF-8 text, which
  it refuses);
- the caller, from X-API-Key, then ``Authorization: Bearer``, then the session cookie (``caller_from``,
  with the same rate limits), checked before the body;
- the route (``public.order_created``, ``public.order_moved``: the same functions its ``LeanRoute``
  calls), its answers written as the route writes them;
- what it raises answered by the app's own exception handlers (4xx naming what was wrong), anything else
  a plain 500 as Starlette's ``ServerErrorMiddleware`` gives, and raised on;
- ``RequestTimer``: the latency histogram, labelled with the route's template.

The routes stay on FastAPI's router too: they are documented there (``/openapi.json``), and answer
whatever the lane passes on (another method, a trailing slash, a gzip body, a mounted root path).
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fastapi import FastAPI
from prometheus_client import Histogram
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from livecoupon.api.auth import SESSION_COOKIE
from livecoupon.api.bodies import MAX_BODY, bounded_body, path_is_text
from livecoupon.api.public import CHECKOUT_ACTS, encode_json, order_created, order_moved
from livecoupon.api.runtime import credential, identify
from livecoupon.api.segments import segmented
from livecoupon.service_layer.checkout import Answer

if TYPE_CHECKING:
    from livecoupon.api.runtime import Runtime

ORDERS = "/v1/orders"
_PREFIX = ORDERS + "/"
_WANTED = frozenset((b"content-length", b"content-encoding", b"content-type", b"x-api-key", b"authorization",
                     b"cookie"))
_PLAIN = (b"", b"identity")
# the route's template (its metrics label), the order id and act ("" to create), the headers the lane reads
Route = tuple[str, str, str, dict[bytes, bytes]]


class CheckoutLane:
    """Serves ``POST /v1/orders`` and ``POST /v1/orders/{order_id}/pay|cancel|refund`` for ``app``."""

    def __init__(self, app: FastAPI, runtime: Runtime, latency: Histogram, limit: int = MAX_BODY) -> None:
        self.app = app
        self.runtime = runtime
        self.latency = latency
        self.limit = limit
        self._timers: dict[tuple[str, int], Any] = {}  # (route, status // 100) -> the histogram's child

    def route(self, scope: Scope) -> Route | None:
        """The checkout route an HTTP request is for, or None for any other (the app answers it), for one
        whose body is encoded (the app inflates gzip) and for a path that is not UTF-8 text (the app refuses it)."""
        if scope["method"] != "POST" or scope.get("root_path") or not path_is_text(scope.get("raw_path")):
            return None
        escaped = segmented(scope)  # an order id with a "/" in it, sent as %2F: matched on the raw path
        path: str = scope["path"] if escaped is None else escaped
        if path == ORDERS:
            order_id, act = "", ""
        elif path.startswith(_PREFIX):
            order_id, slash, act = path[len(_PREFIX):].partition("/")
            if not (slash and order_id and act in CHECKOUT_ACTS):
                return None
            if escaped is not None:
                order_id = unquote(order_id)
        else:
            return None
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:  # the first of a repeated header, as Starlette reads it
                headers[name] = value
        if headers.get(b"content-encoding", b"").strip().lower() not in _PLAIN:
            return None
        return (f"{ORDERS}/{{order_id}}/{act}" if act else ORDERS), order_id, act, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        started = time.perf_counter()
        status = 500  # what RequestTimer records when nothing was answered (the client went away)
        try:
            status = await self._serve(scope, receive, send, route)
        finally:
            self._observe(route[0], status, time.perf_counter() - started)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, route: Route) -> int:
        body = await bounded_body(route[3].get(b"content-length"), receive, send, self.limit)
        if isinstance(body, int):
            return body  # refused (413), or the client went away (500: nothing answered, as BodyLimit records it)
        scope["app"] = self.app
        try:
            status, answer = await self._answer(scope, route, body)
        except Exception as exc:  # noqa: BLE001 (answered as the app's handlers answer it, or a 500)
            return await self._failed(scope, receive, send, exc)
        text = encode_json(answer)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(text)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": text})
        return status

    async def _answer(self, scope: Scope, route: Route, body: bytes) -> Answer:
        rt, (_, order_id, act, headers) = self.runtime, route
        client = scope.get("client")
        caller = identify(rt, _token(headers), client[0] if client is not None else "-")
        kind = headers.get(b"content-type")
        content_type = kind.decode("latin-1") if kind is not None else None
        if not act:
            return await order_created(rt, caller, body, content_type)
        return await order_moved(rt, caller, body, content_type, order_id, act)

    async def _failed(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> int:
        """The app's exception handler's answer to ``exc`` (as its ExceptionMiddleware would), else a 500."""
        handler = next((self.app.exception_handlers[kind] for kind in type(exc).__mro__
                        if kind in self.app.exception_handlers), None)
        if handler is None:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise exc
        answered = handler(Request(scope, receive), exc)
        response = await answered if inspect.isawaitable(answered) else answered
        await response(scope, receive, send)
        return response.status_code

    def _observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status // 100)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self.latency.labels("POST", route, f"{status // 100}xx")
        timer.observe(seconds)


def _token(headers: dict[bytes, bytes]) -> str | None:
    """The credential, as ``caller_from`` reads it (``credential``), from the raw headers."""
    key, authorization, cookie = headers.get(b"x-api-key"), headers.get(b"authorization"), headers.get(b"cookie")
    content_type = headers.get(b"content-type")
    return credential(key.decode("latin-1") if key else None,
                      authorization.decode("latin-1") if authorization else None,
                      cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE) if cookie else None,
                      "POST", content_type.decode("latin-1") if content_type else None)  # the lane serves POSTs only
