"""A fake of Douyin Open Platform's client-token and send-coupon APIs, on a free loopback port.

It behaves as the documentation says the real one does where the tests depend on it: client
tokens that expire or can be revoked (a send with a revoked one answers err_no 28001003), and
``merchant_coupon_id`` as the idempotency key (a coupon is created once, however often it is
sent). Each send attempt's fate is the test's ``policy``: answer at once, fail with a status,
refuse with an ``err_no``, or create the coupon and answer only after ``late_s`` (the client
has given up by then).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from support.receiver import LoopbackServer

TOKEN_PATH = "/oauth/client_token/"
SEND_PATH = "/api/promotion/v1/coupon/send_coupon_to_designated_user/"
TOKEN_INVALID = 28001003


@dataclass(frozen=True)
class Fate:
    """What one send attempt gets: ``status`` (not 200: a failure page), ``err_no`` (0: created),
    and ``late_s`` seconds of waiting before the answer (the coupon is created first)."""

    status: int = 200
    err_no: int = 0
    late_s: float = 0.0


OK = Fate()
Policy = Callable[[str, int], Fate]  # (merchant_coupon_id, attempt number for it) -> its fate


@dataclass
class Sent:
    at: float  # time.monotonic() when the request arrived
    body: dict[str, Any]
    token: str
    fate: Fate


@dataclass(eq=False)
class FakeDouyin(LoopbackServer):
    client_key: str
    client_secret: str
    policy: Policy = lambda key, attempt: OK
    token_life_s: int = 7200
    sent: list[Sent] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)  # merchant_coupon_id -> coupons created (at most 1)
    tokens: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path == TOKEN_PATH:
                    status, answer, wait = 200, fake.token(body), 0.0
                elif self.path == SEND_PATH:
                    status, answer, wait = fake.send(body, self.headers.get("access-token", ""))
                else:
                    status, answer, wait = 404, {}, 0.0
                time.sleep(wait)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)
        self.url = self.base_url

    def token(self, body: dict[str, Any]) -> dict[str, Any]:
        if (body.get("client_key"), body.get("client_secret"), body.get("grant_type")) != (
                self.client_key, self.client_secret, "client_credential"):
            return {"data": {"error_code": 10013, "description": "client_key 或者 client_secret 报错"},
                    "message": "error"}
        with self._lock:
            token = f"clt.fake{len(self.tokens)}"
            self.tokens.append(token)
        return {"data": {"access_token": token, "description": "", "error_code": 0, "expires_in": self.token_life_s},
                "message": "success"}

    def send(self, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any], float]:
        key = str(body.get("merchant_coupon_id", ""))
        with self._lock:
            attempt = sum(s.body.get("merchant_coupon_id") == key for s in self.sent) + 1
            fate = self.policy(key, attempt)
            if token not in self.tokens or token in self.revoked:
                fate = Fate(err_no=TOKEN_INVALID)
            self.sent.append(Sent(time.monotonic(), body, token, fate))
            if fate.status == 200 and fate.err_no == 0 and not self.created[key]:
                self.created[key] += 1
        if fate.status != 200:
            return fate.status, {"message": "internal error"}, fate.late_s
        return 200, {"err_no": fate.err_no, "err_msg": "" if fate.err_no == 0 else "refused", "log_id": "fake",
                     "data": {}}, fate.late_s

    def revoke_tokens(self) -> None:
        with self._lock:
            self.revoked.update(self.tokens)

    def most_in_one_second(self) -> int:
        """The most send requests that arrived within any one second."""
        times = sorted(s.at for s in self.sent)
        most, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most
