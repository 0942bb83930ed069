"""The host and operator consoles in headless Chromium, against a real ``livecoupon serve``.

A console signs in through its form: the operator key (or a host token) goes once, in a
header, to ``POST /v1/session``; from then on the page runs on an HttpOnly cookie, and no
URL it opens — the address bar, its fetches, its socket — ever carries the credential.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.credentials import API_KEY, PLATFORM, viewer_token
from support.screenshots import EXAMPLE, admin, post, sign_in_console
from support.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, WebSocket

pytestmark = pytest.mark.browser
ROOM = "room-1"


@dataclass
class Tab:
    """A console tab in its own browser context, with every URL it opened and every frame it received."""

    context: BrowserContext
    page: Page
    urls: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)

    def watch(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)
        ws.on("framereceived", lambda payload: self.frames.append(json.loads(payload)))

    def storage(self) -> str:
        return str(self.page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"))

    def status_of(self, path: str) -> int:
        """What the server answers this page's own same-origin fetch (with its cookie, no header)."""
        return int(self.page.evaluate("p => fetch(p).then(r => r.status)", path))


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Callable[[], Tab]]:
    contexts: list[BrowserContext] = []

    def open_() -> Tab:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        context.set_default_timeout(10_000)
        contexts.append(context)
        tab = Tab(context, context.new_page())
        context.on("request", lambda request: tab.urls.append(request.url))
        tab.page.on("framenavigated", lambda frame: tab.urls.append(frame.url))
        tab.page.on("websocket", tab.watch)
        return tab

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def tab(open_tab: Callable[[], Tab]) -> Tab:
    return open_tab()


def audience(t0: float, *users: str) -> list[dict[str, Any]]:
    """A broadcast under way; ``users`` joined over 2 minutes ago (min_interval) but under 5 (dwell)."""
    events: list[dict[str, Any]] = [{"type": "live_start", "room": ROOM, "ts": t0 - 210}]
    events += [{"type": "join", "room": ROOM, "ts": t0 - 200, "user": u} for u in users]
    events += [{"type": "heartbeat", "room": ROOM, "ts": t0, "user": u} for u in users]
    return events


def host_token(server: Server, room: str = ROOM) -> str:
    answer = admin(server, f"/v1/admin/rooms/{room}/host-token", {})
    assert answer["room"] == room
    return str(answer["token"])


def submit(page: Page, credential: str) -> None:
    form = page.locator("#keyform")
    form.locator("input").fill(credential)
    form.locator("button").click()


