"""`checkout-age report html --from D1 --to D2`: one self-contained page for a week, a month, a year.

Trends per day (per ISO week beyond `WEEKLY_AFTER_DAYS`): age mix, flag rate, expected sales to
minors, match rate, no-face rate; the stores side by side; the cashiers with the most flagged
sales; the category lift over the whole period; the drift alarms raised in it. Every figure
comes through the query layer (the monthly rollups where fresh), counts summed and ratios taken
from the sums. Days of the range without reports are listed on the page, never skipped silently.
Same rules as the daily page: inline CSS and SVG, no scripts, no face images.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from jobs.analytics import charts
from jobs.analytics import query_sql as q
from jobs.analytics.html_report import (
    _decimals,
    _lift_section,
    _percent,
    _table,
    drift_section,
)
from jobs.analytics.query import Engine, run_query
from jobs.analytics.query_sql import Filters
from jobs.analytics.templating import render
from model.errors import UserError

WEEKLY_AFTER_DAYS = 62  # longer ranges trend per ISO week (a year: 53 points, not 365)
TOP_CASHIERS = 20
CHART_STORES = 40


@dataclass
class PeriodData:
    """Everything the period page shows; `missing` explains sections without data."""

    filters: Filters
    days: list[dict]  # run_quality rows per day with data
    missing_days: list[str]
    compliance_days: list[dict] = field(default_factory=list)
    store_ages: list[dict] = field(default_factory=list)
    store_compliance: list[dict] = field(default_factory=list)
    cashiers: list[dict] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def week_start(day: dt.date) -> dt.date:
    """Monday of `day`'s ISO week."""
    return day - dt.timedelta(days=day.weekday())


def load_period(engine: Engine, filters: Filters) -> PeriodData:
    """Read the period through the query layer; UserError when no day of it has reports."""
    quality = run_query(engine, "quality", filters)  # UserError: no day of the range at all
    days = [r for r in quality.records() if r["date"] != "total"]
    present = {r["date"] for r in days}
    span = (filters.date_to - filters.date_from).days + 1
    expected = [(filters.date_from + dt.timedelta(days=i)).isoformat() for i in range(span)]
    data = PeriodData(filters, days, [d for d in expected if d not in present])
    loaders = {
        "compliance_days": lambda: engine.run(q.compliance_by_day_query(filters)).records(),
        "store_ages": lambda: engine.run(q.store_ages_query(filters)).records(),
        "store_compliance": lambda: engine.run(q.compliance_by_store_query(filters)).records(),
        "cashiers": lambda: sorted(run_query(engine, "compliance", filters).records(),
                                   key=lambda r: (-(r["flagged"] or 0), r["store_id"],
                                                  r["cashier_id"]))[:TOP_CASHIERS],
        "segments": lambda: run_query(engine, "segments", filters).records(),
        "drift": lambda: engine.run(q.drift_query(filters)).records(),
    }
    for name, load in loaders.items():
        try:
            setattr(data, name, load())
        except UserError as exc:
            data.missing[name] = str(exc)
    return data


def _period_of(day: str, weekly: bool) -> str:
    return week_start(dt.date.fromisoformat(day)).isoformat() if weekly else day


