"""`checkout-age report html --date D`: one self-contained HTML page with the day's charts.

Inline CSS and inline SVG (`jobs.analytics.charts`), no scripts, no external resources, no face images (the
auditor table lists photo ids only). Every data value is escaped. The data comes through the query
layer (`jobs.analytics.query`), so the page shows exactly what `checkout-age query ... --from D` answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from jobs.analytics import charts
from jobs.analytics import query_sql as q
from jobs.analytics.query import DuckDBEngine, Engine, check_root, make_filters, run_query
from jobs.analytics.query_format import cell
from model.errors import UserError

MAX_CHART_CASHIERS = 30
MAX_FLAG_ROWS = 500
_PART_COLOURS = {"matched": "#1b7837", "unmatched": "#8fa5b8", "quarantined": "#e08214",
                 "valid": "#5aae61"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
main{max-width:940px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 6px}
.meta{color:#555;margin:0 0 16px}.meta b{color:#1d1d1f}
section{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:16px 18px;margin:16px 0}
.caveat{background:#fff8e1;border:1px solid #f0d48a;border-radius:8px;padding:10px 14px}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.kpi{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:20px}.kpi span{color:#555;font-size:12px}
.note{color:#555;font-size:13px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.missing{color:#8a5a00}svg{max-width:100%;height:auto}
"""


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


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(
        f'<th class="{"n" if _numeric(rows, key) else ""}">{escape(title)}</th>'
        for key, title in columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"n" if _numeric(rows, key) else ""}">{escape(cell(key, r[key]))}</td>'
            for key, _ in columns) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric(rows: list[dict], key: str) -> bool:
    return any(isinstance(r[key], int | float) and not isinstance(r[key], bool) for r in rows)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def _missing(data: DayData, name: str) -> str:
    return f'<p class="missing">No data: {escape(data.missing[name])}</p>'


def _ages_section(data: DayData) -> str:
    if "ages" in data.missing:
        return _missing(data, "ages")
    stores: dict[str, dict[str, int]] = {}
    for r in data.ages:
        stores.setdefault(r["store_id"], {})[r["age_group"]] = r["photos"]
    if not stores:
        return '<p class="missing">No scored photos this day.</p>'
    return charts.stacked_shares(sorted(stores.items()), list(q.AGE_GROUP_NAMES),
                                 "Age distribution of scored photos per store")


def _lift_section(data: DayData, min_support: float) -> str:
    if "segments" in data.missing:
        return _missing(data, "segments")
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
    return charts.heatmap(categories, groups, cells, "Category lift by age group")


def _compliance_section(data: DayData) -> str:
    if "compliance" in data.missing:
        return _missing(data, "compliance")
    rows = data.compliance
    totals = {k: sum(r[k] for r in rows) for k in
              ("receipts", "restricted_receipts", "with_photo", "flagged", "no_photo")}
    rate = totals["flagged"] / totals["with_photo"] if totals["with_photo"] else None
    judged = [r for r in rows if r["with_photo"]][:MAX_CHART_CASHIERS]
    chart = charts.rate_bars(
        [(r["cashier_id"], r["flag_rate"],
          f"{r['flagged']} flagged of {r['with_photo']} with photo") for r in judged],
        "Flag rate by cashier", "flag rate = flagged / restricted sales with a matched photo",
    ) if judged else '<p class="note">No restricted sale had a matched photo this day.</p>'
    columns = [("store_id", "store"), ("cashier_id", "cashier"), ("receipts", "receipts"),
               ("restricted_receipts", "restricted"), ("with_photo", "with photo"),
               ("flagged", "flagged"), ("flag_rate", "flag rate"), ("no_photo", "no photo")]
    return (
        f'<p class="note">Chain: {totals["restricted_receipts"]:,} restricted sales, '
        f'{totals["with_photo"]:,} with a matched photo, {totals["flagged"]:,} flagged '
        f'(rate {_percent(rate)}), {totals["no_photo"]:,} without a photo '
        f"(not judged). Chart: up to {MAX_CHART_CASHIERS} cashiers, most flagged first.</p>"
        f"{chart}<details><summary>All {len(rows)} cashiers</summary>"
        f"{_table(rows, columns)}</details>"
    )


