#!/usr/bin/env python3
"""Issue 10's two HTTP hot paths, measured with a light client: ingestion and checkout.

    .venv/bin/python bench/ingest.py                        # both sections, 3 rounds (~4 minutes)
    .venv/bin/python bench/ingest.py --quick                # 1 short round: a smoke test, not figures
    .venv/bin/python bench/ingest.py --before /tmp/before   # also a server from an older tree (its src/)

Every server is a real ``uvicorn`` process on a free loopback port, started the way
``livecoupon serve`` starts it (uvloop and httptools where installed), on a fresh SQLite file.

1. **Ingestion.** ``POST /v1/events`` with the platform key (``livecoupon serve --clock event``,
   ``examples/campaign.yaml``) against a bare Starlette endpoint that only ``json.loads`` the same
   body and answers ``{"accepted": n}``: the framework's floor. Both get byte for byte the same
   batches (``--batch`` events each: heartbeats, likes, comments, one in fifty saying 扣1, gifts,
   from 2,000 viewers, time moving forward) over ``--connections`` keep-alive connections, one
   window of ``--seconds`` each per round, the order swapped every other round. Printed: events/s
   of each, the ratio ours/bare, p50/p99 request latency and the server's CPU seconds per 100,000
   events.
2. **Checkout.** ``livecoupon serve`` as shipped (the machine's clock): the operator issues a
   ``dwell10`` coupon to each buyer, then ``--checkout-connections`` connections (a window at each
   count given: 16, 32 and 64 unless told; a fresh server and store each) each run
   ``POST /v1/orders`` (with the coupon) then ``POST /v1/orders/{id}/pay`` (platform key, the
   merchant's backend), buyer after buyer, for ``--seconds``. Printed: pairs/s, p50/p99 of a pair
   and of a single request, the server's CPU per pair and, of it, its event loop thread's (the rest
   is the writer thread's), and the client's (this process's) CPU per pair. Every answer is checked
   (201 with the discount, then 200 ``paid``). The summary gives each count's quietest window, and the
   highest rate whose pair p99 stays under 50 ms (issue 10's aim), with its count.
   Beside it in the same run (unless ``--no-bare``), the floor: a bare Starlette app whose two routes
   only ``json.loads`` the same bodies and answer an order of the same size, through the same client.

The client is this process: raw HTTP/1.1 over asyncio streams (uvloop if installed), no
httpx, so that it leaves the server the machine's cores. Client and servers still share them:
compare servers of one run, and read the load average printed with each round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from processes import cpu_model, die_with_parent, free_port, proc_cpu_seconds, usable_cores  # noqa: E402
from rawhttp import Connection, request_bytes, timed_clients, wait_healthy  # noqa: E402

CAMPAIGN_FILE = ROOT / "examples" / "campaign.yaml"
ROOM = "room-1"
VIEWERS = 2_000
T0_MS = 1_767_225_600_000  # the stream's start (event time; the ingest servers run on --clock event)
KEYS = {"LIVECOUPON_API_KEY": secrets.token_urlsafe(24), "LIVECOUPON_PLATFORM_KEY": secrets.token_urlsafe(24),
        "LIVECOUPON_VIEWER_SECRET": secrets.token_urlsafe(32)}
CHAT = ["主播好", "666", "这个多少钱", "上链接", "好看", "来了来了", "尺码偏大吗", "等发货"]
CART = [{"product": "sku-1", "category": "apparel", "price": 59.9, "qty": 1}]
CHECKOUT_P99_MS = 50  # issue 10: at least 2,000 pairs/s with a pair's p99 under 50 ms
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


# -- the servers (child processes) ------------------------------------------------------------------------------
def serve_bare(port: int) -> None:
    """The floor: Starlette alone, one route that json-decodes the body (in the child)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def events(request: Request) -> JSONResponse:
        batch = json.loads(await request.body())
        return JSONResponse({"accepted": len(batch), "rejected": []})

    async def order(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        return JSONResponse({"order_id": body["order_id"], "user": body["user"], "state": "created",
                             "coupon_id": body["coupon_id"], "subtotal": 59.9, "discount": 10, "payable": 49.9,
                             "created_at": "2026-11-30T10:00:00.000Z", "room": None,
                             "reserved_until": "2026-11-30T10:15:00.000Z"}, 201)

    async def paid(request: Request) -> JSONResponse:
        json.loads(await request.body())
        return JSONResponse({"order_id": request.path_params["order_id"], "user": "u", "state": "paid",
                             "coupon_id": "c", "subtotal": 59.9, "discount": 10, "payable": 49.9,
                             "created_at": "2026-11-30T10:00:00.000Z", "room": None,
                             "reserved_until": "2026-11-30T10:15:00.000Z"})

    app = Starlette(routes=[Route("/v1/events", events, methods=["POST"]),
                            Route("/v1/orders", order, methods=["POST"]),
                            Route("/v1/orders/{order_id}/pay", paid, methods=["POST"]),
                            Route("/health", lambda request: JSONResponse({"ok": True}))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=64 * 1024)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid) or 0.0

    def loop_cpu(self) -> float:
        """CPU seconds of the server's main thread alone: the event loop (HTTP), not the writer thread."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0


def start(name: str, work: Path, *, src: Path | None, clock: str = "event") -> Server:
    """``livecoupon serve`` from ``src`` (a tree's ``src/``), or the bare floor when ``src`` is None."""
    port = free_port()
    log_path = work / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOUPON_")} | KEYS
    if src is None:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", "--port", str(port)]
    else:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        command = [sys.executable, "-c", "from livecoupon.cli import main; main()", "serve",
                   "--config", str(CAMPAIGN_FILE), "--db", str(work / f"{name}.db"), "--host", "127.0.0.1",
                   "--port", str(port), "--clock", clock]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=die_with_parent if sys.platform == "linux" else None)
    return Server(name, port, proc, log_path)


async def wait_ready(server: Server, timeout: float = 30) -> None:
    await wait_healthy(server.name, server.port, server.proc, server.log_path, timeout)


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)