def trend_rows(data: PeriodData) -> tuple[str, list[dict]]:
    """Per day or per week: counts summed, rates from the sums (no-face: see the note)."""
    weekly = (data.filters.date_to - data.filters.date_from).days + 1 > WEEKLY_AFTER_DAYS
    periods: dict[str, dict[str, Any]] = {}

    def period(day: str) -> dict[str, Any]:
        return periods.setdefault(_period_of(day, weekly), {
            "days": 0, "receipts_valid": 0, "receipts_matched": 0, "photos_in": 0,
            "no_face_weight": 0.0, "no_face_photos": 0, "ages": {}, "restricted_receipts": 0,
            "with_photo": 0, "flagged": 0, "expected_minor_sales": 0.0, "with_probability": 0})

    for r in data.days:
        p = period(r["date"])
        p["days"] += 1
        for key in ("receipts_valid", "receipts_matched", "photos_in"):
            p[key] += r[key] or 0
        if r["no_face_rate"] is not None:  # days of crops have no detector verdicts
            p["no_face_weight"] += r["no_face_rate"] * (r["photos_in"] or 0)
            p["no_face_photos"] += r["photos_in"] or 0
        for group, photos in json.loads(r["age_group_counts"] or "{}").items():
            p["ages"][group] = p["ages"].get(group, 0) + int(photos)
    for r in data.compliance_days:
        p = period(r["date"])
        for key in ("restricted_receipts", "with_photo", "flagged", "with_probability"):
            p[key] += r[key] or 0
        p["expected_minor_sales"] += r["expected_minor_sales"] or 0.0
    rows = []
    for name, p in sorted(periods.items()):
        rows.append({
            "period": name, "days": p["days"], "receipts_valid": p["receipts_valid"],
            "match_rate": p["receipts_matched"] / p["receipts_valid"] if p["receipts_valid"]
            else None,
            "no_face_rate": p["no_face_weight"] / p["no_face_photos"] if p["no_face_photos"]
            else None,
            "restricted_receipts": p["restricted_receipts"], "with_photo": p["with_photo"],
            "flagged": p["flagged"],
            "flag_rate": p["flagged"] / p["with_photo"] if p["with_photo"] else None,
            "expected_minor_sales": p["expected_minor_sales"] if p["with_probability"] else None,
            "ages": p["ages"]})
    return ("week (from Monday)" if weekly else "day"), rows


def _trends_section(data: PeriodData) -> dict:
    grain, rows = trend_rows(data)
    label = "week of " if grain.startswith("week") else ""

    def bars(key: str, title: str, note) -> Any:
        points = [(f"{label}{r['period']}", r[key], note(r)) for r in rows]
        return charts.rate_bars(points, title, f"{title} per {grain}") if points else None

    columns = [("period", grain), ("days", "days with reports"), ("receipts_valid", "receipts"),
               ("match_rate", "match rate"), ("no_face_rate", "no-face rate"),
               ("restricted_receipts", "restricted"), ("with_photo", "with photo"),
               ("flagged", "flagged"), ("flag_rate", "flag rate"),
               ("expected_minor_sales", "expected sales to minors")]
    formats = {"match_rate": _percent, "no_face_rate": _percent, "flag_rate": _percent,
               "expected_minor_sales": _decimals}
    ages = [(f"{label}{r['period']}", r["ages"]) for r in rows if r["ages"]]
    return {
        "grain": grain,
        "ages": charts.stacked_shares(ages, list(q.AGE_GROUP_NAMES),
                                      f"Age mix of scored photos per {grain}") if ages else None,
        "flag_rate": bars("flag_rate", "Flag rate",
                          lambda r: f"{r['flagged']} of {r['with_photo']} with photo"),
        "match_rate": bars("match_rate", "Match rate",
                           lambda r: f"{r['receipts_valid']:,} receipts"),
        "no_face_rate": bars("no_face_rate", "No-face rate",
                             lambda r: "n/a (crops)" if r["no_face_rate"] is None
                             else _percent(r["no_face_rate"])),
        "table": _table(rows, columns, formats),
    }


