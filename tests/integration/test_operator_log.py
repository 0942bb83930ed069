"""The log is the truth: operator commands and clock marks in it, restarts, exports that replay exactly,
failed transactions that leave nothing behind, and paid orders that count as order events."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecoupon.campaign_file import load_campaign, parse_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.commands import ChangeBlocklist, IssueManually, PauseTrigger
from livecoupon.domain.decisions import MANUAL, Decision
from livecoupon.domain.events import event_json, parse_event
from livecoupon.domain.pricing import CartLine
from livecoupon.engine.clock import ClockMode
from livecoupon.engine.recordings import write_decisions
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.errors import Malformed, Refused
from livecoupon.service_layer.service import LiveService
from livecoupon.store.export import export_store
from livecoupon.store.sqlite import SqliteStore
from support.credentials import OPERATOR, PLATFORM
from support.server import Server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
T0 = 1_700_000_000

CAMPAIGN = """
campaign: log-test
rooms: ["r1", "r2"]
presence_timeout: 40s
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 40}
  c20: {title: twenty, kind: threshold, threshold: 99, amount: 20, valid_for: 30m}
triggers:
  - {name: newcomer, when: first_visit, coupon: c10, per_device: 2}
  - {name: dwell, when: dwell, after: 60s, coupon: c20}
  - {name: say, when: host_says, phrases: [发券啦], coupon: c10, cooldown: 20s}
  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}
  - {name: big, when: online_reached, count: 4, source: present, coupon: c20}
  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, c20, null], explore: 0.3}}
limits: {per_user: 3, min_interval: 10s, budget: 900, max_risk: 0.7}
"""


def files(out: Path) -> list[str]:
    return [(out / name).read_text(encoding="utf-8") for name in ("issued.jsonl", "suppressed.jsonl")]


def replayed_files(campaign: Campaign, events: Path, out: Path) -> list[str]:
    write_outputs(replay(campaign, events.read_text(encoding="utf-8").splitlines()), out)
    return files(out)


def started(db: Path, campaign: Campaign | None = None, store: SqliteStore | None = None) -> LiveService:
    """A service on the event clock over ``db``, rebuilt from what the file holds."""
    service = LiveService(campaign or parse_campaign(CAMPAIGN), store or SqliteStore(db), ClockMode.EVENT)
    service.rebuild()
    return service


def assert_export_replays(db: Path, campaign: Campaign, work: Path) -> None:
    """``livecoupon export``'s files, and a replay of its log, are the same decisions."""
    export_store(db, work / "export")
    assert replayed_files(campaign, work / "export" / "events.jsonl", work / "replay") == files(work / "export")


# -- a random broadcast with operators at work -----------------------------------------------------
Step = tuple[str, Any]


@st.composite
def sessions(draw: st.DrawFn) -> list[Step]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    users = [f"u{i}" for i in range(draw(st.integers(2, 12)))]
    steps: list[Step] = [("events", [{"type": "live_start", "room": room, "ts": T0} for room in ("r1", "r2")])]
    ts = T0
    for _ in range(draw(st.integers(5, 40))):
        ts += rng.choice([0, 1, 3, 7, 15, 40])
        kind = rng.random()
        if kind < 0.12:
            steps.append(("command", rng.choice([
                PauseTrigger(rng.choice(["newcomer", "dwell", "say", "kou1", "big"]), rng.random() < 0.6),
                IssueManually(rng.choice(["c10", "c20"]), tuple(rng.sample(users, 2)), rng.choice(["r1", "r2"]),
                              f"k{rng.randrange(3)}"),
                ChangeBlocklist((rng.choice(users),), (), rng.random() < 0.5)])))
        elif kind < 0.2:
            steps.append(("tick", rng.choice([1, 20, 61])))
        else:
            steps.append(("events", [_event(rng, users, ts) for _ in range(rng.randint(1, 6))]))
    return steps