def profile(server: Server, args: argparse.Namespace, what: str) -> subprocess.Popen[bytes] | None:
    """``--py-spy DIR``: sample a livecoupon server over its window (collapsed stacks, without pausing it)."""
    if args.py_spy is None or server.name.startswith("bare"):
        return None
    spy = Path(sys.executable).with_name("py-spy")
    out = args.py_spy / f"{server.name}-{what}.txt"
    args.py_spy.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(spy), "record", "-p", str(server.proc.pid), "-d", str(int(args.seconds)), "-r", "100",
                             "--nonblocking", "--threads", "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.wait(30)


# -- the client (bench/rawhttp.py) ------------------------------------------------------------------------------
@dataclass
class Window:
    """One server's measured window."""

    server: str
    requests: int = 0
    units: int = 0  # events, or checkout pairs
    seconds: float = 0.0
    cpu: float = 0.0
    loop_cpu: float = 0.0  # of ``cpu``, the event loop's thread (checkout: the rest is the writer thread)
    client_cpu: float = 0.0  # this process's CPU seconds over the window: the client's share of the cores
    load: str = ""
    connections: int = 0  # checkout: the client's connections, each running one pair after another
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- 1. ingestion ------------------------------------------------------------------------------------------------
def event_batches(round_index: int, batches: int, size: int, facts: bool = False) -> list[bytes]:
    """``batches`` JSON arrays of ``size`` events, time moving on 1 ms an event from where the last round ended;
    ``facts``: each names its viewer's device and ip, as a platform that sends them does (SPEC §2)."""
    rng = random.Random(20261130 + round_index)
    people = [f"viewer-{i:04d}" for i in range(VIEWERS)]
    at = T0_MS + VIEWERS + round_index * 10_000_000  # each round well after the one before
    bodies = []
    for k in range(batches):
        batch: list[dict[str, Any]] = []
        for j in range(size):
            at += 1
            e: dict[str, Any] = {"type": "heartbeat", "room": ROOM, "user": rng.choice(people), "ts": at / 1000,
                                 "id": f"r{round_index}-{k}-{j}"}
            roll = rng.random()
            if roll < 0.25:
                e |= {"type": "like", "count": rng.randint(1, 5)}
            elif roll < 0.40:
                e |= {"type": "comment", "text": "扣1" if rng.random() < 0.02 else rng.choice(CHAT)}
            elif roll < 0.45:
                e |= {"type": "gift", "value": rng.choice([1, 6.6, 52])}
            if facts:
                number = int(e["user"][-4:])
                e |= {"device": f"dev-{number * 7919 % 10007:05d}", "ip": f"10.{number % 7}.{number % 251}.9"}
            batch.append(e)
        bodies.append(_encode(batch))
    return bodies


