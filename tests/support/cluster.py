"""A scaled-out deployment as real processes: a NATS server of the test's own, gateways and workers."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from support.environment import IN_CI
from support.server import Server, free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Nats:
    """``nats-server -js`` on a free loopback port, its JetStream files in ``store_dir`` (kept across restarts)."""

    def __init__(self, store_dir: Path) -> None:
        if not Path(NATS_SERVER).exists():
            if IN_CI:
                pytest.fail(f"nats-server is required in CI (looked for {NATS_SERVER})")
            pytest.skip("nats-server is not installed")
        self.store_dir, self.port = store_dir, free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nats:
        self.proc = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", str(self.store_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> Nats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Cluster:
    """``gateways`` and ``workers`` of deployment ``name``; gateway URLs in ``urls``."""

    def __init__(self, config: Path, tmp: Path, pg_url: str, nats: Nats, name: str, *, gateways: int = 2,
                 workers: int = 2, partitions: int = 8, clock: str = "event") -> None:
        self.pg_url, self.name = pg_url, name
        common = ("--store", pg_url, "--name", name, "--bus", nats.url, "--partitions", str(partitions))
        self.gateways = [Server(config, tmp / f"gateway{i}.db", clock=clock, args=(*common, "--role", "gateway"))
                         for i in range(gateways)]
        self.workers = [Server(config, tmp / f"worker{i}.db", clock=clock, args=(*common, "--role", "worker"))
                        for i in range(workers)]

    @property
    def urls(self) -> list[str]:
        return [g.url for g in self.gateways]

    def __enter__(self) -> Cluster:
        for server in (*self.workers, *self.gateways):
            server.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for server in (*self.gateways, *self.workers):
            server.stop()