def _event(rng: random.Random, users: list[str], ts: int) -> dict[str, Any]:
    user, room = rng.choice(users), rng.choice(["r1", "r1", "r2"])
    kind = rng.choice(["join", "heartbeat", "heartbeat", "leave", "comment", "transcript", "order", "live_end",
                       "live_start"])
    event: dict[str, Any] = {"type": kind, "room": room, "ts": ts + rng.random(), "id": f"e{rng.randrange(400)}"}
    if kind in ("join", "heartbeat", "leave", "comment", "order"):
        event["user"] = user
        if rng.random() < 0.3:
            event["device"] = f"d{rng.randrange(3)}"
        if rng.random() < 0.1:
            event["risk"] = rng.choice([0.2, 0.9])
    if kind == "comment":
        event["text"] = rng.choice(["扣1", "hello", "要券"])
    elif kind == "transcript":
        event["text"] = rng.choice(["宝宝们发券啦", "发劝啦", "谢谢"])
    elif kind == "order":
        event.update(order_id=f"o{rng.randrange(50)}", amount=rng.choice([50, 120.5]))
    return event


@given(steps=sessions())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_live_decisions_equal_the_replay_of_the_export_with_operators_and_a_wall_clock(
        steps: list[Step], tmp_path_factory: pytest.TempPathFactory) -> None:
    campaign = parse_campaign(CAMPAIGN)
    root = tmp_path_factory.mktemp("log")
    wall = [T0 * 1000]
    service = LiveService(campaign, SqliteStore(root / "live.db"), ClockMode.WALL, wall=lambda: wall[0])
    service.rebuild()
    try:
        for kind, step in steps:
            if kind == "events":
                wall[0] = max(wall[0], int(max(e["ts"] for e in step) * 1000) - 2_000)  # within 5 s of the clock
                service.submit(step)
            elif kind == "command":
                service.command(step, getattr(step, "room", "*"))
            else:
                wall[0] += step * 1000
                service.tick()
    finally:
        service.close()
    assert_export_replays(root / "live.db", campaign, root)


