"""Scaled out (SPEC §7): two gateways and two workers as real processes, over the machine's
PostgreSQL and a NATS server of the test's own (so it can be killed and restarted).

- caps hold under races: four clients posting through two gateways at once;
- a worker SIGKILLed mid-stream: its partitions move, nothing is lost or decided twice, and
  every room's decisions equal a replay of the exported log;
- NATS restarted mid-stream; a gateway killed while its client retries elsewhere with the same events.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cluster import Cluster, Nats, every_room_campaign, logged, post_all, wait_logged
from support.server import API_KEY, PLATFORM
from support.streams import many_rooms

psycopg = pytest.importorskip("psycopg")
CLI = Path(sys.executable).with_name("livecoupon")
pytestmark = pytest.mark.timeout(240)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def export_and_replay(tmp: Path, pg_url: str, name: str, config: Path) -> tuple[Path, Path]:
    live, again = tmp / "export", tmp / "replay"
    for command in ([str(CLI), "export", "--store", pg_url, "--name", name, "--out", str(live)],
                    [str(CLI), "replay", str(live / "events.jsonl"), "--config", str(config), "--out", str(again)]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return live, again


def assert_replay_agrees(live: Path, again: Path) -> None:
    for kind in ("issued.jsonl", "suppressed.jsonl"):
        exported, replayed = lines(live / kind), lines(again / kind)
        by_room: dict[str, list[dict[str, Any]]] = {}
        for d in replayed:
            by_room.setdefault(d["room"], []).append(d)
        for room, made in by_room.items():
            assert [d for d in exported if d["room"] == room] == made, f"{kind} of {room} differs from the replay"
        assert len(exported) == len(replayed)
    ids = [d["coupon_id"] for d in lines(live / "issued.jsonl")]
    assert len(ids) == len(set(ids)), "a coupon id issued twice"


def test_two_gateways_and_two_workers_decide_as_a_replay_and_survive_a_worker_killed(tmp_path: Path,
                                                                                     pg_url: str) -> None:
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=6, viewers=120)
    half = len(events) // 2
    with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "killworker") as cluster:
        statuses = post_all(cluster.urls, events[:half])
        assert statuses[200] > 0
        cluster.workers[0].kill()  # SIGKILL: no lease released, nothing flushed
        statuses += post_all(cluster.urls, events[half:])
        wait_logged(pg_url, "killworker", len(events))
        with httpx.Client(headers={"X-API-Key": API_KEY}) as client:
            held = client.get(f"{cluster.workers[1].url}/v1/admin/health").json()["partitions"]
            scraped = client.get(f"{cluster.workers[1].url}/metrics").text
        assert held == list(range(8)), "the surviving worker holds every partition"
        assert "livecoupon_partitions_held 8.0" in scraped
        assert 'livecoupon_bus_pending_batches{partition="0"} 0.0' in scraped, "nothing left on the bus"
    live, again = export_and_replay(tmp_path, pg_url, "killworker", config)
    issued = lines(live / "issued.jsonl")
    assert {d["trigger"] for d in issued} >= {"newcomer", "dwell", "passphrase", "kou1"}
    assert {d["room"] for d in issued} == {f"room-{k}" for k in range(6)}
    assert_replay_agrees(live, again)


@pytest.mark.parametrize("claims", ["postgresql", "redis"])
def test_caps_stock_and_budget_hold_with_four_clients_through_two_gateways(tmp_path: Path, pg_url: str,
                                                                           claims: str,
                                                                           request: pytest.FixtureRequest) -> None:
    """Claimed in PostgreSQL under the campaign's lock, or (``redis``) with the deployment's counters in
    Redis, recorded before the processes start: the workers follow the record."""
    name = f"races_{claims}"
    if claims == "redis":
        from livecoupon.store.postgres import PostgresStore

        PostgresStore(pg_url, name, claims=request.getfixturevalue("redis_url")).close()
        request.addfinalizer(lambda: PostgresStore(pg_url, name, prepare=False).drop())  # its keys in Redis too
    config = every_room_campaign(tmp_path, "")
    text = config.read_text(encoding="utf-8").replace("stock: 10000", "stock: 37")
    text = text.replace("per_user: 3", "per_user: 2")
    text = re.sub(r"(?m)^(limits:\n(?:  .*\n)*?  budget: )\d+", r"\g<1>2000", text)  # the campaign's budget
    config.write_text(text, encoding="utf-8")
    events = many_rooms(rooms=8, viewers=60, seconds=600)
    by_room: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_room.setdefault(e["room"], []).append(e)
    rooms = list(by_room.values())
    with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, name) as cluster:
        with ThreadPoolExecutor(4) as clients:  # each client posts two rooms' streams, in time order
            list(clients.map(lambda k: post_all([cluster.urls[k % 2]], rooms[2 * k] + rooms[2 * k + 1], 200),
                             range(4)))
        wait_logged(pg_url, name, len(events))
    with psycopg.connect(pg_url) as db:
        issued = db.execute(f"SELECT trigger, \"user\", room, broadcast, template, at FROM {name}.decisions "
                            "WHERE reason IS NULL ORDER BY at").fetchall()
        reasons = dict(db.execute(f"SELECT reason, count(*) FROM {name}.decisions GROUP BY reason").fetchall())
        if claims == "redis":
            assert db.execute(f"SELECT epoch FROM {name}.claims_epochs").fetchall() == [(1,)]  # counted in Redis
    newcomers = [row for row in issued if row[0] == "newcomer"]
    assert len(newcomers) == 37, "stock: exactly the 37 newcomer coupons, however many processes claim"
    assert reasons.get("out_of_stock", 0) > 0
    per_user = Counter((user, room, broadcast) for _, user, room, broadcast, _, _ in issued)
    assert max(per_user.values()) == 2, "per_user: 2"
    last: dict[str, int] = {}
    for _, user, _, _, _, at in issued:
        assert at - last.get(user, -10**12) >= 120_000, f"min_interval: {user} twice within 2 minutes"
        last[user] = at
    faces = {"newcomer": 20, "dwell10": 10, "dwell20": 20, "bonus": 50, "pct15": 50, "flash20": 20}
    spent = sum(faces[template] for _, _, _, _, template, _ in issued)
    assert spent <= 2000 and reasons.get("over_budget", 0) > 0, (spent, reasons)
    assert 2000 - spent < 50, "the budget is used up to within one coupon"


def test_nats_restarted_mid_stream_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=4, viewers=80)
    third = len(events) // 3
    with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "natsrestart") as cluster:
        post_all(cluster.urls, events[:third])
        nats.kill()
        with httpx.Client(timeout=30, headers=PLATFORM) as client:
            away = client.post(f"{cluster.urls[0]}/v1/events", json=events[third:third + 10])
        assert away.status_code == 503 and away.headers["Retry-After"] == "1", away.text
        assert away.json()["error"]["code"] == "bus_unavailable"
        nats.start()  # the same files: the stream and its messages are back
        time.sleep(1.5)  # the processes reconnect (every 250 ms)
        post_all(cluster.urls[:1], events[third:third + 10])  # the client retries what got a 503 (it may have
        post_all(cluster.urls, events[third + 10:])           # reached the bus: then the retry is a duplicate)
        wait_logged(pg_url, "natsrestart", len(events))
    assert_replay_agrees(*export_and_replay(tmp_path, pg_url, "natsrestart", config))


def test_a_client_retrying_on_another_gateway_applies_its_events_once(tmp_path: Path, pg_url: str) -> None:
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=3, viewers=60)
    half = len(events) // 2
    with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "retries") as cluster:
        post_all(cluster.urls[:1], events[:half])
        batch = events[half:half + 400]
        with httpx.Client(timeout=30, headers=PLATFORM) as client:
            first = client.post(f"{cluster.urls[0]}/v1/events", json=batch)
            same = client.post(f"{cluster.urls[0]}/v1/events", json=batch)
            cluster.gateways[0].kill()  # as if it died before the client read the answer
            again = client.post(f"{cluster.urls[1]}/v1/events", json=batch)
        assert first.status_code == 200 and first.json()["issued"] > 0
        for retry in (same, again):  # as one process answers a retry (SPEC §7: a 202 is for a failover)
            assert retry.status_code == 200, retry.text
            assert retry.json()["issued"] == 0 and not retry.json().get("queued"), "the retry issues nothing new"
        post_all(cluster.urls[1:], events[half + 400:])
        # two gifts alike, without an id, in two requests: two gifts (SPEC §2: only an id makes a repeat), as one
        # process takes them; the bus stored one (its message id was the batch's digest)
        gift = {"type": "gift", "room": events[-1]["room"], "ts": events[-1]["ts"], "user": "twice", "value": 1}
        with httpx.Client(timeout=30, headers=PLATFORM) as client:
            for _ in range(2):
                assert client.post(f"{cluster.urls[1]}/v1/events", json=[gift]).json()["accepted"] == 1
        wait_logged(pg_url, "retries", len(events) + 2)
    live, replayed = export_and_replay(tmp_path, pg_url, "retries", config)
    assert_replay_agrees(live, replayed)
    assert sum(e.get("user") == "twice" for e in lines(live / "events.jsonl")) == 2


def test_popups_operator_commands_and_paid_orders_cross_processes(tmp_path: Path, pg_url: str) -> None:
    """A viewer on gateway B sees the coupon decided for events posted to gateway A; a pause sent
    to B holds on every worker; an order paid through B reaches the room's log (and so ``dwell``)."""
    from websockets.sync.client import connect

    from support.credentials import OPERATOR, viewer_token
    from support.streams import START

    config = every_room_campaign(tmp_path)
    room = "room-7"

    def at(seconds: float) -> float:
        return START + seconds

    with (Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "across") as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        a, b = cluster.urls
        started = client.post(f"{a}/v1/events", json=[{"type": "live_start", "room": room, "ts": at(0)}])
        assert started.status_code == 200
        socket_url = b.replace("http://", "ws://") + f"/v1/rooms/{room}/live?token={viewer_token('amy')}"
        with connect(socket_url, open_timeout=10) as ws:
            time.sleep(0.3)
            answer = client.post(f"{a}/v1/events", json=[{"type": "join", "room": room, "ts": at(1), "user": "amy"}])
            assert answer.json()["issued"] == 1
            popup = json.loads(ws.recv(timeout=10))
        assert popup["type"] == "coupon" and popup["trigger"] == "newcomer" and popup["room"] == room

        paused = client.post(f"{b}/v1/admin/triggers/dwell", json={"paused": True}, headers=OPERATOR)
        assert paused.status_code == 200
        beats = [{"type": "join", "room": "room-8", "ts": at(2), "user": "bo"}]
        beats += [{"type": "heartbeat", "room": room, "ts": at(t), "user": "amy"} for t in range(20, 420, 20)]
        beats += [{"type": "heartbeat", "room": "room-8", "ts": at(t), "user": "bo"} for t in range(20, 420, 20)]
        answer = client.post(f"{a}/v1/events", json=sorted(beats, key=lambda e: e["ts"]))
        assert answer.status_code == 200
        assert not [d for d in answer.json()["decisions"] if d["trigger"] == "dwell"], "paused on every worker"

        coupon = client.get(f"{b}/v1/users/amy/coupons").json()["coupons"][0]
        cart = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]
        made = client.post(f"{a}/v1/orders", json={"order_id": "o-amy", "user": "amy", "cart": cart,
                                                   "coupon_id": coupon["coupon_id"], "idempotency_key": "k1"})
        assert made.status_code == 201, made.text
        assert client.post(f"{b}/v1/orders/o-amy/pay", json={"idempotency_key": "k2"}).status_code == 200
        assert client.get(f"{a}/v1/users/amy/coupons").json()["coupons"][0]["state"] == "redeemed"
        told = client.get(f"{b}/v1/admin/users/amy/explain", headers=OPERATOR).json()["entries"]
        assert coupon["coupon_id"] in [e.get("coupon_id") for e in told]  # the decisions as the workers made them
    live, again = export_and_replay(tmp_path, pg_url, "across", config)
    events = lines(live / "events.jsonl")
    assert [e["room"] for e in events if e["type"] == "order" and e.get("order_id") == "o-amy"] == [room]
    pauses = [e for e in events if e["type"] == "operator"]
    assert [(p["action"], p["trigger"]) for p in pauses] == [("pause", "dwell")], "one campaign-wide pause"
    assert_replay_agrees(live, again)


