"""The operator console's campaign panel in headless Chromium, against a real ``livecoupon serve``.

The operator edits the running file, checks it (errors by path), backtests it, and publishes it as
version 2; a room on air keeps version 1 until its broadcast ends, and the next broadcast decides
with version 2. A publish from an editor that loaded an older version is refused and offers a reload.
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
ROOM = "room-1"
KOU1 = '  - {name: kou1, when: comment, keywords: ["扣1"], coupon: dwell10}'
GRAB = '- {name: grab, when: comment, keywords: ["抢券"], coupon: grab5}'
GRAB5 = "grab5: {title: 抢券专享, kind: no_threshold, amount: 5, valid_for: 15m}"


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's retrying assertions (imported once a browser runs, as support/screenshots.py does)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """The operator console, signed in with the operator key."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    sign_in_console(page, f"{server.url}/web/operator.html", API_KEY)
    yield page
    context.close()


def open_panel(page: Page) -> Locator:
    """Open the campaign panel; returns its editor once it holds the version in force."""
    page.locator("#cfg-toggle").click()
    editor = page.locator("#cfg-yaml")
    expect(page.locator("#cfg-status")).to_contain_text("基于 v")
    return editor


def caret_after(editor: Locator, line: str) -> None:
    """Put the editor's caret at the end of ``line`` (a whole line of its text)."""
    editor.evaluate("(ed, line) => { const at = ed.value.indexOf(line + '\\n') + line.length; ed.focus();"
                    " ed.setSelectionRange(at, at); }", line)


def running_file(server: Server) -> str:
    return str(admin(server, "/v1/admin/campaign/versions")["yaml"])


def comment(server: Server, ts: float, user: str, text: str) -> list[dict[str, Any]]:
    """A viewer's comment, posted by the platform; the decisions it made."""
    decisions: list[dict[str, Any]] = post(server, [{"type": "comment", "room": ROOM, "ts": ts, "user": user,
                                                     "text": text}])["decisions"]
    return decisions


def test_an_edit_checked_backtested_and_published_reaches_a_live_room_at_its_next_broadcast(
        server: Server, page: Page) -> None:
    t0 = time.time()
    post(server, [{"type": "live_start", "room": ROOM, "ts": t0 - 210},
                  {"type": "join", "room": ROOM, "ts": t0 - 200, "user": "fan"},  # a newcomer coupon, 200 s ago
                  {"type": "heartbeat", "room": ROOM, "ts": t0, "user": "fan"}])
    editor = open_panel(page)
    running = running_file(server)
    expect(editor).to_have_value(running)
    expect(page.locator("#cfg-versions li[data-version='1']")).to_contain_text("生效中 in force")
    expect(page.locator(".cfg-room[data-room='room-1']")).to_contain_text("v1")

    caret_after(editor, "  - {name: flash, when: flash_sale, coupon: flash20}")
    page.keyboard.press("Enter")  # the new line keeps the list's indentation
    page.keyboard.type(GRAB)
    expect(page.locator("#cfg-status")).to_contain_text("已修改 edited")
    page.locator("#cfg-check").click()
    error = page.locator("#cfg-check-out li[data-path='triggers[7].coupon']")
    expect(error).to_contain_text("unknown coupon 'grab5'")
    expect(error.locator("code.path")).to_have_text("triggers[7].coupon")
    expect(error).to_be_visible()
    error.locator("button").click()  # the error's line, selected in the editor
    assert editor.evaluate("ed => ed.value.slice(ed.selectionStart, ed.selectionEnd)") == GRAB
    expect(page.locator("#cfg-lines span.bad")).to_have_text([str(running.splitlines().index(KOU1) + 1)])

    caret_after(editor, "coupons:")
    page.keyboard.press("Enter")  # one step deeper after a key that opens a block…
    page.keyboard.press("Shift+Tab")  # …back out…
    page.keyboard.press("Tab")  # …and in again: two spaces, the focus stays in the editor
    page.keyboard.type(GRAB5)
    expect(editor).to_be_focused()
    edited = editor.input_value()
    assert edited == running.replace("coupons:\n", f"coupons:\n  {GRAB5}\n").replace(KOU1, f"  {GRAB}\n{KOU1}")
    expect(page.locator("#cfg-check-out")).to_have_class("cfg-out stale")
    page.locator("#cfg-check").click()
    expect(page.locator("#cfg-check-out")).to_contain_text("校验通过 Valid")
    expect(page.locator("#cfg-lines span.bad")).to_have_count(0)

    page.locator("#cfg-backtest").click()
    grab = page.locator("#cfg-backtest-out tr[data-trigger='grab']")
    expect(grab).to_contain_text("新增 new")
    expect(grab.locator("td[data-col='issued']")).to_have_text("0")
    expect(grab.locator("td[data-col='issued-current']")).to_have_text("—")
    newcomer = page.locator("#cfg-backtest-out tr[data-trigger='newcomer']")
    expect(newcomer.locator("td[data-col='issued']")).to_have_text("1")
    expect(newcomer.locator("td[data-col='issued-current']")).to_have_text("1")
    expect(page.locator("#cfg-backtest-out tr.difference td[data-col='issued']")).to_have_text("±0")

    page.locator("#cfg-publish input[name=note]").fill("抢券口令 · a grab keyword")
    page.locator("#cfg-publish-button").click()
    answer = page.locator("#cfg-publish-out")
    expect(answer).to_contain_text("已发布 v2 · Published version 2")
    expect(answer.locator(".cfg-effect")).to_contain_text("1 个直播间正在直播，本场沿用旧版本")
    expect(answer.locator(".cfg-waiting .chip[data-room='room-1']")).to_be_visible()
    expect(answer.locator(".cfg-changes [data-part='triggers']")).to_contain_text("新增 added grab")
    expect(answer.locator(".cfg-changes [data-part='coupons']")).to_contain_text("新增 added grab5")
    expect(answer.locator(".cfg-diff .add")).to_have_text(["+  " + GRAB5, "+  " + GRAB])
    expect(page.locator("#cfg-versions li[data-version='2']")).to_contain_text("抢券口令 · a grab keyword")
    expect(page.locator(".cfg-room[data-room='room-1']")).to_contain_text("下一场开播用 v2")
    expect(page.locator("#cfg-status")).to_contain_text("未修改 unchanged")
    assert running_file(server) == edited

    assert comment(server, t0 + 1, "fan", "抢券") == []  # room-1 is still on version 1: the keyword fires nothing
    post(server, [{"type": "live_end", "room": ROOM, "ts": t0 + 2}])
    post(server, [{"type": "live_start", "room": ROOM, "ts": t0 + 3},
                  {"type": "join", "room": ROOM, "ts": t0 + 4, "user": "fan"}])
    [decision] = comment(server, t0 + 5, "fan", "抢券")
    assert (decision["trigger"], decision["issued"]) == ("grab", True)
    coupons = admin(server, "/v1/users/fan/coupons")["coupons"]
    assert sorted(c["template"] for c in coupons) == ["grab5", "newcomer"]

    page.locator("#cfg-refresh").click()
    expect(page.locator(".cfg-room[data-room='room-1']")).to_contain_text("最新 latest")
    expect(page.locator(".cfg-room[data-room='room-1'] b")).to_have_text("v2")


