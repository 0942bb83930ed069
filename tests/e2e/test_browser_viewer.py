"""The viewer page and its widget in headless Chromium, against a real ``livecoupon serve``.

The viewer signs in by pasting a viewer token (never through the page's URL); the widget's
socket carries it as ``?token=``. The page posts no joins or heartbeats — that is the live
platform's job, done here with the platform key — and chats as the token's user.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from support.credentials import API_KEY, viewer_token
from support.screenshots import admin, post, sign_in_viewer
from support.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request, WebSocket

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


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(10_000)
    context.add_init_script(PROBES)
    return context


class Viewer:
    """One viewer's tab: the page, the frames its widget sent and every URL it opened."""

    def __init__(self, browser: Browser, server: Server, user: str) -> None:
        self.context = new_context(browser)
        self.url = f"{server.url}/web/viewer.html?room={ROOM}"
        self.token = viewer_token(user)
        self.sent: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.requests: list[Request] = []
        self.context.on("request", lambda request: self.requests.append(request))
        self.page = self.open()

    def open(self) -> Page:
        """A new tab, signed in through the form (a tab's sessionStorage is its own)."""
        page = self.context.new_page()
        page.on("framenavigated", lambda frame: self.urls.append(frame.url))
        page.on("websocket", self.watch)
        sign_in_viewer(page, self.url, self.token)
        return page

    def watch(self, ws: WebSocket) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))

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


def off_air(server: Server) -> None:
    """The room has had a broadcast that ended: nothing fires until the next one."""
    now = time.time()
    post(server, [{"type": "live_start", "room": ROOM, "ts": now - 10},
                  {"type": "live_end", "room": ROOM, "ts": now - 5}])


def go_live_and_join(server: Server, user: str) -> dict[str, Any]:
    """The live platform reports the broadcast and the viewer's arrival (the page posts neither)."""
    now = time.time()
    return post(server, [{"type": "live_start", "room": ROOM, "ts": now},
                         {"type": "join", "room": ROOM, "ts": now, "user": user}])


def newcomer_coupon(made: dict[str, Any]) -> str:
    return str(next(d["coupon_id"] for d in made["decisions"] if d["trigger"] == "newcomer"))


def decisions(server: Server) -> list[dict[str, Any]]:
    return list(admin(server, "/v1/admin/decisions")["decisions"])


def test_the_viewer_signs_in_by_pasting_a_token_that_never_enters_the_page_url(browser: Browser,
                                                                               server: Server) -> None:
    token = viewer_token("alice")
    page = new_context(browser).new_page()
    page.goto(f"{server.url}/web/viewer.html?room={ROOM}&token={token}")  # an old link: not used, not kept
    form = page.locator("#signin")
    form.wait_for()
    assert "token=" not in page.url
    assert page.locator(".lcw-dnd").count() == 0

    forged = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "not-the-viewer-secret-but-32-bytes-long",
                        algorithm="HS256")
    error = page.locator("#signin-error")
    for pasted, says in [("not a token", "这不是观众令牌"), (API_KEY, "这不是观众令牌"), (forged, "令牌无效"),
                         (viewer_token("alice", seconds=-60), "令牌已过期")]:
        form.locator("textarea").fill(pasted)
        form.locator("button").click()
        error.filter(has_text=says).wait_for()
        assert page.locator(".lcw-dnd").count() == 0
        form.locator("textarea").fill("")
        page.evaluate("document.getElementById('signin-error').textContent = ''")

    form.locator("textarea").fill(token)
    form.locator("button").click()
    page.locator(".lcw-dnd[data-online='1']").wait_for()
    assert form.is_hidden()
    assert "观众 Viewer: alice" in page.locator("#who").inner_text()  # the user comes from the token
    assert token not in page.url and "token" not in page.url
    assert token not in page.evaluate("JSON.stringify(Object.entries(localStorage))")

    page.reload()  # this tab keeps the token (sessionStorage) and signs in again by itself
    page.locator(".lcw-dnd[data-online='1']").wait_for()
    assert form.is_hidden()

    page.locator("#signout").click()
    form.wait_for()
    assert page.locator(".lcw-dnd").count() == 0
    assert token not in page.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    page.context.close()


def test_a_token_the_service_stops_accepting_brings_the_sign_in_form_back(server: Server,
                                                                          open_viewer: OpenViewer) -> None:
    viewer = open_viewer("erin")
    server.extra_env = {"LIVECOUPON_VIEWER_SECRET": "a-new-viewer-secret-of-at-least-32-bytes"}
    server.restart()  # the merchant rotated the secret: the widget reconnects and is refused (4401)
    # its retries back off (up to 15 s apart) while the server restarts, however slow the machine makes that
    viewer.page.locator("#signin-error").filter(has_text="令牌已失效").wait_for(timeout=45_000)
    assert viewer.page.locator(".lcw-dnd").count() == 0


