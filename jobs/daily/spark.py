"""The one place a SparkSession is built (jobs, tests and the benchmark all use it).

Local mode needs two process-level settings before the JVM starts: the Python that workers run
(the jobs venv's, or they fail with `No module named 'pandas'`) and a bind address (silences the
hostname warning). Everything else is Spark configuration, sized for one machine's small data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Arrow batches carry whole decoded images in the score job: keep them small.
DEFAULT_ARROW_BATCH_ROWS = 256


def spark_env(python: str | None = None) -> dict[str, str]:
    """Environment a Spark driver or `spark-submit` process needs (merged over the caller's)."""
    python = python or sys.executable
    return {
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONHASHSEED": "0",
    }


def launch_env() -> dict[str, str]:
    """The current environment plus `spark_env()`, for a `spark-submit` child process."""
    return {**os.environ, **spark_env()}


def build_spark(
    app_name: str,
    master: str | None = None,
    *,
    shuffle_partitions: int = 4,
    driver_memory: str = "2g",
    arrow_batch_rows: int = DEFAULT_ARROW_BATCH_ROWS,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Get or create a SparkSession for checkout-age.

    Args:
        app_name: shown in the Spark UI and logs.
        master: e.g. `local[*]`; None keeps what `spark-submit --master` already set.
        shuffle_partitions: a day of one chain is small data; the default 200 only adds overhead.
        driver_memory: effective only when this call launches the JVM (tests, benchmark).
        arrow_batch_rows: rows per Arrow batch sent to Python UDFs.
        extra_conf: any further Spark settings.

    Returns:
        The session (UTC time zone, microsecond Parquet timestamps, ANSI mode on).
    """
    for key, value in spark_env().items():
        # Only matters when this process launches the JVM; spark-submit callers set them already.
        os.environ.setdefault(key, value)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    conf = {
        "spark.driver.memory": driver_memory,
        "spark.pyspark.python": sys.executable,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(arrow_batch_rows),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Parquet files only: no _SUCCESS markers inside partitions.
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    }
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def job_arg_parser(prog: str, description: str, what: str, data_root: str) -> argparse.ArgumentParser:
    """The arguments every spark-submit application of ours takes (`--date`, `--root`, ...)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--date", required=True, help=f"day to {what}, YYYY-MM-DD")
    parser.add_argument("--root", default=data_root, help="data root (path or s3a://)")
    parser.add_argument("--master", default=None, help="Spark master when run without spark-submit")
    parser.add_argument("--result-json", default=None, help="also write the result JSON here")
    return parser


def emit_result(result: dict, result_json: str | None) -> None:
    """Print a job's result as one JSON line (the CLI reads it), and save it where asked."""
    text = json.dumps(result, sort_keys=True, default=str)
    if result_json:
        with open(result_json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    sys.stdout.write(text + "\n")
