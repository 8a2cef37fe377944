"""Inline SVG charts for the HTML report (no scripts, no fonts, no network).

Each chart function takes plain data, lays it out as shapes (rects, texts, grid lines, sized in
CSS pixels) and renders them through `templates/chart.svg.j2`, which escapes every piece of text.
Hover text comes from SVG `<title>` elements.
"""

from __future__ import annotations

import math

from markupsafe import Markup

from jobs.analytics.templating import render

# Viridis steps: ordered age groups read as an ordered colour ramp (and survive colour blindness).
SEQUENTIAL = ("#440154", "#443983", "#31688e", "#21918c", "#35b779", "#90d743", "#fde725")
LOW_SUPPORT = "url(#lowsupport)"  # the hatch pattern a chart declares with `hatch=True`
_BLUE, _RED = (33, 102, 172), (178, 24, 43)
_GREY, _DARK = "#555", "#333"

Shape = dict[str, object]


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str | None = None,
          stroke: str | None = None) -> Shape:
    return {"kind": "rect", "x": x, "y": y, "w": w, "h": h, "fill": fill, "tip": tip,
            "stroke": stroke}


def _text(x: float, y: float, text: object, anchor: str = "start", fill: str | None = None,
          weight: str | None = None) -> Shape:
    return {"kind": "text", "x": x, "y": y, "text": str(text), "anchor": anchor, "fill": fill,
            "weight": weight}


def _grid(xs: list[float], y1: float, y2: float) -> list[Shape]:
    """Vertical grid lines at `xs` from `y1` to `y2`."""
    return [{"kind": "line", "x": x, "y1": y1, "y2": y2} for x in xs]


def _svg(width: float, height: float, label: str, shapes: list[Shape],
         hatch: bool = False) -> Markup:
    return render("chart.svg.j2", width=width, height=height, label=label, shapes=shapes,
                  hatch=hatch)


def _legend(items: list[tuple[str, str]], x: float, y: float,
            width: float) -> tuple[list[Shape], float]:
    """Swatches with labels, wrapped to `width`; returns the shapes and the height used."""
    shapes: list[Shape] = []
    cx, cy = x, y
    for label, colour in items:
        step = 22 + 7.2 * len(label) + 14
        if cx + step > x + width and cx > x:
            cx, cy = x, cy + 18
        shapes += [_rect(cx, cy, 12, 12, colour), _text(cx + 17, cy + 10.5, label)]
        cx += step
    return shapes, cy - y + 18


def _percent_axis(left: float, plot: float, y: float, fracs: tuple[float, ...]) -> list[Shape]:
    """`0 %` ... `100 %` labels under a 0-1 axis."""
    return [_text(left + plot * f, y, f"{f * 100:.0f} %", "middle", _GREY) for f in fracs]


def stacked_shares(rows: list[tuple[str, dict[str, int]]], groups: list[str], label: str,
                   colours: tuple[str, ...] = SEQUENTIAL, width: int = 860) -> Markup:
    """One 100 % bar per row (e.g. store) split by group share; `n` printed at the right."""
    left, right, bar, gap = 70, 70, 14, 4
    legend, legend_h = _legend(
        [(g, colours[i % len(colours)]) for i, g in enumerate(groups)], left, 4, width - left)
    top = legend_h + 26
    plot = width - left - right
    bottom = top + len(rows) * (bar + gap)
    shapes = [*legend, _text(left, top - 8, "share of scored photos (0-100 %)", fill=_GREY),
              *_grid([left + plot * f for f in (0, 0.25, 0.5, 0.75, 1)], top, bottom)]
    for i, (name, counts) in enumerate(rows):
        y = top + i * (bar + gap)
        total = sum(counts.values())
        shapes.append(_text(left - 6, y + bar - 3, name, "end"))
        x = float(left)
        for j, group in enumerate(groups):
            count = counts.get(group, 0)
            if not total or not count:
                continue
            w = plot * count / total
            shapes.append(_rect(x, y, w, bar, colours[j % len(colours)],
                                f"{name} {group}: {count} photos ({100 * count / total:.1f} %)"))
            x += w
        shapes.append(_text(left + plot + 6, y + bar - 3, f"n={total:,}", fill=_GREY))
    height = bottom + 24
    return _svg(width, height, label,
                shapes + _percent_axis(left, plot, height - 6, (0, 0.5, 1)))


