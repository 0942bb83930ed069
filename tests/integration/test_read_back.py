"""A server restarting decides at once and reads the decisions made before back behind (service.rebuild):
nothing is counted twice or missed, and a manual key repeated meanwhile is still the same coupon."""

from __future__ import annotations

import threading
from pathlib import Path

from livecoupon.campaign_file import load_campaign
from livecoupon.domain.decisions import Decision
from livecoupon.engine.clock import ClockMode
from livecoupon.service_layer.service import READ_BACK_THREAD, LiveService
from livecoupon.store.sqlite import SqliteStore
from support.apps import EXAMPLE, serving
from support.credentials import OPERATOR, PLATFORM
from support.reading import HeldBack

T0 = 1_764_000_000.0


class HeldBackSqlite(HeldBack, SqliteStore):
    """The SQLite store, its reading back held (support/reading.py)."""


def _broadcast(db: Path) -> list[str]:
    """A first life of the service on ``db``: five viewers' newcomer coupons and one manual issue; the coupon ids."""
    service = LiveService(load_campaign(EXAMPLE), SqliteStore(db), ClockMode.EVENT)
    service.rebuild()
    service.submit([{"type": "live_start", "room": "room-1", "ts": T0}]
                   + [{"type": "join", "room": "room-1", "ts": T0 + 1 + n, "user": f"v{n}"} for n in range(5)])
    service.issue_manually("bonus", ["vip"], "room-1", "sorry-for-the-lag")
    ids = list(service.records)
    service.close()
    return ids


def test_decisions_read_back_behind_come_first_and_are_announced_never(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    before = _broadcast(db)
    store = HeldBackSqlite(db)
    service = LiveService(load_campaign(EXAMPLE), store, ClockMode.EVENT)
    announced: list[Decision] = []
    service.listeners.append(announced.extend)
    service.rebuild(behind=True)
    try:
        made = service.submit([{"type": "join", "room": "room-1", "ts": T0 + 20, "user": "late"},
                               {"type": "join", "room": "room-1", "ts": T0 + 21, "user": "v0"}]).decisions
        again = service.issue_manually("bonus", ["vip"], "room-1", "sorry-for-the-lag")
        assert not service.read_back.done()
        assert [d.request.user for d in made] == ["late"]  # v0 is no newcomer: the engine's state is back
        assert [d.request.coupon_id for d in again] == [before[-1]]  # the same key: the same coupon
        assert announced == made  # the repeated key is not a new coupon, though not read back yet

        store.release.set()
        earlier = service.read_back.result(timeout=30)
        assert [r.coupon_id for r in earlier["double11-live"]] == before
        assert list(service.records) == [*before, made[0].request.coupon_id]
    finally:
        store.release.set()
        service.close()

    whole = LiveService(load_campaign(EXAMPLE), SqliteStore(db), ClockMode.EVENT)
    whole.rebuild()
    assert list(whole.records) == [*before, made[0].request.coupon_id]
    assert [r.coupon_id for r in whole.read_back.result()["double11-live"]] == list(whole.records)
    whole.close()


def test_a_restarted_server_answers_at_once_and_its_counters_count_every_decision_once(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    before = _broadcast(db)
    store = HeldBackSqlite(db)
    with serving(db, store=store, headers=OPERATOR) as client:
        posted = client.post("/v1/events", json=[{"type": "join", "room": "room-1", "ts": T0 + 20, "user": "late"}],
                             headers=PLATFORM)
        assert posted.status_code == 200, posted.text
        [decision] = posted.json()["decisions"]
        store.release.set()
        status = client.get("/v1/admin/campaign").json()
        listed = client.get("/v1/admin/decisions").json()["decisions"]
    assert status["triggers"]["newcomer"]["issued"] == 6 and status["triggers"]["manual"]["issued"] == 1
    assert status["issued"] == 7
    assert [d["coupon_id"] for d in listed] == [*before, decision["coupon_id"]]


class WatchedClosing(HeldBackSqlite):
    """Notes whether it was closed while the thread reading the decisions back was still alive."""

    closed_under_a_reader: bool | None = None

    def close(self) -> None:
        self.closed_under_a_reader = any(t.name == READ_BACK_THREAD and t.is_alive() for t in threading.enumerate())
        super().close()


def test_a_service_closed_while_reading_back_closes_its_store_after_the_reading(tmp_path: Path) -> None:
    """Closing a connection another thread reads through can crash the process (it did, once, in a test run)."""
    db = tmp_path / "live.db"
    _broadcast(db)
    store = WatchedClosing(db)
    service = LiveService(load_campaign(EXAMPLE), store, ClockMode.EVENT)
    service.rebuild(behind=True)
    closing = threading.Thread(target=service.close)
    closing.start()
    closing.join(timeout=1.0)  # a close that did not wait for the reading is done by now, its store closed
    store.release.set()
    closing.join()
    assert store.closed_under_a_reader is False
