"""Claims through Redis on a PostgreSQL deployment: exact across processes, fenced against a flush, and
deciding as the reference store does."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
from livecoupon.domain.decisions import MANUAL, Decision, IssueRequest, Reason, coupon_id_for
from livecoupon.store.memory import MemoryStore
from livecoupon.store.postgres import PostgresStore
from livecoupon.store.redis import ClaimsRebuilding, RedisCounters, record_payload, recount
from support.cluster import export_replays
from support.credentials import OPERATOR, PLATFORM
from support.server import Server
from support.streams import broadcast_stream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"

FIVE = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9, stock=300)

# A claiming process: 2,000 claims in batches (users claimed by every process, several times each),
# retrying a batch Redis refused while it was rebuilt; prints the coupon ids it was told were issued.
WORKER = textwrap.dedent("""
    import json, sys
    from livecoupon.domain.campaign import Limits
    from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
    from livecoupon.domain.decisions import IssueRequest, coupon_id_for
    from livecoupon.store.postgres import PostgresStore
    from livecoupon.store.redis import ClaimsRebuilding
    url, name = sys.argv[1], sys.argv[2]
    worker, stock, budget, per_device, size = map(int, sys.argv[3:8])
    five = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9, stock=stock)
    limits = Limits(per_user=2, budget=budget)
    store = PostgresStore(url, name, prepare=False)  # claims as the deployment recorded: through Redis
    issued = []
    for start in range(0, 2_000, size):
        batch = []
        for i in range(start, start + size):
            user = f"user-{i % 400:03d}"
            cid = coupon_id_for("race", "r", 1, "grab", f"w{worker}-{i}", user)
            batch.append(IssueRequest(cid, "race", "r", 1, "grab", user, five, 1_000 + i,
                                      device_key=f"grab\\x1fd:{i % 150}", per_device=per_device or None))
        while True:
            try:
                made = store.issue(batch, limits)
                break
            except ClaimsRebuilding:  # still rebuilding after issue()'s own retries: once more
                continue
        issued += [d.request.coupon_id for d in made if d.issued]
    store.close()
    print(json.dumps(issued))
