"""SQL text of the analysts' queries over the report tables, shared by DuckDB and Spark SQL.

Every builder is pure: it takes validated `Filters` and returns a `Query` (SQL text + parameter
values). User input only ever reaches the database as a bound parameter (`$name`); the text is
assembled from constant fragments chosen by *which* filters are set. Report tables appear as
`{table}` placeholders that each engine replaces with its own source (DuckDB: `read_parquet` over
the `date=*` partitions, Spark: a temporary view).

Roll-up rules (docs/queries.md): counts are summed across stores and days; every ratio is
recomputed from the summed counts, never averaged. `all_receipts`, `category_receipts` and
`segment_receipts` repeat on many rows, so they are first de-duplicated per store and day.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from model.config import AGE_GROUPS, Settings
from model.errors import UserError
from model.serving.reasons import DETECTOR_REASONS

AGE_GROUP_NAMES: tuple[str, ...] = tuple(name for name, _, _ in AGE_GROUPS)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PARAM = re.compile(r"\$(\w+)")  # a bound parameter in the SQL text
# Sort key for age groups in their natural order (constant text built from config, not input).
AGE_ORDER = (
    "CASE age_group "
    + " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(AGE_GROUP_NAMES))
    + " ELSE 99 END"
)


@dataclass(frozen=True)
class Filters:
    """Validated query parameters: an inclusive date range and optional ids."""

    date_from: dt.date
    date_to: dt.date
    store: str | None = None
    age_group: str | None = None
    cashier: str | None = None

    @property
    def span(self) -> tuple[dt.date, dt.date]:
        """`(date_from, date_to)`."""
        return self.date_from, self.date_to

    def describe(self) -> str:
        """Human summary, e.g. `2026-03-01..2026-03-30, store S012`."""
        parts = [f"{self.date_from}..{self.date_to}" if self.date_from != self.date_to
                 else str(self.date_from)]
        for label, value in (("store", self.store), ("age group", self.age_group),
                             ("cashier", self.cashier)):
            if value is not None:
                parts.append(f"{label} {value}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Query:
    """SQL with `{table}` sources and `$name` parameters, and the parameter values."""

    name: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    # The dates the query reads: an engine with rollups (jobs.analytics.rollups) may then serve
    # whole months of it from them. None: every day of each table (probes, extents).
    span: tuple[dt.date, dt.date] | None = None
    # The SQL uses `date` only to filter and group rows, so `segment_category` may come as
    # month rows (`segment_category_month`); days are counted from `{segment_days}`.
    month_rows: bool = False

    @property
    def tables(self) -> tuple[str, ...]:
        """Report tables the SQL reads, in order of first use."""
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.sql)))

    def render(self, sources: dict[str, str]) -> str:
        """The SQL with each `{table}` replaced by `sources[table]` (engine-specific, constant)."""
        return _PLACEHOLDER.sub(lambda m: sources[m.group(1)], self.sql)


def bound_values(sql: str, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of `values` that `sql` names as `$name` (engines reject unused parameters)."""
    used = set(_PARAM.findall(sql))
    return {name: value for name, value in values.items() if name in used}


def named_markers(sql: str, marker: str) -> str:
    """`sql` with each `$name` written as `<marker>name` (Spark SQL binds `:name`)."""
    return _PARAM.sub(lambda m: marker + m.group(1), sql)


def parse_date(text: str, flag: str = "date") -> dt.date:
    """A strict `YYYY-MM-DD` date, or a UserError naming the flag and the value."""
    from jobs.contract import parse_date as parse_contract_date

    try:
        return parse_contract_date(text)
    except UserError:
        raise UserError(f"bad {flag} {text!r}: expected a calendar date YYYY-MM-DD") from None


def make_filters(
    date_from: str,
    date_to: str | None = None,
    *,
    store: str | None = None,
    age_group: str | None = None,
    cashier: str | None = None,
) -> Filters:
    """Validate command-line values into `Filters` (`date_to` defaults to `date_from`)."""
    start = parse_date(date_from, "--from")
    end = parse_date(date_to, "--to") if date_to else start
    if end < start:
        raise UserError(f"--to {end} is before --from {start}")
    if age_group is not None and age_group not in AGE_GROUP_NAMES:
        raise UserError(
            f"unknown age group {age_group!r}: use one of " + ", ".join(AGE_GROUP_NAMES)
        )
    for flag, value in (("--store", store), ("--cashier", cashier)):
        if value is not None and not value.strip():
            raise UserError(f"{flag} is empty")
    return Filters(start, end, store, age_group, cashier)


