"""The one place a SparkSession is built (jobs, tests and the benchmark all use it).

Local mode needs two process-level settings before the JVM starts: the Python that workers run
(the jobs venv's, or they fail with `No module named 'pandas'`) and a bind address (silences the
hostname warning). Everything else is Spark configuration: what the data contract needs is always
set; sizing for one machine's small data only where the cluster's configuration sets nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Arrow batches carry whole decoded images in the score job: keep them small.
DEFAULT_ARROW_BATCH_ROWS = 256


# JVM options of the driver (in local mode also the executor): a daily job lives a minute, too
# short for the JIT's optimising tier and the parallel collector to pay for their own CPU. Only
# the C1 tier and the serial collector cut the score job's JVM from 38-49 to 21-27 core-s on a
# 1,151-photo day, its wall time by 5-10 % (bench/results/bench_score_paths.json). An
# operator's own SPARK_SUBMIT_OPTS wins; cluster executors are not touched.
DRIVER_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def driver_jvm_options(python: str | None = None) -> str:
    """`DRIVER_JVM_OPTIONS` plus the jobs venv's class-data archive (`jobs.daily.jvm_archive`)."""
    from jobs.daily.jvm_archive import archive_options

    return f"{DRIVER_JVM_OPTIONS} {archive_options(python or sys.executable)}".strip()


def spark_env(python: str | None = None) -> dict[str, str]:
    """Environment a Spark driver or `spark-submit` process needs (merged over the caller's)."""
    python = python or sys.executable
    return {
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYTHONHASHSEED": "0",
        "SPARK_SUBMIT_OPTS": os.environ.get("SPARK_SUBMIT_OPTS", driver_jvm_options(python)),
    }


def launch_env() -> dict[str, str]:
    """The current environment plus `spark_env()`, for a `spark-submit` child process."""
    return {**os.environ, **spark_env()}


# Settings the data contract depends on: set whatever the cluster's configuration says (with a
# warning when it says otherwise). A day is a UTC day; timestamps are microseconds; partitions
# hold Parquet files only; pandas UDFs need Arrow.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
}


def tuning_defaults(shuffle_partitions: int = 4, driver_memory: str = "2g",
                    arrow_batch_rows: int = DEFAULT_ARROW_BATCH_ROWS) -> dict[str, str]:
    """Sizing for one machine's small data: applied only where the cluster sets nothing."""
    return {
        "spark.driver.memory": driver_memory,
        "spark.pyspark.python": sys.executable,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(arrow_batch_rows),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


def choose_conf(defaults: dict[str, str], preset: dict[str, str],
                extra_conf: dict[str, str] | None = None) -> dict[str, str]:
    """What `build_spark` sets: `defaults` where `preset` (the cluster's) has no value, then
    `REQUIRED_CONF` and the caller's `extra_conf` always (pure: no Spark needed)."""
    chosen = {key: value for key, value in defaults.items() if key not in preset}
    for key, value in REQUIRED_CONF.items():
        if key in preset and preset[key] != value:
            log.warning("overriding %s=%s from the cluster's configuration with %s (the data "
                        "contract needs it)", key, preset[key], value)
        chosen[key] = value
    return {**chosen, **(extra_conf or {})}


def _defaults_file() -> dict[str, str]:
    """`spark-defaults.conf` of this Spark (`SPARK_CONF_DIR`, else `SPARK_HOME/conf`)."""
    from pyspark.find_spark_home import _find_spark_home

    folder = os.environ.get("SPARK_CONF_DIR") or os.path.join(_find_spark_home(), "conf")
    path = os.path.join(folder, "spark-defaults.conf")
    values = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                parts = line.strip().split(None, 1)
                if len(parts) == 2 and not parts[0].startswith("#"):
                    values[parts[0]] = parts[1].strip()
    return values


def cluster_conf(launch: dict[str, str]) -> dict[str, str]:
    """Every `spark.*` setting the cluster already gives (spark-defaults.conf, `--conf`).

    Under spark-submit the JVM is running and holds them. Otherwise this process starts it now,
    passing `launch` (settings that only work at JVM start, e.g. driver memory) for the keys the
    defaults file does not set.
    """
    from pyspark import SparkConf, SparkContext

    if SparkContext._gateway is None:
        start = SparkConf(loadDefaults=False)
        if "PYSPARK_GATEWAY_PORT" not in os.environ:  # no spark-submit: the JVM starts here
            in_file = _defaults_file()
            for key, value in launch.items():
                if key not in in_file:
                    start.set(key, value)
        SparkContext._ensure_initialized(conf=start)
    return dict(SparkConf().getAll())  # the JVM's spark.* system properties


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

    The cluster's configuration wins: `tuning_defaults` fill only the settings that
    `spark-defaults.conf` and `spark-submit --conf` leave unset; `REQUIRED_CONF` is always set.

    Args:
        app_name: shown in the Spark UI and logs.
        master: e.g. `local[*]`; None keeps what `spark-submit --master` already set.
        shuffle_partitions: a day of one chain is small data; the default 200 only adds overhead.
        driver_memory: effective only when this call launches the JVM (tests, benchmark).
        arrow_batch_rows: rows per Arrow batch sent to Python UDFs.
        extra_conf: settings the caller insists on (they win over the cluster's).

    Returns:
        The session (UTC time zone, microsecond Parquet timestamps, ANSI mode on).
    """
    for key, value in spark_env().items():
        # Only matters when this process launches the JVM; spark-submit callers set them already.
        os.environ.setdefault(key, value)
    from pyspark.sql import SparkSession

    defaults = tuning_defaults(shuffle_partitions, driver_memory, arrow_batch_rows)
    preset = cluster_conf({"spark.driver.memory": defaults["spark.driver.memory"]})
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in choose_conf(defaults, preset, extra_conf).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def set_unless_configured(spark: SparkSession, key: str, value: str) -> None:
    """A job's runtime SQL setting, unless the cluster's configuration already sets `key`."""
    if not spark.sparkContext.getConf().contains(key):
        spark.conf.set(key, value)


def emit_result(result: dict, result_json: str | None) -> None:
    """Print a job's result as one JSON line (the CLI reads it), and save it where asked."""
    text = json.dumps(result, sort_keys=True, default=str)
    if result_json:
        with open(result_json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    sys.stdout.write(text + "\n")