""")


def _race(tmp_path: Path, pg_url: str, name: str, stock: int, budget: int, per_device: int, size: int = 50,
          during: threading.Event | None = None) -> list[list[str]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), pg_url, name, str(w), str(stock), str(budget),
                                 str(per_device), str(size)], stdout=subprocess.PIPE, text=True) for w in range(4)]
    if during is not None:
        during.set()
    answers = [json.loads(p.communicate(timeout=120)[0]) for p in workers]
    assert all(p.returncode == 0 for p in workers)
    return answers


def _coupons_by_user(store: PostgresStore) -> Counter[str]:
    return Counter(c.user for i in range(400) for c in store.coupons_of(f"user-{i:03d}"))


@pytest.fixture
def deployment(pg_url: str, redis_url: str) -> Iterator[str]:
    """A deployment's name whose claims go through the machine's Redis (under its own key prefix)."""
    name = f"rc_{uuid.uuid4().hex[:10]}"
    PostgresStore(pg_url, name, claims=redis_url).close()
    yield name
    PostgresStore(pg_url, name).drop()


@pytest.fixture
def flushable_redis(redis_url: str) -> Iterator[str]:
    """A Redis database of this test alone (the first empty one from 15 down), flushed and left empty."""
    base = redis_url.rsplit("/", 1)[0]
    for db in range(15, 7, -1):
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.dbsize() == 0:
            try:
                yield f"{base}/{db}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.skip("no empty Redis database among 8-15 to flush")


@pytest.mark.slow
@pytest.mark.parametrize(("stock", "budget", "per_device", "tightest", "expected"), [
    (300, 1_000 * 100, 1, "per_device", 150),
    (120, 1_000 * 100, 0, "stock", 120),
    (300, 450 * 100, 0, "budget", 90),
])
def test_four_processes_claiming_through_redis_hold_every_cap_exactly(
        tmp_path: Path, pg_url: str, deployment: str, stock: int, budget: int, per_device: int, tightest: str,
        expected: int) -> None:
    answers = _race(tmp_path, pg_url, deployment, stock, budget, per_device)
    store = PostgresStore(pg_url, deployment)
    try:
        totals, per_user = store.totals("race"), _coupons_by_user(store)
        told = [cid for issued in answers for cid in issued]
        assert len(told) == len(set(told)) == sum(per_user.values()) == totals.issued == expected, tightest
        assert totals.stock_used == {"five": expected} and totals.budget_spent == 500 * expected
        assert max(per_user.values()) <= 2
        assert store.spent("race") == 500 * expected  # Redis agrees with PostgreSQL
    finally:
        store.close()


LEVELS = (60, 160, 260, 360)  # coupons issued when the test flushes Redis


@pytest.mark.slow
def test_flushing_redis_mid_run_loses_nothing_and_never_over_issues(tmp_path: Path, pg_url: str,
                                                                      flushable_redis: str) -> None:
    """Four processes claim 8,000 times for 400 units of stock while the test flushes their Redis
    database (FLUSHDB: FLUSHALL would wipe every other user of this Redis) four times; every coupon a
    process was told it got is in PostgreSQL, none beyond the stock or a user's cap, and Redis, rebuilt,
    counts what PostgreSQL holds."""
    name = f"rf_{uuid.uuid4().hex[:10]}"
    PostgresStore(pg_url, name, claims=flushable_redis).close()
    client: redis.Redis = redis.Redis.from_url(flushable_redis)
    started, flushes = threading.Event(), []

    def flush_as_coupons_pile_up() -> None:
        started.wait()
        with psycopg.connect(pg_url, autocommit=True) as db:
            for level in LEVELS:
                while db.execute(f"SELECT count(*) FROM {name}.decisions WHERE reason IS NULL"
                                 ).fetchone()[0] < level:  # type: ignore[index]
                    time.sleep(0.005)
                client.flushdb()
                flushes.append(level)
                while level != LEVELS[-1] and client.dbsize() == 0:  # rebuilt before the next flush: a flush
                    time.sleep(0.005)  # that came late, with the next level reached already, would share its rebuild

    flusher = threading.Thread(target=flush_as_coupons_pile_up, daemon=True)
    flusher.start()
    store = None
    try:
        answers = _race(tmp_path, pg_url, name, stock=400, budget=10_000 * 100, per_device=0, size=10,
                        during=started)
        flusher.join(timeout=30)
        assert flushes == list(LEVELS)
        store = PostgresStore(pg_url, name)
        told = {cid for issued in answers for cid in issued}
        recorded = {cid for cid, d in store.recorded(list(told)).items() if d.issued}
        assert recorded == told  # nothing a process was told it got is missing
        per_user = _coupons_by_user(store)
        assert sum(per_user.values()) == len(told) == 400 and max(per_user.values()) <= 2
        with psycopg.connect(pg_url, autocommit=True) as db:
            db.execute(f"SET search_path TO {name}")
            counted = recount(db, "race").hashes()
            [(epoch,)] = db.execute("SELECT epoch FROM claims_epochs WHERE campaign = 'race'").fetchall()
        assert epoch >= 1 + len(LEVELS)  # built at the first claim, and after each flush (claims in flight
        # when it came, at most 4 x 10, commit before the next level is reached)
        claims = store.redis_claims()
        assert claims is not None
        epoch_key, stock_key, spent_key, per_user_key, _, last_key = claims.counters.keys("race")
        if client.exists(epoch_key):  # the processes left it rebuilt: it counts what PostgreSQL holds
            def held(key: str) -> dict[str, int]:
                return {bytes(name).decode(): int(value) for name, value in client.hgetall(key).items()}

            assert held(stock_key) == counted["stock"] and held(spent_key) == counted["spent"]
            assert held(per_user_key) == counted["per_user"] and held(last_key) == counted["last"]
    finally:
        client.close()
        (store or PostgresStore(pg_url, name)).drop()


def _request(user: str, firing: str, template: CouponTemplate = FIVE, **kw: object) -> IssueRequest:
    cid = coupon_id_for("c", "r", 1, "t", firing, user)
    return replace(IssueRequest(cid, "c", "r", 1, "t", user, template, 1_000), **kw)  # type: ignore[arg-type]


def test_a_rebuild_waits_for_claims_in_flight(pg_url: str, deployment: str, redis_url: str) -> None:
    """A claim made under the old counters but not yet committed when Redis is flushed is counted by
    the rebuild, which waits for it (the fence): the last unit of stock is not issued twice."""
    one = replace(FIVE, stock=1)
    holder, other = PostgresStore(pg_url, deployment), PostgresStore(pg_url, deployment)
    claims = holder.redis_claims()
    assert claims is not None
    claimed, answers = threading.Event(), []

    def claim_and_commit_late() -> None:
        with holder.unit_of_work():
            answers.append(holder.issue([_request("first", "a", one)], Limits())[0])
            claimed.set()
            time.sleep(0.5)  # the flush and the other claim happen while this one is in flight

    first = threading.Thread(target=claim_and_commit_late)
    first.start()
    try:
        claimed.wait(timeout=10)
        claims.counters.client.delete(*claims.counters.keys("c"))  # the campaign's counters gone
        [second] = other.issue([_request("second", "b", one)], Limits())
        first.join()
        assert answers[0].issued and second.reason is Reason.OUT_OF_STOCK
        assert other.totals("c").stock_used == {"five": 1}
    finally:
        first.join()
        holder.close()
        other.close()


def test_a_claim_counted_before_a_rebuild_records_nothing_under_the_old_epoch(pg_url: str, deployment: str) -> None:
    """The fence is in the claim's insert: a script counted under epoch E, then a rebuild (E + 1) that does not
    count it, then the insert — which must write nothing under E (the claim is made again under E + 1), or the
    rebuilt counters would miss a coupon and the last unit of stock would be issued twice."""
    one = replace(FIVE, stock=1)
    store, other = PostgresStore(pg_url, deployment), PostgresStore(pg_url, deployment)
    claims = store.redis_claims()
    assert claims is not None
    assert store.issue([_request("warm", "0", replace(FIVE, name="warm"))], Limits())[0].issued  # E cached
    answers: list[object] = []
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute(f"SET search_path TO {deployment}")
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (claims._fence_key("c"),))
            thread = threading.Thread(target=lambda: answers.append(store.issue([_request("first", "a", one)],
                                                                                  Limits())[0]))
            thread.start()
            deadline = time.monotonic() + 10
            while not db.execute("SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"
                                 ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the claim never reached its insert"
                time.sleep(0.01)
            claims._rebuild_on(db, "c", miscounted=True)  # its script ran under E; the rebuild counts no coupon
        thread.join(timeout=10)
    try:
        [second] = other.issue([_request("second", "b", one)], Limits())
        assert answers[0].issued and second.reason is Reason.OUT_OF_STOCK  # type: ignore[attr-defined]
        assert other.totals("c").stock_used == {"five": 1, "warm": 1}
    finally:
        store.close()
        other.close()


@contextlib.contextmanager
def _committing_late(store: PostgresStore, request: IssueRequest) -> Iterator[list[Decision]]:
    """``store`` claims ``request`` in a unit of work that commits half a second later (a fenced worker and its
    successor): inside, another writer reads no decision under its id, claims it and meets it on insert. The
    first writer's answer is in the list yielded; after the block, committed."""
    claimed, answers = threading.Event(), []

    def claim_and_commit_late() -> None:
        with store.unit_of_work():
            answers.append(store.issue([request], Limits())[0])
            claimed.set()
            time.sleep(0.5)

    thread = threading.Thread(target=claim_and_commit_late)
    thread.start()
    try:
        claimed.wait(timeout=10)
        yield answers
    finally:
        thread.join()