def where_clause(filters: Filters, *, store: bool = False, age: bool = False,
           cashier: bool = False) -> tuple[str, dict[str, Any]]:
    """`date BETWEEN ...` plus the id conditions that apply, and their parameters."""
    sql = "date BETWEEN $date_from AND $date_to"
    params: dict[str, Any] = {"date_from": filters.date_from, "date_to": filters.date_to}
    for wanted, column, name in ((store, "store_id", "store"), (age, "age_group", "age_group"),
                                 (cashier, "cashier_id", "cashier")):
        value = getattr(filters, name)
        if wanted and value is not None:
            sql += f" AND {column} = ${name}"
            params[name] = value
    return sql, params


def exact_sum(column: str, places: int) -> str:
    """SQL (DuckDB and Spark) summing DOUBLE `column` as a decimal with `places` decimals.

    A float sum depends on the order the engine's threads add the rows in, so the same query
    printed different last digits from run to run (and from rollups vs days); a decimal sum
    is exact. Roubles to the kopeck (2), expected counts to 1e-6.
    """
    return f"CAST(sum(CAST({column} AS DECIMAL(18, {places}))) AS DOUBLE)"


_EXPECTED_SALES = exact_sum("expected_minor_sales", 6)

# One row per store and day of segment_category: the day's matched receipts. Engines without
# rollups derive `{segment_days}` from the day rows with this.
SEGMENT_DAYS_SQL = """SELECT date, store_id, max(all_receipts) AS all_receipts
FROM {segment_category} GROUP BY date, store_id"""

# Per-scope totals from segment_category, each repeated count de-duplicated per store and day.
# `scope` is either every selected store together ('*') or one store (store_id).
_SEGMENT_TOTALS = """
base AS (SELECT * FROM {{segment_category}} WHERE {where}),
store_days AS (
  SELECT {scope} AS scope, date, store_id, all_receipts
  FROM {{segment_days}} WHERE {where}),
store_totals AS (
  SELECT scope, sum(all_receipts) AS all_receipts, count(DISTINCT date) AS days,
         count(DISTINCT store_id) AS stores
  FROM store_days GROUP BY scope),
day_categories AS (
  SELECT {scope} AS scope, date, store_id, category, max(category_receipts) AS category_receipts
  FROM base GROUP BY {scope}, date, store_id, category),
category_totals AS (
  SELECT scope, category, sum(category_receipts) AS category_receipts
  FROM day_categories GROUP BY scope, category),
day_segments AS (
  SELECT {scope} AS scope, date, store_id, age_group, max(segment_receipts) AS segment_receipts,
         max(segment_revenue_rub) AS segment_revenue_rub
  FROM base GROUP BY {scope}, date, store_id, age_group),
segment_totals AS (
  SELECT scope, age_group, sum(segment_receipts) AS segment_receipts,
         {segment_revenue_sum} AS segment_revenue_rub
  FROM day_segments GROUP BY scope, age_group),
cells AS (
  SELECT {scope} AS scope, age_group, category, sum(receipts) AS receipts, sum(units) AS units,
         {revenue_sum} AS revenue_rub
  FROM base WHERE {cell_where} GROUP BY {scope}, age_group, category),
segment_rows AS (
  SELECT c.scope, c.age_group, c.category, c.receipts, c.units, c.revenue_rub,
         s.segment_receipts, s.segment_revenue_rub, k.category_receipts, t.all_receipts,
         t.days, t.stores
  FROM cells c
  JOIN segment_totals s ON s.scope = c.scope AND s.age_group = c.age_group
  JOIN category_totals k ON k.scope = c.scope AND k.category = c.category
  JOIN store_totals t ON t.scope = c.scope)"""

_SUPPORT = "CAST(receipts AS DOUBLE) / NULLIF({all}, 0)"
_CONFIDENCE = "CAST(receipts AS DOUBLE) / NULLIF({segment}, 0)"
_LIFT = "CAST(receipts AS DOUBLE) * {all} / NULLIF(CAST({segment} AS DOUBLE) * {item}, 0)"


def _segment_ctes(filters: Filters, *, by_store: bool) -> tuple[str, dict[str, Any]]:
    where, params = where_clause(filters, store=True)
    cell_where, cell_params = where_clause(filters, store=True, age=True)
    params.update(cell_params)
    scope = "store_id" if by_store else "'*'"
    return _SEGMENT_TOTALS.format(
        where=where, cell_where=cell_where, scope=scope,
        segment_revenue_sum=exact_sum("segment_revenue_rub", 2),
        revenue_sum=exact_sum("revenue_rub", 2)), params


