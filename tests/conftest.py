"""Shared fixtures: campaigns from YAML text, and every store backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from livecoupon.campaign_file import parse_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.store.memory import MemoryStore
from livecoupon.store.port import Store
from livecoupon.store.sqlite import SqliteStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "campaign.yaml"


@pytest.fixture
def example_campaign() -> Campaign:
    return parse_campaign(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend behind the store port; the contract tests run against each."""
    backend: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "store.db")
    yield backend
    backend.close()