def test_an_id_another_writer_records_first_stands_and_the_counters_are_counted_again(
        pg_url: str, deployment: str) -> None:
    """Two writers claim the same coupon id at once: the one that commits first stands for both, and the
    claim the other's script counted is not kept in Redis."""
    two = replace(FIVE, stock=2)
    first, second = PostgresStore(pg_url, deployment), PostgresStore(pg_url, deployment)
    try:
        with _committing_late(first, _request("x", "same", two)) as answers:
            [again] = second.issue([_request("x", "same", two)], Limits())
        assert again.issued and again.expires_at == answers[0].expires_at
        [other] = second.issue([_request("y", "other", two)], Limits())
        assert other.issued  # the second unit of stock: the duplicate's claim was counted away
        assert second.totals("c").stock_used == {"five": 2}
    finally:
        first.close()
        second.close()


def test_an_id_another_writer_records_first_inside_a_transaction_fails_it_and_the_retry_answers_theirs(
        pg_url: str, deployment: str) -> None:
    """The same race inside the second writer's unit of work (a worker's round): its insert meets the first
    writer's id once that one commits, which fails its transaction; it is refused (retry), records nothing, and
    the next claim answers the first writer's coupon and counts it once."""
    two = replace(FIVE, stock=2)
    first, second = PostgresStore(pg_url, deployment), PostgresStore(pg_url, deployment)
    try:
        with (_committing_late(first, _request("x", "same", two)) as answers, pytest.raises(ClaimsRebuilding),
              second.unit_of_work()):
            second.issue([_request("x", "same", two), _request("z", "another", two)], Limits())
        assert set(second.recorded([_request("z", "another", two).coupon_id])) == set()  # nothing of it written
        [again, other] = second.issue([_request("x", "same", two), _request("y", "other", two)], Limits())
        assert again.issued and again.expires_at == answers[0].expires_at and other.issued
        assert second.totals("c").stock_used == {"five": 2}
    finally:
        first.close()
        second.close()


