"""Where a claim's CPU goes: one claiming process, its PostgreSQL backend, Redis (docs/benchmarks.md).

For each backend (the bare Lua script, ``pg-redis``) and each size of call (1, 50 claims), one process
claims for ``--seconds`` as a child of ``bench/cluster.py --parts claims`` does (the same claims, after
20,000 of an earlier broadcast and ``ANALYZE``), and the CPU each side spent is divided by the calls:

- the claiming process: ``time.process_time()`` (with the kernel's work on its sockets);
- its PostgreSQL backend: utime + stime from ``/proc/<pid>/stat`` (10 ms ticks: give it seconds);
- Redis: ``INFO cpu``, the whole server's (other users of the same Redis count too).

Run it from a checkout to measure that checkout's ``src/`` (``bench/cluster.py`` puts it first)::

    .venv/bin/python bench/claim_cpu.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster  # noqa: E402  (its src/ first on the path, its claims and claimers)

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"] + info["used_cpu_sys"])


def measure(backend: str, batch: int, seconds: float) -> str:
    """One process claiming ``batch`` a call for ``seconds``: claims/s and each side's CPU per call."""
    import redis

    tag = f"{os.getpid()}_{secrets.token_hex(2)}"
    side: cluster.RedisClaims | cluster.PostgresClaims
    if backend == "redis":
        side = cluster.RedisClaims(cluster.REDIS_URL, f"lcbcpu:{tag}")
        side.client.set(f"lcbcpu:{tag}:stock", cluster.STOCK)
    else:
        side = cluster.PostgresClaims(cluster.PG_URL, f"lcb_cpu_{tag}", claims=cluster.REDIS_URL)
    server = redis.Redis.from_url(cluster.REDIS_URL)
    try:
        prior = argparse.Namespace(claim_prior=20_000, claim_users=1_000_000)
        calls = [side.call(*claim) for claim in cluster.prior_plan(prior)]
        for start in range(0, len(calls), 500):
            side.claim(calls[start:start + 500])
        backend_pid = None
        if isinstance(side, cluster.PostgresClaims):
            cluster.analyze(cluster.PG_URL, side.name)
            backend_pid = side.store._db.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        calls = [side.call(*claim) for claim in cluster.claim_plan("p0", 400_000, 1_000_000)]
        pg0 = process_cpu(backend_pid) if backend_pid else 0.0
        redis0, client0, started = redis_cpu(server), time.process_time(), time.perf_counter()
        claimed = 0
        while time.perf_counter() - started < seconds and claimed + batch <= len(calls):
            side.claim(calls[claimed:claimed + batch])
            claimed += batch
        wall = time.perf_counter() - started
        client, redis_side = time.process_time() - client0, redis_cpu(server) - redis0
        pg = process_cpu(backend_pid) - pg0 if backend_pid else 0.0
        ms = 1e3 * batch / claimed  # seconds per call, in ms
        return (f"{backend:8}  {batch:3} a call  {claimed / wall:8,.0f} claims/s   per call: wall {wall * ms:6.2f} ms"
                f"  client {client * ms:5.2f}  backend {pg * ms:5.2f}  Redis {redis_side * ms:5.2f} ms CPU"
                f"   load {os.getloadavg()[0]:.2f}")
    finally:
        server.close()
        if isinstance(side, cluster.RedisClaims):
            cluster.redis_cleanup(cluster.REDIS_URL, f"lcbcpu:{tag}")
        else:
            side.store.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per measurement (default 4)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every measurement (default 1)")
    args = parser.parse_args()
    for _ in range(args.rounds):
        for batch in (1, 50):
            for backend in ("redis", "pg-redis"):
                print(measure(backend, batch, args.seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
