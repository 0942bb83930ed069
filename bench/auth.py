#!/usr/bin/env python3
"""What the credential checks cost: the same requests with and without them, side by side.

    .venv/bin/python bench/auth.py               # 16 rounds (~2 minutes)
    .venv/bin/python bench/auth.py --quick       # 2 rounds: a smoke test, too few rounds for figures
    .venv/bin/python bench/auth.py --breakdown   # and where the viewer check's time goes (~5 minutes)

Two real ``uvicorn`` server processes on free loopback ports serve the app as
``livecoupon serve --clock event`` builds it (``bootstrap.build_app``, ``ClockMode.EVENT``,
``examples/campaign.yaml``, each on a fresh SQLite file in a temp dir), the same in all but
one thing:

- **checked**, as shipped: every request's credential is verified. ``POST /v1/events``
  compares the platform key (``X-API-Key``, constant time); ``GET /v1/users/{user}/coupons``
  verifies the viewer's HS256 JWT (``Authorization: Bearer``) with PyJWT and counts the
  request against the per-viewer and per-address rate limits.
- **unchecked**: ``app.dependency_overrides`` replace ``livecoupon.api.runtime.platform``
  and ``caller_of`` with one ``async`` function returning a fixed platform ``Caller``
  (which may act for any user): no header is read, nothing verified or counted.

``--breakdown`` adds servers that each leave one piece out, to see where the checked
variant's time goes (they get the same requests, so the same state; the pieces are
switched off in the benchmark's server process, by patching; nothing in ``src/`` changes):

- **unchecked-def**: the override is a plain ``def``, which FastAPI runs in its thread
  pool: unchecked plus that hop (the real dependencies are ``async def`` since 2026-11-29).
- **no-limits**: checked, without the per-viewer and per-address rate limits.
- **jwt-once**: checked, but each token is verified only the first time it is seen.

This process is the client: a minimal HTTP/1.1 keep-alive client on 2 connections, sending
both servers byte for byte the same requests, credentials included.

1. ``POST /v1/events``: batches of 500 joins, heartbeats and comments (one in ten says
   扣1) from 1,000 viewers in ``room-1``, timestamps increasing (one second of event time
   per batch). Each window posts at most ``--batches`` batches or runs ``--seconds``.
2. ``GET /v1/users/{user}/coupons`` with the user's own viewer token, round robin over the
   1,000 viewers (each holds one to three coupons from part 1). At most ``--gets``
   requests or ``--seconds`` per window.

The servers get a warm-up (every viewer joins, a few batches, a few hundred GETs) before
anything is timed. Then, in each of ``--rounds`` rounds, one window per variant, the order
reversed every other round: a burst of load elsewhere on the shared machine then falls on
all of them. Figures per variant: the rate (median over the rounds, and the best),
p50 and p99 of all its request latencies, and the server's CPU per request (its process'
user + system time over the window). The overhead is how much lower the checked variant's
rate is, as the median of the per-round paired ratios.

Both servers run with ``LIVECOUPON_VIEWER_RATE`` and ``LIVECOUPON_IP_RATE`` raised so
that nothing is refused (every viewer here comes from 127.0.0.1); the limiter still counts
each viewer request in the checked variant, as it does in production.

Bounded by counts and time, loopback only; the servers are stopped at the end (and get
SIGTERM if this process dies). Client and servers share the machine's cores: compare the
two variants of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from processes import cpu_model, die_with_parent, free_port, proc_cpu_seconds, usable_cores  # noqa: E402
from rawhttp import Connection, request_bytes, timed_clients, wait_healthy  # noqa: E402
from tables import print_table  # noqa: E402

from livecoupon.api.auth import Credentials  # noqa: E402

CAMPAIGN_FILE = ROOT / "examples" / "campaign.yaml"
ROOM = "room-1"
VIEWERS = 1_000
BATCH = 500
T0_MS = 1_767_225_600_000  # the stream's start (event time; the servers run on ClockMode.EVENT)
EVENT_SPACING_MS = 2  # 500 events = one second of event time
UNLIMITED = "1000000/second"
CHECKED, UNCHECKED = "checked", "unchecked"
BREAKDOWN = ("unchecked-def", "no-limits", "jwt-once")
CREDENTIALS = Credentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(32))
CHAT = ["主播好", "666", "这个多少钱", "上链接", "好看", "来了来了", "尺码偏大吗", "等发货"]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the server (a child process) ------------------------------------------------------------------------------
def serve(variant: str, port: int, db: Path) -> None:
    """Build the app as ``livecoupon serve --clock event`` does and run it (in the child)."""
    import uvicorn

    from livecoupon.api import runtime
    from livecoupon.api.auth import Caller, Role
    from livecoupon.bootstrap import build_app
    from livecoupon.campaign_file import load_campaign
    from livecoupon.engine.clock import ClockMode

    leave_out(variant)
    app = build_app(load_campaign(CAMPAIGN_FILE), db, Credentials.from_env(), ClockMode.EVENT)
    fixed = Caller(Role.PLATFORM)

    async def as_platform() -> Caller:
        return fixed

    def as_platform_in_thread() -> Caller:
        return fixed

    if variant in (UNCHECKED, "unchecked-def"):
        override = as_platform if variant == UNCHECKED else as_platform_in_thread
        app.dependency_overrides[runtime.platform] = override
        app.dependency_overrides[runtime.caller_of] = override
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=64 * 1024)


def leave_out(variant: str) -> None:
    """For ``--breakdown``: switch one piece of the check off in this (server) process."""
    if variant == "no-limits":
        from livecoupon.api.throttle import Throttle

        Throttle.check = lambda self, item, *key: None  # type: ignore[method-assign]
    elif variant == "jwt-once":
        from livecoupon.api.auth import Caller

        verify = Credentials.identify
        seen: dict[str, Caller | None] = {}

        def identify_once(self: Credentials, token: str) -> Caller | None:
            if token not in seen:
                seen[token] = verify(self, token)
            return seen[token]

        Credentials.identify = identify_once  # type: ignore[method-assign]








@dataclass
class Server:
    variant: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    cursor: int = 0  # the next batch of the stream this server gets

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid) or 0.0


def start_server(variant: str, work: Path, credentials: Credentials) -> Server:
    port = free_port()
    db, log_path = work / f"{variant}.db", work / f"{variant}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOUPON_")}
    env |= {"LIVECOUPON_API_KEY": credentials.api_key, "LIVECOUPON_PLATFORM_KEY": credentials.platform_key,
            "LIVECOUPON_VIEWER_SECRET": credentials.viewer_secret,
            "LIVECOUPON_VIEWER_RATE": UNLIMITED, "LIVECOUPON_IP_RATE": UNLIMITED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", variant, "--port", str(port),
               "--db", str(db)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                preexec_fn=die_with_parent if sys.platform == "linux" else None)
    return Server(variant, port, proc, log_path)


async def wait_ready(server: Server, timeout: float = 30) -> None:
    await wait_healthy(f"the {server.variant} server", server.port, server.proc, server.log_path, timeout)


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)


# -- the client (bench/rawhttp.py) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    request: bytes
    events: int = 0  # for POST /v1/events: how many it carries (all must be accepted)


@dataclass
class Window:
    """One variant's measured window: counts, wall seconds, latencies and the server's CPU."""

    requests: int = 0
    events: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)


async def run_window(server: Server, calls: Iterator[Call], max_seconds: float, connections: int) -> Window:
    """Send ``calls`` over ``connections`` keep-alive connections until they run out or time is up."""
    conns = [await Connection.open(server.port) for _ in range(connections)]
    window = Window()
    perf = time.perf_counter

    async def client(conn: Connection, stop_at: float) -> None:
        for call in calls:
            t = perf()
            status, body = await conn.send(call.request)
            window.latencies_ms.append((perf() - t) * 1000)
            window.requests += 1
            window.events += call.events
            if status != 200:
                window.failures.append(f"{status} {body[:200]!r}")
            window.answers.append(body)
            if perf() > stop_at:
                return

    window.seconds, window.cpu = await timed_clients(conns, client, max_seconds, server.cpu)
    return window


# -- what is sent ----------------------------------------------------------------------------------------------
def users() -> list[str]:
    return [f"viewer-{i:04d}" for i in range(VIEWERS)]


def events_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode()


def stream_batches(n: int) -> list[list[dict[str, Any]]]:
    """``n`` batches of 500 heartbeats, comments (one in ten 扣1) and re-joins, timestamps increasing."""
    rng = random.Random(20261129)
    people = users()
    batches = []
    for k in range(n):
        batch = []
        for j in range(BATCH):
            at = T0_MS + ((k + 2) * BATCH + j) * EVENT_SPACING_MS  # after the 1,000 joins of the warm-up
            e: dict[str, Any] = {"room": ROOM, "user": rng.choice(people), "ts": at / 1000, "id": f"b{k}-{j}"}
            roll = rng.random()
            if roll < 0.65:
                e["type"] = "heartbeat"
            elif roll < 0.90:
                e |= {"type": "comment", "text": "扣1" if rng.random() < 0.1 else rng.choice(CHAT)}
            else:
                e["type"] = "join"
            batch.append(e)
        batches.append(batch)
    return batches


def opening_events() -> list[list[dict[str, Any]]]:
    """live_start, then every viewer joins: two batches, before anything is timed."""
    people = users()
    joins = [{"type": "join", "room": ROOM, "user": u, "ts": (T0_MS + i * EVENT_SPACING_MS) / 1000,
              "id": f"join-{u}"} for i, u in enumerate(people)]
    joins[0:0] = [{"type": "live_start", "room": ROOM, "ts": T0_MS / 1000, "id": "start"}]
    return [joins[:BATCH], joins[BATCH:]]


def post_calls(port: int, bodies: Sequence[tuple[bytes, int]], headers: dict[str, str]) -> Iterator[Call]:
    for body, n in bodies:
        yield Call(request_bytes("POST", "/v1/events", port, headers, body), n)


def next_batches(server: Server, bodies: Sequence[tuple[bytes, int]], headers: dict[str, str],
                 limit: int) -> Iterator[Call]:
    """The server's next ``limit`` batches of the stream (each server has its own cursor)."""
    for call in post_calls(server.port, bodies[server.cursor:server.cursor + limit], headers):
        server.cursor += 1
        yield call


