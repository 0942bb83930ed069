"""The store port's contract, run against every backend (memory and a real SQLite file)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import (
    REFUND_KEPT,
    REFUNDED_BY_MERCHANT,
    CouponKind,
    CouponState,
    CouponTemplate,
    HistoryEntry,
    Terms,
    with_state,
)
from livecoupon.domain.decisions import IssueRequest, Reason, coupon_id_for
from livecoupon.domain.orders import Order, OrderState
from livecoupon.domain.pricing import CartLine
from livecoupon.store.memory import MemoryStore
from livecoupon.store.port import Spoiled, Store, StoredAnswer
from livecoupon.store.relational import OPERATOR_ENTRY, RelationalStore, json_text
from livecoupon.store.sqlite import SqliteStore

TEN = CouponTemplate("ten", "十元券", Terms(CouponKind.NO_THRESHOLD, amount=1000), valid_for_ms=600_000, stock=3)
PCT = CouponTemplate("pct", "九折", Terms(CouponKind.PERCENT, percent_tenths=100, max_discount=2000),
                     valid_until_ms=2_000_000)


def _counts_in_redis(store: Store) -> bool:
    """PostgreSQL with the claims' counters in Redis keeps none in ``budget_shares``."""
    redis_claims = getattr(store, "redis_claims", None)
    return redis_claims is not None and redis_claims() is not None


def request(user: str, *, at: int = 1_000_000, trigger: str = "t", firing: str = "", room: str = "r",
            broadcast: int = 1, template: CouponTemplate | None = TEN, campaign: str = "c") -> IssueRequest:
    cid = coupon_id_for(campaign, room, broadcast, trigger, firing, user)
    return IssueRequest(cid, campaign, room, broadcast, trigger, user, template, at)


def test_issue_creates_a_coupon_with_history(store: Store) -> None:
    [decision] = store.issue([request("alice")], Limits())
    assert decision.issued and decision.expires_at == 1_600_000
    coupon = store.coupon(decision.request.coupon_id)
    assert coupon is not None and coupon.user == "alice" and coupon.state is CouponState.ISSUED
    assert coupon.terms.amount == 1000 and coupon.expires_at == 1_600_000
    assert [h.action for h in store.history(coupon.coupon_id)] == ["issued"]
    assert [c.coupon_id for c in store.coupons_of("alice")] == [coupon.coupon_id]


def test_a_users_coupons_come_in_the_order_issued(store: Store) -> None:
    """Issued in the same millisecond (two triggers of one event), then one earlier in event time that arrived
    later (another room's): the order issued, not the ids' nor the times' (a quote's last tie-break, SPEC §5)."""
    made = store.issue([request("alice", trigger=t, template=PCT) for t in ("t1", "t2", "t3")], Limits())
    made += store.issue([request("alice", trigger="t4", at=999_000, template=PCT)], Limits())
    issued = [d.request.coupon_id for d in made]
    assert sorted(issued) != issued  # the ids alone would order them otherwise
    assert [c.coupon_id for c in store.coupons_of("alice")] == issued
    assert [c.coupon_id for c in store.unacknowledged("alice", "r")] == issued


def test_valid_until_sets_expiry_and_past_it_the_template_is_expired(store: Store) -> None:
    ok, late = store.issue([request("a", template=PCT, at=1_999_999), request("b", template=PCT, at=2_000_001)],
                           Limits())
    assert ok.issued and ok.expires_at == 2_000_000
    assert late.reason is Reason.TEMPLATE_EXPIRED


def test_stock_is_never_exceeded(store: Store) -> None:
    made = store.issue([request(f"u{i}") for i in range(5)], Limits())
    assert [d.issued for d in made] == [True, True, True, False, False]
    assert made[3].reason is Reason.OUT_OF_STOCK
    assert store.totals("c").stock_used == {"ten": 3}
    assert store.stock_used("c") == {"ten": 3} and store.stock_used("another") == {}  # an offer's arms read it


def test_the_same_decision_is_never_issued_twice(store: Store) -> None:
    first = store.issue([request("alice")], Limits())[0]
    again = store.issue([request("alice"), request("alice")], Limits())
    assert [d.issued for d in again] == [True, True]
    assert all(d.request.coupon_id == first.request.coupon_id for d in again)
    assert len(store.coupons_of("alice")) == 1
    assert store.totals("c").stock_used == {"ten": 1}


