"""The served protocol's transport: writes of one turn of the event loop leave as one, in order, and
nothing written is lost or reordered by closing, half-closing or aborting."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from livecoupon.api.serving import CorkedTransport


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what it is asked to do, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def on_a_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """The test run on an event loop of its own (its parameters as pytest gives them)."""
    return functools.wraps(test)(lambda *args, **kwargs: asyncio.run(test(*args, **kwargs)))


def corked() -> tuple[CorkedTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CorkedTransport(inner, asyncio.get_running_loop()), inner


@on_a_loop
async def test_the_writes_of_one_turn_leave_together_at_its_end() -> None:
    transport, inner = corked()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert inner.calls == []  # nothing sent before the turn ends
    await next_turn()
    assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")]


@on_a_loop
async def test_writes_of_different_turns_leave_apart_and_in_order() -> None:
    transport, inner = corked()
    transport.write(b"one")
    await next_turn()
    transport.write(b"two")
    transport.writelines([b"three", b"", b"four"])
    await next_turn()
    await next_turn()
    assert inner.calls == [("write", b"one"), ("write", b"twothreefour")]


@pytest.mark.parametrize("ending", ["close", "write_eof"])
@on_a_loop
async def test_closing_or_half_closing_sends_what_was_written_first(ending: str) -> None:
    transport, inner = corked()
    transport.write(b"last answer")
    getattr(transport, ending)()
    await next_turn()
    assert inner.calls == [("write", b"last answer"), (ending, None)]


@on_a_loop
async def test_aborting_drops_what_is_held_as_aborting_drops_a_buffer() -> None:
    transport, inner = corked()
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert inner.calls == [("abort", None)]


@on_a_loop
async def test_a_bytearray_reused_after_writing_does_not_change_what_is_sent() -> None:
    transport, inner = corked()
    buffer = bytearray(b"first")
    transport.write(buffer)
    buffer[:] = b"XXXXX"
    transport.write(memoryview(b"-second"))
    await next_turn()
    assert inner.calls == [("write", b"first-second")]


@on_a_loop
async def test_the_buffer_size_counts_the_held_bytes_and_the_rest_is_the_transports() -> None:
    transport, inner = corked()
    transport.write(b"12345")
    assert transport.get_write_buffer_size() == 7 + 5
    await next_turn()
    assert transport.get_write_buffer_size() == 7
    assert transport.is_closing() is False  # the transport's own
    inner.closing = True
    assert transport.is_closing() is True


@on_a_loop
async def test_writing_nothing_schedules_nothing() -> None:
    transport, inner = corked()
    transport.write(b"")
    await next_turn()
    assert inner.calls == []

