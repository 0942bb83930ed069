"""Inline SVG charts for the offline report: no script, no network, prints well."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

SMALL_CHAR_W = 7  # px a digit or sign of the 11 px ``small`` text needs, with some slack

PALETTE = ("#e4393c", "#ff8c1a", "#2f7ed8", "#3aa757", "#8e44ad", "#16a2b8", "#c0392b", "#7f8c8d")


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, fmt: str = "{:.1%}",
              width: int = 640, bar_height: int = 26) -> str:
    """Horizontal bars, one per label, each value written at the bar's end."""
    if not labels:
        return f'<p class="empty">{escape(title)}: 暂无数据 / no data</p>'
    label_w, pad = 150, 8
    top = max(values) or 1.0
    height = len(labels) * (bar_height + pad) + 34
    rows = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
            f'<text x="0" y="16" class="chart-title">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 28 + i * (bar_height + pad)
        w = max(1.0, (width - label_w - 90) * value / top)
        rows.append(f'<text x="{label_w - 6}" y="{y + bar_height * 0.68:.1f}" text-anchor="end">{escape(label)}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" rx="3" '
                    f'fill="{PALETTE[i % len(PALETTE)]}"/>'
                    f'<text x="{label_w + w + 6:.1f}" y="{y + bar_height * 0.68:.1f}">'
                    f'{escape(fmt.format(value))}</text>')
    rows.append("</svg>")
    return "".join(rows)


def column_chart(labels: Sequence[str], values: Sequence[float], *, title: str, fmt: str = "{:.1%}",
                 width: int = 640, height: int = 240) -> str:
    """Vertical columns over an x axis of labels (time buckets, face values)."""
    if not labels:
        return f'<p class="empty">{escape(title)}: 暂无数据 / no data</p>'
    top = max(values) or 1.0
    plot_h, base = height - 70, height - 30
    step = (width - 40) / len(labels)
    col_w = max(4.0, step * 0.6)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
             f'<line x1="20" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#999"/>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top
        x = 30 + i * step
        parts.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{col_w:.1f}" height="{h:.1f}" rx="2" '
                     f'fill="{PALETTE[2]}"/>'
                     f'<text x="{x + col_w / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle" class="small">'
                     f'{escape(fmt.format(value))}</text>'
                     f'<text x="{x + col_w / 2:.1f}" y="{base + 16}" text-anchor="middle" class="small">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def interval_chart(labels: Sequence[str], intervals: Sequence[tuple[float, float, float]], *, title: str,
                   fmt: str = "{:+.1%}", width: int = 640) -> str:
    """Point estimates with 95% intervals around a zero line (experiment lifts)."""
    if not labels:
        return f'<p class="empty">{escape(title)}: 暂无数据 / no data</p>'
    lo = min(min(i[1] for i in intervals), 0.0)
    hi = max(max(i[2] for i in intervals), 0.0)
    span = (hi - lo) or 1.0
    values = [f"{fmt.format(mid)} [{fmt.format(low)}, {fmt.format(high)}]" for mid, low, high in intervals]
    label_w, right = 150, width - 8 - SMALL_CHAR_W * max(len(v) for v in values) - 8
    height = 40 + len(labels) * 34

    def x(v: float) -> float:
        return label_w + (right - label_w) * (v - lo) / span

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
             f'<line x1="{x(0):.1f}" y1="24" x2="{x(0):.1f}" y2="{height - 6}" stroke="#999" stroke-dasharray="4 3"/>']
    for i, (label, (mid, low, high), value) in enumerate(zip(labels, intervals, values, strict=True)):
        y = 40 + i * 34
        colour = PALETTE[3] if low > 0 else (PALETTE[0] if high < 0 else PALETTE[7])
        parts.append(f'<text x="{label_w - 8}" y="{y + 5}" text-anchor="end">{escape(label)}</text>'
                     f'<line x1="{x(low):.1f}" y1="{y}" x2="{x(high):.1f}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="3"/><circle cx="{x(mid):.1f}" cy="{y}" r="5" fill="{colour}"/>'
                     f'<text x="{right + 8}" y="{y + 5}" class="small">{escape(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)
