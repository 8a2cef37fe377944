"""Pure transform: one `run_quality` row per day, every count the contract says must add up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from model.serving.reasons import DETECTOR_REASONS, NO_FACE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame



def no_face_rate() -> Column:
    """Share of the day's frames where no face was found: no_face / frames the detector saw
    (scored frames + detector quarantines); NULL on a day without frames (crops only)."""
    frames = F.col("_frames_scored") + F.col("_frames_quarantined")
    return F.when(frames > 0, F.col("_no_face") / frames)


def run_quality(scores: DataFrame, photo_quarantine: DataFrame, receipts: DataFrame,
                lines: DataFrame, receipt_ages: DataFrame, match_window_s: int,
                challenge_age: int, *, products: DataFrame) -> DataFrame:
    """The day's data-quality row.

    Args:
        scores: `photo_scores` of the day.
        photo_quarantine: `photo_quarantine` of the day.
        receipts: `check_receipts` output (all rows, reason NULL when valid).
        lines: `check_lines` output (all rows).
        receipt_ages: `match_receipts` output.
        match_window_s: matching window used.
        challenge_age: compliance threshold used.
        products: `check_products` output (all rows, reason NULL when usable).
    """
    photos = _photo_figures(scores, photo_quarantine)
    receipt_counts = receipts.agg(
        F.count("*").alias("receipts_in"),
        F.count_if(F.col("reason").isNull()).alias("receipts_valid"),
    )
    line_counts = lines.agg(
        F.count("*").alias("lines_in"),
        F.count_if(F.col("reason").isNull()).alias("lines_valid"),
    )
    product_counts = products.agg(
        F.count("*").alias("products_in"),
        F.count_if(F.col("reason").isNull()).alias("products_valid"),
    )
    matches = receipt_ages.agg(
        F.count_if(F.col("photo_id").isNotNull()).alias("receipts_matched"),
        F.count_distinct("photo_id").alias("photos_matched"),
    )
    row = (
        photos.crossJoin(receipt_counts)
        .crossJoin(line_counts).crossJoin(product_counts).crossJoin(matches)
    )
    return row.select(
        (F.col("photos_scored") + F.col("photos_quarantined")).alias("photos_in"),
        "photos_scored", "photos_quarantined", "photos_matched",
        (F.col("photos_scored") - F.col("photos_matched")).alias("photos_unmatched"),
        "receipts_in", "receipts_valid",
        (F.col("receipts_in") - F.col("receipts_valid")).alias("receipts_quarantined"),
        "receipts_matched",
        (F.col("receipts_valid") - F.col("receipts_matched")).alias("receipts_unmatched"),
        "lines_in", "lines_valid",
        (F.col("lines_in") - F.col("lines_valid")).alias("lines_quarantined"),
        "products_in", "products_valid",
        (F.col("products_in") - F.col("products_valid")).alias("products_quarantined"),
        F.when(F.col("receipts_valid") > 0, F.col("receipts_matched") / F.col("receipts_valid"))
        .alias("match_rate"),
        no_face_rate().alias("no_face_rate"),
        "median_face_px",
        F.col("_pct")[0].alias("age_pred_p10"),
        F.col("_pct")[1].alias("age_pred_p50"),
        F.col("_pct")[2].alias("age_pred_p90"),
        F.coalesce("age_group_counts", F.lit("{}")).alias("age_group_counts"),
        "model_version", "model_run_id",
        F.lit(match_window_s).alias("match_window_s"),
        F.lit(challenge_age).alias("challenge_age"),
    )


def _photo_figures(scores: DataFrame, photo_quarantine: DataFrame) -> DataFrame:
    """One row: photo counts, age percentiles and groups, and the face detector's figures."""
    photos = scores.agg(
        F.count("*").alias("photos_scored"),
        F.percentile_approx("age_pred_years", [0.1, 0.5, 0.9], 10000).alias("_pct"),
        F.max("model_version").alias("model_version"),
        # Days scored before versions lived in MLflow have no run id column.
        F.max(F.col("model_run_id") if "model_run_id" in scores.columns
              else F.lit(None).cast("string")).alias("model_run_id"),
    )
    groups = scores.groupBy("age_group").count().agg(
        F.to_json(F.map_from_entries(F.array_sort(F.collect_list(F.struct("age_group", "count")))))
        .alias("age_group_counts")
    )
    quarantined = photo_quarantine.agg(
        F.count("*").alias("photos_quarantined"),
        F.count_if(F.col("reason") == NO_FACE).alias("_no_face"),
        F.count_if(F.col("reason").isin(*DETECTOR_REASONS)).alias("_frames_quarantined"),
    )
    # Partitions written before frames were detected have no face columns: no frames then.
    face = {name: F.col(name) if name in scores.columns else F.lit(None).cast("int")
            for name in ("faces_found", "face_w")}
    faces = scores.agg(
        F.count(face["faces_found"]).alias("_frames_scored"),
        F.percentile_approx(face["face_w"], 0.5, 10000).cast("double").alias("median_face_px"),
    )
    return photos.crossJoin(groups).crossJoin(quarantined).crossJoin(faces)
