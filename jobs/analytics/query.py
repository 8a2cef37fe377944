"""The analysts' query layer: DuckDB over the report tables' Parquet partitions.

    engine = DuckDBEngine("var/data")
    result = run_query(engine, "segments", make_filters("2026-03-01", "2026-03-30", store="S012"))

`run_query` returns a light `Result` (columns + rows; no pandas, so the command line starts fast).
The SQL lives in `jobs.analytics.query_sql` and is shared with the Spark engine
(`jobs.analytics.query_spark`). User values are bound parameters, never SQL text; the parquet glob is a
parameter too, built from a root that was checked to be a directory or an s3 URL.

A query that returns nothing is explained: no data for the range, an unknown store or cashier
are `UserError`s (one line, exit 2); a valid selection that simply has no rows (no flags that week)
is an empty result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jobs.analytics import query_sql as q
from jobs.analytics.query_sql import Filters, Query, make_filters
from jobs.contract import (
    AGE_DRIFT,
    COMPACTED,
    SCHEMAS,
    SEGMENT_CATEGORY,
    SEGMENT_CATEGORY_MONTH,
    SEGMENT_DAYS,
    partition_files_glob,
    table_dir,
)
from model.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb

__all__ = ["DuckDBEngine", "Filters", "Result", "make_filters", "run_query"]

# Every query `run_query` answers, and the table whose rows say whether a selection (dates,
# store, cashier) exists at all.
ANCHOR_TABLE = {
    "segments": "segment_category",
    "recommendations": "segment_category",
    "compliance": "compliance",
    "flags": "compliance",
    "quality": "run_quality",
}
_GLOB_CHARS = re.compile(r"[*?\[\]{}]")
# Result column types that DuckDB's CSV writer prints exactly as `query_format.to_csv` prints
# the Python values (tested): not REAL (float32 widened), timestamps, booleans or lists.
_CSV_AS_PYTHON_WRITES = frozenset({
    "VARCHAR", "DOUBLE", "DATE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
})
# Queries whose answer is the SQL's rows as they are (Python adds or drops none), so their CSV
# can come straight from the engine.
_ROWS_AS_SQL_RETURNS = frozenset({"segments", "compliance", "flags", "quality-by-lane"})


@dataclass
class Result:
    """Rows of one query, plus notes for the reader (shown under a table)."""

    name: str
    columns: list[str]
    rows: list[tuple]
    notes: list[str] = field(default_factory=list)
    # The rows as CSV when the engine wrote them itself (`DuckDBEngine.run_csv`); `rows` is then
    # empty and `csv_rows` counts them.
    csv: str | None = None
    csv_rows: int = 0

    @property
    def row_count(self) -> int:
        """How many rows the answer has, whether held as tuples or as CSV text."""
        return self.csv_rows if self.csv is not None else len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Engine(Protocol):
    """Runs a `Query` against the report tables under one data root."""

    root: str

    def run(self, query: Query) -> Result: ...


def check_root(root: str | Path) -> str:
    """The data root as DuckDB reads it: an existing directory, or an `s3://`/`s3a://` URL."""
    text = str(root).rstrip("/")
    if _GLOB_CHARS.search(text):
        raise UserError(f"data root {text!r} contains glob characters (*?[]{{}})")
    if text.startswith(("s3://", "s3a://")):
        return "s3://" + text.split("://", 1)[1]
    if "://" in text:
        raise UserError(f"data root {text!r}: only local directories and s3:// URLs are supported")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise UserError(f"data root {path} is not a directory")
    return str(path.resolve())


_DUCKDB_TYPES = {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT",
                 "double": "DOUBLE", "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "bool": "BOOLEAN"}
_DAY_FILES = "hive_partitioning = true, hive_types = {'date': DATE}, union_by_name = true"


def _typed_empty(table: str) -> str:
    """A row-less relation with every contract column of `table` (and `date`), typed."""
    typed = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES[str(field.type)]}) AS {field.name}"
                      for field in SCHEMAS[table])
    return f"SELECT CAST(NULL AS DATE) AS date, {typed} WHERE false"


def _with_contract_columns(table: str, parts: list[str]) -> str:
    """`parts` (relations) unioned by name, with every contract column present even if no file
    has it yet.

    `union_by_name` lets days written before a column was added read it as NULL; the empty,
    typed contract row does the same when *no* day has the column yet (a root written by an
    older release), so queries never fail to bind a column the contract promises.
    """
    if table not in SCHEMAS:
        return f"({' UNION ALL BY NAME '.join(parts)})"
    return "(" + " UNION ALL BY NAME ".join([*parts, _typed_empty(table)]) + ")"


def _duckdb_source(table: str) -> str:
    """Every day file of `table` (the `$src_<table>` glob), contract columns guaranteed."""
    return _with_contract_columns(
        table, [f"SELECT * FROM read_parquet($src_{table}, {_DAY_FILES})"])


class DuckDBEngine:
    """An in-memory DuckDB connection reading `ROOT/reports/<table>/date=*/*.parquet`.

    A query with a date span (`Query.span`) on a local root reads whole months from the
    monthly rollups where they are fresh (`jobs.analytics.rollups`), the other days from their
    partitions: the same figures from a fraction of the files and rows.
    """

    def __init__(self, root: str | Path, con: duckdb.DuckDBPyConnection | None = None, *,
                 use_rollups: bool = True):
        import duckdb

        self.root = check_root(root)
        self.local = not self.root.startswith("s3://")
        self.use_rollups = use_rollups and self.local
        self.con = con if con is not None else duckdb.connect()
        if self.root.startswith("s3://"):
            try:
                self.con.execute("LOAD httpfs")
                self.con.execute("CREATE SECRET IF NOT EXISTS (TYPE s3, PROVIDER credential_chain)")
            except duckdb.Error as exc:
                first_line = str(exc).splitlines()[0]
                raise UserError(
                    f"DuckDB cannot read {self.root} here ({first_line}); use --engine spark"
                ) from None

    def glob(self, table: str) -> str:
        """Parquet files of every day partition (`_tmp-*`/`_old-*` never match `date=*`)."""
        return partition_files_glob(self.root, table)

    def _sources(self, query: Query) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        """Each `{table}`'s SQL source, the values it binds, and notes (stale rollups)."""
        from jobs.analytics import rollups

        sources: dict[str, str] = {}
        values: dict[str, Any] = {}
        notes: list[str] = []
        plans: dict[str, rollups.TablePlan] = {}
        for table in query.tables:
            source = SEGMENT_CATEGORY if table == SEGMENT_DAYS else table
            months = source in COMPACTED or (source == SEGMENT_CATEGORY and query.month_rows)
            # A span on a local root: only the range's files are opened (rollups or not).
            if not (self.local and query.span and source in SCHEMAS):
                values[f"src_{source}"] = self.glob(source)
                sources[table] = (_duckdb_source(table) if table != SEGMENT_DAYS else
                                  "(" + q.SEGMENT_DAYS_SQL.format(
                                      segment_category=_duckdb_source(SEGMENT_CATEGORY)) + ")")
                continue
            if source not in plans:
                plans[source] = rollups.plan_table(self.root, source, *query.span,
                                                   use_rollups=self.use_rollups and months)
                if not plans[source].days_total:
                    self._raise_missing((source,))
                notes += [f"the {source} rollup of {month} is older than its day partitions: "
                          "read from the days (`checkout-age rollup` rebuilds it)"
                          for month in plans[source].stale]
            plan = plans[source]
            rollup = {SEGMENT_CATEGORY: SEGMENT_CATEGORY_MONTH}.get(table, table)
            parts = []
            if plan.day_files:
                values[f"days_{source}"] = plan.day_files
                days = f"SELECT * FROM read_parquet($days_{source}, {_DAY_FILES})"
                if table == SEGMENT_DAYS:
                    days = q.SEGMENT_DAYS_SQL.format(
                        segment_category=_with_contract_columns(SEGMENT_CATEGORY, [days]))
                parts.append(days)
            if plan.months:
                values[f"months_{rollup}"] = plan.rollup_files(rollup, self.root)
                parts.append(f"SELECT * FROM read_parquet($months_{rollup}, "
                             "union_by_name = true)")
            if table == SEGMENT_DAYS:
                parts = parts or ["SELECT CAST(NULL AS DATE) AS date, CAST(NULL AS VARCHAR) AS "
                                  "store_id, CAST(NULL AS BIGINT) AS all_receipts WHERE false"]
            sources[table] = _with_contract_columns(table, parts)
        return sources, values, notes

    def _prepared(self, query: Query) -> tuple[str, dict[str, Any], list[str]]:
        """`query`'s SQL for this root, the values it binds, and notes (stale rollups)."""
        sources, values, notes = self._sources(query)
        sql = query.render(sources)
        return sql, q.bound_values(sql, {**query.params, **values}), notes

    @contextlib.contextmanager
    def _reading(self, query: Query) -> Iterator[None]:
        """A table without partitions: a UserError naming it, not DuckDB's "No files found"."""
        import duckdb

        try:
            yield
        except duckdb.IOException as exc:
            if "No files found" in str(exc):
                self._raise_missing(query.tables)
            raise

    def run(self, query: Query) -> Result:
        """Execute `query`, binding its parameters and each table's files."""
        sql, values, notes = self._prepared(query)
        with self._reading(query):
            cursor = self.con.execute(sql, values)
        columns = [d[0] for d in cursor.description]
        return Result(query.name, columns, cursor.fetchall(), notes)

    def run_csv(self, query: Query) -> Result | None:
        """`query`'s rows as CSV written by DuckDB itself, or None when a column's type would
        print differently from `query_format.to_csv` (timestamps, REAL, booleans...).

        A year by store is 73,000 rows: turning them into Python tuples and back into text took
        longer than the query. DuckDB's writer prints DOUBLEs in the same shortest round-trip
        form as Python's `repr`, integers and ISO dates as they are, NULL as an empty field.
        """
        import tempfile

        sql, values, notes = self._prepared(query)
        with self._reading(query):
            relation = self.con.sql(sql, params=values)
        if not all(str(t) in _CSV_AS_PYTHON_WRITES for t in relation.types):
            return None
        with tempfile.TemporaryDirectory(prefix="checkout-age-csv-") as folder:
            target = Path(folder) / "answer.csv"
            quoted = str(target).replace("'", "''")
            written = self.con.execute(
                f"COPY ({sql}) TO '{quoted}' (FORMAT csv, HEADER true)", values).fetchone()
            with open(target, encoding="utf-8", newline="") as file:
                text = file.read()  # newline="": a quoted \r stays a \r
        return Result(query.name, list(relation.columns), [], notes, csv=text,
                      csv_rows=int(written[0]) if written else 0)

    def missing_days(self, table: str, date_from: dt.date, date_to: dt.date) -> list[str]:
        """Days of the range without a `table` partition (local roots; [] elsewhere)."""
        if self.root.startswith("s3://"):
            return []
        from jobs.analytics.rollups import list_days

        present = set(list_days(self.root, table))
        span = (date_to - date_from).days + 1
        return [day for i in range(span)
                if (day := (date_from + dt.timedelta(days=i)).isoformat()) not in present]

    def _raise_missing(self, tables: tuple[str, ...]) -> None:
        for table in dict.fromkeys(SEGMENT_CATEGORY if t == SEGMENT_DAYS else t for t in tables):
            found = self.con.execute("SELECT count(*) FROM glob(?)", [self.glob(table)]).fetchone()
            if not found or found[0] == 0:
                step = "`checkout-age drift`" if table == AGE_DRIFT else "the daily reports job"
                raise UserError(
                    f"no report data: {table_dir(self.root, table)} has no date=* partitions "
                    f"(has {step} run for this root?)"
                )