def test_an_operator_key_gets_its_first_answer_through_either_gateway(tmp_path: Path, pg_url: str) -> None:
    """The engines that remember an operator's key are the workers': a retry through another gateway, after the
    audience changed, gets the first answer; the key with another request is refused by either gateway."""
    from support.credentials import OPERATOR
    from support.streams import START
    from support.waiting import wait_until

    config = every_room_campaign(tmp_path)
    room = "room-3"
    with (Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "keys") as cluster,
          httpx.Client(timeout=30, headers=OPERATOR) as client):
        a, b = cluster.urls
        events = [{"type": "live_start", "room": room, "ts": START}] + [
            {"type": "join", "room": room, "ts": START + 1, "user": u} for u in ("amy", "bo")]
        assert client.post(f"{a}/v1/events", json=events).status_code == 200
        for url in cluster.urls:  # a gateway learns which rooms are on air from the workers' summaries
            wait_until(lambda url=url: client.get(f"{url}/v1/admin/stats").json()["rooms"].get(room, {}).get("on_air"),
                       f"{url} never heard that {room} is on air")
        present = {"template": "bonus", "idempotency_key": "all-1"}
        first = client.post(f"{a}/v1/admin/rooms/{room}/issue-present", json=present)
        assert first.status_code == 200, first.text
        assert [d["user"] for d in first.json()["decisions"]] == ["amy", "bo"]
        manual = {"template": "bonus", "users": ["cy", "amy"], "room": room, "idempotency_key": "vip-1"}
        first_manual = client.post(f"{a}/v1/admin/issue", json=manual)
        assert first_manual.status_code == 200, first_manual.text
        changed = [{"type": "leave", "room": room, "ts": START + 2, "user": "amy"},
                   {"type": "join", "room": room, "ts": START + 2, "user": "dee"}]
        assert client.post(f"{b}/v1/events", json=changed).status_code == 200
        assert client.post(f"{b}/v1/admin/rooms/{room}/issue-present", json=present).json() == first.json()
        assert client.post(f"{b}/v1/admin/issue", json=manual).json() == first_manual.json()
        for url, body in ((f"{b}/v1/admin/rooms/{room}/issue-present", present | {"template": "pct15"}),
                          (f"{a}/v1/admin/issue", manual | {"users": ["cy"]}),
                          (f"{b}/v1/admin/issue", manual | {"room": "room-4"})):
            refused = client.post(url, json=body)
            assert refused.status_code == 422, refused.text
            assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == (
                "idempotency_key_reused", "idempotency_key")
    live, again = export_and_replay(tmp_path, pg_url, "keys", config)
    manual_lines = [d for kind in ("issued.jsonl", "suppressed.jsonl") for d in lines(live / kind)
                    if d["trigger"] == "manual"]
    assert sorted(d["user"] for d in manual_lines) == ["amy", "amy", "bo", "cy"]
    assert_replay_agrees(live, again)


