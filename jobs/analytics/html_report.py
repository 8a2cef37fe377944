"""`checkout-age report html --date D`: one self-contained HTML page with the day's charts.

Inline CSS and inline SVG (`jobs.analytics.charts`), no scripts, no external resources, no face
images (the auditor table lists photo ids only). This module gathers the day's figures into plain
values; `templates/report.html.j2` lays them out, and Jinja2's autoescaping escapes every value.
The data comes through the query layer (`jobs.analytics.query`), so the page shows exactly what
`checkout-age query ... --from D` answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.analytics import charts
from jobs.analytics import query_sql as q
from jobs.analytics.query import DuckDBEngine, Engine, check_root, make_filters, run_query
from jobs.analytics.query_format import cell
from jobs.analytics.templating import render
from model.errors import UserError

MAX_CHART_CASHIERS = 30
MAX_FLAG_ROWS = 500
_PART_COLOURS = {"matched": "#1b7837", "unmatched": "#8fa5b8", "quarantined": "#e08214",
                 "valid": "#5aae61"}


@dataclass
class DayData:
    """Everything the page shows for one day; `missing` explains sections without data."""

    run_date: str
    quality: dict[str, Any]
    ages: list[dict] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    compliance: list[dict] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)
    reasons: list[dict] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def load_day(engine: Engine, run_date: str) -> DayData:
    """Read the day through the query layer; UserError when the day has no run_quality row."""
    filters = make_filters(run_date)
    quality = run_query(engine, "quality", filters).records()[0]
    data = DayData(filters.date_from.isoformat(), quality)
    loaders = {
        "ages": lambda: engine.run(q.age_distribution_query(filters)).records(),
        "segments": lambda: run_query(engine, "segments", filters).records(),
        "compliance": lambda: run_query(engine, "compliance", filters).records(),
        "flags": lambda: run_query(engine, "flags", filters).records(),
        "reasons": lambda: [
            r for table in ("photo_quarantine", "receipt_quarantine")
            for r in engine.run(q.quarantine_reasons_query(filters, table)).records()],
    }
    for name, load in loaders.items():
        try:
            setattr(data, name, load())
        except UserError as exc:
            data.missing[name] = str(exc)
    return data


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> dict:
    """A table for the template: `columns` [(title, numeric)], `rows` of formatted cells."""
    return {
        "columns": [(title, _numeric(rows, key)) for key, title in columns],
        "rows": [[cell(key, r[key]) for key, _ in columns] for r in rows],
    }


def _numeric(rows: list[dict], key: str) -> bool:
    return any(isinstance(r[key], int | float) and not isinstance(r[key], bool) for r in rows)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def _ages_section(data: DayData) -> dict:
    if "ages" in data.missing:
        return {"missing": data.missing["ages"]}
    stores: dict[str, dict[str, int]] = {}
    for r in data.ages:
        stores.setdefault(r["store_id"], {})[r["age_group"]] = r["photos"]
    chart = charts.stacked_shares(sorted(stores.items()), list(q.AGE_GROUP_NAMES),
                                  "Age distribution of scored photos per store") if stores else None
    return {"missing": None, "chart": chart}


def _lift_section(data: DayData, min_support: float) -> dict:
    if "segments" in data.missing:
        return {"missing": data.missing["segments"]}
    cells = {}
    for r in data.segments:
        lift = r["lift"]
        cells[(r["category"], r["age_group"])] = {
            "lift": lift,
            "muted": (r["support"] or 0) < min_support,
            "tip": f"{r['age_group']} / {r['category']}: lift "
                   f"{'-' if lift is None else f'{lift:.2f}'}; {r['receipts']} of "
                   f"{r['segment_receipts']} segment receipts; support {r['support'] or 0:.3f}",
        }
    categories = sorted({r["category"] for r in data.segments})
    groups = [g for g in q.AGE_GROUP_NAMES if any(r["age_group"] == g for r in data.segments)]
    return {"missing": None,
            "chart": charts.heatmap(categories, groups, cells, "Category lift by age group")}


def _compliance_section(data: DayData) -> dict:
    if "compliance" in data.missing:
        return {"missing": data.missing["compliance"]}
    rows = data.compliance
    totals = {k: sum(r[k] for r in rows) for k in
              ("receipts", "restricted_receipts", "with_photo", "flagged", "no_photo")}
    judged = [r for r in rows if r["with_photo"]][:MAX_CHART_CASHIERS]
    chart = charts.rate_bars(
        [(r["cashier_id"], r["flag_rate"],
          f"{r['flagged']} flagged of {r['with_photo']} with photo") for r in judged],
        "Flag rate by cashier", "flag rate = flagged / restricted sales with a matched photo",
    ) if judged else None
    columns = [("store_id", "store"), ("cashier_id", "cashier"), ("receipts", "receipts"),
               ("restricted_receipts", "restricted"), ("with_photo", "with photo"),
               ("flagged", "flagged"), ("flag_rate", "flag rate"), ("no_photo", "no photo")]
    rate = totals["flagged"] / totals["with_photo"] if totals["with_photo"] else None
    return {"missing": None, "totals": totals, "rate": _percent(rate), "chart": chart,
            "max_cashiers": MAX_CHART_CASHIERS, "table": _table(rows, columns)}


def _flags_section(data: DayData) -> dict:
    if "flags" in data.missing:
        return {"missing": data.missing["flags"]}
    columns = [("receipt_id", "receipt"), ("store_id", "store"), ("lane_id", "lane"),
               ("cashier_id", "cashier"), ("closed_at", "closed at (UTC)"),
               ("photo_id", "photo id"), ("age_pred_years", "predicted age (years)"),
               ("restricted_units", "restricted units"),
               ("restricted_revenue_rub", "restricted revenue (RUB)")]
    shown = data.flags[:MAX_FLAG_ROWS]
    return {"missing": None, "total": len(data.flags), "more": len(data.flags) - len(shown),
            "table": _table(shown, columns)}


def _quality_section(data: DayData) -> dict:
    qr = data.quality

    def parts(*names: tuple[str, str]) -> list[tuple[str, int, str]]:
        return [(label, int(qr[col] or 0), _PART_COLOURS[label]) for col, label in names]

    chart = charts.stacked_counts([
        ("photos", parts(("photos_matched", "matched"), ("photos_unmatched", "unmatched"),
                         ("photos_quarantined", "quarantined"))),
        ("receipts", parts(("receipts_matched", "matched"), ("receipts_unmatched", "unmatched"),
                           ("receipts_quarantined", "quarantined"))),
        ("lines", parts(("lines_valid", "valid"), ("lines_quarantined", "quarantined"))),
    ], "Run quality: photos, receipts and receipt lines")
    counts = json.loads(qr.get("age_group_counts") or "{}")
    return {
        "chart": chart,
        "match_rate": _percent(qr["match_rate"]),
        "window": qr["match_window_s"],
        "percentiles": " / ".join(cell("age_pred", qr[c]) for c in
                                  ("age_pred_p10", "age_pred_p50", "age_pred_p90")),
        "age_groups": ", ".join(f"{k}: {v:,}" for k, v in counts.items()),
        "reasons_missing": data.missing.get("reasons"),
        "reasons": _table(data.reasons, [("source", "source"), ("reason", "reason"),
                                         ("quarantined", "rows")]),
    }


def _kpis(data: DayData) -> list[tuple[str, str]]:
    """The headline figures: (value, label) pairs."""
    qr = data.quality
    flagged = sum(r["flagged"] for r in data.compliance)
    judged = sum(r["with_photo"] for r in data.compliance)
    return [(f"{qr['photos_scored']:,}", "photos scored"),
            (f"{qr['receipts_valid']:,}", "valid receipts"),
            (_percent(qr["match_rate"]), "receipts matched to a photo"),
            (f"{sum(r['restricted_receipts'] for r in data.compliance):,}", "restricted sales"),
            (f"{flagged:,}", f"flagged (predicted age < {qr.get('challenge_age')})"),
            (_percent(flagged / judged if judged else None), "flag rate (of those with photo)")]


def render_html(data: DayData, *, min_support: float, source: str) -> str:
    """The whole page as one string (pure: no I/O), from `templates/report.html.j2`."""
    return str(render(
        "report.html.j2",
        run_date=data.run_date, model=str(data.quality.get("model_version") or "unknown"),
        challenge=data.quality.get("challenge_age"), source=source, min_support=min_support,
        kpis=_kpis(data), ages=_ages_section(data), lift=_lift_section(data, min_support),
        compliance=_compliance_section(data), flags=_flags_section(data),
        quality=_quality_section(data),
    ))


def default_out(root: str, run_date: str) -> Path:
    """`ROOT/html/report-D.html` (a local root only)."""
    if "://" in root:
        raise UserError(f"data root {root} is not local: pass --out for the HTML file")
    return Path(root) / "html" / f"report-{run_date}.html"


def write_report(root: str | Path, run_date: str, out: str | Path | None = None, *,
                 min_support: float = 0.01) -> Path:
    """Render day `run_date` under `root` to `out` (default ROOT/html/report-D.html), atomically.

    Returns:
        The path written.
    """
    day = dt.date.isoformat(make_filters(run_date).date_from)
    checked = check_root(root)
    data = load_day(DuckDBEngine(checked), day)
    page = render_html(data, min_support=min_support, source=checked)
    target = Path(out) if out else default_out(checked, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
