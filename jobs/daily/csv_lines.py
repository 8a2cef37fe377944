"""Reading landing CSV files row by row with line numbers, so a bad row can be named exactly.

Spark's CSV reader drops or nulls bad rows silently and forgets where they were. The landing
files without quoting (receipts, lines, photo metadata: docs/data-contract.md) are read as text
instead: each line keeps its number (header = line 1) and its fields as trimmed strings, and the
caller decides what is wrong with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# monotonically_increasing_id() = partition index << 33 | row index within the partition.
_ROW_BITS = 33


def read_csv_lines(spark: SparkSession, path: str, columns: list[str]) -> DataFrame:
    """Data rows of the headered, unquoted CSV file `path`.

    Returns:
        `line_no` (int, header = 1), `field_count`, one string column per name in `columns`
        (trimmed, empty -> NULL; missing fields NULL) and `raw` (the line as read).

    Raises:
        UserError: the file is missing or its header is not `columns`.
    """
    from pyspark.sql import functions as F

    try:
        text = spark.read.text(path)
    except Exception as exc:  # AnalysisException: PATH_NOT_FOUND
        raise UserError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None
    numbered = text.select(
        F.spark_partition_id().alias("_part"),
        F.monotonically_increasing_id().alias("_id"),
        F.regexp_replace("value", "\r$", "").alias("raw"),
    )
    # Splits of one file become partitions in file order, so offsets per partition give line
    # numbers (a small file is one partition: nothing to count).
    offsets = [0]
    if text.rdd.getNumPartitions() > 1:
        numbered = numbered.cache()
        counts = dict(numbered.groupBy("_part").count().collect())
        offsets, total = [], 0
        for part in range(max(counts, default=-1) + 1):
            offsets.append(total)
            total += counts.get(part, 0)
    offset = F.element_at(F.array(*[F.lit(o) for o in offsets]), F.col("_part") + 1)
    line_no = (offset + F.col("_id") - F.shiftleft(F.col("_part").cast("long"), _ROW_BITS) + 1)
    lines = numbered.select(line_no.cast("int").alias("line_no"), "raw")
    first = lines.where("line_no = 1").first()
    if first is None:
        raise UserError(f"{path}: empty file (no header)")
    header = first["raw"].lstrip("\ufeff")
    expected = ",".join(columns)
    if header.replace(" ", "") != expected:
        raise UserError(f"{path}: header is {header!r}, expected {expected!r}")
    fields = F.split("raw", ",", -1)
    return lines.where("line_no > 1").select(
        "line_no",
        F.size(fields).alias("field_count"),
        *[
            F.nullif(F.trim(F.get(fields, i)), F.lit("")).alias(name)
            for i, name in enumerate(columns)
        ],
        "raw",
    )
