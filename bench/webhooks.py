#!/usr/bin/env python3
"""Merchant webhooks/s: sent by two workers of a scaled-out deployment against one process, in one run.

    .venv/bin/python bench/webhooks.py                 # 8 rooms x 1,500 coupons each way (~1 minute)
    .venv/bin/python bench/webhooks.py --rooms 4 --per-room 500

Everything runs on 127.0.0.1: a merchant's receiver of this benchmark's own (a child process: asyncio,
HTTP/1.1 keep-alive, answers 200 at once and counts each ``Idempotency-Key``), the machine's PostgreSQL
(``--pg``) and a ``nats-server -js`` of its own. Each side gets the same work: ``--rooms`` operator
manual issues (``POST /v1/admin/issue``) of ``--per-room`` users each, posted at once by as many
clients, so the coupons are made within a second or two and the webhooks are the bottleneck;
webhooks/s = the receiver's POSTs / seconds from its first to its last (the sending alone: a scaled-out
manual issue's answer may wait for the workers' done notices, which says nothing about webhooks); the
table also gives the seconds from the first manual issue until the receiver had every coupon.

- **one process**: ``livecoupon serve`` on its SQLite file (the sender's 16 requests in flight);
- **scaled out**: one ``serve --role gateway`` and two ``serve --role worker`` over NATS and
  PostgreSQL, ``--partitions`` partitions (each partition's sender: 16 in flight), once each worker
  holds half of them.

The receiver, the client, the services, PostgreSQL and NATS share the machine's cores: on 2 cores the
two workers cannot each have one. Prints one table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from cluster import (
    API_KEY,
    CLI,
    NATS_SERVER,
    Proc,
    drop_schema,
    loopback_only,
    machine_busy,
    server_env,
    spawn,
    start_nats,
    stop_all,
    wait_http,
    wait_port,
)
from processes import cpu_model, free_port, usable_cores
from tables import print_table

SECRET = "whsec-bench"
CAMPAIGN = """campaign: bench-webhooks
rooms: "*"
coupons:
  gift: {title: 直播礼券, kind: no_threshold, amount: 5, valid_for: 30m}
triggers:
  - {name: newcomer, when: first_visit, coupon: gift}