def test_a_claim_refused_inside_a_transaction_rolls_it_back_and_the_next_rebuilds(pg_url: str,
                                                                                 deployment: str) -> None:
    store = PostgresStore(pg_url, deployment)
    claims = store.redis_claims()
    assert claims is not None
    try:
        assert store.issue([_request("a", "1")], Limits(per_user=1))[0].issued
        with pytest.raises(ClaimsRebuilding), store.unit_of_work():
            assert store.issue([_request("b", "2")], Limits(per_user=1))[0].issued
            claims.counters.client.delete(claims.counters.keys("c")[0])  # the epoch gone: a flush
            store.issue([_request("c", "3")], Limits(per_user=1))
        assert store.recorded([_request("b", "2").coupon_id]) == {}  # rolled back with its transaction
        made = store.issue([_request("a", "4"), _request("b", "5"), _request("c", "6")], Limits(per_user=1))
        assert [d.reason for d in made] == [Reason.PER_USER_CAP, None, None]  # recounted from PostgreSQL
    finally:
        store.close()


def test_claims_wait_for_an_unreachable_redis_and_the_budget_is_read_from_postgresql(
        pg_url: str, deployment: str, redis_url: str) -> None:
    """Redis away: a claim is refused as unavailable (503, retry), and nothing is decided meanwhile."""
    store = PostgresStore(pg_url, deployment)
    assert store.issue([_request("a", "1")], Limits())[0].issued
    claims = store.redis_claims()
    assert claims is not None
    reachable, claims.counters = claims.counters, RedisCounters("redis://127.0.0.1:1/0", "away")  # no one there
    try:
        with pytest.raises(ClaimsRebuilding):
            store.issue([_request("b", "2")], Limits())
        assert store.spent("c") == 500
        assert store.recorded([_request("b", "2").coupon_id]) == {}
        with pytest.raises(ClaimsRebuilding):  # a process started with it fails fast
            PostgresStore(pg_url, f"{deployment}_away", claims="redis://127.0.0.1:1/0")
    finally:
        claims.counters.close()
        claims.counters = reachable
        store.close()


