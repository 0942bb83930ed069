#!/usr/bin/env python3
"""Scaled out: throughput with 1, 2 and 4 workers, restart time against log length, distributed claims.

    .venv/bin/python bench/cluster.py            # the full run (~8 minutes on 2 cores)
    .venv/bin/python bench/cluster.py --quick    # a smoke test (~1.5 minutes): too small for figures
    .venv/bin/python bench/cluster.py --parts restart --restart-sizes 100000,1000000

Everything runs on 127.0.0.1: the machine's PostgreSQL (``--pg``) and Redis (``--redis``), and
a ``nats-server -js`` of this benchmark's own on a free port (its files in a temp dir), so the
machine's own NATS is never touched. Each measurement works in a fresh PostgreSQL schema (a
deployment ``--name``) that is dropped at the end, and under a fresh Redis key prefix that is
deleted at the end. Every child process gets SIGTERM if this one dies. Prints a table per part.
It measures the code next to it (``src/`` of its own checkout comes first on every path), and
prints the commit and whether ``src/`` differs from it, at the start and at the end.

1. **Throughput** (``--parts throughput``). The same multi-room stream (``--rooms`` rooms, each
   a ``tests/support/streams.broadcast_stream`` of ``--viewers`` viewers over ``--seconds``
   s, users and orders prefixed by the room, as ``many_rooms`` in ``tests/support/streams.py``;
   campaign ``examples/campaign.yaml`` with ``rooms: "*"``) is posted to ``POST /v1/events``
   with the platform key, in batches of ``--batch`` by ``--clients`` concurrent clients (each
   client posts its own rooms, in time order), to:

   - **the baseline**: ``livecoupon serve`` embedded, on a SQLite file, no bus;
   - ``livecoupon serve --store postgresql://…``, no bus (where PostgreSQL alone puts it);
   - **scaled out**: one ``serve --role gateway`` and 1, 2, 4 ``serve --role worker``
     (``--workers``) over NATS and PostgreSQL, ``--partitions`` partitions, once the workers
     hold an even share of them (read from each worker's ``/v1/admin/health``).

   Each PostgreSQL row once with the claims decided there (under the campaign's lock) and once
   with ``--claims redis://…`` (``--claims-in``: the counters in Redis, store/redis.py).

   All with ``--clock event``. Before the clock starts, an earlier broadcast in one warm-up
   room per partition (``--warm-viewers``: every process has loaded what it loads on first use,
   and the tables hold some thousand decisions), not counted; then, on PostgreSQL, ``ANALYZE``
   of the deployment's tables, as autovacuum would have run by the time a deployment is busy
   (the plans of a never-analyzed table's prepared statements stay those of an empty table:
   see part 3's pg-cold). events/s = events logged / seconds from the first POST until the last event
   is applied (the answers come after the commit; after a 202 the logs are polled);
   claims/s = decisions written (issued + suppressed) / the same seconds. The CPU seconds of
   each process and the machine's busy share over the window show where the 2 cores went:
   more workers than cores cannot scale linearly, and the client, PostgreSQL and NATS share
   the same cores. Every 20 ms, how many PostgreSQL backends wait on the deployment's claims
   lock for the campaign (the advisory lock ``PostgresStore`` takes before deciding).

2. **Restart** (``--parts restart``) against log length (``--restart-sizes``, default 100k,
   1M, 10M entries) on PostgreSQL: the log of partition ``p0`` of a deployment, restarted as
   a worker restarts one (``LiveService(campaign, PostgresStore(url, name, log="p0"),
   ClockMode.EVENT, preload_records=False).rebuild()``, timed from the service's construction
   until ``rebuild()`` returns), once from the latest snapshot and once (the baseline, snapshots deleted) from the
   whole log. The log is one broadcast of ``bench/streams.py`` (``bench/campaign.yaml``, as in
   ``bench/restart.py`` on SQLite), written fast: a real ``LiveService`` applies the stream
   over a ``MemoryStore`` whose log goes straight into ``NAME.events`` by ``COPY``; that
   service writes the snapshot ``--tail`` entries before the end of the log (the snapshot
   policy's 20,000 entries: the farthest a snapshot lags by entries), and its decisions,
   visits, stock and budget are then written into the schema by the PostgreSQL store's own
   code. The schema ends up as a worker that had applied the stream would have left it. The
   whole-log baseline is skipped where the rate measured on a smaller log says it would take
   longer than ``--whole-log-max`` seconds. After the restart from the snapshot, its parts
   are timed alone: reading the snapshot's row, unpickling it, and reading every decision back
   (which the single-process service still does on a restart).

3. **Distributed claims** (``--parts claims``): ``--claim-procs`` processes claim at once for
   ``--claim-seconds`` each, one campaign, through

   - ``PostgresStore.issue(requests, limits)``: the store's atomic path (a per-campaign
     advisory lock; stock, budget, ``per_user`` and ``min_interval`` read and checked; the
     decisions and the counters written; one transaction per call), with the server's
     ``synchronous_commit`` as configured, and again with ``synchronous_commit=off`` (these
     two after ``--claim-prior`` claims of an earlier broadcast and ``ANALYZE``), and on a
     fresh, never-analyzed schema (pg-cold);
   - ``PostgresStore.issue`` on a deployment whose claims go through Redis (``--claims``,
     store/redis.py): one Lua script per call over the counters, the decisions written to
     PostgreSQL in the call's transaction (after the same earlier broadcast and ``ANALYZE``);
   - a bare Redis Lua script doing the equivalent per claim (the decision already known?
     then that; ``per_user`` counter, last-issued time, stock left > 0, budget under; on
     issue: stock decremented, budget added, counters moved; the decision recorded in a hash),
     ``EVALSHA`` one claim per call, or ``--claim-batch`` claims pipelined per round trip.

   Every process sends the same claims to each backend (random users out of
   ``--claim-users``, 5-yuan coupons, per_user 3, min_interval 2 min; stock and budget large
   enough not to run out, but checked on every claim), 1 claim per call and
   ``--claim-batch`` per call (one ``issue()`` of that many requests, or one pipeline).
   Ratio = PostgreSQL claims/s / Redis claims/s; the project's aim is at least 60%.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the code next to this script, even where another checkout is installed
if str(ROOT / "tests") not in sys.path:  # tests/support's streams
    sys.path.append(str(ROOT / "tests"))

import msgspec  # noqa: E402
from processes import cpu_model, die_with_parent, free_port, proc_cpu_seconds, usable_cores  # noqa: E402
from tables import print_table  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
CLI = Path(sys.executable).with_name("livecoupon")
EXAMPLE = ROOT / "examples" / "campaign.yaml"
RESTART_CAMPAIGN = ROOT / "bench" / "campaign.yaml"
API_KEY, PLATFORM_KEY, VIEWER_SECRET = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(32)
START = 1_700_000_000  # tests/support/streams.START: the streams' event time, seconds
OPERATOR_LIKE = '{"type":"operator"%'
RUN = f"{os.getpid()}_{secrets.token_hex(2)}"  # names this run's schemas, streams and Redis keys


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def loopback_only(url: str, what: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{what} {url!r}: this benchmark targets 127.0.0.1 only")


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def drop_schema(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


# -- child processes ------------------------------------------------------------------------------------------
@dataclass
class Proc:
    label: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return proc_cpu_seconds(self.popen.pid) or 0.0

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def spawn(label: str, command: Sequence[str], log_path: Path, port: int = 0,
          env: dict[str, str] | None = None) -> Proc:
    with log_path.open("wb") as out:
        popen = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_parent if sys.platform == "linux" else None)
    return Proc(label, popen, log_path, port)


def stop_all(procs: Iterable[Proc]) -> None:
    procs = [p for p in procs if p.popen.poll() is None]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.popen.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.popen.wait(15)
        except subprocess.TimeoutExpired:
            p.popen.kill()
            p.popen.wait(5)


def wait_port(proc: Proc, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.label} exited:\n{proc.tail()}")
        try:
            socket.create_connection(("127.0.0.1", proc.port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.label} did not listen within {timeout:.0f} s")


def wait_http(proc: Proc, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.label} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{proc.url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.label} did not answer /health within {timeout:.0f} s:\n{proc.tail()}")


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOUPON_")}
    env |= {"LIVECOUPON_API_KEY": API_KEY, "LIVECOUPON_PLATFORM_KEY": PLATFORM_KEY,
            "LIVECOUPON_VIEWER_SECRET": VIEWER_SECRET}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def start_serve(label: str, work: Path, config: Path, *args: str) -> Proc:
    port = free_port()
    command = [str(CLI), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
               "--clock", "event", *args]
    return spawn(label, command, work / f"{label}.log", port, server_env())


def start_nats(work: Path) -> Proc:
    store = work / "nats-store"
    store.mkdir(exist_ok=True)
    port = free_port()
    proc = spawn("nats-server", [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
                 work / "nats.log", port)
    wait_port(proc)
    return proc


def version_of(command: Sequence[str]) -> str:
    with contextlib.suppress(Exception):
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=10)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    return "unknown"


# -- 1. throughput ---------------------------------------------------------------------------------------------
def every_room_campaign(work: Path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    if 'rooms: ["room-1"]' not in text:
        raise SystemExit("examples/campaign.yaml no longer lists rooms: [\"room-1\"]; update bench/cluster.py")
    path = work / "campaign.yaml"
    path.write_text(text.replace('rooms: ["room-1"]', 'rooms: "*"'), encoding="utf-8")
    return path


def warmup_events(partitions: int, viewers: int) -> list[dict[str, Any]]:
    """An earlier broadcast (two hours before the stream, 10 minutes long) in one room of every partition: every
    process loads what it loads on first use, and the deployment's tables hold some thousand decisions."""
    from livecoupon.cluster.partitions import partition_of
    from support.streams import broadcast_stream

    rooms: dict[int, str] = {}
    j = 0
    while len(rooms) < partitions:
        room = f"warm-{j}"
        rooms.setdefault(partition_of(room, partitions), room)
        j += 1
    events = []
    for k, room in enumerate(rooms.values()):
        for e in broadcast_stream(viewers=viewers, seconds=600, seed=900 + k, room=room):
            e["ts"] = round(e["ts"] - 7200, 3)
            if "user" in e:
                e["user"] = f"{room}:{e['user']}"
            if "order_id" in e:
                e["order_id"] = f"{room}:{e['order_id']}"
            events.append(e)
        events.append({"type": "live_end", "room": room, "ts": START - 7200 + 601, "id": "warm-end"})
    events.sort(key=lambda e: e["ts"])
    return events


