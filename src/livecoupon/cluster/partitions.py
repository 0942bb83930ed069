"""Rooms to partitions, and the names a deployment uses on the bus."""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass

DEFAULT_PARTITIONS = 16


class Role(enum.StrEnum):
    """What a scaled-out process does (``serve --role``)."""

    ALL = "all"  # gateway and worker in one
    GATEWAY = "gateway"  # HTTP and WebSockets: checks and publishes events, serves coupons and checkout
    WORKER = "worker"  # applies the partitions it holds a lease on


def partition_of(room: str, partitions: int) -> int:
    """The partition that applies ``room``: stable across processes, machines and restarts."""
    return zlib.crc32(room.encode()) % partitions


def log_name(partition: int) -> str:
    """The store's log (and snapshots) of a partition."""
    return f"p{partition}"


@dataclass(frozen=True, slots=True)
class Subjects:
    """Everything deployment ``name`` puts on the bus."""

    name: str

    @property
    def stream(self) -> str:
        return f"{self.name}_events"  # stream names may not hold dots

    @property
    def all_events(self) -> str:
        return f"{self.name}.events.*"

    def events(self, partition: int) -> str:
        return f"{self.name}.events.{partition}"

    def done(self, gateway: str) -> str:
        """Where a worker tells a gateway that its batch is applied."""
        return f"{self.name}.done.{gateway}"

    @property
    def push(self) -> str:
        """Committed decisions and confirmed coupons, heard by every gateway."""
        return f"{self.name}.push"

    @property
    def rooms(self) -> str:
        """Each worker's rooms on air and viewers present, once a second, for the consoles."""
        return f"{self.name}.rooms"