def test_the_widget_stops_and_reports_a_refused_token(browser: Browser, server: Server) -> None:
    page = new_context(browser).new_page()
    page.goto(f"{server.url}/web/viewer.html?room={ROOM}")
    page.locator("#signin").wait_for()
    refused = """([token, user]) => new Promise(resolve =>
        LiveCoupon.init({room: "room-1", token, user, onAuthError: code => resolve(code)}))"""
    assert page.evaluate(refused, ["not-a-token", None]) == 4401
    assert page.evaluate(refused, [viewer_token("bob"), "alice"]) == 4403  # bob's token, listening for alice
    assert page.locator(".lcw-dnd").count() == 0
    page.context.close()


def test_newcomer_popup_shows_terms_reason_and_countdown_within_a_second(server: Server,
                                                                         open_viewer: OpenViewer) -> None:
    off_air(server)
    viewer = open_viewer("alice")
    page = viewer.page
    assert page.locator(".lcw-card").count() == 0

    coupon_id = newcomer_coupon(go_live_and_join(server, "alice"))
    card = page.locator(".lcw-card")
    card.wait_for(state="visible", timeout=1000)  # the decision committed before the answer; the push follows

    text = card.inner_text()
    assert "专属优惠券已到账" in text
    assert re.search(r"¥\s*20\b", text) and "满99可用 · over ¥99" in text and "新人专享券" in text
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

    own = [r for r in viewer.requests if "/v1/" in r.url]
    assert not [r for r in own if r.url.endswith("/v1/events")]  # no joins or heartbeats from the page
    assert all(r.headers.get("authorization") == f"Bearer {viewer.token}" for r in own)
    assert not [url for url in viewer.urls if viewer.token in url and "/live?" not in url]


def test_chat_sent_from_the_page_arrives_as_the_viewers_comment(server: Server, open_viewer: OpenViewer) -> None:
    go_live_and_join(server, "dora")
    viewer = open_viewer("dora")
    viewer.page.locator(".lcw-x").click()  # the newcomer coupon, missed while the page was opening
    viewer.page.fill("#text", "扣1")
    viewer.page.press("#text", "Enter")
    assert "扣1" in viewer.page.locator("#msgs").inner_text()
    viewer.wait_for(lambda: any(d["trigger"] == "kou1" and d["user"] == "dora" for d in decisions(server)),
                    "the comment trigger's decision")

    [sent] = [r for r in viewer.requests if r.url.endswith(f"/v1/rooms/{ROOM}/comments")]
    assert sent.method == "POST" and sent.post_data_json == {"text": "扣1"}  # who and when: the server's to say
    assert sent.headers["authorization"] == f"Bearer {viewer.token}"
    assert viewer.page.locator("#msgs .msg.failed").count() == 0  # taken: it reads as sent


def test_a_chat_message_the_service_refuses_is_marked_not_sent(server: Server, open_viewer: OpenViewer) -> None:
    """wendy's token is good, but the platform never reported her in the room: her message is refused (409
    ``not_in_room``). It stays where she typed it, marked 未发送 Not sent, and the toast says why, in Chinese, then
    in English."""
    post(server, [{"type": "live_start", "room": ROOM, "ts": time.time()}])
    page = open_viewer("wendy").page
    page.fill("#text", "你好")
    page.press("#text", "Enter")

    line = page.locator("#msgs .msg.failed")
    line.wait_for()
    assert "你好" in line.inner_text() and re.search(r"未发送.*Not sent", line.inner_text())
    assert page.locator("#msgs .msg", has_text="你好").count() == 1  # that line, not a sent one beside it
    toast = page.locator("#toast.show").inner_text()
    assert toast.startswith("发送失败：你还不在这个直播间"), toast
    zh, _, en = toast.partition(" · Not sent: ")
    assert en.startswith("you are not in this room") and not re.search(r"[a-z]", zh) and " / " not in toast, toast


def test_labels_read_chinese_then_english_before_their_value(server: Server, open_viewer: OpenViewer) -> None:
    """Token expiry and coupon validity: 令牌有效至 Token valid until 16:22:35, 有效期至 Valid until 12/1 15:52."""
    made = go_live_and_join(server, "gina")
    page = open_viewer("gina").page
    who = page.locator("#who").inner_text()
    assert re.search(r"令牌有效至 Token valid until \d{1,2}:\d{2}:\d{2}$", who), who
    ticket = page.locator(f".ticket[data-coupon-id='{newcomer_coupon(made)}'] .m")
    ticket.wait_for()
    validity = ticket.inner_text()
    assert re.match(r"有效期至 Valid until \d{1,2}/\d{1,2} \d{2}:\d{2} · ", validity), validity
    assert validity.count("alid until") == 1


