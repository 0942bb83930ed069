#!/usr/bin/env python3
"""Issuing benchmark: how fast livecoupon decides, commits and redeems coupons.

    .venv/bin/python bench/issue.py            # full run (a few minutes)
    .venv/bin/python bench/issue.py --quick    # scaled down (well under a minute)

Sections (SPEC §4 steps 2-4, §5, §6):

1. single decisions in-process: ``store.issue([one request], limits)`` in a loop for N
   distinct users, on MemoryStore and SqliteStore (WAL, synchronous NORMAL and FULL),
   and on SQLite with 100 decisions grouped per ``unit_of_work()`` (the live service
   commits a posted batch in one transaction). Product target: >= 20,000/s.
2. an audience of 100,000 users in one ``store.issue(requests, limits)`` batch, durably
   committed (time from call to commit return), NORMAL and FULL, then a second firing
   over the same audience on the now-populated file; counts verified by reopening the
   file. Target: < 1 s.
3. HTTP: a real ``livecoupon serve`` subprocess on a loopback port; coupons issued via
   ``POST /v1/admin/issue`` (operator key); then ``POST /v1/orders`` + ``/pay`` pairs from
   several concurrent clients, as a merchant's checkout backend sends them (platform key,
   checked on every request), with pair latency p50/p99.
4. the 100-stock race: 10,000 claims from 8 threads, done the textbook way in
   PostgreSQL (``SELECT … FOR UPDATE`` on the template row, check, ``UPDATE``,
   ``INSERT``), next to the same race on SqliteStore and MemoryStore. Exactly 100 must
   be issued. PostgreSQL is skipped (with a message) when it does not answer.

Everything is bounded by a count and a time limit and cleans up after itself (temp
files, the server process, the ``bench_issue_<pid>`` PostgreSQL schema). Numbers on a
small shared machine are noisy: compare runs on the same machine, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from processes import cpu_model, usable_cores  # noqa: E402
from tables import fmt  # noqa: E402
from tables import print_table as print_rows  # noqa: E402

from livecoupon.domain.campaign import Limits  # noqa: E402
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms  # noqa: E402
from livecoupon.domain.decisions import IssueRequest, coupon_id_for  # noqa: E402
from livecoupon.store.memory import MemoryStore  # noqa: E402
from livecoupon.store.sqlite import SqliteStore  # noqa: E402

CAMPAIGN = "bench-issue"
ROOM = "room-1"
T0 = 1_750_000_000_000  # ms; the broadcast start and the first issue time
MINUTE = 60_000
# Every limit set (so every check runs), none of them binding for distinct users.
LIMITS = Limits(per_user=3, min_interval_ms=2 * MINUTE, budget=10**13)
TEN = CouponTemplate("dwell10", "观望鼓励券", Terms(CouponKind.NO_THRESHOLD, amount=1_000), valid_for_ms=15 * MINUTE,
                     stock=10**9)
HUNDRED = CouponTemplate("hundred", "限量100张", Terms(CouponKind.NO_THRESHOLD, amount=500), valid_for_ms=10**9,
                         stock=100)
SINGLE_TARGET = 20_000  # decisions/s
AUDIENCE_TARGET = 1.0  # s for 100,000 users
AUDIENCE_SIZE = 100_000


# -- the report -------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    what: str
    n: int | None = None
    seconds: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    target: str = ""
    check: str = ""

    @property
    def rate(self) -> float | None:
        if self.n is None or not self.seconds:
            return None
        return self.n / self.seconds


ROWS: list[Row] = []
NOTES: list[str] = []


def record(row: Row) -> Row:
    ROWS.append(row)
    rate = f"{row.rate:,.0f}/s" if row.rate is not None else ""
    secs = f"{row.seconds:.3f} s" if row.seconds is not None else ""
    print(f"  [{row.section}] {row.what}: {row.n or ''} {secs} {rate} {row.check}".rstrip(), file=sys.stderr,
          flush=True)
    return row


def print_table(machine: list[str]) -> None:
    head = ("#", "measurement", "n", "seconds", "per second", "p50 ms", "p99 ms", "target", "check")
    body = [(r.section, r.what, fmt(r.n, ","), fmt(r.seconds, ".3f"), fmt(r.rate, ",.0f"), fmt(r.p50_ms, ".3f"),
             fmt(r.p99_ms, ".3f"), r.target, r.check) for r in ROWS]
    print_rows(machine, head, [(r.section, cells) for r, cells in zip(ROWS, body, strict=True)], NOTES,
               right={2, 3, 4, 5, 6})


# -- the machine --------------------------------------------------------------------------------
def _fs_type(path: Path) -> str:
    """The file system ``path`` lives on (fsync is free on tmpfs, so it matters here)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for mount in Path("/proc/mounts").read_text().splitlines():
            parts = mount.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def machine_lines(workdir: Path) -> list[str]:
    nproc = usable_cores()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: nproc={nproc}  cpu={cpu_model()}  python={platform.python_version()}  "
        f"sqlite={sqlite3.sqlite_version}  os={platform.system()} {platform.release()}",
        f"         load average at start: {load}  temp dir: {workdir} ({_fs_type(workdir)})",
    ]


