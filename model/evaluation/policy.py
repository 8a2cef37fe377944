"""The flagging policy as a trade-off: minors caught against adults flagged, per rule.

Two families of rule flag an age-restricted sale for an auditor's look:
- "age": the estimated age is below T (Challenge 21 is T = 21, Challenge 25 is T = 25);
- "probability": the calibrated P(under the legal age) is at least p.

`policy_curve` measures each rule of a grid on labelled faces: the share of true minors it
catches (flags) and the share of adults it flags, split into young adults (legal age up to
`YOUNG_ADULT_UNTIL`, 18-24) and older adults (25+), whose flags cost more goodwill per flag.
A chain picks its rule knowing both sides. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from model.config import YOUNG_ADULT_UNTIL

AGE_THRESHOLDS = tuple(range(20, 31))  # Challenge 20 .. Challenge 30
P_THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _rows(score: np.ndarray, thresholds: Iterable[float], flag, groups: dict) -> list[dict]:
    rows = []
    for threshold in thresholds:
        flagged = flag(score, threshold)
        rows.append({"threshold": threshold,
                     **{f"{name}_flagged": _share(flagged[mask]) for name, mask in groups.items()},
                     "all_flagged": _share(flagged)})
    return rows


def policy_curve(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    p_under: np.ndarray | None = None,
    *,
    legal_age: float,
    ages: Iterable[float] = AGE_THRESHOLDS,
    probabilities: Iterable[float] = P_THRESHOLDS,
) -> dict:
    """Minors caught and adults flagged for each rule of the two families.

    Args:
        y_true: true ages (years).
        y_pred: estimated ages of the same faces.
        p_under: calibrated P(age < legal_age) of the same faces; None for a model without
            calibration (then no probability rules).
        legal_age: minors are under it.
        ages: thresholds T of the rule "estimated age < T".
        probabilities: thresholds p of the rule "P(under legal age) >= p".

    Returns:
        `legal_age`, `young_adult_until`, the group sizes `n_minors`, `n_young_adults`,
        `n_older_adults`, and `age_rules` / `probability_rules` (None without `p_under`): one
        row per threshold with `minors_flagged` (minors caught), `young_adults_flagged`,
        `older_adults_flagged` and `all_flagged` (shares; None for an empty group). NaN
        estimates (or probabilities) never flag.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}")
    groups = {"minors": true < legal_age,
              "young_adults": (true >= legal_age) & (true < YOUNG_ADULT_UNTIL),
              "older_adults": true >= YOUNG_ADULT_UNTIL}
    result = {"legal_age": legal_age, "young_adult_until": YOUNG_ADULT_UNTIL,
              **{f"n_{name}": int(mask.sum()) for name, mask in groups.items()},
              "age_rules": _rows(pred, list(ages), np.less, groups),
              "probability_rules": None}
    if p_under is not None:
        p = np.asarray(p_under, dtype=np.float64).reshape(-1)
        if p.shape != true.shape:
            raise ValueError(f"p_under has {p.size} values but y_true has {true.size}")
        result["probability_rules"] = _rows(p, list(probabilities), np.greater_equal, groups)
    return result


def calibrated_policy_curve(calibration: object | None, y_true: np.ndarray, y_pred: np.ndarray,
                            *, legal_age: float) -> dict:
    """`policy_curve` with P(minor) from `calibration` (a `Calibration`; None: age rules only)."""
    p = None if calibration is None else calibration.apply(np.asarray(y_pred))[2]
    return policy_curve(y_true, y_pred, p, legal_age=legal_age)


def rule_row(curve: dict | None, rule: str, threshold: float) -> dict | None:
    """The row of `curve` for `rule` ("age" or "probability") at `threshold`; None if absent."""
    rows = (curve or {}).get(f"{rule}_rules") or []
    return next((row for row in rows if abs(row["threshold"] - threshold) < 1e-9), None)


def describe_age_rule(threshold: int, legal_age: int) -> str:
    """One sentence naming an age rule, e.g. Challenge 25."""
    return (f"Challenge {threshold}: an age-restricted sale is flagged when the customer's "
            f"estimated age is below {threshold} (legal age {legal_age})")
