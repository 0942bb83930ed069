"""A gateway of a deployment on ``--clock event`` starts at the stream's time: where its partitions' logs end, not
its machine's clock. Real PostgreSQL; the bus is never reached."""

from __future__ import annotations

from livecoupon.campaign_file import load_campaign
from livecoupon.cluster.bus import Bus
from livecoupon.cluster.gateway import GatewayService
from livecoupon.cluster.partitions import Subjects, log_name
from livecoupon.engine.clock import ClockMode
from livecoupon.store.postgres import PostgresStore
from support.apps import EXAMPLE

NAME = "gwclock"
T0 = 1_764_600_000
TODAY_MS = 1_796_122_104_553  # the machine's clock, a year on


def test_a_restarted_gateway_keeps_the_streams_time_on_the_event_clock(pg_url: str) -> None:
    """It ran on the machine's clock: a user's coupons read expired through it, checkout refused them, and an operator
    command sent through it was stamped a year ahead, moving every partition's time there."""
    for partition, ts in ((3, T0 + 5), (11, T0 + 7.25), (12, T0 + 2)):
        writer = PostgresStore(pg_url, NAME, log=log_name(partition))
        with writer.unit_of_work():
            writer.append_events([{"type": "live_start", "room": f"room-{partition}", "ts": T0},
                                  {"type": "join", "room": f"room-{partition}", "ts": ts, "user": "u"}])
        writer.close()
    gateway = GatewayService(load_campaign(EXAMPLE), PostgresStore(pg_url, NAME), Bus("nats://127.0.0.1:1",
                             Subjects(NAME)), ClockMode.EVENT, wall=lambda: TODAY_MS)
    try:
        assert gateway.clock.now() == TODAY_MS  # nothing read yet: as a gateway of a new deployment starts
        gateway.rebuild()
        assert gateway.clock.now() == (T0 + 7.25) * 1000
    finally:
        gateway.close()
        PostgresStore(pg_url, NAME).drop()