def _stores_section(data: PeriodData) -> dict:
    if "store_ages" in data.missing:
        return {"missing": data.missing["store_ages"], "table": None}
    stores: dict[str, dict[str, Any]] = {}
    for r in data.store_ages:
        s = stores.setdefault(r["store_id"], {"store_id": r["store_id"], "ages": {},
                                              "all_receipts": r["all_receipts"]})
        s["ages"][r["age_group"]] = r["segment_receipts"]
    for r in data.store_compliance:
        stores.setdefault(r["store_id"], {"store_id": r["store_id"], "ages": {},
                                          "all_receipts": None}).update(r)
    rows = sorted(stores.values(), key=lambda s: s["store_id"])
    for s in rows:
        total = sum(s["ages"].values())
        for group in q.AGE_GROUP_NAMES:
            s[group] = (s["ages"].get(group, 0) / total) if total else None
        for key in ("restricted_receipts", "with_photo", "flagged", "flag_rate",
                    "expected_minor_sales"):
            s.setdefault(key, None)
    busiest = sorted(rows, key=lambda s: -(s["all_receipts"] or 0))[:CHART_STORES]
    chart = charts.stacked_shares(
        [(s["store_id"], s["ages"]) for s in sorted(busiest, key=lambda s: s["store_id"])],
        list(q.AGE_GROUP_NAMES), "Age mix of matched receipts per store") if busiest else None
    columns = [("store_id", "store"), ("all_receipts", "matched receipts"),
               *[(g, g) for g in q.AGE_GROUP_NAMES], ("restricted_receipts", "restricted"),
               ("with_photo", "with photo"), ("flagged", "flagged"), ("flag_rate", "flag rate"),
               ("expected_minor_sales", "expected sales to minors")]
    formats = {g: _percent for g in q.AGE_GROUP_NAMES}
    formats.update(flag_rate=_percent, expected_minor_sales=_decimals)
    return {"missing": data.missing.get("store_compliance"), "chart": chart,
            "stores": len(rows), "chart_stores": len(busiest),
            "table": _table(rows, columns, formats)}


def _cashiers_section(data: PeriodData) -> dict:
    if "cashiers" in data.missing:
        return {"missing": data.missing["cashiers"]}
    columns = [("store_id", "store"), ("cashier_id", "cashier"), ("flagged", "flagged"),
               ("with_photo", "with photo"), ("flag_rate", "flag rate"),
               ("expected_minor_sales", "expected sales to minors"), ("days", "days")]
    return {"missing": None, "top": TOP_CASHIERS,
            "table": _table(data.cashiers, columns, {"flag_rate": _percent,
                                                     "expected_minor_sales": _decimals})}


def _kpis(data: PeriodData) -> list[tuple[str, str]]:
    valid = sum(r["receipts_valid"] or 0 for r in data.days)
    matched = sum(r["receipts_matched"] or 0 for r in data.days)
    flagged = sum(r["flagged"] or 0 for r in data.compliance_days)
    judged = sum(r["with_photo"] or 0 for r in data.compliance_days)
    with_p = sum(r["with_probability"] or 0 for r in data.compliance_days)
    expected = sum(r["expected_minor_sales"] or 0 for r in data.compliance_days)
    span = len(data.days) + len(data.missing_days)
    return [(f"{len(data.days)} of {span}", "days with reports"),
            (f"{valid:,}", "valid receipts"),
            (_percent(matched / valid if valid else None), "receipts matched to a photo"),
            (f"{sum(r['restricted_receipts'] or 0 for r in data.compliance_days):,}",
             "restricted sales"),
            (f"{flagged:,}", "flagged"),
            (_percent(flagged / judged if judged else None), "flag rate (of those with photo)"),
            (_decimals(expected) if with_p else "n/a",
             f"expected sales to minors over {with_p:,} sales with a probability")]


def render_period(data: PeriodData, *, min_support: float, source: str) -> str:
    """The whole period page as one string (pure: no I/O), from `templates/period.html.j2`."""
    models = sorted({r["model_version"] for r in data.days if r["model_version"]})
    return str(render(
        "period.html.j2", date_from=data.filters.date_from.isoformat(),
        date_to=data.filters.date_to.isoformat(), models=", ".join(models) or "unknown",
        source=source, min_support=min_support, kpis=_kpis(data),
        missing_days=data.missing_days, trends=_trends_section(data),
        stores=_stores_section(data), cashiers=_cashiers_section(data),
        lift=_lift_section(data, min_support),  # same fields as DayData's
        drift=drift_section(data.drift, data.missing.get("drift")),
    ))
