"""Monthly rollups of the report tables, and which of them a query may use.

A year of a 500-store chain is 365 day partitions per table and ~31 M `segment_category` rows;
the rollups (`jobs.contract.ROLLUP_SCHEMAS`) answer the same queries from 12 files per table and,
for `segment_category`, from a month's sums per store instead of its days' rows.

Freshness is checked on every read, never assumed: a rollup month records the day files it was
built from (`_sources.json`: name, size and modification time of each file), and `plan_table`
uses it only while the month's day partitions are exactly those files. A rerun of one day, a day
added late or a day deleted makes the month stale: queries read its day partitions (the same
figures, slower) until `build_month` (the daily run's `rollup` step, or `checkout-age rollup`)
rebuilds it. Rollups are written on local data roots; elsewhere queries read the days.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.analytics.query_sql import exact_sum
from jobs.contract import (
    COMPACTED,
    ROLLUP_SCHEMAS,
    ROLLUP_SOURCE,
    ROLLUP_SOURCES,
    SCHEMAS,
    SEGMENT_CATEGORY,
    SEGMENT_CATEGORY_MONTH,
    SEGMENT_DAYS,
    is_local,
    rollup_relpath,
)
from model.errors import UserError

if TYPE_CHECKING:
    import duckdb

# The rollups built from each source table (one build writes all of them).
OUTPUTS: dict[str, tuple[str, ...]] = {}
for _rollup, _source in ROLLUP_SOURCE.items():
    OUTPUTS.setdefault(_source, ())
    OUTPUTS[_source] += (_rollup,)


def month_of(day: dt.date) -> str:
    """`YYYY-MM` of `day`."""
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of `YYYY-MM`."""
    year, number = (int(part) for part in month.split("-"))
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


def list_days(root: str, table: str) -> dict[str, list[os.DirEntry]]:
    """`{YYYY-MM-DD: [parquet file entries]}` of `ROOT/reports/<table>/date=*` (local roots)."""
    base = Path(root) / "reports" / table
    days: dict[str, list[os.DirEntry]] = {}
    if not base.is_dir():
        return days
    with os.scandir(base) as entries:
        for entry in entries:
            if entry.is_dir() and entry.name.startswith("date="):
                with os.scandir(entry.path) as files:
                    days[entry.name[5:]] = sorted(
                        (f for f in files if f.name.endswith(".parquet")), key=lambda f: f.name)
    return days


