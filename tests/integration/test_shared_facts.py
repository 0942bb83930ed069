"""Scaled out, what the platform told of a user in one room reaches every partition's claims (SPEC §2: a user's
device and risk are those of their latest event that carried one). Real PostgreSQL; the bus is not needed."""

from __future__ import annotations

from livecoupon.cluster.gateway import facts_told
from livecoupon.domain.campaign import Limits
from livecoupon.domain.decisions import IssueRequest, device_key_for
from livecoupon.domain.events import Event
from livecoupon.store.postgres import PostgresStore


def told(ts: int, user: str, device: str | None = None, risk: float | None = None, room: str = "room-a") -> Event:
    event = Event("heartbeat", room, ts, user=user)
    event.device, event.risk = device, risk
    return event


def listed(room: str) -> bool:
    return room != "unlisted"


def claim(at: int, user: str = "ann") -> IssueRequest:
    key = device_key_for("kou1", False, "room-b", 0, None, user)
    return IssueRequest(f"cp_{at}", "c", "room-b", 0, "kou1", user, None, at, device_key=key, per_device=1)


def test_a_partitions_claims_take_what_other_rooms_told_by_the_claims_time(pg_url: str) -> None:
    store = PostgresStore(pg_url, "sharedfacts")
    try:
        store.share_facts(facts_told([told(1_000, "ann", "phone-1"), told(2_000, "ann", risk=0.9),
                                      told(3_000, "ann", "phone-2")], listed, None))
        limits = Limits(max_risk=0.5)
        with store.unit_of_work():
            [early, late] = store._with_shared_facts([claim(1_500), claim(3_000)], limits)
        # the latest kept is phone-2, told at 3 s: at 1.5 s it was not told yet (and phone-1 is not kept): nothing
        assert (early.device_key, early.risk) == (claim(1_500).device_key, None)
        assert (late.device_key, late.risk) == (device_key_for("kou1", False, "room-b", 0, "phone-2", "ann"), 0.9)
        store.share_facts(facts_told([told(4_000, "ann", "phone-2", 0.9)], listed, None))  # as kept: nothing written
        store.share_facts(facts_told([told(5_000, "ann", risk=0.1)], listed, None))  # a lower risk, later: it counts
        store.share_facts(facts_told([told(4_500, "ann", risk=0.7)], listed, None))  # told late: the later one stays
        with store.unit_of_work():
            [now] = store._with_shared_facts([claim(6_000)], limits)
            [row] = store._run('SELECT device_at, risk, risk_at FROM user_facts WHERE "user" = ?', ("ann",)).fetchall()
        assert now.risk == 0.1 and tuple(row) == (3_000, 0.1, 5_000)
    finally:
        store.drop()
        store.close()


def test_only_rooms_a_campaign_lists_tell_and_never_ahead_of_the_machines_time() -> None:
    """As one machine learns nothing from a room no campaign lists; on the machine's clock the workers apply every
    event at their time, so a platform's stamp 5 s ahead would hide a fact from the claims until then."""
    events = [told(1_000, "ann", "phone-1", room="unlisted"), told(2_000, "bob", "phone-2", 0.3),
              told(9_000, "bob", risk=0.9), told(8_000, "bob", "phone-3")]
    assert facts_told(events, listed, None) == {"bob": ("phone-3", 8_000, 0.9, 9_000)}
    assert facts_told(events, listed, 5_000) == {"bob": ("phone-3", 5_000, 0.9, 5_000)}