def get_calls(server: Server, tokens: dict[str, str], limit: int, offset: int) -> Iterator[Call]:
    people = list(tokens)
    for i in range(limit):
        user = people[(offset + i) % len(people)]
        yield Call(request_bytes("GET", f"/v1/users/{user}/coupons", server.port,
                                 {"authorization": f"Bearer {tokens[user]}"}))


# -- the run ---------------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One part (events or viewer GETs): the windows of each variant, round by round."""

    name: str
    unit: str
    variants: Sequence[str]
    windows: dict[str, list[Window]] = field(init=False)

    def __post_init__(self) -> None:
        self.windows = {v: [] for v in self.variants}

    def add(self, variant: str, window: Window) -> None:
        self.windows[variant].append(window)
        rate = self.rate(window)
        p99 = quantile(sorted(window.latencies_ms), 0.99)
        log(f"  {self.name} {variant:>15}: {rate:>9,.0f} {self.unit}/s, p99 {p99:6.1f} ms, "
            f"{window.requests:,} requests in {window.seconds:.2f} s"
            + (f", {len(window.failures)} FAILED: {window.failures[0]}" if window.failures else ""))

    def rate(self, window: Window) -> float:
        return (window.events if self.unit == "events" else window.requests) / window.seconds


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``values``."""
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] if values else float("nan")


async def run(args: argparse.Namespace, work: Path) -> tuple[list[Part], list[str]]:
    credentials = CREDENTIALS
    platform_headers = {"x-api-key": credentials.platform_key, "content-type": "application/json"}
    warm_batches = 6
    stream = stream_batches(warm_batches + args.rounds * args.batches)
    bodies = [(events_body(b), len(b)) for b in stream]
    tokens = {u: credentials.viewer_token(u, seconds=3600) for u in users()}
    notes: list[str] = []
    extra = BREAKDOWN if args.breakdown else ()
    servers = {v: start_server(v, work, credentials) for v in (CHECKED, UNCHECKED, *extra)}
    try:
        for server in servers.values():
            await wait_ready(server)
            log(f"{server.variant} server: http://127.0.0.1:{server.port} (pid {server.proc.pid})")
        notes += await sanity(servers)
        for server in servers.values():  # warm-up: every viewer joins, a few batches, a few hundred GETs
            opening = [(events_body(b), len(b)) for b in opening_events()]
            check(await run_window(server, post_calls(server.port, opening, platform_headers), 60, 1), "opening")
            check(await run_window(server, next_batches(server, bodies, platform_headers, warm_batches), 60,
                                   args.connections), "warm-up")
            check(await run_window(server, get_calls(server, tokens, 400, 0), 60, args.connections), "warm-up")
        events = Part("POST /v1/events", "events", (CHECKED, UNCHECKED, *extra))
        gets = Part("GET /v1/users/{user}/coupons", "requests", (CHECKED, UNCHECKED, *extra))
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for variant in order(r, events.variants):
                server = servers[variant]
                w = await run_window(server, next_batches(server, bodies, platform_headers, args.batches),
                                     args.seconds, args.connections)
                events.add(variant, w)
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            for variant in order(r, gets.variants):
                w = await run_window(servers[variant], get_calls(servers[variant], tokens, args.gets, r * args.gets),
                                     args.seconds, args.connections)
                gets.add(variant, w)
        notes += outcome_notes(events, gets)
    finally:
        for server in servers.values():
            stop_server(server)
    return [events, gets], notes


def order(round_index: int, variants: Sequence[str]) -> Sequence[str]:
    return variants if round_index % 2 == 0 else variants[::-1]


def check(window: Window, what: str) -> None:
    if window.failures:
        raise RuntimeError(f"{what}: {len(window.failures)} requests failed, first: {window.failures[0]}")


async def sanity(servers: dict[str, Server]) -> list[str]:
    """Each server is the variant it claims to be: without a credential, checked says 401 and
    unchecked lets the request through."""
    answers = {}
    for variant, server in ((v, servers[v]) for v in (CHECKED, UNCHECKED)):
        conn = await Connection.open(server.port)
        try:
            status, _ = await conn.send(request_bytes("GET", "/v1/users/nobody/coupons", server.port))
        finally:
            await conn.close()
        answers[variant] = status
    if answers != {CHECKED: 401, UNCHECKED: 200}:
        raise RuntimeError(f"the variants are not what they claim: GET without a credential answered {answers}")
    return ["checked: a GET without a credential answered 401; unchecked: 200 (the override is in place)"]


def outcome_notes(events: Part, gets: Part) -> list[str]:
    """What the servers answered: the same work on every side (issued coupons, coupons listed)."""
    notes = []
    issued = {}
    for variant, windows in events.windows.items():
        issued[variant] = sum(json.loads(a)["issued"] for w in windows for a in w.answers)
        rejected = sum(len(json.loads(a)["rejected"]) for w in windows for a in w.answers)
        if rejected:
            notes.append(f"{variant}: {rejected:,} events REJECTED")
    listed = {variant: sum(len(json.loads(a)["coupons"]) for w in windows for a in w.answers)
              / max(1, sum(w.requests for w in windows)) for variant, windows in gets.windows.items()}
    notes.append("coupons issued by the measured batches: " + ", ".join(f"{n:,} {v}" for v, n in issued.items())
                 + " (2 connections: batches may commit in a different order on each server); coupons per GET "
                 "answer: " + ", ".join(f"{n:.2f} {v}" for v, n in listed.items()))
    return notes


# -- where the time goes ---------------------------------------------------------------------------------------
def best_us(fn: Any, number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


async def _hops(n: int) -> float:
    from starlette.concurrency import run_in_threadpool

    def nothing() -> None:
        return None

    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            await run_in_threadpool(nothing)
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def per_call_costs(credentials: Credentials) -> str:
    """What each piece the checked variant adds costs per call, in this process (best of 5)."""
    import jwt

    from livecoupon.api.throttle import Throttle

    token = credentials.viewer_token("viewer-0001")
    key = credentials.viewer_secret.encode()
    throttle = Throttle(UNLIMITED, UNLIMITED)
    people = users()
    counter = iter(range(10**9))

    def two_hits() -> None:
        throttle.check(throttle.viewer, "viewer", people[next(counter) % VIEWERS])
        throttle.check(throttle.ip, "ip", "127.0.0.1")

    platform_key = best_us(lambda: credentials.identify(credentials.platform_key), 20_000)
    viewer = best_us(lambda: credentials.identify(token), 2_000)
    decode = best_us(lambda: jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]}),
                     2_000)
    hits = best_us(two_hits, 2_000)
    hop = loop_runner(_hops(2_000))
    return (f"per call, in this process, best of 5: identify(platform key) {platform_key:.1f} µs; identify(viewer "
            f"token) {viewer:.0f} µs, of which PyJWT's decode {decode:.0f} µs; the per-viewer and per-address "
            f"rate-limit hits {hits:.0f} µs; one thread-pool hop (FastAPI runs each plain-def dependency in its "
            f"thread pool) {hop:.0f} µs. POST /v1/events takes 2 such hops (caller_of, platform) and a key "
            f"comparison; the viewer GET 1 hop (caller_of), the JWT and the two hits")


def loop_runner(coro: Any) -> Any:
    """Run ``coro`` on uvloop when it is installed (as uvicorn does), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# -- the report ------------------------------------------------------------------------------------------------
