"""Douyin's send-coupon API as the merchant's ledger, against a fake Douyin that fails, refuses,
times out, answers late, revokes its tokens and counts requests a second."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from livecoupon.bootstrap import LedgerSecretMissing, ledger_from_env
from livecoupon.campaign_file import CampaignError, parse_campaign
from livecoupon.delivery.ledger import LedgerSender
from livecoupon.domain.campaign import Campaign
from livecoupon.integrations.douyin import DouyinLedger
from support.apps import serving as serving_app
from support.credentials import API_KEY, PLATFORM, viewer_token
from support.douyin import OK, FakeDouyin, Fate
from support.shop import SHOP
from support.waiting import wait_until

T0 = 1_700_000_000
CLIENT_KEY, SECRET = "tt-client-key", "app-secret-of-the-mini-app"
CART = [{"product": "sku-1", "category": "dress", "price": 120, "qty": 1}]


def campaign_for(url: str, *, rate: str = "", extra: str = "") -> Campaign:
    return parse_campaign(SHOP + f"""ledger:
  platform: douyin
  url: "{url}"
  app_id: tt-app
  client_key: {CLIENT_KEY}
  secret_env: DOUYIN_SECRET
  timeout: 0.5s
  activities: {{welcome: act-welcome, pct: act-pct}}
  {rate}
{extra}""")


@contextlib.contextmanager
def serving(tmp_path: Path, campaign: Campaign, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with the ledger ``serve`` would build from the campaign and the environment (backoff shortened)."""
    monkeypatch.setenv("DOUYIN_SECRET", SECRET)
    ledger = ledger_from_env(campaign)
    assert isinstance(ledger, LedgerSender) and isinstance(ledger.system, DouyinLedger)
    ledger.config = replace(ledger.config, first_backoff_s=0.05, max_backoff_s=0.3)
    with serving_app(tmp_path / "douyin.db", campaign=campaign, ledger=ledger, headers=PLATFORM) as client:
        yield client


def join(client: TestClient, *users: str) -> list[str]:
    answer = client.post("/v1/events", json=[{"type": "live_start", "room": "room-1", "ts": T0}] +
                         [{"type": "join", "room": "room-1", "ts": T0 + 1, "user": u} for u in users]).json()
    return [d["coupon_id"] for d in answer["decisions"] if d["issued"]]


def unconfirmed(client: TestClient) -> list[str]:
    return client.app.state.runtime.service.store.unconfirmed("shop")  # type: ignore[attr-defined,no-any-return]


def test_each_coupon_is_created_once_however_its_attempts_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fates = [Fate(status=502), Fate(err_no=2190004), Fate(late_s=1.0), OK]  # by coupon: what its first attempt gets

    def policy(key: str, attempt: int) -> Fate:
        return fates[int(key[-2:], 16) % len(fates)] if attempt == 1 else OK

    with (FakeDouyin(CLIENT_KEY, SECRET, policy) as douyin,
          serving(tmp_path, campaign_for(douyin.url), monkeypatch) as client):
        issued = join(client, *(f"open-{i}" for i in range(24)))
        wait_until(lambda: not unconfirmed(client))
        assert set(douyin.created) == set(issued) and set(douyin.created.values()) == {1}
        late = [s.body["merchant_coupon_id"] for s in douyin.sent if s.fate.late_s]
        assert late and all(sum(s.body["merchant_coupon_id"] == k for s in douyin.sent) >= 2 for k in late)
        bodies = {s.body["merchant_coupon_id"]: s.body for s in douyin.sent}
        first = bodies[issued[0]]
        assert first == {"app_id": "tt-app", "open_id": "open-0", "activity_id": "act-welcome",
                         "merchant_coupon_id": issued[0]}
        assert {s.token for s in douyin.sent} == {"clt.fake0"}  # one token for every sender
        ledger = client.app.state.runtime.ledger  # type: ignore[attr-defined]
        assert ledger.system.tokens_fetched == 1
        failures = ledger.failures
        assert failures["status 502"] >= 1 and failures["err_no 2190004"] >= 1 and failures["timeout"] >= 1
        scraped = client.get("/metrics", headers={"X-API-Key": API_KEY}).text
        assert f'livecoupon_ledger_failures_total{{reason="err_no 2190004"}} {failures["err_no 2190004"]}.0' in scraped


