"""age_metrics against figures worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.metrics import age_metrics

# errors (pred - true): +2, +10, -3, 0, -10
TRUE = [10, 16, 20, 30, 70]
PRED = [12, 26, 17, 30, 60]
GENDER = ["male", "female", "Female", None, "male"]


def test_overall_figures() -> None:
    m = age_metrics(TRUE, PRED)
    assert m["n"] == 5
    assert m["mae"] == pytest.approx(25 / 5)
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 100 + 9 + 0 + 100) / 5))
    assert m["bias"] == pytest.approx(-1 / 5)
    assert "by_gender" not in m


def test_by_band_covers_every_band_and_leaves_empty_ones_none() -> None:
    bands = age_metrics(TRUE, PRED)["by_band"]
    assert list(bands) == ["<13", "13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
    assert bands["<13"] == {"n": 1, "mae": 2.0, "bias": 2.0}
    assert bands["13-17"] == {"n": 1, "mae": 10.0, "bias": 10.0}
    assert bands["18-24"] == {"n": 1, "mae": 3.0, "bias": -3.0}
    assert bands["25-34"] == {"n": 1, "mae": 0.0, "bias": 0.0}
    assert bands["35-44"] == {"n": 0, "mae": None, "bias": None}
    assert bands["65+"] == {"n": 1, "mae": 10.0, "bias": -10.0}


def test_by_gender_normalises_labels_and_counts_missing_as_unknown() -> None:
    genders = age_metrics(TRUE, PRED, GENDER)["by_gender"]
    assert genders == {
        "female": {"n": 2, "mae": 6.5, "bias": 3.5},
        "male": {"n": 2, "mae": 6.0, "bias": -4.0},
        "unknown": {"n": 1, "mae": 0.0, "bias": 0.0},
    }
    nan_gender = age_metrics([20, 30], [20, 32], ["m", float("nan")])["by_gender"]
    assert nan_gender["unknown"] == {"n": 1, "mae": 2.0, "bias": 2.0}


def test_compliance_shares() -> None:
    m = age_metrics(TRUE, PRED)
    # minors: 10 -> 12 (under 18), 16 -> 26 (18+ and 25+)
    assert m["n_minors"] == 2
    assert m["minors_pred_ge_18"] == pytest.approx(0.5)
    assert m["minors_pred_ge_25"] == pytest.approx(0.5)
    # 18-24: 20 -> 17, estimated under 18
    assert m["n_adults_18_24"] == 1
    assert m["adults_18_24_pred_lt_18"] == pytest.approx(1.0)


def test_thresholds_are_inclusive_where_the_law_is() -> None:
    # 17.9 is a minor estimated exactly 18 (counts as 18+, not 25+); 18 and 24.9 are young
    # adults (both estimated under 18), 25 is neither.
    m = age_metrics([17.9, 18, 24.9, 25], [18, 17.99, 17, 10])
    assert (m["n_minors"], m["minors_pred_ge_18"], m["minors_pred_ge_25"]) == (1, 1.0, 0.0)
    assert (m["n_adults_18_24"], m["adults_18_24_pred_lt_18"]) == (2, 1.0)


def test_empty_groups_give_none_not_zero() -> None:
    m = age_metrics(np.array([40.0, 50.0]), np.array([41.0, 47.0]))
    assert m["n_minors"] == 0 and m["minors_pred_ge_18"] is None
    assert m["minors_pred_ge_25"] is None and m["adults_18_24_pred_lt_18"] is None


def test_no_rows_at_all() -> None:
    m = age_metrics([], [])
    assert m["n"] == 0 and m["mae"] is None and m["rmse"] is None


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        age_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="gender has 1 values"):
        age_metrics([1, 2], [1, 2], ["m"])