def run_query(engine: Engine, name: str, filters: Filters, *, as_csv: bool = False,
              **options: Any) -> Result:
    """Build query `name` (a key of ANCHOR_TABLE), run it, and explain an empty answer.

    Options: segments `by_store`; recommendations `min_support`, `top_n`, `kinds`; flags
    `likely_p`, `possible_p`; quality `by_lane` (no-face rate per store and lane).
    `as_csv`: the caller wants CSV; an engine that writes CSV itself (`run_csv`) may then
    return it as `Result.csv` instead of rows.
    Raises UserError for a range with no data or an unknown store/cashier.
    """
    kinds = tuple(options.get("kinds") or ("category", "product"))
    if name == "segments":
        query = q.segments_query(filters, by_store=options.get("by_store", False))
    elif name == "recommendations":
        if options["top_n"] < 1 or not 0 <= options["min_support"] <= 1:
            raise UserError("--top must be at least 1 and --min-support within 0..1")
        if filters.store is not None and "product" in kinds:
            if kinds == ("product",):
                raise UserError("product recommendations are chain-wide only: drop --store")
            kinds = ("category",)
        query = q.recommendations_query(
            filters, min_support=options["min_support"], top_n=options["top_n"],
            products="product" in kinds,
        )
    elif name == "flags":  # minor-tier thresholds: settings likely_minor_p, possible_minor_p
        tiers = {k: options[k] for k in ("likely_p", "possible_p") if options.get(k) is not None}
        query = q.flags_query(filters, **tiers)
    elif name == "quality" and options.get("by_lane"):
        query = q.lane_quality_query(filters)
    elif name in ("compliance", "quality"):
        query = {"compliance": q.compliance_query, "quality": q.quality_query}[name](filters)
    else:
        raise ValueError(f"unknown query {name!r}")
    shape = "quality-by-lane" if name == "quality" and options.get("by_lane") else name
    run_csv = getattr(engine, "run_csv", None)
    result = None
    if as_csv and run_csv is not None and shape in _ROWS_AS_SQL_RETURNS:
        result = run_csv(query)
    if result is None:
        result = engine.run(query)
    if name == "recommendations" and "category" not in kinds:
        kind = result.columns.index("kind")
        result.rows = [row for row in result.rows if row[kind] in kinds]
    if not result.row_count:
        explain_empty(engine, ANCHOR_TABLE[name], filters)
        result.notes.append(f"no rows match {filters.describe()}")
    elif name == "quality" and not options.get("by_lane"):
        result = add_quality_total(result)
    missing = getattr(engine, "missing_days", None)
    gaps = missing(ANCHOR_TABLE[name], filters.date_from, filters.date_to) if missing else []
    if gaps and result.row_count:  # reported, never skipped silently
        shown = ", ".join(gaps[:10]) + (f" and {len(gaps) - 10} more" if len(gaps) > 10 else "")
        result.notes.append(f"{len(gaps)} of {(filters.date_to - filters.date_from).days + 1} "
                            f"days have no {ANCHOR_TABLE[name]} data (not counted): {shown}")
    if name == "recommendations" and filters.date_from != filters.date_to:
        result.notes.append(
            "product rows pool the days each product was in that day's top list "
            "(days_listed of days); category rows are exact over the whole range"
        )
    return result