def test_a_restart_rebuilds_pauses_blocklists_and_manual_issues_from_the_log(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "s.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}])
    service.pause("kou1", True)
    service.command(ChangeBlocklist(("bad",)))
    service.issue_manually("c20", ["vip"], "r1", "once")
    service.close()
    again = started(tmp_path / "s.db", campaign)
    made = again.submit([{"type": "join", "room": "r1", "ts": T0 + 1, "user": "bad"},
                         {"type": "comment", "room": "r1", "ts": T0 + 2, "user": "fan", "text": "扣1"}]).decisions
    assert [(d.request.user, d.request.trigger, d.reason and d.reason.value) for d in made] == [
        ("bad", "newcomer", "blocked"), ("fan", "newcomer", None)]
    assert again.paused == {"kou1"}
    assert [d.request.user for d in again.issue_manually("c20", ["vip"], "r1", "once")] == ["vip"]
    assert sum(1 for r in again.records.values() if r.trigger == "manual") == 1  # the same key: the same coupon
    again.close()


def test_on_the_event_clock_an_operator_before_the_first_event_moves_no_time(tmp_path: Path) -> None:
    """A pause before a back-fill was logged at the machine's time, which became the stream's: every event after it
    was applied then (coupons dated today, expiring from today) and no dwell timer was ever due. It applies at the
    start of time now, before the first event; a manual issue then, whose coupons would be expired at once, waits
    for the stream's time (409)."""
    campaign = parse_campaign(CAMPAIGN)
    service = LiveService(campaign, SqliteStore(tmp_path / "s.db"), ClockMode.EVENT, wall=lambda: 1_796_000_000_000)
    service.rebuild()
    with pytest.raises(Refused) as refused:
        service.issue_manually("c20", ["vip"], "r1", "early")
    assert refused.value.code == "no_time_yet"
    service.pause("kou1", True)
    service.pause("kou1", False)
    made = service.submit([{"type": "live_start", "room": "r1", "ts": T0},
                           {"type": "join", "room": "r1", "ts": T0 + 1, "user": "ann"},
                           *({"type": "heartbeat", "room": "r1", "ts": T0 + s, "user": "ann"} for s in (30, 61)),
                           {"type": "comment", "room": "r1", "ts": T0 + 62, "user": "ann", "text": "扣1"}]).decisions
    assert [(d.request.trigger, d.request.at) for d in made] == [("newcomer", (T0 + 1) * 1000),
                                                                  ("dwell", (T0 + 61) * 1000),
                                                                  ("kou1", (T0 + 62) * 1000)]
    assert service.clock.now() == (T0 + 62) * 1000
    assert [e["ts"] for e in service.store.events() if e["type"] == "operator"] == [0, 0]
    service.close()
    again = LiveService(campaign, SqliteStore(tmp_path / "t.db"), ClockMode.EVENT, wall=lambda: 1_796_000_000_000)
    again.rebuild()
    again.pause("kou1", True)  # at 0: the stream still has no time, and a manual issue still waits for it
    with pytest.raises(Refused):
        again.issue_manually("c20", ["vip"], "r1", "after-a-pause")
    again.close()
    service = started(tmp_path / "s.db", campaign)
    service.close()
    assert_export_replays(tmp_path / "s.db", campaign, tmp_path)


def test_a_failed_transaction_leaves_engine_and_store_agreeing(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)

    class FailingOnce(SqliteStore):
        armed = False

        def append_events(self, events: Any) -> None:
            if self.armed:
                self.armed = False
                raise OSError("disk full")
            super().append_events(events)

    store = FailingOnce(tmp_path / "f.db")
    service = started(tmp_path / "f.db", campaign, store)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}] +
                   [{"type": "join", "room": "r1", "ts": T0 + 1, "user": f"u{i}"} for i in range(3)])
    store.armed = True
    with pytest.raises(OSError):
        service.submit([{"type": "join", "room": "r1", "ts": T0 + 2, "user": "lost"},
                        {"type": "transcript", "room": "r1", "ts": T0 + 3, "text": "发券啦"}])
    assert "lost" not in service.engine().rooms["r1"].viewers and "say" not in {r.trigger for r in
                                                                                service.records.values()}
    retried = service.submit([{"type": "join", "room": "r1", "ts": T0 + 2, "user": "lost"},
                              {"type": "transcript", "room": "r1", "ts": T0 + 3, "text": "发券啦"}])
    assert {d.request.user for d in retried.decisions if d.request.trigger == "say"} == {"u0", "u1", "u2", "lost"}
    service.close()
    assert_export_replays(tmp_path / "f.db", campaign, tmp_path)


def test_an_order_paid_at_checkout_cancels_dwell_and_counts_for_analytics(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "o.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0},
                    {"type": "join", "room": "r1", "ts": T0 + 1, "user": "buyer"},
                    {"type": "join", "room": "r1", "ts": T0 + 1, "user": "watcher"}])
    cart = [CartLine("sku", "", 15_000, 1)]
    checkout = service.checkout
    service.checkout_call(checkout.create_order, "o1", "buyer", cart, None, "k1", "platform:", "r1")
    service.checkout_call(checkout.pay, "o1", "k2", "platform:")
    made = service.submit([{"type": "heartbeat", "room": "r1", "ts": T0 + t, "user": u}
                           for t in (30, 61) for u in ("buyer", "watcher")]).decisions
    assert [(d.request.user, d.request.trigger) for d in made] == [("watcher", "dwell")]
    orders = [e for e in service.store.events() if e["type"] == "order"]
    assert orders == [{"type": "order", "room": "r1", "ts": T0 + 1, "id": "order:o1", "user": "buyer",
                       "order_id": "o1", "amount": 150.0}]
    service.close()