def test_a_recorded_suppression_is_returned_again(store: Store) -> None:
    store.issue([request(f"u{i}") for i in range(3)], Limits())
    [out] = store.issue([request("late")], Limits())
    assert out.reason is Reason.OUT_OF_STOCK
    [again] = store.issue([request("late")], Limits())
    assert again.reason is Reason.OUT_OF_STOCK
    assert store.totals("c").suppressed == 1


def test_per_user_cap_counts_issued_coupons_in_the_broadcast(store: Store) -> None:
    limits = Limits(per_user=2)
    made = store.issue([request("a", trigger=f"t{i}") for i in range(3)], limits)
    assert [d.reason for d in made] == [None, None, Reason.PER_USER_CAP]
    [next_broadcast] = store.issue([request("a", trigger="t9", broadcast=2)], limits)
    assert next_broadcast.issued


def test_device_cap_counts_issued_coupons_per_device_key_across_calls(store: Store) -> None:
    def on(user: str, device: str, **kw: object) -> IssueRequest:
        return replace(request(user, **kw), device_key=f"t\x1f{device}", per_device=2)  # type: ignore[arg-type]

    first = store.issue([on("a", "phone"), on("b", "phone"), on("c", "phone"), on("d", "tablet")], Limits())
    assert [d.reason for d in first] == [None, None, Reason.DEVICE_CAP, None]
    [later] = store.issue([on("e", "phone", trigger="t2")], Limits())  # the cap counts per key, in the store
    assert later.reason is Reason.DEVICE_CAP
    assert [r.user for r in store.passing_caps([on("f", "phone"), on("g", "new")], Limits())] == ["g"]


def test_risk_and_the_blocklist_come_before_the_user_caps(store: Store) -> None:
    limits = Limits(per_user=1, max_risk=0.5)
    made = store.issue([replace(request("risky"), risk=0.9), replace(request("blocked"), blocked=True, risk=0.9),
                        replace(request("ok"), risk=0.5)], limits)
    assert [d.reason for d in made] == [Reason.RISK, Reason.BLOCKED, None]


def test_min_interval_is_campaign_wide_and_exact_gap_allows(store: Store) -> None:
    limits = Limits(min_interval_ms=120_000)
    a = store.issue([request("a", trigger="x", at=0)], limits)[0]
    b = store.issue([request("a", trigger="y", at=119_999, room="other")], limits)[0]
    c = store.issue([request("a", trigger="z", at=120_000, room="other")], limits)[0]
    assert a.issued and b.reason is Reason.MIN_INTERVAL and c.issued


def test_budget_allows_spending_exactly_up_to_it(store: Store) -> None:
    limits = Limits(budget=3000)  # a percent coupon's face value is its max_discount (2000 fen)
    made = store.issue([request("a", template=PCT), request("b", template=TEN), request("c", template=TEN)], limits)
    assert [d.reason for d in made] == [None, None, Reason.OVER_BUDGET]
    assert store.totals("c").budget_spent == 3000


def test_holdout_is_recorded_without_a_coupon(store: Store) -> None:
    [d] = store.issue([replace(request("h"), template=None, experiment="e", variant="control")], Limits())
    assert d.reason is Reason.HOLDOUT
    assert store.coupons_of("h") == []
    [logged] = list(store.decisions("c"))
    assert logged.reason is Reason.HOLDOUT and logged.variant == "control"


def test_passing_caps_filters_without_issuing(store: Store) -> None:
    limits = Limits(per_user=1)
    store.issue([request("a", trigger="x")], limits)
    passing = store.passing_caps([request("a", trigger="y"), request("b", trigger="y")], limits)
    assert [r.user for r in passing] == ["b"]
    assert store.coupons_of("b") == []


def test_first_visit_is_recorded_once(store: Store) -> None:
    assert store.mark_visited("c", "alice") is True
    assert store.mark_visited("c", "alice") is False
    assert store.mark_visited("other", "alice") is True


def test_decisions_come_back_in_decision_order(store: Store) -> None:
    store.issue([request("b"), request("a")], Limits())
    store.issue([request("c", template=None)], Limits())
    assert [d.user for d in store.decisions("c")] == ["b", "a", "c"]