def client_bodies(events: list[dict[str, Any]], clients: int, batch: int) -> list[list[tuple[bytes, int]]]:
    """Each client's batches: its own rooms (round robin), in time order, pre-encoded."""
    rooms = sorted({e["room"] for e in events}, key=lambda r: (len(r), r))
    owner = {room: k % clients for k, room in enumerate(rooms)}
    mine: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for e in events:
        mine[owner[e["room"]]].append(e)
    return [[(json.dumps(own[s:s + batch], ensure_ascii=False).encode(), len(own[s:s + batch]))
             for s in range(0, len(own), batch)] for own in mine]


@dataclass
class Posted:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0


def post_all(url: str, per_client: list[list[tuple[bytes, int]]]) -> Posted:
    """Every client posts its batches one after another, all starting together; seconds until the last answer."""
    import httpx

    posted = Posted()
    lock = threading.Lock()
    barrier = threading.Barrier(len(per_client) + 1)
    errors: list[str] = []
    headers = {"X-API-Key": PLATFORM_KEY, "content-type": "application/json"}

    def client(bodies: list[tuple[bytes, int]]) -> None:
        lat: list[float] = []
        statuses: Counter[int] = Counter()
        accepted = 0
        with httpx.Client(timeout=120, headers=headers) as http:
            http.get(f"{url}/health")  # the connection is open before the clock starts
            barrier.wait()
            for body, n in bodies:
                started = time.perf_counter()
                answer = http.post(f"{url}/v1/events", content=body)
                lat.append(time.perf_counter() - started)
                statuses[answer.status_code] += 1
                if answer.status_code not in (200, 202):
                    errors.append(f"{answer.status_code}: {answer.text[:300]}")
                    return
                got = answer.json()
                accepted += got["accepted"]
                if got["accepted"] != n:
                    errors.append(f"accepted {got['accepted']} of {n}: {got['rejected'][:3]}")
        with lock:
            posted.latencies += lat
            posted.statuses += statuses
            posted.accepted += accepted

    threads = [threading.Thread(target=client, args=(bodies,), daemon=True) for bodies in per_client]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    posted.seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"POST /v1/events failed: {errors[:3]}")
    return posted


def pg_counts(url: str, name: str) -> tuple[int, int]:
    """(events logged, not counting operator commands; decisions written) in deployment ``name``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        events = db.execute(f"SELECT count(*) FROM {name}.events WHERE body NOT LIKE %s", (OPERATOR_LIKE,)).fetchone()
        decisions = db.execute(f"SELECT count(*) FROM {name}.decisions").fetchone()
    return int(events[0]), int(decisions[0])  # type: ignore[index]


def sqlite_counts(path: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        events = db.execute("SELECT count(*) FROM events WHERE body NOT LIKE ?", (OPERATOR_LIKE,)).fetchone()[0]
        decisions = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
    return int(events), int(decisions)


@dataclass
class Throughput:
    label: str
    workers: int  # 0: one process, no bus
    events: int = 0
    decisions: int = 0
    seconds: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    statuses: str = ""
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # share of all the machine's cores, over the window
    lock_waits: str = ""
    check: str = ""

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def claims_per_s(self) -> float:
        return self.decisions / self.seconds if self.seconds else 0.0


def wait_even(workers: list[Proc], partitions: int, timeout: float = 45) -> list[list[int]]:
    """Until the workers hold every partition between them, each an even share; what each holds."""
    import httpx

    deadline = time.monotonic() + timeout
    low, high = partitions // len(workers), -(-partitions // len(workers))
    held: list[list[int]] = []
    while time.monotonic() < deadline:
        held = []
        for w in workers:
            with contextlib.suppress(httpx.TransportError, ValueError, KeyError):
                held.append(httpx.get(f"{w.url}/v1/admin/health", headers={"X-API-Key": API_KEY},
                                      timeout=2).json()["partitions"])
        if (len(held) == len(workers) and sum(map(len, held)) == partitions
                and all(low <= len(h) <= high for h in held)):
            return held
        time.sleep(0.25)
    raise RuntimeError(f"the workers did not share {partitions} partitions evenly within {timeout:.0f} s: {held}")


class LockWaits:
    """Samples, every 20 ms, how many PostgreSQL backends wait on deployment ``name``'s claims lock for the
    campaign (the transaction-scoped advisory lock PostgresStore takes before deciding)."""

    def __init__(self, url: str | None, name: str = "", campaign: str = "") -> None:
        self.url, self.key = url, f"{name}:claims:{campaign}"
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:  # type: ignore[arg-type]
            while not self._stop.wait(0.02):
                row = db.execute(
                    "WITH k AS (SELECT hashtextextended(%s, 0) AS v) SELECT count(*) FROM pg_locks, k "
                    "WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1 "
                    "AND classid = ((k.v >> 32) & 4294967295)::oid AND objid = (k.v & 4294967295)::oid",
                    (self.key,)).fetchone()
                self.samples.append(int(row[0]))  # type: ignore[index]

    def __enter__(self) -> LockWaits:
        if self.url:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.url:
            self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return ""
        busy = sum(1 for x in self.samples if x) / len(self.samples)
        return f"{statistics.fmean(self.samples):.2f} avg, >=1 in {busy:.0%} of samples"


def analyze(url: str, name: str) -> None:
    """ANALYZE the deployment's tables, as autovacuum would have by the time a deployment is busy (a fresh
    table's prepared statements otherwise keep the plans made when it was empty: see the notes)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        for (table,) in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (name,)).fetchall():
            db.execute(f"ANALYZE {name}.{table}")


