"""A store whose reading back of every decision after a restart is held until the test lets it go on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from livecoupon.domain.decisions import DecisionRecord
from livecoupon.service_layer.service import READ_BACK_THREAD


class HeldBack:
    """Mixed in before a store class: its ``decisions`` read on the service's (or gateway's) thread for reading
    back waits until ``release`` is set — what a long log does to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def decisions(self, campaign: str | None = None, trigger: str | None = None) -> Iterator[DecisionRecord]:
        if threading.current_thread().name == READ_BACK_THREAD:
            assert self.release.wait(30), "the test never let the reading back go on"
        return super().decisions(campaign, trigger)  # type: ignore[misc, no-any-return]
