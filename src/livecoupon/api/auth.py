"""Who may call what (SPEC §6): three credentials, and the sessions the consoles use.

- the operator key (``LIVECOUPON_API_KEY``): everything, the consoles included;
- the platform key (``LIVECOUPON_PLATFORM_KEY``): events, and every endpoint that acts
  for a user, for any user;
- viewer tokens: HS256 JWTs signed with ``LIVECOUPON_VIEWER_SECRET`` by the merchant's
  backend, ``sub`` = the user, ``exp`` required: only what acts for that user.

Pages never carry a credential in their URL: a console exchanges its key (or a host's
room token) for a short-lived, HttpOnly session cookie at ``POST /v1/session``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from livecoupon.domain.events import MAX_NAME, is_clean_text
from livecoupon.errors import Forbidden, Unauthorized

SESSION_COOKIE = "livecoupon_session"
VERIFIED_CACHE = 20_000  # tokens whose signature was checked, kept until they expire
SESSION_SECONDS = 12 * 3600
HOST_TOKEN_SECONDS = 24 * 3600
MAX_TOKEN = 4096
ENV = {"operator": "LIVECOUPON_API_KEY", "platform": "LIVECOUPON_PLATFORM_KEY",
       "viewer": "LIVECOUPON_VIEWER_SECRET"}


class Role(enum.StrEnum):
    OPERATOR = "operator"
    PLATFORM = "platform"
    VIEWER = "viewer"
    HOST = "host"  # reads one room's console feed, nothing else


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller. ``user`` is a viewer's own user; ``room`` a host's room."""

    role: Role
    user: str | None = None
    room: str | None = None

    @property
    def scope(self) -> str:
        """What idempotency keys are scoped to: the kind of caller and, for a viewer, who."""
        return f"{self.role.value}:{self.user or ''}"

    @property
    def owner(self) -> str | None:
        """The only user this caller may act for, or None for any user (server to server)."""
        return self.user if self.role is Role.VIEWER else None

    @property
    def is_server(self) -> bool:
        return self.role in (Role.OPERATOR, Role.PLATFORM)


MIN_SECRET_BYTES = 32  # HS256's key as RFC 7518 §3.2 asks: at least the hash's 256 bits