def measure(result: Throughput, url: str, counts: Callable[[], tuple[int, int]],
            warmup: list[tuple[bytes, int]], per_client: list[list[tuple[bytes, int]]], expected: int,
            procs: list[Proc], settle: Callable[[], None] = lambda: None,
            locks: tuple[str, str, str] | None = None) -> Throughput:
    post_all(url, [warmup])
    settle()
    events0, decisions0 = counts()
    cpu0 = {p.label: p.cpu() for p in procs}
    busy0, total0 = machine_busy()
    with LockWaits(*(locks or (None,))) as waits:
        posted = post_all(url, per_client)
        seconds = posted.seconds
        if posted.statuses.get(202):  # queued on the bus: wait until the workers have applied everything
            started = time.perf_counter() - seconds
            deadline = time.monotonic() + 180
            while counts()[0] - events0 < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            seconds = time.perf_counter() - started
    busy1, total1 = machine_busy()
    cpu1 = {p.label: p.cpu() for p in procs}
    events1, decisions1 = counts()
    result.events, result.decisions = events1 - events0, decisions1 - decisions0
    result.seconds = seconds
    result.p50, result.p99 = quantile(posted.latencies, 0.5) * 1000, quantile(posted.latencies, 0.99) * 1000
    result.statuses = " ".join(f"{n}x{s}" for s, n in sorted(posted.statuses.items()))
    result.cpu = {label: cpu1[label] - cpu0[label] for label in cpu0}
    result.busy = (busy1 - busy0) / max(1, total1 - total0)
    result.lock_waits = waits.summary()
    result.check = ("ok" if result.events == expected == posted.accepted
                    else f"MISMATCH: {result.events:,} logged, {posted.accepted:,} accepted, {expected:,} posted")
    log(f"  {result.label}: {result.events:,} events in {seconds:.2f} s = {result.events_per_s:,.0f} events/s, "
        f"{result.decisions:,} decisions = {result.claims_per_s:,.0f}/s; machine busy {result.busy:.0%}; "
        f"advisory-lock waiters {result.lock_waits or '-'}; {result.check}")
    return result


def run_throughput(args: argparse.Namespace, work: Path) -> list[Throughput]:
    config = every_room_campaign(work)
    from livecoupon.campaign_file import load_campaign

    campaign = load_campaign(config).campaign
    from support.streams import many_rooms

    events = many_rooms(args.rooms, args.viewers, args.seconds)
    per_client = client_bodies(events, args.clients, args.batch)
    warm = warmup_events(args.partitions, args.warm_viewers)
    warm_body = client_bodies(warm, 1, args.batch)[0]
    log(f"throughput: {len(events):,} events in {args.rooms} rooms, {sum(map(len, per_client))} batches of "
        f"<= {args.batch} from {args.clients} clients")
    results: list[Throughput] = []

    # the baseline: one process, embedded SQLite, no bus
    server = start_serve("embedded", work, config, "--db", str(work / "embedded.db"))
    try:
        wait_http(server)
        results.append(measure(Throughput("serve, embedded SQLite, no bus (baseline)", 0), server.url,
                               lambda: sqlite_counts(work / "embedded.db"), warm_body, per_client, len(events),
                               [server]))
    finally:
        stop_all([server])

    for claims in args.claims_modes:
        if args.no_pg_single:
            break
        name = f"lcb_single_{RUN}_{claims}"
        server = start_serve("single-pg", work, config, "--store", args.pg, "--name", name, *claims_args(args, claims))
        try:
            wait_http(server)
            results.append(measure(Throughput(f"serve --store postgresql{CLAIMS_LABELS[claims]}, no bus", 0),
                                   server.url, lambda name=name: pg_counts(args.pg, name), warm_body, per_client,
                                   len(events), [server], settle=lambda name=name: analyze(args.pg, name),
                                   locks=(args.pg, name, campaign)))
        finally:
            stop_all([server])
            drop_deployment(args.pg, name)

    nats = start_nats(work)
    try:
        for claims, k in [(claims, k) for claims in args.claims_modes for k in args.workers]:
            name = f"lcb_w{k}_{RUN}_{claims}"
            common = ("--store", args.pg, "--name", name, "--bus", f"nats://127.0.0.1:{nats.port}",
                      "--partitions", str(args.partitions), *claims_args(args, claims))
            procs: list[Proc] = []
            try:
                for i in range(k):
                    procs.append(start_serve(f"w{k}-worker{i}", work, config, *common, "--role", "worker"))
                for p in procs:
                    wait_http(p)
                gateway = start_serve(f"w{k}-gateway", work, config, *common, "--role", "gateway")
                procs.append(gateway)
                wait_http(gateway)
                held = wait_even(procs[:k], args.partitions)
                log(f"  {k} worker(s) hold partitions {[len(h) for h in held]}")
                label = f"1 gateway + {k} worker{'s' if k > 1 else ''} (NATS, PostgreSQL{CLAIMS_LABELS[claims]})"
                result = Throughput(label, k)
                measure(result, gateway.url, lambda name=name: pg_counts(args.pg, name), warm_body, per_client,
                        len(events), [*procs, nats], settle=lambda name=name: analyze(args.pg, name),
                        locks=(args.pg, name, campaign))
                results.append(result)
            finally:
                stop_all(procs)
                drop_deployment(args.pg, name)
    finally:
        stop_all([nats])
    return results


CLAIMS_LABELS = {"pg": "", "redis": ", claims in Redis"}


def claims_args(args: argparse.Namespace, claims: str) -> tuple[str, ...]:
    """``serve``'s arguments for a way of claiming: in PostgreSQL (none), or ``--claims`` Redis."""
    return ("--claims", args.redis) if claims == "redis" else ()


def drop_deployment(url: str, name: str) -> None:
    """The deployment's schema, and its claims' counters in Redis if it kept them there."""
    import psycopg

    from livecoupon.store.postgres import PostgresStore

    try:
        PostgresStore(url, name, prepare=False).drop()
    except psycopg.Error:  # never created (a process that did not start)
        drop_schema(url, name)


def throughput_table(results: list[Throughput], args: argparse.Namespace) -> tuple[list[tuple[str, list[str]]],
                                                                                       list[str]]:
    base = next((r for r in results if r.workers == 0), None)
    one = next((r for r in results if r.workers == 1), None)
    rows = []
    for r in results:
        if r.workers == 0:
            cpu = f"server {r.cpu.get('embedded', r.cpu.get('single-pg', 0.0)):.1f}"
        else:
            gateway = sum(v for k, v in r.cpu.items() if k.endswith("gateway"))
            workers = sum(v for k, v in r.cpu.items() if "worker" in k)
            cpu = f"gateway {gateway:.1f}, workers {workers:.1f}, nats {r.cpu.get('nats-server', 0.0):.1f}"
        vs_base = f"{r.events_per_s / base.events_per_s:.2f}x" if base else ""
        vs_one = f"{r.events_per_s / one.events_per_s:.2f}x" if one and r.workers else ""
        note = r.check
        if r.workers > (os.cpu_count() or 2):
            note += f"; {r.workers} workers on {os.cpu_count()} cores: cannot scale linearly"
        rows.append(("1", [r.label, f"{r.events:,}", f"{r.decisions:,}", f"{r.seconds:.2f}",
                           f"{r.events_per_s:,.0f}", f"{r.claims_per_s:,.0f}", vs_base, vs_one,
                           f"{r.p50:.1f}", f"{r.p99:.1f}", cpu, f"{r.busy:.0%}", r.lock_waits or "-", r.statuses,
                           note]))
    notes = [f"stream: {args.rooms} rooms x {args.viewers} viewers over {args.seconds} s (tests/support/streams.py), "
             f"batches of {args.batch} from {args.clients} concurrent clients, each posting its own rooms in time "
             f"order; {args.partitions} partitions; campaign examples/campaign.yaml with rooms: \"*\"; --clock event",
             "claims/s = decisions written (issued + suppressed) per second; CPU = process CPU seconds over the "
             "window; busy = the machine's busy share of all its cores over the window (the client, PostgreSQL and "
             "nats-server run on the same cores)",
             f"before the clock starts: an earlier 10-minute broadcast in one warm-up room per partition "
             f"({args.warm_viewers} viewers each; not counted), then ANALYZE of the deployment's tables on "
             "PostgreSQL; lock waiters = PostgreSQL backends waiting on an advisory lock (the campaign's claims "
             "lock in this deployment), sampled every 20 ms over the window"]
    if any(r.workers > (os.cpu_count() or 2) for r in results):
        notes.append(f"{os.cpu_count()} cores: more worker processes than cores cannot show linear scaling; "
                     "the gateway, the workers, NATS, PostgreSQL and the client all share them")
    return rows, notes


