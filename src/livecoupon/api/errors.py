"""Errors to answers, in one place: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from livecoupon.api.runtime import is_json
from livecoupon.errors import LivecouponError, TooManyRequests, Unavailable, dotted, error_json, validation_words

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _field(loc: tuple[int | str, ...]) -> str | None:
    parts = [p for p in loc if p not in ("body", "query", "path")]
    # an item of a body that is a list: body[0]
    return dotted(parts, "body" if parts and isinstance(parts[0], int) else "") or None


async def _ours(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LivecouponError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests | Unavailable) else None
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    """JSON nested past the parser's recursion limit is malformed input, not a server fault."""
    return JSONResponse(error_json("too_deep", "body: JSON nested too deeply", "body"), status_code=422)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "malformed request", "type": "malformed"}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":  # its loc is ("body", the character where the parser stopped)
        at = next((p for p in loc if isinstance(p, int)), None)
        where = "" if at is None else f" (at character {at})"
        message = f"body: not valid JSON{where}: {first.get('msg', '')}"  # (error_json puts the code's words first)
        return JSONResponse(error_json("invalid_json", message, "body"), status_code=422)
    field = _field(loc)
    hint = ""
    if field is None:
        field = "body"
        if not is_json(request.headers.get("content-type")):  # else the JSON itself is what was wrong
            hint = " (send a JSON object with Content-Type: application/json)"
    message = f"{field}: {validation_words(first)}{hint}"
    return JSONResponse(error_json("malformed", message, field), status_code=422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's answer to a body its JSON parser gave up on ("There was an error…")
        return JSONResponse(error_json("invalid_json", "不是可读的 JSON（须为 UTF-8，嵌套不能过深） / body: not JSON "
                                                       "that can be read: it must be UTF-8 text, not nested too deeply",
                                       "body"), status_code=422)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = {"Allow": _allowed(request)} if exc.status_code == 405 else exc.headers
    return JSONResponse(error_json(code, str(exc.detail), None), status_code=exc.status_code, headers=headers)


def _allowed(request: Request) -> str:
    """Every method the path answers (RFC 9110 §10.2.1), not only those of the first route that matched it.
    Past the routes, only the static pages' mount answers 405, and it serves GET and HEAD."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [method for method in METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]
    return ", ".join(allowed) or "GET, HEAD"


def install(app: FastAPI) -> None:
    app.add_exception_handler(LivecouponError, _ours)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RecursionError, _too_deep)