limits: {per_user: 3, budget: 100000000}
"""


# -- the merchant's receiver (a child process) -------------------------------------------------------------
def receive(port: int) -> None:
    """Answer every POST 200 at once and count its Idempotency-Key; ``GET /count`` → ``unique total
    first last`` (the monotonic seconds of the first and latest POST), ``GET /reset`` forgets them."""
    keys: set[str] = set()
    total = 0
    first = last = 0.0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal total, keys, first, last
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                await reader.readexactly(int(headers.get("content-length", "0")))
                body = b""
                if lines[0].startswith("POST"):
                    keys.add(headers.get("idempotency-key", ""))
                    total += 1
                    last = time.monotonic()
                    first = first or last
                elif lines[0].startswith("GET /reset"):
                    keys, total, first, last = set(), 0, 0.0, 0.0
                else:
                    body = f"{len(keys)} {total} {first} {last}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def counted(url: str) -> tuple[int, int, float]:
    """Coupons seen, POSTs taken, seconds from the first POST to the latest."""
    unique, total, first, last = httpx.get(f"{url}/count", timeout=5).text.split()
    return int(unique), int(total), float(last) - float(first)


# -- one side ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    label: str
    coupons: int
    issued_s: float  # until every manual issue was answered
    delivered_s: float  # until the receiver had every coupon
    sending_s: float  # from the first webhook the receiver took to the last
    posts: int  # requests the receiver took (a coupon sent twice counts twice)
    cpu_s: dict[str, float]  # CPU seconds of each process over the whole measurement
    busy: float  # the machine's busy share over it

    @property
    def rate(self) -> float:
        return self.posts / self.sending_s


def issue_everywhere(gateway: str, rooms: int, per_room: int, tag: str) -> float:
    """Every room's manual issue posted at once; seconds until all were answered."""
    def issue(k: int) -> None:
        body = {"template": "gift", "users": [f"{tag}-{k}-{n}" for n in range(per_room)], "room": f"room-{k}",
                "idempotency_key": f"{tag}-{k}"}
        answer = httpx.post(f"{gateway}/v1/admin/issue", json=body, headers={"X-API-Key": API_KEY}, timeout=60)
        if answer.status_code not in (200, 202):
            raise RuntimeError(f"manual issue answered {answer.status_code}: {answer.text[:300]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(rooms) as clients:
        list(clients.map(issue, range(rooms)))
    return time.perf_counter() - started


def measure(label: str, gateway: str, receiver: str, procs: list[Proc], args: argparse.Namespace) -> Result:
    httpx.get(f"{receiver}/reset", timeout=5)
    coupons = args.rooms * args.per_room
    cpu_before, busy_before = {p.label: p.cpu() for p in procs}, machine_busy()
    started = time.perf_counter()
    issued_s = issue_everywhere(gateway, args.rooms, args.per_room, secrets.token_hex(3))
    deadline = started + args.timeout
    while (seen := counted(receiver))[0] < coupons:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{label}: {seen[0]} of {coupons} webhooks after {args.timeout:.0f} s")
        time.sleep(0.02)
    delivered_s = time.perf_counter() - started
    busy_after = machine_busy()
    cpu = {p.label: p.cpu() - cpu_before[p.label] for p in procs}
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    time.sleep(0.5)  # any sent twice
    _, posts, sending_s = counted(receiver)
    return Result(label, coupons, issued_s, delivered_s, sending_s, posts, cpu, busy)


def webhook_env(receiver: str) -> dict[str, str]:
    return server_env() | {"LIVECOUPON_WEBHOOK_URL": f"{receiver}/hooks", "LIVECOUPON_WEBHOOK_SECRET": SECRET}


def serve(label: str, work: Path, config: Path, env: dict[str, str], *args: str) -> Proc:
    port = free_port()
    command = [str(CLI), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
               "--clock", "event", *args]
    proc = spawn(label, command, work / f"{label}.log", port, env)
    wait_http(proc)
    return proc


def one_process(work: Path, config: Path, receiver: Proc, args: argparse.Namespace) -> Result:
    proc = serve("service", work, config, webhook_env(receiver.url), "--db", str(work / "one.db"))
    try:
        return measure("one process (SQLite)", proc.url, receiver.url, [proc, receiver], args)
    finally:
        stop_all([proc])


def scaled_out(work: Path, config: Path, receiver: Proc, args: argparse.Namespace) -> Result:
    name = f"bench_hooks_{os.getpid()}"
    nats = start_nats(work)
    common = ("--store", args.pg, "--bus", f"nats://127.0.0.1:{nats.port}", "--name", name,
              "--partitions", str(args.partitions))
    env = webhook_env(receiver.url)
    procs: list[Proc] = [nats]
    try:
        procs += [serve(f"worker{k}", work, config, env, *common, "--role", "worker") for k in range(2)]
        gateway = serve("gateway", work, config, env, *common, "--role", "gateway")
        procs.append(gateway)
        wait_even(procs[1:3], args.partitions)
        return measure("scaled out: 2 workers", gateway.url, receiver.url, [*procs[1:], nats, receiver], args)
    finally:
        stop_all(reversed(procs))
        drop_schema(args.pg, name)
        forget_outcomes(args.pg, name)


def wait_even(workers: list[Proc], partitions: int, within: float = 45) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        held = [len(httpx.get(f"{w.url}/v1/admin/health", headers={"X-API-Key": API_KEY}, timeout=5)
                    .json()["partitions"]) for w in workers]
        if held == [partitions // 2] * 2:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the workers never held an even share of {partitions} partitions")


def forget_outcomes(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(pg, autocommit=True) as db:
        for table in ("dead_letters", "delivered", "since"):
            db.execute(f"DELETE FROM livecoupon_webhooks.{table} WHERE deployment = %s", (name,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--per-room", type=int, default=1500)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)  # the receiver's child process
    args = parser.parse_args(argv)
    if args.receive:
        receive(args.receive)
        return 0
    loopback_only(args.pg, "--pg")
    if not Path(NATS_SERVER).exists():
        raise SystemExit(f"nats-server not found ({NATS_SERVER})")
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        work = Path(tmp)
        config = work / "campaign.yaml"
        config.write_text(CAMPAIGN, encoding="utf-8")
        port = free_port()
        receiver = spawn("receiver", [sys.executable, __file__, "--receive", str(port)], work / "receiver.log", port)
        try:
            wait_port(receiver)
            results = [one_process(work, config, receiver, args), scaled_out(work, config, receiver, args)]
        finally:
            stop_all([receiver])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = [f"machine: nproc={usable_cores()}  cpu={cpu_model()}  load average at the end: {load}",
               f"         {args.rooms} rooms x {args.per_room} coupons each side, {args.partitions} partitions; "
               f"build: {'pure (LIVECOUPON_PURE=1)' if os.environ.get('LIVECOUPON_PURE') else 'default'}"]
    rows = [(r.label, [r.label, f"{r.coupons:,}", f"{r.posts:,}", f"{r.issued_s:.2f}", f"{r.delivered_s:.2f}",
                       f"{r.sending_s:.2f}", f"{r.rate:,.0f}", f"{r.busy:.0%}",
                       " ".join(f"{k} {v:.1f}" for k, v in r.cpu_s.items())]) for r in results]
    notes = ["webhooks/s = POSTs / seconds from the receiver's first POST to its last",
             "issued in s: until every manual issue was answered; all in s: from the first manual issue until the "
             "receiver had every coupon's key",
             "POSTs: requests the receiver took; above the coupons, some were sent twice",
             "busy: the machine's busy share, and CPU s of each process, from the first manual issue to the last "
             "coupon's webhook"]
    print_table(machine, ["side", "coupons", "POSTs", "issued in s", "all in s", "sending s", "webhooks/s", "busy",
                          "CPU s"], rows, notes, right={1, 2, 3, 4, 5, 6, 7})
    print(json.dumps({r.label: round(r.rate) for r in results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
