"""The webhook-outcomes port's contract (store/webhooks.py), run against memory, a real SQLite file and
PostgreSQL; then what only PostgreSQL's adapter does: several logs and deployments in one database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from livecoupon.store.webhooks import DeadLetter, MemoryWebhookOutcomes, SqliteWebhookOutcomes, WebhookOutcomes

Opener = Callable[[], WebhookOutcomes]  # a fresh view of the same storage (a restart)


def letter(coupon_id: str, at: str = "2024-11-11T00:00:00.000Z", attempts: int = 3,
           error: str = "HTTP 503") -> DeadLetter:
    return DeadLetter(coupon_id, "https://m.example/hooks", attempts, error, at, f'{{"c":"{coupon_id}"}}'.encode())


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Each backend; calling it again opens the same storage anew (memory: the same object, as it has no other)."""
    opened: list[WebhookOutcomes] = []
    if request.param == "memory":
        memory = MemoryWebhookOutcomes()

        def make() -> WebhookOutcomes:
            return memory
    elif request.param == "sqlite":
        def make() -> WebhookOutcomes:
            return SqliteWebhookOutcomes(tmp_path / "service.db")
    else:
        from livecoupon.store.postgres_webhooks import PostgresWebhookOutcomes

        url, name = request.getfixturevalue("pg_url"), f"d_{uuid.uuid4().hex[:10]}"

        def make() -> WebhookOutcomes:
            return PostgresWebhookOutcomes(url, name, log="p3")

    def opener() -> WebhookOutcomes:
        opened.append(make())
        return opened[-1]

    yield opener
    for outcomes in opened:
        outcomes.close()


def test_the_first_position_recorded_stays(reopen: Opener) -> None:
    outcomes = reopen()
    assert outcomes.open(7) == 7
    assert outcomes.open(12) == 7
    again = reopen()
    assert again.open(40) == 7


def test_dead_letters_are_kept_oldest_first_with_their_body(reopen: Opener) -> None:
    outcomes = reopen()
    outcomes.open(0)
    assert outcomes.dead_letters() == []
    outcomes.bury(letter("cp_b", at="2024-11-11T00:00:02.000Z"))
    outcomes.bury(letter("cp_a", at="2024-11-11T00:00:01.000Z"))
    outcomes.bury(letter("cp_c", at="2024-11-11T00:00:02.000Z"))
    assert [d.coupon_id for d in outcomes.dead_letters()] == ["cp_a", "cp_b", "cp_c"]
    assert outcomes.dead_letters()[0] == letter("cp_a", at="2024-11-11T00:00:01.000Z")


def test_a_letter_buried_again_replaces_the_first(reopen: Opener) -> None:
    outcomes = reopen()
    outcomes.open(0)
    outcomes.bury(letter("cp_a", at="2024-11-11T00:00:01.000Z"))
    outcomes.bury(letter("cp_b", at="2024-11-11T00:00:02.000Z"))
    outcomes.bury(letter("cp_a", at="2024-11-11T00:00:03.000Z", attempts=6, error="TimeoutError"))
    assert [(d.coupon_id, d.attempts, d.last_error) for d in outcomes.dead_letters()] == [
        ("cp_b", 3, "HTTP 503"), ("cp_a", 6, "TimeoutError")]


def test_a_delivery_settles_the_coupon_and_drops_its_dead_letter(reopen: Opener) -> None:
    outcomes = reopen()
    outcomes.open(0)
    outcomes.bury(letter("cp_dead"))
    outcomes.bury(letter("cp_back"))
    outcomes.delivered("cp_back", "2024-11-11T00:01:00.000Z")
    outcomes.delivered("cp_ok", "2024-11-11T00:01:00.000Z")
    outcomes.delivered("cp_ok", "2024-11-11T00:02:00.000Z")  # twice: still one delivery
    assert [d.coupon_id for d in outcomes.dead_letters()] == ["cp_dead"]
    assert outcomes.settled(["cp_dead", "cp_back", "cp_ok", "cp_owed"]) == {"cp_dead", "cp_back", "cp_ok"}
    assert outcomes.settled([]) == set()


def test_what_became_of_each_coupon_survives_a_restart(reopen: Opener) -> None:
    first = reopen()
    first.open(3)
    first.bury(letter("cp_dead"))
    first.delivered("cp_ok", "2024-11-11T00:01:00.000Z")
    first.close()
    again = reopen()
    assert again.open(9) == 3
    assert [d.coupon_id for d in again.dead_letters()] == ["cp_dead"]
    assert again.settled(["cp_dead", "cp_ok", "cp_owed"]) == {"cp_dead", "cp_ok"}


def test_settled_answers_for_many_coupons_at_once(reopen: Opener) -> None:
    outcomes = reopen()
    outcomes.open(0)
    ids = [f"cp_{n}" for n in range(1_200)]  # more than one SQLite IN (…) takes
    for cid in ids[::3]:
        outcomes.delivered(cid, "2024-11-11T00:01:00.000Z")
    assert outcomes.settled(ids) == set(ids[::3])


# -- PostgreSQL: logs and deployments side by side --------------------------------------------------
def test_partitions_and_deployments_share_a_database_without_sharing_rows(pg_url: str) -> None:
    import psycopg

    from livecoupon.store.postgres_webhooks import PostgresWebhookOutcomes

    shop, other = f"d_{uuid.uuid4().hex[:10]}", f"d_{uuid.uuid4().hex[:10]}"
    p0, p1 = PostgresWebhookOutcomes(pg_url, shop, "p0"), PostgresWebhookOutcomes(pg_url, shop, "p1")
    elsewhere = PostgresWebhookOutcomes(pg_url, other, "p0")
    everything = PostgresWebhookOutcomes(pg_url, shop, log=None)
    next_owner = PostgresWebhookOutcomes(pg_url, shop, "p0")  # the partition taken over
    try:
        assert (p0.open(5), p1.open(9), elsewhere.open(1), everything.open(100)) == (5, 9, 1, 0)
        p0.bury(letter("cp_0", at="2024-11-11T00:00:01.000Z"))
        p1.bury(letter("cp_1", at="2024-11-11T00:00:02.000Z"))
        elsewhere.bury(letter("cp_x"))
        assert [d.coupon_id for d in p0.dead_letters()] == ["cp_0"]
        assert [d.coupon_id for d in everything.dead_letters()] == ["cp_0", "cp_1"]
        assert elsewhere.settled(["cp_0", "cp_x"]) == {"cp_x"}
        # the deployment's view (a gateway) retries: a failure buries again, a delivery is the partition's
        everything.bury(letter("cp_1", at="2024-11-11T00:00:03.000Z", attempts=6))
        assert [(d.coupon_id, d.attempts) for d in p1.dead_letters()] == [("cp_1", 6)]
        everything.delivered("cp_0", "2024-11-11T00:01:00.000Z")
        assert p0.dead_letters() == [] and p0.settled(["cp_0"]) == {"cp_0"}
        with psycopg.connect(pg_url) as db:
            logs = db.execute("SELECT log FROM livecoupon_webhooks.delivered WHERE deployment = %s AND "
                              "coupon_id = 'cp_0'", (shop,)).fetchall()
        assert logs == [("p0",)]
        assert next_owner.open(77) == 5
    finally:
        for outcomes in (p0, p1, elsewhere, everything, next_owner):
            outcomes.close()