def test_with_every_worker_down_a_gateway_answers_202_and_the_decisions_follow(tmp_path: Path,
                                                                                 pg_url: str) -> None:
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=2, viewers=30, seconds=300)
    with (Nats(tmp_path / "nats") as nats,
          Cluster(config, tmp_path, pg_url, nats, "noworker", gateways=1, workers=1) as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        cluster.workers[0].kill()
        answer = client.post(f"{cluster.urls[0]}/v1/events", json=events)
        assert answer.status_code == 202 and answer.json()["queued"] is True
        assert answer.json()["accepted"] == len(events)
        assert logged(pg_url, "noworker") == 0
        cluster.workers[0].start()  # a worker comes back: the events were durably on the bus
        wait_logged(pg_url, "noworker", len(events))
        coupons = client.get(f"{cluster.urls[0]}/v1/users/room-0:v0000/coupons").json()["coupons"]
        assert [c["template"] for c in coupons][:1] == ["newcomer"]


def test_every_postgresql_connection_cut_mid_stream_and_the_deployment_carries_on(tmp_path: Path,
                                                                                    pg_url: str) -> None:
    """As in a PostgreSQL restart: every connection of the deployment is cut; workers and gateways open
    new ones, partitions are started again from snapshot and log, and nothing is lost or applied twice."""
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=4, viewers=60)
    half = len(events) // 2
    database = pg_url.rsplit("/", 1)[1]
    with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "pgcut") as cluster:
        post_all(cluster.urls, events[:half])
        wait_logged(pg_url, "pgcut", half)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchone()
        assert cut is not None and cut[0] >= 4
        deadline = time.monotonic() + 30
        while True:  # the first requests after the cut may fail while connections are opened again
            try:
                post_all(cluster.urls, events[half:])
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the deployment did not come back within 30 s"
                time.sleep(1)
        wait_logged(pg_url, "pgcut", len(events), within=90)
        with httpx.Client(timeout=30, headers=PLATFORM) as client:
            assert client.get(f"{cluster.urls[0]}/v1/users/room-0:v0000/coupons").status_code == 200
    assert_replay_agrees(*export_and_replay(tmp_path, pg_url, "pgcut", config))


