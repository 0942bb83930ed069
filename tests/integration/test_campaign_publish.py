"""Campaigns published live through ``livecoupon serve``: the answer, the effect point, the refusals,
a restart that keeps the version, an export that replays exactly, and reports after a template is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from livecoupon.campaign_file import parse_campaign
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.store.export import export_store
from support.credentials import OPERATOR, PLATFORM
from support.server import Server

T0 = 1_700_000_000
V1 = """campaign: publish-test
rooms: ["r1", "r2"]
coupons:
  apple: {title: 苹果券, kind: no_threshold, amount: 5, valid_for: 30m}
  gone: {title: 旧券, kind: no_threshold, amount: 3, valid_for: 30m}
triggers:
  - {name: say-apple, when: comment, keywords: ["苹果"], coupon: apple}
  - {name: old-word, when: comment, keywords: ["旧"], coupon: gone}
"""
V2 = """campaign: publish-test
rooms: ["r1", "r2"]
coupons:
  apple: {title: 苹果券, kind: no_threshold, amount: 5, valid_for: 30m}
  pear: {title: 梨券, kind: no_threshold, amount: 8, valid_for: 30m}
triggers:
  - {name: say-apple, when: comment, keywords: ["苹果"], coupon: apple}
  - {name: say-pear, when: comment, keywords: ["梨"], coupon: pear}
limits: {per_user: 2}
"""


def post(client: httpx.Client, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post("/v1/events", headers=PLATFORM, json=list(events))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["decisions"])


def comment(user: str, ts: int, text: str, room: str = "r1") -> dict[str, Any]:
    return {"type": "comment", "room": room, "ts": ts, "user": user, "text": text}


def test_publish_takes_effect_at_the_next_broadcast_survives_a_kill_and_replays(tmp_path: Path) -> None:
    config = tmp_path / "campaign.yaml"
    config.write_text(V1, encoding="utf-8")
    server = Server(config, tmp_path / "live.db")
    with server:
        client = httpx.Client(base_url=server.url, timeout=30)
        start = client.get("/v1/admin/campaign/versions", headers=OPERATOR).json()
        assert (start["version"], start["yaml"], start["versions"][0]["version"]) == (1, V1, 1)
        post(client, {"type": "live_start", "room": "r1", "ts": T0})
        assert [d["trigger"] for d in post(client, comment("a", T0 + 1, "旧的"))] == ["old-word"]

        refused = client.post("/v1/admin/campaign/publish", headers=PLATFORM, json={"yaml": V2})
        assert refused.status_code in (401, 403)
        answer = client.post("/v1/admin/campaign/publish", headers=OPERATOR,
                             json={"yaml": V2, "base_version": 1, "note": "换成梨"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["published"], body["version"]) == (True, 2)
        assert body["changes"]["triggers"] == {"added": ["say-pear"], "removed": ["old-word"]}
        assert body["effect"]["at_once"] == ["limits.per_user"] and body["effect"]["rooms_waiting"] == ["r1"]
        assert any(line == '+  - {name: say-pear, when: comment, keywords: ["梨"], coupon: pear}'
                   for line in body["diff"])

        stale = client.post("/v1/admin/campaign/publish", headers=OPERATOR, json={"yaml": V1, "base_version": 1})
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
        bad = client.post("/v1/admin/campaign/publish", headers=OPERATOR, json={"yaml": V2.replace("coupon: pear",
                                                                                                  "coupon: plum")})
        assert bad.status_code == 409 and "plum" in bad.json()["error"]["message"]
        renamed = client.post("/v1/admin/campaign/publish", headers=OPERATOR,
                              json={"yaml": V2.replace("publish-test", "other-name")})
        assert renamed.status_code == 409 and renamed.json()["error"]["code"] == "campaign_fixed"
        same = client.post("/v1/admin/campaign/publish", headers=OPERATOR, json={"yaml": V2}).json()
        assert (same["published"], same["version"]) == (False, 2)

        # r1 is still on the version it started with; r2 starts on version 2
        assert [d["trigger"] for d in post(client, comment("b", T0 + 10, "旧的"))] == ["old-word"]
        assert post(client, comment("c", T0 + 11, "梨子")) == []
        post(client, {"type": "live_start", "room": "r2", "ts": T0 + 12})
        assert [d["trigger"] for d in post(client, comment("d", T0 + 13, "梨子", "r2"))] == ["say-pear"]
        assert client.get("/v1/admin/campaign/versions", headers=OPERATOR).json()["rooms"] == {"r1": 1, "r2": 2}

        server.kill()
        server.start()
        after = client.get("/v1/admin/campaign/versions", headers=OPERATOR).json()
        assert (after["version"], after["yaml"], after["rooms"]) == (2, V2, {"r1": 1, "r2": 2})
        assert [v["note"] for v in after["versions"]][1:] == ["换成梨"]
        assert [d["trigger"] for d in post(client, comment("e", T0 + 20, "旧的"))] == ["old-word"]
        post(client, {"type": "live_end", "room": "r1", "ts": T0 + 30}, {"type": "live_start", "room": "r1",
                                                                         "ts": T0 + 31})
        assert [d["trigger"] for d in post(client, comment("f", T0 + 32, "梨子"))] == ["say-pear"]
        assert post(client, comment("g", T0 + 33, "旧的")) == []

        metrics = client.get("/v1/admin/metrics", headers=OPERATOR)
        assert metrics.status_code == 200 and "old-word" in metrics.text  # a dropped trigger still reports
        explained = client.get("/v1/admin/users/b/explain", headers=OPERATOR).json()["entries"]
        assert [(e["trigger"], e["outcome"]) for e in explained] == [("old-word", "issued")]
        client.close()

    export_store(tmp_path / "live.db", tmp_path / "export")
    events = (tmp_path / "export" / "events.jsonl").read_text(encoding="utf-8")
    assert events.count('"action":"publish"') == 1
    write_outputs(replay(parse_campaign(V1), events.splitlines()), tmp_path / "replay")
    for name in ("issued.jsonl", "suppressed.jsonl"):
        assert (tmp_path / "replay" / name).read_text() == (tmp_path / "export" / name).read_text()


OFFER_V1 = """campaign: offer-publish
rooms: "*"
coupons:
  c10: {title: 十元, kind: no_threshold, amount: 10, valid_for: 30m}
  c20: {title: 二十元, kind: no_threshold, amount: 20, valid_for: 30m}