def test_one_trigger_s_decisions_come_back_alone_in_decision_order(store: Store) -> None:
    store.issue([request("b", trigger="manual"), request("a"), request("c", trigger="manual", template=None)],
                Limits())
    store.issue([request("d", trigger="manual", campaign="other")], Limits())
    assert [d.user for d in store.decisions("c", "manual")] == ["b", "c"]
    assert [d.user for d in store.decisions("c", "t")] == ["a"]


def test_one_user_s_decisions_of_every_campaign_come_back_in_decision_order(store: Store) -> None:
    """What a gateway explains a user's coupons from (the decisions as the workers made them)."""
    if not isinstance(store, RelationalStore):
        pytest.skip("only the relational stores serve gateways")
    store.issue([request("b", trigger="manual"), request("a"), request("b", template=None)], Limits())
    store.issue([request("b", campaign="other")], Limits())
    mine = list(store.decisions(user="b"))
    assert [(d.user, d.trigger, d.template is None) for d in mine] == [("b", "manual", False), ("b", "t", True),
                                                                        ("b", "t", False)]


def test_coupon_moves_by_compare_and_set(store: Store) -> None:
    [d] = store.issue([request("a")], Limits())
    coupon = store.coupon(d.request.coupon_id)
    assert coupon is not None
    reserved = with_state(coupon, CouponState.RESERVED, order_id="o1", reserved_until=5)
    entry = HistoryEntry(coupon.coupon_id, 2, CouponState.RESERVED, "reserved", "o1")
    assert store.move_coupon(reserved, CouponState.ISSUED, entry) is True
    assert store.move_coupon(reserved, CouponState.ISSUED, entry) is False
    stored = store.coupon(coupon.coupon_id)
    assert stored is not None and stored.state is CouponState.RESERVED and stored.order_id == "o1"
    assert [h.action for h in store.history(coupon.coupon_id)] == ["issued", "reserved"]


def test_orders_insert_once_and_move_by_compare_and_set(store: Store) -> None:
    order = Order("o1", "a", (CartLine("p", "c", 1000, 2),), None, 2000, 0, 2000, OrderState.CREATED, 7)
    assert store.insert_order(order) is True
    assert store.insert_order(order) is False
    assert store.order("o1") == order
    paid = replace(order, state=OrderState.PAID)
    assert store.move_order(paid, OrderState.CREATED) is True
    assert store.move_order(paid, OrderState.CREATED) is False
    stored = store.order("o1")
    assert stored is not None and stored.state is OrderState.PAID


def test_the_orders_refunded_are_those_refunded_here_or_by_the_merchant(store: Store) -> None:
    for order_id, state in (("paid", OrderState.PAID), ("back", OrderState.REFUNDED)):
        store.insert_order(Order(order_id, "a", (CartLine("p", "c", 1000, 1),), None, 1000, 0, 1000, state, 7))
    issued = store.issue([request("a"), request("b")], Limits())
    by_merchant, kept = (store.coupon(d.request.coupon_id) for d in issued)
    assert by_merchant is not None and kept is not None
    for coupon, action, order_id in ((by_merchant, REFUNDED_BY_MERCHANT, "m1"), (kept, REFUND_KEPT, "m2"),
                                     (kept, "redeemed_by_platform", "m3")):
        entry = HistoryEntry(coupon.coupon_id, 9, CouponState.ISSUED, action, order_id)
        assert store.move_coupon(coupon, coupon.state, entry)
    assert store.refunded_orders() == {"back", "m1", "m2"}


def test_an_idempotency_key_keeps_its_first_answer(store: Store) -> None:
    store.remember("k", StoredAnswer("f1", 201, {"n": 1}))
    store.remember("k", StoredAnswer("f2", 409, {"n": 2}))
    assert store.recall("k") == StoredAnswer("f1", 201, {"n": 1})
    assert store.recall("missing") is None