def test_an_order_id_as_long_as_allowed_logs_an_event_the_service_reads_back(tmp_path: Path) -> None:
    """An order paid at checkout (or reported by the merchant) is logged with an id derived from its order id; at
    128 characters that id was 134, over the limit the log is read back with: the service could not start again on
    its own file, explain failed, and a replay of the export dropped the order (and decided dwell otherwise)."""
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "long.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0},
                    {"type": "join", "room": "r1", "ts": T0 + 1, "user": "buyer"}])
    long_id, other_long = "V" * 128, "W" * 122  # "order:" and 122 characters: 128, as it always was
    for order_id in (long_id, other_long):
        service.checkout_call(service.checkout.create_order, order_id, "buyer", [CartLine("sku", "", 15_000, 1)],
                              None, f"c-{order_id}", "platform:", "r1")
        service.checkout_call(service.checkout.pay, order_id, f"p-{order_id}", "platform:")
    service.submit([{"type": "heartbeat", "room": "r1", "ts": T0 + t, "user": "buyer"} for t in (30, 61)])
    ids = [e["id"] for e in service.store.events() if e["type"] == "order"]
    assert ids[1] == "order:" + other_long and len(ids[0]) <= 128 and ids[0] != ids[1]
    assert not [d for d in service.records.values() if d.trigger == "dwell"]  # the orders cancelled it
    service.close()
    again = started(tmp_path / "long.db", campaign)  # raised EventError: id longer than 128 characters
    assert [e.order_id for e in again.orders] == [long_id, other_long]
    assert again.explain("buyer")
    again.close()
    assert_export_replays(tmp_path / "long.db", campaign, tmp_path)


def test_a_log_entry_that_cannot_be_read_back_is_skipped_as_replay_skips_it(tmp_path: Path) -> None:
    """One written by an earlier version under looser checks (a flash sale kept as 0 ms): the service starts, explain
    answers, and both agree with a replay of the export, which rejects that line and goes on."""
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "bad.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}])
    service.store.append_events([{"type": "flash_sale", "room": "r1", "ts": T0 + 1, "duration": 0}])
    service.submit([{"type": "join", "room": "r1", "ts": T0 + 2, "user": "late"}])
    service.close()
    again = started(tmp_path / "bad.db", campaign)  # raised EventError: the service would not start
    assert [e["trigger"] for e in again.explain("late") if "trigger" in e][:1] == ["newcomer"]
    made = again.submit([{"type": "comment", "room": "r1", "ts": T0 + 3, "user": "late", "text": "扣1"}]).decisions
    assert [d.request.trigger for d in made] == ["kou1"]
    again.close()
    assert_export_replays(tmp_path / "bad.db", campaign, tmp_path)


def test_a_posted_order_with_a_coupon_redeems_it_in_the_ledger(tmp_path: Path) -> None:
    service = started(tmp_path / "p.db")
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}, {"type": "join", "room": "r1", "ts": T0 + 1,
                                                                     "user": "a"}])
    [coupon] = service.store.coupons_of("a")
    service.submit([{"type": "order", "room": "r1", "ts": T0 + 5, "user": "b", "order_id": "x1", "amount": 30,
                     "coupon_id": coupon.coupon_id},  # another user's coupon: counted, ledger untouched
                    {"type": "order", "room": "r1", "ts": T0 + 6, "user": "a", "order_id": "x2", "amount": 30,
                     "coupon_id": coupon.coupon_id}])
    stored = service.store.coupon(coupon.coupon_id)
    assert stored is not None and (stored.state.value, stored.order_id) == ("redeemed", "x2")
    assert [h.action for h in service.store.history(coupon.coupon_id)] == ["issued", "redeemed_by_platform"]
    service.close()


def test_a_posted_order_never_redeems_a_coupon_expired_at_its_time(tmp_path: Path) -> None:
    """Checkout refuses an expired coupon (409 coupon_expired); a platform's order naming it moved it to redeemed all
    the same, its history going from issued to redeemed with no expiry between. The order still counts."""
    service = started(tmp_path / "p.db")
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}, {"type": "join", "room": "r1", "ts": T0 + 1,
                                                                     "user": "a"}])
    [coupon] = service.store.coupons_of("a")  # c10: valid for 15 minutes
    service.submit([{"type": "order", "room": "r1", "ts": T0 + 1 + 15 * 60 + 1, "user": "a", "order_id": "late",
                     "amount": 30, "coupon_id": coupon.coupon_id}])
    stored = service.store.coupon(coupon.coupon_id)
    assert stored is not None and (stored.state.value, stored.order_id) == ("issued", None)
    assert [h.action for h in service.store.history(coupon.coupon_id)] == ["issued"]
    assert [o.order_id for o in service.orders] == ["late"]
    service.close()


