"""Spend over time as a stacked bar chart in server-side SVG: axes with tick labels, a legend,
and a hover value on every bar segment (an SVG <title>, which browsers show as a tooltip), so
the page needs no script and no charting asset."""

from __future__ import annotations

import math
from datetime import date, datetime
from html import escape

from gateway.api.usage_page.format import money, tick_money
from gateway.api.usage_page.views import Series

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899",
           "#6b7280")
WIDTH, HEIGHT = 1040, 300
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 12, 56  # room for tick labels and the legend
MAX_X_LABELS = 12


def nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 x 10^n) so that `ticks` steps cover `top`."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return 10.0 * magnitude


def point_label(point: datetime | date, hourly: bool) -> str:
    if hourly and isinstance(point, datetime):
        return f"{point:%H}:00" if point.hour else f"{point:%m-%d}"
    return f"{point:%m-%d}"


def point_title(point: datetime | date) -> str:
    return f"{point:%Y-%m-%d %H}:00" if isinstance(point, datetime) else point.isoformat()


def spend_chart(data: Series, by: str, hourly: bool) -> str:
    names = list(data.values)
    count = len(data.points)
    stacked = [sum(data.values[n][i] for n in names) for i in range(count)]
    step = nice_step(max(stacked, default=0.0))
    top = step * max(1, math.ceil(max(stacked, default=0.0) / step - 1e-9))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(count, 1)
    bar = max(1.0, slot * 0.72)
    out = [f'<svg id="spend-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="{WIDTH}" height="{HEIGHT}" role="img" '
           f'aria-label="Spend over time by {escape(by)}" data-by="{escape(by)}">']
    # y axis: gridlines and dollar ticks
    ticks = round(top / step)
    for t in range(ticks + 1):
        value = t * step
        y = TOP + plot_h - plot_h * value / top
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="tick y" x="{LEFT - 6}" y="{y + 3:.1f}" '
                   f'text-anchor="end">{escape(tick_money(value, step))}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" '
               f'y2="{TOP + plot_h}"/><line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
               f'y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    every = max(1, math.ceil(count / MAX_X_LABELS))
    for i, point in enumerate(data.points):
        x = LEFT + i * slot + (slot - bar) / 2
        total = stacked[i]
        requests = sum(data.requests[n][i] for n in names)
        out.append(f'<g class="point"><title>{escape(point_title(point))}: '
                   f'{escape(money(total))}, {requests:,} requests</title>'
                   f'<rect class="hit" x="{LEFT + i * slot:.1f}" y="{TOP}" '
                   f'width="{slot:.1f}" height="{plot_h}"/>')
        base = float(TOP + plot_h)
        for k, name in enumerate(names):
            value = data.values[name][i]
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            out.append(f'<rect class="seg" data-series="{escape(name)}" '
                       f'data-value="{value:.10g}" x="{x:.1f}" y="{base:.2f}" '
                       f'width="{bar:.1f}" height="{h:.2f}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f'<title>{escape(point_title(point))} · {escape(name)}: '
                       f'{escape(money(value))} ({data.requests[name][i]:,} requests)</title>'
                       "</rect>")
        out.append("</g>")
        if i % every == 0:
            out.append(f'<text class="tick x" x="{x + bar / 2:.1f}" y="{TOP + plot_h + 14}" '
                       f'text-anchor="middle">{escape(point_label(point, hourly))}</text>')
    # legend, under the x axis
    x = float(LEFT)
    y = HEIGHT - 14
    for k, name in enumerate(names):
        total = sum(data.values[name])
        label = f"{name} {money(total)}"
        out.append(f'<g class="legend" data-series="{escape(name)}">'
                   f'<rect x="{x}" y="{y - 9}" width="10" height="10" '
                   f'fill="{PALETTE[k % len(PALETTE)]}"/>'
                   f'<text x="{x + 14}" y="{y}">{escape(label)}</text></g>')
        x += 24 + 7 * len(label)
    if not names:
        out.append(f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
                   'text-anchor="middle">No spend in this period</text>')
    out.append("</svg>")
    return "".join(out)
