"""Bounds on what a request may send before any route reads it (SPEC §6: a body over 16 MiB is a 413)."""

from __future__ import annotations

import gzip
import json
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 16 * 1024 * 1024


def _error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "field": "body"}}).encode()


class BodyLimit:
    """Reads each HTTP request's body up to ``MAX_BODY`` bytes (413 past it), inflating
    ``Content-Encoding: gzip`` within the same bound, then hands it to the app whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, 413, "too_large", f"the body is over {self.limit // 2**20} MiB")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._refuse(send, 413, "too_large", f"the body is over {self.limit // 2**20} MiB")
                return
            if not message.get("more_body"):
                break
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding == b"gzip":
            inflated = self._gunzip(bytes(body))
            if inflated is None:
                await self._refuse(send, 422, "bad_encoding", "the body is not valid gzip")
                return
            if len(inflated) > self.limit:
                await self._refuse(send, 413, "too_large", f"the inflated body is over {self.limit // 2**20} MiB")
                return
            body = bytearray(inflated)
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"]
                                         if k not in (b"content-encoding", b"content-length")])
        elif encoding not in (b"identity", b""):
            await self._refuse(send, 415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _gunzip(self, data: bytes) -> bytes | None:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, self.limit + 1)
        except (zlib.error, gzip.BadGzipFile):
            return None
        return out

    async def _refuse(self, send: Send, status: int, code: str, message: str) -> None:
        body = _error(status, code, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


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