def test_an_order_and_the_answer_its_key_has_are_read_together(store: Store) -> None:
    order = Order("o1", "ann", (CartLine("p", "c", 1000, 1),), None, 1000, 0, 1000, OrderState.CREATED, 7)
    store.insert_order(order)
    ann, nobody, bob = StoredAnswer("f1", 200, {"n": 1}), StoredAnswer("f0", 404, {"n": 0}), StoredAnswer("f2", 409, {})
    store.remember("platform\x1fann\x1fpay-1", ann)
    store.remember("platform\x1f\x1fpay-1", nobody)
    store.remember("platform\x1fbob\x1fpay-1", bob)
    # the order's own user scopes the key
    assert store.order_and_answer("o1", "platform\x1f", "\x1fpay-1") == (order, ann)
    assert store.order_and_answer("o1", "platform\x1f", "\x1fpay-2") == (order, None)
    assert store.order_and_answer("o1", "viewer\x1f", "\x1fpay-1") == (order, None)
    # no order: an empty user scopes it
    assert store.order_and_answer("o9", "platform\x1f", "\x1fpay-1") == (None, nobody)
    assert store.order_and_answer("o9", "viewer\x1f", "\x1fpay-1") == (None, None)


def test_creating_an_order_reads_the_order_the_answer_and_the_coupon_together(store: Store) -> None:
    issued, _, _, out = store.issue([request(f"u{i}") for i in range(4)], Limits())  # stock 3: the last suppressed
    assert out.reason is Reason.OUT_OF_STOCK
    cid = issued.request.coupon_id
    store.confirm([cid], 9)
    order = Order("o1", "u0", (CartLine("p", "c", 1000, 1),), cid, 1000, 0, 1000, OrderState.CREATED, 7)
    store.insert_order(order)
    answer = StoredAnswer("f1", 201, {"n": 1})
    store.remember("k1", answer)
    coupon = store.coupon(cid)
    assert coupon is not None and coupon.confirmed_at == 9
    assert store.order_answer_and_coupon("o1", "k1", cid) == (order, answer, coupon)
    assert store.order_answer_and_coupon("o2", "k2", cid) == (None, None, coupon)
    assert store.order_answer_and_coupon("o1", "k1", None) == (order, answer, None)
    assert store.order_answer_and_coupon("o2", "k1", "nope") == (None, answer, None)
    assert store.coupon(out.request.coupon_id) is None  # a suppression is no coupon, read either way
    assert store.order_answer_and_coupon("o2", "k2", out.request.coupon_id) == (None, None, None)


def test_redeem_moves_only_a_coupon_reserved_for_the_order_and_not_lapsed(store: Store) -> None:
    [d] = store.issue([request("a", room="studio")], Limits())
    coupon = store.coupon(d.request.coupon_id)
    assert coupon is not None
    cid = coupon.coupon_id

    def entry(order_id: str, at: int) -> HistoryEntry:
        return HistoryEntry(cid, at, CouponState.REDEEMED, "redeemed", order_id)

    assert store.redeem(entry("o1", 3)) is None  # issued, not reserved
    reserved = with_state(coupon, CouponState.RESERVED, order_id="o1", reserved_until=5)
    assert store.move_coupon(reserved, CouponState.ISSUED, HistoryEntry(cid, 2, CouponState.RESERVED, "reserved", "o1"))
    assert store.redeem(entry("o2", 3)) is None  # another order's reservation
    assert store.redeem(entry("o1", 6)) is None  # lapsed at 6
    assert store.coupon(cid) == reserved
    assert store.redeem(entry("o1", 5)) == "studio"  # held until 5: still held at 5
    stored = store.coupon(cid)
    assert stored is not None and stored.state is CouponState.REDEEMED
    assert (stored.order_id, stored.reserved_until) == ("o1", None)
    assert [(h.action, h.order_id, h.at) for h in store.history(cid)] == [("issued", None, 1_000_000),
                                                                          ("reserved", "o1", 2), ("redeemed", "o1", 5)]
    assert store.redeem(entry("o1", 5)) is None  # redeemed already


def test_a_reservation_with_no_end_never_lapses_for_redeem(store: Store) -> None:
    [d] = store.issue([request("a")], Limits())
    coupon = store.coupon(d.request.coupon_id)
    assert coupon is not None
    held = with_state(coupon, CouponState.RESERVED, order_id="o1")
    assert store.move_coupon(held, CouponState.ISSUED, HistoryEntry(coupon.coupon_id, 2, CouponState.RESERVED,
                                                                    "reserved", "o1"))
    assert store.redeem(HistoryEntry(coupon.coupon_id, 10**12, CouponState.REDEEMED, "redeemed", "o1")) == "r"


