"""The consoles of a deployment of several campaigns, in headless Chromium against a real ``livecoupon serve``.

Two campaigns with triggers of the same names: shop-a decides rooms r-a and r-both, shop-b r-b and
r-both. The operator picks a campaign in the header; the panels then show that campaign alone, and
pausing a trigger pauses that campaign's. A host in r-both sees the two campaigns' counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.credentials import API_KEY
from support.screenshots import admin, post, sign_in_console
from support.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, LocatorAssertions, Page

pytestmark = pytest.mark.browser
SHOP_A = """
campaign: shop-a
rooms: ["r-a", "r-both"]
presence_timeout: 60s
coupons:
  c10: {title: A 十元券, kind: no_threshold, amount: 10, valid_for: 15m, stock: 100}
triggers:
  - {name: newcomer, when: first_visit, coupon: c10}
  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}
limits: {per_user: 3}
"""
SHOP_B = SHOP_A.replace("shop-a", "shop-b").replace('"r-a"', '"r-b"').replace("c10", "c5") \
    .replace("A 十元券", "B 五元券").replace("amount: 10", "amount: 5")


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's retrying assertions (imported once a browser runs, as support/screenshots.py does)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def two_shops(tmp_path: Path) -> Iterator[Server]:
    """``livecoupon serve --config folder/``: shop-a and shop-b."""
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "shop-a.yaml").write_text(SHOP_A, encoding="utf-8")
    (folder / "shop-b.yaml").write_text(SHOP_B, encoding="utf-8")
    with Server(folder, tmp_path / "shops.db") as s:
        yield s


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def arrivals(room: str, t0: float, *users: str) -> list[dict[str, Any]]:
    return [{"type": "live_start", "room": room, "ts": t0}] + [
        {"type": "join", "room": room, "ts": t0 + 1 + i, "user": u} for i, u in enumerate(users)]


def paused(server: Server, campaign: str) -> dict[str, bool]:
    triggers = admin(server, f"/v1/admin/stats?campaign={campaign}")["triggers"]
    return {name: t["paused"] for name, t in triggers.items()}


def test_the_operator_picks_a_campaign_sees_its_counters_pauses_its_trigger_and_keeps_the_pick(
        two_shops: Server, page: Page) -> None:
    server = two_shops
    t0 = time.time()
    post(server, arrivals("r-a", t0, "ann", "abe"))
    post(server, arrivals("r-b", t0, "bea", "bob", "bud"))
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)

    picker = page.locator("#campaign-select")
    expect(page.locator("#campaign-pick")).to_be_visible()
    expect(page.locator("#campaign")).to_be_hidden()
    assert picker.locator("option").all_inner_texts() == ["shop-a", "shop-b"]
    expect(picker).to_have_value("shop-a")  # the first by id, until one is picked
    expect(page.locator("#k-issued")).to_have_text("2")

    picker.select_option("shop-b")
    newcomer = page.locator("tr[data-trigger='newcomer']")
    expect(newcomer.locator("td.issued")).to_have_text("3")
    expect(page.locator("#k-issued")).to_have_text("3")
    expect(page.locator("#results tr").filter(has_text="newcomer").locator("td").nth(1)).to_have_text("3")
    expect(page.locator("select[name=template]")).to_have_value("c5")
    for _ in range(6):  # shop-a's frames keep coming each second, and are not drawn
        assert page.locator("#k-issued").inner_text() == "3"
        page.wait_for_timeout(400)

    newcomer.locator("button").click()
    expect(newcomer).to_contain_text("已暂停")
    assert paused(server, "shop-b") == {"newcomer": True, "kou1": False}
    assert paused(server, "shop-a") == {"newcomer": False, "kou1": False}  # the same name in the other campaign

    page.locator("#cfg-toggle").click()  # the campaign panel edits the picked campaign's file
    expect(page.locator("#cfg-yaml")).to_have_value(SHOP_B)

    form = page.locator("#present")
    form.locator("select[name=room]").select_option("r-b")
    form.locator("button").click()
    expect(page.locator("#present-result")).to_contain_text("已发放 3 张")
    assert admin(server, "/v1/admin/stats?campaign=shop-b")["triggers"]["manual"]["issued"] == 3
    assert "manual" not in admin(server, "/v1/admin/stats?campaign=shop-a")["triggers"]

    explain = page.locator("#explain")  # a viewer's story spans the campaigns, each entry naming its own
    explain.locator("input[name=user]").fill("bea")
    explain.locator("button").click()
    entries = page.locator("#explain-entries li")
    expect(entries).to_have_count(2)  # newcomer, then the manual send
    assert [li.get_attribute("data-campaign") for li in entries.all()] == ["shop-b", "shop-b"]
    assert "直播间 r-b · 活动 shop-b" in entries.first.inner_text()

    assert "#campaign=shop-b" in page.url
    page.reload()  # the pick stays
    page.locator(".conn.on").wait_for()
    expect(picker).to_have_value("shop-b")
    expect(newcomer).to_contain_text("已暂停")
    expect(page.locator("#k-issued")).to_have_text("6")
    page.goto(f"{server.url}/web/operator.html")  # a new address: the browser's last pick
    expect(picker).to_have_value("shop-b")
    expect(page.locator("#k-issued")).to_have_text("6")

    picker.select_option("shop-a")
    expect(page.locator("#k-issued")).to_have_text("2")
    expect(page.locator("tr[data-trigger='newcomer']")).to_contain_text("运行中")


def test_a_file_of_another_campaign_is_not_published_from_the_picked_one(two_shops: Server, page: Page) -> None:
    sign_in_console(page, f"{two_shops.url}/web/operator.html#campaign=shop-b", API_KEY)
    expect(page.locator("#campaign-select")).to_have_value("shop-b")
    page.locator("#cfg-toggle").click()
    editor = page.locator("#cfg-yaml")
    expect(editor).to_have_value(SHOP_B)
    editor.fill(SHOP_A.replace("per_user: 3", "per_user: 4"))
    page.locator("#cfg-publish-button").click()
    expect(page.locator("#cfg-status")).to_contain_text("这是活动 shop-a 的文件")
    assert [v["version"] for v in admin(two_shops, "/v1/admin/campaign/versions?campaign=shop-a")["versions"]] == [1]

    page.locator("#campaign-select").select_option("shop-a")  # the edit of shop-b waits; shop-a's file comes
    expect(editor).to_have_value(SHOP_A)
    page.locator("#campaign-select").select_option("shop-b")
    expect(editor).to_have_value(SHOP_A.replace("per_user: 3", "per_user: 4"))
    expect(page.locator("#cfg-status")).to_contain_text("未发布的修改还在")


def test_a_host_in_a_room_of_two_campaigns_sees_their_sum_and_each_one(two_shops: Server, page: Page) -> None:
    server = two_shops
    token = admin(server, "/v1/admin/rooms/r-both/host-token", {})["token"]
    sign_in_console(page, f"{server.url}/web/host.html", token)
    t0 = time.time()
    post(server, arrivals("r-both", t0, "cat", "cy"))
    post(server, [{"type": "comment", "room": "r-both", "ts": t0 + 5, "user": "cat", "text": "扣1"}])
    post(server, arrivals("r-a", t0, "ann"))  # another room: not counted here

    expect(page.locator("#issued")).to_have_text("6")  # 2 newcomers and 1 kou1, in each campaign
    expect(page.locator("#campaigns")).to_have_text("以上是 2 个活动的合计 · Sums of 2 campaigns — 已发 issued: "
                                                    "shop-a 3 · shop-b 3")
    for shop, coupon, stock in (("shop-a", "c10", 4), ("shop-b", "c5", 3)):  # stock is the whole campaign's
        own = page.locator(f"#triggers .of[data-campaign='{shop}']")
        expect(own.locator(".trig[data-trigger='newcomer'] b")).to_have_text("2")
        expect(own.locator(".trig[data-trigger='kou1'] b")).to_have_text("1")
        expect(page.locator(f"#bars .of[data-campaign='{shop}']")).to_contain_text(f"库存 {coupon}{stock} / 100")
    assert page.locator("#present").inner_text() == "2"


def test_with_one_campaign_there_is_no_picker_and_nothing_names_a_campaign(server: Server, page: Page) -> None:
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)
    expect(page.locator("#campaign")).to_have_text("活动 double11-live")
    expect(page.locator("#campaign-pick")).to_be_hidden()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator("tr[data-trigger='dwell'] button").click()
    expect(page.locator("tr[data-trigger='dwell']")).to_contain_text("已暂停")
    page.locator("#cfg-toggle").click()
    expect(page.locator("#cfg-status")).to_contain_text("基于 v1")
    assert requests and not [url for url in requests if "campaign=" in url]
    assert "#" not in page.url
