"""Age-estimation error figures: one pure function over numpy arrays.

Error is reported overall, by age band (`config.EVAL_BANDS`) and by gender, never only as a
mean (domain notes), plus the compliance figures that matter for selling alcohol and tobacco:
how often a true minor is estimated of legal age or of challenge age (the NIST "Challenge-25"
false positive rate) and how often a young adult is estimated under the legal age. The two ages
are `Settings.legal_age` and `Settings.challenge_age` (18 and 25 unless configured); each result
records the ages it used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.config import EVAL_BANDS, Settings


def _error_summary(errors: np.ndarray) -> dict:
    """n, mae and bias (mean of prediction minus truth) of signed errors; None when empty."""
    n = int(errors.size)
    if n == 0:
        return {"n": 0, "mae": None, "bias": None}
    return {"n": n, "mae": float(np.mean(np.abs(errors))), "bias": float(np.mean(errors))}


def _share(mask: np.ndarray) -> float | None:
    """Share of True values; None for an empty group (a rate of nothing is not 0)."""
    return float(np.mean(mask)) if mask.size else None


def age_metrics(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    gender: Sequence[object] | np.ndarray | None = None,
    *,
    legal_age: int = Settings.legal_age,
    challenge_age: int = Settings.challenge_age,
) -> dict:
    """Error figures for predicted ages against true ages (years).

    Args:
        y_true: true ages.
        y_pred: estimated ages, same length.
        gender: optional labels per row; missing values (None/NaN/"") count as "unknown".
        legal_age: minors are under it (`Settings.legal_age`).
        challenge_age: a sale is challenged below it (`Settings.challenge_age`).

    Returns:
        `n`, `mae`, `rmse`, `bias`; `by_band` {band: {n, mae, bias}} over every band of
        `EVAL_BANDS` (empty bands have n=0 and None figures); `by_gender` {label: {n, mae,
        bias}} when `gender` is given; `legal_age` and `challenge_age` as used;
        `minors_pred_ge_legal` and `minors_pred_ge_challenge` (share of true minors estimated
        at least the legal / challenge age), `young_adults_pred_lt_legal` (share of true young
        adults, legal age up to under the challenge age, estimated under the legal age), with
        the group sizes `n_minors` and `n_young_adults`. Shares of empty groups are None.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}")
    errors = pred - true
    overall = _error_summary(errors)
    result: dict = {
        "n": overall["n"],
        "mae": overall["mae"],
        "rmse": float(np.sqrt(np.mean(errors**2))) if true.size else None,
        "bias": overall["bias"],
        "by_band": {
            name: _error_summary(errors[(true >= low) & (true < high)])
            for name, low, high in EVAL_BANDS
        },
    }
    if gender is not None:
        labels = np.array([_gender_label(g) for g in gender], dtype=object)
        if labels.size != true.size:
            raise ValueError(f"gender has {labels.size} values but y_true has {true.size}")
        result["by_gender"] = {
            str(label): _error_summary(errors[labels == label]) for label in sorted(set(labels))
        }
    minors = true < legal_age
    young_adults = (true >= legal_age) & (true < challenge_age)
    result["legal_age"], result["challenge_age"] = legal_age, challenge_age
    result["n_minors"] = int(minors.sum())
    result["minors_pred_ge_legal"] = _share(pred[minors] >= legal_age)
    result["minors_pred_ge_challenge"] = _share(pred[minors] >= challenge_age)
    result["n_young_adults"] = int(young_adults.sum())
    result["young_adults_pred_lt_legal"] = _share(pred[young_adults] < legal_age)
    return result


def _gender_label(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    text = str(value).strip().lower()
    return text or "unknown"