def test_a_publish_over_a_version_published_meanwhile_is_refused_and_offers_a_reload(
        server: Server, page: Page) -> None:
    editor = open_panel(page)
    running = running_file(server)
    expect(editor).to_have_value(running)
    elsewhere = admin(server, "/v1/admin/campaign/publish",
                      {"yaml": running.replace("per_user: 3", "per_user: 4"), "base_version": 1, "note": "another tab"})
    assert (elsewhere["published"], elsewhere["version"]) == (True, 2)

    caret_after(editor, "  min_interval: 2m")
    page.keyboard.press("Backspace")
    page.keyboard.type("3m")
    page.locator("#cfg-publish-button").click()
    answer = page.locator("#cfg-publish-out")
    expect(answer.locator(".cfg-head")).to_contain_text("版本冲突")
    expect(answer).to_contain_text("version 2 is in force, not 1")
    expect(page.locator("#cfg-status")).to_contain_text("v2 已发布，先重新载入")
    assert admin(server, "/v1/admin/campaign/versions")["version"] == 2  # nothing overwritten

    page.locator("#cfg-conflict-reload").click()
    expect(editor).to_have_value(running.replace("per_user: 3", "per_user: 4"))
    expect(page.locator("#cfg-status")).to_contain_text("基于 v2")
    caret_after(editor, "  min_interval: 2m")
    page.keyboard.press("Backspace")
    page.keyboard.type("3m")
    page.locator("#cfg-publish-button").click()
    expect(answer).to_contain_text("已发布 v3")
    expect(answer.locator(".cfg-effect")).to_contain_text("立即生效")
    expect(answer.locator(".cfg-changes [data-part='limits']")).to_contain_text("min_interval")
    expect(answer.locator(".cfg-waiting")).to_have_count(0)  # limits hold at once: no room waits


def test_the_file_in_force_is_exported_and_a_file_from_disk_imported_into_the_editor(
        server: Server, page: Page, tmp_path: Path) -> None:
    editor = open_panel(page)
    running = running_file(server)
    with page.expect_download() as download:
        page.locator("#cfg-export").click()
    assert download.value.suggested_filename == "double11-live-v1.yaml"
    saved = tmp_path / "export.yaml"
    download.value.save_as(saved)
    assert saved.read_text(encoding="utf-8") == running

    picked = tmp_path / "candidate.yaml"
    picked.write_text(running.replace("budget: 300000", "budget: 200000"), encoding="utf-8")
    page.locator("#cfg-import").set_input_files(picked)
    expect(editor).to_have_value(picked.read_text(encoding="utf-8"))
    expect(page.locator("#cfg-status")).to_contain_text("已导入 candidate.yaml")
    expect(page.locator("#cfg-status")).to_contain_text("已修改 edited")
    assert running_file(server) == running  # an import is only an edit until it is published

    editor.fill("campaign: double11-live\ncoupons: [")
    page.locator("#cfg-check").click()
    syntax = page.locator("#cfg-check-out li").first
    expect(syntax).to_contain_text("not valid YAML")
    expect(syntax.locator("code.path")).to_have_text("文件 file")