def test_pause_survives_a_real_restart_and_the_export_replays_exactly(tmp_path: Path) -> None:
    """Through ``livecoupon serve`` (SIGTERM and start again) and ``livecoupon export``'s code."""
    server = Server(EXAMPLE, tmp_path / "live.db")
    campaign = load_campaign(EXAMPLE)
    with server:
        client = httpx.Client(base_url=server.url, timeout=30)
        client.post("/v1/events", headers=PLATFORM, json=[{"type": "live_start", "room": "room-1", "ts": T0}])
        assert client.post("/v1/admin/triggers/newcomer", json={"paused": True}, headers=OPERATOR).status_code == 200
        client.post("/v1/events", headers=PLATFORM, json=[{"type": "join", "room": "room-1", "ts": T0 + 1,
                                                           "user": "first"}])
        server.restart()
        answer = client.post("/v1/events", headers=PLATFORM, json=[
            {"type": "join", "room": "room-1", "ts": T0 + 2, "user": f"later-{i}"} for i in range(3)]).json()
        assert all(d["trigger"] != "newcomer" for d in answer["decisions"])
        client.post("/v1/admin/triggers/newcomer", json={"paused": False}, headers=OPERATOR)
        resumed = client.post("/v1/events", headers=PLATFORM, json=[{"type": "join", "room": "room-1",
                                                                     "ts": T0 + 3, "user": "after"}]).json()
        assert [d["trigger"] for d in resumed["decisions"]] == ["newcomer"]
        client.close()
    assert_export_replays(tmp_path / "live.db", campaign, tmp_path)
    events = (tmp_path / "export" / "events.jsonl").read_text(encoding="utf-8")
    assert '"action":"pause"' in events and '"action":"resume"' in events


def test_export_writes_nothing_it_cannot_replay(tmp_path: Path) -> None:
    """The decisions file of an export equals the store's own records, in order."""
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "e.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}] +
                   [{"type": "join", "room": "r1", "ts": T0 + i, "user": f"u{i}"} for i in range(5)])
    records = list(service.records.values())
    service.close()
    counts = export_store(tmp_path / "e.db", tmp_path / "export")
    (tmp_path / "own").mkdir()
    write_decisions(records, tmp_path / "own")
    assert counts == {"events": 6, "issued": 5, "suppressed": 4}  # the milestone at the 4th viewer: min_interval
    assert files(tmp_path / "export") == files(tmp_path / "own")


def test_the_log_and_its_export_hold_only_the_events_applied_not_their_repeats(tmp_path: Path) -> None:
    # a platform retries: the same id again, at its own ts or a later one (even past the room's half hour of
    # memory), in the batch that first had it or another. None is applied, none is logged, so the export holds
    # each event once, and its replay decides as the service did
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "r.db", campaign)
    start = {"type": "live_start", "room": "r1", "ts": T0, "id": "s"}
    join = {"type": "join", "room": "r1", "ts": T0 + 1, "user": "a", "id": "j"}
    kou1 = {"type": "comment", "room": "r1", "ts": T0 + 2, "user": "a", "text": "扣1", "id": "c"}
    first = service.submit([start, join, kou1, dict(kou1)])
    assert (first.accepted, len(first.decisions)) == (4, 2)  # newcomer and kou1, once
    again = service.submit([dict(kou1, ts=T0 + 3), dict(join, ts=T0 + 3_000),
                            {"type": "heartbeat", "room": "r1", "ts": T0 + 4, "user": "a", "id": "h"}])
    assert again.decisions == []
    assert service.events_applied == 4
    service.close()
    counts = export_store(tmp_path / "r.db", tmp_path / "export")
    assert counts["events"] == 4
    logged = (tmp_path / "export" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [line.count('"id"') for line in logged] == [1, 1, 1, 1]
    assert [json.loads(line)["id"] for line in logged] == ["s", "j", "c", "h"]
    assert_export_replays(tmp_path / "r.db", campaign, tmp_path)


def test_a_repeat_is_still_ignored_after_a_restart_from_a_snapshot(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "s.db", campaign)
    kou1 = {"type": "comment", "room": "r1", "ts": T0 + 2, "user": "a", "text": "扣1", "id": "c"}
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}, kou1])
    service.snapshot()
    service.close()
    restarted = started(tmp_path / "s.db", campaign)
    assert restarted.submit([dict(kou1, ts=T0 + 5)]).decisions == []
    assert restarted.submit([dict(kou1, ts=T0 + 5, id="c2", user="b")]).decisions != []  # a new one is applied
    restarted.close()


