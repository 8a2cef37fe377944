"""Honest uncertainty for one estimated age: an interval and P(under the legal age).

Fitted on held-out (true age, estimated age) pairs: the validation split at training time
(never the training rows), or a labelled set the model never saw (`model calibrate`). For a
grid of estimated ages it keeps the residual distribution (true - estimated) of the
`neighbours` held-out faces whose estimates are nearest: a local, split-conformal style
calibration that follows the model's age-dependent errors (teenagers over-aged, older
adults under-aged). From it, per grid point:

- `low_offset`, `high_offset`: the residual quantiles of the central `coverage` interval
  (age_low = estimate + low_offset, age_high = estimate + high_offset);
- `p_under`: P(true age < legal age) from a kernel-smoothed residual CDF, clipped to
  [1/(2k), 1 - 1/(2k)] for k neighbours: k faces cannot show a probability of exactly 0 or 1.

Applying it is a linear interpolation on the grid (`Calibration.apply`), vectorised and cheap
enough for the score job. Stored with a model version as `calibration.json`. Pure numpy.

Labels in whole years (age 17 means 17.0-17.99) make "true age < 18" the same as "label
<= 17"; the smoothed CDF is then taken at 17.5, the midpoint between the labels, so an
18-year-old never counts half a minor.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.config import EVAL_BANDS

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FORMAT_VERSION = 1
DEFAULT_COVERAGE = 0.8
DEFAULT_NEIGHBOURS = 200  # held-out faces behind each local residual distribution
MIN_PAIRS = 50  # fewer held-out faces than this calibrate nothing honestly
GRID_STEP = 0.5  # years between grid points of estimated age
GRID_TOP = 100.0  # estimates above the grid use its last point's offsets
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration table (module docstring); build it with `fit_calibration`."""

    legal_age: float
    coverage: float
    threshold: float  # where the residual CDF is read: legal_age, or legal_age - 0.5
    grid: np.ndarray
    low_offset: np.ndarray
    high_offset: np.ndarray
    p_under: np.ndarray
    n: int
    neighbours: int
    source: dict = field(default_factory=dict)

    def apply(self, age_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(age_low, age_high, p_under_legal_age) for estimated ages; NaN in, NaN out."""
        pred = np.asarray(age_pred, dtype=np.float64).reshape(-1)
        low = pred + np.interp(pred, self.grid, self.low_offset)
        high = pred + np.interp(pred, self.grid, self.high_offset)
        p = np.interp(pred, self.grid, self.p_under)
        return low, high, p

    def to_dict(self) -> dict:
        """JSON-ready form (the `calibration.json` content)."""
        return {
            "format": FORMAT_VERSION,
            "method": "local residual distribution of the nearest held-out estimates",
            "legal_age": self.legal_age,
            "coverage": self.coverage,
            "threshold": self.threshold,
            "n": self.n,
            "neighbours": self.neighbours,
            "source": self.source,
            "grid": _rounded(self.grid),
            "low_offset": _rounded(self.low_offset),
            "high_offset": _rounded(self.high_offset),
            "p_under": _rounded(self.p_under, 6),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Inverse of `to_dict`; raises ValueError on a table that cannot be applied."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown calibration format {data.get('format')!r}")
        arrays = {name: np.asarray(data[name], dtype=np.float64)
                  for name in ("grid", "low_offset", "high_offset", "p_under")}
        sizes = {a.size for a in arrays.values()}
        if len(sizes) != 1 or sizes.pop() < 2 or np.any(np.diff(arrays["grid"]) <= 0):
            raise ValueError("calibration arrays must have one length >= 2 and a rising grid")
        if np.any((arrays["p_under"] <= 0) | (arrays["p_under"] >= 1)):
            raise ValueError("calibration probabilities must lie strictly between 0 and 1")
        return cls(float(data["legal_age"]), float(data["coverage"]), float(data["threshold"]),
                   n=int(data["n"]), neighbours=int(data["neighbours"]),
                   source=dict(data.get("source") or {}), **arrays)

    def save(self, path: Path) -> Path:
        """Write the JSON table to `path`; returns it."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)


def _rounded(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def load_calibration(folder: Path | None) -> Calibration | None:
    """The `calibration.json` of a version folder; None when the folder has none (older versions).

    Raises:
        ValueError: the file exists but is not a usable table (named in the message).
    """
    if folder is None:
        return None
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable calibration table ({exc})") from None


def fit_calibration(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    legal_age: float,
    coverage: float = DEFAULT_COVERAGE,
    neighbours: int = DEFAULT_NEIGHBOURS,
    source: dict | None = None,
) -> Calibration:
    """Fit the table from held-out (true, estimated) ages (never the training rows).

    Args:
        y_true: true ages (years) of held-out faces.
        y_pred: the model's estimates for the same faces.
        legal_age: the age `p_under` refers to (settings `legal_age`, 18).
        coverage: central interval share (0.8 = 10 % of faces below age_low, 10 % above).
        neighbours: held-out faces per local residual distribution (fewer if fewer exist).
        source: where the pairs came from (split, dataset fingerprint, ...), kept in the JSON.

    Raises:
        ValueError: fewer than MIN_PAIRS usable pairs, mismatched lengths or a bad coverage.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} values but y_pred has {pred.size}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie strictly between 0 and 1, not {coverage}")
    keep = np.isfinite(true) & np.isfinite(pred)
    true, pred = true[keep], pred[keep]
    if true.size < MIN_PAIRS:
        raise ValueError(f"{true.size} held-out faces: need at least {MIN_PAIRS} to calibrate")
    k = int(min(neighbours, true.size))
    whole_years = bool(np.all(true == np.round(true)))
    threshold = legal_age - 0.5 if whole_years else float(legal_age)
    top = max(GRID_TOP, math.ceil(float(pred.max()) / GRID_STEP) * GRID_STEP)
    grid = np.arange(0.0, top + GRID_STEP / 2, GRID_STEP)
    residual = true - pred
    # The k held-out estimates nearest each grid point (ties broken by position: deterministic).
    nearest = np.argpartition(np.abs(pred[None, :] - grid[:, None]), k - 1, axis=1)[:, :k]
    local = residual[nearest]  # (grid points, k)
    tail = (1.0 - coverage) / 2.0
    # Plotting positions p(k+1) (split-conformal ranks): plain sample quantiles of k points
    # cover (k-1)/(k+1) of the intended share, 79.2 % instead of 80 % for k = 200.
    low_offset, high_offset = np.quantile(local, [tail, 1.0 - tail], axis=1, method="weibull")
    p_under = _smoothed_cdf(local, threshold - grid)
    floor = 1.0 / (2 * k)
    return Calibration(
        legal_age=float(legal_age), coverage=float(coverage), threshold=threshold, grid=grid,
        low_offset=low_offset, high_offset=high_offset,
        p_under=np.clip(p_under, floor, 1.0 - floor), n=int(true.size), neighbours=k,
        source=dict(source or {}),
    )


def _smoothed_cdf(samples: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row, P(sample < at[row]) under a kernel density estimate of the row's samples.

    A logistic kernel (its CDF is numpy's own; scipy is not a dependency) with the standard
    deviation of Silverman's rule-of-thumb bandwidth, at least a quarter year.
    """
    k = samples.shape[1]
    spread = np.std(samples, axis=1, ddof=1)
    q75, q25 = np.percentile(samples, [75, 25], axis=1)
    scale = np.minimum(spread, (q75 - q25) / 1.349)
    scale = np.where(scale > 0, scale, spread)
    bandwidth = np.maximum(0.9 * scale * k ** (-0.2), 0.25)
    logistic_scale = bandwidth * math.sqrt(3) / math.pi  # same standard deviation
    z = (at[:, None] - samples) / logistic_scale[:, None]
    return (0.5 * (1.0 + np.tanh(z / 2.0))).mean(axis=1)  # logistic CDF, overflow-free


def calibration_metrics(
    y_true: np.ndarray,
    age_low: np.ndarray,
    age_high: np.ndarray,
    p_under: np.ndarray,
    *,
    legal_age: float,
    coverage: float,
    bins: int = RELIABILITY_BINS,
) -> dict:
    """How honest the intervals and probabilities were on labelled faces.

    Returns:
        `n`, `coverage_target`, `coverage` (share with age_low <= true <= age_high),
        `mean_width_years`, `coverage_by_band` {band: {n, coverage, mean_width_years}} over
        `EVAL_BANDS` (None figures for empty bands), `worst_band` (lowest coverage, n >= 10),
        `legal_age`, `minors` (true age < legal_age), `brier` (mean squared error of
        p_under against being a minor), `brier_base_rate` (the Brier score of always
        answering the share of minors: a useful p beats it), and `reliability`: one row per
        probability bin of width 1/bins with n, mean predicted p and observed share of minors.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    low = np.asarray(age_low, dtype=np.float64).reshape(-1)
    high = np.asarray(age_high, dtype=np.float64).reshape(-1)
    p = np.asarray(p_under, dtype=np.float64).reshape(-1)
    if not true.size == low.size == high.size == p.size:
        raise ValueError("y_true, age_low, age_high and p_under must have one length")
    covered = (low <= true) & (true <= high)
    width = high - low
    minor = (true < legal_age).astype(np.float64)
    by_band = {}
    for name, lo, hi in EVAL_BANDS:
        mask = (true >= lo) & (true < hi)
        by_band[name] = {
            "n": int(mask.sum()),
            "coverage": float(covered[mask].mean()) if mask.any() else None,
            "mean_width_years": float(width[mask].mean()) if mask.any() else None,
        }
    rated = [(name, row["coverage"]) for name, row in by_band.items() if row["n"] >= 10]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    reliability = []
    for index in range(bins):
        mask = which == index
        reliability.append({
            "p_from": float(edges[index]), "p_to": float(edges[index + 1]), "n": int(mask.sum()),
            "mean_p": float(p[mask].mean()) if mask.any() else None,
            "observed_minor_share": float(minor[mask].mean()) if mask.any() else None,
        })
    share = float(minor.mean()) if true.size else None
    return {
        "n": int(true.size),
        "coverage_target": float(coverage),
        "coverage": float(covered.mean()) if true.size else None,
        "mean_width_years": float(width.mean()) if true.size else None,
        "coverage_by_band": by_band,
        "worst_band": min(rated, key=lambda item: item[1])[0] if rated else None,
        "legal_age": float(legal_age),
        "minors": int(minor.sum()),
        "brier": float(np.mean((p - minor) ** 2)) if true.size else None,
        "brier_base_rate": share * (1 - share) if share is not None else None,
        "reliability": reliability,
    }


def evaluate_calibration(calibration: Calibration, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """`calibration_metrics` of `calibration` applied to estimates `y_pred` of faces `y_true`."""
    low, high, p = calibration.apply(y_pred)
    return calibration_metrics(y_true, low, high, p, legal_age=calibration.legal_age,
                               coverage=calibration.coverage)


def calibrate_split(
    valid: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    out_dir: Path,
    *,
    legal_age: float,
    coverage: float = DEFAULT_COVERAGE,
    source: dict | None = None,
) -> tuple[Path | None, dict | None]:
    """Training's step: fit on the validation split, measure on the test split, save the JSON.

    Args:
        valid, test: (true ages, estimated ages) of each split.
        out_dir: where `calibration.json` goes (the version being assembled).
        legal_age, coverage, source: see `fit_calibration`.

    Returns:
        (path of calibration.json, test-split `calibration_metrics` plus `fitted_on`), or
        (None, None) when the validation split is too small to calibrate (the version then
        scores with empty calibration columns).
    """
    try:
        calibration = fit_calibration(*valid, legal_age=legal_age, coverage=coverage,
                                      source=source)
    except ValueError as exc:
        log.warning("no calibration for this version: %s", exc)
        return None, None
    figures = evaluate_calibration(calibration, *test)
    figures["fitted_on"] = f"the validation split ({calibration.n} faces)"
    figures["measured_on"] = f"the test split ({figures['n']} faces)"
    return calibration.save(Path(out_dir) / CALIBRATION_FILE), figures