def test_no_popup_and_no_redemption_before_douyin_holds_the_coupon(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    holding = {"open": True}

    def policy(key: str, attempt: int) -> Fate:
        return Fate(status=503) if holding["open"] else OK

    with (FakeDouyin(CLIENT_KEY, SECRET, policy) as douyin,
          serving(tmp_path, campaign_for(douyin.url), monkeypatch) as client,
          client.websocket_connect(f"/v1/rooms/room-1/live?token={viewer_token('ann')}") as socket):
        [coupon_id] = join(client, "ann")
        wait_until(lambda: len(douyin.sent) >= 2)
        assert client.get("/v1/users/ann/coupons").json()["coupons"] == []
        early = client.post("/v1/orders", json={"order_id": "o0", "user": "ann", "cart": CART,
                                                "coupon_id": coupon_id, "idempotency_key": "k0"})
        assert early.status_code == 409 and early.json()["error"]["code"] == "coupon_unconfirmed"
        holding["open"] = False
        assert socket.receive_json()["coupon_id"] == coupon_id  # pushed once Douyin has it
        assert douyin.created[coupon_id] == 1
        assert [c["coupon_id"] for c in client.get("/v1/users/ann/coupons").json()["coupons"]] == [coupon_id]


def test_a_revoked_token_is_renewed_and_sending_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (FakeDouyin(CLIENT_KEY, SECRET) as douyin,
          serving(tmp_path, campaign_for(douyin.url), monkeypatch) as client):
        first = join(client, "a", "b")
        wait_until(lambda: not unconfirmed(client))
        douyin.revoke_tokens()
        client.post("/v1/events", json=[{"type": "join", "room": "room-1", "ts": T0 + 5, "user": u}
                                        for u in ("c", "d")])
        wait_until(lambda: len(douyin.created) == 4 and not unconfirmed(client))
        assert douyin.tokens == ["clt.fake0", "clt.fake1"]
        refused = [s for s in douyin.sent if s.fate.err_no == 28001003]
        assert refused and {s.token for s in refused} == {"clt.fake0"}
        assert set(first) <= set(douyin.created)


def test_the_sender_keeps_to_douyins_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (FakeDouyin(CLIENT_KEY, SECRET) as douyin,
          serving(tmp_path, campaign_for(douyin.url, rate="rate: 40"), monkeypatch) as client):
        issued = join(client, *(f"v{i}" for i in range(120)))
        wait_until(lambda: not unconfirmed(client))
        assert len(douyin.created) == len(issued) == 120
        # paced (tests/unit/test_pacing.py holds the schedule itself): no second saw much more than the rate
        assert douyin.most_in_one_second() <= 40 * 1.5  # (the slack: arrivals jitter on a busy machine)


def test_douyin_ledgers_are_checked_by_path() -> None:
    with pytest.raises(CampaignError) as missing:
        parse_campaign(SHOP + "ledger: {platform: douyin, secret_env: DOUYIN_SECRET, "
                              "activities: {welcome: act-1, nope: act-2}, rate: 0}\n")
    text = str(missing.value)
    for expected in ("ledger.app_id: platform 为 douyin 时必填 / required with platform: douyin",
                     "ledger.client_key: platform 为 douyin 时必填 / required",
                     "ledger.activities.pct: 缺少这张券的抖音发券活动（activity_id） / the Douyin send activity",
                     "ledger.activities.nope: 未知的券 / unknown coupon",
                     "ledger.rate: 必须大于 0（每秒请求数） / must be > 0"):
        assert expected in text
    default = campaign_for("https://open.douyin.com").ledger
    assert default is not None and default.rate == 100.0  # Douyin's documented limit per app
    assert dict(default.activities) == {"welcome": "act-welcome", "pct": "act-pct"}


def test_serve_refuses_a_douyin_ledger_without_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOUYIN_SECRET", raising=False)
    with pytest.raises(LedgerSecretMissing, match="DOUYIN_SECRET to the Douyin app's client_secret"):
        ledger_from_env(campaign_for("https://open.douyin.com"))
