"""A light HTTP/1.1 client for the benchmarks: raw requests over keep-alive asyncio connections,
so the client leaves the server (on the same two cores) as much CPU as it can."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path


def request_bytes(method: str, path: str, port: int, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method != "GET":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection: a request's bytes out, the status and body back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"an answer without content-length: {head[:200]!r}")
        return int(head[9:12]), await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def wait_healthy(name: str, port: int, proc: subprocess.Popen[bytes], log_path: Path,
                       timeout: float = 30) -> None:
    """Until ``GET /health`` answers 200; a server that exits or never answers is an error naming ``name``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            conn = await Connection.open(port)
            try:
                status, _ = await conn.send(request_bytes("GET", "/health", port))
            finally:
                await conn.close()
            if status == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not start within {timeout:.0f} s")


Client = Callable[[Connection, float], Awaitable[None]]  # sends on one connection until the given perf_counter


async def timed_clients(conns: Sequence[Connection], client: Client, seconds: float,
                        cpu: Callable[[], float]) -> tuple[float, float]:
    """``client`` on every connection at once for about ``seconds``, then the connections closed:
    (wall seconds, the server's CPU seconds over the same span, by ``cpu``)."""
    try:
        cpu0, begin = cpu(), time.perf_counter()
        await asyncio.gather(*(client(c, begin + seconds) for c in conns))
        return time.perf_counter() - begin, cpu() - cpu0
    finally:
        for c in conns:
            await c.close()