def test_a_deployment_that_moved_its_claims_to_redis_is_followed_by_its_other_processes(
        pg_url: str, redis_url: str) -> None:
    """A process that looked before the deployment moved its claims to Redis does not claim on the
    counters PostgreSQL no longer keeps: it is refused once, then claims through Redis too."""
    name = f"rm_{uuid.uuid4().hex[:10]}"
    early = PostgresStore(pg_url, name)
    try:
        assert early.redis_claims() is None
        assert early.issue([_request("a", "1")], Limits(per_user=1))[0].issued
        PostgresStore(pg_url, name, claims=redis_url).close()
        with pytest.raises(ClaimsRebuilding):
            early.issue([_request("a", "2")], Limits(per_user=1))
        assert early.redis_claims() is not None
        assert early.issue([_request("a", "2")], Limits(per_user=1))[0].reason is Reason.PER_USER_CAP
    finally:
        early.drop()


def _claim_indexes(pg_url: str, name: str) -> list[str]:
    with psycopg.connect(pg_url, autocommit=True) as db:
        return [index for (index,) in db.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname IN ('coupons_by_broadcast', "
            "'coupons_by_time', 'coupons_by_device', 'coupons_by_trigger') ORDER BY indexname", (name,))]


def test_a_deployment_moved_back_to_postgresql_claims_counts_its_counters_again(pg_url: str, redis_url: str) -> None:
    """``--claims postgresql`` after claims through Redis: the counter tables PostgreSQL's claims read were not kept
    while Redis counted, so they are counted again from the decisions — stock, budget and per_user stay exact on
    PostgreSQL, a process still claiming through Redis is refused once and follows, and a move to Redis again
    counts from PostgreSQL (never the counters left from before)."""
    name = f"rb_{uuid.uuid4().hex[:10]}"
    five, ten = replace(FIVE, stock=4), CouponTemplate("ten", "十元", Terms(CouponKind.NO_THRESHOLD, amount=1_000),
                                                     valid_for_ms=10**9)
    limits = Limits(per_user=1, budget=4_000)
    early = PostgresStore(pg_url, name, claims=redis_url)
    try:
        made = early.issue([_request("a", "1", five), _request("b", "2", five), _request("c", "3", ten)], limits)
        assert all(d.issued for d in made)  # 2 of 4 units, 2,000 of 4,000 fen, through Redis
        assert _claim_indexes(pg_url, name) == []  # not kept while Redis decides
        back = PostgresStore(pg_url, name, claims="postgresql")
        assert back.redis_claims() is None and back.spent("c") == 2_000
        assert _claim_indexes(pg_url, name) == ["coupons_by_broadcast", "coupons_by_device", "coupons_by_time",
                                                "coupons_by_trigger"]
        assert back.totals("c").stock_used == {"five": 2, "ten": 1}
        made = back.issue([_request("a", "4", ten), _request("d", "5", five), _request("e", "6", five),
                           _request("f", "7", five), _request("g", "8", ten), _request("h", "9", ten)], limits)
        assert [d.reason for d in made] == [Reason.PER_USER_CAP, None, None, Reason.OUT_OF_STOCK, None,
                                            Reason.OVER_BUDGET]
        with pytest.raises(ClaimsRebuilding):  # still claiming through Redis: refused once, records nothing
            early.issue([_request("i", "10", ten)], limits)
        assert early.redis_claims() is None
        assert early.issue([_request("i", "10", ten)], limits)[0].reason is Reason.OVER_BUDGET
        assert back.totals("c") == early.totals("c") and back.totals("c").budget_spent == 4_000
        back.close()
        again = PostgresStore(pg_url, name, claims=redis_url)
        assert again.redis_claims() is not None
        assert again.issue([_request("j", "11", five)], limits)[0].reason is Reason.OUT_OF_STOCK
        assert again.spent("c") == 4_000
        again.close()
    finally:
        early.drop()


REQUESTS = st.lists(st.tuples(
    st.sampled_from(["ann", "bo", "cy"]), st.sampled_from(["t1", "t2"]), st.sampled_from(["r1", "r2"]),
    st.integers(0, 5), st.integers(0, 400_000), st.sampled_from(["five", "pct", "late", None]),
    st.sampled_from([None, 1, 2]), st.booleans()), min_size=1, max_size=8)
