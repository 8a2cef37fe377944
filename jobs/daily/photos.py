"""Pure transforms of the score job: which photos can be scored, and the two output tables.

Every photo id seen (a file, a metadata row, or both) ends up in exactly one of `photo_scores`
and `photo_quarantine`; reason codes are listed in docs/data-contract.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql import Column, Window
from pyspark.sql import functions as F

from jobs.contract import MAX_LANE_ID
from model.config import AGE_GROUPS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from model.evaluation.calibration import Calibration

MISSING_FILE = "missing_file"
NO_METADATA = "no_metadata"
BAD_METADATA = "bad_metadata"
DUPLICATE_PHOTO_ID = "duplicate_photo_id"
PHOTO_META_COLUMNS = ["photo_id", "store_id", "lane_id", "captured_at"]
TIMESTAMP_FORMATS = ("yyyy-MM-dd'T'HH:mm:ss.SSSX", "yyyy-MM-dd'T'HH:mm:ssX")


def parse_timestamp(col: str | Column) -> Column:
    """ISO 8601 UTC text (`...T09:12:33.120Z` or `...T09:12:33Z`) to TIMESTAMP; NULL if invalid."""
    col = F.col(col) if isinstance(col, str) else col
    return F.coalesce(*[F.try_to_timestamp(col, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS])


def age_group(age: str | Column) -> Column:
    """Retail age group (`model.config.AGE_GROUPS`) of an age in years; NULL for NULL."""
    age = F.col(age) if isinstance(age, str) else age
    expr = None
    for name, _low, high in AGE_GROUPS[:-1]:
        expr = (F.when(age < high, name) if expr is None else expr.when(age < high, name))
    return F.when(age.isNull(), None).otherwise(expr.otherwise(AGE_GROUPS[-1][0]))


def file_photo_ids(files: DataFrame) -> DataFrame:
    """`binaryFile` rows -> photo_id (file stem), path, content."""
    stem = F.regexp_extract("path", r"([^/]+?)(\.[^./]*)?$", 1)
    return files.select(stem.alias("photo_id"), "path", "content")


def check_photo_metadata(meta: DataFrame) -> DataFrame:
    """Typed metadata rows with `reason`/`detail` (NULL when usable) and `is_first` per photo id.

    Input: `read_csv_lines(photos.csv)` rows.
    """
    lane = F.col("lane_id").try_cast("int")
    bad_lane = lane.isNull() | (lane < 1) | (lane > MAX_LANE_ID)  # NaN, 1e10 (NULL) and 0 too
    captured = parse_timestamp("captured_at")
    first = Window.partitionBy("photo_id").orderBy("line_no")
    reason = (
        F.when(F.col("field_count") != len(PHOTO_META_COLUMNS), F.lit(BAD_METADATA))
        .when(F.col("store_id").isNull(), BAD_METADATA)
        .when(bad_lane, BAD_METADATA)
        .when(captured.isNull(), BAD_METADATA)
    )
    detail = (
        F.when(F.col("field_count") != len(PHOTO_META_COLUMNS),
               F.format_string("photos.csv line %d: %d fields, expected 4", "line_no", "field_count"))
        .when(F.col("store_id").isNull(), F.format_string("photos.csv line %d: no store_id", "line_no"))
        .when(lane.isNull(), F.format_string("photos.csv line %d: lane_id %s", "line_no", "lane_id"))
        .when(bad_lane, F.format_string(
            f"photos.csv line %d: lane_id %s is outside [1, {MAX_LANE_ID}]", "line_no", "lane_id"))
        .when(captured.isNull(),
              F.format_string("photos.csv line %d: captured_at %s", "line_no", "captured_at"))
    )
    photo_id = F.coalesce("photo_id", F.format_string("photos.csv:%d", "line_no"))
    return meta.select(
        photo_id.alias("photo_id"), "line_no", "store_id", lane.alias("lane_id"),
        captured.alias("captured_at"), reason.alias("reason"), detail.alias("detail"),
    ).withColumn("is_first", F.row_number().over(first) == 1)


def photo_inventory(files: DataFrame, meta: DataFrame, payload: str = "content") -> DataFrame:
    """One row per photo seen: metadata, the file's `payload` (NULL if not to be used), reason.

    Args:
        files: `file_photo_ids` rows, with `payload` "content" (the bytes to decode), or
            `jobs.daily.score_photos.score_files` rows, with `payload` "_face" (each file's
            verdict and age, scored before this join).
        meta: `check_photo_metadata` rows.
        payload: the files' column carried to the photos that are neither missing nor
            quarantined by their metadata.

    Returns:
        photo_id, store_id, lane_id, captured_at, `payload`, reason, detail. Later duplicate
        metadata rows and duplicate files are rows of their own with reason `duplicate_photo_id`.
    """
    kind = files.schema[payload].dataType
    ranked_files = files.withColumn(
        "is_first", F.row_number().over(Window.partitionBy("photo_id").orderBy("path")) == 1
    )
    # binaryFile gives NULL content for an empty file: make it empty bytes (not_an_image).
    carried = F.coalesce(payload, F.unhex(F.lit(""))) if payload == "content" else F.col(payload)
    firsts = meta.where("is_first").drop("is_first", "line_no").alias("m").join(
        ranked_files.where("is_first").select(
            "photo_id", F.lit(True).alias("_file"), carried.alias(payload)
        ).alias("f"),
        on="photo_id", how="full_outer",
    )
    reason = (
        F.when(F.col("f._file").isNull(), F.lit(MISSING_FILE))
        .when(F.col("m.reason").isNotNull(), F.col("m.reason"))
        .when(F.col("m.store_id").isNull() & F.col("m.captured_at").isNull(), NO_METADATA)
    )
    no_meta = F.col("m.store_id").isNull() & F.col("m.captured_at").isNull() & F.col(
        "m.reason").isNull()
    detail = (
        F.when(F.col("f._file").isNull(), F.lit("metadata row but no photo file"))
        .when(F.col("m.reason").isNotNull(), F.col("m.detail"))
        .when(no_meta, F.lit("photo file but no photos.csv row"))
    )
    main = firsts.select(
        "photo_id", "m.store_id", "m.lane_id", "m.captured_at",
        F.when(reason.isNull(), F.col(f"f.{payload}")).alias(payload),
        reason.alias("reason"), detail.alias("detail"),
    )
    dup_meta = meta.where("not is_first").select(
        "photo_id", "store_id", "lane_id", "captured_at", F.lit(None).cast(kind).alias(payload),
        F.lit(DUPLICATE_PHOTO_ID).alias("reason"),
        F.format_string("photos.csv line %d repeats this photo id", "line_no").alias("detail"),
    )
    dup_files = ranked_files.where("not is_first").select(
        "photo_id", F.lit(None).cast("string").alias("store_id"),
        F.lit(None).cast("int").alias("lane_id"), F.lit(None).cast("timestamp").alias("captured_at"),
        F.lit(None).cast(kind).alias(payload), F.lit(DUPLICATE_PHOTO_ID).alias("reason"),
        F.lit("a second photo file with this id").alias("detail"),
    )
    return main.unionByName(dup_meta).unionByName(dup_files)


def photo_scores(scored: DataFrame, model_version: str,
                 calibration: Calibration | None = None,
                 model_run_id: str | None = None) -> DataFrame:
    """Rows that got an age: the `photo_scores` table (calibration columns NULL without one;
    `model_run_id` NULL for a model that is not a registry version)."""
    age = F.col("age_pred_years").cast("double")
    return scored.where(F.col("reason").isNull()).select(
        "photo_id", "store_id", "lane_id", "captured_at",
        age.alias("age_pred_years"),
        age_group("age_pred_years").alias("age_group"),
        F.lit(model_version).alias("model_version"),
        F.lit(model_run_id).cast("string").alias("model_run_id"),
        *calibrated_columns(age, calibration),
        *face_columns(scored),
    )


FACE_COLUMNS = (("faces_found", "int"), ("face_x", "int"), ("face_y", "int"), ("face_w", "int"),
                ("face_h", "int"), ("face_confidence", "double"))


def face_columns(scored: DataFrame) -> list[Column]:
    """faces_found, the customer's face box (x, y, w, h, frame pixels) and the detector's
    confidence; NULL for face crops (nothing detected) and when `scored` lacks them."""
    return [(F.col(name) if name in scored.columns else F.lit(None)).cast(kind).alias(name)
            for name, kind in FACE_COLUMNS]


def calibrated_columns(age: Column, calibration: Calibration | None) -> list[Column]:
    """age_low, age_high, p_under_legal_age of estimated ages (NULLs without a calibration).

    The version's table (`model.calibration`) interpolated linearly on its grid, as in
    `Calibration.apply`, but as a Spark expression: no Python worker, no cost worth measuring.
    """
    names = ("age_low", "age_high", "p_under_legal_age")
    if calibration is None:
        return [F.lit(None).cast("double").alias(name) for name in names]
    grid = np.asarray(calibration.grid, dtype=float)
    step = float(grid[1] - grid[0])
    if not np.allclose(np.diff(grid), step):
        raise ValueError("calibration grid is not evenly spaced")
    position = (age - F.lit(float(grid[0]))) / F.lit(step)
    index = F.least(F.greatest(F.floor(position).cast("int"), F.lit(0)), F.lit(grid.size - 2))
    share = F.least(F.greatest(position - index, F.lit(0.0)), F.lit(1.0))

    def interp(values: np.ndarray) -> Column:
        # One SQL array literal: a Column per value would cost a driver-JVM round trip each.
        table = F.expr("array(" + ", ".join(f"{float(v)!r}D" for v in values) + ")")
        below, above = F.element_at(table, index + 1), F.element_at(table, index + 2)
        return below + share * (above - below)

    known = age.isNotNull() & ~F.isnan(age)  # greatest() skips NULLs: guard them explicitly
    return [F.when(known, age + interp(calibration.low_offset)).alias("age_low"),
            F.when(known, age + interp(calibration.high_offset)).alias("age_high"),
            F.when(known, interp(calibration.p_under)).alias("p_under_legal_age")]


def photo_quarantine(scored: DataFrame) -> DataFrame:
    """Rows that could not be scored: the `photo_quarantine` table (no bytes, no paths)."""
    return scored.where(F.col("reason").isNotNull()).select(
        "photo_id", "store_id", "lane_id", "captured_at", "reason", "detail"
    )