def test_my_coupons_state_each_coupons_terms_as_its_popup_does(server: Server, open_viewer: OpenViewer) -> None:
    """A percent coupon's cap, and a scope of some products, in "我的券" too (the popup's words, widget.js)."""
    off_air(server)  # (the service's time begins; nobody present, no newcomer coupon to space these from)
    tickets = {}
    for user, template in (("hana", "pct15"), ("ivy", "flash20")):
        made = admin(server, "/v1/admin/issue", {"template": template, "users": [user], "room": ROOM,
                                                 "idempotency_key": f"terms-{template}"})
        assert made["issued"] == 1, made
        coupon_id = admin(server, f"/v1/users/{user}/coupons")["coupons"][0]["coupon_id"]
        tickets[template] = open_viewer(user).page.locator(f".ticket[data-coupon-id='{coupon_id}']")

    percent, flash = tickets["pct15"], tickets["flash20"]
    percent.wait_for()
    assert "无门槛，最高减50 · no minimum, up to ¥50 off" in percent.inner_text()
    assert "全场通用 · All products" in percent.inner_text()
    flash.wait_for()
    assert "满100可用 · over ¥100" in flash.inner_text()
    assert "指定商品可用 · Selected products" in flash.inner_text()


def test_a_coupon_issued_while_away_pops_up_once_on_return_and_never_after_its_ack(server: Server,
                                                                                   open_viewer: OpenViewer) -> None:
    off_air(server)
    viewer = open_viewer("bob")
    viewer.page.close()
    coupon_id = newcomer_coupon(go_live_and_join(server, "bob"))  # issued while bob's page is closed

    viewer.page = viewer.open()
    card = viewer.page.locator(".lcw-card")
    card.wait_for(state="visible")
    assert "离线期间到账" in card.inner_text() and card.get_attribute("data-coupon-id") == coupon_id
    viewer.wait_for(lambda: {"type": "ack", "coupon_id": coupon_id} in viewer.sent, "the ack")
    viewer.page.wait_for_timeout(1500)
    assert viewer.shown() == [coupon_id]  # exactly once

    viewer.reload()
    viewer.page.wait_for_timeout(1500)
    assert viewer.shown() == []
    assert viewer.page.locator(".lcw-card").count() == 0
    viewer.page.locator(f".ticket[data-coupon-id='{coupon_id}']").wait_for()  # still in "我的券"
    assert viewer.page.locator(f".ticket[data-coupon-id='{coupon_id}']").count() == 1


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

    coupon_id = newcomer_coupon(go_live_and_join(server, "carol"))
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


def test_a_queued_popup_whose_coupon_expired_meanwhile_is_skipped(server: Server, open_viewer: OpenViewer) -> None:
    """kou1's popup (valid 15 min) waits in the widget's queue behind the newcomer's; 16 minutes pass on the page's
    clock before the newcomer's closes: kou1 never pops up (it stays in 我的券, expired)."""
    off_air(server)
    viewer = open_viewer("erin")
    viewer.context.clock.install()  # the page's own clock, to move on
    viewer.reload()
    page = viewer.page
    newcomer = newcomer_coupon(go_live_and_join(server, "erin"))
    page.locator(".lcw-card").wait_for(state="visible")
    [kou1] = post(server, [{"type": "comment", "room": ROOM, "ts": time.time() + 121, "user": "erin",
                            "text": "扣1"}])["decisions"]
    page.wait_for_function("window.livecoupon.queue.length === 1")  # after the quiet period, behind the first
    page.clock.fast_forward("16:00")
    page.wait_for_timeout(500)
    assert kou1["trigger"] == "kou1" and viewer.shown() == [newcomer]
    assert page.locator(".lcw-card").count() == 0


def test_a_popup_queued_but_never_shown_pops_up_after_a_reload(server: Server, open_viewer: OpenViewer) -> None:
    """The widget acknowledges a popup when it shows it (``&ack=1``), not when the socket carries it: kou1's,
    queued behind the newcomer's when the page reloads, comes again; the newcomer's, shown, does not."""
    off_air(server)
    viewer = open_viewer("fay")
    newcomer = newcomer_coupon(go_live_and_join(server, "fay"))
    viewer.page.locator(".lcw-card").wait_for(state="visible")
    [kou1] = post(server, [{"type": "comment", "room": ROOM, "ts": time.time() + 121, "user": "fay",
                            "text": "扣1"}])["decisions"]
    viewer.page.wait_for_function("window.livecoupon.queue.length === 1")
    assert all("ack=1" in url for url in viewer.urls if "/live?" in url)

    viewer.reload()
    card = viewer.page.locator(".lcw-card")
    card.wait_for(state="visible")
    assert card.get_attribute("data-coupon-id") == kou1["coupon_id"] and "离线期间到账" in card.inner_text()
    viewer.page.wait_for_timeout(500)
    assert viewer.shown() == [kou1["coupon_id"]] and newcomer != kou1["coupon_id"]