def _flags_section(data: DayData) -> str:
    if "flags" in data.missing:
        return _missing(data, "flags")
    if not data.flags:
        return '<p class="note">No flagged sales this day.</p>'
    columns = [("receipt_id", "receipt"), ("store_id", "store"), ("lane_id", "lane"),
               ("cashier_id", "cashier"), ("closed_at", "closed at (UTC)"),
               ("photo_id", "photo id"), ("age_pred_years", "predicted age (years)"),
               ("restricted_units", "restricted units"),
               ("restricted_revenue_rub", "restricted revenue (RUB)")]
    shown = data.flags[:MAX_FLAG_ROWS]
    more = len(data.flags) - len(shown)
    extra = f'<p class="note">{more} more: use `checkout-age query flags`.</p>' if more else ""
    return f"<details><summary>{len(data.flags)} flagged receipts</summary>" \
           f"{_table(shown, columns)}{extra}</details>"


def _quality_section(data: DayData) -> str:
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
    ages = ", ".join(f"{escape(k)}: {v:,}" for k, v in counts.items())
    pct = " / ".join(cell("age_pred", qr[c]) for c in
                     ("age_pred_p10", "age_pred_p50", "age_pred_p90"))
    reasons = (_missing(data, "reasons") if "reasons" in data.missing else
               _table(data.reasons, [("source", "source"), ("reason", "reason"),
                                     ("quarantined", "rows")]) if data.reasons else
               '<p class="note">Nothing quarantined.</p>')
    return (f"{chart}<p class=\"note\">Match rate {_percent(qr['match_rate'])}"
            f" (matched / valid receipts, window {escape(str(qr['match_window_s']))} s). "
            f"Predicted age p10 / p50 / p90: {escape(pct)} years. Photos per age group: "
            f"{ages or '-'}.</p><h3>Quarantine reasons</h3>{reasons}")


def render_html(data: DayData, *, min_support: float, source: str) -> str:
    """The whole page as one string (pure: no I/O)."""
    qr = data.quality
    model = str(qr.get("model_version") or "unknown")
    challenge = qr.get("challenge_age")
    flagged = sum(r["flagged"] for r in data.compliance)
    judged = sum(r["with_photo"] for r in data.compliance)
    kpis = [(f"{qr['photos_scored']:,}", "photos scored"),
            (f"{qr['receipts_valid']:,}", "valid receipts"),
            (_percent(qr["match_rate"]), "receipts matched to a photo"),
            (f"{sum(r['restricted_receipts'] for r in data.compliance):,}", "restricted sales"),
            (f"{flagged:,}", f"flagged (predicted age < {challenge})"),
            (_percent(flagged / judged if judged else None), "flag rate (of those with photo)")]
    sections = [
        ("Age distribution per store",
         "Share of the day's scored photos in each age group, per store (n = photos).",
         _ages_section(data)),
        ("Category lift by age group",
         f"Lift = P(category | age group) / P(category) over the day's matched receipts, all "
         f"stores. Above 1: the group buys the category more than average. Hatched: support "
         f"below {min_support:g} (too few receipts to trust).", _lift_section(data, min_support)),
        ("Compliance by cashier",
         f"Restricted sales (alcohol, tobacco) whose matched photo's predicted age is under "
         f"{challenge} (Challenge {challenge}) are flagged.", _compliance_section(data)),
        ("Flagged receipts (for auditors)",
         "Receipt and photo ids only; the photos stay in the landing zone.", _flags_section(data)),
        ("Run quality", "Where every photo, receipt and line of the day went.",
         _quality_section(data)),
    ]
    body = "".join(
        f"<section><h2>{escape(title)}</h2><p class=\"note\">{escape(note)}</p>{content}"
        "</section>" for title, note, content in sections)
    kpi_html = "".join(f'<div class="kpi"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                       for v, k in kpis)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>Checkout age report {escape(data.run_date)}</title><style>{_CSS}</style>"
        f"</head><body><main><h1>Checkout age report: {escape(data.run_date)}</h1>"
        f'<p class="meta">Model <b>{escape(model)}</b> · challenge age <b>{escape(str(challenge))}'
        f"</b> · data from <b>{escape(source)}</b> · times in UTC</p>"
        '<p class="caveat"><b>A flag is a screening signal, not proof.</b> It means "this sale '
        "deserves a look\": ages are estimated from a photo with an error of several years, "
        "so a flag is not evidence of a sale to a minor. No face images are included in this "
        f"report.</p><div class=\"kpis\">{kpi_html}</div>{body}"
        f'<p class="note">Generated for {escape(data.run_date)} from the report tables '
        "(docs/data-contract.md).</p></main></body></html>\n"
    )


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
