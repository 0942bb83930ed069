#!/usr/bin/env python3
"""Popup latency benchmark: from a posted event to the coupon frame on the viewer's socket.

    .venv/bin/python bench/latency.py            # full run (~2 minutes)
    .venv/bin/python bench/latency.py --quick    # scaled down (under a minute)

What it does (SPEC §2, §6; docs/design.md "Delivery"):

1. Steady load. A real ``livecoupon serve`` subprocess (its own process, so its own
   core) on a free loopback port, campaign ``delivery: {quiet_period: 0, room_rate:
   null}``. 2,000 viewers open ``WS /v1/rooms/bench-room/live?token=T`` (each with its own
   viewer token), then join via posted events (platform key; their newcomer coupons are
   received and acked before the run). Then
   for 20 s a steady 2,000 events/s (heartbeats, likes, comments) is posted in batches
   of 20 every 10 ms via ``POST /v1/events``; each viewer's one ``扣1`` comment (spread
   evenly over the run) issues a coupon. Latency = the viewer's receipt of that coupon
   frame minus the client send time of the batch that carried the comment.
   Target: p99 < 20 ms.
2. Milestone. 10,000 connected, present viewers in one room, one posted
   ``online_count`` of 10,000 (an ``online_reached`` trigger, ``audience: present``):
   time until the LAST viewer has the popup, (a) with ``room_rate: null`` and (b) with
   the default pacing ``room_rate: 2000`` (quiet_period 0), which smooths the burst:
   ~1,000 popups at once (0.5 s burst allowance), the rest over ~4.5 s.

   While the popups fan out, one heartbeat is posted every 50 ms: its round trip is
   how long a platform's events wait meanwhile.

The servers run as shipped: the machine's clock (``--clock wall``; every event is stamped
with the client's ``time.time()``, the same clock), every request's credential checked,
the per-viewer rate limits at their defaults. Only the per-address limit is raised
(``LIVECOUPON_IP_RATE``), since every viewer here comes from 127.0.0.1.

Each phase runs on a fresh server and SQLite file; viewers ack every popup as a client
should (``--no-ack`` to see what that costs). The client keeps its own garbage
collector out of the measured windows (``gc.freeze()`` + ``gc.disable()``: with 10,000
sockets a full collection of the client takes ~0.5 s); the server runs as shipped.
``--py-spy DIR`` samples the server during each measured window (py-spy on PATH) and
prints its busiest functions per thread.

Everything is bounded by counts and timeouts, loopback only, and every server is
stopped at the end (and gets SIGTERM if this process dies). The client (all sockets,
one asyncio process, uvloop if installed) shares the machine with the server: numbers
are noisy, compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import websockets
from processes import cpu_model, die_with_parent, free_port, proc_cpu_seconds, usable_cores  # noqa: E402
from tables import fmt
from tables import print_table as print_rows
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from livecoupon.api.auth import Credentials  # noqa: E402

ROOM = "bench-room"
KEYWORD = "扣1"
MILESTONE_COUNT = 10_000
STEADY_TARGET_P99_MS = 20.0
PACED_RATE = 2_000  # the default room_rate
CREDENTIALS = Credentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(32))
IP_RATE = "1000000/second"  # every viewer of the benchmark comes from 127.0.0.1
PLATFORM = {"X-API-Key": CREDENTIALS.platform_key}  # POST /v1/events, as a platform sends them

CAMPAIGN = """\
# bench/latency.py: written to a temp file per phase
campaign: bench-latency
rooms: ["{room}"]
presence_timeout: 60s
seed: 7
coupons:
  newcomer: {{title: 新人专享券, kind: threshold, threshold: 99, amount: 20, valid_for: 30m}}
  kou1: {{title: 互动券, kind: no_threshold, amount: 5, valid_for: 15m}}
  bonus: {{title: 满万福利, kind: threshold, threshold: 199, amount: 50, valid_for: 1h}}