# -- 2. restart ------------------------------------------------------------------------------------------------
@dataclass
class Restart:
    entries: int
    build_s: float = 0.0
    snapshot_mb: float = 0.0
    table_mb: float = 0.0
    decisions: int = 0
    snapshot_s: float = 0.0
    tail: int = 0
    whole_s: float | None = None
    whole_applied: int = 0
    skipped: str = ""
    parts: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    gateway: tuple[float, float, float] = (0.0, 0.0, 0.0)  # serving, every decision back; baseline serving
    check: str = ""


def build_log(url: str, name: str, events: int, tail: int, batch: int = 5_000) -> tuple[int, int, int, bytes]:
    """Write a ``events``-event broadcast as partition p0's log of deployment ``name``, a snapshot ``tail``
    entries before its end, and what the store holds after it. (log entries, snapshot position, decisions,
    snapshot body)."""
    import psycopg
    from restart import LogElsewhere, write_state
    from streams import StreamSpec

    from livecoupon.campaign_file import load_campaign
    from livecoupon.engine import snapshots
    from livecoupon.engine.clock import ClockMode
    from livecoupon.service_layer.service import LiveService, SnapshotPolicy
    from livecoupon.store.port import Snapshot
    from livecoupon.store.postgres import PostgresStore

    campaign = load_campaign(RESTART_CAMPAIGN)
    store = PostgresStore(url, name, log="p0")  # the deployment's tables

    encode = msgspec.json.Encoder().encode  # compact UTF-8 JSON, as the store's json.dumps writes it

    # the stream is generated in a forked child (the other core), in batches; a broadcast a little longer
    # than the log, cut at exactly ``events`` events
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    generator = multiprocessing.get_context("fork").Process(
        target=_generate, args=(sender, StreamSpec.for_events(int(events * 1.15)), events, batch), daemon=True)
    generator.start()
    sender.close()
    decode = msgspec.json.Decoder(list[dict[str, Any]]).decode
    snapshot: Snapshot | None = None
    gc.disable()  # millions of live objects: the collector's full passes would cost more than the build
    try:
        with psycopg.connect(url) as raw:
            raw.execute(f"SET search_path TO {name}")
            with raw.cursor() as cursor, cursor.copy("COPY events (seq, log, body) FROM STDIN") as copy:
                def into_postgresql(position: int, logged: list[dict[str, Any]]) -> None:
                    for n, e in enumerate(logged, position + 1):  # seq = position, as a fresh schema's
                        copy.write_row((n, "p0", encode(e).decode()))

                memory = LogElsewhere(into_postgresql)  # claims and ledger in memory, the log by COPY
                service = LiveService(campaign, memory, ClockMode.EVENT,
                                      snapshot_policy=SnapshotPolicy(entries=2**62, seconds=0))  # only the one below
                service.rebuild()
                while (body := receiver.recv_bytes()) != b"":
                    service.submit(decode(body))
                    if snapshot is None and memory.position >= events - tail:
                        service.snapshot()
                        snapshot = memory.latest_snapshot(snapshots.fingerprint(campaign))
            raw.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), %s)", (memory.position,))
            raw.commit()
    finally:
        gc.enable()
        generator.join(10)
        receiver.close()
    assert snapshot is not None, "the stream was shorter than the tail"
    made = write_state(store, memory, campaign, snapshot)  # as the PostgreSQL store writes them
    for table in ("events", "decisions", "visits", "engine_snapshots", "template_stock", "campaign_budget"):
        store._run(f"ANALYZE {table}")  # as autovacuum would have by the time a worker restarts
    store.close()
    position = memory.position
    service.close()
    return position, snapshot.position, len(made), snapshot.body


def _generate(sender: Any, spec: Any, events: int, batch: int) -> None:
    """In the forked child: the broadcast's events, ``batch`` at a time, as JSON arrays; b"" at the end."""
    from streams import broadcast_events

    encode = msgspec.json.Encoder().encode
    pending: list[dict[str, Any]] = []
    for n, event in enumerate(broadcast_events(spec, limit=events), 1):
        if n > events:  # retried copies come on top of ``limit``: the log is cut at exactly ``events``
            break
        pending.append(event)
        if len(pending) == batch:
            sender.send_bytes(encode(pending))
            pending = []
    if pending:
        sender.send_bytes(encode(pending))
    sender.send_bytes(b"")
    sender.close()


def _worker_preloads_nothing() -> bool:
    """Whether LiveService takes ``preload_records`` (a worker's partitions pass False: they do not read every
    decision of the campaign back on a restart)."""
    import inspect

    from livecoupon.service_layer.service import LiveService

    return "preload_records" in inspect.signature(LiveService).parameters


WORKER_PRELOADS_NOTHING = _worker_preloads_nothing()


def restart_once(url: str, name: str) -> tuple[float, int, Any]:
    """Seconds from a new LiveService on partition p0 until rebuild() returns; entries re-applied; its state."""
    from livecoupon.campaign_file import load_campaign
    from livecoupon.engine.clock import ClockMode
    from livecoupon.service_layer.service import LiveService
    from livecoupon.store.postgres import PostgresStore

    campaign = load_campaign(RESTART_CAMPAIGN)
    store = PostgresStore(url, name, log="p0")  # connects and checks the tables, as a worker's PartitionStore
    as_worker = {"preload_records": False} if WORKER_PRELOADS_NOTHING else {}
    gc.collect()
    started = time.perf_counter()
    service = LiveService(campaign, store, ClockMode.EVENT, **as_worker)  # type: ignore[arg-type]
    applied = service.rebuild()
    took = time.perf_counter() - started
    state = (service.events_applied, service.deployment.time, len(service.records), len(service.orders),
             json.dumps(service.room_summary(), sort_keys=True))
    service.close()
    del service
    gc.collect()
    return took, applied, state


def snapshot_parts(url: str, name: str) -> tuple[float, float, float, int]:
    """What a restart from the snapshot spends where (each timed alone, after the restart): reading the snapshot
    row, unpickling it into an engine, reading every decision back; and how many event ids the snapshot keeps."""
    from restart import timed_parts

    from livecoupon.campaign_file import load_campaign
    from livecoupon.store.postgres import PostgresStore

    store = PostgresStore(url, name, log="p0")
    read, load, decisions, ids, _ = timed_parts(store, load_campaign(RESTART_CAMPAIGN))
    store.close()
    return read, load, decisions, ids