def fingerprint(files: list[os.DirEntry]) -> str:
    """What a day partition is made of: each file's name, size and modification time (ns)."""
    parts = []
    for entry in files:
        stat = entry.stat()
        parts.append(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


@dataclass
class TablePlan:
    """Where one table's rows for a date range come from."""

    table: str
    day_files: list[str] = field(default_factory=list)  # days not covered by a fresh rollup
    months: list[str] = field(default_factory=list)  # fresh rollup months used
    stale: list[str] = field(default_factory=list)  # months with a rollup that is out of date
    days_total: int = 0  # day partitions the table has, in the range or not

    def rollup_files(self, rollup: str, root: str) -> list[str]:
        """The Parquet files of `rollup` for the months used."""
        return [f"{root}/{rollup_relpath(rollup, month)}/part-0.parquet" for month in self.months]


def read_sources(root: str, rollup: str, month: str) -> dict | None:
    """The `_sources.json` of a rollup month, or None when the month has no rollup."""
    path = Path(root) / rollup_relpath(rollup, month) / ROLLUP_SOURCES
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def plan_table(root: str, table: str, date_from: dt.date, date_to: dt.date, *,
               use_rollups: bool = True) -> TablePlan:
    """Fresh rollup months fully inside the range, and the day files of every other day in it.

    A table without rollups (or `use_rollups` False) gets the day files of the range only.
    """
    days = list_days(root, table)
    plan = TablePlan(table, days_total=len(days))
    in_range = sorted(d for d in days if date_from.isoformat() <= d <= date_to.isoformat())
    covered: set[str] = set()
    months = sorted({d[:7] for d in in_range}) if use_rollups and table in OUTPUTS else []
    for month in months:
        first, last = month_days(month)
        if first < date_from or last > date_to:
            continue
        month_in = {d: fingerprint(days[d]) for d in in_range if d.startswith(month)}
        states = [read_sources(root, rollup, month) for rollup in OUTPUTS[table]]
        if all(s is not None and s.get("days") == month_in for s in states):
            plan.months.append(month)
            covered.update(month_in)
        elif any(s is not None for s in states):
            plan.stale.append(month)
    plan.day_files = [f.path for d in in_range if d not in covered for f in days[d]]
    return plan


# -- building --------------------------------------------------------------------------------------

_DUCKDB = {"string": "VARCHAR", "int32": "INTEGER", "int64": "BIGINT", "double": "DOUBLE",
           "timestamp[us, tz=UTC]": "TIMESTAMPTZ", "date32[day]": "DATE", "bool": "BOOLEAN"}


def _select(rollup: str) -> str:
    """The rollup's columns, cast to its contract types (DuckDB sums BIGINT into HUGEINT)."""
    return ", ".join(f"CAST({f.name} AS {_DUCKDB[str(f.type)]}) AS {f.name}"
                     for f in ROLLUP_SCHEMAS[rollup])


def rollup_sql(rollup: str, month: str) -> str:
    """SQL over `base` (the month's day rows, with `date`) that yields the rollup's rows."""
    if rollup == SEGMENT_DAYS:
        return (f"SELECT {_select(rollup)} FROM (SELECT date, store_id, max(all_receipts) AS "
                "all_receipts FROM base GROUP BY date, store_id) ORDER BY store_id, date")
    if rollup == SEGMENT_CATEGORY_MONTH:
        # Each repeated total is taken once per store and day, then summed over the month.
        return f"""WITH
segments AS (SELECT store_id, age_group, sum(s) AS segment_receipts,
                    {exact_sum("r", 2)} AS segment_revenue_rub
  FROM (SELECT date, store_id, age_group, max(segment_receipts) AS s,
               max(segment_revenue_rub) AS r FROM base GROUP BY date, store_id, age_group)
  GROUP BY store_id, age_group),
categories AS (SELECT store_id, category, sum(c) AS category_receipts
  FROM (SELECT date, store_id, category, max(category_receipts) AS c FROM base
        GROUP BY date, store_id, category) GROUP BY store_id, category),
stores AS (SELECT store_id, sum(a) AS all_receipts
  FROM (SELECT date, store_id, max(all_receipts) AS a FROM base GROUP BY date, store_id)
  GROUP BY store_id),
cells AS (SELECT store_id, age_group, category, sum(receipts) AS receipts, sum(units) AS units,
                 {exact_sum("revenue_rub", 2)} AS revenue_rub FROM base
  GROUP BY store_id, age_group, category)
SELECT {_select(rollup).replace("CAST(date AS DATE)", f"DATE '{month}-01'")}
FROM cells JOIN segments USING (store_id, age_group) JOIN categories USING (store_id, category)
JOIN stores USING (store_id)
ORDER BY store_id, age_group, category"""
    order = "store_id, date" if "store_id" in SCHEMAS[rollup].names else "date"
    return f"SELECT {_select(rollup)} FROM base ORDER BY {order}"


def _write(root: str, rollup: str, month: str, con: duckdb.DuckDBPyConnection, sql: str,
           sources: dict) -> Path:
    from jobs.daily.local_partition import replace_partition_dir

    table = con.sql(sql).to_arrow_table().cast(ROLLUP_SCHEMAS[rollup])
    return replace_partition_dir(Path(root) / rollup_relpath(rollup, month), table,
                                 {ROLLUP_SOURCES: json.dumps(sources, sort_keys=True) + "\n"})


def build_month(root: str, table: str, month: str) -> list[str]:
    """Rebuild every rollup of source `table` for `month` from its day partitions.

    A month without day partitions loses its rollups. Returns the rollups written.
    """
    import duckdb

    if not is_local(root):
        raise UserError(f"rollups are built on local data roots only, not {root}")
    first, last = month_days(month)
    days = {d: files for d, files in list_days(root, table).items()
            if first.isoformat() <= d <= last.isoformat()}
    if not days:
        for rollup in OUTPUTS[table]:
            shutil.rmtree(Path(root) / rollup_relpath(rollup, month), ignore_errors=True)
        return []
    sources = {"source": table, "days": {d: fingerprint(f) for d, f in sorted(days.items())}}
    con = duckdb.connect()
    files = [f.path for d in sorted(days) for f in days[d]]
    # A view cannot take parameters: the paths (listed above, not user text) are quoted instead.
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    con.execute(
        f"CREATE TEMP VIEW base AS SELECT * FROM read_parquet([{listed}], hive_partitioning = "
        "true, hive_types = {'date': DATE}, union_by_name = true)")
    written = []
    for rollup in OUTPUTS[table]:
        _write(root, rollup, month, con, rollup_sql(rollup, month), sources)
        written.append(rollup)
    con.close()
    return written


@dataclass
class RollupRun:
    """What `refresh` did for one source table and month."""

    table: str
    month: str
    action: str  # built | fresh | removed


def refresh(root: str, date_from: dt.date, date_to: dt.date, *, force: bool = False
            ) -> list[RollupRun]:
    """Rebuild the rollups of every month touching the range whose days changed (or all: force).

    The daily run calls it for its own day, so a rerun of one day updates that day's month.
    """
    root = str(Path(root).resolve()) if is_local(root) else root
    runs = []
    months = sorted({month_of(date_from + dt.timedelta(days=i))
                     for i in range((date_to - date_from).days + 1)})
    for table in (SEGMENT_CATEGORY, *COMPACTED):
        days = list_days(root, table)
        for month in months:
            current = {d: fingerprint(f) for d, f in days.items() if d.startswith(month)}
            states = [read_sources(root, rollup, month) for rollup in OUTPUTS[table]]
            if not current and all(s is None for s in states):
                continue  # nothing there, nothing built
            if not force and all(s is not None and s.get("days") == current for s in states):
                runs.append(RollupRun(table, month, "fresh"))
                continue
            written = build_month(root, table, month)
            runs.append(RollupRun(table, month, "built" if written else "removed"))
    return runs
