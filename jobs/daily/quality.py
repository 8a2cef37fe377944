"""Pure transform: one `run_quality` row per day, every count the contract says must add up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def run_quality(scores: DataFrame, photo_quarantine: DataFrame, receipts: DataFrame,
                lines: DataFrame, receipt_ages: DataFrame, match_window_s: int,
                challenge_age: int) -> DataFrame:
    """The day's data-quality row.

    Args:
        scores: `photo_scores` of the day.
        photo_quarantine: `photo_quarantine` of the day.
        receipts: `check_receipts` output (all rows, reason NULL when valid).
        lines: `check_lines` output (all rows).
        receipt_ages: `match_receipts` output.
        match_window_s: matching window used.
        challenge_age: compliance threshold used.
    """
    photos = scores.agg(
        F.count("*").alias("photos_scored"),
        F.percentile_approx("age_pred_years", [0.1, 0.5, 0.9], 10000).alias("_pct"),
        F.max("model_version").alias("model_version"),
    )
    groups = scores.groupBy("age_group").count().agg(
        F.to_json(F.map_from_entries(F.array_sort(F.collect_list(F.struct("age_group", "count")))))
        .alias("age_group_counts")
    )
    quarantined = photo_quarantine.agg(F.count("*").alias("photos_quarantined"))
    receipt_counts = receipts.agg(
        F.count("*").alias("receipts_in"),
        F.count_if(F.col("reason").isNull()).alias("receipts_valid"),
    )
    line_counts = lines.agg(
        F.count("*").alias("lines_in"),
        F.count_if(F.col("reason").isNull()).alias("lines_valid"),
    )
    matches = receipt_ages.agg(
        F.count_if(F.col("photo_id").isNotNull()).alias("receipts_matched"),
        F.count_distinct("photo_id").alias("photos_matched"),
    )
    row = (
        photos.crossJoin(groups).crossJoin(quarantined).crossJoin(receipt_counts)
        .crossJoin(line_counts).crossJoin(matches)
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
        F.when(F.col("receipts_valid") > 0, F.col("receipts_matched") / F.col("receipts_valid"))
        .alias("match_rate"),
        F.col("_pct")[0].alias("age_pred_p10"),
        F.col("_pct")[1].alias("age_pred_p50"),
        F.col("_pct")[2].alias("age_pred_p90"),
        F.coalesce("age_group_counts", F.lit("{}")).alias("age_group_counts"),
        "model_version",
        F.lit(match_window_s).alias("match_window_s"),
        F.lit(challenge_age).alias("challenge_age"),
    )