def opening_body() -> bytes:
    """live_start, then every viewer joins: sent before anything is timed."""
    events: list[dict[str, Any]] = [{"type": "live_start", "room": ROOM, "ts": T0_MS / 1000, "id": "start"}]
    events += [{"type": "join", "room": ROOM, "user": f"viewer-{i:04d}", "ts": (T0_MS + i + 1) / 1000,
                "id": f"join-{i}"} for i in range(VIEWERS)]
    return _encode(events)


async def post_window(server: Server, bodies: Sequence[bytes], size: int, seconds: float,
                      connections: int, *, again: bool = False) -> Window:
    """Post ``bodies`` in order over ``connections`` until they run out or ``seconds`` pass; ``again``:
    start over when they run out (for the bare floor, which keeps no state)."""
    headers = {"x-api-key": KEYS["LIVECOUPON_PLATFORM_KEY"], "content-type": "application/json"}
    requests = [request_bytes("POST", "/v1/events", server.port, headers, b) for b in bodies]
    todo: Iterator[bytes] = itertools.cycle(requests) if again else iter(requests)
    conns = [await Connection.open(server.port) for _ in range(connections)]
    window = Window(server.name, load=load())
    perf = time.perf_counter

    async def client(conn: Connection, stop_at: float) -> None:
        for request in todo:
            t = perf()
            status, body = await conn.send(request)
            window.latencies_ms.append((perf() - t) * 1000)
            window.requests += 1
            accepted = _decode(body).get("accepted") if status == 200 else None
            if accepted != size:
                window.failures.append(f"{status} {body[:300]!r}")
            else:
                window.units += size
            if perf() > stop_at:
                return

    window.seconds, window.cpu = await timed_clients(conns, client, seconds, server.cpu)
    return window


async def section_ingest(args: argparse.Namespace, work: Path) -> list[Window]:
    trees = [("ours", args.ours / "src"), *([("before", args.before / "src")] if args.before else []), ("bare", None)]
    servers = [start(name, work, src=src) for name, src in trees]
    windows: list[Window] = []
    try:
        for s in servers:
            await wait_ready(s)
        opening = opening_body()
        for s in servers:
            w = await post_window(s, [opening], VIEWERS + 1, 60, 1)
            if w.failures:
                raise RuntimeError(f"{s.name}: the opening batch failed: {w.failures[0]}")
        batches = max(4, int(args.ingest_ceiling * args.seconds / args.batch))
        for r in range(args.rounds):
            log(f"ingest round {r + 1}/{args.rounds}: building {batches} batches of {args.batch:,} ({load()})")
            bodies = event_batches(r, batches, args.batch, args.facts)
            for s in servers if r % 2 == 0 else servers[::-1]:
                spy = profile(s, args, f"ingest-{r}")
                w = await post_window(s, bodies, args.batch, args.seconds, args.connections, again=s.name == "bare")
                windows.append(w)
                finish(spy)
                log(f"  {s.name:6} {w.rate:>10,.0f} events/s  p50 {w.quantile(0.5):6.1f} ms  "
                    f"p99 {w.quantile(0.99):6.1f} ms  cpu {w.cpu / max(w.units, 1) * 1e5:5.2f} s/100k  "
                    f"{w.load}{'  FAILURES: ' + w.failures[0] if w.failures else ''}")
                if w.requests == len(bodies) and s.name != "bare":
                    log(f"  ({s.name} used every batch before the window ended: raise --ingest-ceiling)")
    finally:
        for s in servers:
            stop(s)
    return windows


# -- 2. checkout -------------------------------------------------------------------------------------------------
async def issue_coupons(server: Server, buyers: Sequence[str]) -> dict[str, str]:
    conn = await Connection.open(server.port)
    coupons: dict[str, str] = {}
    try:
        for i in range(0, len(buyers), 500):
            body = _encode({"template": "dwell10", "users": list(buyers[i:i + 500]), "room": ROOM,
                            "idempotency_key": f"bench-issue-{i}"})
            status, answer = await conn.send(request_bytes(
                "POST", "/v1/admin/issue", server.port,
                {"x-api-key": KEYS["LIVECOUPON_API_KEY"], "content-type": "application/json"}, body))
            if status != 200:
                raise RuntimeError(f"{server.name}: issuing failed: {status} {answer[:300]!r}")
            coupons.update((d["user"], d["coupon_id"]) for d in _decode(answer)["decisions"] if d["issued"])
    finally:
        await conn.close()
    return coupons


