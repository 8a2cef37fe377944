"""Hand-built inline SVG charts for the HTML report (no scripts, no fonts, no network).

Each function takes plain data and returns one `<svg>` string sized in CSS pixels; every piece of
data text is escaped. Hover text comes from SVG `<title>` elements.
"""

from __future__ import annotations

import math
from html import escape

# Viridis steps: ordered age groups read as an ordered colour ramp (and survive colour blindness).
SEQUENTIAL = ("#440154", "#443983", "#31688e", "#21918c", "#35b779", "#90d743", "#fde725")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
_BLUE, _RED = (33, 102, 172), (178, 24, 43)


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" {FONT}>'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>'
            f"{escape(str(text))}</text>")


def _legend(items: list[tuple[str, str]], x: float, y: float, width: float) -> tuple[list, float]:
    """Swatches with labels, wrapped to `width`; returns the elements and the height used."""
    parts, cx, cy = [], x, y
    for label, colour in items:
        step = 22 + 7.2 * len(label) + 14
        if cx + step > x + width and cx > x:
            cx, cy = x, cy + 18
        parts.append(f'<rect x="{cx:.1f}" y="{cy:.1f}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(cx + 17, cy + 10.5, label))
        cx += step
    return parts, cy - y + 18


def stacked_shares(rows: list[tuple[str, dict[str, int]]], groups: list[str], label: str,
                   colours: tuple[str, ...] = SEQUENTIAL, width: int = 860) -> str:
    """One 100 % bar per row (e.g. store) split by group share; `n` printed at the right."""
    left, right, bar, gap = 70, 70, 14, 4
    legend, legend_h = _legend(
        [(g, colours[i % len(colours)]) for i, g in enumerate(groups)], left, 4, width - left)
    top = legend_h + 26
    plot = width - left - right
    body = [*legend, _text(left, top - 8, "share of scored photos (0-100 %)", extra='fill="#555"')]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        x = left + plot * frac
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                    f'y2="{top + len(rows) * (bar + gap)}" stroke="#ddd"/>')
    for i, (name, counts) in enumerate(rows):
        y = top + i * (bar + gap)
        total = sum(counts.values())
        body.append(_text(left - 6, y + bar - 3, name, "end"))
        x = float(left)
        for j, group in enumerate(groups):
            count = counts.get(group, 0)
            if not total or not count:
                continue
            w = plot * count / total
            body.append(
                f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar}" '
                f'fill="{colours[j % len(colours)]}"><title>{escape(name)} {escape(group)}: '
                f"{count} photos ({100 * count / total:.1f} %)</title></rect>")
            x += w
        body.append(_text(left + plot + 6, y + bar - 3, f"n={total:,}", extra='fill="#555"'))
    height = top + len(rows) * (bar + gap) + 24
    for frac in (0, 0.5, 1):
        body.append(_text(left + plot * frac, height - 6, f"{frac * 100:.0f} %", "middle",
                          'fill="#555"'))
    return _svg(width, height, label, body)


def lift_colour(lift: float | None) -> str:
    """Blue below 1, white at 1, red above (log2 scale, saturating at 1/4 and 4)."""
    if lift is None or lift <= 0:
        return "#eeeeee"
    t = max(-1.0, min(1.0, math.log2(lift) / 2))
    target = _RED if t > 0 else _BLUE
    mix = [round(255 + (c - 255) * abs(t)) for c in target]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def heatmap(rows: list[str], columns: list[str], cells: dict[tuple[str, str], dict],
            label: str, cell_w: int = 84, cell_h: int = 24) -> str:
    """Lift heatmap: `cells[(row, col)]` = {"lift", "muted", "tip"}; muted cells are hatched."""
    left, top = 130, 40
    width = left + cell_w * len(columns) + 20
    body = ['<defs><pattern id="lowsupport" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#ccc" stroke-width="2"/></pattern></defs>']
    for j, col in enumerate(columns):
        body.append(_text(left + j * cell_w + cell_w / 2, top - 10, col, "middle",
                          'font-weight="600"'))
    for i, row in enumerate(rows):
        y = top + i * cell_h
        body.append(_text(left - 8, y + cell_h / 2 + 4, row, "end"))
        for j, col in enumerate(columns):
            x = left + j * cell_w
            cell = cells.get((row, col))
            lift = cell.get("lift") if cell else None
            muted = bool(cell and cell.get("muted"))
            fill = "url(#lowsupport)" if muted or cell is None else lift_colour(lift)
            tip = escape(cell["tip"]) if cell else f"{escape(row)} / {escape(col)}: no receipts"
            body.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                        f'fill="{fill}"><title>{tip}</title></rect>')
            if lift is not None:
                dark = not muted and abs(math.log2(max(lift, 1e-9))) > 1.2
                colour = "#fff" if dark else ("#888" if muted else "#111")
                body.append(_text(x + cell_w / 2 - 1, y + cell_h / 2 + 4, f"{lift:.2f}",
                                  "middle", f'fill="{colour}"'))
    y = top + len(rows) * cell_h + 16
    body.append(_text(left, y + 10, "lift:", "end", 'fill="#555"'))
    for k, value in enumerate((0.25, 0.5, 0.75, 1, 1.5, 2, 4)):
        x = left + 8 + k * 56
        body.append(f'<rect x="{x}" y="{y}" width="50" height="14" fill="{lift_colour(value)}" '
                    'stroke="#ccc"/>')
        body.append(_text(x + 25, y + 28, f"{value:g}", "middle", 'fill="#555"'))
    x = left + 8 + 7 * 56 + 12
    body.append(f'<rect x="{x}" y="{y}" width="50" height="14" fill="url(#lowsupport)" '
                'stroke="#ccc"/>')
    body.append(_text(x + 56, y + 11, "support below the floor", extra='fill="#555"'))
    return _svg(max(width, x + 220), y + 40, label, body)


