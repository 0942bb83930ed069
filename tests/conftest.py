"""Shared fixtures: campaigns from YAML text, and every store backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from livecoupon.campaign_file import parse_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.store.memory import MemoryStore
from livecoupon.store.port import Store
from livecoupon.store.sqlite import SqliteStore
from support.environment import IN_CI

PG_SERVER = os.environ.get("LIVECOUPON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "campaign.yaml"


@pytest.fixture
def example_campaign() -> Campaign:
    return parse_campaign(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of this test run on the machine's PostgreSQL, dropped at the end.

    Missing PostgreSQL fails the run in CI and skips these tests elsewhere.
    """
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI ({PG_SERVER}): {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
    name = f"livecoupon_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PG_SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend behind the store port; the contract tests run against each."""
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = SqliteStore(tmp_path / "store.db")
    else:
        from livecoupon.store.postgres import PostgresStore

        pg = PostgresStore(request.getfixturevalue("pg_url"), f"t_{uuid.uuid4().hex[:12]}")
        yield pg
        pg.drop()
        return
    yield backend
    backend.close()
