"""The analysts' queries through Spark SQL, for report tables that outgrow one machine.

Same SQL text as the DuckDB engine (`jobs.analytics.query_sql`): each `{table}` becomes a temporary view over
`ROOT/reports/<table>` (partition discovery gives the `date` column and skips the in-flight
`_tmp-*`/`_old-*` directories, as it skips every name starting with `_`), and `$name`
parameters become Spark's named parameters `:name` (bound, never spliced into the text). The
empty-answer diagnosis and the quality total row are shared too (`jobs.analytics.query.run_query`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.analytics.query import Result, check_root, run_query
from jobs.analytics.query_sql import (
    SEGMENT_DAYS_SQL,
    Filters,
    Query,
    bound_values,
    named_markers,
)
from jobs.contract import SEGMENT_CATEGORY, SEGMENT_DAYS, table_dir
from model.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_root(root: str | Path) -> str:
    """A local data root checked to exist, or an s3 URL in Hadoop's `s3a://` form."""
    checked = check_root(root)
    return "s3a://" + checked[len("s3://"):] if checked.startswith("s3://") else checked


class SparkEngine:
    """Runs `Query` objects with `spark.sql`, one temporary view per report table."""

    def __init__(self, spark: SparkSession, root: str | Path):
        self.spark = spark
        self.root = spark_root(root)
        self._views: dict[str, str] = {}

    def _view(self, table: str) -> str:
        if table == SEGMENT_DAYS and table not in self._views:
            # Derived from the day rows (this engine reads day partitions, not rollups).
            frame = self.spark.sql(SEGMENT_DAYS_SQL.format(
                segment_category=self._view(SEGMENT_CATEGORY)))
            frame.createOrReplaceTempView("checkout_age_segment_days")
            self._views[table] = "checkout_age_segment_days"
        if table not in self._views:
            from pyspark.errors import AnalysisException

            base = table_dir(self.root, table)
            try:
                # Partition discovery skips `_tmp-*`/`_old-*` (names starting with `_`).
                # mergeSchema: days written before a column was added read it as NULL.
                frame = self.spark.read.option("mergeSchema", "true").parquet(base)
            except AnalysisException as exc:
                if any(code in str(exc) for code in ("PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA")):
                    raise UserError(
                        f"no report data: {base} has no date=* partitions "
                        "(has the daily reports job run for this root?)"
                    ) from None
                raise
            name = f"checkout_age_{table}"
            frame.createOrReplaceTempView(name)
            self._views[table] = name
        return self._views[table]

    def run(self, query: Query) -> Result:
        """Execute `query` with its parameters bound by Spark."""
        sql = query.render({table: self._view(table) for table in query.tables})
        args = bound_values(sql, query.params)
        frame = self.spark.sql(named_markers(sql, ":"), args=args)
        rows = [tuple(_aware(value) for value in row) for row in frame.collect()]
        return Result(query.name, list(frame.columns), rows)


def _aware(value: Any) -> Any:
    """PySpark returns timestamps as naive local times: make them UTC-aware like DuckDB's."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.astimezone(dt.UTC)
    return value


def run(root: str | Path, name: str, filters: Filters, *, master: str | None = None,
        **options: Any) -> Result:
    """Start (or reuse) a Spark session and answer query `name` like `jobs.analytics.query.run_query`."""
    from jobs.daily.spark import build_spark

    engine = SparkEngine(build_spark("checkout-age-query", master), root)
    return run_query(engine, name, filters, **options)
