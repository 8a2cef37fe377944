"""Calibration on synthetic predictors whose error distribution is known (model/evaluation/calibration.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from model.evaluation.calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibration_metrics,
    evaluate_calibration,
    fit_calibration,
    load_calibration,
)


def _faces(n: int, seed: int, sigma: float = 4.0, whole_years: bool = True):
    """True ages uniform over 5..80 (whole years) and estimates with N(0, sigma) error."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(5, 80, n)
    true = np.round(true) if whole_years else true
    return true, true + rng.normal(0.0, sigma, n)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_gaussian_error_gives_the_stated_coverage_on_new_faces():
    cal = fit_calibration(*_faces(5000, seed=1), legal_age=18)
    metrics = evaluate_calibration(cal, *_faces(40000, seed=2))
    assert 0.78 <= metrics["coverage"] <= 0.82
    # An 80 % interval of N(0, 4) errors is 2 * 1.2816 * 4 = 10.25 years wide.
    assert metrics["mean_width_years"] == pytest.approx(10.25, abs=0.6)
    assert metrics["coverage_target"] == 0.8


def test_a_95_percent_interval_covers_95_percent():
    cal = fit_calibration(*_faces(5000, seed=3, sigma=6.0), legal_age=18, coverage=0.95)
    metrics = evaluate_calibration(cal, *_faces(40000, seed=4, sigma=6.0))
    assert 0.935 <= metrics["coverage"] <= 0.965


def test_probability_matches_the_known_posterior():
    # Flat prior on true age and N(0, 4) error: P(true <= 17 | estimate e) = Phi((17.5 - e) / 4)
    # away from the ends of the age range (labels are whole years, so 17.5 separates them).
    cal = fit_calibration(*_faces(20000, seed=5), legal_age=18, neighbours=800)
    estimates = np.array([12.0, 15.0, 17.5, 20.0, 24.0])
    _, _, p = cal.apply(estimates)
    expected = [_normal_cdf((17.5 - e) / 4.0) for e in estimates]
    assert p == pytest.approx(expected, abs=0.05)
    assert cal.threshold == 17.5


def test_continuous_labels_read_the_cdf_at_the_legal_age_itself():
    cal = fit_calibration(*_faces(8000, seed=6, whole_years=False), legal_age=18)
    assert cal.threshold == 18.0
    _, _, p = cal.apply(np.array([18.0]))
    assert p[0] == pytest.approx(0.5, abs=0.06)


def test_no_zero_or_one_probability_where_the_interval_straddles_the_legal_age():
    # Tiny error spread: the smoothed CDF would round to 0 or 1 almost everywhere.
    cal = fit_calibration(*_faces(3000, seed=7, sigma=0.8), legal_age=18)
    estimates = np.linspace(0.0, 120.0, 4801)
    low, high, p = cal.apply(estimates)
    straddles = (low < 18) & (high >= 18)
    assert straddles.any()
    assert np.all((p[straddles] > 0) & (p[straddles] < 1))
    assert np.all((p > 0) & (p < 1))  # clipped everywhere, to 1/(2k) from each end
    assert p.min() == pytest.approx(1 / (2 * cal.neighbours))


def test_age_dependent_error_widens_the_interval_where_the_model_is_worse():
    rng = np.random.default_rng(8)
    true = np.round(rng.uniform(5, 80, 6000))
    pred = true + rng.normal(0.0, 1.0 + 0.1 * true)  # error grows with age
    cal = fit_calibration(true, pred, legal_age=18)
    low, high, _ = cal.apply(np.array([15.0, 70.0]))
    assert (high - low)[1] > 2 * (high - low)[0]  # 2.5 vs 8 years of error spread


