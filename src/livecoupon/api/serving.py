"""How ``livecoupon serve`` runs the app under uvicorn: its HTTP protocol sends an answer in one piece.

uvicorn writes a response's status line and headers, then its body, as two writes to the
connection; uvloop sends each at once, so every answer cost two ``send`` calls and reached
the client as two TCP segments. A checkout pair (create, then pay) is two small answers:
four sends where two carry the same bytes (docs/benchmarks.md, "Checkout, a sixth pass").
Here the writes made within one turn of the event loop leave together at the end of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CorkedTransport:
    """A connection's transport whose writes within one turn of the event loop are sent as one.

    The first write of a turn schedules the send for the end of that turn (``call_soon``, so
    nothing waits on a timer); later writes of the same turn join it. Closing and half-closing
    send the held bytes first, so the peer gets exactly what was written, in order; aborting
    drops them, as aborting drops a transport's buffer. Everything else is the transport's own.
    """

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        held = self._held
        if held is None:
            self._held = [bytes(data)]  # a caller may reuse a bytearray it gave
            self._loop.call_soon(self.flush)
        else:
            held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (sum(map(len, held)) if held else 0)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol, …
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CorkedTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport, self.loop))  # type: ignore[arg-type]
