"""Run ``livecoupon serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from support.credentials import API_KEY, ENV, PLATFORM

__all__ = ["API_KEY", "PLATFORM", "Server", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``livecoupon serve`` subprocess; ``kill()`` sends SIGKILL, ``restart()`` starts it again."""

    def __init__(self, config: Path, db: Path, env: dict[str, str] | None = None, clock: str = "event",
                 args: tuple[str, ...] = ()) -> None:
        """``clock="event"`` (the default here) lets tests post streams stamped in the past; ``args``
        are more options of ``serve`` (``--store URL --name N``)."""
        self.config, self.db = config, db
        self.extra_env = env or {}
        self.clock = clock
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        cli = Path(sys.executable).with_name("livecoupon")
        env = os.environ | ENV | self.extra_env
        self.log = self.db.with_suffix(".log")
        with self.log.open("ab") as log:
            command = [str(cli), "serve", "--config", str(self.config), "--db", str(self.db), "--port", str(self.port),
                       "--clock", self.clock, *self.args]
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not start within 30 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
