"""Pure transform: tie each receipt to the photo of its customer by store, lane and time.

The till and the camera have separate clocks, so the link is the nearest photo at the same
store and lane within +-window seconds. Pairs are taken greedily by |time difference| with
deterministic tie-breaks (documented in docs/data-contract.md, "Matching rule"), so a receipt
gets at most one photo and a photo at most one receipt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

PAIR_SCHEMA = "receipt_id string, photo_id string, time_diff_s double"


def _seconds(col: str) -> Column:
    return F.unix_micros(F.col(col)).cast("double") / 1e6


def candidate_pairs(receipts: DataFrame, photos: DataFrame, window_s: float) -> DataFrame:
    """(receipt, photo) pairs at the same store and lane with |captured - closed| <= window_s.

    Joins on time buckets of `window_s` seconds (a receipt looks at its bucket and both
    neighbours) instead of the whole lane, so the join stays linear in the day's size.
    """
    width = float(max(window_s, 1e-3))
    r = receipts.select(
        "receipt_id", "store_id", "lane_id", _seconds("closed_at").alias("_closed_s")
    ).withColumn(
        "_bucket", F.explode(F.sequence(
            F.floor(F.col("_closed_s") / width).cast("long") - 1,
            F.floor(F.col("_closed_s") / width).cast("long") + 1,
        ))
    )
    p = photos.select(
        "photo_id", "store_id", "lane_id", _seconds("captured_at").alias("_captured_s")
    ).withColumn("_bucket", F.floor(F.col("_captured_s") / width).cast("long"))
    diff = F.col("_captured_s") - F.col("_closed_s")
    return (
        r.join(p, ["store_id", "lane_id", "_bucket"])
        .select("store_id", "lane_id", "receipt_id", "photo_id", F.round(diff, 6).alias("time_diff_s"))
        .where(F.abs("time_diff_s") <= F.lit(float(window_s)))
    )


def greedy_pairs(candidates: pd.DataFrame) -> pd.DataFrame:
    """Greedy one-to-one matching of one lane's candidate pairs (pandas, runs per group).

    Order: smaller |time_diff_s|; then photo before closing (negative diff) first; then smaller
    receipt_id; then smaller photo_id. A pair is kept unless its receipt or photo is taken.
    """
    ordered = candidates.assign(
        _abs=candidates["time_diff_s"].abs(), _after=candidates["time_diff_s"] > 0
    ).sort_values(["_abs", "_after", "receipt_id", "photo_id"], kind="mergesort")
    taken_receipts: set[str] = set()
    taken_photos: set[str] = set()
    keep = []
    for receipt, photo in zip(ordered["receipt_id"], ordered["photo_id"], strict=True):
        keep.append(receipt not in taken_receipts and photo not in taken_photos)
        if keep[-1]:
            taken_receipts.add(receipt)
            taken_photos.add(photo)
    return ordered.loc[keep, ["receipt_id", "photo_id", "time_diff_s"]]


def match_receipts(receipts: DataFrame, scores: DataFrame, window_s: float) -> DataFrame:
    """Every valid receipt with its matched photo's age (the `receipt_ages` table).

    Args:
        receipts: valid receipts (receipt_id, store_id, lane_id, cashier_id, closed_at, total_rub).
        scores: `photo_scores` rows of the same day.
        window_s: largest |captured_at - closed_at| that can match, seconds.

    Returns:
        One row per receipt; photo columns NULL when no photo matched.
    """
    pairs = candidate_pairs(receipts, scores, window_s).groupBy("store_id", "lane_id").applyInPandas(
        greedy_pairs, schema=PAIR_SCHEMA
    )
    # Partitions scored before calibration existed have no p_under_legal_age: NULL, like an
    # uncalibrated version's.
    p_minor = (F.col("p_under_legal_age") if "p_under_legal_age" in scores.columns
               else F.lit(None).cast("double"))
    photo_cols = scores.select(
        "photo_id", "captured_at", "age_pred_years", "age_group", "model_version",
        p_minor.alias("p_under_legal_age"),
    )
    return (
        receipts.select("receipt_id", "store_id", "lane_id", "cashier_id", "closed_at", "total_rub")
        .join(pairs, "receipt_id", "left")
        .join(photo_cols, "photo_id", "left")
        .select(
            "receipt_id", "store_id", "lane_id", "cashier_id", "closed_at", "total_rub",
            "photo_id", "captured_at", "time_diff_s", "age_pred_years", "age_group",
            "model_version", "p_under_legal_age",
        )
    )