def gateway_start(url: str, name: str, rounds: int = 3) -> tuple[float, float, float]:
    """A gateway starting on the deployment, in process (its bus is not needed to start): the fastest of
    ``rounds`` seconds until ``rebuild(behind=True)`` returns (serving) and until every decision is back; and,
    alternating with them, the baseline, ``rebuild()`` reading every decision before it returns (as a gateway
    started until 2026-11-30)."""
    from livecoupon.campaign_file import load_campaign
    from livecoupon.cluster.bus import Bus
    from livecoupon.cluster.gateway import GatewayService
    from livecoupon.cluster.partitions import Subjects
    from livecoupon.engine.clock import ClockMode
    from livecoupon.store.postgres import PostgresStore

    campaign = load_campaign(RESTART_CAMPAIGN)

    def start(behind: bool) -> tuple[float, float]:
        gc.collect()
        started = time.perf_counter()
        gateway = GatewayService(campaign, PostgresStore(url, name), Bus("nats://127.0.0.1:4222", Subjects(name)),
                                 ClockMode.EVENT)
        gateway.rebuild(behind=behind)
        serving = time.perf_counter() - started
        assert len(gateway.read_back.result()[campaign.campaign]) == len(gateway.records)
        back = time.perf_counter() - started
        gateway.close()
        return serving, back

    behind, first = [], []
    for _ in range(rounds):
        behind.append(start(True))
        first.append(start(False)[0])
    return min(b[0] for b in behind), min(b[1] for b in behind), min(first)


def run_restart(args: argparse.Namespace) -> list[Restart]:
    import psycopg

    results: list[Restart] = []
    per_entry: float | None = None  # whole-log seconds per entry, measured on the largest log so far
    for size in args.restart_sizes:
        name = f"lcb_restart_{size}_{RUN}"
        r = Restart(size)
        try:
            log(f"restart: building a {size:,}-event log in {name} ...")
            started = time.perf_counter()
            logged, position, r.decisions, body = build_log(args.pg, name, size, args.tail)
            gc.collect()
            r.build_s = time.perf_counter() - started
            r.entries, r.snapshot_mb = logged, len(body) / 2**20
            del body
            with psycopg.connect(args.pg, autocommit=True) as db:
                r.table_mb = db.execute("SELECT pg_total_relation_size(%s)", (f"{name}.events",)).fetchone()[0] / 2**20
            log(f"  {logged:,} entries, {r.decisions:,} decisions, snapshot at {position:,} ({r.snapshot_mb:.1f} MiB), "
                f"built in {r.build_s:.0f} s")
            r.snapshot_s, r.tail, from_snapshot = restart_once(args.pg, name)
            r.parts = snapshot_parts(args.pg, name)
            log(f"  from the snapshot: {r.snapshot_s:.2f} s ({r.tail:,} entries re-applied); alone: snapshot read "
                f"{r.parts[0]:.2f} s, unpickled {r.parts[1]:.2f} s, decisions read back {r.parts[2]:.2f} s; "
                f"{r.parts[3]:,} event ids in the snapshot")
            r.gateway = gateway_start(args.pg, name)
            log(f"  a gateway: serving after {r.gateway[0]:.2f} s, every decision back {r.gateway[1]:.2f} s; "
                f"reading them first (baseline) {r.gateway[2]:.2f} s")
            problems = []
            if r.tail != logged - position:
                problems.append(f"re-applied {r.tail:,}, expected {logged - position:,}")
            if from_snapshot[0] != logged:
                problems.append(f"events_applied {from_snapshot[0]:,} != {logged:,}")
            projected = per_entry * logged if per_entry is not None else None
            if projected is not None and projected > args.whole_log_max:
                r.skipped = (f"skipped: ~{projected:.0f} s projected from the {per_entry * 1e6:.1f} µs/entry measured "
                             f"on the smaller log, over --whole-log-max {args.whole_log_max:.0f} s")
                log(f"  whole log {r.skipped}")
            else:
                with psycopg.connect(args.pg, autocommit=True) as db:
                    db.execute(f"DELETE FROM {name}.engine_snapshots")
                r.whole_s, r.whole_applied, whole = restart_once(args.pg, name)
                per_entry = r.whole_s / logged
                log(f"  whole log: {r.whole_s:.2f} s ({r.whole_applied:,} entries re-applied)")
                if r.whole_applied != logged:
                    problems.append(f"whole log re-applied {r.whole_applied:,} of {logged:,}")
                if whole != from_snapshot:
                    problems.append(f"state differs: snapshot {from_snapshot[:4]} whole {whole[:4]}")
            r.check = "ok" if not problems else "; ".join(problems)
            if not problems and r.whole_s is not None:
                r.check = "ok (same state both ways)"
        finally:
            drop_schema(args.pg, name)
        results.append(r)
    return results


def restart_table(results: list[Restart], args: argparse.Namespace) -> tuple[list[tuple[str, list[str]]], list[str]]:
    rows = []
    for r in results:
        whole = f"{r.whole_s:.2f}" if r.whole_s is not None else "skipped"
        faster = f"{r.whole_s / r.snapshot_s:.1f}x" if r.whole_s is not None else ""
        rows.append(("2", [f"{r.entries:,}", f"{r.decisions:,}", f"{r.table_mb:,.0f}", f"{r.snapshot_mb:.1f}",
                           f"{r.parts[3]:,}", f"{r.snapshot_s:.2f}", f"{r.tail:,}",
                           f"{r.parts[0]:.2f} / {r.parts[1]:.2f} / {r.parts[2]:.2f}", whole,
                           f"{r.whole_applied:,}" if r.whole_s is not None else "", faster,
                           f"{r.entries / r.whole_s:,.0f}" if r.whole_s else "",
                           "{:.2f} / {:.2f} / {:.2f}".format(*r.gateway), f"{r.build_s:.0f}",
                           r.check + (f"; whole log {r.skipped}" if r.skipped else "")]))
    as_worker = ("LiveService(..., preload_records=False) as a worker builds a partition's, "
                 if WORKER_PRELOADS_NOTHING else "LiveService(...) ")
    notes = [f"partition p0's log on PostgreSQL; from snapshot = {as_worker}then rebuild(): the latest snapshot, at "
             f"most {args.tail:,} entries before the end of the log (the 20,000-entry snapshot policy at its "
             "farthest), plus the log after it; whole log = the baseline, snapshots deleted",
             "of which: reading the snapshot row, unpickling it into an engine, each timed alone after the restart; "
             "and reading every decision of the campaign back, which "
             + ("a worker no longer does (preload_records=False) but the single-process serve still does on a "
                "restart" if WORKER_PRELOADS_NOTHING else "rebuild() does")
             + "; ids in snapshot: the platform message ids the engine keeps to drop duplicates (each room's last "
             "half hour to hour of them, engine/rooms.RecentIds)",
             "gateway: a GatewayService on the deployment, in process, fastest of 3: seconds until rebuild(behind="
             "True) returns and it serves / until every decision is back (read on a thread of its own) / the "
             "baseline, rebuild() reading every decision first",
             "the log: one broadcast of bench/streams.py (bench/campaign.yaml), applied by a real LiveService over a "
             "MemoryStore whose log went to NAME.events by COPY (set-up, not timed); its decisions, counters, "
             "visits and snapshot written with the PostgreSQL store's own code"]
    return rows, notes


# -- 3. distributed claims -------------------------------------------------------------------------------------
CLAIM_CAMPAIGN = "bench-claims"
CLAIM_ROOM, CLAIM_BROADCAST, CLAIM_TRIGGER = "room-1", 1_700_000_000_000, "grab"
FACE = 500  # fen: a 5-yuan coupon
STOCK = 10**9
BUDGET = 10**15
PER_USER = 3
MIN_INTERVAL_MS = 120_000
PRIOR_BROADCAST = CLAIM_BROADCAST - 3_600_000
VALID_FOR_MS = 3_600_000
CLAIM_AT0 = 1_700_000_000_000