def test_the_operator_signs_in_through_the_form_and_no_url_ever_carries_the_key(server: Server, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{server.url}/web/operator.html")
    form = page.locator("#keyform")
    form.filter(has_text="请输入运营密钥").wait_for()
    submit(page, "not-the-key")
    form.filter(has_text="密钥无效").wait_for()
    submit(page, host_token(server))  # a valid credential, but not one that opens this console
    form.filter(has_text="运营台需要运营密钥").wait_for()
    submit(page, API_KEY)
    page.locator(".conn.on").wait_for()
    assert page.locator("#keyform").count() == 0
    assert page.locator("#who").inner_text() == "运营 Operator"
    page.locator("#k-issued").wait_for()

    [cookie] = tab.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("livecoupon_session", True, "Strict")
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read the session either
    assert API_KEY not in tab.storage()
    assert any("/v1/console/live" in url for url in tab.urls) and any("/v1/admin/" in url for url in tab.urls)
    assert not [url for url in tab.urls if API_KEY in url]

    page.reload()  # the cookie signs the console in again
    page.locator(".conn.on").wait_for()
    assert page.locator("#keyform").count() == 0

    tab.context.clear_cookies()  # the session ends (as after 12 h): the next call says so, and the form returns
    page.locator("#dl-refresh").click()
    form.filter(has_text="登录已过期").wait_for()
    submit(page, API_KEY)
    page.locator("#keyform").wait_for(state="detached")
    page.locator("tr[data-trigger='dwell'] button").click()
    page.locator("tr[data-trigger='dwell']").filter(has_text="已暂停").wait_for()
    assert admin(server, "/v1/admin/stats")["triggers"]["dwell"]["paused"] is True

    page.locator("#signout").click()
    page.locator("#keyform").wait_for()
    assert tab.status_of("/v1/session") == 401
    assert tab.status_of("/v1/admin/stats") == 401
    assert not [url for url in tab.urls if API_KEY in url]


def test_a_key_in_an_old_link_is_neither_used_nor_left_in_the_address_bar(server: Server, tab: Tab) -> None:
    tab.page.goto(f"{server.url}/web/operator.html?key={API_KEY}")
    tab.page.locator("#keyform").wait_for()
    assert "key=" not in tab.page.url
    assert tab.status_of("/v1/session") == 401
    assert API_KEY not in tab.storage()


def test_operator_console_counts_per_trigger_pauses_and_sends_to_everyone_present(server: Server, tab: Tab) -> None:
    page = tab.page
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)
    t0 = time.time()
    post(server, audience(t0, "alice", "bob", "carol"))
    post(server, [{"type": "comment", "room": ROOM, "ts": t0 + 0.5, "user": "alice", "text": "扣1扣1"}])

    newcomer = page.locator("tr[data-trigger='newcomer']")
    newcomer.locator("td.issued").filter(has_text="3").wait_for()
    kou1 = page.locator("tr[data-trigger='kou1']")
    kou1.locator("td.issued").filter(has_text="1").wait_for()
    page.locator("#k-issued").filter(has_text="4").wait_for()
    assert page.locator("#k-present").inner_text() == "3"
    assert page.evaluate("Chart.getChart('rate').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 4

    post(server, [{"type": "join", "room": ROOM, "ts": t0 + 1, "user": "dave"},
                  {"type": "comment", "room": ROOM, "ts": t0 + 1.5, "user": "dave", "text": "扣1"}])  # too soon
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


def test_operator_console_mints_a_host_token_that_signs_the_host_console_in(server: Server,
                                                                            open_tab: Callable[[], Tab]) -> None:
    operator = open_tab().page
    sign_in_console(operator, f"{server.url}/web/operator.html", API_KEY)
    form = operator.locator("#host-token")
    form.locator("input[name=room]").fill(ROOM)
    form.locator("button").click()
    token = form.locator("output").inner_text()

    host = open_tab()
    sign_in_console(host.page, f"{server.url}/web/host.html", token)
    assert host.page.locator("#who").inner_text() == f"主播 Host · {ROOM}"


def test_operator_console_shows_redemption_and_the_experiment_so_far(server: Server, tab: Tab) -> None:
    t0 = time.time()
    post(server, audience(t0, "dora", "eli"))
    [coupon] = admin(server, "/v1/users/dora/coupons")["coupons"]
    post(server, [{"type": "order", "room": ROOM, "ts": t0 + 1, "user": "dora", "order_id": "o-dora", "amount": 150,
                   "coupon_id": coupon["coupon_id"]}])
    sign_in_console(tab.page, f"{server.url}/web/operator.html", API_KEY)
    row = tab.page.locator("#results tr").filter(has_text="newcomer")
    row.filter(has_text="50.0%").wait_for()  # 2 issued, 1 redeemed
    assert "¥150" in row.inner_text()
    tab.page.locator("#experiments h3").filter(has_text="dwell-value").wait_for()


@pytest.fixture
def offer_server(tmp_path: Path) -> Iterator[Server]:
    """The example campaign, but kou1's coupon is chosen by a policy: its entries carry an arm and a propensity."""
    fixed = '{name: kou1, when: comment, keywords: ["扣1"], coupon: dwell10}'
    chosen = '{name: kou1, when: comment, keywords: ["扣1"], offer: {arms: [dwell10, dwell20, null], explore: 0.1}}'
    text = EXAMPLE.read_text(encoding="utf-8")
    assert fixed in text
    config = tmp_path / "campaign.yaml"
    config.write_text(text.replace(fixed, chosen), encoding="utf-8")
    with Server(config, tmp_path / "explain.db") as s:
        yield s


def test_operator_console_explains_a_viewer_each_decision_and_each_silent_firing(offer_server: Server,
                                                                                 tab: Tab) -> None:
    server, page = offer_server, tab.page
    t0 = time.time()
    post(server, audience(t0, "mia"))  # a newcomer coupon on joining
    post(server, [{"type": "transcript", "room": ROOM, "ts": t0 + 1, "text": "宝宝们发券啦"},
                  {"type": "transcript", "room": ROOM, "ts": t0 + 2, "text": "宝宝们发券啦"},  # within its cooldown
                  {"type": "comment", "room": ROOM, "ts": t0 + 3, "user": "mia", "text": "扣1"},  # the policy picks
                  {"type": "live_end", "room": ROOM, "ts": t0 + 4},
                  {"type": "comment", "room": ROOM, "ts": t0 + 5, "user": "mia", "text": "还有券吗"}])  # off air
    answer = admin(server, "/v1/admin/users/mia/explain")["entries"]
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)

    form = page.locator("#explain")
    form.locator("input[name=user]").fill("mia")
    form.locator("button").click()
    entries = page.locator("#explain-entries li")
    entries.nth(len(answer) - 1).wait_for()
    assert [li.get_attribute("data-outcome") for li in entries.all()] == [e["outcome"] for e in answer]
    assert "mia：已发 2 张" in page.locator("#explain-result").inner_text()

    [newcomer] = [e for e in answer if e["trigger"] == "newcomer"]
    issued = page.locator("li[data-trigger='newcomer']")
    assert issued.locator(".head .chip").get_attribute("class") == "chip ok"
    assert issued.locator(".head").inner_text().split("\n")[0] == "已发券 Issued"
    assert "新人券 First visit · 直播间 room-1" in issued.inner_text()
    assert issued.locator(".why").inner_text() == "已发放 新人专享券\nissued newcomer"
    assert newcomer["coupon_id"] in issued.locator(".meta").inner_text()

    cooldown = page.locator("li[data-trigger='passphrase'][data-outcome='no_decision']")
    assert cooldown.locator(".head .chip").get_attribute("class") == "chip"
    assert "未决定 No decision" in cooldown.locator(".head").inner_text()
    assert cooldown.locator(".why").inner_text() == "口令冷却中\nthe passphrase fired less than its cooldown ago"
    off_air = page.locator("li[data-outcome='no_decision']:not([data-trigger])")
    assert "无触发器 no trigger" in off_air.locator(".head").inner_text()
    assert off_air.locator(".why").inner_text().startswith("直播间未开播，事件未生效\nthe room was off air")

    [chosen] = [e for e in answer if e["trigger"] == "kou1"]
    arm = "不发 none" if chosen["arm"] is None else chosen["arm"]
    meta = page.locator("li[data-trigger='kou1'] .meta").inner_text()
    assert f"策略选 arm {arm} · 概率 propensity {chosen['propensity']:.3f}" in meta

    form.locator("input[name=user]").fill("nobody")
    form.locator("button").click()
    page.locator("#explain-result").filter(has_text="没有与 nobody 有关的记录").wait_for()
    assert entries.count() == 0

    tab.context.clear_cookies()  # the session ends: the server's words, and the sign-in form
    form.locator("button").click()
    refused = "查询失败 Failed: 需要有效的凭证 / a valid credential is required"
    page.locator("#explain-result").filter(has_text=refused).wait_for()
    page.locator("#keyform").wait_for()


