"""The host and operator consoles in headless Chromium, against a real ``livecoupon serve``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from support.server import API_KEY, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
ROOM = "room-1"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def post(server: Server, *events: dict[str, Any]) -> None:
    answer = httpx.post(f"{server.url}/v1/events", json=list(events))
    answer.raise_for_status()
    assert answer.json()["rejected"] == []


def admin(server: Server, path: str) -> Any:
    answer = httpx.get(f"{server.url}{path}", headers={"X-API-Key": API_KEY})
    answer.raise_for_status()
    return answer.json()


def audience(t0: float, *users: str) -> list[dict[str, Any]]:
    """A broadcast under way; ``users`` joined over 2 minutes ago (min_interval) but under 5 (dwell)."""
    events: list[dict[str, Any]] = [{"type": "live_start", "room": ROOM, "ts": t0 - 210}]
    events += [{"type": "join", "room": ROOM, "ts": t0 - 200, "user": u} for u in users]
    events += [{"type": "heartbeat", "room": ROOM, "ts": t0, "user": u} for u in users]
    return events


def test_host_console_shows_what_fired_and_why_and_lines_to_read_aloud(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/web/host.html?room={ROOM}&key={API_KEY}")
    page.locator(".conn.on").wait_for()
    t0 = time.time()
    post(server, *audience(t0, "alice", "bob"))

    newcomer = page.locator(".row[data-trigger='newcomer']")
    newcomer.nth(1).wait_for()
    lines = newcomer.all_inner_texts()
    assert any("alice" in line and "已发 新人专享券" in line for line in lines)
    assert "新人券 First visit" in lines[0]

    post(server, {"type": "transcript", "room": ROOM, "ts": t0 + 1, "text": "宝宝们发劝啦"})  # an ASR homophone
    say = page.locator("#say")
    say.filter(has_text="口令券已发出 2 张").wait_for()
    assert page.locator("#say-en").inner_text() == "2 coupons issued (passphrase)"
    page.locator(".row[data-trigger='passphrase']").nth(1).wait_for()

    page.locator("#issued").filter(has_text="4").wait_for()  # the stats frame, once a second
    assert page.locator("#present").inner_text() == "2"
    assert "直播中" in page.locator("#onair").inner_text()
    assert "2 / 10,000" in page.locator("#bars").inner_text()  # newcomer stock


def test_host_console_asks_for_a_key_and_says_when_it_is_refused(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/web/host.html?room={ROOM}")
    form = page.locator("#keyform")
    form.wait_for()
    form.locator("input").fill("not-the-key")
    form.locator("button").click()
    page.locator("#keyform").filter(has_text="密钥无效").wait_for()
    page.locator("#keyform input").fill(API_KEY)
    page.locator("#keyform button").click()
    page.locator(".conn.on").wait_for()


def test_operator_console_counts_per_trigger_pauses_and_sends_to_everyone_present(server: Server,
                                                                                 page: Page) -> None:
    page.goto(f"{server.url}/web/operator.html?key={API_KEY}")
    page.locator(".conn.on").wait_for()
    t0 = time.time()
    post(server, *audience(t0, "alice", "bob", "carol"))
    post(server, {"type": "comment", "room": ROOM, "ts": t0 + 0.5, "user": "alice", "text": "扣1扣1"})

    newcomer = page.locator("tr[data-trigger='newcomer']")
    newcomer.locator("td.issued").filter(has_text="3").wait_for()
    kou1 = page.locator("tr[data-trigger='kou1']")
    kou1.locator("td.issued").filter(has_text="1").wait_for()
    page.locator("#k-issued").filter(has_text="4").wait_for()
    assert page.locator("#k-present").inner_text() == "3"
    assert page.evaluate("Chart.getChart('rate').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 4

    post(server, {"type": "join", "room": ROOM, "ts": t0 + 1, "user": "dave"},
         {"type": "comment", "room": ROOM, "ts": t0 + 1.5, "user": "dave", "text": "扣1"})  # right after his newcomer
    kou1.locator(".chip[data-reason='min_interval']").filter(has_text="1").wait_for()
    assert page.evaluate("Chart.getChart('reasons').data.labels") == ["发券间隔 Min interval"]

    page.locator("tr[data-trigger='dwell'] button").click()
    page.locator("tr[data-trigger='dwell']").filter(has_text="已暂停").wait_for()
    assert admin(server, "/v1/admin/stats")["triggers"]["dwell"]["paused"] is True
    page.locator("tr[data-trigger='dwell'] button").filter(has_text="恢复").click()
    page.locator("tr[data-trigger='dwell']").filter(has_text="运行中").wait_for()
    assert admin(server, "/v1/admin/stats")["triggers"]["dwell"]["paused"] is False

    form = page.locator("#present")
    form.locator("select[name=room]").select_option(ROOM)
    form.locator("select[name=template]").select_option("bonus")
    key = form.locator("input[name=key]").input_value()
    form.locator("button").click()
    page.locator("#present-result").filter(has_text="已发放 2 张，拦截 2").wait_for()  # alice and dave: too soon
    assert form.locator("input[name=key]").input_value() != key  # a fresh key for the next send
    page.locator("tr[data-trigger='manual'] td.issued").filter(has_text="2").wait_for()
    bonus = [d for d in admin(server, "/v1/admin/decisions")["decisions"] if d["trigger"] == "manual"]
    assert sorted((d["user"], d["issued"], d.get("reason")) for d in bonus) == [
        ("alice", False, "min_interval"), ("bob", True, None), ("carol", True, None), ("dave", False, "min_interval")]

    assert "没有死信" in page.locator("#dead").inner_text()


def test_operator_console_shows_redemption_and_the_experiment_so_far(server: Server, page: Page) -> None:
    t0 = time.time()
    post(server, *audience(t0, "dora", "eli"))
    [coupon] = httpx.get(f"{server.url}/v1/users/dora/coupons").json()["coupons"]
    post(server, {"type": "order", "room": ROOM, "ts": t0 + 1, "user": "dora", "order_id": "o-dora", "amount": 150,
                  "coupon_id": coupon["coupon_id"]})
    page.goto(f"{server.url}/web/operator.html?key={API_KEY}")
    row = page.locator("#results tr").filter(has_text="newcomer")
    row.filter(has_text="50.0%").wait_for()  # 2 issued, 1 redeemed
    assert "¥150" in row.inner_text()
    page.locator("#experiments h3").filter(has_text="dwell-value").wait_for()