def explain_empty(engine: Engine, table: str, filters: Filters) -> None:
    """Raise UserError when an empty answer is due to missing data or an unknown id."""
    where, params = q.where_clause(filters)
    count = f"SELECT count(*) AS n FROM {{{table}}} WHERE "
    if engine.run(Query("probe", count + where, params)).rows[0][0] == 0:
        extent = engine.run(Query(
            "extent",
            f"SELECT CAST(min(date) AS STRING), CAST(max(date) AS STRING), "
            f"count(DISTINCT date) FROM {{{table}}}",
        )).rows[0]
        raise UserError(
            f"no {table} data for {filters.date_from}..{filters.date_to} "
            f"(the table has {extent[2]} days, {extent[0]} to {extent[1]})"
        )
    checks = (("store", "store_id", filters.store), ("cashier", "cashier_id", filters.cashier))
    for label, column, value in checks:
        if value is None or (column == "cashier_id" and table not in ("compliance",)):
            continue
        anywhere = engine.run(Query("probe", count + f"{column} = $value", {"value": value}))
        if anywhere.rows[0][0] == 0:
            sample = engine.run(Query(
                "sample", f"SELECT DISTINCT {column} FROM {{{table}}} ORDER BY 1 LIMIT 5"
            ))
            known = ", ".join(str(row[0]) for row in sample.rows)
            raise UserError(f"unknown {label} {value!r}: not in {table} on any day (e.g. {known})")
        in_range = engine.run(Query("probe", count + where + f" AND {column} = $value",
                                    {**params, "value": value}))
        if in_range.rows[0][0] == 0:
            raise UserError(
                f"{label} {value} has no {table} data for {filters.date_from}..{filters.date_to}"
            )
    if filters.store is not None and filters.cashier is not None and table == "compliance":
        pair = count + "store_id = $store AND cashier_id = $cashier"
        if engine.run(Query("probe", pair, {"store": filters.store,
                                            "cashier": filters.cashier})).rows[0][0] == 0:
            raise UserError(f"cashier {filters.cashier} never worked in store {filters.store}")


