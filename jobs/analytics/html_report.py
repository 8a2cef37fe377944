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
from jobs.analytics.policy_note import model_policy_curve, policy_statement
from jobs.analytics.query import DuckDBEngine, Engine, check_root, make_filters, run_query
from jobs.analytics.query_format import cell
from jobs.analytics.templating import render
from jobs.daily.minimise import Minimised, read_minimised
from model.config import Settings, load_settings
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
    lanes: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def load_day(engine: Engine, run_date: str, *, likely_p: float = Settings.likely_minor_p,
             possible_p: float = Settings.possible_minor_p) -> DayData:
    """Read the day through the query layer; UserError when the day has no run_quality row.

    `likely_p` / `possible_p` are the flags' "minor" tier thresholds (settings). Lanes are read
    only on a day with frames (run_quality `no_face_rate` set): days of crops, or days scored
    before face detection, have no face columns to read.
    """
    filters = make_filters(run_date)
    quality = run_query(engine, "quality", filters).records()[0]
    data = DayData(filters.date_from.isoformat(), quality)
    loaders = {
        "ages": lambda: engine.run(q.age_distribution_query(filters)).records(),
        "segments": lambda: run_query(engine, "segments", filters).records(),
        "compliance": lambda: run_query(engine, "compliance", filters).records(),
        "flags": lambda: run_query(engine, "flags", filters, likely_p=likely_p,
                                   possible_p=possible_p).records(),
        "lanes": lambda: (engine.run(q.lane_quality_query(filters)).records()
                          if quality.get("no_face_rate") is not None else []),
        "drift": lambda: engine.run(q.drift_query(filters)).records(),
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


def _table(rows: list[dict], columns: list[tuple[str, str]],
           formats: dict[str, Any] | None = None) -> dict:
    """A table for the template: `columns` [(title, numeric)], `rows` of formatted cells.

    `formats` maps a column to its own cell function (value -> str or a badge dict).
    """
    formats = formats or {}
    return {
        "columns": [(title, _numeric(rows, key)) for key, title in columns],
        "rows": [[formats[key](r[key]) if key in formats else cell(key, r[key])
                  for key, _ in columns] for r in rows],
    }


def _numeric(rows: list[dict], key: str) -> bool:
    return any(isinstance(r[key], int | float) and not isinstance(r[key], bool) for r in rows)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f} %"