def test_a_campaign_published_through_a_gateway_reaches_every_worker_at_each_room_s_next_broadcast(
        tmp_path: Path, pg_url: str) -> None:
    """Published through gateway B: rooms of both workers take the new trigger at their next live_start, a
    room on air keeps the version before, and the export (one publish, however many partitions logged it)
    replays to the same decisions."""
    from support.credentials import OPERATOR
    from support.streams import START

    config = every_room_campaign(tmp_path)
    keyword = "\n  - {name: say-pear, when: comment, keywords: [\"梨\"], coupon: dwell10}\n"
    text = config.read_text(encoding="utf-8")
    published = text.replace("\ntriggers:\n", "\ntriggers:" + keyword, 1)
    assert published != text
    rooms = [f"room-{n}" for n in range(8)]  # over both workers' partitions

    def comments(ts: float, user: str) -> list[dict[str, Any]]:
        return [{"type": "comment", "room": r, "ts": START + ts, "user": f"{user}-{r}", "text": "梨子"} for r in rooms]

    with (Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "publish") as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        a, b = cluster.urls
        client.post(f"{a}/v1/events", json=[{"type": "live_start", "room": r, "ts": START} for r in rooms])
        answer = client.post(f"{b}/v1/admin/campaign/publish", headers=OPERATOR,
                             json={"yaml": published, "base_version": 1, "note": "cluster"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["published"], answer.json()["version"]) == (True, 2)
        before = client.post(f"{a}/v1/events", json=comments(5, "early")).json()["decisions"]
        assert not [d for d in before if d["trigger"] == "say-pear"], "rooms on air keep version 1"
        client.post(f"{a}/v1/events", json=[e for r in rooms for e in (
            {"type": "live_end", "room": r, "ts": START + 10}, {"type": "live_start", "room": r, "ts": START + 11})])
        after = client.post(f"{b}/v1/events", json=comments(12, "late")).json()["decisions"]
        assert sorted(d["room"] for d in after if d["trigger"] == "say-pear") == sorted(rooms)
        assert client.get(f"{b}/v1/admin/campaign/versions", headers=OPERATOR).json()["version"] == 2
        # gateway A learns of it from the workers' room summaries and reads it from the logs
        deadline = time.monotonic() + 20
        while (seen := client.get(f"{a}/v1/admin/campaign/versions", headers=OPERATOR).json())["version"] != 2 \
                or seen["rooms"] != dict.fromkeys(rooms, 2):  # (each worker's room summary comes once a second)
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert seen["yaml"] == published and [v["note"] for v in seen["versions"]] == [
            "启动时的活动文件 / the file at start", "cluster"]
        assert sorted(seen["rooms"]) == sorted(rooms)
        cluster.gateways[0].restart()  # and a gateway started afresh reads it at once
        again = client.get(f"{a}/v1/admin/campaign/versions", headers=OPERATOR).json()
        assert (again["version"], again["yaml"]) == (2, published)
        stale = client.post(f"{a}/v1/admin/campaign/publish", headers=OPERATOR,
                            json={"yaml": text, "base_version": 1})
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    live, again = export_and_replay(tmp_path, pg_url, "publish", config)
    assert [e["version"] for e in lines(live / "events.jsonl") if e.get("action") == "publish"] == [2]
    assert_replay_agrees(live, again)


SHOP = """
campaign: {name}
rooms: {rooms}
presence_timeout: 40s
coupons:
  c{amount}: {{title: "{name} 券", kind: no_threshold, amount: {amount}, valid_for: 15m}}
triggers:
  - {{name: newcomer, when: first_visit, coupon: c{amount}}}
  - {{name: kou1, when: comment, keywords: [扣1], coupon: c{amount}}}
limits: {{per_user: 3, budget: {budget}}}
"""


def test_several_campaigns_scale_out_and_one_joins_on_the_bus(tmp_path: Path, pg_url: str) -> None:
    """A folder of campaigns on two gateways and two workers: each decides the rooms it lists, operator
    commands name their campaign, a campaign added to the folder joins at its ``start`` command
    on the bus, and the export replays with the folder."""
    from support.credentials import OPERATOR
    from support.streams import START

    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "a.yaml").write_text(SHOP.format(name="shop-a", rooms='["room-0", "room-1", "room-2", "room-3"]',
                                               amount=10, budget=1000), encoding="utf-8")
    (folder / "b.yaml").write_text(SHOP.format(name="shop-b", rooms='"*"', amount=5, budget=1000), encoding="utf-8")
    rooms = [f"room-{n}" for n in range(8)]

    def joins(users: range, at: float) -> list[dict[str, Any]]:
        return [{"type": "join", "room": r, "ts": START + at, "user": f"u{u}-{r}", "id": f"j{u}-{r}-{at}"}
                for r in rooms for u in users]

    with (Nats(tmp_path / "nats") as nats, Cluster(folder, tmp_path, pg_url, nats, "several") as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        a, b = cluster.urls
        client.post(f"{a}/v1/events", json=[{"type": "live_start", "room": r, "ts": START} for r in rooms])
        made = client.post(f"{b}/v1/events", json=joins(range(2), 1)).json()["decisions"]
        by_campaign = Counter(d["campaign"] for d in made if d["issued"])
        assert by_campaign == {"shop-a": 8, "shop-b": 16}  # shop-a in its 4 rooms, shop-b in every room
        unnamed = client.post(f"{a}/v1/admin/triggers/kou1", headers=OPERATOR, json={"paused": True})
        assert unnamed.status_code == 404
        named = client.post(f"{a}/v1/admin/triggers/kou1", headers=OPERATOR,
                            json={"paused": True, "campaign": "shop-b"})
        assert named.status_code == 200
        said = client.post(f"{b}/v1/events", json=[{"type": "comment", "room": "room-1", "ts": START + 3,
                                                     "user": "u0-room-1", "text": "扣1"}]).json()["decisions"]
        assert [(d["trigger"], d["campaign"]) for d in said] == [("kou1", "shop-a")]  # not paused there
    (folder / "c.yaml").write_text(SHOP.format(name="shop-c", rooms='["room-5"]', amount=3, budget=1000),
                                   encoding="utf-8")
    with (Nats(tmp_path / "nats") as nats, Cluster(folder, tmp_path, pg_url, nats, "several") as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        a, b = cluster.urls
        deadline = time.monotonic() + 30
        while True:  # the start command is on the bus once a gateway is up; each partition takes it in order
            made = client.post(f"{a}/v1/events", json=joins(range(5, 6), 20 + (time.monotonic() % 1))).json()
            joined = [d for d in made.get("decisions", []) if d["campaign"] == "shop-c"]
            if joined:
                break
            assert time.monotonic() < deadline, made
            time.sleep(0.5)
        assert {d["room"] for d in joined} == {"room-5"}
        stats = client.get(f"{b}/v1/admin/stats", params={"campaign": "shop-c"}, headers=OPERATOR).json()
        assert stats["campaign"] == "shop-c" and stats["campaigns"] == ["shop-a", "shop-b", "shop-c"]
    live, again = export_and_replay(tmp_path, pg_url, "several", folder)
    assert_replay_agrees(live, again)
    starts = [e for e in lines(live / "events.jsonl") if e.get("action") == "start"]
    assert [e["campaign"] for e in starts] == ["shop-c"]


def test_a_viewer_token_never_makes_its_user_present_scaled_out(tmp_path: Path, pg_url: str) -> None:
    """A gateway passed a viewer's chat on unchecked: an account the platform never reported (no device, no risk)
    entered any room by chatting, and took its newcomer and keyword coupons past per_device and max_risk. The worker
    applying the chat now checks presence where the room's stream is, and the gateway answers as one machine does."""
    from support.credentials import viewer_token
    from support.streams import START

    config = every_room_campaign(tmp_path)
    with (Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "chat", gateways=1) as cluster,
          httpx.Client(timeout=30) as client):
        [url] = cluster.urls

        def viewer(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {viewer_token(user)}"}

        def chat(user: str) -> httpx.Response:
            return client.post(f"{url}/v1/rooms/room-1/comments", json={"text": "扣1"}, headers=viewer(user))

        client.post(f"{url}/v1/events", headers=PLATFORM,
                    json=[{"type": "live_start", "room": "room-1", "ts": START},
                          {"type": "join", "room": "room-1", "ts": START + 1, "user": "alice"}])
        refused = chat("mallory")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "not_in_room"
        said = chat("alice")
        assert said.status_code == 200, said.text
        assert [(d["user"], d["trigger"]) for d in said.json()["decisions"]] == [("alice", "kou1")]
        assert client.get(f"{url}/v1/users/mallory/coupons", headers=viewer("mallory")).json()["coupons"] == []
    live, again = export_and_replay(tmp_path, pg_url, "chat", config)
    events = lines(live / "events.jsonl")
    assert [e["user"] for e in events if e["type"] == "comment"] == ["alice"], "the refused chat was logged"
    assert_replay_agrees(live, again)


def test_a_users_device_and_risk_told_in_one_room_hold_in_every_partition(tmp_path: Path, pg_url: str) -> None:
    """Each partition's engine hears its own rooms: a user flagged risk 0.9 in room A then chatting in room B (no
    risk on those events) took B's coupons past max_risk, and an account on a phone whose join in A named the device
    took B's newcomer coupon past per_device: 1. The gateway shares what each batch told of its users, and every
    partition's claims fill in what their own rooms did not tell: the decisions are a replay's."""
    from livecoupon.cluster.partitions import partition_of
    from support.streams import START

    config = tmp_path / "campaign.yaml"
    config.write_text("""
campaign: facts
rooms: "*"
coupons:
  welcome: {title: 新人券, kind: no_threshold, amount: 5, valid_for: 30m}
  ten: {title: 十元券, kind: no_threshold, amount: 10, valid_for: 30m}
triggers:
  - {name: newcomer, when: first_visit, coupon: welcome, per_device: 1}
  - {name: kou1, when: comment, keywords: ["扣1"], coupon: ten, per_device: 1}
limits: {max_risk: 0.5}
""", encoding="utf-8")
    a, b = "room-a", "room-b"
    assert partition_of(a, 8) != partition_of(b, 8)
    told = [{"type": "live_start", "room": r, "ts": START} for r in (a, b)] + [
        {"type": "join", "room": a, "ts": START + 1, "user": "risky", "risk": 0.9},
        {"type": "join", "room": a, "ts": START + 1, "user": "first", "device": "phone-1"},
        {"type": "join", "room": a, "ts": START + 2, "user": "second", "device": "phone-1"},
        *({"type": "join", "room": b, "ts": START + 2, "user": u} for u in ("third", "fourth")),
        {"type": "join", "room": b, "ts": START + 2, "user": "fifth", "risk": 0.1}]
    # (a first visit is claimed by whichever partition applies one first: each user's is in one room here)
    elsewhere = [{"type": "comment", "room": b, "ts": START + 5, "user": u, "text": "扣1"}
                 for u in ("risky", "first", "second", "third")] + [
        {"type": "join", "room": a, "ts": START + 7, "user": "fourth", "device": "phone-4", "risk": 0.8},
        {"type": "comment", "room": b, "ts": START + 8, "user": "fourth", "text": "扣1"},  # told in the same batch
        {"type": "heartbeat", "room": a, "ts": START + 7, "user": "fifth", "risk": 0.9},  # later than room b's 0.1
        {"type": "comment", "room": b, "ts": START + 8, "user": "fifth", "text": "扣1"}]
    with (Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "facts", gateways=1) as cluster,
          httpx.Client(timeout=30, headers=PLATFORM) as client):
        [url] = cluster.urls
        for batch in (told, elsewhere):
            assert client.post(f"{url}/v1/events", json=batch).status_code == 200
    live, again = export_and_replay(tmp_path, pg_url, "facts", config)
    made = sorted((d["user"], d["trigger"], d.get("reason")) for kind in ("issued.jsonl", "suppressed.jsonl")
                  for d in lines(live / kind))
    assert made == [("fifth", "kou1", "risk"), ("fifth", "newcomer", None),
                    ("first", "kou1", None), ("first", "newcomer", None), ("fourth", "kou1", "risk"),
                    ("fourth", "newcomer", None), ("risky", "kou1", "risk"), ("risky", "newcomer", "risk"),
                    ("second", "kou1", "device_cap"), ("second", "newcomer", "device_cap"),
                    ("third", "kou1", None), ("third", "newcomer", None)]
    replayed = sorted((d["user"], d["trigger"], d.get("reason")) for kind in ("issued.jsonl", "suppressed.jsonl")
                      for d in lines(again / kind))
    assert made == replayed