def test_repeats_an_earlier_version_logged_are_ignored_again_on_a_restart(tmp_path: Path) -> None:
    # versions before 2026-12 logged every event accepted, repeats included; a restart reads them as replay does
    campaign = parse_campaign(CAMPAIGN)
    store = SqliteStore(tmp_path / "old.db")
    order = {"type": "order", "room": "r1", "ts": T0 + 3, "user": "a", "order_id": "o1", "amount": 50, "id": "o"}
    entries = [{"type": "live_start", "room": "r1", "ts": T0}, order, dict(order, ts=T0 + 9)]
    with store.unit_of_work():
        store.append_events([event_json(parse_event(e)) for e in entries])
    service = started(tmp_path / "old.db", campaign, store)
    assert [e.order_id for e in service.orders] == ["o1"]  # counted once in the analytics
    service.close()


# -- snapshots: a restart applies only the log after the latest one -----------------------------------
@given(steps=sessions(), cut=st.integers(0, 100))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_snapshot_and_the_log_after_it_rebuild_the_same_service(
        steps: list[Step], cut: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    campaign = parse_campaign(CAMPAIGN)
    root = tmp_path_factory.mktemp("snap")
    first = started(root / "s.db", campaign)
    events = [step for kind, step in steps if kind == "events"]
    split = len(events) * cut // 100
    for batch in events[:split]:
        first.submit(batch)
    first.snapshot()
    logged_at_snapshot = first.events_applied
    for batch in events[split:]:
        first.submit(batch)
    logged_after = first.events_applied - logged_at_snapshot  # the log keeps no repeated id (SPEC §2, §6)
    first.close()

    restarted = LiveService(campaign, SqliteStore(root / "s.db"), ClockMode.EVENT)
    tail = restarted.rebuild()
    assert tail == logged_after
    probe = [{"type": kind, "room": "r1", "ts": T0 + 5_000, "user": u} for kind in ("join", "heartbeat")
             for u in ("u0", "u1", "new")] + [{"type": "transcript", "room": "r1", "ts": T0 + 5_001, "text": "发券啦"}]
    after_snapshot = [(d.request.coupon_id, d.reason) for d in restarted.submit(probe).decisions]
    restarted.close()

    full = started(root / "full.db", campaign)
    for batch in events:
        full.submit(batch)
    assert [(d.request.coupon_id, d.reason) for d in full.submit(probe).decisions] == after_snapshot
    full.close()


def test_a_snapshot_of_another_campaign_is_ignored(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "c.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}, {"type": "join", "room": "r1", "ts": T0 + 1,
                                                                     "user": "a"}])
    assert service.snapshot() == 2
    service.close()
    edited = parse_campaign(CAMPAIGN.replace("presence_timeout: 40s", "presence_timeout: 50s"))
    again = LiveService(edited, SqliteStore(tmp_path / "c.db"), ClockMode.EVENT)
    assert again.rebuild() == 2  # the whole log, not the other campaign's state
    assert "a" in again.engine().rooms["r1"].viewers
    again.close()