Asked = tuple[str, str, str, int, int, str | None, int | None, bool]  # a request, as drawn
TRIGGER_BUDGETS = {"t1": 1_500, "t2": None}  # a trigger's own budget is part of its configuration
TEMPLATES = {"five": replace(FIVE, stock=4),
             "pct": CouponTemplate("pct", "九折", Terms(CouponKind.PERCENT, percent_tenths=100, max_discount=800),
                                   valid_for_ms=10**9),
             "late": CouponTemplate("late", "过期", Terms(CouponKind.NO_THRESHOLD, amount=100), valid_until_ms=200_000)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(REQUESTS, min_size=1, max_size=4),
       limits=st.builds(Limits, per_user=st.sampled_from([None, 1, 2]),
                        min_interval_ms=st.sampled_from([None, 100_000]), budget=st.sampled_from([None, 2_500]),
                        max_risk=st.sampled_from([None, 0.5]), room_budget=st.sampled_from([None, 1_800])))
def test_redis_decides_as_the_reference_store(pg_url: str, deployment: str, batches: list[list[Asked]],
                                              limits: Limits) -> None:
    """Any batches of requests, under any limits: the same decisions as the in-memory store's."""
    campaign = f"c{uuid.uuid4().hex[:8]}"  # every example on fresh counters of the deployment
    store, reference = PostgresStore(pg_url, deployment, prepare=False), MemoryStore()
    try:
        for b, batch in enumerate(batches):
            requests = []
            for i, (user, trigger, room, firing, at, template, per_device, risky) in enumerate(batch):
                requests.append(IssueRequest(
                    coupon_id_for(campaign, room, 1, trigger, f"{firing}", user), campaign, room, 1, trigger, user,
                    TEMPLATES[template] if template is not None else None, at + 1_000 * b,
                    risk=0.9 if risky else 0.1, per_device=per_device, device_key=f"{trigger}\x1fd:{i % 2}",
                    trigger_budget=TRIGGER_BUDGETS[trigger], blocked=user == "cy" and i == 0))
            expected = [(d.reason, d.expires_at) for d in reference.issue(requests, limits)]
            assert [(d.reason, d.expires_at) for d in store.issue(requests, limits)] == expected
            assert ([r.coupon_id for r in store.passing_caps(requests, limits)]
                    == [r.coupon_id for r in reference.passing_caps(requests, limits)])
        assert store.spent(campaign) == reference.spent(campaign)
        assert store.totals(campaign) == reference.totals(campaign)
    finally:
        store.close()


@pytest.mark.slow
def test_serve_claiming_through_redis_survives_flushes_and_exports_what_replays(
        tmp_path: Path, pg_url: str, flushable_redis: str) -> None:
    """``serve --store … --claims redis://…``: Redis flushed between posted batches, a batch refused while
    the counters are rebuilt (503) is posted again, and the export replays to the same decisions."""
    name = f"rs_{uuid.uuid4().hex[:10]}"
    events = broadcast_stream(viewers=120, seconds=600, seed=7)
    server = Server(EXAMPLE, tmp_path / "unused.db", args=("--store", pg_url, "--name", name,
                                                           "--claims", flushable_redis))
    flusher = redis.Redis.from_url(flushable_redis)
    flushes = 0
    try:
        with server, httpx.Client(base_url=server.url, timeout=30, headers=PLATFORM) as client:
            for n, start in enumerate(range(0, len(events), 400)):
                if n % 3 == 2:
                    flusher.flushdb()
                    flushes += 1
                while (answer := client.post("/v1/events", json=events[start:start + 400])).status_code == 503:
                    assert answer.json()["error"]["code"] == "claims_rebuilding"
                assert answer.status_code == 200
            live = client.get("/v1/admin/decisions", headers=OPERATOR).json()["decisions"]
        with psycopg.connect(pg_url, autocommit=True) as db:
            [(epoch,)] = db.execute(f"SELECT max(epoch) FROM {name}.claims_epochs").fetchall()
        assert flushes > 0 and epoch > flushes  # the counters were rebuilt after every flush
        export_replays(pg_url, name, EXAMPLE, tmp_path)
        assert sum(1 for d in live if d["issued"]) == (tmp_path / "x" / "issued.jsonl").read_text().count("\n") > 0
    finally:
        flusher.close()
        PostgresStore(pg_url, name).drop()


