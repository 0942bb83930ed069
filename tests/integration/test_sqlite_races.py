"""Races on a real SQLite file: threads and processes never over-issue or double-redeem."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
from livecoupon.domain.decisions import IssueRequest, Reason, coupon_id_for
from livecoupon.domain.pricing import CartLine
from livecoupon.service_layer.checkout import Checkout
from livecoupon.store.sqlite import SqliteStore

HUNDRED = CouponTemplate("hundred", "限量100张", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9,
                         stock=100)
USERS = [f"user-{i:05d}" for i in range(10_000)]


def claim(user: str, template: CouponTemplate = HUNDRED) -> IssueRequest:
    return IssueRequest(coupon_id_for("race", "r", 1, "grab", "", user), "race", "r", 1, "grab", user, template, 1)


def _issued_count(path: Path) -> tuple[int, int]:
    store = SqliteStore(path)
    try:
        totals = store.totals("race")
        coupons = sum(len(store.coupons_of(f"user-{i:05d}")) for i in range(10_000))
        return coupons, totals.stock_used.get("hundred", 0)
    finally:
        store.close()


def test_threads_racing_for_100_stock_issue_exactly_100(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    store = SqliteStore(path)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def grab(users: list[str]) -> None:
        for user in users:
            [d] = store.issue([claim(user)], Limits())
            with lock:
                outcomes[d.reason.value if d.reason else "issued"] += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(grab, [USERS[i::8] for i in range(8)]))
    store.close()
    assert outcomes == {"issued": 100, Reason.OUT_OF_STOCK.value: 9_900}
    assert _issued_count(path) == (100, 100)


WORKER = textwrap.dedent("""
    import sys
    from livecoupon.domain.campaign import Limits
    from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
    from livecoupon.domain.decisions import IssueRequest, coupon_id_for
    from livecoupon.store.sqlite import SqliteStore
    path, worker, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    t = CouponTemplate("hundred", "限量100张", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9,
                       stock=100)
    store = SqliteStore(path)
    issued = 0
    for i in range(worker, 10_000, workers):
        user = f"user-{i:05d}"
        r = IssueRequest(coupon_id_for("race", "r", 1, "grab", "", user), "race", "r", 1, "grab", user, t, 1)
        issued += store.issue([r], Limits())[0].issued
    print(issued)
""")


def test_processes_racing_for_100_stock_issue_exactly_100(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    SqliteStore(path).close()
    workers = 4
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(w), str(workers)],
                              stdout=subprocess.PIPE, text=True) for w in range(workers)]
    issued = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(issued) == 100
    assert _issued_count(path) == (100, 100)


def test_two_orders_racing_for_one_coupon_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    setup = SqliteStore(path)
    [d] = setup.issue([claim("alice")], Limits())
    setup.close()
    cart = [CartLine("sku", "cat", 10_000, 1)]
    barrier = threading.Barrier(8)

    def order(n: int) -> int:
        checkout = Checkout(SqliteStore(path), clock=lambda: 2)
        barrier.wait()
        status, _ = checkout.create_order(f"o{n}", "alice", cart, d.request.coupon_id, f"key-{n}")
        checkout.store.close()
        return status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(order, range(8)))
    assert statuses == [201] + [409] * 7


def test_a_repeated_idempotency_key_returns_the_first_answer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "idem.db")
    [d] = store.issue([claim("bob")], Limits())
    checkout = Checkout(store, clock=lambda: 5)
    cart = [CartLine("sku", "cat", 2_000, 1)]
    first = checkout.create_order("o1", "bob", cart, d.request.coupon_id, "same-key")
    again = checkout.create_order("o1", "bob", cart, d.request.coupon_id, "same-key")
    assert first == again and first[0] == 201
    refused = checkout.create_order("o2", "bob", cart, d.request.coupon_id, "other-key")
    assert refused[0] == 409 and refused[1]["error"]["code"] == "coupon_reserved"
    assert checkout.create_order("o2", "bob", cart, d.request.coupon_id, "other-key") == refused
    store.close()


@pytest.mark.parametrize("batch", [1, 1_000, 100_000])
def test_an_audience_batch_issues_atomically(tmp_path: Path, batch: int) -> None:
    store = SqliteStore(tmp_path / "batch.db")
    unlimited = CouponTemplate("all", "全员福利", Terms(CouponKind.NO_THRESHOLD, amount=100), valid_for_ms=60_000)
    made = store.issue([claim(f"v{i}", unlimited) for i in range(batch)], Limits(per_user=1))
    assert sum(d.issued for d in made) == batch
    store.close()
    reopened = SqliteStore(tmp_path / "batch.db")
    assert reopened.totals("race").issued == batch
    reopened.close()
