"""NPS by month with the response counts, drawn as SVG (no plotting library), and a self-contained HTML page."""

from __future__ import annotations

import html
import math
from typing import List, Optional, Sequence, Tuple

Month = Tuple[str, Optional[float], int]  # ("2026-01", NPS or None, responses)

WIDTH, HEIGHT = 760, 340
LEFT, RIGHT, TOP, BOTTOM = 56, 64, 44, 48


def _ticks(low: float, high: float, step: float) -> List[float]:
    return [low + i * step for i in range(int(round((high - low) / step)) + 1)]


def svg(months: Sequence[Month], title: str) -> str:
    """Bars: responses a month (right axis). Line: NPS (left axis). One <rect class="bar"> and, where the
    month has an NPS, one <circle class="nps"> a month."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    scores = [nps for _, nps, _ in months if nps is not None]
    low = min(0.0, math.floor(min(scores, default=0) / 20) * 20)
    high = max(20.0, math.ceil(max(scores, default=0) / 20) * 20)
    most = max([count for *_, count in months] + [1])
    step = 10 ** max(0, len(str(most)) - 1)
    top_count = math.ceil(most / step) * step
    slot = plot_w / max(len(months), 1)

    def y_nps(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    def y_count(value: float) -> float:
        return TOP + plot_h * (1 - value / top_count)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" role="img">',
           f"<title>{html.escape(title)}</title>",
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold" fill="#222">{html.escape(title)}</text>']
    for value in _ticks(low, high, 20):
        y = y_nps(value)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{"#888" if value == 0 else "#e4e4e4"}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#1f5fa8">{value:g}</text>')
    for value in _ticks(0, top_count, top_count / 4):
        out.append(f'<text x="{LEFT + plot_w + 6}" y="{y_count(value) + 4:.1f}" fill="#777">{value:g}</text>')
    out.append(f'<text x="14" y="{TOP + plot_h / 2:.0f}" fill="#1f5fa8" text-anchor="middle" '
               f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">NPS</text>')
    out.append(f'<text x="{WIDTH - 12}" y="{TOP + plot_h / 2:.0f}" fill="#777" text-anchor="middle" '
               f'transform="rotate(90 {WIDTH - 12} {TOP + plot_h / 2:.0f})">responses</text>')
    label_every = max(1, math.ceil(len(months) / 12))
    points = []
    for index, (month, nps, count) in enumerate(months):
        x = LEFT + slot * index
        bar_top = y_count(count)
        out.append(f'<rect class="bar" x="{x + slot * 0.15:.1f}" y="{bar_top:.1f}" width="{slot * 0.7:.1f}" '
                   f'height="{TOP + plot_h - bar_top:.1f}" fill="#d5dde8"><title>{month}: {count} responses'
                   f"</title></rect>")
        if index % label_every == 0 or index == len(months) - 1:
            out.append(f'<text x="{x + slot / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                       f'fill="#444">{month}</text>')
        if nps is not None:
            points.append((x + slot / 2, y_nps(nps), month, nps, count))
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, *_ in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
        for x, y, month, nps, count in points:
            out.append(f'<circle class="nps" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#1f5fa8">'
                       f"<title>{month}: NPS {nps:g} ({count} responses)</title></circle>")
        x, y, _, nps, _ = points[-1]
        out.append(f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" font-weight="bold" fill="#1f5fa8" '
                   f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{nps:g}</text>')
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 10}" fill="#777">Line: NPS (left axis). Bars: responses counted '
               "in NPS (right axis).</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def page(months: Sequence[Month], title: str, note: str = "") -> str:
    """A self-contained HTML page: the chart and the numbers under it."""
    rows = "\n".join(f"<tr><td>{month}</td><td>{'' if nps is None else f'{nps:g}'}</td><td>{count}</td></tr>"
                     for month, nps, count in months)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
            "td,th{padding:2px 12px;text-align:right;border-bottom:1px solid #eee}</style></head><body>\n"
            f"{svg(months, title)}<p>{html.escape(note)}</p>\n"
            f"<table><tr><th>month</th><th>NPS</th><th>responses</th></tr>\n{rows}\n</table>\n</body></html>\n")
