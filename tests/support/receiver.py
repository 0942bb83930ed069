"""A merchant's webhook endpoint for tests: a real HTTP server on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Policy = Callable[[str, int], int]  # (idempotency key, attempt number for that key) -> status
Delay = Callable[[str, int], float]  # (idempotency key, attempt number) -> seconds to wait before answering


@dataclass(frozen=True)
class Received:
    key: str
    headers: dict[str, str]
    body: bytes
    status: int


class LoopbackServer:
    """A ThreadingHTTPServer on a free loopback port, serving on a thread of its own inside ``with``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # 16 senders connect at once; the default 5 drops SYNs

        self.server = Server(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


class Receiver(LoopbackServer):
    """A merchant's webhook endpoint."""

    def __init__(self, policy: Policy, delay: Delay | None = None) -> None:
        self.policy = policy
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("Idempotency-Key", "")
                status, wait = receiver.record(key, dict(self.headers.items()), body)
                time.sleep(wait)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.url = f"{self.base_url}/hooks/livecoupon"

    def record(self, key: str, headers: dict[str, str], body: bytes) -> tuple[int, float]:
        with self._lock:
            attempt = sum(r.key == key for r in self.received) + 1
            status = self.policy(key, attempt)
            self.received.append(Received(key, headers, body, status))
            return status, self.delay(key, attempt) if self.delay is not None else 0.0

    def accepted(self) -> Counter[str]:
        with self._lock:
            return Counter(r.key for r in self.received if 200 <= r.status < 300)