def rows_of(part: Part) -> tuple[list[tuple[str, list[str]]], str]:
    """A row per variant, the overhead of the checks after the two main ones; the breakdown's
    variants say how much leaving their piece out saves against ``checked``."""
    rows: list[tuple[str, list[str]]] = []
    rates: dict[str, float] = {}
    p99s: dict[str, float] = {}
    cpus: dict[str, float] = {}
    for variant, windows in part.windows.items():
        lat = sorted(x for w in windows for x in w.latencies_ms)
        per_round = [part.rate(w) for w in windows]
        rates[variant] = statistics.median(per_round)
        p99s[variant] = quantile(lat, 0.99)
        requests = sum(w.requests for w in windows)
        cpu_us = cpus[variant] = sum(w.cpu for w in windows) / requests * 1e6
        failures = sum(len(w.failures) for w in windows)
        check = f"{failures} failed" if failures else "ok"
        if variant in BREAKDOWN:
            gain = statistics.median(part.rate(w) / part.rate(c) for w, c in zip(windows, part.windows[CHECKED],
                                                                                    strict=True)) - 1
            check += f"; against checked: rate {gain:+.1%}, CPU {cpu_us - cpus[CHECKED]:+,.0f} µs/req"
        rows.append((part.name, [part.name, variant, f"{requests:,}", f"{sum(w.events for w in windows):,}"
                                 if part.unit == "events" else "", f"{rates[variant]:,.0f}",
                                 f"{max(per_round):,.0f}", f"{quantile(lat, 0.5):.2f}", f"{p99s[variant]:.2f}",
                                 f"{cpu_us:,.0f}", check]))
    overhead, spread = paired_overhead(part, CHECKED, UNCHECKED)
    cpu_extra = cpus[CHECKED] - cpus[UNCHECKED]
    rows.insert(2, (part.name, [part.name, "overhead of the checks", "", "", f"{overhead:+.1f}%", "", "",
                                f"{p99s[CHECKED] - p99s[UNCHECKED]:+.2f}",
                                f"{cpu_extra:+,.0f} ({cpu_extra / cpus[UNCHECKED]:+.0%})",
                                f"per round {spread}; {'under' if overhead < 5 else 'NOT under'} 5%"]))
    summary = (f"{part.name}: {part.unit}/s checked {rates[CHECKED]:,.0f} vs unchecked {rates[UNCHECKED]:,.0f} "
               f"(median of {len(part.windows[CHECKED])} rounds); the checks cost {overhead:.1f}% of the rate "
               f"(median of the paired per-round ratios; rounds ranged {spread}) and {cpu_extra:,.0f} µs of server "
               f"CPU per request")
    return rows, summary


