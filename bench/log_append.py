"""Appending a batch of events to the log: one statement for the whole batch (``append_events``: the
database splits msgspec's array) against a row at a time (the baseline, ``executemany`` of each entry's
text, what every batch ran before), in the same run, on SQLite and PostgreSQL.

Each round appends the same batches both ways, alternating which goes first, each in its transaction,
and prints this process's CPU and the wall time a row (the database server's own CPU is not in the first).
Run: .venv/bin/python bench/log_append.py [--batches 40] [--size 5000] [--rounds 3] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from livecoupon.store.relational import RelationalStore, json_text
from livecoupon.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import event_batches  # noqa: E402
from processes import cpu_model  # noqa: E402


def batches(count: int, size: int) -> list[list[dict[str, Any]]]:
    """bench/ingest.py's batches (heartbeats, likes, comments and gifts of 2,000 viewers), as entries."""
    return [msgspec.json.decode(body) for body in event_batches(0, count, size)]


def one_statement(store: RelationalStore, batch: list[dict[str, Any]]) -> None:
    store.append_events(batch)


def row_at_a_time(store: RelationalStore, batch: list[dict[str, Any]]) -> None:
    store._many("INSERT INTO events (log, body) VALUES (?, ?)", [(store.log, json_text(e)) for e in batch])


def timed(store: RelationalStore, append: Callable[[RelationalStore, list[dict[str, Any]]], None],
          work: list[list[dict[str, Any]]]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in work:
        with store.unit_of_work():
            append(store, batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(name: str, store: RelationalStore, work: list[list[dict[str, Any]]], rounds: int) -> None:
    rows = sum(map(len, work))
    ways = [("one statement", one_statement), ("a row at a time", row_at_a_time)]
    for r in range(rounds):
        for label, append in ways if r % 2 == 0 else ways[::-1]:
            cpu, wall = timed(store, append, work)
            print(f"{name:<10} round {r + 1}  {label:<16} {rows:>9,} rows  client CPU {cpu / rows * 1e6:6.2f} µs a row"
                  f"  wall {wall / rows * 1e6:6.2f} µs a row  (load {os.getloadavg()[0]:.2f})")
    logged = [body for (body,) in store._run("SELECT body FROM events WHERE log = ? ORDER BY seq LIMIT ?",
                                              (store.log, len(work[0])))]
    assert logged == [json_text(e) for e in work[0]], "the two ways logged different text"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--size", type=int, default=5_000, help="entries a batch (POST /v1/events takes ≤ 10,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    work = batches(args.batches, args.size)
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, load {os.getloadavg()[0]:.2f}; "
          f"{args.batches} batches of {args.size:,} entries a round")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "log.db")
        measure("SQLite", sqlite, work, args.rounds)
        sqlite.close()
    if not args.no_pg:
        from livecoupon.store.postgres import PostgresStore

        pg = PostgresStore(os.environ.get("LIVECOUPON_PG", "postgresql://postgres@127.0.0.1:5432/test"),
                           f"bench_{uuid.uuid4().hex[:8]}")
        try:
            measure("PostgreSQL", pg, work, args.rounds)
        finally:
            pg.drop()


if __name__ == "__main__":
    main()