def test_operator_console_shows_each_offer_arm_its_share_and_the_spend_against_the_budget(offer_server: Server,
                                                                                        tab: Tab) -> None:
    server, page = offer_server, tab.page
    t0 = time.time()
    viewers = [f"fan-{i}" for i in range(8)]
    post(server, audience(t0, *viewers))
    post(server, [{"type": "comment", "room": ROOM, "ts": t0 + 1 + i, "user": u, "text": "扣1"}
                  for i, u in enumerate(viewers)])
    post(server, [{"type": "order", "room": ROOM, "ts": t0 + 20 + i, "user": u, "order_id": f"o-{u}",
                   "amount": 80 + 40 * i} for i, u in enumerate(viewers[:5])])  # yuan, after their offers
    offers = admin(server, "/v1/admin/metrics")["offers"]
    assert list(offers) == ["dwell", "kou1"] and offers["kou1"]["decisions"] == len(viewers)
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)

    card = page.locator("#offers-card .offer[data-trigger='kou1']")  # the example's dwell offer has a block too
    card.wait_for()
    from playwright.sync_api import expect

    # its heading names the trigger's kind once the first stats frame is in, whichever came first
    expect(card.locator("h3")).to_contain_text("评论口令 Comment · 8 次决策 decisions")
    arms = card.locator("tr[data-arm]")
    assert [tr.get_attribute("data-arm") for tr in arms.all()] == ["dwell10", "dwell20", "null"]
    assert "不发 none" in arms.nth(2).inner_text()
    shares = [float(t.rstrip("%")) for t in card.locator(".share span").all_inner_texts()]
    assert sum(shares) == pytest.approx(100, abs=0.2)
    for arm, share in zip(offers["kou1"]["arms"].values(), shares, strict=True):
        assert share == pytest.approx(100 * arm["share"], abs=0.05)

    spend = offers["kou1"]["spend"]
    bar = card.locator(".bar.spend")
    assert "预算 Budget" in bar.inner_text() and f"¥{spend['spent']:,.0f} / ¥300,000" in bar.inner_text()
    width = bar.locator(".bar-track i").evaluate("i => i.style.width")
    assert float(width.rstrip("%")) == pytest.approx(100 * spend["spent"] / spend["budget"], rel=1e-4)
    lam = card.locator(".lambda")
    assert "预算价格 λ budget price" in lam.inner_text()
    assert float(lam.locator("b").inner_text()) == pytest.approx(offers["kou1"]["price"], rel=0.01)
    assert card.locator(".policy em").inner_text().startswith("95% 区间 interval [")
    assert (card.locator("td.est").first.get_attribute("title") or "").startswith("IPS ")
    phases = offers["kou1"]["phases"]  # how the choices moved: each quarter's arm shares, stacked
    columns = card.locator(".phases .phase")
    assert columns.count() == len(phases) == 4
    for column, phase in zip(columns.all(), phases, strict=True):
        heights = [float(i.evaluate("i => i.style.getPropertyValue('--h')").rstrip("%"))
                   for i in column.locator("i").all()]
        assert heights == pytest.approx([100 * s for s in phase["shares"].values()])
        assert f"{phase['decisions']} 次决策 decisions" in (column.get_attribute("title") or "")