def segments_query(filters: Filters, *, by_store: bool = False) -> Query:
    """What each age group buys: one row per (age_group, category) [per store], ratios re-derived.

    Args:
        filters: dates, optional store and age group.
        by_store: one block per store instead of all selected stores together.
    """
    ctes, params = _segment_ctes(filters, by_store=by_store)
    support = _SUPPORT.format(all="all_receipts")
    confidence = _CONFIDENCE.format(segment="segment_receipts")
    lift = _LIFT.format(all="all_receipts", segment="segment_receipts", item="category_receipts")
    sql = f"""WITH {ctes}
SELECT {"scope AS store_id, " if by_store else ""}age_group, category, receipts, units,
       revenue_rub, segment_receipts, segment_revenue_rub, category_receipts, all_receipts,
       revenue_rub / NULLIF(segment_revenue_rub, 0) AS revenue_share,
       {support} AS support, {confidence} AS confidence, {lift} AS lift, days, stores
FROM segment_rows
ORDER BY {"store_id, " if by_store else ""}{AGE_ORDER}, lift DESC NULLS LAST, category"""
    return Query("segments", sql, params, span=filters.span, month_rows=True)


def recommendations_query(
    filters: Filters, *, min_support: float, top_n: int, products: bool = True
) -> Query:
    """What each age group buys more than average, over the range, with the daily job's rule.

    Categories are recomputed exactly from `segment_category` (any store selection). Products
    exist only in the chain-wide daily top lists of `recommendations`, so their counts are pooled
    over the days the product was listed for that age group (`days_listed` of `days`): exact for
    one day, an upper-biased view over a range (docs/queries.md).
    """
    ctes, params = _segment_ctes(filters, by_store=False)
    params.update({"min_support": float(min_support), "top_n": int(top_n)})
    category_rows = """
  SELECT age_group, 'category' AS kind, category AS item_id, category AS item_name, category,
         receipts, segment_receipts, category_receipts AS item_receipts, all_receipts,
         days AS days_listed, days
  FROM segment_rows"""
    product_rows = ""
    if products:
        listed_where, listed_params = where_clause(filters, age=True)
        params.update(listed_params)
        product_rows = f"""
  UNION ALL
  SELECT age_group, 'product' AS kind, item_id, max(item_name) AS item_name,
         max(category) AS category, sum(receipts) AS receipts,
         sum(segment_receipts) AS segment_receipts, sum(item_receipts) AS item_receipts,
         sum(all_receipts) AS all_receipts, count(DISTINCT date) AS days_listed,
         max(t.days) AS days
  FROM {{recommendations}} CROSS JOIN (SELECT max(days) AS days FROM store_totals) t
  WHERE {listed_where} AND kind = 'product'
  GROUP BY age_group, item_id"""
    support = _SUPPORT.format(all="all_receipts")
    confidence = _CONFIDENCE.format(segment="segment_receipts")
    lift = _LIFT.format(all="all_receipts", segment="segment_receipts", item="item_receipts")
    sql = f"""WITH {ctes},
items AS ({category_rows}{product_rows}),
measured AS (
  SELECT *, {support} AS support, {confidence} AS confidence, {lift} AS lift FROM items),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY age_group, kind
                               ORDER BY lift DESC, receipts DESC, item_id) AS rank
  FROM measured WHERE support >= $min_support AND lift > 1)
SELECT age_group, kind, rank, item_id, item_name, category, receipts, segment_receipts,
       item_receipts, all_receipts, support, confidence, lift, days_listed, days
FROM ranked WHERE rank <= $top_n
ORDER BY {AGE_ORDER}, kind, rank"""
    return Query("recommendations", sql, params, span=filters.span, month_rows=True)


def compliance_query(filters: Filters) -> Query:
    """Per cashier over the range: restricted sales, photos, flags; flag_rate from the sums.

    `expected_minor_sales` (sum of P(under the legal age) over restricted sales with a photo) is
    summed over days like any count, never averaged; `with_probability` says how many sales it
    covers (sales scored by an uncalibrated model have no probability). Cashiers with the most
    expected sales to minors come first. Rows are split by `challenge_age` so counts made with
    different thresholds never mix.
    """
    where, params = where_clause(filters, store=True, cashier=True)
    sql = f"""SELECT store_id, cashier_id, sum(receipts) AS receipts,
       sum(restricted_receipts) AS restricted_receipts, sum(with_photo) AS with_photo,
       sum(flagged) AS flagged,
       CAST(sum(flagged) AS DOUBLE) / NULLIF(sum(with_photo), 0) AS flag_rate,
       sum(no_photo) AS no_photo, sum(with_probability) AS with_probability,
       {_EXPECTED_SALES} AS expected_minor_sales,
       {_EXPECTED_SALES} / NULLIF(sum(with_probability), 0) AS expected_minor_share,
       challenge_age, count(DISTINCT date) AS days
FROM {{compliance}} WHERE {where}
GROUP BY store_id, cashier_id, challenge_age
ORDER BY expected_minor_sales DESC NULLS LAST, flagged DESC, flag_rate DESC NULLS LAST, store_id,
         cashier_id, challenge_age"""
    return Query("compliance", sql, params, span=filters.span)


