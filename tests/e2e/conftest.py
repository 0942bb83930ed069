"""Fixtures of the browser tests: one Chromium per module, a real ``livecoupon serve`` per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.screenshots import EXAMPLE, chromium, chromium_missing
from support.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

from support.environment import IN_CI


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; skipped where it is missing, except in CI."""
    missing = chromium_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"Chromium is required in CI: {missing}")
        pytest.skip(f"Chromium not available: {missing}")
    with chromium() as b:
        yield b


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(EXAMPLE, tmp_path / "browser.db") as s:
        yield s