triggers:
  - {{name: newcomer, when: first_visit, coupon: newcomer}}
  - {{name: milestone, when: online_reached, source: reported, count: {count}, coupon: bonus, audience: present}}
  - {{name: kou1, when: comment, keywords: ["{keyword}"], coupon: kou1}}
delivery: {{quiet_period: 0, room_rate: {room_rate}}}
"""


# -- the report ------------------------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    what: str
    n: int | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    unit: str = "ms"
    target: str = ""
    check: str = ""


ROWS: list[Row] = []
NOTES: list[str] = []


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def record(row: Row) -> Row:
    ROWS.append(row)
    figures = " ".join(f"{k}={v:,.1f}" for k, v in (("p50", row.p50), ("p90", row.p90), ("p99", row.p99),
                                                    ("max", row.max)) if v is not None)
    log(f"  [{row.section}] {row.what}: n={row.n if row.n is not None else ''} {figures} {row.unit} {row.check}")
    return row


def print_table(machine: list[str]) -> None:
    head = ("#", "measurement", "n", "p50", "p90", "p99", "max", "unit", "target", "check")
    body = [(r.section, r.what, fmt(r.n, ","), fmt(r.p50, ",.1f"), fmt(r.p90, ",.1f"), fmt(r.p99, ",.1f"),
             fmt(r.max, ",.1f"), r.unit, r.target, r.check) for r in ROWS]
    print_rows(machine, head, [(r.section, cells) for r, cells in zip(ROWS, body, strict=True)], NOTES,
               right={2, 3, 4, 5, 6})


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def dist_row(section: str, what: str, values_ms: list[float], **kw: Any) -> Row:
    values = sorted(values_ms)
    return record(Row(section, what, len(values), quantile(values, 0.5), quantile(values, 0.9),
                      quantile(values, 0.99), values[-1] if values else None, **kw))


# -- the machine -----------------------------------------------------------------------------------------------
def machine_lines(loop_name: str) -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: nproc={usable_cores()}  cpu={cpu_model()}  python={platform.python_version()}  "
        f"os={platform.system()} {platform.release()}",
        f"         client: one asyncio process ({loop_name}), websockets {version('websockets')}, "
        f"httpx {version('httpx')}; load average at start: {load}",
    ]




# -- the server ------------------------------------------------------------------------------------------------




@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://")

    def cpu(self) -> float | None:
        return proc_cpu_seconds(self.proc.pid)


@contextlib.asynccontextmanager
async def running_server(work: Path, name: str, room_rate: int | None) -> AsyncIterator[Server]:
    """``livecoupon serve`` on a fresh SQLite file; stopped (SIGTERM, then SIGKILL) on the way out."""
    config = work / f"{name}.yaml"
    config.write_text(CAMPAIGN.format(room=ROOM, keyword=KEYWORD, count=MILESTONE_COUNT,
                                      room_rate="null" if room_rate is None else room_rate), encoding="utf-8")
    db = work / f"{name}.db"
    log_path = work / f"{name}.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOUPON_")}
    env |= {"LIVECOUPON_API_KEY": CREDENTIALS.api_key, "LIVECOUPON_PLATFORM_KEY": CREDENTIALS.platform_key,
            "LIVECOUPON_VIEWER_SECRET": CREDENTIALS.viewer_secret, "LIVECOUPON_IP_RATE": IP_RATE}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    with log_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "livecoupon", "serve", "--config", str(config), "--db", str(db),
                                 "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent if sys.platform == "linux" else None)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited: {log_path.read_text(errors='replace')[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{server.url}/health", timeout=1)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the server did not start within 30 s")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 5)


# -- optional profile of the server (py-spy) -------------------------------------------------------------------
SPY: dict[str, Any] = {"dir": None, "native": False}
ACK = {"on": True}


@contextlib.asynccontextmanager
async def spying(server: Server, name: str) -> AsyncIterator[None]:
    """With ``--py-spy DIR``: sample the server (all threads, idle included) for the duration of the block."""
    out_dir: Path | None = SPY["dir"]
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.txt"
    mode = ["--native", "--rate", "100"] if SPY["native"] else ["--nonblocking", "--rate", "250"]
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.proc.pid), "--format", "raw", "--threads", *mode,
                            "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    await asyncio.sleep(0.5)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(spy.wait, 20)
        except subprocess.TimeoutExpired:
            spy.kill()
        if out.exists():
            log(summarise_profile(out))
            NOTES.append(f"py-spy profile of the server during {name}: {out} (collapsed stacks)")


def summarise_profile(path: Path, top: int = 8) -> str:
    """On-CPU samples per server thread, with each thread's top functions (self, and inclusive below
    the frames every sample of the thread shares)."""
    threads: dict[str, list[tuple[list[str], int]]] = {}
    for text_line in path.read_text(errors="replace").splitlines():
        stack, _, count = text_line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        threads.setdefault(head.partition(": ")[2] or head, []).append((frames, int(count)))
    rate = 100 if SPY["native"] else 250
    lines = [f"  py-spy {path.name} (samples of non-idle threads at {rate}/s):"]
    for name, stacks in sorted(threads.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        total = sum(n for _, n in stacks)
        leaf: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        for frames, n in stacks:
            if frames:
                leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
            for f in set(frames):
                inclusive[f] = inclusive.get(f, 0) + n
        below = {f: n for f, n in inclusive.items() if n < 0.9 * total}
        lines.append(f"   {name}: {total} samples = {total / rate:.2f} s CPU")
        lines.append("     self: " + "; ".join(f"{n / total:.0%} {f}" for f, n in
                                              sorted(leaf.items(), key=lambda kv: -kv[1])[:top]))
        lines.append("     incl: " + "; ".join(f"{n / total:.0%} {f}" for f, n in
                                              sorted(below.items(), key=lambda kv: -kv[1])[:top]))
    return "\n".join(lines)


@contextlib.contextmanager
def client_gc_quiet() -> Any:
    """Keep the client's own garbage collector out of the figures: everything alive now (10,000
    sockets are ~1M objects, and a full collection of those takes ~0.5 s here) moves to the permanent
    generation, and collection is off for the measured window."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@contextlib.asynccontextmanager