async def checkout_window(server: Server, coupons: dict[str, str], seconds: float, connections: int,
                          warm: int) -> Window:
    headers = {"x-api-key": KEYS["LIVECOUPON_PLATFORM_KEY"], "content-type": "application/json"}
    port = server.port

    def create(user: str) -> bytes:
        return request_bytes("POST", "/v1/orders", port, headers, _encode(
            {"order_id": f"order-{user}", "user": user, "cart": CART, "coupon_id": coupons[user],
             "idempotency_key": f"create-{user}"}))

    def pay(user: str) -> bytes:
        return request_bytes("POST", f"/v1/orders/order-{user}/pay", port, headers,
                             _encode({"idempotency_key": f"pay-{user}"}))

    pairs = [(create(u), pay(u)) for u in coupons]  # built before the clock starts
    conns = [await Connection.open(port) for _ in range(connections)]
    window = Window(server.name)
    singles: list[float] = []
    perf = time.perf_counter

    async def one(conn: Connection, pair: tuple[bytes, bytes]) -> None:
        t = perf()
        status, body = await conn.send(pair[0])
        t1 = perf()
        if status != 201 or _decode(body).get("discount") != 10:
            window.failures.append(f"create {status} {body[:300]!r}")
            return
        status, body = await conn.send(pair[1])
        t2 = perf()
        if status != 200 or _decode(body).get("state") != "paid":
            window.failures.append(f"pay {status} {body[:300]!r}")
            return
        window.latencies_ms.append((t2 - t) * 1000)
        singles.extend(((t1 - t) * 1000, (t2 - t1) * 1000))
        window.units += 1
        window.requests += 2

    todo = iter(pairs)
    for conn, pair in zip(conns * warm, todo, strict=False):  # connections, caches, first-request costs
        await one(conn, pair)
    window.units, window.requests, window.latencies_ms, singles[:] = 0, 0, [], []

    async def client(conn: Connection, stop_at: float) -> None:
        for pair in todo:
            await one(conn, pair)
            if perf() > stop_at:
                return

    window.load = load()
    loop0, client0 = server.loop_cpu(), time.process_time()
    window.seconds, window.cpu = await timed_clients(conns, client, seconds, server.cpu)
    window.loop_cpu, window.client_cpu = server.loop_cpu() - loop0, time.process_time() - client0
    singles.sort()
    window.failures += [f"single p99 {singles[int(0.99 * len(singles))]:.1f} ms"] if singles else []
    return window


async def checkout_round(args: argparse.Namespace, work: Path, name: str, src: Path | None, r: int,
                         connections: int) -> Window:
    """One server's checkout window at ``connections`` connections, on a fresh server and a fresh store."""
    server = start(f"{name}-checkout-{r}-{connections}", work, src=src, clock="wall")
    try:
        await wait_ready(server)
        if src is None:  # the floor keeps nothing: its coupons are names, as many as it can use
            coupons = {b: f"coupon-{b}" for b in (f"buyer-{r}-{i:06d}" for i in range(4 * args.buyers))}
        else:
            coupons = await issue_coupons(server, [f"buyer-{r}-{i:06d}" for i in range(args.buyers)])
        spy = profile(server, args, f"checkout-{r}-{connections}")
        w = await checkout_window(server, coupons, args.seconds, connections, warm=2)
        finish(spy)
        w.server, w.connections = name, connections
        single = w.failures.pop() if w.failures and w.failures[-1].startswith("single") else ""
        log(f"  checkout {name:6} {connections:3} conns {w.rate:>7,.0f} pairs/s  pair p50 {w.quantile(0.5):6.1f} ms  "
            f"p99 {w.quantile(0.99):6.1f} ms  ({single})  cpu {w.cpu / max(w.units, 1) * 1e3:5.2f} ms/pair "
            f"(event loop {w.loop_cpu / max(w.units, 1) * 1e3:4.2f}; "
            f"client {w.client_cpu / max(w.units, 1) * 1e3:4.2f})  "
            f"{w.load}{'  FAILURES: ' + w.failures[0] if w.failures else ''}")
        if w.units + 2 * connections >= len(coupons):
            log(f"  ({name} ran out of buyers before the window ended: raise --buyers)")
    finally:
        stop(server)
    return w


async def section_checkout(args: argparse.Namespace, work: Path) -> list[Window]:
    trees: list[tuple[str, Path | None]] = [("ours", args.ours / "src"),
                                            *([("before", args.before / "src")] if args.before else []),
                                            *([] if args.no_bare else [("bare", None)])]
    windows: list[Window] = []
    for r in range(args.rounds):
        for connections in args.checkout_connections:
            for name, src in trees if r % 2 == 0 else trees[::-1]:
                windows.append(await checkout_round(args, work, name, src, r, connections))
    return windows