def paired_overhead(part: Part, slower: str, faster: str) -> tuple[float, str]:
    """How much lower ``slower``'s rate is than ``faster``'s, in %: the median of the per-round
    ratios, and their range."""
    paired = [part.rate(a) / part.rate(b) for a, b in zip(part.windows[slower], part.windows[faster], strict=True)]
    return (1 - statistics.median(paired)) * 100, f"{(1 - max(paired)) * 100:+.1f}% .. {(1 - min(paired)) * 100:+.1f}%"


def machine_lines(args: argparse.Namespace) -> list[str]:
    cpu, nproc = cpu_model(), usable_cores()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: nproc={nproc}  cpu={cpu}  python={platform.python_version()}  os={platform.system()} "
        f"{platform.release()}  load average at start: {load}",
        f"         servers: uvicorn {version('uvicorn')}, fastapi {version('fastapi')}, PyJWT {version('PyJWT')}, "
        f"unchecked = dependency_overrides with an async def",
        f"         {args.rounds} rounds, variants alternating; per window at most {args.batches} batches of {BATCH} "
        f"events or {args.gets:,} GETs, or {args.seconds:g} s; {args.connections} client connections",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds, 20 batches and 1,000 GETs per window: a smoke test, too few rounds to judge by")
    parser.add_argument("--rounds", type=int, help="rounds, each one window per variant (default 16; quick 2)")
    parser.add_argument("--batches", type=int, help="batches of 500 events per window (default 60; quick 20)")
    parser.add_argument("--gets", type=int, help="GETs per window (default 2,000; quick 1,000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="at most this long per window (default 15)")
    parser.add_argument("--connections", type=int, default=2, help="client connections (default 2)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also GET from servers that each leave one piece of the check out")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files and server logs go")
    parser.add_argument("--serve", choices=[CHECKED, UNCHECKED, *BREAKDOWN], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.db)
        return 0
    args.rounds = args.rounds or (2 if args.quick else 16)
    args.batches = args.batches or (20 if args.quick else 60)
    args.gets = args.gets or (1_000 if args.quick else 2_000)
    machine = machine_lines(args)
    for m in machine:
        log(m)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="livecoupon-auth-", dir=args.dir) as tmp:
        parts, notes = loop_runner(run(args, Path(tmp)))
    notes.append(per_call_costs(CREDENTIALS))
    head = ("part", "variant", "requests", "events", "per second", "best", "p50 ms", "p99 ms", "server CPU µs/req",
            "check")
    rows: list[tuple[str, list[str]]] = []
    for part in parts:
        part_rows, summary = rows_of(part)
        rows += part_rows
        notes.append(summary)
    notes.append(f"per second = median over the rounds; p50/p99 over every request of the variant; run took "
                 f"{time.perf_counter() - started:.0f} s; load average at the end: "
                 f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}. The client shares the machine's 2 cores")
    print_table(machine, head, rows, notes, right={2, 3, 4, 5, 6, 7, 8})
    return 0


if __name__ == "__main__":
    sys.exit(main())
