"""Segment x category figures and recommendations (support, confidence, lift) by hand."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.daily.segments import receipt_items, recommendations, segment_category

AGES_SCHEMA = "receipt_id string, store_id string, age_group string"
LINES_SCHEMA = "receipt_id string, product_id string, quantity int, price_rub double"
PRODUCTS_SCHEMA = "product_id string, name string, category string, age_restricted boolean"


@pytest.fixture()
def day(spark):
    """Store S1: A1, A2 (18-24), B1, B2 (45-54), U1 unmatched; store S2: C1 (18-24)."""
    ages = spark.createDataFrame([
        ("A1", "S1", "18-24"), ("A2", "S1", "18-24"), ("B1", "S1", "45-54"),
        ("B2", "S1", "45-54"), ("U1", "S1", None), ("C1", "S2", "18-24"),
    ], AGES_SCHEMA)
    lines = spark.createDataFrame([
        ("A1", "P2", 2, 100.0), ("A1", "P3", 1, 50.0), ("A2", "P3", 3, 50.0),
        ("B1", "P1", 1, 80.0), ("B1", "P2", 1, 100.0), ("B2", "P1", 2, 80.0),
        ("U1", "P2", 5, 100.0), ("C1", "P1", 1, 80.0),
    ], LINES_SCHEMA)
    products = spark.createDataFrame([
        ("P1", "Milk", "dairy", False), ("P2", "Beer", "beer", True),
        ("P3", "Chips", "snacks", False),
    ], PRODUCTS_SCHEMA)
    return ages, receipt_items(lines, products)


def test_segment_category_counts_shares_support_lift(spark, day):
    ages, items = day
    # S1: 4 matched receipts; beer in {A1,B1}, snacks in {A1,A2}, dairy in {B1,B2}.
    # 18-24 revenue 200+50+150 = 400; 45-54 revenue 80+100+160 = 340.
    expected = spark.createDataFrame([
        ("S1", "18-24", "beer", 1, 2, 200.0, 2, 400.0, 2, 4, 0.5, 0.25, 0.5, 1.0),
        ("S1", "18-24", "snacks", 2, 4, 200.0, 2, 400.0, 2, 4, 0.5, 0.5, 1.0, 2.0),
        ("S1", "45-54", "dairy", 2, 3, 240.0, 2, 340.0, 2, 4, 240 / 340, 0.5, 1.0, 2.0),
        ("S1", "45-54", "beer", 1, 1, 100.0, 2, 340.0, 2, 4, 100 / 340, 0.25, 0.5, 1.0),
        ("S2", "18-24", "dairy", 1, 1, 80.0, 1, 80.0, 1, 1, 1.0, 1.0, 1.0, 1.0),
    ], "store_id string, age_group string, category string, receipts long, units long, "
       "revenue_rub double, segment_receipts long, segment_revenue_rub double, "
       "category_receipts long, all_receipts long, revenue_share double, support double, "
       "confidence double, lift double")
    assertDataFrameEqual(segment_category(ages, items), expected)


def test_recommendations_rank_by_lift_above_min_support(spark, day):
    ages, items = day
    # Chain: 5 matched receipts; 18-24 = {A1,A2,C1}, 45-54 = {B1,B2};
    # beer in 2, snacks in 2, dairy in 3 receipts.
    # 18-24 snacks: 2/3 / (2/5) = 5/3. 18-24 beer: 1/3 / (2/5) = 0.83 and dairy 1/3 / (3/5):
    # lift <= 1, not listed. 45-54 dairy: 1 / (3/5) = 5/3; 45-54 beer: 1/2 / (2/5) = 1.25.
    schema = ("age_group string, kind string, item_id string, item_name string, "
              "category string, receipts long, segment_receipts long, item_receipts long, "
              "all_receipts long, support double, confidence double, lift double, rank int")
    expected = spark.createDataFrame([
        ("18-24", "category", "snacks", "snacks", "snacks", 2, 3, 2, 5, 0.4, 2 / 3, 5 / 3, 1),
        ("18-24", "product", "P3", "Chips", "snacks", 2, 3, 2, 5, 0.4, 2 / 3, 5 / 3, 1),
        ("45-54", "category", "dairy", "dairy", "dairy", 2, 2, 3, 5, 0.4, 1.0, 5 / 3, 1),
        ("45-54", "category", "beer", "beer", "beer", 1, 2, 2, 5, 0.2, 0.5, 1.25, 2),
        ("45-54", "product", "P1", "Milk", "dairy", 2, 2, 3, 5, 0.4, 1.0, 5 / 3, 1),
        ("45-54", "product", "P2", "Beer", "beer", 1, 2, 2, 5, 0.2, 0.5, 1.25, 2),
    ], schema)
    assertDataFrameEqual(recommendations(ages, items, min_support=0.2), expected)
    # A higher minimum support drops the single-receipt beer rows.
    stricter = recommendations(ages, items, min_support=0.25)
    assert sorted(r.item_id for r in stricter.collect()) == ["P1", "P3", "dairy", "snacks"]
    # top_n keeps the best per group and kind.
    assert {r.item_id for r in recommendations(ages, items, 0.2, top_n=1).collect()} == {
        "snacks", "P3", "dairy", "P1"}