MINOR_TIERS = ("likely minor", "possible minor", "probably adult", "no calibration")


def flags_query(filters: Filters, *, likely_p: float = Settings.likely_minor_p,
                possible_p: float = Settings.possible_minor_p) -> Query:
    """The flagged receipts behind `compliance.flagged` (what an auditor opens; photo ids only).

    Most likely minors first. `minor_tier` names the band of `p_under_legal_age`: "likely
    minor" (>= `likely_p`), "possible minor" (>= `possible_p`), "probably adult", or "no
    calibration" where the scoring model had no calibration table (NULL probability).
    """
    if not 0 < possible_p <= likely_p < 1:
        raise UserError(f"minor tiers need 0 < possible ({possible_p}) <= likely ({likely_p}) < 1")
    where, params = where_clause(filters, store=True, cashier=True)
    params.update({"likely_p": float(likely_p), "possible_p": float(possible_p)})
    likely, possible, adult, unknown = (f"'{tier}'" for tier in MINOR_TIERS)
    sql = f"""SELECT date, receipt_id, store_id, lane_id, cashier_id, closed_at, photo_id,
       age_pred_years, p_under_legal_age,
       CASE WHEN p_under_legal_age IS NULL THEN {unknown}
            WHEN p_under_legal_age >= $likely_p THEN {likely}
            WHEN p_under_legal_age >= $possible_p THEN {possible}
            ELSE {adult} END AS minor_tier,
       model_version, restricted_units, restricted_revenue_rub, challenge_age
FROM {{compliance_flags}} WHERE {where}
ORDER BY p_under_legal_age DESC NULLS LAST, date, store_id, closed_at, receipt_id"""
    return Query("flags", sql, params, span=filters.span)


QUALITY_COUNTS = (
    "photos_in", "photos_scored", "photos_quarantined", "photos_matched", "photos_unmatched",
    "receipts_in", "receipts_valid", "receipts_quarantined", "receipts_matched",
    "receipts_unmatched", "lines_in", "lines_valid", "lines_quarantined",
)


def quality_query(filters: Filters) -> Query:
    """One `run_quality` row per day of the range (the total row is added by `add_quality_total`)."""
    where, params = where_clause(filters)
    sql = f"""SELECT CAST(date AS STRING) AS date, {", ".join(QUALITY_COUNTS)},
       CAST(receipts_matched AS DOUBLE) / NULLIF(receipts_valid, 0) AS match_rate,
       no_face_rate, median_face_px,
       age_pred_p10, age_pred_p50, age_pred_p90, model_version, match_window_s, challenge_age,
       age_group_counts
FROM {{run_quality}} WHERE {where}
ORDER BY date"""
    return Query("quality", sql, params, span=filters.span)


FACE_REASONS = DETECTOR_REASONS  # frames the detector looked at and rejected


def lane_quality_query(filters: Filters) -> Query:
    """Per store and lane over the range: frames, no-face rate and median face size.

    Frames = scored frames (`faces_found` not NULL; face crops are not frames) + frames the face
    detector quarantined. no_face_rate = no_face / frames, recomputed from the summed counts.
    Worst lanes first: a camera pointing at the floor stands out at the top.
    """
    where, params = where_clause(filters, store=True)
    reasons = ", ".join(f"'{reason}'" for reason in FACE_REASONS)
    sql = f"""WITH frames AS (
  SELECT store_id, lane_id, 'scored' AS outcome, face_w FROM {{photo_scores}}
  WHERE {where} AND faces_found IS NOT NULL
  UNION ALL
  SELECT store_id, lane_id, reason AS outcome, CAST(NULL AS INT) AS face_w
  FROM {{photo_quarantine}} WHERE {where} AND reason IN ({reasons}))
SELECT store_id, lane_id, count(*) AS frames,
       count_if(outcome = 'scored') AS frames_scored,
       count_if(outcome = 'no_face') AS no_face,
       count_if(outcome = 'face_too_small') AS face_too_small,
       CAST(count_if(outcome = 'no_face') AS DOUBLE) / count(*) AS no_face_rate,
       CAST(median(face_w) AS DOUBLE) AS median_face_px
FROM frames GROUP BY store_id, lane_id
ORDER BY no_face_rate DESC, store_id, lane_id"""
    return Query("lane_quality", sql, params, span=filters.span)