def test_the_service_snapshots_by_itself_and_keeps_two(tmp_path: Path) -> None:
    from livecoupon.service_layer.service import SnapshotPolicy

    campaign = parse_campaign(CAMPAIGN)
    store = SqliteStore(tmp_path / "auto.db")
    service = LiveService(campaign, store, ClockMode.EVENT, snapshot_policy=SnapshotPolicy(entries=10, seconds=0))
    service.rebuild()
    for n in range(5):
        service.submit([{"type": "heartbeat", "room": "r1", "ts": T0 + n, "user": f"u{i}"} for i in range(12)])
    with contextlib.closing(sqlite3.connect(tmp_path / "auto.db")) as db:
        kept = db.execute("SELECT position FROM engine_snapshots ORDER BY position").fetchall()
    assert [p for (p,) in kept] == [48, 60]
    service.close()
    restarted = LiveService(campaign, SqliteStore(tmp_path / "auto.db"), ClockMode.EVENT)
    assert restarted.rebuild() == 0 and restarted.events_applied == 60
    restarted.close()


def test_a_restart_never_decides_again_what_the_store_already_decided(tmp_path: Path) -> None:
    """A lottery re-applied against a store that holds later coupons would draw other winners and, before
    this was fixed, issue them new coupons: a rebuild takes every decision back as recorded, and makes none."""
    campaign = parse_campaign("""
campaign: lottery-restart
rooms: [r1]
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 1h}
  c20: {title: twenty, kind: no_threshold, amount: 20, valid_for: 1h}
triggers:
  - {name: lucky, when: online_reached, count: 4, coupon: c10, audience: lottery, winners: 2}
  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}
limits: {min_interval: 1h}
""")
    users = ["a", "b", "c", "d"]
    live = started(tmp_path / "l.db", campaign)
    live.submit([{"type": "live_start", "room": "r1", "ts": T0}] +
                [{"type": "join", "room": "r1", "ts": T0 + 1, "user": u} for u in users] +
                [{"type": "online_count", "room": "r1", "ts": T0 + 2, "count": 4}])
    winners = {r.user for r in live.records.values() if r.trigger == "lucky" and r.issued}
    [first_loser, second_loser] = sorted(set(users) - winners)
    live.submit([{"type": "comment", "room": "r1", "ts": T0 + 3, "user": first_loser, "text": "扣1"}])
    before = {r.coupon_id: r for r in live.records.values()}
    live.close()

    restarted = started(tmp_path / "l.db", campaign)
    after = {r.coupon_id: r for r in restarted.store.decisions(campaign.campaign)}
    assert after == before  # the second loser, alone eligible now, was not drawn a coupon
    assert second_loser not in {r.user for r in after.values() if r.issued}
    restarted.close()


# -- an operator's idempotency key: the first answer, every time (SPEC §5) ------------------------------------------
Answer = list[tuple[str, str, str | None]]


def answered(made: list[Decision]) -> Answer:
    return [(d.request.coupon_id, d.request.user, d.reason.value if d.reason else None) for d in made]


def logged(service: LiveService) -> int:
    return sum(1 for _ in service.store.events())


def manual_decisions(service: LiveService) -> list[str]:
    return [r.coupon_id for r in service.store.decisions("log-test", MANUAL)]


def assert_key_reused(call: Any, *args: Any) -> None:
    with pytest.raises(Malformed) as refused:
        call(*args)
    assert (refused.value.code, refused.value.field) == ("idempotency_key_reused", "idempotency_key")