async def measuring(server: Server, name: str) -> AsyncIterator[None]:
    """A measured window: the client's GC kept quiet, the server sampled when ``--py-spy`` is given."""
    async with spying(server, name):
        with client_gc_quiet():
            yield


# -- the viewers -----------------------------------------------------------------------------------------------
@dataclass
class Viewers:
    """One WebSocket per viewer; every coupon frame is timestamped on arrival and acked."""

    ws_base: str
    users: list[str]
    ack: bool = True
    arrivals: dict[str, dict[str, float]] = field(default_factory=dict)  # trigger -> user -> perf_counter
    errors: list[str] = field(default_factory=list)
    frames: int = 0
    _sockets: dict[str, ClientConnection] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, concurrency: int = 200, timeout: float = 120) -> float:
        """Open every viewer's socket; returns the seconds it took."""
        tokens = {user: CREDENTIALS.viewer_token(user) for user in self.users}  # the merchant's backend mints these
        started = time.perf_counter()
        gate = asyncio.Semaphore(concurrency)

        async def one(user: str) -> None:
            async with gate:
                url = f"{self.ws_base}/v1/rooms/{ROOM}/live?token={tokens[user]}"
                for attempt in range(3):
                    try:
                        ws = await connect(url, open_timeout=30, ping_interval=None, close_timeout=2,
                                           max_queue=64)
                        break
                    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                        if attempt == 2:
                            self.errors.append(f"{user}: {type(exc).__name__}: {exc}")
                            return
                        await asyncio.sleep(0.2)
                self._sockets[user] = ws
                self._tasks.append(asyncio.create_task(self._receive(user, ws)))

        await asyncio.wait_for(asyncio.gather(*(one(u) for u in self.users)), timeout)
        return time.perf_counter() - started

    async def _receive(self, user: str, ws: ClientConnection) -> None:
        perf = time.perf_counter
        arrivals = self.arrivals
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            async for raw in ws:
                now = perf()
                message = json.loads(raw)
                self.frames += 1
                if message.get("type") != "coupon":
                    continue
                arrivals.setdefault(message.get("trigger", "?"), {}).setdefault(user, now)
                if self.ack:
                    await ws.send(json.dumps({"type": "ack", "coupon_id": message["coupon_id"]}))

    def count(self, trigger: str) -> int:
        return len(self.arrivals.get(trigger, ()))

    async def wait_for(self, trigger: str, n: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while self.count(trigger) < n:
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    @property
    def connected(self) -> int:
        return len(self._sockets)

    async def close(self) -> None:
        sockets = list(self._sockets.values())
        for start in range(0, len(sockets), 1_000):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets[start:start + 1_000]),
                                                      return_exceptions=True), 10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sockets.clear()
        self._tasks.clear()