def _decimals(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _expected(rows: list[dict]) -> tuple[float, int]:
    """Expected sales to minors (NULLs ignored) and the sales with a probability (summed)."""
    return (sum(r["expected_minor_sales"] or 0.0 for r in rows),
            sum(r["with_probability"] or 0 for r in rows))


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
    columns = [("store_id", "store"), ("cashier_id", "cashier"),
               ("restricted_receipts", "restricted"), ("with_photo", "with photo"),
               ("flagged", "flagged"), ("flag_rate", "flag rate"),
               ("expected_minor_sales", "expected sales to minors"),
               ("with_probability", "with a probability"),
               ("expected_minor_share", "expected minor share"), ("no_photo", "no photo")]
    rate = totals["flagged"] / totals["with_photo"] if totals["with_photo"] else None
    expected, with_p = _expected(rows)
    return {"missing": None, "totals": totals, "rate": _percent(rate), "chart": chart,
            "expected": _decimals(expected) if with_p else "n/a", "with_probability": with_p,
            "max_cashiers": MAX_CHART_CASHIERS,
            "table": _table(rows, columns, {"expected_minor_sales": _decimals,
                                            "expected_minor_share": _percent})}


def _tier_legend(flags: list[dict], likely_p: float, possible_p: float) -> list[dict]:
    """Each minor tier with its rule and the day's count of flags in it."""
    rules = (f"p ≥ {_percent(likely_p)}", f"{_percent(possible_p)} ≤ p < {_percent(likely_p)}",
             f"p < {_percent(possible_p)}", "no probability")
    return [{"tier": tier, "badge": _badge_class(tier), "rule": rule,
             "count": sum(f["minor_tier"] == tier for f in flags)}
            for tier, rule in zip(q.MINOR_TIERS, rules, strict=True)]


def _badge_class(tier: str) -> str:
    return "tier-" + tier.replace(" ", "-")


def _flags_section(data: DayData, likely_p: float, possible_p: float) -> dict:
    if "flags" in data.missing:
        return {"missing": data.missing["flags"]}
    columns = [("minor_tier", "tier"), ("p_under_legal_age", "P(under 18)"),
               ("age_pred_years", "predicted age (years)"), ("receipt_id", "receipt"),
               ("store_id", "store"), ("lane_id", "lane"), ("cashier_id", "cashier"),
               ("closed_at", "closed at (UTC)"), ("photo_id", "photo id"),
               ("restricted_units", "restricted units"),
               ("restricted_revenue_rub", "restricted revenue (RUB)")]
    shown = data.flags[:MAX_FLAG_ROWS]
    formats = {"minor_tier": lambda t: {"text": t, "badge": _badge_class(t)},
               "p_under_legal_age": _percent}
    return {"missing": None, "total": len(data.flags), "more": len(data.flags) - len(shown),
            "legend": _tier_legend(data.flags, likely_p, possible_p),
            "table": _table(shown, columns, formats)}


def _calibration_note(data: DayData) -> str | None:
    """Why probabilities are missing, if they are (the model had no calibration table)."""
    if "flags" in data.missing or "compliance" in data.missing:
        return None
    unknown = sum(f["p_under_legal_age"] is None for f in data.flags)
    if unknown == len(data.flags) and _expected(data.compliance)[1] == 0:
        model = data.quality.get("model_version") or "unknown"
        return (f"Model {model} has no calibration table: probabilities and expected counts are "
                "unavailable; flags are Challenge-25 only (`checkout-age model calibrate`).")
    if unknown:
        return (f"{unknown} of {len(data.flags)} flags have no probability "
                "(model without calibration).")
    return None


def _lane_cell(store: str, lane: int, row: dict | None, max_no_face_rate: float) -> dict:
    """One grid cell: the rate ("n/a" without frames), highlighted above the threshold."""
    rate = row["no_face_rate"] if row else None
    if row is None:
        return {"text": "n/a", "hot": False, "tip": f"{store} lane {lane}: no frames"}
    face = "n/a" if row["median_face_px"] is None else f"{row['median_face_px']:.0f} px"
    return {"text": _percent(rate) if rate is not None else "n/a",
            "hot": rate is not None and rate > max_no_face_rate,
            "tip": f"{store} lane {lane}: {row['no_face']} no face of {row['frames']} frames, "
                   f"{row['face_too_small']} face too small, median face {face}"}


def _lanes_section(data: DayData, max_no_face_rate: float) -> dict:
    """No-face rate as a store x lane grid; a lane above `max_no_face_rate` is highlighted."""
    if "lanes" in data.missing:
        return {"missing": data.missing["lanes"]}
    by_key = {(r["store_id"], r["lane_id"]): r for r in data.lanes}
    lanes = sorted({lane for _, lane in by_key})
    grid = [(store, [_lane_cell(store, lane, by_key.get((store, lane)), max_no_face_rate)
                     for lane in lanes])
            for store in sorted({store for store, _ in by_key})]
    return {"missing": None, "lanes": lanes, "grid": grid, "threshold": _percent(max_no_face_rate),
            "hot": sum(c["hot"] for _, cells in grid for c in cells)}


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
        "no_face_rate": "n/a" if qr.get("no_face_rate") is None else _percent(qr["no_face_rate"]),
        "median_face_px": ("n/a" if qr.get("median_face_px") is None
                           else f"{qr['median_face_px']:.0f} px"),
        "reasons_missing": data.missing.get("reasons"),
        "reasons": _table(data.reasons, [("source", "source"), ("reason", "reason"),
                                         ("quarantined", "rows")]),
    }


def drift_section(rows: list[dict], missing: str | None) -> dict:
    """Alarms (store, lane, why) and how many store and lane rows had no verdict."""
    if missing:
        return {"missing": missing}
    alarms = [r for r in rows if r["alarm"]]
    summaries = [r for r in rows if r["alarm"] is None]
    for r in alarms:
        r["lane"] = "all lanes" if r["lane_id"] is None else r["lane_id"]
    columns = [("date", "date"), ("store_id", "store"), ("lane", "lane"), ("reason", "why")]
    return {"missing": None, "alarms": len(alarms), "days": len(summaries),
            "judged": sum(r["rows_judged"] for r in summaries),
            "no_verdict": sum(r["no_verdict"] for r in summaries),
            "table": _table(alarms, columns)}


def _photos_note(kept: Minimised | None, retention_days: int) -> str:
    """What photo minimisation kept of the day's photos, and why (or that it did not run)."""
    if kept is None:
        return (f"Photos not minimised (setting photo_minimisation off, or not run yet): every "
                f"photo of the day stays until retention deletes it after {retention_days} days.")
    return (f"Photo minimisation kept {kept.kept:,} photo{'s' if kept.kept != 1 else ''} "
            f"(each the {kept.kept_reason}, until {kept.keep_until}) and deleted "
            f"{kept.deleted:,} ({kept.deleted_reason}).")


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
            (_percent(flagged / judged if judged else None), "flag rate (of those with photo)"),
            _expected_kpi(data.compliance)]


