"""The two calibration methods on a synthetic model that over-ages teenagers
(model/evaluation/calibration_methods.py)."""

from __future__ import annotations

import numpy as np
import pytest

from model.evaluation.calibration import evaluate_calibration, fit_calibration
from model.evaluation.calibration_methods import true_age_table


def _over_aging_model(n: int, seed: int):
    """Few teenagers (13-17), estimated 6 years too old; everyone else unbiased. Error SD 3."""
    rng = np.random.default_rng(seed)
    teens = rng.integers(13, 18, n // 20)
    others = np.concatenate([rng.integers(2, 13, n // 5), rng.integers(18, 60, n - n // 20 - n // 5)])
    true = np.concatenate([teens, others]).astype(float)
    bias = np.where((true >= 13) & (true < 18), 6.0, 0.0)
    return true, true + bias + rng.normal(0.0, 3.0, true.size)


def test_true_age_method_covers_over_aged_teenagers_where_the_old_table_does_not():
    fit, check = _over_aging_model(4000, seed=1), _over_aging_model(40000, seed=2)
    old = evaluate_calibration(fit_calibration(*fit, legal_age=18, method="predicted_age"), *check)
    new = evaluate_calibration(fit_calibration(*fit, legal_age=18, method="true_age"), *check)
    # Estimated 19-23, a teenager sits 6 years below the adults it is mixed with.
    assert old["coverage_by_band"]["13-17"]["coverage"] < 0.65
    assert new["coverage_by_band"]["13-17"]["coverage"] >= 0.75
    for band in ("<13", "25-34", "35-44", "45-54"):
        assert new["coverage_by_band"][band]["coverage"] == pytest.approx(0.8, abs=0.03), band
    # Where the bias drops at 18 the belt is not monotone: its hull over-covers young adults.
    assert new["coverage_by_band"]["18-24"]["coverage"] >= 0.78
    assert new["coverage"] == pytest.approx(0.8, abs=0.02)


def test_true_age_probability_is_bayes_rule_over_the_age_mix():
    # 13-17 and 18-22 equally common, all estimated 3 years too old with SD 2: an estimate
    # of 20.5 is a 17.5-year-old's mean, so P(minor) there is about one half.
    rng = np.random.default_rng(3)
    true = rng.integers(13, 23, 20000).astype(float)
    pred = true + 3.0 + rng.normal(0.0, 2.0, true.size)
    cal = fit_calibration(true, pred, legal_age=18, method="true_age", neighbours=1000)
    _, _, p = cal.apply(np.array([14.0, 20.5, 27.0]))
    assert p[0] > 0.97 and p[2] < 0.03
    assert p[1] == pytest.approx(0.5, abs=0.06)
    check = evaluate_calibration(cal, true, pred)
    assert check["reliability_worst_gap"]["gap"] < 0.05  # calibrated on its own population


def test_belt_intervals_rise_with_the_estimate_and_extend_past_the_fitted_ages():
    true, pred = _over_aging_model(3000, seed=4)
    grid = np.arange(0.0, 120.5, 0.5)
    low_off, high_off, p = true_age_table(true, pred, grid, coverage=0.8, legal_age=18,
                                          whole_years=True, neighbours=100)
    low, high = grid + low_off, grid + high_off
    assert np.all(np.diff(low) >= -1e-9) and np.all(np.diff(high) >= -1e-9)
    assert np.all(high > low)
    assert high[-1] > true.max() and low[0] <= true.min()  # slope 1 past the oldest age
    assert np.all(np.diff(p) <= 1e-9)  # older estimate, never a likelier minor
    assert np.all((p >= 0) & (p <= 1))


def test_unknown_method_refused():
    true, pred = _over_aging_model(500, seed=5)
    with pytest.raises(ValueError, match="true_age, predicted_age"):
        fit_calibration(true, pred, legal_age=18, method="median")


def test_method_recorded_in_the_table():
    true, pred = _over_aging_model(500, seed=6)
    table = fit_calibration(true, pred, legal_age=18).to_dict()
    assert table["method"] == "true_age" and table["neighbours"] == 60
    assert fit_calibration(true, pred, legal_age=18, method="predicted_age").to_dict()[
        "method"] == "predicted_age"
