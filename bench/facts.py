"""Scaled out, what sharing users' facts costs (docs/scaling.md): a gateway writing what a batch told of its users
(their latest device and risk) before it publishes the batch, and a partition's claims reading what its own rooms did
not tell, against the same batch or claim with nothing to share or fill (the baseline: no statement), in one run on
the machine's PostgreSQL, in a schema of its own that is dropped at the end.

Each round shares ``--batches`` batches of ``--size`` events in which ``--told`` of every 100 events carry a device
and a risk (the users spread over ``--users``), and fills ``--claims`` claims of ``--requests`` requests whose users'
risk the engine does not know; it prints the wall time a batch and a claim, and per 100,000 events.
Run: .venv/bin/python bench/facts.py [--batches 200] [--size 500] [--told 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from livecoupon.cluster.gateway import facts_told  # noqa: E402
from livecoupon.domain.campaign import Limits  # noqa: E402
from livecoupon.domain.decisions import IssueRequest, coupon_id_for  # noqa: E402
from livecoupon.domain.events import Event  # noqa: E402
from livecoupon.store.postgres import PostgresStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import cpu_model  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def batch(rng: random.Random, size: int, told: int, users: int, ts: int) -> list[Event]:
    events = []
    for i in range(size):
        user = rng.randrange(users)
        event = Event("heartbeat", f"room-{i % 16}", ts + i, user=f"u{user}")
        if rng.randrange(100) < told:  # each user's own phone (three accounts a phone) and risk, told again and again
            event.device, event.risk = f"phone-{user // 3}", user % 100 / 100
        events.append(event)
    return events


def share(store: PostgresStore, batches: list[list[Event]]) -> float:
    """What a gateway does before publishing each batch (every room listed, the event clock)."""
    wall = time.perf_counter()
    for events in batches:
        store.share_facts(facts_told(events, lambda room: True, None))
    return time.perf_counter() - wall


def fill(store: PostgresStore, claims: list[list[IssueRequest]], limits: Limits) -> float:
    wall = time.perf_counter()
    for requests in claims:
        with store.unit_of_work():
            store._with_shared_facts(requests, limits)
    return time.perf_counter() - wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pg", default=PG_URL)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--size", type=int, default=500)
    p.add_argument("--told", type=int, default=20, help="of every 100 events, how many carry a device and a risk")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--claims", type=int, default=500)
    p.add_argument("--requests", type=int, default=1, help="requests a claim (1: a keyword; 10,000: a milestone)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    rng = random.Random(7)
    name = f"benchfacts{os.getpid()}"
    store = PostgresStore(args.pg, name)
    try:
        told = [batch(rng, args.size, args.told, args.users, n * args.size) for n in range(args.batches)]
        silent = [batch(rng, args.size, 0, args.users, n * args.size) for n in range(args.batches)]
        cold = share(store, told)  # a broadcast's first minutes: every user's facts written
        limits, unknown = Limits(max_risk=0.5), Limits()
        after = args.batches * args.size  # the claims come after every fact was told: each fills
        claims = [[IssueRequest(coupon_id_for("c", "room-1", 0, "kou1", str(n), f"u{k}"), "c", "room-1", 0, "kou1",
                                f"u{rng.randrange(args.users)}", None, after + n) for k in range(args.requests)]
                  for n in range(args.claims)]
        events = args.batches * args.size
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores; PostgreSQL {args.pg}")
        print(f"{args.batches} batches of {args.size} events, {args.told} of every 100 telling a device and a risk; "
              f"{args.claims} claims of {args.requests} request(s)")
        print(f"first gateway: {cold / args.batches * 1e3:6.3f} ms a batch telling users' facts anew "
              f"({cold / events * 1e5 * 1e3:7.1f} ms per 100,000 events)")
        for r in range(args.rounds):  # then the same facts told again (a platform telling each heartbeat's device)
            again, without = share(store, told), share(store, silent)
            filled, baseline = fill(store, claims, limits), fill(store, claims, unknown)
            print(f"round {r + 1}  gateway: {again / args.batches * 1e3:6.3f} ms a batch telling what is kept "
                  f"({again / events * 1e5 * 1e3:7.1f} ms per 100,000 events) vs {without / args.batches * 1e3:6.3f} "
                  "ms with nothing told   claims: "
                  f"{filled / args.claims * 1e3:6.3f} ms a claim filling vs {baseline / args.claims * 1e3:6.3f} ms "
                  "with no risk capped")
    finally:
        store.drop()
        store.close()


if __name__ == "__main__":
    main()