LUA = """
-- KEYS: decisions hash, stock left, budget spent, the user's count in this broadcast, the user's last issue
-- ARGV: coupon id, at (ms), face (fen), budget (fen), per_user, min_interval (ms), the decision's fields
local known = redis.call('HGET', KEYS[1], ARGV[1])
if known then return string.sub(known, 1, string.find(known, '|', 1, true) - 1) end
local reason = nil
local at = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[5]) then
  reason = 'per_user_cap'
else
  local last = redis.call('GET', KEYS[5])
  if last and at - tonumber(last) < tonumber(ARGV[6]) then
    reason = 'min_interval'
  elseif tonumber(redis.call('GET', KEYS[2]) or '0') <= 0 then
    reason = 'out_of_stock'
  elseif tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(ARGV[3]) > tonumber(ARGV[4]) then
    reason = 'over_budget'
  end
end
if not reason then
  redis.call('DECR', KEYS[2])
  redis.call('INCRBY', KEYS[3], ARGV[3])
  redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[5], ARGV[2])
  reason = 'issued'
end
redis.call('HSET', KEYS[1], ARGV[1], reason .. '|' .. ARGV[7])
return reason
"""


def claim_plan(tag: str, cap: int, users: int, broadcast: int = CLAIM_BROADCAST,
               at0: int = CLAIM_AT0) -> list[tuple[str, str, int, int]]:
    """Claims (coupon id, user, broadcast, at), the same for every backend: random users, 10 ms apart."""
    from livecoupon.domain.decisions import coupon_id_for

    rng = random.Random(f"claims:{tag}")
    plan = []
    for i in range(cap):
        user = f"u{rng.randrange(users):07d}"
        plan.append((coupon_id_for(CLAIM_CAMPAIGN, CLAIM_ROOM, broadcast, CLAIM_TRIGGER, f"{tag}-{i}", user),
                     user, broadcast, at0 + i * 10))
    return plan


