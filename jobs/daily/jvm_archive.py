"""A class-data sharing archive of Spark's classes for the driver JVM (made once, at setup).

Every daily job is a fresh `spark-submit` whose JVM loads and verifies some 10,000 classes
before it does any work: most of a small day's fixed cost. Java's class-data sharing (CDS)
maps classes already parsed and verified from an archive file instead. The archive is made once
per jobs venv (`make setup` runs `python -m jobs.daily.jvm_archive`): a small Spark workload
that touches what the jobs use (CSV, binary files, an Arrow pandas UDF, joins, Parquet written
and read back) runs with `-XX:ArchiveClassesAtExit`, and the archive is moved into place whole.

The JVM checks the archive against its own build and the class path (each jar's size and
time); on any mismatch (Java or pyspark upgraded) it warns on stderr and loads classes as
usual; a missing archive is silently ignored. A half-written archive would crash the JVM,
hence the rename: an archive file is complete or absent. Measured gain on the score job:
bench/results/bench_score_scale-fixed.json, docs/serving.md.
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ARCHIVE_NAME = "spark-cds.jsa"  # beside the venv's bin/, lib/: it describes that venv's jars
# JVM warnings (an archive that no longer matches, among others) go to stderr: a job's stdout
# carries its one JSON result line.
_WARNINGS_TO_STDERR = "-Xlog:disable -Xlog:all=warning:stderr"

log = logging.getLogger(__name__)


def archive_path(python: str | os.PathLike) -> Path:
    """Where the archive of the venv holding `python` (its `bin/python`) lives."""
    return Path(python).parent.parent / ARCHIVE_NAME


def archive_options(python: str | os.PathLike) -> str:
    """JVM options that use the venv's archive (nothing when the path cannot be one option)."""
    path = archive_path(python)
    if any(char.isspace() for char in str(path)):  # SPARK_SUBMIT_OPTS is split on whitespace
        return ""
    return f"-XX:SharedArchiveFile={path} {_WARNINGS_TO_STDERR}"


def run_workload(spark, folder: Path) -> int:  # spark: SparkSession
    """A little of everything the daily jobs ask of Spark; returns the rows read back."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    csv = folder / "receipts.csv"
    csv.write_text("receipt_id,store_id,amount\n" + "".join(
        f"r{i},s{i % 3},{i * 1.5}\n" for i in range(200)))
    photos = folder / "photos"
    photos.mkdir()
    for i in range(8):
        (photos / f"p{i}.bin").write_bytes(bytes([i]) * 64)

    @pandas_udf("long")
    def length(content: pd.Series) -> pd.Series:
        return content.map(len)

    receipts = spark.read.csv(str(csv), header=True,
                              schema="receipt_id string, store_id string, amount double")
    files = (spark.read.format("binaryFile").load(str(photos))
             .select(F.element_at(F.split("path", "/"), -1).alias("name"),
                     length("content").alias("bytes")))
    stores = receipts.groupBy("store_id").agg(F.sum("amount").alias("store_amount"),
                                             F.count("*").alias("receipts"))
    joined = (receipts.join(stores, "store_id")
              .withColumn("date", F.lit("2026-01-01"))
              .withColumn("share", F.col("amount") / F.col("store_amount")))
    out = folder / "table"
    joined.write.mode("overwrite").partitionBy("date").parquet(str(out))
    files.write.mode("overwrite").parquet(str(folder / "files"))
    return spark.read.parquet(str(out)).count() + spark.read.parquet(str(folder / "files")).count()


def build(python: str | os.PathLike = sys.executable, target: Path | None = None,
          timeout_s: float = 600) -> Path:
    """Make the venv's archive: the workload under spark-submit, dumped at exit, moved in place.

    Args:
        python: the jobs venv's `bin/python` (its `spark-submit` runs the workload).
        target: where the archive goes (default: `archive_path(python)`).
        timeout_s: the workload's limit.

    Raises:
        RuntimeError: spark-submit failed or wrote no archive (the end of its output attached).
    """
    from jobs.daily.spark import DRIVER_JVM_OPTIONS, launch_env

    target = Path(target) if target is not None else archive_path(python)
    submit = Path(python).parent / "spark-submit"
    with tempfile.TemporaryDirectory(prefix=".jvm-archive-", dir=target.parent) as tmp:
        partial = Path(tmp) / ARCHIVE_NAME
        env = {**launch_env(), "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python),
               "SPARK_SUBMIT_OPTS": f"{DRIVER_JVM_OPTIONS} -XX:ArchiveClassesAtExit={partial}"}
        done = subprocess.run([str(submit), "--master", "local[2]", __file__, "--workload", tmp],
                              env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not partial.is_file():
            output = (done.stdout + done.stderr).splitlines()
            raise RuntimeError(f"making the JVM archive failed (exit {done.returncode}):\n"
                               + "\n".join(line for line in output if "[cds" not in line)[-3000:])
        os.replace(partial, target)  # complete or absent: a partial archive crashes the JVM
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.daily.jvm_archive`: make this venv's archive (or, under spark-submit,
    run the workload)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workload:
        from jobs.daily.spark import build_spark

        spark = build_spark("checkout-age-jvm-archive")
        rows = run_workload(spark, Path(args.workload))
        spark.stop()
        log.info("workload read back %d rows", rows)
        return 0
    path = build()
    log.info("JVM archive %s (%.0f MiB)", path, path.stat().st_size / 2**20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