def age_distribution_query(filters: Filters) -> Query:
    """Scored photos per store and age group over the range (the HTML report's first chart)."""
    where, params = where_clause(filters, store=True)
    sql = f"""SELECT store_id, age_group, count(*) AS photos
FROM {{photo_scores}} WHERE {where}
GROUP BY store_id, age_group ORDER BY store_id, {AGE_ORDER}"""
    return Query("age_distribution", sql, params, span=filters.span)


def quarantine_reasons_query(filters: Filters, table: str) -> Query:
    """Quarantined rows per reason (photo_quarantine or receipt_quarantine) over the range."""
    if table not in ("photo_quarantine", "receipt_quarantine"):
        raise ValueError(f"not a quarantine table: {table}")
    where, params = where_clause(filters)
    source = "source_file" if table == "receipt_quarantine" else "'photos'"
    sql = f"""SELECT {source} AS source, reason, count(*) AS quarantined
FROM {{{table}}} WHERE {where}
GROUP BY {source}, reason ORDER BY source, quarantined DESC, reason"""
    return Query(f"{table}_reasons", sql, params, span=filters.span)


# -- the period report (jobs/analytics/period_report.py) -------------------------------------------


def compliance_by_day_query(filters: Filters) -> Query:
    """Chain-wide restricted sales, photos, flags and expected sales to minors per day."""
    where, params = where_clause(filters, store=True)
    sql = f"""SELECT CAST(date AS STRING) AS date, sum(restricted_receipts) AS restricted_receipts,
       sum(with_photo) AS with_photo, sum(flagged) AS flagged,
       sum(with_probability) AS with_probability,
       {_EXPECTED_SALES} AS expected_minor_sales
FROM {{compliance}} WHERE {where}
GROUP BY date ORDER BY date"""
    return Query("compliance_by_day", sql, params, span=filters.span)


def store_ages_query(filters: Filters) -> Query:
    """Per store over the range: matched receipts per age group and in all (de-duplicated)."""
    ctes, params = _segment_ctes(filters, by_store=True)
    sql = f"""WITH {ctes}
SELECT s.scope AS store_id, s.age_group, s.segment_receipts, t.all_receipts, t.days
FROM segment_totals s JOIN store_totals t ON t.scope = s.scope
ORDER BY store_id, {AGE_ORDER.replace("age_group", "s.age_group")}"""
    return Query("store_ages", sql, params, span=filters.span, month_rows=True)


def compliance_by_store_query(filters: Filters) -> Query:
    """Per store over the range: restricted sales, photos, flags; flag_rate from the sums."""
    where, params = where_clause(filters, store=True)
    sql = f"""SELECT store_id, sum(restricted_receipts) AS restricted_receipts,
       sum(with_photo) AS with_photo, sum(flagged) AS flagged,
       CAST(sum(flagged) AS DOUBLE) / NULLIF(sum(with_photo), 0) AS flag_rate,
       sum(with_probability) AS with_probability,
       {_EXPECTED_SALES} AS expected_minor_sales
FROM {{compliance}} WHERE {where}
GROUP BY store_id ORDER BY store_id"""
    return Query("compliance_by_store", sql, params, span=filters.span)


def drift_query(filters: Filters) -> Query:
    """Per day: store and lane rows judged, alarms, rows without a verdict; plus every alarm.

    One row per alarm (`alarm` true) and one summary row per day (`alarm` NULL).
    """
    where, params = where_clause(filters, store=True)
    sql = f"""SELECT CAST(date AS STRING) AS date, store_id, lane_id, alarm, reason, age_psi,
       threshold, no_face_rate, reference_no_face_rate, CAST(NULL AS BIGINT) AS rows_judged,
       CAST(NULL AS BIGINT) AS no_verdict
FROM {{age_drift}} WHERE {where} AND alarm
UNION ALL
SELECT CAST(date AS STRING), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*),
       count_if(NOT alarm AND reason IS NOT NULL)
FROM {{age_drift}} WHERE {where} GROUP BY date
ORDER BY date, alarm NULLS FIRST, store_id, lane_id NULLS FIRST"""
    return Query("drift", sql, params, span=filters.span)
