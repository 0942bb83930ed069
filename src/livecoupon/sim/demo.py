"""``livecoupon demo``: a simulated broadcast against the real service, end to end.

The service runs as its own process (``livecoupon serve --clock event`` on a fresh
SQLite file: simulated time runs faster than the machine's); the simulated audience
talks to it only over HTTP and WebSocket, with the credentials each party would have:
the live platform and the shop's backend with the platform key, each viewer's page
with a viewer token the shop's backend minted, the consoles with sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from websockets.asyncio.client import ClientConnection, connect

from livecoupon.analytics.publish import write_report
from livecoupon.api.auth import Credentials
from livecoupon.campaign_file import load_campaign
from livecoupon.engine.recordings import read_for_replay
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.sim.audience import Broadcast, Purchase, Shopper, Viewer
from livecoupon.store.export import export_store
from livecoupon.tasks import cancel_quietly

ROOM = "room-1"


@dataclass(slots=True)
class DemoStats:
    events: int = 0
    batches: int = 0
    post_seconds: float = 0.0
    popups: int = 0
    popup_latency_ms: list[float] = field(default_factory=list)
    orders: int = 0
    orders_with_coupon: int = 0
    refused: int = 0
    cancelled: int = 0
    refunded: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running_service(config: Path, db: Path, credentials: Credentials, log: Path) -> AsyncIterator[str]:
    """``livecoupon serve --clock event`` as a child process; yields its base URL, stops it afterwards.

    Every simulated viewer connects from this machine, so the per-address limit is raised.
    """
    port = _free_port()
    env = os.environ | credentials_env(credentials) | {"LIVECOUPON_IP_RATE": "100000/second"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "livecoupon", "serve", "--config", str(config), "--db", str(db),
                                 "--port", str(port), "--clock", "event"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited: {log.read_text(errors='replace')}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/health", timeout=1)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the service did not start within 30 s")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def credentials_env(credentials: Credentials) -> dict[str, str]:
    return {"LIVECOUPON_API_KEY": credentials.api_key, "LIVECOUPON_PLATFORM_KEY": credentials.platform_key,
            "LIVECOUPON_VIEWER_SECRET": credentials.viewer_secret}


class Demo:
    def __init__(self, config: Path, out_dir: Path, viewers: int, minutes: int, speed: float, seed: int,
                 console: Console, show_progress: bool) -> None:
        self.config, self.out_dir = config, out_dir
        self.campaign = load_campaign(config)
        self.broadcast = Broadcast(ROOM, viewers, minutes, seed)
        self.shopper = Shopper(random.Random(seed + 1))
        self.speed = speed
        self.console, self.show_progress = console, show_progress
        self.stats = DemoStats()
        self.sockets: dict[str, asyncio.Task[None]] = {}
        self.arrivals: asyncio.Queue[tuple[str, dict[str, Any], float]] = asyncio.Queue()
        self.due: dict[int, list[Purchase]] = defaultdict(list)
        self.last_post_wall = time.perf_counter()
        self.credentials = Credentials.from_env({})  # fresh ones for this run
        self.db = self.out_dir / "livecoupon.db"
        self.second = 0

    async def run(self) -> dict[str, Any]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob("livecoupon.db*"):
            stale.unlink()
        started = time.perf_counter()
        async with running_service(self.config, self.db, self.credentials, self.out_dir / "service.log") as url:
            self._banner(url)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=32),
                                         headers={"X-API-Key": self.credentials.platform_key}) as http:
                await self._broadcast(http, url)
                await asyncio.sleep(0.3)  # the last popups in flight
            await self._close_sockets()
        wall = time.perf_counter() - started
        return self._publish(wall)

    def _banner(self, url: str) -> None:
        if not self.show_progress:
            return
        self.console.print(f"[bold red]livecoupon 模拟直播 / simulated broadcast[/] — service {url}")
        c = self.credentials
        self.console.print(f"  观众页 viewer page:       {url}/web/viewer.html?room={ROOM}")
        self.console.print(f"      观众令牌 viewer token (viewer-00000): {c.viewer_token('viewer-00000', 4 * 3600)}",
                           markup=False, highlight=False)
        self.console.print(f"  主播台 host console:      {url}/web/host.html?room={ROOM}")
        self.console.print(f"      主播令牌 host token: {c.host_token(ROOM)}", markup=False, highlight=False)
        self.console.print(f"  运营台 operator console:  {url}/web/operator.html")
        self.console.print(f"      运营密钥 operator key: {c.api_key}", markup=False, highlight=False)
        self.console.print("  (粘贴到页面登录 / paste into the page's sign-in: no credential ever goes in a URL)")
        self.console.print(f"  接口文档 API reference:   {url}/docs")

    async def _broadcast(self, http: httpx.AsyncClient, url: str) -> None:
        b = self.broadcast
        start_ts = float(int(time.time()))
        start_wall = time.perf_counter()
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                            TimeElapsedColumn(), console=self.console, disable=not self.show_progress)
        with progress:
            task = progress.add_task("直播中 live", total=b.seconds, status="")
            for second in range(b.seconds):
                self.second = second
                ts = start_ts + second
                await self._shop(http, second)
                batch = b.events_at(second, ts)
                await self._open_pages(batch, url)
                await self._post(http, batch)
                self._take_arrivals(second)
                progress.update(task, advance=1, status=(
                    f"第{second // 60:>3}分钟 在场 {len(b.present):,} · 事件 {self.stats.events:,} · "
                    f"弹窗 {self.stats.popups:,} · 订单 {self.stats.orders:,}"))
                delay = start_wall + (second + 1) / self.speed - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _post(self, http: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        for i, event in enumerate(batch):
            event.setdefault("id", f"sim-{self.second}-{i}")
        self.last_post_wall = time.perf_counter()
        answer = await http.post("/v1/events", json=batch)
        answer.raise_for_status()
        self.stats.post_seconds += time.perf_counter() - self.last_post_wall
        self.stats.events += len(batch)
        self.stats.batches += 1

    async def _open_pages(self, batch: list[dict[str, Any]], url: str) -> None:
        """Viewers open the live page (and its socket) as they join, and close it as they leave."""
        ws_base = url.replace("http://", "ws://")
        opening = []
        for event in batch:
            user = str(event.get("user"))
            if event["type"] == "join" and user not in self.sockets:
                ready = asyncio.Event()
                opening.append(ready.wait())
                token = self.credentials.viewer_token(user, 4 * 3600)
                self.sockets[user] = asyncio.create_task(self._listen(f"{ws_base}/v1/rooms/{ROOM}/live?token={token}",
                                                                      user, ready))
            elif event["type"] == "leave" and user in self.sockets:
                self.sockets.pop(user).cancel()
        if opening:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.gather(*opening)

    async def _listen(self, url: str, user: str, ready: asyncio.Event) -> None:
        try:
            async with connect(url, open_timeout=10, max_queue=64) as ws:
                ready.set()
                await self._receive(ws, user)
        except Exception:  # a viewer whose page failed is a viewer who sees no popup
            ready.set()

    async def _receive(self, ws: ClientConnection, user: str) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "coupon":
                self.stats.popups += 1
                self.stats.popup_latency_ms.append((time.perf_counter() - self.last_post_wall) * 1000)
                await ws.send(json.dumps({"type": "ack", "coupon_id": message["coupon_id"]}))
                self.arrivals.put_nowait((user, message, time.perf_counter()))

    def _take_arrivals(self, second: int) -> None:
        viewers = {v.user: v for v in self.broadcast.viewers}
        while not self.arrivals.empty():
            user, coupon, _ = self.arrivals.get_nowait()
            plan = self.shopper.on_coupon(viewers[user], coupon, second)
            if plan is not None:
                delay, purchase = plan
                self.due[second + delay].append(purchase)

    async def _shop(self, http: httpx.AsyncClient, second: int) -> None:
        """The shop's backend checks out this second's purchases; each paid order counts in the
        service as an ``order`` event of the room (one truth: nothing is posted twice)."""
        purchases = self.due.pop(second, [])
        present: list[Viewer] = list(self.broadcast.present.values())
        purchases += [p for v in present if (p := self.shopper.organic(v, second)) is not None]
        await asyncio.gather(*(self._checkout(http, p, second, n) for n, p in enumerate(purchases)))

    async def _checkout(self, http: httpx.AsyncClient, p: Purchase, second: int, n: int) -> None:
        """Quote, create with the best coupon, then pay (or sometimes cancel, or pay and refund)."""
        order_id = f"order-{second}-{n}-{p.user}"
        coupon_id = None
        if p.use_coupon:
            quote = (await http.post("/v1/checkout/quote", json={"user": p.user, "cart": p.cart})).json()
            coupon_id = (quote.get("best") or {}).get("coupon_id")
        created = await http.post("/v1/orders", json={"order_id": order_id, "user": p.user, "cart": p.cart,
                                                      "coupon_id": coupon_id, "idempotency_key": f"{order_id}:create",
                                                      "room": ROOM})
        if created.status_code != 201:
            self.stats.refused += 1
            return
        roll = self.shopper.rng.random()
        if roll < 0.04:
            await http.post(f"/v1/orders/{order_id}/cancel", json={"idempotency_key": f"{order_id}:cancel"})
            self.stats.cancelled += 1
            return
        paid = await http.post(f"/v1/orders/{order_id}/pay", json={"idempotency_key": f"{order_id}:pay"})
        if paid.status_code != 200:
            self.stats.refused += 1
            return
        if roll > 0.98:
            await http.post(f"/v1/orders/{order_id}/refund", json={"idempotency_key": f"{order_id}:refund"})
            self.stats.refunded += 1
        self.stats.orders += 1
        self.stats.orders_with_coupon += coupon_id is not None

    async def _close_sockets(self) -> None:
        await cancel_quietly(*self.sockets.values())

    def _publish(self, wall: float) -> dict[str, Any]:
        """Export the service's log and decisions, and check that replaying the log reproduces them."""
        export_store(self.db, self.out_dir)
        lines = (self.out_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        live = [(self.out_dir / name).read_text(encoding="utf-8") for name in ("issued.jsonl", "suppressed.jsonl")]
        replayed = replay(self.campaign, lines)
        check = self.out_dir / "replay-check"
        write_outputs(replayed, check)
        matches = live == [(check / name).read_text(encoding="utf-8") for name in ("issued.jsonl", "suppressed.jsonl")]
        events, _ = read_for_replay(lines)  # as replay takes them (an id's later copies in a room dropped)
        decisions = [d.record() for d in replayed.decisions]
        latencies = sorted(self.stats.popup_latency_ms)
        s = self.stats
        demo = {
            "simulated": True, "viewers": len(self.broadcast.viewers), "minutes": self.broadcast.minutes,
            "speed": self.speed, "wall_seconds": round(wall, 2), "events": s.events,
            "events_per_second": round(s.events / s.post_seconds, 1) if s.post_seconds else None,
            "popups": s.popups,
            "popup_latency_ms": {"p50": _quantile(latencies, 0.5), "p99": _quantile(latencies, 0.99)},
            "orders": s.orders, "orders_with_coupon": s.orders_with_coupon, "refused": s.refused,
            "cancelled": s.cancelled, "refunded": s.refunded,
            "replay_matches_live": matches,
        }
        return write_report(self.campaign, decisions, events, self.out_dir, simulated=True, extra={"demo": demo})


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[max(0, round(q * 100) - 1)], 2)


def run_demo(config: Path, out_dir: Path, *, viewers: int, minutes: int, speed: float, seed: int = 42,
             headless: bool = False, console: Console | None = None) -> dict[str, Any]:
    demo = Demo(config, out_dir, viewers, minutes, speed, seed, console or Console(stderr=True), not headless)
    return asyncio.run(demo.run())