class Refusal(Exception):
    pass


def test_a_guarded_block_that_raises_before_writing_leaves_the_transaction_as_it_was(store: Store) -> None:
    with store.unit_of_work():
        store.remember("before", StoredAnswer("f", 200, {}))
        with pytest.raises(Refusal), store.guarded():
            store.recall("before")
            raise Refusal
        store.remember("after", StoredAnswer("f", 200, {}))
    assert store.recall("before") is not None and store.recall("after") is not None


def test_a_guarded_block_that_raises_after_writing_is_undone_or_spoils_its_transaction(store: Store) -> None:
    if isinstance(store, MemoryStore):
        pytest.skip("the memory store never undoes: a guarded block only serialises")
    spoiled = False
    with store.unit_of_work():
        store.remember("before", StoredAnswer("f", 200, {}))
        try:
            with store.guarded():
                store.remember("inside", StoredAnswer("f", 200, {}))
                raise Refusal
        except Spoiled as exc:
            spoiled = isinstance(exc.__cause__, Refusal)
        except Refusal:
            pass
    # either its writes were undone and the rest stands, or the whole unit of work is for rolling back
    if spoiled:
        assert isinstance(store, SqliteStore)
    else:
        assert store.recall("inside") is None and store.recall("before") is not None


def test_the_event_log_keeps_order(store: Store) -> None:
    store.append_events([{"type": "join", "n": 1}, {"type": "leave", "n": 2}])
    store.append_events([{"type": "join", "n": 3}])
    assert [e["n"] for e in store.events()] == [1, 2, 3]


def test_a_batch_is_logged_entry_by_entry_as_written(store: Store) -> None:
    """Each entry of a batch is a row of its own, in order, its body the compact text of that entry alone (SQLite
    splits the batch's array in SQL: the text must be each element's as msgspec wrote it, escapes and numbers
    included, or the operator entries' prefix and the exports would read differently)."""
    if not isinstance(store, RelationalStore):
        pytest.skip("the memory store keeps entries as objects")
    batch = [{"type": "comment", "room": "r", "ts": 1.5, "text": 'say "扣1" \\ \n\t\u2028 😀', "n": 0},
             {"type": "gift", "room": "r", "ts": 1731326400.123, "value": 0.1, "count": 12345678901234},
             {"type": "operator", "room": "*", "ts": 2, "action": "issue", "users": ["a", "b"], "nested": {"x": []}}]
    batch += [{"type": "heartbeat", "room": "r", "ts": 3, "n": i} for i in range(1, 2_500)]
    store.append_events(batch)
    store.append_events([])
    bodies = [body for (body,) in store._run("SELECT body FROM events WHERE log = ? ORDER BY seq", (store.log,))]
    assert bodies == [json_text(e) for e in batch]


def test_a_logged_entry_msgspec_refuses_is_still_read(store: Store) -> None:
    """Entries are read back by msgspec; one it refuses (a lone surrogate's escape, as ``json.dumps`` wrote
    logs once) by the standard parser."""
    if not isinstance(store, RelationalStore):
        pytest.skip("the memory store keeps entries as objects")
    store.append_events([{"type": "join", "n": 1}])
    store._many("INSERT INTO events (log, body) VALUES (?, ?)", [(store.log, '{"type": "comment", "text": "\\ud800"}')])
    assert [e.get("text") for e in store.events()] == [None, "\ud800"]


def test_operator_commands_are_found_by_action_in_every_log(store: Store) -> None:
    """What a gateway starting reads (the campaign versions published); PostgreSQL finds them by its partial index
    of operator entries, not by a scan of the whole log."""
    if not isinstance(store, RelationalStore):
        pytest.skip("only gateways read them, on PostgreSQL")
    publish = {"type": "operator", "room": "*", "ts": 1, "id": "op:1", "action": "publish", "version": 2}
    store.append_events([{"type": "comment", "room": "r", "ts": 1, "text": '"action":"publish"'}, publish,
                         {"type": "operator", "room": "*", "ts": 2, "id": "op:2", "action": "pause", "trigger": "t"}])
    store._many("INSERT INTO events (log, body) VALUES (?, ?)",
                [("p1", '{"type":"operator","room":"*","ts":3,"id":"op:3","action":"publish","version":3}')])
    assert [e["id"] for e in store.operator_events("publish")] == ["op:1", "op:3"]
    assert [e["id"] for e in store.operator_events("pause")] == ["op:2"]
    if store.__class__.__name__ == "PostgresStore":
        store._run("SET enable_seqscan = off")  # (a table this small is scanned whatever the indexes)
        plan = store._run(f"EXPLAIN SELECT body FROM events WHERE {OPERATOR_ENTRY} AND body LIKE ? ORDER BY log, seq",
                          ('{"type":"operator",%"action":"publish"%',)).fetchall()
        store._run("RESET enable_seqscan")
        assert "operator_entries" in " ".join(line for (line,) in plan)


def test_acknowledgements_are_per_user_and_counted_once(store: Store) -> None:
    [a, b] = store.issue([request("alice"), request("bob")], Limits())
    alice, bob = a.request.coupon_id, b.request.coupon_id
    assert [c.coupon_id for c in store.unacknowledged("alice", "r")] == [alice]
    assert store.acknowledge([(alice, "alice"), (bob, "alice"), ("nope", "alice")], at=5) == 1
    assert store.acknowledge([(alice, "alice"), (bob, "bob")], at=6) == 1
    assert store.unacknowledged("alice", "r") == [] and store.unacknowledged("bob", "r") == []
    assert store.unacknowledged("alice", "other-room") == []


def test_recorded_returns_the_decisions_made_under_ids(store: Store) -> None:
    made = store.issue([request("a"), replace(request("b"), propensity=0.25), request("c", template=None)], Limits())
    found = store.recorded([d.request.coupon_id for d in made] + ["cp_unknown"])
    assert set(found) == {d.request.coupon_id for d in made}
    assert found[made[1].request.coupon_id].propensity == 0.25
    assert found[made[2].request.coupon_id].reason is Reason.HOLDOUT


def test_budget_shares_are_counted_and_a_store_without_the_counters_sums_them_once(store: Store) -> None:
    """A trigger's and a room's spend are counters read in one row (relational stores keep them in
    ``budget_shares``); a store written before the counters, its rows gone, starts them from its
    decisions and still holds both budgets exactly."""
    ten = replace(TEN, stock=None)
    limits = Limits(room_budget=5_000)

    def asking(prefix: str, n: int, trigger: str, budget: int | None) -> list[IssueRequest]:
        return [replace(request(f"{prefix}{i}", trigger=trigger, room="r", template=ten), trigger_budget=budget)
                for i in range(n)]

    assert all(d.issued for d in store.issue(asking("u", 2, "t", 3_000), limits))  # t: 20 of 30 yuan; r: 20 of 50
    assert (store.spent("c"), store.spent("c", "t"), store.spent("c", "other")) == (2_000, 2_000, 0)
    if isinstance(store, RelationalStore) and not _counts_in_redis(store):
        with store.unit_of_work():
            rows = dict(store._run("SELECT share, spent FROM budget_shares WHERE campaign='c'").fetchall())
            assert rows == {"trigger:t": 2_000, "room:r": 2_000}
            store._run("DELETE FROM budget_shares")  # as a store written before the counters
    assert [d.reason for d in store.issue(asking("v", 2, "t", 3_000), limits)] == [None, Reason.OVER_BUDGET]
    assert [d.reason for d in store.issue(asking("w", 3, "other", None), limits)] == [None, None, Reason.OVER_BUDGET]


def test_a_triggers_budget_and_a_rooms_budget_hold_across_calls(store: Store) -> None:
    limits = Limits(room_budget=2_500)  # two ten-yuan coupons a room, and then some
    own = [replace(request(f"u{i}", trigger="t", room="r"), trigger_budget=1_000) for i in range(2)]
    assert [d.reason for d in store.issue(own, limits)] == [None, Reason.OVER_BUDGET]  # 10 yuan for trigger t
    others = [request(f"v{i}", trigger="other", room="r") for i in range(2)]
    assert [d.reason for d in store.issue(others, limits)] == [None, Reason.OVER_BUDGET]  # room r: 20 of 25 yuan
    assert store.issue([request("w", trigger="other", room="elsewhere")], limits)[0].issued