def lift_colour(lift: float | None) -> str:
    """Blue below 1, white at 1, red above (log2 scale, saturating at 1/4 and 4)."""
    if lift is None or lift <= 0:
        return "#eeeeee"
    t = max(-1.0, min(1.0, math.log2(lift) / 2))
    target = _RED if t > 0 else _BLUE
    mix = [round(255 + (c - 255) * abs(t)) for c in target]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def _heat_cell(x: float, y: float, w: int, h: int, row: str, col: str,
               cell: dict | None) -> list[Shape]:
    """One heatmap cell: its colour (hatched when muted or empty), hover text and lift figure."""
    lift = cell.get("lift") if cell else None
    muted = bool(cell and cell.get("muted"))
    fill = LOW_SUPPORT if muted or cell is None else lift_colour(lift)
    tip = cell["tip"] if cell else f"{row} / {col}: no receipts"
    shapes = [_rect(x, y, w - 2, h - 2, fill, tip)]
    if lift is not None:
        dark = not muted and abs(math.log2(max(lift, 1e-9))) > 1.2
        colour = "#fff" if dark else ("#888" if muted else "#111")
        shapes.append(_text(x + w / 2 - 1, y + h / 2 + 4, f"{lift:.2f}", "middle", colour))
    return shapes


def _lift_scale(left: float, y: float) -> tuple[list[Shape], float]:
    """The colour key under the heatmap; returns the shapes and the x where the key ends."""
    shapes = [_text(left, y + 10, "lift:", "end", _GREY)]
    for k, value in enumerate((0.25, 0.5, 0.75, 1, 1.5, 2, 4)):
        x = left + 8 + k * 56
        shapes += [_rect(x, y, 50, 14, lift_colour(value), stroke="#ccc"),
                   _text(x + 25, y + 28, f"{value:g}", "middle", _GREY)]
    x = left + 8 + 7 * 56 + 12
    shapes += [_rect(x, y, 50, 14, LOW_SUPPORT, stroke="#ccc"),
               _text(x + 56, y + 11, "support below the floor", fill=_GREY)]
    return shapes, x


def heatmap(rows: list[str], columns: list[str], cells: dict[tuple[str, str], dict],
            label: str, cell_w: int = 84, cell_h: int = 24) -> Markup:
    """Lift heatmap: `cells[(row, col)]` = {"lift", "muted", "tip"}; muted cells are hatched."""
    left, top = 130, 40
    width = left + cell_w * len(columns) + 20
    shapes = [_text(left + j * cell_w + cell_w / 2, top - 10, col, "middle", weight="600")
              for j, col in enumerate(columns)]
    for i, row in enumerate(rows):
        y = top + i * cell_h
        shapes.append(_text(left - 8, y + cell_h / 2 + 4, row, "end"))
        for j, col in enumerate(columns):
            shapes += _heat_cell(left + j * cell_w, y, cell_w, cell_h, row, col,
                                 cells.get((row, col)))
    y = top + len(rows) * cell_h + 16
    scale, x = _lift_scale(left, y)
    return _svg(max(width, x + 220), y + 40, label, shapes + scale, hatch=True)


def rate_bars(rows: list[tuple[str, float | None, str]], label: str, axis: str,
              width: int = 860, colour: str = "#b2182b") -> Markup:
    """Horizontal bars of a 0-1 rate per row with an annotation (e.g. `3 of 12`) to the right."""
    left, right, bar, gap, top = 130, 190, 14, 6, 22
    plot = width - left - right
    bottom = top + len(rows) * (bar + gap)
    shapes = [_text(left, 14, axis, fill=_GREY),
              *_grid([left + plot * f for f in (0, 0.25, 0.5, 0.75, 1)], top, bottom)]
    for i, (name, rate, note) in enumerate(rows):
        y = top + i * (bar + gap)
        shapes.append(_text(left - 6, y + bar - 3, name, "end"))
        if rate is not None:
            shapes.append(_rect(left, y, plot * rate, bar, colour, f"{name}: {note}"))
        shapes.append(_text(left + plot + 6, y + bar - 3, note, fill=_DARK))
    height = bottom + 22
    return _svg(width, height, label,
                shapes + _percent_axis(left, plot, height - 6, (0, 0.25, 0.5, 0.75, 1)))


def stacked_counts(rows: list[tuple[str, list[tuple[str, int, str]]]], label: str,
                   width: int = 860) -> Markup:
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
    shapes, legend_h = _legend(list(seen.items()), left, 4, plot)
    top = legend_h + 14
    for i, (name, parts) in enumerate(rows):
        y = top + i * (bar + gap)
        total = sum(count for _, count, _ in parts)
        shapes.append(_text(left - 8, y + bar - 7, name, "end", weight="600"))
        x = float(left)
        for part, count, colour in parts:
            w = plot * count / total if total else 0
            shapes.append(_rect(x, y, w, bar, colour, f"{name} {part}: {count:,}"))
            if w > 8 * len(f"{count:,}") + 8:
                shapes.append(_text(x + w / 2, y + bar - 7, f"{count:,}", "middle", "#fff"))
            x += w
        breakdown = ", ".join(f"{c:,} {p}" for p, c, _ in parts)
        shapes.append(_text(left, y + bar + 14, f"{total:,} in: {breakdown}", fill=_DARK))
    return _svg(width, top + len(rows) * (bar + gap) + 4, label, shapes)