def _expected_kpi(rows: list[dict]) -> tuple[str, str]:
    """Expected sales to minors: summed probabilities, over the sales that have one."""
    expected, with_p = _expected(rows)
    return (_decimals(expected) if with_p else "n/a",
            f"expected sales to minors over {with_p:,} sales with a probability")


def render_html(data: DayData, *, min_support: float, source: str,
                likely_p: float = Settings.likely_minor_p,
                possible_p: float = Settings.possible_minor_p,
                max_no_face_rate: float = Settings.max_no_face_rate,
                kept: Minimised | None = None,
                retention_days: int = Settings.photo_retention_days,
                policy: dict | None = None) -> str:
    """The whole page as one string (pure: no I/O), from `templates/report.html.j2`.

    `likely_p` / `possible_p` must be the thresholds `load_day` used (they label the tiers);
    `max_no_face_rate` highlights lanes whose camera misses faces; `kept` is the day's photo
    minimisation record (None: not minimised); `policy` is the `policy_note.policy_statement`
    shown (default: the day's rule, without its cost).
    """
    model = str(data.quality.get("model_version") or "unknown")
    challenge = data.quality.get("challenge_age")
    if policy is None:
        policy = policy_statement(challenge, legal_age=Settings.legal_age, model=model,
                                  setting=Settings.challenge_age if challenge is None
                                  else challenge, curve=None)
    return str(render(
        "report.html.j2", policy=policy,
        run_date=data.run_date, model=model,
        challenge=data.quality.get("challenge_age"), source=source, min_support=min_support,
        kpis=_kpis(data), ages=_ages_section(data), lift=_lift_section(data, min_support),
        compliance=_compliance_section(data),
        flags=_flags_section(data, likely_p, possible_p),
        calibration_note=_calibration_note(data),
        lanes=_lanes_section(data, max_no_face_rate), quality=_quality_section(data),
        drift=drift_section(data.drift, data.missing.get("drift")),
        photos=_photos_note(kept, retention_days),
    ))


def default_out(root: str, name: str) -> Path:
    """`ROOT/html/<name>` (a local root only)."""
    if "://" in root:
        raise UserError(f"data root {root} is not local: pass --out for the HTML file")
    return Path(root) / "html" / name


def write_report(root: str | Path, run_date: str, out: str | Path | None = None, *,
                 min_support: float = 0.01, settings: Settings | None = None) -> Path:
    """Render day `run_date` under `root` to `out` (default ROOT/html/report-D.html), atomically.

    Tier and no-face thresholds and the policy's registry come from `settings` (default:
    `load_settings()`).

    Returns:
        The path written.
    """
    settings = settings or load_settings()
    tiers = {"likely_p": settings.likely_minor_p, "possible_p": settings.possible_minor_p}
    day = dt.date.isoformat(make_filters(run_date).date_from)
    checked = check_root(root)
    data = load_day(DuckDBEngine(checked), day, **tiers)
    model = data.quality.get("model_version")
    curve, missing = model_policy_curve(settings.registry_store, model)
    policy = policy_statement(data.quality.get("challenge_age"), legal_age=settings.legal_age,
                              setting=settings.challenge_age, model=str(model or "unknown"),
                              curve=curve, missing=missing)
    page = render_html(data, min_support=min_support, source=checked, **tiers,
                       max_no_face_rate=settings.max_no_face_rate,
                       kept=read_minimised(checked, day),
                       retention_days=settings.photo_retention_days, policy=policy)
    return write_page(page, Path(out) if out else default_out(checked, f"report-{day}.html"))


def write_period_report(root: str | Path, date_from: str, date_to: str,
                        out: str | Path | None = None, *, min_support: float = 0.01) -> Path:
    """Render the period `date_from`..`date_to` (default ROOT/html/report-D1..D2.html).

    UserError for an inverted range or one without any reports; days without reports are
    listed on the page.
    """
    from jobs.analytics.period_report import load_period, render_period

    filters = make_filters(date_from, date_to)
    checked = check_root(root)
    data = load_period(DuckDBEngine(checked), filters)
    page = render_period(data, min_support=min_support, source=checked)
    name = f"report-{filters.date_from}..{filters.date_to}.html"
    return write_page(page, Path(out) if out else default_out(checked, name))


def write_page(page: str, target: Path) -> Path:
    """Write `page` to `target` atomically (a reader sees the old or the new file, whole)."""
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
