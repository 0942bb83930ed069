"""The API reference page, ``/docs`` (Swagger UI), works offline: every file it loads is the service's own, and
it renders the OpenAPI 3.1 document in headless Chromium with only the service reachable (its requests answered
by the real app, every other request blocked and recorded). There is no ``/redoc``: ReDoc fetches its logo
from a CDN whatever it is told."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from support.apps import serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

ORIGIN = "http://127.0.0.1"  # nothing listens: the route below hands each request to the app in process


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serving(tmp_path / "docs.db") as c:
        yield c


def references(html: str) -> list[str]:
    """The addresses a page's HTML loads or names: src, href, spec-url, Swagger UI's url, any quoted http(s) one."""
    return re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']"""
                      r"""|["'](https?://[^"']+)["']""", html)


def test_the_page_loads_only_the_services_own_files(client: TestClient) -> None:
    answer = client.get("/docs")
    assert answer.status_code == 200
    found = [next(a for a in groups if a) for groups in references(answer.text)]
    assert "/openapi.json" in found
    for address in found:
        assert not urlsplit(address).netloc, f"/docs loads {address} from another host"
        assert client.get(address).status_code == 200, address


def test_there_is_no_redoc_page(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def opened(browser: Browser, client: TestClient, path: str, blocked: list[str]) -> Page:
    """``path`` in a fresh context whose only reachable host is the service."""
    context = browser.new_context()
    context.set_default_timeout(15_000)

    def answer(route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if f"{url.scheme}://{url.netloc}" != ORIGIN:
            blocked.append(request.url)
            route.abort()
            return
        reply = client.request(request.method, url.path + (f"?{url.query}" if url.query else ""),
                               headers=request.headers, content=request.post_data_buffer)
        route.fulfill(status=reply.status_code, headers=dict(reply.headers), body=reply.content)

    context.route("**/*", answer)
    page = context.new_page()
    page.goto(ORIGIN + path)
    return page


@pytest.mark.browser
def test_swagger_ui_renders_the_operations_offline(browser: Browser, client: TestClient) -> None:
    blocked: list[str] = []
    page = opened(browser, client, "/docs", blocked)
    page.locator('.opblock-summary-path[data-path="/v1/events"]').first.wait_for(state="visible")
    assert page.locator(".opblock").count() >= 20
    assert page.locator(".errors-wrapper").count() == 0
    assert blocked == []
    page.context.close()
