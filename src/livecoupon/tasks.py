"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_S = 1.0  # how long a cancelled task gets to end before it is cancelled again


async def cancel_quietly(*tasks: asyncio.Task[Any]) -> None:
    """Stop background tasks and wait until they have stopped; whatever they were doing no longer matters. A task
    that goes on after its cancellation (a library's wait that took a result arriving in the same loop turn
    instead: Python 3.11's ``wait_for`` does) is cancelled again, until it ends: a shutdown never hangs on it."""
    running = {task for task in tasks if not task.done()}
    while running:
        for task in running:
            task.cancel()
        _, running = await asyncio.wait(running, timeout=RECANCEL_S)
    await asyncio.gather(*tasks, return_exceptions=True)  # (their exceptions, retrieved)
