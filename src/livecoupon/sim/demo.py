"""``livecoupon demo``: a simulated broadcast against the real service, end to end.

The service runs as its own process (``livecoupon serve`` on a fresh SQLite file);
the simulated audience talks to it only over HTTP and WebSocket, like a live
platform, viewers' phones and a shop's checkout would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
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
from livecoupon.campaign_file import load_campaign
from livecoupon.domain.decisions import DecisionRecord, Reason
from livecoupon.engine.recordings import read_events
from livecoupon.engine.replay import replay
from livecoupon.sim.audience import Broadcast, Purchase, Shopper, Viewer

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
async def running_service(config: Path, db: Path, api_key: str, log: Path) -> AsyncIterator[str]:
    """``livecoupon serve`` as a child process; yields its base URL, stops it afterwards."""
    port = _free_port()
    env = os.environ | {"LIVECOUPON_API_KEY": api_key}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "livecoupon", "serve", "--config", str(config), "--db", str(db),
                                 "--port", str(port)], env=env, stdout=out, stderr=out)
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
        self.posted: list[dict[str, Any]] = []
        self.sockets: dict[str, asyncio.Task[None]] = {}
        self.arrivals: asyncio.Queue[tuple[str, dict[str, Any], float]] = asyncio.Queue()
        self.due: dict[int, list[Purchase]] = defaultdict(list)
        self.last_post_wall = time.perf_counter()
        self.api_key = secrets.token_urlsafe(16)
        self.second = 0

    async def run(self) -> dict[str, Any]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        db = self.out_dir / "livecoupon.db"
        for stale in self.out_dir.glob("livecoupon.db*"):
            stale.unlink()
        started = time.perf_counter()
        async with running_service(self.config, db, self.api_key, self.out_dir / "service.log") as url:
            self._banner(url)
            async with httpx.AsyncClient(base_url=url, timeout=30,
                                         limits=httpx.Limits(max_connections=32)) as http:
                await self._broadcast(http, url)
                await asyncio.sleep(0.3)  # the last popups in flight
                decisions = await self._decisions(http)
            await self._close_sockets()
        wall = time.perf_counter() - started
        return self._publish(decisions, wall)

    def _banner(self, url: str) -> None:
        if not self.show_progress:
            return
        self.console.print(f"[bold red]livecoupon 模拟直播 / simulated broadcast[/] — service {url}")
        self.console.print(f"  观众页 viewer page:       {url}/web/viewer.html?room={ROOM}&user=viewer-00000")
        self.console.print(f"  主播台 host console:      {url}/web/host.html?room={ROOM}&key={self.api_key}")
        self.console.print(f"  运营台 operator console:  {url}/web/operator.html?key={self.api_key}")
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
                orders = await self._shop(http, second, ts)
                batch = b.events_at(second, ts) + orders
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
        self.posted.extend(batch)

    async def _open_pages(self, batch: list[dict[str, Any]], url: str) -> None:
        """Viewers open the live page (and its socket) as they join, and close it as they leave."""
        ws_base = url.replace("http://", "ws://")
        opening = []
        for event in batch:
            user = str(event.get("user"))
            if event["type"] == "join" and user not in self.sockets:
                ready = asyncio.Event()
                opening.append(ready.wait())
                self.sockets[user] = asyncio.create_task(self._listen(f"{ws_base}/v1/rooms/{ROOM}/live?user={user}",
                                                                      user, ready))
            elif event["type"] == "leave" and user in self.sockets:
                self.sockets.pop(user).cancel()
        if opening:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*opening), timeout=5)

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

    async def _shop(self, http: httpx.AsyncClient, second: int, ts: float) -> list[dict[str, Any]]:
        purchases = self.due.pop(second, [])
        present: list[Viewer] = list(self.broadcast.present.values())
        purchases += [p for v in present if (p := self.shopper.organic(v, second)) is not None]
        results = await asyncio.gather(*(self._checkout(http, p, second, n) for n, p in enumerate(purchases)))
        return [{"type": "order", "room": ROOM, "ts": ts, **r} for r in results if r is not None]

    async def _checkout(self, http: httpx.AsyncClient, p: Purchase, second: int, n: int) -> dict[str, Any] | None:
        """Quote, create with the best coupon, then pay (or sometimes cancel, or pay and refund)."""
        order_id = f"order-{second}-{n}-{p.user}"
        coupon_id = None
        if p.use_coupon:
            quote = (await http.post("/v1/checkout/quote", json={"user": p.user, "cart": p.cart})).json()
            coupon_id = (quote.get("best") or {}).get("coupon_id")
        created = await http.post("/v1/orders", json={"order_id": order_id, "user": p.user, "cart": p.cart,
                                                      "coupon_id": coupon_id, "idempotency_key": f"{order_id}:create"})
        if created.status_code != 201:
            self.stats.refused += 1
            return None
        roll = self.shopper.rng.random()
        if roll < 0.04:
            await http.post(f"/v1/orders/{order_id}/cancel", json={"idempotency_key": f"{order_id}:cancel"})
            self.stats.cancelled += 1
            return None
        paid = await http.post(f"/v1/orders/{order_id}/pay", json={"idempotency_key": f"{order_id}:pay"})
        if paid.status_code != 200:
            self.stats.refused += 1
            return None
        if roll > 0.98:
            await http.post(f"/v1/orders/{order_id}/refund", json={"idempotency_key": f"{order_id}:refund"})
            self.stats.refunded += 1
        self.stats.orders += 1
        self.stats.orders_with_coupon += coupon_id is not None
        return {"user": p.user, "order_id": order_id, "amount": paid.json()["payable"], "coupon_id": coupon_id}

    async def _decisions(self, http: httpx.AsyncClient) -> list[DecisionRecord]:
        answer = await http.get("/v1/admin/decisions", headers={"X-API-Key": self.api_key})
        answer.raise_for_status()
        return [_record(d) for d in answer.json()["decisions"]]

    async def _close_sockets(self) -> None:
        for task in self.sockets.values():
            task.cancel()
        await asyncio.gather(*self.sockets.values(), return_exceptions=True)

    def _publish(self, decisions: list[DecisionRecord], wall: float) -> dict[str, Any]:
        lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in self.posted]
        (self.out_dir / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        events, _ = read_events(lines)
        replayed = replay(self.campaign, lines)
        live_ids = sorted(d.coupon_id for d in decisions if d.issued)
        replay_ids = sorted(d.request.coupon_id for d in replayed.decisions if d.issued)
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
            "replay_matches_live": live_ids == replay_ids,
        }
        return write_report(self.campaign, decisions, events, self.out_dir, simulated=True, extra={"demo": demo})


def _record(d: dict[str, Any]) -> DecisionRecord:
    ms = round(d["ts"] * 1000)
    expires = round(d["expires_at"] * 1000) if "expires_at" in d else None
    return DecisionRecord(d["coupon_id"], d["room"], d["broadcast"], d["trigger"], d["user"], ms, d.get("coupon"),
                          Reason(d["reason"]) if d.get("reason") else None, expires, d.get("experiment"),
                          d.get("variant"))


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