# -- the report ------------------------------------------------------------------------------------------------------
def machine() -> str:
    import sqlite3

    return (f"machine: {cpu_model()}, {usable_cores()} cores (nproc {os.cpu_count()}), Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; {load()} at the start")


def best(windows: Sequence[Window], name: str) -> Window | None:
    """The quietest window of a server: its best rate, since the shared machine only ever slows a run down."""
    mine = [w for w in windows if w.server == name and not w.failures]
    return max(mine, key=lambda w: w.rate) if mine else None


def summary(ingest: Sequence[Window], checkout: Sequence[Window]) -> list[str]:
    lines = []
    bare = best(ingest, "bare")
    for name in ("ours", "before"):
        w = best(ingest, name)
        if w is not None and bare is not None:
            rounds = [o.rate / b.rate for o, b in zip([x for x in ingest if x.server == name],
                                                      [x for x in ingest if x.server == "bare"], strict=False)]
            per_round = ", ".join(f"{x:.2f}" for x in rounds)
            lines.append(f"ingest {name}: {w.rate:,.0f} events/s (p99 {w.quantile(0.99):.1f} ms, {w.load}) vs bare "
                         f"{bare.rate:,.0f}: {w.rate / bare.rate:.2f}x (per round {per_round})")
    for name in ("ours", "before", "bare"):
        for connections in sorted({w.connections for w in checkout}):
            w = best([x for x in checkout if x.connections == connections], name)
            if w is not None:
                lines.append(f"checkout {name} at {connections} connections: {w.rate:,.0f} pairs/s, pair p50 "
                             f"{w.quantile(0.5):.1f} ms, p99 {w.quantile(0.99):.1f} ms ({w.load})")
        within = [w for w in checkout if w.server == name and not w.failures
                  and w.quantile(0.99) < CHECKOUT_P99_MS]
        if within:
            w = max(within, key=lambda x: x.rate)
            lines.append(f"checkout {name}: {w.rate:,.0f} pairs/s with pair p99 {w.quantile(0.99):.1f} ms "
                         f"< {CHECKOUT_P99_MS} ms, at {w.connections} connections")
    failed = [w for w in [*ingest, *checkout] if w.failures]
    lines += [f"FAILED {w.server}: {w.failures[0]}" for w in failed]
    return lines


async def main_async(args: argparse.Namespace) -> int:
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="livecoupon-ingest-") as tmp:
        work = Path(tmp)
        ingest = [] if args.skip_ingest else await section_ingest(args, work)
        checkout = [] if args.skip_checkout else await section_checkout(args, work)
    for line in summary(ingest, checkout):
        print(line)
    return 1 if any(w.failures for w in [*ingest, *checkout]) else 0


def connection_counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(n) for n in text.split(","))
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: connection counts are whole numbers from 1, comma-separated")
    return counts


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="each server's window per round")
    p.add_argument("--batch", type=int, default=5_000, help="events per POST /v1/events")
    p.add_argument("--facts", action="store_true", help="every event names its viewer's device and ip")
    p.add_argument("--connections", type=int, default=2, help="keep-alive connections posting events")
    p.add_argument("--ingest-ceiling", type=float, default=400_000,
                   help="events/s the pre-built batches must last for (they are built before each round)")
    p.add_argument("--checkout-connections", type=connection_counts, default=(16, 32, 64), metavar="N[,N…]",
                   help="checkout's concurrency: a window at each (default 16,32,64); the summary names the "
                        f"highest rate whose pair p99 stays under {CHECKOUT_P99_MS} ms")
    p.add_argument("--buyers", type=int, default=20_000, help="coupons issued before each checkout window")
    p.add_argument("--ours", type=Path, default=ROOT, help="the tree measured as ours (default: this checkout)")
    p.add_argument("--before", type=Path, help="a tree (with src/) to measure beside this one, e.g. an older commit")
    p.add_argument("--py-spy", type=Path, metavar="DIR", help="profile our servers' windows with py-spy into DIR")
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-checkout", action="store_true")
    p.add_argument("--no-bare", action="store_true", help="checkout without the bare Starlette floor beside it")
    p.add_argument("--quick", action="store_true", help="one round of 2 s: a smoke test")
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.buyers = 1, 2.0, 6_000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.serve_bare:
        serve_bare(args.port)
        return 0
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