triggers:
  - {name: pick, when: comment, keywords: ["要券"], offer: {arms: [null, c10, c20], explore: 0.5}}
"""


def test_a_restart_after_an_offer_s_coupon_changed_rebuilds_every_version_as_decided(tmp_path: Path) -> None:
    """Decisions made under version 1's offer come back with version 1's templates (the room's), those after
    the room's next broadcast with version 2's: the rebuilt service answers as the live one, and the
    export replays exactly (snapshots or none)."""
    from livecoupon.engine.clock import ClockMode
    from livecoupon.service_layer.service import LiveService, SnapshotPolicy
    from livecoupon.store.sqlite import SqliteStore

    def comments(start: int, broadcast: int) -> list[dict[str, Any]]:
        return [{"type": "comment", "room": f"r{n % 3}", "ts": start + n, "user": f"b{broadcast}-u{n}",
                 "text": "要券"} for n in range(40)]

    v2 = OFFER_V1.replace("amount: 10,", "amount: 12,")
    for policy in (SnapshotPolicy(entries=25, seconds=0), SnapshotPolicy()):
        db = tmp_path / f"offer-{policy.entries}.db"
        live = LiveService(parse_campaign(OFFER_V1), SqliteStore(db), ClockMode.EVENT, snapshot_policy=policy,
                           source=OFFER_V1)
        live.rebuild()
        live.submit([{"type": "live_start", "room": f"r{n}", "ts": T0} for n in range(3)] + comments(T0 + 1, 1))
        assert live.publish(v2)["published"]
        # r0 stays on air (version 1's triggers, the offer's new policy); r1 and r2 start again on version 2
        live.submit(comments(T0 + 45, 15)[::3])
        live.submit([e for n in (1, 2) for e in ({"type": "live_end", "room": f"r{n}", "ts": T0 + 60},
                                                 {"type": "live_start", "room": f"r{n}", "ts": T0 + 61})])
        live.submit(comments(T0 + 62, 2))
        then = live.submit(comments(T0 + 200, 3)).decisions
        learnt = live.engine().offers.policies["pick"]
        live.close()
        again = LiveService(parse_campaign(OFFER_V1), SqliteStore(db), ClockMode.EVENT, source=OFFER_V1)
        again.rebuild()
        assert again.versions()["version"] == 2
        # its arms' coupon changed, so version 2's policy started afresh at the publish: what it learnt since,
        # in the room still on version 1 too, is learnt again
        rebuilt = again.engine().offers.policies["pick"]
        assert (rebuilt.requests, rebuilt.by_arm, rebuilt.by_segment) == (learnt.requests, learnt.by_arm,
                                                                        learnt.by_segment)
        assert rebuilt.requests == 94 and sum(t.offers for t in rebuilt.by_arm.values()) > 0
        faces = {d.record().template: d.request.template.terms.amount for d in then
                 if d.issued and d.request.template is not None}
        assert faces.get("c10", 1_200) == 1_200  # version 2's ten became twelve
        again.close()
        export_store(db, tmp_path / f"export-{policy.entries}")
        out = tmp_path / f"export-{policy.entries}"
        write_outputs(replay(parse_campaign(OFFER_V1), (out / "events.jsonl").read_text().splitlines()),
                      tmp_path / f"replay-{policy.entries}")
        for name in ("issued.jsonl", "suppressed.jsonl"):
            assert (tmp_path / f"replay-{policy.entries}" / name).read_text() == (out / name).read_text()
