"""report.html: one self-contained page, Chinese first, showing the figures of metrics.json."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest

from livecoupon.analytics.charts import interval_chart
from livecoupon.analytics.metrics import campaign_metrics, orders_of
from livecoupon.analytics.report import render_report
from livecoupon.campaign_file import parse_campaign
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import Event
from livecoupon.engine.recordings import read_events
from livecoupon.engine.replay import replay
from livecoupon.sim.audience import Broadcast

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
START = 1_700_000_000
WHEN = dt.datetime(2024, 11, 11, 20, 0, tzinfo=dt.UTC)


class Page(HTMLParser):
    """Headings, tables (under the heading they follow) and every attribute of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.attributes: list[tuple[str, str, str | None]] = []
        self.texts: list[tuple[dict[str, str | None], str]] = []  # svg <text> elements
        self._heading: str | None = None
        self._under = ""
        self._cell: list[str] | None = None
        self._svg_text: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes.extend((tag, k, v) for k, v in attrs)
        if tag in ("h1", "h2", "h3"):
            self._heading = ""
        elif tag == "table":
            self.tables.setdefault(self._under, []).append([])
        elif tag == "tr":
            self.tables[self._under][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "text":
            self._svg_text = dict(attrs)
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append((tag, self._heading.strip()))
            if tag == "h2":
                self._under = self._heading.strip()
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._under][-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "text" and self._svg_text is not None and self._cell is not None:
            self.texts.append((self._svg_text, "".join(self._cell)))
            self._svg_text, self._cell = None, None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)

    def table(self, heading_starts: str) -> list[list[str]]:
        under = next(h for h in self.tables if h.startswith(heading_starts))
        return self.tables[under][0]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return parse_campaign(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recorded(campaign: Campaign) -> tuple[list[DecisionRecord], list[Event]]:
    """A simulated broadcast replayed through the example campaign, and orders redeeming some coupons."""
    broadcast = Broadcast("room-1", 600, 20, 42)
    stream = [e for s in range(broadcast.seconds) for e in broadcast.events_at(s, START + s)]
    lines = [json.dumps(e, ensure_ascii=False) for e in stream]
    decisions = [d.record() for d in replay(campaign, lines).decisions]
    orders = []
    for i, d in enumerate(d for d in decisions if d.issued):
        if i % 3 == 0:
            orders.append({"type": "order", "room": d.room, "ts": d.at / 1000 + 60, "user": d.user,
                           "order_id": f"o{i}", "amount": 120 + i % 50, "coupon_id": d.coupon_id})
    for i, d in enumerate(d for d in decisions if d.variant == "control"):
        if i % 4 == 0:
            orders.append({"type": "order", "room": d.room, "ts": d.at / 1000 + 90, "user": d.user,
                           "order_id": f"c{i}", "amount": 99 + i % 30})
    events, rejected = read_events([json.dumps(e, ensure_ascii=False) for e in stream + orders])
    assert not rejected
    return decisions, events


def render(campaign: Campaign, recorded: tuple[list[DecisionRecord], list[Event]], *, simulated: bool) -> str:
    decisions, events = recorded
    metrics = campaign_metrics(campaign, decisions, events)
    return render_report(campaign, metrics, decisions, orders_of(events, campaign), simulated=simulated,
                         generated_at=WHEN)


@pytest.fixture(scope="module")
def html(campaign: Campaign, recorded: tuple[list[DecisionRecord], list[Event]]) -> str:
    return render(campaign, recorded, simulated=True)


def test_the_scenario_exercises_the_report(recorded: tuple[list[DecisionRecord], list[Event]]) -> None:
    decisions, events = recorded
    assert sum(d.issued for d in decisions) > 100
    assert {d.variant for d in decisions if d.variant} == {"control", "ten", "twenty", "policy"}
    assert sum(e.type == "order" for e in events) > 30


def test_report_is_self_contained(html: str) -> None:
    assert html.startswith("<!doctype html>")
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"<link\b", html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html
    for tag, name, value in parse(html).attributes:
        if name in ("src", "href", "xlink:href"):
            assert value is not None and value.startswith(("#", "data:")), (tag, name, value)


def _is_cjk(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH")


def test_headings_are_chinese_first(html: str) -> None:
    page = parse(html)
    h2 = [text for tag, text in page.headings if tag == "h2"]
    assert any(t.startswith("关键数据指标分析表") for t in h2)
    assert any(t.startswith("常见触发逻辑示例") for t in h2)
    for tag, text in page.headings:
        if tag == "h3":
            continue  # experiment names, as the operator wrote them
        first = next(ch for ch in text if ch.isalpha())
        assert _is_cjk(first), (tag, text)


def test_report_is_labelled_simulated_only_when_it_is(campaign: Campaign, html: str,
                                                      recorded: tuple[list[DecisionRecord], list[Event]]) -> None:
    assert "模拟数据" in html and "simulated data" in html
    real = render(campaign, recorded, simulated=False)
    assert "模拟数据" not in real and "simulated data" not in real


def test_every_trigger_is_in_the_key_metrics_and_the_trigger_logic_tables(campaign: Campaign, html: str) -> None:
    page = parse(html)
    names = [t.name for t in campaign.triggers]
    assert len(names) == 8
    key_metrics = page.table("关键数据指标分析表")
    assert [row[0] for row in key_metrics[1:]] == names
    logic = page.table("常见触发逻辑示例")
    assert [row[1] for row in logic[1:]] == names
    for row in logic[1:]:
        assert all(cell for cell in row)  # when, condition, audience and coupon all spelt out


def test_key_metrics_table_shows_the_metrics_json_figures(campaign: Campaign, html: str,
                                                          recorded: tuple[list[DecisionRecord], list[Event]]) -> None:
    decisions, events = recorded
    triggers = campaign_metrics(campaign, decisions, events)["triggers"]
    rows = {row[0]: row for row in parse(html).table("关键数据指标分析表")[1:]}
    for name, m in triggers.items():
        row = rows[name]
        assert [int(c.replace(",", "")) for c in (row[1], row[2], row[3], row[5])] == [
            m["decisions"], m["issued"], m["redeemed"], m["orders"]]
        assert float(row[6].replace(",", "")) == pytest.approx(m["gmv"])
        assert float(row[8].replace(",", "")) == pytest.approx(m["discount_cost"])
    assert any(int(rows[n][3]) > 0 for n in triggers)  # the scenario redeemed something


def test_report_renders_experiments_too_small_to_test(campaign: Campaign) -> None:
    log = [DecisionRecord("a", "room-1", START * 1000, "dwell", "u1", START * 1000, None, None, None,
                          "dwell-value", "control"),
           DecisionRecord("b", "room-1", START * 1000, "dwell", "u2", START * 1000, "dwell10", None,
                          START * 1000 + 900_000, "dwell-value", "ten")]
    metrics = campaign_metrics(campaign, log, [])
    html = render_report(campaign, metrics, log, [], generated_at=WHEN)
    assert "dwell-value" in html
    assert metrics["experiments"]["dwell-value"]["variants"]["ten"]["lift"]["conversion"]["p_value"] is None
    rows = {row[0]: row for row in parse(html).table("分组实验")[1:]}
    assert rows["twenty"][2] == "0" and rows["twenty"][4] == "—" and rows["twenty"][6] == "—"  # no one exposed
    nothing = render_report(campaign, campaign_metrics(campaign, [], []), [], [], generated_at=WHEN)
    assert "SRM p = — · 暂无数据 no data yet" in nothing and "分流正常" not in nothing  # no one to judge the split by


def test_an_experiments_lift_reads_in_percentage_points(html: str) -> None:
    """A difference of two conversion rates (20.3 % against 39.9 % is +19.6), not a % a reader takes as relative."""
    page = parse(html)
    under = next(h for h in page.tables if h.startswith("分组实验"))
    cells = [row[7] for table in page.tables[under] for row in table[1:] if row[7] != "—"]
    assert cells and all(cell.count(" pp") == 3 and "%" not in cell for cell in cells)


# --- the interval chart keeps its value labels inside the picture ---------------------------------------------------

CHAR_PX = 0.6 * 11  # a digit, sign or bracket of the 11 px label is at most ~0.6 em wide


@pytest.mark.parametrize("intervals", [
    [(0.0123, -0.0456, 0.0702), (0.2345, 0.1234, 0.3456)],
    [(-0.1234, -1.2345, 0.9876)],
    [(12.3456, 10.0, 14.5)],
])
def test_interval_chart_value_labels_fit_inside_the_svg(intervals: list[tuple[float, float, float]]) -> None:
    svg = interval_chart([f"variant-{i}" for i in range(len(intervals))], intervals, title="lift")
    width = float(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))  # type: ignore[union-attr]
    labels = [(attrs, text) for attrs, text in parse(svg).texts if attrs.get("class") == "small"]
    assert len(labels) == len(intervals)
    ends = []
    for (attrs, text), (mid, low, high) in zip(labels, intervals, strict=True):
        assert text == f"{mid:+.1%} [{low:+.1%}, {high:+.1%}]"
        start = float(attrs["x"] or 0)
        assert start + len(text) * CHAR_PX <= width, (text, start, width)
        ends.append(start)
    for cx in re.findall(r'<circle cx="([\d.]+)"', svg):
        assert 150 <= float(cx) < min(ends) - 5  # points stay between the names and the labels
    for x1, x2 in re.findall(r'<line x1="([\d.]+)" y1="\d+" x2="([\d.]+)" y2="\d+" stroke="#(?!999)', svg):
        assert 150 <= float(x1) <= float(x2) < min(ends)


def test_interval_chart_of_no_variants_says_so() -> None:
    assert "暂无数据" in interval_chart([], [], title="lift")
