"""Background tasks stop for sure, even one that goes on after its first cancellation."""

from __future__ import annotations

import asyncio

from livecoupon.tasks import cancel_quietly


def test_a_task_that_swallows_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    async def stubborn(caught: list[int]) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                caught.append(1)
                if len(caught) == 3:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]  # as a library's wait can

    async def failing() -> None:
        raise ValueError("already failed")

    async def scenario() -> list[int]:
        caught: list[int] = []
        tasks = [asyncio.create_task(stubborn(caught)), asyncio.create_task(failing())]
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_quietly(*tasks), 10)  # (3 rounds of RECANCEL_S)
        assert all(task.done() for task in tasks)
        return caught

    assert asyncio.run(scenario()) == [1, 1, 1]
