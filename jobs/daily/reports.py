"""Job 2: join the day's receipts to the scored photos and write the report tables.

    <venv>/bin/spark-submit --master 'local[*]' jobs/daily/reports.py --date 2026-03-14 --root var/data

(`checkout-age reports` builds this command; Airflow's SparkSubmitOperator runs the same.)
Needs the day's landing files (`_COMPLETE`) and its `photo_scores` partition (job 1). Replaces
the day's partitions of receipt_quarantine, product_quarantine, receipt_ages, segment_category,
recommendations, compliance, compliance_flags and run_quality (docs/data-contract.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobs import contract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("jobs.daily.reports")

# The tables this job writes, in writing order (names and columns: jobs.contract).
REPORT_TABLES = (
    contract.RECEIPT_QUARANTINE, contract.PRODUCT_QUARANTINE, contract.RECEIPT_AGES,
    contract.SEGMENT_CATEGORY, contract.RECOMMENDATIONS, contract.COMPLIANCE,
    contract.COMPLIANCE_FLAGS, contract.RUN_QUALITY,
)


def read_products(spark: SparkSession, path: str) -> DataFrame:
    """`products.csv` as strings (quoted CSV; Spark's reader handles the quoting).

    A row with the wrong number of fields keeps its text in `_corrupt_record`; `_row` is the
    file order (one small file: one partition, so the increasing id follows the rows).
    """
    from pyspark.sql import functions as F

    from jobs.daily.receipts import PRODUCT_COLUMNS

    schema = ", ".join(f"{name} string" for name in [*PRODUCT_COLUMNS, "_corrupt_record"])
    rows = spark.read.csv(path, header=True, schema=schema, mode="PERMISSIVE",
                          columnNameOfCorruptRecord="_corrupt_record")
    return rows.withColumn("_row", F.monotonically_increasing_id())


def build_reports(
    scores: DataFrame, photo_quarantine: DataFrame, receipts_raw: DataFrame,
    lines_raw: DataFrame, products_raw: DataFrame, *, run_date: str, match_window_s: int,
    challenge_age: int, min_support: float, top_n: int,
    persist: Callable[[DataFrame], DataFrame] = lambda frame: frame,
) -> dict[str, DataFrame]:
    """All report tables of one day from its inputs (no I/O: DataFrames in, DataFrames out).

    `persist` is applied to the intermediate frames several tables reuse; the caller decides
    (the job passes `DataFrame.cache`, which it clears after writing; tests need nothing).
    """
    from jobs.daily import compliance, quality, receipts, segments
    from jobs.daily.match_receipts import match_receipts

    checked_products = persist(receipts.check_products(products_raw))
    products = receipts.catalogue(checked_products)
    checked_receipts = persist(receipts.check_receipts(receipts_raw, run_date))
    checked_lines = persist(receipts.check_lines(lines_raw, checked_receipts, products))
    valid_receipts = checked_receipts.where("reason IS NULL")
    items = persist(segments.receipt_items(checked_lines.where("reason IS NULL"), products))
    receipt_ages = persist(match_receipts(valid_receipts, scores, match_window_s))
    restricted = compliance.restricted_sales(items)
    return {
        contract.RECEIPT_QUARANTINE: receipts.receipt_quarantine(checked_receipts, checked_lines),
        contract.PRODUCT_QUARANTINE: receipts.product_quarantine(checked_products),
        contract.RECEIPT_AGES: receipt_ages,
        contract.SEGMENT_CATEGORY: segments.segment_category(receipt_ages, items),
        contract.RECOMMENDATIONS: segments.recommendations(receipt_ages, items, min_support, top_n),
        contract.COMPLIANCE: compliance.compliance(receipt_ages, restricted, challenge_age),
        contract.COMPLIANCE_FLAGS: compliance.compliance_flags(receipt_ages, restricted, challenge_age),
        contract.RUN_QUALITY: quality.run_quality(
            scores, photo_quarantine, checked_receipts, checked_lines, receipt_ages,
            match_window_s, challenge_age, products=checked_products,
        ),
    }


def run(spark: SparkSession, *, root: str, run_date: str, match_window_s: int,
        challenge_age: int, min_support: float, top_n: int) -> dict:
    """Read day `run_date`, build every report table, replace its partitions; return run_quality."""
    from jobs.contract import partition_dir
    from jobs.daily.csv_lines import read_csv_lines
    from jobs.daily.pause_points import pause_point
    from jobs.daily.receipts import LINE_COLUMNS, RECEIPT_COLUMNS
    from jobs.daily.storage import path_exists, require_complete_day, write_partition
    from model.errors import UserError

    landing = require_complete_day(spark, root, run_date)
    scores_dir = partition_dir(root, contract.PHOTO_SCORES, run_date)
    quarantine_dir = partition_dir(root, contract.PHOTO_QUARANTINE, run_date)
    if not (path_exists(spark, scores_dir) and path_exists(spark, quarantine_dir)):
        raise UserError(f"{scores_dir} not found: run `checkout-age score --date {run_date}` first")
    tables = build_reports(
        spark.read.parquet(scores_dir),
        spark.read.parquet(quarantine_dir),
        read_csv_lines(spark, f"{landing}/receipts.csv", RECEIPT_COLUMNS),
        read_csv_lines(spark, f"{landing}/receipt_lines.csv", LINE_COLUMNS),
        read_products(spark, f"{landing}/products.csv"),
        run_date=run_date, match_window_s=match_window_s, challenge_age=challenge_age,
        min_support=min_support, top_n=top_n, persist=lambda frame: frame.cache(),
    )
    pause_point("reports:read")
    for table in REPORT_TABLES:
        write_partition(tables[table], root, table, run_date)
    quality_row = spark.read.parquet(partition_dir(root, contract.RUN_QUALITY, run_date)).first()
    spark.catalog.clearCache()
    summary = {"date": run_date, **quality_row.asDict()}
    log.info("reports for %s: %s", run_date, summary)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of the spark-submit application (defaults from `load_settings()`)."""
    from jobs.daily.arguments import add_reports_arguments, job_arg_parser
    from model.config import load_settings

    settings = load_settings()
    parser = job_arg_parser("reports.py", __doc__.splitlines()[0], "report", settings.data_root)
    add_reports_arguments(parser, settings)
    return parser.parse_args(argv)


def run_job(args: argparse.Namespace, session: Callable[[], SparkSession]) -> dict:
    """Build the reports of the days of `args` (`parse_args`) in `session()`; the result.

    The session is asked for only when a day can run (its lock taken), so a run with nothing
    to do starts no JVM.

    Raises:
        UserError: a one-day run that cannot run.
    """
    from jobs.contract import normalise_root
    from jobs.daily.day_range import day_range, run_days
    from jobs.daily.run_lock import day_lock

    days = day_range(args.date, args.date_to)

    def report_day(day: str) -> dict:
        with day_lock(args.root, day, "reports"):  # one run of a day at a time
            return run(
                session(), root=normalise_root(args.root), run_date=day,
                match_window_s=args.match_window_s, challenge_age=args.challenge_age,
                min_support=args.min_support, top_n=args.top_n,
            )

    return run_days(days, report_day)


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit."""
    from functools import cache

    from jobs.daily.spark import build_spark, emit_result
    from model.errors import UserError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        summary = run_job(args, cache(lambda: build_spark("checkout-age-reports", args.master)))
    except UserError as exc:
        log.error("%s", exc)
        return 2
    emit_result(summary, args.result_json)
    return 2 if summary.get("failed") else 0


if __name__ == "__main__":
    # Re-enter through the package module so UDFs pickle by reference (see score_photos.py).
    from jobs.daily.reports import main as package_main

    sys.exit(package_main())