def add_quality_total(result: Result) -> Result:
    """Append a `total` row to per-day run_quality rows: counts summed, match_rate re-derived.

    Percentiles cannot be combined from daily percentiles, so the total row leaves them empty;
    age_group_counts are summed; settings and model version shown when they agree across days.
    """
    records = result.records()
    total: dict[str, Any] = dict.fromkeys(result.columns)
    total["date"] = "total"
    for column in q.QUALITY_COUNTS:
        total[column] = sum(r[column] or 0 for r in records)
    valid = total["receipts_valid"]
    total["match_rate"] = total["receipts_matched"] / valid if valid else None
    for column in ("model_version", "match_window_s", "challenge_age"):
        seen = sorted({r[column] for r in records if r[column] is not None}, key=str)
        if len(seen) == 1:
            total[column] = seen[0]
        elif column == "model_version" and seen:
            total[column] = "+".join(seen)  # several versions scored this range
    groups: dict[str, int] = {}
    for record in records:
        for group, photos in json.loads(record["age_group_counts"] or "{}").items():
            groups[group] = groups.get(group, 0) + int(photos)
    order = {name: i for i, name in enumerate(q.AGE_GROUP_NAMES)}
    total["age_group_counts"] = json.dumps(
        dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], 99))), ensure_ascii=False
    )
    rows = [*result.rows, tuple(total[c] for c in result.columns)]
    notes = [*result.notes, "total row: counts summed, match_rate from the sums; percentiles "
             "are per day only (they cannot be added)"]
    return Result(result.name, result.columns, rows, notes)

