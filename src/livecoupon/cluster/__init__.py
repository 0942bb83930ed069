"""Scaling out (SPEC §7): gateways and workers over PostgreSQL and NATS JetStream.

Gateways check events and publish them on the bus, one subject per partition of rooms;
each partition is applied by the one worker holding its lease in PostgreSQL, through the
same :class:`~livecoupon.service_layer.service.LiveService` as on one machine, over the
partition's own log and snapshots. See docs/scaling.md.
"""
