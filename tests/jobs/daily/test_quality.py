"""The run_quality row: counts that must add up, computed by hand on a tiny day."""

from __future__ import annotations

import json

from jobs.daily.quality import run_quality


def test_run_quality_counts_and_distribution(spark):
    scores = spark.createDataFrame(
        [(f"p{i}", float(age), group, "v3", "run-abc") for i, (age, group) in enumerate(
            [(16, "under 18"), (20, "18-24"), (22, "18-24"), (30, "25-34"), (70, "65+")])],
        "photo_id string, age_pred_years double, age_group string, model_version string, "
        "model_run_id string",
    )
    quarantine = spark.createDataFrame([("q1", "not_an_image")], "photo_id string, reason string")
    receipts = spark.createDataFrame(
        [("r1", None), ("r2", None), ("r3", None), ("r1", "duplicate_receipt_id")],
        "receipt_id string, reason string",
    )
    lines = spark.createDataFrame(
        [(1, None), (2, None), (3, "unknown_product")], "line_no int, reason string"
    )
    ages = spark.createDataFrame(
        [("r1", "p0"), ("r2", "p3"), ("r3", None)], "receipt_id string, photo_id string"
    )
    products = spark.createDataFrame(
        [("P1", None), ("P2", None), ("P3", "bad_flag"), ("P1", "duplicate_product_id")],
        "product_id string, reason string",
    )
    row = run_quality(scores, quarantine, receipts, lines, ages, 10, 25,
                      products=products).collect()
    assert len(row) == 1
    got = row[0].asDict()
    assert json.loads(got.pop("age_group_counts")) == {
        "18-24": 2, "25-34": 1, "65+": 1, "under 18": 1}
    assert got == {
        "photos_in": 6, "photos_scored": 5, "photos_quarantined": 1,
        "photos_matched": 2, "photos_unmatched": 3,
        "receipts_in": 4, "receipts_valid": 3, "receipts_quarantined": 1,
        "receipts_matched": 2, "receipts_unmatched": 1,
        "lines_in": 3, "lines_valid": 2, "lines_quarantined": 1,
        "products_in": 4, "products_valid": 2, "products_quarantined": 2,
        "match_rate": 2 / 3, "no_face_rate": None, "median_face_px": None,
        "age_pred_p10": 16.0, "age_pred_p50": 22.0, "age_pred_p90": 70.0,
        "model_version": "v3", "model_run_id": "run-abc", "match_window_s": 10,
        "challenge_age": 25,
    }


def test_run_quality_no_face_rate_and_median_face_size(spark):
    """Frames: no-face rate over the frames the detector saw; crops (faces_found NULL) and
    decoder quarantines are not frames it saw."""
    scores = spark.createDataFrame(
        [("p1", 30.0, "25-34", "v3", 1, 100), ("p2", 40.0, "35-44", "v3", 2, 180),
         ("p3", 50.0, "45-54", "v3", 1, 220), ("crop", 20.0, "18-24", "v3", None, None)],
        "photo_id string, age_pred_years double, age_group string, model_version string, "
        "faces_found int, face_w int",
    )
    quarantine = spark.createDataFrame(
        [("q1", "no_face"), ("q2", "no_face"), ("q3", "face_too_small"), ("q4", "not_an_image")],
        "photo_id string, reason string")
    empty = spark.createDataFrame([], "receipt_id string, reason string, photo_id string")
    row = run_quality(scores, quarantine, empty, empty, empty, 10, 25, products=empty).first()
    assert row.no_face_rate == 2 / 6  # 3 scored frames + 2 no_face + 1 too small
    assert row.model_run_id is None  # a day scored before versions carried an MLflow run id
    assert row.median_face_px == 180.0
    assert row.photos_in == 8
