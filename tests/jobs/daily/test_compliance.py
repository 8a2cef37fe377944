"""Challenge-25 flags and per-cashier compliance figures by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.daily.compliance import compliance, compliance_flags, restricted_sales

CLOSED = dt.datetime(2026, 3, 14, 10, 0, tzinfo=dt.UTC)
AGES_SCHEMA = (
    "receipt_id string, store_id string, lane_id int, cashier_id string, closed_at timestamp, "
    "photo_id string, age_pred_years double, model_version string, p_under_legal_age double"
)


@pytest.fixture()
def sales(spark):
    ages = spark.createDataFrame([
        ("X1", "S1", 1, "C1", CLOSED, "p1", 17.0, "v1", 0.625),  # restricted, looks 17: flagged
        ("X2", "S1", 1, "C1", CLOSED, "p2", 30.0, "v1", 0.0125),  # restricted, looks 30
        ("X3", "S1", 1, "C1", CLOSED, None, None, None, None),  # restricted, no photo
        ("X4", "S1", 1, "C1", CLOSED, "p4", 16.0, "v1", 0.75),  # young, but nothing restricted
        ("X5", "S1", 2, "C2", CLOSED, "p5", 24.9, "v0", None),  # restricted, flagged, uncalibrated
        ("X6", "S1", 2, "C2", CLOSED, "p6", 25.0, "v0", None),  # restricted, exactly 25: no flag
        ("X7", "S2", 1, "C3", CLOSED, None, None, None, None),  # nothing restricted, no photo
    ], AGES_SCHEMA)
    items = spark.createDataFrame([
        ("X1", True, 2, 200.0), ("X1", False, 1, 50.0), ("X2", True, 1, 100.0),
        ("X3", True, 1, 100.0), ("X4", False, 3, 30.0), ("X5", True, 1, 300.0),
        ("X5", True, 2, 150.0), ("X6", True, 1, 100.0), ("X7", False, 1, 10.0),
    ], "receipt_id string, age_restricted boolean, quantity long, revenue_rub double")
    return ages, restricted_sales(items)


def test_compliance_per_cashier(spark, sales):
    ages, restricted = sales
    # C1: expected minors 0.625 + 0.0125 (X4's 0.75 is not a restricted sale). C2's model had
    # no calibration: unknown (NULL), not zero. C3 sold nothing restricted.
    expected = spark.createDataFrame([
        ("S1", "C1", 4, 3, 2, 1, 0.5, 1, 25, 2, 0.6375),
        ("S1", "C2", 2, 2, 2, 1, 0.5, 0, 25, 0, None),
        ("S2", "C3", 1, 0, 0, 0, None, 0, 25, 0, None),
    ], "store_id string, cashier_id string, receipts long, restricted_receipts long, "
       "with_photo long, flagged long, flag_rate double, no_photo long, challenge_age int, "
       "with_probability long, expected_minor_sales double")
    assertDataFrameEqual(compliance(ages, restricted, 25), expected)


def test_flags_are_restricted_sales_that_look_under_the_challenge_age(spark, sales):
    ages, restricted = sales
    expected = spark.createDataFrame([
        ("X1", "S1", 1, "C1", CLOSED, "p1", 17.0, "v1", 2, 200.0, 25, 0.625),
        ("X5", "S1", 2, "C2", CLOSED, "p5", 24.9, "v0", 3, 450.0, 25, None),
    ], "receipt_id string, store_id string, lane_id int, cashier_id string, "
       "closed_at timestamp, photo_id string, age_pred_years double, model_version string, "
       "restricted_units long, restricted_revenue_rub double, challenge_age int, "
       "p_under_legal_age double")
    assertDataFrameEqual(compliance_flags(ages, restricted, 25), expected)
    # A stricter threshold (Challenge 21) keeps only the 17-year-old look.
    assert [r.receipt_id for r in compliance_flags(ages, restricted, 21).collect()] == ["X1"]
