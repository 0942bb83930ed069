"""Shared fixtures: campaigns from YAML text, and every store backend."""

from __future__ import annotations

import os
import tempfile
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
REDIS_SERVER = os.environ.get("LIVECOUPON_TEST_REDIS", "redis://127.0.0.1:6379/0")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "campaign.yaml"

# livecoupon's caches (pypinyin's dictionaries) in a folder of this run, for the servers it starts too: the tests
# never write the user's own cache
os.environ.setdefault("LIVECOUPON_CACHE", tempfile.mkdtemp(prefix="livecoupon-test-cache-"))


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


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis: tests keep to key prefixes of their own (their deployment's name) and remove
    them; one that flushes takes a database number of its own. Missing Redis fails the run in CI and
    skips these tests elsewhere."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI ({REDIS_SERVER}): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_SERVER}: {exc}")
    finally:
        client.close()
    return REDIS_SERVER


@pytest.fixture(params=["memory", "sqlite", "postgres", "postgres+redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend behind the store port; the contract tests run against each (``postgres+redis``:
    PostgreSQL with the claims' counters in Redis)."""
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = SqliteStore(tmp_path / "store.db")
    else:
        from livecoupon.store.postgres import PostgresStore

        claims = request.getfixturevalue("redis_url") if request.param == "postgres+redis" else None
        pg = PostgresStore(request.getfixturevalue("pg_url"), f"t_{uuid.uuid4().hex[:12]}", claims=claims)
        yield pg
        pg.drop()
        return
    yield backend
    backend.close()