@pytest.mark.parametrize("other", [
    ("c20", ["alice"], "r1"), ("c20", ["bob", "alice"], "r1"), ("c20", ["alice", "bob", "carol"], "r1"),
    ("c10", ["alice", "bob"], "r1"), ("c20", ["alice", "bob"], "r2"),
], ids=["fewer-users", "other-order", "more-users", "other-template", "other-room"])
def test_an_operator_key_gets_its_first_answer_and_another_request_under_it_a_422(
        tmp_path: Path, other: tuple[str, list[str], str]) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "k.db", campaign)
    service.submit([{"type": "live_start", "room": room, "ts": T0} for room in ("r1", "r2")] +
                   [{"type": "join", "room": "r1", "ts": T0 + 1, "user": "alice"}])
    first = answered(service.issue_manually("c20", ["alice", "bob"], "r1", "k1"))
    assert [(user, why) for _, user, why in first] == [("alice", "min_interval"), ("bob", None)]
    entries, coupons = logged(service), [c.coupon_id for c in service.store.coupons_of("bob")]
    assert answered(service.issue_manually("c20", ["alice", "bob", "bob"], "r1", "k1")) == first
    template, users, room = other
    assert_key_reused(service.issue_manually, template, users, room, "k1")
    assert_key_reused(service.issue_to_present, "c20", "r1", "k1")  # the other operator action, the same key
    assert logged(service) == entries  # neither the repeat nor the refusals were logged
    assert manual_decisions(service) == [cid for cid, _, _ in first]
    assert [c.coupon_id for c in service.store.coupons_of("bob")] == coupons
    assert service.store.coupons_of("carol") == []
    service.close()
    assert_export_replays(tmp_path / "k.db", campaign, tmp_path)


def test_send_to_everyone_present_retried_after_the_audience_changed_gets_its_first_answer(tmp_path: Path) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "p.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}] +
                   [{"type": "join", "room": "r1", "ts": T0 + 1, "user": u} for u in ("alice", "bob")])
    first = answered(service.issue_to_present("c20", "r1", "all-1"))
    assert [user for _, user, _ in first] == ["alice", "bob"]
    service.submit([{"type": "leave", "room": "r1", "ts": T0 + 30, "user": "alice"},
                    {"type": "join", "room": "r1", "ts": T0 + 31, "user": "carol"}])
    entries = logged(service)
    assert answered(service.issue_to_present("c20", "r1", "all-1")) == first
    assert_key_reused(service.issue_to_present, "c10", "r1", "all-1")
    assert logged(service) == entries and manual_decisions(service) == [cid for cid, _, _ in first]
    assert all(r.user != "carol" for r in service.records.values() if r.trigger == MANUAL)
    service.close()


@pytest.mark.parametrize("snapshot", [False, True], ids=["from-the-log", "from-a-snapshot"])
def test_after_a_restart_a_key_still_gets_its_first_answer(tmp_path: Path, snapshot: bool) -> None:
    campaign = parse_campaign(CAMPAIGN)
    service = started(tmp_path / "r.db", campaign)
    service.submit([{"type": "live_start", "room": "r1", "ts": T0}] +
                   [{"type": "join", "room": "r1", "ts": T0 + 1, "user": u} for u in ("alice", "bob")])
    first_present = answered(service.issue_to_present("c20", "r1", "all-1"))
    first_issue = answered(service.issue_manually("c10", ["carol", "alice"], "r1", "vip-1"))
    if snapshot:
        service.snapshot()
    service.close()

    again = LiveService(campaign, SqliteStore(tmp_path / "r.db"), ClockMode.EVENT)
    assert again.rebuild() == (0 if snapshot else logged(again))  # the keys come from the snapshot, or the log
    again.submit([{"type": "leave", "room": "r1", "ts": T0 + 30, "user": "alice"},
                  {"type": "live_start", "room": "r1", "ts": T0 + 60},
                  {"type": "join", "room": "r1", "ts": T0 + 61, "user": "dave"}])
    entries = logged(again)
    assert answered(again.issue_to_present("c20", "r1", "all-1")) == first_present
    assert answered(again.issue_manually("c10", ["carol", "alice"], "r1", "vip-1")) == first_issue
    assert_key_reused(again.issue_to_present, "c10", "r1", "all-1")
    assert_key_reused(again.issue_manually, "c10", ["carol"], "r1", "vip-1")
    assert logged(again) == entries
    assert sorted(manual_decisions(again)) == sorted(cid for cid, _, _ in first_present + first_issue)
    again.close()
    assert_export_replays(tmp_path / "r.db", campaign, tmp_path)