def prior_plan(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """The campaign's earlier broadcast, an hour before: what a deployment's tables hold before the race."""
    return claim_plan("prior", args.claim_prior, args.claim_users, PRIOR_BROADCAST, CLAIM_AT0 - 3_600_000)


class RedisClaims:
    """The Lua claim script over one key prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.sha = self.client.script_load(LUA)
        self.prefix = prefix
        self.keys = (f"{prefix}:decisions", f"{prefix}:stock", f"{prefix}:budget")

    def call(self, coupon_id: str, user: str, broadcast: int, at: int) -> tuple[Any, ...]:
        record = json.dumps([CLAIM_CAMPAIGN, CLAIM_ROOM, broadcast, CLAIM_TRIGGER, user, "five", at,
                             at + VALID_FOR_MS], separators=(",", ":"))
        return (*self.keys, f"{self.prefix}:n:{CLAIM_ROOM}:{broadcast}:{user}", f"{self.prefix}:last:{user}",
                coupon_id, at, FACE, BUDGET, PER_USER, MIN_INTERVAL_MS, record)

    def claim(self, chunk: Sequence[tuple[Any, ...]]) -> int:
        if len(chunk) == 1:
            return int(self.client.evalsha(self.sha, 5, *chunk[0]) == b"issued")
        pipe = self.client.pipeline(transaction=False)
        for call in chunk:
            pipe.evalsha(self.sha, 5, *call)
        return sum(1 for answer in pipe.execute() if answer == b"issued")

    def state(self) -> tuple[int, int, int, Counter[str]]:
        """(decisions recorded, stock used, budget spent, coupons per user in the raced broadcast)."""
        decisions, stock, budget = self.keys
        per_user: Counter[str] = Counter()
        for value in self.client.hvals(decisions):
            reason, record = value.split(b"|", 1)
            fields = json.loads(record)
            if reason == b"issued" and fields[2] == CLAIM_BROADCAST:
                per_user[fields[4]] += 1
        return (int(self.client.hlen(decisions)), STOCK - int(self.client.get(stock) or STOCK),
                int(self.client.get(budget) or 0), per_user)


class PostgresClaims:
    """PostgresStore.issue over one deployment schema (its counters in Redis with ``claims``)."""

    def __init__(self, url: str, name: str, claims: str | None = None) -> None:
        from livecoupon.domain.campaign import Limits
        from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
        from livecoupon.store.postgres import PostgresStore

        self.url, self.name = url, name
        self.five = CouponTemplate("five", "五元", Terms(CouponKind.NO_THRESHOLD, amount=FACE),
                                   valid_for_ms=VALID_FOR_MS, stock=STOCK)
        self.limits = Limits(per_user=PER_USER, min_interval_ms=MIN_INTERVAL_MS, budget=BUDGET)
        self.store = PostgresStore(url, name, claims=claims)

    def call(self, coupon_id: str, user: str, broadcast: int, at: int) -> Any:
        from livecoupon.domain.decisions import IssueRequest

        return IssueRequest(coupon_id, CLAIM_CAMPAIGN, CLAIM_ROOM, broadcast, CLAIM_TRIGGER, user, self.five, at)

    def claim(self, chunk: Sequence[Any]) -> int:
        return sum(1 for d in self.store.issue(chunk, self.limits) if d.issued)

    def state(self) -> tuple[int, int, int, Counter[str]]:
        import psycopg

        name = self.name
        totals = self.store.totals(CLAIM_CAMPAIGN)  # the counters PostgreSQL keeps, or with Redis its decisions
        stock, spent = sum(totals.stock_used.values()), totals.budget_spent
        with psycopg.connect(self.url, autocommit=True) as db:
            recorded = db.execute(f"SELECT count(*) FROM {name}.decisions").fetchone()[0]  # type: ignore[index]
            per_user = Counter(dict(db.execute(f"SELECT \"user\", count(*) FROM {name}.decisions WHERE reason IS "
                                               "NULL AND broadcast = %s GROUP BY \"user\"",
                                               (CLAIM_BROADCAST,)).fetchall()))
        return int(recorded), int(stock), int(spent), per_user


def claimer(backend: str, args: argparse.Namespace) -> RedisClaims | PostgresClaims:
    if backend == "redis":
        return RedisClaims(args.redis, args.child_prefix)
    return PostgresClaims(args.pg, args.child_name, claims=args.redis if backend.startswith("pg-redis") else None)


def claims_child(args: argparse.Namespace) -> int:
    """One claiming process: prepare, say ready, wait for go, claim for --claim-seconds, print what it did."""
    backend, index, batch = args.child, args.child_index, args.claim_batch_now
    locked = backend.startswith("pg") and not backend.startswith("pg-redis")  # claims under the campaign's lock
    cap = int(args.claim_seconds * (40_000 if locked else 150_000) / max(1, args.claim_procs)) + batch
    side = claimer(backend, args)
    calls = [side.call(*claim) for claim in claim_plan(f"p{index}", cap, args.claim_users)]
    latencies: list[float] = []
    issued = claimed = 0
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    started = time.perf_counter()
    deadline = started + args.claim_seconds
    while claimed + batch <= len(calls) and time.perf_counter() < deadline:
        t = time.perf_counter()
        issued += side.claim(calls[claimed:claimed + batch])
        latencies.append(time.perf_counter() - t)
        claimed += batch
    ended = time.perf_counter()
    print(json.dumps({"claimed": claimed, "issued": issued, "seconds": ended - started,
                      "exhausted": claimed + batch > len(calls),
                      "p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99)}), flush=True)
    return 0


@dataclass
class Claims:
    backend: str
    batch: int
    claimed: int = 0
    issued: int = 0
    seconds: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    check: str = ""

    @property
    def per_s(self) -> float:
        return self.claimed / self.seconds if self.seconds else 0.0


CLAIM_LABELS = {"redis": "Redis Lua script (EVALSHA; batched: pipelined)",
                "pg": "PostgresStore.issue (synchronous_commit=on)",
                "pg-async": "PostgresStore.issue (synchronous_commit=off)",
                "pg-cold": "PostgresStore.issue, fresh schema (no prior rows, no ANALYZE)",
                "pg-redis": "PostgresStore.issue, --claims redis:// (counters in Redis)",
                "pg-redis-async": "the same, synchronous_commit=off (a trade-off, not the default)"}
BACKENDS = tuple(CLAIM_LABELS)


def redis_cleanup(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    removed = 0
    for keys in _batched(client.scan_iter(match=f"{prefix}:*", count=5_000), 5_000):
        removed += client.unlink(*keys)
    return removed


def _batched(items: Iterable[Any], n: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_claims_variant(args: argparse.Namespace, work: Path, backend: str, batch: int, round_: int) -> Claims:
    result = Claims(backend, batch)
    args.child_name = name = f"lcb_claims_{RUN}_{round_}_{batch}_{backend.replace('-', '')}"
    args.child_prefix = prefix = f"lcbench:{RUN}:{round_}:{batch}:{backend}"
    env = server_env()
    if backend in ("pg-async", "pg-redis-async"):  # what the commit's flush costs; never the default
        env["PGOPTIONS"] = "-c synchronous_commit=off"
    procs: list[Proc] = []
    side: RedisClaims | PostgresClaims | None = None
    try:
        side = claimer(backend, args)
        if isinstance(side, RedisClaims):
            side.client.set(f"{prefix}:stock", STOCK)
        if backend != "pg-cold":  # the campaign's earlier broadcast, then the statistics autovacuum would gather
            calls = [side.call(*claim) for claim in prior_plan(args)]
            for start in range(0, len(calls), 500):
                side.claim(calls[start:start + 500])
            if isinstance(side, PostgresClaims):
                analyze(args.pg, name)
        before = side.state()
        for i in range(args.claim_procs):
            command = [sys.executable, str(Path(__file__).resolve()), "--child", backend, "--child-index", str(i),
                       "--claim-batch-now", str(batch), "--claim-seconds", str(args.claim_seconds),
                       "--claim-procs", str(args.claim_procs), "--claim-users", str(args.claim_users),
                       "--child-name", name, "--child-prefix", prefix, "--pg", args.pg, "--redis", args.redis]
            log_path = work / f"claims-{backend}-{batch}-{round_}-{i}.log"
            with log_path.open("wb") as err:
                popen = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         text=True, start_new_session=True,
                                         preexec_fn=die_with_parent if sys.platform == "linux" else None)
            procs.append(Proc(f"claims-{i}", popen, log_path))  # type: ignore[arg-type]
        for p in procs:
            line = p.popen.stdout.readline()  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise RuntimeError(f"claiming process {p.label} did not start: {p.tail()}")
        for p in procs:
            p.popen.stdin.write("go\n")  # type: ignore[union-attr]
            p.popen.stdin.flush()  # type: ignore[union-attr]
        answers = []
        for p in procs:
            out, _ = p.popen.communicate(timeout=args.claim_seconds + 120)
            if p.popen.returncode != 0:
                raise RuntimeError(f"claiming process {p.label} failed: {p.tail()}")
            answers.append(json.loads(out.strip().splitlines()[-1]))
        result.claimed = sum(a["claimed"] for a in answers)
        result.issued = sum(a["issued"] for a in answers)
        result.seconds = max(a["seconds"] for a in answers)
        result.p50 = statistics.median(a["p50"] for a in answers) * 1000
        result.p99 = max(a["p99"] for a in answers) * 1000
        problems = [f"process {i} ran out of prepared claims" for i, a in enumerate(answers) if a["exhausted"]]
        recorded, stock_used, spent, per_user = side.state()
        recorded, stock_used, spent = recorded - before[0], stock_used - before[1], spent - before[2]
        if recorded != result.claimed:
            problems.append(f"{recorded:,} decisions recorded for {result.claimed:,} claims")
        if not (stock_used == result.issued and spent == FACE * result.issued):
            problems.append(f"stock used {stock_used:,}, budget {spent:,} for {result.issued:,} issued")
        if per_user and max(per_user.values()) > PER_USER:
            problems.append(f"a user holds {max(per_user.values())} coupons (per_user {PER_USER})")
        result.check = "ok" if not problems else "; ".join(problems)
    finally:
        stop_all(procs)
        if isinstance(side, PostgresClaims):
            side.store.drop()  # the schema, and with --claims its counters in Redis
        if backend == "redis":
            redis_cleanup(args.redis, prefix)
        else:
            drop_schema(args.pg, name)
    log(f"  claims {backend}, batch {batch}: {result.claimed:,} in {result.seconds:.2f} s = {result.per_s:,.0f}/s, "
        f"{result.issued:,} issued; {result.check}")
    return result


def run_claims(args: argparse.Namespace, work: Path) -> list[list[Claims]]:
    """Per round, every variant; backends alternating in order from round to round."""
    rounds = []
    for round_ in range(args.claim_rounds):
        order = args.claim_backends if round_ % 2 == 0 else args.claim_backends[::-1]
        rounds.append([run_claims_variant(args, work, backend, batch, round_)
                       for batch in (1, args.claim_batch) for backend in order])
    return rounds


def claims_table(rounds: list[list[Claims]], args: argparse.Namespace) -> tuple[list[tuple[str, list[str]]],
                                                                                list[str]]:
    merged: dict[tuple[str, int], Claims] = {}
    spread: dict[tuple[str, int], list[float]] = {}
    for results in rounds:
        for c in results:
            m = merged.setdefault((c.backend, c.batch), Claims(c.backend, c.batch))
            m.claimed += c.claimed
            m.issued += c.issued
            m.seconds += c.seconds
            m.p50 = max(m.p50, c.p50)
            m.p99 = max(m.p99, c.p99)
            m.check = c.check if m.check in ("", "ok") else m.check
            spread.setdefault((c.backend, c.batch), []).append(c.per_s)
    rows, notes = [], []
    for batch in (1, args.claim_batch):
        redis_rate = merged[("redis", batch)].per_s
        for backend in args.claim_backends:
            c = merged[(backend, batch)]
            per_round = "/".join(f"{x:,.0f}" for x in spread[(backend, batch)])
            ratio = "" if backend == "redis" else f"{c.per_s / redis_rate:.1%} of Redis"
            verdict = "" if backend == "redis" else ("meets" if c.per_s >= 0.6 * redis_rate else "MISSES")
            rows.append((str(batch), [f"{CLAIM_LABELS[backend]}", f"{batch}", f"{c.claimed:,}", f"{c.seconds:.1f}",
                                      f"{c.per_s:,.0f}", per_round, f"{c.p50:.2f}", f"{c.p99:.2f}", f"{c.issued:,}",
                                      f"{c.claimed - c.issued:,}", ratio, verdict, c.check]))
    for backend in args.claim_backends[1:]:
        for batch in (1, args.claim_batch):
            ratios = [next(c for c in r if c.backend == backend and c.batch == batch).per_s
                      / next(c for c in r if c.backend == "redis" and c.batch == batch).per_s for r in rounds]
            notes.append(f"{backend}, {batch} a call, of Redis round by round: "
                         f"{' / '.join(f'{x:.1%}' for x in ratios)} (best {max(ratios):.1%})")
    notes.append(f"{args.claim_procs} processes at once, {args.claim_seconds:g} s per variant and round, "
                 f"{args.claim_rounds} round(s), backends alternating; claims/s = all processes' claims / the "
                 "slowest process' seconds (summed over rounds); p50/p99 per call (a call = 1 claim or one batch)")
    notes.append(f"each claim: one 5-yuan coupon for a random user of {args.claim_users:,} (the same claims for every "
                 f"backend), per_user {PER_USER} per broadcast, min_interval 2 min, stock and budget large enough "
                 "never to run out but read and checked on every claim; aim: PostgreSQL >= 60% of Redis")
    notes.append(f"before the race (not timed), except pg-cold: {args.claim_prior:,} claims of the campaign's earlier "
                 "broadcast, and on PostgreSQL ANALYZE of the schema's tables, as autovacuum would have run by then; "
                 "pg-cold starts on empty, never-analyzed tables, as a fresh deployment's first minute")
    return rows, notes


# -- main ------------------------------------------------------------------------------------------------------
def machine_lines(args: argparse.Namespace) -> list[str]:
    cpu, nproc = cpu_model(), usable_cores()
    pg_version = redis_version = "unknown"
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(args.pg, autocommit=True, connect_timeout=3) as db:
            pg_version = db.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            sync = db.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
            fsync = db.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
            pg_version += f" (synchronous_commit={sync}, fsync={fsync})"
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(args.redis, socket_connect_timeout=3)
        info = client.info("server")
        persistence = client.config_get("appendonly") | client.config_get("save")
        redis_version = (f"{info['redis_version']} (appendonly={persistence.get('appendonly')}, "
                         f"save={persistence.get('save')!r})")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"machine: nproc={nproc}  cpu={cpu}  python={platform.python_version()}  os={platform.system()} "
            f"{platform.release()}  load average at start: {load}",
            f"         PostgreSQL {pg_version}; {version_of([NATS_SERVER, '--version'])} (own, -js, temp dir); "
            f"Redis {redis_version}"]


def code_line(when: str) -> str:
    """The commit being measured, and whether src/ differs from it (others may commit while this runs)."""
    def git(*args: str) -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        return ""

    dirty = "src/ modified" if git("status", "--porcelain", "src") else "src/ clean"
    return f"code {when}: commit {git('rev-parse', '--short', 'HEAD') or 'unknown'} ({dirty})"


def sizes(text: str) -> list[int]:
    return [int(float(x)) for x in re.split(r"[,\s]+", text.strip()) if x]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere: a smoke test, not figures")
    parser.add_argument("--parts", default="throughput,restart,claims",
                        help="which parts, comma-separated (default all: throughput,restart,claims)")
    parser.add_argument("--pg", default=PG_URL, help=f"PostgreSQL on 127.0.0.1 (default {PG_URL})")
    parser.add_argument("--redis", default=REDIS_URL, help=f"Redis on 127.0.0.1 (default {REDIS_URL})")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir (SQLite, NATS files, logs) goes")
    throughput = parser.add_argument_group("1. throughput")
    throughput.add_argument("--rooms", type=int, default=16)
    throughput.add_argument("--viewers", type=int, help="viewers per room (default 400; quick 100)")
    throughput.add_argument("--seconds", type=int, help="broadcast seconds per room (default 1800; quick 600)")
    throughput.add_argument("--warm-viewers", type=int, default=100,
                            help="viewers per warm-up room (default 100): decisions in the tables before the clock")
    throughput.add_argument("--batch", type=int, default=500, help="events per POST (default 500)")
    throughput.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    throughput.add_argument("--workers", default="1,2,4", help="worker counts to run (default 1,2,4)")
    throughput.add_argument("--partitions", type=int, default=16, help="partitions (default 16)")
    throughput.add_argument("--no-pg-single", action="store_true",
                            help="skip the single process on PostgreSQL (no bus)")
    throughput.add_argument("--claims-in", default="pg,redis",
                            help="where claims are counted, each a set of rows: pg, redis (--claims; default both)")
    restart = parser.add_argument_group("2. restart")
    restart.add_argument("--restart-sizes", help="log lengths (default 100000,1000000,10000000; quick 20000,100000)")
    restart.add_argument("--tail", type=int, default=20_000,
                         help="entries after the snapshot (default 20,000: the snapshot policy's entries)")
    restart.add_argument("--whole-log-max", type=float, default=180.0,
                         help="skip a whole-log re-apply projected to take longer (seconds, default 180)")
    claims = parser.add_argument_group("3. claims")
    claims.add_argument("--claim-procs", type=int, default=4, help="claiming processes per backend (default 4)")
    claims.add_argument("--claim-seconds", type=float, help="seconds per variant (default 6; quick 2)")
    claims.add_argument("--claim-batch", type=int, default=50, help="claims per call in the batched rows (default 50)")
    claims.add_argument("--claim-rounds", type=int, default=1, help="rounds of every variant (default 1)")
    claims.add_argument("--claim-backends", default=",".join(BACKENDS),
                        help=f"backends to race, comma-separated, redis first (default {','.join(BACKENDS)})")
    claims.add_argument("--claim-users", type=int, default=1_000_000, help="users claims are spread over")
    claims.add_argument("--claim-prior", type=int, default=20_000,
                        help="claims of an earlier broadcast in the tables before the race (default 20,000)")
    for hidden in ("--child", "--child-name", "--child-prefix"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--child-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--claim-batch-now", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.claim_seconds = args.claim_seconds or (2.0 if args.quick else 6.0)
    if args.child:
        return claims_child(args)
    loopback_only(args.pg, "--pg")
    loopback_only(args.redis, "--redis")
    args.viewers = args.viewers or (100 if args.quick else 400)
    args.seconds = args.seconds or (600 if args.quick else 1800)
    args.workers = sizes(args.workers)
    args.claims_modes = [mode for mode in args.claims_in.split(",") if mode]
    if not set(args.claims_modes) <= set(CLAIMS_LABELS):
        parser.error(f"--claims-in {args.claims_in!r}: use pg, redis or both")
    args.claim_backends = tuple(b for b in args.claim_backends.split(",") if b)
    if args.claim_backends[:1] != ("redis",) or not set(args.claim_backends) <= set(BACKENDS):
        parser.error(f"--claim-backends {','.join(args.claim_backends)!r}: redis first, then any of "
                     f"{', '.join(BACKENDS)}")
    args.restart_sizes = sizes(args.restart_sizes or ("20000,100000" if args.quick else "100000,1000000,10000000"))
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"throughput", "restart", "claims"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if "throughput" in parts and not Path(NATS_SERVER).exists():
        raise SystemExit(f"nats-server not found (looked for {NATS_SERVER})")
    machine = [*machine_lines(args), f"         {code_line('at start')}"]
    for line in machine:
        log(line)
    started = time.perf_counter()
    tables: list[tuple[list[str], list[tuple[str, list[str]]], list[str], set[int]]] = []
    with tempfile.TemporaryDirectory(prefix="livecoupon-cluster-", dir=args.dir) as tmp:
        work = Path(tmp)
        if "throughput" in parts:
            rows, notes = throughput_table(run_throughput(args, work), args)
            tables.append((["#", "setup", "events", "decisions", "seconds", "events/s", "claims/s", "vs embedded",
                            "vs 1 worker", "p50 ms", "p99 ms", "CPU s over the window", "busy", "lock waiters",
                            "answers", "check"], rows, notes, {2, 3, 4, 5, 6, 7, 8, 9, 10, 12}))
        if "restart" in parts:
            rows, notes = restart_table(run_restart(args), args)
            tables.append((["log entries", "decisions", "events MiB", "snapshot MiB", "ids in snapshot",
                            "from snapshot s", "re-applied", "of which: read / unpickle / decisions s", "whole log s",
                            "re-applied", "faster", "whole entries/s", "gateway: serving / all back / before s",
                            "build s", "check"], rows, notes, set(range(14))))
        if "claims" in parts:
            rows, notes = claims_table(run_claims(args, work), args)
            tables.append((["backend (one campaign, 4 processes at once)", "per call", "claims", "seconds", "claims/s",
                            "per round", "p50 ms", "p99 ms", "issued", "suppressed", "PostgreSQL / Redis",
                            "aim 60%", "check"], rows, notes, {1, 2, 3, 4, 5, 6, 7, 8, 9}))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    for i, (head, rows, notes, right) in enumerate(tables):
        if i == len(tables) - 1:
            notes = [*notes, f"full run took {time.perf_counter() - started:.0f} s; load average at the end: {load}; "
                             "2 cores shared by every process of the run: noisy", code_line("at the end")]
        if head[0] == "#":
            rows = [(s, [s, *cells]) for s, cells in rows]
        print_table(machine if i == 0 else [], head, rows, notes, right=right)
    return 0


if __name__ == "__main__":
    sys.exit(main())