def rate_bars(rows: list[tuple[str, float | None, str]], label: str, axis: str,
              width: int = 860, colour: str = "#b2182b") -> str:
    """Horizontal bars of a 0-1 rate per row with an annotation (e.g. `3 of 12`) to the right."""
    left, right, bar, gap, top = 130, 190, 14, 6, 22
    plot = width - left - right
    body = [_text(left, 14, axis, extra='fill="#555"')]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        x = left + plot * frac
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                    f'y2="{top + len(rows) * (bar + gap)}" stroke="#ddd"/>')
    for i, (name, rate, note) in enumerate(rows):
        y = top + i * (bar + gap)
        body.append(_text(left - 6, y + bar - 3, name, "end"))
        if rate is not None:
            body.append(f'<rect x="{left}" y="{y}" width="{plot * rate:.2f}" height="{bar}" '
                        f'fill="{colour}"><title>{escape(name)}: {escape(note)}</title></rect>')
        body.append(_text(left + plot + 6, y + bar - 3, note, extra='fill="#333"'))
    height = top + len(rows) * (bar + gap) + 22
    for frac in (0, 0.25, 0.5, 0.75, 1):
        body.append(_text(left + plot * frac, height - 6, f"{frac * 100:.0f} %", "middle",
                          'fill="#555"'))
    return _svg(width, height, label, body)


def stacked_counts(rows: list[tuple[str, list[tuple[str, int, str]]]], label: str,
                   width: int = 860) -> str:
    """One full-width bar per row (photos, receipts, ...) split into named parts, total at right.

    Rows count different things, so each bar has its own scale; the exact numbers are in the
    line under each bar (thin parts have no room for theirs) and in the hover text.
    """
    left, right, bar, gap = 90, 20, 22, 30
    plot = width - left - right
    seen: dict[str, str] = {}
    for _, parts in rows:
        for name, _, colour in parts:
            seen.setdefault(name, colour)
    legend, legend_h = _legend(list(seen.items()), left, 4, plot)
    top = legend_h + 14
    body = list(legend)
    for i, (name, parts) in enumerate(rows):
        y = top + i * (bar + gap)
        total = sum(count for _, count, _ in parts)
        body.append(_text(left - 8, y + bar - 7, name, "end", 'font-weight="600"'))
        x = float(left)
        for part, count, colour in parts:
            w = plot * count / total if total else 0
            body.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar}" '
                        f'fill="{colour}"><title>{escape(name)} {escape(part)}: {count:,}'
                        "</title></rect>")
            if w > 8 * len(f"{count:,}") + 8:
                body.append(_text(x + w / 2, y + bar - 7, f"{count:,}", "middle",
                                  'fill="#fff"'))
            x += w
        breakdown = ", ".join(f"{c:,} {p}" for p, c, _ in parts)
        body.append(_text(left, y + bar + 14, f"{total:,} in: {breakdown}", extra='fill="#333"'))
    return _svg(width, top + len(rows) * (bar + gap) + 4, label, body)