def test_json_round_trip_and_version_folder(tmp_path):
    cal = fit_calibration(*_faces(500, seed=9), legal_age=18, source={"split": "valid"})
    cal.save(tmp_path / CALIBRATION_FILE)
    loaded = load_calibration(tmp_path)
    assert isinstance(loaded, Calibration)
    assert loaded.source == {"split": "valid"} and loaded.n == 500
    estimates = np.array([3.0, 17.2, 44.4, 130.0, np.nan])
    for got, want in zip(loaded.apply(estimates), cal.apply(estimates), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3)
    assert np.isnan(loaded.apply(estimates)[2][-1])
    assert load_calibration(tmp_path / "missing") is None
    assert load_calibration(None) is None


def test_a_broken_table_is_an_error_naming_the_file(tmp_path):
    data = fit_calibration(*_faces(500, seed=10), legal_age=18).to_dict()
    data["p_under"][3] = 0.0
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{CALIBRATION_FILE}.*strictly between 0 and 1"):
        load_calibration(tmp_path)


def test_too_few_pairs_refused():
    with pytest.raises(ValueError, match="need at least 50"):
        fit_calibration(np.arange(20.0), np.arange(20.0), legal_age=18)


def test_metrics_worked_by_hand():
    true = np.array([10, 16, 20, 30, 40.0])
    low = np.array([8, 17, 15, 25, 41.0])
    high = np.array([12, 20, 25, 35, 45.0])
    p = np.array([0.9, 0.55, 0.3, 0.05, 0.0])
    m = calibration_metrics(true, low, high, p, legal_age=18, coverage=0.8)
    assert m["coverage"] == pytest.approx(3 / 5)  # 16 below 17, 40 below 41
    assert m["minors"] == 2
    # (0.9-1)^2 + (0.55-1)^2 + 0.3^2 + 0.05^2 + 0 = 0.01 + 0.2025 + 0.09 + 0.0025
    assert m["brier"] == pytest.approx(0.305 / 5)
    assert m["brier_base_rate"] == pytest.approx(0.4 * 0.6)
    assert m["coverage_by_band"]["13-17"] == {"n": 1, "coverage": 0.0, "mean_width_years": 3.0}
    assert m["coverage_by_band"]["<13"]["coverage"] == 1.0
    bins = {row["p_from"]: row for row in m["reliability"]}
    assert bins[0.0]["n"] == 2 and bins[0.0]["observed_minor_share"] == 0.0
    assert bins[0.9]["n"] == 1 and bins[0.9]["mean_p"] == pytest.approx(0.9)
    assert sum(row["n"] for row in m["reliability"]) == 5


def test_model_card_section_and_reliability_plot(tmp_path):
    from model.lifecycle.card import model_card, reliability_plot

    cal = fit_calibration(*_faces(2000, seed=11), legal_age=18)
    figures = {**evaluate_calibration(cal, *_faces(1000, seed=12)), "measured_on": "the test split"}
    card = model_card({}, {"test": {"calibration": figures}}, {})
    assert "## Calibration (measured on the test split" in card
    assert f"covered {100 * figures['coverage']:.1f} % of 1000 faces" in card
    assert "within the target 78.0 %-82.0 %" in card or "OUTSIDE the target" in card
    assert f"Coverage is worst for true ages {figures['worst_band']}" in card
    assert "no `calibration.json`" in model_card({}, {"test": {"calibration": None}}, {})
    png = reliability_plot(figures, tmp_path)
    assert png.name == "reliability.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_training_step_fits_on_valid_measures_on_test(tmp_path):
    from model.evaluation.calibration import calibrate_split

    path, figures = calibrate_split(_faces(600, seed=13), _faces(400, seed=14), tmp_path,
                                    legal_age=18, source={"split": "valid"})
    assert path == tmp_path / CALIBRATION_FILE and load_calibration(tmp_path).n == 600
    assert figures["n"] == 400 and figures["fitted_on"] == "the validation split (600 faces)"
    assert figures["measured_on"] == "the test split (400 faces)"
    # A validation split too small to calibrate: no table, and the version scores with NULLs.
    assert calibrate_split(_faces(30, seed=15), _faces(30, seed=16), tmp_path / "small",
                           legal_age=18) == (None, None)