def users(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


async def post(http: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    answer = await http.post("/v1/events", content=json.dumps(events, ensure_ascii=False).encode(),
                             headers={"content-type": "application/json"})
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    if body.get("rejected"):
        raise RuntimeError(f"events rejected: {body['rejected'][:3]}")
    return body


async def join_all(http: httpx.AsyncClient, viewers: Viewers, batch: int, timeout: float) -> float:
    """live_start, then every viewer joins (batches); waits for (and acks) every newcomer coupon."""
    started = time.perf_counter()
    await post(http, [{"type": "live_start", "room": ROOM, "ts": time.time(), "id": "start"}])
    for offset in range(0, len(viewers.users), batch):
        ts = time.time()
        await post(http, [{"type": "join", "room": ROOM, "user": u, "ts": ts, "id": f"join-{u}"}
                          for u in viewers.users[offset:offset + batch]])
    if not await viewers.wait_for("newcomer", viewers.connected, timeout):
        raise RuntimeError(f"only {viewers.count('newcomer'):,} of {viewers.connected:,} newcomer popups arrived "
                           f"within {timeout:.0f} s")
    return time.perf_counter() - started


async def settle(http: httpx.AsyncClient, viewers: Viewers, seconds: float = 0.5) -> None:
    """Let the acks reach the server, then post a heartbeat for everyone: the service runs its store
    work on one writer thread in order, so the answer also means every earlier ack is committed."""
    await asyncio.sleep(seconds)
    ts = time.time()
    for offset in range(0, len(viewers.users), 10_000):
        await post(http, [{"type": "heartbeat", "room": ROOM, "user": u, "ts": ts, "id": f"hb-{u}-{ts}"}
                          for u in viewers.users[offset:offset + 10_000]])


# -- 1. steady load --------------------------------------------------------------------------------------------
async def steady(work: Path, n_viewers: int, seconds: float, rate: int, every_ms: float, in_flight: int) -> None:
    interval = every_ms / 1000
    per_batch = max(1, round(rate * interval))
    batches = max(1, round(seconds / interval))
    viewer_ids = users(n_viewers, "viewer-")
    rng = random.Random(1)
    # each viewer's one 扣1 comment, spread evenly over the run
    due: dict[int, list[str]] = {}
    for i, u in enumerate(rng.sample(viewer_ids, len(viewer_ids))):
        due.setdefault(i * batches // len(viewer_ids), []).append(u)
    async with running_server(work, "steady", None) as server:
        log(f"[1] steady load: server {server.url} (pid {server.proc.pid}), {n_viewers:,} viewers")
        viewers = Viewers(server.ws, viewer_ids, ACK["on"])
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits, headers=PLATFORM) as http:
            try:
                opened = await viewers.open()
                joined = await join_all(http, viewers, 500, 60)
                await settle(http, viewers)
                log(f"  {viewers.connected:,} sockets open in {opened:.1f} s; joined and newcomer popups acked in "
                    f"{joined:.1f} s")
                sent_at: dict[str, float] = {}
                post_ms: list[float] = []
                events_done = 0
                gate = asyncio.Semaphore(in_flight)
                late = 0
                perf = time.perf_counter

                async def send(body: bytes, kou1: list[str], n: int) -> None:
                    nonlocal events_done
                    async with gate:
                        t = perf()
                        for u in kou1:
                            sent_at[u] = t
                        answer = await http.post("/v1/events", content=body,
                                                 headers={"content-type": "application/json"})
                        post_ms.append((perf() - t) * 1000)
                        answer.raise_for_status()
                        events_done += answer.json()["accepted"]

                tasks: list[asyncio.Task[None]] = []
                chat = ["主播好", "666", "这个多少钱", "上链接", "好看", "来了来了"]
                async with measuring(server, "steady"):
                    cpu0, ccpu0 = server.cpu(), time.process_time()
                    start = perf()
                    for k in range(batches):
                        delay = start + k * interval - perf()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        elif delay < -interval:
                            late += 1
                        ts = time.time()
                        kou1 = due.get(k, [])
                        events: list[dict[str, Any]] = [{"type": "comment", "room": ROOM, "user": u, "ts": ts,
                                                         "text": f"{KEYWORD}{KEYWORD}", "id": f"s{k}-k{j}"}
                                                        for j, u in enumerate(kou1)]
                        for j in range(len(events), per_batch):
                            u, roll = rng.choice(viewer_ids), rng.random()
                            e: dict[str, Any] = {"room": ROOM, "user": u, "ts": ts, "id": f"s{k}-{j}"}
                            if roll < 0.5:
                                e["type"] = "heartbeat"
                            elif roll < 0.85:
                                e |= {"type": "like", "count": rng.randint(1, 5)}
                            else:
                                e |= {"type": "comment", "text": rng.choice(chat)}
                            events.append(e)
                        body = json.dumps(events, ensure_ascii=False).encode()
                        tasks.append(asyncio.create_task(send(body, kou1, len(events))))
                    await asyncio.gather(*tasks)
                    posted = perf() - start
                    cpu1, ccpu1 = server.cpu(), time.process_time()
                    await viewers.wait_for("kou1", len(sent_at), 10)
                kou1_arrivals = viewers.arrivals.get("kou1", {})
                latencies = [(kou1_arrivals[u] - t) * 1000 for u, t in sent_at.items() if u in kou1_arrivals]
                missing = len(sent_at) - len(latencies)
                ev_rate = events_done / posted
                ok = latencies and missing == 0 and (quantile(sorted(latencies), 0.99) or 0) < STEADY_TARGET_P99_MS
                dist_row("1", f"扣1 comment -> coupon frame, {n_viewers:,} viewers, {seconds:g} s steady", latencies,
                         target=f"p99 < {STEADY_TARGET_P99_MS:g} ms",
                         check=("meets" if ok else "MISSES") + (f"; {missing} frames missing" if missing else ""))
                dist_row("1", f"POST /v1/events round trip, {per_batch} events/batch every {every_ms:g} ms", post_ms,
                         check=f"{len(post_ms):,} batches, {late} started > 1 interval late")
                server_cpu = f"{(cpu1 - cpu0) / posted:.0%}" if cpu0 is not None and cpu1 is not None else "?"
                record(Row("1", "achieved event rate (accepted / wall)", events_done, unit="ev/s",
                           target=f"{rate:,}/s", check=f"{ev_rate:,.0f}/s over {posted:.2f} s; server CPU "
                           f"{server_cpu} of one core, client {(ccpu1 - ccpu0) / posted:.0%}"))
                if viewers.errors:
                    NOTES.append(f"steady: {len(viewers.errors)} sockets failed to open, e.g. {viewers.errors[0]}")
            finally:
                await viewers.close()


async def probe(http: httpx.AsyncClient, user: str, out_ms: list[float], stop: asyncio.Event,
                every: float = 0.05) -> None:
    """One heartbeat at a time, every ``every`` s, until ``stop`` is set (the one in flight then still
    counts): the round trip of each goes to ``out_ms``."""
    n = 0
    while not stop.is_set():
        n += 1
        t = time.perf_counter()
        await post(http, [{"type": "heartbeat", "room": ROOM, "user": user, "ts": time.time(), "id": f"probe-{n}"}])
        out_ms.append((time.perf_counter() - t) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, every - (time.perf_counter() - t)))


# -- 2. milestone ----------------------------------------------------------------------------------------------
async def milestone(work: Path, label: str, n_viewers: int, room_rate: int | None) -> None:
    name = "milestone-" + ("unpaced" if room_rate is None else f"paced{room_rate}")
    pacing = "room_rate null" if room_rate is None else f"room_rate {room_rate:,}"
    async with running_server(work, name, room_rate) as server:
        log(f"[{label}] milestone, {pacing}: server {server.url} (pid {server.proc.pid}), {n_viewers:,} viewers")
        viewers = Viewers(server.ws, users(n_viewers, "fan-"), ACK["on"])
        probe_ms: list[float] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=PLATFORM) as http:
            try:
                opened = await viewers.open(concurrency=250)
                joined = await join_all(http, viewers, 1_000, 120)
                await settle(http, viewers, 1.0)  # also lets a paced room's burst allowance refill
                log(f"  {viewers.connected:,} sockets open in {opened:.1f} s; joined and newcomer popups acked in "
                    f"{joined:.1f} s; all present (heartbeat)")
                async with measuring(server, name):
                    cpu0 = server.cpu()
                    t0 = time.perf_counter()
                    stop_probe = asyncio.Event()
                    probing = asyncio.create_task(probe(http, viewers.users[0], probe_ms, stop_probe))
                    log(f"  online_count posted at {time.time():.3f} (wall clock)")
                    answer = await post(http, [{"type": "online_count", "room": ROOM, "count": MILESTONE_COUNT,
                                                "ts": time.time(), "id": "milestone"}])
                    committed = (time.perf_counter() - t0) * 1000
                    issued = int(answer.get("issued", 0))
                    complete = await viewers.wait_for("milestone", viewers.connected, 60)
                    cpu1 = server.cpu()
                    stop_probe.set()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(probing, 60)
                got = viewers.arrivals.get("milestone", {})
                lat = sorted((t - t0) * 1000 for t in got.values())
                last = lat[-1] if lat else None
                within = sum(1 for x in lat if x <= 500)
                expect = ""
                if room_rate is not None:
                    burst = min(len(lat), int(room_rate * 0.5))
                    expect = f"~{max(0, len(lat) - burst) / room_rate:.1f} s to the last, ~{burst:,} at once"
                server_cpu = f"{cpu1 - cpu0:.1f} s" if cpu0 is not None and cpu1 is not None else "?"
                check = (f"{len(lat):,}/{viewers.connected:,} popups{'' if complete else ' (TIMEOUT 60 s)'}, "
                         f"{issued:,} issued; {within:,} within 0.5 s; POST answered {committed:,.0f} ms; "
                         f"server CPU {server_cpu}")
                if lat:
                    check += f"; first {lat[0]:,.0f} ms"
                    step = 250 if (last or 0) <= 3_000 else 500
                    buckets = [0] * (int(lat[-1] // step) + 1)
                    for x in lat:
                        buckets[int(x // step)] += 1
                    NOTES.append(f"{label} popups per {step} ms after the POST: "
                                 + " ".join(f"{b:,}" for b in buckets))
                record(Row(label, f"online_count -> popup, {n_viewers:,} present viewers, {pacing}", len(lat),
                           quantile(lat, 0.5), quantile(lat, 0.9), quantile(lat, 0.99), last, target=expect,
                           check=check))
                dist_row(label, "  meanwhile: POST /v1/events of 1 heartbeat, one every 50 ms", probe_ms,
                         check="how long a platform's events wait while the popups fan out")
                if viewers.errors:
                    NOTES.append(f"{name}: {len(viewers.errors)} sockets failed to open, e.g. {viewers.errors[0]}")
            finally:
                await viewers.close()


# -- main ------------------------------------------------------------------------------------------------------
def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < wanted:
        NOTES.append(f"open-file limit {soft:,} < {wanted:,} wanted: some sockets may fail to open")


async def run(args: argparse.Namespace, work: Path) -> None:
    if "steady" not in args.skip:
        await steady(work, args.viewers, args.seconds, args.rate, args.every_ms, args.in_flight)
    if "unpaced" not in args.skip:
        await milestone(work, "2a", args.milestone_viewers, None)
    if "paced" not in args.skip:
        await milestone(work, "2b", args.milestone_viewers, PACED_RATE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="500 viewers, 5 s steady, 2,000 milestone viewers")
    parser.add_argument("--viewers", type=int, help="steady-load viewers (default 2,000; quick 500)")
    parser.add_argument("--seconds", type=float, help="steady-load duration (default 20; quick 5)")
    parser.add_argument("--rate", type=int, default=2_000, help="steady events per second (default 2,000)")
    parser.add_argument("--every-ms", type=float, default=10.0, help="one batch every N ms (default 10)")
    parser.add_argument("--in-flight", type=int, default=8, help="most POSTs in flight at once (default 8)")
    parser.add_argument("--milestone-viewers", type=int, help="milestone viewers (default 10,000; quick 2,000)")
    parser.add_argument("--skip", action="append", default=[], choices=["steady", "unpaced", "paced"],
                        help="leave out a phase (repeatable)")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop for the client")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                        help="sample the server with py-spy (must be on PATH) during each measurement; "
                             "collapsed stacks go to DIR, a summary to stderr")
    parser.add_argument("--py-spy-native", action="store_true",
                        help="with --py-spy: include native frames (pauses the server while sampling, 100/s)")
    parser.add_argument("--no-ack", action="store_true",
                        help="viewers do not ack popups (to see what per-popup acks cost the server)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp configs, SQLite files, logs go")
    args = parser.parse_args(argv)
    args.viewers = args.viewers or (500 if args.quick else 2_000)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.milestone_viewers = min(args.milestone_viewers or (2_000 if args.quick else 10_000), 10_000)
    SPY["dir"], SPY["native"] = args.py_spy, args.py_spy_native
    ACK["on"] = not args.no_ack
    if args.no_ack:
        NOTES.append("--no-ack: viewers did not acknowledge popups")
    raise_fd_limit(max(args.viewers, args.milestone_viewers) + 1_000)  # one fd per socket; the server inherits it

    loop_factory, loop_name = None, "asyncio"
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            loop_factory, loop_name = uvloop.new_event_loop, f"uvloop {version('uvloop')}"
    machine = machine_lines(loop_name)
    for m in machine:
        log(m)
    started = time.perf_counter()
    failed = False
    with tempfile.TemporaryDirectory(prefix="livecoupon-latency-", dir=args.dir) as tmp:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(run(args, Path(tmp)))
        except Exception as exc:  # print what was measured before the failure
            failed = True
            NOTES.append(f"FAILED: {type(exc).__name__}: {exc}"[:500])
            for server_log in sorted(Path(tmp).glob("*.log")):
                tail = server_log.read_text(errors="replace").strip().splitlines()[-5:]
                if tail:
                    NOTES.append(f"{server_log.name}: " + " | ".join(tail)[:500])
    NOTES.append(f"{'quick' if args.quick else 'full'} run took {time.perf_counter() - started:.0f} s; load average "
                 f"at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}. Client and server share the "
                 "machine's cores (the client's JSON, sockets and clock reads are inside every figure): noisy")
    print_table(machine)
    return 1 if failed or any("MISSES" in r.check or "TIMEOUT" in r.check for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
