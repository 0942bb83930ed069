"""The viewer page and its widget in headless Chromium, against a real ``livecoupon serve``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from support.server import API_KEY, Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
ROOM = "room-1"

# Before any page script: count synthesised tones, shown popups and "立即使用" clicks, and let the
# page believe it was tapped (browsers allow sound only after a tap; a real tap could close a popup).
PROBES = """
Object.defineProperty(navigator, "userActivation", {value: {hasBeenActive: true, isActive: true}});
window.__tones = 0; window.__shown = []; window.__used = [];
const createOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () { window.__tones++; return createOscillator.call(this); };
document.addEventListener("livecoupon:coupon", e => window.__shown.push(e.detail.coupon_id));
document.addEventListener("livecoupon:use", e => window.__used.push(e.detail.coupon_id));
"""


class Viewer:
    """One viewer's tab: the page, and the frames its widget sent over the socket."""

    def __init__(self, browser: Browser, server: Server, user: str) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 760})
        self.context.set_default_timeout(10_000)
        self.context.add_init_script(PROBES)
        self.url = f"{server.url}/web/viewer.html?room={ROOM}&user={user}"
        self.sent: list[dict[str, Any]] = []
        self.page = self.open()

    def open(self) -> Page:
        page = self.context.new_page()
        page.on("websocket", lambda ws: ws.on("framesent", lambda payload: self.sent.append(json.loads(payload))))
        page.goto(self.url)
        page.wait_for_selector("body[data-joined='1']")  # the socket is open, and the page's join was posted
        return page

    def reload(self) -> None:
        self.page.close()
        self.page = self.open()

    def shown(self) -> list[str]:
        return list(self.page.evaluate("window.__shown"))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.page.wait_for_timeout(25)

    def close(self) -> None:
        self.context.close()


OpenViewer = Callable[[str], Viewer]


@pytest.fixture
def open_viewer(browser: Browser, server: Server) -> Iterator[OpenViewer]:
    viewers: list[Viewer] = []

    def open_(user: str) -> Viewer:
        viewers.append(Viewer(browser, server, user))
        return viewers[-1]

    yield open_
    for v in viewers:
        v.close()