@pytest.fixture
def fixed_server(tmp_path: Path) -> Iterator[Server]:
    """The example campaign with its dwell coupon fixed (no trigger has an offer; no experiment uses one)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    offer = "offer: {arms: [null, dwell10, dwell20], explore: 0.1, plan: 60m}"
    policy = "      - {name: policy, weight: 3, coupon: offer}"
    assert offer in text and policy in text
    config = tmp_path / "campaign.yaml"
    config.write_text(text.replace(offer, "coupon: dwell10").replace(policy, "#"), encoding="utf-8")
    with Server(config, tmp_path / "fixed.db") as s:
        yield s


def test_the_offers_panel_stays_hidden_without_an_offer_trigger(fixed_server: Server, tab: Tab) -> None:
    post(fixed_server, audience(time.time(), "olga"))
    sign_in_console(tab.page, f"{fixed_server.url}/web/operator.html", API_KEY)
    tab.page.locator("#results tr").filter(has_text="newcomer").wait_for()
    assert tab.page.locator("#offers-card").is_hidden()


def test_host_console_shows_what_fired_and_why_and_lines_to_read_aloud(server: Server, tab: Tab) -> None:
    page = tab.page
    token = host_token(server)
    sign_in_console(page, f"{server.url}/web/host.html", token)
    assert page.locator("#room").inner_text() == f"直播间 {ROOM}"  # the token knows its room
    t0 = time.time()
    post(server, audience(t0, "alice", "bob"))

    newcomer = page.locator(".row[data-trigger='newcomer']")
    newcomer.nth(1).wait_for()
    lines = newcomer.all_inner_texts()
    assert any("alice" in line and "已发 新人专享券" in line for line in lines)
    assert "新人券 First visit" in lines[0]

    post(server, [{"type": "transcript", "room": ROOM, "ts": t0 + 1, "text": "宝宝们发劝啦"}])  # an ASR homophone
    say = page.locator("#say")
    say.filter(has_text="口令券已发出 2 张").wait_for()
    assert page.locator("#say-en").inner_text() == "2 coupons issued (passphrase)"
    page.locator(".row[data-trigger='passphrase']").nth(1).wait_for()

    page.locator("#issued").filter(has_text="4").wait_for()  # the stats frame, once a second
    assert page.locator("#present").inner_text() == "2"
    assert "直播中" in page.locator("#onair").inner_text()
    assert "2 / 10,000" in page.locator("#bars").inner_text()  # newcomer stock
    assert not [url for url in tab.urls if token in url]


@pytest.fixture
def two_rooms(tmp_path: Path) -> Iterator[Server]:
    """The example campaign in two rooms: a host's console shows its own."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert 'rooms: ["room-1"]' in text
    config = tmp_path / "campaign.yaml"
    config.write_text(text.replace('rooms: ["room-1"]', 'rooms: ["room-1", "room-2"]'), encoding="utf-8")
    with Server(config, tmp_path / "rooms.db") as s:
        yield s


