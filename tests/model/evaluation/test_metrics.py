"""age_metrics against figures worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.evaluation.metrics import age_metrics

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
    assert m["minors_pred_ge_legal"] == pytest.approx(0.5)
    assert m["minors_pred_ge_challenge"] == pytest.approx(0.5)
    # 18-24: 20 -> 17, estimated under 18
    assert m["n_young_adults"] == 1
    assert m["young_adults_pred_lt_legal"] == pytest.approx(1.0)
    assert (m["legal_age"], m["challenge_age"]) == (18, 25)


def test_configured_ages_move_the_compliance_shares() -> None:
    # Legal age 21, challenge 30 (worked out by hand): the minors 10, 16, 20 are estimated 12, 26,
    # 17, so one of three 21+ and none 30+; the one young adult (21..29), 25, is estimated 20.
    m = age_metrics([10, 16, 20, 25, 40], [12, 26, 17, 20, 41], legal_age=21, challenge_age=30)
    assert (m["legal_age"], m["challenge_age"]) == (21, 30)
    assert m["n_minors"] == 3
    assert m["minors_pred_ge_legal"] == pytest.approx(1 / 3)
    assert m["minors_pred_ge_challenge"] == 0.0
    assert (m["n_young_adults"], m["young_adults_pred_lt_legal"]) == (1, 1.0)


def test_thresholds_are_inclusive_where_the_law_is() -> None:
    # 17.9 is a minor estimated exactly 18 (counts as 18+, not 25+); 18 and 24.9 are young
    # adults (both estimated under 18), 25 is neither.
    m = age_metrics([17.9, 18, 24.9, 25], [18, 17.99, 17, 10])
    assert (m["n_minors"], m["minors_pred_ge_legal"], m["minors_pred_ge_challenge"]) == (1, 1.0, 0.0)
    assert (m["n_young_adults"], m["young_adults_pred_lt_legal"]) == (2, 1.0)


def test_empty_groups_give_none_not_zero() -> None:
    m = age_metrics(np.array([40.0, 50.0]), np.array([41.0, 47.0]))
    assert m["n_minors"] == 0 and m["minors_pred_ge_legal"] is None
    assert m["minors_pred_ge_challenge"] is None and m["young_adults_pred_lt_legal"] is None


def test_no_rows_at_all() -> None:
    m = age_metrics([], [])
    assert m["n"] == 0 and m["mae"] is None and m["rmse"] is None


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        age_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="gender has 1 values"):
        age_metrics([1, 2], [1, 2], ["m"])