def test_a_repeated_coupon_id_inside_a_round_answers_the_recorded_decision(pg_url: str, deployment: str) -> None:
    """A worker's round (its own transaction, holding the fence) meets a coupon id recorded by an earlier round
    (an operator repeating an issue key): the round goes on, answering the recorded decision, and the script
    counts no stock for the repeat (counting it, then finding it recorded, would need a rebuild the round's own
    fence forbids: every round with the repeat was refused)."""
    two = replace(FIVE, stock=2)
    store = PostgresStore(pg_url, deployment)
    try:
        with store.unit_of_work():
            [first] = store.issue([_request("x", "key-1", two, trigger=MANUAL)], Limits())
        repeat, fresh = _request("x", "key-1", two, trigger=MANUAL), _request("y", "key-2", two, trigger=MANUAL)
        for _ in range(3):
            with store.unit_of_work():
                again, other = store.issue([repeat, fresh], Limits())
            assert again.issued and again.expires_at == first.expires_at
        assert other.issued
        assert store.totals("c").stock_used == {"five": 2}
    finally:
        store.close()


ROW_VALUES = st.one_of(st.none(), st.sampled_from(["", "a", "\u5238\"\\"]), st.integers(-2, 2), st.floats(0, 1))


@given(rows=st.integers(1, 16).flatmap(lambda width: st.lists(
    st.lists(ROW_VALUES, min_size=width, max_size=width).map(tuple), min_size=1, max_size=6)))
def test_the_record_payload_gives_every_row_its_own_value_or_the_calls(rows: list[tuple[object, ...]]) -> None:
    """Each column of each row reads back (its key in the row, else in the call's object, else null), and a
    column is sent once only when every row holds the same value in it."""
    own, same = (json.loads(part) for part in record_payload(rows))
    keys = "abcdefghijklmnop"
    assert [tuple(row.get(keys[j], same.get(keys[j])) for j in range(len(rows[0]))) for row in own] == rows
    assert not any(key in row for row in own for key in same)
    assert all(None not in row.values() for row in own)


def test_the_record_writes_every_column_of_rows_that_differ_and_of_a_claim_alone(pg_url: str,
                                                                                 deployment: str) -> None:
    """Rows that share some columns and differ in others (a holdout beside coupons, an experiment's arm on
    some rows only, two rooms and triggers, a device on one) are recorded as decided, and so is a claim alone."""
    store = PostgresStore(pg_url, deployment, prepare=False)
    batch = [_request("ann", "1", experiment="x", variant="b", device_key="t\x1fd:1", propensity=0.25),
             _request("bo", "2", room="r2", trigger="u"), _request("cy", "3", None),
             _request("di", "4", experiment="x", variant="a")]
    try:
        made = store.issue(batch, Limits()) + store.issue([_request("ed", "5", room="r3")], Limits())
        columns = ("coupon_id, campaign, room, broadcast, trigger, \"user\", template, at, reason, expires_at, "
                   "experiment, variant, state, device_key, propensity")
        with psycopg.connect(pg_url, autocommit=True) as db:
            recorded = db.execute(f"SELECT {columns} FROM {deployment}.decisions ORDER BY seq").fetchall()
        assert recorded == [(d.request.coupon_id, "c", d.request.room, 1, d.request.trigger, d.request.user,
                             "five" if d.issued else None, 1_000, None if d.issued else d.reason.value,  # type: ignore[union-attr]
                             d.expires_at, d.request.experiment, d.request.variant, "issued" if d.issued else None,
                             d.request.device_key, d.request.propensity) for d in made]
        assert [d.reason for d in made] == [None, None, Reason.HOLDOUT, None, None]
    finally:
        store.close()