def post(server: Server, *events: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/v1/events", json=list(events))
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    assert body["rejected"] == []
    return body


def off_air(server: Server) -> None:
    """The room has had a broadcast that ended: what viewers' pages post is ignored until the next."""
    now = time.time()
    post(server, {"type": "live_start", "room": ROOM, "ts": now - 10},
         {"type": "live_end", "room": ROOM, "ts": now - 5})


def go_live_and_join(server: Server, user: str) -> dict[str, Any]:
    now = time.time()
    return post(server, {"type": "live_start", "room": ROOM, "ts": now}, {"type": "join", "room": ROOM, "ts": now,
                                                                           "user": user})


def decisions(server: Server) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/admin/decisions", headers={"X-API-Key": API_KEY})
    answer.raise_for_status()
    return list(answer.json()["decisions"])


def test_newcomer_popup_shows_terms_reason_and_countdown_within_a_second(server: Server,
                                                                         open_viewer: OpenViewer) -> None:
    off_air(server)
    viewer = open_viewer("alice")
    page = viewer.page
    assert page.locator(".lcw-card").count() == 0

    made = go_live_and_join(server, "alice")
    coupon_id = next(d["coupon_id"] for d in made["decisions"] if d["trigger"] == "newcomer")
    card = page.locator(".lcw-card")
    card.wait_for(state="visible", timeout=1000)  # the decision committed before the answer; the push follows

    text = card.inner_text()
    assert "专属优惠券已到账" in text
    assert re.search(r"¥\s*20\b", text) and "满99可用" in text and "新人专享券" in text
    assert "欢迎第一次来直播间，送你一张满99减20券" in text
    assert card.get_attribute("data-coupon-id") == coupon_id
    timer = page.locator(".lcw-timer b")
    first = timer.inner_text()
    assert re.fullmatch(r"(29:5\d|30:00)", first), first  # valid for 30 minutes
    page.wait_for_function("t => document.querySelector('.lcw-timer b').textContent !== t", arg=first)

    viewer.wait_for(lambda: {"type": "ack", "coupon_id": coupon_id} in viewer.sent, "the ack")
    assert viewer.shown() == [coupon_id]
    assert page.evaluate("window.__tones") == 3  # the chime: three synthesised notes, no audio file

    page.get_by_role("button", name=re.compile("立即使用")).click()
    assert page.evaluate("window.__used") == [coupon_id]
    assert page.locator(".lcw-card").count() == 0
    page.locator(f".ticket.picked[data-coupon-id='{coupon_id}']").wait_for()
    assert "可用 Available" in page.locator(".ticket").first.inner_text()


def test_chat_posts_comments_as_events(server: Server, open_viewer: OpenViewer) -> None:
    go_live_and_join(server, "dora")
    viewer = open_viewer("dora")
    viewer.page.locator(".lcw-x").click()
    viewer.page.fill("#text", "扣1")
    viewer.page.press("#text", "Enter")
    assert "扣1" in viewer.page.locator("#msgs").inner_text()
    viewer.wait_for(lambda: any(d["trigger"] == "kou1" and d["user"] == "dora" for d in decisions(server)),
                    "the comment trigger's decision")


def test_a_coupon_issued_while_away_pops_up_once_on_return_and_never_after_its_ack(server: Server,
                                                                                   open_viewer: OpenViewer) -> None:
    off_air(server)
    viewer = open_viewer("bob")
    viewer.page.close()
    made = go_live_and_join(server, "bob")  # issued while bob's page is closed
    coupon_id = next(d["coupon_id"] for d in made["decisions"] if d["trigger"] == "newcomer")

    viewer.page = viewer.open()
    card = viewer.page.locator(".lcw-card")
    card.wait_for(state="visible")
    assert "离线期间到账" in card.inner_text() and card.get_attribute("data-coupon-id") == coupon_id
    viewer.wait_for(lambda: {"type": "ack", "coupon_id": coupon_id} in viewer.sent, "the ack")
    viewer.page.wait_for_timeout(1500)
    assert viewer.shown() == [coupon_id]  # exactly once, though the page's join and the backlog both raced it

    viewer.reload()
    viewer.page.wait_for_timeout(1500)
    assert viewer.shown() == []
    assert viewer.page.locator(".lcw-card").count() == 0
    assert viewer.page.locator(f".ticket[data-coupon-id='{coupon_id}']").count() == 1  # still in "我的券"


def test_do_not_disturb_hides_the_popup_shows_a_badge_and_unmute_delivers(server: Server,
                                                                          open_viewer: OpenViewer) -> None:
    off_air(server)
    viewer = open_viewer("carol")
    page = viewer.page
    switch = page.locator(".lcw-dnd")
    switch.click()
    assert switch.get_attribute("aria-pressed") == "true"
    assert "免打扰" in switch.inner_text()
    viewer.wait_for(lambda: {"type": "mute", "minutes": 60} in viewer.sent, "the mute message")

    made = go_live_and_join(server, "carol")
    coupon_id = next(d["coupon_id"] for d in made["decisions"] if d["trigger"] == "newcomer")
    page.locator(".lcw-badge").filter(has_text="1").wait_for()
    assert page.locator(".lcw-card").count() == 0 and page.evaluate("window.__tones") == 0

    viewer.reload()  # the switch is remembered, and the server is told again
    switch = viewer.page.locator(".lcw-dnd")
    assert switch.get_attribute("aria-pressed") == "true"
    viewer.wait_for(lambda: viewer.sent.count({"type": "mute", "minutes": 60}) == 2, "the mute on reconnect")
    viewer.page.wait_for_timeout(1000)
    assert viewer.page.locator(".lcw-card").count() == 0

    switch.click()
    assert switch.get_attribute("aria-pressed") == "false"
    card = viewer.page.locator(".lcw-card")
    card.wait_for(state="visible")
    assert card.get_attribute("data-coupon-id") == coupon_id
    assert {"type": "unmute"} in viewer.sent
    assert viewer.page.evaluate("window.__tones") == 3
