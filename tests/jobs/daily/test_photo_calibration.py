"""The score job's calibration columns (jobs/daily/photos.py `calibrated_columns`)."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.contract import spark_columns
from jobs.daily.photos import photo_scores
from model.evaluation.calibration import fit_calibration

SCORED_SCHEMA = ("photo_id string, store_id string, lane_id int, captured_at timestamp, "
                 "age_pred_years float, reason string, detail string")
# Estimates below, on and above the grid, between grid points, on a grid point, and NULL.
AGES = [-3.0, 0.0, 12.3, 17.75, 18.0, 24.9, 61.26, 99.9, 130.0, None]


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(3)
    true = np.round(rng.uniform(5, 80, 1500))
    return fit_calibration(true, true + rng.normal(0, 5, true.size), legal_age=18)


def _scored(spark):
    rows = [(f"p{i}", "S1", 1, None, age, None, None) for i, age in enumerate(AGES)]
    rows.append(("bad", "S1", 1, None, None, "not_an_image", "x"))
    return spark.createDataFrame(rows, SCORED_SCHEMA)


def test_spark_interpolation_equals_the_numpy_table(spark, calibration):
    scores = photo_scores(_scored(spark), "v0009", calibration)
    assert [(f.name, f.dataType.simpleString()) for f in scores.schema.fields] == (
        spark_columns("photo_scores"))
    rows = {r.photo_id: r for r in scores.collect()}
    assert len(rows) == len(AGES)  # the quarantined row stays out
    # Float32 estimates, as the predict UDF gives them.
    known = np.array([a for a in AGES if a is not None], dtype=np.float32).astype(np.float64)
    low, high, p = calibration.apply(known)
    got = np.array([[rows[f"p{i}"].age_low, rows[f"p{i}"].age_high,
                     rows[f"p{i}"].p_under_legal_age] for i in range(len(known))])
    np.testing.assert_allclose(got, np.stack([low, high, p], axis=1), rtol=1e-9, atol=1e-9)
    assert np.all((got[:, 2] > 0) & (got[:, 2] < 1))
    last = rows[f"p{len(AGES) - 1}"]
    assert (last.age_low, last.age_high, last.p_under_legal_age) == (None, None, None)


def test_a_version_without_calibration_scores_with_null_columns(spark):
    scores = photo_scores(_scored(spark), "v0001")
    assert [(f.name, f.dataType.simpleString()) for f in scores.schema.fields] == (
        spark_columns("photo_scores"))
    rows = scores.collect()
    assert len(rows) == len(AGES)
    assert {(r.age_low, r.age_high, r.p_under_legal_age) for r in rows} == {(None, None, None)}
    assert sum(r.age_pred_years is not None for r in rows) == len(AGES) - 1
