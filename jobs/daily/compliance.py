"""Pure transforms: Challenge-25 screening of age-restricted sales, per cashier and per receipt.

A restricted sale is flagged when the customer's matched photo is predicted younger than the
challenge age (25 by default, "Challenge 25"): a screening signal for an auditor, not proof.
Restricted sales without a matched photo cannot be judged and are counted on their own.

Each flag also carries `p_under_legal_age`, the calibrated probability that the customer is
under the legal age (`model.calibration`), and each cashier `expected_minor_sales`, the sum of
those probabilities over restricted sales with a photo: the expected number of sales to minors,
far less noisy than a count of flags. Both are NULL where the scoring model had no calibration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def restricted_sales(items: DataFrame) -> DataFrame:
    """Per receipt with >= 1 age-restricted line: restricted_units, restricted_revenue_rub."""
    return items.where("age_restricted").groupBy("receipt_id").agg(
        F.sum("quantity").alias("restricted_units"),
        F.round(F.sum("revenue_rub"), 2).alias("restricted_revenue_rub"),
    )


def compliance_flags(receipt_ages: DataFrame, restricted: DataFrame,
                     challenge_age: int) -> DataFrame:
    """Restricted receipts whose matched photo looks under `challenge_age` (`compliance_flags`)."""
    return (
        receipt_ages.join(restricted, "receipt_id")
        .where(F.col("age_pred_years") < F.lit(float(challenge_age)))
        .select(
            "receipt_id", "store_id", "lane_id", "cashier_id", "closed_at", "photo_id",
            "age_pred_years", "model_version", "restricted_units", "restricted_revenue_rub",
            F.lit(challenge_age).alias("challenge_age"), "p_under_legal_age",
        )
    )


def compliance(receipt_ages: DataFrame, restricted: DataFrame, challenge_age: int) -> DataFrame:
    """Per store and cashier: receipts, restricted, with photo, flagged, flag rate, no photo,
    with_probability (restricted sales with a photo and a probability), expected_minor_sales."""
    marked = receipt_ages.join(
        restricted.select("receipt_id", F.lit(True).alias("_restricted")), "receipt_id", "left"
    )
    restricted_row = F.col("_restricted").isNotNull()
    with_photo = restricted_row & F.col("age_pred_years").isNotNull()
    flagged = with_photo & (F.col("age_pred_years") < F.lit(float(challenge_age)))
    counts = marked.groupBy("store_id", "cashier_id").agg(
        F.count("*").alias("receipts"),
        F.count_if(restricted_row).alias("restricted_receipts"),
        F.count_if(with_photo).alias("with_photo"),
        F.count_if(flagged).alias("flagged"),
        F.count_if(with_photo & F.col("p_under_legal_age").isNotNull()).alias("with_probability"),
        # sum() of no values is NULL: "unknown" (uncalibrated model), not 0 expected minors.
        F.sum(F.when(with_photo, F.col("p_under_legal_age"))).alias("expected_minor_sales"),
    )
    return counts.select(
        "store_id", "cashier_id", "receipts", "restricted_receipts", "with_photo", "flagged",
        F.when(F.col("with_photo") > 0, F.col("flagged") / F.col("with_photo")).alias("flag_rate"),
        (F.col("restricted_receipts") - F.col("with_photo")).alias("no_photo"),
        F.lit(challenge_age).alias("challenge_age"),
        "with_probability", "expected_minor_sales",
    )
