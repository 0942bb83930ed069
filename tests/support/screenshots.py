"""Screenshots of the three pages for docs/screenshots/, from a real ``livecoupon serve``.

    .venv/bin/python tests/support/screenshots.py [--out docs/screenshots]

Starts the service on the example campaign, posts an 18-minute broadcast that ended
just now (arrivals, heartbeats, chat, gifts, a passphrase) with the platform key, then
opens each page in headless Chromium and signs in through its form (the operator key,
a host token, a viewer token), lets live events reach it, and saves viewer.png,
host.png and operator.png. The browser helpers here are shared with
tests/e2e/test_browser_*.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `support` importable

from support.credentials import API_KEY, OPERATOR, PLATFORM, viewer_token  # noqa: E402
from support.server import Server  # noqa: E402

if TYPE_CHECKING:  # playwright is a dev dependency, imported when a browser starts
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "campaign.yaml"
CHROMIUM = Path(os.environ.get("LIVECOUPON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
ROOM = "room-1"


def chromium_missing() -> str | None:
    """Why a browser cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in_console(page: Page, url: str, credential: str) -> None:
    """Open a console and sign in through its form; the page then runs on the session cookie."""
    page.goto(url)
    form = page.locator("#keyform")
    form.locator("input").fill(credential)
    form.locator("button").click()
    page.locator(".conn.on").wait_for()


def sign_in_viewer(page: Page, url: str, token: str) -> None:
    """Open the viewer page and paste a viewer token into its form; returns once the widget is live."""
    page.goto(url)
    form = page.locator("#signin")
    form.locator("textarea").fill(token)
    form.locator("button").click()
    page.locator(".lcw-dnd[data-online='1']").wait_for()


def post(server: Server, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Events as the live platform posts them (server to server, with the platform key)."""
    answer = httpx.post(f"{server.url}/v1/events", json=events, headers=PLATFORM, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    assert not body["rejected"], body["rejected"]
    return body


def admin(server: Server, path: str, body: dict[str, Any] | None = None) -> Any:
    """An operator call: GET ``path``, or POST ``body`` to it."""
    url = f"{server.url}{path}"
    answer = (httpx.get(url, headers=OPERATOR, timeout=30) if body is None
              else httpx.post(url, json=body, headers=OPERATOR, timeout=30))
    answer.raise_for_status()
    return answer.json()


def broadcast(start: float, minutes: int) -> list[dict[str, Any]]:
    """A small, deterministic broadcast: viewers arrive every minute, heartbeat, chat and send gifts."""
    events: list[dict[str, Any]] = [{"type": "live_start", "room": ROOM, "ts": start}]
    viewers: list[str] = []
    for minute in range(minutes):
        base = start + minute * 60
        arrivals = 4 + (minute * 7) % 9
        for i in range(arrivals):
            user = f"viewer-{len(viewers):05d}"
            viewers.append(user)
            events.append({"type": "join", "room": ROOM, "ts": base + 1 + i, "user": user})
        for second in (20, 40):
            events += [{"type": "heartbeat", "room": ROOM, "ts": base + second, "user": u} for u in viewers]
        talker = viewers[(minute * 13) % len(viewers)]
        events.append({"type": "comment", "room": ROOM, "ts": base + 30, "user": talker,
                       "text": "扣1" if minute % 3 == 0 else "主播好美"})
        if minute % 4 == 1:
            events.append({"type": "gift", "room": ROOM, "ts": base + 35, "user": viewers[minute % 7], "value": 52.0})
        if minute in (6, 13):
            events.append({"type": "transcript", "room": ROOM, "ts": base + 50, "text": "宝宝们发券啦"})
    return events


def late_arrival(events: list[dict[str, Any]], minutes_in: int) -> str:
    """The first viewer who joined ``minutes_in`` minutes into the broadcast."""
    start = events[0]["ts"]
    return str(next(e["user"] for e in events if e["type"] == "join" and e["ts"] >= start + minutes_in * 60))


def present_now(server: Server, users: int) -> None:
    now = time.time()
    post(server, [{"type": "heartbeat", "room": ROOM, "ts": now, "user": f"viewer-{i:05d}"} for i in range(users)])


def shoot(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, Server(EXAMPLE, Path(tmp) / "shots.db") as server, \
            chromium() as browser:
        minutes = 18
        events = broadcast(time.time() - minutes * 60 - 5, minutes)
        post(server, events)
        joined = sum(1 for e in events if e["type"] == "join")
        present_now(server, joined)

        host = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        host_token = admin(server, f"/v1/admin/rooms/{ROOM}/host-token", {})["token"]
        sign_in_console(host, f"{server.url}/web/host.html", host_token)
        operator = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        sign_in_console(operator, f"{server.url}/web/operator.html", API_KEY)
        now = time.time()
        fan = late_arrival(events, minutes - 4)  # one coupon so far, the last over 2 minutes ago
        post(server, [{"type": "gift", "room": ROOM, "ts": now, "user": fan, "value": 520.0}])
        post(server, [{"type": "transcript", "room": ROOM, "ts": now + 0.5, "text": "恭喜榜一"}])
        post(server, [{"type": "transcript", "room": ROOM, "ts": now + 1, "text": "宝宝们发劝啦"}])
        admin(server, "/v1/admin/triggers/lucky", {"paused": True})

        viewer = browser.new_context(viewport={"width": 1100, "height": 760}).new_page()
        sign_in_viewer(viewer, f"{server.url}/web/viewer.html?room={ROOM}", viewer_token("viewer-demo"))
        post(server, [{"type": "join", "room": ROOM, "ts": time.time(), "user": "viewer-demo"}])
        viewer.wait_for_selector(".lcw-card")
        viewer.fill("#text", "这件大衣有黑色吗？")
        viewer.press("#text", "Enter")
        time.sleep(1.5)  # counters, charts and the countdown settle
        saved = [out / "viewer.png", out / "host.png", out / "operator.png"]
        viewer.screenshot(path=saved[0])
        host.screenshot(path=saved[1])
        operator.screenshot(path=saved[2], full_page=True)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    missing = chromium_missing()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 2
    for path in shoot(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