@dataclass(frozen=True)
class Credentials:
    api_key: str
    platform_key: str
    viewer_secret: str
    generated: tuple[str, ...] = field(default=(), compare=False)  # environment variables made up for this run
    _verified: dict[str, tuple[Caller, float]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Credentials:
        """Each credential from the environment; one that is unset is generated (and listed in ``generated``)."""
        values, generated = {}, []
        for role, name in ENV.items():
            value = env.get(name)
            if not value:
                value = secrets.token_urlsafe(32)
                generated.append(name)
            values[role] = value
        return cls(values["operator"], values["platform"], values["viewer"], tuple(generated))

    def by_env(self) -> dict[str, str]:
        """Each credential under the environment variable it is read from."""
        return {ENV["operator"]: self.api_key, ENV["platform"]: self.platform_key, ENV["viewer"]: self.viewer_secret}

    def weaknesses(self) -> list[str]:
        """What makes these credentials easy to guess or confuse, in words (``serve`` warns of each): a short
        secret signing viewer tokens is brute-forced from any one token, which then forges every user's; a platform
        key equal to the operator key gives the platform the operator's rights."""
        found = []
        if len(self.viewer_secret.encode()) < MIN_SECRET_BYTES:
            found.append(f"{ENV['viewer']} 短于 {MIN_SECRET_BYTES} 字节，可被暴力破解并伪造任何观众的令牌 / "
                         f"is shorter than {MIN_SECRET_BYTES} bytes: guessed from any one token, it forges every "
                         "viewer's")
        for name, key in ((ENV["operator"], self.api_key), (ENV["platform"], self.platform_key)):
            if len(key.encode()) < MIN_SECRET_BYTES // 2:
                found.append(f"{name} 短于 {MIN_SECRET_BYTES // 2} 字节，容易被猜中 / is shorter than "
                             f"{MIN_SECRET_BYTES // 2} bytes: easy to guess")
        if self.api_key == self.platform_key:
            found.append(f"{ENV['platform']} 与 {ENV['operator']} 相同：平台拥有运营权限 / is the operator key: "
                         "the platform can act as the operator")
        return found

    @property
    def _session_secret(self) -> bytes:
        """Signs console sessions and host tokens: changes, and so logs everyone out, with the operator key."""
        return hmac.new(self.api_key.encode(), b"livecoupon console sessions", hashlib.sha256).digest()

    # -- verifying ---------------------------------------------------------------------------
    def identify(self, token: str) -> Caller | None:
        """The caller a key or token proves, or None when it proves nothing (wrong, expired, malformed)."""
        if not token or len(token) > MAX_TOKEN:
            return None
        given = token.encode()
        if hmac.compare_digest(given, self.api_key.encode()):
            return Caller(Role.OPERATOR)
        if hmac.compare_digest(given, self.platform_key.encode()):
            return Caller(Role.PLATFORM)
        if token.count(".") != 2:
            return None
        known = self._verified.get(token)
        if known is None or known[1] <= time.time():
            known = self._verify(token)
            if known is None:
                return None
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = known  # a viewer's app sends the same token on every request
        return known[0]

    def expires(self, token: str) -> float | None:
        """When a token :meth:`identify` proves stops proving it (its ``exp``, Unix seconds); None for a key."""
        known = self._verified.get(token) or (self._verify(token) if token.count(".") == 2 else None)
        return known[1] if known is not None else None

    def _verify(self, token: str) -> tuple[Caller, float] | None:
        """The caller a signed token proves, and until when (its ``exp``)."""
        claims = _decode(token, self.viewer_secret.encode(), ["exp", "sub"])
        caller = _viewer(claims) if claims is not None else None
        if caller is None:
            claims = _decode(token, self._session_secret, ["exp", "typ", "role"])
            caller = _session(claims) if claims is not None else None
        if caller is None or claims is None or not isinstance(claims["exp"], (int, float)):
            return None
        return caller, float(claims["exp"])

    # -- minting -----------------------------------------------------------------------------
    def viewer_token(self, user: str, seconds: int = 3600) -> str:
        """A viewer token, as the merchant's backend mints it (the demo and tests use this)."""
        return jwt.encode({"sub": user, "exp": int(time.time()) + seconds}, self.viewer_secret, algorithm="HS256")

    def host_token(self, room: str, seconds: int = HOST_TOKEN_SECONDS) -> str:
        """A credential that only reads ``room``'s console feed: for the host's screen."""
        return self._sign({"typ": "host", "role": Role.HOST.value, "room": room}, seconds)

    def session_token(self, caller: Caller, seconds: int = SESSION_SECONDS) -> str:
        claims: dict[str, Any] = {"typ": "session", "role": caller.role.value}
        if caller.room is not None:
            claims["room"] = caller.room
        if caller.user is not None:
            claims["user"] = caller.user
        return self._sign(claims, seconds)

    def _sign(self, claims: dict[str, Any], seconds: int) -> str:
        return jwt.encode(claims | {"exp": int(time.time()) + seconds}, self._session_secret, algorithm="HS256")


def _viewer(claims: dict[str, Any]) -> Caller | None:
    if claims.get("typ") in ("session", "host"):
        return None
    user = claims.get("sub")
    if not isinstance(user, str) or not _is_user_id(user):
        return None
    return Caller(Role.VIEWER, user=user)


def _is_user_id(value: str) -> bool:
    """A user id as an event may carry one (SPEC §2): 1 to 128 characters of valid Unicode (a lone
    surrogate, which a JWT's ``\\ud800`` escape can carry, is no user's, and no store could write it)."""
    return 0 < len(value) <= MAX_NAME and is_clean_text(value)


def _session(claims: dict[str, Any]) -> Caller | None:
    if claims.get("typ") not in ("session", "host"):
        return None
    try:
        role = Role(claims["role"])
    except ValueError:
        return None
    room = claims.get("room")
    if role is Role.HOST and not isinstance(room, str):
        return None
    user = claims.get("user") if role is Role.VIEWER else None
    return Caller(role, user=user, room=room if role is Role.HOST else None)


def _decode(token: str, key: bytes, required: list[str]) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=["HS256"], options={"require": required})
    except jwt.PyJWTError:
        return None
    return claims


# -- what each endpoint lets in ------------------------------------------------------------------
def require(caller: Caller | None, *roles: Role) -> Caller:
    """``caller`` if its role is among ``roles``: 401 without a valid credential, 403 with the wrong one."""
    if caller is None:
        raise Unauthorized("unauthorized", "a valid credential is required (X-API-Key or Authorization: Bearer)")
    if caller.role not in roles:
        raise Forbidden("forbidden", f"a {caller.role.value} credential does not open this endpoint")
    return caller


def require_user(caller: Caller | None, user: str) -> Caller:
    """A caller that may act for ``user``: the platform or operator for anyone, a viewer for themself."""
    caller = require(caller, Role.OPERATOR, Role.PLATFORM, Role.VIEWER)
    if caller.owner is not None and caller.owner != user:
        raise Forbidden("not_your_user", "a viewer token acts only for its own user", "user")
    return caller
