"""Claims on PostgreSQL across processes: stock, budget, per_user and per_device are never exceeded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
from livecoupon.domain.decisions import IssueRequest, coupon_id_for
from livecoupon.store.postgres import PostgresStore

WORKER = textwrap.dedent("""
    import sys
    from livecoupon.domain.campaign import Limits
    from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
    from livecoupon.domain.decisions import IssueRequest, coupon_id_for
    from livecoupon.store.postgres import PostgresStore
    url, name, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    five = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9, stock=300)
    limits = Limits(per_user=2, budget=1_000 * 100)  # 1,000 yuan: 200 five-yuan coupons
    store = PostgresStore(url, name)
    issued = 0
    for start in range(0, 2_000, 50):
        batch = []
        for i in range(start, start + 50):
            user = f"user-{i % 400:03d}"  # every user is claimed by every worker, several times
            firing = f"w{worker}-{i}"
            cid = coupon_id_for("race", "r", 1, "grab", firing, user)
            batch.append(IssueRequest(cid, "race", "r", 1, "grab", user, five, 1_000 + i,
                                      device_key=f"grab\\x1fd:{i % 150}", per_device=1))
        issued += sum(d.issued for d in store.issue(batch, limits))
    store.close()
    print(issued)
""")


def test_four_processes_claiming_at_once_never_exceed_a_cap(tmp_path: Path, pg_url: str) -> None:
    name = f"race_{uuid.uuid4().hex[:10]}"
    PostgresStore(pg_url, name).close()  # the schema exists before the workers race
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), pg_url, name, str(w)], stdout=subprocess.PIPE,
                                text=True) for w in range(4)]
    counts = [int(p.communicate(timeout=120)[0]) for p in workers]
    assert all(p.returncode == 0 for p in workers)
    store = PostgresStore(pg_url, name)
    try:
        totals = store.totals("race")
        coupons = [c for i in range(400) for c in store.coupons_of(f"user-{i:03d}")]
        assert sum(counts) == len(coupons) == totals.issued == totals.stock_used["five"]
        assert totals.budget_spent == 500 * len(coupons) <= 1_000 * 100
        assert len(coupons) == 150  # one per device: the tightest cap here
        per_user = {}
        for c in coupons:
            per_user[c.user] = per_user.get(c.user, 0) + 1
        assert max(per_user.values()) <= 2
    finally:
        store.drop()


@pytest.mark.parametrize("through_redis", [False, True], ids=["postgresql", "redis"])
def test_a_template_first_used_by_a_transaction_that_rolls_back_still_names_another_writers_coupon(
        pg_url: str, redis_url: str, through_redis: bool) -> None:
    """Two threads of one store: the first interns the template inside a transaction it then rolls back,
    the second issues meanwhile under the id the store cached; its coupon keeps its terms (the templates row
    was committed on its own, not with the transaction that rolled back)."""
    five = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9)

    def request(user: str) -> IssueRequest:
        return IssueRequest(coupon_id_for("c", "r", 1, "t", "f", user), "c", "r", 1, "t", user, five, 1_000)

    store = PostgresStore(pg_url, f"tpl_{uuid.uuid4().hex[:10]}", claims=redis_url if through_redis else None)
    interned, issued, outcome = threading.Event(), threading.Event(), []

    def first_then_roll_back() -> None:
        try:
            with store.unit_of_work():
                store.issue([request("first")], Limits())
                interned.set()
                issued.wait(timeout=10)
                raise LookupError("the caller's transaction fails after its claim")
        except LookupError:
            outcome.append("rolled back")

    thread = threading.Thread(target=first_then_roll_back)
    thread.start()
    try:
        assert interned.wait(timeout=10)
        [made] = store.issue([request("second")], Limits())
        issued.set()
        thread.join(timeout=10)
        coupon = store.coupon(made.request.coupon_id)
        assert outcome == ["rolled back"] and made.issued
        assert coupon is not None and coupon.template == "five" and coupon.terms.amount == 500
        assert store.recorded([request("first").coupon_id]) == {}
    finally:
        issued.set()
        thread.join()
        store.drop()


def test_a_schema_made_with_the_templates_foreign_key_loses_it_when_opened(pg_url: str) -> None:
    """Its check locked the one templates row every decision names, for every row every writer inserts."""
    name = f"fk_{uuid.uuid4().hex[:10]}"
    store = PostgresStore(pg_url, name)
    fk = ("SELECT count(*) FROM pg_constraint WHERE conrelid = 'decisions'::regclass "
          "AND conname = 'decisions_template_id_fkey'")
    try:
        store._run("ALTER TABLE decisions ADD CONSTRAINT decisions_template_id_fkey FOREIGN KEY (template_id) "
                   "REFERENCES templates (id)")  # as a schema made before
        assert store._run(fk).fetchall() == [(1,)]
        PostgresStore(pg_url, name).close()
        assert store._run(fk).fetchall() == [(0,)]
    finally:
        store.drop()


def test_a_first_visit_and_a_claim_in_two_partitions_rounds_never_deadlock(pg_url: str) -> None:
    """Scaled out, one partition's round held the campaign's claims lock (a coupon issued) and then recorded a first
    visit, while another's had recorded that user's visit and waited for the lock: PostgreSQL broke the cycle by
    failing a round, which its retry ran into again (rooms stopped being applied). The lock comes first now."""
    five = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9)

    def request(user: str) -> IssueRequest:
        return IssueRequest(coupon_id_for("c", "r", 1, "t", "f", user), "c", "r", 1, "t", user, five, 1_000)

    name = f"visit_{uuid.uuid4().hex[:10]}"
    store = PostgresStore(pg_url, name)
    holding, outcome = threading.Event(), {}

    def claim_then_visit() -> None:  # the round that holds the lock
        try:
            with store.unit_of_work():
                store.issue([request("b")], Limits())
                holding.set()
                with psycopg.connect(pg_url, autocommit=True) as watch:  # until the other round waits for a lock
                    for _ in range(500):
                        waiting = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                                "'Lock' AND query LIKE '%pg_advisory_xact_lock%'").fetchone()
                        if waiting and waiting[0]:
                            break
                        time.sleep(0.02)
                outcome["b"] = store.mark_visited("c", "shared")
        except Exception as exc:  # noqa: BLE001 - the deadlock the test is about, reported below
            outcome["b"] = exc

    thread = threading.Thread(target=claim_then_visit)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        try:
            with store.unit_of_work():
                outcome["a"] = store.mark_visited("c", "shared")
                store.issue([request("a")], Limits())
        except Exception as exc:  # noqa: BLE001
            outcome["a"] = exc
        thread.join(timeout=30)
        assert outcome == {"a": False, "b": True}  # the round holding the lock recorded the visit; no one failed
    finally:
        thread.join()
        store.drop()


def test_processes_of_a_new_deployment_opening_the_store_at_once_all_start(pg_url: str) -> None:
    """Each creates the schema it finds missing: the claims' indexes were created outside the schema's lock, and
    CREATE INDEX IF NOT EXISTS is no guard against another creating it at the same moment (a worker started beside
    another exited on a duplicate key, 4 starts in 6)."""
    for _ in range(6):
        name = f"starts_{uuid.uuid4().hex[:8]}"
        failed: list[BaseException] = []

        def open_store(name: str = name, failed: list[BaseException] = failed) -> None:
            try:
                PostgresStore(pg_url, name).close()
            except Exception as exc:  # noqa: BLE001 (what a starting process would have died of)
                failed.append(exc)

        starting = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        PostgresStore(pg_url, name).drop()
        assert failed == []
