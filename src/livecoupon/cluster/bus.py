"""The bus: NATS JetStream for events (durable, ordered per partition), core NATS for the rest.

Events are the only thing that must survive a crash, so they alone go through JetStream:
one stream per deployment, one subject per partition, a gateway's batch for a partition as
one message whose ``Nats-Msg-Id`` names the request and the partition. A client's retry is a
new message, as one process takes it: the engine ignores an event whose ``id`` its room has seen,
and only an ``id`` makes an event a repeat (SPEC §2: two gifts alike without one, posted twice, are
two gifts). Done notices, pushes and room summaries are fire-and-forget core NATS: a lost one costs
a 202 or a popup the viewer's reconnect backlog delivers anyway, never a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError

from livecoupon.cluster.partitions import Subjects

log = logging.getLogger("livecoupon.bus")
RETENTION_S = 7 * 24 * 3600.0  # a partition can be rebuilt from its snapshot and a week of bus
DUPLICATE_WINDOW_S = 120.0
Handler = Callable[[Msg], Awaitable[None]]


class Bus:
    """One connection to NATS for a gateway or a worker (or both, with ``--role all``)."""

    def __init__(self, url: str, subjects: Subjects) -> None:
        self.url, self.subjects = url, subjects
        self._nc: Client | None = None

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("the bus is not connected")
        return self._nc

    async def connect(self) -> None:
        async def disconnected() -> None:
            log.warning("lost the bus at %s; reconnecting", self.url)

        async def reconnected() -> None:
            log.info("bus at %s is back", self.url)
            try:
                await self._ensure_stream()  # a NATS that came back without its files has no stream
            except Exception as exc:
                log.warning("could not check the stream after reconnecting: %s", exc)

        async def error(exc: Exception) -> None:
            log.warning("bus: %s", exc)

        self._nc = await nats.connect(self.url, name=f"livecoupon:{self.subjects.name}", max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.25, connect_timeout=2,
                                      disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error)
        await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        config = api.StreamConfig(name=self.subjects.stream, subjects=[self.subjects.all_events],
                                  storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
                                  max_age=RETENTION_S, duplicate_window=DUPLICATE_WINDOW_S)
        js = self.nc.jetstream()
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with other settings (an older deployment): keep what it has
            log.info("stream %s exists; keeping its settings", config.name)

    async def publish_events(self, request: str, partition: int, body: bytes, headers: dict[str, str],
                             timeout: float) -> None:
        """Put request ``request``'s batch for a partition on the bus; back once it is stored (JetStream stores a
        message id once: a copy of this one sent again, as a reconnecting client may, is not stored twice)."""
        await self.nc.jetstream().publish(self.subjects.events(partition), body, timeout=timeout,
                                          headers={"Nats-Msg-Id": f"{request}:{partition}", **headers})

    async def last_sequence(self, partition: int) -> int:
        """The stream sequence of the partition's latest message on the bus (0: none)."""
        try:
            found = await self.nc.jetstream().get_last_msg(self.subjects.stream, self.subjects.events(partition))
        except NotFoundError:
            return 0
        return int(found.seq or 0)

    async def follow(self, partition: int, after: int, handle: Handler) -> Subscription:
        """Every batch of ``partition`` after stream sequence ``after``, in bus order (an ordered consumer:
        nothing to acknowledge; the store records how far the partition has applied)."""
        if after > 0:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
        else:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)
        subscription = await self.nc.jetstream().subscribe(self.subjects.events(partition), cb=handle, config=config,
                                                           ordered_consumer=True, idle_heartbeat=2.0)
        # nats-py's ordered consumer restarts itself after its last delivered sequence, which is 0 until a first
        # message arrives: a reset before then (a NATS restart) would re-deliver the subject from the start
        jsi = getattr(subscription, "_jsi", None)
        if jsi is not None and getattr(jsi, "_sseq", None) == 0:
            jsi._sseq = after
        return subscription

    async def tell(self, subject: str, body: bytes) -> None:
        """Fire and forget, on core NATS."""
        try:
            await self.nc.publish(subject, body)
        except Exception as exc:  # the bus is reconnecting; what is told here is never the only copy
            log.warning("could not publish on %s: %s", subject, exc)

    async def listen(self, subject: str, handle: Handler) -> Subscription:
        return await self.nc.subscribe(subject, cb=handle)

    async def close(self) -> None:
        if self._nc is not None:
            try:
                await self._nc.drain()
            except Exception:  # closing anyway
                await self._nc.close()
            self._nc = None


def header(msg: Msg, name: str) -> str | None:
    headers: dict[str, Any] | None = msg.headers
    return headers.get(name) if headers else None