# -- helpers ------------------------------------------------------------------------------------
def requests_for(users: Sequence[str], template: CouponTemplate, trigger: str, at: int,
                 firing: str = "") -> list[IssueRequest]:
    return [IssueRequest(coupon_id_for(CAMPAIGN, ROOM, T0, trigger, firing, user), CAMPAIGN, ROOM, T0, trigger, user,
                         template, at) for user in users]


def users(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def percentile(sorted_ns: Sequence[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return sorted_ns[min(len(sorted_ns) - 1, round(q * (len(sorted_ns) - 1)))] / 1e6


def reopen_counts(path: Path) -> tuple[int, int]:
    """(issued per the counters, issued per the decision log) read from a fresh connection to the file."""
    store = SqliteStore(path)
    try:
        issued = store.totals(CAMPAIGN).issued
        rows = sum(1 for d in store.decisions(CAMPAIGN) if d.issued)
        return issued, rows
    finally:
        store.close()


def verdict(ok: bool, detail: str = "") -> str:
    return ("ok" if ok else "FAIL") + (f" ({detail})" if detail else "")


# -- 1. single decisions -----------------------------------------------------------------------------
def bench_singles(label: str, store: Any, reqs: Sequence[IssueRequest], time_limit: float,
                  group: int = 1) -> Row:
    """``store.issue([r])`` per request; with ``group`` > 1, ``group`` calls per unit of work."""
    store.issue(requests_for(["warm-up"], TEN, "warm", T0), LIMITS)
    lat: list[int] = []
    done = issued = 0
    perf = time.perf_counter_ns
    start = perf()
    stop_at = start + int(time_limit * 1e9)
    for offset in range(0, len(reqs), group):
        chunk = reqs[offset:offset + group]
        t = perf()
        if group == 1:
            issued += store.issue(chunk, LIMITS)[0].issued
        else:
            with store.unit_of_work():
                for r in chunk:
                    issued += store.issue([r], LIMITS)[0].issued
        end = perf()
        lat.append(end - t)
        done += len(chunk)
        if end > stop_at:
            break
    seconds = (perf() - start) / 1e9
    tenth = max(1, len(lat) // 10)  # a rate that falls as the file fills up shows here
    early, late = (tenth * group / sum(part) * 1e9 for part in (lat[:tenth], lat[-tenth:]))
    drift = f"; first/last 10%: {early:,.0f}/{late:,.0f}/s"
    lat.sort()
    stopped = "" if done == len(reqs) else f", time limit hit at {done:,}"
    return Row("1", label, done, seconds, percentile(lat, 0.5), percentile(lat, 0.99), f">= {SINGLE_TARGET:,}/s",
               verdict(issued == done, f"{issued:,} issued{stopped}") + drift)


def section_singles(work: Path, n: int, time_limit: float) -> None:
    reqs = requests_for(users(n), TEN, "single", T0 + MINUTE)
    record(bench_singles("MemoryStore, 1 decision per issue()", MemoryStore(), reqs, time_limit))
    for sync, count in (("NORMAL", n), ("FULL", max(1_000, n // 5))):
        path = work / f"single-{sync.lower()}.db"
        store = SqliteStore(path, synchronous=sync)
        row = record(bench_singles(f"SqliteStore {sync}, 1 decision per issue() = 1 txn", store, reqs[:count],
                                   time_limit))
        store.close()
        issued, rows = reopen_counts(path)
        row.check += f"; reopened {issued:,}"
        if issued != (row.n or 0) + 1:  # + the warm-up
            row.check += " MISMATCH"
    for group in (10, 100):
        path = work / f"grouped-{group}.db"
        store = SqliteStore(path)
        row = record(bench_singles(f"SqliteStore NORMAL, {group} issue() calls per txn (lat = per txn)", store,
                                   reqs, time_limit, group=group))
        store.close()
    for row in ROWS:
        if row.section == "1" and row.rate is not None:
            row.check = ("meets, " if row.rate >= SINGLE_TARGET else "MISSES, ") + row.check


# -- 2. an audience in one batch ---------------------------------------------------------------------
def timed_batch(store: Any, reqs: Sequence[IssueRequest]) -> tuple[float, int]:
    start = time.perf_counter()
    made = store.issue(reqs, LIMITS)
    return time.perf_counter() - start, sum(d.issued for d in made)


def section_audience(work: Path, n: int, profile: bool) -> None:
    audience = users(n, "viewer-")
    start = time.perf_counter()
    first = requests_for(audience, TEN, "milestone", T0 + 10 * MINUTE)
    build = time.perf_counter() - start
    record(Row("2", f"build {n:,} IssueRequests (sha256 coupon ids; not in the timings below)", n, build))
    second = requests_for(audience, TEN, "passphrase", T0 + 13 * MINUTE, firing=str(T0 + 13 * MINUTE))
    target = f"< {AUDIENCE_TARGET:g} s @ {AUDIENCE_SIZE // 1000}k"

    def meets(seconds: float, n: int) -> str:
        if n == AUDIENCE_SIZE:
            return "meets" if seconds < AUDIENCE_TARGET else "MISSES"
        return f"~{seconds * AUDIENCE_SIZE / n:.1f} s @ 100k if linear"

    seconds, issued = timed_batch(MemoryStore(), first)
    record(Row("2", "MemoryStore, one issue() of the audience", n, seconds, target=target,
               check=f"{meets(seconds, n)}, " + verdict(issued == n, f"{issued:,} issued")))
    for sync in ("NORMAL", "FULL"):
        path = work / f"audience-{sync.lower()}.db"
        store = SqliteStore(path, synchronous=sync)
        seconds, issued = timed_batch(store, first)
        store.close()
        reopened, rows = reopen_counts(path)
        ok = issued == reopened == rows == n
        record(Row("2", f"SqliteStore {sync}, one issue() call to COMMIT, fresh file", n, seconds, target=target,
                   check=f"{meets(seconds, n)}, " + verdict(ok, f"reopened: {reopened:,} issued, {rows:,} rows")))
        if sync == "NORMAL":
            store = SqliteStore(path)
            seconds, issued = timed_batch(store, second)
            store.close()
            reopened, rows = reopen_counts(path)
            ok = issued == n and reopened == rows == 2 * n
            record(Row("2", f"SqliteStore {sync}, 2nd firing, same audience, {n:,} coupons already in file", n,
                       seconds, target=target,
                       check=f"{meets(seconds, n)}, " + verdict(ok, f"reopened: {reopened:,} issued, {rows:,} rows")))
    if profile:
        path = work / "audience-profile.db"
        store = SqliteStore(path)
        profiler = cProfile.Profile()
        profiler.enable()
        store.issue(first, LIMITS)
        profiler.disable()
        store.close()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(15)
        print(f"\ncProfile of one {n:,}-user SqliteStore.issue() (by own time):", file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)


# -- 3. HTTP order + pay ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(config: Path, db: Path, api_key: str, platform_key: str) -> Iterator[str]:
    """A ``livecoupon serve`` subprocess on a free loopback port; always stopped."""
    import httpx

    cli = Path(sys.executable).with_name("livecoupon")
    command = [str(cli)] if cli.exists() else [shutil.which("livecoupon") or "livecoupon"]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = db.with_suffix(".log")
    with log.open("ab") as out:
        keys = {"LIVECOUPON_API_KEY": api_key, "LIVECOUPON_PLATFORM_KEY": platform_key}
        proc = subprocess.Popen([*command, "serve", "--config", str(config), "--db", str(db), "--host", "127.0.0.1",
                                 "--port", str(port)], env=os.environ | keys,
                                stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 30 s")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def _http_run(url: str, api_key: str, platform_key: str, pairs: int, concurrency: int,
                    time_limit: float) -> None:
    import httpx

    warm = 20
    buyers = users(pairs + warm, "buyer-")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        coupons: dict[str, str] = {}
        batch = 500
        start = time.perf_counter()
        for i in range(0, len(buyers), batch):
            r = await client.post("/v1/admin/issue", headers={"X-API-Key": api_key},
                                  json={"template": "dwell10", "users": buyers[i:i + batch], "room": ROOM,
                                        "idempotency_key": f"bench-issue-{i}"})
            r.raise_for_status()
            coupons.update((d["user"], d["coupon_id"]) for d in r.json()["decisions"] if d["issued"])
        seconds = time.perf_counter() - start
        record(Row("3", f"POST /v1/admin/issue dwell10, batches of {batch} (decisions)", len(buyers), seconds,
                   check=verdict(len(coupons) == len(buyers), f"{len(coupons):,} issued")))

        cart = [{"product": "sku-1", "category": "apparel", "price": 59.9, "qty": 1}]
        checkout = {"X-API-Key": platform_key}  # the merchant's backend, for any user
        failures: list[str] = []

        async def pair(user: str) -> int:
            t = time.perf_counter_ns()
            order_id = f"order-{user}"
            r = await client.post("/v1/orders", json={"order_id": order_id, "user": user, "cart": cart,
                                                      "coupon_id": coupons[user],
                                                      "idempotency_key": f"create-{user}"}, headers=checkout)
            if r.status_code != 201 or r.json().get("discount") != 10:
                failures.append(f"create {r.status_code} {r.text[:200]}")
            else:
                r = await client.post(f"/v1/orders/{order_id}/pay", json={"idempotency_key": f"pay-{user}"},
                                      headers=checkout)
                if r.status_code != 200 or r.json().get("state") != "paid":
                    failures.append(f"pay {r.status_code} {r.text[:200]}")
            return time.perf_counter_ns() - t

        for user in buyers[:warm]:  # connections, caches, first-request costs
            await pair(user)
        todo = iter(buyers[warm:])
        lat: list[int] = []
        start = time.perf_counter()
        stop_at = start + time_limit

        async def client_loop() -> None:
            for user in todo:
                lat.append(await pair(user))
                if time.perf_counter() > stop_at:
                    return

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        lat.sort()
        stopped = "" if len(lat) == pairs else f", time limit hit at {len(lat):,}"
        record(Row("3", f"POST /v1/orders + /pay round trips, {concurrency} in flight (lat = pair)", len(lat),
                   seconds, percentile(lat, 0.5), percentile(lat, 0.99),
                   check=verdict(not failures, f"{len(failures)} failed{stopped}")))
        if failures:
            NOTES.append(f"HTTP failures, first: {failures[0]}")
        r = await client.get("/v1/admin/campaign", headers={"X-API-Key": api_key})
        if r.status_code == 200:
            NOTES.append(f"HTTP server totals after the run: {r.json().get('issued')} issued, "
                         f"budget spent {r.json().get('budget', {}).get('spent')} yuan")


def section_http(work: Path, pairs: int, concurrency: int, time_limit: float) -> None:
    config = ROOT / "examples" / "campaign.yaml"
    api_key, platform_key = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    try:
        with served(config, work / "http.db", api_key, platform_key) as url:
            asyncio.run(_http_run(url, api_key, platform_key, pairs, concurrency, time_limit))
    except Exception as exc:  # report and carry on with the other sections
        record(Row("3", "HTTP order + pay", check=f"FAIL: {type(exc).__name__}: {exc}"[:300]))


# -- 4. the 100-stock race ------------------------------------------------------------------------------
def race(label: str, claim: Callable[[str], bool], setup: Callable[[], Any] | None, threads: int,
         claimants: Sequence[str], time_limit: float) -> tuple[Row, int]:
    """``threads`` threads each claim a slice of ``claimants``; returns the row and the wins."""
    barrier = threading.Barrier(threads + 1)
    wins = [0] * threads
    lat: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    deadline = [0.0]

    def worker(k: int) -> None:
        try:
            ctx = setup() if setup is not None else contextlib.nullcontext()
            with ctx:
                barrier.wait()
                perf = time.perf_counter_ns
                for user in claimants[k::threads]:
                    t = perf()
                    wins[k] += claim(user)
                    lat[k].append(perf() - t)
                    if time.perf_counter() > deadline[0]:
                        break
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    deadline[0] = time.perf_counter() + time_limit + 60  # set before the start line, moved below
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    start = time.perf_counter()
    deadline[0] = start + time_limit
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    flat = sorted(x for part in lat for x in part)
    done = len(flat)
    stopped = "" if done == len(claimants) else f", time limit hit at {done:,}"
    row = Row("4", label, done, seconds, percentile(flat, 0.5), percentile(flat, 0.99), "exactly 100",
              f"{sum(wins)} won{stopped}")
    return row, sum(wins)


def pg_race(dsn: str, threads: int, claimants: Sequence[str], time_limit: float) -> None:
    try:
        import psycopg
    except ImportError:
        record(Row("4", "PostgreSQL SELECT FOR UPDATE", check="SKIPPED: psycopg is not installed"))
        return
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except Exception as exc:
        msg = f"SKIPPED: PostgreSQL not reachable at {dsn!r}: {str(exc).strip().splitlines()[0][:120]}"
        print(msg, file=sys.stderr)
        record(Row("4", "PostgreSQL SELECT FOR UPDATE", check=msg))
        return
    schema = f"bench_issue_{os.getpid()}"
    version = admin.execute("SHOW server_version").fetchone()
    settings = {name: admin.execute(f"SHOW {name}").fetchone() for name in ("synchronous_commit", "fsync")}
    NOTES.append(f"PostgreSQL {version[0] if version else '?'} on {dsn}: "
                 + ", ".join(f"{k}={v[0] if v else '?'}" for k, v in settings.items())
                 + f"; schema {schema} dropped at the end")
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        admin.execute(f"CREATE TABLE {schema}.templates (name text PRIMARY KEY, stock int NOT NULL, "
                      "issued int NOT NULL DEFAULT 0)")
        admin.execute(f"CREATE TABLE {schema}.coupons (coupon_id text PRIMARY KEY, "
                      f"template text NOT NULL REFERENCES {schema}.templates, user_id text NOT NULL, "
                      "issued_at timestamptz NOT NULL DEFAULT now(), UNIQUE (template, user_id))")
        admin.execute(f"INSERT INTO {schema}.templates (name, stock) VALUES ('hundred', 100)")
        local = threading.local()
        lock_sql = f"SELECT stock, issued FROM {schema}.templates WHERE name = %s FOR UPDATE"
        update_sql = f"UPDATE {schema}.templates SET issued = issued + 1 WHERE name = %s"
        insert_sql = f"INSERT INTO {schema}.coupons (coupon_id, template, user_id) VALUES (%s, %s, %s)"

        @contextlib.contextmanager
        def connection() -> Iterator[None]:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=3,
                                   options="-c statement_timeout=30000 -c lock_timeout=30000")
            local.conn = conn
            try:
                yield
            finally:
                conn.close()

        def claim(user: str) -> bool:
            conn = local.conn
            with conn.transaction():
                row = conn.execute(lock_sql, ("hundred",)).fetchone()
                assert row is not None
                stock, issued = row
                if issued >= stock:
                    return False
                conn.execute(update_sql, ("hundred",))
                conn.execute(insert_sql, (f"cp-{user}", "hundred", user))
                return True

        row, won = race(f"PostgreSQL, SELECT FOR UPDATE + UPDATE + INSERT, {threads} threads/conns", claim,
                        connection, threads, claimants, time_limit)
        issued_row = admin.execute(f"SELECT issued FROM {schema}.templates").fetchone()
        count_row = admin.execute(f"SELECT count(*) FROM {schema}.coupons").fetchone()
        issued, rows = (issued_row[0] if issued_row else -1), (count_row[0] if count_row else -1)
        row.check = verdict(won == issued == rows == 100, f"{won} won; table: issued={issued}, {rows} rows"
                            + row.check.partition(" won")[2])
        record(row)
    except Exception as exc:
        record(Row("4", "PostgreSQL SELECT FOR UPDATE", check=f"FAIL: {type(exc).__name__}: {exc}"[:300]))
    finally:
        with contextlib.suppress(Exception):
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


def section_race(work: Path, dsn: str, threads: int, n: int, time_limit: float, skip_pg: bool) -> None:
    claimants = users(n, "user-")
    claims = {u: requests_for([u], HUNDRED, "grab", T0 + MINUTE)[0] for u in claimants}
    if skip_pg:
        record(Row("4", "PostgreSQL SELECT FOR UPDATE", check="SKIPPED: --skip pg"))
    else:
        pg_race(dsn, threads, claimants, time_limit)

    path = work / "race.db"
    store = SqliteStore(path)
    row, won = race(f"SqliteStore NORMAL, one issue() per claim (stock only), {threads} threads", lambda u: store.issue(
        [claims[u]], Limits())[0].issued, None, threads, claimants, time_limit)
    store.close()
    issued, rows = reopen_counts(path)
    row.check = verdict(won == issued == rows == 100, f"{won} won; reopened: {issued} issued, {rows} rows"
                        + row.check.partition(" won")[2])
    record(row)

    memory = MemoryStore()
    row, won = race(f"MemoryStore, one issue() per claim (stock only), {threads} threads", lambda u: memory.issue(
        [claims[u]], Limits())[0].issued, None, threads, claimants, time_limit)
    used = memory.totals(CAMPAIGN).stock_used.get("hundred", 0)
    row.check = verdict(won == used == 100, f"{won} won; stock_used={used}" + row.check.partition(" won")[2])
    record(row)

    rates = {r.what.split(",")[0]: r.rate for r in ROWS if r.section == "4" and r.rate}
    pg = rates.get("PostgreSQL")
    if pg:
        ratios = ", ".join(f"{name} {rate / pg:.1f}x" for name, rate in rates.items() if name != "PostgreSQL")
        NOTES.append(f"race claims/s relative to PostgreSQL: {ratios}. SQLite also writes a decision row for each "
                     "of the out-of-stock claims; the PostgreSQL race writes only the 100 winners")


# -- main ------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="scaled-down run")
    parser.add_argument("--skip", action="append", default=[], choices=["single", "audience", "http", "race", "pg"],
                        help="leave out a section (repeatable)")
    parser.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3",
                        help="PostgreSQL connection string for the race (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=8, help="racing threads (default 8)")
    parser.add_argument("--concurrency", type=int, default=12, help="HTTP requests in flight (default 12)")
    parser.add_argument("--profile", action="store_true", help="cProfile one audience batch (to stderr)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary SQLite files go")
    args = parser.parse_args(argv)

    singles, audience, pairs, racers = (5_000, 10_000, 300, 2_000) if args.quick else (50_000, AUDIENCE_SIZE,
                                                                                      2_000, 10_000)
    limit = 15.0 if args.quick else 30.0  # seconds per measurement, at most
    with tempfile.TemporaryDirectory(prefix="livecoupon-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        machine = machine_lines(work)
        for m in machine:
            print(m, file=sys.stderr)
        started = time.perf_counter()
        if "single" not in args.skip:
            section_singles(work, singles, limit)
        if "audience" not in args.skip:
            section_audience(work, audience, args.profile)
        if "http" not in args.skip:
            section_http(work, pairs, args.concurrency, limit)
        if "race" not in args.skip:
            section_race(work, args.pg, args.threads, racers, limit, "pg" in args.skip)
        NOTES.append(f"{'quick' if args.quick else 'full'} run took {time.perf_counter() - started:.0f} s; "
                     f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}. The machine is "
                     "shared and the HTTP client runs on the same cores as the server: numbers are noisy")
    print_table(machine)
    return 1 if any("FAIL" in r.check or "MISMATCH" in r.check for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
