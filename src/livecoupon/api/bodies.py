"""Bounds on what a request may send before any route reads it (SPEC §6: a body over 16 MiB is a 413; a path is
UTF-8 text)."""

from __future__ import annotations

import json
import zlib
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecoupon.errors import error_json

MAX_BODY = 16 * 1024 * 1024


class BodyLimit:
    """Reads each HTTP request's body up to ``MAX_BODY`` bytes (413 past it), inflating
    ``Content-Encoding: gzip`` within the same bound, then hands it to the app whole; refuses first (422) a path
    that is not UTF-8 text."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not path_is_text(scope.get("raw_path")):
            await refuse(send, 422, "malformed", "路径解码后不是 UTF-8 文本 / the path, percent-decoded, is not "
                         "UTF-8 text", field="path")
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        body = await bounded_body(headers.get(b"content-length"), receive, send, self.limit)
        if isinstance(body, int):
            return
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding == b"gzip":
            try:
                body = inflated(body, self.limit)
            except TooLarge:
                await refuse(send, 413, "too_large", f"解压后的请求体超过 {self.limit // 2**20} MiB / "
                             f"the inflated body is over {self.limit // 2**20} MiB")
                return
            except BadGzip as exc:
                await refuse(send, 400, "bad_encoding", f"请求体不是有效的 gzip / the body is not valid gzip: {exc}")
                return
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"]
                                         if k not in (b"content-encoding", b"content-length")])
        elif encoding not in (b"identity", b""):
            await refuse(send, 415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
            return
        await self.app(scope, _replay(body, receive), send)


def path_is_text(raw: bytes | None) -> bool:
    """Whether a path (ASGI's ``raw_path``, no query), percent-decoded, is UTF-8: read with U+FFFD for each bad byte,
    ``/v1/users/%ED%A0%80/coupons`` named a user no one is and was answered 200 with nothing."""
    if not raw or b"%" not in raw:
        return True
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def bounded_body(declared: bytes | None, receive: Receive, send: Send, limit: int) -> bytes | int:
    """The request's whole body, or the status it was answered with instead: 413 (over ``limit``, as declared in
    ``Content-Length`` or as sent), 500 (nothing answered: the client went away)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await refuse(send, 413, "too_large", f"the body is over {limit // 2**20} MiB")
        return 413
    body = await read_body(receive, limit)
    if body is None:
        return 500
    if len(body) > limit:
        await refuse(send, 413, "too_large", f"the body is over {limit // 2**20} MiB")
        return 413
    return body


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body (None: the client went away), reading no further than one message past ``limit``.
    A small body is one message: its bytes are taken as they are, not copied."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    first: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return first
    body = bytearray(first)
    while len(body) <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return bytes(body)


async def refuse(send: Send, status: int, code: str, message: str, field: str = "body") -> None:
    """Answer a request refused before any route read it, and close its connection."""
    body = json.dumps(error_json(code, message, field), ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BadGzip(ValueError):
    """A ``Content-Encoding: gzip`` body that does not inflate; the message says why."""


class TooLarge(ValueError):
    """A body that inflates past the limit."""


def inflated(data: bytes, limit: int) -> bytes:
    """A gzip body inflated, never holding more than ``limit + 1`` bytes of output (a bomb stops there).
    Several gzip members one after the other are one body (RFC 1952 §2.2)."""
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise BadGzip(str(exc)) from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise TooLarge()
        if not inflater.eof:
            raise BadGzip("truncated: the gzip stream ends early")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body read already, then whatever the connection says next (a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive
