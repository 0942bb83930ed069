"""Several campaigns in one deployment (docs/campaign.md, "Several campaigns"): each decides its own rooms
under its own limits, operator commands name their campaign, a campaign joins part-way through the log at its
``start`` entry, and the log replays exactly: with every file, or with one campaign's file alone."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from livecoupon.campaign_file import parse_campaign
from livecoupon.cli import app as cli
from livecoupon.domain.campaign import Campaign
from livecoupon.engine.campaigns import DeploymentError
from livecoupon.engine.clock import ClockMode
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.errors import Malformed, NotFound
from livecoupon.service_layer.service import LiveService
from livecoupon.store.export import export_store
from livecoupon.store.sqlite import SqliteStore
from support.apps import serving
from support.credentials import OPERATOR, PLATFORM

T0 = 1_700_000_000
SHOP_A = """
campaign: shop-a
rooms: ["r1", "r2"]
presence_timeout: 40s
coupons:
  c10: {title: A 十元券, kind: no_threshold, amount: 10, valid_for: 15m, stock: 5}
triggers:
  - {name: newcomer, when: first_visit, coupon: c10}
  - {name: dwell, when: dwell, after: 60s, coupon: c10}
  - {name: kou1, when: comment, keywords: [扣1], coupon: c10}
limits: {per_user: 3, budget: 40}
"""
SHOP_B = """
campaign: shop-b
rooms: ["r2", "r3"]
presence_timeout: 40s
coupons:
  c5: {title: B 五元券, kind: no_threshold, amount: 5, valid_for: 15m}
triggers:
  - {name: newcomer, when: first_visit, coupon: c5}
  - {name: say, when: host_says, phrases: [发券啦], coupon: c5, cooldown: 20s}
  - {name: dwell, when: dwell, after: 90s, coupon: c5}
limits: {per_user: 2}
"""
A, B = parse_campaign(SHOP_A), parse_campaign(SHOP_B)


def started(db: Path, campaigns: list[Campaign]) -> LiveService:
    service = LiveService(campaigns, SqliteStore(db), ClockMode.EVENT)
    service.rebuild()
    return service


def joins(users: list[str], room: str, ts: float) -> list[dict[str, Any]]:
    return [{"type": "join", "room": room, "ts": ts, "user": u, "id": f"j-{room}-{u}-{ts}"} for u in users]


def on_air(ts: float = T0) -> list[dict[str, Any]]:
    return [{"type": "live_start", "room": room, "ts": ts} for room in ("r1", "r2", "r3")]


def issued(service: LiveService, campaign: str) -> list[tuple[str, str, str]]:
    records, _ = service.metrics_inputs(campaign)
    return [(r.room, r.trigger, r.user) for r in records if r.issued]


def exported(db: Path, out: Path) -> list[str]:
    export_store(db, out)
    return [(out / name).read_text(encoding="utf-8") for name in ("issued.jsonl", "suppressed.jsonl")]


def replayed(campaigns: list[Campaign], events: Path, out: Path) -> list[str]:
    write_outputs(replay(campaigns, events.read_text(encoding="utf-8").splitlines()), out)
    return [(out / name).read_text(encoding="utf-8") for name in ("issued.jsonl", "suppressed.jsonl")]


def only(lines: str, campaign: Campaign) -> str:
    """The lines of one campaign's triggers (the example campaigns' coupons tell them apart)."""
    coupons = set(campaign.coupons)
    kept = [line for line in lines.splitlines(keepends=True)
            if json.loads(line).get("coupon", "c10" if campaign is A else "c5") in coupons]
    return "".join(kept)


def test_each_campaign_decides_the_rooms_it_lists_under_its_own_limits(tmp_path: Path) -> None:
    service = started(tmp_path / "d.db", [B, A])  # decided in id order, however configured
    service.submit(on_air())
    service.submit(joins([f"u{i}" for i in range(4)], "r1", T0 + 1))
    service.submit(joins([f"u{i}" for i in range(2, 8)], "r2", T0 + 2))
    service.submit(joins(["u9"], "r3", T0 + 3))
    a, b = issued(service, "shop-a"), issued(service, "shop-b")
    assert len(a) == 4 and {room for room, _, _ in a} <= {"r1", "r2"}  # its budget of 40 yuan, only its rooms
    assert sorted(user for _, _, user in b) == sorted([f"u{i}" for i in range(2, 8)] + ["u9"])  # r2 and r3
    totals = service.store.totals("shop-a"), service.store.totals("shop-b")
    assert (totals[0].budget_spent, totals[1].budget_spent) == (4_000, 3_500)
    service.close()


def test_operator_commands_name_their_campaign_and_the_log_replays_with_all_or_one(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    service = started(db, [A, B])
    service.submit(on_air())
    with pytest.raises(NotFound) as asked:
        service.pause("newcomer", True)
    assert asked.value.code == "campaign_required"
    with pytest.raises(NotFound):
        service.pause("newcomer", True, "shop-c")
    service.pause("newcomer", True, "shop-a")  # shop-b's trigger of the same name still fires
    service.submit(joins(["v1", "v2"], "r2", T0 + 5))
    assert issued(service, "shop-a") == [] and len(issued(service, "shop-b")) == 2
    service.issue_manually("c10", ["v1"], "r2", "k1", "shop-a")
    service.submit([{"type": "transcript", "room": "r2", "ts": T0 + 8, "text": "宝宝们发券啦"}])
    service.submit([{"type": "heartbeat", "room": "r2", "ts": T0 + 100 + i, "user": "v1"} for i in range(3)])
    service.close()
    live = exported(db, tmp_path / "export")
    events = tmp_path / "export" / "events.jsonl"
    assert replayed([A, B], events, tmp_path / "both") == live
    for campaign in (A, B):
        alone = replayed([campaign], events, tmp_path / campaign.campaign)
        assert alone == [only(live[0], campaign), only(live[1], campaign)]
        export_store(db, tmp_path / f"export-{campaign.campaign}", campaign.campaign)  # `export --campaign`
        assert alone == [(tmp_path / f"export-{campaign.campaign}" / name).read_text(encoding="utf-8")
                         for name in ("issued.jsonl", "suppressed.jsonl")]
    with pytest.raises(ValueError, match="shop-a, shop-b"):
        export_store(db, tmp_path / "nope", "shop-z")


def test_an_operator_key_is_each_campaigns_own(tmp_path: Path) -> None:
    service = started(tmp_path / "k.db", [A, B])
    service.submit(on_air())
    service.submit(joins(["v1", "v2"], "r2", T0 + 5))
    for_a = service.issue_manually("c10", ["v1"], "r2", "k1", "shop-a")
    for_b = service.issue_manually("c5", ["v2"], "r2", "k1", "shop-b")  # the same key, another campaign: no repeat
    assert [(d.request.campaign, d.request.user) for d in for_a + for_b] == [("shop-a", "v1"), ("shop-b", "v2")]
    assert [d.request.coupon_id for d in service.issue_manually("c5", ["v2"], "r2", "k1", "shop-b")] == [
        d.request.coupon_id for d in for_b]
    with pytest.raises(Malformed) as refused:
        service.issue_manually("c10", ["v2"], "r2", "k1", "shop-a")
    assert refused.value.code == "idempotency_key_reused"
    service.close()


def test_a_campaign_added_later_starts_at_its_entry_and_one_dropped_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    service = started(db, [A])
    service.submit(on_air())
    service.submit(joins(["w1", "w2"], "r2", T0 + 1))
    service.close()
    service = started(db, [A, B])  # shop-b joins: it has seen nobody yet
    assert service.joined_late == {"shop-b"}
    service.submit([{"type": "heartbeat", "room": "r2", "ts": T0 + 10, "user": "w1"}])  # w1 is new to shop-b
    service.submit(joins(["w3"], "r3", T0 + 11))
    assert issued(service, "shop-b") == [("r2", "newcomer", "w1"), ("r3", "newcomer", "w3")]
    assert issued(service, "shop-a") == [("r2", "newcomer", "w1"), ("r2", "newcomer", "w2")]  # from before
    service.submit([{"type": "heartbeat", "room": "r2", "ts": T0 + 200, "user": "w1"}])
    before = dict(service.records)
    service.snapshot()
    service.submit(joins(["w4"], "r2", T0 + 201))
    service.close()
    again = started(db, [B, A])
    assert dict(again.records) == {**before, **{k: v for k, v in again.records.items() if k not in before}}
    assert [u for _, _, u in issued(again, "shop-b")] == ["w1", "w3", "w4"]
    again.close()
    live = exported(db, tmp_path / "export")
    events = tmp_path / "export" / "events.jsonl"
    starts = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if '"start"' in line]
    assert [(e["action"], e["campaign"]) for e in starts] == [("start", "shop-b")]
    assert replayed([A, B], events, tmp_path / "both") == live
    assert replayed([B], events, tmp_path / "b") == [only(live[0], B), only(live[1], B)]
    with pytest.raises(DeploymentError, match="shop-a"):
        started(db, [B])


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    users = [f"u{i}" for i in range(draw(st.integers(2, 10)))]
    events: list[dict[str, Any]] = on_air()
    ts = float(T0)
    for n in range(draw(st.integers(5, 80))):
        ts += rng.choice([0, 1, 5, 30, 70])
        room, user = rng.choice(["r1", "r2", "r2", "r3", "r4"]), rng.choice(users)
        kind = rng.choice(["join", "heartbeat", "heartbeat", "comment", "transcript", "leave", "live_end",
                           "live_start"])
        event: dict[str, Any] = {"type": kind, "room": room, "ts": ts, "id": f"e{n}"}
        if kind in ("join", "heartbeat", "comment", "leave"):
            event["user"] = user
        if kind in ("comment", "transcript"):
            event["text"] = rng.choice(["扣1", "发券啦", "hi"])
        events.append(event)
    return events


@given(stream=streams())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_deployment_decides_what_each_of_its_campaigns_decides_alone(tmp_path: Path,
                                                                       stream: list[dict[str, Any]]) -> None:
    lines = [json.dumps(e, ensure_ascii=False) for e in stream]
    both = replay([A, B], lines)
    for campaign in (A, B):
        alone = replay([campaign], lines)
        mine = [d.record() for d in both.decisions if d.request.campaign == campaign.campaign]
        assert mine == [d.record() for d in alone.decisions]


def test_the_command_line_reads_a_folder_and_refuses_two_files_of_one_campaign(tmp_path: Path) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "a.yaml").write_text(SHOP_A, encoding="utf-8")
    (folder / "b.yaml").write_text(SHOP_B, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in on_air() + joins(["x1", "x2"], "r2", T0 + 1)),
                      encoding="utf-8")
    run = CliRunner().invoke(cli, ["replay", str(events), "--config", str(folder), "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    issued_lines = [json.loads(line) for line in (tmp_path / "out" / "issued.jsonl").read_text().splitlines()]
    assert [(d["user"], d["coupon"]) for d in issued_lines] == [("x1", "c10"), ("x1", "c5"), ("x2", "c10"),
                                                                 ("x2", "c5")]
    assert CliRunner().invoke(cli, ["check", str(folder)]).exit_code == 0
    reported = CliRunner().invoke(cli, ["report", str(events), "--config", str(folder), "--out", str(tmp_path / "r")])
    assert reported.exit_code == 0, reported.output
    for name in ("shop-a", "shop-b"):
        metrics = json.loads((tmp_path / "r" / name / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["campaign"] == name and metrics["triggers"]["newcomer"]["issued"] == 2
    (folder / "c.yaml").write_text(SHOP_B.replace("B 五元券", "again"), encoding="utf-8")
    twice = CliRunner().invoke(cli, ["check", str(folder)])
    assert twice.exit_code == 2 and "shop-b" in twice.output and "b.yaml" in twice.output


def test_the_api_names_the_campaign_where_there_are_several(tmp_path: Path) -> None:
    with serving(tmp_path / "d.db", campaign=[A, B]) as client:
        assert client.post("/v1/events", json=on_air() + joins(["y1"], "r2", T0 + 1), headers=PLATFORM).json()[
            "accepted"] == 4
        unnamed = client.post("/v1/admin/triggers/newcomer", json={"paused": True}, headers=OPERATOR)
        assert unnamed.status_code == 404 and "campaign" in unnamed.text
        named = client.post("/v1/admin/triggers/say", json={"paused": True, "campaign": "shop-b"}, headers=OPERATOR)
        assert named.status_code == 200 and named.json()["campaign"] == "shop-b"
        stats = client.get("/v1/admin/stats", params={"campaign": "shop-b"}, headers=OPERATOR).json()
        assert stats["campaign"] == "shop-b" and stats["campaigns"] == ["shop-a", "shop-b"]
        assert sorted(stats["rooms"]) == ["r2", "r3"] and stats["rooms"]["r2"]["campaigns"] == ["shop-a", "shop-b"]
        assert stats["triggers"]["newcomer"]["issued"] == 1 and stats["triggers"]["say"]["paused"]
        assert client.get("/v1/admin/stats", params={"campaign": "nope"}, headers=OPERATOR).status_code == 404
        metrics = client.get("/v1/admin/metrics", params={"campaign": "shop-a"}, headers=OPERATOR).json()
        assert metrics["triggers"]["newcomer"]["issued"] == 1
        coupons = client.get("/v1/users/y1/coupons", headers=PLATFORM).json()["coupons"]
        assert sorted(c["title"] for c in coupons) == ["A 十元券", "B 五元券"]
        versions = client.get("/v1/admin/campaign/versions", params={"campaign": "shop-b"}, headers=OPERATOR)
        assert versions.status_code == 200 and "shop-b" in versions.json()["yaml"] if versions.json().get(
            "yaml") else versions.status_code == 200
        text = SHOP_B.replace("per_user: 2", "per_user: 3")
        published = client.post("/v1/admin/campaign/publish", json={"yaml": text}, headers=OPERATOR)
        assert published.status_code == 200 and published.json()["version"] == 2
        other = client.post("/v1/admin/campaign/publish", json={"yaml": SHOP_B.replace("shop-b", "shop-z")},
                            headers=OPERATOR)
        assert other.status_code == 409 and "campaign_unknown" in other.text
        listed = client.get("/v1/admin/decisions", headers=OPERATOR).json()["decisions"]
        assert sorted((d["campaign"], d["user"]) for d in listed if d["issued"]) == [("shop-a", "y1"), ("shop-b", "y1")]
        only_b = client.get("/v1/admin/decisions", params={"campaign": "shop-b"}, headers=OPERATOR).json()
        assert {d["campaign"] for d in only_b["decisions"]} == {"shop-b"}
        for reading in ("decisions", "stats", "metrics"):  # a campaign the deployment does not run: 404 each
            unknown = client.get(f"/v1/admin/{reading}", params={"campaign": "shop-z"}, headers=OPERATOR)
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_campaign", reading
        explained = client.get("/v1/admin/users/y1/explain", headers=OPERATOR).json()["entries"]
        assert sorted(e["campaign"] for e in explained if e["outcome"] == "issued") == ["shop-a", "shop-b"]


def test_a_publish_that_adds_a_room_reaches_it_in_a_deployment_as_alone() -> None:
    """Events of a room no campaign listened to are skipped cheaply; a publish listing it makes them count."""
    wider = SHOP_A.replace('rooms: ["r1", "r2"]', 'rooms: ["r1", "r2", "r4"]')
    publish = {"type": "operator", "room": "*", "ts": T0 + 10, "action": "publish", "version": 2, "campaign": wider}
    stream = [*on_air(), *joins(["p1"], "r4", T0 + 1), publish, *joins(["p2", "p3"], "r4", T0 + 11)]
    lines = [json.dumps(e, ensure_ascii=False) for e in stream]
    both = replay([A, B], lines)
    made = [(d.request.campaign, d.request.user) for d in both.decisions if d.issued]
    assert made == [("shop-a", "p2"), ("shop-a", "p3")]
    assert [d.record() for d in replay([A], lines).decisions] == [d.record() for d in both.decisions]


def test_scaled_out_a_campaign_dropped_from_the_configuration_is_refused_before_serving(pg_url: str) -> None:
    from livecoupon.bootstrap import Scale, build_cluster_app
    from livecoupon.store.postgres import PostgresStore
    from support.credentials import CREDENTIALS

    name = f"dropped_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(pg_url, name)
    for campaign in ("shop-a", "shop-b"):
        store.enrol(campaign, 0)
    store.close()
    with pytest.raises(DeploymentError, match="shop-a"):
        build_cluster_app([B], CREDENTIALS, pg_url, name, Scale("nats://127.0.0.1:4222"))
    assert build_cluster_app([A, B], CREDENTIALS, pg_url, name, Scale("nats://127.0.0.1:4222")) is not None