def test_a_host_token_opens_its_own_room_and_nothing_else(two_rooms: Server, tab: Tab) -> None:
    server = two_rooms
    page = tab.page
    sign_in_console(page, f"{server.url}/web/host.html?room=room-2", host_token(server))  # ?room= is only a hint
    assert page.locator("#room").inner_text() == f"直播间 {ROOM}"
    t0 = time.time()
    post(server, [{"type": "live_start", "room": "room-2", "ts": t0 - 210}])  # (the event clock's time begins)
    made = admin(server, "/v1/admin/issue", {"template": "bonus", "users": ["zed", "yan"], "room": "room-2",
                                             "idempotency_key": "other-room"})  # another room's decisions first…
    assert made["issued"] == 2
    post(server, audience(t0, "alice", "bob"))  # …so they would be on screen before these
    page.locator(".row[data-trigger='newcomer']").nth(1).wait_for()
    page.locator("#present").filter(has_text="2").wait_for()

    rows = page.locator("#rows").inner_text()
    assert "alice" in rows and "zed" not in rows and "yan" not in rows
    stats = [f for f in tab.frames if f["type"] == "stats"]
    assert stats and all(f["room"] == ROOM and list(f["rooms"]) == [ROOM] for f in stats)
    lines = [f for f in tab.frames if f["type"] in ("decision", "announcement")]
    assert lines and {f["room"] for f in lines} == {ROOM}

    assert tab.status_of("/v1/admin/stats") == 403  # the host's session reads its feed, nothing else
    page.goto(f"{server.url}/web/operator.html")
    page.locator("#keyform").filter(has_text="运营台需要运营密钥").wait_for()


def test_host_console_asks_for_a_token_and_says_when_it_is_refused(server: Server, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{server.url}/web/host.html")
    form = page.locator("#keyform")
    form.filter(has_text="请输入主播令牌").wait_for()
    submit(page, "not-a-token")
    form.filter(has_text="令牌或密钥无效").wait_for()
    for valid_elsewhere in (viewer_token("alice"), PLATFORM["X-API-Key"]):
        submit(page, valid_elsewhere)
        form.filter(has_text="不能打开主播台").wait_for()
        submit(page, "still-not-a-token")
        form.filter(has_text="令牌或密钥无效").wait_for()
    submit(page, host_token(server))
    page.locator(".conn.on").wait_for()
    assert page.locator("#keyform").count() == 0
