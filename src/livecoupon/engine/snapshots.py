"""The engine's state as bytes, so a restart applies only the log after the latest snapshot.

A snapshot holds what the engine keeps in memory (rooms, presence, timers, gift totals,
flash sales, once-per sets, user facts, pauses and the blocklist, the operator's manual issues by
idempotency key, the campaign versions published and in use); what the store keeps
(first visits, caps, stock, budget, coupons) is already durable. It is valid only for the
campaign file the service started with and the code that wrote it: :func:`fingerprint` names both, and a snapshot with
another fingerprint is ignored, the log being re-applied from the start instead.

Snapshots are written by this process into its own store and read back by it, so the
standard library's pickle is the right tool: it keeps the engine's own types, and the
store file is as trusted as the code (whoever can write it can change any coupon).
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import fields, is_dataclass
from typing import Any

from livecoupon.domain.campaign import Campaign
from livecoupon.engine.campaigns import Deployment
from livecoupon.engine.engine import Engine
from livecoupon.store.port import collector_paused

VERSION = 12  # bump whenever the engine's state changes shape or meaning (11: rooms' recent ids the deployment's,
# not engines'; 12: a room's ids kept by its broadcasts, not its last hour: a snapshot of the hour would take repeats
# that a replay of the same log drops)


def fingerprint(*campaigns: Campaign) -> str:
    """The campaigns (a deployment's, in order) and the state's shape a snapshot belongs to, the same in
    every process."""
    canonical = "\x1e".join(_canonical(c) for c in campaigns)
    return hashlib.sha256(f"{VERSION}\x1f{canonical}".encode()).hexdigest()[:32]


def _canonical(value: Any) -> str:
    """A repr that does not depend on hash order (sets) or on the process."""
    if is_dataclass(value) and not isinstance(value, type):
        inner = ",".join(f"{f.name}={_canonical(getattr(value, f.name))}" for f in fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canonical(k)}:{_canonical(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


_STATE = ("rooms", "paused", "facts", "blocked_users", "blocked_devices", "time", "_timers", "_timer_seq",
          "_gifts_seen", "offers", "plan", "published", "manual_issues")


def _unpickled(body: bytes) -> Any:
    """The snapshot's objects, the collector paused: millions of them at once (viewers, event ids), none garbage
    (0.51-0.54 s against 0.66-0.71 for a 30 MiB snapshot, measured)."""
    with collector_paused():
        return pickle.loads(body)  # noqa: S301 - our own store's bytes (see the module's docstring)


def dump(engine: Engine, extra: dict[str, Any] | None = None) -> bytes:
    """The engine's state, and ``extra`` (the caller's own, such as counters), as bytes."""
    return pickle.dumps((_state(engine), extra or {}), protocol=pickle.HIGHEST_PROTOCOL)


def load(engine: Engine, body: bytes) -> dict[str, Any]:
    """Put a fresh engine in the state of ``body``; returns the ``extra`` saved with it."""
    state, extra = _unpickled(body)
    _put(engine, state)
    return dict(extra)


def dump_deployment(deployment: Deployment, extra: dict[str, Any] | None = None) -> bytes:
    """Every running campaign's engine state, the deployment's time and rooms' recent ids, and ``extra``, as bytes."""
    states = {name: _state(engine) for name, engine in deployment.engines.items()}
    return pickle.dumps((states, deployment.time, deployment.recent_ids, extra or {}),
                        protocol=pickle.HIGHEST_PROTOCOL)


def load_deployment(deployment: Deployment, body: bytes) -> dict[str, Any]:
    """Put a fresh deployment in the state of ``body`` (a campaign it did not hold waits for its start entry);
    returns the ``extra`` saved with it."""
    states, time, recent_ids, extra = _unpickled(body)
    engines = {}
    for name, state in states.items():
        campaign = deployment.campaigns.get(name)
        if campaign is not None:
            engine = engines[name] = Engine(campaign, deployment.store)
            _put(engine, state)
    deployment.restore(engines, time, recent_ids)
    return dict(extra)


def _state(engine: Engine) -> dict[str, Any]:
    return {name: getattr(engine, name) for name in _STATE}


def _put(engine: Engine, state: dict[str, Any]) -> None:
    for name in _STATE:
        setattr(engine, name, state[name])
    engine.campaign = engine.plan.campaign  # the version published last, if any after the file's
    engine.index_triggers()
